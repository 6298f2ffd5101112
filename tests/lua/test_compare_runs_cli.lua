-- scripts/compare_runs.lua on hand-written loss.csv files: the shared steps,
-- the relative difference in closed form, the PNG, and bad input refused.
local fada = require 'fada'
local sh = dofile(debug.getinfo(1, 'S').source:match('^@(.-)[^/]*$') .. 'shell_helpers.lua')

local dir = sh.temp_dir()
local function run_dir(name, rows)
  local d = dir .. '/' .. name
  fada.mkdir(d)
  sh.write_file(d .. '/loss.csv', 'step,loss,lr\n' .. table.concat(rows, '\n') .. '\n')
  return d
end
-- b is a at 1.1x on the steps both logged (10 and 20); a alone logged step 30
local a = run_dir('a', {'10,2.0,1e-4', '20,1.0,1e-4', '30,0.5,1e-4'})
local b = run_dir('b', {'10,2.2,1e-4', '20,1.1,1e-4'})

test('the shared steps, the mean relative difference (closed form), the PNG', function()
  local png = dir .. '/curves.png'
  local out, code = sh.script('compare_runs', ('--runs f32=%s,bf16=%s --png %s'):format(sh.quote(a), sh.quote(b),
    sh.quote(png)))
  assert_eq(code, 0, out)
  sh.contains(out, '| 10 | 2 | 2.2 |', 'step 10')
  sh.contains(out, '| 20 | 1 | 1.1 |', 'step 20')
  sh.lacks(out, '| 30 |', 'a step only one run logged')
  sh.contains(out, 'bf16 vs f32: mean relative difference +0.1000 (sd 0.0000) over 2 shared steps', 'the difference')
  assert(sh.exists(png) or out:find('no PNG', 1, true), 'a PNG or the reason')
end)

test('bad input: a message naming the flag or file, exit 2', function()
  for _, c in ipairs{
    {('--runs f32=%s'):format(sh.quote(a)), '--runs needs two or more NAME=DIR'},
    {('--runs f32=%s,%s'):format(sh.quote(a), sh.quote(b)), 'is not NAME=DIR'},
    {('--runs f32=%s,x=%s'):format(sh.quote(a), sh.quote(dir .. '/none')), "cannot read '" .. dir .. "/none/loss.csv'"},
    {('--runs f32=%s,bf16=%s --column gnorm'):format(sh.quote(a), sh.quote(b)), "has no column 'gnorm'"},
  } do
    local out, code = sh.script('compare_runs', c[1])
    assert_eq(code, 2, out)
    sh.contains(out, c[2], c[1])
  end
end)
