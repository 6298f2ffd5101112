-- Benchmark of the conv / matmul kernels (fada.ops) against this machine's
-- measured FMA peak and against PyTorch measured in the same run.
--
--   build/fadalua scripts/bench_ops.lua [--peak GFLOPS] [--samples 7] [--threads N]
--                                      [--min-time 0.15] [--rounds 1] [--no-torch] [--quick]
--
-- Each figure is the median [min-max] over `samples` samples; a sample is a
-- loop of calls lasting at least --min-time seconds, after warm-up calls (more where fd_tune
-- times the alternatives on a shape's first 10 calls).
-- GFLOP/s are nominal (2*MACs, padded taps included). The peak is measured
-- with an FMA-only loop on all threads (fada.ops.measure_peak_gflops) unless
-- --peak is given. PyTorch runs in /usr/bin/python3 with OPENBLAS_NUM_THREADS=1
-- (its f32 matmul is OpenBLAS; one thread pool, so the two pools do not oversubscribe the cores)
-- and torch.set_num_threads(threads), with the same sampling.
require('fada.cli').help_from_header(arg)
local fada = require 'fada'
local ops = fada.ops

local opt = {samples = 7, min_time = 0.15, threads = fada.get_num_threads(), torch = true, rounds = 1}
do
  local i = 1
  while i <= #arg do
    local a = arg[i]
    if a == '--peak' then opt.peak = tonumber(arg[i + 1]); i = i + 1
    elseif a == '--samples' then opt.samples = tonumber(arg[i + 1]); i = i + 1
    elseif a == '--threads' then opt.threads = tonumber(arg[i + 1]); i = i + 1
    elseif a == '--min-time' then opt.min_time = tonumber(arg[i + 1]); i = i + 1
    elseif a == '--rounds' then opt.rounds = tonumber(arg[i + 1]); i = i + 1
    elseif a == '--no-torch' then opt.torch = false
    elseif a == '--quick' then opt.quick = true
    else error('unknown argument ' .. a) end
    i = i + 1
  end
end
fada.set_num_threads(opt.threads)

local function channels_last(t) return t:permute(1, 3, 4, 2):contiguous():permute(1, 4, 2, 3) end

-- median [min-max] of seconds per call
local function timeit(f, warm)
  for _ = 1, warm or 1 do f() end
  local ts = {}
  for s = 1, opt.samples do
    local t0, n = fada.clock(), 0
    repeat f(); n = n + 1 until fada.clock() - t0 >= opt.min_time
    ts[s] = (fada.clock() - t0) / n
  end
  table.sort(ts)
  return ts[(#ts + 1) // 2], ts[1], ts[#ts]
end

-- ---- shapes: a small denoiser (64-256 channels, 16^2-64^2, batch 1-8)
local conv_shapes = {
  {1, 64, 64}, {8, 64, 64}, {1, 128, 32}, {8, 128, 32}, {1, 128, 64}, {1, 256, 16}, {8, 256, 16}, {1, 256, 32},
}
local mm_shapes = { -- M, K, N: linear x[M, K] W[N, K]^T
  {4096, 64, 192}, {4096, 128, 384}, {1024, 256, 768}, {1024, 256, 256}, {256, 256, 1024}, {4096, 320, 320},
  {1024, 1024, 1024},
}
local train_shapes = { -- conv forward + backward (data, weights, bias): a training step's share
  {8, 64, 32}, {4, 128, 32},
}
local bmm_shapes = { -- batch, M, K, N: attention scores / values
  {8, 1024, 64, 1024}, {8, 1024, 1024, 64}, {4, 256, 32, 512},
}
if opt.quick then
  conv_shapes = {conv_shapes[1], conv_shapes[3]}
  mm_shapes = {mm_shapes[2], mm_shapes[7]}
  bmm_shapes = {bmm_shapes[1]}
  train_shapes = {train_shapes[1]}
end

-- ---- peak
local peak = opt.peak
if not peak then
  peak = 0
  for _ = 1, 3 do peak = math.max(peak, ops.measure_peak_gflops(opt.threads, 0.5)) end
end
local cpu = fada.cpu and fada.cpu() or {}
print(('fada.ops benchmark: %d thread(s), peak f32 %.1f GFLOP/s (%s), %d samples x >= %.2fs'):format(
  opt.threads, peak, opt.peak and 'given' or 'measured FMA loop', opt.samples, opt.min_time))

local rows = {}
local function record(kind, shape, variant, flops, med, lo, hi)
  local r = {kind = kind, shape = shape, variant = variant, gflops = flops / med * 1e-9,
             lo = flops / hi * 1e-9, hi = flops / lo * 1e-9, ms = med * 1e3}
  rows[#rows + 1] = r
  print(('%-6s %-22s %-18s %8.3f ms %7.1f GFLOP/s [%6.1f-%6.1f] %5.1f%% of peak'):format(kind, shape, variant, r.ms,
    r.gflops, r.lo, r.hi, 100 * r.gflops / peak))
  return r
end

-- ---- ours
local function run_ours()
  for _, s in ipairs(conv_shapes) do
    local n, c, hw = s[1], s[2], s[3]
    local x, w, b = fada.randn(n, c, hw, hw), fada.randn(c, c, 3, 3), fada.randn(c)
    local xc, xb = channels_last(x), x:blocked() -- xb: nChw8c, what jit:avx2 reads and writes (no reorders)
    local flops = 2 * n * c * c * 9 * hw * hw
    local shape = ('N%d C%d %d^2'):format(n, c, hw)
    -- auto: the layout policy timed per shape (the first 10 calls); any / plain forced
    record('conv', shape, 'fada nchw', flops, timeit(function() return ops.conv2d(x, w, b, {padding = 1}) end, 11))
    record('conv', shape, 'fada blocked', flops, timeit(function() return ops.conv2d(xb, w, b, {padding = 1}) end))
    record('conv', shape, 'fada cl any', flops,
      timeit(function() return ops.conv2d(xc, w, b, {padding = 1, layout_policy = 'any'}) end))
    record('conv', shape, 'fada cl plain', flops,
      timeit(function() return ops.conv2d(xc, w, b, {padding = 1, layout_policy = 'plain'}) end))
    record('conv', shape, 'fada bf16 cl', flops,
      timeit(function() return ops.conv2d(xc, w, b, {padding = 1, compute = 'bf16'}) end))
    collectgarbage()
  end
  for _, s in ipairs(train_shapes) do
    local n, c, hw = s[1], s[2], s[3]
    local x, w, b = channels_last(fada.randn(n, c, hw, hw)), fada.randn(c, c, 3, 3), fada.randn(c)
    local gy = channels_last(fada.randn(n, c, hw, hw))
    local flops = 3 * 2 * n * c * c * 9 * hw * hw
    record('train', ('N%d C%d %d^2'):format(n, c, hw), 'fada cl', flops, timeit(function()
      ops.conv2d(x, w, b, {padding = 1})
      return ops.conv2d_backward(gy, x, w, {padding = 1})
    end, 11))
    collectgarbage()
  end
  for _, s in ipairs(mm_shapes) do
    local m, k, nn = s[1], s[2], s[3]
    local x, w, b = fada.randn(m, k), fada.randn(nn, k), fada.randn(nn)
    local flops = 2 * m * k * nn
    local shape = ('%dx%d->%d'):format(m, k, nn)
    -- 12 warm-up calls: the first 10 of a shape time oneDNN against OpenBLAS
    record('linear', shape, 'fada', flops, timeit(function() return ops.linear(x, w, b) end, 12))
    record('linear', shape, 'fada bf16', flops, timeit(function() return ops.linear(x, w, b, {compute = 'bf16'}) end))
    collectgarbage()
  end
  for _, s in ipairs(bmm_shapes) do
    local bt, m, k, nn = s[1], s[2], s[3], s[4]
    local a, bb = fada.randn(bt, m, k), fada.randn(bt, k, nn)
    local flops = 2 * bt * m * k * nn
    local shape = ('%dx%dx%d@%d'):format(bt, m, k, nn)
    record('bmm', shape, 'fada', flops, timeit(function() return fada.matmul(a, bb) end, 12))
    collectgarbage()
  end
end

-- ---- PyTorch, same shapes and sampling, in one python process
local function shapes_py(list)
  local out = {}
  for i, s in ipairs(list) do out[i] = '(' .. table.concat(s, ',') .. ')' end
  return '[' .. table.concat(out, ',') .. ']'
end

local has_torch = opt.torch and os.execute('/usr/bin/python3 -c "import torch" >/dev/null 2>&1') == true
local function run_torch()
  if has_torch then
    local script = ([[
import time, torch, torch.nn.functional as F
torch.set_num_threads(%d)
S, MT = %d, %f
def timeit(f):
    f()
    ts = []
    for _ in range(S):
        t0 = time.perf_counter(); n = 0
        while True:
            f(); n += 1
            if time.perf_counter() - t0 >= MT: break
        ts.append((time.perf_counter() - t0) / n)
    ts.sort()
    return ts[(len(ts) - 1) // 2], ts[0], ts[-1]
with torch.inference_mode():
    for (n, c, hw) in %s:
        x = torch.randn(n, c, hw, hw); w = torch.randn(c, c, 3, 3); b = torch.randn(c)
        xc = x.contiguous(memory_format=torch.channels_last)
        print('conv', n, c, hw, 'torch nchw', *timeit(lambda: F.conv2d(x, w, b, padding=1)))
        print('conv', n, c, hw, 'torch cl', *timeit(lambda: F.conv2d(xc, w, b, padding=1)))
for (n, c, hw) in %s:
    x = torch.randn(n, c, hw, hw).contiguous(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(c, c, 3, 3, requires_grad=True); b = torch.randn(c, requires_grad=True)
    gy = torch.randn(n, c, hw, hw).contiguous(memory_format=torch.channels_last)
    def step():
        y = F.conv2d(x, w, b, padding=1)
        return torch.autograd.grad(y, (x, w, b), gy)
    print('train', n, c, hw, 'torch cl', *timeit(step))
with torch.inference_mode():
    for (m, k, nn) in %s:
        x = torch.randn(m, k); w = torch.randn(nn, k); b = torch.randn(nn)
        print('linear', m, k, nn, 'torch', *timeit(lambda: F.linear(x, w, b)))
    for (bt, m, k, nn) in %s:
        a = torch.randn(bt, m, k); bb = torch.randn(bt, k, nn)
        print('bmm', bt, m, k, nn, 'torch', *timeit(lambda: torch.matmul(a, bb)))
  ]]):format(opt.threads, opt.samples, opt.min_time, shapes_py(conv_shapes), shapes_py(train_shapes), shapes_py(mm_shapes),
      shapes_py(bmm_shapes))
    local path = os.tmpname()
    local f = assert(io.open(path, 'w'))
    f:write(script)
    f:close()
    local p = assert(io.popen('OPENBLAS_NUM_THREADS=1 /usr/bin/python3 ' .. path .. ' 2>&1'))
    for line in p:lines() do
      local words = {}
      for wd in line:gmatch('%S+') do words[#words + 1] = wd end
      local kind = words[1]
      local med, lo, hi, shape, variant, flops
      if kind == 'conv' or kind == 'train' then
        local n, c, hw = tonumber(words[2]), tonumber(words[3]), tonumber(words[4])
        shape, variant = ('N%d C%d %d^2'):format(n, c, hw), words[5] .. ' ' .. words[6]
        flops = (kind == 'train' and 3 or 1) * 2 * n * c * c * 9 * hw * hw
        med, lo, hi = tonumber(words[7]), tonumber(words[8]), tonumber(words[9])
      elseif kind == 'linear' then
        local m, k, nn = tonumber(words[2]), tonumber(words[3]), tonumber(words[4])
        shape, variant, flops = ('%dx%d->%d'):format(m, k, nn), words[5], 2 * m * k * nn
        med, lo, hi = tonumber(words[6]), tonumber(words[7]), tonumber(words[8])
      elseif kind == 'bmm' then
        local bt, m, k, nn = tonumber(words[2]), tonumber(words[3]), tonumber(words[4]), tonumber(words[5])
        shape, variant, flops = ('%dx%dx%d@%d'):format(bt, m, k, nn), words[6], 2 * bt * m * k * nn
        med, lo, hi = tonumber(words[7]), tonumber(words[8]), tonumber(words[9])
      end
      if med then record(kind, shape, variant, flops, med, lo, hi) else print('torch: ' .. line) end
    end
    p:close()
    os.remove(path)
  else
    print('PyTorch: not measured (' .. (opt.torch and '/usr/bin/python3 cannot import torch' or '--no-torch') .. ')')
  end
end

-- Rounds alternate fada and torch, so a change of load on this shared
-- machine hits both; the summary keeps each variant's best round.
for round = 1, opt.rounds do
  if opt.rounds > 1 then print(('-- round %d of %d, load %s'):format(round, opt.rounds, io.open('/proc/loadavg'):read('l'))) end
  run_ours()
  run_torch()
  -- a loaded machine depresses the peak loop too: keep the highest seen
  if not opt.peak then peak = math.max(peak, ops.measure_peak_gflops(opt.threads, 0.5)) end
end
print(('peak used for the summary: %.1f GFLOP/s (highest measured in the run)'):format(peak))

-- ---- summary: best of ours vs best of torch per shape
print()
print(('%-6s %-22s %10s %7s %10s %7s %8s'):format('op', 'shape', 'fada', '%peak', 'torch', '%peak', 'ratio'))
local best = {}
local order = {}
for _, r in ipairs(rows) do
  local key = r.kind .. ' ' .. r.shape
  if not best[key] then best[key] = {}; order[#order + 1] = {key, r.kind, r.shape} end
  local who = r.variant:match('^torch') and 'torch' or (r.variant:match('bf16') and 'bf16' or 'fada')
  if not best[key][who] or r.gflops > best[key][who] then best[key][who] = r.gflops end
end
for _, o in ipairs(order) do
  local b = best[o[1]]
  local ours, theirs = b.fada or 0, b.torch
  print(('%-6s %-22s %10.1f %6.1f%% %10s %7s %8s'):format(o[2], o[3], ours, 100 * ours / peak,
    theirs and ('%.1f'):format(theirs) or '-', theirs and ('%.1f%%'):format(100 * theirs / peak) or '-',
    theirs and ('%.2fx'):format(ours / theirs) or '-'))
end
local picks = {}
for _, c in ipairs(ops.matmul_choices()) do
  picks[#picks + 1] = ('%dx%dx%d b%d: %s'):format(c.m, c.k, c.n, c.batch, c.backend)
end
print('matmul backend per shape (timed): ' .. table.concat(picks, ', '))
local fb = ops.fallbacks()
print(('bf16 calls that fell back to f32: %d (CPU avx512bf16: %s)'):format(fb.bf16, tostring(cpu.avx512bf16)))
