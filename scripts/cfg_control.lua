-- fadalua scripts/cfg_control.lua: does guidance survive distillation? The
-- student in token mode (FADA-Fast, one pass per step) swept over w_audio at the
-- default w_ref and over w_ref at the default w_audio, the teacher's multi-CFG
-- curve beside it, on the held-out clips. Writes DIR/cfg_control.csv (a row per
-- model, scales and clip), DIR/cfg_control.md (tables and checks) and
-- DIR/cfg_audio.png, DIR/cfg_ref.png (each metric against the scale).
local fada = require 'fada'
local cli = require 'fada.cli'
local pipeline = require 'fada.pipeline'
local heldout = require 'fada.metrics.heldout'
local report = require 'fada.metrics.report'
local guidance = require 'fada.metrics.guidance'

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

local res = guidance.sweep(runs, {w_audio = wa_list, w_ref = wr_list, clips = opts.clips, seconds = opts.seconds,
  seed = opts.seed, journal = opts.out .. '/cfg_control.journal', fail = cli.fail})
local journal = res.journal
if journal.reused > 0 then print(('resumed: %d results read from %s'):format(journal.reused, journal.path)) end

local md, csv = guidance.report(res)
print(md)
fada.mkdir(opts.out)
report.write_file(opts.out .. '/cfg_control.md', md)
report.write_file(opts.out .. '/cfg_control.csv', csv)
local ok, err = guidance.charts(res, opts.out)
print(ok and ('wrote %s/cfg_control.{csv,md}, cfg_audio.png, cfg_ref.png'):format(opts.out)
      or ('wrote %s/cfg_control.{csv,md}; no PNG: %s'):format(opts.out, err))
journal:close()
print(('%d settings x %d clips in %.1f min'):format(#runs * #res.points, #res.held, (fada.clock() - res.t0) / 60))
