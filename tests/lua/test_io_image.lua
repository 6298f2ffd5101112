-- fada.image: PNG round trips of every kind, files made by the ffmpeg CLI,
-- FFmpeg-decoded formats, resize against torch and a closed form, crop.
local fada = require 'fada'
local peer = dofile('tests/lua/io_peer.lua')
local img = fada.image

local function u8_image(h, w, c, seed)
  return fada.randint(0, 256, h, w, c, 'u8', fada.Generator(seed))
end

test('PNG round trips: gray, gray+alpha, RGB, RGBA at 8 bits, exact', function()
  for c = 1, 4 do
    local x = u8_image(13, 17, c, c)
    local path = peer.tmp(('c%d.png'):format(c))
    img.save(path, x)
    local y = img.load(path, {dtype = 'u8'})
    assert_eq(table.concat(y:size(), 'x'), ('13x17x%d'):format(c))
    assert_close(y, x, 0, 0, ('%d channels'):format(c))
    os.remove(path)
  end
end)

test('PNG 16-bit round trips f32 CHW within half a 16-bit step', function()
  for _, c in ipairs({1, 3, 4}) do
    local x = fada.rand(c, 9, 11, fada.Generator(7 + c))
    local path = peer.tmp('16.png')
    img.save(path, x, {bits = 16})
    local y = img.load(path)
    assert_eq(y:dtype(), 'f32')
    assert_close(y, x, 0.5 / 65535 + 1e-7, 0, ('16-bit %d channels'):format(c))
    -- the same file as u8 is the 16-bit value rounded to 8 bits
    local u = img.load(path, {dtype = 'u8'}):contiguous():view(-1):tolist()
    local xs = x:permute(2, 3, 1):contiguous():view(-1):tolist()
    for i = 1, #xs do
      assert(math.abs(u[i] - xs[i] * 255) <= 0.5 + 1e-3, ('u8 of 16-bit: %d vs %g'):format(u[i], xs[i] * 255))
    end
    os.remove(path)
  end
end)

test('PNG palette (indexed) round trips RGB and RGBA, and refuses > 256 colours', function()
  -- 4 colours, one half transparent
  local x = fada.tensor({{{255, 0, 0, 255}, {0, 255, 0, 128}}, {{0, 0, 255, 255}, {255, 0, 0, 255}}}):to('u8')
  local path = peer.tmp('pal.png')
  img.save(path, x, {palette = true})
  assert(peer.sh('ffprobe -v error -show_entries stream=pix_fmt -of csv=p=0 ' .. path):find('pal8'), 'not indexed')
  assert_close(img.load(path, {dtype = 'u8'}), x, 0, 0, 'rgba palette')
  local rgb = x:narrow(3, 1, 3):contiguous()
  img.save(path, rgb, {palette = true})
  assert_close(img.load(path, {dtype = 'u8'}), rgb, 0, 0, 'rgb palette')
  checkerror(function() img.save(path, u8_image(32, 32, 3, 1), {palette = true}) end, 'more than 256 colours')
  os.remove(path)
end)

test('PNGs written by the ffmpeg CLI (1-bit, pal8, gray16, rgba64) decode to the source', function()
  local x = peer.picture(24, 40)
  local src = peer.tmp('src.png')
  img.save(src, x)
  local cases = {
    {'rgba64be', 4, 1}, {'rgb48be', 3, 1}, {'gray16be', 1, 2}, {'gray', 1, 2}, {'pal8', 3, 0},
  }
  for _, case in ipairs(cases) do
    local out = peer.tmp(case[1] .. '.png')
    peer.sh(('ffmpeg -v error -y -i %s -pix_fmt %s %s'):format(src, case[1], out))
    local y = img.load(out, {dtype = 'u8'})
    assert_eq(y:size(3), case[2], case[1] .. ' channels')
    if case[1] == 'pal8' then -- ffmpeg quantised the colours: compare with its own expansion to RGB
      local back = peer.tmp('back.png')
      peer.sh(('ffmpeg -v error -y -i %s -pix_fmt rgb24 %s'):format(out, back))
      assert_close(y, img.load(back, {dtype = 'u8'}), 0, 0, 'pal8')
      assert(peer.psnr(y, x) > 20, 'pal8 near the source')
      os.remove(back)
    elseif case[2] >= 3 then
      -- swscale's 8 -> 16-bit expansion may be off by one level
      assert_close(y:narrow(3, 1, 3):to('f32'), x:to('f32'), case[3], 0, case[1])
    else -- gray: ffmpeg's BT.601 luma, ours within a level or two
      assert_close(y:to('f32'), img.load(src, {dtype = 'u8', channels = 1}):to('f32'), case[3] + 0.01, 0, case[1])
    end
    os.remove(out)
  end
  local mono = peer.tmp('mono.png')
  peer.sh(('ffmpeg -v error -y -i %s -pix_fmt monob %s'):format(src, mono))
  local m = img.load(mono, {dtype = 'u8'})
  for _, v in ipairs(m:contiguous():view(-1):tolist()) do assert(v == 0 or v == 255, '1-bit expands to 0/255') end
  os.remove(mono); os.remove(src)
end)

test('JPEG, WebP and BMP decode through FFmpeg; a PNG named .jpg still loads', function()
  local x = peer.picture(32, 48)
  local src = peer.tmp('src.png')
  img.save(src, x)
  local args = {jpg = '-q:v 2', webp = '-quality 95', bmp = ''}
  for _, ext in ipairs({'jpg', 'webp', 'bmp'}) do
    local out = peer.tmp('pic.' .. ext)
    peer.sh(('ffmpeg -v error -y -i %s %s %s'):format(src, args[ext], out))
    local y = img.load(out, {dtype = 'u8'})
    assert_eq(table.concat(y:size(), 'x'), '32x48x3', ext)
    local p = peer.psnr(y, x)
    assert(p > (ext == 'bmp' and 1e9 or 30), ('%s: PSNR %.1f dB'):format(ext, p))
    os.remove(out)
  end
  local liar = peer.tmp('png_in_disguise.jpg')
  peer.sh(('cp %s %s'):format(src, liar))
  assert_close(img.load(liar, {dtype = 'u8'}), x, 0, 0, 'by signature')
  os.remove(liar); os.remove(src)
end)

test('f32 ranges and channel conversion', function()
  local x = u8_image(5, 6, 3, 3)
  local path = peer.tmp('r.png')
  img.save(path, x)
  local a = img.load(path)                     -- [3, 5, 6] in [0, 1]
  local b = img.load(path, {range = '-1,1'})
  assert_eq(table.concat(b:size(), 'x'), '3x5x6')
  local la, lb = a:contiguous():view(-1):tolist(), b:contiguous():view(-1):tolist()
  for i = 1, #la do assert(math.abs(lb[i] - (2 * la[i] - 1)) < 1e-6, 'range -1,1') end
  local g = img.load(path, {dtype = 'u8', channels = 1})
  local px = x:select(1, 2):select(1, 3):contiguous():tolist() -- pixel (2, 3)
  assert(math.abs(g:get(2, 3, 1) - (0.299 * px[1] + 0.587 * px[2] + 0.114 * px[3])) <= 0.5 + 1e-6, 'luma')
  local rgba = img.load(path, {dtype = 'u8', channels = 4})
  assert_eq(rgba:get(4, 5, 4), 255, 'opaque alpha')
  -- saving [-1, 1] floats back gives the same bytes
  local p2 = peer.tmp('r2.png')
  img.save(p2, b, {range = '-1,1'})
  assert_close(img.load(p2, {dtype = 'u8'}), x, 0, 0, 'range round trip')
  os.remove(path); os.remove(p2)
end)

test('resize: area 2x down is the 2x2 block mean (closed form); u8 HWC keeps its layout', function()
  local x = fada.rand(2, 8, 6, fada.Generator(3))
  local y = img.resize(x, 4, 3, 'area')
  local l = x:totable()
  for c = 1, 2 do for i = 1, 4 do for j = 1, 3 do
    local m = (l[c][2*i-1][2*j-1] + l[c][2*i][2*j-1] + l[c][2*i-1][2*j] + l[c][2*i][2*j]) / 4
    assert(math.abs(y:get(c, i, j) - m) < 1e-6, 'block mean')
  end end end
  local u = img.resize(u8_image(10, 12, 3, 5), 5, 7)
  assert_eq(u:dtype(), 'u8'); assert_eq(table.concat(u:size(), 'x'), '5x7x3')
end)

test('resize matches torch interpolate (bilinear align_corners=False, area)', function()
  need_torch()
  local x = fada.rand(1, 3, 37, 53, fada.Generator(11))
  local out = peer.torch([[
import torch.nn.functional as F
x = inp['x']
out['bd'] = F.interpolate(x, size=(16, 23), mode='bilinear', align_corners=False)
out['bu'] = F.interpolate(x, size=(80, 101), mode='bilinear', align_corners=False)
out['ad'] = F.interpolate(x, size=(16, 23), mode='area')
out['au'] = F.interpolate(x, size=(50, 60), mode='area')
]], {x = x})
  assert_close(img.resize(x, 16, 23, 'bilinear'), out.bd, 1e-5, 1e-5, 'bilinear down')
  assert_close(img.resize(x, 80, 101, 'bilinear'), out.bu, 1e-5, 1e-5, 'bilinear up')
  assert_close(img.resize(x, 16, 23, 'area'), out.ad, 1e-5, 1e-5, 'area down')
  assert_close(img.resize(x, 50, 60, 'area'), out.au, 1e-5, 1e-5, 'area up')
end)

-- load(path, {size, fit}) crops and resizes rows as they are decoded; the result
-- must be what loading the whole picture and then cropping and resizing gives.
local function load_then_resize(path, o, crop, h, w, mode)
  local full = img.load(path, {dtype = o.dtype or 'f32', channels = o.channels})
  local y = img.resize(img.crop(full, table.unpack(crop)):contiguous(), h, w, mode)
  if o.range == '-1,1' then y = y * 2 - 1 end
  return y
end

test('load with size: cropped and resized as it decodes, equal to load + crop + resize', function()
  local path = peer.tmp('s.png')
  img.save(path, u8_image(37, 53, 3, 21))
  local cases = {
    {{size = 16, fit = 'crop'}, 16, 16, 'area', {1, 9, 37, 37}},            -- centred square, shrinking: area
    {{size = {20, 10}, fit = 'crop'}, 20, 10, 'area', {1, 18, 37, 18}},     -- a tall window of a wide picture
    {{size = {12, 30}, fit = 'stretch'}, 12, 30, 'area', {1, 1, 37, 53}},   -- the whole picture
    {{size = 80, fit = 'crop'}, 80, 80, 'bilinear', {1, 9, 37, 37}},        -- enlarging: bilinear
    {{size = 16, fit = 'crop', resize = 'bilinear'}, 16, 16, 'bilinear', {1, 9, 37, 37}},
    {{size = 16, fit = 'crop', dtype = 'u8'}, 16, 16, 'area', {1, 9, 37, 37}},
    {{size = 16, fit = 'crop', channels = 1}, 16, 16, 'area', {1, 9, 37, 37}},
    {{size = 16, fit = 'crop', channels = 4, range = '-1,1'}, 16, 16, 'area', {1, 9, 37, 37}},
  }
  for i, c in ipairs(cases) do
    local y, info = img.load(path, c[1])
    local want = load_then_resize(path, c[1], c[5], c[2], c[3], c[4])
    assert_eq(table.concat(y:size(), 'x'), table.concat(want:size(), 'x'), 'case ' .. i)
    assert_eq(y:dtype(), want:dtype(), 'case ' .. i)
    assert_close(y, want, c[1].range and 1e-6 or 0, 0, 'case ' .. i)
    assert_eq(table.concat(info.crop, ','), table.concat(c[5], ','), 'case ' .. i .. ' crop')
    assert_eq(info.width .. 'x' .. info.height .. 'x' .. info.channels .. 'x' .. info.bits, '53x37x3x8')
  end
  -- 16-bit: the same, from 16-bit samples
  local p16 = peer.tmp('s16.png')
  img.save(p16, fada.rand(3, 29, 41, fada.Generator(5)), {bits = 16})
  assert_close(img.load(p16, {size = 9, fit = 'crop'}), load_then_resize(p16, {}, {1, 7, 29, 29}, 9, 9, 'area'), 0, 0,
               '16-bit')
  checkerror(function() img.load(path, {size = {0, 4}}) end, 'give both (1..32768) or neither')
  checkerror(function() img.load(path, {fit = 'cover'}) end, "fit must be 'crop' or 'stretch'")
  os.remove(path); os.remove(p16)
end)

test('an interlaced (Adam7) PNG loads as its plain twin, whole and resized', function()
  local plain, adam7 = peer.tmp('plain.png'), peer.tmp('adam7.png')
  local py = peer.tmp('adam7.py')
  -- a gradient written both ways by hand (neither fada nor the ffmpeg CLI writes Adam7)
  peer.write(py, ([[
import struct, sys, zlib
W, H = 45, 31
px = lambda x, y: (x * 5 + y * 3) %% 256
def chunk(k, b): return struct.pack('>I', len(b)) + k + b + struct.pack('>I', zlib.crc32(k + b) & 0xffffffff)
def png(path, interlace, raw):
    ihdr = struct.pack('>IIBBBBB', W, H, 8, 0, 0, 0, interlace)
    body = chunk(b'IHDR', ihdr) + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b'')
    open(path, 'wb').write(b'\x89PNG\r\n\x1a\n' + body)
png('%s', 0, b''.join(b'\0' + bytes(px(x, y) for x in range(W)) for y in range(H)))
passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
raw = b''.join(b'\0' + bytes(px(x, y) for x in range(x0, W, dx)) for x0, y0, dx, dy in passes for y in range(y0, H, dy)
               if x0 < W)
png('%s', 1, raw)
]]):format(plain, adam7))
  peer.sh('/usr/bin/python3 ' .. py)
  local a, b = img.load(plain, {dtype = 'u8'}), img.load(adam7, {dtype = 'u8'})
  assert_eq(table.concat(b:size(), 'x'), '31x45x1')
  assert_eq(b:get(7, 10, 1), (9 * 5 + 6 * 3) % 256, 'pixel (x 9, y 6)')
  assert_close(b, a, 0, 0, 'Adam7 = plain')
  assert_close(img.load(adam7, {size = 8, fit = 'crop'}), img.load(plain, {size = 8, fit = 'crop'}), 0, 0, 'resized')
  os.remove(plain); os.remove(adam7); os.remove(py)
end)

test('JPEG through FFmpeg: load with size equals load + crop + resize; draft (1/2..1/8 DCT) stays close', function()
  local src, jpg = peer.tmp('src.png'), peer.tmp('pic.jpg')
  img.save(src, peer.picture(240, 320))
  peer.sh(('ffmpeg -v error -y -i %s -q:v 2 %s'):format(src, jpg))
  local y, info = img.load(jpg, {channels = 3, size = 24, fit = 'crop'})
  assert_eq(table.concat(info.crop, ','), '1,41,240,240')
  assert_close(y, load_then_resize(jpg, {channels = 3}, info.crop, 24, 24, 'area'), 0, 0, 'exact')
  local d, dinfo = img.load(jpg, {channels = 3, size = 24, fit = 'crop', draft = true}) -- 1/2 scale: 120 >= 4 x 24
  assert_eq(dinfo.width .. 'x' .. dinfo.height, '320x240', 'the file size, not the draft size')
  local err = (d - y):abs()
  assert(err:mean():item() < 0.01 and err:max():item() < 0.1,
         ('draft: mean %.4f max %.4f'):format(err:mean():item(), err:max():item()))
  os.remove(src); os.remove(jpg)
end)

test('crop is a view of the right pixels and refuses out-of-bounds boxes', function()
  local x = u8_image(10, 12, 3, 9)
  local c = img.crop(x, 3, 4, 5, 6)
  assert_eq(table.concat(c:size(), 'x'), '5x6x3')
  assert(c:is_same_storage(x), 'a view')
  assert_eq(c:get(1, 1, 2), x:get(3, 4, 2)); assert_eq(c:get(5, 6, 3), x:get(7, 9, 3))
  local f = fada.rand(3, 10, 12)
  assert_eq(img.crop(f, 2, 2, 4, 4):get(2, 1, 1), f:get(2, 2, 2))
  checkerror(function() img.crop(x, 8, 1, 5, 2) end, 'outside an image of 12x10')
end)

test('save refuses wrong shapes, extensions and places', function()
  checkerror(function() img.save(peer.tmp('x.jpg'), u8_image(2, 2, 3, 1)) end, 'only PNG')
  checkerror(function() img.save(peer.tmp('x.png'), fada.rand(5, 4, 4)) end, '5 channels')
  checkerror(function() img.save('/nonexistent_dir/x.png', u8_image(2, 2, 3, 1)) end, "'/nonexistent_dir/x.png'")
  checkerror(function() img.load('/nonexistent_dir/x.png') end, 'No such file')
end)
