-- The teacher's training (scripts/train_teacher.lua): v-prediction with
-- condition dropout for nested multi-CFG, a mouth-weighted loss, resumable.
--
--   local r = teacher.open(opts)          -- model, optimiser, EMA, data; resumed if opts.out has a checkpoint
--   teacher.export(r, opts, command)      -- the last checkpoint's weights as f16
--   local fl = teacher.flops(r)           -- models.flops of the model
--   local last, minutes = teacher.train(r, opts, fl)
-- opts are the script's flags (fada.train.run.flags plus p_drop_audio,
-- p_drop_all, config, data, out).
local fada = require 'fada'
local F = require 'fada.F'
local optim = require 'fada.optim'
local models = require 'fada.models'
local schedule = require 'fada.diffusion.schedule'
local loader = require 'fada.data.loader'
local checkpoint = require 'fada.train.checkpoint'
local run = require 'fada.train.run'

local M = {}

-- The model config: the run's own (stored in its checkpoint) wins over the
-- preset, which is looked up all the same (a bad --config fails either way).
local function config_of(opts, ckpt_path, resuming)
  local cfg = models.config(opts.config)
  if resuming then
    local _, _, stored = fada.safetensors.header(ckpt_path)
    if stored and stored.model then return stored.model end
  end
  return cfg
end

-- open(opts) -> the run r: {config, model, opt, ema, data, step,
-- seconds_before, resuming, ckpt_path, ...}, at the checkpoint's step when resuming.
function M.open(opts)
  local r = {ckpt_path = opts.out .. '/checkpoint.safetensors', step = 0, seconds_before = 0}
  r.resuming = fada.readable(r.ckpt_path)
  r.config = config_of(opts, r.ckpt_path, r.resuming)
  r.model = models.FadaModel(r.config)
  r.model:train()
  r.params = r.model:named_parameters()
  r.opt = optim.AdamW(r.params, {lr = opts.lr, weight_decay = opts.weight_decay})
  r.ema = optim.EMA(r.params, opts.ema)
  r.lr_at = optim.warmup_cosine(opts.lr, opts.warmup, opts.steps, 0.1)
  r.noise_gen = fada.Generator(opts.seed * 1000 + 7)
  local c = r.model.config
  r.sched = schedule.for_model(c)
  r.data = loader.open(opts.data, {frames = c.clip_frames, motion = c.motion_frames, batch = opts.batch,
                                   seed = opts.seed, size = c.image_size, audio = run.audio_windows(r.model),
                                   sample_rate = c.audio.sample_rate, prefetch = opts.prefetch})
  r.generators = {data = r.data.generator, noise = r.noise_gen}
  if r.resuming then
    local st = checkpoint.load(r.ckpt_path, {model = r.model, optimizer = r.opt, ema = r.ema,
                                             generators = r.generators})
    r.step = st.step
    r.seconds_before = tonumber(st.info.train_seconds) or 0 -- training wall time of the earlier parts
  end
  return r
end

-- Writes the weights of the last checkpoint (the EMA ones unless
-- opts.export_raw) as f16 to opts.export; command goes into its metadata.
function M.export(r, opts, command)
  assert(r.resuming, 'export: no checkpoint at ' .. r.ckpt_path)
  if not opts.export_raw then r.model:load_state_dict(r.ema:state_dict()) end
  models.save(r.model, opts.export, {trained_steps = tostring(r.step), data = opts.data,
                                     weights = opts.export_raw and 'raw' or ('EMA %g'):format(opts.ema),
                                     train_hours = ('%.2f'):format(r.seconds_before / 3600), command = command},
              {dtype = 'f16'})
end

-- Per frame: the denoiser, plus the reference net and audio per clip (models.flops).
function M.flops(r) return models.flops(r.model) end

-- The conditioning a step trains: 'base' (reference and audio dropped),
-- 'ref' (audio dropped) or 'audio', for a uniform draw u.
local function pick_branch(opts, u)
  if u < opts.p_drop_all then return 'base' end
  if u < opts.p_drop_all + opts.p_drop_audio then return 'ref' end
  return 'audio'
end

-- One optimiser step s on the next batch: returns the loss, the gradient
-- norm and the frames it trained on.
local function train_step(r, opts, s)
  local model, Fr = r.model, r.model.config.clip_frames
  local b = r.data:batch()
  local B = b.frames:size(1)
  local x0, ref_lat, motion_lat = run.encode_batch(model, b)        -- [B·F, Cl, h, w], [B, ...], [B, M, ...]
  r.wmap = r.wmap or run.mouth_weights(x0:size(3), x0:size(4), opts.lip_weight)
  -- one timestep per clip, shared by its frames
  local t = fada.randint(0, r.sched.T, B, r.noise_gen):tolist()
  local sa, s1, tf = {}, {}, {}
  for i = 1, B do
    local a = r.sched:alpha_bar(t[i])
    for _ = 1, Fr do
      sa[#sa + 1], s1[#s1 + 1], tf[#tf + 1] = math.sqrt(a), math.sqrt(1 - a), t[i]
    end
  end
  local sa_t = fada.tensor(sa):view(B * Fr, 1, 1, 1)
  local s1_t = fada.tensor(s1):view(B * Fr, 1, 1, 1)
  local eps = fada.randn(x0:size(), r.noise_gen)                                -- [B·F, Cl, h, w]
  local xt = x0 * sa_t + eps * s1_t
  local target = model.config.prediction == 'v' and eps * sa_t - x0 * s1_t or eps
  local branch = pick_branch(opts, fada.rand(1, 'f64', r.noise_gen):item())
  local ctx = model:reference(ref_lat, motion_lat)
  local atok = model:audio_tokens(b.audio:reshape(B * Fr, b.audio:size(3), b.audio:size(4)))
  local out = model:denoise(xt, fada.tensor(tf), {branch}, nil, ctx, atok)
  local loss = F.mse(out, target, r.wmap)
  local gnorm = run.update(loss, r.opt, r.ema, r.params, opts.clip_grad, r.lr_at(s))
  return loss:item(), gnorm, B * Fr
end

-- Trains from r.step to opts.steps (or opts.stop_at / opts.max_minutes),
-- logging loss.csv and loss.png in opts.out and checkpointing on the way.
-- fl = M.flops(r), for the GFLOP/s column. Returns the last step, the minutes
-- it ran and the CSV's path.
function M.train(r, opts, fl)
  r.data:preload()
  local csv_path = opts.out .. '/loss.csv'
  local log_line = run.csv(csv_path, 'step,loss,grad_norm,lr,frames_per_s,gflops_per_s,elapsed_s',
                           r.resuming and r.step)
  local t_start = fada.clock()
  local function elapsed() return r.seconds_before + fada.clock() - t_start end
  local function save()
    checkpoint.save(r.ckpt_path, {model = r.model, optimizer = r.opt, ema = r.ema, config = r.model.config,
                                  generators = r.generators, step = r.step,
                                  info = {data = opts.data, train_seconds = elapsed()}})
    run.plot(opts.out .. '/loss.png', csv_path, 'loss (mouth-weighted MSE)', {{2, 'loss'}})
  end
  -- forward + backward ≈ 3 forward passes; the reference net runs once per clip
  local flops_frame = 3 * (fl.denoiser + fl.audio + fl.refnet / r.model.config.clip_frames)
  local window = {loss = 0, n = 0, frames = 0, t = fada.clock()}
  local gnorm
  local last, minutes = run.loop(opts, r.step, 'training', {
    step = function(s)
      local loss, g, frames = train_step(r, opts, s)
      r.step, gnorm = s, g
      window.loss, window.n, window.frames = window.loss + loss, window.n + 1, window.frames + frames
    end,
    log = function(s)
      local dt = fada.clock() - window.t
      local gflops = window.frames * flops_frame / dt / 1e9
      log_line(('%d,%.6f,%.4f,%.6g,%.2f,%.1f,%.1f'):format(s, window.loss / window.n, gnorm, r.opt.lr,
        window.frames / dt, gflops, elapsed()))
      local fields = {loss = window.loss / window.n, ['frames/s'] = window.frames / dt, ['GFLOP/s'] = gflops}
      window = {loss = 0, n = 0, frames = 0, t = fada.clock()}
      return fields
    end,
    save = save,
  })
  return last, minutes, csv_path
end

return M
