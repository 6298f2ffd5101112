-- fada.audio: WAV round trips, closed-form signals from the ffmpeg CLI,
-- resampling, MP3/M4A/OGG/FLAC/MP4-track decoding vs the WAV source,
-- spectrogram closed form and log-mel vs torchaudio 0.13.
local fada = require 'fada'
local peer = dofile('tests/lua/io_peer.lua')
local audio = fada.audio

local function list(t) return t:contiguous():view(-1):tolist() end

-- Signal-to-noise ratio (dB) of b against reference a over [from, to].
local function snr(a, b, from, to)
  local la, lb = list(a), list(b)
  to = math.min(to or #la, #la, #lb)
  local s, e = 0, 0
  for i = from or 1, to do s = s + la[i] ^ 2; e = e + (la[i] - lb[i]) ^ 2 end
  return 10 * math.log(s / math.max(e, 1e-30), 10)
end

local function tones(rate, secs)
  local xs = {}
  for i = 0, math.floor(rate * secs) - 1 do
    local t = i / rate
    xs[#xs + 1] = 0.3 * math.sin(2 * math.pi * 440 * t) + 0.2 * math.sin(2 * math.pi * 1234 * t) +
                  0.1 * math.sin(2 * math.pi * 3000 * t)
  end
  return fada.tensor(xs)
end
local EXPR = '0.3*sin(2*PI*440*t)+0.2*sin(2*PI*1234*t)+0.1*sin(2*PI*3000*t)'

test('WAV round trips: float exact, 16-bit within half a step, stereo averages', function()
  local g, xs = fada.rand(1000, fada.Generator(1)):tolist(), {}
  for i = 1, #g do xs[i] = g[i] * 1.98 - 0.99 end -- inside [-1, 1): nothing clips
  local x = fada.tensor(xs)
  local path = peer.tmp('a.wav')
  audio.save(path, x, 16000, {bits = 32})
  local y, sr, info = audio.load(path)
  assert_eq(sr, 16000); assert_eq(info.decoder, 'libsndfile')
  assert_close(y, x, 0, 0, 'float wav')
  audio.save(path, x, 16000) -- 16-bit PCM
  assert_close(audio.load(path), x, 0.5 / 32768 + 1e-6, 0, 'pcm16')
  audio.save(path, fada.tensor({1.5, -2, 1}), 16000) -- clipped, never wrapped
  assert_close(audio.load(path), fada.tensor({32767 / 32768, -1, 32767 / 32768}), 0, 0, 'clipping')
  local st = fada.zeros(2, 4); st:set(1, 1, 0.5); st:set(2, 1, -0.25); st:set(1, 2, 1); st:set(2, 2, 1)
  audio.save(path, st, 8000, {bits = 32})
  assert_close(audio.load(path), fada.tensor({0.125, 1, 0, 0}), 0, 0, 'stereo mean')
  os.remove(path)
end)

test('a WAV made by the ffmpeg CLI is the closed-form signal; resampling keeps it', function()
  local path = peer.tmp('tones.wav')
  peer.sh(('ffmpeg -v error -y -f lavfi -i "aevalsrc=%s:s=44100:d=1" -c:a pcm_f32le %s'):format(EXPR, path))
  local y, sr = audio.load(path)
  assert_eq(sr, 44100)
  assert_close(y, tones(44100, 1), 1e-6, 0, 'ffmpeg aevalsrc')
  local z = audio.load(path, {sample_rate = 16000})
  assert_eq(z:size(1), 16000)
  -- away from the edges the resampled signal is the same tones sampled at 16 kHz
  local s = snr(tones(16000, 1), z, 200, 15800)
  assert(s > 40, ('resampled SNR %.1f dB'):format(s))
  os.remove(path)
end)

test('MP3, M4A/AAC, OGG/Vorbis, FLAC and an MP4 audio track match the WAV', function()
  local wav = peer.tmp('src.wav')
  peer.sh(('ffmpeg -v error -y -f lavfi -i "aevalsrc=%s:s=44100:d=2" -c:a pcm_s16le %s'):format(EXPR, wav))
  local ref = audio.load(wav, {sample_rate = 16000})
  local cases = {
    {'flac', '-c:a flac', 60, 'libsndfile'},
    {'ogg', '-c:a libvorbis -q:a 6', 20, 'libsndfile'},
    {'mp3', '-c:a libmp3lame -b:a 128k', 20, nil},
    {'m4a', '-c:a aac -b:a 128k', 20, 'ffmpeg'},
    {'mp4', '-f lavfi -i testsrc=s=64x64:d=2 -map 1:v -map 0:a -c:v libx264 -c:a aac -b:a 128k -shortest', 20, 'ffmpeg'},
  }
  for _, c in ipairs(cases) do
    local out = peer.tmp('enc.' .. c[1])
    peer.sh(('ffmpeg -v error -y -i %s %s %s'):format(wav, c[2], out))
    local y, sr, info = audio.load(out, {sample_rate = 16000})
    assert_eq(sr, 16000)
    if c[4] then assert_eq(info.decoder, c[4], c[1] .. ' decoder') end
    assert(math.abs(y:size(1) - ref:size(1)) <= 1100, ('%s: %d samples vs %d'):format(c[1], y:size(1), ref:size(1)))
    local s = snr(ref, y, 1000, ref:size(1) - 1500)
    assert(s > c[3], ('%s: SNR %.1f dB vs the WAV (want > %d)'):format(c[1], s, c[3]))
    print(('      %s: SNR %.1f dB, %d vs %d samples'):format(c[1], s, y:size(1), ref:size(1)))
    os.remove(out)
  end
  os.remove(wav)
end)

test('spectrogram of a bin-centred sine has the closed-form peak', function()
  -- hann window, n_fft = 256: a sine at bin k0 of amplitude A gives |X[k0]| = A * n_fft / 4
  local n, k0, A = 256, 20, 0.5
  local xs = {}
  for i = 0, 4095 do xs[#xs + 1] = A * math.cos(2 * math.pi * k0 * i / n) end
  local s = audio.spectrogram(fada.tensor(xs), {n_fft = n, hop = 64, power = 1})
  assert_eq(table.concat(s:size(), 'x'), ('%dx%d'):format(n // 2 + 1, 1 + 4096 // 64))
  assert_close(s:get(k0 + 1, 30), A * n / 4, 1e-3, 1e-5, 'peak')
  assert_close(s:get(k0 + 2, 30), A * n / 8, 1e-3, 1e-5, 'hann neighbour')
  assert(s:get(k0 + 5, 30) < 1e-3, 'leakage')
end)

test('spectrogram of sizes that are not powers of two matches a direct DFT (Bluestein path)', function()
  local g = fada.Generator(11)
  for _, n in ipairs({400, 399, 96, 7}) do
    local x = fada.randn(3 * n, g)
    local s = audio.spectrogram(x, {n_fft = n, hop = n, center = false, window = 'rect', power = 1})
    local xs = x:tolist()
    for f = 1, s:size(2) do
      for _, k in ipairs({0, 1, n // 3, n // 2}) do
        local re, im = 0, 0 -- the DFT in double, straight from its definition
        for i = 0, n - 1 do
          local a = -2 * math.pi * ((k * i) % n) / n
          re, im = re + xs[(f - 1) * n + i + 1] * math.cos(a), im + xs[(f - 1) * n + i + 1] * math.sin(a)
        end
        assert_close(s:get(k + 1, f), math.sqrt(re * re + im * im), 1e-4, 1e-3,
                     ('n_fft %d, frame %d, bin %d'):format(n, f, k))
      end
    end
  end
end)

local function mel_vs_torchaudio(opts, ta_args)
  local x = fada.randn(16000, fada.Generator(5))
  local ours = audio.log_mel(x, opts)
  local out = peer.torch(([[
import torchaudio
m = torchaudio.transforms.MelSpectrogram(%s)(inp['x'])
out['mel'] = torch.log(torch.clamp(m, min=1e-10))
]]):format(ta_args), {x = x})
  assert_close(ours, out.mel, 1e-4, 1e-4, 'log-mel')
end

test('log-mel matches torchaudio 0.13 MelSpectrogram (htk, 80 mels, n_fft 400)', function()
  need_torch()
  if not peer.has_torchaudio() then skip('torchaudio is not importable by /usr/bin/python3') end
  mel_vs_torchaudio({sample_rate = 16000, n_fft = 400, hop = 160, n_mels = 80},
    'sample_rate=16000, n_fft=400, hop_length=160, n_mels=80')
end)

test('log-mel matches torchaudio with slaney scale and norm, fmin/fmax, win_length, power 1', function()
  need_torch()
  if not peer.has_torchaudio() then skip('torchaudio is not importable by /usr/bin/python3') end
  mel_vs_torchaudio({sample_rate = 16000, n_fft = 512, win_length = 400, hop = 128, n_mels = 64, fmin = 50,
                     fmax = 7600, mel_scale = 'slaney', norm = 'slaney', power = 1},
    "sample_rate=16000, n_fft=512, win_length=400, hop_length=128, n_mels=64, f_min=50, f_max=7600, " ..
    "mel_scale='slaney', norm='slaney', power=1.0")
end)

test('bad arguments name the problem', function()
  checkerror(function() audio.log_mel(fada.randn(100), {sample_rate = 16000, n_fft = 400}) end, 'reflect padding')
  checkerror(function() audio.log_mel(fada.randn(1000), {sample_rate = 16000, mel_scale = 'bark'}) end, "mel_scale 'bark'")
  checkerror(function() audio.log_mel(fada.randn(1000), {n_fft = 64}) end, 'sample_rate 0')
  checkerror(function() audio.save(peer.tmp('x.wav'), fada.randn(10), 16000, {bits = 12}) end, 'bits must be')
  checkerror(function() audio.load(peer.tmp('missing.wav')) end, 'No such file')
end)
