-- fadalua scripts/compare_runs.lua: the loss curves of training runs side by
-- side (e.g. the same run in f32 and in bf16): one PNG, and a table of the
-- column at the steps every run logged.
local fada = require 'fada'
local cli = require 'fada.cli'
local plot = require 'fada.plot'
local stats = require 'fada.metrics.stats'
local read_csv = require('fada.sweep').read_csv

local opts = cli.parse(arg, {
  usage = 'usage: fadalua scripts/compare_runs.lua --runs NAME=DIR,... [--column loss] [--png PATH]',
  about = [[Reads DIR/loss.csv of each run (train_teacher.lua, distill_student.lua) and draws --column
against the step, a line per run, into --png; prints the column at the steps all runs share and
each run's mean relative difference to the first run there.]],
  {'runs', 'strings', nil, 'the runs as NAME=DIR, a comma list (the first is the baseline)'},
  {'column', 'string', 'loss', 'the loss.csv column to compare'},
  {'png', 'string', nil, 'the PNG to write (default: none)'},
})
if not opts.runs or #opts.runs < 2 then cli.fail('--runs needs two or more NAME=DIR') end

local runs = {}
for _, item in ipairs(opts.runs) do
  local name, dir = item:match('^([^=]+)=(.+)$')
  if not name then cli.fail(('--runs: "%s" is not NAME=DIR'):format(item)) end
  local path = dir .. '/loss.csv'
  if not fada.readable(path) then cli.fail(("--runs %s: cannot read '%s'"):format(name, path)) end
  local at, n = {}, 0
  for _, row in ipairs(read_csv(path)) do
    local v = row[opts.column]
    if v == nil then cli.fail(("--column: '%s' has no column '%s'"):format(path, opts.column)) end
    at[row.step], n = tonumber(v), n + 1
  end
  runs[#runs + 1] = {name = name, at = at, n = n}
end

local steps = {}
for s in pairs(runs[1].at) do
  local all = true
  for _, r in ipairs(runs) do all = all and r.at[s] ~= nil end
  if all then steps[#steps + 1] = s end
end
table.sort(steps)
if #steps == 0 then cli.fail('the runs share no logged step') end

local head = {'| step |'}
for _, r in ipairs(runs) do head[#head + 1] = (' %s |'):format(r.name) end
print(table.concat(head) .. '\n|---|' .. ('---|'):rep(#runs))
for _, s in ipairs(steps) do
  local line = {('| %d |'):format(s)}
  for _, r in ipairs(runs) do line[#line + 1] = (' %.6g |'):format(r.at[s]) end
  print(table.concat(line))
end
for k = 2, #runs do
  local rel = {}
  for i, s in ipairs(steps) do rel[i] = (runs[k].at[s] - runs[1].at[s]) / math.abs(runs[1].at[s]) end
  print(('%s vs %s: mean relative difference %+.4f (sd %.4f) over %d shared steps'):format(runs[k].name, runs[1].name,
    stats.mean(rel), stats.std(rel), #steps))
end

if opts.png then
  local series = {}
  for _, r in ipairs(runs) do
    local pts = {}
    for _, s in ipairs(steps) do pts[#pts + 1] = {s, r.at[s]} end
    series[#series + 1] = {name = r.name, points = pts, style = 'lines'}
  end
  local ok, err = plot.chart{png = opts.png, panels = {{title = opts.column .. ' against the step', xlabel = 'step',
    ylabel = opts.column, series = series}}}
  print(ok and ('wrote ' .. opts.png) or ('no PNG: ' .. tostring(err)))
end
