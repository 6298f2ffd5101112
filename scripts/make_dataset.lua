-- Generates synthetic talking-avatar clips (lua/fada/data/avatars.lua): per
-- clip an identity, a sentence spoken by espeak-ng, the audio-driven mouth,
-- random sway and blinks, rendered frames -> MP4 (H.264 + AAC) + a
-- ground-truth sidecar, and a manifest.jsonl. Run with --help.
local fada = require 'fada'
local A = require 'fada.data.avatars'
local cli = require 'fada.cli'

local opts = cli.parse(arg, {
  usage = 'usage: fadalua scripts/make_dataset.lua [flags]',
  about = [[
Per clip: an identity, a sentence spoken by espeak-ng, the audio-driven mouth,
random sway and blinks -> DIR/clipNNNN.mp4 (H.264 + AAC; or clipNNNN/frame_%05d.png
+ clipNNNN.wav without fada.video), DIR/clipNNNN.safetensors (per-frame open,
round, dx, dy, roll, yaw, blink as f32 [F]; identity attributes f32 [K], their
names and the clip's row in the config) and DIR/manifest.jsonl (a row per clip).
Same seed, same bytes, whatever --jobs. Held-out identities and sentences are
disjoint from training ones; the moderate tier is darker, blurred, lower
resolution, partly occluded, noisy, with many more identities.]],
  {'out', 'string', nil, 'output folder (default data/avatars/<tier>-<split>)'},
  {'clips', 'int', 300, 'number of clips'},
  {'size', 'int', 64, 'frame size, 64 or 128'},
  {'tier', 'string', 'hq', 'hq | moderate'},
  {'split', 'string', 'train', 'train | heldout'},
  {'identities', 'int', nil, 'distinct identities to cycle through (default hq: 100 train / 20 heldout; moderate: one per clip)'},
  {'jobs', 'int', 2, 'processes; shards are interleaved clip indices'},
  {'seed', 'int', 1, 'dataset seed'},
  {'first', 'int', 1, 'index of the first clip (to extend a dataset)'},
  {'format', 'string', nil, 'mp4 | png (default mp4 when fada.video is built)'},
  {'crf', 'int', 16, 'x264 quality'},
  {'preset', 'string', 'fast', 'x264 preset'},
  {'quiet', 'bool', false, 'no progress bar'},
  {'shard', 'string', nil, 'internal: run shard K/J only'},
})

if opts.size ~= 64 and opts.size ~= 128 then cli.fail(('--size must be 64 or 128, got %d'):format(opts.size)) end
if not A.ID_BASE[opts.tier] then cli.fail(('--tier must be hq or moderate, got %s'):format(opts.tier)) end
if not A.ID_BASE.hq[opts.split] then cli.fail(('--split must be train or heldout, got %s'):format(opts.split)) end
if opts.clips < 1 or opts.jobs < 1 then cli.fail('--clips and --jobs must be >= 1') end
opts.out = opts.out or ('data/avatars/%s-%s'):format(opts.tier, opts.split)
opts.format = opts.format or (A.video_available() and 'mp4' or 'png')
if opts.format == 'mp4' and not A.video_available() then cli.fail('--format mp4 needs fada.video (not built in)') end

if opts.shard then
  local k, J = opts.shard:match('^(%d+)/(%d+)$')
  k, J = math.tointeger(tonumber(k)), math.tointeger(tonumber(J))
  if not k or k < 1 or k > J then cli.fail('--shard must be K/J with 1 <= K <= J') end
  A.make_shard(opts, k, J)
  os.exit(0)
end

-- shard 1 here, shards 2..J as child processes running this script with --shard
local r = A.make_dataset(opts, arg[-1] or 'fadalua', arg[0], cli.fail)
print(('made %d clips (%s %s, %dx%d, %s) in %s: %d frames (%.1f s of video), %.1f s wall, %.1f clips/min, ' ..
       '%.0f frames/s, %.1f CPU s over %d processes, %.1f MB on disk; manifest %s (%d rows)'):format(
  r.clips, opts.tier, opts.split, opts.size, opts.size, opts.format, opts.out, r.frames, r.frames / A.FPS, r.seconds,
  60 * r.clips / r.seconds, r.frames / r.seconds, r.cpu, r.processes, r.mb, r.manifest, r.rows))
