-- fadalua scripts/bench_model.lua [--config mini] [--reps 9] [--threads N] [--no-torch]
-- Per-NFE latency of the denoiser (one clip of F frames: 1 branch, and the
-- 3-branch multi-CFG batch), fadalua vs the PyTorch twin (tests/peer/fada_twin.py)
-- in the same run, medians of `reps` calls after a warm-up; FLOPs (counted)
-- and the share of the compute floor (FLOPs / measured FMA peak); bf16 when
-- this CPU has it (otherwise oneDNN computes in f32 and we say so).
local fada = require 'fada'
local models = require 'fada.models'

local opts = {config = 'mini', reps = 9, threads = nil, torch = true}
local i = 1
while i <= #arg do
  local a = arg[i]
  if a == '--config' then opts.config = arg[i + 1] ; i = i + 1
  elseif a == '--reps' then opts.reps = tonumber(arg[i + 1]) ; i = i + 1
  elseif a == '--threads' then opts.threads = tonumber(arg[i + 1]) ; i = i + 1
  elseif a == '--no-torch' then opts.torch = false
  elseif a == '--help' or a == '-h' then
    print('usage: fadalua scripts/bench_model.lua [--config mini|tiny] [--reps 9] [--threads N] [--no-torch]')
    os.exit(0)
  else io.stderr:write('bench_model: unknown flag ' .. a .. ' (see --help)\n') ; os.exit(2) end
  i = i + 1
end
if opts.threads then fada.set_num_threads(opts.threads) end
local threads = fada.get_num_threads()
local clock = fada.clock

local cfg = models.config(opts.config)
local m = models.FadaModel(cfg):eval()
local Fr, Cl = cfg.clip_frames, cfg.latent.channels
local hw = cfg.image_size // select(2, require('fada.models.latent').shape(cfg.latent))
local fl = models.flops(m)
print(('model %s: %.2f M parameters, image %dx%d, latent %dx%dx%d, clip %d frames'):format(cfg.name,
  fl.params / 1e6, cfg.image_size, cfg.image_size, Cl, hw, hw, Fr))
print(('FLOPs: denoiser %.3f GFLOP per frame per NFE; reference net %.3f GFLOP per clip (+%.3f for the k/v ' ..
  'projections, cached); audio encoder %.4f GFLOP per frame'):format(fl.denoiser / 1e9, fl.refnet / 1e9,
  fl.ref_kv / 1e9, fl.audio / 1e9))
local peak = fada.ops.measure_peak_gflops(threads)
print(('measured FMA peak: %.1f GFLOP/s f32 on %d threads; CPU: %s'):format(peak, threads,
  (fada.cpu and fada.cpu().avx512bf16) and 'AVX512-BF16' or 'no AVX512-BF16 (bf16 falls back to f32 in oneDNN 2.6)'))

local g = fada.Generator(1)
local ctx = m:reference(fada.randn(1, Cl, hw, hw, g))
local atok = m:audio_tokens(fada.randn(Fr, cfg.audio.n_mels, m.audio.W, g))

local function median(list)
  table.sort(list)
  return list[(#list + 1) // 2], list[1]
end

-- The PyTorch twin as a server on two FIFOs, so its calls alternate with
-- ours and both see the same machine load (this 2-core box is shared).
local twin
local function start_twin()
  if not opts.torch then return nil, 'disabled (--no-torch)' end
  if os.execute('/usr/bin/python3 -c "import torch" >/dev/null 2>&1') ~= true then
    return nil, '/usr/bin/python3 cannot import torch'
  end
  local base = os.tmpname()
  twin = {model = base .. '.safetensors', fin = base .. '.in', fout = base .. '.out', base = base}
  models.save(m, twin.model)
  assert(os.execute(('mkfifo %s %s'):format(twin.fin, twin.fout)) == true, 'mkfifo failed')
  local dir = fada.library_dir:match('^(.*)/build[^/]*/lua$') or '.'
  os.execute(('/usr/bin/python3 %s/tests/peer/fada_twin.py serve %s %d %s %s &'):format(dir, twin.model, threads,
    twin.fin, twin.fout))
  twin.w = assert(io.open(twin.fin, 'w'))
  twin.r = assert(io.open(twin.fout, 'r'))
  return twin
end

local function twin_call(branches)
  twin.w:write(table.concat(branches, ',') .. '\n')
  twin.w:flush()
  local line = twin.r:read('l')
  if not line then error('the PyTorch twin stopped') end
  return tonumber(line)
end

local function stop_twin()
  if not twin then return end
  twin.w:write('quit\n')
  twin.w:close()
  twin.r:close()
  for _, f in ipairs{twin.model, twin.fin, twin.fout, twin.base} do os.remove(f) end
end

local have_twin, why = start_twin()

-- Alternates fadalua and PyTorch calls (after one warm-up each): medians,
-- minima and the median of the per-pair ratios.
local function bench(branches)
  local x = fada.randn(#branches * Fr, Cl, hw, hw, g)
  local extra = {w_ref = 2, w_audio = 3}
  m:denoise(x, 500, branches, extra, ctx, atok)   -- warm-up: primitives, packed weights, k/v cache
  if have_twin then twin_call(branches) end
  local tl, tt, ratio = {}, {}, {}
  for r = 1, opts.reps do
    local t0 = clock()
    m:denoise(x, 500, branches, extra, ctx, atok)
    tl[r] = (clock() - t0) * 1000
    collectgarbage('step', 0)
    if have_twin then
      tt[r] = twin_call(branches)
      ratio[r] = tt[r] / tl[r]
    end
  end
  local lm, lmin = median(tl)
  local tm, tmin = nil, nil
  if have_twin then tm, tmin = median(tt) end
  return lm, lmin, tm, tmin, have_twin and median(ratio) or nil
end

local function report(label, branches, nrows)
  local lm, lmin, tm, tmin, ratio = bench(branches)
  local nfe = #branches
  local gflop = fl.denoiser * nrows / 1e9
  local line = ('%-32s fadalua %8.1f ms/call (min %7.1f) = %7.1f ms/NFE; at the min %5.1f GFLOP/s = %4.1f%% of peak'):format(
    label, lm, lmin, lm / nfe, gflop / (lmin / 1000), 100 * gflop / (lmin / 1000) / peak)
  if tm then
    line = line .. ('\n%-32s pytorch %8.1f ms/call (min %7.1f) = %7.1f ms/NFE; fadalua faster by %.2fx (median ' ..
      'of paired ratios), %.2fx (minima)'):format('', tm, tmin, tm / nfe, ratio, tmin / lmin)
  end
  print(line)
  return lm, lmin
end

print(('f32, %d threads, %d alternating calls each after a warm-up (same inputs, same checkpoint)%s:'):format(threads,
  opts.reps, have_twin and ', PyTorch twin alongside' or ' - PyTorch twin unavailable: ' .. tostring(why)))
local one_l, one_min = report(('1 clip x %d frames, 1 branch'):format(Fr), {'audio'}, Fr)
local three_l, three_min = report(('1 clip x %d frames, 3 branches'):format(Fr), {'base', 'ref', 'audio'}, 3 * Fr)
print(('per frame and NFE: %.1f ms (1 branch), %.1f ms (3-branch batch) at the median; %.1f / %.1f ms at the minimum'):format(
  one_l / Fr, three_l / 3 / Fr, one_min / Fr, three_min / 3 / Fr))
print(('FADA-Fast (1 NFE/step) at 6 steps: %.2f frames/s of denoising at the minimum (real time = %d fps)'):format(
  Fr / (one_min / 1000) / 6, cfg.fps))
stop_twin()

-- bf16: only where the CPU has it; oneDNN 2.6 on AVX2 refuses bf16 kernels
fada.set_compute_dtype('bf16')
local before = fada.ops.fallbacks().bf16
local x = fada.randn(Fr, Cl, hw, hw, g)
local t0 = clock()
m:denoise(x, 500, {'audio'}, nil, ctx, atok)
local bl = (clock() - t0) * 1000
local fell = fada.ops.fallbacks().bf16 > before
fada.set_compute_dtype('f32')
print(('bf16 compute: one call %.1f ms (1 branch)%s'):format(bl, fell and
  ' - oneDNN fell back to f32 on this CPU (no AVX512-BF16), so there is no bf16 figure here' or ''))
