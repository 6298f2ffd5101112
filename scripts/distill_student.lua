-- Distils the FADA student from a trained teacher: mixed-supervised multi-CFG
-- distillation with learnable CFG tokens (docs/distillation.md).
local fada = require 'fada'
local cli = require 'fada.cli'
local F = require 'fada.F'
local A = require 'fada.autograd'
local optim = require 'fada.optim'
local models = require 'fada.models'
local schedule = require 'fada.diffusion.schedule'
local guidance_mix = require 'fada.models.guidance_mix'
local loader = require 'fada.data.loader'
local checkpoint = require 'fada.train.checkpoint'
local run = require 'fada.train.run'
local distill = require 'fada.train.distill'

local opts = cli.parse(arg, run.flags({
  usage = 'usage: fadalua scripts/distill_student.lua --teacher PATH [flags]',
  about = 'Trains the student (the teacher plus three learnable CFG tokens and zero-initialised CFG\n' ..
          'control layers, initialised from the teacher) to take --student-steps DDIM steps of one pass\n' ..
          'each. Per step: random scales (w_ref, w_audio) and a step k of the student grid; the teacher\n' ..
          'runs --substeps multi-CFG DDIM steps from t_k to t_k+1 (3 passes each) and the student, given\n' ..
          'the token mix for the same scales, is trained to get there in one (teacher-matching loss), plus\n' ..
          'a ground-truth loss on high-quality clips; the two are combined by an adaptive mixer. Batches\n' ..
          'from --data-moderate (darker, blurred, occluded, more identities) use the teacher term only.\n' ..
          'Checkpoints, loss.csv and loss.png go to --out; rerunning resumes.',
  {'teacher', 'string', 'weights/fada-teacher.safetensors', 'trained teacher (train_teacher.lua --export)'},
  {'data', 'string', 'data/avatars/hq-train', 'high-quality clips (teacher-matching + ground-truth losses)'},
  {'data_moderate', 'string', 'data/avatars/moderate-train', "moderate-quality clips (teacher-matching only); 'none' to skip"},
  {'p_moderate', 'number', 0.5, 'share of steps drawn from --data-moderate'},
  {'out', 'string', 'runs/student', 'run folder'},
  {'student_steps', 'int', 6, 'the student grid: DDIM steps at sampling time (trailing spacing)'},
  {'substeps', 'int', 2, 'teacher DDIM steps per student step (1 = match the guided output at the same x_t)'},
  {'w_ref', 'numbers', '1,3', 'range of the reference scale drawn per step (lo,hi)'},
  {'w_audio', 'numbers', '1,6', 'range of the audio scale drawn per step (lo,hi)'},
  {'scales_per', 'string', 'step', "draw the scales once per 'step' or per 'clip' of the batch (B pairs a step: the "
                                  .. 'student sees how its output must move with them within one gradient)'},
  {'gt_share', 'number', 0.3, "the ground-truth term's share in the adaptive mixer (0..1)"},
  {'token_dim', 'int', 64, 'width of the CFG tokens'},
  {'time_control', 'bool', true, 'the token mix also joins the time embedding (every ResBlock sees the scales with t)'},
  {'teacher_dtype', 'string', 'f32', "the teacher's compute dtype: f32, or bf16 (AVX512-BF16 hosts; f32 elsewhere)"},
  {'init', 'string', '', 'start from this student instead of the teacher (a second stage: its weights, a fresh '
                         .. 'optimiser and schedule; --token-dim and --time-control come from it)'},
  {'balanced_share', 'number', 0, "share of steps that train FADA-Balanced: the student's 3-branch multi-CFG output "
                                  .. 'at the scales, against the same targets; > 0 gives the branches tokens of their own'},
  {'mixer', 'string', 'adaptive', "how the two losses combine: 'adaptive' (each over its running mean) or 'fixed' "
                                  .. '((1 - share)·distill + share·gt)'},
}, {steps = 1200, lr = 1e-4, warmup = 100, ema = 0.995, ckpt_every = 50}))

local function range(v, name)
  local lo, hi = v[1], v[2]
  if #v ~= 2 or lo > hi or lo < 0 then
    cli.fail(('--%s must be "lo,hi" with 0 <= lo <= hi, got "%s"'):format(name, table.concat(v, ',')))
  end
  return lo, hi
end
local wr_lo, wr_hi = range(opts.w_ref, 'w-ref')
local wa_lo, wa_hi = range(opts.w_audio, 'w-audio')
if opts.substeps < 1 then cli.fail('--substeps must be at least 1') end
if opts.student_steps < 1 or opts.student_steps > 1000 then cli.fail('--student-steps must be in 1..1000') end
if opts.gt_share < 0 or opts.gt_share > 1 then cli.fail('--gt-share must be in [0, 1]') end
if opts.p_moderate < 0 or opts.p_moderate > 1 then cli.fail('--p-moderate must be in [0, 1]') end
if opts.balanced_share < 0 or opts.balanced_share > 1 then
  cli.fail(('--balanced-share must be in [0, 1], got %g'):format(opts.balanced_share))
end
if opts.scales_per ~= 'step' and opts.scales_per ~= 'clip' then
  cli.fail(("--scales-per must be step or clip, got '%s'"):format(opts.scales_per))
end
if opts.teacher_dtype ~= 'f32' and opts.teacher_dtype ~= 'bf16' then
  cli.fail(("--teacher-dtype must be f32 or bf16, got '%s'"):format(opts.teacher_dtype))
end
if opts.mixer ~= 'adaptive' and opts.mixer ~= 'fixed' then
  cli.fail(("--mixer must be 'adaptive' or 'fixed', got '%s'"):format(opts.mixer))
end

run.setup(opts)
local ckpt_path = opts.out .. '/checkpoint.safetensors'
local resuming = run.file_exists(ckpt_path)

-- ---- models --------------------------------------------------------------------------------

local student
local info = {} -- the run's checkpoint info: teacher path and digest, mixer, seconds
if resuming then -- the run's own config (with its teacher path) wins
  local _, _, stored = fada.safetensors.header(ckpt_path)
  info = stored and stored.checkpoint and stored.checkpoint.info or {}
  if not opts.export then opts.teacher = info.teacher or opts.teacher end
  student = models.FadaModel(stored.model)
end
local teacher, teacher_digest
if not opts.export then
  if not run.file_exists(opts.teacher) then
    cli.fail(("no teacher at '%s': train one (scripts/train_teacher.lua, then --export) or give --teacher PATH"):format(
      opts.teacher))
  end
  local ok, m = pcall(models.load, opts.teacher)
  if not ok then cli.fail(m) end
  teacher, teacher_digest = m, models.digest(opts.teacher)
  -- a teacher file replaced under a run (a new export) would change its targets halfway
  if info.teacher_digest and info.teacher_digest ~= teacher_digest then
    cli.fail(("%s was distilled from other weights than '%s' holds now (%s, now %s): restore that teacher, or start "
      .. "a new run with another --out"):format(ckpt_path, opts.teacher, info.teacher_digest, teacher_digest))
  end
  if teacher.config.student then cli.fail(("'%s' is a student; --teacher needs a teacher checkpoint"):format(opts.teacher)) end
  teacher:eval()
  if not student and opts.init ~= '' then
    local ok_i, init = pcall(models.load, opts.init)
    if not ok_i then cli.fail(('--init: %s'):format(init)) end
    if not init.config.student then cli.fail(("--init: '%s' is a teacher; give a student, or leave --init out"):format(opts.init)) end
    if init.metadata and init.metadata.teacher_digest and init.metadata.teacher_digest ~= teacher_digest then
      cli.fail(("--init: '%s' was distilled from another teacher (%s) than '%s' (%s)"):format(opts.init,
        init.metadata.teacher_digest, opts.teacher, teacher_digest))
    end
    student = models.student_from(init, {branch_tokens = opts.balanced_share > 0 or nil})
    info.init = opts.init
  end
  student = student or models.student_from(teacher, {token_dim = opts.token_dim, time_control = opts.time_control,
                                                     branch_tokens = opts.balanced_share > 0 or nil})
end
if opts.balanced_share > 0 and not student.config.student.branch_tokens then
  cli.fail(('--balanced-share %g: %s holds a student without branch tokens (started with --balanced-share 0); '
    .. 'start a new run with another --out'):format(opts.balanced_share, ckpt_path))
end
student:train()
local cfg = student.config
local params = student:named_parameters()
local opt = optim.AdamW(params, {lr = opts.lr, weight_decay = opts.weight_decay})
local ema = optim.EMA(params, opts.ema)
local lr_at = optim.warmup_cosine(opts.lr, opts.warmup, opts.steps, 0.1)
local noise_gen = fada.Generator(opts.seed * 1000 + 11)
local mixer = distill.LossMixer{share = opts.gt_share, fixed = opts.mixer == 'fixed'}
local sched = schedule.for_model(cfg)
local grid = sched:timesteps(opts.student_steps, 'trailing')
local Fr, Mf, S = cfg.clip_frames, cfg.motion_frames, cfg.image_size

-- ---- data ------------------------------------------------------------------------------------

local function open_data(dir, seed)
  return loader.open(dir, {frames = Fr, motion = Mf, batch = opts.batch, seed = seed, size = S,
                           audio = run.audio_windows(student), sample_rate = cfg.audio.sample_rate,
                           prefetch = opts.prefetch})
end
local use_moderate = opts.data_moderate ~= 'none' and opts.p_moderate > 0
local hq, moderate
if not opts.export then
  hq = open_data(opts.data, opts.seed)
  if use_moderate then moderate = open_data(opts.data_moderate, opts.seed + 1) end
end

local step, seconds_before = 0, 0
if resuming then
  local gens = {noise = noise_gen}
  if hq then gens.data = hq.generator end
  if moderate then gens.data_moderate = moderate.generator end
  local st = checkpoint.load(ckpt_path, {model = student, optimizer = opt, ema = ema, generators = gens})
  step = st.step
  seconds_before = tonumber(st.info.train_seconds) or 0
  mixer:load_state(st.info.mixer)
  print(('resuming %s at step %d (%.1f h so far)'):format(ckpt_path, step, seconds_before / 3600))
end

if opts.export then
  if not resuming then cli.fail('--export: no checkpoint at ' .. ckpt_path) end
  if not opts.export_raw then student:load_state_dict(ema:state_dict()) end
  models.save(student, opts.export, {trained_steps = tostring(step), student_steps = tostring(opts.student_steps),
                                     weights = opts.export_raw and 'raw' or ('EMA %g'):format(opts.ema),
                                     train_hours = ('%.2f'):format(seconds_before / 3600),
                                     teacher = info.teacher, teacher_digest = info.teacher_digest,
                                     command = 'fadalua scripts/distill_student.lua ' .. table.concat(arg, ' ')},
              {dtype = 'f16'})
  print(('exported the %s student weights at step %d to %s'):format(opts.export_raw and 'raw' or 'EMA', step, opts.export))
  os.exit(0)
end

local flops = models.flops(student)
io.write(('student of %s: %.2f M parameters, %d-step grid {%s}, %d teacher substeps x 3 passes per step\n'):format(
  opts.teacher, student:num_parameters() / 1e6, opts.student_steps, table.concat(grid, ', '), opts.substeps))
hq:preload()
if moderate then moderate:preload() end

-- ---- one step --------------------------------------------------------------------------------

local wmap
local function uniform(lo, hi) return lo + (hi - lo) * fada.rand(1, 'f64', noise_gen):item() end

local function train_step()
  local from_moderate = use_moderate and fada.rand(1, 'f64', noise_gen):item() < opts.p_moderate
  local b = (from_moderate and moderate or hq):batch()
  local B = b.frames:size(1)
  local x0, ref_lat, motion_lat = run.encode_batch(student, b)                  -- [B·F, Cl, h, w], [B, ...], [B, M, ...]
  wmap = wmap or run.mouth_weights(x0:size(3), x0:size(4), opts.lip_weight)
  local w_ref, w_audio, wr_rows, wa_rows -- numbers, or per clip: lists and their [B·F, 1, 1, 1] columns
  if opts.scales_per == 'clip' then
    w_ref, w_audio = {}, {}
    local rr, ra = {}, {}
    for i = 1, B do
      w_ref[i], w_audio[i] = uniform(wr_lo, wr_hi), uniform(wa_lo, wa_hi)
      for _ = 1, Fr do rr[#rr + 1], ra[#ra + 1] = w_ref[i], w_audio[i] end
    end
    wr_rows, wa_rows = fada.tensor(rr):view(B * Fr, 1, 1, 1), fada.tensor(ra):view(B * Fr, 1, 1, 1)
  else
    w_ref, w_audio = uniform(wr_lo, wr_hi), uniform(wa_lo, wa_hi)
    wr_rows, wa_rows = w_ref, w_audio
  end
  local k = math.floor(uniform(0, opts.student_steps)) + 1                     -- 1..S
  k = math.min(k, opts.student_steps)
  local t, t_next = grid[k], grid[k + 1] or -1
  local eps = fada.randn(x0:size(), noise_gen)                                 -- [B·F, Cl, h, w]
  local xt = sched:add_noise(x0, eps, t)
  local audio_win = b.audio:reshape(B * Fr, b.audio:size(3), b.audio:size(4))  -- [B·F, n_mels, W]

  -- the teacher: multi-CFG over its three branches in one batched call per substep
  -- (in --teacher-dtype: its passes are inference only, the student trains in f32)
  fada.set_compute_dtype(opts.teacher_dtype)
  local ok_t, target = pcall(A.no_grad, function()
    local ctx = teacher:reference(ref_lat, motion_lat)
    local atok = teacher:audio_tokens(audio_win)
    local function guided(x, tt)
      local out = teacher:denoise(fada.cat({x, x, x}, 1), tt, {'base', 'ref', 'audio'}, nil, ctx, atok)
      local n = x:size(1)
      return guidance_mix(out:narrow(1, 1, n), out:narrow(1, n + 1, n), out:narrow(1, 2 * n + 1, n), wr_rows, wa_rows)
    end
    return distill.teacher_target(guided, sched, xt, t, t_next, opts.substeps)
  end)
  fada.set_compute_dtype('f32')
  if not ok_t then error(target, 0) end

  -- the student: one pass with the token mix for the same scales (FADA-Fast), or on
  -- --balanced-share of the steps its own three branches mixed as the teacher's are
  local balanced = opts.balanced_share > 0 and fada.rand(1, 'f64', noise_gen):item() < opts.balanced_share
  local ctx = student:reference(ref_lat, motion_lat)
  local atok = student:audio_tokens(audio_win)
  local out
  if balanced then
    local n = xt:size(1)
    local out3 = student:denoise(fada.cat({xt, xt, xt}, 1), t, {'base', 'ref', 'audio'}, nil, ctx, atok) -- [3·B·F, ...]
    out = guidance_mix(out3:narrow(1, 1, n), out3:narrow(1, n + 1, n), out3:narrow(1, 2 * n + 1, n), wr_rows, wa_rows)
  else
    out = student:denoise(xt, t, {'tokens'}, {w_ref = w_ref, w_audio = w_audio}, ctx, atok)   -- [B·F, ...]
  end
  local l_distill = F.mse(out, target, wmap)
  local l_gt = not from_moderate and F.mse(out, sched:target(x0, eps, t), wmap) or nil
  local loss, weights = mixer:mix(l_distill, l_gt)
  local gnorm = run.update(loss, opt, ema, params, opts.clip_grad, lr_at(step + 1))
  return {loss = loss:item(), distill = l_distill:item(), gt = l_gt and l_gt:item(), w = weights, gnorm = gnorm,
          frames = B * Fr, moderate = from_moderate}
end

-- ---- the loop ----------------------------------------------------------------------------------

local csv_path = opts.out .. '/loss.csv'
local log_line = run.csv(csv_path, 'step,loss,distill,gt,w_distill,w_gt,grad_norm,lr,frames_per_s,elapsed_s',
                         resuming and step)
local function plot()
  run.plot(opts.out .. '/loss.png', csv_path, 'mouth-weighted MSE', {{3, 'teacher matching'}, {4, 'ground truth'}})
end

local t_start = fada.clock()
local function save()
  local gens = {data = hq.generator, noise = noise_gen}
  if moderate then gens.data_moderate = moderate.generator end
  checkpoint.save(ckpt_path, {model = student, optimizer = opt, ema = ema, config = cfg, generators = gens, step = step,
                              info = {teacher = opts.teacher, teacher_digest = teacher_digest, data = opts.data,
                                      data_moderate = opts.data_moderate, init = info.init,
                                      mixer = mixer:state(), student_steps = tostring(opts.student_steps),
                                      train_seconds = seconds_before + fada.clock() - t_start}})
  plot()
end

local win = {loss = 0, distill = 0, gt = 0, n = 0, n_gt = 0, frames = 0, t = fada.clock()}
local r
local last, minutes = run.loop(opts, step, 'distilling', {
  step = function(s)
    r = train_step()
    step = s
    win.loss, win.distill, win.n = win.loss + r.loss, win.distill + r.distill, win.n + 1
    if r.gt then win.gt, win.n_gt = win.gt + r.gt, win.n_gt + 1 end
    win.frames = win.frames + r.frames
  end,
  log = function(s)
    local dt = fada.clock() - win.t
    local gt = win.n_gt > 0 and ('%.6f'):format(win.gt / win.n_gt) or ''
    log_line(('%d,%.6f,%.6f,%s,%.4f,%.4f,%.4f,%.6g,%.2f,%.1f'):format(s, win.loss / win.n, win.distill / win.n, gt,
      r.w.distill, r.w.gt, r.gnorm, opt.lr, win.frames / dt, seconds_before + fada.clock() - t_start))
    local fields = {loss = win.loss / win.n, ['frames/s'] = win.frames / dt}
    win = {loss = 0, distill = 0, gt = 0, n = 0, n_gt = 0, frames = 0, t = fada.clock()}
    return fields
  end,
  save = save,
})
print(('stopped at step %d after %.1f min; checkpoint %s, log %s (%.2f GFLOP per student frame)'):format(last,
  minutes, ckpt_path, csv_path, flops.denoiser / 1e9))
