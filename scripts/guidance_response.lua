-- fadalua scripts/guidance_response.lua: how strongly a student's single pass
-- follows the guidance scales, timestep by timestep, against the teacher's
-- multi-CFG. Seconds, not minutes: a progress check for a distillation run.
local fada = require 'fada'
local cli = require 'fada.cli'
local models = require 'fada.models'
local loader = require 'fada.data.loader'
local run = require 'fada.train.run'
local schedule = require 'fada.diffusion.schedule'

local opts = cli.parse(arg, {
  usage = 'usage: fadalua scripts/guidance_response.lua --student PATH [--teacher PATH] [flags]',
  about = 'On a batch of training clips noised to each timestep of the student grid: the RMS change of the\n' ..
          "student's token-mode output when w_ref goes from --w-ref lo to hi (w_audio at its default), and when\n" ..
          "w_audio goes from lo to hi (w_ref at its default), beside the same change of the teacher's guided\n" ..
          'output ((hi - lo) x the branch difference). A ratio near 1: the student moves with the scales as the\n' ..
          'teacher does; near 0: the scales barely reach it.',
  {'student', 'string', 'weights/fada-student.safetensors', 'the distilled student'},
  {'teacher', 'string', 'weights/fada-teacher.safetensors', 'its teacher'},
  {'data', 'string', 'data/avatars/hq-train', 'clips to noise (make_dataset.lua)'},
  {'clips', 'int', 2, 'clips in the batch'},
  {'steps', 'int', 6, 'the student grid (trailing spacing)'},
  {'w_ref', 'numbers', '1,3', 'the w_ref pair lo,hi'},
  {'w_audio', 'numbers', '1,6', 'the w_audio pair lo,hi'},
  {'seed', 'int', 5, 'seed of the clips and the noise'},
  {'threads', 'int', nil, 'compute threads'},
})
if opts.threads then fada.set_num_threads(opts.threads) end
local function pair(v, flag)
  if #v ~= 2 or v[1] >= v[2] then cli.fail(('--%s must be "lo,hi" with lo < hi, got "%s"'):format(flag, table.concat(v, ','))) end
  return v[1], v[2]
end
local wr_lo, wr_hi = pair(opts.w_ref, 'w-ref')
local wa_lo, wa_hi = pair(opts.w_audio, 'w-audio')
if opts.clips < 1 or opts.steps < 1 then cli.fail('--clips and --steps must be at least 1') end
local function load(path, want_student)
  local ok, m = pcall(models.load, path)
  if not ok then cli.fail(m) end
  if (m.config.student ~= nil) ~= want_student then
    cli.fail(("'%s' is a %s"):format(path, want_student and 'teacher: --student needs a distilled student' or 'student'))
  end
  return m
end
local student, teacher = load(opts.student, true), load(opts.teacher, false)
local f = io.open(opts.data .. '/manifest.jsonl', 'r')
if not f then cli.fail(("no clips at '%s' (make them: scripts/make_dataset.lua --out %s)"):format(opts.data, opts.data)) end
f:close()

local cfg = teacher.config
local sched = schedule.for_model(cfg)
local B, Fr = opts.clips, cfg.clip_frames
local data = loader.open(opts.data, {frames = Fr, motion = cfg.motion_frames, batch = B, seed = opts.seed,
                                     size = cfg.image_size, audio = run.audio_windows(teacher),
                                     sample_rate = cfg.audio.sample_rate, prefetch = false})
local b = data:batch()
local x0, ref, mot = run.encode_batch(teacher, b)                                   -- [B·F, Cl, h, w], ...
local win = b.audio:reshape(B * Fr, b.audio:size(3), b.audio:size(4))              -- [B·F, n_mels, W]
local g = fada.Generator(opts.seed)
local function rms(t) return math.sqrt((t * t):mean():item()) end
local tctx, tat = teacher:reference(ref, mot), teacher:audio_tokens(win)
local sctx, sat = student:reference(ref, mot), student:audio_tokens(win)
local d = require('fada.pipeline').defaults

print(('%s against %s, %d clips, scales w_ref %g -> %g, w_audio %g -> %g'):format(opts.student, opts.teacher, B,
  wr_lo, wr_hi, wa_lo, wa_hi))
print('| t | teacher Δ(w_ref) | student Δ(w_ref) | ratio | teacher Δ(w_audio) | student Δ(w_audio) | ratio |')
print('|---|---|---|---|---|---|---|')
local sums = {0, 0}
local ts = sched:timesteps(opts.steps, 'trailing')
for _, t in ipairs(ts) do
  local xt = sched:add_noise(x0, fada.randn(x0:size(), g), t)                        -- [B·F, Cl, h, w]
  local n = xt:size(1)
  local out = teacher:denoise(fada.cat({xt, xt, xt}, 1), t, {'base', 'ref', 'audio'}, nil, tctx, tat)
  local eb, er, ea = out:narrow(1, 1, n), out:narrow(1, n + 1, n), out:narrow(1, 2 * n + 1, n)
  local function s(wr, wa) return student:denoise(xt, t, {'tokens'}, {w_ref = wr, w_audio = wa}, sctx, sat) end
  local t_ref, t_aud = rms(er - eb) * (wr_hi - wr_lo), rms(ea - er) * (wa_hi - wa_lo)
  local s_ref = rms(s(wr_hi, d.cfg_audio) - s(wr_lo, d.cfg_audio))
  local s_aud = rms(s(d.cfg_ref, wa_hi) - s(d.cfg_ref, wa_lo))
  sums[1], sums[2] = sums[1] + s_ref / t_ref, sums[2] + s_aud / t_aud
  print(('| %d | %.4g | %.4g | %.3f | %.4g | %.4g | %.3f |'):format(t, t_ref, s_ref, s_ref / t_ref, t_aud, s_aud,
    s_aud / t_aud))
end
print(('mean ratio over the %d timesteps: w_ref %.3f, w_audio %.3f'):format(#ts, sums[1] / #ts, sums[2] / #ts))
