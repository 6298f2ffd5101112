-- fadalua scripts/eval.lua: runs a model over held-out talking clips at the
-- given steps and CFG scales and prints the metrics table (the sweep tool).
--
--   fadalua scripts/eval.lua                                   # the shipped teacher, default scales
--   fadalua scripts/eval.lua --grid 2:3.5,2:1,1:3.5,1:1        # the CFG ablation grid
--   fadalua scripts/eval.lua --steps 6,12,25 --csv out/sweep.csv
local fada = require 'fada'
local cli = require 'fada.cli'
local models = require 'fada.models'
local pipeline = require 'fada.pipeline'
local cfg = require 'fada.diffusion.cfg'
local metrics = require 'fada.metrics'
local heldout = require 'fada.metrics.heldout'
local stats = require 'fada.metrics.stats'
local progress = require 'fada.progress'

local opts = cli.parse(arg, {
  usage = 'usage: fadalua scripts/eval.lua [--model PATH] [--clips N] [--steps LIST] [--grid LIST] [flags]',
  about = [[Generates held-out clips (identities and sentences never seen in training; the same clips
`scripts/metrics.lua --ground-truth` measures) from their neutral portrait and speech, then
reads them with the evaluator: lip-sync correlation at the best offset, that offset, the
lip distance, an LSE-C-like confidence, identity error against the portrait, flicker.
One row per (steps, w_ref:w_audio) setting, plus the ground truth itself (the ceiling).
The first setting is checked against the teacher's targets (corr >= 0.8 at offset 0 +-1 and
within 0.1 of the ceiling; identity error <= 2x the ceiling).]],
  {'model', 'string', pipeline.defaults.model, 'checkpoint to evaluate'},
  {'mode', 'string', 'teacher', 'teacher | balanced | fast (the two need a student) | unguided (1 pass)'},
  {'clips', 'int', 8, 'held-out clips (clip k of fada.metrics.clips, k = first .. first + N-1)'},
  {'first', 'int', 0, 'index of the first clip: 0 = the reported set; tune settings on another range (e.g. 100)'},
  {'seconds', 'number', 2.4, 'speech per clip (cut there; 0 = whole sentences)'},
  {'steps', 'ints', nil, 'sampling steps, a comma list (default: the mode\'s default, 25 / 6)'},
  {'grid', 'strings', nil, 'CFG scales w_ref:w_audio, a comma list (default: the sampler\'s defaults)'},
  {'sampler', 'string', pipeline.defaults.sampler, 'sampler (ddim, euler, dpmpp_2m, ...)'},
  {'cfg_schedule', 'string', 'constant', 'scale schedule over the steps: ' .. cfg.schedule.GRAMMAR},
  {'seed', 'int', 42, 'noise seed (the same for every setting)'},
  {'noise_share', 'number', pipeline.defaults.noise_share, 'part of the starting noise shared by a clip\'s frames (0..1)'},
  {'ceiling', 'bool', true, 'also measure the ground-truth clips'},
  {'csv', 'string', nil, 'also write the rows (one per setting and clip) to this CSV; an interrupted run resumes from CSV.partial'},
  {'max_minutes', 'number', nil, 'stop after this many minutes; CSV.partial keeps the finished clips and the same command continues (needs --csv)'},
  {'threads', 'int', nil, 'compute threads (default: all cores)'},
})
if opts.threads then fada.set_num_threads(opts.threads) end

if opts.clips < 1 then cli.fail('--clips must be at least 1') end
if opts.first < 0 then cli.fail('--first must be >= 0') end
if opts.max_minutes and not opts.csv then cli.fail('--max-minutes needs --csv (the results so far are kept beside it)') end
if opts.seconds < 0 then cli.fail('--seconds must be >= 0 (0 = whole sentences)') end
local f = io.open(opts.model, 'rb')
if not f then cli.fail(("cannot read the model '%s' (train one: scripts/train_teacher.lua --export)"):format(opts.model)) end
f:close()
local steps_list = opts.steps or {pipeline.default_steps[opts.mode] or 25}
local grid = {}
for _, item in ipairs(opts.grid or {('%g:%g'):format(pipeline.defaults.cfg_ref, pipeline.defaults.cfg_audio)}) do
  local a, b = item:match('^%s*([%d.]+):([%d.]+)%s*$')
  if not a then cli.fail(('--grid: "%s" is not w_ref:w_audio (e.g. 2:3.5)'):format(item)) end
  grid[#grid + 1] = {tonumber(a), tonumber(b)}
end

local model = models.load(opts.model)

-- The resume journal (CSV.partial): one line per finished (setting, clip), keyed by
-- everything that decides its numbers, the model's bytes included (exports of one
-- architecture all have the same size), so a rerun of the same command skips them.
local journal = heldout.journal(opts.csv and opts.csv .. '.partial', heldout.FIELDS)
local digest = journal.path and models.digest(opts.model)
local function row_key(label, steps, w_ref, w_audio, clip)
  return table.concat({digest, opts.mode, label, steps, w_ref, w_audio, opts.sampler, opts.cfg_schedule, opts.seed,
                       opts.seconds, opts.noise_share, clip}, '|')
end
local ev = metrics.evaluator()

-- the held-out clips, cut to --seconds
local held = heldout.clips{first = opts.first, count = opts.clips, seconds = opts.seconds,
                           size = model.config.image_size}
local measure = function(frames, c) return heldout.measure(frames, c, ev) end

local KEYS = heldout.METRICS
local rows = {}
local csv = {}

local function summarise(label, per_clip, extra)
  local row = {label = label}
  for _, k in ipairs(KEYS) do
    local v = {}
    for _, m in ipairs(per_clip) do v[#v + 1] = m[k] end
    row[k], row[k .. '_sd'] = stats.mean(v), stats.std(v)
  end
  local n0 = 0 -- clips whose best offset is 0 +- 1 frame
  for _, m in ipairs(per_clip) do if math.abs(m.offset) <= 1 then n0 = n0 + 1 end end
  row.offset_ok = n0
  for k, v in pairs(extra or {}) do row[k] = v end
  rows[#rows + 1] = row
  return row
end

if opts.ceiling then
  local per = {}
  for i, c in ipairs(held) do
    per[i] = measure(c.frames, c)
    csv[#csv + 1] = {'ground truth', 0, '', '', 0, opts.first + i - 1, per[i]}
  end
  summarise('ground truth (ceiling)', per, {steps = '-', nfe = '-', spf = '-'})
end

local settings = {}
for _, s in ipairs(steps_list) do
  for _, g in ipairs(grid) do settings[#settings + 1] = {steps = s, w_ref = g[1], w_audio = g[2]} end
end

-- One setting on one held-out clip: the metrics, the NFE and seconds spent.
local function sample_clip(s, c)
  local ok, m = pcall(heldout.sample, model, c, {mode = opts.mode, steps = s.steps, sampler = opts.sampler,
    w_ref = s.w_ref, w_audio = s.w_audio, cfg_schedule = opts.cfg_schedule, seed = opts.seed,
    noise_share = opts.noise_share}, ev)
  if not ok then cli.fail(m) end
  return m
end

local total_frames = 0
for _, c in ipairs(held) do total_frames = total_frames + c.frames:size(1) end
local bar = progress.new(#settings * total_frames, {label = 'evaluating', unit = 'frame'})
local done = 0
local pairs_left = #settings * #held -- (setting, clip) pairs not yet visited
local t_all = fada.clock()
for _, s in ipairs(settings) do
  local per, nfe, n_videos, seconds, frames_made = {}, 0, 0, 0, 0
  for i, c in ipairs(held) do
    local n = c.frames:size(1)
    local key = journal.path and row_key('sample', s.steps, s.w_ref, s.w_audio, opts.first + i - 1)
    local m = key and journal:get(key)
    pairs_left = pairs_left - 1
    if not m then
      m = sample_clip(s, c)
      if key then journal:add(key, m) end
      if opts.max_minutes and pairs_left > 0 and (fada.clock() - t_all) / 60 >= opts.max_minutes then
        bar:stop()
        print(('stopped after %.1f min (--max-minutes): the finished clips are in %s; run the same command to continue')
          :format((fada.clock() - t_all) / 60, journal.path))
        os.exit(0)
      end
    end
    per[i] = m
    nfe, n_videos = nfe + m.nfe, n_videos + m.videos
    seconds, frames_made = seconds + m.seconds, frames_made + n
    csv[#csv + 1] = {opts.mode, s.steps, s.w_ref, s.w_audio, m.nfe / m.videos, opts.first + i - 1, per[i]}
    done = done + n
    bar:update(done)
  end
  summarise(('%s, w_ref %g, w_audio %g'):format(opts.mode, s.w_ref, s.w_audio), per,
            {steps = s.steps, nfe = ('%.0f'):format(nfe / n_videos), spf = ('%.2f'):format(seconds / frames_made)})
end
bar:finish()
if journal.reused > 0 then
  print(('resumed: %d of %d (setting, clip) results read from %s'):format(journal.reused, #settings * #held,
    journal.path))
end

-- ---- the table ---------------------------------------------------------------------------------------
local clip_s = opts.seconds > 0 and ('%.1f s'):format(opts.seconds) or 'whole sentences'
print(('\n%s on %d held-out clips (%s each), sampler %s, seed %d; mean ± sd over clips'):format(
  opts.model, #held, clip_s, opts.sampler, opts.seed))
print('| setting | steps | NFE per clip | lip-sync corr | offset 0±1 | lip dist | LSE-C | identity err | flicker | '
  .. 'sharpness | s/frame |')
print('|---|---|---|---|---|---|---|---|---|---|---|')
for _, r in ipairs(rows) do
  print(('| %s | %s | %s | %.3f ± %.3f | %d/%d | %.3f | %.3f | %.4f ± %.4f | %.4f | %.4f | %s |'):format(
    r.label, r.steps, r.nfe, r.corr, r.corr_sd, r.offset_ok, #held, r.dist, r.conf, r.identity, r.identity_sd,
    r.flicker, r.sharpness, r.spf))
end

if opts.csv then
  fada.mkdir_parent(opts.csv)
  local tmp = opts.csv .. '.tmp'
  local out = assert(io.open(tmp, 'w'))
  out:write('mode,steps,w_ref,w_audio,nfe_per_clip,clip,' .. table.concat(KEYS, ',') .. '\n')
  for _, r in ipairs(csv) do
    local m = r[7]
    out:write(('%s,%s,%s,%s,%s,%d,%.5f,%d,%.5f,%.5f,%.5f,%.5f,%.5f\n'):format(r[1], r[2], r[3], r[4], r[5], r[6],
      m.corr, m.offset, m.dist, m.conf, m.identity, m.flicker, m.sharpness))
  end
  out:close()
  os.rename(tmp, opts.csv)
  journal:close(true)
  print('rows written to ' .. opts.csv)
end

-- ---- the first setting against the teacher's targets --------------------------------------------------
if opts.ceiling and #rows >= 2 then
  local ceil, first = rows[1], rows[2]
  local function verdict(ok) return ok and 'met' or 'NOT met' end
  print(('\ntargets (%s):'):format(first.label))
  print(('  lip-sync corr %.3f >= 0.8: %s'):format(first.corr, verdict(first.corr >= 0.8)))
  print(('  within 0.1 of the ceiling %.3f: %s'):format(ceil.corr, verdict(first.corr >= ceil.corr - 0.1)))
  print(('  best offset 0 ± 1 frame in %d of %d clips: %s'):format(first.offset_ok, #held,
    verdict(first.offset_ok * 2 > #held)))
  print(('  identity error %.4f <= 2 × ceiling %.4f: %s'):format(first.identity, 2 * ceil.identity,
    verdict(first.identity <= 2 * ceil.identity)))
end
print(('evaluated %d settings × %d clips in %.1f min'):format(#settings, #held, (fada.clock() - t_all) / 60))
