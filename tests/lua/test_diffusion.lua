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
  os.execute('mkdir -p ' .. dir)
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
