-- Samplers: pure functions over `model(x, t, i)`, which returns the raw
-- model output (ε, v or x0, as schedule.prediction says) for the batch x at
-- training timestep t on step i. Every sampler:
--
--   sampler(model, x_T, schedule, timesteps, opts) -> x_0
--
-- timesteps come from schedule:timesteps(steps, spacing), noisy to clean.
-- opts:
--   generator         draws the noise of the samplers that add noise
--   noise_sampler     function(i, x) -> the noise tensor (x's size) for step i,
--                     in place of a draw from the generator: replays another
--                     implementation's noise (k-diffusion's noise_sampler,
--                     diffusers' variance_noise)
--   eta               DDIM's noise: 0 deterministic, 1 DDPM-like
--   prev_timestep     where step i lands: 'listed' (default, the next listed
--                     timestep) or 'ratio' (t − T // n, diffusers' DDIM)
--   set_alpha_to_one  false: the last step lands on ᾱ_0 (t = 0) instead of
--                     the clean ᾱ = 1 (diffusers' DDIM set_alpha_to_one = False,
--                     final_sigmas_type = 'sigma_min' elsewhere)
--   timestep_scaling  LCM only: diffusers' boundary condition c_skip/c_out
--                     (its default is 10); nil = the model's x0 as it is
--   callback(i, t, x, x0) after each step (progress bars, previews)
-- docs/sampling.md says which diffusers and k-diffusion settings each matches.
--
-- All of them step in the variance-preserving space of the model; σ =
-- √((1−ᾱ)/ᾱ) is the equivalent variance-exploding noise level, infinite at
-- zero terminal SNR, so the first step from pure noise is handled exactly.
local fada = require 'fada'

local M = {}

local function options(opts)
  opts = opts or {}
  local p = opts.prev_timestep
  if p ~= nil and p ~= 'listed' and p ~= 'ratio' then
    error(("sampler: prev_timestep must be 'listed' or 'ratio', got '%s'"):format(tostring(p)), 3)
  end
  if opts.set_alpha_to_one ~= nil and type(opts.set_alpha_to_one) ~= 'boolean' then
    error(('sampler: set_alpha_to_one must be true or false, got %s'):format(tostring(opts.set_alpha_to_one)), 3)
  end
  local k = opts.timestep_scaling
  if k ~= nil and (type(k) ~= 'number' or not (k > 0)) then
    error(('sampler: timestep_scaling must be a number > 0 (diffusers: 10) or nil, got %s'):format(tostring(k)), 3)
  end
  if opts.noise_sampler ~= nil and type(opts.noise_sampler) ~= 'function' then
    error(('sampler: noise_sampler must be a function(i, x) -> tensor, got a %s'):format(type(opts.noise_sampler)), 3)
  end
  return opts
end

-- The timestep step i lands on: the next listed one, or t − T // n with
-- prev_timestep = 'ratio' (which may fall between listed ones: diffusers'
-- DDIM with 'linspace' or 'trailing' spacing). Past the end, the clean end
-- t = −1 (ᾱ = 1), or t = 0 (ᾱ_0) with set_alpha_to_one = false.
local function landing(sched, ts, i, opts)
  local t
  if opts.prev_timestep == 'ratio' then t = ts[i] - sched.T // #ts else t = ts[i + 1] or -1 end
  if t < 0 then return opts.set_alpha_to_one == false and 0 or -1 end
  return t
end

-- The noise of step i, like x: from opts.noise_sampler when given, else drawn.
local function noise(x, opts, i)
  if not opts.noise_sampler then return fada.randn(x:size(), opts.generator or fada.default_generator) end
  local z = opts.noise_sampler(i, x)
  local want = table.concat(x:size(), ',')
  if not fada.is_tensor(z) or table.concat(z:size(), ',') ~= want then
    error(('noise_sampler: step %d gave %s, expected a tensor of [%s] (x\'s size)'):format(i,
      fada.is_tensor(z) and '[' .. table.concat(z:size(), ',') .. ']' or 'a ' .. type(z), want), 3)
  end
  return z
end

local function after_step(opts, i, t, x, x0)
  if opts.callback then opts.callback(i, t, x, x0) end
end

-- DDIM (Song et al. 2021). eta = 0: deterministic (the probability-flow ODE,
-- identical to Euler in σ); eta = 1: DDPM-like ancestral noise.
function M.ddim(model, x, sched, ts, opts)
  opts = options(opts)
  local eta = opts.eta or 0
  for i, t in ipairs(ts) do
    local x0, eps = sched:to_x0_eps(x, t, model(x, t, i))
    local t_next = landing(sched, ts, i, opts)
    local a, an = sched:alpha_bar(t), sched:alpha_bar(t_next)
    local sigma = 0
    if eta > 0 and a < 1 then sigma = eta * math.sqrt((1 - an) / (1 - a) * (1 - a / an)) end
    x = sched:ddim_step(x0, eps, t_next, sigma)
    if sigma > 0 then x = x + noise(x, opts, i) * sigma end
    after_step(opts, i, t, x, x0)
  end
  return x
end

-- Euler on the probability-flow ODE in σ: with the model's x0 the update
-- x_σ' = x0 + σ'·ε is exact for that prediction, so it equals DDIM(eta = 0);
-- kept under its own name because that is what users look for.
function M.euler(model, x, sched, ts, opts)
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.eta = 0
  return M.ddim(model, x, sched, ts, o)
end

-- Euler ancestral (k-diffusion): step down to σ_down, then add fresh noise σ_up.
function M.euler_ancestral(model, x, sched, ts, opts)
  opts = options(opts)
  for i, t in ipairs(ts) do
    local x0, eps = sched:to_x0_eps(x, t, model(x, t, i))
    local t_next = landing(sched, ts, i, opts)
    local s, sn = sched:sigma(t), sched:sigma(t_next)
    local up
    if s == math.huge then up = sn else up = math.min(sn, math.sqrt(sn * sn * (s * s - sn * sn) / (s * s))) end
    local down = math.sqrt(math.max(sn * sn - up * up, 0))
    local an = sched:alpha_bar(t_next)
    -- x_σ = x0 + σ_down ε + σ_up z, back to VP space by √ᾱ'
    local xs = x0 + eps * down
    if up > 0 then xs = xs + noise(x, opts, i) * up end
    x = xs * math.sqrt(an)
    after_step(opts, i, t, x, x0)
  end
  return x
end

-- DPM-Solver++(2M) (Lu et al. 2022), multistep second order on x0 in
-- log-σ time; the first and last steps are first order.
function M.dpmpp_2m(model, x, sched, ts, opts)
  opts = options(opts)
  local old_x0, h_last
  for i, t in ipairs(ts) do
    local x0, eps = sched:to_x0_eps(x, t, model(x, t, i))
    local t_next = landing(sched, ts, i, opts)
    local s, sn = sched:sigma(t), sched:sigma(t_next)
    local an = sched:alpha_bar(t_next)
    local xs_next
    if s == math.huge or sn == 0 or not h_last then
      xs_next = x0 + eps * sn -- first order (exact for this x0)
      h_last = (s ~= math.huge and sn > 0) and math.log(s / sn) or nil
    else
      local h = math.log(s / sn)  -- λ = −log σ grows by h
      local r = h_last / h
      local d = x0 * (1 + 1 / (2 * r)) - old_x0 * (1 / (2 * r))
      -- x_σ' = (σ'/σ) x_σ + (1 − σ'/σ) D, with x_σ = x / √ᾱ
      local ratio = sn / s
      xs_next = x * (ratio / math.sqrt(sched:alpha_bar(t))) + d * (1 - ratio)
      h_last = h
    end
    old_x0 = x0
    x = xs_next * math.sqrt(an)
    after_step(opts, i, t, x, x0)
  end
  return x
end

-- Multistep consistency sampling (LCM): each step takes the model's x0 and
-- re-noises it to the next timestep with fresh noise; the last returns it.
-- For few-step students. With timestep_scaling, the x0 first passes
-- diffusers' LCMScheduler boundary condition (σ_data = 0.5, s = t · scaling):
-- c_skip · x_t + c_out · x0 with c_skip = σ_data²/(s² + σ_data²) and
-- c_out = s/√(s² + σ_data²), so the consistency function is the identity at t = 0.
function M.lcm(model, x, sched, ts, opts)
  opts = options(opts)
  local scaling = opts.timestep_scaling
  for i, t in ipairs(ts) do
    local x0 = sched:to_x0_eps(x, t, model(x, t, i))
    if scaling then
      local s, sd2 = t * scaling, 0.25
      x0 = x0 * (s / math.sqrt(s * s + sd2)) + x * (sd2 / (s * s + sd2))
    end
    local t_next = landing(sched, ts, i, opts)
    if i < #ts and sched:alpha_bar(t_next) < 1 then
      x = sched:add_noise(x0, noise(x, opts, i), t_next)
    else
      x = x0
    end
    after_step(opts, i, t, x, x0)
  end
  return x
end

-- DDIM inversion: clean x0 to noise along the same (reversed) timesteps,
-- using the prediction at the current step. With an exact model and enough
-- steps, M.ddim of the result gives x0 back.
function M.ddim_invert(model, x, sched, ts, opts)
  opts = opts or {}
  local n = #ts
  for k = n, 1, -1 do
    local t_from = ts[k + 1] or -1
    local t_to = ts[k]
    -- evaluate at the current (less noisy) point; at t = −1 use the first step's time
    local t_eval = t_from >= 0 and t_from or t_to
    local x0, eps = sched:to_x0_eps(x, t_eval, model(x, t_eval, n - k + 1))
    if t_from < 0 then x0 = x end
    x = sched:ddim_step(x0, eps, t_to)
  end
  return x
end

M.names = {'ddim', 'euler', 'euler_ancestral', 'dpmpp_2m', 'lcm'}

-- M.get('ddim') -> the sampler, or an error listing the names; M.get('file:my.lua')
-- -> the sampler that file returns (fada.diffusion.user_code).
function M.get(name)
  local user_code = require 'fada.diffusion.user_code'
  if user_code.is_file(name) then return user_code.load(name, 'sampler') end
  local f = M[name]
  if type(f) ~= 'function' or name == 'get' or name == 'ddim_invert' then
    error(("unknown sampler '%s' (choose from %s, or file:path.lua)"):format(tostring(name),
      table.concat(M.names, ', ')), 2)
  end
  return f
end

return M
