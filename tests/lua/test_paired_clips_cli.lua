-- scripts/paired_clips.lua on a hand-written sweep CSV: rows picked by their
-- columns, per-seed and seed-mean win counts in closed form, bad input refused.
local sh = dofile(debug.getinfo(1, 'S').source:match('^@(.-)[^/]*$') .. 'shell_helpers.lua')

local dir = sh.temp_dir()
-- clip 0: A's lip-sync below B's at seed 1, above at seed 2, above on the mean (0.92 vs 0.91);
-- clip 1: A lower on lip-sync, better on identity; clip 2: A higher on lip-sync, worse on identity
local csv = dir .. '/sweep.csv'
sh.write_file(csv, table.concat({
  'job,model,mode,seed,clip,corr,identity',
  '0,s.safetensors,fast,1,0,0.90,0.05', '0,s.safetensors,fast,2,0,0.94,0.05',
  '0,s.safetensors,fast,1,1,0.80,0.04', '0,s.safetensors,fast,2,1,0.80,0.04',
  '0,s.safetensors,fast,1,2,0.95,0.07', '0,s.safetensors,fast,2,2,0.95,0.07',
  '1,t.safetensors,teacher,1,0,0.91,0.06', '1,t.safetensors,teacher,2,0,0.91,0.06',
  '1,t.safetensors,teacher,1,1,0.85,0.05', '1,t.safetensors,teacher,2,1,0.85,0.05',
  '1,t.safetensors,teacher,1,2,0.90,0.06', '1,t.safetensors,teacher,2,2,0.90,0.06',
}, '\n') .. '\n')

test('per clip: seed means and paired differences; wins per seed and over the seed means', function()
  local out, code = sh.script('paired_clips', ('--csv %s --a model=s.safetensors,mode=fast --b mode=teacher'):format(
    sh.quote(csv)))
  assert_eq(code, 0, out)
  sh.contains(out, '| 0 | 2 | 2 | 0.9200 | 0.9100 | +0.0100 | 0.0200 / 0.0000 | 0.0500 | 0.0600 | -0.0100 |', 'clip 0')
  sh.contains(out, '| 2 | 2 | 2 | 0.9500 | 0.9000 | +0.0500 |', 'clip 2')
  sh.contains(out, 'seed 1: A beats B: lip-sync higher in 1, identity error lower in 2, both in 0 of 3 clips', 'seed 1')
  sh.contains(out, 'seed 2: A beats B: lip-sync higher in 2, identity error lower in 2, both in 1 of 3 clips', 'seed 2')
  sh.contains(out, 'seed means: A beats B: lip-sync higher in 2, identity error lower in 2, both in 1 of 3 clips', 'means')
end)

test('bad input: a message naming the flag or file, exit 2', function()
  local q = sh.quote(csv)
  for _, c in ipairs{
    {'--a mode=fast --b mode=teacher', '--csv: give the sweep CSVs'},
    {('--csv %s --a mode=fast'):format(q), '--a and --b: give COL=VALUE'},
    {('--csv %s --a fast --b mode=teacher'):format(q), '--a: "fast" is not COL=VALUE'},
    {('--csv %s --a mode=balanced --b mode=teacher'):format(q), '--a mode=balanced: no row of the CSVs matches'},
    {('--csv %s --a mode=fast --b mode=teacher'):format(sh.quote(dir .. '/none.csv')), "--csv: cannot read '"},
  } do
    local out, code = sh.script('paired_clips', c[1])
    assert_eq(code, 2, out)
    sh.contains(out, c[2], c[1])
  end
  local loss = dir .. '/loss.csv'
  sh.write_file(loss, 'step,loss\n1,0.5\n')
  local out, code = sh.script('paired_clips', ('--csv %s --a step=1 --b step=1'):format(sh.quote(loss)))
  assert_eq(code, 2, out)
  sh.contains(out, 'is not a sweep CSV', 'a loss.csv')
end)

test('cleanup', function() os.execute(('rm -rf %q'):format(dir)) end)
