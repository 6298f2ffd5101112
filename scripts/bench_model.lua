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
local clock = fada.clock or fada.ops.nn_clock

local cfg = models.config(opts.config)
local m = models.FadaModel(cfg):eval()
local Fr, Cl = cfg.clip_frames, cfg.latent.channels
local hw = cfg.image_size // cfg.latent.factor
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

local function bench_lua(branches)
  local x = fada.randn(#branches * Fr, Cl, hw, hw, g)
  local extra = {w_ref = 2, w_audio = 3}
  m:denoise(x, 500, branches, extra, ctx, atok)   -- warm-up: primitives, packed weights, k/v cache
  local times = {}
  for r = 1, opts.reps do
    local t0 = clock()
    m:denoise(x, 500, branches, extra, ctx, atok)
    times[r] = (clock() - t0) * 1000
    collectgarbage('step', 0)
  end
  return median(times)
end

local twin_model
local function bench_torch(branches)
  if not opts.torch then return nil end
  if os.execute('/usr/bin/python3 -c "import torch" >/dev/null 2>&1') ~= true then return nil, 'no torch' end
  if not twin_model then
    twin_model = os.tmpname() .. '.safetensors'
    models.save(m, twin_model)
  end
  local dir = fada.library_dir:match('^(.*)/build[^/]*/lua$') or '.'
  local cmd = ('/usr/bin/python3 %s/tests/peer/fada_twin.py bench %s %s %d %d 2>&1'):format(dir, twin_model,
    table.concat(branches, ','), opts.reps, threads)
  local p = io.popen(cmd)
  local out = p:read('a')
  p:close()
  local med, mn = out:match('median_ms ([%d.]+) min_ms ([%d.]+)')
  if not med then return nil, out end
  return tonumber(med), tonumber(mn)
end

local function report(label, branches, nrows)
  local lm, lmin = bench_lua(branches)
  local tm, tmin = bench_torch(branches)
  local nfe = #branches
  local gflop = fl.denoiser * nrows / 1e9
  local line = ('%-34s fadalua %8.1f ms/call (min %.1f) = %7.1f ms/NFE, %5.1f GFLOP/s = %4.1f%% of peak'):format(
    label, lm, lmin, lm / nfe, gflop / (lm / 1000), 100 * gflop / (lm / 1000) / peak)
  if tm then
    line = line .. ('\n%-34s pytorch %8.1f ms/call (min %.1f) = %7.1f ms/NFE  -> fadalua %.2fx faster'):format(
      '', tm, tmin, tm / nfe, tm / lm)
  elseif tmin then
    line = line .. '\n  (PyTorch twin unavailable: ' .. tostring(tmin):gsub('\n', ' ') .. ')'
  end
  print(line)
  return lm, tm
end

print(('f32, %d threads, medians of %d calls after a warm-up (same inputs, same checkpoint):'):format(threads, opts.reps))
local one_l, one_t = report(('1 clip x %d frames, 1 branch'):format(Fr), {'audio'}, Fr)
local three_l, three_t = report(('1 clip x %d frames, 3 branches'):format(Fr), {'base', 'ref', 'audio'}, 3 * Fr)
local fps_fast = Fr / (one_l / 1000)
print(('per frame: %.1f ms per NFE (1 branch), %.1f ms per NFE (3-branch batch); FADA-Fast at 6 steps ~ %.1f ' ..
  'frames/s of denoising (25 fps = real time)'):format(one_l / Fr, three_l / 3 / Fr, fps_fast / 6))

-- bf16: only where the CPU has it; oneDNN 2.6 on AVX2 refuses bf16 convolutions
fada.set_compute_dtype('bf16')
local before = fada.ops.fallbacks().bf16
local bl = bench_lua({'audio'})
local fell = fada.ops.fallbacks().bf16 > before
fada.set_compute_dtype('f32')
print(('bf16 compute: %.1f ms/call (1 branch)%s'):format(bl, fell and
  ' - oneDNN fell back to f32 on this CPU (no AVX512-BF16), so this is an f32 figure' or ''))
if twin_model then os.remove(twin_model) end
