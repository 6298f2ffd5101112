-- fadalua scripts/denoise_error.lua: how well a checkpoint denoises, per
-- timestep, on held-out clips: a seconds-long check of a training run's
-- progress that needs no sampling.
--
--   fadalua scripts/denoise_error.lua --model runs/teacher-now.safetensors
local fada = require 'fada'
local cli = require 'fada.cli'
local models = require 'fada.models'
local loader = require 'fada.data.loader'
local schedule = require 'fada.diffusion.schedule'
local avatars = require 'fada.data.avatars'

local opts = cli.parse(arg, {
  usage = 'usage: fadalua scripts/denoise_error.lua --model PATH [flags]',
  about = [[Noises held-out clips to timestep t, runs the denoiser once (the fully conditioned
branch unless --branch says otherwise) and prints, per t, the mean squared error of its
prediction (in the model's target: v or eps) and of the clean latent it implies, beside
two baselines: the noisy input itself (x_t - x0) and the reference frame (what copying
the portrait would give), over the whole frame and inside the mouth region. A trained
model's x0 error falls well below both at every t; the mouth columns with --branch audio
against --branch ref show whether it uses the sound.
Export a training checkpoint first: scripts/train_teacher.lua --export PATH.]],
  {'model', 'string', nil, 'model file (models.save / train_teacher --export)'},
  {'data', 'string', 'data/avatars/hq-heldout', 'held-out dataset (scripts/make_dataset.lua --split heldout)'},
  {'clips', 'int', 4, 'clips (batches of one clip each)'},
  {'t', 'ints', '10,50,150,300,500,700,900,999', 'timesteps, a comma list'},
  {'branch', 'string', 'audio', 'conditioning: audio (reference + audio), ref (reference only), base (neither)'},
  {'seed', 'int', 3, 'seed of the clip choice and the noise'},
  {'threads', 'int', nil, 'compute threads (default: all cores)'},
})
if opts.threads then fada.set_num_threads(opts.threads) end
if not opts.model then cli.fail('give --model PATH (see --help)') end
local f = io.open(opts.model, 'rb')
if not f then cli.fail(("cannot read the model '%s'"):format(opts.model)) end
f:close()
if opts.branch ~= 'audio' and opts.branch ~= 'ref' and opts.branch ~= 'base' then
  cli.fail(("--branch must be audio, ref or base, got '%s'"):format(opts.branch))
end
local ts = opts.t
for _, t in ipairs(ts) do
  if t < 0 or t > 999 then cli.fail(('--t: %d is not a timestep in 0..999'):format(t)) end
end

local m = models.load(opts.model)
local c = m.config
local sched = schedule.for_model(c)
local F, Mf, S = c.clip_frames, c.motion_frames, c.image_size
local data = loader.open(opts.data, {frames = F, motion = Mf, batch = 1, seed = opts.seed, size = S, prefetch = false,
  sample_rate = c.audio.sample_rate, audio = function(clip, start, n)
    return m:audio_windows(clip.audio, c.audio.sample_rate, clip.frames:size(1)):narrow(1, start, n)
  end})
local g = fada.Generator(opts.seed)
local sums = {}
local mouth, mouth_share   -- [1, 1, h, w] mask of the mouth region and its share of the grid
-- mean squared error inside the mouth region only
local function mouth_mse(a, b)
  return (((a - b) ^ 2) * mouth):mean():item() / mouth_share
end
for _ = 1, opts.clips do
  local b = data:batch()
  local x0 = m:encode(b.frames:view(F, 3, S, S))                               -- [F, Cl, h, w]
  local ref = m:encode(b.ref)                                                  -- [1, Cl, h, w]
  local mot
  if Mf > 0 then
    mot = m:encode(b.motion:reshape(Mf, 3, S, S))
    mot = mot:view(1, Mf, mot:size(2), mot:size(3), mot:size(4))               -- [1, M, Cl, h, w]
  end
  if not mouth then
    mouth = avatars.mouth_mask(x0:size(3), x0:size(4)):view(1, 1, x0:size(3), x0:size(4))
    mouth_share = mouth:mean():item()
  end
  local ctx = m:reference(ref, mot)
  local atok = m:audio_tokens(b.audio:reshape(F, b.audio:size(3), b.audio:size(4)))
  for i, t in ipairs(ts) do
    local a = sched:alpha_bar(t)
    local sa, s1 = math.sqrt(a), math.sqrt(1 - a)
    local eps = fada.randn(x0:size(), g)
    local xt = x0 * sa + eps * s1
    local out = m:denoise(xt, fada.full({F}, t), {opts.branch}, nil, ctx, atok)
    local target, x0h
    if c.prediction == 'v' then
      target, x0h = eps * sa - x0 * s1, xt * sa - out * s1
    else
      target, x0h = eps, (xt - out * s1) * (1 / math.max(sa, 1e-4))
    end
    local s = sums[i] or {pred = 0, x0 = 0, noisy = 0, ref = 0, mouth_x0 = 0, mouth_ref = 0}
    sums[i] = s
    s.pred = s.pred + ((out - target) ^ 2):mean():item() / opts.clips
    s.x0 = s.x0 + ((x0h - x0) ^ 2):mean():item() / opts.clips
    s.noisy = s.noisy + ((xt - x0) ^ 2):mean():item() / opts.clips
    s.ref = s.ref + ((x0 - ref) ^ 2):mean():item() / opts.clips
    s.mouth_x0 = s.mouth_x0 + mouth_mse(x0h, x0) / opts.clips
    s.mouth_ref = s.mouth_ref + mouth_mse(ref, x0) / opts.clips
  end
end

print(('%s (%s prediction), branch %s, %d held-out clips of %d frames from %s'):format(opts.model, c.prediction,
  opts.branch, opts.clips, F, opts.data))
print(('| t | sqrt(alpha_bar) | %s error | x0 error | x_t - x0 | reference - x0 | mouth: x0 error | mouth: reference - x0 |'):format(c.prediction))
print('|---|---|---|---|---|---|---|---|')
for i, t in ipairs(ts) do
  local s = sums[i]
  print(('| %d | %.3f | %.4f | %.5f | %.5f | %.5f | %.5f | %.5f |'):format(t, math.sqrt(sched:alpha_bar(t)), s.pred,
    s.x0, s.noisy, s.ref, s.mouth_x0, s.mouth_ref))
end
