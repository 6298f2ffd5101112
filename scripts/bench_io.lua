-- I/O measurements for docs/io.md (not a test; prints figures).
--   fadalua scripts/bench_io.lua st_make <path> <MB>     write an f32 safetensors of about MB
--   fadalua scripts/bench_io.lua st_load <path>          time loading it (mmap, zero-copy)
--   fadalua scripts/bench_io.lua video <path> <seconds> [audio]
--        write a 128x128 25 fps MP4 of that length (with 16 kHz audio if 'audio');
--        run under /usr/bin/time -v to read the peak RSS.
require('fada.cli').help_from_header(arg)
local fada = require 'fada'
local mode = arg[1]

local function wall()
  local p = io.popen('date +%s.%N'); local t = tonumber(p:read('l')); p:close(); return t
end

if mode == 'st_make' then
  local path, mb = arg[2], tonumber(arg[3] or 100)
  local tensors, per = {}, 4 << 20 -- 4 MiB tensors
  for i = 1, math.max(1, mb * (1 << 20) // per) do tensors[('layer%03d.weight'):format(i)] = fada.rand(1024, 1024) end
  fada.safetensors.save(path, tensors, {config = {layers = #tensors}})
  print(('wrote %s'):format(path))
elseif mode == 'st_load' then
  local path = arg[2]
  for run = 1, 3 do
    local t0 = wall()
    local t = fada.safetensors.load(path)
    local t1 = wall()
    local n, bytes = 0, 0
    for _, x in pairs(t) do n = n + 1; bytes = bytes + x:numel() * 4 end
    local first = t['layer001.weight']:get(1, 1) -- one page actually read
    print(('run %d: loaded %d tensors, %.1f MB, in %.2f ms (first value %.3f)'):format(
      run, n, bytes / 1e6, (t1 - t0) * 1e3, first))
    t = nil; collectgarbage()
  end
  local t0 = wall()
  local t = fada.safetensors.load(path)
  local s = 0
  for _, x in pairs(t) do local c = x:clone(); s = s + c:get(1, 1) end -- touches every byte
  print(('load + copy of every byte: %.2f ms'):format((wall() - t0) * 1e3))
elseif mode == 'video' then
  local path, secs, with_audio = arg[2], tonumber(arg[3]), arg[4] == 'audio'
  local fps, sr, size = 25, 16000, 128
  local frames = {}
  for i = 1, 25 do -- smooth blobs (noise would make the file huge, not the memory)
    frames[i] = fada.image.resize(fada.randint(0, 256, 8, 8, 3, 'u8', fada.Generator(i)), size, size)
  end
  local audio = with_audio and fada.randn(math.floor(secs * sr)) or nil
  local w = fada.video.writer(path, {fps = fps, width = size, height = size, audio = audio, sample_rate = sr})
  local t0 = wall()
  local n = math.floor(secs * fps)
  for i = 1, n do w:write(frames[(i - 1) % 25 + 1]) end
  w:close()
  local m = fada.memory()
  print(('%d frames in %.1f s (%.0f fps); fada live %.1f MB, peak live %.1f MB'):format(
    n, wall() - t0, n / (wall() - t0), m.live / 1e6, m.peak / 1e6))
else
  error('usage: see the header of scripts/bench_io.lua')
end
