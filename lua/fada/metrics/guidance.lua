-- Does guidance survive distillation (scripts/cfg_control.lua): models swept
-- over w_audio at the default w_ref and over w_ref at the default w_audio on
-- the held-out clips, resumable through a journal; the Markdown tables and
-- checks, the tidy CSV and the charts of each metric against the scale.
--
--   local guidance = require 'fada.metrics.guidance'
--   local runs = {{name = 'student (Fast)', m = heldout.load_model(...), mode = 'fast', steps = 6}, ...}
--   local res = guidance.sweep(runs, {w_audio = {1, 3.5, 6}, w_ref = {1, 2}, clips = 8, seconds = 2.4, seed = 42,
--                                     journal = 'runs/cfg_control/cfg_control.journal', fail = error})
--   local md, csv = guidance.report(res)
--   local ok, err = guidance.charts(res, 'runs/cfg_control')        -- cfg_audio.png, cfg_ref.png
local fada = require 'fada'
local pipeline = require 'fada.pipeline'
local metrics = require 'fada.metrics'
local heldout = require 'fada.metrics.heldout'
local report = require 'fada.metrics.report'
local stats = require 'fada.metrics.stats'
local progress = require 'fada.progress'

local M = {}

-- Every run at every scale point of the two sweeps (the default point once) on
-- clips 0 .. o.clips-1. runs: {name, m = heldout.load_model's {model, digest},
-- mode, steps}; o: w_audio, w_ref (the sweeps' values), clips, seconds, seed,
-- journal (path), fail (a bad setting's message). Returns {runs, sweeps, points,
-- held, results = [run][w_ref .. ':' .. w_audio] = per clip, journal, t0}.
function M.sweep(runs, o)
  local d = pipeline.defaults
  -- the two sweeps share the default point
  local sweeps = {{axis = 'w_audio', values = o.w_audio, at = function(w) return d.cfg_ref, w end},
                  {axis = 'w_ref', values = o.w_ref, at = function(w) return w, d.cfg_audio end}}
  local held = heldout.clips{count = o.clips, seconds = o.seconds, size = runs[1].m.model.config.image_size}
  local ev = metrics.evaluator()
  local journal = heldout.journal(o.journal, heldout.FIELDS)
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
      local pk = ('%g:%g'):format(p[1], p[2])
      local per = {}
      local s = {mode = r.mode, steps = r.steps, w_ref = p[1], w_audio = p[2], sampler = d.sampler,
                 cfg_schedule = 'constant', seed = o.seed, noise_share = d.noise_share}
      for i, c in ipairs(held) do
        local key = table.concat({r.m.digest, r.mode, r.steps, p[1], p[2], s.sampler, o.seed, s.noise_share,
                                  o.seconds, 'hq', c.index}, '|')
        per[i] = journal:get(key)
        if not per[i] then
          local ok, m = pcall(heldout.sample, r.m.model, c, s, ev)
          if not ok then o.fail(m) end
          per[i] = m
          journal:add(key, m)
        end
        done = done + c.frames:size(1)
        bar:update(done)
      end
      results[ri][pk] = per
    end
  end
  bar:finish()
  return {runs = runs, sweeps = sweeps, points = points, held = held, results = results, journal = journal,
          seed = o.seed, t0 = t0}
end

local function per_at(res, ri, wr, wa) return res.results[ri][('%g:%g'):format(wr, wa)] end

-- The Markdown (tables per sweep, the checks on the first run) and the CSV (a
-- row per model, scales and clip), both as text.
function M.report(res)
  local d = pipeline.defaults
  local runs, held = res.runs, res.held
  local wa_list, wr_list = res.sweeps[1].values, res.sweeps[2].values
  local out, csv = {}, {'model,mode,steps,w_ref,w_audio,clip,' .. table.concat(heldout.METRICS, ',')}
  local function add(...) out[#out + 1] = table.concat({...}) end
  add(('## Guidance after distillation: %d held-out clips, seed %d, %s'):format(#held, res.seed, report.host()))
  for _, sw in ipairs(res.sweeps) do
    add('')
    add(('### %s sweep (%s at its default)'):format(sw.axis, sw.axis == 'w_audio' and 'w_ref' or 'w_audio'))
    add('')
    add('| model | ' .. sw.axis .. ' | lip-sync corr | lip dist | identity err | flicker |')
    add('|---|---|---|---|---|---|')
    for ri, r in ipairs(runs) do
      for _, w in ipairs(sw.values) do
        local s = report.summary(per_at(res, ri, sw.at(w)))
        add(('| %s %d × %d | %g | %.3f ± %.3f | %.3f | %.4f ± %.4f | %.4f |'):format(r.name, r.steps,
          r.mode == 'fast' and 1 or 3, w, s.corr, s.corr_sd, s.dist, s.identity, s.identity_sd, s.flicker))
      end
    end
  end
  for ri, r in ipairs(runs) do
    for _, p in ipairs(res.points) do
      for i, c in ipairs(held) do
        local m, v = per_at(res, ri, p[1], p[2])[i], {}
        for j, k in ipairs(heldout.METRICS) do v[j] = ('%.6g'):format(m[k]) end
        csv[#csv + 1] = ('%s,%s,%d,%g,%g,%d,%s'):format(r.name, r.mode, r.steps, p[1], p[2], c.index, table.concat(v, ','))
      end
    end
  end

  -- the checks, on the student (or the teacher when it runs alone)
  local n = #held
  local def = per_at(res, 1, d.cfg_ref, d.cfg_audio)
  local function count(a, b, k, lower)
    local c = 0
    for i = 1, n do if (lower and a[i][k] < b[i][k]) or (not lower and a[i][k] > b[i][k]) then c = c + 1 end end
    return c
  end
  local function verdict(ok) return ok and 'met' or '**NOT met**' end
  add('')
  add(('Checks (%s):'):format(runs[1].mode == 'fast' and 'student, token mode' or runs[1].name))
  if def then
    local a1 = per_at(res, 1, d.cfg_ref, wa_list[1])
    local r1 = per_at(res, 1, wr_list[1], d.cfg_audio)
    local lower = count(a1, def, 'corr', true)
    add(('- w_audio %g lowers lip-sync against the default %g in %d of %d clips (≥ %d): %s'):format(wa_list[1],
      d.cfg_audio, lower, n, math.ceil(7 / 8 * n), verdict(lower >= math.ceil(7 / 8 * n))))
    local higher = count(r1, def, 'identity', false)
    add(('- w_ref %g raises the identity error against the default %g in %d of %d clips (≥ %d): %s'):format(wr_list[1],
      d.cfg_ref, higher, n, math.ceil(6 / 8 * n), verdict(higher >= math.ceil(6 / 8 * n))))
  else
    add(('- (the default scales %g:%g are not among the sweep points: no paired checks)'):format(d.cfg_ref, d.cfg_audio))
  end
  -- where lip distance steps up beyond 2 standard errors of the paired differences, for run ri
  local function steps_up(ri)
    local ups = {}
    for j = 2, #wa_list do
      local diff = report.paired(per_at(res, ri, d.cfg_ref, wa_list[j]), per_at(res, ri, d.cfg_ref, wa_list[j - 1]), 'dist')
      local se = stats.std(diff) / math.sqrt(n)
      if stats.mean(diff) > 2 * se then ups[#ups + 1] = ('%g→%g: %+.4f (2·se %.4f)'):format(wa_list[j - 1], wa_list[j],
        stats.mean(diff), 2 * se) end
    end
    return ups
  end
  local ups = steps_up(1)
  add(('- lip distance over the w_audio sweep falls monotonically within noise: %s%s'):format(verdict(#ups == 0),
    #ups > 0 and (' (steps up: ' .. table.concat(ups, '; ') .. ')') or ''))
  for ri = 2, #runs do
    -- the same test on the other curves calibrates it: does the model the student copies pass it?
    local u = steps_up(ri)
    add(('- calibration, %s %d × %d: lip distance %s'):format(runs[ri].name, runs[ri].steps,
      runs[ri].mode == 'fast' and 1 or 3, #u == 0 and 'falls monotonically within noise'
      or ('steps up too (' .. table.concat(u, '; ') .. ')')))
  end
  return table.concat(out, '\n') .. '\n', table.concat(csv, '\n') .. '\n'
end

-- DIR/cfg_audio.png and DIR/cfg_ref.png: each metric against the scale, a
-- series per run. Returns true, or false and why there is no PNG.
function M.charts(res, dir)
  local plot = require 'fada.plot'
  local function chart(sw, png, panels)
    local ps = {}
    for _, pn in ipairs(panels) do
      local series = {}
      for ri, r in ipairs(res.runs) do
        local pts = {}
        for _, w in ipairs(sw.values) do pts[#pts + 1] = {w, report.summary(per_at(res, ri, sw.at(w)))[pn[1]]} end
        series[#series + 1] = {name = ('%s %d x %d'):format(r.name, r.steps, r.mode == 'fast' and 1 or 3), points = pts}
      end
      ps[#ps + 1] = {title = pn[2], xlabel = sw.axis, ylabel = pn[2], series = series}
    end
    return plot.chart{png = png, width = 1500, height = 450, panels = ps,
                      title = ('%s sweep on %d held-out clips (mean over clips)'):format(sw.axis, #res.held)}
  end
  local ok1, e1 = chart(res.sweeps[1], dir .. '/cfg_audio.png',
    {{'dist', 'lip distance (lower is better)'}, {'corr', 'lip-sync correlation'}, {'identity', 'identity error'}})
  local ok2, e2 = chart(res.sweeps[2], dir .. '/cfg_ref.png',
    {{'identity', 'identity error (lower is better)'}, {'corr', 'lip-sync correlation'}, {'flicker', 'flicker'}})
  if ok1 and ok2 then return true end
  return false, tostring(e1 or e2)
end

return M
