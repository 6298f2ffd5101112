-- fadalua's schedules and samplers against diffusers (float32, as its
-- pipelines run: trajectories within 1e-5) and k-diffusion (float64, within
-- 1e-10), on an analytic Gaussian denoiser: data x0 ~ N(μ_i, s_i²) per
-- element, so E[x0 | x_t] is closed form and both sides run the exact model.
-- Each case runs the same schedule and sampler on both sides from the same
-- start (stochastic ones with the same recorded noise, through fadalua's
-- noise_sampler hook) and compares the state after every step; it also runs
-- fadalua without the option the case is about and requires that to disagree,
-- so every convention is shown to matter.
--
-- The peers live in a virtual environment that scripts/setup-peers.sh makes
-- (pip, PyPI); when it cannot be made, every case is skipped with the reason.
-- The Python side: tests/peer/sampler_peers.py.
-- labels: nosan;peer
local fada = require 'fada'
local schedule = require 'fada.diffusion.schedule'
local samplers = require 'fada.diffusion.samplers'

local N = 32
local TOL = {diffusers = 1e-5, kdiff = 1e-10}
local SD = {num_train_timesteps = 1000, beta_schedule = 'scaled_linear', beta_start = 0.00085, beta_end = 0.012}

local function with(base, extra)
  local t = {}
  for k, v in pairs(base) do t[k] = v end
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

-- Each case: what fadalua runs (sched, steps, spacing, topts, ts, sampler, opts,
-- noise), what the peer runs (peer), and `without`: the fields that undo the
-- case's option (for the two cases of fadalua's own defaults, a neighbouring
-- setting), with which fadalua must then disagree with the peer.
local CASES = {
  {name = 'ddim_linspace',
   title = "DDIM, 'linspace' (rounded half to even: 832), prev_timestep = 'ratio', set_alpha_to_one = false",
   peer = {peer = 'diffusers', scheduler = 'DDIMScheduler', steps = 25,
           config = with(SD, {timestep_spacing = 'linspace', set_alpha_to_one = false, clip_sample = false})},
   sched = {}, steps = 25, spacing = 'linspace', sampler = 'ddim',
   opts = {prev_timestep = 'ratio', set_alpha_to_one = false}, without = {opts = {}}, same_timesteps = true},
  {name = 'ddim_leading_sd',
   title = "DDIM, SD's config: 'leading', steps_offset = 1, set_alpha_to_one = false",
   peer = {peer = 'diffusers', scheduler = 'DDIMScheduler', steps = 25,
           config = with(SD, {timestep_spacing = 'leading', steps_offset = 1, set_alpha_to_one = false,
                              clip_sample = false})},
   sched = {}, steps = 25, spacing = 'leading', topts = {steps_offset = 1}, sampler = 'ddim',
   opts = {set_alpha_to_one = false}, without = {topts = {}}, same_timesteps = true},
  {name = 'ddim_trailing_zsnr_v',
   title = "DDIM, zero-terminal-SNR v, 'trailing', 6 steps, prev_timestep = 'ratio' (the shipped models' schedule)",
   peer = {peer = 'diffusers', scheduler = 'DDIMScheduler', steps = 6,
           config = with(SD, {timestep_spacing = 'trailing', rescale_betas_zero_snr = true, prediction_type = 'v_prediction',
                              clip_sample = false})},
   sched = {prediction = 'v', zero_terminal_snr = true}, steps = 6, spacing = 'trailing', sampler = 'ddim',
   opts = {prev_timestep = 'ratio'}, without = {opts = {}}, same_timesteps = true},
  {name = 'ddim_eta1',
   title = 'DDIM eta = 1 (stochastic), the noise replayed through noise_sampler',
   peer = {peer = 'diffusers', scheduler = 'DDIMScheduler', steps = 10, eta = 1,
           config = with(SD, {timestep_spacing = 'leading', steps_offset = 1, set_alpha_to_one = false,
                              clip_sample = false})},
   sched = {}, steps = 10, spacing = 'leading', topts = {steps_offset = 1}, sampler = 'ddim',
   opts = {eta = 1, set_alpha_to_one = false}, noise = true, without = {noise = false}},
  {name = 'euler_a_leading',
   title = 'Euler ancestral (stochastic), leading + steps_offset 1, the noise replayed',
   peer = {peer = 'diffusers', scheduler = 'EulerAncestralDiscreteScheduler', steps = 10,
           config = with(SD, {timestep_spacing = 'leading', steps_offset = 1})},
   sched = {}, steps = 10, spacing = 'leading', topts = {steps_offset = 1}, sampler = 'euler_ancestral', opts = {},
   noise = true, without = {noise = false}},
  {name = 'euler_karras',
   title = "Euler, use_karras_sigmas ('karras' spacing, log-σ timesteps)",
   peer = {peer = 'diffusers', scheduler = 'EulerDiscreteScheduler', steps = 12,
           config = with(SD, {use_karras_sigmas = true})},
   sched = {interpolation = 'log_sigma'}, steps = 12, spacing = 'karras', sampler = 'euler', opts = {},
   without = {spacing = 'trailing'}, model_timesteps = true},
  {name = 'euler_exponential',
   title = "Euler, use_exponential_sigmas ('exponential' spacing)",
   peer = {peer = 'diffusers', scheduler = 'EulerDiscreteScheduler', steps = 12,
           config = with(SD, {use_exponential_sigmas = true})},
   sched = {interpolation = 'log_sigma'}, steps = 12, spacing = 'exponential', sampler = 'euler', opts = {},
   without = {spacing = 'trailing'}, model_timesteps = true},
  {name = 'dpmpp_2m_karras',
   title = "DPM-Solver++(2M), use_karras_sigmas ('karras' spacing)",
   peer = {peer = 'diffusers', scheduler = 'DPMSolverMultistepScheduler', steps = 12,
           config = with(SD, {use_karras_sigmas = true, algorithm_type = 'dpmsolver++', solver_order = 2})},
   sched = {}, steps = 12, spacing = 'karras', sampler = 'dpmpp_2m', opts = {}, without = {spacing = 'trailing'}},
  {name = 'lcm_boundary',
   title = "LCM with its boundary condition (timestep_scaling = 10), the noise replayed",
   peer = {peer = 'diffusers', scheduler = 'LCMScheduler', timesteps = {999, 499, 99, 1},
           config = with(SD, {timestep_scaling = 10, clip_sample = false})},
   sched = {}, ts = {999, 499, 99, 1}, sampler = 'lcm', opts = {timestep_scaling = 10}, noise = true,
   without = {opts = {}}},
  -- k-diffusion, float64
  {name = 'k_euler_karras',
   title = "k-diffusion sample_euler on get_sigmas_karras (fadalua's default ᾱ interpolation)",
   peer = {peer = 'kdiff', sampler = 'sample_euler', sigmas = 'karras', steps = 15},
   sched = {}, steps = 15, spacing = 'karras', sampler = 'euler', opts = {}, without = {spacing = 'trailing'}},
  {name = 'k_euler_a_karras',
   title = 'k-diffusion sample_euler_ancestral (stochastic) on Karras σ, noise_sampler replayed',
   peer = {peer = 'kdiff', sampler = 'sample_euler_ancestral', sigmas = 'karras', steps = 15},
   sched = {interpolation = 'log_sigma'}, steps = 15, spacing = 'karras', sampler = 'euler_ancestral', opts = {},
   noise = true, without = {noise = false}},
  {name = 'k_dpmpp_2m_exp',
   title = 'k-diffusion sample_dpmpp_2m on get_sigmas_exponential',
   peer = {peer = 'kdiff', sampler = 'sample_dpmpp_2m', sigmas = 'exponential', steps = 15},
   sched = {}, steps = 15, spacing = 'exponential', sampler = 'dpmpp_2m', opts = {}, without = {spacing = 'trailing'}},
  {name = 'k_dpmpp_2m_trailing',
   title = "k-diffusion sample_dpmpp_2m on the σ of fadalua's default 'trailing' timesteps",
   peer = {peer = 'kdiff', sampler = 'sample_dpmpp_2m', sigmas = 'given', steps = 25},
   sched = {}, steps = 25, spacing = 'trailing', sampler = 'dpmpp_2m', opts = {}, without = {sampler = 'euler'}},
  {name = 'k_ddim_trailing',
   title = "k-diffusion sample_euler = fadalua's default DDIM (eta 0) on 'trailing' timesteps",
   peer = {peer = 'kdiff', sampler = 'sample_euler', sigmas = 'given', steps = 25},
   sched = {}, steps = 25, spacing = 'trailing', sampler = 'ddim', opts = {},
   without = {opts = {set_alpha_to_one = false}}},
}

-- ---- the data, the start states and the noise ------------------------------------------------------

local g = fada.Generator(2024)
local mu_list, s_list = {}, {}
for i = 1, N do mu_list[i], s_list[i] = math.sin(i) * 0.8, 0.2 + 0.6 * ((i * 7) % 11) / 10 end
local MU, S = fada.tensor(mu_list, 'f64'), fada.tensor(s_list, 'f64')          -- [N]
for _, c in ipairs(CASES) do
  c.xT = fada.randn(N, g):to('f64')                                                   -- [N]
  local n = c.ts and #c.ts or c.steps
  if c.noise then c.noise_t = fada.randn({n, N}, g):to('f64') end                    -- [n, N]
end

-- The exact model output for the schedule's prediction type, in x's dtype.
local function gaussian_model(sched, dtype)
  local mu, s2 = MU:to(dtype), (S * S):to(dtype)
  return function(x, t)
    local a = sched:alpha_bar(t)
    local sa = math.sqrt(a)
    local x0 = mu + (x - mu * sa) * (s2 * sa / (s2 * a + (1 - a)))
    if sched.prediction == 'x0' then return x0 end
    if a >= 1 then return x * 0 end
    local eps = (x - x0 * sa) * (1 / math.sqrt(1 - a))
    if sched.prediction == 'eps' then return eps end
    return eps * sa - x0 * math.sqrt(1 - a)
  end
end

-- fadalua on case c (with `override` fields): the state after each step [n, N]
-- (f64), the timesteps, the schedule.
local function run_fada(c, override)
  c = with(c, override)
  local dtype = c.peer.peer == 'kdiff' and 'f64' or 'f32'
  local sched = schedule.new(c.sched)
  local ts = c.ts or sched:timesteps(c.steps, c.spacing, c.topts)
  local states = {}
  local o = with(c.opts, {generator = fada.Generator(7), callback = function(i, _, x) states[i] = x:to('f64') end})
  if c.noise then o.noise_sampler = function(i) return c.noise_t:select(1, i):to(dtype) end end
  samplers.get(c.sampler)(gaussian_model(sched, dtype), c.xT:to(dtype), sched, ts, o)
  return fada.stack(states, 1), ts, sched
end

-- fractional timesteps for t → σ: multiples of 1/1024, which k-diffusion's
-- t_to_sigma (it casts t to float32) keeps exact
local QUERY_T = {}
for k = 1, 40 do QUERY_T[k] = (k * 25571) % (999 * 1024) / 1024 end

-- ---- the peer, run once for all cases --------------------------------------------------------------

local function shell(cmd)
  local p = assert(io.popen(cmd .. ' 2>&1'))
  local out = p:read('a')
  local ok = p:close()
  return ok, out
end

local results, why_not, failure
local function peer_results()
  if failure then error(failure, 0) end
  if results or why_not then return results, why_not end
  local ok, out = shell('sh scripts/setup-peers.sh')
  io.write(out)
  if not ok then
    why_not = 'the diffusers/k-diffusion environment could not be made (scripts/setup-peers.sh): ' ..
              (out:gsub('%s+$', ''):match('[^\n]*$') or '?')
    return nil, why_not
  end
  local python = out:gsub('%s+$', ''):match('[^\n]*$')
  local tmp = os.tmpname()
  local inputs, cases = {mu = MU, s = S}, {}
  for _, c in ipairs(CASES) do
    inputs[c.name .. '.xT'] = c.xT
    if c.noise then inputs[c.name .. '.noise'] = c.noise_t end
    if c.peer.sigmas == 'given' then
      local sched = schedule.new(c.sched)
      local sig = {}
      for i, t in ipairs(sched:timesteps(c.steps, c.spacing, c.topts)) do sig[i] = sched:sigma(t) end
      sig[#sig + 1] = 0
      inputs[c.name .. '.sigmas'] = fada.tensor(sig, 'f64')
    end
    cases[#cases + 1] = with(c.peer, {name = c.name})
  end
  -- the schedule itself: σ → t and t → σ against k-diffusion's DiscreteSchedule
  local sched = schedule.new{interpolation = 'log_sigma'}
  local qs = {}
  for _, t in ipairs(sched:timesteps(12, 'karras')) do qs[#qs + 1] = sched:sigma(t) end
  for k = 1, 20 do qs[#qs + 1] = math.exp(-3.5 + k * 0.32) end
  local qt = QUERY_T
  inputs['sched.query_sigma'], inputs['sched.query_t'] = fada.tensor(qs, 'f64'), fada.tensor(qt, 'f64')
  cases[#cases + 1] = {name = 'sched', peer = 'kdiff_schedule'}
  fada.safetensors.save(tmp .. '.in', inputs, {config = {cases = cases}})
  local t0 = fada.clock()
  local ran, pout = shell(('%s tests/peer/sampler_peers.py %s.in %s.out'):format(python, tmp, tmp))
  if not ran then
    os.remove(tmp .. '.in'); os.remove(tmp)
    failure = 'tests/peer/sampler_peers.py failed:\n' .. pout
    error(failure, 0)
  end
  io.write(('  (the peers ran %d cases in %.1f s)\n'):format(#cases, fada.clock() - t0))
  results = fada.safetensors.load(tmp .. '.out')
  os.remove(tmp .. '.in'); os.remove(tmp .. '.out'); os.remove(tmp)
  return results
end

local function need_peers()
  local r, why = peer_results()
  if not r then skip(why) end
  return r
end

local function max_diff(a, b) return (a:to('f64') - b:to('f64')):abs():max():item() end

-- ---- the cases -------------------------------------------------------------------------------------

for _, c in ipairs(CASES) do
  test(('%s: %s'):format(c.peer.peer == 'kdiff' and 'k-diffusion' or 'diffusers', c.title), function()
    local r = need_peers()
    local tol = TOL[c.peer.peer]
    local peer_x = r[c.name .. '.x']                                                  -- [n, N]
    local x, ts, sched = run_fada(c)
    assert_eq(table.concat(x:size(), 'x'), table.concat(peer_x:size(), 'x'), 'states')
    local err = max_diff(x, peer_x)
    local x_def = run_fada(c, c.without)
    local err_def = x_def:size(1) == peer_x:size(1) and max_diff(x_def, peer_x) or math.huge
    io.write(('  %-22s max |fadalua - peer| %.2e (tolerance %.0e); with the option undone %.2e\n'):format(
      c.name, err, tol, err_def))
    assert(err <= tol, ('%s: trajectories differ by %.3g > %g'):format(c.name, err, tol))
    assert(err_def > 10 * tol, ('%s: fadalua without the option still agrees (%.3g): the case tests nothing'):format(
      c.name, err_def))
    if c.same_timesteps then
      local pt = r[c.name .. '.t']:tolist()
      assert_eq(table.concat(ts, ','), table.concat(pt, ','):gsub('%.0', ''), 'timesteps')
    end
    if c.model_timesteps then
      -- the fractional timesteps the model sees: diffusers' _convert_to_* and _sigma_to_t run on a
      -- float64 table (t64), and as its scheduler gives them in float32 (t: off by ~1e-3 from rounding)
      local mine = fada.tensor(ts, 'f64')
      local err64, err32 = max_diff(mine, r[c.name .. '.t64']), max_diff(mine, r[c.name .. '.t'])
      -- with ᾱ interpolation the σ are the same, the timesteps are not diffusers'
      local other = schedule.new(with(c.sched, {interpolation = 'alpha_bar'})):timesteps(c.steps, c.spacing, c.topts)
      local odd = max_diff(fada.tensor(other, 'f64'), r[c.name .. '.t64'])
      io.write(('  %-22s model timesteps: max |Δt| %.2e (float64), %.2e (diffusers in float32); alpha_bar interpolation %.2e\n')
        :format(c.name, err64, err32, odd))
      assert(err64 < 1e-9 and err32 < 5e-3, ('%s: model timesteps differ by %.3g, %.3g'):format(c.name, err64, err32))
      assert(odd > 1e-4, ('%s: alpha_bar interpolation gives the same timesteps (%.3g)'):format(c.name, odd))
    end
    if c.peer.sigmas and c.peer.sigmas ~= 'given' then -- k-diffusion's σ list == fadalua's σ at its timesteps
      local ps = r[c.name .. '.sigmas']:tolist()
      for i, t in ipairs(ts) do assert_close(sched:sigma(t), ps[i], 0, 1e-12, 'σ of step ' .. i) end
    end
  end)
end

test("k-diffusion DiscreteSchedule: σ table, sigma_to_t and t_to_sigma (interpolation = 'log_sigma')", function()
  local r = need_peers()
  local sched = schedule.new{interpolation = 'log_sigma'}
  local table_ = r['sched.table']:tolist()
  for t = 0, 999 do assert_close(sched:sigma(t), table_[t + 1], 0, 1e-12, 'σ at t = ' .. t) end
  local qs, ts = r['sched.t_of_sigma']:tolist(), r['sched.sigma_of_t']:tolist()
  local err_t, err_s, err_s_old = 0, 0, 0
  local old = schedule.new{}
  for k, t in ipairs(QUERY_T) do
    local want = ts[k]
    err_s = math.max(err_s, math.abs(sched:sigma(t) / want - 1))
    err_s_old = math.max(err_s_old, math.abs(old:sigma(t) / want - 1))
  end
  local sig = {}
  for _, t in ipairs(sched:timesteps(12, 'karras')) do sig[#sig + 1] = sched:sigma(t) end
  for k = 1, 20 do sig[#sig + 1] = math.exp(-3.5 + k * 0.32) end
  for k, s in ipairs(sig) do err_t = math.max(err_t, math.abs(sched:sigma_to_t(s) - qs[k])) end
  io.write(('  sigma_to_t max |Δt| %.2e, t_to_sigma max rel %.2e; with alpha_bar interpolation %.2e\n'):format(
    err_t, err_s, err_s_old))
  assert(err_t < 1e-9, ('sigma_to_t differs by %.3g'):format(err_t))
  assert(err_s < 1e-10, ('t_to_sigma differs by %.3g (relative)'):format(err_s))
  assert(err_s_old > 1e-6, ('alpha_bar interpolation agrees with log σ (%.3g): the case tests nothing'):format(err_s_old))
end)
