-- scripts/metrics.lua and scripts/train_evaluator.lua end to end on tiny
-- inputs: metrics on the ground-truth ceiling, on an MP4 and on a folder of
-- PNG frames made here (a synthetic avatar speaking 1.6 s of examples/speech.wav);
-- a 2-step evaluator run, its resume, --export and --evaluate; bad input gives
-- a one-line message naming the flag, exit code 2 and no file.
local fada = require 'fada'
local E = require 'fada.metrics.evaluator'
local avatars = require 'fada.data.avatars'
local face = require 'fada.data.face'

local sh = dofile(debug.getinfo(1, 'S').source:match('^@(.-)[^/]*$') .. 'shell_helpers.lua')
local exists = sh.exists

local dir = sh.temp_dir()

-- a one-line refusal: exit code 2, the expected text, no Lua file position or traceback
local function refused(out, code, want, what)
  assert_eq(code, 2, what .. ': exit code\n' .. out)
  sh.contains(out, want, what)
  assert(not out:find('%.lua:%d+:') and not out:find('traceback', 1, true), what .. ': a traceback:\n' .. out)
end

-- ---- metrics.lua -------------------------------------------------------------------------------

local function metrics(args) return sh.script('metrics', '--threads 1 ' .. args) end

local function need_evaluator()
  if not exists(E.default_path()) then skip('no shipped evaluator weights at ' .. E.default_path()) end
end

-- the avatar of identity 4242 speaking, as an MP4 with its sound, its own PNG
-- frames, the speech as a WAV, and two portraits: its own and another identity's
local SEED = 4242
local video, frames_dir, wav, ref, other_ref = dir .. '/talk.mp4', dir .. '/frames', dir .. '/speech.wav',
                                               dir .. '/ref.png', dir .. '/other.png'
local made
local function make_video()
  if made then return end
  local samples, sr = fada.audio.load('examples/speech.wav', {sample_rate = 16000})
  samples = samples:narrow(1, 1, math.floor(1.6 * sr)):contiguous()
  fada.audio.save(wav, samples, sr)
  local frames = avatars.speaking_video(SEED, samples, sr, video, {size = 64})
  fada.mkdir(frames_dir)
  for t = 1, frames:size(1) do fada.image.save(('%s/%04d.png'):format(frames_dir, t), frames:select(1, t)) end
  local neutral = {dx = 0, dy = 0, roll = 0, yaw = 0, blink = 0, open = 0, round = 0}
  fada.image.save(ref, face.render(face.identity(SEED), neutral, 64))
  fada.image.save(other_ref, face.render(face.identity(SEED + 1), neutral, 64))
  made = true
end

local function value(out, name)
  local v = out:match('\n| ' .. name:gsub('%p', '%%%0') .. ' | (%-?[%d.]+) |')
  return assert(tonumber(v), ('no row %q in:\n%s'):format(name, out))
end

test('metrics --help: the usage and every flag', function()
  local out, code = metrics('--help')
  assert_eq(code, 0, out)
  for _, piece in ipairs{'usage: fadalua scripts/metrics.lua', '--ground-truth', '--clips INT', '--video STRING',
                         '--audio STRING', '--ref STRING', '--sheet STRING', '--weights STRING'} do
    sh.contains(out, piece, '--help')
  end
end)

test('metrics --ground-truth --clips 1: the ceiling table', function()
  need_evaluator()
  if os.execute('command -v espeak-ng > /dev/null 2>&1') ~= true then skip('espeak-ng is not installed') end
  local out, code = metrics('--ground-truth --clips 1')
  assert_eq(code, 0, out)
  sh.contains(out, 'Ceiling: 1 held-out ground-truth clips', 'the title')
  for _, row in ipairs{'| lip-sync correlation (best offset) |', '| identity error vs own reference |',
                       '| flicker, read opening |', '| Fréchet distance, even vs odd frames |'} do
    sh.contains(out, row, 'the ceiling table')
  end
  local corr = tonumber(out:match('| lip%-sync correlation %(best offset%) | ([%d.]+) |'))
  assert(corr and corr > 0.5, 'the ground truth is in sync:\n' .. out)
end)

test('metrics --video: an MP4 with --ref and --sheet, the same clip as PNG frames with --audio', function()
  need_evaluator()
  make_video()
  local sheet = dir .. '/sheet.png'
  local out, code = metrics(('--video %q --ref %q --sheet %q'):format(video, ref, sheet))
  assert_eq(code, 0, out)
  sh.contains(out, ': 40 frames 64x64 at 25 fps, 1.6', 'the header')
  for _, row in ipairs{'lip-sync distance', 'lip-sync best offset (frames, >0 audio lags)', 'lip-sync confidence',
                       'identity error, colour', 'motion std yaw', 'flicker, pixels'} do
    value(out, row)
  end
  local corr, id_err = value(out, 'lip-sync correlation'), value(out, 'identity error vs reference')
  assert(corr > 0.5, 'the rendered clip follows its speech: r = ' .. corr)
  assert_eq(value(out, 'lip-sync best offset (frames, >0 audio lags)'), 0, 'in sync')
  sh.contains(out, 'wrote ' .. sheet, 'the sheet')
  local img = fada.image.load(sheet, {channels = 3})   -- [3, H, W]
  assert(img:size(3) > 2 * 64, 'a sheet of several frames side by side: ' .. table.concat(img:size(), 'x'))
  -- another identity's portrait is further away than its own
  out, code = metrics(('--video %q --ref %q'):format(video, other_ref))
  assert_eq(code, 0, out)
  assert(value(out, 'identity error vs reference') > id_err, 'own portrait nearer than another identity\'s')
  -- the frames as PNGs and the speech beside them: the same lip-sync, but for the MP4's coding
  out, code = metrics(('--video %q --audio %q --ref %q'):format(frames_dir, wav, ref))
  assert_eq(code, 0, out)
  sh.contains(out, ': 40 frames 64x64 at 25 fps, 1.6', 'the PNG folder')
  assert(math.abs(value(out, 'lip-sync correlation') - corr) < 0.1, 'PNG vs MP4 lip-sync:\n' .. out)
end)

test('metrics: bad input names the file or flag, exit 2, no sheet', function()
  need_evaluator()
  make_video()
  local sheet = dir .. '/bad-sheet.png'
  local silent = dir .. '/silent.mp4'
  do
    local w = fada.video.writer(silent, {fps = 25, width = 16, height = 16})
    for _ = 1, 3 do w:write(fada.zeros(3, 16, 16)) end
    w:close()
  end
  local cases = {
    {('--video %q'):format(dir .. '/none.mp4'), "--video: cannot read '" .. dir .. "/none.mp4'"},
    {('--video %q --ref %q'):format(video, dir .. '/none.png'), "--ref: cannot read '" .. dir .. "/none.png'"},
    {('--video %q'):format(frames_dir), "--video '" .. frames_dir .. "' is a folder of PNG frames: give its speech with --audio"},
    {('--video %q --audio %q'):format(frames_dir, dir .. '/none.wav'), "--audio: cannot read '" .. dir .. "/none.wav'"},
    {('--video %q --ref %q'):format(video, wav), '--ref ' .. wav .. ': '},
    {('--video %q'):format(wav), '--video ' .. wav .. ': '},
    {('--video %q'):format(silent), "--sheet draws the mouth against the speech: '" .. silent .. "' has no audio"},
    {('--video %q --weights %q'):format(video, dir .. '/none.st'), "--weights: cannot read '" .. dir .. "/none.st'"},
    {'--ground-truth --clips 0', '--clips must be at least 1'},
    {('--ground-truth --video %q'):format(video), 'give --ground-truth or --video, not both'},
    {'--clips 2', 'give --ground-truth or --video PATH'},
    {'--vidoe x.mp4', 'unknown flag --vidoe'},
  }
  for _, c in ipairs(cases) do
    local out, code = metrics(c[1] .. (' --sheet %q'):format(sheet))
    refused(out, code, 'metrics: ' .. c[2], c[1])
    assert(not exists(sheet), 'a sheet was written for: ' .. c[1])
  end
end)

-- ---- train_evaluator.lua -------------------------------------------------------------------------

-- one kernel variant per op (FADA_TUNE=1) so that runs in separate processes repeat bit for bit
local function train(args)
  local out, err, code = sh.run('scripts/train_evaluator.lua ' .. args, nil, 'FADA_TUNE=1')
  return out .. err, code
end
local TINY = '--pool 16 --batch 8 --eval-frames 8 --eval-every 1000 --log-every 1 --threads 1'
local function run_in(sub, steps, extra)
  local d = dir .. '/' .. sub
  return train(('%s --steps %d --dir %q --out %q %s'):format(TINY, steps, d, d .. '/evaluator.safetensors', extra or ''))
end
local function same_tensors(a, b, what)
  local ta, tb = fada.safetensors.load(a), fada.safetensors.load(b)
  local n = 0
  for k, t in pairs(ta) do
    assert(tb[k], what .. ': ' .. k .. ' missing')
    assert_eq((t:to('f64') - tb[k]:to('f64')):abs():max():item(), 0, what .. ': ' .. k)
    n = n + 1
  end
  assert(n > 0, what .. ': no tensors')
end

test('train_evaluator --help: every flag with its default', function()
  local out, code = train('--help')
  assert_eq(code, 0, out)
  local defaults = {steps = '2000', batch = '32', lr = '0.002', pool = '3000', refresh = '4', seed = '1', threads = '1',
                    out = 'weights/evaluator.safetensors', dir = 'out/evaluator', ['ckpt-every'] = '250',
                    ['eval-every'] = '500', ['eval-frames'] = '256', ['log-every'] = '25', fresh = 'false',
                    export = 'false', frames = '1000', evaluate = false}
  for name, def in pairs(defaults) do
    local line = out:match('\n  (%-%-' .. name:gsub('%-', '%%-') .. ' [^\n]*)')
    assert(line, ('--%s is not in --help:\n%s'):format(name, out))
    if def then sh.contains(line, '(default: ' .. def .. ')', '--' .. name) end
  end
end)

test('train_evaluator: a 2-step run, resumed to 3 steps, equals a 3-step run; --export; --evaluate', function()
  local parts, whole = dir .. '/parts', dir .. '/whole'
  local out, code = run_in('parts', 2)
  assert_eq(code, 0, out)
  sh.contains(out, 'evaluator trained: 2 steps x 8 frames', 'the 2-step run')
  assert(exists(parts .. '/checkpoint.safetensors') and exists(parts .. '/evaluator.safetensors'),
         'checkpoint and weights')
  assert(select(2, sh.csv_rows(parts .. '/loss.csv', 2)) == 2, 'two loss.csv rows')

  out, code = run_in('whole', 3)
  assert_eq(code, 0, out)
  out, code = run_in('parts', 3)
  assert_eq(code, 0, out)
  sh.contains(out, 'resuming from ' .. parts .. '/checkpoint.safetensors at step 2', 'the rerun')
  sh.contains(out, 'evaluator trained: 3 steps x 8 frames', 'the rerun')
  local a, na = sh.csv_rows(whole .. '/loss.csv', 2) -- step -> "loss,lr"
  local b, nb = sh.csv_rows(parts .. '/loss.csv', 2)
  assert_eq(na, 3, 'rows of the 3-step run'); assert_eq(nb, 3, 'rows of the resumed run')
  for s = 1, 3 do assert_eq(b[s], a[s], 'loss.csv step ' .. s .. ' (loss, lr)') end
  same_tensors(parts .. '/evaluator.safetensors', whole .. '/evaluator.safetensors', 'resumed vs whole weights')

  -- --export writes --out again from the checkpoint, without training
  local exported = dir .. '/exported.safetensors'
  out, code = train(('--export --dir %q --out %q'):format(parts, exported))
  assert_eq(code, 0, out)
  sh.contains(out, ('wrote %s from %s/checkpoint.safetensors (step 3)'):format(exported, parts), '--export')
  same_tensors(exported, whole .. '/evaluator.safetensors', 'exported vs written weights')

  out, code = train(('--evaluate %q --frames 16'):format(exported))
  assert_eq(code, 0, out)
  sh.contains(out, 'Held-out renders: 16 frames', '--evaluate')
  local rows = 0
  for _ in out:gmatch('\n| [%w_]+ | %-?[%d.]+ | [%d.]+ | [%d.]+ |') do rows = rows + 1 end
  assert_eq(rows, E.N_OUT - 9, 'one row per output but the 6 hair styles and 3 accessories')
  sh.contains(out, '| hair style (6-way) |', '--evaluate')
  os.remove(parts .. '/checkpoint.safetensors'); os.remove(whole .. '/checkpoint.safetensors')   -- 11 MB each
end)

test('train_evaluator: bad flags refused with the flag named, exit 2, nothing written', function()
  local bad = dir .. '/bad'
  local cases = {
    {'--steps 0', '--steps must be at least 1, got 0'},
    {'--batch 0', '--batch must be at least 1, got 0'},
    {'--lr -1', '--lr must be a number > 0, got -1'},
    {'--pool 0', '--pool must be at least 1'},
    {'--eval-every 0', '--eval-every must be at least 1'},
    {'--eval-frames 1', '--eval-frames must be at least 2'},
    {'--steps two', '--steps must be an integer, got "two"'},
    {'--stepz 3', 'unknown flag --stepz'},
    {('--evaluate %q'):format(dir .. '/none.safetensors'), "--evaluate: cannot read '" .. dir .. "/none.safetensors'"},
    {'--evaluate examples/portrait.png', '--evaluate examples/portrait.png: '},
    {'--export', '--export needs a checkpoint: none at ' .. bad .. '/checkpoint.safetensors'},
    {'--export --fresh', '--export writes out the checkpoint in --dir, which --fresh would ignore'},
  }
  for _, c in ipairs(cases) do
    local out, code = train(('--steps 1 --pool 4 --dir %q --out %q '):format(bad, bad .. '/w.safetensors') .. c[1])
    refused(out, code, 'train_evaluator: ' .. c[2], c[1])
    assert(not exists(bad), 'something was written for: ' .. c[1])
  end
end)
