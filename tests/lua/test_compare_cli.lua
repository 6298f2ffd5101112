-- scripts/compare.lua and scripts/cfg_control.lua end to end on tiny models.
-- A fresh student (zero control layers) is the teacher's fully conditioned
-- pass whatever the scales, which gives closed-form expectations: Fast equals
-- the teacher's unguided row, Balanced the cut-down teacher's, and the token
-- mode's curves are flat while the teacher's move. Plus resume and bad flags.
local models = require 'fada.models'

local sh = dofile(debug.getinfo(1, 'S').source:match('^@(.-)[^/]*$') .. 'shell_helpers.lua')

local dir = sh.temp_dir()
local teacher_path, student_path = dir .. '/teacher.safetensors', dir .. '/student.safetensors'
local teacher = models.FadaModel(models.config('tiny'))
models.save(teacher, teacher_path)
models.save(models.student_from(teacher:eval(), {token_dim = 8}), student_path)

local read_csv = require('fada.sweep').read_csv -- CSV -> rows keyed by the header's names

local function pick(rows, f)
  local out = {}
  for _, r in ipairs(rows) do if f(r) then out[#out + 1] = r end end
  return out
end

local QUALITY = {'corr', 'offset', 'dist', 'identity', 'flicker', 'sharpness'}
local function same_quality(a, b, what, tol)
  assert_eq(#a, #b, what .. ': row counts')
  for i = 1, #a do
    for _, k in ipairs(QUALITY) do
      assert(math.abs(a[i][k] - b[i][k]) <= (tol or 1e-4), ('%s, clip %s, %s: %s vs %s'):format(what, a[i].clip, k,
        a[i][k], b[i][k]))
    end
  end
end

local common = ('--teacher %q --teacher-steps 3 --steps 2 --short-steps 1 --clips 2 --moderate-clips 1 --seconds 0.4 '
                .. '--timing-reps 2 --timing-frames 4 --threads 1'):format(teacher_path)

test('compare: every row on both tiers; a fresh student is the teacher without guidance', function()
  local out_dir = dir .. '/cmp'
  local out, code = sh.script('compare', common .. (' --student %q --ablations same=%q --out %q'):format(student_path,
    student_path, out_dir))
  assert_eq(code, 0, out)
  for _, label in ipairs{'ground truth (ceiling)', 'teacher 3 × 3 (reference)', 'teacher 2 × 1, no guidance',
                         'FADA-Balanced 2 × 3', 'FADA-Fast 2 × 1', 'Fast, ablation: same', 'moderate-quality',
                         'Checks on these clips', 'speed-up'} do
    sh.contains(out, label, 'the report')
  end
  local rows = read_csv(out_dir .. '/compare.csv')
  -- (2 + 1 clips) x (ground truth + 4 teacher rows + Balanced + Fast + 1 ablation)
  assert_eq(#rows, 3 * 8, 'CSV rows')
  for _, tier in ipairs{'hq', 'moderate'} do
    local function of(id) return pick(rows, function(r) return r.tier == tier and r.row == id end) end
    same_quality(of('fast'), of('teacher_1pass'), tier .. ' Fast vs teacher 1 pass')
    same_quality(of('balanced'), of('teacher_cut'), tier .. ' Balanced vs teacher cut')
    same_quality(of('ablation_same'), of('fast'), tier .. ' ablation vs Fast')
    assert_eq(of('fast')[1].nfe_per_frame, 2)
    assert_eq(of('teacher')[1].nfe_per_frame, 9)
    assert_eq(of('teacher_short')[1].nfe_per_frame, 3)
    assert_eq(of('teacher')[1].speedup, 1)
    -- the calibration line counts, from the CSV, the clips where the reference beats the cut teacher on both
    local ref, cut, wins = of('teacher'), of('teacher_cut'), 0
    for i = 1, #ref do
      if ref[i].corr > cut[i].corr and ref[i].identity < cut[i].identity then wins = wins + 1 end
    end
    sh.contains(out, ('calibration: the reference itself (NFE 9) beats teacher_cut (NFE 6) on both in %d of %d clips')
      :format(wins, #ref), tier .. ' calibration')
  end
  -- the ground truth of the moderate tier is another picture than the hq one (darker)
  local gt_hq = pick(rows, function(r) return r.tier == 'hq' and r.row == 'gt' end)[1]
  local gt_mod = pick(rows, function(r) return r.tier == 'moderate' and r.row == 'gt' end)[1]
  assert(gt_mod.identity ~= gt_hq.identity, 'moderate and hq ground truths differ')
  assert(sh.exists(out_dir .. '/compare.md'), 'compare.md')
  assert(sh.exists(out_dir .. '/compare.png') or out:find('no PNG', 1, true), 'compare.png or a reason')
  -- the journal stays: the same command again reads every result and samples nothing
  out, code = sh.script('compare', common .. (' --student %q --ablations same=%q --out %q --timing-reps 0'):format(
    student_path, student_path, out_dir))
  assert_eq(code, 0, out)
  sh.contains(out, 'resumed: 21 results', 'all of them reused')
  sh.contains(out, 'not timed', 'no timing')
  local again = read_csv(out_dir .. '/compare.csv')
  same_quality(again, rows, 'rerun from the journal', 0)
  assert_eq(again[1].s_per_frame, '', 'no seconds when not timed')
end)

test('compare: --balanced takes the Balanced row from its own weights', function()
  -- a student whose control layers are not zero: its Balanced and Fast leave the teacher's rows
  local moved = models.student_from(teacher, {token_dim = 8})
  for _, p in ipairs(moved:named_parameters()) do
    if p.name:match('^unet%.cfg_ctrl%.%d+%.bias$') then p.tensor:copy(require('fada').full(p.tensor:size(), 0.05)) end
  end
  local moved_path = dir .. '/moved.safetensors'
  models.save(moved, moved_path)
  local out_dir = dir .. '/cmp-bal'
  local out, code = sh.script('compare', common .. (' --student %q --balanced %q --out %q --timing-reps 0'):format(
    moved_path, student_path, out_dir))
  assert_eq(code, 0, out)
  local rows = read_csv(out_dir .. '/compare.csv')
  local function of(id) return pick(rows, function(r) return r.tier == 'hq' and r.row == id end) end
  -- Balanced: the fresh student's, i.e. the cut teacher's; Fast: the moved student's own
  same_quality(of('balanced'), of('teacher_cut'), 'Balanced from --balanced')
  assert(math.abs(of('fast')[1].identity - of('teacher_1pass')[1].identity) > 1e-4, 'Fast from --student')
  out, code = sh.script('compare', common .. (' --student %q --balanced %q --out %q'):format(moved_path,
    teacher_path, dir .. '/bad-bal'))
  assert_eq(code, 2, out)
  sh.contains(out, 'is a teacher; --balanced needs a distilled student', 'a teacher as --balanced')
end)

test('compare: --max-minutes stops after one result; the same command finishes with the same numbers', function()
  local args = common .. ' --student none --moderate-clips 0'
  local straight = dir .. '/straight'
  local out, code = sh.script('compare', args .. (' --out %q'):format(straight))
  assert_eq(code, 0, out)
  local resumed = dir .. '/resumed'
  out, code = sh.script('compare', args .. (' --out %q --max-minutes 0'):format(resumed))
  assert_eq(code, 0, out)
  sh.contains(out, 'stopped after', 'the first part')
  sh.lacks(out, '[##############################]', 'a bar stopped early is not drawn full')
  assert(not sh.exists(resumed .. '/compare.csv'), 'no CSV before the end')
  out, code = sh.script('compare', args .. (' --out %q'):format(resumed))
  assert_eq(code, 0, out)
  sh.contains(out, 'resumed: 1 results', 'the second part reads the first result')
  -- (to the CSV's 6 digits, less one: a process may pick other kernels and round differently)
  same_quality(read_csv(resumed .. '/compare.csv'), read_csv(straight .. '/compare.csv'), 'resumed vs straight', 1e-5)
end)

test('compare: bad flags and files get a clear message, exit 2, no output', function()
  local bad = dir .. '/bad'
  local cases = {
    {(' --student %q'):format(dir .. '/none.safetensors'), 'make student'},
    {(' --student %q'):format(teacher_path), 'is a teacher; --student needs a distilled student'},
    {(' --student none --ablations %q'):format('oops'), '"oops" is not NAME=PATH'},
    {' --student none --steps 0', '--steps must be at least 1'},
    {' --student none --moderate-clips -1', '--moderate-clips must be >= 0'},
    {' --student none --timing-reps -1', '--timing-reps must be >= 0'},
  }
  for _, c in ipairs(cases) do
    local out, code = sh.script('compare', common .. c[1] .. (' --out %q'):format(bad))
    assert_eq(code, 2, out)
    sh.contains(out, c[2], c[1])
    assert(not sh.exists(bad .. '/compare.csv'), 'no CSV after ' .. c[1])
  end
  local out, code = sh.script('compare', '--help')
  assert_eq(code, 0, out)
  sh.contains(out, '--ablations', 'help')
end)

test('cfg_control: the fresh student is flat over the scales, the teacher is not; checks and plots', function()
  local out_dir = dir .. '/cc'
  local sweep_args = '--steps 1 --teacher-steps 1 --w-audio 1,3.5,6 --w-ref 1,2 --clips 2 --seconds 0.4 --threads 1'
  -- the teacher's curves first (as while the student trains), then the whole run reuses them
  local out, code = sh.script('cfg_control', ('--student none --teacher %q %s --out %q'):format(teacher_path,
    sweep_args, out_dir))
  assert_eq(code, 0, out)
  sh.contains(out, 'Checks (teacher)', 'teacher alone')
  out, code = sh.script('cfg_control', ('--student %q --teacher %q %s --out %q'):format(student_path, teacher_path,
    sweep_args, out_dir))
  assert_eq(code, 0, out)
  sh.contains(out, 'resumed: 8 results', "the teacher's 4 points x 2 clips reused")
  sh.contains(out, 'w_audio sweep', 'report')
  sh.contains(out, 'Checks (student, token mode)', 'report')
  sh.contains(out, '- calibration, teacher 1 × 3: lip distance', "the teacher's curve under the same test")
  local rows = read_csv(out_dir .. '/cfg_control.csv')
  assert_eq(#rows, 2 * 4 * 2, '2 models x 4 scale points (the default once) x 2 clips')
  local function at(model, wr, wa)
    return pick(rows, function(r) return r.mode == model and r.w_ref == wr and r.w_audio == wa end)
  end
  same_quality(at('fast', 2, 1), at('fast', 2, 6), 'student w_audio 1 vs 6')
  same_quality(at('fast', 1, 3.5), at('fast', 2, 3.5), 'student w_ref 1 vs 2')
  local t1, t6 = at('teacher', 2, 1), at('teacher', 2, 6)
  assert(math.abs(t1[1].dist - t6[1].dist) > 1e-4, 'the teacher moves with w_audio')
  for _, png in ipairs{'cfg_audio.png', 'cfg_ref.png'} do
    assert(sh.exists(out_dir .. '/' .. png) or out:find('no PNG', 1, true), png)
  end
  out, code = sh.script('cfg_control', ('--student %q --w-audio 1,x --out %q'):format(student_path, out_dir .. 'b'))
  assert_eq(code, 2, out)
  sh.contains(out, "--w-audio: 'x' is not a number", 'bad list')
  out, code = sh.script('cfg_control', ('--student %q --out %q'):format(teacher_path, out_dir .. 'b'))
  assert_eq(code, 2, out)
  sh.contains(out, 'is a teacher; --student needs a distilled student', 'a teacher as student')
end)

test('report: each ablation against the full recipe, paired clip by clip (closed form)', function()
  local report = require 'fada.metrics.report'
  local function rows(corr, id)
    local r = {}
    for i = 1, #corr do r[i] = {corr = corr[i], identity = id[i]} end
    return r
  end
  local res = {ablation_full = rows({0.9, 0.9, 0.9}, {0.05, 0.05, 0.05}),
               ablation_x = rows({0.8, 0.9, 0.7}, {0.06, 0.07, 0.08}), fast = rows({1, 1, 1}, {0, 0, 0})}
  -- diffs: lip-sync -0.1, 0, -0.2 (mean -0.1, sample sd 0.1, se 0.1/sqrt 3); identity +0.01, +0.02, +0.03
  local lines = report.ablation_lines(res)
  assert_eq(#lines, 1, 'one line per ablation other than full; Fast is no ablation')
  assert_eq(lines[1], ('- ablation x − full, paired: lip-sync %+.3f ± %.3f (lower in 2 of 3 clips), identity error '
    .. '%+.4f ± %.4f (higher in 3 of 3)'):format(-0.1, 0.1 / math.sqrt(3), 0.02, 0.01 / math.sqrt(3)))
  assert_eq(#report.ablation_lines({ablation_x = res.ablation_x}), 0, 'nothing without a full row')
end)

test('cleanup', function() os.execute(('rm -rf %q'):format(dir)) end)
