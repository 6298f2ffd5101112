-- The evaluator (shipped weights) and the metrics built on it: readings on
-- held-out renders against the renderer's truth, lip-sync offsets against
-- known audio shifts, identity error, Fréchet distance (closed form for
-- Gaussians), flicker.
local fada = require 'fada'
local E = require 'fada.metrics.evaluator'
local R = require 'fada.metrics.renders'
local stats = require 'fada.metrics.stats'
local metrics = require 'fada.metrics'
local clips = require 'fada.metrics.clips'

fada.set_num_threads(1)

local ev
local function evaluator()
  if ev then return ev end
  local path = E.default_path()
  local f = io.open(path, 'rb')
  if not f then skip('no shipped evaluator weights at ' .. path) end
  f:close()
  ev = metrics.evaluator()
  return ev
end

local function have_espeak()
  local ok = os.execute('command -v espeak-ng > /dev/null 2>&1')
  return ok == true
end

local clip -- one ground-truth clip shared by the tests below
local function gt_clip()
  if not have_espeak() then skip('espeak-ng is not installed (scripts/setup-deps.sh installs it)') end
  clip = clip or clips.ground_truth(3)
  return clip
end

test('pearson, mae and median on known values', function()
  assert_close(stats.pearson({1, 2, 3, 4}, {2, 4, 6, 8}), 1, 1e-12, 0, 'r of a line')
  assert_close(stats.pearson({1, 2, 3, 4}, {4, 3, 2, 1}), -1, 1e-12, 0, 'r of a falling line')
  assert_close(stats.mae({0, 1}, {1, 1}), 0.5, 1e-12, 0, 'mae')
  assert_close(stats.median({5, 1, 3, 2}), 2.5, 1e-12, 0, 'median of four')
end)

test('lip-sync offset sign on a known trajectory (no network)', function()
  -- a reading whose opening equals the audio track 2 frames later: the
  -- audio lags the video by 2 frames -> offset +2
  local track = {}
  for t = 1, 120 do track[t] = math.max(0, math.sin(t * 0.37) + 0.3 * math.sin(t * 1.3)) end
  local mouth = {}
  for t = 1, 120 do mouth[t] = track[math.min(t + 2, 120)] end
  local r = metrics.lipsync({open = mouth, features = true}, nil, nil, {track = {open = track}})
  assert_eq(r.offset, 2, 'offset')
  assert(r.corr > 0.999, ('corr %.4f'):format(r.corr))
  assert(r.confidence > 0.3, ('confidence %.3f'):format(r.confidence))
end)

test('Fréchet distance matches the closed form for diagonal Gaussians', function()
  local g = fada.Generator(5)
  local sa, sb = {1, 2, 3, 1, 1, 1, 0.5, 2}, {2, 1, 1, 1, 3, 1, 0.5, 1}
  local a = fada.randn(20000, 8, g) * fada.tensor(sa):view(1, 8)
  local b = fada.randn(20000, 8, g) * fada.tensor(sb):view(1, 8) + 0.5
  -- population value: |Δμ|² + Σ (σa − σb)²
  local closed = 8 * 0.25
  for i = 1, 8 do closed = closed + (sa[i] - sb[i]) ^ 2 end
  local fd = metrics.frechet(a, b)
  assert_close(fd, closed, 0.15, 0, 'Fréchet distance')
  assert(math.abs(metrics.frechet(a, a)) < 1e-6, 'a set against itself')
end)

test('evaluator reads mouth opening on fresh held-out renders (r >= 0.9)', function()
  local e = evaluator()
  local x, y = R.batch(70000, 48, 'heldout')   -- indices no training or model-card run uses
  local r = e:read(x)
  local truth = {}
  local yt = y:totable()
  for i = 1, #yt do truth[i] = yt[i][E.INDEX.open] end
  local c = stats.pearson(r.open, truth)
  print(('  held-out opening: r = %.4f, MAE %.4f over %d renders'):format(c, stats.mae(r.open, truth), #truth))
  assert(c >= 0.9, ('opening correlation %.4f < 0.9'):format(c))
end)

test('evaluator accepts u8 frames and 128x128 frames', function()
  local e = evaluator()
  local x = R.batch(70100, 4, 'heldout')
  local a = e:read(x).open
  local u8 = (x * 255):round():clamp(0, 255):to('u8'):permute(1, 3, 4, 2):contiguous() -- [T, S, S, 3]
  local b = e:read(u8).open
  local big = fada.ops.upsample_nearest(x, 2, 2)                                       -- [T, 3, 128, 128]
  local c = e:read(big).open
  for i = 1, 4 do
    assert_close(b[i], a[i], 0.03, 0, 'u8 reading')
    assert_close(c[i], a[i], 0.02, 0, '128x128 reading')
  end
end)

test('lip-sync on a ground-truth clip: offset 0; audio shifted by 3 frames: offset +-3', function()
  evaluator()
  local c = gt_clip()
  local r = metrics.read(c.frames)
  local ls = metrics.lipsync(r, c.samples, c.sample_rate)
  print(('  ground truth: r = %.3f at offset %d, dist %.3f, confidence %.3f'):format(
    ls.corr, ls.offset, ls.dist, ls.confidence))
  assert_eq(ls.offset, 0, 'offset on ground truth')
  assert(ls.corr >= 0.85, ('lip-sync correlation %.3f'):format(ls.corr))
  local hop = c.sample_rate // c.fps
  local n = c.samples:size(1)
  -- audio delayed by 3 frames (3 hops of silence in front): it lags -> +3
  local late = fada.cat({fada.zeros(3 * hop), c.samples}, 1)
  local l1 = metrics.lipsync(r, late, c.sample_rate)
  -- audio advanced by 3 frames (its first 3 hops cut): it leads -> -3
  local early = c.samples:narrow(1, 3 * hop + 1, n - 3 * hop):contiguous()
  local l2 = metrics.lipsync(r, early, c.sample_rate)
  print(('  delayed audio: offset %d (r %.3f); advanced audio: offset %d (r %.3f)'):format(
    l1.offset, l1.corr, l2.offset, l2.corr))
  assert_eq(l1.offset, 3, 'offset with the audio 3 frames late')
  assert_eq(l2.offset, -3, 'offset with the audio 3 frames early')
end)

test('identity error: small for the same identity, large for another', function()
  evaluator()
  local c = gt_clip()
  local face = require 'fada.data.face'
  local other = face.render(face.identity(900001), {}, 64)
  local same = metrics.identity_error(c.frames, c.ref).error
  local diff = metrics.identity_error(c.frames, other).error
  print(('  identity error: same %.4f, other %.4f'):format(same, diff))
  assert(diff > 4 * same, ('same %.4f vs other %.4f'):format(same, diff))
end)

test('Fréchet distance: ~0 for a set against itself, larger against other identities', function()
  evaluator()
  local c = gt_clip()
  local ra = metrics.read(c.frames)
  local others = R.batch(70200, 64, 'heldout')
  local self_fd = metrics.frechet(ra, ra)
  local half = c.frames:size(1) // 2
  local within = metrics.frechet(ra.features:narrow(1, 1, half), ra.features:narrow(1, half + 1, half))
  local other_fd = metrics.frechet(ra, others)
  print(('  Fréchet: self %.2g, first vs second half %.4g, vs other identities %.4g'):format(self_fd, within, other_fd))
  assert(math.abs(self_fd) < 1e-6, 'self distance')
  assert(other_fd > 3 * within, 'other identities must be farther than the same clip')
end)

test('flicker is higher for the clip with per-frame noise', function()
  evaluator()
  local c = gt_clip()
  local clean = metrics.flicker(c.frames)
  local noisy_frames = (c.frames + fada.randn(c.frames:size(), fada.Generator(9)) * 0.05):clamp(0, 1)
  local noisy = metrics.flicker(noisy_frames)
  print(('  flicker pixels: clean %.4f, noisy %.4f'):format(clean.pixel, noisy.pixel))
  assert(noisy.pixel > 3 * clean.pixel, 'noise must raise pixel flicker')
  local m = metrics.motion(c.frames)
  assert(m.std_open > 0.05, ('the mouth moves in a speaking clip: std %.3f'):format(m.std_open))
end)

test('sharpness: closed forms (flat 0, a linear ramp 0, a checkerboard 4, scaled by contrast)', function()
  local T, S = 2, 64
  assert_close(metrics.sharpness(fada.full({T, 3, S, S}, 0.3)), 0, 1e-7, 0, 'flat')
  -- a ramp along x: the Laplacian of a linear function is 0
  local ramp = fada.arange(0, S):to('f32'):view(1, 1, 1, S):expand(T, 3, S, S):contiguous() * (1 / S)
  assert_close(metrics.sharpness(ramp), 0, 1e-5, 0, 'ramp')
  -- a 0/1 checkerboard: every interior pixel is 4 away from its four neighbours' mean x 4
  local i = fada.arange(0, S):to('f32')
  local row, col = i:view(S, 1):expand(S, S), i:view(1, S):expand(S, S)
  local board = ((row + col) % 2):view(1, 1, S, S):expand(T, 3, S, S):contiguous()
  assert_close(metrics.sharpness(board), 4, 1e-5, 0, 'checkerboard')
  assert_close(metrics.sharpness(board * 0.25), 1, 1e-5, 0, 'a quarter of the contrast')
end)

test('lip-sync survives an MP4 round trip (H.264 + AAC through FFmpeg)', function()
  evaluator()
  local c = gt_clip()
  local path = os.tmpname() .. '.mp4'
  local w = fada.video.writer(path, {fps = c.fps, width = 64, height = 64, audio = c.samples,
                                     sample_rate = c.sample_rate, crf = 18})
  for t = 1, c.frames:size(1) do w:write(c.frames:select(1, t)) end
  w:close()
  local r = fada.video.reader(path, {dtype = 'f32'})
  local frames = r:read_all()
  local samples, sr = r:audio({sample_rate = 16000})
  r:close()
  os.remove(path)
  local ls = metrics.lipsync(frames, samples, sr)
  print(('  MP4: %d frames, r = %.3f at offset %d'):format(frames:size(1), ls.corr, ls.offset))
  assert_eq(ls.offset, 0, 'offset after the MP4 round trip')
  assert(ls.corr >= 0.8, ('lip-sync correlation after MP4 %.3f'):format(ls.corr))
end)

test('evaluator errors name the problem', function()
  checkerror(function() E.prepare(fada.zeros(2, 4, 64, 64)) end, '3 channels')
  checkerror(function() E.load('/nonexistent/evaluator.safetensors') end, 'no weights')
end)

test('a ground-truth clip is the same in every process (no pairs() order in its random draws)', function()
  -- pairs() order over string keys changes from one Lua state to the next, so two processes are needed
  local sh = dofile(debug.getinfo(1, 'S').source:match('^@(.-)[^/]*$') .. 'shell_helpers.lua')
  local code = "local c = require('fada.metrics.clips').ground_truth(3, {size = 32}); " ..
               "print(string.format('%.6f %.6f', c.frames:sum():item(), c.frames:pow(2):sum():item()))"
  local seen = {}
  for i = 1, 3 do
    local out, err, rc = sh.run('-e ' .. sh.quote(code))
    assert_eq(rc, 0, err)
    seen[i] = out
  end
  assert(seen[1] == seen[2] and seen[2] == seen[3], 'frames differ between processes:\n' .. table.concat(seen))
end)
