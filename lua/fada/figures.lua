-- Figures as PNG-ready tensors, drawn with tensor ops (no plotting library).
--
--   local figures = require 'fada.figures'
--   local img = figures.contact_sheet(frames, {curves = {{values = open, color = figures.RED}}})
--   fada.image.save('sheet.png', img)
--
-- contact_sheet(frames [T, 3, S, S] in [0, 1], opts) -> [3, S + H, count·S]: a
-- strip of `count` frames, every `stride`-th from `first`, above a plot of
-- per-frame curves over the same frames (x = time, each shown frame's centre
-- ticked), optionally with grey bars (e.g. speech energy) behind the curves.
-- opts: first (1; 'busiest' = where curves[1] moves most), count (16),
-- stride (2), height (96), curves = {{values = {per frame in [0, 1]},
-- color = {r, g, b}, width = 1}, ...}, bars = {per frame, any scale}.
--
-- lipsync_sheet(frames, lipsync, samples, sample_rate, fps) -> the sheet of a
-- talking video at its busiest 1.3 s: the mouth opening the evaluator reads
-- from the frames (red) over the opening the speech asks for (blue,
-- speech.mouth_track) and the speech energy (grey). `lipsync` is
-- fada.metrics.evaluate(...).lipsync.
local fada = require 'fada'

local M = {}

M.RED, M.BLUE, M.GREEN, M.BLACK = {0.85, 0.1, 0.1}, {0.1, 0.3, 0.9}, {0.1, 0.6, 0.2}, {0, 0, 0}

-- rows of [3, S, S] tiles, `cols` per row -> [3, rows·S, cols·S]
function M.grid(tiles, cols)
  local rows = {}
  for r = 1, #tiles // cols do
    local row = {}
    for c = 1, cols do row[c] = tiles[(r - 1) * cols + c] end
    rows[r] = fada.cat(row, 3)
  end
  return fada.cat(rows, 2)
end

-- The first frame of the `len`-frame window where `values` changes most.
function M.busiest(values, len)
  local best, first = -1, 1
  for s = 1, math.max(1, #values - len + 1) do
    local v = 0
    for f = s + 1, math.min(#values, s + len - 1) do v = v + math.abs(values[f] - values[f - 1]) end
    if v > best then best, first = v, s end
  end
  return first
end

function M.contact_sheet(frames, opts)
  opts = opts or {}
  local T, S = frames:size(1), frames:size(3)
  local count, stride, H = opts.count or 16, opts.stride or 2, opts.height or 96
  local curves = opts.curves or {}
  local span = count * stride                                  -- frames under the strip
  local first = opts.first or 1
  if first == 'busiest' then first = curves[1] and M.busiest(curves[1].values, span) or 1 end
  first = math.max(1, math.min(first, T - span + 1))
  local tiles = {}
  for j = 0, count - 1 do
    local f = math.min(T, first + stride * j)
    tiles[#tiles + 1] = frames:select(1, f):contiguous()          -- [3, S, S]
  end
  local strip = fada.cat(tiles, 3)                              -- [3, S, count·S]
  local W = strip:size(3)
  local plot = fada.ones(3, H, W)
  local px = plot:totable()                                     -- edit as Lua tables, one copy back
  local function put(x, y, col, r)
    for dy = -r + 1, r - 1 do
      local yy = math.max(1, math.min(H, y + dy))
      for k = 1, 3 do px[k][yy][x] = col[k] end
    end
  end
  local function at(values, pos)                               -- linear interpolation at a fractional frame
    local i0 = math.max(1, math.min(#values, math.floor(pos)))
    local i1, t = math.min(#values, i0 + 1), pos - math.floor(pos)
    return (values[i0] or 0) * (1 - t) + (values[i1] or 0) * t
  end
  local px_per_frame = W / span
  local bmax = 0
  if opts.bars then for i = first, first + span - 1 do bmax = math.max(bmax, opts.bars[i] or 0) end end
  for x = 1, W do
    local pos = first + (x - 0.5) / px_per_frame - 0.5
    if opts.bars and bmax > 0 then
      local e = math.sqrt(math.max(0, at(opts.bars, pos)) / bmax)
      for y = H - math.floor(e * (H - 8)), H do for k = 1, 3 do px[k][y][x] = 0.85 end end
    end
    for ci = #curves, 1, -1 do                                  -- the first curve drawn last, on top
      local c = curves[ci]
      local v = math.max(0, math.min(1, at(c.values, pos)))
      put(x, H - 4 - math.floor(v * (H - 8) + 0.5), c.color or M.BLACK, c.width or 1)
    end
  end
  for j = 0, count - 1 do                                       -- ticks under the shown frames' centres
    local x = math.floor((stride * j + 0.5) * px_per_frame) + 1
    for y = 1, 6 do for k = 1, 3 do px[k][y][x] = 0 end end
  end
  return fada.cat({strip, fada.tensor(px)}, 2), first
end

function M.lipsync_sheet(frames, lipsync, samples, sample_rate, fps)
  local speech = require 'fada.data.speech'
  return M.contact_sheet(frames, {first = 'busiest', curves = {
    {values = lipsync.mouth, color = M.RED, width = 2},
    {values = lipsync.track, color = M.BLUE},
  }, bars = speech.band_energies(samples, sample_rate, fps or 25)})
end

-- Models side by side on one speech: each run's frames in a row (the same
-- `count` frames of each, every stride-th), and what each cost. runs: {{label,
-- model (path), mode}}; audio: {samples, sample_rate}. Returns {image, rows =
-- {{label, steps, nfe_per_step, seconds_per_frame, realtime_factor}}, stride}.
function M.modes_sheet(runs, audio, count)
  local pipeline = require 'fada.pipeline'
  count = count or 8
  local rows, tiles = {}, {}
  local stride
  for _, r in ipairs(runs) do
    local frames = {}
    local res = pipeline.sample{model = r.model, mode = r.mode, audio = audio,
                                out = false, on_clip = function(_, f) frames[#frames + 1] = f end}
    local video = fada.cat(frames, 1):narrow(1, 1, res.frames)                -- [T, 3, S, S]
    stride = stride or math.max(1, res.frames // count)
    for k = 1, count do tiles[#tiles + 1] = video:select(1, math.min(res.frames, 1 + (k - 1) * stride)) end
    rows[#rows + 1] = {label = r.label, steps = res.steps, nfe_per_step = res.nfe_per_step,
                       seconds_per_frame = res.seconds_per_frame, realtime_factor = res.realtime_factor}
  end
  return {image = M.grid(tiles, count), rows = rows, stride = stride}
end

return M
