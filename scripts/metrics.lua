-- Metrics of talking-avatar videos, read by the evaluator CNN.
--
--   fadalua scripts/metrics.lua --ground-truth --clips 20      # the ceiling table
--   fadalua scripts/metrics.lua --video out.mp4 --ref ref.png   # a generated video
--   fadalua scripts/metrics.lua --video frames/ --audio speech.wav --ref ref.png
local fada = require 'fada'
local cli = require 'fada.cli'
local metrics = require 'fada.metrics'
local clips = require 'fada.metrics.clips'
local stats = require 'fada.metrics.stats'

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

local function row(name, values, fmt, note)
  fmt = fmt or '%.3f'
  local m, s = stats.mean(values), stats.std(values)
  local lo, hi = math.huge, -math.huge
  for _, v in ipairs(values) do lo, hi = math.min(lo, v), math.max(hi, v) end
  print(('| %s | ' .. fmt .. ' | ' .. fmt .. ' | ' .. fmt .. ' | ' .. fmt .. ' | %s |'):format(
    name, m, s, lo, hi, note or ''))
end

-- ---- the ceiling on ground-truth clips ----------------------------------------------------------

local function ground_truth()
  local n = opts.clips
  local res = clips.ceiling(n, {size = opts.size, evaluator = ev})
  local acc = res.acc
  print(('\nCeiling: %d held-out ground-truth clips (%d frames, %dx%d, identities 900000 + 37k, no model), ' ..
         'evaluator %s\n'):format(n, res.frames, opts.size, opts.size, opts.weights or 'weights/evaluator.safetensors'))
  print('| metric | mean | std | min | max | note |')
  print('|---|---|---|---|---|---|')
  row('lip-sync correlation (best offset)', acc.ls_corr, '%.3f', 'read opening vs speech.mouth_track')
  row('lip-sync distance (mean abs, opening units)', acc.ls_dist, '%.3f', 'like LSE-D, lower is better')
  row('lip-sync best offset (frames)', acc.ls_offset, '%.2f', '0 = in sync; >0 audio lags')
  row('lip-sync confidence (peak - median corr)', acc.ls_conf, '%.3f', 'like LSE-C')
  row('identity error vs own reference', acc.id_err, '%.4f', 'mean abs, normalised attributes')
  row('identity error (colours only)', acc.id_err_colour, '%.4f', 'RGB units')
  row('identity error (geometry only)', acc.id_err_geometry, '%.4f', 'face and feature sizes, positions')
  row('identity error (style only)', acc.id_err_style, '%.4f', 'hair style one-hot')
  row('identity error (accessories only)', acc.id_err_accessories, '%.4f', 'glasses, earrings, hat (0/1)')
  row('identity error vs another identity', acc.id_err_other, '%.4f', 'scale: a wrong identity')
  row('evaluator: opening r vs truth', acc.read_open_r, '%.4f', 'per clip')
  row('evaluator: opening MAE vs truth', acc.read_open_mae, '%.4f', 'opening units')
  row('evaluator: rounding r vs truth', acc.read_round_r, '%.3f', '')
  row('evaluator: yaw r vs truth', acc.read_yaw_r, '%.3f', '')
  row('evaluator: roll r vs truth', acc.read_roll_r, '%.3f', '')
  row('evaluator: dx r vs truth', acc.read_dx_r, '%.3f', '')
  for _, key in ipairs{'dx', 'dy', 'roll', 'yaw', 'open', 'blink'} do
    row(('motion std %s (read / true %.4f)'):format(key, stats.mean(acc['std_' .. key .. '_true'])),
        acc['std_' .. key], '%.4f', '')
  end
  row('flicker, pixels (mean abs 2nd difference)', acc.flicker_pixel, '%.4f', '[0, 1] pixel units')
  row('flicker, read opening', acc.flicker_open, '%.4f', '')
  row('flicker, read pose', acc.flicker_pose, '%.4f', 'normalised units')
  print(('| Fréchet distance, even vs odd frames | %.4g | | | | same clips: the floor |'):format(res.fd_self))
  print(('| Fréchet distance, vs other identities | %.4g | | | | %d held-out renders: the scale |'):format(
    res.fd_other, res.renders))
  print(('\n(%.0f s; command: fadalua scripts/metrics.lua --ground-truth --clips %d --size %d)'):format(
    res.seconds, n, opts.size))
end

-- ---- a generated video --------------------------------------------------------------------------

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
  print(('\n%s: %d frames %dx%d at %g fps%s\n'):format(opts.video, frames:size(1), frames:size(3), frames:size(4),
    fps, samples and (', %.2f s of audio'):format(samples:size(1) / sr) or ', no audio'))
  print('| metric | value |\n|---|---|')
  if m.lipsync then
    print(('| lip-sync correlation | %.3f |'):format(m.lipsync.corr))
    print(('| lip-sync distance | %.3f |'):format(m.lipsync.dist))
    print(('| lip-sync best offset (frames, >0 audio lags) | %d |'):format(m.lipsync.offset))
    print(('| lip-sync confidence | %.3f |'):format(m.lipsync.confidence))
  end
  if m.identity then
    print(('| identity error vs reference | %.4f |'):format(m.identity.error))
    for _, g in ipairs({'colour', 'geometry', 'style', 'accessories'}) do
      print(('| identity error, %s | %.4f |'):format(g, m.identity[g]))
    end
  end
  for _, key in ipairs{'dx', 'dy', 'roll', 'yaw', 'open', 'round', 'blink'} do
    print(('| motion std %s | %.4f |'):format(key, m.motion['std_' .. key]))
  end
  print(('| flicker, pixels | %.4f |'):format(m.flicker.pixel))
  print(('| flicker, read opening | %.4f |'):format(m.flicker.open))
  print(('| flicker, read pose | %.4f |'):format(m.flicker.pose))
  if opts.sheet and m.lipsync then
    local img = require('fada.figures').lipsync_sheet(frames, m.lipsync, samples, sr, fps)
    fada.image.save(opts.sheet, img)
    print(('\nwrote %s: frames over the mouth opening read from them (red), asked by the speech (blue), ' ..
           'speech energy (grey)'):format(opts.sheet))
  end
  print('\nCompare with the ceiling: fadalua scripts/metrics.lua --ground-truth --clips 20')
end

if opts.ground_truth then ground_truth()
elseif opts.video then video()
else cli.fail('give --ground-truth or --video PATH (see --help)')
end
