-- fada.so inside Debian's stock lua5.4 (which carries its own Lua: the
-- module must not link liblua). Not under sanitizers: stock lua5.4 cannot
-- load an ASan-instrumented module.
-- labels: nosan
local fada = require 'fada'

local build_dir = fada.library_dir:match('^(.*)/lua$')

local function run(cmd)
  local p = assert(io.popen(cmd .. ' 2>&1'))
  local out = p:read('a')
  local ok, _, code = p:close()
  return out, ok and 0 or code
end

test('fada.so loads in stock lua5.4 and computes', function()
  if os.execute('command -v lua5.4 >/dev/null 2>&1') ~= true then skip('lua5.4 is not installed') end
  local so = build_dir .. '/fada.so'
  local f = io.open(so)
  if not f then skip('no fada.so beside ' .. build_dir .. ' (installed tree?)') end
  f:close()
  local out, code = run(("lua5.4 -e \"package.cpath='%s/?.so;'..package.cpath; " ..
    "local f = require 'fada'; local t = f.tensor{{1,2},{3,4}}; " ..
    "io.write(t:t():contiguous():get(1,2), ' ', f.randn(3, f.Generator(7)):get(2))\""):format(build_dir))
  assert_eq(code, 0, out)
  local a, b = out:match('^(%S+) (%S+)$')
  assert_eq(tonumber(a), 3.0, 'transposed element via fada.so')
  -- the same generator gives the same number in fadalua
  assert_close(tonumber(b), fada.randn(3, fada.Generator(7)):get(2), 1e-12, 0)
  local ldd = run('ldd ' .. so)
  assert(not ldd:find('liblua'), 'fada.so must not link liblua:\n' .. ldd)
end)
