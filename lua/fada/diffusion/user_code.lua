-- User code without recompiling: a sampler or a guidance schedule given as
-- 'file:path.lua', a Lua file that returns the function, with the contract of
-- the built-in ones (fada.diffusion.samplers, fada.diffusion.cfg.schedule).
--
--   local user_code = require 'fada.diffusion.user_code'
--   user_code.is_file('file:my.lua') -> 'my.lua' (nil for a built-in name)
--   user_code.load('file:my.lua', 'sampler') -> the function, or an error naming
--       the file and what was wrong with it
--
-- examples/user_sampler.lua and examples/user_cfg_schedule.lua are worked examples.
local M = {}

M.CONTRACTS = {
  sampler = 'function(model, x_T, schedule, timesteps, opts) -> x_0',
  cfg_schedule = 'function(w) -> a number or a schedule function(i, n, t) -> scale',
}

function M.is_file(spec)
  return type(spec) == 'string' and spec:match('^file:(.+)$') or nil
end

local cache = {}

-- Loads (once per path) the function a file returns. Errors are plain
-- messages (level 0): "file:<path>: <why>".
function M.load(spec, what)
  local path = M.is_file(spec)
  if not path then error(("%s '%s' is not of the form file:path.lua"):format(what, tostring(spec)), 0) end
  if cache[path] then return cache[path] end
  local contract = M.CONTRACTS[what] or 'a function'
  local chunk, err = loadfile(path)
  if not chunk then
    local f = io.open(path, 'r')
    if not f then error(("file:%s: cannot read '%s'"):format(path, path), 0) end
    f:close()
    error(("file:%s: does not compile: %s"):format(path, err), 0)
  end
  local ok, fn = pcall(chunk)
  if not ok then error(("file:%s: failed while loading: %s"):format(path, tostring(fn)), 0) end
  if type(fn) ~= 'function' then
    error(("file:%s: must return %s (a %s), returned a %s"):format(path, contract, what, type(fn)), 0)
  end
  cache[path] = fn
  return fn
end

return M
