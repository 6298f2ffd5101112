-- fada.metrics: how good is a generated talking-avatar video?
--
-- All readings come from the evaluator CNN (fada.metrics.evaluator), which
-- reads mouth, blink, head pose and identity attributes back from frames.
--
--   local metrics = require 'fada.metrics'
--   local m = metrics.evaluate(frames, samples, sample_rate, {ref = ref_frame})
--   -- frames [T, 3, S, S] f32 in [0, 1] (or u8 [T, S, S, 3] / [T, 3, S, S])
--   m.lipsync.corr, m.lipsync.offset, m.lipsync.dist, m.lipsync.confidence,
--   m.identity.error, m.motion.std_yaw, ..., m.flicker.pixel
--   metrics.frechet(frames_a, frames_b)  -- Fréchet distance of evaluator features
--
-- Lip-sync: Pearson correlation and mean absolute distance between the
-- evaluator's mouth-opening trajectory and speech.mouth_track's (the fixed
-- audio -> mouth mapping the data follows), at the best offset d in
-- [-max_offset, max_offset]: frame t is compared with audio frame t + d, so
-- d > 0 means the audio lags the video by d frames. The confidence, like
-- SyncNet's LSE-C, is the peak correlation minus the median over offsets.
local fada = require 'fada'
local E = require 'fada.metrics.evaluator'
local stats = require 'fada.metrics.stats'
local speech = require 'fada.data.speech'

local M = {}
M.stats = stats

local cached
-- The shipped evaluator (loaded once), or the one at `path`.
function M.evaluator(path)
  if path then return E.load(path) end
  cached = cached or E.load()
  return cached
end

local function reading(x, opts)
  if type(x) == 'table' and x.features then return x end
  return ((opts and opts.evaluator) or M.evaluator()):read(x)
end
M.read = reading

-- ---- lip-sync ------------------------------------------------------------------------

-- lipsync(frames or reading, samples, sample_rate, {fps = 25, max_offset = 5})
-- -> {corr, dist, offset, confidence, corr_at = {[d] = r}, mouth = read opening,
--     track = audio opening, frames = n compared at offset 0}
function M.lipsync(frames, samples, sample_rate, opts)
  opts = opts or {}
  local r = reading(frames, opts)
  local fps = opts.fps or 25
  local track = opts.track or speech.mouth_track(samples, sample_rate, fps)
  local mouth, audio = r.open, track.open
  local maxd = opts.max_offset or 5
  local best, corr_at, list = nil, {}, {}
  for d = -maxd, maxd do
    local a, b = {}, {}
    for t = 1, #mouth do
      local u = t + d
      if u >= 1 and u <= #audio then a[#a + 1], b[#b + 1] = mouth[t], audio[u] end
    end
    local c = stats.pearson(a, b)
    corr_at[d] = c
    list[#list + 1] = c
    -- ties (flat tracks) prefer the smaller |d|
    if not best or c > best.corr + 1e-12 or (math.abs(c - best.corr) <= 1e-12 and math.abs(d) < math.abs(best.offset)) then
      best = {corr = c, offset = d, dist = stats.mae(a, b), frames = #a}
    end
  end
  return {corr = best.corr, dist = best.dist, offset = best.offset, frames = best.frames,
          confidence = best.corr - stats.median(list), corr_at = corr_at, mouth = mouth, track = audio}
end

-- ---- identity --------------------------------------------------------------------------

local GROUPS = {colour = {}, geometry = {}, style = {}, accessories = {}}
for j, o in ipairs(E.IDENTITY) do
  local n = o.name
  local g = (n:find('_[rgb]$') and 'colour') or (n:find('^style_') and 'style')
    or ((n == 'glasses' or n == 'earrings' or n == 'hat') and 'accessories') or 'geometry'
  table.insert(GROUPS[g], j)
end

-- identity_error(frames or reading, ref (frame [3, S, S] or reading), [opts])
-- -> {error = mean |attributes(frame) − attributes(ref)| over frames and all
--     identity outputs (normalised units, 0 = same), colour, geometry, style,
--     accessories (the same by group), per_frame = {...}}
function M.identity_error(frames, ref, opts)
  local r = reading(frames, opts)
  local rr = reading(ref, opts)
  local idr = rr.identity:mean(1):totable()     -- a reference of several frames: their mean
  local ids = r.identity:totable()
  local out, per_frame = {}, {}
  local sums = {colour = 0, geometry = 0, style = 0, accessories = 0}
  local total = 0
  for t = 1, #ids do
    local e = 0
    for j = 1, E.N_IDENTITY do e = e + math.abs(ids[t][j] - idr[j]) end
    per_frame[t] = e / E.N_IDENTITY
    total = total + per_frame[t]
    for g, list in pairs(GROUPS) do
      local s = 0
      for _, j in ipairs(list) do s = s + math.abs(ids[t][j] - idr[j]) end
      sums[g] = sums[g] + s / #list
    end
  end
  out.error = total / #ids
  for g, s in pairs(sums) do out[g] = s / #ids end
  out.per_frame = per_frame
  return out
end

-- ---- Fréchet distance on evaluator features ------------------------------------------------

local function moments(feat)                 -- feat [N, D] -> mean [D] (f64), cov [D, D] (f64)
  local x = feat:to('f64')
  local n = x:size(1)
  local mu = x:mean(1, true)                  -- [1, D]
  local c = x - mu
  local cov = fada.matmul(c:t(), c) * (1 / math.max(n - 1, 1))
  return mu:view(-1), cov
end

local function eye(n)
  local e = fada.zeros(n, n, 'f64')
  for i = 1, n do e:set(i, i, 1) end
  return e
end

local function trace(a)
  local s, t = 0, a:totable()
  for i = 1, #t do s = s + t[i][i] end
  return s
end

-- Square root of a symmetric positive definite matrix [D, D] (f64) by the
-- coupled Newton-Schulz iteration on A / tr(A) (Y → A^½, Z → A^-½): matrix
-- products only. f64 throughout: the ridge-sized eigenvalues drown in f32.
local function sqrtm_spd(a)
  local D = a:size(1)
  local c = math.max(trace(a), 1e-300)
  local I = eye(D)
  local Y, Z = a * (1 / c), I:clone()
  for _ = 1, 100 do
    local T = (I * 3 - fada.matmul(Z, Y)) * 0.5
    Y, Z = fada.matmul(Y, T), fada.matmul(T, Z)
    if (T - I):abs():max():item() < 1e-12 then break end
  end
  return (Y + Y:t()) * (0.5 * math.sqrt(c))
end

-- frechet(a, b): Fréchet distance between the evaluator features of two
-- frame sets (frames, readings, or [N, D] feature tensors):
-- |μa − μb|² + Tr(Σa + Σb − 2 (Σa^½ Σb Σa^½)^½).
-- Returns the distance and {mean_term =, cov_term =}.
function M.frechet(a, b, opts)
  local function feats(x)
    if fada.is_tensor(x) and x:dim() == 2 then return x end
    return reading(x, opts).features
  end
  local mua, ca = moments(feats(a))
  local mub, cb = moments(feats(b))
  -- a small common ridge keeps both covariances invertible (sets of fewer
  -- frames than features are singular), as FID implementations do
  local D = ca:size(1)
  local ridge = 1e-6 * math.max(trace(ca), trace(cb), 1e-12) / D
  ca, cb = ca + eye(D) * ridge, cb + eye(D) * ridge
  local dm = mua - mub
  local d2 = (dm * dm):sum():item()
  local sa = sqrtm_spd(ca)
  local mid = fada.matmul(fada.matmul(sa, cb), sa)
  mid = (mid + mid:t()) * 0.5
  local cross = trace(sqrtm_spd(mid))
  local tr = trace(ca) + trace(cb) - 2 * cross
  return d2 + tr, {mean_term = d2, cov_term = tr}
end

-- ---- motion and flicker ------------------------------------------------------------------------

local MOTION_KEYS = {'dx', 'dy', 'roll', 'yaw', 'open', 'round', 'blink'}

-- motion(frames or reading) -> {std_dx, std_dy, std_roll, std_yaw, std_open,
-- std_round, std_blink} in renderer units (how much head and mouth move).
function M.motion(frames, opts)
  local r = reading(frames, opts)
  local out = {}
  for _, k in ipairs(MOTION_KEYS) do out['std_' .. k] = stats.std(r[k]) end
  return out
end

local function second_diff(v)
  local s, n = 0, 0
  for t = 2, #v - 1 do s, n = s + math.abs(v[t + 1] - 2 * v[t] + v[t - 1]), n + 1 end
  return n > 0 and s / n or 0
end

-- flicker(frames, [reading]) -> {pixel = mean |x[t+1] − 2x[t] + x[t−1]| over
-- pixels (frames in [0, 1]), open, pose = the same on the evaluator's
-- readings (pose: mean of dx, dy, roll, yaw in normalised units)}.
function M.flicker(frames, r, opts)
  local x = E.prepare(frames)                 -- [T, 3, 64, 64]: every size compared alike
  local T = x:size(1)
  local out = {pixel = 0}
  if T >= 3 then
    local d = x:narrow(1, 3, T - 2) - x:narrow(1, 2, T - 2) * 2 + x:narrow(1, 1, T - 2)
    out.pixel = d:abs():mean():item()
  end
  r = r or reading(x, opts)
  out.open = second_diff(r.open)
  local p = 0
  for _, k in ipairs{'dx', 'dy', 'roll', 'yaw'} do
    local o = E.OUTPUTS[E.INDEX[k]]
    p = p + second_diff(r[k]) / (o.hi - o.lo)
  end
  out.pose = p / 4
  return out
end

-- sharpness(frames) -> mean |4-neighbour Laplacian| over interior pixels (frames in
-- [0, 1], at the evaluator's 64x64 like flicker): the fine-detail energy. A
-- generated clip over its ground truth says whether the model adds fine noise
-- (> 1) or smooths detail away (< 1).
function M.sharpness(frames)
  local x = E.prepare(frames)                 -- [T, 3, 64, 64]
  local H, W = x:size(3), x:size(4)
  local function at(dy, dx) return x:narrow(3, 2 + dy, H - 2):narrow(4, 2 + dx, W - 2) end
  local lap = at(0, 0) * 4 - at(-1, 0) - at(1, 0) - at(0, -1) - at(0, 1)   -- [T, 3, H-2, W-2]
  return lap:abs():mean():item()
end

-- ---- everything at once ---------------------------------------------------------------------------

-- evaluate(frames, samples, sample_rate, {ref =, fps =, max_offset =, evaluator =})
-- -> {lipsync =, identity = (when ref is given), motion =, flicker =, sharpness =, reading =}
function M.evaluate(frames, samples, sample_rate, opts)
  opts = opts or {}
  local x = E.prepare(frames)
  local r = reading(x, opts)
  local out = {reading = r, frames = x:size(1)}
  if samples then out.lipsync = M.lipsync(r, samples, sample_rate, opts) end
  if opts.ref then out.identity = M.identity_error(r, opts.ref, opts) end
  out.motion = M.motion(r)
  out.flicker = M.flicker(x, r)
  out.sharpness = M.sharpness(x)
  return out
end

-- Whether path is a folder (of PNG frames, for load_video).
function M.is_folder(path)
  return os.execute('test -d ' .. fada.shell_quote(path)) == true
end

-- A video to measure: an MP4 (its own audio unless opts.audio, i.e. the caller
-- reads the speech elsewhere) or a folder of PNG frames sorted by name (at
-- opts.fps, 25; no audio). Returns frames, fps, samples, sample_rate (16 kHz).
function M.load_video(path, opts)
  opts = opts or {}
  if M.is_folder(path) then
    local names = {}
    local p = io.popen('ls -1 ' .. fada.shell_quote(path))
    for name in p:lines() do if name:lower():match('%.png$') then names[#names + 1] = name end end
    p:close()
    table.sort(names)
    if #names == 0 then error(('metrics: no PNG frames in %s'):format(path), 0) end
    local frames = {}
    for i, name in ipairs(names) do frames[i] = fada.image.load(path .. '/' .. name, {channels = 3}) end
    return fada.stack(frames, 1), opts.fps or 25, nil
  end
  local r = fada.video.reader(path, {dtype = 'f32'})
  local frames = r:read_all()
  local info = r:info()
  local samples, sr
  if not opts.audio and info.has_audio then samples, sr = r:audio({sample_rate = 16000}) end
  r:close()
  return frames, info.fps, samples, sr
end

return M
