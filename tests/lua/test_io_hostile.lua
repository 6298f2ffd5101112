-- Hostile input: every crafted file in tests/data/bad/ (made by
-- tests/data/make_bad_files.py) must give a Lua error naming the path and the
-- reason: no crash, no hang, no allocation its size doesn't justify. Missing
-- paths, directories, wrong extensions and unwritable outputs likewise.
local fada = require 'fada'
local peer = dofile('tests/lua/io_peer.lua')
local sh = dofile('tests/lua/shell_helpers.lua')
local BAD = 'tests/data/bad/'

local load = {
  st = function(p) return fada.safetensors.load(p) end,
  image = function(p) return fada.image.load(p) end,
  audio = function(p) return fada.audio.load(p, {sample_rate = 16000}) end,
  video = function(p) local r = fada.video.reader(p); return r:read_all() end,
}

-- {file, loader, a piece of the expected reason}
local cases = {
  {'st_empty.safetensors', 'st', 'empty file'},
  {'st_short.safetensors', 'st', 'too short for the 8-byte header length'},
  {'st_header_len_huge.safetensors', 'st', 'exceeds the limit'},
  {'st_header_past_eof.safetensors', 'st', 'past the end of the file'},
  {'st_not_json.safetensors', 'st', 'not a valid JSON object'},
  {'st_not_object.safetensors', 'st', "does not start with '{'"},
  {'st_unknown_dtype.safetensors', 'st', "unknown dtype 'F128'"},
  {'st_unsupported_dtype.safetensors', 'st', 'dtype I8 is not supported'},
  {'st_shape_mismatch.safetensors', 'st', '(16 bytes) ~= data_offsets length 8'},
  {'st_offsets_past_end.safetensors', 'st', 'past the end of the data'},
  {'st_offsets_reversed.safetensors', 'st', 'end before begin'},
  {'st_overlap.safetensors', 'st', "overlaps 'a'"},
  {'st_hole.safetensors', 'st', 'hole in the data'},
  {'st_shape_overflow.safetensors', 'st', 'shape overflows'},
  {'st_bytes_overflow.safetensors', 'st', 'not an integer in [0, 2^53]'},
  {'st_negative_dim.safetensors', 'st', "writes the number '-2'"},
  {'st_fractional_dim.safetensors', 'st', "writes the number '2.5'"},
  {'st_float_dim.safetensors', 'st', "writes the number '2.0' (byte 33); shapes and offsets must be plain"},
  {'st_trailing_garbage.safetensors', 'st', "(0x78) follows its JSON object; only spaces may pad a header"},
  {'st_nul_padding.safetensors', 'st', "(0x00) follows its JSON object"},
  {'st_bad_utf8_key.safetensors', 'st', 'the header is not valid UTF-8 (byte 2)'},
  {'st_too_many_dims.safetensors', 'st', 'has 10 dims (at most 8)'},
  {'st_no_offsets.safetensors', 'st', 'data_offsets must be [begin, end] integers'},
  {'st_metadata_not_strings.safetensors', 'st', '__metadata__ must be one object of string values'},
  {'st_duplicate_name.safetensors', 'st', "tensor name 'a' appears twice"},
  {'st_truncated_data.safetensors', 'st', 'past the end of the data (100 bytes)'},
  {'st_deep_nesting.safetensors', 'st', 'not a valid JSON object'},
  {'png_empty.png', 'image', 'empty file'},
  {'png_truncated.png', 'image', 'corrupt PNG: file is truncated'},
  {'png_signature_only.png', 'image', 'corrupt PNG: file is truncated'},
  {'png_bad_ihdr_crc.png', 'image', 'CRC error'},
  {'png_bad_zlib.png', 'image', 'corrupt PNG'},
  {'png_short_idat.png', 'image', 'Not enough image data'},
  {'png_zero_width.png', 'image', 'Invalid IHDR data'},
  {'png_bad_depth.png', 'image', 'Invalid IHDR data'},
  {'png_huge_dims.png', 'image', 'declares 30000x30000 pixels, more than its 69 bytes can hold'},
  {'png_bomb_1bit_12000.png', 'image', '12000 x 12000 pixels (144.0 megapixels) is above the limit of 67108864 pixels'},
  {'png_bomb_1bit_12000.png', 'image', 'or raise the limit with fada.image.load(path, {max_pixels = N})'},
  {'png_bomb_1bit_12000.png', 'video', 'is above the limit of 67108864 pixels (67.1 megapixels)'},
  {'png_bomb_1bit_12000.png', 'video', 'or raise the limit with fada.video.reader(path, {max_pixels = N})'},
  {'png_over_limit.png', 'image', 'Invalid IHDR data'},
  {'png_text_named.jpg', 'image', 'no picture size'},
  {'bmp_huge_dims.bmp', 'image', 'no picture size'},
  {'wav_empty.wav', 'audio', 'empty file'},
  {'wav_truncated_header.wav', 'audio', 'cannot decode'},
  {'wav_garbage.wav', 'audio', 'cannot decode'},
  {'wav_many_channels.wav', 'audio', 'cannot decode'},
  {'wav_zero_rate.wav', 'audio', 'libsndfile: the header declares no usable sample rate, channel count or format'},
  {'wav_bad_format_tag.wav', 'audio', 'cannot decode'},
  {'wav_zero_bits.wav', 'audio', 'cannot decode'},
  {'wav_no_data.wav', 'audio', 'the file holds no samples (a header without sound data)'},
  {'wav_nonfinite.wav', 'audio', 'sample 2 (at 0.000 s) is NaN: the file is corrupt or not a recording'},
  {'flac_streaminfo_only.flac', 'audio', 'the file holds no samples'},
  {'mp3_truncated.mp3', 'audio', 'it looks like MPEG audio, but the MP3 decoder (mpg123) cannot open it'},
  {'mp3_truncated.mp3', 'audio', "if it plays elsewhere, convert it: ffmpeg -i 'tests/data/bad/mp3_truncated.mp3'"},
  {'flac_cut_metadata.flac', 'audio', 'cannot decode'},
  {'flac_rate_zero.flac', 'audio', 'the stream declares a sample rate of 0 Hz (FLAC STREAMINFO header)'},
  {'mp4_empty.mp4', 'video', 'empty file'},
  {'mp4_header_only.mp4', 'video', 'no decodable video'},
  {'mp4_truncated.mp4', 'video', 'truncated or corrupt'},
  {'mp4_random.mp4', 'video', 'cannot open'},
  {'mp4_empty.mp4', 'audio', 'empty file'},
  {'mp4_random.mp4', 'audio', 'cannot decode'},
  {'y4m_huge_dims.y4m', 'video', 'cannot open: Picture size 60000x60000 is invalid'}, -- FFmpeg's log, not its code
  {'png_huge_dims.png', 'video', 'no picture size'},   -- FFmpeg's PNG decoder refuses it too
  {'st_overlap.safetensors', 'image', 'cannot open'},  -- wrong kind of file entirely
  {'png_truncated.png', 'audio', 'cannot decode'},
}

-- What libsndfile and FFmpeg's codes say about files that exist and are
-- merely damaged, too large or of another kind: never the reason a person reads.
local MISLEADING = {'File does not exist', 'not a regular file', 'Device or resource busy', 'Cannot allocate memory',
                    'Internal error', 'Input/output error'}

test('every crafted bad file is refused with its path and reason', function()
  local seen = {}
  for _, c in ipairs(cases) do
    local path = BAD .. c[1]
    seen[c[1]] = true
    local ok, err = pcall(load[c[2]], path)
    assert(not ok, ('%s via %s: loaded without error'):format(c[1], c[2]))
    err = tostring(err)
    assert(err:find("'" .. path .. "'", 1, true), ('%s: message does not name the path: %s'):format(c[1], err))
    assert(err:find(c[3], 1, true), ('%s: expected %q in: %s'):format(c[1], c[3], err))
    -- the message speaks of what was asked for (an image read through the video decoder is still an image)
    if c[2] == 'image' then assert(err:find("image: '", 1, true) and not err:find('video:', 1, true), err) end
    -- and not in the words of a library's error code, which mislead about files that exist
    for _, lie in ipairs(MISLEADING) do
      assert(not err:find(lie, 1, true), ('%s via %s: misleading %q in: %s'):format(c[1], c[2], lie, err))
    end
  end
  -- every file in the folder has a case (or one of the tolerated ones below)
  for name in io.popen('ls ' .. BAD):lines() do
    local tolerated = {['wav_data_len_huge.wav'] = true, ['png_ztxt_bomb.png'] = true, ['mp4_corrupt_mdat.mp4'] = true,
                       ['png_bomb_1bit_8192.png'] = true}
    assert(seen[name] or tolerated[name], name .. ' has no case in test_io_hostile.lua')
  end
end)

test('a PNG carrying a 16 MB zTXt bomb, an iCCP and a tEXt chunk loads its pixels; the extras are skipped', function()
  local img = fada.image.load(BAD .. 'png_ztxt_bomb.png', {dtype = 'u8'})
  assert_eq(table.concat(img:size(), 'x'), '16x16x3')
  assert_close(img, fada.full({16, 16, 3}, 0x80, 'u8'), 0, 0)
end)

-- The peak memory of `code` run in a fresh fadalua, in MB: VmHWM at its end
-- minus VmRSS before it (the interpreter and fada already loaded).
local function peak_mb(code)
  local prog = ([[
local function status(key)
  for l in io.lines('/proc/self/status') do
    local v = l:match('^' .. key .. ':%%s+(%%d+)')
    if v then return tonumber(v) end
  end
end
local before = status('VmRSS')
%s
io.write(('%%.1f'):format((status('VmHWM') - before) / 1024))]]):format(code)
  local out, err, rc = sh.run('-e ' .. sh.quote(prog))
  assert(rc == 0 and tonumber(out), ('child failed (%s): %s %s'):format(tostring(rc), out, err))
  return tonumber(out)
end

test('a PNG bomb at the pixel limit loads as a portrait in a few MB: rows are cropped and averaged as they inflate',
     function()
  -- 8192 x 8192 (8 KB on disk) as f32 RGB would be 805 MB; the portrait keeps 64 x 64
  local mb = peak_mb([[
local img = require('fada.pipeline').load_portrait('tests/data/bad/png_bomb_1bit_8192.png', 64, {})
assert(table.concat(img:size(), 'x') == '1x3x64x64' and img:max():item() == -1 and img:min():item() == -1)]])
  print(('    8192 x 8192 PNG as a 64 x 64 portrait: peak +%.1f MB'):format(mb))
  assert(mb < 48, ('peak %.1f MB'):format(mb))
end)

test('past the limit, max_pixels lets a 12000 x 12000 PNG through, still decoded a row at a time', function()
  local mb = peak_mb([[
local x, info = fada.image.load('tests/data/bad/png_bomb_1bit_12000.png', {channels = 3, size = 32, fit = 'crop',
                                max_pixels = 12000 * 12000})
assert(table.concat(x:size(), 'x') == '3x32x32' and x:max():item() == 0 and info.width == 12000)]])
  print(('    12000 x 12000 PNG to 32 x 32 with max_pixels raised: peak +%.1f MB'):format(mb))
  assert(mb < 48, ('peak %.1f MB'):format(mb))
  checkerror(function() fada.image.load(BAD .. 'png_bomb_1bit_8192.png', {max_pixels = 1000}) end,
             'above the limit of 1000 pixels')
  checkerror(function() fada.image.load(BAD .. 'png_bomb_1bit_8192.png', {max_pixels = 1 << 40}) end,
             'max_pixels 1099511627776 out of range')
end)

test('a JPEG at 48 megapixels as a portrait: FFmpeg holds the frame, no float copy of it; draft decodes at 1/8',
     function()
  local jpg = peer.tmp('big.jpg')
  peer.sh('ffmpeg -v error -y -f lavfi -i color=c=0x808080:s=8000x6000 -frames:v 1 -q:v 10 ' .. jpg)
  local load = "local x = fada.image.load('%s', {channels = 3, size = 64, fit = 'crop', draft = %s})\n" ..
               "assert(table.concat(x:size(), 'x') == '3x64x64' and math.abs(x:mean():item() - 128 / 255) < 0.01)"
  local exact, draft = peak_mb(load:format(jpg, 'false')), peak_mb(load:format(jpg, 'true'))
  print(('    8000 x 6000 JPEG as a 64 x 64 portrait: peak +%.1f MB exact, +%.1f MB draft'):format(exact, draft))
  -- the decoder's YUV 4:2:0 frame (1.5 B/pixel) and its packed RGB copy (3 B/pixel): 216 MB; a float copy
  -- of the picture would add 576 MB
  assert(exact < 8000 * 6000 * 6.5 / 2^20, ("exact: peak %.1f MB"):format(exact))
  assert(draft < 48, ('draft: peak %.1f MB'):format(draft))
  os.remove(jpg)
end)

test('a WAV whose data chunk claims 4 GB loads the 100 samples it has', function()
  local x = fada.audio.load(BAD .. 'wav_data_len_huge.wav')
  assert_eq(x:size(1), 100)
end)

test('a corrupt MP4 payload decodes with concealment or fails cleanly, never crashes', function()
  local ok, res = pcall(load.video, BAD .. 'mp4_corrupt_mdat.mp4')
  assert(ok or tostring(res):find(BAD .. 'mp4_corrupt_mdat.mp4', 1, true), tostring(res))
  pcall(load.audio, BAD .. 'mp4_corrupt_mdat.mp4')
end)

test('missing paths, directories and empty paths, for every loader', function()
  for kind, fn in pairs(load) do
    checkerror(fn, 'No such file or directory', BAD .. 'does_not_exist.bin')
    checkerror(fn, 'is a directory', BAD)
    checkerror(fn, 'empty path', '')
  end
end)

test('unwritable outputs: missing directory, a directory as the file, a read-only directory', function()
  local ro = peer.tmp('ro')
  peer.sh('mkdir -p ' .. ro .. ' && chmod 555 ' .. ro)
  local writable = os.execute('touch ' .. ro .. '/probe 2>/dev/null') -- root ignores permissions
  os.remove(ro .. '/probe')
  local savers = {
    function(p) fada.safetensors.save(p, {a = fada.ones(2)}) end,
    function(p) fada.image.save(p .. '.png', fada.zeros(3, 2, 2)) end,
    function(p) fada.audio.save(p, fada.zeros(10), 16000) end,
    function(p) fada.video.writer(p, {fps = 25, width = 16, height = 16}) end,
  }
  for _, save in ipairs(savers) do
    checkerror(save, "'/nonexistent_dir/out", '/nonexistent_dir/out')
    if not writable then checkerror(save, 'not writable', ro .. '/out') end
  end
  checkerror(savers[1], 'is a directory', ro)
  peer.sh('chmod 755 ' .. ro .. ' && rm -rf ' .. ro)
  if writable then skip('running as root: read-only directories are writable, that case was not checked') end
end)

test('huge requested sizes are refused before allocating', function()
  local small = peer.tmp('small.png')
  fada.image.save(small, fada.zeros(3, 4, 4))
  checkerror(function() fada.video.reader(small, {width = 100000, height = 100000}) end, 'output size')
  checkerror(function() fada.image.resize(fada.zeros(3, 4, 4), 1 << 20, 1 << 20) end, 'out of range')
  checkerror(function() fada.video.writer(peer.tmp('x.mp4'), {fps = 25, width = 1 << 20, height = 16}) end, 'out of range')
  checkerror(function() fada.audio.load(small, {sample_rate = 1 << 30}) end, 'out of range')
  os.remove(small)
end)
