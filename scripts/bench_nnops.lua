-- Benchmark of the nn ops (not a test): GroupNorm+SiLU bandwidth against a
-- copy kernel over the same bytes, attention GFLOP/s against the machine's
-- measured FMA peak, and the same shapes in PyTorch (/usr/bin/python3) in
-- the same run when it is installed.
--
--   build/fadalua scripts/bench_nnops.lua [--threads N] [--peak GFLOPS] [--samples 7] [--quick] [--no-torch]
--
-- Every figure is the median of --samples timed samples (each sample repeats
-- the call until it lasts >= 20 ms, after 2 warm-up calls); "cpu ms" is the
-- median process CPU time per call and "best" the fastest sample, which
-- show what the kernel does when other processes leave it the cores. Outputs are
-- released after each call so the memory pool hands the same buffers back
-- (the steady state inside a model).
require('fada.cli').help_from_header(arg)
local fada = require 'fada'
local ops = fada.ops
local clock = fada.clock

local opt = {threads = fada.get_num_threads(), samples = 7}
local i = 1
while arg and arg[i] do
  local a = arg[i]
  if a == '--threads' then opt.threads = tonumber(arg[i + 1]); i = i + 1
  elseif a == '--peak' then opt.peak = tonumber(arg[i + 1]); i = i + 1
  elseif a == '--samples' then opt.samples = tonumber(arg[i + 1]); i = i + 1
  elseif a == '--quick' then opt.quick = true
  elseif a == '--no-torch' then opt.no_torch = true
  else error('unknown argument ' .. a) end
  i = i + 1
end
fada.set_num_threads(opt.threads)

local function median(t)
  table.sort(t)
  local n = #t
  return n % 2 == 1 and t[(n + 1) // 2] or (t[n // 2] + t[n // 2 + 1]) / 2
end

-- Median seconds per call of fn (which returns tensors to release), wall
-- clock and process CPU time (all threads; with one thread it is the cost
-- without the waits when other processes hold the cores).
local function time_it(fn)
  local function once()
    local outs = {fn()}
    for _, o in ipairs(outs) do if fada.is_tensor(o) then o:release() end end
  end
  once(); once()
  local t0 = clock()
  once()
  local reps = math.max(1, math.ceil(0.02 / math.max(clock() - t0, 1e-7)))
  local samples, cpu = {}, {}
  for _ = 1, opt.samples do
    local s, c = clock(), os.clock()
    for _ = 1, reps do once() end
    samples[#samples + 1] = (clock() - s) / reps
    cpu[#cpu + 1] = (os.clock() - c) / reps
  end
  local best = math.huge
  for _, v in ipairs(samples) do best = math.min(best, v) end
  return median(samples), median(cpu), best
end

-- ---- the PyTorch peer ---------------------------------------------------------------

local torch_ok = not opt.no_torch and os.execute('/usr/bin/python3 -c "import torch" >/dev/null 2>&1') == true

-- Runs a Python timing script for the given cases; returns {key = seconds}.
local function torch_times(kind, cases)
  if not torch_ok then return {} end
  local base = os.tmpname()
  local py, out = base .. '.py', base .. '.out'
  local f = assert(io.open(py, 'w'))
  f:write(([[
import time, statistics, torch
import torch.nn.functional as F
torch.set_num_threads(%d)
SAMPLES = %d
def timeit(fn):
    fn(); fn()
    t0 = time.perf_counter(); fn(); one = time.perf_counter() - t0
    reps = max(1, int(0.02 / max(one, 1e-7)) + 1)
    s = []
    for _ in range(SAMPLES):
        t0 = time.perf_counter()
        for _ in range(reps): fn()
        s.append((time.perf_counter() - t0) / reps)
    return statistics.median(s)
res = []
with torch.no_grad():
]]):format(opt.threads, opt.samples))
  for _, c in ipairs(cases) do
    if kind == 'gn' then
      f:write(('    x = torch.randn(%d, %d, %d, %d)\n'):format(c.N, c.C, c.H, c.W))
      if c.cl then f:write('    x = x.contiguous(memory_format=torch.channels_last)\n') end
      f:write(('    w = torch.randn(%d); b = torch.randn(%d)\n'):format(c.C, c.C))
      f:write(('    res.append(("%s", timeit(lambda: F.silu(F.group_norm(x, %d, w, b, 1e-5)))))\n'):format(c.key, c.G))
    else
      f:write(('    B, Nq, Nk, Ne, H, d = %d, %d, %d, %d, %d, %d\n'):format(c.B, c.Nq, c.Nk, c.Ne, c.H, c.d))
      f:write([[
    q = torch.randn(B, H, Nq, d); k = torch.randn(B, H, Nk + Ne, d); v = torch.randn(B, H, Nk + Ne, d)
    sc = d ** -0.5
]])
      f:write(('    res.append(("%s", timeit(lambda: torch.softmax(q @ k.transpose(-1, -2) * sc, -1) @ v)))\n'):format(c.key))
    end
  end
  f:write(('with open(%q, "w") as fh:\n    for k, t in res: fh.write("%%s %%.9g\\n" %% (k, t))\n'):format(out))
  f:close()
  local ok = os.execute('OPENBLAS_NUM_THREADS=1 /usr/bin/python3 ' .. py)
  os.remove(py)
  local res = {}
  if ok then
    for line in io.lines(out) do
      local k, t = line:match('(%S+)%s+(%S+)')
      res[k] = tonumber(t)
    end
  end
  os.remove(out)
  os.remove(base)
  return res
end

-- ---- machine ------------------------------------------------------------------------

-- The peak: one thread's best FMA-loop rate times the threads (a one-thread
-- best-of is robust when other processes share the cores; a team is not).
local peak1 = ops.measure_peak_gflops(1, 0.5)
local peak_team = ops.measure_peak_gflops(opt.threads, 0.5)
local peak = opt.peak or peak1 * opt.threads
local f = io.open('/proc/loadavg')
local load = f and f:read('l') or '?'
if f then f:close() end
print(('threads %d, AVX2 kernels %s, samples %d, torch %s, /proc/loadavg %s'):format(opt.threads,
  tostring(ops.nn_simd_enabled()), opt.samples, torch_ok and 'yes' or 'absent', load))
print(('f32 peak used: %.1f GFLOP/s (%s); FMA loop: 1 thread %.1f, %d threads together %.1f'):format(peak,
  opt.peak and 'given by --peak' or '1-thread FMA loop x threads', peak1, opt.threads, peak_team))

-- ---- group_norm + SiLU --------------------------------------------------------------

local function level(bytes)
  if bytes <= 1 * 2 ^ 20 then return 'L2' elseif bytes <= 32 * 2 ^ 20 then return 'L3' else return 'DRAM' end
end

local gn_cases = {}
local shapes = opt.quick and {{1, 64, 64, 64}, {8, 64, 64, 64}} or
  {{1, 64, 16, 16}, {1, 64, 64, 64}, {8, 64, 64, 64}, {1, 128, 32, 32}, {4, 256, 16, 16}, {24, 64, 32, 32},
   {24, 128, 64, 64}}
for _, s in ipairs(shapes) do
  for _, cl in ipairs{false, true} do
    gn_cases[#gn_cases + 1] = {N = s[1], C = s[2], H = s[3], W = s[4], G = 32, cl = cl,
      key = ('gn_%dx%dx%dx%d_%s'):format(s[1], s[2], s[3], s[4], cl and 'cl' or 'nchw')}
  end
end
local tgn = torch_times('gn', gn_cases)

print('\ngroup_norm(32 groups) + SiLU, f32: bytes = read x + write y once')
print(('%-24s %-5s %9s %9s %9s %9s %9s %7s %8s %10s %7s'):format('shape', 'where', 'ms', 'cpu ms', 'best ms', 'GB/s',
  'copy GB/s', '% copy', 'best GB/s', 'torch ms', 'speedup'))
for _, c in ipairs(gn_cases) do
  local x = fada.randn(c.N, c.C, c.H, c.W)
  if c.cl then x = x:permute{1, 3, 4, 2}:contiguous():permute{1, 4, 2, 3} end
  local w, b = fada.randn(c.C), fada.randn(c.C)
  local bytes = 2 * x:numel() * 4
  local t, tc, tbest = time_it(function() return ops.group_norm(x, c.G, w, b, {silu = true}) end)
  local copy = ops.nn_copy_gbs(bytes, 21)
  local gbs = bytes / t * 1e-9
  local tt = tgn[c.key]
  print(('%-24s %-5s %9.3f %9.3f %9.3f %9.1f %9.1f %6.0f%% %8.1f %10s %7s'):format(
    ('%dx%dx%dx%d %s'):format(c.N, c.C, c.H, c.W, c.cl and 'CL' or 'NCHW'), level(bytes), t * 1e3, tc * 1e3,
    tbest * 1e3, gbs, copy, 100 * gbs / copy, bytes / tbest * 1e-9, tt and ('%.3f'):format(tt * 1e3) or '-', tt and ('%.2fx'):format(tt / t) or '-'))
  x:release()
end

-- ---- attention -----------------------------------------------------------------------

local att_cases = {}
local acfg = opt.quick and {{1, 1024, 1024, 64, 1, 64}, {1, 4096, 4096, 64, 1, 0}} or {
  {1, 256, 256, 64, 1, 0}, {1, 1024, 1024, 64, 1, 0}, {1, 1024, 1024, 64, 1, 1024}, {2, 1024, 1024, 32, 4, 256},
  {1, 4096, 4096, 64, 1, 4096}, {8, 256, 256, 32, 8, 256}, {1, 4096, 4096, 32, 2, 0},
  {32, 256, 256, 64, 2, 256}} -- the last: the mini teacher's reference attention in training (batch 4 x 8 frames)
for _, a in ipairs(acfg) do
  att_cases[#att_cases + 1] = {B = a[1], Nq = a[2], Nk = a[3], d = a[4], H = a[5], Ne = a[6],
    key = ('att_%d_%d_%d_%d_%d_%d'):format(table.unpack(a))}
end
local tat = torch_times('att', att_cases)

print('\nattention, f32: FLOP = 4 * B * heads * Nq * (Nk + Ne) * d (QK^T and PV); torch = explicit softmax(QK^T)V')
print(('%-34s %9s %9s %9s %9s %7s %8s %10s %7s %9s %9s'):format('B x Nq x (Nk+Ne) x d x heads', 'ms', 'cpu ms',
  'best ms', 'GFLOP/s', '% peak', 'best %', 'torch ms', 'speedup', 'bwd ms', 'bwd GF/s'))
for _, c in ipairs(att_cases) do
  local C = c.d * c.H
  local q, k, v = fada.randn(c.B, c.Nq, C), fada.randn(c.B, c.Nk, C), fada.randn(c.B, c.Nk, C)
  local o = {heads = c.H}
  if c.Ne > 0 then o.extra_k, o.extra_v = fada.randn(c.B, c.Ne, C), fada.randn(c.B, c.Ne, C) end
  local flop = 4 * c.B * c.H * c.Nq * (c.Nk + c.Ne) * c.d
  local t, tc, tbest = time_it(function() return ops.attention(q, k, v, o) end)
  local tb = '-'
  local gb = '-'
  if not opt.quick or c.Nq <= 1024 then
    local out, lse = ops.attention(q, k, v, o)
    local g = fada.randn(c.B, c.Nq, C)
    local t2 = time_it(function() return ops.attention_backward(g, q, k, v, out, lse, o) end)
    -- the usual count for a flash backward: 2.5x the forward (5 matmuls; ours recomputes 2 more)
    tb, gb = ('%.2f'):format(t2 * 1e3), ('%.1f'):format(2.5 * flop / t2 * 1e-9)
  end
  local tt = tat[c.key]
  print(('%-34s %9.2f %9.2f %9.2f %9.1f %6.0f%% %7.0f%% %10s %7s %9s %9s'):format(
    ('%d x %d x (%d+%d) x %d x %d'):format(c.B, c.Nq, c.Nk, c.Ne, c.d, c.H), t * 1e3, tc * 1e3, tbest * 1e3,
    flop / t * 1e-9, 100 * flop / t * 1e-9 / peak, 100 * flop / tbest * 1e-9 / peak, tt and ('%.2f'):format(tt * 1e3) or '-', tt and ('%.2fx'):format(tt / t) or '-', tb,
    gb))
end

local f2 = io.open('/proc/loadavg')
print('\n/proc/loadavg at the end: ' .. (f2 and f2:read('l') or '?'))
if f2 then f2:close() end
