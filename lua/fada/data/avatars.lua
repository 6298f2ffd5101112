-- Synthetic talking-avatar clips: what a clip is (from a seed), how it is
-- rendered (the high-quality tier and the degraded "moderate" tier), and how
-- it is written (MP4 through fada.video, or PNG frames + WAV where fada.video
-- is missing) with its ground-truth sidecar; a dataset of many clips made over
-- several processes with its manifest (scripts/make_dataset.lua).
--
--   local A = require 'fada.data.avatars'
--   local spec = A.clip_spec{seed = 1, tier = 'hq', split = 'train', index = 7}
--   local clip = A.make_clip(spec, {size = 64, dir = 'data/avatars'})
--
-- Seed ranges (disjoint, so no held-out identity is ever a training one):
--   hq train 1..199999, moderate train 200000..899999,
--   hq heldout 900000..949999, moderate heldout 950000..999999.
-- Held-out sentences are disjoint from training ones by construction: a
-- sentence belongs to the held-out set iff a hash of its text is 0 mod 8.
local fada = require 'fada'
local face = require 'fada.data.face'
local speech = require 'fada.data.speech'
local motion = require 'fada.data.motion'

local M = {}

M.FPS = 25
M.SAMPLE_RATE = 16000
M.MAX_SECONDS = 4.4 -- long sentences are cut here
M.MIN_SECONDS = 3.0 -- short ones end in silence (mouth closed, still swaying and blinking)
M.ID_BASE = {hq = {train = 1, heldout = 900000}, moderate = {train = 200000, heldout = 950000}}
M.ID_SPAN = {hq = {train = 199999, heldout = 50000}, moderate = {train = 700000, heldout = 50000}}
-- identities per (tier, split) when not given: hq clips share identities
-- (a reference frame from another clip of the same person), moderate clips
-- mostly have their own
M.DEFAULT_IDENTITIES = {hq = {train = 100, heldout = 20}, moderate = {train = 100000, heldout = 5000}}
M.TRUTH = {'open', 'round', 'dx', 'dy', 'roll', 'yaw', 'blink'}
M.OCCLUDERS = {'none', 'hand', 'mic', 'scarf', 'mask'}

local TIER_CODE = {hq = 1, moderate = 2}
local SPLIT_CODE = {train = 1, heldout = 2}

local function check_choice(what, v, codes)
  if not codes[v] then
    local names = {}
    for k in pairs(codes) do names[#names + 1] = k end
    table.sort(names)
    error(('avatars: %s must be one of %s, got %s'):format(what, table.concat(names, ', '), tostring(v)), 3)
  end
end

-- FNV-1a over the text: the sentence's split partition.
local function text_hash(s)
  local h = 2166136261
  for i = 1, #s do h = ((h ~ s:byte(i)) * 16777619) & 0xffffffff end
  return h
end

function M.sentence_split(text) return text_hash(text) % 8 == 0 and 'heldout' or 'train' end

-- A sentence of `split` from stream r: drawn until it falls in the split.
function M.sentence(r, split)
  for _ = 1, 1000 do
    local s = speech.sentence(r)
    if M.sentence_split(s) == split then return s end
  end
  error('avatars.sentence: no sentence of split ' .. split .. ' in 1000 draws')
end

-- Mixes integers into a Generator seed (below 2^31).
local function mix(...)
  local h = 1469598103
  for _, v in ipairs{...} do h = ((h ~ v) * 1099511627 + 12345) % 2147483629 end
  return h
end

-- The identity seed of clip `index` (1-based) of a tier/split with n identities.
function M.identity_seed(tier, split, index, n_ids)
  n_ids = math.min(n_ids or M.DEFAULT_IDENTITIES[tier][split], M.ID_SPAN[tier][split])
  return M.ID_BASE[tier][split] + (index - 1) % n_ids
end

-- How a moderate-tier clip is degraded, drawn from r (face.rng); noise_seed
-- seeds its per-frame pixel noise.
function M.degrade_spec(r, noise_seed)
  local occ = r() < 0.3 and 'none' or M.OCCLUDERS[2 + math.floor(r() * (#M.OCCLUDERS - 1))]
  return {
    low = 0.3 + 0.35 * r(),          -- render at this fraction of the size, then upscale (blur)
    gain = 0.35 + 0.4 * r(),         -- darker
    gamma = 1.0 + 0.6 * r(),
    tint = {0.9 + 0.2 * r(), 0.9 + 0.2 * r(), 0.9 + 0.2 * r()},
    noise = 0.015 + 0.045 * r(),     -- Gaussian sigma per pixel, per frame
    occluder = occ,
    occ_side = r() < 0.5 and -1 or 1,
    occ_shift = 0.1 * (r() - 0.5),
    occ_color = {r(), r(), r()},
    noise_seed = noise_seed,
  }
end

-- Everything that decides a clip, from (seed, tier, split, index).
-- opts: seed, tier ('hq'|'moderate'), split ('train'|'heldout'), index (1-based),
-- identities (how many distinct identities this tier/split cycles through).
function M.clip_spec(opts)
  local tier, split = opts.tier or 'hq', opts.split or 'train'
  check_choice('tier', tier, TIER_CODE)
  check_choice('split', split, SPLIT_CODE)
  local index = assert(math.tointeger(opts.index), 'avatars.clip_spec: index must be an integer')
  local seed = opts.seed or 1
  local r = face.rng(mix(seed, TIER_CODE[tier], SPLIT_CODE[split], index))
  local spec = {
    name = ('clip%04d'):format(index), index = index, seed = seed, tier = tier, split = split,
    identity_seed = M.identity_seed(tier, split, index, opts.identities),
    sentence = M.sentence(r, split),
    voice = speech.VOICES[math.floor(r() * #speech.VOICES) + 1],
    rate = 135 + math.floor(r() * 50),   -- words per minute
    pitch = 25 + math.floor(r() * 50),
    motion_seed = mix(seed, index, 77) % 1000000,
    fps = M.FPS, sample_rate = M.SAMPLE_RATE,
  }
  if tier == 'moderate' then spec.degrade = M.degrade_spec(r, mix(seed, index, 991)) end
  return spec
end

-- ---- audio and tracks --------------------------------------------------------

-- Speaks the clip's sentence into wav_path; returns samples f32 [F * hop]
-- and F: whole video frames, MIN_SECONDS to MAX_SECONDS.
function M.speak(spec, wav_path)
  local samples = speech.synthesize(spec.sentence, wav_path,
    {voice = spec.voice, rate = spec.rate, pitch = spec.pitch, sample_rate = spec.sample_rate})
  local hop = spec.sample_rate // spec.fps
  local min_n = math.ceil(M.MIN_SECONDS * spec.fps)
  local n = math.max(min_n, math.min(samples:size(1) // hop, math.floor(M.MAX_SECONDS * spec.fps)))
  local out = fada.zeros(n * hop)                                            -- f32 [F * hop]
  local keep = math.min(samples:size(1), n * hop)
  out:narrow(1, 1, keep):copy(samples:narrow(1, 1, keep))
  return out, n
end

-- Per-frame ground truth: the audio-driven mouth and the random motion.
-- The mouth track of F * hop samples has F + 1 centred frames; the first F
-- are the video's.
function M.tracks(spec, samples, n)
  local mouth = speech.mouth_track(samples, spec.sample_rate, spec.fps)
  local tr = motion.track(spec.motion_seed, n, spec.fps)
  local truth = {frames = n}
  truth.open, truth.round = {}, {}
  for i = 1, n do truth.open[i], truth.round[i] = mouth.open[i], mouth.round[i] end
  for _, k in ipairs{'dx', 'dy', 'roll', 'yaw', 'blink'} do truth[k] = tr[k] end
  return truth
end

function M.frame_motion(truth, i)
  local m = {}
  for _, k in ipairs(M.TRUTH) do m[k] = truth[k][i] end
  return m
end

-- ---- the moderate tier ---------------------------------------------------------

-- Draws the occluder (screen space, so the head moves behind it) over
-- img [3, s, s].
local function occlude(img, d, s)
  local kind = d.occluder
  if kind == 'none' then return img end
  local g, px = face.grid(s), 2 / s
  local E, B, U = face.sdf.ellipse, face.sdf.box, face.sdf.union
  local u, v = g.u, g.v
  local side, sh = d.occ_side, d.occ_shift
  local shape, col
  if kind == 'hand' then -- palm low on one side, fingers reaching up over the cheek
    local cx = side * (0.42 + sh)
    shape = E(u, v, cx, 0.72, 0.22, 0.2)
    for k = 0, 3 do
      local fx = cx - side * (0.12 - 0.08 * k)
      shape = U(shape, B(u, v, fx, 0.42 + 0.03 * math.abs(k - 1.5), 0.035, 0.2, 0.035))
    end
    local tones = {{0.93, 0.75, 0.62}, {0.72, 0.52, 0.38}, {0.45, 0.3, 0.21}}
    col = tones[1 + math.floor(d.occ_color[1] * 3) % 3]
  elseif kind == 'mic' then -- a ball microphone below the mouth on a stand
    local cx = side * (0.18 + sh)
    shape = U(E(u, v, cx, 0.62, 0.12, 0.12), B(u, v, cx, 0.95, 0.03, 0.3, 0.01))
    col = {0.12 + 0.1 * d.occ_color[1], 0.12, 0.13}
  elseif kind == 'scarf' then -- a band over the chin and neck, below the lips
    shape = B(u, v, 0, 0.82 + sh, 0.75, 0.16, 0.08)
    col = d.occ_color
  else -- 'mask': a patch over one cheek and part of the mouth corner
    shape = E(u, v, side * (0.3 + sh), 0.42, 0.2, 0.17)
    col = {0.5 + 0.5 * d.occ_color[1], 0.5 + 0.5 * d.occ_color[2], 0.5 + 0.5 * d.occ_color[3]}
  end
  return face.paint(img, face.coverage(shape, px), col)
end

-- Degrades one frame: low-res render + occluder, bilinear upscale, darker,
-- tinted, noisy. gen: the clip's noise Generator.
function M.render_moderate(id, m, size, d, gen)
  local s = math.max(12, math.floor(size * d.low + 0.5))
  local img = occlude(face.render(id, m, s), d, s)           -- [3, s, s]
  img = fada.image.resize(img, size, size, 'bilinear')        -- [3, size, size]
  img = (img:clamp(1e-4, 1) ^ d.gamma) * d.gain
  img = img * fada.tensor(d.tint):view(3, 1, 1)
  img = img + fada.randn(3, size, size, gen) * d.noise
  return img:clamp(0, 1)
end

-- Frame i of a clip as f32 [3, size, size] in [0, 1].
function M.render_frame(spec, id, truth, i, size, gen)
  local m = M.frame_motion(truth, i)
  if spec.degrade then return M.render_moderate(id, m, size, spec.degrade, gen) end
  return face.render(id, m, size)
end

-- ---- writing a clip ---------------------------------------------------------------

-- Identity attributes for the sidecar: flat numbers (colours as 3 entries).
function M.identity_attributes(id)
  local a = {}
  for k, v in pairs(id) do
    if type(v) == 'number' then a[k] = v
    elseif type(v) == 'boolean' then a[k] = v and 1 or 0
    elseif type(v) == 'table' then for j = 1, #v do a[k .. '_' .. j] = v[j] end
    end
  end
  for j, style in ipairs(face.HAIR_STYLES) do
    if id.hair_style == style then a.hair_style_index = j end
  end
  return a
end

-- The mouth region on an h x w grid (image or latent): 1 inside an ellipse
-- around where the renderer puts the mouth (faces sway only a little), else 0.
function M.mouth_mask(h, w)
  local lin_y = fada.linspace(-1 + 1 / h, 1 - 1 / h, h):view(h, 1)
  local lin_x = fada.linspace(-1 + 1 / w, 1 - 1 / w, w):view(1, w)
  local d = (lin_x * (1 / 0.32)) ^ 2 + ((lin_y - 0.42) * (1 / 0.2)) ^ 2   -- [h, w]
  return fada.lt(d, 1):to('f32')                                          -- [h, w]
end

function M.video_available() return fada.video ~= nil end

-- Renders and writes one clip into opts.dir; returns the manifest row.
-- opts: size, dir, format ('mp4' | 'png'; default mp4 when fada.video exists),
-- crf, preset.
function M.make_clip(spec, opts)
  local size, dir = opts.size or 64, opts.dir
  local format = opts.format or (M.video_available() and 'mp4' or 'png')
  local id = face.identity(spec.identity_seed)
  local wav = ('%s/%s.wav'):format(dir, spec.name)
  local samples, n = M.speak(spec, wav)
  local truth = M.tracks(spec, samples, n)
  local gen = spec.degrade and fada.Generator(spec.degrade.noise_seed) or nil
  local row = {
    clip = spec.name, identity_seed = spec.identity_seed, sentence = spec.sentence, voice = spec.voice,
    rate = spec.rate, pitch = spec.pitch, tier = spec.tier, split = spec.split, frames = n, fps = spec.fps,
    size = size, sample_rate = spec.sample_rate, seed = spec.seed, index = spec.index,
    motion_seed = spec.motion_seed, occluder = spec.degrade and spec.degrade.occluder or 'none',
    sidecar = spec.name .. '.safetensors',
  }
  if format == 'mp4' then
    row.video = spec.name .. '.mp4'
    local w <close> = fada.video.writer(('%s/%s'):format(dir, row.video),
      {fps = spec.fps, width = size, height = size, audio = samples, sample_rate = spec.sample_rate,
       crf = opts.crf or 16, preset = opts.preset or 'fast'})
    for i = 1, n do w:write(M.render_frame(spec, id, truth, i, size, gen)) end
    w:close()
    os.remove(wav) -- the MP4 carries the audio
  elseif format == 'png' then
    row.video = spec.name -- a folder of frame_%05d.png beside clipNNNN.wav
    row.audio = spec.name .. '.wav'
    fada.mkdir(dir .. '/' .. spec.name)
    for i = 1, n do
      fada.image.save(('%s/%s/frame_%05d.png'):format(dir, spec.name, i), M.render_frame(spec, id, truth, i, size, gen))
    end
  else
    error(('avatars.make_clip: format must be mp4 or png, got %s'):format(tostring(format)), 2)
  end
  local tensors = {}
  for _, k in ipairs(M.TRUTH) do tensors[k] = fada.tensor(truth[k], 'f32') end -- f32 [F]
  local attrs = M.identity_attributes(id)
  local names = {}
  for k in pairs(attrs) do names[#names + 1] = k end
  table.sort(names)
  local vals = {}
  for i, k in ipairs(names) do vals[i] = attrs[k] end
  tensors.identity = fada.tensor(vals, 'f32')                                  -- f32 [K]
  fada.safetensors.save(('%s/%s'):format(dir, row.sidecar), tensors,
    {config = {clip = row, identity = id, identity_names = names, degrade = spec.degrade}})
  return row
end

-- ---- a speech's ground truth ---------------------------------------------------

-- The synthetic avatar of identity seed `seed` (its head motion from the same
-- seed) driven by samples (f32 [L] at sample_rate) through the fixed audio ->
-- mouth mapping the models learn to follow, written to the MP4 `out` with the
-- speech as its sound (scripts/demo.lua without a model). opts: size (128), fps
-- (25). Returns the frames [T, 3, S, S] in [0, 1].
function M.speaking_video(seed, samples, sample_rate, out, opts)
  local progress = require 'fada.progress'
  opts = opts or {}
  local fps, size = opts.fps or M.FPS, opts.size or 128
  local mouth = speech.mouth_track(samples, sample_rate, fps)
  local n = math.ceil(samples:size(1) / sample_rate * fps)
  local id = face.identity(seed)
  local tr = motion.track(seed, n, fps)
  fada.mkdir_parent(out)
  local writer = fada.video.writer(out, {fps = fps, width = size, height = size, audio = samples,
                                         sample_rate = sample_rate})
  local frames = {}
  local bar = progress.new(n, {label = 'rendering', unit = 'frame'})
  for i = 1, n do
    local m = motion.frame(tr, i)
    m.open, m.round = mouth.open[math.min(i, mouth.frames)], mouth.round[math.min(i, mouth.frames)]
    local img = face.render(id, m, size)          -- [3, S, S] in [0, 1]
    writer:write(img)
    frames[i] = img
    bar:update(i)
  end
  bar:finish()
  writer:close()
  return fada.stack(frames, 1)
end

-- ---- a dataset over processes (scripts/make_dataset.lua) -------------------------

local function shell_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- The dataset options o: out, clips, size, tier, split, identities, seed, first,
-- format, crf, preset (make_dataset.lua's flags); quiet: no progress bar.

-- One shard: clips first + k - 1, first + k - 1 + J, ... made one after the
-- other, each noted in DIR/.progress-K as it is done, the rows in
-- DIR/.manifest-K.jsonl at the end. on_clip(row) after each clip.
function M.make_shard(o, k, J, on_clip)
  local jsonl = require 'fada.data.jsonl'
  fada.set_num_threads(1) -- J processes, one core each; small ops do not gain from threads
  local rows, parts = {}, ('%s/.manifest-%d.jsonl'):format(o.out, k)
  local progress = assert(io.open(('%s/.progress-%d'):format(o.out, k), 'w'))
  for i = o.first + k - 1, o.first + o.clips - 1, J do
    local spec = M.clip_spec{seed = o.seed, tier = o.tier, split = o.split, index = i,
                             identities = o.identities}
    local row = M.make_clip(spec, {size = o.size, dir = o.out, format = o.format, crf = o.crf,
                                   preset = o.preset})
    rows[#rows + 1] = row
    progress:write(('%s %d\n'):format(row.clip, row.frames))
    progress:flush()
    if on_clip then on_clip(row) end
  end
  local f = assert(io.open(parts, 'w'))
  for _, row in ipairs(rows) do f:write(jsonl.encode(row, {'clip', 'video', 'sidecar'}), '\n') end
  f:close()
  progress:write(('cpu %.3f\n'):format(os.clock()))
  progress:write('done\n')
  progress:close()
end

-- The whole dataset: shard 1 in this process, shards 2..J as child processes
-- (`exe script --shard K/J` with o's flags: script is the one that calls
-- M.make_shard for --shard), their progress drawn as they go, then the rows merged
-- into DIR/manifest.jsonl in clip order (replacing rows of the same clip from an
-- earlier run). A failed child: fail('shard K/J failed:\n' .. its log). Returns
-- {clips, frames, cpu (seconds over the processes), processes, seconds (wall),
-- mb (on disk), manifest (path), rows}.
function M.make_dataset(o, exe, script, fail)
  local jsonl = require 'fada.data.jsonl'
  local progress = require 'fada.progress'
  fada.mkdir(o.out)
  local t0 = fada.clock()
  local J = math.min(o.jobs, o.clips)
  local children = {}
  for k = 2, J do
    os.remove(('%s/.progress-%d'):format(o.out, k))
    local cmd = {shell_quote(exe), shell_quote(script)}
    for _, key in ipairs{'out', 'clips', 'size', 'tier', 'split', 'seed', 'first', 'format', 'crf', 'preset',
                         'identities'} do
      if o[key] ~= nil then cmd[#cmd + 1] = ('--%s %s'):format(key, shell_quote(o[key])) end
    end
    cmd[#cmd + 1] = ('--shard %d/%d'):format(k, J)
    -- the shell notes the exit status in the progress file, so a child that
    -- dies is noticed instead of waited for
    local log, progress_file = ('%s/.log-%d'):format(o.out, k), ('%s/.progress-%d'):format(o.out, k)
    children[k] = io.popen(('%s > %s 2>&1; echo "exited $?" >> %s'):format(table.concat(cmd, ' '), shell_quote(log),
                                                                         shell_quote(progress_file)), 'r')
  end

  -- progress lines of shard k: clips done, frames done, cpu seconds, finished
  local function shard_state(k)
    local f = io.open(('%s/.progress-%d'):format(o.out, k), 'r')
    if not f then return 0, 0, 0, false end
    local clips, frames, cpu, done, failed = 0, 0, 0, false, false
    for line in f:lines() do
      local name, n = line:match('^(%S+) (%d+)$')
      if name == 'cpu' then cpu = tonumber(n)
      elseif line:match('^cpu ') then cpu = tonumber(line:match('^cpu (%S+)'))
      elseif line == 'done' then done = (k == 1) -- a child is done when its shell says it exited
      elseif line:match('^exited ') then done, failed = true, line ~= 'exited 0'
      elseif name then clips, frames = clips + 1, frames + tonumber(n) end
    end
    f:close()
    return clips, frames, cpu, done, failed
  end
  local function totals()
    local clips, frames, cpu, all_done = 0, 0, 0, true
    for k = 1, J do
      local c, f, s, d = shard_state(k)
      clips, frames, cpu, all_done = clips + c, frames + f, cpu + s, all_done and d
    end
    return clips, frames, cpu, all_done
  end

  local bar = progress.new(o.clips, {label = 'clips', unit = 'clip', enabled = not o.quiet})
  local function draw()
    local clips, frames = totals()
    bar:update(clips, {frames = frames})
  end
  os.remove(('%s/.progress-1'):format(o.out))
  draw()
  M.make_shard(o, 1, J, draw)
  while true do -- wait for the children, still drawing their progress
    local _, _, _, done = totals()
    if done then break end
    draw()
    os.execute('sleep 0.25')
  end
  for k = 2, J do
    children[k]:close()
    local log = ('%s/.log-%d'):format(o.out, k)
    local _, _, _, _, failed = shard_state(k)
    if failed then
      local f = io.open(log, 'r')
      fail(('shard %d/%d failed:\n%s'):format(k, J, f and f:read('a') or '(no log)'))
    end
    os.remove(log)
  end
  bar:finish({frames = select(2, totals())})

  -- merge the shards' rows into the manifest (clip order), replacing rows of
  -- the same clip from an earlier run
  local rows, by_clip = {}, {}
  local manifest = o.out .. '/manifest.jsonl'
  local old = io.open(manifest, 'r')
  if old then
    old:close()
    for _, r in ipairs(jsonl.read(manifest)) do by_clip[r.clip] = r end
  end
  for k = 1, J do
    local part = ('%s/.manifest-%d.jsonl'):format(o.out, k)
    for _, r in ipairs(jsonl.read(part)) do by_clip[r.clip] = r end
    os.remove(part)
  end
  for _, r in pairs(by_clip) do rows[#rows + 1] = r end
  table.sort(rows, function(a, b) return a.clip < b.clip end)
  local f = assert(io.open(manifest .. '.tmp', 'w'))
  for _, r in ipairs(rows) do f:write(jsonl.encode(r, {'clip', 'video', 'sidecar'}), '\n') end
  f:close()
  assert(os.rename(manifest .. '.tmp', manifest))

  local clips, frames, cpu = totals()
  for k = 1, J do os.remove(('%s/.progress-%d'):format(o.out, k)) end
  local dt = fada.clock() - t0
  local du = io.popen('du -sk ' .. shell_quote(o.out)):read('l')
  return {clips = clips, frames = frames, cpu = cpu, processes = J, seconds = dt,
          mb = (tonumber(du:match('^(%d+)')) or 0) / 1024, manifest = manifest, rows = #rows}
end

return M
