-- fada.train.distill: the collapsed-steps target against closed forms, the
-- adaptive loss mixer against its definition, and scripts/distill_student.lua
-- end to end on a tiny teacher (resume == uninterrupted, export, fast sampling).
local fada = require 'fada'
local models = require 'fada.models'
local schedule = require 'fada.diffusion.schedule'
local samplers = require 'fada.diffusion.samplers'
local D = require 'fada.train.distill'

local sh = dofile(debug.getinfo(1, 'S').source:match('^@(.-)[^/]*$') .. 'shell_helpers.lua')

local function scheds()
  local list = {}
  for _, pred in ipairs{'v', 'eps', 'x0'} do
    list[#list + 1] = schedule.new{beta_schedule = 'scaled_linear', zero_terminal_snr = pred ~= 'eps', prediction = pred}
  end
  return list
end

test('ddim_target: one DDIM step with it lands on x_next (every parameterisation, the final step too)', function()
  local g = fada.Generator(3)
  for _, sched in ipairs(scheds()) do
    for _, pair in ipairs{{999, 832}, {500, 333}, {166, -1}} do
      local t, tn = pair[1], pair[2]
      if not (sched.prediction == 'eps' and t == 999) then
        local xt, xn = fada.randn({2, 3, 4, 4}, g), fada.randn({2, 3, 4, 4}, g)
        local target = D.ddim_target(sched, xt, t, xn, tn)
        local got = samplers.ddim(function() return target end, xt, sched, {t, tn >= 0 and tn or nil})
        if tn >= 0 then -- ddim over {t, tn} takes two steps; take just the first by hand
          local x0, eps = sched:to_x0_eps(xt, t, target)
          local an = sched:alpha_bar(tn)
          got = x0 * math.sqrt(an) + eps * math.sqrt(1 - an)
        end
        assert_close(got, xn, 2e-4, 2e-4, ('%s prediction, %d -> %d'):format(sched.prediction, t, tn))
      end
    end
  end
end)

test('teacher_target: 1 substep is the guided output; a fixed-x0 teacher gives the same target for any substeps', function()
  local sched = schedule.new{beta_schedule = 'scaled_linear', zero_terminal_snr = true, prediction = 'v'}
  local g = fada.Generator(5)
  local x0 = fada.randn({2, 3, 4, 4}, g)
  local xt = sched:add_noise(x0, fada.randn({2, 3, 4, 4}, g), 666)
  -- a teacher that always predicts the same clean latent: DDIM is exact for it,
  -- so 1 or 5 steps from t reach the same point
  local function guided(x, t)
    local a = sched:alpha_bar(t)
    local eps = (x - x0 * math.sqrt(a)) * (1 / math.sqrt(1 - a))
    return sched:target(x0, eps, t)
  end
  local one = D.teacher_target(guided, sched, xt, 666, 499, 1)
  assert_close(one, guided(xt, 666), 0, 0, 'substeps = 1')
  for _, m in ipairs{2, 5} do
    assert_close(D.teacher_target(guided, sched, xt, 666, 499, m), one, 1e-4, 1e-4, m .. ' substeps')
  end
  -- and a teacher whose x0 depends on x does not: substeps matter
  local function curved(x, t) return x * 0.5 end
  local a = D.teacher_target(curved, sched, xt, 666, 499, 1)
  local b = D.teacher_target(curved, sched, xt, 666, 499, 4)
  assert((a - b):abs():max():item() > 1e-3, 'a curved teacher gives a different multi-step target')
  assert_eq(table.concat(D.substep_times(666, 499, 4), ','), '666,624,583,541')
  assert_eq(table.concat(D.substep_times(166, -1, 2), ','), '166,83')
end)

test('LossMixer: each term divided by its running mean, scaled back to the mixed mean', function()
  local mx = D.LossMixer{share = 0.25, decay = 0.5}
  local d, g = fada.tensor{4.0}, fada.tensor{1.0}
  local loss, w = mx:mix(d, g)           -- first call: the means are the values
  local scale = 0.75 * 4 + 0.25 * 1
  assert_close(w.distill, scale * 0.75 / 4, 1e-12)
  assert_close(w.gt, scale * 0.25 / 1, 1e-12)
  assert_close(loss:item(), scale, 1e-6)  -- each term contributes its share of the scale
  local _, w2 = mx:mix(fada.tensor{2.0}, fada.tensor{3.0})   -- means 3 and 2 now
  local scale2 = 0.75 * 3 + 0.25 * 2
  assert_close(w2.distill, scale2 * 0.75 / 3, 1e-12)
  assert_close(w2.gt, scale2 * 0.25 / 2, 1e-12)
  -- no ground truth (moderate data): the teacher term alone, unweighted
  local l3, w3 = mx:mix(fada.tensor{7.0}, nil)
  assert_eq(w3.gt, 0)
  assert_close(l3:item(), 7, 0)
  -- the state round-trips through strings
  local mx2 = D.LossMixer{share = 0.25, decay = 0.5}
  mx2:load_state(mx:state())
  assert_close(mx2.mean.distill, mx.mean.distill, 0)
  assert_close(mx2.mean.gt, mx.mean.gt, 0)
  checkerror(function() D.LossMixer{share = 2} end, 'share must be in [0, 1]')
  -- the fixed mixer (the ablation): the plain weighted sum, whatever the running means
  local fx = D.LossMixer{share = 0.25, decay = 0.5, fixed = true}
  for _, v in ipairs{{4.0, 1.0}, {2.0, 3.0}} do
    local l, wf = fx:mix(fada.tensor{v[1]}, fada.tensor{v[2]})
    assert_close(l:item(), 0.75 * v[1] + 0.25 * v[2], 1e-6)
    assert_eq(wf.distill, 0.75)
  end
end)

-- ---- the script, end to end on the tiny config --------------------------------------------------

local dir = sh.temp_dir()
local data = dir .. '/data'
local made, made_code = sh.script('make_dataset', ('--clips 3 --size 64 --out %q --jobs 1'):format(data))
assert(made_code == 0, made)
local mod = dir .. '/moderate'
made, made_code = sh.script('make_dataset', ('--clips 3 --size 64 --tier moderate --out %q --jobs 1'):format(mod))
assert(made_code == 0, made)
local teacher_path = dir .. '/teacher.safetensors'
models.save(models.FadaModel(models.config('tiny')), teacher_path)
local common = ('--teacher %q --data %q --data-moderate %q --batch 2 --ckpt-every 2 --log-every 1 --threads 1 ' ..
                '--no-prefetch --substeps 2 --student-steps 3'):format(teacher_path, data, mod)

test('distill_student: stopped and resumed == uninterrupted; both data tiers; loss.csv per step', function()
  local a, b = sh.resume_rows('distill_student', common, dir, 5, 3)
  local moderate_steps = 0
  for s = 1, 5 do
    assert_eq(b[s], a[s], 'step ' .. s)
    if a[s]:match(',$') then moderate_steps = moderate_steps + 1 end -- no ground-truth term
  end
  assert(moderate_steps > 0 and moderate_steps < 5, 'both tiers drawn: ' .. moderate_steps .. ' of 5 moderate')
end)

test('--stop-at cuts a run on the schedule of --steps: its rows are the whole run\'s first rows; a rerun goes on', function()
  local cut = dir .. '/cut'
  local out, code = sh.script('distill_student', common .. (' --out %q --steps 5 --stop-at 3'):format(cut))
  assert_eq(code, 0, out)
  local a, na = sh.csv_rows(cut .. '/loss.csv', 7)    -- loss .. lr
  local whole = sh.csv_rows(dir .. '/whole/loss.csv', 7)
  assert_eq(na, 3, 'rows of the cut run')
  for s = 1, 3 do assert_eq(a[s], whole[s], 'step ' .. s) end
  out, code = sh.script('distill_student', common .. (' --out %q --steps 5'):format(cut))
  assert_eq(code, 0, out)
  local b, nb = sh.csv_rows(cut .. '/loss.csv', 7)
  assert_eq(nb, 5, 'rows after going on')
  for s = 1, 5 do assert_eq(b[s], whole[s], 'step ' .. s) end
end)

test('--teacher-dtype bf16 stays close to f32; --scales-per clip runs; bad values refused', function()
  local b16 = dir .. '/bf16'
  local out, code = sh.script('distill_student', common .. (' --out %q --steps 2 --teacher-dtype bf16'):format(b16))
  assert_eq(code, 0, out)
  local rows = sh.csv_rows(b16 .. '/loss.csv', 7)
  local whole = sh.csv_rows(dir .. '/whole/loss.csv', 7)
  -- step 1: same batch, scales and noise; only the teacher's arithmetic differs
  local d16, d32 = tonumber(rows[1]:match('^[^,]*,([^,]*)')), tonumber(whole[1]:match('^[^,]*,([^,]*)'))
  assert(math.abs(d16 - d32) <= 0.05 * d32, ('distillation loss at step 1: bf16 %g vs f32 %g'):format(d16, d32))
  print(('  step-1 distillation loss: bf16 teacher %.6f, f32 %.6f (%s)'):format(d16, d32,
    fada.cpu().avx512bf16 and 'bf16 kernels' or 'no AVX512-BF16: f32 fallback'))
  -- scales drawn per clip: runs, and differs from the per-step draw from step 1 on
  local pc = dir .. '/perclip'
  out, code = sh.script('distill_student', common .. (' --out %q --steps 1 --scales-per clip'):format(pc))
  assert_eq(code, 0, out)
  local r1 = sh.csv_rows(pc .. '/loss.csv', 7)
  assert(r1[1] and r1[1] ~= whole[1], 'per-clip scales give another first step: ' .. tostring(r1[1]))
  out, code = sh.script('distill_student', common .. (' --out %q --scales-per batch'):format(dir .. '/z'))
  assert_eq(code, 2, out)
  sh.contains(out, "--scales-per must be step or clip, got 'batch'", 'bad --scales-per')
  out, code = sh.script('distill_student', common .. (' --out %q --teacher-dtype f16'):format(dir .. '/z'))
  assert_eq(code, 2, out)
  sh.contains(out, "--teacher-dtype must be f32 or bf16, got 'f16'", 'bad dtype')
end)

test('--export writes a student that sample.lua --mode fast runs at 1 NFE per step', function()
  local path = dir .. '/student.safetensors'
  local out, code = sh.script('distill_student', common .. (' --out %q --export %q'):format(dir .. '/whole', path))
  assert_eq(code, 0, out)
  local m = models.load(path)
  assert(m.config.student, 'the export is a student')
  assert_eq(m.metadata.trained_steps, '5')
  assert_eq(m.metadata.teacher_digest, models.digest(teacher_path), 'the export names the bytes of its teacher')
  local wav = dir .. '/speech.wav'
  fada.audio.save(wav, fada.randn(8000, fada.Generator(1)) * 0.1, 16000) -- 0.5 s
  out, code = sh.script('sample', ('--no-progress --model %q --mode fast --steps 2 --audio %q --out %q --threads 1'):format(
    path, wav, dir .. '/fast.mp4'))
  assert_eq(code, 0, out)
  assert(out:find('mode fast, ', 1, true) and out:find(', 2 steps x 1 NFE per step', 1, true), out)
end)

test('guidance_response: a fresh student ignores the scales (ratio 0), a distilled one moves; bad flags', function()
  local fresh = dir .. '/fresh_student.safetensors'
  models.save(models.student_from(models.load(teacher_path), {token_dim = 8}), fresh)
  local args = ('--teacher %q --data %q --clips 1 --steps 3 --threads 1'):format(teacher_path, data)
  local out, code = sh.script('guidance_response', args .. (' --student %q'):format(fresh))
  assert_eq(code, 0, out)
  local rows = 0
  for t, tr, sr in out:gmatch('\n| (%d+) | ([%d.e-]+) | ([%d.e-]+) | ') do
    rows = rows + 1
    -- (zero control layers: the same output up to the kernels' rounding)
    assert(tonumber(tr) > 0.01 and tonumber(sr) < 1e-5, ('t = %s: teacher %s, fresh student %s'):format(t, tr, sr))
  end
  assert_eq(rows, 3, 'one row per grid step:\n' .. out)
  sh.contains(out, 'mean ratio over the 3 timesteps: w_ref 0.000, w_audio 0.000', 'fresh student')
  -- five raw distillation steps already move the output with the scales
  local raw = dir .. '/raw_student.safetensors'
  out, code = sh.script('distill_student', common .. (' --out %q --export %q --export-raw'):format(dir .. '/whole', raw))
  assert_eq(code, 0, out)
  out, code = sh.script('guidance_response', args .. (' --student %q'):format(raw))
  assert_eq(code, 0, out)
  local wr, wa = out:match('w_ref ([%d.]+), w_audio ([%d.]+)')
  assert(tonumber(wr) > 0 and tonumber(wa) > 0, 'a trained student moves with the scales:\n' .. out)
  out, code = sh.script('guidance_response', args .. (' --student %q --w-ref 3,1'):format(fresh))
  assert_eq(code, 2, out)
  sh.contains(out, '--w-ref must be "lo,hi" with lo < hi', 'bad pair')
  out, code = sh.script('guidance_response', args .. (' --student %q'):format(teacher_path))
  assert_eq(code, 2, out)
  sh.contains(out, '--student needs a distilled student', 'a teacher as student')
end)

test('--init + --balanced-share: a second stage from a student trains its branches and leaves token mode to its share',
  function()
  local base = dir .. '/stage1.safetensors'
  local out, code = sh.script('distill_student', common .. (' --out %q --export %q'):format(dir .. '/whole', base))
  assert_eq(code, 0, out)
  -- branch tokens start as copies of the CFG tokens: the new student equals the old one in both modes
  local s1 = models.load(base)
  local s2 = models.student_from(s1, {branch_tokens = true})
  assert(s2.config.student.branch_tokens and s2.config.student.time_control == s1.config.student.time_control)
  assert_close(s2.cfg_branch_tokens, s1.cfg_tokens, 0)
  local g = fada.Generator(3)
  local cfg = s1.config
  local B, Fr, Cl, S = 1, cfg.clip_frames, cfg.latent.channels, cfg.image_size // 2
  local ref_lat, motion_lat = fada.randn(B, Cl, S, S, g), fada.randn(B, cfg.motion_frames, Cl, S, S, g)
  local win = fada.randn(B * Fr, cfg.audio.n_mels, 20, g)
  local x = fada.randn(3 * B * Fr, Cl, S, S, g)
  local function outputs(m)
    local ctx, atok = m:reference(ref_lat, motion_lat), m:audio_tokens(win)
    return m:denoise(x, 500, {'base', 'ref', 'audio'}, nil, ctx, atok),
           m:denoise(x:narrow(1, 1, B * Fr), 500, {'tokens'}, {w_ref = 2, w_audio = 3}, ctx, atok)
  end
  local b1, f1 = outputs(s1)
  local b2, f2 = outputs(s2:eval())
  -- (1e-5, not exact: two calls may run other kernel variants, picked by timing; seen 1.1e-6
  -- under ASan; a wrong token would move the output by ~1e-2)
  assert_close(b2, b1, 1e-5, 1e-5, 'Balanced before the second stage')
  assert_close(f2, f1, 1e-5, 1e-5, 'Fast before the second stage')
  -- the stage: every step trains the branches (share 1), so the branch tokens move
  -- and the CFG tokens, used by token mode only, keep their values
  local st = dir .. '/stage2'
  out, code = sh.script('distill_student', common .. (' --out %q --init %q --balanced-share 1 --steps 3'):format(st, base))
  assert_eq(code, 0, out)
  local two = dir .. '/stage2.safetensors'
  out, code = sh.script('distill_student', common .. (' --out %q --export %q --export-raw'):format(st, two))
  assert_eq(code, 0, out)
  local s3 = models.load(two)
  assert(s3.config.student.branch_tokens, 'the stage-2 student keeps its branch tokens')
  assert_close(s3.cfg_tokens, s1.cfg_tokens, 0, 0, 'token-mode tokens untouched by Balanced steps')
  local moved = (s3.cfg_branch_tokens - s1.cfg_tokens):abs():max():item()
  assert(moved > 0, 'the branch tokens train')
  -- a rerun resumes it, the teacher checked as before
  out, code = sh.script('distill_student', common .. (' --out %q --init %q --balanced-share 1 --steps 4'):format(st, base))
  assert_eq(code, 0, out)
  sh.contains(out, 'resuming', 'a rerun resumes the second stage')
  -- bad values and mismatches are refused with the reason
  out, code = sh.script('distill_student', common .. (' --out %q --balanced-share 1.5'):format(dir .. '/z'))
  assert_eq(code, 2, out)
  sh.contains(out, '--balanced-share must be in [0, 1], got 1.5', 'bad share')
  out, code = sh.script('distill_student', common .. (' --out %q --init %q'):format(dir .. '/z', teacher_path))
  assert_eq(code, 2, out)
  sh.contains(out, 'is a teacher; give a student', 'a teacher as --init')
  out, code = sh.script('distill_student', common .. (' --out %q --init %q'):format(dir .. '/z', dir .. '/none.safetensors'))
  assert_eq(code, 2, out)
  sh.contains(out, '--init: ', 'a missing --init')
  out, code = sh.script('distill_student', common .. (' --out %q --balanced-share 0.5'):format(dir .. '/whole'))
  assert_eq(code, 2, out)
  sh.contains(out, 'without branch tokens', 'a token-only run cannot switch to Balanced steps')
end)

test('--guide: the target blends the guide in by its share (closed forms at step 1); kept on resume; bad guides refused',
  function()
  local base = dir .. '/stage1.safetensors' -- exported by the --init test above
  -- step 1's teacher-matching loss (column 2 of loss.csv) with a fixed mixer and no ground truth
  local flags = ' --gt-share 0 --mixer fixed --p-moderate 0 --steps 1'
  local function distill_loss(name, extra)
    local out, code = sh.script('distill_student', common .. (' --out %q --init %q'):format(dir .. '/' .. name, base)
                                .. flags .. extra)
    assert_eq(code, 0, out)
    return tonumber(sh.csv_rows(dir .. '/' .. name .. '/loss.csv', 2)[1]:match(',([^,]+)$'))
  end
  local plain = distill_loss('g0', '')
  assert(plain > 1e-4, 'the student differs from the teacher target: ' .. plain)
  -- the guide is the student itself: share 1 leaves nothing to match, share 0.5 a quarter of it
  -- (‖s − (T + s)/2‖² = ‖s − T‖²/4)
  assert_close(distill_loss('g1', (' --guide %q --guide-share 1'):format(base)), 0, 1e-9, 1e-9, 'share 1')
  assert_close(distill_loss('g5', (' --guide %q --guide-share 0.5'):format(base)), plain / 4, 1e-4, 1e-9, 'share 0.5')
  -- a rerun keeps the guide and its share without the flags
  local out, code = sh.script('distill_student', common .. (' --out %q --init %q'):format(dir .. '/g5', base)
                              .. ' --gt-share 0 --mixer fixed --p-moderate 0 --steps 2')
  assert_eq(code, 0, out)
  sh.contains(out, 'resuming', 'a rerun resumes')
  local info = select(3, fada.safetensors.header(dir .. '/g5/checkpoint.safetensors')).checkpoint.info
  assert_eq(info.guide, base)
  assert_eq(tonumber(info.guide_share), 0.5)
  -- ... and refuses another guide, or a guide for a run that started without one
  out, code = sh.script('distill_student', common .. (' --out %q --guide %q'):format(dir .. '/g5', teacher_path))
  assert_eq(code, 2, out)
  sh.contains(out, "was distilled with the guide '" .. base .. "'", 'another guide on resume')
  out, code = sh.script('distill_student', common .. (' --out %q --guide %q'):format(dir .. '/g0', base))
  assert_eq(code, 2, out)
  sh.contains(out, 'was distilled without a guide; resume it without --guide', 'a guide added on resume')
  -- bad guides and shares
  out, code = sh.script('distill_student', common .. (' --out %q --guide %q'):format(dir .. '/z', teacher_path))
  assert_eq(code, 2, out)
  sh.contains(out, "--guide: '" .. teacher_path .. "' is a teacher", 'a teacher as --guide')
  out, code = sh.script('distill_student', common .. (' --out %q --guide %q'):format(dir .. '/z', dir .. '/none.st'))
  assert_eq(code, 2, out)
  sh.contains(out, '--guide: no student at', 'a missing --guide')
  out, code = sh.script('distill_student', common .. (' --out %q --guide %q --guide-share 1.5'):format(dir .. '/z', base))
  assert_eq(code, 2, out)
  sh.contains(out, '--guide-share must be in [0, 1], got 1.5', 'a bad share')
end)

test('--gt-branch conditional: the ground-truth term trains the fully conditioned branch alone', function()
  local base = dir .. '/stage1.safetensors' -- exported by the --init test above
  local s1 = models.load(base)
  -- one step on the ground-truth term alone (fixed mixer, share 1), only the branch tokens
  -- training: the rows of the branches the loss reads move, the others stay bit for bit
  local function moved_rows(name, branch)
    local st = dir .. '/' .. name
    local out, code = sh.script('distill_student', common .. (' --out %q --init %q --balanced-share 1 --gt-share 1 '
      .. '--mixer fixed --p-moderate 0 --steps 1 --warmup 1 --weight-decay 0 --train-only cfg_branch_tokens '
      .. '--gt-branch %s'):format(st, base, branch))
    assert_eq(code, 0, out)
    local path = st .. '.safetensors'
    out, code = sh.script('distill_student', common .. (' --out %q --export %q --export-raw'):format(st, path))
    assert_eq(code, 0, out)
    local d = models.load(path).cfg_branch_tokens - s1.cfg_tokens                -- [3, token_dim]: base, ref, audio
    local moved = {}
    for i = 1, 3 do moved[i] = d:narrow(1, i, 1):abs():max():item() > 0 and 'moved' or 'kept' end
    return table.concat(moved, ' ')
  end
  assert_eq(moved_rows('gb-c', 'conditional'), 'kept kept moved', 'conditional')
  assert_eq(moved_rows('gb-m', 'mix'), 'moved moved moved', 'the guided mix')
  local out, code = sh.script('distill_student', common .. (' --out %q --gt-branch audio'):format(dir .. '/z'))
  assert_eq(code, 2, out)
  sh.contains(out, "--gt-branch must be 'mix' or 'conditional', got 'audio'", 'a bad branch')
end)

test('--gt-max-t: the ground-truth term only on grid steps at or below it', function()
  -- the tiny run's grid is {999, 666, 333}; the gt column (4) is empty on steps without the term
  local function gt_column(name, extra)
    local out, code = sh.script('distill_student', common .. (' --out %q --p-moderate 0 --steps 6'):format(dir .. '/' .. name)
                                .. extra)
    assert_eq(code, 0, out)
    local rows = sh.csv_rows(dir .. '/' .. name .. '/loss.csv', 3)
    local gt = {}
    for s = 1, 6 do gt[s] = rows[s]:match(',([^,]*)$') end
    return gt, rows
  end
  local all, all_rows = gt_column('gm-all', '')
  local none = gt_column('gm-100', ' --gt-max-t 100')
  local same, same_rows = gt_column('gm-999', ' --gt-max-t 999')
  local some = gt_column('gm-700', ' --gt-max-t 700')
  local with, without = 0, 0
  for s = 1, 6 do
    assert(all[s] ~= '' and none[s] == '', ('step %d: the term on every step by default, on none below the grid'):format(s))
    assert_eq(same_rows[s], all_rows[s], ('step %d: --gt-max-t 999 takes every step'):format(s))
    if some[s] == '' then without = without + 1 else with = with + 1 end
  end
  -- (step 1 starts from the same weights: where the term is on, it is the default run's)
  assert(some[1] == '' or some[1] == all[1], ('step 1: %s against %s'):format(some[1], all[1]))
  assert(with > 0 and without > 0, ('--gt-max-t 700 keeps the term on some steps: %d with, %d without'):format(with,
    without))
  local out, code = sh.script('distill_student', common .. (' --out %q --gt-max-t -1'):format(dir .. '/z'))
  assert_eq(code, 2, out)
  sh.contains(out, '--gt-max-t must be at least 0, got -1', 'a negative --gt-max-t')
end)

test('--train-only cfg_branch_tokens: only the branch tokens move, token mode stays bit for bit; bad patterns refused',
  function()
  local base = dir .. '/stage1.safetensors' -- the previous test's export
  local st = dir .. '/tokens-only'
  local flags = (' --init %q --balanced-share 1 --train-only cfg_branch_tokens --lr 1e-2 --warmup 1 --ema 0.5'):format(base)
  local out, code = sh.script('distill_student', common .. flags .. (' --out %q --steps 2'):format(st))
  assert_eq(code, 0, out)
  local exported = dir .. '/tokens-only.safetensors'
  out, code = sh.script('distill_student', common .. (' --out %q --export %q'):format(st, exported))
  assert_eq(code, 0, out)
  local s1, s2 = models.load(base), models.load(exported)
  local before = {}
  for _, p in ipairs(s1:named_parameters()) do before[p.name] = p.tensor end
  local n = 0
  for _, p in ipairs(s2:named_parameters()) do
    if p.name ~= 'cfg_branch_tokens' then
      assert_close(p.tensor, before[p.name], 0, 0, p.name .. ' frozen')
      n = n + 1
    end
  end
  assert(n > 50, 'every other parameter compared: ' .. n)
  assert((s2.cfg_branch_tokens - s1.cfg_tokens):abs():max():item() > 1e-3, 'the branch tokens train')
  -- a resume keeps the set; another set on the same run, a pattern that matches nothing,
  -- and branch tokens alone with token-mode steps are refused
  out, code = sh.script('distill_student', common .. flags .. (' --out %q --steps 3'):format(st))
  assert_eq(code, 0, out)
  sh.contains(out, 'resuming', 'resumes with the same --train-only')
  out, code = sh.script('distill_student', common .. (' --out %q --init %q --balanced-share 1 --train-only %s --steps 4')
    :format(st, base, 'cfg_.*'))
  assert_eq(code, 2, out)
  sh.contains(out, "trains 'cfg_branch_tokens'; resume it with the same --train-only", 'another set on a run')
  for _, c in ipairs{
    {'1', 'no_such', "--train-only: 'no_such' matches no parameter"},
    {'1', 'cfg_[x', "--train-only: 'cfg_[x' is not a Lua pattern"},
    {'0.5', 'cfg_branch_tokens', 'token-mode steps do not use: give --balanced-share 1 (got 0.5)'},
  } do
    out, code = sh.script('distill_student', common .. (' --out %q --init %q --balanced-share %s --train-only %q')
      :format(dir .. '/z', base, c[1], c[2]))
    assert_eq(code, 2, out)
    sh.contains(out, c[3], c[2])
  end
end)

test('a teacher file replaced under a run stops its resume and leaves the checkpoint as it was', function()
  local swapped = dir .. '/swapped-teacher.safetensors'
  local m = models.load(teacher_path)
  models.save(m, swapped)
  local args = ('--teacher %q --data %q --data-moderate none --batch 2 --threads 1 --no-prefetch --substeps 1 '
    .. '--student-steps 2 --out %q'):format(swapped, data, dir .. '/swap')
  local out, code = sh.script('distill_student', args .. ' --steps 1')
  assert_eq(code, 0, out)
  local ckpt = dir .. '/swap/checkpoint.safetensors'
  local before = sh.slurp(ckpt)
  -- a new export at the same path, of the same size: only its last tensor differs
  local ps = m:named_parameters()
  local last = ps[#ps].tensor
  last:sub_(last * 0 + 1)
  models.save(m, swapped)
  assert_eq(#sh.slurp(swapped), #sh.slurp(teacher_path), 'the same size')
  out, code = sh.script('distill_student', args .. ' --steps 2')
  assert_eq(code, 2, out)
  assert(out:find('was distilled from other weights than', 1, true), out)
  assert(sh.slurp(ckpt) == before, 'the checkpoint is untouched')
end)

test('bad input: a missing teacher, a student as teacher, bad ranges', function()
  local out, code = sh.script('distill_student', ('--teacher %q --out %q'):format(dir .. '/nope.safetensors', dir .. '/x'))
  assert_eq(code, 2, out)
  assert(out:find('no teacher at', 1, true), out)
  out, code = sh.script('distill_student', ('--teacher %q --out %q'):format(dir .. '/student.safetensors', dir .. '/y'))
  assert_eq(code, 2, out)
  assert(out:find('is a student', 1, true), out)
  out, code = sh.script('distill_student', common .. (' --out %q --w-audio 5,1'):format(dir .. '/z'))
  assert_eq(code, 2, out)
  assert(out:find('--w-audio must be', 1, true), out)
  out, code = sh.script('distill_student', common .. (' --out %q --mixer sum'):format(dir .. '/z'))
  assert_eq(code, 2, out)
  assert(out:find("--mixer must be 'adaptive' or 'fixed', got 'sum'", 1, true), out)
  out, code = sh.script('distill_student', '--help')
  assert_eq(code, 0, out)
  assert(out:find('--substeps', 1, true), out)
end)

test('cleanup', function() os.execute(('rm -rf %q'):format(dir)) end)
