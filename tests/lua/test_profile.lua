-- fada.profile: calls counted per function, nested time charged to the callee.
local fada = require 'fada'
local profile = require 'fada.profile'

test('calls are counted and exclusive times add up to at most the wall time', function()
  profile.start()
  local x = fada.zeros(64, 64)
  for _ = 1, 5 do x = x + 1 end
  x:sum()
  local rows, wall = profile.rows()
  local by = {}
  local total = 0
  for _, r in ipairs(rows) do by[r.name], total = r, total + r.seconds end
  assert_eq(by['fada.zeros'].calls, 1)
  assert_eq(by['tensor __add'].calls, 5)
  assert(total <= wall + 1e-6, ('exclusive times %.6f s exceed the wall %.6f s'):format(total, wall))
  profile.start() -- starts again from zero
  local again = profile.rows()
  assert_eq(#again, 0)
end)

test('scripts/profile.lua runs a script and prints the table', function()
  local p = io.popen(('%q scripts/profile.lua scripts/profile.lua 2>&1; echo "exit $?"'):format(arg[-1]))
  local out = p:read('a')
  p:close()
  assert(out:find('usage: fadalua scripts/profile.lua SCRIPT', 1, true), out)
  local f = os.tmpname()
  local h = assert(io.open(f, 'w'))
  h:write('local x = fada.ones(8) for _ = 1, 3 do x = x * 2 end print(x:sum():item())\n')
  h:close()
  p = io.popen(('%q scripts/profile.lua %q 2>&1'):format(arg[-1], f))
  out = p:read('a')
  p:close()
  os.remove(f)
  assert(out:find('64.0', 1, true), out)
  assert(out:find('tensor __mul%s+3'), out)
end)
