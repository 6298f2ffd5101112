-- The training data loader: clips decoded through fada.video's reader (the
-- FFmpeg path a user's own talking-head MP4s take), cached in memory as u8,
-- served as seeded random samples and batches.
--
--   local loader = require 'fada.data.loader'
--   local ld = loader.open('data/avatars/hq-train', {frames = 8, motion = 2, batch = 8, seed = 1})
--   ld:preload()                  -- decode every clip now (else on first use)
--   local b = ld:batch()
--   b.ref     f32 [B, 3, S, S]     in [-1, 1]: a frame of the same clip (or of the same identity)
--   b.motion  f32 [B, M, 3, S, S]  the M frames before the clip
--   b.frames  f32 [B, F, 3, S, S]  F consecutive frames
--   b.audio   f32 [B, F * hop]     the clip's samples under those frames (or what opts.audio makes)
--   b.truth   {open = f32 [B, F], round, dx, dy, roll, yaw, blink}  (nil without sidecars)
--   b.clip, b.start                Lua arrays: clip names and first frame indices
--
-- `path` is a dataset folder (manifest.jsonl + MP4s or PNG folders +
-- sidecars, from scripts/make_dataset.lua) or any folder of .mp4 files
-- (frames + audio, no ground truth), or a list of such folders.
local fada = require 'fada'
local jsonl = require 'fada.data.jsonl'

local M = {}

local Loader = {}
Loader.__index = Loader

M.TRUTH = {'open', 'round', 'dx', 'dy', 'roll', 'yaw', 'blink'}


local function list_files(dir, pattern)
  local out = {}
  local p = io.popen(('ls -1 %s 2>/dev/null'):format(fada.shell_quote(dir)))
  for name in p:lines() do
    if name:match(pattern) then out[#out + 1] = name end
  end
  p:close()
  table.sort(out)
  return out
end

-- ---- opening -------------------------------------------------------------------

-- opts: frames (F, default 8), motion (M, default 2), batch (B, default 8),
-- seed (default 1), size (resize frames on decode; default the source's),
-- sample_rate (16000), ref ('clip' | 'identity', default 'clip'),
-- audio (nil for the samples span, or function(clip, start, F) -> tensor,
--   where clip.frames is u8 [N, H, W, 3], clip.audio f32 [n] at sample_rate,
--   clip.fps, clip.name, clip.truth; see M.mel_windows),
-- split/tier (keep only manifest rows of that split/tier),
-- max_cached (decoded clips kept in memory, default all),
-- prefetch (default true: each batch() starts decoding the next batch's
--   clips on background threads; the samples do not depend on it).
function M.open(path, opts)
  opts = opts or {}
  local self = setmetatable({}, Loader)
  self.path = path
  self.F = opts.frames or 8
  self.M = opts.motion or 2
  self.B = opts.batch or 8
  self.size = opts.size
  self.sample_rate = opts.sample_rate or 16000
  self.ref_mode = opts.ref or 'clip'
  self.audio_fn = opts.audio
  self.generator = fada.Generator(opts.seed or 1)   -- checkpoint it to resume the sample stream
  self.clips = {}
  self.decode_seconds = 0
  -- decoded clips kept in memory (least recently used dropped beyond this;
  -- unlimited by default: 300 clips of 90 frames are 330 MB at 64x64)
  self.max_cached = math.max(2, opts.max_cached or math.huge) -- a sample may need two (reference)
  self.cached, self.tick = 0, 0
  -- background decodes of the next batch's clips (fada.decode_async)
  self.prefetch = opts.prefetch ~= false
  self.jobs, self.prefetched = {}, 0
  -- several folders (e.g. the hq and the moderate tier for a student) are
  -- served as one set of clips
  local folders = type(path) == 'table' and path or {path}
  for _, dir in ipairs(folders) do self:add_folder(dir, opts) end
  if #self.clips == 0 then
    error(('loader.open: %s: no manifest.jsonl and no .mp4 files'):format(table.concat(folders, ', ')), 2)
  end
  -- clips of each identity, for references from another clip of the same person
  self.by_identity = {}
  for i, c in ipairs(self.clips) do
    local l = self.by_identity[c.identity] or {}
    l[#l + 1] = i
    self.by_identity[c.identity] = l
  end
  return self
end

-- Adds the clips of one folder: a manifest's rows, or every .mp4 in it.
function Loader:add_folder(dir, opts)
  local manifest = dir .. '/manifest.jsonl'
  if fada.readable(manifest) then
    for _, row in ipairs(jsonl.read(manifest)) do
      if (not opts.split or row.split == opts.split) and (not opts.tier or row.tier == opts.tier) then
        self.clips[#self.clips + 1] = {name = row.clip, row = row, video = dir .. '/' .. row.video,
          audio_path = row.audio and (dir .. '/' .. row.audio) or nil,
          sidecar = row.sidecar and (dir .. '/' .. row.sidecar) or nil,
          identity = row.identity_seed, manifest_frames = row.frames, fps = row.fps}
      end
    end
  else
    for _, name in ipairs(list_files(dir, '%.[mM][pP]4$')) do
      self.clips[#self.clips + 1] = {name = name:gsub('%.[mM][pP]4$', ''), video = dir .. '/' .. name,
                                     identity = dir .. '/' .. name}
    end
  end
end

-- ---- decoding (cached) ---------------------------------------------------------------

local function read_png_folder(dir, size)
  local files = list_files(dir, '%.png$')
  local frames = {}
  for i, f in ipairs(files) do
    local img = fada.image.load(dir .. '/' .. f, {dtype = 'u8', channels = 3})     -- u8 [H, W, 3]
    if size and (img:size(1) ~= size or img:size(2) ~= size) then
      img = fada.image.resize(img:permute(3, 1, 2):to('f32'), size, size, 'area')  -- [3, S, S]
      img = (img:clamp(0, 255) + 0.5):permute(2, 3, 1):to('u8')
    end
    frames[i] = img
  end
  return fada.stack(frames, 1)                                                     -- u8 [N, H, W, 3]
end

-- Decodes clip i into memory (once): frames u8 [N, H, W, 3], audio f32 [n],
-- truth (Lua arrays from the sidecar) or nil.
function Loader:decode(i)
  local c = self.clips[i]
  self.tick = self.tick + 1
  c.used = self.tick
  if c.frames then return c end
  if self.cached >= self.max_cached then self:evict() end
  local t0 = fada.clock()
  if c.video:match('%.[mM][pP]4$') then
    if not fada.video then
      error(('loader: %s is an MP4 but fada.video is not built in'):format(c.video), 2)
    end
    local job = self.jobs[i]
    if job then -- started by prefetch_next; wait() only blocks if it is not done yet
      self.jobs[i] = nil
      local fps
      c.frames, c.audio, fps = job:wait()                                          -- u8 [N, H, W, 3], f32 [n]
      c.fps = c.fps or fps
    else
      local r <close> = fada.video.reader(c.video, {width = self.size, height = self.size, resize = 'area'})
      local info = r:info()
      c.frames = r:read_all()                                                        -- u8 [N, H, W, 3]
      c.fps = c.fps or info.fps
      if info.has_audio then
        c.audio = r:audio({sample_rate = self.sample_rate})                        -- f32 [n]
      end
    end
  else
    c.frames = read_png_folder(c.video, self.size)
    if c.audio_path then c.audio = fada.audio.load(c.audio_path, {sample_rate = self.sample_rate}) end
  end
  c.fps = c.fps or 25
  if not c.audio then c.audio = fada.zeros(1) end
  c.n = c.frames:size(1)
  if c.sidecar and fada.readable(c.sidecar) then
    local t = fada.safetensors.load(c.sidecar)
    c.truth = {}
    for _, k in ipairs(M.TRUTH) do c.truth[k] = t[k]:contiguous() end                -- f32 [F]
    c.identity_attributes = t.identity
  end
  self.cached = self.cached + 1
  self.decode_seconds = self.decode_seconds + (fada.clock() - t0)
  return c
end

-- Drops the least recently used decoded clip.
function Loader:evict()
  local old
  for _, c in ipairs(self.clips) do
    if c.frames and (not old or c.used < old.used) then old = c end
  end
  if old then
    old.frames, old.audio, old.mel = nil, nil, nil
    self.cached = self.cached - 1
  end
end

-- Decodes every clip; returns the seconds it took and the cache's size in MB.
function Loader:preload()
  local t0, bytes = fada.clock(), 0
  for i = 1, #self.clips do
    local c = self:decode(i)
    bytes = bytes + c.frames:numel()
  end
  return fada.clock() - t0, bytes / 2 ^ 20
end

-- ---- sampling ---------------------------------------------------------------------------

-- 1..n from `gen` (the loader's generator by default); one draw whatever n is,
-- so a dry run (the prefetch's look-ahead) consumes the stream like the real one
function Loader:uniform_int(n, gen)
  local u = fada.rand(1, 'f64', gen or self.generator):item()
  return math.max(1, math.min(n, 1 + math.floor(u * n)))
end

-- One sample's pieces: clip index, first frame, reference (clip index, frame).
-- dry: predict only (no decoding; frame counts from the manifest or the
-- cache, unknown ones assumed long enough).
function Loader:draw(gen, dry)
  local need = self.M + self.F
  local function frames_of(i)
    if dry then return self.clips[i].n or self.clips[i].manifest_frames end
    return self:decode(i).n
  end
  for _ = 1, 100 do
    local i = self:uniform_int(#self.clips, gen)
    local n = frames_of(i)
    if not n or n >= need then
      local start = self.M + self:uniform_int((n or need) - need + 1, gen)  -- frames start..start+F-1, motion before
      local ri = i
      if self.ref_mode == 'identity' then
        local same = self.by_identity[self.clips[i].identity]
        ri = same[self:uniform_int(#same, gen)]
      end
      return i, start, ri, self:uniform_int(frames_of(ri) or 1, gen)
    end
  end
  error(('loader: no clip has %d frames (motion %d + frames %d)'):format(need, self.M, self.F), 2)
end

-- Starts background decodes of the clips the next batch will draw (a dry
-- run of the same draws on a copy of the generator), so they decode while
-- the current batch trains.
function Loader:prefetch_next(n)
  if not (self.prefetch and fada.decode_async) then return end
  local look = fada.Generator(0)
  look:set_state(self.generator:get_state())
  for _ = 1, n do
    local i, _, ri = self:draw(look, true)
    for _, k in ipairs{i, ri} do
      local c = self.clips[k]
      if not c.frames and not self.jobs[k] and c.video:match('%.[mM][pP]4$') then
        self.jobs[k] = fada.decode_async(c.video, {width = self.size, height = self.size,
                                                   sample_rate = self.sample_rate})
        self.prefetched = self.prefetched + 1
      end
    end
  end
end

-- samples f32 [F * hop] under frames start..start+F-1 (zero past the end)
local function audio_span(c, start, F, sr)
  local hop = math.floor(sr / c.fps + 0.5)
  local a, len = c.audio, c.audio:size(1)
  local first, n = (start - 1) * hop + 1, F * hop
  if first + n - 1 <= len then return a:narrow(1, first, n) end
  local out = fada.zeros(n)
  if first <= len then out:narrow(1, 1, len - first + 1):copy(a:narrow(1, first, len - first + 1)) end
  return out
end

local PM1 = {range = '-1,1'}

-- A batch of n samples (default the loader's batch size).
function Loader:batch(n)
  n = n or self.B
  local F, Mo = self.F, self.M
  local motion, frames, refs, audio, names, starts = {}, {}, {}, {}, {}, {}
  local truth = {}
  local with_truth = true
  for b = 1, n do
    local i, start, ri, rf = self:draw()
    local c, rc = self.clips[i], self.clips[ri]
    if Mo > 0 then motion[b] = c.frames:narrow(1, start - Mo, Mo) end         -- u8 [M, H, W, 3]
    frames[b] = c.frames:narrow(1, start, F)                                  -- u8 [F, H, W, 3]
    refs[b] = rc.frames:select(1, rf)                                         -- u8 [H, W, 3]
    if self.audio_fn then audio[b] = self.audio_fn(c, start, F)
    else audio[b] = audio_span(c, start, F, self.sample_rate) end           -- f32 [F * hop]
    names[b], starts[b] = c.name, start
    if c.truth then
      for _, k in ipairs(M.TRUTH) do
        truth[k] = truth[k] or {}
        truth[k][b] = c.truth[k]:narrow(1, start, F)                        -- f32 [F]
      end
    else
      with_truth = false
    end
  end
  self:prefetch_next(n)
  -- one pass each: gather, u8 -> f32, channels last -> first, [0, 255] -> [-1, 1]
  local out = {
    ref = fada.frames_to_float(refs, PM1),                                  -- f32 [B, 3, H, W]
    motion = Mo > 0 and fada.frames_to_float(motion, PM1) or nil,           -- f32 [B, M, 3, H, W]
    frames = fada.frames_to_float(frames, PM1),                             -- f32 [B, F, 3, H, W]
    audio = fada.stack(audio, 1),                                           -- f32 [B, ...]
    clip = names, start = starts,
  }
  if with_truth then
    out.truth = {}
    for _, k in ipairs(M.TRUTH) do out.truth[k] = fada.stack(truth[k], 1) end -- f32 [B, F]
  end
  return out
end

-- One sample: the batch's tensors without the batch dimension.
function Loader:sample()
  local b = self:batch(1)
  local s = {clip = b.clip[1], start = b.start[1], ref = b.ref:select(1, 1), frames = b.frames:select(1, 1),
             motion = b.motion and b.motion:select(1, 1), audio = b.audio:select(1, 1)}
  if b.truth then
    s.truth = {}
    for k, v in pairs(b.truth) do s.truth[k] = v:select(1, 1) end
  end
  return s
end

-- An audio function for opts.audio: log-mel windows, one per video frame,
-- computed once per clip. f32 [F, n_mels, window] with `window` mel columns
-- (hop = a quarter of a video frame) centred on each frame.
function M.mel_windows(opts)
  opts = opts or {}
  local n_mels, window, sr = opts.n_mels or 40, opts.window or 16, opts.sample_rate or 16000
  return function(c, start, F)
    if not c.mel then
      local hop = math.floor(sr / c.fps / 4 + 0.5)
      local mel = fada.audio.log_mel(c.audio, {sample_rate = sr, n_fft = 400, hop = hop, n_mels = n_mels}) -- [n_mels, T]
      local pad = fada.full({n_mels, window}, mel:min():item())
      c.mel = fada.cat({pad, mel, pad}, 2):contiguous()                     -- [n_mels, T + 2 * window]
    end
    local out = {}
    for f = start, start + F - 1 do
      local centre = window + (f - 1) * 4 + 1                               -- padded column of frame f
      out[#out + 1] = c.mel:narrow(2, centre - window // 2, window)          -- [n_mels, window]
    end
    return fada.stack(out, 1)                                               -- [F, n_mels, window]
  end
end

M.Loader = Loader
return M
