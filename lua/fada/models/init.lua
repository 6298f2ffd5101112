-- fada.models: the FADA talking-avatar models as Lua modules.
--
-- A *reconstruction* (the paper's body is not public; docs/method.md says what
-- it states and what we inferred). Every choice below is a config key,
-- and the config is stored in the checkpoint's metadata.
--
--   local models = require 'fada.models'
--   local cfg = models.config('mini')            -- or 'tiny' (tests), models.config('mini', {overrides})
--   local m = models.FadaModel(cfg)              -- cfg.student = {token_dim = 64} makes a student
--   models.save(m, path, {metadata}, {dtype = 'f16'})  /  local m = models.load(path, {dtype = 'f32'})
--   local lat = m:encode(frames)                 -- [N, 3, H, W] in [-1, 1] -> [N, Cl, h, w]; m:decode(lat)
--   local win = m:audio_windows(samples, sr, n_frames)   -- [n_frames, n_mels, W]
--   local mel = m:audio_mel(samples, sr, n_frames); m:audio_window_rows(mel, {0, 1, ...})  -- the same, in parts
--   local atok = m:audio_tokens(win)             -- [B·F, Na, D]
--   local ctx = m:reference(ref_lat [B, Cl, h, w], motion_lat [B, M, Cl, h, w] or nil)   -- once per clip
--   local out = m:denoise(x [n·B·F, Cl, h, w], t, branches, extra, ctx, atok)   -- see fada.diffusion.cfg
--                                                -- (F is taken from x: n·B·F rows; cfg.clip_frames is the default)
--   models.flops(cfg_or_model) -> FLOPs of one frame's denoiser pass (measured by counting ops)
--   models.student_from(teacher, {token_dim = 64, time_control = true}) -> a student holding the teacher's weights
--   models.digest(path) -> 'size:hash' of a weights file (resume journals, a student's teacher)
--   m:named_parameters()                         -- the trainable ones (a frozen VAE is left out)
-- In eval mode (models.load gives one) every call runs without autograd
-- recording; in train mode the same calls record for fada.autograd. At
-- inference q/k/v come from one stacked GEMM; attention is the flash kernel
-- (nn.Attention.attend) in both modes.
--
-- Architecture (keys of the config in brackets):
-- * E, frozen [latent]: 's2d' = space-to-depth by `factor` (mini: 2, 64x64 RGB ->
--   12x32x32, lossless, no weights), or 'vae' = an AutoencoderKL-shaped VAE with
--   diffusers key names (vae.encoder.*, vae.decoder.*), posterior mean x scaling_factor.
-- * Denoising UNet over frames (B·F rows) [channels, num_res_blocks, groups]: conv_in;
--   per level ResBlocks (GroupNorm+SiLU+conv3x3; the time embedding as scale-shift
--   [time_mode = 'scale_shift' | 'add']), an attention block after each ResBlock of
--   the levels in [attn_levels], stride-2 conv downsampling; a middle of [mid_res]
--   ResBlocks with an attention block after the first [mid_attn]; the up path
--   mirrors it with one skip (the matching down ResBlock's output) concatenated
--   per ResBlock, nearest x2 + conv upsampling; GroupNorm+SiLU+conv_out. Output in
--   [prediction] ('v' or 'eps'). Sinusoidal time embedding (dim channels[1]) + MLP to [time_dim].
-- * Attention block [head_dim, ff_mult, temporal]: LayerNorm -> self-attention over
--   the frame's own tokens PLUS that level's reference tokens ("reference
--   attention", the same to_k/to_v project both) -> LayerNorm -> audio
--   cross-attention (queries = pixels, keys = the frame's Na audio tokens) ->
--   LayerNorm (+ sinusoidal frame position) -> temporal self-attention across the
--   F frames of a clip at each position -> LayerNorm -> feed-forward (GELU); each
--   with a residual. [ref_concat]: the reference latent is also concatenated to
--   the UNet's input channels (cheap and strong for identity).
-- * Reference net: the UNet's down path (conv_in + ResBlocks + downsampling, no time
--   input, its own weights) on the reference latent with the [motion_frames] latents
--   of the previous clip concatenated on channels (zeros when there are none yet);
--   it returns per level the tokens [B, h_l·w_l, C_l] after the level's last
--   ResBlock; every attention block of that level (down, mid = deepest, up) uses
--   them. Run once per clip; the projected k/v are cached in the context across
--   steps and CFG branches.
-- * Audio [audio]: log-mel (torchaudio conventions: sample_rate 16 kHz, n_fft 400,
--   hop 160 -> 100 frames/s, n_mels) of the ±context video frames around each
--   frame (W = (2·context+1)·4 mel frames at 25 fps), normalised by (x − mean)/std;
--   conv1d(k3)+SiLU, conv1d(k3, stride 2)+SiLU, Linear -> Na tokens of dim D, plus a
--   learned position table, LayerNorm.
-- * Conditioning drop [drop, null_audio] (swappable): per branch whether the
--   reference is used (reference tokens in attn1 and the ref_concat channels; when
--   off, attn1 sees the own tokens only and the concat channels are zeros) and
--   whether audio is used (off: the learned null tokens, or zeros with
--   null_audio = 'zeros'). Defaults: base = neither, ref = reference only, audio =
--   both, tokens (student) = both.
-- * Student [student = {token_dim}]: three learnable CFG tokens cfg_tokens [3, token_dim]
--   (τ_base, τ_ref, τ_audio), mixed as τ = τ_base + w_ref(τ_ref − τ_base) + w_audio(τ_audio − τ_ref)
--   (fada.models.guidance_mix), and a zero-initialised CFG control layer
--   unet.cfg_ctrl.K = Linear(token_dim -> C) per UNet block (every ResBlock and
--   attention block), whose output is added to the block's output; with
--   [student.time_control] also unet.cfg_ctrl.time = Linear(token_dim -> time_dim),
--   zero-initialised, added to the time embedding before its SiLU, so every
--   ResBlock's scale-shift sees the scales together with t. A fresh
--   student therefore equals the teacher's fully-conditioned output for any
--   scales. In a student, the branches base/ref/audio get τ_base/τ_ref/τ_audio
--   (the mix at (0,0), (1,0), (1,1)), so FADA-Balanced runs the 3-pass multi-CFG
--   on the student too. With [student.branch_tokens] the branches get tokens of
--   their own instead, cfg_branch_tokens [3, token_dim]: the shared τ_base means
--   "remove both conditions" in token mode, where every condition is present, but
--   the base branch has already removed them, so one token cannot serve both
--   (the distillation trains the branches with --balanced-share).
local fada = require 'fada'
local A = require 'fada.autograd'
local F = require 'fada.F'
local nn = require 'fada.nn'
local unet = require 'fada.models.unet'
local audio = require 'fada.models.audio'
local latent = require 'fada.models.latent'
local guidance_mix = require 'fada.models.guidance_mix'

local models = {}

-- ---- configs --------------------------------------------------------------------------

local function deepcopy(t)
  if type(t) ~= 'table' then return t end
  local c = {}
  for k, v in pairs(t) do c[k] = deepcopy(v) end
  return c
end

local function merge(dst, src)
  for k, v in pairs(src) do
    if type(v) == 'table' and type(dst[k]) == 'table' and #v == 0 then merge(dst[k], v) else dst[k] = deepcopy(v) end
  end
  return dst
end

local DROP = {base = {ref = false, audio = false}, ref = {ref = true, audio = false},
              audio = {ref = true, audio = true}, tokens = {ref = true, audio = true}}

local PRESETS = {}
PRESETS.mini = {
  name = 'mini', image_size = 64, fps = 25, clip_frames = 8, motion_frames = 2,
  latent = {kind = 's2d', factor = 2},
  channels = {64, 128, 192}, num_res_blocks = 1, attn_levels = {false, true, true},
  mid_res = 1, mid_attn = true, head_dim = 64, ff_mult = 2, groups = 32,
  time_dim = 256, time_mode = 'scale_shift', temporal = true, ref_concat = true,
  audio = {sample_rate = 16000, n_fft = 400, hop = 160, n_mels = 40, context = 2, dim = 128, tokens = 4,
           floor = 1e-5, mean = -5, std = 4},
  drop = DROP, null_audio = 'learned',
  prediction = 'v', schedule = {beta_schedule = 'scaled_linear', zero_terminal_snr = true, T = 1000},
  seed = 0,
}
PRESETS.tiny = merge(deepcopy(PRESETS.mini), {
  name = 'tiny', image_size = 16, clip_frames = 3, motion_frames = 1,
  channels = {16, 32}, attn_levels = {false, true}, head_dim = 16, groups = 8, time_dim = 32,
  audio = {n_mels = 16, dim = 16, tokens = 2},
})

-- Integral floats (from JSON) back to integers, recursively.
local function ints(t)
  for k, v in pairs(t) do
    if type(v) == 'number' then t[k] = math.tointeger(v) or v
    elseif type(v) == 'table' then ints(v) end
  end
  return t
end

-- Fills derived fields (latent.channels) and checks the config.
local function normalize(cfg)
  cfg = ints(deepcopy(cfg))
  cfg.latent.channels = latent.shape(cfg.latent)
  cfg.drop = cfg.drop or deepcopy(DROP)
  for _, b in ipairs{'base', 'ref', 'audio', 'tokens'} do
    if not cfg.drop[b] then error(('config: drop.%s is missing'):format(b), 3) end
  end
  if #cfg.attn_levels ~= #cfg.channels then
    error(('config: attn_levels has %d entries for %d levels'):format(#cfg.attn_levels, #cfg.channels), 3)
  end
  if cfg.prediction ~= 'v' and cfg.prediction ~= 'eps' and cfg.prediction ~= 'x0' then
    error(("config: prediction must be 'v', 'eps' or 'x0', got %s"):format(tostring(cfg.prediction)), 3)
  end
  if cfg.student then cfg.student.token_dim = cfg.student.token_dim or 64 end
  return cfg
end

-- models.config(name = 'mini', [overrides]) -> a fresh config table
function models.config(name, overrides)
  name = name or 'mini'
  local p = PRESETS[name]
  if not p then error(("models.config: unknown config '%s' (mini, tiny)"):format(tostring(name)), 2) end
  return normalize(merge(deepcopy(p), overrides or {}))
end

-- ---- the model --------------------------------------------------------------------------

local FadaModel = nn.class('FadaModel')
models.FadaModel = FadaModel

function FadaModel:init(cfg)
  cfg = normalize(cfg)
  self.config = cfg
  local g = fada.Generator(cfg.seed or 0)
  if cfg.latent.kind == 'vae' then
    self.vae = self:add('vae', latent.VAE(cfg.latent, g))
    self.vae:walk(function(_, t) A.requires_grad(t, false) end)   -- frozen
    self.E = self.vae
  else
    self.E = latent.S2D(cfg.latent)
  end
  self.unet = self:add('unet', unet.UNet(cfg, g))
  self.refnet = self:add('refnet', unet.RefNet(cfg, g))
  self.audio = self:add('audio', audio.AudioEncoder(cfg.audio, cfg.fps, g))
  if cfg.student then
    self.cfg_tokens = self:param('cfg_tokens', fada.randn(3, cfg.student.token_dim, g))
    if cfg.student.branch_tokens then
      self.cfg_branch_tokens = self:param('cfg_branch_tokens', fada.randn(3, cfg.student.token_dim, g))
    end
  end
  self._pos = {}
end

-- Trainable parameters (the frozen VAE excluded).
function FadaModel:named_parameters()
  local list = {}
  for _, p in ipairs(nn.Module.named_parameters(self)) do
    if not p.name:find('^vae%.') then list[#list + 1] = p end
  end
  return list
end

-- Runs fn without recording when the model is in eval mode.
local function run(self, fn, ...)
  if self.training then return fn(...) end
  return A.no_grad(fn, ...)
end

local function shape_str(t) return '[' .. table.concat(t:size(), ', ') .. ']' end

function FadaModel:encode(frames)
  if not fada.is_tensor(frames) or frames:dim() ~= 4 or frames:size(2) ~= 3 then
    error(('encode: frames must be [N, 3, H, W], got %s'):format(fada.is_tensor(frames) and shape_str(frames) or
      type(frames)), 2)
  end
  return A.no_grad(function() return self.E:encode(frames:to('f32')) end)
end

function FadaModel:decode(lat)
  local Cl = self.config.latent.channels
  if not fada.is_tensor(lat) or lat:dim() ~= 4 or lat:size(2) ~= Cl then
    error(('decode: latents must be [N, %d, h, w], got %s'):format(Cl, fada.is_tensor(lat) and shape_str(lat) or
      type(lat)), 2)
  end
  return A.no_grad(function() return self.E:decode(lat) end)
end

function FadaModel:audio_windows(samples, sample_rate, n_frames)
  return audio.windows(samples, sample_rate, n_frames, self.config.audio, self.config.fps)
end

-- The same in two stages, for long audio: the normalised log-mel once, then
-- the windows of some frames (0-based) at a time.
function FadaModel:audio_mel(samples, sample_rate, n_frames)
  return audio.mel(samples, sample_rate, n_frames, self.config.audio, self.config.fps)
end
function FadaModel:audio_window_rows(mel, frames)
  return audio.window_rows(mel, frames, self.config.audio, self.config.fps)
end

function FadaModel:audio_tokens(win) return run(self, function() return self.audio(win) end) end

-- reference(ref_lat [B, Cl, h, w], motion_lat [B, M, Cl, h, w] or nil) -> ctx
function FadaModel:reference(ref_lat, motion_lat)
  local cfg = self.config
  local Cl, M = cfg.latent.channels, cfg.motion_frames
  if not fada.is_tensor(ref_lat) or ref_lat:dim() ~= 4 or ref_lat:size(2) ~= Cl then
    error(('reference: ref_lat must be [B, %d, h, w], got %s'):format(Cl, fada.is_tensor(ref_lat) and
      shape_str(ref_lat) or type(ref_lat)), 2)
  end
  local B, h, w = ref_lat:size(1), ref_lat:size(3), ref_lat:size(4)
  if motion_lat ~= nil then
    local want = {B, M, Cl, h, w}
    local ok = motion_lat:dim() == 5
    for i = 1, 5 do ok = ok and motion_lat:size(i) == want[i] end
    if not ok then
      error(('reference: motion_lat must be [%d, %d, %d, %d, %d] (B, motion_frames, Cl, h, w), got %s'):format(
        B, M, Cl, h, w, shape_str(motion_lat)), 2)
    end
  end
  return run(self, function()
    local x = ref_lat
    if M > 0 then
      local mot = motion_lat and F.reshape(motion_lat, B, M * Cl, h, w) or fada.zeros(B, M * Cl, h, w)
      x = F.cat({ref_lat, mot}, 2)
    end
    return {B = B, h = h, w = w, ref_lat = ref_lat, tokens = self.refnet(x), kv = {}, cache = {}}
  end)
end

-- The sinusoidal frame-position table [F, C] (constant, not a parameter).
function FadaModel:_position(Fr, C)
  local key = Fr .. 'x' .. C
  if not self._pos[key] then self._pos[key] = unet.position_table(Fr, C) end
  return self._pos[key]
end

-- The student's mixed token τ for one branch: [1, token_dim], or [B, token_dim]
-- when the scales are lists with one value per clip.
function FadaModel:_tau(branch, extra, B)
  local row = {base = 1, ref = 2, audio = 3}
  if row[branch] then return F.narrow(self.cfg_branch_tokens or self.cfg_tokens, 1, row[branch], 1) end
  local tk = self.cfg_tokens
  local tb, tr, ta = F.narrow(tk, 1, 1, 1), F.narrow(tk, 1, 2, 1), F.narrow(tk, 1, 3, 1)
  local wr, wa = extra and extra.w_ref, extra and extra.w_audio
  if type(wr) == 'number' and type(wa) == 'number' then return guidance_mix(tb, tr, ta, wr, wa) end
  if type(wr) == 'table' and type(wa) == 'table' and #wr == B and #wa == B then
    local col = function(v) return fada.tensor(v):view(B, 1) end       -- [B, 1]
    return guidance_mix(tb, tr, ta, col(wr), col(wa))                   -- [B, token_dim]
  end
  error(("denoise: the 'tokens' branch needs extra = {w_ref =, w_audio =}, each a number or a list of %d "
    .. '(one per clip)'):format(B), 4)
end

-- denoise(x [n·B·F, Cl, h, w], t, branches, extra, ctx, atok [B·F, Na, D]) -> [n·B·F, Cl, h, w]
function FadaModel:denoise(x, t, branches, extra, ctx, atok)
  local cfg = self.config
  local Fr, Cl = cfg.clip_frames, cfg.latent.channels
  if type(branches) ~= 'table' or #branches == 0 then error('denoise: branches must be a non-empty list', 2) end
  if type(ctx) ~= 'table' or not ctx.tokens then error('denoise: ctx must come from m:reference(...)', 2) end
  local B, n = ctx.B, #branches
  -- F follows x (any clip length; cfg.clip_frames is the default the pipeline uses)
  if fada.is_tensor(x) and x:dim() == 4 and x:size(1) % (n * B) == 0 and x:size(1) > 0 then Fr = x:size(1) // (n * B) end
  local BF = B * Fr
  if not fada.is_tensor(x) or x:dim() ~= 4 or x:size(1) ~= n * BF or x:size(2) ~= Cl or x:size(3) ~= ctx.h or
     x:size(4) ~= ctx.w then
    error(('denoise: x must be [n·B·F, %d, %d, %d] with n = %d branches, B = %d clips (F frames each), got %s'):format(
      Cl, ctx.h, ctx.w, n, B, fada.is_tensor(x) and shape_str(x) or type(x)), 2)
  end
  local groups, needs_audio = {}, false
  for i, br in ipairs(branches) do
    local d = cfg.drop[br]
    if not d then
      error(("denoise: unknown branch '%s' (base, ref, audio, tokens)"):format(tostring(br)), 2)
    end
    if br == 'tokens' and not cfg.student then
      error("denoise: the 'tokens' branch needs a student model (config.student)", 2)
    end
    needs_audio = needs_audio or d.audio
    local last = groups[#groups]
    if last and last.ref == d.ref then last.rows = last.rows + BF
    else groups[#groups + 1] = {first = (i - 1) * BF + 1, rows = BF, ref = d.ref} end
  end
  if needs_audio then
    if not fada.is_tensor(atok) or atok:dim() ~= 3 or atok:size(1) ~= BF then
      error(('denoise: atok must be [%d, Na, D] (B x F rows of audio tokens), got %s'):format(BF,
        fada.is_tensor(atok) and shape_str(atok) or type(atok)), 2)
    end
  end
  if type(t) ~= 'number' and not (fada.is_tensor(t) and t:numel() == n * BF) then
    error(('denoise: t must be a number or a tensor of %d timesteps'):format(n * BF), 2)
  end
  return run(self, function()
    local enc = self.audio
    -- per-row audio tokens
    local null
    local parts = {}
    for i, br in ipairs(branches) do
      if cfg.drop[br].audio then parts[i] = atok
      else
        if not null then
          local z = cfg.null_audio == 'zeros' and F.kernels.zeros(enc.Na, enc.D) or enc.null_tokens
          null = F.expand(F.view(z, 1, enc.Na, enc.D), BF, enc.Na, enc.D)
        end
        parts[i] = null
      end
    end
    local arows = n == 1 and parts[1] or F.cat(parts, 1)
    -- input, with the reference latent on extra channels
    local xin = x
    if cfg.ref_concat then
      local rl = ctx.cache['refrep' .. Fr]
      if not rl then
        local r = ctx.ref_lat
        rl = F.reshape(F.expand(F.view(r, B, 1, Cl, ctx.h, ctx.w), B, Fr, Cl, ctx.h, ctx.w), BF, Cl, ctx.h, ctx.w)
        ctx.cache['refrep' .. Fr] = rl
      end
      local zeros
      local cp = {}
      for i, br in ipairs(branches) do
        if cfg.drop[br].ref then cp[i] = rl
        else
          zeros = zeros or fada.zeros(BF, Cl, ctx.h, ctx.w)
          cp[i] = zeros
        end
      end
      xin = F.cat({x, n == 1 and cp[1] or F.cat(cp, 1)}, 2)
    end
    local tt = type(t) == 'number' and fada.full({1}, t) or t:to('f32'):contiguous():view(-1)
    local tau
    if cfg.student then
      local taus = {}
      local per_clip = false
      for i, br in ipairs(branches) do
        taus[i] = self:_tau(br, extra, B)
        per_clip = per_clip or taus[i]:size(1) > 1
      end
      if per_clip then -- one token per clip block of F rows in every branch
        for i, tk in ipairs(taus) do
          if tk:size(1) == 1 then taus[i] = F.expand(tk, B, tk:size(2)) end
        end
      end
      tau = n == 1 and taus[1] or F.cat(taus, 1)                -- [n or n·B, token_dim]
    end
    local emb = self.unet:time_embedding(tt, tau, n * BF)       -- [1, n or n·BF, temb]
    local st = {groups = groups, audio = arows, ctx = ctx, Fr = Fr, B = B,
                pos = function(C) return self:_position(Fr, C) end}
    return self.unet(xin, emb, st, tau)
  end)
end

-- models.student_from(teacher, {token_dim = 64, time_control = true, branch_tokens = false}):
-- the teacher's config plus the student additions, with the teacher's weights
-- (the CFG tokens keep their seeded init, the control layers are zero, so it
-- starts equal to the teacher). time_control = false gives the block-bias control
-- alone. From a student (a second stage), its own student settings are kept and
-- branch_tokens = true adds branch tokens that start as copies of its CFG tokens,
-- so the new model equals the old one in every mode.
function models.student_from(teacher, opts)
  opts = opts or {}
  local cfg = deepcopy(teacher.config)
  local was = cfg.student
  local time_control = opts.time_control
  if time_control == nil then time_control = not was or was.time_control == true end
  cfg.student = {token_dim = opts.token_dim or (was and was.token_dim) or 64, time_control = time_control,
                 branch_tokens = opts.branch_tokens or (was and was.branch_tokens) or nil}
  if was and cfg.student.token_dim ~= was.token_dim then
    error(('student_from: the model already is a student with token_dim %d, asked for %d'):format(was.token_dim,
      cfg.student.token_dim), 2)
  end
  local s = FadaModel(cfg)
  local sd = teacher:state_dict()
  s:load_state_dict(sd, {strict = false})
  if s.cfg_branch_tokens and not sd.cfg_branch_tokens and sd.cfg_tokens then s.cfg_branch_tokens:copy(sd.cfg_tokens) end
  return s:train(teacher.training)
end

-- ---- checkpoints -----------------------------------------------------------------------------

-- models.save(m, path, [metadata {k = v}], [opts {dtype = 'f16' | 'bf16' | 'f32'}])
function models.save(m, path, metadata, opts)
  opts = opts or {}
  local sd = {}
  for k, t in pairs(m:state_dict()) do sd[k] = opts.dtype and t:to(opts.dtype) or t end
  local meta = {format = 'fada', model = 'FadaModel'}
  for k, v in pairs(metadata or {}) do meta[k] = type(v) == 'string' and v or tostring(v) end
  fada.safetensors.save(path, sd, {config = m.config, metadata = meta})
end

-- models.load(path, {dtype = 'f32'}) -> model in eval mode (m.metadata holds the metadata)
-- Its errors are about the file, so they carry no Lua position (level 0).
function models.load(path, opts)
  opts = opts or {}
  local ok, tensors, meta, config = pcall(fada.safetensors.load, path, {dtype = opts.dtype or 'f32'})
  if not ok then error(('models.load: %s'):format(tostring(tensors)), 0) end
  if type(config) ~= 'table' then
    error(('models.load: %s has no model config in its metadata (not saved by models.save)'):format(path), 0)
  end
  if config.checkpoint and config.model then -- a training checkpoint (train/checkpoint.lua)
    error(('models.load: %s is a training checkpoint (step %s: weights, EMA, optimiser state), not a model; '
      .. 'export its EMA weights first: fadalua scripts/train_teacher.lua --out <its run folder> --export model.safetensors '
      .. '(distill_student.lua for a student run)'):format(path, tostring(config.checkpoint.step)), 0)
  end
  local okb, m = pcall(FadaModel, config)
  if not okb then error(('models.load: %s: cannot build the stored config: %s'):format(path, tostring(m)), 0) end
  local okl, err = pcall(m.load_state_dict, m, tensors)
  if not okl then
    error(('models.load: %s: the stored config does not match the tensors: %s'):format(path,
      tostring(err):gsub('^.-load_state_dict: ', '')), 0)
  end
  m.metadata = meta
  m:eval()
  return m
end

-- models.digest(path) -> 'size:hash' of a weights file, to tell two files apart:
-- a 64-bit multiply-add hash over every byte (0.4 s for the 17-MB mini model).
-- Not a cryptographic hash.
function models.digest(path)
  local fh, err = io.open(path, 'rb')
  if not fh then error(('models.digest: %s'):format(err), 0) end
  local h, size = 0, 0
  while true do
    local chunk = fh:read(1 << 20)
    if not chunk then break end
    size = size + #chunk
    local whole = #chunk - #chunk % 8
    for i = 1, whole, 8 do h = (h * 1099511628211 + string.unpack('<i8', chunk, i)) & 0x7fffffffffffffff end
    for i = whole + 1, #chunk do h = (h * 1099511628211 + chunk:byte(i)) & 0x7fffffffffffffff end
  end
  fh:close()
  return ('%d:%x'):format(size, h)
end

-- ---- FLOPs ------------------------------------------------------------------------------------

-- models.count_flops(fn): F.count_flops, the FLOPs of the convolutions,
-- linear maps and attention fn runs.
models.count_flops = F.count_flops

-- models.flops(cfg or model) -> {denoiser = per frame per NFE, refnet = per clip,
-- audio = per frame, frames = F, image = size}, measured on one clip of
-- cfg.clip_frames frames at cfg.image_size.
function models.flops(x)
  local m = (type(x) == 'table' and x.unet) and x or FadaModel(x)
  local cfg = m.config
  local Fr, Cl = cfg.clip_frames, cfg.latent.channels
  local _, factor = latent.shape(cfg.latent)
  local hw = cfg.image_size // factor
  local res = {frames = Fr, image = cfg.image_size}
  A.no_grad(function()
    local ref = fada.randn(1, Cl, hw, hw)
    local ctx
    res.refnet = models.count_flops(function() ctx = m:reference(ref) end)
    local win = fada.randn(Fr, cfg.audio.n_mels, m.audio.W)
    local atok
    res.audio = models.count_flops(function() atok = m:audio_tokens(win) end) / Fr
    local kvf = models.count_flops(function()
      m:denoise(fada.randn(Fr, Cl, hw, hw), 500, {'audio'}, nil, ctx, atok)
    end)
    -- the first call also projected the reference tokens (once per clip): count them apart
    local again = models.count_flops(function()
      m:denoise(fada.randn(Fr, Cl, hw, hw), 500, {'audio'}, nil, ctx, atok)
    end)
    res.denoiser = again / Fr
    res.ref_kv = kvf - again
  end)
  res.params = m:num_parameters()
  return res
end

return models
