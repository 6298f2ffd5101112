-- Trains the evaluator CNN (lua/fada/metrics/evaluator.lua) on synthetic
-- renders whose parameters are known, and measures it on held-out identities.
-- The training and the measurement are fada.metrics.evaluator_train.
--
--   fadalua scripts/train_evaluator.lua --steps 2000 --out weights/evaluator.safetensors
--   fadalua scripts/train_evaluator.lua --evaluate weights/evaluator.safetensors --frames 1000
local fada = require 'fada'
local cli = require 'fada.cli'
local progress = require 'fada.progress'
local E = require 'fada.metrics.evaluator'
local T = require 'fada.metrics.evaluator_train'

local o = cli.parse(arg, {
  usage = 'usage: fadalua scripts/train_evaluator.lua [flags]',
  about = 'Trains the evaluator on frames rendered on the fly (a pool of --pool frames, --refresh of them\n' ..
          'replaced by fresh renders every step), with checkpoints it resumes from, a loss CSV and a PNG\n' ..
          'plot (gnuplot) in --dir. The learning rate warms up over 200 steps, then falls (cosine) to 5 %.\n' ..
          '--export and --evaluate do only that and exit.',
  {'steps', 'int', 2000, 'training steps'},
  {'batch', 'int', 32, 'batch size'},
  {'lr', 'number', 2e-3, 'peak learning rate'},
  {'pool', 'int', 3000, 'frames in the render pool'},
  {'refresh', 'int', 4, 'pool frames re-rendered per step'},
  {'seed', 'int', 1, 'run seed'},
  {'threads', 'int', 1, 'compute threads (one per process wastes the least on a shared machine)'},
  {'out', 'string', 'weights/evaluator.safetensors', 'final weights, f16'},
  {'dir', 'string', 'out/evaluator', 'run folder: checkpoint, loss.csv, loss.png'},
  {'ckpt_every', 'int', 250, 'checkpoint interval in steps'},
  {'eval_every', 'int', 500, 'held-out evaluation interval in steps'},
  {'eval_frames', 'int', 256, 'held-out frames for the periodic evaluation'},
  {'log_every', 'int', 25, 'steps between loss.csv lines (and at each evaluation)'},
  {'fresh', 'bool', false, 'ignore an existing checkpoint in --dir'},
  {'export', 'bool', false, 'only (re)write --out from the checkpoint in --dir (what the end of a run does)'},
  {'evaluate', 'string', nil, 'only measure the weights at this path on held-out renders and print the table'},
  {'frames', 'int', 1000, 'held-out frames for --evaluate'},
})
local function at_least(name, min)
  local v = o[name:gsub('-', '_')]
  if v < min then cli.fail(('--%s must be at least %d, got %s'):format(name, min, v)) end
end
for _, name in ipairs{'steps', 'batch', 'pool', 'threads', 'ckpt-every', 'eval-every', 'log-every'} do at_least(name, 1) end
at_least('refresh', 0)
at_least('eval-frames', 2)   -- a correlation needs two frames
at_least('frames', 2)
if not (o.lr > 0) then cli.fail(('--lr must be a number > 0, got %s'):format(o.lr)) end
fada.set_num_threads(o.threads)

if o.evaluate then
  if not fada.readable(o.evaluate) then cli.fail(("--evaluate: cannot read '%s'"):format(o.evaluate)) end
  local ok, ev = pcall(E.load, o.evaluate)
  if not ok then cli.fail(('--evaluate %s: %s'):format(o.evaluate, tostring(ev):gsub('^[^:\n]*%.lua:%d+: ', ''))) end
  local t0 = fada.clock()
  local rows, cls = T.measure(ev.net, o.frames)
  io.write(T.table(rows, cls, o.frames))
  io.stderr:write(('(measured in %.0f s)\n'):format(fada.clock() - t0))
  os.exit(0)
end

if o.export and o.fresh then cli.fail('--export writes out the checkpoint in --dir, which --fresh would ignore') end
if o.export and not fada.readable(o.dir .. '/checkpoint.safetensors') then
  cli.fail(('--export needs a checkpoint: none at %s/checkpoint.safetensors'):format(o.dir))
end
local run = T.open(o)
if o.export then
  T.finish(run.net, run.ema, o.out, {steps = run.start, batch = o.batch, wall_seconds = math.floor(run.elapsed0),
                                     seed = o.seed})
  print(('wrote %s from %s (step %d)'):format(o.out, run.ckpt_path, run.start))
  os.exit(0)
end

local elapsed, t_render, t_step = T.train(run, o)
local final = T.finish(run.net, run.ema, o.out, {steps = o.steps, batch = o.batch,
                                                 wall_seconds = math.floor(elapsed), seed = o.seed})
local rows, cls = T.measure(final, o.eval_frames)
local rb = T.by_name(rows)
print(('\nevaluator trained: %d steps x %d frames in %s (this run: render %.0f%% of the time)'):format(
  o.steps, o.batch, progress.format_time(elapsed), 100 * t_render / math.max(t_render + t_step, 1e-9)))
print(('weights: %s; loss CSV and plot: %s/loss.csv, %s/loss.png'):format(o.out, o.dir, o.dir))
print(('held-out (%d frames): open r = %.4f (MAE %.4f), round r = %.4f, blink r = %.4f, yaw r = %.4f, ' ..
       'skin_r r = %.4f, hair style acc %.3f'):format(o.eval_frames, rb.open.corr, rb.open.mae, rb.round.corr,
       rb.blink.corr, rb.yaw.corr, rb.skin_r.corr, cls.hair_style))
print(('full table: fadalua scripts/train_evaluator.lua --evaluate %s --frames 1000'):format(o.out))
