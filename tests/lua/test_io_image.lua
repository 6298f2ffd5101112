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
