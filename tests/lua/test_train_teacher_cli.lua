-- scripts/train_teacher.lua end to end on the tiny config and a 3-clip
-- dataset: a stopped and resumed run repeats an uninterrupted one, loss.csv
-- keeps one line per step, --export writes loadable f16 weights.
local fada = require 'fada'
local models = require 'fada.models'

local sh = dofile(debug.getinfo(1, 'S').source:match('^@(.-)[^/]*$') .. 'shell_helpers.lua')
local run = sh.script

local dir = sh.temp_dir()
local data = dir .. '/data'
local made, made_code = run('make_dataset', ('--clips 3 --size 64 --out %q --jobs 1'):format(data))
assert(made_code == 0, made)
local common = ('--data %q --config tiny --batch 2 --ckpt-every 2 --log-every 1 --threads 1 --no-prefetch'):format(data)

local function csv_rows(path) return sh.csv_rows(path, 3) end -- step -> the loss columns

test('stopped after one step and resumed == one uninterrupted run (loss, grad norm, lr per step)', function()
  local a, b = sh.resume_rows('train_teacher', common, dir, 5, 3)
  for s = 1, 5 do assert_eq(b[s], a[s], 'step ' .. s) end
end)

test('a resumed run drops loss.csv lines written after its checkpoint', function()
  local csv = dir .. '/whole/loss.csv'
  local f = assert(io.open(csv, 'a'))
  f:write('6,9.9,9.9,9.9,1,1,1\n7,9.9,9.9,9.9,1,1,1\n') -- as if killed after step 7, last checkpoint at 5
  f:close()
  local out, code = run('train_teacher', common .. (' --out %q --steps 6'):format(dir .. '/whole'))
  assert_eq(code, 0, out)
  local rows, n = csv_rows(csv)
  assert_eq(n, 6)
  assert(not rows[6]:find('9.9', 1, true), 'the stale line 6 is gone: ' .. rows[6])
  assert_eq(rows[7], nil)
end)

test('--export writes the EMA weights as f16 that models.load reads', function()
  local path = dir .. '/teacher.safetensors'
  local out, code = run('train_teacher', common .. (' --out %q --export %q'):format(dir .. '/whole', path))
  assert_eq(code, 0, out)
  local entries, _, config = fada.safetensors.header(path)
  assert_eq(config.name, 'tiny')
  local n16 = 0
  for _, e in pairs(entries) do if e.dtype == 'f16' then n16 = n16 + 1 end end
  assert(n16 > 0, 'f16 tensors')
  local m = models.load(path)
  assert_eq(m.config.name, 'tiny')
end)

test("denoise_error.lua on the exported model: a row per t; the noisy input's error is 1 - alpha_bar", function()
  local path = dir .. '/teacher.safetensors' -- written by the --export test above
  local out, code = run('denoise_error', ('--model %q --data %q --clips 2 --t 10,500,999 --threads 1'):format(path, data))
  assert_eq(code, 0, out)
  local rows = {}
  for t, sa, noisy in out:gmatch('\n| (%d+) | ([%d.]+) | [%d.]+ | [%d.]+ | ([%d.]+) | [%d.]+ |') do
    rows[#rows + 1] = {tonumber(t), tonumber(sa), tonumber(noisy)}
  end
  assert_eq(#rows, 3, out)
  -- E[(x_t - x0)^2] = (1 - sqrt(ab))^2 E[x0^2] + (1 - ab): at t = 10 the noise term is all of it
  local sa, noisy = rows[1][2], rows[1][3]
  assert_close(noisy, 1 - sa * sa, 0.15, 0, 'x_t - x0 at t = 10')
  assert(rows[3][3] > 0.9, 'at t = 999 the input is noise: ' .. rows[3][3])
  out, code = run('denoise_error', ('--model %q --branch nope'):format(path))
  assert_eq(code, 2, out)
  assert(out:find('--branch must be audio, ref or base', 1, true), out)
end)

test('--dtype bf16 (mixed precision) tracks f32 over the same steps; a bad --dtype is refused', function()
  local steps = 5 -- the f32 run in dir/whole: the same --steps, so the same learning rates
  local out, code = run('train_teacher', common .. (' --out %q --steps %d --dtype bf16'):format(dir .. '/bf16', steps))
  assert_eq(code, 0, out)
  local f32 = sh.csv_rows(dir .. '/whole/loss.csv', 2) -- step -> 'loss,grad_norm' of the f32 run above
  local bf16 = sh.csv_rows(dir .. '/bf16/loss.csv', 2)
  for s = 1, steps do
    local lf, lb = f32[s]:match('^([^,]+)'), bf16[s]:match('^([^,]+)')
    -- without bf16 kernels this is f32 and equal; with them, 8 mantissa bits move the loss a little
    assert(math.abs(lb - lf) <= 0.02 * math.abs(lf), ('step %d: bf16 loss %s vs f32 %s'):format(s, lb, lf))
  end
  out, code = run('train_teacher', common .. (' --out %q --dtype f16'):format(dir .. '/f16'))
  assert_eq(code, 2, out)
  sh.contains(out, "--dtype must be f32, bf16 or auto, got 'f16'", 'bad --dtype')
  out, code = run('train_teacher', common .. (' --out %q --tune fast'):format(dir .. '/tune'))
  assert_eq(code, 2, out)
  sh.contains(out, "--tune must be 0, 1, host or auto, got 'fast'", 'bad --tune')
end)

test('--help and a bad flag', function()
  local out, code = run('train_teacher', '--help')
  assert_eq(code, 0, out)
  assert(out:find('usage: fadalua scripts/train_teacher.lua', 1, true), out)
  out, code = run('train_teacher', '--stepz 3')
  assert(code ~= 0, out)
  assert(out:find('stepz', 1, true), out)
end)
