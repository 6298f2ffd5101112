-- FADA's comparison (scripts/compare.lua): the rows (the teacher, the teacher
-- cut to the students' budgets, the student as Balanced and Fast, ablation
-- students), their quality on the held-out clips of both tiers (resumable
-- through a journal) and their speed timed in turns. fada.metrics.report turns
-- the results into the Markdown, the CSV and the chart.
--
--   local comparison = require 'fada.metrics.comparison'
--   local rows = comparison.rows{teacher = 'weights/fada-teacher.safetensors', student = 'none', teacher_steps = 25,
--                                steps = 6, short_steps = 2, seed = 42, fail = error}
--   local q = comparison.quality(rows, {clips = 8, moderate_clips = 8, seconds = 2.4,
--                                       journal = 'runs/compare/compare.journal', fail = error})
--   local timing, n_time = comparison.timing(rows, q, {reps = 3, frames = 16})
local fada = require 'fada'
local pipeline = require 'fada.pipeline'
local metrics = require 'fada.metrics'
local heldout = require 'fada.metrics.heldout'
local report = require 'fada.metrics.report'
local progress = require 'fada.progress'

local M = {}

-- The rows, their models loaded and checked (heldout.load_model), every row at the
-- default scales and one seed. o: teacher, student ('none': teacher rows only), balanced
-- (a student file for the Balanced row; '' or nil: the student's),
-- ablations (NAME=PATH strings, run in Fast mode), teacher_steps, steps,
-- short_steps, seed, fail (a usage error's message). Rows: {id, label, m, mode,
-- steps, setting, ablation}.
function M.rows(o)
  local d = pipeline.defaults
  local function load(path, role, kind)
    local m, err = heldout.load_model(path, role, kind,
      kind == 'student' and 'distil one: make student; or --student none for the teacher rows alone' or nil)
    if not m then o.fail(err) end
    return m
  end
  local T, S = o.teacher_steps, o.steps
  local teacher = load(o.teacher, 'teacher', 'teacher')
  local rows = {
    {id = 'teacher', label = ('teacher %d × 3 (reference)'):format(T), m = teacher, mode = 'teacher', steps = T},
    {id = 'teacher_cut', label = ('teacher %d × 3'):format(S), m = teacher, mode = 'teacher', steps = S},
    {id = 'teacher_short', label = ('teacher %d × 3'):format(o.short_steps), m = teacher, mode = 'teacher',
     steps = o.short_steps},
    {id = 'teacher_1pass', label = ('teacher %d × 1, no guidance'):format(S), m = teacher, mode = 'unguided', steps = S},
  }
  if o.student ~= 'none' then
    local student = load(o.student, 'student', 'student')
    -- FADA-Balanced from its own weights when given (o.balanced), else the student's three branches
    local balanced = (o.balanced or '') ~= '' and load(o.balanced, 'balanced', 'student') or student
    rows[#rows + 1] = {id = 'balanced', label = ('FADA-Balanced %d × 3'):format(S), m = balanced, mode = 'balanced', steps = S}
    rows[#rows + 1] = {id = 'fast', label = ('FADA-Fast %d × 1'):format(S), m = student, mode = 'fast', steps = S}
  end
  for _, item in ipairs(o.ablations or {}) do
    local name, path = item:match('^%s*([%w_%-]+)=(.+)$')
    if not name then o.fail(('--ablations: "%s" is not NAME=PATH'):format(item)) end
    rows[#rows + 1] = {id = 'ablation_' .. name, label = ('Fast, ablation: %s'):format(name),
                       m = load(path, 'ablations', 'student'), mode = 'fast', steps = S, ablation = true}
  end
  for _, r in ipairs(rows) do
    r.setting = {mode = r.mode, steps = r.steps, w_ref = d.cfg_ref, w_audio = d.cfg_audio, sampler = d.sampler,
                 cfg_schedule = 'constant', seed = o.seed, noise_share = d.noise_share}
  end
  return rows
end

-- Every row on every held-out clip of each tier (hq: clips 0 .. o.clips-1; moderate:
-- 0 .. o.moderate_clips-1 when > 0), and the ground truth's own reading. o: clips,
-- moderate_clips, seconds, journal (path), max_minutes, fail. Returns {tiers =
-- {{name, title, clips, results = {gt = per clip, [row id] = per clip}}}, journal, ev,
-- t0}; with stopped = minutes when --max-minutes ran out.
function M.quality(rows, o)
  local size = rows[1].m.model.config.image_size
  local tiers = {{name = 'hq', title = 'high-quality held-out clips',
                  clips = heldout.clips{count = o.clips, seconds = o.seconds, size = size}}}
  if o.moderate_clips > 0 then
    tiers[2] = {name = 'moderate', title = 'moderate-quality held-out clips (never-seen identities)',
                clips = heldout.clips{count = o.moderate_clips, seconds = o.seconds, size = size, tier = 'moderate'}}
  end
  local ev = metrics.evaluator()
  local journal = heldout.journal(o.journal, heldout.FIELDS)
  local function key(r, tier, c)
    local s = r.setting
    return table.concat({r.m.digest, s.mode, s.steps, s.w_ref, s.w_audio, s.sampler, s.seed, s.noise_share, o.seconds,
                         tier, c.index}, '|')
  end
  local total = 0
  for _, tier in ipairs(tiers) do for _, c in ipairs(tier.clips) do total = total + #rows * c.frames:size(1) end end
  local bar = progress.new(total, {label = 'comparing', unit = 'frame'})
  local done, t0 = 0, fada.clock()
  local q = {tiers = tiers, journal = journal, ev = ev, t0 = t0}
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
          if not ok then o.fail(('%s on %s clip %d: %s'):format(r.label, tier.name, c.index, tostring(res))) end
          m = res
          journal:add(k, m)
          if o.max_minutes and (fada.clock() - t0) / 60 >= o.max_minutes and done + c.frames:size(1) < total then
            bar:stop()
            q.stopped = (fada.clock() - t0) / 60
            return q
          end
        end
        tier.results[r.id][i] = m
        done = done + c.frames:size(1)
        bar:update(done)
      end
    end
  end
  bar:finish()
  return q
end

-- Speed: each row timed in turns (report.time_rows, o.reps times) on the first hq
-- clip's first o.frames frames, plus the NFE per frame as counted while sampling
-- (each frame window takes steps x passes). Returns timing ({[id] = {spf, speedup,
-- nfe}}) and the frames timed.
function M.timing(rows, q, o)
  local tc = q.tiers[1].clips[1]
  local n_time = math.min(o.frames, tc.frames:size(1))
  local timing_clip = {ref = tc.ref, sample_rate = tc.sample_rate, frames = tc.frames:narrow(1, 1, n_time),
                       samples = tc.samples:narrow(1, 1, math.min(tc.samples:size(1), math.floor(n_time / tc.fps * tc.sample_rate)))}
  local timing = report.time_rows(rows, function(r)
    local m = heldout.sample(r.m.model, timing_clip, r.setting, q.ev)
    return m.seconds / n_time
  end, {reps = o.reps, label = 'timing'})
  for _, r in ipairs(rows) do
    local m = q.tiers[1].results[r.id][1]
    timing[r.id].nfe = m.nfe / m.videos
  end
  return timing, n_time
end

return M
