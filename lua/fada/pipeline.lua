-- The main job: a portrait and a speech track in, a talking-head video out.
--
--   local pipeline = require 'fada.pipeline'
--   local summary = pipeline.sample{ref = 'examples/portrait.png', audio = 'examples/speech.wav',
--                                   out = 'out/demo.mp4'}
--
-- Long audio runs clip after clip: each clip of F frames takes the last M
-- generated frames of the previous clip as its motion frames, so memory stays
-- flat in the length. The reference net runs once per clip; its tokens are
-- reused by every step and every CFG branch.
--
-- Modes (FADA): 'teacher' = the teacher, 3 passes per step (nested multi-CFG);
-- 'balanced' = the distilled student with the same 3-pass multi-CFG; 'fast' =
-- the student with learnable CFG tokens, 1 pass per step; 'unguided' = any
-- model's fully conditioned pass alone, 1 pass per step, no guidance (the
-- baseline a step budget gives without distillation).
local fada = require 'fada'
local schedule = require 'fada.diffusion.schedule'
local samplers = require 'fada.diffusion.samplers'
local cfg = require 'fada.diffusion.cfg'
local progress = require 'fada.progress'
local user_code = require 'fada.diffusion.user_code'

local M = {}

M.defaults = {
  ref = 'examples/portrait.png', audio = 'examples/speech.wav', out = 'out/fadalua.mp4',
  model = 'weights/fada-teacher.safetensors', mode = 'teacher', steps = nil, sampler = 'ddim',
  cfg_ref = 2.0, cfg_audio = 3.5, cfg_schedule = 'constant', seed = 42, dtype = 'auto', fps = nil,
  clip_frames = nil, motion_frames = nil, spacing = 'trailing', eta = 0, crf = 18, progress = true,
  noise_share = 0, steps_offset = 0, interpolation = 'alpha_bar', prev_timestep = 'listed', set_alpha_to_one = true,
  timestep_scaling = 'none',
}
M.default_steps = {teacher = 25, balanced = 6, fast = 6, unguided = 6}

-- The sampling conventions (docs/sampling.md) as flags of scripts/sample.lua
-- and axes of fada.sweep: name, kind, default, help.
local d = M.defaults
M.SAMPLING_FLAGS = {
  {'spacing', 'string', d.spacing, 'where the steps fall: leading | trailing | linspace | karras | exponential'},
  {'steps_offset', 'int', d.steps_offset, "added to leading timesteps (diffusers' steps_offset; SD uses 1)"},
  {'interpolation', 'string', d.interpolation,
   'fractional timesteps interpolate alpha_bar | log_sigma (k-diffusion, diffusers)'},
  {'eta', 'number', d.eta, 'DDIM noise: 0 deterministic, 1 DDPM-like'},
  {'prev_timestep', 'string', d.prev_timestep,
   "where a step lands: listed (the next timestep) | ratio (t - T//n, diffusers' DDIM)"},
  {'set_alpha_to_one', 'bool', d.set_alpha_to_one,
   "true: the last step ends clean (alpha_bar 1); false: at alpha_bar_0 (diffusers' set_alpha_to_one=False)"},
  {'timestep_scaling', 'string', d.timestep_scaling,
   "lcm: diffusers' boundary condition c_skip/c_out with this scaling (its default 10) | none"},
}

local function fail(msg, ...) error(setmetatable({msg = msg:format(...)}, {__tostring = function(e) return e.msg end}), 0) end


-- A guidance scale w under the --cfg-schedule spec (the grammar of
-- fada.diffusion.cfg.schedule.parse): a number or f(i, n, t).
function M.scale_schedule(spec, w)
  local ok, s = pcall(cfg.schedule.parse, spec, w)
  if not ok then fail('sample: --cfg-schedule %s', s) end
  return s
end

-- Validates and completes the options; every message says what to change.
function M.check_options(o)
  local opts = {}
  for k, v in pairs(M.defaults) do opts[k] = v end
  for k, v in pairs(o or {}) do
    if M.defaults[k] == nil and k ~= 'steps' and k ~= 'fps' and k ~= 'clip_frames' and k ~= 'motion_frames'
       and k ~= 'frames_dir' and k ~= 'threads' and k ~= 'on_clip' then
      fail("sample: unknown option '%s'", k)
    end
    opts[k] = v
  end
  if not M.default_steps[opts.mode] then
    fail("sample: --mode must be teacher, balanced, fast or unguided, got '%s'", tostring(opts.mode))
  end
  opts.steps = opts.steps or M.default_steps[opts.mode]
  if type(opts.steps) ~= 'number' or opts.steps < 1 or opts.steps % 1 ~= 0 then
    fail('sample: --steps must be an integer >= 1, got %s', tostring(opts.steps))
  end
  for _, k in ipairs{'cfg_ref', 'cfg_audio'} do
    if type(opts[k]) ~= 'number' or opts[k] < 0 then
      fail('sample: --%s must be a number >= 0, got %s', k:gsub('_', '-'), tostring(opts[k]))
    end
  end
  M.scale_schedule(opts.cfg_schedule, 1) -- raises on an unknown schedule
  if user_code.is_file(opts.sampler) then
    local ok, err = pcall(user_code.load, opts.sampler, 'sampler')
    if not ok then fail('sample: --sampler %s', err) end
  elseif not samplers[opts.sampler] or opts.sampler == 'get' or opts.sampler == 'names' or opts.sampler == 'ddim_invert' then
    fail("sample: --sampler must be one of %s or file:path.lua, got '%s'", table.concat(samplers.names, ', '),
      tostring(opts.sampler))
  end
  local spacings = {leading = true, trailing = true, linspace = true, karras = true, exponential = true}
  if not spacings[opts.spacing] then
    fail("sample: --spacing must be leading, trailing, linspace, karras or exponential, got '%s'", tostring(opts.spacing))
  end
  if math.type(opts.steps_offset) ~= 'integer' or opts.steps_offset < 0 then
    fail('sample: --steps-offset must be an integer >= 0, got %s', tostring(opts.steps_offset))
  end
  if opts.steps_offset ~= 0 and opts.spacing ~= 'leading' then
    fail("sample: --steps-offset shifts leading timesteps only (as in diffusers); give --spacing leading, or drop it")
  end
  if opts.interpolation ~= 'alpha_bar' and opts.interpolation ~= 'log_sigma' then
    fail("sample: --interpolation must be alpha_bar or log_sigma, got '%s'", tostring(opts.interpolation))
  end
  if type(opts.eta) ~= 'number' or opts.eta < 0 then fail('sample: --eta must be a number >= 0, got %s', tostring(opts.eta)) end
  if opts.prev_timestep ~= 'listed' and opts.prev_timestep ~= 'ratio' then
    fail("sample: --prev-timestep must be listed or ratio, got '%s'", tostring(opts.prev_timestep))
  end
  if type(opts.set_alpha_to_one) ~= 'boolean' then
    fail('sample: --set-alpha-to-one must be true or false, got %s', tostring(opts.set_alpha_to_one))
  end
  if opts.timestep_scaling ~= 'none' then
    local k = tonumber(opts.timestep_scaling)
    if not k or not (k > 0) then
      fail("sample: --timestep-scaling must be a number > 0 (diffusers' LCM: 10) or none, got '%s'", tostring(opts.timestep_scaling))
    end
    if opts.sampler ~= 'lcm' and not user_code.is_file(opts.sampler) then
      fail("sample: --timestep-scaling is LCM's boundary condition: give --sampler lcm (got '%s')", tostring(opts.sampler))
    end
    opts.timestep_scaling = k
  end
  if type(opts.noise_share) ~= 'number' or opts.noise_share < 0 or opts.noise_share > 1 then
    fail('sample: --noise-share must be a number in [0, 1] (0 = independent noise per frame), got %s',
      tostring(opts.noise_share))
  end
  local dtype_ok, dtype_err = M.resolve_dtype(opts.dtype)
  if not dtype_ok then fail('sample: %s', dtype_err) end
  if type(opts.ref) == 'string' and not fada.readable(opts.ref) then
    fail("sample: cannot read the reference image '%s' (give --ref a PNG/JPEG portrait)", opts.ref)
  end
  if type(opts.audio) == 'string' and not fada.readable(opts.audio) then
    fail("sample: cannot read the audio '%s' (give --audio a WAV/MP3/FLAC/... file)", opts.audio)
  end
  if type(opts.model) == 'string' and not fada.readable(opts.model) then
    fail("sample: cannot read the model '%s' (give --model a fadalua checkpoint; see weights/)", opts.model)
  end
  return opts
end

-- The portrait as [1, 3, S, S] in [-1, 1]: centre-cropped to a square and
-- resized (area) to the model's size, with a note when that changed it. A
-- file is cropped and resized as it decodes (docs/io.md: memory), so a large
-- photo never exists whole in floats.
function M.load_portrait(ref, size, notes)
  if type(ref) == 'string' then
    local img, info = fada.image.load(ref, {channels = 3, size = size, fit = 'crop'})  -- [3, S, S] in [0, 1]
    local W, H, s = info.width, info.height, info.crop[3]
    if H ~= W then notes[#notes + 1] = ('portrait %dx%d centre-cropped to %dx%d'):format(W, H, s, s) end
    if s < size then
      notes[#notes + 1] = ('portrait %dx%d is smaller than the model\'s %dx%d: upscaled'):format(s, s, size, size)
    end
    return (img * 2 - 1):view(1, 3, size, size)
  end
  local img = ref                                                                       -- [3, H, W] in [0, 1]
  local H, W = img:size(2), img:size(3)
  if H ~= W then
    local s = math.min(H, W)
    img = fada.image.crop(img, (H - s) // 2 + 1, (W - s) // 2 + 1, s, s)
    notes[#notes + 1] = ('portrait %dx%d centre-cropped to %dx%d'):format(W, H, s, s)
  end
  if img:size(2) ~= size then
    if img:size(2) < size then
      notes[#notes + 1] = ('portrait %dx%d is smaller than the model\'s %dx%d: upscaled'):format(
        img:size(3), img:size(2), size, size)
    end
    img = fada.image.resize(img:contiguous(), size, size, img:size(2) > size and 'area' or 'bilinear')
  end
  return (img * 2 - 1):view(1, 3, size, size)
end

-- A clip's starting noise [F, C, h, w]: independent per frame (share 0, one
-- draw), or mixed, sqrt(1 - a)·ε_f + sqrt(a)·ε_shared, so every element keeps
-- unit variance and two frames correlate by a (share 1: all frames equal).
function M.initial_noise(shape, gen, share)
  local x = fada.randn(shape, gen)
  if not share or share == 0 then return x end
  local one = {1, table.unpack(shape, 2)}
  local shared = fada.randn(one, gen):expand(table.unpack(shape))
  return x * math.sqrt(1 - share) + shared * math.sqrt(share)
end

-- The compute dtype that --dtype names: 'auto' is bf16 where the CPU computes it
-- natively (AVX512-BF16 or AMX), f32 elsewhere. Held-out metrics at bf16 match
-- f32's clip by clip within 0.001 (docs/performance.md, sessions 11 and 12).
-- Any other value: nil and the message that says what to give.
function M.resolve_dtype(dtype)
  if dtype ~= 'f32' and dtype ~= 'bf16' and dtype ~= 'auto' then
    return nil, ("--dtype must be f32, bf16 or auto, got '%s'"):format(tostring(dtype))
  end
  if dtype ~= 'auto' then return dtype end
  local cpu = fada.cpu()
  return (cpu.avx512bf16 or cpu.amx_bf16) and 'bf16' or 'f32'
end

-- Runs the whole job; returns a summary table.
function M.sample(o)
  local opts = M.check_options(o)
  local t_start = fada.clock()
  if opts.threads then fada.set_num_threads(opts.threads) end
  local models = require 'fada.models'
  local model = type(opts.model) == 'table' and opts.model or models.load(opts.model)
  local mc = model.config
  if (opts.mode == 'fast' or opts.mode == 'balanced') and not mc.student then
    fail("sample: --mode %s needs a distilled student checkpoint; '%s' is a teacher (use --mode teacher)",
      opts.mode, tostring(opts.model))
  end
  local dtype = M.resolve_dtype(opts.dtype)
  fada.set_compute_dtype(dtype)
  local fps = opts.fps or mc.fps or 25
  local F = opts.clip_frames or mc.clip_frames
  local Mf = opts.motion_frames or mc.motion_frames or 0
  local size = mc.image_size
  local notes = {}

  -- inputs
  local portrait = M.load_portrait(opts.ref, size, notes)                     -- [1, 3, S, S]
  local sr = mc.audio.sample_rate
  local samples                                                               -- f32 [L] at the model's rate
  if type(opts.audio) == 'table' then
    samples = opts.audio.samples
    if opts.audio.sample_rate and opts.audio.sample_rate ~= sr then
      fail('sample: audio given at %d Hz; the model wants %d Hz (load it with fada.audio.load(path, {sample_rate = %d}))',
        opts.audio.sample_rate, sr, sr)
    end
  else
    samples = fada.audio.load(opts.audio, {sample_rate = sr})
  end
  local n_frames = math.max(1, math.ceil(samples:size(1) / sr * fps))
  if samples:size(1) < sr * 0.04 then notes[#notes + 1] = 'audio shorter than one frame: padded with silence' end
  if samples:size(1) == 0 or samples:abs():max():item() < 1e-4 then -- below -80 dBFS
    notes[#notes + 1] = 'the audio is silent: the avatar will keep its mouth closed'
  end
  local n_clips = math.ceil(n_frames / F)

  local sched = schedule.for_model(mc, {interpolation = opts.interpolation})
  local got, ts = pcall(sched.timesteps, sched, opts.steps, opts.spacing, {steps_offset = opts.steps_offset})
  if not got then fail('sample: --spacing %s: %s', opts.spacing, tostring(ts)) end
  local sampler = samplers.get(opts.sampler)
  local gen = fada.Generator(opts.seed)

  -- output: the writer renames its temporary file only on close, so a failure leaves nothing
  local writer
  if opts.out then
    fada.mkdir_parent(opts.out)
    writer = fada.video.writer(opts.out, {fps = fps, width = size, height = size, crf = opts.crf,
                                          audio = samples, sample_rate = sr})
  end
  if opts.frames_dir then fada.mkdir(opts.frames_dir) end

  local w_ref = M.scale_schedule(opts.cfg_schedule, opts.cfg_ref)
  local w_audio = M.scale_schedule(opts.cfg_schedule, opts.cfg_audio)
  local ok, nfe_total, written = pcall(function()
    local no_grad = fada.autograd.no_grad
    return no_grad(function()
      local ref_lat = model:encode(portrait)                                   -- [1, Cl, h, w]
      local Cl, h, w = ref_lat:size(2), ref_lat:size(3), ref_lat:size(4)
      local motion_lat                                                         -- [1, M, Cl, h, w]
      if Mf > 0 then motion_lat = ref_lat:unsqueeze(2):expand(1, Mf, Cl, h, w):contiguous() end
      local mel = model:audio_mel(samples, sr, n_frames)                       -- [n_mels, T·4 + ...]
      local bar = progress.new(n_clips * #ts, {label = 'sampling', unit = 'step', enabled = opts.progress ~= false})
      local nfe, kept = 0, 0
      for c = 1, n_clips do
        local first = (c - 1) * F                                              -- 0-based index of the clip's first frame
        local idx = {}
        for f = 1, F do idx[f] = math.min(first + f, n_frames) - 1 end         -- the last clip repeats the final window
        local atok = model:audio_tokens(model:audio_window_rows(mel, idx))     -- [F, Na, D]
        local ctx = model:reference(ref_lat, motion_lat)
        local denoise = function(x, t, branches, extra) return model:denoise(x, t, branches, extra, ctx, atok) end
        local strategy = opts.mode == 'fast' and cfg.tokens(denoise, w_ref, w_audio)
                         or opts.mode == 'unguided' and cfg.none(denoise) or cfg.multi(denoise, w_ref, w_audio)
        strategy.steps = #ts
        local xT = M.initial_noise({F, Cl, h, w}, gen, opts.noise_share)       -- [F, Cl, h, w]
        local t0 = fada.clock()
        local lat = sampler(strategy.model, xT, sched, ts, {generator = gen, eta = opts.eta,
          prev_timestep = opts.prev_timestep, set_alpha_to_one = opts.set_alpha_to_one,
          timestep_scaling = opts.timestep_scaling ~= 'none' and opts.timestep_scaling or nil, callback = function(i)
          bar:update((c - 1) * #ts + i, {['NFE/s'] = strategy.nfe / math.max(fada.clock() - t0, 1e-9)})
        end})
        nfe = nfe + strategy.nfe
        local frames = ((model:decode(lat) + 1) * 0.5):clamp(0, 1)              -- [F, 3, S, S] in [0, 1]
        local keep = math.min(F, n_frames - first)
        for f = 1, keep do
          local frame = frames:select(1, f)
          if writer then writer:write(frame) end
          if opts.frames_dir then fada.image.save(('%s/frame%06d.png'):format(opts.frames_dir, first + f), frame) end
        end
        kept = kept + keep
        if Mf > 0 then motion_lat = lat:narrow(1, F - Mf + 1, Mf):unsqueeze(1):contiguous() end
        if opts.on_clip then opts.on_clip(c, frames, lat) end
      end
      bar:finish()
      return nfe, kept
    end)
  end)
  if not ok then
    if writer then pcall(writer.abort or writer.close, writer) end
    error(nfe_total, 0)
  end
  if writer then writer:close() end
  local seconds = fada.clock() - t_start
  return {frames = written, clips = n_clips, clip_frames = F, nfe = nfe_total, nfe_per_step = nfe_total / n_clips / #ts,
          steps = #ts, seconds = seconds, seconds_per_frame = seconds / written,
          realtime_factor = seconds / (written / fps), out = opts.out, notes = notes, mode = opts.mode, dtype = dtype}
end

return M
