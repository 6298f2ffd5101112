-- make demo: the main job on the shipped example.
--
-- With a trained teacher in weights/ this runs scripts/sample.lua on
-- examples/portrait.png + examples/speech.wav. Until one is shipped it does
-- the most complete real job there is: the synthetic talking avatar of the
-- example identity, driven by the example speech through the fixed audio ->
-- mouth mapping the models are trained to follow, written as an MP4 with the
-- speech as its sound track (this is the training data's ground truth, not a
-- model's output), and scored by the shipped evaluator if it is there.
local fada = require 'fada'
local cli = require 'fada.cli'

local opts = cli.parse(arg, {
  usage = 'usage: fadalua scripts/demo.lua [flags]',
  about = 'Runs the main job on the shipped example (see the comment at the top of this file).',
  {'weights', 'string', 'weights/fada-teacher.safetensors', 'teacher checkpoint used when it exists'},
  {'out', 'string', 'out/demo.mp4', 'output video'},
  {'threads', 'int', nil, 'compute threads (default: all cores)'},
})
if opts.threads then fada.set_num_threads(opts.threads) end

local function exists(p) local f = io.open(p, 'rb'); if f then f:close() end; return f ~= nil end

local sheet_path = opts.out:gsub('%.mp4$', '') .. '-sheet.png'

-- The evaluator's reading of the video and a contact sheet: frames over the
-- mouth opening read from them (red) and asked by the speech (blue).
local function score(frames, samples, sr)
  if not exists('weights/evaluator.safetensors') then return end
  local metrics = require 'fada.metrics'
  local m = metrics.evaluate(frames, samples, sr, {ref = fada.image.load('examples/portrait.png', {channels = 3})})
  print(('demo: evaluator on the video: lip-sync correlation %.3f at offset %d, identity error %.3f'):format(
    m.lipsync.corr, m.lipsync.offset, m.identity.error))
  fada.image.save(sheet_path, require('fada.figures').lipsync_sheet(frames, m.lipsync, samples, sr, 25))
  print(('demo: wrote %s (frames over the mouth opening read from them, red, and asked by the speech, blue)'):format(
    sheet_path))
end

if exists(opts.weights) then
  local pipeline = require 'fada.pipeline'
  local frames = {}
  local res = pipeline.sample{model = opts.weights, out = opts.out, on_clip = function(_, f) frames[#frames + 1] = f end}
  print(('demo: wrote %s (%d frames, %.1f s, real-time factor %.2f)'):format(res.out, res.frames, res.seconds,
    res.realtime_factor))
  local sr = 16000
  score(fada.cat(frames, 1):narrow(1, 1, res.frames), fada.audio.load(pipeline.defaults.audio, {sample_rate = sr}), sr)
  return
end

local face = require 'fada.data.face'
local speech = require 'fada.data.speech'
local motion = require 'fada.data.motion'
local progress = require 'fada.progress'

print(('demo: no trained teacher at %s yet; rendering the ground-truth synthetic avatar instead'):format(opts.weights))
local fps, size, sr = 25, 128, 16000
local samples = fada.audio.load('examples/speech.wav', {sample_rate = sr})
local mouth = speech.mouth_track(samples, sr, fps)
local n = math.ceil(samples:size(1) / sr * fps)
local id = face.identity(900005) -- the identity of examples/portrait.png (scripts/make_examples.lua)
local tr = motion.track(900005, n, fps)
os.execute('mkdir -p ' .. (opts.out:match('^(.*)/') or '.'))
local writer = fada.video.writer(opts.out, {fps = fps, width = size, height = size, audio = samples, sample_rate = sr})
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
print(('demo: wrote %s: %d frames at %d fps, %dx%d, with examples/speech.wav as its sound'):format(
  opts.out, n, fps, size, size))

score(fada.stack(frames, 1), samples, sr)
