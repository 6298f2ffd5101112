-- fadalua scripts/cfg_control.lua: does guidance survive distillation? The
-- student in token mode (FADA-Fast, one pass per step) swept over w_audio at the
-- default w_ref and over w_ref at the default w_audio, the teacher's multi-CFG
-- curve beside it, on the held-out clips. Writes DIR/cfg_control.csv (a row per
-- model, scales and clip), DIR/cfg_control.md (tables and checks) and
-- DIR/cfg_audio.png, DIR/cfg_ref.png (each metric against the scale).
local fada = require 'fada'
local cli = require 'fada.cli'
local pipeline = require 'fada.pipeline'
local metrics = require 'fada.metrics'
local heldout = require 'fada.metrics.heldout'
local report = require 'fada.metrics.report'
local stats = require 'fada.metrics.stats'
local progress = require 'fada.progress'
local plot = require 'fada.plot'

local d = pipeline.defaults
local opts = cli.parse(arg, {
  usage = 'usage: fadalua scripts/cfg_control.lua [--student PATH] [--teacher PATH|none] [flags]',
  about = [[The student in Fast mode (--steps x 1 pass) and the teacher (--teacher-steps x 3 passes) at every
w_audio of --w-audio (w_ref at its default) and every w_ref of --w-ref (w_audio at its default), on
--clips held-out clips, one seed. Checks: w_audio 1 lowers the student's lip-sync against the
default in most clips, w_ref 1 raises its identity error, the lip distance falls over the w_audio
sweep (no step up beyond twice its paired standard error). Finished results stay in
DIR/cfg_control.journal: the same command resumes, and a run with --student none (the teacher's
curves alone, e.g. while the student trains) is reused by the later full run.]],
  {'student', 'string', 'weights/fada-student.safetensors', "the distilled student ('none': the teacher's curves alone)"},
  {'teacher', 'string', d.model, "the teacher for the reference curves ('none' to skip)"},
  {'steps', 'int', 6, "the student's steps"},
  {'teacher_steps', 'int', 25, "the teacher's steps"},
  {'w_audio', 'numbers', '1,2,3,3.5,4,5,6', 'w_audio values (at the default w_ref)'},
  {'w_ref', 'numbers', '1,1.5,2,2.5,3', 'w_ref values (at the default w_audio)'},
  {'clips', 'int', 8, 'held-out clips 0 .. N-1'},
  {'seconds', 'number', 2.4, 'speech per clip'},
  {'seed', 'int', 42, 'noise seed'},
  {'out', 'string', 'runs/cfg_control', 'output folder'},
  {'threads', 'int', nil, 'compute threads (default: all cores)'},
})
if opts.threads then fada.set_num_threads(opts.threads) end
local function scales(v, flag)
  for _, x in ipairs(v) do
    if x < 0 then cli.fail(('--%s: %g is not a scale >= 0'):format(flag, x)) end
  end
  if #v < 2 then cli.fail(('--%s needs at least two values, got %d'):format(flag, #v)) end
  return v
end
local wa_list, wr_list = scales(opts.w_audio, 'w-audio'), scales(opts.w_ref, 'w-ref')
if opts.clips < 1 then cli.fail('--clips must be at least 1') end
if opts.steps < 1 or opts.teacher_steps < 1 then cli.fail('--steps and --teacher-steps must be at least 1') end

local function load(path, role)
  local m, err = heldout.load_model(path, role, role)
  if not m then cli.fail(err) end
  return m
end
local runs = {}
if opts.student ~= 'none' then
  runs[1] = {name = 'student (Fast)', m = load(opts.student, 'student'), mode = 'fast', steps = opts.steps}
end
if opts.teacher ~= 'none' then
  runs[#runs + 1] = {name = 'teacher', m = load(opts.teacher, 'teacher'), mode = 'teacher', steps = opts.teacher_steps}
end
if #runs == 0 then cli.fail('--student none and --teacher none: nothing to sweep') end

-- the two sweeps share the default point
local sweeps = {{axis = 'w_audio', values = wa_list, at = function(w) return d.cfg_ref, w end},
                {axis = 'w_ref', values = wr_list, at = function(w) return w, d.cfg_audio end}}
local held = heldout.clips{count = opts.clips, seconds = opts.seconds, size = runs[1].m.model.config.image_size}
local ev = metrics.evaluator()
local journal = heldout.journal(opts.out .. '/cfg_control.journal', heldout.FIELDS)
local results = {} -- [run][w_ref .. ':' .. w_audio] = per clip
local points, seen = {}, {}
for _, sw in ipairs(sweeps) do
  for _, w in ipairs(sw.values) do
    local wr, wa = sw.at(w)
    local pk = ('%g:%g'):format(wr, wa)
    if not seen[pk] then points[#points + 1], seen[pk] = {wr, wa}, true end
  end
end
local frames = 0
for _, c in ipairs(held) do frames = frames + c.frames:size(1) end
local bar = progress.new(#runs * #points * frames, {label = 'guidance sweeps', unit = 'frame'})
local done, t0 = 0, fada.clock()
for ri, r in ipairs(runs) do
  results[ri] = {}
  for _, p in ipairs(points) do
    do
      local pk = ('%g:%g'):format(p[1], p[2])
      local per = {}
      local s = {mode = r.mode, steps = r.steps, w_ref = p[1], w_audio = p[2], sampler = d.sampler,
                 cfg_schedule = 'constant', seed = opts.seed, noise_share = d.noise_share}
      for i, c in ipairs(held) do
        local key = table.concat({r.m.digest, r.mode, r.steps, p[1], p[2], s.sampler, opts.seed, s.noise_share,
                                  opts.seconds, 'hq', c.index}, '|')
        per[i] = journal:get(key)
        if not per[i] then
          local ok, m = pcall(heldout.sample, r.m.model, c, s, ev)
          if not ok then cli.fail(m) end
          per[i] = m
          journal:add(key, m)
        end
        done = done + c.frames:size(1)
        bar:update(done)
      end
      results[ri][pk] = per
    end
  end
end
bar:finish()
if journal.reused > 0 then print(('resumed: %d results read from %s'):format(journal.reused, journal.path)) end

-- ---- tables, checks, CSV, plots -------------------------------------------------------------------------
local out, csv = {}, {'model,mode,steps,w_ref,w_audio,clip,' .. table.concat(heldout.METRICS, ',')}
local function add(...) out[#out + 1] = table.concat({...}) end
add(('## Guidance after distillation: %d held-out clips, seed %d, %s'):format(#held, opts.seed, report.host()))
local function per_at(ri, wr, wa) return results[ri][('%g:%g'):format(wr, wa)] end
for _, sw in ipairs(sweeps) do
  add('')
  add(('### %s sweep (%s at its default)'):format(sw.axis, sw.axis == 'w_audio' and 'w_ref' or 'w_audio'))
  add('')
  add('| model | ' .. sw.axis .. ' | lip-sync corr | lip dist | identity err | flicker |')
  add('|---|---|---|---|---|---|')
  for ri, r in ipairs(runs) do
    for _, w in ipairs(sw.values) do
      local s = report.summary(per_at(ri, sw.at(w)))
      add(('| %s %d × %d | %g | %.3f ± %.3f | %.3f | %.4f ± %.4f | %.4f |'):format(r.name, r.steps,
        r.mode == 'fast' and 1 or 3, w, s.corr, s.corr_sd, s.dist, s.identity, s.identity_sd, s.flicker))
    end
  end
end
for ri, r in ipairs(runs) do
  for _, p in ipairs(points) do
    for i, c in ipairs(held) do
      local m, v = per_at(ri, p[1], p[2])[i], {}
      for j, k in ipairs(heldout.METRICS) do v[j] = ('%.6g'):format(m[k]) end
      csv[#csv + 1] = ('%s,%s,%d,%g,%g,%d,%s'):format(r.name, r.mode, r.steps, p[1], p[2], c.index, table.concat(v, ','))
    end
  end
end

-- the checks, on the student (or the teacher when it runs alone)
local n = #held
local def = per_at(1, d.cfg_ref, d.cfg_audio)
local function count(a, b, k, lower)
  local c = 0
  for i = 1, n do if (lower and a[i][k] < b[i][k]) or (not lower and a[i][k] > b[i][k]) then c = c + 1 end end
  return c
end
local function verdict(ok) return ok and 'met' or '**NOT met**' end
add('')
add(('Checks (%s):'):format(runs[1].mode == 'fast' and 'student, token mode' or runs[1].name))
if def then
  local a1 = per_at(1, d.cfg_ref, wa_list[1])
  local r1 = per_at(1, wr_list[1], d.cfg_audio)
  local lower = count(a1, def, 'corr', true)
  add(('- w_audio %g lowers lip-sync against the default %g in %d of %d clips (≥ %d): %s'):format(wa_list[1],
    d.cfg_audio, lower, n, math.ceil(7 / 8 * n), verdict(lower >= math.ceil(7 / 8 * n))))
  local higher = count(r1, def, 'identity', false)
  add(('- w_ref %g raises the identity error against the default %g in %d of %d clips (≥ %d): %s'):format(wr_list[1],
    d.cfg_ref, higher, n, math.ceil(6 / 8 * n), verdict(higher >= math.ceil(6 / 8 * n))))
else
  add(('- (the default scales %g:%g are not among the sweep points: no paired checks)'):format(d.cfg_ref, d.cfg_audio))
end
local ups = {}
for j = 2, #wa_list do
  local diff = report.paired(per_at(1, d.cfg_ref, wa_list[j]), per_at(1, d.cfg_ref, wa_list[j - 1]), 'dist')
  local se = stats.std(diff) / math.sqrt(n)
  if stats.mean(diff) > 2 * se then ups[#ups + 1] = ('%g→%g: %+.4f (2·se %.4f)'):format(wa_list[j - 1], wa_list[j],
    stats.mean(diff), 2 * se) end
end
add(('- lip distance over the w_audio sweep falls monotonically within noise: %s%s'):format(verdict(#ups == 0),
  #ups > 0 and (' (steps up: ' .. table.concat(ups, '; ') .. ')') or ''))

local md = table.concat(out, '\n') .. '\n'
print(md)
fada.mkdir(opts.out)
report.write_file(opts.out .. '/cfg_control.md', md)
report.write_file(opts.out .. '/cfg_control.csv', table.concat(csv, '\n') .. '\n')

local function chart(sw, png, panels)
  local ps = {}
  for _, pn in ipairs(panels) do
    local series = {}
    for ri, r in ipairs(runs) do
      local pts = {}
      for _, w in ipairs(sw.values) do pts[#pts + 1] = {w, report.summary(per_at(ri, sw.at(w)))[pn[1]]} end
      series[#series + 1] = {name = ('%s %d x %d'):format(r.name, r.steps, r.mode == 'fast' and 1 or 3), points = pts}
    end
    ps[#ps + 1] = {title = pn[2], xlabel = sw.axis, ylabel = pn[2], series = series}
  end
  return plot.chart{png = png, width = 1500, height = 450, panels = ps,
                    title = ('%s sweep on %d held-out clips (mean over clips)'):format(sw.axis, n)}
end
local ok1, e1 = chart(sweeps[1], opts.out .. '/cfg_audio.png',
  {{'dist', 'lip distance (lower is better)'}, {'corr', 'lip-sync correlation'}, {'identity', 'identity error'}})
local ok2, e2 = chart(sweeps[2], opts.out .. '/cfg_ref.png',
  {{'identity', 'identity error (lower is better)'}, {'corr', 'lip-sync correlation'}, {'flicker', 'flicker'}})
print((ok1 and ok2) and ('wrote %s/cfg_control.{csv,md}, cfg_audio.png, cfg_ref.png'):format(opts.out)
      or ('wrote %s/cfg_control.{csv,md}; no PNG: %s'):format(opts.out, tostring(e1 or e2)))
journal:close()
print(('%d settings x %d clips in %.1f min'):format(#runs * #points, n, (fada.clock() - t0) / 60))
