-- make demo: the main job on the shipped example.
--
-- With the distilled student in weights/ this runs FADA-Fast (6 steps x 1 pass)
-- on examples/portrait.png + examples/speech.wav and prints the real-time
-- factor; --mode balanced or --mode teacher runs the others (Balanced with its own
-- weights/fada-student-balanced.safetensors, 6 steps x 3 passes; the teacher with
-- weights/fada-teacher.safetensors, 25 steps x 3 passes), and --sheet PNG draws
-- the three side by side on the example's first --seconds. Without a student it
-- runs the teacher; without a teacher either it does
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
  {'mode', 'string', 'fast', 'fast | balanced (the student) | teacher'},
  {'weights', 'string', 'weights/fada-teacher.safetensors', 'teacher checkpoint'},
  {'student', 'string', 'weights/fada-student.safetensors', 'distilled student checkpoint'},
  {'balanced', 'string', 'weights/fada-student-balanced.safetensors', "FADA-Balanced's own weights (--mode "
                                                                       .. "balanced, --sheet); 'none': the student's branches"},
  {'out', 'string', 'out/demo.mp4', 'output video'},
  {'sheet', 'string', nil, 'instead: teacher, Balanced and Fast frames side by side in this PNG'},
  {'seconds', 'number', 2, 'speech used for --sheet'},
  {'threads', 'int', nil, 'compute threads (default: all cores)'},
})
if opts.threads then fada.set_num_threads(opts.threads) end
if opts.mode ~= 'fast' and opts.mode ~= 'balanced' and opts.mode ~= 'teacher' then
  cli.fail(("--mode must be fast, balanced or teacher, got '%s'"):format(opts.mode))
end
if opts.seconds <= 0 then cli.fail('--seconds must be > 0') end


local sheet_path = opts.out:gsub('%.mp4$', '') .. '-sheet.png'

-- The evaluator's reading of the video and a contact sheet: frames over the
-- mouth opening read from them (red) and asked by the speech (blue).
local function score(frames, samples, sr)
  if not fada.readable('weights/evaluator.safetensors') then return end
  local metrics = require 'fada.metrics'
  local m = metrics.evaluate(frames, samples, sr, {ref = fada.image.load('examples/portrait.png', {channels = 3})})
  print(('demo: evaluator on the video: lip-sync correlation %.3f at offset %d, identity error %.3f'):format(
    m.lipsync.corr, m.lipsync.offset, m.identity.error))
  fada.image.save(sheet_path, require('fada.figures').lipsync_sheet(frames, m.lipsync, samples, sr, 25))
  print(('demo: wrote %s (frames over the mouth opening read from them, red, and asked by the speech, blue)'):format(
    sheet_path))
end

local balanced = opts.balanced == 'none' and opts.student or opts.balanced

if opts.sheet then
  if not fada.readable(opts.weights) or not fada.readable(opts.student) or not fada.readable(balanced) then
    cli.fail(("--sheet needs the teacher (%s), the student (%s) and FADA-Balanced's weights (%s; --balanced none: "
      .. "the student's)"):format(opts.weights, opts.student, balanced))
  end
  local sr = 16000
  local samples = fada.audio.load('examples/speech.wav', {sample_rate = sr})
  samples = samples:narrow(1, 1, math.min(samples:size(1), math.floor(opts.seconds * sr)))   -- f32 [L]
  local sheet = require('fada.figures').modes_sheet({{label = 'teacher 25 x 3', model = opts.weights, mode = 'teacher'},
    {label = 'FADA-Balanced 6 x 3', model = balanced, mode = 'balanced'},
    {label = 'FADA-Fast 6 x 1', model = opts.student, mode = 'fast'}}, {samples = samples, sample_rate = sr}, 8)
  fada.mkdir_parent(opts.sheet)
  fada.image.save(opts.sheet, sheet.image)
  for _, r in ipairs(sheet.rows) do
    print(('demo: %-24s %2d steps x %d NFE, %.3f s per frame (real-time factor %.2f)'):format(r.label, r.steps,
      r.nfe_per_step, r.seconds_per_frame, r.realtime_factor))
  end
  print(('demo: wrote %s (rows top to bottom: %s; every %d-th frame)'):format(opts.sheet,
    'teacher 25 x 3, FADA-Balanced 6 x 3, FADA-Fast 6 x 1', sheet.stride))
  return
end

local model = ({teacher = opts.weights, balanced = balanced})[opts.mode] or opts.student
if opts.mode == 'fast' and not fada.readable(opts.student) and fada.readable(opts.weights) then
  print(('demo: no distilled student at %s yet (make student); running the teacher'):format(opts.student))
  model, opts.mode = opts.weights, 'teacher'
end
if opts.mode == 'balanced' and not fada.readable(balanced) then
  cli.fail(balanced == opts.student and ('no distilled student at %s (make student)'):format(balanced) or
    ("no FADA-Balanced weights at %s (make student; --balanced none runs the student's branches)"):format(balanced))
end
if fada.readable(model) then
  local pipeline = require 'fada.pipeline'
  local frames = {}
  local res = pipeline.sample{model = model, mode = opts.mode, out = opts.out,
                              on_clip = function(_, f) frames[#frames + 1] = f end}
  local speech_s = res.frames / 25
  print(('demo: wrote %s with %s (%s, %d steps x %.0f NFE): %d frames = %.1f s of video in %.1f s, real-time factor %.2f '
    .. '(%s)'):format(res.out, model, opts.mode, res.steps, res.nfe_per_step, res.frames, speech_s, res.seconds,
    res.realtime_factor, res.realtime_factor <= 1 and 'faster than real time' or
    ('%.1fx slower than real time'):format(res.realtime_factor)))
  if opts.mode ~= 'teacher' then
    print('demo: the teacher is one flag away: build/fadalua scripts/demo.lua --mode teacher (25 steps x 3 passes)')
  end
  local sr = 16000
  score(fada.cat(frames, 1):narrow(1, 1, res.frames), fada.audio.load(pipeline.defaults.audio, {sample_rate = sr}), sr)
  return
end

print(('demo: no trained teacher at %s yet; rendering the ground-truth synthetic avatar instead'):format(opts.weights))
local fps, size, sr = 25, 128, 16000
local samples = fada.audio.load('examples/speech.wav', {sample_rate = sr})
-- 900005: the identity of examples/portrait.png (scripts/make_examples.lua)
local frames = require('fada.data.avatars').speaking_video(900005, samples, sr, opts.out, {fps = fps, size = size})
print(('demo: wrote %s: %d frames at %d fps, %dx%d, with examples/speech.wav as its sound'):format(
  opts.out, frames:size(1), fps, size, size))

score(frames, samples, sr)
