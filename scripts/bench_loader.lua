-- Loader time per batch vs a training step of similar size (not a test).
--   fadalua scripts/bench_loader.lua [DIR] [--batch 8] [--frames 8] [--motion 2] [--threads 2] [--cold 1]
-- DIR: a dataset from scripts/make_dataset.lua, or a folder of MP4s.
-- The step: three 3x3 convs (3 -> 32 -> 32 -> 3, SiLU) forward + backward +
-- AdamW over the batch's B*F frames, a stand-in for a small denoiser step.
require('fada.cli').help_from_header(arg)
local fada = require 'fada'
local nn = require 'fada.nn'
local F = require 'fada.F'
local A = require 'fada.autograd'
local optim = require 'fada.optim'
local loader = require 'fada.data.loader'

local dir = 'data/avatars/hq-train'
local o = {batch = 8, frames = 8, motion = 2, threads = 2, batches = 50, steps = 2, cold = 0}
do
  local i = 1
  while i <= #arg do
    local k = arg[i]:match('^%-%-(%w+)$')
    if k then o[k] = math.tointeger(tonumber(arg[i + 1])) or error('bench_loader: --' .. k .. ' needs an integer'); i = i + 2
    else dir = arg[i]; i = i + 1 end
  end
end
fada.set_num_threads(o.threads)

local ld = loader.open(dir, {batch = o.batch, frames = o.frames, motion = o.motion, seed = 1})
local load_wall, load_cpu, b
if o.cold == 0 then -- everything decoded first; then batches come from memory
  local c0 = os.clock()
  local secs, mb = ld:preload()
  print(('preload: %d clips decoded through %s in %.2f s wall (%.2f s CPU), %.1f ms/clip, cache %.1f MB u8'):format(
    #ld.clips, fada.video and 'fada.video (FFmpeg)' or 'PNG frames', secs, os.clock() - c0, 1e3 * secs / #ld.clips, mb))
  b = ld:batch()
  local t0, cl0 = fada.clock(), os.clock()
  for _ = 1, o.batches do b = ld:batch() end
  load_wall, load_cpu = (fada.clock() - t0) / o.batches, (os.clock() - cl0) / o.batches
end

b = b or ld:batch(1) -- only for the frame size
local S = b.frames:size(4)
local Net = nn.class('BenchNet')
function Net:init()
  local g = fada.Generator(1)
  self.c1 = self:add('c1', nn.Conv2d(3, 32, 3, {generator = g}))
  self.c2 = self:add('c2', nn.Conv2d(32, 32, 3, {generator = g}))
  self.c3 = self:add('c3', nn.Conv2d(32, 3, 3, {generator = g}))
end
function Net:forward(x) return self.c3(self.c2(self.c1(x, {act = 'silu'}), {act = 'silu'})) end
local net = Net()
local opt = optim.AdamW(net:named_parameters(), {lr = 1e-3})
local N = o.batch * o.frames
local function step(batch)
  local x = batch.frames:view(N, 3, S, S)                                    -- [B*F, 3, S, S]
  opt:zero_grad()
  local loss = F.mse(net(x), x)
  A.backward(loss)
  opt:step()
  return loss:item()
end
local flops = 3 * 2 * N * S * S * 9 * (3 * 32 + 32 * 32 + 32 * 3)
local step_wall, step_cpu
if o.cold == 0 then
  step(b) -- warm-up (primitive creation)
  local t0, cl0 = fada.clock(), os.clock()
  for _ = 1, o.steps do step(b) end
  step_wall, step_cpu = (fada.clock() - t0) / o.steps, (os.clock() - cl0) / o.steps
else -- cold cache: batch, step, batch, step ... with background decodes of the next batch's clips
  local lw, sw, lc, sc = 0, 0, 0, 0
  for k = 0, o.steps do
    local t0, c0 = fada.clock(), os.clock()
    b = ld:batch()
    local t1, c1 = fada.clock(), os.clock()
    step(b)
    if k > 0 then -- batch 0 has nothing to hide behind, step 0 warms up
      lw, lc = lw + t1 - t0, lc + c1 - c0
      sw, sc = sw + fada.clock() - t1, sc + os.clock() - c1
    else
      print(('cold first batch: %.1f ms (no step to hide it behind)'):format(1e3 * (t1 - t0)))
    end
  end
  load_wall, load_cpu, step_wall, step_cpu = lw / o.steps, lc / o.steps, sw / o.steps, sc / o.steps
  print(('cold cache, prefetch on: %d clips decoded, %d by background threads'):format(ld.cached, ld.prefetched))
end

print(('batch B=%d F=%d M=%d at %dx%d: loader %.2f ms wall (%.2f ms CPU) per batch'):format(
  o.batch, o.frames, o.motion, S, S, 1e3 * load_wall, 1e3 * load_cpu))
print(('training step (3 convs fwd+bwd+AdamW on %d frames, %.1f GFLOP): %.1f ms wall (%.1f ms CPU), %.1f GFLOP/s'):format(
  N, flops / 1e9, 1e3 * step_wall, 1e3 * step_cpu, flops / step_wall / 1e9))
print(('loader / step = %.1f %% (wall), target < 10 %%'):format(100 * load_wall / step_wall))
