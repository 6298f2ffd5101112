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
local figures = require 'fada.figures'

local out = arg[1] or 'docs'
fada.mkdir(out)
fada.set_num_threads(1)

local grid = figures.grid

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
-- the busiest 32 frames (most mouth movement), every 2nd one shown
local frames = fada.frames_to_float(c.frames)                                             -- [n, 3, 64, 64]
local sheet, first = figures.contact_sheet(frames, {first = 'busiest', count = 16, stride = 2, curves = {
  {values = open, color = figures.RED, width = 2}, {values = round, color = figures.BLUE}},
  bars = speech.band_energies(c.audio, 16000, 25)})
local shown = {first, first + 30}
fada.image.save(out .. '/clip-frames.png', sheet)
print(('wrote %s/identities.png, %s/moderate.png, %s/clip-frames.png (clip %q, frames %d-%d of %d, voice %s)'):format(
  out, out, out, spec.sentence, shown[1], shown[#shown], n, spec.voice))
os.execute("rm -rf '" .. tmp .. "'")
