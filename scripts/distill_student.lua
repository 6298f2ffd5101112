-- Distils the FADA student from a trained teacher: mixed-supervised multi-CFG
-- distillation with learnable CFG tokens (docs/distillation.md). The
-- distillation itself is fada.train.student.
local cli = require 'fada.cli'
local run = require 'fada.train.run'
local student = require 'fada.train.student'

local opts = cli.parse(arg, run.flags({
  usage = 'usage: fadalua scripts/distill_student.lua --teacher PATH [flags]',
  about = 'Trains the student (the teacher plus three learnable CFG tokens and zero-initialised CFG\n' ..
          'control layers, initialised from the teacher) to take --student-steps DDIM steps of one pass\n' ..
          'each. Per step: random scales (w_ref, w_audio) and a step k of the student grid; the teacher\n' ..
          'runs --substeps multi-CFG DDIM steps from t_k to t_k+1 (3 passes each) and the student, given\n' ..
          'the token mix for the same scales, is trained to get there in one (teacher-matching loss), plus\n' ..
          'a ground-truth loss on high-quality clips; the two are combined by an adaptive mixer. Batches\n' ..
          'from --data-moderate (darker, blurred, occluded, more identities) use the teacher term only.\n' ..
          'Checkpoints, loss.csv and loss.png go to --out; rerunning resumes.',
  {'teacher', 'string', 'weights/fada-teacher.safetensors', 'trained teacher (train_teacher.lua --export)'},
  {'data', 'string', 'data/avatars/hq-train', 'high-quality clips (teacher-matching + ground-truth losses)'},
  {'data_moderate', 'string', 'data/avatars/moderate-train', "moderate-quality clips (teacher-matching only); 'none' to skip"},
  {'p_moderate', 'number', 0.5, 'share of steps drawn from --data-moderate'},
  {'out', 'string', 'runs/student', 'run folder'},
  {'student_steps', 'int', 6, 'the student grid: DDIM steps at sampling time (trailing spacing)'},
  {'substeps', 'int', 2, 'teacher DDIM steps per student step (1 = match the guided output at the same x_t)'},
  {'w_ref', 'numbers', '1,3', 'range of the reference scale drawn per step (lo,hi)'},
  {'w_audio', 'numbers', '1,6', 'range of the audio scale drawn per step (lo,hi)'},
  {'scales_per', 'string', 'step', "draw the scales once per 'step' or per 'clip' of the batch (B pairs a step: the "
                                  .. 'student sees how its output must move with them within one gradient)'},
  {'gt_share', 'number', 0.3, "the ground-truth term's share in the adaptive mixer (0..1)"},
  {'gt_max_t', 'number', 1000, 'the ground-truth term only on steps of the grid at t <= this (the low-noise end, '
                               .. 'where x_t fixes the clean frame; default: every step)'},
  {'gt_branch', 'string', 'mix', "what the ground-truth term trains on Balanced steps: the guided 'mix' (as the "
                                 .. "teacher-matching term does) or the fully 'conditional' branch alone (as the "
                                 .. 'teacher was trained); token-mode steps train their one output'},
  {'token_dim', 'int', 64, 'width of the CFG tokens'},
  {'time_control', 'bool', true, 'the token mix also joins the time embedding (every ResBlock sees the scales with t)'},
  {'teacher_dtype', 'string', 'f32', "the teacher's compute dtype: f32, or bf16 (AVX512-BF16 hosts; f32 elsewhere)"},
  {'init', 'string', '', 'start from this student instead of the teacher (a second stage: its weights, a fresh '
                         .. 'optimiser and schedule; --token-dim and --time-control come from it)'},
  {'balanced_share', 'number', 0, "share of steps that train FADA-Balanced: the student's 3-branch multi-CFG output "
                                  .. 'at the scales, against the same targets; > 0 gives the branches tokens of their own'},
  {'train_only', 'strings', nil, 'train only the parameters whose names match one of these Lua patterns (e.g. '
                                .. "'cfg_branch_tokens' with --balanced-share 1: Balanced changes, token mode stays); "
                                .. 'the rest are frozen. Default: all'},
  {'guide', 'string', '', "a distilled student of this teacher whose FADA-Fast prediction at x_t (same scales) is "
                          .. 'blended into the teacher-matching target'},
  {'guide_share', 'number', 0.5, "the guide's share of that target (0..1; 1: the guide alone, the teacher is not run)"},
  {'mixer', 'string', 'adaptive', "how the two losses combine: 'adaptive' (each over its running mean) or 'fixed' "
                                  .. '((1 - share)·distill + share·gt)'},
}, {steps = 1200, lr = 1e-4, warmup = 100, ema = 0.995, ckpt_every = 50}))

-- a scale range: "lo,hi" with 0 <= lo <= hi
local function check_range(v, name)
  if #v ~= 2 or v[1] > v[2] or v[1] < 0 then
    cli.fail(('--%s must be "lo,hi" with 0 <= lo <= hi, got "%s"'):format(name, table.concat(v, ',')))
  end
end
check_range(opts.w_ref, 'w-ref')
check_range(opts.w_audio, 'w-audio')
if opts.substeps < 1 then cli.fail('--substeps must be at least 1') end
if opts.student_steps < 1 or opts.student_steps > 1000 then cli.fail('--student-steps must be in 1..1000') end
if opts.gt_share < 0 or opts.gt_share > 1 then cli.fail('--gt-share must be in [0, 1]') end
if opts.guide_share < 0 or opts.guide_share > 1 then
  cli.fail(('--guide-share must be in [0, 1], got %g'):format(opts.guide_share))
end
if opts.p_moderate < 0 or opts.p_moderate > 1 then cli.fail('--p-moderate must be in [0, 1]') end
if opts.balanced_share < 0 or opts.balanced_share > 1 then
  cli.fail(('--balanced-share must be in [0, 1], got %g'):format(opts.balanced_share))
end
if opts.scales_per ~= 'step' and opts.scales_per ~= 'clip' then
  cli.fail(("--scales-per must be step or clip, got '%s'"):format(opts.scales_per))
end
if opts.teacher_dtype ~= 'f32' and opts.teacher_dtype ~= 'bf16' then
  cli.fail(("--teacher-dtype must be f32 or bf16, got '%s'"):format(opts.teacher_dtype))
end
if opts.gt_max_t < 0 then cli.fail(('--gt-max-t must be at least 0, got %g'):format(opts.gt_max_t)) end
if opts.gt_branch ~= 'mix' and opts.gt_branch ~= 'conditional' then
  cli.fail(("--gt-branch must be 'mix' or 'conditional', got '%s'"):format(opts.gt_branch))
end
if opts.mixer ~= 'adaptive' and opts.mixer ~= 'fixed' then
  cli.fail(("--mixer must be 'adaptive' or 'fixed', got '%s'"):format(opts.mixer))
end

run.setup(opts)
local r = student.open(opts, cli.fail)
if r.resuming then
  print(('resuming %s at step %d (%.1f h so far)'):format(r.ckpt_path, r.step, r.seconds_before / 3600))
end

if opts.export then
  student.export(r, opts, 'fadalua scripts/distill_student.lua ' .. table.concat(arg, ' '))
  print(('exported the %s student weights at step %d to %s'):format(opts.export_raw and 'raw' or 'EMA', r.step,
    opts.export))
  os.exit(0)
end

local flops = student.flops(r)
local targets = ('%d teacher substeps x 3 passes per step'):format(opts.substeps)
if opts.guide ~= '' then
  targets = opts.guide_share < 1 and ('%s, blended %g:%g with the guide %s'):format(targets, 1 - opts.guide_share,
    opts.guide_share, opts.guide) or ('targets from the guide %s alone (the teacher is not run)'):format(opts.guide)
end
io.write(('student of %s: %.2f M parameters, %d-step grid {%s}, %s\n'):format(opts.teacher,
  r.student:num_parameters() / 1e6, opts.student_steps, table.concat(r.grid, ', '), targets))

local last, minutes, csv_path = student.train(r, opts)
print(('stopped at step %d after %.1f min; checkpoint %s, log %s (%.2f GFLOP per student frame)'):format(last,
  minutes, r.ckpt_path, csv_path, flops.denoiser / 1e9))
