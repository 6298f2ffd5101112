-- Where does the time go? Wraps every function of `fada`, its sub-tables
-- (fada.ops, fada.audio, ...) and the tensor methods and operators, and adds
-- up each one's exclusive wall time (time inside nested wrapped calls is
-- charged to them, not to the caller).
--
--   local profile = require 'fada.profile'
--   profile.start()
--   ... work ...
--   profile.report()              -- the top 30 by time, to stderr
--   fadalua scripts/profile.lua scripts/train_teacher.lua --steps 5 ...   (the same around a script)
--
-- A wrapped call costs about a microsecond: tiny ops are over-counted a little.
local fada = require 'fada'

local M = {}
local stats, stack = {}, {}
local started, t0 = false, 0

-- tables whose functions are Lua-level building blocks, not kernels: left alone
local SKIP = {F = true, autograd = true, nn = true, optim = true, models = true, data = true, pipeline = true,
              diffusion = true, metrics = true, profile = true}

local function wrap(name, f)
  return function(...)
    local start = fada.clock()
    stack[#stack + 1] = 0
    local r = table.pack(f(...))
    local dt = fada.clock() - start
    local inner = table.remove(stack)
    local s = stats[name]
    if not s then s = {calls = 0, seconds = 0}; stats[name] = s end
    s.calls, s.seconds = s.calls + 1, s.seconds + dt - inner
    if #stack > 0 then stack[#stack] = stack[#stack] + dt end
    return table.unpack(r, 1, r.n)
  end
end

local function wrap_table(prefix, t)
  for k, v in pairs(t) do
    if type(v) == 'function' and k ~= 'clock' then t[k] = wrap(prefix .. k, v) end
  end
end

-- Wraps everything (once) and starts counting from zero.
function M.start()
  if not started then
    for k, v in pairs(fada) do
      if type(v) == 'table' and type(k) == 'string' and not SKIP[k] and not k:match('^_') then
        wrap_table('fada.' .. k .. '.', v)
      end
    end
    wrap_table('fada.', fada)
    local mt = debug.getregistry()['fada.Tensor']
    if type(mt.__index) == 'table' then wrap_table('tensor:', mt.__index) end
    for _, op in ipairs{'__add', '__sub', '__mul', '__div', '__unm', '__pow'} do
      if mt[op] then mt[op] = wrap('tensor ' .. op, mt[op]) end
    end
    started = true
  end
  stats, t0 = {}, fada.clock()
end

-- rows {name, calls, seconds} sorted by time, and the wall time since start()
function M.rows()
  local rows = {}
  for name, s in pairs(stats) do rows[#rows + 1] = {name = name, calls = s.calls, seconds = s.seconds} end
  table.sort(rows, function(a, b) return a.seconds > b.seconds end)
  return rows, fada.clock() - t0
end

function M.report(n, out)
  out = out or io.stderr
  local rows, wall = M.rows()
  local sum = 0
  for _, r in ipairs(rows) do sum = sum + r.seconds end
  out:write(('profile: %.2f s wall, %.2f s inside fada functions\n'):format(wall, sum))
  out:write(('%-44s %8s %10s %7s %10s\n'):format('function', 'calls', 'seconds', 'share', 'ms/call'))
  for i = 1, math.min(n or 30, #rows) do
    local r = rows[i]
    out:write(('%-44s %8d %10.3f %6.1f%% %10.3f\n'):format(r.name, r.calls, r.seconds, 100 * r.seconds / wall,
      1e3 * r.seconds / r.calls))
  end
end

return M
