-- Tab completion for the REPL (runtime/programs/main_repl.c calls candidates(word)).
-- word is the text before the cursor with '.' and ':' kept in it: "pri",
-- "fada.ze", "fada.Tensor.si", "t:si". The answer lists the full words it
-- can become, sorted. Fields are read with rawget along the chain of
-- metatables whose __index is a table (a tensor's methods, string methods),
-- so completing never runs user code.
local fada = require 'fada'

local M = {}

local keywords = {
  'and', 'break', 'do', 'else', 'elseif', 'end', 'false', 'for', 'function', 'goto', 'if', 'in',
  'local', 'nil', 'not', 'or', 'repeat', 'return', 'then', 'true', 'until', 'while',
}

local MAX_CHAIN = 16 -- __index tables followed, against cycles

-- The tables whose string keys are fields of v: v itself, then each
-- metatable __index that is a table.
local function field_tables(v)
  local out = {}
  for _ = 1, MAX_CHAIN do
    if type(v) == 'table' then out[#out + 1] = v end
    local mt = debug.getmetatable(v)
    local index = mt and rawget(mt, '__index')
    if type(index) ~= 'table' then
      -- should tensors ever get an __index function (t[i]), their methods
      -- still are fada.Tensor
      if fada.is_tensor(v) then out[#out + 1] = fada.Tensor end
      break
    end
    v = index
  end
  return out
end

local function field(v, key)
  for _, t in ipairs(field_tables(v)) do
    local x = rawget(t, key)
    if x ~= nil then return x end
  end
  return nil
end

local function callable(v)
  if type(v) == 'function' then return true end
  local mt = debug.getmetatable(v)
  return mt ~= nil and rawget(mt, '__call') ~= nil
end

local function is_name(s)
  return type(s) == 'string' and s:match('^[%a_][%w_]*$') ~= nil
end

-- candidates(word, [env = _G]) -> sorted list of completed words
function M.candidates(word, env)
  env = env or _G
  local found, out = {}, {}
  local function add(w)
    if not found[w] then found[w], out[#out + 1] = true, w end
  end
  local path, sep, last = word:match('^(.-)([%.:])([%w_]*)$')
  if not path then
    if word ~= '' and not is_name(word) then return out end
    for _, t in ipairs(field_tables(env)) do
      for k in next, t do
        if is_name(k) and k:sub(1, #word) == word then add(k) end
      end
    end
    for _, k in ipairs(keywords) do
      if k:sub(1, #word) == word then add(k) end
    end
  else
    local v = env
    for part in (path .. '.'):gmatch('(.-)%.') do
      if not is_name(part) then return out end
      v = field(v, part)
      if v == nil then return out end
    end
    for _, t in ipairs(field_tables(v)) do
      for k, x in next, t do
        if is_name(k) and k:sub(1, #last) == last and (sep == '.' or callable(x)) then
          add(path .. sep .. k)
        end
      end
    end
  end
  table.sort(out)
  return out
end

return M
