-- fada.sweep and scripts/sweep.lua on a tiny model: the grammar (ranges,
-- quotes, errors naming the axis), the deterministic job order, a 12-job sweep
-- run as 3 shards from --list then merged equal to one process row for row, an
-- interrupted shard that resumes without redoing finished jobs, the same through
-- GNU parallel as docs/sweeps.md shows it, sweep files.
local models = require 'fada.models'
local sweep = require 'fada.sweep'

local sh = dofile(debug.getinfo(1, 'S').source:match('^@(.-)[^/]*$') .. 'shell_helpers.lua')

local dir = sh.temp_dir()
local model = dir .. '/tiny.safetensors'
models.save(models.FadaModel(models.config('tiny')), model)

test('grammar: lists, inclusive ranges, quoted values, defaults; errors name the axis', function()
  assert_eq(table.concat(sweep.parse_values('w_audio', '1:3:0.5'), ' '), '1 1.5 2 2.5 3')
  assert_eq(table.concat(sweep.parse_values('w_ref', '0:1:0.1'), ' '), '0 0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 1')
  assert_eq(table.concat(sweep.parse_values('steps', '4,6,12:25:13'), ' '), '4 6 12 25')
  assert_eq(table.concat(sweep.parse_values('cfg_schedule', "constant,'interval:200,800',linear"), ' | '),
    'constant | interval:200,800 | linear')
  assert_eq(table.concat(sweep.parse_values('sampler', 'ddim,file:x.lua'), ' '), 'ddim file:x.lua')
  local bad = {
    {function() sweep.parse_args({'stepz=4'}) end, "unknown axis 'stepz'"},
    {function() sweep.parse_args({'steps'}) end, "'steps' is not key=values"},
    {function() sweep.parse_args({'steps=4,x'}) end, "steps: 'x' is not a number"},
    {function() sweep.parse_args({'steps=4.5'}) end, "steps: '4.5' is not an integer"},
    {function() sweep.parse_args({'w_audio=6:1:1'}) end, 'w_audio: range 6:1:1 needs lo <= hi'},
    {function() sweep.parse_args({'w_audio=1,,2'}) end, 'w_audio: an empty value'},
    {function() sweep.parse_args({"cfg_schedule='interval:1,2"}) end, 'cfg_schedule: an unclosed'},
    {function() sweep.parse_args({'steps=4', 'steps=6'}) end, 'steps is given twice'},
  }
  for _, c in ipairs(bad) do checkerror(c[1], c[2]) end
  -- the order: the first axis of sweep.AXES outermost; unset axes at their defaults
  local jobs = sweep.jobs(sweep.parse_args({'w_audio=1,2', 'steps=3,4'}))
  assert_eq(#jobs, 4)
  assert_eq(jobs[1].steps .. ':' .. jobs[1].w_audio .. ' ' .. jobs[2].steps .. ':' .. jobs[2].w_audio, '3:1 3:2')
  assert_eq(jobs[3].id, 2)
  assert_eq(jobs[1].w_ref, 2)
  assert_eq(jobs[1].mode, 'teacher')
  -- steps=0 (the default) takes the mode's default
  assert_eq(sweep.jobs(sweep.parse_args({'mode=fast,teacher'}))[1].steps, 6)
  -- a sweep file of parts: the union of their products, part after part, a shared setting once
  local union = sh.write_file(dir .. '/union.lua', "return {{steps = {6, 12}, w_audio = '1,3.5'}, "
    .. "{model = 'student.safetensors', mode = {'balanced', 'fast'}, w_audio = 3.5}, {steps = 6, w_audio = 1}}")
  jobs = sweep.jobs(sweep.from_file(union))
  assert_eq(#jobs, 6, 'four teacher jobs, two student jobs, the third part already in the first')
  local seen = {}
  for i, j in ipairs(jobs) do
    assert_eq(j.id, i - 1)
    seen[#seen + 1] = ('%s/%s/%d/%g'):format(j.model:match('[^/]*$'), j.mode, j.steps, j.w_audio)
  end
  assert_eq(table.concat(seen, ' '), 'fada-teacher.safetensors/teacher/6/1 fada-teacher.safetensors/teacher/6/3.5 '
    .. 'fada-teacher.safetensors/teacher/12/1 fada-teacher.safetensors/teacher/12/3.5 '
    .. 'student.safetensors/balanced/6/3.5 student.safetensors/fast/6/3.5')
  checkerror(function() sweep.from_file(sh.write_file(dir .. '/p.lua', 'return {{steps = 6}, 7}')) end,
    'part 2 of its list is a number, not a table of axes')
  checkerror(function() sweep.from_file(sh.write_file(dir .. '/m.lua', 'return {{steps = 6}, seed = 1}')) end,
    'mixes a list of parts with axes of its own')
  checkerror(function() sweep.from_file(sh.write_file(dir .. '/k.lua', 'return {{stepz = 6}}')) end,
    "unknown axis 'stepz'")
end)

local args = ('model=%s steps=1,2 w_ref=1,2 w_audio=1,3.5,6 clips=2 --seconds 0.4 --threads 1'):format(model)
local QUALITY = {'corr', 'offset', 'dist', 'identity', 'flicker', 'sharpness', 'nfe_per_frame'}

local function same_rows(a, b, what)
  assert_eq(#a, #b, what .. ': rows')
  for i = 1, #a do
    assert_eq(a[i].job, b[i].job, what .. ': job of row ' .. i)
    assert_eq(a[i].clip, b[i].clip, what .. ': clip of row ' .. i)
    for _, k in ipairs(QUALITY) do
      assert(math.abs(a[i][k] - b[i][k]) <= 1e-5, ('%s, row %d, %s: %s vs %s'):format(what, i, k, a[i][k], b[i][k]))
    end
  end
end

test('12 jobs as 3 shards from --list, then merge == one process, row for row; an interrupted shard resumes', function()
  local one = dir .. '/one'
  local out, code = sh.script('sweep', args .. (' --out %q'):format(one))
  assert_eq(code, 0, out)
  sh.contains(out, 'merged 12 jobs (24 rows)', 'one process')
  local sharded = dir .. '/sharded'
  local list, lcode = sh.script('sweep', args .. (' --out %q --shards 3 --list'):format(sharded))
  assert_eq(lcode, 0, list)
  local cmds = {}
  for line in list:gmatch('[^\n]+') do cmds[#cmds + 1] = line end
  assert_eq(#cmds, 3, 'one command per shard:\n' .. list)
  for k, c in ipairs(cmds) do
    sh.contains(c, ('--shards 3 --index %d'):format(k - 1), 'command ' .. k)
    local p = io.popen(c .. ' 2>&1')
    local o = p:read('a')
    assert(p:close(), o)
    sh.contains(o, ('shard %d of 3: 4 jobs run, 0 finished before'):format(k - 1), 'shard ' .. k)
  end
  -- shard 1 interrupted before its last job: that job alone runs again
  local last = sweep.job_path(sharded, {id = 10}, 'csv')
  local keep = sweep.job_path(sharded, {id = 1}, 'csv')
  local before = sh.slurp(keep)
  os.remove(last)
  local p = io.popen(cmds[2] .. ' 2>&1')
  local o = p:read('a')
  assert(p:close(), o)
  sh.contains(o, 'shard 1 of 3: 1 jobs run, 3 finished before (skipped)', 'resumed shard')
  assert_eq(sh.slurp(keep), before, 'a finished job is not rewritten')
  out, code = sh.script('sweep', args .. (' --out %q merge'):format(sharded))
  assert_eq(code, 0, out)
  same_rows(sweep.read_csv(sharded .. '/sweep.csv'), sweep.read_csv(one .. '/sweep.csv'), 'sharded vs one process')
  for _, png in ipairs{'sweep-steps.png', 'sweep-front.png', 'sweep-cfg-map-1.png'} do
    assert(sh.exists(sharded .. '/' .. png) or out:find('no plots', 1, true), png)
  end
  sh.contains(sh.slurp(sharded .. '/sweep.md'), '| 11 | steps=2 w_ref=2 w_audio=6 |', 'the summary')
end)

test("the docs' recipe: --list piped to GNU parallel -j 2, then merge == one process", function()
  if not os.execute('command -v parallel >/dev/null 2>&1') then
    skip('GNU parallel is not installed (scripts/setup-deps.sh test installs it)')
  end
  local out_dir = dir .. '/parallel'
  local list = sh.script('sweep', args .. (' --out %q --shards 2 --list'):format(out_dir))
  local p = io.popen(('parallel -j 2 --will-cite 2>&1 <<\'EOF\'\n%sEOF'):format(list))
  local o = p:read('a')
  assert(p:close(), o)
  sh.contains(o, 'shard 0 of 2: 6 jobs run', 'shard 0 under parallel')
  sh.contains(o, 'shard 1 of 2: 6 jobs run', 'shard 1 under parallel')
  local out, code = sh.script('sweep', args .. (' --out %q --no-plots merge'):format(out_dir))
  assert_eq(code, 0, out)
  same_rows(sweep.read_csv(out_dir .. '/sweep.csv'), sweep.read_csv(dir .. '/one/sweep.csv'), 'parallel vs one process')
end)

test('a sweep file, SLURM_ARRAY_TASK_ID, and what is refused', function()
  local file = sh.write_file(dir .. '/s.lua', ('return {model = %q, steps = {1}, w_audio = "1:3.5:2.5", clips = 1}')
    :format(model))
  local out_dir = dir .. '/file'
  local p = io.popen(('SLURM_ARRAY_TASK_ID=1 %s scripts/sweep.lua --file %q --out %q --shards 2 --seconds 0.4 '
    .. '--threads 1 2>&1'):format(sh.quote(sh.FADALUA), file, out_dir))
  local o = p:read('a')
  assert(p:close(), o)
  sh.contains(o, 'shard 1 of 2: 1 jobs run', 'slurm index')
  assert(sh.exists(sweep.job_path(out_dir, {id = 1}, 'csv')) and not sh.exists(sweep.job_path(out_dir, {id = 0}, 'csv')),
    'job 1 only')
  local out, code = sh.script('sweep', ('--file %q --out %q merge'):format(file, out_dir))
  assert_eq(code, 2, out)
  sh.contains(out, 'merge: 1 of 2 jobs have no results yet (0)', 'merge before the end')
  out, code = sh.script('sweep', ('steps=9 --file %q --out %q'):format(file, out_dir))
  assert_eq(code, 2, out)
  sh.contains(out, 'holds the results of another sweep', 'another sweep in the same folder')
  out, code = sh.script('sweep', ('stepz=1 --out %q'):format(dir .. '/x'))
  assert_eq(code, 2, out)
  sh.contains(out, "unknown axis 'stepz'", 'a bad key')
  out, code = sh.script('sweep', ('--file %q --out %q'):format(sh.write_file(dir .. '/b.lua', 'return 3'), dir .. '/y'))
  assert_eq(code, 2, out)
  sh.contains(out, 'must return a table of axes', 'a bad sweep file')
  out, code = sh.script('sweep', ('model=%s clips=1 --seconds 0.4 --out %q --index 5 --shards 2'):format(model, dir .. '/z'))
  assert_eq(code, 2, out)
  sh.contains(out, '--index 5 is not a shard of 0 .. 1', 'a bad index')
  out, code = sh.script('sweep', '--help')
  assert_eq(code, 0, out)
  for _, a in ipairs(sweep.AXES) do sh.contains(out, a[1], 'help lists axis ' .. a[1]) end
end)

test('cleanup', function() os.execute(('rm -rf %q'):format(dir)) end)
