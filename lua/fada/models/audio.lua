-- Audio side of the FADA reconstruction: log-mel windows around each video
-- frame and the encoder that turns a window into a few tokens per frame.
local fada = require 'fada'
local F = require 'fada.F'
local nn = require 'fada.nn'

local M = {}

-- Mel frames per video frame and the window width W of a config.
function M.geometry(acfg, fps)
  local per = acfg.sample_rate / acfg.hop / fps
  if per ~= math.floor(per) then
    error(('audio: %g mel frames per video frame (sample_rate %d / hop %d / fps %g) must be a whole number'):format(
      per, acfg.sample_rate, acfg.hop, fps), 3)
  end
  return math.floor(per), math.floor(per) * (2 * acfg.context + 1)
end

-- Linear-interpolation resampling of a mono signal [L] (no anti-alias
-- filter: load files with fada.audio.load{sample_rate =} for that).
function M.resample(x, from, to)
  if from == to then return x end
  local L = x:size(1)
  local n = math.max(1, math.floor(L * to / from + 0.5))
  return fada.ops.resize_bilinear(x:contiguous():view(1, 1, 1, L), 1, n):view(n)
end

-- mel(samples [L] f32, sample_rate, n_frames, acfg, fps) -> the normalised
-- log-mel [n_mels, T] that the windows of n_frames video frames are cut
-- from (window_rows). The signal is zero-padded (silence) by ctx frames
-- before the start and up to the last window after the end.
function M.mel(samples, sample_rate, n_frames, acfg, fps)
  if not fada.is_tensor(samples) then error('audio_windows: samples must be a tensor [L]', 3) end
  if samples:dim() == 2 then samples = samples:mean(1) end
  if samples:dim() ~= 1 then
    error(('audio_windows: samples must be [L] (mono), got [%s]'):format(table.concat(samples:size(), ', ')), 3)
  end
  if n_frames < 1 then error(('audio_windows: n_frames must be >= 1, got %d'):format(n_frames), 3) end
  local x = M.resample(samples:to('f32'), sample_rate, acfg.sample_rate)
  local per = M.geometry(acfg, fps)
  local spf = per * acfg.hop                           -- samples per video frame
  local ctx = acfg.context
  local total = (n_frames + 2 * ctx + 1) * spf         -- enough for the last window
  local padded = fada.zeros(total)
  local n = math.min(x:size(1), total - ctx * spf)
  if n > 0 then padded:narrow(1, ctx * spf + 1, n):copy(x:narrow(1, 1, n)) end
  local mel = fada.audio.log_mel(padded, {sample_rate = acfg.sample_rate, n_fft = acfg.n_fft, hop = acfg.hop,
                                          n_mels = acfg.n_mels, floor = acfg.floor})   -- [n_mels, T]
  return (mel - acfg.mean) * (1 / acfg.std)
end

-- window_rows(mel [n_mels, T], frames {i, ...} (0-based), acfg, fps) -> [#frames, n_mels, W]:
-- frame i covers the mel frames of video frames i-ctx .. i+ctx.
function M.window_rows(mel, frames, acfg, fps)
  local per, W = M.geometry(acfg, fps)
  local wins = {}
  for k, i in ipairs(frames) do wins[k] = mel:narrow(2, i * per + 1, W) end
  return fada.stack(wins, 1):contiguous()
end

-- windows(samples [L] f32, sample_rate, n_frames, acfg, fps) -> [n_frames, n_mels, W]
-- (all frames at once; long audio takes mel + window_rows clip by clip).
function M.windows(samples, sample_rate, n_frames, acfg, fps)
  local mel = M.mel(samples, sample_rate, n_frames, acfg, fps)
  local frames = {}
  for i = 0, n_frames - 1 do frames[i + 1] = i end
  return M.window_rows(mel, frames, acfg, fps)
end

-- keys: conv1, conv2 (Conv1d), proj (Linear), pos [Na, D], norm, null_tokens [Na, D]
local AudioEncoder = nn.class('FadaAudioEncoder')
M.AudioEncoder = AudioEncoder

function AudioEncoder:init(acfg, fps, g)
  local _, W = M.geometry(acfg, fps)
  local D, Na = acfg.dim, acfg.tokens
  self.D, self.Na, self.W, self.n_mels = D, Na, W, acfg.n_mels
  self.conv1 = self:add('conv1', nn.Conv1d(acfg.n_mels, D, 3, {padding = 1, generator = g}))
  self.conv2 = self:add('conv2', nn.Conv1d(D, D, 3, {stride = 2, padding = 1, generator = g}))
  self.W2 = (W + 2 - 3) // 2 + 1
  self.proj = self:add('proj', nn.Linear(D * self.W2, Na * D, {generator = g}))
  self.pos = self:param('pos', fada.randn(Na, D, g) * 0.02)
  self.norm = self:add('norm', nn.LayerNorm(D))
  self.null_tokens = self:param('null_tokens', fada.randn(Na, D, g) * 0.02)
end

-- forward(win [N, n_mels, W]) -> tokens [N, Na, D]
function AudioEncoder:forward(win)
  if win:dim() ~= 3 or win:size(2) ~= self.n_mels or win:size(3) ~= self.W then
    error(('audio_tokens: windows [%s], expected [N, %d, %d]'):format(table.concat(win:size(), ', '),
      self.n_mels, self.W), 3)
  end
  local N = win:size(1)
  local h = F.silu(self.conv1(win))
  h = F.silu(self.conv2(h))                           -- [N, D, W2]
  h = self.proj(F.reshape(h, N, self.D * self.W2))    -- [N, Na·D]
  return self.norm(F.view(h, N, self.Na, self.D) + F.view(self.pos, 1, self.Na, self.D))
end

return M
