-- Kernels must not read memory they did not write. glibc's MALLOC_PERTURB_
-- fills every malloc'd block with a chosen byte (0x7f here: 3.4e38 as f32),
-- so a kernel that reads stale scratch memory gives inf or a different
-- answer. (A spectrogram that did so once made training NaN.) Not under
-- ASan, whose allocator ignores MALLOC_PERTURB_.
-- labels: nosan
local fada = require 'fada'

local function run_perturbed(script)
  local path = os.tmpname()
  local f = assert(io.open(path, 'w'))
  f:write(script)
  f:close()
  local p = assert(io.popen(('MALLOC_PERTURB_=128 %q %q 2>&1'):format(arg[-1], path)))
  local out = p:read('a')
  p:close()
  os.remove(path)
  return out
end

test('spectrogram and log-mel are the same with perturbed scratch memory', function()
  local out = run_perturbed([[
    local fada = require 'fada'
    local x = fada.randn(16000, fada.Generator(3)) * 0.1
    local s = fada.audio.spectrogram(x, {sample_rate = 16000, n_fft = 400, hop = 160})
    local m = fada.audio.log_mel(x, {sample_rate = 16000, n_fft = 400, hop = 160, n_mels = 40})
    io.write(('%.9g %.9g'):format(s:sum():item(), m:sum():item()))
  ]])
  local s, m = out:match('^(%S+) (%S+)$')
  assert(s and m, 'child failed: ' .. out)
  local x = fada.randn(16000, fada.Generator(3)) * 0.1
  assert_close(tonumber(s), fada.audio.spectrogram(x, {sample_rate = 16000, n_fft = 400, hop = 160}):sum():item(), 0, 1e-6, 'spectrogram')
  assert_close(tonumber(m), fada.audio.log_mel(x, {sample_rate = 16000, n_fft = 400, hop = 160, n_mels = 40}):sum():item(), 0, 1e-6, 'log-mel')
end)

-- few keys take the untiled path; 101 + 30 keys the tiled one, whose scratch is not zeroed
for _, keys in ipairs{{4, 3, 'few keys'}, {101, 30, 'tiles'}} do
test(('attention forward and backward (%s) match the reference under perturbed memory'):format(keys[3]), function()
  local out = run_perturbed(([[
    local fada = require 'fada'
    local g = fada.Generator(4)
    local q, k, v = fada.randn({2, 37, 64}, g), fada.randn({2, %d, 64}, g), fada.randn({2, %d, 64}, g)
    local ek, ev = fada.randn({2, %d, 64}, g), fada.randn({2, %d, 64}, g)
    local o, lse = fada.ops.attention(q, k, v, {heads = 2, extra_k = ek, extra_v = ev})
    local dout = fada.randn({2, 37, 64}, g)
    local dq, dk, dv = fada.ops.attention_backward(dout, q, k, v, o, lse, {heads = 2, extra_k = ek, extra_v = ev})
    local ro = fada.ops.ref.attention(q, k, v, {heads = 2, extra_k = ek, extra_v = ev})
    local rq, rk, rv = fada.ops.ref.attention_backward(dout, q, k, v, o, lse, {heads = 2, extra_k = ek, extra_v = ev})
    local worst = 0
    for _, pair in ipairs{{o, ro}, {dq, rq}, {dk, rk}, {dv, rv}} do
      worst = math.max(worst, (pair[1] - pair[2]):abs():max():item())
    end
    io.write(('%%.9g'):format(worst))
  ]]):format(keys[1], keys[1], keys[2], keys[2]))
  local worst = tonumber(out:match('^(%S+)$'))
  assert(worst, 'child failed: ' .. out)
  assert(worst < 1e-4, ('attention differs from the reference by %g'):format(worst))
end)
end
