-- Schedules and samplers against closed forms. For Gaussian data x0 ~ N(μ, s²)
-- the ideal denoiser is exact: E[x0 | x_t] = μ + k (x_t − √ᾱ μ) with
-- k = √ᾱ s² / (ᾱ s² + 1 − ᾱ). Fed that, every sampler must land on N(μ, s²),
-- closer as steps grow.
local fada = require 'fada'
local schedule = require 'fada.diffusion.schedule'
local samplers = require 'fada.diffusion.samplers'
local cfg = require 'fada.diffusion.cfg'

local MU, S = 0.5, 0.3

local function stats(x)
  local l = x:tolist()
  local m = 0
  for _, v in ipairs(l) do m = m + v end
  m = m / #l
  local var = 0
  for _, v in ipairs(l) do var = var + (v - m) ^ 2 end
  return m, math.sqrt(var / (#l - 1))
end

-- The exact model output for the schedule's prediction type. The ideal
-- denoiser predicts the posterior mean; the ideal consistency model (what a
-- few-step LCM student learns) maps x_t to the end of its probability-flow
-- ODE path, which for Gaussian data is the linear map that whitens x_t's
-- marginal N(√ᾱ μ, ᾱ s² + 1 − ᾱ) and recolours it to N(μ, s²).
local function ideal_model(sched, consistency)
  return function(x, t)
    local a = sched:alpha_bar(t)
    local k = consistency and S / math.sqrt(a * S * S + 1 - a) or math.sqrt(a) * S * S / (a * S * S + 1 - a)
    local x0 = (x - math.sqrt(a) * MU) * k + MU
    if sched.prediction == 'x0' then return x0 end
    if a >= 1 then return x * 0 end
    local eps = (x - x0 * math.sqrt(a)) * (1 / math.sqrt(1 - a))
    if sched.prediction == 'eps' then return eps end
    return eps * math.sqrt(a) - x0 * math.sqrt(1 - a) -- v
  end
end

test('schedules: closed forms of ᾱ, zero terminal SNR, spacings', function()
  local lin = schedule.new{beta_schedule = 'linear', beta_start = 1e-4, beta_end = 0.02}
  -- ᾱ_T = Π (1 − β_t) computed independently in log space
  local logp = 0
  for i = 1, 1000 do logp = logp + math.log(1 - (1e-4 + (0.02 - 1e-4) * (i - 1) / 999)) end
  assert_close(lin:alpha_bar(999), math.exp(logp), 1e-12, 1e-9)
  local z = schedule.new{zero_terminal_snr = true, prediction = 'v'}
  assert_eq(z:alpha_bar(999), 0)
  assert_close(z:alpha_bar(0), schedule.new{}:alpha_bar(0), 1e-12)
  assert_eq(z:sigma(999), math.huge)
  assert_eq(table.concat(lin:timesteps(4, 'trailing'), ','), '999,749,499,249')
  assert_eq(table.concat(lin:timesteps(4, 'leading'), ','), '750,500,250,0')
  assert_eq(table.concat(lin:timesteps(4, 'linspace'), ','), '999,666,333,0')
  checkerror(function() lin:timesteps(0) end, 'steps must be an integer in 1..1000')
  checkerror(function() schedule.new{beta_schedule = 'quadratic'} end, "unknown beta schedule 'quadratic'")
  checkerror(function() schedule.new{zero_terminal_snr = true} end, 'zero_terminal_snr needs prediction')
end)

test('ε, v and x0 conversions invert each other', function()
  local g = fada.Generator(1)
  local x0, eps = fada.randn(50, g), fada.randn(50, g)
  for _, pred in ipairs{'eps', 'v', 'x0'} do
    local s = schedule.new{prediction = pred}
    local xt = s:add_noise(x0, eps, 300)
    local rx0, reps = s:to_x0_eps(xt, 300, s:target(x0, eps, 300))
    assert_close(rx0, x0, 1e-4, 1e-4, pred .. ' x0')
    assert_close(reps, eps, 1e-4, 1e-4, pred .. ' eps')
  end
end)

local cases = {
  {'ddim', {}}, {'ddim', {eta = 1}}, {'euler', {}}, {'euler_ancestral', {}},
  {'dpmpp_2m', {}}, {'lcm', {}},
}

for _, setup in ipairs{
  {name = 'scaled-linear ε, leading', sched = {prediction = 'eps'}, spacing = 'leading'},
  {name = 'zero-terminal-SNR v, trailing', sched = {prediction = 'v', zero_terminal_snr = true}, spacing = 'trailing'},
} do
  for _, c in ipairs(cases) do
    local name, opts = c[1], c[2]
    test(('%s%s on Gaussian data (%s) lands on N(μ, s²)'):format(name, opts.eta and ' eta=1' or '', setup.name), function()
      local sched = schedule.new(setup.sched)
      local model = ideal_model(sched, name == 'lcm')
      local errs = {}
      for _, steps in ipairs{10, 200} do
        local g = fada.Generator(11)
        local o = {generator = g}
        for k, v in pairs(opts) do o[k] = v end
        local xT = fada.randn(20000, g)
        local ts = sched:timesteps(steps, setup.spacing)
        local x = samplers.get(name)(model, xT, sched, ts, o)
        local m, s = stats(x)
        errs[steps] = math.abs(m - MU) + math.abs(s - S)
      end
      -- 20000 samples: standard errors of mean and std are ~0.002 and ~0.0015;
      -- a non-zero terminal SNR leaves a bias of about √ᾱ_T μ ≈ 0.01 in the mean
      assert(errs[200] < 0.02, ('error at 200 steps %.4f'):format(errs[200]))
      assert(errs[200] <= errs[10] + 0.005, ('error grew with steps: %.4f -> %.4f'):format(errs[10], errs[200]))
      if name == 'lcm' then -- exact model, exact sampler: right at any step count
        assert(errs[10] < 0.02, ('LCM with the consistency function, 10 steps: error %.4f'):format(errs[10]))
      end
    end)
  end
end

test('DDIM with eta = 0 is deterministic and invertible as steps grow', function()
  local sched = schedule.new{prediction = 'eps'}
  local model = ideal_model(sched)
  local xT = fada.randn(1000, fada.Generator(3))
  local ts = sched:timesteps(50, 'leading')
  assert_close(samplers.ddim(model, xT, sched, ts), samplers.ddim(model, xT, sched, ts), 0, 0)
  -- data -> noise -> data; the first inverted step (from clean data) is the
  -- usual approximation, so the round trip converges as steps grow
  local x0 = fada.randn(2000, fada.Generator(5)) * S + MU
  local errs = {}
  for _, steps in ipairs{50, 200} do
    local ts2 = sched:timesteps(steps, 'leading')
    local back = samplers.ddim(model, samplers.ddim_invert(model, x0, sched, ts2), sched, ts2)
    errs[steps] = max_abs_diff(back, x0)
  end
  assert(errs[200] < 0.06 and errs[200] < errs[50] / 2,
    ('round-trip error %.4f (50 steps) -> %.4f (200 steps)'):format(errs[50], errs[200]))
end)

-- A toy conditional denoiser for CFG: branch outputs are known constants
-- plus x, so the mixed result has a closed form.
local function toy_denoise(calls)
  local value = {base = 1, ref = 3, audio = 7}
  return function(x, t, branches, extra)
    calls[#calls + 1] = #branches
    local B = x:size(1) // #branches
    local parts = {}
    for k, b in ipairs(branches) do
      local xk = x:narrow(1, (k - 1) * B + 1, B)
      if b == 'tokens' then
        parts[k] = xk + cfg.mix(value.base, value.ref, value.audio, extra.w_ref, extra.w_audio)
      else
        parts[k] = xk + value[b]
      end
    end
    return fada.cat(parts, 1)
  end
end

test('multi-CFG: nested formula, w = 1 gives the conditioned pass, one batched call per step', function()
  local calls = {}
  local x = fada.zeros(2, 4)
  local s = cfg.multi(toy_denoise(calls), 2, 3)
  assert_close(s.model(x, 500, 1), fada.full({2, 4}, 1 + 2 * (3 - 1) + 3 * (7 - 3)))
  assert_eq(#calls, 1)
  assert_eq(calls[1], 3)
  local one = cfg.multi(toy_denoise({}), 1, 1)
  assert_close(one.model(x, 500, 1), fada.full({2, 4}, 7))
  -- NFE: 3 per step for the teacher, 1 per step with tokens
  local sched = schedule.new{prediction = 'eps'}
  local ts = sched:timesteps(6, 'trailing')
  local teacher = cfg.multi(toy_denoise({}), 2, 3)
  samplers.ddim(teacher.model, fada.zeros(1, 4), sched, ts)
  assert_eq(teacher.nfe, 18)
  local student = cfg.tokens(toy_denoise({}), 2, 3)
  samplers.ddim(student.model, fada.zeros(1, 4), sched, ts)
  assert_eq(student.nfe, 6)
end)

test('CFG scale schedules', function()
  local lin = cfg.schedule.from('linear:4,1')
  assert_eq(lin(1, 4), 4)
  assert_eq(lin(4, 4), 1)
  local cos = cfg.schedule.from('cosine:5,1')
  assert_close(cos(1, 3), 5, 1e-12)
  assert_close(cos(2, 3), 3, 1e-12)
  assert_close(cos(3, 3), 1, 1e-12)
  local iv = cfg.schedule.from('interval:3,200,800')
  assert_eq(iv(1, 10, 900), 1)
  assert_eq(iv(1, 10, 500), 3)
  assert_eq(cfg.schedule.from(function(i) return i * 2 end)(3, 5, 0), 6)
  checkerror(function() cfg.schedule.from('wobble:1') end, 'a scale must be a number')
  checkerror(function() cfg.schedule.from('linear') end, "'linear' shapes a given scale w")
end)

test('one schedule grammar: the shapes of a given w (--cfg-schedule) and the schedules with their own scales', function()
  local parse, pipeline = cfg.schedule.parse, require 'fada.pipeline'
  assert_eq(parse('constant', 3.5), 3.5)
  assert_eq(parse('constant:2', 3.5), 2)
  local lin, own = parse('linear', 4), parse('linear:4,1', 9)
  for i = 1, 4 do assert_eq(lin(i, 4), own(i, 4), 'linear from w to 1 = linear:w,1, step ' .. i) end
  local cos = parse('cosine', 5)
  assert_close(cos(2, 3), 3, 1e-12)
  local iv, iv_own = parse('interval:200,800', 3), parse('interval:3,200,800,0.5', 9)
  assert_eq(iv(1, 10, 500), 3)
  assert_eq(iv(1, 10, 900), 1)
  assert_eq(iv_own(1, 10, 900), 0.5)
  assert_eq(pipeline.scale_schedule('linear:4,1', 2)(1, 4), 4, 'sample.lua takes both spellings')
  for _, c in ipairs{{'wobble', "must be constant | linear"}, {'linear:4', "got 'linear:4'"},
                     {'interval:x,2', "'interval:x,2': 'x' is not a number"}} do
    checkerror(function() parse(c[1], 2) end, c[2])
    local ok, err = pcall(pipeline.scale_schedule, c[1], 2)
    assert(not ok and tostring(err):find('sample: --cfg-schedule ', 1, true), tostring(err))
  end
  checkerror(function() samplers.get('heun') end, "unknown sampler 'heun'")
end)

test('initial noise shared across a clip: unit variance, frame correlation = share (closed form)', function()
  local pipeline = require 'fada.pipeline'
  local shape = {4, 8, 64, 64}
  -- share 0 is the plain draw, bit for bit (so the default changes nothing)
  local a0 = pipeline.initial_noise(shape, fada.Generator(7), 0)
  local r0 = fada.randn(shape, fada.Generator(7))
  assert_eq((a0 - r0):abs():max():item(), 0, 'share 0 vs randn')
  -- share 1: every frame the same noise
  local a1 = pipeline.initial_noise(shape, fada.Generator(7), 1)
  assert(((a1:narrow(1, 1, 1) - a1:narrow(1, 4, 1)):abs():max():item()) < 1e-6, 'share 1: frames differ')
  for _, share in ipairs{0.25, 0.5, 0.9} do
    local x = pipeline.initial_noise(shape, fada.Generator(11), share):to('f64')
    local n = x:numel()
    local var = (x * x):sum():item() / n
    assert(math.abs(var - 1) < 0.03, ('share %g: variance %.4f, expected 1'):format(share, var))
    -- correlation of frame 1 with frame 3 over 32768 elements: sd of the estimate ~ 0.006
    local f1, f3 = x:select(1, 1), x:select(1, 3)
    local corr = (f1 * f3):sum():item() / f1:numel()
    assert(math.abs(corr - share) < 0.03, ('share %g: frame correlation %.4f'):format(share, corr))
  end
end)

-- ---- user code from files (fada.diffusion.user_code) ----------------------------------------------

local user_code = require 'fada.diffusion.user_code'
local pipeline = require 'fada.pipeline'

local function write(path, text)
  local f = assert(io.open(path, 'w'))
  f:write(text)
  f:close()
  return path
end

test('file: sampler and schedule equal the same code built in (the worked examples)', function()
  local sched = schedule.new{prediction = 'v', zero_terminal_snr = true}
  local model = ideal_model(sched)
  local xT = fada.randn(500, fada.Generator(11))
  local ts = sched:timesteps(6, 'trailing')
  local mine = samplers.get('file:examples/user_sampler.lua')
  local seen = 0
  local got = mine(model, xT, sched, ts, {callback = function() seen = seen + 1 end})
  assert_close(got, samplers.ddim(model, xT, sched, ts), 1e-6, 1e-6, 'user DDIM vs built-in')
  assert_eq(seen, 6, 'callback per step')
  -- the schedule file equals the built-in linear fade to 1, at every step
  local s_file = pipeline.scale_schedule('file:examples/user_cfg_schedule.lua', 3.5)
  local s_built = pipeline.scale_schedule('linear', 3.5)
  for i = 1, 6 do assert_close(s_file(i, 6, 0), s_built(i, 6, 0), 1e-12, 0, 'step ' .. i) end
  -- and drives a guidance strategy like the built-in
  local calls = {}
  local a = cfg.multi(toy_denoise(calls), s_file, s_file)
  local b = cfg.multi(toy_denoise(calls), s_built, s_built)
  a.steps, b.steps = 6, 6
  assert_close(a.model(fada.zeros(2), 500, 2), b.model(fada.zeros(2), 500, 2), 1e-12, 0, 'mixed output')
end)

test('file: code that is missing, broken, erroring or of the wrong type is refused by name', function()
  local dir = os.tmpname()
  os.remove(dir)
  fada.mkdir(dir)
  local cases = {
    {dir .. '/missing.lua', "cannot read '" .. dir .. "/missing.lua'"},
    {write(dir .. '/syntax.lua', 'return function(model, x'), 'does not compile'},
    {write(dir .. '/raises.lua', 'error("no weights here")'), 'failed while loading: '},
    {write(dir .. '/table.lua', 'return {}'), 'must return function(model, x_T, schedule, timesteps, opts) -> x_0 (a sampler), returned a table'},
  }
  for _, c in ipairs(cases) do
    checkerror(function() samplers.get('file:' .. c[1]) end, c[2])
    checkerror(function() samplers.get('file:' .. c[1]) end, 'file:' .. c[1])
    -- through the pipeline's checks: the flag named, no position in fadalua's own code (the user's file may have one)
    local ok, err = pcall(pipeline.check_options, {sampler = 'file:' .. c[1]})
    assert(not ok and tostring(err):find('sample: --sampler file:' .. c[1], 1, true), tostring(err))
    assert(not tostring(err):find('fada/[%w_/]+%.lua:%d+:'), 'a library position in: ' .. tostring(err))
  end
  -- a schedule whose function gives the wrong type for a scale
  local bad = write(dir .. '/sched.lua', 'return function(w) return "strong" end')
  local ok, err = pcall(pipeline.scale_schedule, 'file:' .. bad, 2)
  assert(not ok and tostring(err):find('must give a number or a function(i, n, t) for w = 2, gave a string', 1, true),
    tostring(err))
  os.execute('rm -rf ' .. dir)
end)

-- ---- the conventions of diffusers and k-diffusion (docs/sampling.md; test_sampler_peers.lua runs the peers) ----

-- A model whose clean estimate is always 0 (prediction 'x0'): a DDIM step
-- then scales x by √(1 − ᾱ_land)/√(1 − ᾱ_t), so where each step lands shows in x.
local function zero_x0(calls)
  return function(x, t) calls[#calls + 1] = t ; return x * 0 end
end

local function ddim_scale(sched, ts, lands)
  local k = 1
  for i, t in ipairs(ts) do k = k * math.sqrt(1 - sched:alpha_bar(lands[i])) / math.sqrt(1 - sched:alpha_bar(t)) end
  return k
end

test("spacings as diffusers computes them: 'linspace' rounds half to even, steps_offset shifts 'leading'", function()
  local s = schedule.new{}
  -- diffusers 0.32 DDIMScheduler(timestep_spacing='linspace').set_timesteps(25): 832 where rounding half up gives 833
  assert_eq(table.concat(s:timesteps(25, 'linspace'), ','),
    '999,957,916,874,832,791,749,708,666,624,583,541,500,458,416,375,333,291,250,208,166,125,83,42,0')
  -- SD's config: 'leading' with steps_offset = 1
  assert_eq(table.concat(s:timesteps(25, 'leading', {steps_offset = 1}), ','),
    '961,921,881,841,801,761,721,681,641,601,561,521,481,441,401,361,321,281,241,201,161,121,81,41,1')
  -- 'trailing' keeps rounding halves up (the shipped default): 16 steps end at 62 where diffusers' end at 61
  assert_eq(s:timesteps(16, 'trailing')[16], 62)
  checkerror(function() s:timesteps(25, 'trailing', {steps_offset = 1}) end, "steps_offset 1 shifts 'leading' timesteps only")
  checkerror(function() s:timesteps(1000, 'leading', {steps_offset = 1}) end, 'past T − 1 = 999')
  checkerror(function() s:timesteps(4, 'cosine') end, "unknown spacing 'cosine' (leading, trailing, linspace, karras or exponential)")
end)

test("'karras' and 'exponential' spacings: the σ of k-diffusion's formulas, exactly, under either interpolation", function()
  for _, interpolation in ipairs{'alpha_bar', 'log_sigma'} do
    local s = schedule.new{interpolation = interpolation}
    local lo, hi = s:sigma(0), s:sigma(999)
    for _, n in ipairs{1, 6, 25} do
      local kt, et = s:timesteps(n, 'karras'), s:timesteps(n, 'exponential')
      for k = 0, n - 1 do
        local r = n > 1 and k / (n - 1) or 0
        local karras = (hi ^ (1 / 7) + r * (lo ^ (1 / 7) - hi ^ (1 / 7))) ^ 7   -- get_sigmas_karras, ρ = 7
        local expo = math.exp(math.log(hi) + r * (math.log(lo) - math.log(hi)))   -- get_sigmas_exponential
        assert_close(s:sigma(kt[k + 1]), karras, 0, 1e-12, ('%s karras n=%d k=%d'):format(interpolation, n, k))
        assert_close(s:sigma(et[k + 1]), expo, 0, 1e-12, ('%s exponential n=%d k=%d'):format(interpolation, n, k))
      end
    end
    local kt = s:timesteps(6, 'karras', {sigma_min = 0.1, sigma_max = 10, rho = 3})
    assert_close(s:sigma(kt[1]), 10, 0, 1e-12)
    assert_close(s:sigma(kt[6]), 0.1, 0, 1e-12)
    assert_close(s:sigma(kt[3]), (10 ^ (1 / 3) + 0.4 * (0.1 ^ (1 / 3) - 10 ^ (1 / 3))) ^ 3, 0, 1e-12)
  end
  -- diffusers 0.32 EulerDiscreteScheduler(use_karras_sigmas=True).set_timesteps(6), float32
  local l = schedule.new{interpolation = 'log_sigma'}
  local want = {999.0, 837.1206665039062, 593.5021362304688, 248.75640869140625, 29.806045532226562, 0.0}
  for i, t in ipairs(l:timesteps(6, 'karras')) do assert_close(t, want[i], 2e-3, 0, 'karras timestep ' .. i) end
  checkerror(function() schedule.new{zero_terminal_snr = true, prediction = 'v'}:timesteps(6, 'karras') end,
    "'karras' spacing needs a finite largest σ, but this schedule has zero terminal SNR")
  checkerror(function() l:timesteps(6, 'exponential', {sigma_max = 100}) end, "must lie inside the schedule's")
end)

test("interpolation: 'log_sigma' is linear in log σ, 'alpha_bar' (the default) in ᾱ; integer timesteps are the same", function()
  for _, cfg in ipairs{{}, {prediction = 'v', zero_terminal_snr = true}, {beta_schedule = 'cosine'}} do
    local lcfg = {interpolation = 'log_sigma'}
    for k, v in pairs(cfg) do lcfg[k] = v end
    local a, l = schedule.new(cfg), schedule.new(lcfg)
    for t = -1, 999 do
      assert_eq(a:alpha_bar(t), l:alpha_bar(t), 'ᾱ at t = ' .. t)
      assert_eq(a:sigma(t), l:sigma(t), 'σ at t = ' .. t)
    end
  end
  local a, l = schedule.new{}, schedule.new{interpolation = 'log_sigma'}
  assert_eq(a.interpolation, 'alpha_bar')
  local t = 500.25
  local s0, s1 = l:sigma(500), l:sigma(501)
  assert_close(l:sigma(t), math.exp(math.log(s0) + 0.25 * (math.log(s1) - math.log(s0))), 0, 1e-14)
  assert_close(l:alpha_bar(t), 1 / (1 + l:sigma(t) ^ 2), 0, 1e-14)
  assert_close(a:alpha_bar(t), a:alpha_bar(500) + 0.25 * (a:alpha_bar(501) - a:alpha_bar(500)), 0, 1e-14)
  assert(math.abs(a:sigma(t) / l:sigma(t) - 1) > 1e-8, 'the two interpolations agree between integers')
  -- sigma_to_t inverts sigma under each
  for _, s in ipairs{a, l} do
    for _, u in ipairs{0, 0.5, 17.3, 500.25, 998.9} do
      assert_close(s:sigma_to_t(s:sigma(u)), u, 1e-9, 0, s.interpolation .. ' t = ' .. u)
    end
  end
  checkerror(function() schedule.new{interpolation = 'cubic'} end, "interpolation must be 'alpha_bar' or 'log_sigma', got 'cubic'")
end)

test("DDIM: set_alpha_to_one = false lands on ᾱ_0, prev_timestep = 'ratio' on t − T // n (closed forms)", function()
  local s = schedule.new{prediction = 'x0'}
  local xT = fada.randn(64, fada.Generator(3)):to('f64')
  local ts = s:timesteps(6, 'trailing')                                -- 999, 832, 666, 499, 332, 166
  local function run(opts)
    local calls = {}
    return samplers.ddim(zero_x0(calls), xT, s, ts, opts), calls
  end
  -- default: the next listed timestep, the clean end (x0 = 0 exactly)
  local x, calls = run()
  assert_eq(table.concat(calls, ','), '999,832,666,499,332,166')
  assert_eq(x:abs():max():item(), 0)
  -- set_alpha_to_one = false: the last step lands on t = 0
  x = run{set_alpha_to_one = false}
  assert_close(x, xT * ddim_scale(s, ts, {832, 666, 499, 332, 166, 0}), 1e-14, 1e-12)
  -- 'ratio': t − 1000 // 6 = t − 166, so 999 lands on 833 (not the listed 832) and 166 on 0, whatever set_alpha_to_one
  x = run{prev_timestep = 'ratio'}
  assert_close(x, xT * ddim_scale(s, ts, {833, 666, 500, 333, 166, 0}), 1e-14, 1e-12)
  -- with 'leading' spacing the two agree: 750, 500, 250, 0 → t − 250
  local lead = s:timesteps(4, 'leading')
  local x1 = samplers.ddim(zero_x0({}), xT, s, lead, {prev_timestep = 'ratio'})
  local x2 = samplers.ddim(zero_x0({}), xT, s, lead)
  assert_eq((x1 - x2):abs():max():item(), 0)
  checkerror(function() run{prev_timestep = 'previous'} end, "prev_timestep must be 'listed' or 'ratio', got 'previous'")
  checkerror(function() run{set_alpha_to_one = 0} end, 'set_alpha_to_one must be true or false')
end)

test("LCM: diffusers' boundary condition c_skip · x_t + c_out · x0 (timestep_scaling 10, σ_data 0.5)", function()
  local s = schedule.new{prediction = 'x0'}
  local xT = fada.randn(64, fada.Generator(4)):to('f64')
  for _, t in ipairs{1, 3, 20, 999} do
    -- x0 = 0: the one step returns c_skip · x_t, c_skip = 0.25 / ((10 t)² + 0.25)
    local x = samplers.lcm(zero_x0({}), xT, s, {t}, {timestep_scaling = 10})
    assert_close(x, xT * (0.25 / ((10 * t) ^ 2 + 0.25)), 1e-15, 1e-12, 't = ' .. t)
  end
  -- an x0 model: c_out · x0 + c_skip · x_t with c_out = 10t / √((10t)² + 0.25)
  local c = fada.full({64}, 0.7):to('f64')
  local x = samplers.lcm(function() return c end, xT, s, {2}, {timestep_scaling = 10})
  assert_close(x, c * (20 / math.sqrt(400.25)) + xT * (0.25 / 400.25), 1e-15, 1e-12)
  -- without it (the default), the model's x0 as it is
  assert_eq(samplers.lcm(zero_x0({}), xT, s, {1}):abs():max():item(), 0)
  checkerror(function() samplers.lcm(zero_x0({}), xT, s, {1}, {timestep_scaling = 0}) end, 'timestep_scaling must be a number > 0')
end)

test('noise_sampler: every stochastic sampler takes step i\'s noise from it, and replays the generator bit for bit', function()
  local s = schedule.new{prediction = 'eps'}
  local model = ideal_model(s)
  local ts = s:timesteps(8, 'leading')
  for _, c in ipairs{{'ddim', {eta = 1}}, {'euler_ancestral', {}}, {'lcm', {}}} do
    local name, base = c[1], c[2]
    local xT = fada.randn(200, fada.Generator(1))
    -- record what the generator draws, in order, by step
    local recorded, g = {}, fada.Generator(99)
    local o = {generator = g, noise_sampler = function(i, x)
      recorded[i] = fada.randn(x:size(), g)
      return recorded[i]
    end}
    for k, v in pairs(base) do o[k] = v end
    local with_hook = samplers.get(name)(model, xT, s, ts, o)
    local o2 = {generator = fada.Generator(99)}
    for k, v in pairs(base) do o2[k] = v end
    local plain = samplers.get(name)(model, xT, s, ts, o2)
    assert_eq((with_hook - plain):abs():max():item(), 0, name .. ': hook drawing from the generator vs the generator')
    -- replay the recorded noise with another generator in opts: the same trajectory
    local o3 = {generator = fada.Generator(12345), noise_sampler = function(i) return recorded[i] end}
    for k, v in pairs(base) do o3[k] = v end
    assert_eq((samplers.get(name)(model, xT, s, ts, o3) - plain):abs():max():item(), 0, name .. ': replayed')
    local steps = {}
    for i in pairs(recorded) do steps[#steps + 1] = i end
    table.sort(steps)
    assert_eq(table.concat(steps, ','), '1,2,3,4,5,6,7', name .. ': the noisy steps (none on the last)')
    checkerror(function()
      samplers.get(name)(model, xT, s, ts, {eta = 1, noise_sampler = function() return fada.zeros(3) end})
    end, 'noise_sampler: step 1 gave [3], expected a tensor of [200]')
  end
  checkerror(function() samplers.ddim(model, fada.zeros(2), s, ts, {noise_sampler = 3}) end,
    'noise_sampler must be a function(i, x) -> tensor')
end)

test('sample options: the conventions are checked by name before any work', function()
  local p = require 'fada.pipeline'
  local cases = {
    {{spacing = 'cosine'}, "--spacing must be leading, trailing, linspace, karras or exponential, got 'cosine'"},
    {{steps_offset = 1}, '--steps-offset shifts leading timesteps only'},
    {{interpolation = 'linear'}, "--interpolation must be alpha_bar or log_sigma, got 'linear'"},
    {{prev_timestep = 'next'}, "--prev-timestep must be listed or ratio, got 'next'"},
    {{timestep_scaling = '10'}, "--timestep-scaling is LCM's boundary condition: give --sampler lcm"},
    {{timestep_scaling = 'big', sampler = 'lcm'}, "--timestep-scaling must be a number > 0"},
  }
  for _, c in ipairs(cases) do checkerror(function() p.check_options(c[1]) end, c[2]) end
  local o = p.check_options{sampler = 'lcm', timestep_scaling = '10', spacing = 'leading', steps_offset = 1}
  assert_eq(o.timestep_scaling, 10)
  assert_eq(p.check_options{}.timestep_scaling, 'none')
end)
