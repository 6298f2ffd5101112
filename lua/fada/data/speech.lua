-- Speech for the synthetic talking avatars: sentences, espeak-ng voices, and
-- the fixed audio -> mouth mapping the renderer follows (and the metrics
-- compare against).
--
-- The mapping, per video frame f (hop = sample_rate / fps, spectrogram frames
-- centred on video frames):
--   E(f)      speech-band energy, 300-3000 Hz, in dB relative to the clip's
--             98th percentile (robust to a single loud frame)
--   open(f)   ((E + 30 dB) / 26 dB) clamped to [0, 1], then ^1.3
--   round(f)  the share of 300-1000 Hz in the speech band, (share − 0.6) /
--             0.35 clamped to [0, 1], gated by the opening
-- both smoothed with [1/4, 1/2, 1/4] and shifted one frame earlier: the mouth
-- moves 40 ms before the sound at 25 fps, as real speakers' lips lead.
local fada = require 'fada'

local M = {}

local WORDS = {
  nouns = {'cat', 'river', 'moon', 'teacher', 'window', 'garden', 'boat', 'city', 'apple', 'music',
           'mountain', 'paper', 'doctor', 'forest', 'bridge', 'flower', 'road', 'ocean', 'engine', 'child',
           'story', 'summer', 'kitchen', 'pilot', 'market', 'island', 'letter', 'horse', 'cloud', 'ticket'},
  verbs = {'finds', 'moves', 'opens', 'follows', 'carries', 'watches', 'builds', 'paints', 'reaches',
           'answers', 'remembers', 'visits', 'covers', 'pushes', 'teaches', 'loses', 'chooses', 'throws'},
  adjs = {'quiet', 'golden', 'old', 'bright', 'small', 'happy', 'heavy', 'blue', 'strange', 'open',
          'cool', 'soft', 'loud', 'rough', 'early', 'smooth', 'wooden', 'yellow', 'round', 'wide'},
  advs = {'slowly', 'today', 'again', 'at noon', 'by the door', 'every morning', 'too soon', 'with care',
          'over there', 'in the rain', 'once more', 'before lunch'},
}
local TEMPLATES = {
  'the %a %n %v the %a %n %d.',
  'a %n %v %d, and the %n %v too.',
  'why does the %a %n %v the %n?',
  'look, the %n %v a %a %n %d!',
  'we saw the %a %n, then the %n %v %d.',
}

-- A sentence from a seeded stream (rng() -> [0, 1)).
function M.sentence(rng)
  local function pick(list) return list[math.floor(rng() * #list) + 1] end
  local t = pick(TEMPLATES)
  return (t:gsub('%%(%a)', function(k)
    return pick(({a = WORDS.adjs, n = WORDS.nouns, v = WORDS.verbs, d = WORDS.advs})[k])
  end))
end

M.VOICES = {'en', 'en-us', 'en-gb-scotland', 'en+f2', 'en+f3', 'en+f4', 'en+m2', 'en+m3', 'en+m5',
            'en-us+f3', 'en-us+m4', 'en+klatt', 'en+Annie', 'en+Andy', 'en+Mike', 'en+Alicia'}

-- Speaks `text` with espeak-ng into `wav_path`; returns samples f32 [N] at
-- `sample_rate` (16000). opts: voice, rate (words/min), pitch (0-99).
function M.synthesize(text, wav_path, opts)
  opts = opts or {}
  local cmd = ('espeak-ng -v %s -s %d -p %d -w %s %s 2>&1'):format(fada.shell_quote(opts.voice or 'en'),
    opts.rate or 160, opts.pitch or 50, fada.shell_quote(wav_path), fada.shell_quote(text))
  local p = io.popen(cmd)
  local out = p:read('a')
  local ok = p:close()
  if not ok then
    error(('speech: espeak-ng failed (is it installed? scripts/setup-deps.sh installs it): %s'):format(out), 2)
  end
  return fada.audio.load(wav_path, {sample_rate = opts.sample_rate or 16000})
end

local function smooth(v)
  local out, n = {}, #v
  for i = 1, n do
    out[i] = 0.25 * v[math.max(i - 1, 1)] + 0.5 * v[i] + 0.25 * v[math.min(i + 1, n)]
  end
  return out
end

-- Band energies per video frame: speech band (300-3000 Hz) and its low part
-- (300-1000 Hz), as Lua arrays, from samples f32 [N].
function M.band_energies(samples, sample_rate, fps)
  local hop = math.floor(sample_rate / fps + 0.5)
  local n_fft = 1024
  local spec = fada.audio.spectrogram(samples, {sample_rate = sample_rate, n_fft = n_fft, hop = hop, power = 2})
  local bin = function(hz) return math.floor(hz * n_fft / sample_rate + 0.5) + 1 end -- 1-based bin
  local b300, b1000, b3000 = bin(300), bin(1000), bin(3000)
  local speech = spec:narrow(1, b300, b3000 - b300 + 1):sum(1):tolist()
  local low = spec:narrow(1, b300, b1000 - b300 + 1):sum(1):tolist()
  return speech, low
end

-- The mouth track of a waveform: {open = {...}, round = {...}} per video
-- frame, plus the frame count. Deterministic: the metrics use the same function.
function M.mouth_track(samples, sample_rate, fps)
  local speech, low = M.band_energies(samples, sample_rate, fps)
  local n = #speech
  local db, sorted = {}, {}
  for i = 1, n do
    db[i] = 10 * math.log(speech[i] + 1e-10, 10)
    sorted[i] = db[i]
  end
  table.sort(sorted)
  local ref = sorted[math.max(1, math.ceil(0.98 * n))]
  local open, round = {}, {}
  for i = 1, n do
    local o = math.min(math.max((db[i] - ref + 30) / 26, 0), 1) ^ 1.3
    open[i] = o
    local share = low[i] / (speech[i] + 1e-10)
    round[i] = math.min(math.max((share - 0.6) / 0.35, 0), 1) * math.min(o * 4, 1)
  end
  open, round = smooth(open), smooth(round)
  -- lips lead the sound by one frame
  local lead_open, lead_round = {}, {}
  for i = 1, n do
    lead_open[i] = open[math.min(i + 1, n)]
    lead_round[i] = round[math.min(i + 1, n)]
  end
  return {open = lead_open, round = lead_round, frames = n}
end

return M
