-- fadalua scripts/compare.lua: FADA's comparison in one command — the teacher,
-- the teacher cut to the students' budgets, the distilled student (Balanced and
-- Fast) and any ablation students, on the held-out clips of both quality tiers,
-- with the speed measured in the same run. Writes DIR/compare.csv (a row per
-- setting, tier and clip), DIR/compare.md (the tables and the checks) and
-- DIR/compare.png (quality against speed-up).
local fada = require 'fada'
local cli = require 'fada.cli'
local pipeline = require 'fada.pipeline'
local report = require 'fada.metrics.report'
local comparison = require 'fada.metrics.comparison'
local plot = require 'fada.plot'

local d = pipeline.defaults
local opts = cli.parse(arg, {
  usage = 'usage: fadalua scripts/compare.lua [--teacher PATH] [--student PATH] [--ablations NAME=PATH,...] [flags]',
  about = [[Rows: the ground truth (the evaluator's ceiling); the teacher at --teacher-steps x 3 passes (the
reference); the teacher cut to the students' budgets (--steps x 3, --short-steps x 3, --steps x 1 pass
without guidance); the student as FADA-Balanced (--steps x 3) and FADA-Fast (--steps x 1, CFG tokens);
each ablation student in Fast mode. All at the default scales and one seed, on --clips held-out clips
of the high-quality tier and --moderate-clips of the moderate one (darker, blurred, noisy, occluded;
identities never seen in training). Seconds per frame: every row sampled --timing-reps times on the
first clip's first --timing-frames frames, in turns, in this run; the speed-up is the median of the
paired ratios to the reference. Finished (row, clip) results are kept in DIR/compare.journal:
the same command resumes after a stop, and a later run with more rows (an ablation) reuses them.]],
  {'teacher', 'string', d.model, 'the teacher checkpoint'},
  {'student', 'string', 'weights/fada-student.safetensors', "the distilled student ('none': teacher rows only)"},
  {'balanced', 'string', '', "FADA-Balanced's own weights (a student trained for its 3 branches); default: the "
                             .. "student's"},
  {'ablations', 'strings', nil, 'ablation students as NAME=PATH, a comma list (run in Fast mode)'},
  {'teacher_steps', 'int', 25, "the reference teacher's steps"},
  {'steps', 'int', 6, "the students' steps (and the cut-down teacher's)"},
  {'short_steps', 'int', 2, 'the shortest cut-down teacher (x 3 passes)'},
  {'clips', 'int', 8, 'high-quality held-out clips (the teacher card\'s set: 0 .. N-1)'},
  {'moderate_clips', 'int', 8, 'moderate-quality held-out clips (0 = none)'},
  {'seconds', 'number', 2.4, 'speech per clip'},
  {'seed', 'int', 42, 'noise seed (every row alike)'},
  {'timing_reps', 'int', 3, 'timing repetitions per row (0: none, e.g. while the machine is busy)'},
  {'timing_frames', 'int', 16, 'frames per timing run'},
  {'out', 'string', 'runs/compare', 'output folder'},
  {'max_minutes', 'number', nil, 'stop after this many minutes of sampling; the same command continues'},
  {'threads', 'int', nil, 'compute threads (default: all cores)'},
})
if opts.threads then fada.set_num_threads(opts.threads) end
if opts.timing_reps < 0 then cli.fail('--timing-reps must be >= 0 (0: no timing)') end
for _, k in ipairs{'teacher_steps', 'steps', 'short_steps', 'timing_frames'} do
  if opts[k] < 1 then cli.fail(('--%s must be at least 1, got %d'):format(k:gsub('_', '-'), opts[k])) end
end
if opts.clips < 1 then cli.fail('--clips must be at least 1') end
if opts.moderate_clips < 0 then cli.fail('--moderate-clips must be >= 0') end
if opts.seconds <= 0 then cli.fail('--seconds must be > 0') end

-- ---- the rows, their quality on both tiers, their speed ------------------------------------------------
local rows = comparison.rows{teacher = opts.teacher, student = opts.student, balanced = opts.balanced,
  ablations = opts.ablations,
  teacher_steps = opts.teacher_steps, steps = opts.steps, short_steps = opts.short_steps, seed = opts.seed,
  fail = cli.fail}
local q = comparison.quality(rows, {clips = opts.clips, moderate_clips = opts.moderate_clips, seconds = opts.seconds,
  journal = opts.out .. '/compare.journal', max_minutes = opts.max_minutes, fail = cli.fail})
local tiers, journal, t0 = q.tiers, q.journal, q.t0
if q.stopped then
  print(('stopped after %.1f min (--max-minutes): finished results are in %s; the same command continues')
    :format(q.stopped, journal.path))
  os.exit(0)
end
if journal.reused > 0 then print(('resumed: %d results read from %s'):format(journal.reused, journal.path)) end
local timing, n_time = comparison.timing(rows, q, {reps = opts.timing_reps, frames = opts.timing_frames})

-- ---- the report -----------------------------------------------------------------------------------------
local timed = opts.timing_reps > 0
local md = report.markdown_comparison{rows = rows, tiers = tiers, timing = timing, reference = 'teacher',
  title = ('FADA comparison: %s vs %s'):format(opts.teacher, opts.student),
  note = ('seed %d, DDIM, w_ref %g, w_audio %g, %.1f s per clip; %s'):format(opts.seed, d.cfg_ref, d.cfg_audio,
    opts.seconds, timed and ('seconds per frame: median of %d runs of %d frames in turns on %s'):format(opts.timing_reps,
    n_time, report.host()) or 'not timed (--timing-reps 0)')}
print(md)
fada.mkdir(opts.out)
report.write_file(opts.out .. '/compare.md', md)
report.write_csv(opts.out .. '/compare.csv', rows, tiers, timing)
local ok, err = plot.chart(report.comparison_chart(rows, tiers[1], timing, opts.out .. '/compare.png'))
print(ok and ('wrote %s/compare.{csv,md,png}'):format(opts.out) or ('wrote %s/compare.{csv,md}; no PNG: %s'):format(opts.out, err))
journal:close()
print(('compared %d rows on %d + %d clips in %.1f min'):format(#rows, opts.clips, opts.moderate_clips,
  (fada.clock() - t0) / 60))
