-- Turning held-out results into what a reader compares: per-row summaries,
-- paired per-clip comparisons, speed measured in turns, the Markdown tables,
-- the tidy CSV and the quality-against-speed chart (scripts/compare.lua).
--
-- A row is {id, label, mode, steps, ...}; a tier is {name, title, clips,
-- results = {gt = {per clip}, [row id] = {per clip}}} where each per-clip
-- result holds fada.metrics.heldout.METRICS.
local fada = require 'fada'
local stats = require 'fada.metrics.stats'
local heldout = require 'fada.metrics.heldout'
local progress = require 'fada.progress'

local M = {}

-- The host in a few words, for every figure: cores and the kernels chosen
-- (from fada.versions(), what `fadalua -v` prints) and the CPU's model name.
function M.host()
  local v = fada.versions()
  local cores = v:match('CPU: (%d+) cores') or '?'
  local kernels = v:match('kernels: ([^\n]+)') or '?'
  local cpu = fada.cpu()
  local model = cpu.brand ~= '' and cpu.brand or '?'
  return ('%s, %s cores, kernels %s%s'):format(model, cores, kernels, cpu.amx_bf16 and ', AMX-BF16' or '')
end

-- Mean and sd of every metric over the clips, the clips whose best offset is
-- 0 ± 1 frame, and the sharpness over the ground truth's, clip by clip.
function M.summary(per, gt)
  local s = {n = #per, offset_ok = 0}
  for _, k in ipairs(heldout.METRICS) do
    local v = {}
    for i, m in ipairs(per) do v[i] = m[k] end
    s[k], s[k .. '_sd'] = stats.mean(v), stats.std(v)
  end
  for _, m in ipairs(per) do if math.abs(m.offset) <= 1 then s.offset_ok = s.offset_ok + 1 end end
  if gt then
    local v = {}
    for i, m in ipairs(per) do v[i] = m.sharpness / gt[i].sharpness end
    s.sharp_rel = stats.mean(v)
  end
  return s
end

-- Per-clip differences a[i][k] - b[i][k].
function M.paired(a, b, k)
  local d = {}
  for i = 1, #a do d[i] = a[i][k] - b[i][k] end
  return d
end

-- Clips where a beats b on both lip-sync (higher corr) and identity (lower error).
function M.wins(a, b)
  local n = 0
  for i = 1, #a do
    if a[i].corr > b[i].corr and a[i].identity < b[i].identity then n = n + 1 end
  end
  return n
end

-- Times every row `reps` times in turns (row 1, 2, ..., then again), so a
-- slow spell of the host hits all rows alike. run(row) -> seconds per frame.
-- Returns {[id] = {spf = median, speedup = median over reps of reference spf /
-- row spf}} (against rows[1] unless opts.reference); reps = 0: {[id] = {}}.
function M.time_rows(rows, run, opts)
  local reps = opts.reps or 3
  local times, out = {}, {}
  for _, r in ipairs(rows) do out[r.id], times[r.id] = {}, {} end
  if reps == 0 then return out end
  local bar = progress.new(reps * #rows, {label = opts.label or 'timing', unit = 'run'})
  for rep = 1, reps do
    for j, r in ipairs(rows) do
      times[r.id][rep] = run(r)
      bar:update((rep - 1) * #rows + j)
    end
  end
  bar:finish()
  local ref = opts.reference or rows[1].id
  for _, r in ipairs(rows) do
    local ratios = {}
    for rep = 1, reps do ratios[rep] = times[ref][rep] / times[r.id][rep] end
    out[r.id].spf = stats.median(times[r.id])
    out[r.id].speedup = stats.median(ratios)
  end
  return out
end

local function fmt_list(v, f)
  local s = {}
  for i, x in ipairs(v) do s[i] = (f or '%+.3f'):format(x) end
  return table.concat(s, ' ')
end

local function verdict(ok) return ok and 'met' or '**NOT met**' end
local function speed(t, need)
  if not t.speedup then return ('speed-up not timed (≥ %g)'):format(need) end
  return ('speed-up %.1f× ≥ %g: %s'):format(t.speedup, need, verdict(t.speedup >= need))
end

-- Each ablation against the recipe run as long (the ablation named 'full'), paired
-- clip by clip: the mean difference and its standard error, and in how many clips
-- the ablation is worse. Lines of Markdown; none without a 'full' row.
function M.ablation_lines(res)
  local full, lines = res.ablation_full, {}
  if not full then return lines end
  local ids = {}
  for id in pairs(res) do if id:match('^ablation_') and id ~= 'ablation_full' then ids[#ids + 1] = id end end
  table.sort(ids)
  local n = #full
  for _, id in ipairs(ids) do
    local dc, di = M.paired(res[id], full, 'corr'), M.paired(res[id], full, 'identity')
    local worse_c, worse_i = 0, 0
    for i = 1, n do
      if dc[i] < 0 then worse_c = worse_c + 1 end
      if di[i] > 0 then worse_i = worse_i + 1 end
    end
    local se = function(d) return stats.std(d) / math.sqrt(#d - 1) end -- the sample sd over sqrt(n)
    lines[#lines + 1] = ('- ablation %s − full, paired: lip-sync %+.3f ± %.3f (lower in %d of %d clips), '
      .. 'identity error %+.4f ± %.4f (higher in %d of %d)'):format(id:sub(#'ablation_' + 1), stats.mean(dc), se(dc),
      worse_c, n, stats.mean(di), se(di), worse_i, n)
  end
  return lines
end

-- The checks of the student's issue, on one tier's results; lines of Markdown.
local function checks(tier, timing, ref_id)
  local res, lines = tier.results, {}
  local ref = res[ref_id]
  local function add(...) lines[#lines + 1] = table.concat({...}) end
  local function sum(id) return M.summary(res[id]) end
  if not ref then return lines end
  local R = sum(ref_id)
  local n = #ref
  local need = math.ceil(0.75 * n) -- 6 of 8
  if res.fast then
    local Fs = sum('fast')
    add(('- Fast vs the reference: %s; lip-sync %.3f ≥ %.3f − 0.03: %s; identity %.4f ≤ 1.15 × %.4f: %s; '
      .. 'flicker %.4f ≤ 1.2 × %.4f: %s'):format(speed(timing.fast, 10), Fs.corr, R.corr,
      verdict(Fs.corr >= R.corr - 0.03), Fs.identity, R.identity, verdict(Fs.identity <= 1.15 * R.identity), Fs.flicker,
      R.flicker, verdict(Fs.flicker <= 1.2 * R.flicker)))
  end
  if res.balanced then
    local dc, di = M.paired(res.balanced, ref, 'corr'), M.paired(res.balanced, ref, 'identity')
    add(('- Balanced vs the reference: %s; paired lip-sync differences (Balanced − teacher) %s, '
      .. 'mean %+.3f against the teacher\'s per-clip sd %.3f: %s; identity differences %s, mean %+.4f against sd %.4f: %s')
      :format(speed(timing.balanced, 3.8), fmt_list(dc), stats.mean(dc), R.corr_sd,
      verdict(stats.mean(dc) >= -R.corr_sd), fmt_list(di, '%+.4f'), stats.mean(di), R.identity_sd,
      verdict(stats.mean(di) <= R.identity_sd)))
  end
  for _, l in ipairs(M.ablation_lines(res)) do lines[#lines + 1] = l end
  for _, pair in ipairs{{'fast', 'teacher_1pass'}, {'fast', 'teacher_short'}, {'balanced', 'teacher_cut'}} do
    local a, b = pair[1], pair[2]
    if res[a] and res[b] then
      local w = M.wins(res[a], res[b])
      add(('- %s beats %s (NFE %d vs %d) on both lip-sync and identity in %d of %d clips (≥ %d): %s'):format(a, b,
        timing[a].nfe, timing[b].nfe, w, n, need, verdict(w >= need)))
    end
  end
  if res.balanced and res.teacher_cut then
    -- the check's own calibration: a student that matched the reference exactly would score this
    add(('- calibration: the reference itself (NFE %d) beats teacher_cut (NFE %d) on both in %d of %d clips'):format(
      timing[ref_id].nfe, timing.teacher_cut.nfe, M.wins(ref, res.teacher_cut), n))
  end
  return lines
end

-- The whole Markdown report. o: rows, tiers, timing, reference (row id), title, note.
function M.markdown_comparison(o)
  local out = {}
  local function add(...) out[#out + 1] = table.concat({...}) end
  add('## ', o.title)
  add('')
  add(o.note)
  for _, tier in ipairs(o.tiers) do
    local gt = tier.results.gt
    local n = #tier.clips
    add('')
    add(('### %s (%d), mean ± sd over clips'):format(tier.title, n))
    add('')
    add('| row | NFE per frame | s/frame | speed-up | lip-sync corr | offset 0±1 | lip dist | identity err | flicker | '
        .. 'sharpness / GT |')
    add('|---|---|---|---|---|---|---|---|---|---|')
    local g = M.summary(gt, gt)
    add(('| ground truth (ceiling) | - | - | - | %.3f ± %.3f | %d/%d | %.3f | %.4f ± %.4f | %.4f | 1.00 |'):format(
      g.corr, g.corr_sd, g.offset_ok, n, g.dist, g.identity, g.identity_sd, g.flicker))
    for _, r in ipairs(o.rows) do
      local s, t = M.summary(tier.results[r.id], gt), o.timing[r.id]
      add(('| %s | %d | %s | %s | %.3f ± %.3f | %d/%d | %.3f | %.4f ± %.4f | %.4f | %.2f |'):format(r.label,
        t.nfe * 1, t.spf and ('%.3f'):format(t.spf) or '-', t.speedup and ('%.1f×'):format(t.speedup) or '-', s.corr, s.corr_sd, s.offset_ok, n, s.dist, s.identity, s.identity_sd, s.flicker,
        s.sharp_rel))
    end
    local lines = checks(tier, o.timing, o.reference)
    if #lines > 0 then
      add('')
      add('Checks on these clips:')
      for _, l in ipairs(lines) do add(l) end
    end
  end
  return table.concat(out, '\n') .. '\n'
end

-- Writes text to path through a temporary file (no half-written output).
function M.write_file(path, text)
  local tmp = path .. '.tmp'
  local f = assert(io.open(tmp, 'w'))
  f:write(text)
  f:close()
  assert(os.rename(tmp, path))
end

-- The tidy CSV: one line per (tier, row, clip), the ground truth as row 'gt'.
function M.write_csv(path, rows, tiers, timing)
  local lines = {'tier,row,label,mode,steps,nfe_per_frame,s_per_frame,speedup,clip,' .. table.concat(heldout.METRICS, ',')}
  local function line(tier, id, label, mode, steps, t, c, m)
    local v = {}
    for i, k in ipairs(heldout.METRICS) do v[i] = ('%.6g'):format(m[k]) end
    lines[#lines + 1] = ('%s,%s,"%s",%s,%s,%s,%s,%s,%d,%s'):format(tier, id, label, mode, steps,
      t and ('%g'):format(t.nfe) or '', t and t.spf and ('%.4f'):format(t.spf) or '',
      t and t.speedup and ('%.3f'):format(t.speedup) or '',
      c.index, table.concat(v, ','))
  end
  for _, tier in ipairs(tiers) do
    for i, c in ipairs(tier.clips) do line(tier.name, 'gt', 'ground truth', '', '', nil, c, tier.results.gt[i]) end
    for _, r in ipairs(rows) do
      for i, c in ipairs(tier.clips) do
        line(tier.name, r.id, r.label, r.mode, r.steps, timing[r.id], c, tier.results[r.id][i])
      end
    end
  end
  M.write_file(path, table.concat(lines, '\n') .. '\n')
end

-- Chart spec (fada.plot.chart): identity error and lip-sync against the speed-up
-- (the NFE ratio when not timed), teacher settings and students as separate
-- series, the ground truth as a line.
function M.comparison_chart(rows, tier, timing, png)
  local timed = timing[rows[1].id].speedup ~= nil
  local function x(r) return timed and timing[r.id].speedup or timing[rows[1].id].nfe / timing[r.id].nfe end
  local groups = {{name = 'teacher', test = function(r) return r.m and r.mode ~= 'balanced' and r.mode ~= 'fast' end},
                  {name = 'student', test = function(r) return (r.mode == 'balanced' or r.mode == 'fast') and not r.ablation end},
                  {name = 'ablations', test = function(r) return r.ablation end}}
  local gt = M.summary(tier.results.gt, tier.results.gt)
  local function panel(k, ylabel, hline)
    local series = {}
    for _, g in ipairs(groups) do
      local pts = {}
      for _, r in ipairs(rows) do
        if g.test(r) then
          pts[#pts + 1] = {x(r), M.summary(tier.results[r.id])[k], r.label}
        end
      end
      if #pts > 0 then series[#series + 1] = {name = g.name, style = 'points', labels = true, points = pts} end
    end
    return {title = ylabel, xlabel = timed and 'wall-clock speed-up over the reference teacher'
            or 'NFE reduction against the reference teacher (not timed)', ylabel = ylabel, logx = true,
            series = series, hline = {hline, 'ground truth'}}
  end
  return {png = png, width = 1400, height = 520, title = ('FADA on %d %s'):format(#tier.clips, tier.title),
          panels = {panel('identity', 'identity error (lower is better)', gt.identity),
                    panel('corr', 'lip-sync correlation (higher is better)', gt.corr)}}
end

return M
