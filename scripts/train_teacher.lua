-- fadalua scripts/train_teacher.lua: trains the FADA teacher (reference net +
-- denoising UNet + audio encoder) from scratch on the synthetic avatars.
-- Resumable: rerun the same command and it continues from the last checkpoint.
-- The training itself is fada.train.teacher.
local A = require 'fada.autograd'
local cli = require 'fada.cli'
local run = require 'fada.train.run'
local teacher = require 'fada.train.teacher'

local opts = cli.parse(arg, run.flags({
  usage = 'usage: fadalua scripts/train_teacher.lua [flags]',
  about = 'Trains the teacher: v-prediction, condition dropout for nested multi-CFG (drop audio;\n' ..
          'drop reference and audio), clips with motion frames, a heavier loss on the mouth region.\n' ..
          'Checkpoints, loss.csv and loss.png go to --out; rerunning resumes.',
  {'data', 'string', 'data/avatars/hq-train', 'dataset folder (scripts/make_dataset.lua) or a folder of MP4s'},
  {'out', 'string', 'runs/teacher', 'run folder'},
  {'config', 'string', 'mini', 'model preset (mini, tiny)'},
  {'p_drop_audio', 'number', 0.1, 'share of steps with audio dropped (the "ref" branch)'},
  {'p_drop_all', 'number', 0.1, 'share of steps with reference and audio dropped (the "base" branch)'},
  {'detect_anomaly', 'bool', false, 'stop at the first op whose backward makes a NaN/inf (slow)'},
}, {steps = 20000, lr = 3e-4, warmup = 300, ema = 0.998, ckpt_every = 200}))

run.setup(opts)
if opts.detect_anomaly then A.set_detect_anomaly(true) end

local r = teacher.open(opts)
if r.resuming then
  print(('resuming %s at step %d (%.1f h of training so far)'):format(r.ckpt_path, r.step, r.seconds_before / 3600))
end

if opts.export then
  teacher.export(r, opts, 'fadalua scripts/train_teacher.lua ' .. table.concat(arg, ' '))
  print(('exported the %s weights at step %d to %s'):format(opts.export_raw and 'raw' or 'EMA', r.step, opts.export))
  os.exit(0)
end

local flops = teacher.flops(r)
io.write(('teacher %s: %.2f M parameters, %.2f GFLOP per frame (denoiser) + %.2f per clip (reference net); data %s\n')
  :format(r.config.name or opts.config, r.model:num_parameters() / 1e6, flops.denoiser / 1e9, flops.refnet / 1e9,
          opts.data))

local last, minutes, csv_path = teacher.train(r, opts, flops)
print(('stopped at step %d after %.1f min; checkpoint %s, log %s'):format(last, minutes, r.ckpt_path, csv_path))
