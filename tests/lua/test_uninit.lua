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

-- Few keys take the untiled path; 40 + 20 keys the tiled one, whose scratch is not
-- zeroed. The tiled case is one batch entry and one head so that its scratch stays under
-- glibc's mmap threshold (128 KiB): mmap'd blocks come zeroed and are not perturbed. The
-- fills are finite, so stale padding that the kernel multiplies by zero stays unseen; stale
-- values that reach an output do not (checked: leaving the row maxima and sums unset fails it).
local CASES = {
  {name = 'few keys', B = 2, C = 64, heads = 2, Nk = 4, Ne = 3},
  {name = 'tiles', B = 1, C = 32, heads = 1, Nk = 40, Ne = 20},
  -- one whole block of 96 keys: its packs are written without being zeroed first
  {name = 'a whole key block', B = 1, C = 32, heads = 1, Nk = 80, Ne = 16},
  -- the AMX forward (bf16 products, its own packs and scratch): forward only, to bf16's tolerance
  {name = 'AMX tiles', B = 1, C = 32, heads = 1, Nk = 40, Ne = 20, amx = true},
}
for _, c in ipairs(CASES) do
test(('attention forward and backward (%s) match the reference under perturbed memory'):format(c.name), function()
  if c.amx and not fada.ops.nn_amx_enabled() then skip('this CPU has no AMX-BF16: the AMX attention is untested here') end
  local out = run_perturbed(([[
    local fada = require 'fada'
    local g = fada.Generator(4)
    local B, C, Nk, Ne = %d, %d, %d, %d
    local opt = {heads = %d, bf16 = %s}
    local q, k, v = fada.randn({B, 37, C}, g), fada.randn({B, Nk, C}, g), fada.randn({B, Nk, C}, g)
    opt.extra_k, opt.extra_v = fada.randn({B, Ne, C}, g), fada.randn({B, Ne, C}, g)
    local o, lse = fada.ops.attention(q, k, v, opt)
    local dout = fada.randn({B, 37, C}, g)
    local dq, dk, dv = fada.ops.attention_backward(dout, q, k, v, o, lse, opt)
    local ro = fada.ops.ref.attention(q, k, v, opt)
    local rq, rk, rv = fada.ops.ref.attention_backward(dout, q, k, v, o, lse, opt)
    local worst = 0
    for _, pair in ipairs(opt.bf16 and {{o, ro}} or {{o, ro}, {dq, rq}, {dk, rk}, {dv, rv}}) do
      worst = math.max(worst, (pair[1] - pair[2]):abs():max():item())
    end
    io.write(('%%.9g'):format(worst))
  ]]):format(c.B, c.C, c.Nk, c.Ne, c.heads, tostring(c.amx == true)))
  local worst = tonumber(out:match('^(%S+)$'))
  assert(worst, 'child failed: ' .. out)
  local tol = c.amx and 2e-2 or 1e-4
  assert(worst < tol, ('attention differs from the reference by %g (tolerance %g)'):format(worst, tol))
end)
end
