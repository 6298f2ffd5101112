-- Metrics of talking-avatar videos, read by the evaluator CNN.
--
--   fadalua scripts/metrics.lua --ground-truth --clips 20      # the ceiling table
--   fadalua scripts/metrics.lua --video out.mp4 --ref ref.png   # a generated video
--   fadalua scripts/metrics.lua --video frames/ --audio speech.wav --ref ref.png
local fada = require 'fada'
local cli = require 'fada.cli'
local metrics = require 'fada.metrics'
local clips = require 'fada.metrics.clips'
local tables = require 'fada.metrics.tables'

local opts = cli.parse(arg, {
  usage = 'usage: fadalua scripts/metrics.lua (--ground-truth [--clips N] | --video PATH --ref PNG [--audio WAV])',
  about = [[Prints lip-sync (correlation, distance, best offset within +-5 frames, LSE-C-like confidence),
identity error against the reference, motion statistics and flicker for a video; with
--ground-truth, renders held-out clips with no model (speech -> mouth_track -> face.render) and
prints the same metrics on them: the evaluator's own ceiling for every metric.
A video is an MP4 (audio read from it unless --audio is given) or a folder of PNG frames
(sorted by name) with --audio.]],
  {'ground_truth', 'bool', false, 'measure held-out ground-truth clips'},
  {'clips', 'int', 20, 'number of ground-truth clips'},
  {'size', 'int', 64, 'render size of ground-truth clips'},
  {'video', 'string', nil, 'generated video: .mp4 or a folder of PNG frames'},
  {'audio', 'string', nil, 'speech (WAV or anything FFmpeg reads); default: the video\'s own audio'},
  {'ref', 'string', nil, 'reference portrait (PNG) for the identity error'},
  {'fps', 'number', 25, 'frame rate of a PNG folder'},
  {'weights', 'string', nil, 'evaluator weights (default weights/evaluator.safetensors)'},
  {'sheet', 'string', nil, 'with --video: also write a contact sheet PNG (frames over read vs audio mouth)'},
  {'threads', 'int', 1, 'compute threads'},
})

-- ---- the flags' checks: a message naming the flag and exit 2, before any work -------------------

-- f(...) or a one-line message: "what: why" (a library's file position dropped), exit 2.
local function try(what, f, ...)
  local r = table.pack(pcall(f, ...))
  if not r[1] then
    local why = tostring(r[2]):gsub('^[^:\n]*%.lua:%d+: ', ''):gsub('^metrics: ', '')
    cli.fail(what and ('%s: %s'):format(what, why) or why)
  end
  return table.unpack(r, 2, r.n)
end

if opts.ground_truth and opts.video then cli.fail('give --ground-truth or --video, not both') end
if opts.clips < 1 then cli.fail(('--clips must be at least 1, got %d'):format(opts.clips)) end
if opts.size < 16 then cli.fail(('--size must be at least 16, got %d'):format(opts.size)) end
if not (opts.fps > 0) then cli.fail(('--fps must be a number > 0, got %s'):format(opts.fps)) end
if opts.threads < 1 then cli.fail(('--threads must be at least 1, got %d'):format(opts.threads)) end
if opts.weights and not fada.readable(opts.weights) then cli.fail(("--weights: cannot read '%s'"):format(opts.weights)) end
if opts.video then
  if not fada.readable(opts.video) then cli.fail(("--video: cannot read '%s'"):format(opts.video)) end
  if metrics.is_folder(opts.video) and not opts.audio then
    cli.fail(("--video '%s' is a folder of PNG frames: give its speech with --audio"):format(opts.video))
  end
  if opts.audio and not fada.readable(opts.audio) then cli.fail(("--audio: cannot read '%s'"):format(opts.audio)) end
  if opts.ref and not fada.readable(opts.ref) then cli.fail(("--ref: cannot read '%s'"):format(opts.ref)) end
end
fada.set_num_threads(opts.threads)
local ev = try(opts.weights and '--weights ' .. opts.weights, metrics.evaluator, opts.weights)

-- ---- the ceiling on ground-truth clips, or a generated video --------------------------------------

local function ground_truth()
  local res = clips.ceiling(opts.clips, {size = opts.size, evaluator = ev})
  print(tables.ceiling(res, {size = opts.size, weights = opts.weights}))
end

local function video()
  local ref = opts.ref and try('--ref ' .. opts.ref, fada.image.load, opts.ref, {channels = 3}) or nil
  local samples, sr
  if opts.audio then samples, sr = try('--audio ' .. opts.audio, fada.audio.load, opts.audio, {sample_rate = 16000}) end
  local frames, fps, own, own_sr = try('--video ' .. opts.video, metrics.load_video, opts.video,
                                       {fps = opts.fps, audio = opts.audio})
  if not opts.audio then samples, sr = own, own_sr end
  if opts.sheet and not samples then
    cli.fail(("--sheet draws the mouth against the speech: '%s' has no audio (give --audio)"):format(opts.video))
  end
  local m = metrics.evaluate(frames, samples, sr, {ref = ref, evaluator = ev, fps = fps})
  print(tables.video(m, {name = opts.video, frames = frames, fps = fps, samples = samples, sample_rate = sr}))
  if opts.sheet and m.lipsync then
    fada.image.save(opts.sheet, require('fada.figures').lipsync_sheet(frames, m.lipsync, samples, sr, fps))
    print(('\nwrote %s: frames over the mouth opening read from them (red), asked by the speech (blue), ' ..
           'speech energy (grey)'):format(opts.sheet))
  end
  print('\nCompare with the ceiling: fadalua scripts/metrics.lua --ground-truth --clips 20')
end

if opts.ground_truth then ground_truth()
elseif opts.video then video()
else cli.fail('give --ground-truth or --video PATH (see --help)')
end
