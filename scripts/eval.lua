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
local heldout = require 'fada.metrics.heldout'
local report = require 'fada.metrics.report'

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
local settings = {}
for _, s in ipairs(steps_list) do
  for _, g in ipairs(grid) do settings[#settings + 1] = {steps = s, w_ref = g[1], w_audio = g[2]} end
end
local res = heldout.sweep(model, {model_path = opts.model, mode = opts.mode, sampler = opts.sampler,
  cfg_schedule = opts.cfg_schedule, seed = opts.seed, seconds = opts.seconds, noise_share = opts.noise_share,
  first = opts.first, count = opts.clips, settings = settings, ceiling = opts.ceiling,
  journal = opts.csv and opts.csv .. '.partial', max_minutes = opts.max_minutes, fail = cli.fail})
local held, journal, t_all = res.held, res.journal, res.t0
if res.stopped then
  print(('stopped after %.1f min (--max-minutes): the finished clips are in %s; run the same command to continue')
    :format(res.stopped, journal.path))
  os.exit(0)
end
if journal.reused > 0 then
  print(('resumed: %d of %d (setting, clip) results read from %s'):format(journal.reused, #settings * #held,
    journal.path))
end
local rows = {}
local function summarise(label, per, extra)
  local row = report.summary(per)
  row.label = label
  for k, v in pairs(extra) do row[k] = v end
  rows[#rows + 1] = row
end
if res.ceiling then summarise('ground truth (ceiling)', res.ceiling, {steps = '-', nfe = '-', spf = '-'}) end
for _, r in ipairs(res.runs) do summarise(r.label, r.per, {steps = r.setting.steps, nfe = r.nfe, spf = r.spf}) end

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
  heldout.write_csv(opts.csv, res.csv)
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
