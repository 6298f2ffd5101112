-- fada.video: MP4 writer checked by ffprobe and by decoding back (PSNR),
-- timestamps, odd sizes, no half files, PNG sequences, the reader.
local fada = require 'fada'
local peer = dofile('tests/lua/io_peer.lua')
local video = fada.video

-- Frame i of a moving test scene: u8 [h, w, 3], a soft disc crossing gradients.
local function scene(i, h, w)
  local rows = {}
  local cx, cy = (w / 4 + i * 1.5) % w, h / 2 + math.sin(i / 5) * h / 5
  for y = 1, h do
    local row = {}
    for x = 1, w do
      local d = math.sqrt((x - cx) ^ 2 + (y - cy) ^ 2) / (h / 3)
      local disc = math.max(0, 1 - d * d)
      row[x] = {math.floor(40 + 150 * x / w + 60 * disc), math.floor(30 + 180 * y / h * (1 - disc)),
                math.floor(200 * disc + 20)}
    end
    rows[y] = row
  end
  return fada.tensor(rows):to('u8')
end

local function tones(n, rate)
  local xs = {}
  for i = 0, n - 1 do xs[#xs + 1] = 0.3 * math.sin(2 * math.pi * 330 * i / rate) end
  return fada.tensor(xs)
end

local function probe(path, entries)
  return peer.sh(('ffprobe -v error -show_entries %s -of default=nw=1 %s'):format(entries, path))
end

local function count_files(dir)
  return tonumber(peer.sh(('ls -A %s | wc -l'):format(dir)))
end

test('MP4 with audio: one H.264 + one AAC stream, faststart, durations within a frame, PSNR >= 35 dB', function()
  local fps, sr, h, w, n = 25, 16000, 64, 96, 60
  local path = peer.tmp('av.mp4')
  local audio = tones(math.floor(n / fps * sr) - 123, sr) -- not a whole number of frames
  local wr = video.writer(path, {fps = fps, width = w, height = h, audio = audio, sample_rate = sr})
  local frames = {}
  for i = 1, n do frames[i] = scene(i, h, w); wr:write(frames[i]) end
  assert_eq(wr:frames(), n)
  wr:close()
  local streams = probe(path, 'stream=codec_type,codec_name,pix_fmt,profile')
  local _, nv = streams:gsub('codec_type=video', '')
  local _, na = streams:gsub('codec_type=audio', '')
  assert_eq(nv, 1, 'video streams'); assert_eq(na, 1, 'audio streams')
  assert(streams:find('codec_name=h264') and streams:find('codec_name=aac') and streams:find('pix_fmt=yuv420p'), streams)
  local vdur = tonumber(probe(path, 'stream=duration -select_streams v'):match('duration=([%d.]+)'))
  local adur = tonumber(probe(path, 'stream=duration -select_streams a'):match('duration=([%d.]+)'))
  local audio_secs = audio:size(1) / sr
  assert(math.abs(adur - audio_secs) < 1 / fps, ('audio stream %.4f s vs samples %.4f s'):format(adur, audio_secs))
  assert(math.abs(vdur - audio_secs) <= 1 / fps, ('video %.4f s vs audio %.4f s'):format(vdur, audio_secs))
  -- +faststart: the index (moov) comes before the media data (mdat)
  local bytes = peer.read(path)
  assert(bytes:find('moov', 1, true) < bytes:find('mdat', 1, true), 'moov after mdat: not faststart')
  -- decode back: every frame, in order, at the written quality
  local r = video.reader(path)
  local back, times = r:read_all()
  assert_eq(back:size(1), n, 'frames decoded')
  local worst = math.huge
  for i = 1, n do
    worst = math.min(worst, peer.psnr(back:select(1, i), frames[i]))
    assert(math.abs(times[i] - (i - 1) / fps) < 1e-6, ('frame %d at %g s'):format(i, times[i]))
  end
  assert(worst >= 35, ('worst frame PSNR %.2f dB < 35'):format(worst))
  print(('      worst frame PSNR %.2f dB, video %.3f s, audio %.3f s'):format(worst, vdur, adur))
  -- and the audio track comes back through the reader
  local a, asr = r:audio({sample_rate = sr})
  assert_eq(asr, sr)
  assert(math.abs(a:size(1) - audio:size(1)) <= sr / fps, ('audio %d vs %d samples'):format(a:size(1), audio:size(1)))
  r:close()
  os.remove(path)
end)

test('float CHW frames in [-1, 1]; crf changes the size; odd sizes refused or padded', function()
  local path = peer.tmp('f.mp4')
  local x = scene(3, 32, 48):permute(3, 1, 2):to('f32') -- [3, 32, 48] in 0..255
  local y = fada.empty(3, 32, 48)
  local lx = x:contiguous():view(-1):tolist()
  for i, v in ipairs(lx) do lx[i] = v / 255 * 2 - 1 end
  y = fada.tensor(lx):view(3, 32, 48)
  local sizes = {}
  for _, crf in ipairs({10, 40}) do
    local wr = video.writer(path, {fps = 10, width = 48, height = 32, crf = crf, range = '-1,1'})
    for _ = 1, 5 do wr:write(y) end
    wr:close()
    sizes[crf] = #peer.read(path)
  end
  assert(sizes[10] > sizes[40], 'crf 10 should be larger than crf 40')
  checkerror(function() video.writer(path, {fps = 25, width = 33, height = 32}) end, 'is odd')
  local odd = peer.tmp('odd.mp4')
  local wr = video.writer(odd, {fps = 25, width = 33, height = 31, pad = true})
  wr:write(scene(1, 31, 33)); wr:close()
  assert(probe(odd, 'stream=width,height'):find('width=34\nheight=32'), 'padded to 34x32')
  os.remove(path); os.remove(odd)
end)

test('no half files: a failing, an abandoned and an unwritable writer leave nothing', function()
  local dir = peer.tmp('dir')
  fada.mkdir(dir)
  local wr = video.writer(dir .. '/a.mp4', {fps = 25, width = 16, height = 16})
  wr:write(scene(1, 16, 16))
  checkerror(function() wr:write(scene(1, 8, 8)) end, 'frame u8 [8, 8, 3] vs the writer')
  checkerror(function() wr:write(scene(1, 16, 16)) end, 'closed')
  do
    local w2 = video.writer(dir .. '/b.mp4', {fps = 25, width = 16, height = 16})
    w2:write(scene(1, 16, 16))
  end
  collectgarbage(); collectgarbage()
  assert_eq(count_files(dir), 0, 'files left in ' .. dir)
  local ok = pcall(function()
    local w3 <close> = video.writer(dir .. '/c.mp4', {fps = 25, width = 16, height = 16})
    w3:write(scene(1, 16, 16))
    error('boom')
  end)
  assert(not ok)
  assert_eq(count_files(dir), 0, 'to-be-closed writer left a file')
  do
    local w4 <close> = video.writer(dir .. '/d.mp4', {fps = 25, width = 16, height = 16})
    w4:write(scene(1, 16, 16))
  end
  assert_eq(count_files(dir), 1, 'a to-be-closed writer closes on normal exit')
  checkerror(function() video.writer('/nonexistent_dir/x.mp4', {fps = 25, width = 16, height = 16}) end,
             "'/nonexistent_dir/x.mp4'")
  checkerror(function() video.writer(dir, {fps = 25, width = 16, height = 16}) end, 'is a directory')
  peer.sh('rm -rf ' .. dir)
end)

test('PNG frame sequences round trip exactly', function()
  local dir = peer.tmp('seq')
  fada.mkdir(dir)
  local wr = video.writer(dir .. '/f_%03d.png', {fps = 25, width = 20, height = 12})
  local frames = {}
  for i = 1, 3 do frames[i] = scene(i, 12, 20); wr:write(frames[i]) end
  wr:close()
  for i = 1, 3 do
    assert_close(fada.image.load(('%s/f_%03d.png'):format(dir, i), {dtype = 'u8'}), frames[i], 0, 0, 'frame ' .. i)
  end
  -- and FFmpeg reads the sequence as a video
  local r = video.reader(dir .. '/f_%03d.png')
  assert_eq(r:read_all():size(1), 3)
  checkerror(function() video.writer(dir .. '/f_%s.png', {fps = 25, width = 4, height = 4}) end, 'one %d')
  peer.sh('rm -rf ' .. dir)
end)

test('reader: a video made by the ffmpeg CLI, resized, as f32, with timestamps and audio', function()
  local path = peer.tmp('cli.mkv')
  peer.sh(('ffmpeg -v error -y -f lavfi -i testsrc2=s=160x120:r=10:d=1.5 -f lavfi -i sine=f=440:r=22050:d=1.5 ' ..
           '-c:v mpeg4 -q:v 2 -c:a flac %s'):format(path))
  local r = video.reader(path, {dtype = 'f32', width = 80, height = 60, resize = 'area'})
  local info = r:info()
  assert_eq(info.width, 80); assert_eq(info.source_width, 160); assert(info.has_audio)
  assert(math.abs(info.fps - 10) < 1e-6)
  local n, last = 0, -1
  for frame, t in r:frames() do
    n = n + 1
    assert_eq(table.concat(frame:size(), 'x'), '3x60x80')
    assert(t > last, 'timestamps increase'); last = t
  end
  assert_eq(n, 15)
  assert(math.abs(last - 1.4) < 1e-6, 'last frame at 1.4 s')
  local a, sr = r:audio()
  assert_eq(sr, 22050); assert_eq(a:size(1), 33075)
  -- the same frame full size, u8, is exactly ffmpeg's own RGB decode (same swscale settings)
  local raw = peer.tmp('f0.png')
  peer.sh(('ffmpeg -v error -y -i %s -frames:v 1 -pix_fmt rgb24 -sws_flags bilinear+accurate_rnd %s'):format(path, raw))
  assert_close(video.reader(path):next(), fada.image.load(raw, {dtype = 'u8'}), 0, 0, 'first frame vs ffmpeg')
  os.remove(raw); os.remove(path)
end)
