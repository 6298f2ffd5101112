-- fadalua scripts/compare.lua: FADA's comparison in one command — the teacher,
-- the teacher cut to the students' budgets, the distilled student (Balanced and
-- Fast) and any ablation students, on the held-out clips of both quality tiers,
-- with the speed measured in the same run. Writes DIR/compare.csv (a row per
-- setting, tier and clip), DIR/compare.md (the tables and the checks) and
-- DIR/compare.png (quality against speed-up).
local fada = require 'fada'
local cli = require 'fada.cli'
local pipeline = require 'fada.pipeline'
local metrics = require 'fada.metrics'
local heldout = require 'fada.metrics.heldout'
local report = require 'fada.metrics.report'
local progress = require 'fada.progress'
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

-- ---- the models and the rows -------------------------------------------------------------------------
local loaded = {}
local function load(path, role, kind)
  local m, err = heldout.load_model(path, role, kind,
    kind == 'student' and 'distil one: make student; or --student none for the teacher rows alone' or nil)
  if not m then cli.fail(err) end
  loaded[#loaded + 1] = m
  return m
end

local T, S = opts.teacher_steps, opts.steps
local teacher = load(opts.teacher, 'teacher', 'teacher')
local rows = {
  {id = 'teacher', label = ('teacher %d × 3 (reference)'):format(T), m = teacher, mode = 'teacher', steps = T},
  {id = 'teacher_cut', label = ('teacher %d × 3'):format(S), m = teacher, mode = 'teacher', steps = S},
  {id = 'teacher_short', label = ('teacher %d × 3'):format(opts.short_steps), m = teacher, mode = 'teacher',
   steps = opts.short_steps},
  {id = 'teacher_1pass', label = ('teacher %d × 1, no guidance'):format(S), m = teacher, mode = 'unguided', steps = S},
}
if opts.student ~= 'none' then
  local student = load(opts.student, 'student', 'student')
  rows[#rows + 1] = {id = 'balanced', label = ('FADA-Balanced %d × 3'):format(S), m = student, mode = 'balanced', steps = S}
  rows[#rows + 1] = {id = 'fast', label = ('FADA-Fast %d × 1'):format(S), m = student, mode = 'fast', steps = S}
end
for _, item in ipairs(opts.ablations or {}) do
  local name, path = item:match('^%s*([%w_%-]+)=(.+)$')
  if not name then cli.fail(('--ablations: "%s" is not NAME=PATH'):format(item)) end
  rows[#rows + 1] = {id = 'ablation_' .. name, label = ('Fast, ablation: %s'):format(name), m = load(path, 'ablations', 'student'),
                     mode = 'fast', steps = S, ablation = true}
end
for _, r in ipairs(rows) do
  r.setting = {mode = r.mode, steps = r.steps, w_ref = d.cfg_ref, w_audio = d.cfg_audio, sampler = d.sampler,
               cfg_schedule = 'constant', seed = opts.seed, noise_share = d.noise_share}
end

-- ---- quality: every row on every held-out clip of each tier ------------------------------------------
local size = teacher.model.config.image_size
local tiers = {{name = 'hq', title = 'high-quality held-out clips',
                clips = heldout.clips{count = opts.clips, seconds = opts.seconds, size = size}}}
if opts.moderate_clips > 0 then
  tiers[2] = {name = 'moderate', title = 'moderate-quality held-out clips (never-seen identities)',
              clips = heldout.clips{count = opts.moderate_clips, seconds = opts.seconds, size = size, tier = 'moderate'}}
end
local ev = metrics.evaluator()
local journal = heldout.journal(opts.out .. '/compare.journal', heldout.FIELDS)
local function key(r, tier, c)
  local s = r.setting
  return table.concat({r.m.digest, s.mode, s.steps, s.w_ref, s.w_audio, s.sampler, s.seed, s.noise_share, opts.seconds,
                       tier, c.index}, '|')
end

local total = 0
for _, tier in ipairs(tiers) do for _, c in ipairs(tier.clips) do total = total + #rows * c.frames:size(1) end end
local bar = progress.new(total, {label = 'comparing', unit = 'frame'})
local done, t0 = 0, fada.clock()
for _, tier in ipairs(tiers) do
  tier.results = {gt = {}}
  for i, c in ipairs(tier.clips) do tier.results.gt[i] = heldout.measure(c.frames, c, ev) end
  for _, r in ipairs(rows) do
    tier.results[r.id] = {}
    for i, c in ipairs(tier.clips) do
      local k = key(r, tier.name, c)
      local m = journal:get(k)
      if not m then
        local ok, res = pcall(heldout.sample, r.m.model, c, r.setting, ev)
        if not ok then cli.fail(('%s on %s clip %d: %s'):format(r.label, tier.name, c.index, tostring(res))) end
        m = res
        journal:add(k, m)
        if opts.max_minutes and (fada.clock() - t0) / 60 >= opts.max_minutes and done + c.frames:size(1) < total then
          bar:stop()
          print(('stopped after %.1f min (--max-minutes): finished results are in %s; the same command continues')
            :format((fada.clock() - t0) / 60, journal.path))
          os.exit(0)
        end
      end
      tier.results[r.id][i] = m
      done = done + c.frames:size(1)
      bar:update(done)
    end
  end
end
bar:finish()
if journal.reused > 0 then print(('resumed: %d results read from %s'):format(journal.reused, journal.path)) end

-- ---- speed: each row timed in turns on the first clip's first frames ----------------------------------
local tc = tiers[1].clips[1]
local n_time = math.min(opts.timing_frames, tc.frames:size(1))
local timing_clip = {ref = tc.ref, sample_rate = tc.sample_rate, frames = tc.frames:narrow(1, 1, n_time),
                     samples = tc.samples:narrow(1, 1, math.min(tc.samples:size(1), math.floor(n_time / tc.fps * tc.sample_rate)))}
local timing = report.time_rows(rows, function(r)
  local m = heldout.sample(r.m.model, timing_clip, r.setting, ev)
  return m.seconds / n_time
end, {reps = opts.timing_reps, label = 'timing'})
for _, r in ipairs(rows) do -- NFE per frame as counted while sampling (each frame window takes steps x passes)
  local m = tiers[1].results[r.id][1]
  timing[r.id].nfe = m.nfe / m.videos
end

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
