-- fadalua scripts/train_teacher.lua: trains the FADA teacher (reference net +
-- denoising UNet + audio encoder) from scratch on the synthetic avatars.
-- Resumable: rerun the same command and it continues from the last checkpoint.
local fada = require 'fada'
local cli = require 'fada.cli'
local F = require 'fada.F'
local A = require 'fada.autograd'
local optim = require 'fada.optim'
local models = require 'fada.models'
local schedule = require 'fada.diffusion.schedule'
local loader = require 'fada.data.loader'
local checkpoint = require 'fada.train.checkpoint'
local run = require 'fada.train.run'

local opts = cli.parse(arg, run.flags({
  usage = 'usage: fadalua scripts/train_teacher.lua [flags]',
  about = 'Trains the teacher: v-prediction, condition dropout for nested multi-CFG (drop audio;\n' ..
          'drop reference and audio), clips with motion frames, a heavier loss on the mouth region.\n' ..
          'Checkpoints, loss.csv and loss.png go to --out; rerunning resumes.',
  {'data', 'string', 'data/avatars/hq-train', 'dataset folder (scripts/make_dataset.lua) or a folder of MP4s'},
  {'out', 'string', 'runs/teacher', 'run folder'},
  {'config', 'string', 'mini', 'model preset (mini, tiny)'},
  {'p_drop_audio', 'number', 0.1, 'share of steps with audio dropped (the "ref" branch)'},
  {'p_drop_all', 'number', 0.1, 'share of steps with reference and audio dropped (the "base" branch)'},
  {'detect_anomaly', 'bool', false, 'stop at the first op whose backward makes a NaN/inf (slow)'},
}, {steps = 20000, lr = 3e-4, warmup = 300, ema = 0.998, ckpt_every = 200}))

run.setup(opts)
if opts.detect_anomaly then A.set_detect_anomaly(true) end
local ckpt_path = opts.out .. '/checkpoint.safetensors'

-- ---- model, optimiser, data --------------------------------------------------------

local cfg = models.config(opts.config)
local resuming = run.file_exists(ckpt_path)
if resuming then -- the run's own config wins over the preset
  local _, _, stored = fada.safetensors.header(ckpt_path)
  if stored and stored.model then cfg = stored.model end
end
local model = models.FadaModel(cfg)
model:train()
local params = model:named_parameters()
local opt = optim.AdamW(params, {lr = opts.lr, weight_decay = opts.weight_decay})
local ema = optim.EMA(params, opts.ema)
local lr_at = optim.warmup_cosine(opts.lr, opts.warmup, opts.steps, 0.1)
local noise_gen = fada.Generator(opts.seed * 1000 + 7)
local sched = schedule.for_model(model.config)
local Fr, Mf, S = model.config.clip_frames, model.config.motion_frames, model.config.image_size

local data = loader.open(opts.data, {frames = Fr, motion = Mf, batch = opts.batch, seed = opts.seed, size = S,
                                     audio = run.audio_windows(model), sample_rate = model.config.audio.sample_rate,
                                     prefetch = opts.prefetch})
local data_gen = data.generator

local step = 0
local seconds_before = 0 -- training wall time of the earlier parts of a resumed run
if resuming then
  local st = checkpoint.load(ckpt_path, {model = model, optimizer = opt, ema = ema,
                                         generators = {data = data_gen, noise = noise_gen}})
  step = st.step
  seconds_before = tonumber(st.info.train_seconds) or 0
  print(('resuming %s at step %d (%.1f h of training so far)'):format(ckpt_path, step, seconds_before / 3600))
end

if opts.export then
  assert(resuming, 'export: no checkpoint at ' .. ckpt_path)
  if not opts.export_raw then model:load_state_dict(ema:state_dict()) end
  models.save(model, opts.export, {trained_steps = tostring(step), data = opts.data,
                                   weights = opts.export_raw and 'raw' or ('EMA %g'):format(opts.ema),
                                   train_hours = ('%.2f'):format(seconds_before / 3600),
                                   command = 'fadalua scripts/train_teacher.lua ' .. table.concat(arg, ' ')},
              {dtype = 'f16'})
  print(('exported the %s weights at step %d to %s'):format(opts.export_raw and 'raw' or 'EMA', step, opts.export))
  os.exit(0)
end

local flops = models.flops(model) -- per frame: denoiser, plus the reference net and audio per clip
io.write(('teacher %s: %.2f M parameters, %.2f GFLOP per frame (denoiser) + %.2f per clip (reference net); data %s\n'):format(
  cfg.name or opts.config, model:num_parameters() / 1e6, flops.denoiser / 1e9, flops.refnet / 1e9, opts.data))
data:preload()

-- ---- the loss ----------------------------------------------------------------------------

local wmap

local function pick_branch(u)
  if u < opts.p_drop_all then return 'base' end
  if u < opts.p_drop_all + opts.p_drop_audio then return 'ref' end
  return 'audio'
end

local function train_step()
  local b = data:batch()
  local B = b.frames:size(1)
  local x0, ref_lat, motion_lat = run.encode_batch(model, b)                    -- [B·F, Cl, h, w], [B, ...], [B, M, ...]
  wmap = wmap or run.mouth_weights(x0:size(3), x0:size(4), opts.lip_weight)
  -- one timestep per clip, shared by its frames
  local t = fada.randint(0, sched.T, B, noise_gen):tolist()
  local sa, s1, tf = {}, {}, {}
  for i = 1, B do
    local a = sched:alpha_bar(t[i])
    for _ = 1, Fr do
      sa[#sa + 1], s1[#s1 + 1], tf[#tf + 1] = math.sqrt(a), math.sqrt(1 - a), t[i]
    end
  end
  local sa_t = fada.tensor(sa):view(B * Fr, 1, 1, 1)
  local s1_t = fada.tensor(s1):view(B * Fr, 1, 1, 1)
  local eps = fada.randn(x0:size(), noise_gen)                                  -- [B·F, Cl, h, w]
  local xt = x0 * sa_t + eps * s1_t
  local target = model.config.prediction == 'v' and eps * sa_t - x0 * s1_t or eps
  local branch = pick_branch(fada.rand(1, 'f64', noise_gen):item())
  local ctx = model:reference(ref_lat, motion_lat)
  local atok = model:audio_tokens(b.audio:reshape(B * Fr, b.audio:size(3), b.audio:size(4)))
  local out = model:denoise(xt, fada.tensor(tf), {branch}, nil, ctx, atok)
  local loss = F.mse(out, target, wmap)
  local gnorm = run.update(loss, opt, ema, params, opts.clip_grad, lr_at(step + 1))
  return loss:item(), gnorm, branch, B * Fr
end

-- ---- the loop -------------------------------------------------------------------------------

local csv_path = opts.out .. '/loss.csv'
local log_line = run.csv(csv_path, 'step,loss,grad_norm,lr,frames_per_s,gflops_per_s,elapsed_s', resuming and step)
local function plot()
  run.plot(opts.out .. '/loss.png', csv_path, 'loss (mouth-weighted MSE)', {{2, 'loss'}})
end

local t_start = fada.clock()
local function save()
  checkpoint.save(ckpt_path, {model = model, optimizer = opt, ema = ema, config = model.config,
                              generators = {data = data_gen, noise = noise_gen}, step = step,
                              info = {data = opts.data, train_seconds = seconds_before + fada.clock() - t_start}})
  plot()
end

-- forward + backward ≈ 3 forward passes; the reference net runs once per clip
local flops_frame = 3 * (flops.denoiser + flops.audio + flops.refnet / Fr)
local window = {loss = 0, n = 0, frames = 0, t = fada.clock()}
local gnorm
local last, minutes = run.loop(opts, step, 'training', {
  step = function(s)
    local loss, g, _, frames = train_step()
    step, gnorm = s, g
    window.loss, window.n, window.frames = window.loss + loss, window.n + 1, window.frames + frames
  end,
  log = function(s)
    local dt = fada.clock() - window.t
    log_line(('%d,%.6f,%.4f,%.6g,%.2f,%.1f,%.1f'):format(s, window.loss / window.n, gnorm, opt.lr,
      window.frames / dt, window.frames * flops_frame / dt / 1e9, seconds_before + fada.clock() - t_start))
    local fields = {loss = window.loss / window.n, ['frames/s'] = window.frames / dt,
                    ['GFLOP/s'] = window.frames * flops_frame / dt / 1e9}
    window = {loss = 0, n = 0, frames = 0, t = fada.clock()}
    return fields
  end,
  save = save,
})
print(('stopped at step %d after %.1f min; checkpoint %s, log %s'):format(last, minutes, ckpt_path, csv_path))
