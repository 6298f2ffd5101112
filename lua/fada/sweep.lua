-- Sweeps: the Cartesian product of axes (model, mode, sampler, the sampling
-- conventions of pipeline.SAMPLING_FLAGS (spacing, eta, ...), steps, w_ref,
-- w_audio, cfg_schedule, seed, dtype, noise_share, clips), each job one setting
-- over held-out clips, with results that shard, resume and merge
-- (scripts/sweep.lua is the command; docs/sweeps.md the guide).
--
--   local sweep = require 'fada.sweep'
--   local axes = sweep.parse_args({'steps=6,12', 'w_audio=1:6:0.5'})   -- or sweep.from_file('s.lua'): a list of axes
--   local jobs = sweep.jobs(axes)            -- deterministic order, the first axis outermost (a list: part after part)
--   sweep.run_job(jobs[1], dir, {progress = fn})    -- writes DIR/jobs/job-0000.csv (resumable per clip)
--   local rows = sweep.merge(dir, jobs)      -- DIR/sweep.csv, DIR/sweep.md, plots
local fada = require 'fada'
local cli = require 'fada.cli'
local pipeline = require 'fada.pipeline'
local cfg = require 'fada.diffusion.cfg'
local heldout = require 'fada.metrics.heldout'
local report = require 'fada.metrics.report'
local stats = require 'fada.metrics.stats'

local M = {}

local d = pipeline.defaults
-- name, kind, default, help
M.AXES = {
  {'model', 'string', d.model, 'checkpoint'},
  {'mode', 'string', 'teacher', 'teacher | balanced | fast | unguided'},
  {'sampler', 'string', d.sampler, 'ddim | euler | euler_ancestral | dpmpp_2m | lcm | file:PATH.lua'},
  -- (pipeline.SAMPLING_FLAGS go here: spacing, steps_offset, interpolation, eta, ...)
  {'steps', 'int', 0, "sampling steps (0: the mode's default, 25 teacher / 6 student)"},
  {'w_ref', 'number', d.cfg_ref, 'reference guidance scale'},
  {'w_audio', 'number', d.cfg_audio, 'audio guidance scale'},
  {'cfg_schedule', 'string', d.cfg_schedule, cfg.schedule.GRAMMAR},
  {'seed', 'int', 42, 'noise seed'},
  -- the default is resolved here, so the job list and the CSV name the dtype that ran
  {'dtype', 'string', pipeline.resolve_dtype(d.dtype), 'f32 | bf16 | auto (the default here: this CPU\'s)'},
  {'noise_share', 'number', d.noise_share, "part of a clip's starting noise shared by its frames"},
  {'clips', 'int', 4, 'held-out clips per job: 0 .. N-1'},
}
local after = 0
for i, a in ipairs(M.AXES) do if a[1] == 'sampler' then after = i end end
for k, f in ipairs(pipeline.SAMPLING_FLAGS) do table.insert(M.AXES, after + k, f) end
local AXIS = {}
for i, a in ipairs(M.AXES) do AXIS[a[1]] = {index = i, kind = a[2], default = a[3], help = a[4]} end

local function fail(msg, ...) error(msg:format(...), 0) end

-- ---- the grammar ------------------------------------------------------------------------------------

-- The values of one axis from its text: fada.cli's list grammar, a comma
-- list whose numeric items may be ranges lo:hi:step (inclusive), e.g. 1:6:0.5.
function M.parse_values(key, text)
  local a = AXIS[key]
  if not a then fail("sweep: unknown axis '%s' (axes: %s)", tostring(key), M.axis_names()) end
  if type(text) == 'table' then -- from a sweep file: a list, each item a value or a text to parse
    local out = {}
    for _, v in ipairs(text) do
      for _, x in ipairs(M.parse_values(key, tostring(v))) do out[#out + 1] = x end
    end
    if #out == 0 then fail('sweep: %s: an empty list', key) end
    return out
  end
  local out, why = cli.values(tostring(text), a.kind)
  if not out then fail('sweep: %s: %s', key, why) end
  return out
end

function M.axis_names()
  local n = {}
  for i, a in ipairs(M.AXES) do n[i] = a[1] end
  return table.concat(n, ', ')
end

-- Axes from Hydra-style words 'key=values' -> {[key] = {values}} (unset axes
-- keep their default as the only value).
function M.parse_args(words)
  local axes = {}
  for _, w in ipairs(words) do
    local key, text = w:match('^([%w_]+)=(.*)$')
    if not key then fail("sweep: '%s' is not key=values (e.g. steps=6,12,25 or w_audio=1:6:0.5)", w) end
    if axes[key] then fail('sweep: %s is given twice', key) end
    axes[key] = M.parse_values(key, text)
  end
  return axes
end

-- One sweep-file table's axes: {key = values, ...}, each value a list, a number
-- or a text in the grammar above.
local function file_axes(path, t, where)
  local axes = {}
  for key, v in pairs(t) do
    if type(key) ~= 'string' then fail("sweep: the sweep file '%s'%s has a key that is not an axis name", path, where) end
    axes[key] = M.parse_values(key, type(v) == 'table' and v or tostring(v))
  end
  return axes
end

-- The sweep from a sweep file: a Lua file returning {key = values, ...} (one
-- product), or a list of such tables, a sweep that is the union of their
-- products (e.g. the teacher over steps beside the student over modes), jobs
-- numbered part after part. Returns the parts, a list of axes tables.
function M.from_file(path)
  -- (the file may compute its table, with Lua's pure functions; it sees nothing else)
  local env = {pairs = pairs, ipairs = ipairs, tostring = tostring, tonumber = tonumber, type = type,
               math = math, string = string, table = table}
  local chunk, err = loadfile(path, 't', env)
  if not chunk then fail("sweep: the sweep file '%s' does not load: %s", path, err) end
  local ok, t = pcall(chunk)
  if not ok then fail("sweep: the sweep file '%s' failed: %s", path, tostring(t)) end
  if type(t) ~= 'table' then fail("sweep: the sweep file '%s' must return a table of axes, returned a %s", path, type(t)) end
  if t[1] == nil then return {file_axes(path, t, '')} end
  local parts = {}
  for i, part in ipairs(t) do
    if type(part) ~= 'table' then
      fail("sweep: the sweep file '%s': part %d of its list is a %s, not a table of axes", path, i, type(part))
    end
    parts[i] = file_axes(path, part, (' (part %d)'):format(i))
  end
  for key in pairs(t) do
    if math.type(key) ~= 'integer' then
      fail("sweep: the sweep file '%s' mixes a list of parts with axes of its own (%s): put every axis inside a part",
        path, tostring(key))
    end
  end
  return parts
end

-- ---- jobs ----------------------------------------------------------------------------------------------

-- The product of one axes table, the first axis of M.AXES outermost.
local function product(axes)
  for k in pairs(axes) do if not AXIS[k] then fail("sweep: unknown axis '%s' (axes: %s)", k, M.axis_names()) end end
  local jobs = {{}}
  for _, a in ipairs(M.AXES) do
    local vals = axes[a[1]] or {a[3]}
    local nxt = {}
    for _, j in ipairs(jobs) do
      for _, v in ipairs(vals) do
        local c = {}
        for k, x in pairs(j) do c[k] = x end
        c[a[1]] = v
        nxt[#nxt + 1] = c
      end
    end
    jobs = nxt
  end
  return jobs
end

-- Every combination of axes (a table of axes, or a list of them: the union of
-- their products, part after part) in a deterministic order; a job is {id
-- (0-based), [axis] = value ..., key = 'model=...|mode=...|...'}. The same
-- setting twice (parts that overlap) is one job.
function M.jobs(axes)
  local parts = axes[1] and axes or {axes}
  local jobs, seen = {}, {}
  for _, part in ipairs(parts) do
    for _, j in ipairs(product(part)) do
      if j.steps == 0 then j.steps = pipeline.default_steps[j.mode] or 25 end
      local keys = {}
      for _, a in ipairs(M.AXES) do keys[#keys + 1] = ('%s=%s'):format(a[1], tostring(j[a[1]])) end
      j.key = table.concat(keys, '|')
      if not seen[j.key] then
        seen[j.key] = true
        j.id = #jobs
        jobs[#jobs + 1] = j
      end
    end
  end
  return jobs
end

-- The jobs of shard `index` of `shards` (job id mod shards == index).
function M.shard(jobs, index, shards)
  local out = {}
  for _, j in ipairs(jobs) do if j.id % shards == index then out[#out + 1] = j end end
  return out
end

local function job_path(dir, j, ext) return ('%s/jobs/job-%04d.%s'):format(dir, j.id, ext) end
M.job_path = job_path

-- The sweep's job list in DIR/jobs/list.txt: written by the first process, checked
-- by every other, so shards of two different sweeps never share a folder.
function M.claim(dir, jobs)
  fada.mkdir(dir .. '/jobs')
  local path = dir .. '/jobs/list.txt'
  local lines = {}
  for _, j in ipairs(jobs) do lines[#lines + 1] = j.key end
  local want = table.concat(lines, '\n') .. '\n'
  local f = io.open(path, 'r')
  if f then
    local have = f:read('a')
    f:close()
    if have ~= want then
      fail("sweep: %s holds the results of another sweep (its jobs/list.txt differs): give another --out, or the same axes", dir)
    end
    return
  end
  report.write_file(path, want)
end

-- ---- one job -------------------------------------------------------------------------------------------

-- A row: the job, its setting (every axis but clips, in the order of M.AXES), the clip, the results.
local SETTING = {}
for _, a in ipairs(M.AXES) do if a[1] ~= 'clips' then SETTING[#SETTING + 1] = a[1] end end
M.CSV_HEAD = 'job,' .. table.concat(SETTING, ',') .. ',clip,nfe_per_frame,s_per_frame,' .. table.concat(heldout.METRICS, ',')

local function csv_cell(v)
  v = tostring(v)
  if v:find('[,"]') then return '"' .. v:gsub('"', '""') .. '"' end
  return v
end

-- Runs job j over its clips (skipped when DIR/jobs/job-N.csv exists; finished
-- clips are kept in job-N.partial), writes its CSV whole at the end. ctx:
-- models (a cache path -> model), ev (the evaluator), digest(path), clips(n, size),
-- on_clip(frames done) for a progress bar. Returns 'done' or 'skipped'.
function M.run_job(j, dir, ctx)
  local out = job_path(dir, j, 'csv')
  local f = io.open(out, 'r')
  if f then f:close() ; return 'skipped' end
  local model = ctx.model(j.model)
  local set = ctx.clips(j.clips, model.config.image_size)
  local journal = heldout.journal(job_path(dir, j, 'partial'), heldout.FIELDS)
  local lines = {}
  for _, c in ipairs(set) do
    local key = table.concat({ctx.digest(j.model), j.key, c.index}, '|')
    local m = journal:get(key)
    if not m then
      local ok, r = pcall(heldout.sample, model, c, j, ctx.ev)
      if not ok then fail('sweep: job %d (%s): %s', j.id, j.key, tostring(r)) end
      m = r
      journal:add(key, m)
    end
    local cells = {j.id}
    for _, k in ipairs(SETTING) do cells[#cells + 1] = j[k] end
    cells[#cells + 1] = c.index
    cells[#cells + 1] = ('%g'):format(m.nfe / m.videos)
    cells[#cells + 1] = ('%.5f'):format(m.seconds / c.frames:size(1))
    for _, k in ipairs(heldout.METRICS) do cells[#cells + 1] = ('%.6g'):format(m[k]) end
    for i, v in ipairs(cells) do cells[i] = csv_cell(v) end
    lines[#lines + 1] = table.concat(cells, ',')
    if ctx.on_clip then ctx.on_clip(c.frames:size(1)) end
  end
  report.write_file(out, M.CSV_HEAD .. '\n' .. table.concat(lines, '\n') .. '\n')
  journal:close(true)
  return 'done'
end

-- ---- merge -------------------------------------------------------------------------------------------

local function parse_csv_line(line)
  local cells, i = {}, 1
  while i <= #line + 1 do
    if line:sub(i, i) == '"' then
      local j, buf = i + 1, {}
      while true do
        local q = line:find('"', j, true)
        if not q then break end
        buf[#buf + 1] = line:sub(j, q - 1)
        if line:sub(q + 1, q + 1) == '"' then buf[#buf + 1] = '"' ; j = q + 2 else j = q + 1 ; break end
      end
      cells[#cells + 1] = table.concat(buf)
      i = j + 1
    else
      local j = line:find(',', i, true) or #line + 1
      cells[#cells + 1] = line:sub(i, j - 1)
      i = j + 1
    end
  end
  return cells
end
M.parse_csv_line = parse_csv_line

-- Reads a CSV written by this module -> list of rows keyed by its header.
function M.read_csv(path)
  local rows, head = {}, nil
  for line in io.lines(path) do
    local cells = parse_csv_line(line)
    if not head then head = cells
    else
      local r = {}
      for i, k in ipairs(head) do r[k] = tonumber(cells[i]) or cells[i] end
      rows[#rows + 1] = r
    end
  end
  return rows
end

-- Per-job summaries: {job, rows = per clip, mean/sd of each metric}.
local function summaries(jobs, rows)
  local by = {}
  for _, r in ipairs(rows) do
    by[r.job] = by[r.job] or {}
    table.insert(by[r.job], r)
  end
  local out = {}
  for _, j in ipairs(jobs) do
    local per = by[j.id] or {}
    local s = report.summary(per)
    local spf = {}
    for i, r in ipairs(per) do spf[i] = r.s_per_frame end
    s.spf = #spf > 0 and stats.median(spf) or 0/0
    s.nfe = per[1] and per[1].nfe_per_frame or 0/0
    s.job = j
    out[#out + 1] = s
  end
  return out
end
M.summaries = summaries

-- The axes that take more than one value in this sweep.
local function varying(jobs)
  local seen, out = {}, {}
  for _, a in ipairs(M.AXES) do
    local vals = {}
    for _, j in ipairs(jobs) do vals[tostring(j[a[1]])] = true end
    local n = 0
    for _ in pairs(vals) do n = n + 1 end
    if n > 1 then out[#out + 1] = a[1] ; seen[a[1]] = true end
  end
  return out, seen
end
M.varying = varying

local function label(j, keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = ('%s=%s'):format(k, tostring(j[k])) end
  return #parts > 0 and table.concat(parts, ' ') or 'all'
end

-- The Markdown summary: one line per job, mean ± sd over its clips.
function M.markdown(jobs, sums, title)
  local vary = varying(jobs)
  local out = {('## %s'):format(title or 'Sweep'), '',
               ('%d jobs; the axes that vary: %s. Mean ± sd over each job\'s clips; s/frame is the median per clip.')
                 :format(#jobs, #vary > 0 and table.concat(vary, ', ') or 'none'), '',
               '| job | setting | NFE/frame | s/frame | lip-sync corr | lip dist | identity err | flicker | sharpness |',
               '|---|---|---|---|---|---|---|---|---|'}
  for _, s in ipairs(sums) do
    out[#out + 1] = ('| %d | %s | %g | %.3f | %.3f ± %.3f | %.3f | %.4f ± %.4f | %.4f | %.4f |'):format(s.job.id,
      label(s.job, vary), s.nfe, s.spf, s.corr, s.corr_sd, s.dist, s.identity, s.identity_sd, s.flicker, s.sharpness)
  end
  return table.concat(out, '\n') .. '\n'
end

-- true when some setting of the other axes ran at two or more step counts
function M.has_lines(jobs, others)
  local seen = {}
  for _, j in ipairs(jobs) do
    local key = label(j, others)
    if seen[key] and seen[key] ~= j.steps then return true end
    seen[key] = j.steps
  end
  return false
end

-- The summaries grouped by their values on `keys`: {[label] = {summary, ...}}, and the
-- labels in first-seen order.
local function group_by(sums, keys)
  local groups, order = {}, {}
  for _, s in ipairs(sums) do
    local key = label(s.job, keys)
    if not groups[key] then groups[key] = {} ; order[#order + 1] = key end
    table.insert(groups[key], s)
  end
  return groups, order
end

-- The chart specs (fada.plot) this sweep supports: each metric against steps, one
-- line per other setting; the w_ref x w_audio maps; quality against seconds per frame.
function M.charts(jobs, sums, dir)
  local vary, is = varying(jobs)
  local charts = {}
  local metrics = {{'corr', 'lip-sync correlation'}, {'identity', 'identity error'}, {'flicker', 'flicker'}}
  local others = {}
  for _, k in ipairs(vary) do if k ~= 'steps' then others[#others + 1] = k end end
  if is.steps and M.has_lines(jobs, others) then
    -- a line per other setting that ran at two or more step counts (a setting at one
    -- count, e.g. a student at its grid in a sweep beside the teacher, has no line to draw),
    -- named by the axes that vary among those lines
    local groups, order = group_by(sums, others)
    local kept, kept_jobs = {}, {}
    for _, key in ipairs(order) do
      if #groups[key] > 1 then
        kept[#kept + 1] = groups[key]
        for _, s in ipairs(groups[key]) do kept_jobs[#kept_jobs + 1] = s.job end
      end
    end
    local names = {}
    for _, k in ipairs(varying(kept_jobs)) do if k ~= 'steps' then names[#names + 1] = k end end
    local function line_name(j)
      local parts = {}
      for _, k in ipairs(names) do
        local v = k == 'model' and (tostring(j.model):match('([^/]+)%.safetensors$') or j.model) or j[k]
        parts[#parts + 1] = ('%s=%s'):format(k, tostring(v))
      end
      return #parts > 0 and table.concat(parts, ' ') or 'all'
    end
    local panels = {}
    for _, m in ipairs(metrics) do
      local list = {}
      for _, g in ipairs(kept) do
        local points = {}
        for _, s in ipairs(g) do points[#points + 1] = {s.job.steps, s[m[1]]} end
        table.sort(points, function(a, b) return a[1] < b[1] end)
        list[#list + 1] = {name = line_name(g[1].job), points = points}
      end
      panels[#panels + 1] = {title = m[2], xlabel = 'steps', ylabel = m[2], logx = true, series = list}
    end
    charts[#charts + 1] = {png = dir .. '/sweep-steps.png', width = 1600, height = 560, panels = panels, key = 'below',
                           title = 'each metric against the sampling steps (mean over clips)'}
  end
  if is.w_ref and is.w_audio then
    local rest = {}
    for _, k in ipairs(vary) do if k ~= 'w_ref' and k ~= 'w_audio' then rest[#rest + 1] = k end end
    local groups, order = group_by(sums, rest)
    for gi, g in ipairs(order) do
      local panels = {}
      for _, m in ipairs{{'corr', 'lip-sync correlation'}, {'identity', 'identity error'}} do
        local cells = {}
        for _, s in ipairs(groups[g]) do cells[#cells + 1] = {s.job.w_ref, s.job.w_audio, s[m[1]]} end
        panels[#panels + 1] = {title = m[2], xlabel = 'w_ref', ylabel = 'w_audio', cells = cells}
      end
      charts[#charts + 1] = {png = ('%s/sweep-cfg-map%s.png'):format(dir, #order > 1 and ('-' .. gi) or ''),
                             heatmap = true, width = 1100, height = 460, panels = panels,
                             title = ('w_ref x w_audio (%s)'):format(g)}
    end
  end
  -- the quality-against-cost front: one series per model and mode
  local by_id, by_corr, order = {}, {}, {}
  for _, s in ipairs(sums) do
    local name = ('%s %s'):format(s.job.model:match('([^/]+)%.safetensors$') or s.job.model, s.job.mode)
    if not by_id[name] then
      by_id[name] = {name = name, style = 'points', points = {}}
      by_corr[name] = {name = name, style = 'points', points = {}}
      order[#order + 1] = name
    end
    table.insert(by_id[name].points, {s.spf, s.identity})
    table.insert(by_corr[name].points, {s.spf, s.corr})
  end
  local list, list2 = {}, {}
  for _, n in ipairs(order) do list[#list + 1], list2[#list2 + 1] = by_id[n], by_corr[n] end
  charts[#charts + 1] = {png = dir .. '/sweep-front.png', width = 1400, height = 520, key = 'below',
                         title = 'quality against seconds per frame (each point a job)',
                         panels = {{title = 'identity error', xlabel = 's/frame', ylabel = 'identity error', logx = true,
                                    series = list},
                                   {title = 'lip-sync correlation', xlabel = 's/frame', ylabel = 'lip-sync correlation',
                                    logx = true, series = list2}}}
  return charts
end

-- Combines DIR/jobs/job-N.csv of every job into DIR/sweep.csv (tidy: a row per
-- job and clip), DIR/sweep.md and the PNGs. Missing jobs are an error naming them.
function M.merge(dir, jobs, opts)
  opts = opts or {}
  local missing, rows = {}, {}
  for _, j in ipairs(jobs) do
    local path = job_path(dir, j, 'csv')
    local f = io.open(path, 'r')
    if not f then missing[#missing + 1] = tostring(j.id)
    else
      f:close()
      for _, r in ipairs(M.read_csv(path)) do rows[#rows + 1] = r end
    end
  end
  if #missing > 0 then
    fail('sweep: merge: %d of %d jobs have no results yet (%s): run them (--index N) first', #missing, #jobs,
      table.concat(missing, ', ', 1, math.min(#missing, 20)) .. (#missing > 20 and ', ...' or ''))
  end
  local lines = {M.CSV_HEAD}
  for _, j in ipairs(jobs) do
    local first = true
    for line in io.lines(job_path(dir, j, 'csv')) do
      if not first then lines[#lines + 1] = line end
      first = false
    end
  end
  report.write_file(dir .. '/sweep.csv', table.concat(lines, '\n') .. '\n')
  local sums = summaries(jobs, rows)
  local md = M.markdown(jobs, sums, opts.title)
  report.write_file(dir .. '/sweep.md', md)
  local made, why = {}, nil
  if opts.plots ~= false then
    local plot = require 'fada.plot'
    for _, c in ipairs(M.charts(jobs, sums, dir)) do
      local ok, err = (c.heatmap and plot.heatmap or plot.chart)(c)
      if ok then made[#made + 1] = c.png else why = err end
    end
  end
  return {rows = rows, summaries = sums, markdown = md, plots = made, plot_error = why}
end

return M
