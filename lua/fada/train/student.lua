-- The student's distillation (scripts/distill_student.lua): mixed-supervised
-- multi-CFG distillation with learnable CFG tokens (docs/distillation.md),
-- resumable; the pieces it is made of are fada.train.distill.
--
--   local r = student.open(opts, fail)    -- teacher, student, optimiser, data; resumed if opts.out has a checkpoint
--   student.export(r, opts, command)      -- the last checkpoint's weights as f16
--   local fl = student.flops(r)           -- models.flops of the student
--   local last, minutes, csv = student.train(r, opts)
-- opts are the script's flags, checked; fail(message) reports a usage error
-- (a teacher that is missing, a student, or not the run's own; a bad --init).
local fada = require 'fada'
local F = require 'fada.F'
local A = require 'fada.autograd'
local optim = require 'fada.optim'
local models = require 'fada.models'
local guidance_mix = require 'fada.models.guidance_mix'
local schedule = require 'fada.diffusion.schedule'
local loader = require 'fada.data.loader'
local checkpoint = require 'fada.train.checkpoint'
local run = require 'fada.train.run'
local distill = require 'fada.train.distill'

local M = {}

-- The teacher at opts.teacher, checked against the run's (info.teacher_digest).
local function load_teacher(opts, info, ckpt_path, fail)
  if not fada.readable(opts.teacher) then
    fail(("no teacher at '%s': train one (scripts/train_teacher.lua, then --export) or give --teacher PATH"):format(
      opts.teacher))
  end
  local ok, teacher = pcall(models.load, opts.teacher)
  if not ok then fail(teacher) end
  local digest = models.digest(opts.teacher)
  -- a teacher file replaced under a run (a new export) would change its targets halfway
  if info.teacher_digest and info.teacher_digest ~= digest then
    fail(("%s was distilled from other weights than '%s' holds now (%s, now %s): restore that teacher, or start "
      .. "a new run with another --out"):format(ckpt_path, opts.teacher, info.teacher_digest, digest))
  end
  if teacher.config.student then
    fail(("'%s' is a student; --teacher needs a teacher checkpoint"):format(opts.teacher))
  end
  teacher:eval()
  return teacher, digest
end

-- The student at `path` (the file given to `flag`), checked to be a student
-- distilled from this teacher; `teacher_hint` says what to give instead of a teacher.
local function load_student(path, flag, teacher_hint, opts, teacher_digest, fail)
  local ok, m = pcall(models.load, path)
  if not ok then fail(('%s: %s'):format(flag, m)) end
  if not m.config.student then fail(("%s: '%s' is a teacher; %s"):format(flag, path, teacher_hint)) end
  if m.metadata and m.metadata.teacher_digest and m.metadata.teacher_digest ~= teacher_digest then
    fail(("%s: '%s' was distilled from another teacher (%s) than '%s' (%s)"):format(flag, path,
      m.metadata.teacher_digest, opts.teacher, teacher_digest))
  end
  return m
end

-- A second stage's student: the one at opts.init, distilled from this teacher.
local function init_student(opts, teacher_digest, fail)
  local init = load_student(opts.init, '--init', 'give a student, or leave --init out', opts, teacher_digest, fail)
  return models.student_from(init, {branch_tokens = opts.balanced_share > 0 or nil})
end

-- The guide (--guide): a distilled student of this teacher whose token-mode
-- prediction joins the target; frozen, in eval mode. A resumed run checks it is
-- the same file as before (info.guide_digest).
local function load_guide(opts, teacher_digest, info, ckpt_path, fail)
  if not fada.readable(opts.guide) then fail(("--guide: no student at '%s'"):format(opts.guide)) end
  local guide = load_student(opts.guide, '--guide', 'give a distilled student (its FADA-Fast pass is the guide)',
    opts, teacher_digest, fail)
  local digest = models.digest(opts.guide)
  if info.guide_digest and info.guide_digest ~= digest then
    fail(("%s was guided by other weights than '%s' holds now (%s, now %s): restore that guide, or start a new run "
      .. 'with another --out'):format(ckpt_path, opts.guide, info.guide_digest, digest))
  end
  guide:eval()
  return guide, digest
end

-- The models: r.student (the run's own when resuming, else from --init or the
-- teacher) and, unless exporting, r.teacher (and r.guide with --guide). A resumed
-- run keeps its teacher and guide.
local function open_models(r, opts, fail)
  if r.resuming then -- the run's own config (with its teacher path) wins
    local _, _, stored = fada.safetensors.header(r.ckpt_path)
    r.info = stored and stored.checkpoint and stored.checkpoint.info or {}
    if not opts.export then
      opts.teacher = r.info.teacher or opts.teacher
      -- a run keeps the targets it started with: its guide (and share), or none
      local stored = r.info.guide or ''
      if opts.guide ~= '' and opts.guide ~= stored then
        fail(("--guide: %s was distilled %s; resume it without --guide, or start a new run with another --out")
          :format(r.ckpt_path, stored == '' and 'without a guide' or ("with the guide '" .. stored .. "'")))
      end
      if stored ~= '' then opts.guide, opts.guide_share = stored, tonumber(r.info.guide_share) end
    end
    r.student = models.FadaModel(stored.model)
  end
  if not opts.export then
    r.teacher, r.teacher_digest = load_teacher(opts, r.info, r.ckpt_path, fail)
    if opts.guide ~= '' then r.guide, r.guide_digest = load_guide(opts, r.teacher_digest, r.info, r.ckpt_path, fail) end
    if not r.student and opts.init ~= '' then
      r.student = init_student(opts, r.teacher_digest, fail)
      r.info.init = opts.init
    end
    r.student = r.student or models.student_from(r.teacher, {token_dim = opts.token_dim,
      time_control = opts.time_control, branch_tokens = opts.balanced_share > 0 or nil})
  end
  if opts.balanced_share > 0 and not r.student.config.student.branch_tokens then
    fail(('--balanced-share %g: %s holds a student without branch tokens (started with --balanced-share 0); '
      .. 'start a new run with another --out'):format(opts.balanced_share, r.ckpt_path))
  end
end

-- The clip loaders: r.hq always, r.moderate when that tier is drawn from.
local function open_data(r, opts)
  local c = r.student.config
  local function open(dir, seed)
    return loader.open(dir, {frames = c.clip_frames, motion = c.motion_frames, batch = opts.batch, seed = seed,
                             size = c.image_size, audio = run.audio_windows(r.student),
                             sample_rate = c.audio.sample_rate, prefetch = opts.prefetch})
  end
  r.hq = open(opts.data, opts.seed)
  if r.use_moderate then r.moderate = open(opts.data_moderate, opts.seed + 1) end
end

-- The generators a checkpoint holds: the noise, and the data order of each open tier.
local function generators(r)
  local gens = {noise = r.noise_gen}
  if r.hq then gens.data = r.hq.generator end
  if r.moderate then gens.data_moderate = r.moderate.generator end
  return gens
end

local function comma_list(text)
  local list = {}
  for item in text:gmatch('[^,]+') do list[#list + 1] = item end
  return list
end

-- open(opts, fail) -> the run r: {student, teacher, opt, ema, mixer, grid,
-- hq, moderate, step, seconds_before, resuming, ckpt_path, info, ...}, at the
-- checkpoint's step when resuming. opts.export opens no teacher and no data.
function M.open(opts, fail)
  local r = {ckpt_path = opts.out .. '/checkpoint.safetensors', step = 0, seconds_before = 0, info = {}}
  r.resuming = fada.readable(r.ckpt_path)
  if opts.export and not r.resuming then fail('--export: no checkpoint at ' .. r.ckpt_path) end
  open_models(r, opts, fail)
  r.student:train()
  -- a resumed run keeps the parameter set it started with
  local stored = r.info.train_only and r.info.train_only ~= '' and r.info.train_only or nil
  local given = opts.train_only and table.concat(opts.train_only, ',') or nil
  if r.resuming and given ~= stored and not (opts.export and not given) then
    fail(('--train-only: %s trains %s; resume it with the same --train-only, or start a new run with another --out')
      :format(r.ckpt_path, stored and ("'" .. stored .. "'") or 'all parameters'))
  end
  r.train_only = given or stored
  local why
  r.params, why = run.trained_parameters(r.student, r.train_only and comma_list(r.train_only))
  if not r.params then fail('--train-only: ' .. why) end
  local branch_only = true -- branch tokens take part in Balanced steps only
  for _, p in ipairs(r.params) do branch_only = branch_only and p.name == 'cfg_branch_tokens' end
  if r.train_only and branch_only and opts.balanced_share < 1 and not opts.export then
    fail(("--train-only %s trains only the branch tokens, which token-mode steps do not use: give --balanced-share 1 "
      .. '(got %g)'):format(r.train_only, opts.balanced_share))
  end
  r.opt = optim.AdamW(r.params, {lr = opts.lr, weight_decay = opts.weight_decay})
  r.ema = optim.EMA(r.params, opts.ema)
  r.lr_at = optim.warmup_cosine(opts.lr, opts.warmup, opts.steps, 0.1)
  r.noise_gen = fada.Generator(opts.seed * 1000 + 11)
  r.mixer = distill.LossMixer{share = opts.gt_share, fixed = opts.mixer == 'fixed'}
  r.sched = schedule.for_model(r.student.config)
  r.grid = r.sched:timesteps(opts.student_steps, 'trailing')
  r.use_moderate = opts.data_moderate ~= 'none' and opts.p_moderate > 0
  if not opts.export then open_data(r, opts) end
  if r.resuming then
    local st = checkpoint.load(r.ckpt_path, {model = r.student, optimizer = r.opt, ema = r.ema,
                                             generators = generators(r)})
    r.step = st.step
    r.seconds_before = tonumber(st.info.train_seconds) or 0 -- training wall time of the earlier parts
    r.mixer:load_state(st.info.mixer)
  end
  return r
end

-- Writes the weights of the last checkpoint (the EMA ones unless
-- opts.export_raw) as f16 to opts.export; command goes into its metadata.
function M.export(r, opts, command)
  -- (a --train-only run's EMA holds only the trained parameters; the others are as they were)
  if not opts.export_raw then r.student:load_state_dict(r.ema:state_dict(), {strict = r.train_only == nil}) end
  models.save(r.student, opts.export, {trained_steps = tostring(r.step), student_steps = tostring(opts.student_steps),
                                       weights = opts.export_raw and 'raw' or ('EMA %g'):format(opts.ema),
                                       train_hours = ('%.2f'):format(r.seconds_before / 3600),
                                       teacher = r.info.teacher, teacher_digest = r.info.teacher_digest,
                                       command = command},
              {dtype = 'f16'})
end

-- Per frame: the student's denoiser, plus the reference net and audio per clip (models.flops).
function M.flops(r) return models.flops(r.student) end

-- The scales of a step for B clips of Fr frames: numbers, or with
-- opts.scales_per == 'clip' one per clip (lists) and their [B·F, 1, 1, 1]
-- columns; returns w_ref, w_audio and what guidance_mix takes for each.
local function draw_scales(opts, uniform, B, Fr)
  local wr, wa = opts.w_ref, opts.w_audio
  if opts.scales_per ~= 'clip' then
    local w_ref, w_audio = uniform(wr[1], wr[2]), uniform(wa[1], wa[2])
    return w_ref, w_audio, w_ref, w_audio
  end
  local w_ref, w_audio, rr, ra = {}, {}, {}, {}
  for i = 1, B do
    w_ref[i], w_audio[i] = uniform(wr[1], wr[2]), uniform(wa[1], wa[2])
    for _ = 1, Fr do rr[#rr + 1], ra[#ra + 1] = w_ref[i], w_audio[i] end
  end
  return w_ref, w_audio, fada.tensor(rr):view(B * Fr, 1, 1, 1), fada.tensor(ra):view(B * Fr, 1, 1, 1)
end

-- The teacher's target: multi-CFG over its three branches in one batched call
-- per substep (in --teacher-dtype: its passes are inference only; the student
-- trains in --dtype).
local function teacher_target(r, opts, lat, xt, t, t_next, wr_rows, wa_rows)
  local teacher = r.teacher
  fada.set_compute_dtype(opts.teacher_dtype)
  local ok, target = pcall(A.no_grad, function()
    local ctx = teacher:reference(lat.ref, lat.motion)
    local atok = teacher:audio_tokens(lat.audio)
    local function guided(x, tt)
      local out = teacher:denoise(fada.cat({x, x, x}, 1), tt, {'base', 'ref', 'audio'}, nil, ctx, atok)
      local n = x:size(1)
      return guidance_mix(out:narrow(1, 1, n), out:narrow(1, n + 1, n), out:narrow(1, 2 * n + 1, n), wr_rows, wa_rows)
    end
    return distill.teacher_target(guided, r.sched, xt, t, t_next, opts.substeps)
  end)
  fada.set_compute_dtype(opts.dtype)
  if not ok then error(target, 0) end
  return target
end

-- The guide's prediction at x_t: one token-mode pass at the step's scales (a
-- student of the same grid predicts a whole student step, as the target does).
local function guide_prediction(r, opts, ref_lat, motion_lat, audio, xt, t, w_ref, w_audio)
  local guide = r.guide
  fada.set_compute_dtype(opts.teacher_dtype)
  local ok, out = pcall(A.no_grad, function()
    local ctx = guide:reference(ref_lat, motion_lat)
    return guide:denoise(xt, t, {'tokens'}, {w_ref = w_ref, w_audio = w_audio}, ctx, guide:audio_tokens(audio))
  end)
  fada.set_compute_dtype(opts.dtype)
  if not ok then error(out, 0) end
  return out
end

-- One optimiser step s: returns {loss, distill, gt (nil on a moderate batch or above --gt-max-t),
-- w (the mixer's weights), gnorm, frames}.
local function train_step(r, opts, s)
  local student, Fr = r.student, r.student.config.clip_frames
  local function uniform(lo, hi) return lo + (hi - lo) * fada.rand(1, 'f64', r.noise_gen):item() end
  local from_moderate = r.use_moderate and fada.rand(1, 'f64', r.noise_gen):item() < opts.p_moderate
  local b = (from_moderate and r.moderate or r.hq):batch()
  local B = b.frames:size(1)
  local x0, ref_lat, motion_lat = run.encode_batch(student, b)      -- [B·F, Cl, h, w], [B, ...], [B, M, ...]
  r.wmap = r.wmap or run.mouth_weights(x0:size(3), x0:size(4), opts.lip_weight)
  local w_ref, w_audio, wr_rows, wa_rows = draw_scales(opts, uniform, B, Fr)
  local k = math.floor(uniform(0, opts.student_steps)) + 1                     -- 1..S
  k = math.min(k, opts.student_steps)
  local t, t_next = r.grid[k], r.grid[k + 1] or -1
  local eps = fada.randn(x0:size(), r.noise_gen)                               -- [B·F, Cl, h, w]
  local xt = r.sched:add_noise(x0, eps, t)
  local lat = {ref = ref_lat, motion = motion_lat,
               audio = b.audio:reshape(B * Fr, b.audio:size(3), b.audio:size(4))}  -- audio [B·F, n_mels, W]
  -- the target: the teacher's, or with --guide that blended with the guide's (share 1: the guide's alone)
  local target
  if not r.guide or opts.guide_share < 1 then target = teacher_target(r, opts, lat, xt, t, t_next, wr_rows, wa_rows) end
  if r.guide then
    local g = guide_prediction(r, opts, ref_lat, motion_lat, lat.audio, xt, t, w_ref, w_audio)  -- [B·F, Cl, h, w]
    target = target and target * (1 - opts.guide_share) + g * opts.guide_share or g
  end

  -- the student: one pass with the token mix for the same scales (FADA-Fast), or on
  -- --balanced-share of the steps its own three branches mixed as the teacher's are
  local balanced = opts.balanced_share > 0 and fada.rand(1, 'f64', r.noise_gen):item() < opts.balanced_share
  local ctx = student:reference(ref_lat, motion_lat)
  local atok = student:audio_tokens(lat.audio)
  local out, gt_out
  if balanced then
    local n = xt:size(1)
    local out3 = student:denoise(fada.cat({xt, xt, xt}, 1), t, {'base', 'ref', 'audio'}, nil, ctx, atok) -- [3·B·F, ...]
    local conditional = out3:narrow(1, 2 * n + 1, n)
    out = guidance_mix(out3:narrow(1, 1, n), out3:narrow(1, n + 1, n), conditional, wr_rows, wa_rows)
    -- the ground truth is the conditional model's target: guidance moves the mix away from it on purpose
    if opts.gt_branch == 'conditional' then gt_out = conditional end
  else
    out = student:denoise(xt, t, {'tokens'}, {w_ref = w_ref, w_audio = w_audio}, ctx, atok)   -- [B·F, ...]
  end
  local l_distill = F.mse(out, target, r.wmap)
  -- (above --gt-max-t the clean frame is a guess from x_t: its mean blurs what the teacher's guidance sharpens)
  local with_gt = not from_moderate and t <= opts.gt_max_t
  local l_gt = with_gt and F.mse(gt_out or out, r.sched:target(x0, eps, t), r.wmap) or nil
  local loss, weights = r.mixer:mix(l_distill, l_gt)
  if not A.tracked(loss) then
    error(("--train-only %s: no parameter it selects takes part in a %s step; train those steps' parameters too, "
      .. 'or give --balanced-share %s'):format(r.train_only, balanced and 'Balanced' or 'token-mode',
      balanced and '0' or '1'), 0)
  end
  local gnorm = run.update(loss, r.opt, r.ema, r.params, opts.clip_grad, r.lr_at(s))
  return {loss = loss:item(), distill = l_distill:item(), gt = l_gt and l_gt:item(), w = weights, gnorm = gnorm,
          frames = B * Fr}
end

-- Distils from r.step to opts.steps (or opts.stop_at / opts.max_minutes),
-- logging loss.csv and loss.png in opts.out and checkpointing on the way.
-- Returns the last step, the minutes it ran and the CSV's path.
function M.train(r, opts)
  r.hq:preload()
  if r.moderate then r.moderate:preload() end
  local csv_path = opts.out .. '/loss.csv'
  local log_line = run.csv(csv_path, 'step,loss,distill,gt,w_distill,w_gt,grad_norm,lr,frames_per_s,elapsed_s',
                           r.resuming and r.step)
  local t_start = fada.clock()
  local function elapsed() return r.seconds_before + fada.clock() - t_start end
  local function save()
    checkpoint.save(r.ckpt_path, {model = r.student, optimizer = r.opt, ema = r.ema, config = r.student.config,
                                  generators = generators(r), step = r.step,
                                  info = {teacher = opts.teacher, teacher_digest = r.teacher_digest, data = opts.data,
                                          data_moderate = opts.data_moderate, init = r.info.init,
                                          guide = opts.guide, guide_digest = r.guide_digest,
                                          guide_share = opts.guide ~= '' and tostring(opts.guide_share) or nil,
                                          train_only = r.train_only,
                                          mixer = r.mixer:state(), student_steps = tostring(opts.student_steps),
                                          train_seconds = elapsed()}})
    run.plot(opts.out .. '/loss.png', csv_path, 'mouth-weighted MSE', {{3, 'teacher matching'}, {4, 'ground truth'}})
  end
  local win = {loss = 0, distill = 0, gt = 0, n = 0, n_gt = 0, frames = 0, t = fada.clock()}
  local last_step
  local last, minutes = run.loop(opts, r.step, 'distilling', {
    step = function(s)
      local st = train_step(r, opts, s)
      r.step, last_step = s, st
      win.loss, win.distill, win.n = win.loss + st.loss, win.distill + st.distill, win.n + 1
      if st.gt then win.gt, win.n_gt = win.gt + st.gt, win.n_gt + 1 end
      win.frames = win.frames + st.frames
    end,
    log = function(s)
      local dt = fada.clock() - win.t
      local gt = win.n_gt > 0 and ('%.6f'):format(win.gt / win.n_gt) or ''
      local st = last_step
      log_line(('%d,%.6f,%.6f,%s,%.4f,%.4f,%.4f,%.6g,%.2f,%.1f'):format(s, win.loss / win.n, win.distill / win.n, gt,
        st.w.distill, st.w.gt, st.gnorm, r.opt.lr, win.frames / dt, elapsed()))
      local fields = {loss = win.loss / win.n, ['frames/s'] = win.frames / dt}
      win = {loss = 0, distill = 0, gt = 0, n = 0, n_gt = 0, frames = 0, t = fada.clock()}
      return fields
    end,
    save = save,
  })
  return last, minutes, csv_path
end

return M
