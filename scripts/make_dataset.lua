-- Generates synthetic talking-avatar clips (lua/fada/data/avatars.lua): per
-- clip an identity, a sentence spoken by espeak-ng, the audio-driven mouth,
-- random sway and blinks, rendered frames -> MP4 (H.264 + AAC) + a
-- ground-truth sidecar, and a manifest.jsonl. Run with --help.
local fada = require 'fada'
local A = require 'fada.data.avatars'
local jsonl = require 'fada.data.jsonl'

local cli = require 'fada.cli'
local progress = require 'fada.progress'

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

local function shell_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- ---- one shard: clips first + k - 1, first + k - 1 + J, ... ---------------------------

local function run_shard(k, J, on_clip)
  fada.set_num_threads(1) -- J processes, one core each; small ops do not gain from threads
  local rows, parts = {}, ('%s/.manifest-%d.jsonl'):format(opts.out, k)
  local progress = assert(io.open(('%s/.progress-%d'):format(opts.out, k), 'w'))
  for i = opts.first + k - 1, opts.first + opts.clips - 1, J do
    local spec = A.clip_spec{seed = opts.seed, tier = opts.tier, split = opts.split, index = i,
                             identities = opts.identities}
    local row = A.make_clip(spec, {size = opts.size, dir = opts.out, format = opts.format, crf = opts.crf,
                                   preset = opts.preset})
    rows[#rows + 1] = row
    progress:write(('%s %d\n'):format(row.clip, row.frames))
    progress:flush()
    if on_clip then on_clip(row) end
  end
  local f = assert(io.open(parts, 'w'))
  for _, row in ipairs(rows) do f:write(jsonl.encode(row, {'clip', 'video', 'sidecar'}), '\n') end
  f:close()
  progress:write(('cpu %.3f\n'):format(os.clock()))
  progress:write('done\n')
  progress:close()
end

if opts.shard then
  local k, J = opts.shard:match('^(%d+)/(%d+)$')
  k, J = math.tointeger(tonumber(k)), math.tointeger(tonumber(J))
  if not k or k < 1 or k > J then cli.fail('--shard must be K/J with 1 <= K <= J') end
  run_shard(k, J)
  os.exit(0)
end

-- ---- the parent: shard 1 here, shards 2..J as child processes --------------------------

fada.mkdir(opts.out)
local t0 = fada.clock()
local J = math.min(opts.jobs, opts.clips)
local exe = arg[-1] or 'fadalua'
local children = {}
for k = 2, J do
  os.remove(('%s/.progress-%d'):format(opts.out, k))
  local cmd = {shell_quote(exe), shell_quote(arg[0])}
  for _, key in ipairs{'out', 'clips', 'size', 'tier', 'split', 'seed', 'first', 'format', 'crf', 'preset',
                       'identities'} do
    if opts[key] ~= nil then cmd[#cmd + 1] = ('--%s %s'):format(key, shell_quote(opts[key])) end
  end
  cmd[#cmd + 1] = ('--shard %d/%d'):format(k, J)
  -- the shell notes the exit status in the progress file, so a child that
  -- dies is noticed instead of waited for
  local log, progress_file = ('%s/.log-%d'):format(opts.out, k), ('%s/.progress-%d'):format(opts.out, k)
  children[k] = io.popen(('%s > %s 2>&1; echo "exited $?" >> %s'):format(table.concat(cmd, ' '), shell_quote(log),
                                                                       shell_quote(progress_file)), 'r')
end

-- progress lines of shard k: clips done, frames done, cpu seconds, finished
local function shard_state(k)
  local f = io.open(('%s/.progress-%d'):format(opts.out, k), 'r')
  if not f then return 0, 0, 0, false end
  local clips, frames, cpu, done, failed = 0, 0, 0, false, false
  for line in f:lines() do
    local name, n = line:match('^(%S+) (%d+)$')
    if name == 'cpu' then cpu = tonumber(n)
    elseif line:match('^cpu ') then cpu = tonumber(line:match('^cpu (%S+)'))
    elseif line == 'done' then done = (k == 1) -- a child is done when its shell says it exited
    elseif line:match('^exited ') then done, failed = true, line ~= 'exited 0'
    elseif name then clips, frames = clips + 1, frames + tonumber(n) end
  end
  f:close()
  return clips, frames, cpu, done, failed
end

local function totals()
  local clips, frames, cpu, all_done = 0, 0, 0, true
  for k = 1, J do
    local c, f, s, d = shard_state(k)
    clips, frames, cpu, all_done = clips + c, frames + f, cpu + s, all_done and d
  end
  return clips, frames, cpu, all_done
end

local bar = progress.new(opts.clips, {label = 'clips', unit = 'clip', enabled = not opts.quiet})
local function draw()
  local clips, frames = totals()
  bar:update(clips, {frames = frames})
end

os.remove(('%s/.progress-1'):format(opts.out))
draw()
run_shard(1, J, draw)
while true do -- wait for the children, still drawing their progress
  local _, _, _, done = totals()
  if done then break end
  draw()
  os.execute('sleep 0.25')
end
for k = 2, J do
  children[k]:close()
  local log = ('%s/.log-%d'):format(opts.out, k)
  local _, _, _, _, failed = shard_state(k)
  if failed then
    local f = io.open(log, 'r')
    cli.fail(('shard %d/%d failed:\n%s'):format(k, J, f and f:read('a') or '(no log)'))
  end
  os.remove(log)
end
bar:finish({frames = select(2, totals())})

-- merge the shards' rows into the manifest (clip order), replacing rows of
-- the same clip from an earlier run
local rows, by_clip = {}, {}
local manifest = opts.out .. '/manifest.jsonl'
local old = io.open(manifest, 'r')
if old then
  old:close()
  for _, r in ipairs(jsonl.read(manifest)) do by_clip[r.clip] = r end
end
for k = 1, J do
  local part = ('%s/.manifest-%d.jsonl'):format(opts.out, k)
  for _, r in ipairs(jsonl.read(part)) do by_clip[r.clip] = r end
  os.remove(part)
end
for _, r in pairs(by_clip) do rows[#rows + 1] = r end
table.sort(rows, function(a, b) return a.clip < b.clip end)
local f = assert(io.open(manifest .. '.tmp', 'w'))
for _, r in ipairs(rows) do f:write(jsonl.encode(r, {'clip', 'video', 'sidecar'}), '\n') end
f:close()
assert(os.rename(manifest .. '.tmp', manifest))

local clips, frames, cpu = totals()
for k = 1, J do os.remove(('%s/.progress-%d'):format(opts.out, k)) end
local dt = fada.clock() - t0
local du = io.popen('du -sk ' .. shell_quote(opts.out)):read('l')
print(('made %d clips (%s %s, %dx%d, %s) in %s: %d frames (%.1f s of video), %.1f s wall, %.1f clips/min, ' ..
       '%.0f frames/s, %.1f CPU s over %d processes, %.1f MB on disk; manifest %s (%d rows)'):format(
  clips, opts.tier, opts.split, opts.size, opts.size, opts.format, opts.out, frames, frames / A.FPS, dt,
  60 * clips / dt, frames / dt, cpu, J, (tonumber(du:match('^(%d+)')) or 0) / 1024, manifest, #rows))
