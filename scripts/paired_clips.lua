-- fadalua scripts/paired_clips.lua: does setting A beat setting B clip by clip?
-- Reads sweep.csv files (scripts/sweep.lua), picks A's and B's rows by column
-- values, averages each clip's metrics over the seeds it has, and counts the
-- clips where A has the higher lip-sync, the lower identity error, and both —
-- per seed both share and over the seed means, beside each side's seed spread.
local cli = require 'fada.cli'
local fada = require 'fada'
local stats = require 'fada.metrics.stats'
local read_csv = require('fada.sweep').read_csv

local opts = cli.parse(arg, {
  usage = 'usage: fadalua scripts/paired_clips.lua --csv PATH,... --a COL=VALUE,... --b COL=VALUE,...',
  about = [[Picks the rows of setting A and of setting B from the sweep CSVs (a row is taken when every
COL=VALUE given matches its column), groups them by clip and seed, and prints per clip: each side's
mean lip-sync correlation and identity error over its seeds, the paired differences A - B, and each
side's seed-to-seed sd (divided by the count of seeds, as the sweep tables' ±). Counts "A beats B"
(higher lip-sync, lower identity error, both) per seed both sides share and over the per-clip seed
means: a one-seed count moves with that seed's noise, the mean over seeds less so.]],
  {'csv', 'strings', nil, 'sweep CSVs to read (scripts/sweep.lua writes DIR/sweep.csv), a comma list'},
  {'a', 'strings', nil, "setting A: COL=VALUE conditions, e.g. model=runs/s.safetensors,mode=balanced"},
  {'b', 'strings', nil, 'setting B (the reference), the same form'},
})
if not opts.csv then cli.fail('--csv: give the sweep CSVs to read') end
if not opts.a or not opts.b then cli.fail('--a and --b: give COL=VALUE conditions for both settings') end

local rows = {}
for _, path in ipairs(opts.csv) do
  if not fada.readable(path) then cli.fail(("--csv: cannot read '%s'"):format(path)) end
  for _, r in ipairs(read_csv(path)) do
    if r.clip == nil or r.seed == nil or r.corr == nil or r.identity == nil then
      cli.fail(("--csv: '%s' is not a sweep CSV (needs clip, seed, corr and identity columns)"):format(path))
    end
    rows[#rows + 1] = r
  end
end

-- {clip = {seed = row}} of the rows matching every condition of `conds`
local function pick(conds, flag)
  local want = {}
  for _, c in ipairs(conds) do
    local col, value = c:match('^([%w_]+)=(.*)$')
    if not col then cli.fail(('--%s: "%s" is not COL=VALUE'):format(flag, c)) end
    want[col] = value
  end
  local by, n = {}, 0
  for _, r in ipairs(rows) do
    local ok = true
    for col, value in pairs(want) do
      local v = r[col]
      ok = ok and v ~= nil and (tostring(v) == value or tonumber(value) ~= nil and tonumber(v) == tonumber(value))
    end
    if ok then
      by[r.clip] = by[r.clip] or {}
      by[r.clip][r.seed], n = r, n + 1
    end
  end
  if n == 0 then cli.fail(('--%s %s: no row of the CSVs matches'):format(flag, table.concat(conds, ','))) end
  return by
end
local A, B = pick(opts.a, 'a'), pick(opts.b, 'b')

local clips, seeds = {}, {}
for clip, sa in pairs(A) do
  if B[clip] then
    clips[#clips + 1] = clip
    for seed in pairs(sa) do if B[clip][seed] then seeds[seed] = (seeds[seed] or 0) + 1 end end
  end
end
if #clips == 0 then cli.fail('A and B share no clip') end
table.sort(clips)

local function values(side, clip, key)
  local v = {}
  for _, r in pairs(side[clip]) do v[#v + 1] = r[key] end
  return v
end
local function wins(get)
  local lip, id, both = 0, 0, 0
  for _, clip in ipairs(clips) do
    local ca, cb, ia, ib = get(clip)
    local l, i = ca > cb, ia < ib
    lip, id, both = lip + (l and 1 or 0), id + (i and 1 or 0), both + ((l and i) and 1 or 0)
  end
  return ('lip-sync higher in %d, identity error lower in %d, both in %d of %d clips'):format(lip, id, both, #clips)
end

print('| clip | A seeds | B seeds | lip-sync A | B | A - B | sd A / B | identity A | B | A - B | sd A / B |')
print('|---|---|---|---|---|---|---|---|---|---|---|')
local function sd(v) return #v > 1 and ('%.4f'):format(stats.std(v)) or '-' end
for _, clip in ipairs(clips) do
  local ca, cb, ia, ib = values(A, clip, 'corr'), values(B, clip, 'corr'), values(A, clip, 'identity'),
                         values(B, clip, 'identity')
  print(('| %d | %d | %d | %.4f | %.4f | %+.4f | %s / %s | %.4f | %.4f | %+.4f | %s / %s |'):format(clip, #ca, #cb,
    stats.mean(ca), stats.mean(cb), stats.mean(ca) - stats.mean(cb), sd(ca), sd(cb), stats.mean(ia), stats.mean(ib),
    stats.mean(ia) - stats.mean(ib), sd(ia), sd(ib)))
end
print()
local shared = {}
for seed, n in pairs(seeds) do if n == #clips then shared[#shared + 1] = seed end end
table.sort(shared)
for _, seed in ipairs(shared) do
  print(('seed %s: A beats B: %s'):format(seed, wins(function(c)
    return A[c][seed].corr, B[c][seed].corr, A[c][seed].identity, B[c][seed].identity
  end)))
end
print(('seed means: A beats B: %s'):format(wins(function(c)
  return stats.mean(values(A, c, 'corr')), stats.mean(values(B, c, 'corr')), stats.mean(values(A, c, 'identity')),
         stats.mean(values(B, c, 'identity'))
end)))
