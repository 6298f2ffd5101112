-- The documentation registry, part of the core: any module documents its
-- functions next to their definitions,
--
--   fada.doc(fada.zeros, 'fada.zeros(size..., [dtype]) -> Tensor', 'Zeros ...')
--   fada.doc('Tensor:size', 'Tensor:size([dim]) -> table | integer', '...')
--
-- and the REPL's layer, the module fada.help, prints it (it sets fada.help;
-- fadalua loads it at start and makes it the global help), so the core
-- imports nothing above it.
local fada = require 'fada'

local M = {
  entries = {},                                  -- name -> {name, signature, text}
  by_value = setmetatable({}, {__mode = 'k'}),   -- documented value -> entry
}

-- doc(target, signature, text) -> target
-- target: the function or table itself, or its name ("fada.zeros", "Tensor:size").
function M.doc(target, signature, text)
  if type(signature) ~= 'string' then
    error(('doc: signature must be a string, got %s'):format(type(signature)), 2)
  end
  if text ~= nil and type(text) ~= 'string' then
    error(('doc: text must be a string or nil, got %s'):format(type(text)), 2)
  end
  local name = type(target) == 'string' and target or signature:match('^[%w_%.:]+')
  if not name or name == '' then
    error(('doc: cannot take a name from the signature %q'):format(signature), 2)
  end
  local entry = {name = name, signature = signature, text = text or ''}
  M.entries[name] = entry
  if type(target) ~= 'string' then M.by_value[target] = entry end
  return target
end

fada.doc = M.doc

return M
