-- fadalua scripts/bench_model.lua [--config mini] [--reps 9] [--peers torch,onnxruntime,openvino] [--setup]
-- The yardstick: per-NFE latency of the denoiser (one clip of F frames: 1 branch,
-- and the 3-branch multi-CFG batch), fadalua against its PyTorch 1.13 twin
-- (tests/peer/fada_twin.py) run eagerly and exported to ONNX and run by ONNX
-- Runtime and by OpenVINO (scripts/setup-bench.sh), in one run on the same
-- weights; each round calls fadalua, then every peer in turn (lua/fada/bench/peers.lua).
local fada = require 'fada'
local cli = require 'fada.cli'
local models = require 'fada.models'
local peers = require 'fada.bench.peers'

local opts = cli.parse(arg, {
  usage = 'usage: fadalua scripts/bench_model.lua [flags]',
  about = [[Per batch and peer: the median ms per call (and the minimum), per NFE and per frame-NFE,
the share of the measured FMA peak at the median, and fadalua's speed-up as the median of the
ratios of calls paired in the same round. A peer that cannot run here is skipped with a line
saying why. Then bf16 (calls alternating with f32, where the CPU has AVX512-BF16) and the closing
line, fadalua vs the fastest of them: the median of the paired ratios of both batches against the
peer whose median ms/NFE, summed over the two batches, is lowest.]],
  {'config', 'string', 'mini', 'model config (mini, tiny)'},
  {'reps', 'int', 9, 'timed rounds per batch, after one warm-up call each'},
  {'threads', 'int', nil, 'threads of fadalua and of every peer (default: all cores)'},
  {'peers', 'strings', table.concat(peers.NAMES, ','), "the peers beside fadalua, a comma list ('none': none)"},
  {'torch', 'bool', true, 'the PyTorch eager peer (--no-torch: leave it out)'},
  {'venv', 'string', os.getenv('FADA_BENCH_VENV') or 'build-bench/venv',
   "scripts/setup-bench.sh's environment for onnxruntime and openvino (relative to the repository)"},
  {'setup', 'bool', false, 'make that environment first when it is missing (needs PyPI)'},
  {'bf16', 'bool', true, 'time bf16 compute against f32 where the CPU has AVX512-BF16'},
})
if opts.reps < 1 then cli.fail('--reps must be at least 1') end
local names, off = {}, {}
for _, n in ipairs(opts.peers) do
  if not peers.LABELS[n] and n ~= 'none' then
    cli.fail(('unknown peer %q in --peers (%s, none)'):format(n, table.concat(peers.NAMES, ', ')))
  end
  if n == 'torch' and not opts.torch then
    off.torch = 'left out (--no-torch)'
  elseif n ~= 'none' then
    names[#names + 1] = n
  end
end
if opts.threads then fada.set_num_threads(opts.threads) end
local threads, clock = fada.get_num_threads(), fada.clock

-- ---- the model, its FLOPs, the machine ------------------------------------------------------------------
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
local bf16_cpu = fada.cpu().avx512bf16
print(('measured FMA peak: %.1f GFLOP/s f32 on %d threads; CPU: %s'):format(peak, threads,
  bf16_cpu and 'AVX512-BF16' or 'no AVX512-BF16 (bf16 falls back to f32 in oneDNN 2.6)'))

local g = fada.Generator(1)
local ctx = m:reference(fada.randn(1, Cl, hw, hw, g))
local atok = m:audio_tokens(fada.randn(Fr, cfg.audio.n_mels, m.audio.W, g))
local extra = {w_ref = 2, w_audio = 3}

-- ---- the peers ----------------------------------------------------------------------------------------
local venv = opts.venv:sub(1, 1) == '/' and opts.venv or peers.repo_dir() .. '/' .. opts.venv
local found, skipped = peers.find{names = names, off = off, venv = venv, setup = opts.setup}
local model_path, servers, found_names = os.tmpname(), {}, {}
local pooled, per_nfe = {}, {}   -- by peer: the paired ratios of both batches; the summed median ms/NFE
for _, p in ipairs(found) do
  print(('peer: %-12s %s %s (%s)'):format(p.name, peers.LABELS[p.name], p.version, p.python))
  found_names[#found_names + 1], pooled[p.name], per_nfe[p.name] = p.name, {}, 0
end
for _, s in ipairs(skipped) do print(('skip: %-12s %s'):format(s.name, s.why)) end
local function stop_all()
  for _, s in ipairs(servers) do s:stop() end
  os.remove(model_path)
end
if #found > 0 then models.save(m, model_path) end

local function report(branches)
  local nfe, x = #branches, fada.randn(#branches * Fr, Cl, hw, hw, g)
  local gflop = fl.denoiser * nfe * Fr / 1e9
  print(('1 clip x %d frames, %d branch%s (%d NFE, %.3f GFLOP per call):'):format(Fr, nfe, nfe > 1 and 'es' or '',
    nfe, gflop))
  local ms = peers.rounds(opts.reps, function()
    local t0 = clock()
    m:denoise(x, 500, branches, extra, ctx, atok)
    return (clock() - t0) * 1000
  end, servers, branches)
  for _, name in ipairs{'fadalua', table.unpack(found_names)} do
    local med, min = peers.median(ms[name])
    local line = ('  %-12s %8.2f ms/call (min %8.2f) %8.2f ms/NFE %7.3f ms/frame-NFE %5.1f%% of peak'):format(name,
      med, min, med / nfe, med / nfe / Fr, 100 * gflop / (med / 1000) / peak)
    if name ~= 'fadalua' then
      local ratio, ratios = peers.paired(ms[name], ms.fadalua)
      table.move(ratios, 1, #ratios, #pooled[name] + 1, pooled[name])
      per_nfe[name] = per_nfe[name] + med / nfe
      line = line .. ('  fadalua %.2fx'):format(ratio)
    end
    print(line)
  end
  return peers.median(ms.fadalua)
end

print(('f32, %d threads, %d round%s after a warm-up (fadalua, then each peer; same checkpoint):'):format(threads,
  opts.reps, opts.reps > 1 and 's' or ''))
local ok, err = pcall(function()
  for _, p in ipairs(found) do servers[#servers + 1] = peers.start(p, model_path, threads) end
  local one = report({'audio'})
  report({'base', 'ref', 'audio'})
  print(('FADA-Fast (1 NFE/step) at 6 steps: %.2f frames/s of denoising at the median (real time = %d fps)'):format(
    Fr / (one / 1000) / 6, cfg.fps))
end)
stop_all()
if not ok then cli.fail(err) end

-- ---- bf16: calls alternating with f32 (oneDNN 2.6 has bf16 kernels only with AVX512-BF16) ---------------
if not opts.bf16 then
  print('bf16: skipped (--no-bf16)')
elseif not bf16_cpu then
  print('bf16: skipped - this CPU has no AVX512-BF16 (oneDNN 2.6 would compute in f32)')
else
  local x = fada.randn(Fr, Cl, hw, hw, g)
  local function call(dtype)
    fada.set_compute_dtype(dtype)
    local t0 = clock()
    m:denoise(x, 500, {'audio'}, extra, ctx, atok)
    return (clock() - t0) * 1000
  end
  for _ = 1, 2 do call('f32') ; call('bf16') end   -- primitives and packed weights of both
  local fell, reorders = fada.ops.fallbacks().bf16, fada.ops.dnnl_stats().weight_reorders
  local f, b = {}, {}
  for r = 1, opts.reps do f[r], b[r] = call('f32'), call('bf16') end
  fada.set_compute_dtype('f32')
  fell, reorders = fada.ops.fallbacks().bf16 > fell, fada.ops.dnnl_stats().weight_reorders - reorders
  local bm, bmin = peers.median(b)
  print(('bf16 compute, 1 branch, %d calls alternating with f32 after a warm-up: %.2f ms/call (min %.2f), ' ..
    '%.3f ms/frame-NFE; f32 %.2f ms; bf16 faster by %.2fx (median of paired ratios)%s%s'):format(opts.reps, bm, bmin,
    bm / Fr, peers.median(f), peers.paired(f, b),
    fell and ' - but oneDNN fell back to f32 for some calls' or '',
    reorders > 0 and (' - %d weight re-packings while timing (the packed-weight cache was too small)'):format(reorders)
      or ''))
end

-- ---- the closing line ----------------------------------------------------------------------------------
local fastest
for _, name in ipairs(found_names) do
  if not fastest or per_nfe[name] < per_nfe[fastest] then fastest = name end
end
if fastest then
  print(('the fastest peer: %s (median ms/NFE summed over both batches); the speed-up is the median of its %d ' ..
    'paired ratios'):format(fastest, #pooled[fastest]))
  print(('fadalua vs the fastest of them: %.2fx'):format(peers.median(pooled[fastest])))
else
  print('fadalua vs the fastest of them: n/a (no peer ran)')
end
