-- fadalua scripts/sample.lua: a portrait and a speech track in, a
-- talking-head video (MP4 with the speech as its sound track) out.
local fada = require 'fada'
local cli = require 'fada.cli'
local pipeline = require 'fada.pipeline'
local cfg = require 'fada.diffusion.cfg'

local d = pipeline.defaults
local spec = {
  usage = 'usage: fadalua scripts/sample.lua [flags]',
  about = 'Makes a talking-head video from a portrait and speech with a FADA teacher or distilled student.\n' ..
          'Modes: teacher (3 passes per step, ~25 steps), balanced (student, 3 passes, ~6 steps),\n' ..
          'fast (student with learnable CFG tokens, 1 pass per step).',
  {'ref', 'string', d.ref, 'portrait image (PNG/JPEG/...; centre-cropped to a square)'},
  {'audio', 'string', d.audio, 'speech (WAV/MP3/FLAC/OGG/M4A or a video\'s sound)'},
  {'out', 'string', d.out, 'output MP4 (H.264 + AAC)'},
  {'frames', 'string', nil, 'also write PNG frames into this folder'},
  {'model', 'string', d.model, 'checkpoint (safetensors)'},
  {'mode', 'string', d.mode, 'teacher | balanced | fast | unguided (1 pass, no guidance)'},
  {'steps', 'int', nil, 'sampler steps (default: 25 teacher, 6 student)'},
  {'sampler', 'string', d.sampler, 'ddim | euler | euler_ancestral | dpmpp_2m | lcm | file:PATH.lua (your own, e.g. examples/user_sampler.lua)'},
  {'cfg_ref', 'number', d.cfg_ref, 'reference guidance scale w_ref (1 = none)'},
  {'cfg_audio', 'number', d.cfg_audio, 'audio guidance scale w_audio (1 = none)'},
  {'cfg_schedule', 'string', d.cfg_schedule, cfg.schedule.GRAMMAR .. ' (examples/user_cfg_schedule.lua)'},
  {'seed', 'int', d.seed, 'noise seed'},
  {'noise_share', 'number', d.noise_share, 'part of the starting noise shared by a clip\'s frames, 0..1 (0 = independent)'},
  {'threads', 'int', nil, 'threads (default: all cores)'},
  {'dtype', 'string', d.dtype, 'f32 | bf16 | auto: bf16 where the CPU has AVX512-BF16 or AMX, else f32'},
  {'fps', 'int', nil, 'frames per second (default: the model\'s)'},
  {'clip_frames', 'int', nil, 'frames per clip (default: the model\'s)'},
  {'motion_frames', 'int', nil, 'motion frames carried between clips (default: the model\'s)'},
  {'progress', 'bool', true, 'show a progress bar'},
}
-- the sampling conventions (--spacing, --eta, ...: docs/sampling.md) after --sampler
local at = #spec
for i, f in ipairs(spec) do if f[1] == 'sampler' then at = i end end
for k, f in ipairs(pipeline.SAMPLING_FLAGS) do table.insert(spec, at + k, f) end
local opts = cli.parse(arg, spec)

local job = {
  ref = opts.ref, audio = opts.audio, out = opts.out, frames_dir = opts.frames, model = opts.model,
  mode = opts.mode, steps = opts.steps, sampler = opts.sampler, cfg_ref = opts.cfg_ref,
  cfg_audio = opts.cfg_audio, cfg_schedule = opts.cfg_schedule, seed = opts.seed, noise_share = opts.noise_share, threads = opts.threads,
  dtype = opts.dtype, fps = opts.fps, clip_frames = opts.clip_frames, motion_frames = opts.motion_frames,
  progress = opts.progress,
}
for _, f in ipairs(pipeline.SAMPLING_FLAGS) do job[f[1]] = opts[f[1]] end
local ok, res = pcall(pipeline.sample, job)
if not ok then
  io.stderr:write('sample: ' .. tostring(res):gsub('^sample: ', '') .. '\n')
  os.exit(1)
end
for _, note in ipairs(res.notes) do print('note: ' .. note) end
print(('wrote %s: %d frames in %d clips, mode %s, %s, %d steps x %.0f NFE per step = %d NFE; ' ..
       '%.1f s total, %.3f s per frame, real-time factor %.2f (%s)'):format(
  res.out or '(no video)', res.frames, res.clips, res.mode, res.dtype, res.steps, res.nfe_per_step, res.nfe,
  res.seconds, res.seconds_per_frame, res.realtime_factor,
  res.realtime_factor <= 1 and 'faster than real time' or 'slower than real time'))
