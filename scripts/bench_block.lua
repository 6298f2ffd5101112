-- Benchmark: a stack of ResNet blocks (GroupNorm(32)+SiLU -> conv3x3 ->
-- GroupNorm(32)+SiLU -> conv3x3 + residual), 4 blocks at 64 channels, 64x64,
-- batch 8 by default - the block of the project's first CPU baseline and issue 3's
-- target - against PyTorch 1.13 eager in the same run (medians of repeated
-- timings, interleaved), f32, inference. The activations stay in oneDNN's
-- blocked layout from the first op to the last (Tensor:blocked); --plain keeps
-- them NCHW, so every convolution reorders in and out.
--   fadalua scripts/bench_block.lua [--batch 8] [--channels 64] [--size 64] [--blocks 4]
--                                   [--reps 9] [--threads 2] [--no-torch] [--plain]
require('fada.cli').help_from_header(arg)
local fada = require 'fada'
local F = fada.F

local o = {batch = 8, channels = 64, size = 64, blocks = 4, reps = 9, threads = fada.get_num_threads(), torch = true}
local i = 1
while arg[i] do
  local a = arg[i]
  if a == '--no-torch' then o.torch = false
  elseif a == '--plain' then o.plain = true
  elseif a:match('^%-%-') and arg[i + 1] then o[a:sub(3)] = tonumber(arg[i + 1]); i = i + 1
  else error('bench_block: unknown argument ' .. a) end
  i = i + 1
end
fada.set_num_threads(o.threads)
local B, C, S, NB = o.batch, o.channels, o.size, o.blocks
local g = fada.Generator(1)
local params = {}
for b = 1, NB do
  params[b] = {g1w = fada.ones(C), g1b = fada.zeros(C), w1 = fada.randn({C, C, 3, 3}, g) * 0.05, b1 = fada.zeros(C),
               g2w = fada.ones(C), g2b = fada.zeros(C), w2 = fada.randn({C, C, 3, 3}, g) * 0.05, b2 = fada.zeros(C)}
end
local x = fada.randn({B, C, S, S}, g)

local function forward(h)
  if not o.plain then h = h:blocked() end -- [B, C, S, S] stored as [B, C/8, S, S, 8]
  for _, p in ipairs(params) do
    local a = F.group_norm(h, 32, p.g1w, p.g1b, {silu = true})
    a = F.conv2d(a, p.w1, p.b1, {padding = 1})
    a = F.group_norm(a, 32, p.g2w, p.g2b, {silu = true})
    h = F.conv2d(a, p.w2, p.b2, {padding = 1, residual = h})
  end
  return h
end

local flops = NB * 2 * (2 * C * C * 9 * S * S * B)
local function time_fada()
  local t0 = fada.clock()
  local y = forward(x)
  y:sum()
  return fada.clock() - t0
end
for _ = 1, 12 do time_fada() end -- warm-up (primitive cache, fd_tune's first calls)
local peak = fada.ops.measure_peak_gflops() -- before PyTorch starts: its spinning threads would lower it

local torch_script = [[
import sys, time, torch
import torch.nn.functional as F
B, C, S, NB, reps, thr = map(int, sys.argv[1:7])
torch.set_num_threads(thr)
g = torch.Generator().manual_seed(1)
ps = [(torch.randn(C, C, 3, 3, generator=g) * 0.05, torch.randn(C, C, 3, 3, generator=g) * 0.05) for _ in range(NB)]
x = torch.randn(B, C, S, S, generator=g)
def fwd(h):
    for w1, w2 in ps:
        a = F.conv2d(F.silu(F.group_norm(h, 32)), w1, padding=1)
        h = F.conv2d(F.silu(F.group_norm(a, 32)), w2, padding=1) + h
    return h
with torch.inference_mode():
    for _ in range(3): fwd(x)
    for line in sys.stdin:
        t0 = time.perf_counter(); fwd(x).sum(); t = time.perf_counter() - t0
        print(t, flush=True)
]]

local torch_proc
if o.torch then
  local ok = os.execute('/usr/bin/python3 -c "import torch" >/dev/null 2>&1')
  if ok == true then
    local path = os.tmpname() .. '.py'
    local f = assert(io.open(path, 'w')); f:write(torch_script); f:close()
    -- a pipe each way: we ask for one timing at a time so runs interleave
    local fifo_in, fifo_out = os.tmpname(), os.tmpname()
    os.remove(fifo_in); os.remove(fifo_out)
    os.execute(('mkfifo %s %s'):format(fifo_in, fifo_out))
    os.execute(('OPENBLAS_NUM_THREADS=1 /usr/bin/python3 %s %d %d %d %d %d %d < %s > %s &'):format(
      path, B, C, S, NB, o.reps, o.threads, fifo_in, fifo_out))
    torch_proc = {w = assert(io.open(fifo_in, 'w')), r = assert(io.open(fifo_out, 'r'))}
  else
    print('SKIP torch: /usr/bin/python3 cannot import torch')
  end
end

local function median(t)
  local s = {table.unpack(t)}
  table.sort(s)
  return s[(#s + 1) // 2], s[1], s[#s]
end

local tf, tt = {}, {}
for r = 1, o.reps do
  tf[r] = time_fada()
  if torch_proc then
    torch_proc.w:write('go\n'); torch_proc.w:flush()
    tt[r] = tonumber(torch_proc.r:read('l'))
  end
end
if torch_proc then torch_proc.w:close(); torch_proc.r:close() end

local mf, lf, hf = median(tf)
print(('ResNet-block stack: %d blocks, batch %d, %d ch, %dx%d, %.2f GFLOP, %d threads, peak %.0f GFLOP/s (measured), %s activations'):format(
  NB, B, C, S, S, flops / 1e9, o.threads, peak, o.plain and 'NCHW' or 'blocked'))
print(('fada     %8.2f ms [%.2f-%.2f]  %6.1f GFLOP/s  %5.1f%% of peak'):format(mf * 1e3, lf * 1e3, hf * 1e3,
  flops / mf / 1e9, 100 * flops / mf / 1e9 / peak))
if #tt > 0 then
  local mt, lt, ht = median(tt)
  print(('pytorch  %8.2f ms [%.2f-%.2f]  %6.1f GFLOP/s  %5.1f%% of peak'):format(mt * 1e3, lt * 1e3, ht * 1e3,
    flops / mt / 1e9, 100 * flops / mt / 1e9 / peak))
  print(('fada is %.2fx faster than PyTorch eager f32 (median over median)'):format(mt / mf))
end
