-- The Markdown tables scripts/metrics.lua prints: the evaluator's ceiling on
-- held-out ground-truth clips, and one video's readings.
--
--   local tables = require 'fada.metrics.tables'
--   print(tables.ceiling(clips.ceiling(20, {evaluator = ev}), {size = 64, weights = nil}))
--   print(tables.video(metrics.evaluate(frames, samples, sr, {ref = ref}), {name = 'out.mp4', frames = frames,
--                      fps = 25, samples = samples, sample_rate = sr}))
local stats = require 'fada.metrics.stats'

local M = {}

-- One row of the ceiling table: mean, sd, min and max of per-clip values.
local function spread_row(name, values, fmt, note)
  local lo, hi = math.huge, -math.huge
  for _, v in ipairs(values) do lo, hi = math.min(lo, v), math.max(hi, v) end
  return ('| %s | ' .. fmt .. ' | ' .. fmt .. ' | ' .. fmt .. ' | ' .. fmt .. ' | %s |'):format(name,
    stats.mean(values), stats.std(values), lo, hi, note or '')
end

-- The ceiling table from fada.metrics.clips.ceiling's result. o: size, weights (nil: the shipped evaluator).
function M.ceiling(res, o)
  local acc, n = res.acc, #res.acc.ls_corr
  local out = {}
  local function add(line) out[#out + 1] = line end
  local function row(...) add(spread_row(...)) end
  add(('\nCeiling: %d held-out ground-truth clips (%d frames, %dx%d, identities 900000 + 37k, no model), ' ..
       'evaluator %s\n'):format(n, res.frames, o.size, o.size, o.weights or 'weights/evaluator.safetensors'))
  add('| metric | mean | std | min | max | note |')
  add('|---|---|---|---|---|---|')
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
  add(('| Fréchet distance, even vs odd frames | %.4g | | | | same clips: the floor |'):format(res.fd_self))
  add(('| Fréchet distance, vs other identities | %.4g | | | | %d held-out renders: the scale |'):format(
    res.fd_other, res.renders))
  add(('\n(%.0f s; command: fadalua scripts/metrics.lua --ground-truth --clips %d --size %d)'):format(
    res.seconds, n, o.size))
  return table.concat(out, '\n')
end

-- One video's table from fada.metrics.evaluate's result m. v: name, frames [T, 3, S, S], fps,
-- samples (nil: no audio), sample_rate.
function M.video(m, v)
  local out = {}
  local function add(fmt, ...) out[#out + 1] = fmt:format(...) end
  add('\n%s: %d frames %dx%d at %g fps%s\n', v.name, v.frames:size(1), v.frames:size(3), v.frames:size(4), v.fps,
    v.samples and (', %.2f s of audio'):format(v.samples:size(1) / v.sample_rate) or ', no audio')
  add('| metric | value |\n|---|---|')
  if m.lipsync then
    add('| lip-sync correlation | %.3f |', m.lipsync.corr)
    add('| lip-sync distance | %.3f |', m.lipsync.dist)
    add('| lip-sync best offset (frames, >0 audio lags) | %d |', m.lipsync.offset)
    add('| lip-sync confidence | %.3f |', m.lipsync.confidence)
  end
  if m.identity then
    add('| identity error vs reference | %.4f |', m.identity.error)
    for _, g in ipairs({'colour', 'geometry', 'style', 'accessories'}) do
      add('| identity error, %s | %.4f |', g, m.identity[g])
    end
  end
  for _, key in ipairs{'dx', 'dy', 'roll', 'yaw', 'open', 'round', 'blink'} do
    add('| motion std %s | %.4f |', key, m.motion['std_' .. key])
  end
  add('| flicker, pixels | %.4f |', m.flicker.pixel)
  add('| flicker, read opening | %.4f |', m.flicker.open)
  add('| flicker, read pose | %.4f |', m.flicker.pose)
  return table.concat(out, '\n')
end

return M
