-- fadalua scripts/sweep.lua: ablation sweeps over any axes, sharded on Slurm or
-- GNU parallel, merged into a tidy CSV, a Markdown summary and plots
-- (fada.sweep; docs/sweeps.md).
local fada = require 'fada'
local cli = require 'fada.cli'
local sweep = require 'fada.sweep'
local models = require 'fada.models'
local metrics = require 'fada.metrics'
local heldout = require 'fada.metrics.heldout'
local progress = require 'fada.progress'

local axes_help = {}
for _, a in ipairs(sweep.AXES) do
  axes_help[#axes_help + 1] = ('  %-13s %s (default: %s)'):format(a[1], a[4], tostring(a[3]))
end
local opts = cli.parse(arg, {
  usage = 'usage: fadalua scripts/sweep.lua [AXIS=VALUES ...] [--file SWEEP.lua] [--out DIR] [--list | --index N | merge]',
  about = 'Runs every combination of the axes (the first listed outermost) as one job each: the setting on\n' ..
          'held-out clips 0 .. clips-1, read by the evaluator. VALUES: a comma list (quote a value that has a\n' ..
          "comma: cfg_schedule='interval:200,800'), numeric ranges lo:hi:step (w_audio=1:6:0.5); a sweep file\n" ..
          'returns {axis = values, ...}, or a list of such tables (the union of their products, e.g. the\n' ..
          'teacher over steps beside the student over modes). Each job writes DIR/jobs/job-N.csv and is\n' ..
          'skipped once there; --list prints one command per shard for GNU parallel or xargs, --index N (or\n' ..
          "SLURM_ARRAY_TASK_ID) runs shard N of --shards (jobs with id mod shards = N), and 'merge' combines\n" ..
          'the jobs into DIR/sweep.csv, DIR/sweep.md and PNG plots. Without --index the whole sweep runs, then\n' ..
          'merges.\n\n' ..
          'axes:\n' .. table.concat(axes_help, '\n'),
  positional = true,
  {'file', 'string', nil, 'a sweep file (a Lua table of axes, or a list of them); AXIS=VALUES words override it'},
  {'out', 'string', 'runs/sweep', 'output folder'},
  {'list', 'bool', false, 'print one self-contained command per shard and exit'},
  {'index', 'int', nil, 'run shard N only (0-based; default: SLURM_ARRAY_TASK_ID when set)'},
  {'shards', 'int', nil, 'number of shards for --list / --index (default: one per job)'},
  {'seconds', 'number', 2.4, 'speech per clip'},
  {'threads', 'int', nil, 'compute threads (default: all cores)'},
  {'plots', 'bool', true, 'draw the PNG plots when merging'},
})
if opts.threads then fada.set_num_threads(opts.threads) end

local words, merge_only = {}, false
for _, a in ipairs(opts.args) do
  if a == 'merge' then merge_only = true else words[#words + 1] = a end
end
local ok, axes = pcall(function()
  local parts = opts.file and sweep.from_file(opts.file) or {{}}
  for _, part in ipairs(parts) do
    for k, v in pairs(sweep.parse_args(words)) do part[k] = v end
  end
  return parts
end)
if not ok then cli.fail(axes) end
local ok2, jobs = pcall(sweep.jobs, axes)
if not ok2 then cli.fail(jobs) end
local shards = opts.shards or #jobs
if shards < 1 then cli.fail('--shards must be at least 1') end

if opts.list then
  local q = fada.shell_quote
  local base = {q(arg[-1] or 'fadalua'), q(arg[0])}
  for _, w in ipairs(words) do base[#base + 1] = q(w) end
  if opts.file then base[#base + 1] = '--file ' .. q(opts.file) end
  base[#base + 1] = '--out ' .. q(opts.out)
  if opts.seconds ~= 2.4 then base[#base + 1] = ('--seconds %g'):format(opts.seconds) end
  if opts.threads then base[#base + 1] = ('--threads %d'):format(opts.threads) end
  for k = 0, shards - 1 do print(table.concat(base, ' ') .. (' --shards %d --index %d'):format(shards, k)) end
  os.exit(0)
end

local index = opts.index or tonumber(os.getenv('SLURM_ARRAY_TASK_ID') or '')
if index and (index < 0 or index >= shards or index % 1 ~= 0) then
  cli.fail(('--index %s is not a shard of 0 .. %d'):format(tostring(index), shards - 1))
end
local okc, err = pcall(sweep.claim, opts.out, jobs)
if not okc then cli.fail(err) end

local t0 = fada.clock()
if not merge_only then
  local mine = index and sweep.shard(jobs, index, shards) or jobs
  -- shared across jobs: loaded models, digests, the held-out clips (built once per size)
  local cache_m, cache_d, cache_c = {}, {}, {}
  local ev = metrics.evaluator()
  local ctx = {ev = ev}
  function ctx.model(path)
    if not cache_m[path] then
      local okm, m = pcall(models.load, path)
      if not okm then cli.fail(('model=%s: %s'):format(path, tostring(m))) end
      cache_m[path] = m
    end
    return cache_m[path]
  end
  function ctx.digest(path)
    cache_d[path] = cache_d[path] or models.digest(path)
    return cache_d[path]
  end
  function ctx.clips(n, size)
    local c = cache_c[size]
    if not c or #c < n then
      c = heldout.clips{count = n, seconds = opts.seconds, size = size}
      cache_c[size] = c
    end
    return {table.unpack(c, 1, n)}
  end
  local todo, frames = {}, 0
  for _, j in ipairs(mine) do
    local f = io.open(sweep.job_path(opts.out, j, 'csv'), 'r')
    if f then f:close() else todo[#todo + 1] = j ; frames = frames + j.clips * math.floor(opts.seconds * 25 + 0.5) end
  end
  local bar = progress.new(frames, {label = index and ('shard %d/%d'):format(index, shards) or 'sweep', unit = 'frame'})
  local done = 0
  function ctx.on_clip(n) done = done + n ; bar:update(math.min(done, frames)) end
  for _, j in ipairs(todo) do
    local okj, e = pcall(sweep.run_job, j, opts.out, ctx)
    if not okj then bar:stop() ; cli.fail(e) end
  end
  bar:finish()
  print(('%s: %d jobs run, %d finished before (skipped), in %.1f min; results in %s/jobs/'):format(
    index and ('shard %d of %d'):format(index, shards) or 'sweep', #todo, #mine - #todo, (fada.clock() - t0) / 60,
    opts.out))
  if index then os.exit(0) end
end

local okm, res = pcall(sweep.merge, opts.out, jobs, {plots = opts.plots})
if not okm then cli.fail(res) end
print(res.markdown)
print(('merged %d jobs (%d rows) into %s/sweep.csv and sweep.md%s'):format(#jobs, #res.rows, opts.out,
  #res.plots > 0 and ('; plots: ' .. table.concat(res.plots, ', ')) or (res.plot_error and ('; no plots: ' .. res.plot_error) or '')))
