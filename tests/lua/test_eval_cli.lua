-- scripts/eval.lua end to end on a tiny random model: the metrics table, the
-- CSV, the NFE arithmetic; bad flags give a one-line message and no CSV.
local models = require 'fada.models'

local sh = dofile(debug.getinfo(1, 'S').source:match('^@(.-)[^/]*$') .. 'shell_helpers.lua')
local function run(args) return sh.script('eval', args) end
local exists = sh.exists

local dir = sh.temp_dir()
local model = dir .. '/tiny.safetensors'
models.save(models.FadaModel(models.config('tiny')), model, {note = 'random init, for tests'})

test('a sweep over steps and CFG scales: one row per setting, the ceiling, the CSV', function()
  local csv = dir .. '/sweep.csv'
  local out, code = run(('--model %q --clips 2 --seconds 0.4 --steps 1,2 --grid 1:1,2:3 --csv %q --threads 1')
    :format(model, csv))
  assert_eq(code, 0, out)
  local rows = {}
  for line in out:gmatch('[^\n]+') do
    if line:match('^| ') and not line:match('^| setting') then rows[#rows + 1] = line end
  end
  assert_eq(#rows, 5, 'ceiling + 2 steps x 2 scales:\n' .. out)
  -- the ground truth read by the evaluator: its lip-sync is near perfect
  local gt = tonumber(rows[1]:match('^| ground truth %(ceiling%) | %- | %- | ([%d.]+)'))
  assert(gt and gt > 0.9, 'ceiling corr: ' .. rows[1])
  -- NFE per clip = steps x 3 passes (nested multi-CFG)
  assert(rows[2]:find('| teacher, w_ref 1, w_audio 1 | 1 | 3 |', 1, true), rows[2])
  assert(rows[5]:find('| teacher, w_ref 2, w_audio 3 | 2 | 6 |', 1, true), rows[5])
  assert(out:find('targets (teacher, w_ref 1, w_audio 1):', 1, true), out)
  local n = 0
  for _ in io.lines(csv) do n = n + 1 end
  assert_eq(n, 1 + 2 * 5, 'header + (ceiling + 4 settings) x 2 clips')
end)

test('--first picks another range of held-out clips (a tuning set apart from the reported one)', function()
  local csv = dir .. '/first.csv'
  local out, code = run(('--model %q --first 7 --clips 2 --seconds 0.4 --steps 1 --grid 1:1 --csv %q --threads 1')
    :format(model, csv))
  assert_eq(code, 0, out)
  local clips = {}
  for line in io.lines(csv) do
    local c = line:match('^[^,]*,[^,]*,[^,]*,[^,]*,[^,]*,(%d+),')
    if c then clips[#clips + 1] = tonumber(c) end
  end
  assert_eq(table.concat(clips, ' '), '7 8 7 8', 'ceiling then the setting, clips 7 and 8')
  -- a different clip is a different ground truth: the ceiling rows differ from clip 0's
  local out0 = run(('--model %q --clips 1 --seconds 0.4 --steps 1 --grid 1:1 --threads 1'):format(model))
  local gt = function(o) return o:match('| ground truth %(ceiling%)[^\n]*') end
  assert(gt(out) and gt(out0) and gt(out) ~= gt(out0), 'ceiling rows:\n' .. tostring(gt(out)) .. '\n' .. tostring(gt(out0)))
end)

test('--max-minutes stops after a clip, the same command resumes, the CSV equals an uninterrupted run', function()
  local args = ('--model %q --clips 2 --seconds 0.4 --steps 1 --grid 1:1,2:3 --threads 1'):format(model)
  local straight = dir .. '/straight.csv'
  local out, code = run(args .. (' --csv %q'):format(straight))
  assert_eq(code, 0, out)
  local csv = dir .. '/resumed.csv'
  out, code = run(args .. (' --csv %q --max-minutes 0'):format(csv))
  assert_eq(code, 0, out)
  sh.contains(out, 'stopped after', 'the first part')
  assert(not exists(csv), 'no CSV before the run is complete')
  local n = 0
  for _ in io.lines(csv .. '.partial') do n = n + 1 end
  assert_eq(n, 1, 'one (setting, clip) in the journal')
  out, code = run(args .. (' --csv %q'):format(csv))
  assert_eq(code, 0, out)
  sh.contains(out, 'resumed: 1 of 4 (setting, clip) results', 'the second part')
  assert(not exists(csv .. '.partial'), 'the journal is removed once the CSV is written')
  -- equal up to the last printed digit: kernels picked by timing (fd_tune) may round differently per process
  local function lines(path) local t = {} for l in io.lines(path) do t[#t + 1] = l end return t end
  local a, b = lines(csv), lines(straight)
  assert_eq(#a, #b, 'rows in the resumed CSV')
  for i = 1, #a do
    local fa, fb = {}, {}
    for v in (a[i] .. ','):gmatch('([^,]*),') do fa[#fa + 1] = v end
    for v in (b[i] .. ','):gmatch('([^,]*),') do fb[#fb + 1] = v end
    assert_eq(#fa, #fb, 'columns in row ' .. i)
    for j = 1, #fa do
      local x, y = tonumber(fa[j]), tonumber(fb[j])
      if x and y then assert(math.abs(x - y) <= 2e-5, ('row %d col %d: %s vs %s'):format(i, j, fa[j], fb[j]))
      else assert_eq(fa[j], fb[j], ('row %d col %d'):format(i, j)) end
    end
  end
  -- other weights of the same size at the same path do not reuse the journal
  out, code = run(args .. (' --csv %q --max-minutes 0'):format(csv .. '2'))
  assert_eq(code, 0, out)
  local before = sh.slurp(model)
  local cfg = models.config('tiny')
  cfg.seed = 1
  models.save(models.FadaModel(cfg), model, {note = 'random init, for tests'})
  local after = sh.slurp(model)
  assert(#after == #before and after ~= before, 'the same size, other bytes')
  out, code = run(args .. (' --csv %q'):format(csv .. '2'))
  sh.write_file(model, before)
  assert_eq(code, 0, out)
  sh.lacks(out, 'resumed:', 'a journal of other weights')
end)

test('bad flags: a clear message, exit code 2, no CSV', function()
  local csv = dir .. '/bad.csv'
  local cases = {
    {('--model %q --grid 2-3'):format(model), '--grid: "2-3" is not w_ref:w_audio'},
    {('--model %q --steps six'):format(model), "--steps: 'six' is not a number"},
    {('--model %q --clips 0'):format(model), '--clips must be at least 1'},
    {('--model %q --first -1'):format(model), '--first must be >= 0'},
    {'--model /nonexistent.safetensors', "cannot read the model '/nonexistent.safetensors'"},
  }
  for _, c in ipairs(cases) do
    local out, code = run(c[1] .. (' --csv %q'):format(csv))
    assert_eq(code, 2, 'exit code for: ' .. c[1] .. '\n' .. out)
    assert(out:find(c[2], 1, true), ('expected %q in: %s'):format(c[2], out))
    assert(not exists(csv), 'a CSV was left behind for: ' .. c[1])
  end
  local out, code = run(('--model %q --max-minutes 1'):format(model))
  assert_eq(code, 2, out)
  sh.contains(out, '--max-minutes needs --csv')
end)
