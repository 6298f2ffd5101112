-- Trains the evaluator CNN (lua/fada/metrics/evaluator.lua) on synthetic
-- renders whose parameters are known, and measures it on held-out identities.
--
--   fadalua scripts/train_evaluator.lua --steps 2000 --out weights/evaluator.safetensors
--   fadalua scripts/train_evaluator.lua --evaluate weights/evaluator.safetensors --frames 1000
local fada = require 'fada'
local progress = require 'fada.progress'
local E = require 'fada.metrics.evaluator'
local T = require 'fada.metrics.evaluator_train'

local HELP = [[
usage: fadalua scripts/train_evaluator.lua [options]

Trains the evaluator on frames rendered on the fly (a pool of --pool frames,
--refresh of them replaced by fresh renders every step), with checkpoints it
resumes from, a loss CSV and a PNG plot (gnuplot).

  --steps N          training steps (default 2000)
  --batch N          batch size (default 32)
  --lr X             peak learning rate (default 2e-3; warm-up 200 steps, cosine to 5 %)
  --pool N           frames in the render pool (default 3000)
  --refresh N        pool frames re-rendered per step (default 4)
  --seed N           run seed (default 1)
  --threads N        compute threads (default 1: on a shared 2-core machine one
                     thread per process wastes the least)
  --out PATH         final weights, f16 (default weights/evaluator.safetensors)
  --dir PATH         run folder: checkpoint, loss.csv, loss.png (default out/evaluator)
  --ckpt-every N     checkpoint interval in steps (default 250)
  --eval-every N     held-out evaluation interval (default 500)
  --eval-frames N    held-out frames for the periodic evaluation (default 256)
  --fresh            ignore an existing checkpoint in --dir
  --export           only (re)write --out from the checkpoint in --dir (what the end of a run does)
  --evaluate PATH    only measure weights PATH on held-out renders and print the table
  --frames N         held-out frames for --evaluate (default 1000)
  --help             this text
]]

local function parse(argv)
  local o = {steps = 2000, batch = 32, lr = 2e-3, pool = 3000, refresh = 4, seed = 1, threads = 1,
             out = 'weights/evaluator.safetensors', dir = 'out/evaluator', ['ckpt-every'] = 250,
             ['eval-every'] = 500, ['eval-frames'] = 256, frames = 1000}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == '--help' or a == '-h' then io.write(HELP) os.exit(0) end
    local key = a:match('^%-%-(.+)$')
    if not key then error(('train_evaluator: unexpected argument %q (see --help)'):format(a), 0) end
    if key == 'fresh' then o.fresh = true
    elseif key == 'export' then o.export = true
    else
      if o[key] == nil and key ~= 'evaluate' then
        error(('train_evaluator: unknown option --%s (see --help)'):format(key), 0)
      end
      local v = argv[i + 1]
      if v == nil then error(('train_evaluator: --%s needs a value'):format(key), 0) end
      o[key] = (type(o[key]) == 'number') and assert(tonumber(v), '--' .. key .. ' needs a number') or v
      i = i + 1
    end
    i = i + 1
  end
  return o
end

local function print_table(rows, cls, n, out)
  out = out or io.stdout
  out:write(('Held-out renders: %d frames, identity seeds 900000-999999 (never trained on)\n\n'):format(n))
  out:write('| output | correlation | mean abs error | range |\n|---|---|---|---|\n')
  for _, r in ipairs(rows) do
    if not r.name:find('^style_') and r.name ~= 'glasses' and r.name ~= 'earrings' and r.name ~= 'hat' then
      out:write(('| %s | %.4f | %.4f | %.3g |\n'):format(r.name, r.corr, r.mae, r.range))
    end
  end
  out:write(('\n| class | accuracy |\n|---|---|\n| hair style (6-way) | %.3f |\n| glasses | %.3f |\n' ..
             '| earrings | %.3f |\n| hat | %.3f |\n'):format(cls.hair_style, cls.glasses, cls.earrings, cls.hat))
end

-- ---- main ------------------------------------------------------------------------------

local o = parse(arg)
fada.set_num_threads(o.threads)

if o.evaluate then
  local ev = E.load(o.evaluate)
  local t0 = fada.clock()
  local rows, cls = T.measure(ev.net, o.frames)
  print_table(rows, cls, o.frames)
  io.stderr:write(('(measured in %.0f s)\n'):format(fada.clock() - t0))
  os.exit(0)
end

local run = T.open(o)
local start, elapsed0, ckpt_path = run.start, run.elapsed0, run.ckpt_path
if o.export then
  if start == 0 then error('train_evaluator: --export needs a checkpoint in ' .. o.dir, 0) end
  T.finish(run.net, run.ema, o.out, {steps = start, batch = o.batch, wall_seconds = math.floor(elapsed0), seed = o.seed})
  print(('wrote %s from %s (step %d)'):format(o.out, ckpt_path, start))
  os.exit(0)
end
local elapsed, t_render, t_step = T.train(run, o)
local final = T.finish(run.net, run.ema, o.out, {steps = o.steps, batch = o.batch,
                                                 wall_seconds = math.floor(elapsed), seed = o.seed})
local rows, cls = T.measure(final, o['eval-frames'])
local rb = T.by_name(rows)
print(('\nevaluator trained: %d steps x %d frames in %s (this run: render %.0f%% of the time)'):format(
  o.steps, o.batch, progress.format_time(elapsed), 100 * t_render / math.max(t_render + t_step, 1e-9)))
print(('weights: %s; loss CSV and plot: %s/loss.csv, %s/loss.png'):format(o.out, o.dir, o.dir))
print(('held-out (%d frames): open r = %.4f (MAE %.4f), round r = %.4f, blink r = %.4f, yaw r = %.4f, ' ..
       'skin_r r = %.4f, hair style acc %.3f'):format(o['eval-frames'], rb.open.corr, rb.open.mae, rb.round.corr,
       rb.blink.corr, rb.yaw.corr, rb.skin_r.corr, cls.hair_style))
print(('full table: fadalua scripts/train_evaluator.lua --evaluate %s --frames 1000'):format(o.out))
