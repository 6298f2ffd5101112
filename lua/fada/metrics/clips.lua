-- Ground-truth talking clips for the metrics' ceiling: a held-out identity,
-- a seeded held-out sentence (fada.data.avatars' split) spoken by espeak-ng,
-- the mouth from speech.mouth_track, head sway and blinks that ignore the
-- audio, rendered by face.render.
-- No model is involved, so every metric measured on these clips is the
-- evaluator's own limit.
local fada = require 'fada'
local face = require 'fada.data.face'
local speech = require 'fada.data.speech'
local avatars = require 'fada.data.avatars'

local M = {}

M.FPS = 25
M.SAMPLE_RATE = 16000

-- Smooth head sway: a sum of three slow sinusoids per pose channel with
-- seeded phases; blinks: 3-frame closures every 2-5 s. Amplitudes stay
-- inside the evaluator's training ranges.
function M.head_motion(r, n, fps)
  -- a fixed channel order: the draws below must not follow pairs(), whose order changes from run to run
  local chans = {{'dx', 0.04}, {'dy', 0.03}, {'roll', 0.08}, {'yaw', 0.35}}
  local motion = {}
  for t = 1, n do motion[t] = {blink = 0} end
  for _, ch in ipairs(chans) do
    local name, amp = ch[1], ch[2]
    local parts = {}
    for k = 1, 3 do parts[k] = {f = (0.1 + 0.5 * r()) * k, ph = 2 * math.pi * r(), a = amp / k} end
    for t = 1, n do
      local s = 0
      for _, p in ipairs(parts) do s = s + p.a * math.sin(2 * math.pi * p.f * t / fps + p.ph) end
      motion[t][name] = s * 0.6
    end
  end
  local t = math.floor(fps * (0.5 + 1.5 * r()))
  while t <= n do
    for k, v in ipairs{0.6, 1.0, 0.5} do
      if t + k - 1 <= n then motion[t + k - 1].blink = v end
    end
    t = t + math.floor(fps * (2 + 3 * r()))
  end
  return motion
end

-- Clip k (0-based) of the held-out set: {frames [T, 3, S, S] f32, samples f32 [N],
-- sample_rate, fps, ref [3, S, S] (neutral pose, closed mouth), identity,
-- motion {per-frame tables}, track (speech.mouth_track), tier, degrade}.
-- opts: size (64), identity (seed, default 900000 + 37·k; moderate 950000 + 37·k),
-- tier ('hq' | 'moderate': darker, blurred, noisy, partly occluded frames and
-- portrait, identities of the moderate held-out range, never seen in training).
function M.ground_truth(k, opts)
  opts = opts or {}
  local size = opts.size or 64
  local tier = opts.tier or 'hq'
  if tier ~= 'hq' and tier ~= 'moderate' then
    error(("clips.ground_truth: tier must be 'hq' or 'moderate', got %s"):format(tostring(tier)), 2)
  end
  local r = face.rng(424242 + k)
  local id = face.identity(opts.identity or (avatars.ID_BASE[tier].heldout + 37 * k))
  local text = avatars.sentence(r, 'heldout')
  local voice = speech.VOICES[math.floor(r() * #speech.VOICES) + 1]
  -- os.tmpname creates the file (mkstemp): shards started in the same second
  -- must not share a name, as a random number seeded at start-up can
  local wav = os.tmpname()
  local ok, samples, sr = pcall(speech.synthesize, text, wav, {voice = voice, rate = 140 + math.floor(40 * r()),
                                                               pitch = 30 + math.floor(40 * r()),
                                                               sample_rate = M.SAMPLE_RATE})
  os.remove(wav)
  if not ok then error(samples, 0) end
  sr = sr or M.SAMPLE_RATE
  local track = speech.mouth_track(samples, sr, M.FPS)
  local n = track.frames
  local motion = M.head_motion(r, n, M.FPS)
  -- the degradation draws from its own stream, so the hq clip k keeps its sentence, voice and motion
  local degrade = tier == 'moderate' and avatars.degrade_spec(face.rng(525252 + k), 626262 + k) or nil
  local gen = degrade and fada.Generator(degrade.noise_seed)
  local function render(m)
    return degrade and avatars.render_moderate(id, m, size, degrade, gen) or face.render(id, m, size)
  end
  local frames = {}
  for t = 1, n do
    motion[t].open, motion[t].round = track.open[t], track.round[t]
    frames[t] = render(motion[t])
  end
  local ref = render({dx = 0, dy = 0, roll = 0, yaw = 0, blink = 0, open = 0, round = 0})
  return {frames = fada.stack(frames, 1), samples = samples, sample_rate = sr, fps = M.FPS, ref = ref,
          identity = id, motion = motion, track = track, text = text, voice = voice, tier = tier, degrade = degrade}
end

-- The evaluator's ceiling (scripts/metrics.lua --ground-truth): clips 0 .. n-1
-- measured as a generated video would be, plus what the evaluator reads against
-- the truth it should read, the identity error against another identity, and
-- the Fréchet distances even vs odd frames (the floor) and vs other identities'
-- renders (the scale). opts: size (64), evaluator. Returns {acc = {[name] = per
-- clip values}, frames, fd_self, fd_other, renders (frames in fd_other), seconds}.
function M.ceiling(n, opts)
  local metrics = require 'fada.metrics'
  local stats = require 'fada.metrics.stats'
  local progress = require 'fada.progress'
  local ev = opts.evaluator
  local acc = {}
  local function add(k, v) acc[k] = acc[k] or {}; table.insert(acc[k], v) end
  local even, odd = {}, {}
  local refs = {}
  local t0 = fada.clock()
  local bar = progress.new(n, {label = 'ground-truth clips', unit = 'clip'})
  local total_frames = 0
  for k = 0, n - 1 do
    local c = M.ground_truth(k, {size = opts.size})
    local T = c.frames:size(1)
    total_frames = total_frames + T
    local m = metrics.evaluate(c.frames, c.samples, c.sample_rate, {ref = c.ref, evaluator = ev})
    local r = m.reading
    -- the evaluator against the truth it should read
    local truth = {}
    for _, key in ipairs{'open', 'round', 'blink', 'dx', 'dy', 'roll', 'yaw'} do
      truth[key] = {}
      for t = 1, T do truth[key][t] = c.motion[t][key] end
    end
    add('read_open_r', stats.pearson(r.open, truth.open))
    add('read_open_mae', stats.mae(r.open, truth.open))
    add('read_round_r', stats.pearson(r.round, truth.round))
    add('read_yaw_r', stats.pearson(r.yaw, truth.yaw))
    add('read_roll_r', stats.pearson(r.roll, truth.roll))
    add('read_dx_r', stats.pearson(r.dx, truth.dx))
    add('ls_corr', m.lipsync.corr)
    add('ls_dist', m.lipsync.dist)
    add('ls_offset', m.lipsync.offset)
    add('ls_conf', m.lipsync.confidence)
    add('id_err', m.identity.error)
    for _, g in ipairs({'colour', 'geometry', 'style', 'accessories'}) do add('id_err_' .. g, m.identity[g]) end
    refs[k + 1] = {ref = c.ref, reading = r}
    for _, key in ipairs{'dx', 'dy', 'roll', 'yaw', 'open', 'blink'} do
      add('std_' .. key, m.motion['std_' .. key])
      add('std_' .. key .. '_true', stats.std(truth[key]))
    end
    add('flicker_pixel', m.flicker.pixel)
    add('flicker_open', m.flicker.open)
    add('flicker_pose', m.flicker.pose)
    -- Fréchet sets: even vs odd frames of the same clips
    for t = 1, T do
      local f = r.features:narrow(1, t, 1)
      if t % 2 == 0 then even[#even + 1] = f else odd[#odd + 1] = f end
    end
    bar:update(k + 1)
  end
  bar:finish()
  -- identity error against a different identity (the scale it must stay far below)
  for k = 1, n do
    local other = refs[k % n + 1]
    add('id_err_other', metrics.identity_error(refs[k].reading, other.ref, {evaluator = ev}).error)
  end
  -- a frame set of other identities for the Fréchet scale
  local R = require 'fada.metrics.renders'
  local ox = R.batch(5000, math.min(#odd, 512), 'heldout')
  local fd_self = metrics.frechet(fada.cat(even, 1), fada.cat(odd, 1))
  local fd_other = metrics.frechet(fada.cat(odd, 1), ev:read(ox).features)
  return {acc = acc, frames = total_frames, fd_self = fd_self, fd_other = fd_other, renders = ox:size(1),
          seconds = fada.clock() - t0}
end

return M
