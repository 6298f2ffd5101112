-- scripts/sample.lua end to end on a tiny random model: a video with sound
-- comes out; bad input gives a one-line message, a non-zero exit and no file.
local fada = require 'fada'
local models = require 'fada.models'

local sh = dofile(debug.getinfo(1, 'S').source:match('^@(.-)[^/]*$') .. 'shell_helpers.lua')
local function run(args) return sh.script('sample', '--no-progress ' .. args) end
local exists = sh.exists

local dir = sh.temp_dir()
local model = dir .. '/tiny.safetensors'
models.save(models.FadaModel(models.config('tiny')), model, {note = 'random init, for tests'})
local wav = dir .. '/speech.wav'
local ckpt = dir .. '/run-checkpoint.safetensors' -- what a training run writes, not a model
local tiny = models.FadaModel(models.config('tiny'))
require('fada.train.checkpoint').save(ckpt, {model = tiny, config = tiny.config, step = 12})
fada.audio.save(wav, fada.randn(8000, fada.Generator(1)) * 0.1, 16000) -- 0.5 s

test('a tiny teacher makes an MP4 with one video and one audio stream', function()
  local out_path = dir .. '/ok.mp4'
  local out, code = run(('--model %q --audio %q --out %q --steps 2'):format(model, wav, out_path))
  assert_eq(code, 0, out)
  assert(out:find('wrote ' .. out_path, 1, true), out)
  assert(out:find('NFE', 1, true), out)
  local probe = io.popen(('ffprobe -v error -show_entries stream=codec_type -of csv=p=0 %q'):format(out_path)):read('a')
  assert(probe:find('video') and probe:find('audio'), 'ffprobe: ' .. probe)
end)

test('--dtype: auto (the default) is bf16 where the CPU has AVX512-BF16 or AMX, else f32; the summary names it', function()
  local cpu = fada.cpu()
  local want = (cpu.avx512bf16 or cpu.amx_bf16) and 'bf16' or 'f32'
  for _, flag in ipairs{'', ' --dtype auto', ' --dtype f32', ' --dtype bf16'} do
    local out, code = run(('--model %q --audio %q --out %q --steps 1%s'):format(model, wav, dir .. '/dt.mp4', flag))
    assert_eq(code, 0, out)
    local named = flag:match('(%w+)$')
    local expect = (named == nil or named == 'auto') and want or named
    assert(out:find(', ' .. expect .. ', 1 steps', 1, true), ('%q: expected %s in: %s'):format(flag, expect, out))
  end
end)

test('--mode unguided: one pass per step, any model', function()
  local out_path = dir .. '/unguided.mp4'
  local out, code = run(('--model %q --audio %q --out %q --steps 3 --mode unguided'):format(model, wav, out_path))
  assert_eq(code, 0, out)
  assert(out:find('3 steps x 1 NFE per step', 1, true), out)
end)

test('--sampler and --cfg-schedule from files (examples/user_*.lua) run end to end; a broken one is refused', function()
  local out_path = dir .. '/user.mp4'
  local out, code = run(('--model %q --audio %q --out %q --steps 2 --sampler file:examples/user_sampler.lua '
    .. '--cfg-schedule file:examples/user_cfg_schedule.lua'):format(model, wav, out_path))
  assert_eq(code, 0, out)
  assert(out:find('2 steps x 3 NFE per step', 1, true), out)
  out, code = run(('--model %q --audio %q --out %q --sampler file:%s'):format(model, wav, dir .. '/no.mp4', wav))
  assert(code ~= 0, out)
  sh.contains(out, '--sampler file:' .. wav .. ': does not compile', 'a WAV as a sampler')
  assert(not exists(dir .. '/no.mp4'), 'no video')
end)

test('demo.lua: a student for the default mode, the teacher one flag away; bad flags refused', function()
  local out, code = sh.script('demo', ('--mode fast --student %q --weights %q --out %q'):format(dir .. '/none.st',
    dir .. '/none.st', dir .. '/d.mp4'))
  assert(code == 0, out)  -- neither exists: the ground-truth render, a real job without a model
  out, code = sh.script('demo', '--mode slow')
  assert_eq(code, 2, out)
  sh.contains(out, '--mode must be fast, balanced or teacher', 'bad mode')
  out, code = sh.script('demo', ('--mode balanced --balanced none --student %q'):format(dir .. '/none.st'))
  assert_eq(code, 2, out)
  sh.contains(out, 'no distilled student at', 'balanced without a student')
  out, code = sh.script('demo', ('--mode balanced --balanced %q'):format(dir .. '/none.st'))
  assert_eq(code, 2, out)
  sh.contains(out, 'no FADA-Balanced weights at ' .. dir .. '/none.st', 'balanced without its weights')
  out, code = sh.script('demo', ('--sheet %q --balanced %q'):format(dir .. '/s.png', dir .. '/none.st'))
  assert_eq(code, 2, out)
  sh.contains(out, "FADA-Balanced's weights (" .. dir .. '/none.st', 'sheet without the Balanced weights')
  out, code = sh.script('demo', ('--sheet %q --student %q'):format(dir .. '/s.png', dir .. '/none.st'))
  assert_eq(code, 2, out)
  sh.contains(out, '--sheet needs the teacher', 'sheet without a student')
  assert(not exists(dir .. '/s.png'), 'no sheet written')
end)

test('bad input: a clear message, exit code 1 or 2, no video left behind', function()
  local out_path = dir .. '/bad.mp4'
  local cases = {
    {('--model %q --audio %q --ref /nonexistent.png'):format(model, wav), "cannot read the reference image '/nonexistent.png'"},
    {('--model %q --audio /nonexistent.wav'):format(model), "cannot read the audio '/nonexistent.wav'"},
    {('--model /nonexistent.safetensors --audio %q'):format(wav), "cannot read the model '/nonexistent.safetensors'"},
    {('--model %q --audio %q --steps 0'):format(model, wav), '--steps must be an integer >= 1'},
    {('--model %q --audio %q --cfg-ref -1'):format(model, wav), '--cfg-ref must be a number >= 0'},
    {('--model %q --audio %q --mode fast'):format(model, wav), 'needs a distilled student checkpoint'},
    {('--model %q --audio %q --sampler heun'):format(model, wav), '--sampler must be one of'},
    {('--model %q --audio %q --noise-share 1.5'):format(model, wav), '--noise-share must be a number in [0, 1]'},
    {('--model %q --audio %q --stepz 3'):format(model, wav), 'unknown flag --stepz'},
    {('--model %q --audio %q --mode slow'):format(model, wav), '--mode must be teacher, balanced, fast or unguided'},
    {('--model %q --audio %q --dtype f16'):format(model, wav), "--dtype must be f32, bf16 or auto, got 'f16'"},
    {('--model %q --audio %q'):format(wav, wav), wav},
    {('--model %q --audio %q'):format(ckpt, wav), 'is a training checkpoint (step 12'},
  }
  for _, c in ipairs(cases) do
    local out, code = run(c[1] .. (' --out %q'):format(out_path))
    assert(code ~= 0, 'exit 0 for: ' .. c[1])
    assert(out:find(c[2], 1, true), ('expected %q in: %s'):format(c[2], out))
    assert(not out:find('%.lua:%d+:'), 'a Lua file position in the message: ' .. out)
    assert(not exists(out_path), 'a video was left behind for: ' .. c[1])
  end
end)

local function frame_count(path)
  local p = io.popen(('ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames ' ..
                      '-of csv=p=0 %q'):format(path))
  local n = tonumber(p:read('a'):match('%d+'))
  p:close()
  return n
end

test('silent, 0.1-second and 5-ms audio: short videos, with a note where it matters', function()
  local cases = {
    {'silent', fada.zeros(16000), 25, 'the audio is silent'},
    {'short', fada.randn(1600, fada.Generator(2)) * 0.1, 3, nil},
    {'tick', fada.randn(80, fada.Generator(3)) * 0.1, 1, 'audio shorter than one frame'},
  }
  for _, c in ipairs(cases) do
    local a, v = ('%s/%s.wav'):format(dir, c[1]), ('%s/%s.mp4'):format(dir, c[1])
    fada.audio.save(a, c[2], 16000)
    local out, code = run(('--model %q --audio %q --out %q --steps 1'):format(model, a, v))
    assert_eq(code, 0, c[1] .. ': ' .. out)
    assert_eq(frame_count(v), c[3], c[1] .. ' frames')
    if c[4] then assert(out:find('note: ' .. c[4], 1, true), c[1] .. ': ' .. out) end
  end
end)

test('non-square and tiny portraits: centre-cropped or upscaled, with a note', function()
  local wide, tiny = dir .. '/wide.png', dir .. '/tiny.png'
  fada.image.save(wide, fada.rand(3, 24, 40, fada.Generator(4)))
  fada.image.save(tiny, fada.rand(3, 8, 8, fada.Generator(5)))
  local out, code = run(('--model %q --audio %q --ref %q --out %q --steps 1'):format(model, wav, wide, dir .. '/w.mp4'))
  assert_eq(code, 0, out)
  assert(out:find('note: portrait 40x24 centre-cropped to 24x24', 1, true), out)
  out, code = run(('--model %q --audio %q --ref %q --out %q --steps 1'):format(model, wav, tiny, dir .. '/t.mp4'))
  assert_eq(code, 0, out)
  assert(out:find("note: portrait 8x8 is smaller than the model's 16x16: upscaled", 1, true), out)
end)
