-- The data figures in docs/ (not a test):
--   fadalua scripts/data_figures.lua [docs]
-- docs/identities.png   48 identities (hq train range), 64x64 each
-- docs/moderate.png     24 moderate-tier identities with their degradations
-- docs/clip-frames.png  a clip as decoded from its MP4 (every 2nd frame of
--                       the busiest 1.3 s) above its mouth-opening curve
--                       (red), rounding (blue), speech energy (grey)
require('fada.cli').help_from_header(arg)
local fada = require 'fada'
local face = require 'fada.data.face'
local A = require 'fada.data.avatars'
local motion = require 'fada.data.motion'
local speech = require 'fada.data.speech'
local loader = require 'fada.data.loader'

local out = arg[1] or 'docs'
os.execute('mkdir -p ' .. out)
fada.set_num_threads(1)

-- rows of [3, S, S] tiles -> one [3, rows*S, cols*S] image
local function grid(tiles, cols)
  local rows = {}
  for r = 1, #tiles // cols do
    local row = {}
    for c = 1, cols do row[c] = tiles[(r - 1) * cols + c] end
    rows[r] = fada.cat(row, 3)
  end
  return fada.cat(rows, 2)
end

-- identities: a neutral-ish pose, mouth slightly open
local tiles = {}
for k = 1, 48 do
  local id = face.identity(A.identity_seed('hq', 'train', k))
  tiles[k] = face.render(id, {open = 0.25, round = 0.1, yaw = 0.0}, 64)
end
fada.image.save(out .. '/identities.png', grid(tiles, 12))

-- moderate tier: each clip's degradation on its identity
tiles = {}
for k = 1, 24 do
  local spec = A.clip_spec{tier = 'moderate', index = k}
  local id = face.identity(spec.identity_seed)
  tiles[k] = A.render_moderate(id, {open = 0.3, round = 0.1}, 64, spec.degrade, fada.Generator(k))
end
fada.image.save(out .. '/moderate.png', grid(tiles, 12))

-- one clip end to end: generate, decode through the loader, plot
local tmp = io.popen('mktemp -d /tmp/fada_fig_XXXXXX'):read('l')
local spec = A.clip_spec{seed = 1, index = 4}
local row = A.make_clip(spec, {size = 64, dir = tmp})
local mf = assert(io.open(tmp .. '/manifest.jsonl', 'w'))
mf:write(require('fada.data.jsonl').encode(row), '\n')
mf:close()
local ld = loader.open(tmp)
local c = ld:decode(1)
local n = c.n
local open, round = c.truth.open:tolist(), c.truth.round:tolist()
-- the busiest window of 32 frames (most mouth movement)
local best, first = -1, 1
for s = 1, n - 31 do
  local v = 0
  for f = s + 1, s + 31 do v = v + math.abs(open[f] - open[f - 1]) end
  if v > best then best, first = v, s end
end
local shown = {}
for j = 0, 15 do shown[#shown + 1] = first + 2 * j end
tiles = {}
for j, f in ipairs(shown) do tiles[j] = fada.frames_to_float(c.frames:select(1, f)) end      -- [3, 64, 64]
local strip = fada.cat(tiles, 3)                                                           -- [3, 64, 1024]
-- the plot: the same 32 frames across the strip's width, 96 px high
local W, H = strip:size(3), 96
local plot = fada.ones(3, H, W)
local function put(x, y, col, r)
  r = r or 1
  for dy = -r + 1, r - 1 do
    local yy = math.max(1, math.min(H, y + dy))
    for k = 1, 3 do plot:set(k, yy, x, col[k]) end
  end
end
local energy = speech.band_energies(c.audio, 16000, 25)
local emax = 0
for i = first, first + 31 do emax = math.max(emax, energy[i] or 0) end
local px_per_frame = W / 32
for x = 1, W do
  local pos = first + (x - 0.5) / px_per_frame - 0.5                  -- fractional frame under x
  local i0 = math.max(1, math.min(n, math.floor(pos)))
  local i1, t = math.min(n, i0 + 1), pos - math.floor(pos)
  local o = open[i0] * (1 - t) + open[i1] * t
  local ro = round[i0] * (1 - t) + round[i1] * t
  local e = math.sqrt((energy[i0] or 0) / math.max(emax, 1e-12))
  for y = H - math.floor(e * (H - 8)), H do for k = 1, 3 do plot:set(k, y, x, 0.85) end end
  put(x, H - 4 - math.floor(ro * (H - 8) + 0.5), {0.1, 0.3, 0.9})
  put(x, H - 4 - math.floor(o * (H - 8) + 0.5), {0.85, 0.1, 0.1}, 2)
end
for j = 0, 15 do -- ticks under the shown frames' centres
  local x = math.floor((2 * j + 0.5) * px_per_frame) + 1
  for y = 1, 6 do for k = 1, 3 do plot:set(k, y, x, 0) end end
end
fada.image.save(out .. '/clip-frames.png', fada.cat({strip, plot}, 2))
print(('wrote %s/identities.png, %s/moderate.png, %s/clip-frames.png (clip %q, frames %d-%d of %d, voice %s)'):format(
  out, out, out, spec.sentence, shown[1], shown[#shown], n, spec.voice))
os.execute("rm -rf '" .. tmp .. "'")
