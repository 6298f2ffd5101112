-- Noise schedules: β schedules, zero-terminal-SNR rescaling, timestep
-- spacings (diffusers' leading/trailing/linspace, k-diffusion's Karras and
-- exponential σ), and conversions between ε, v and x0 predictions.
-- docs/sampling.md compares each convention with diffusers and k-diffusion.
--
-- Convention (DDPM, variance preserving): x_t = √ᾱ_t · x0 + √(1 − ᾱ_t) · ε,
-- t = 0 .. T−1 training timesteps (T = 1000 by default). Plain Lua numbers:
-- a schedule is a table, nothing here touches tensors except `convert`.
local M = {}

local Schedule = {}
Schedule.__index = Schedule

-- β_t for the named schedule.
local function betas_for(kind, T, beta_start, beta_end)
  local betas = {}
  if kind == 'linear' then
    for i = 1, T do betas[i] = beta_start + (beta_end - beta_start) * (i - 1) / (T - 1) end
  elseif kind == 'scaled_linear' then -- Stable Diffusion's: linear in √β
    local a, b = math.sqrt(beta_start), math.sqrt(beta_end)
    for i = 1, T do
      local s = a + (b - a) * (i - 1) / (T - 1)
      betas[i] = s * s
    end
  elseif kind == 'cosine' then -- Nichol & Dhariwal, s = 0.008, β clipped at 0.999
    local function abar(u) return math.cos((u + 0.008) / 1.008 * math.pi / 2) ^ 2 end
    for i = 1, T do betas[i] = math.min(1 - abar(i / T) / abar((i - 1) / T), 0.999) end
  else
    error(("schedule: unknown beta schedule '%s' (linear, scaled_linear or cosine)"):format(tostring(kind)), 3)
  end
  return betas
end

-- Rescales ᾱ so the last step has SNR exactly 0 (Lin et al. 2024, "Common
-- diffusion noise schedules and sample steps are flawed"): shift and scale
-- √ᾱ so its last value is 0 and its first is unchanged.
local function zero_terminal_snr(alphas_cumprod)
  local T = #alphas_cumprod
  local s = {}
  for i = 1, T do s[i] = math.sqrt(alphas_cumprod[i]) end
  local first, last = s[1], s[T]
  for i = 1, T do
    local v = (s[i] - last) * first / (first - last)
    alphas_cumprod[i] = v * v
  end
  return alphas_cumprod
end

-- M.new{beta_schedule = 'scaled_linear', T = 1000, beta_start = 0.00085,
--       beta_end = 0.012, zero_terminal_snr = false, prediction = 'eps',
--       interpolation = 'alpha_bar'}
-- prediction: what the model outputs: 'eps', 'v' or 'x0'.
-- interpolation: how a fractional timestep falls between two integer ones:
-- linearly in ᾱ ('alpha_bar', the default, fadalua's convention until now) or
-- in log σ ('log_sigma', as k-diffusion's DiscreteSchedule and diffusers'
-- _sigma_to_t do). Integer timesteps, all that the shipped models use, give
-- the same values either way.
function M.new(opts)
  opts = opts or {}
  local T = opts.T or 1000
  local kind = opts.beta_schedule or 'scaled_linear'
  local betas = betas_for(kind, T, opts.beta_start or 0.00085, opts.beta_end or 0.012)
  local abar, prod = {}, 1
  for i = 1, T do
    prod = prod * (1 - betas[i])
    abar[i] = prod
  end
  if opts.zero_terminal_snr then zero_terminal_snr(abar) end
  local prediction = opts.prediction or 'eps'
  if prediction ~= 'eps' and prediction ~= 'v' and prediction ~= 'x0' then
    error(("schedule: prediction must be 'eps', 'v' or 'x0', got '%s'"):format(tostring(prediction)), 2)
  end
  if opts.zero_terminal_snr and prediction == 'eps' then
    error("schedule: zero_terminal_snr needs prediction = 'v' or 'x0' (ε cannot give x0 at SNR 0)", 2)
  end
  local interpolation = opts.interpolation or 'alpha_bar'
  if interpolation ~= 'alpha_bar' and interpolation ~= 'log_sigma' then
    error(("schedule: interpolation must be 'alpha_bar' or 'log_sigma', got '%s'"):format(tostring(interpolation)), 2)
  end
  -- log σ_t = ½ log((1 − ᾱ)/ᾱ), rising with t (∞ at zero terminal SNR); −ᾱ rises too:
  -- the two quantities a fractional timestep may interpolate, each rising, for sigma_to_t
  local log_sigmas, neg_abar = {}, {}
  for i = 1, T do
    log_sigmas[i] = abar[i] > 0 and 0.5 * math.log((1 - abar[i]) / abar[i]) or math.huge
    neg_abar[i] = -abar[i]
  end
  return setmetatable({T = T, alphas_cumprod = abar, prediction = prediction, beta_schedule = kind,
                       zero_terminal_snr = opts.zero_terminal_snr or false, interpolation = interpolation,
                       log_sigmas = log_sigmas, rising = interpolation == 'log_sigma' and log_sigmas or neg_abar},
                      Schedule)
end

-- The schedule a model was trained with: its config's `schedule` table plus
-- its `prediction`; `overrides` (e.g. {interpolation = 'log_sigma'}) on top.
function M.for_model(config, overrides)
  local o = {}
  for k, v in pairs(config.schedule or {}) do o[k] = v end
  o.prediction = config.prediction or o.prediction
  for k, v in pairs(overrides or {}) do o[k] = v end
  return M.new(o)
end

-- ᾱ at a training timestep t (0-based, may be fractional: interpolated as
-- the schedule's `interpolation` says); t = −1 means "clean data" (ᾱ = 1).
function Schedule:alpha_bar(t)
  if t < 0 then return 1.0 end
  local lo = math.floor(t)
  local a = self.alphas_cumprod[lo + 1]
  if t == lo or lo + 2 > self.T then return a end
  local w = t - lo
  if self.interpolation == 'alpha_bar' then
    local b = self.alphas_cumprod[lo + 2]
    return a + (b - a) * w
  end
  local s = self:sigma(t)
  return 1 / (1 + s * s)
end

-- σ of the equivalent variance-exploding process: √((1 − ᾱ)/ᾱ) (∞ at SNR 0).
function Schedule:sigma(t)
  local lo = math.floor(t)
  if self.interpolation == 'log_sigma' and t > lo and lo >= 0 and lo + 2 <= self.T then
    local a, b = self.log_sigmas[lo + 1], self.log_sigmas[lo + 2]
    return math.exp(a + (b - a) * (t - lo)) -- ∞ when b is (zero terminal SNR)
  end
  local a = self:alpha_bar(t)
  if a <= 0 then return math.huge end
  return math.sqrt((1 - a) / a)
end

-- The (fractional) timestep whose σ is `sigma`: the inverse of Schedule:sigma
-- under the schedule's interpolation (with 'log_sigma', diffusers' _sigma_to_t
-- and k-diffusion's sigma_to_t). σ outside the table clamps to t = 0 or T − 1.
function Schedule:sigma_to_t(sigma)
  if sigma == math.huge then return self.T - 1 end
  local rising = self.rising
  local v = self.interpolation == 'log_sigma' and math.log(math.max(sigma, 1e-10)) or -1 / (1 + sigma * sigma)
  local lo = 1                                  -- the last entry <= v, at most T − 1 (1-based)
  for i = 2, self.T - 1 do
    if rising[i] <= v then lo = i else break end
  end
  local w = (v - rising[lo]) / (rising[lo + 1] - rising[lo])
  w = math.min(math.max(w, 0), 1)
  return lo - 1 + w
end

-- numpy's rint: halves go to the even neighbour (np.round, what diffusers uses).
local function round_half_even(v)
  local f = math.floor(v)
  local d = v - f
  if d > 0.5 or (d == 0.5 and f % 2 == 1) then f = f + 1 end
  return f
end

-- σ from sigma_max down to sigma_min in n steps: Karras et al. (2022), ρ = 7
-- (k-diffusion's get_sigmas_karras, diffusers' use_karras_sigmas), or evenly
-- in log σ (get_sigmas_exponential, use_exponential_sigmas).
local function sigma_ramp(kind, n, smin, smax, rho)
  local out = {}
  for k = 0, n - 1 do
    local r = n > 1 and (k == n - 1 and 1 or k * (1 / (n - 1))) or 0   -- numpy's linspace(0, 1, n)
    if kind == 'karras' then
      local a, b = smax ^ (1 / rho), smin ^ (1 / rho)
      out[k + 1] = (a + r * (b - a)) ^ rho
    else
      local a, b = math.log(smax), math.log(smin)
      out[k + 1] = math.exp(a + r * (b - a))
    end
  end
  return out
end

-- `steps` sampling timesteps, from noisy to clean, by the named spacing
-- (Lin et al. table 2, as diffusers computes them): 'leading' (SD's default),
-- 'trailing' (starts at T−1, needed with zero-terminal SNR; rounds halves up,
-- where diffusers rounds them to even: 16 steps end at 62, diffusers' at 61),
-- 'linspace' (numpy's linspace(0, T−1, n) rounded half to even, diffusers'
-- DDIM: 25 steps give 832, not 833), or σ spacings mapped back to fractional
-- timesteps by sigma_to_t: 'karras' (Karras et al. 2022) and 'exponential'
-- (even in log σ), from σ_{T−1} down to σ_0 as k-diffusion's
-- get_sigmas_karras / get_sigmas_exponential and diffusers' use_karras_sigmas /
-- use_exponential_sigmas give them (Karras' ρ = 7).
-- opts: steps_offset (added to 'leading' timesteps, diffusers' steps_offset;
-- SD uses 1), rho, sigma_min, sigma_max (for the σ spacings).
function Schedule:timesteps(steps, spacing, opts)
  spacing = spacing or 'trailing'
  opts = opts or {}
  if type(steps) ~= 'number' or steps < 1 or steps % 1 ~= 0 or steps > self.T then
    error(('timesteps: steps must be an integer in 1..%d, got %s'):format(self.T, tostring(steps)), 2)
  end
  local offset = opts.steps_offset or 0
  if math.type(offset) ~= 'integer' or offset < 0 then
    error(('timesteps: steps_offset must be an integer >= 0, got %s'):format(tostring(offset)), 2)
  end
  if offset ~= 0 and spacing ~= 'leading' then
    error(("timesteps: steps_offset %d shifts 'leading' timesteps only (as in diffusers), not '%s' ones")
      :format(offset, tostring(spacing)), 2)
  end
  local ts = {}
  if spacing == 'leading' then
    local ratio = self.T // steps
    for i = steps - 1, 0, -1 do ts[#ts + 1] = i * ratio + offset end
    if ts[1] > self.T - 1 then
      error(('timesteps: steps_offset %d puts the first of %d leading timesteps at %d, past T − 1 = %d')
        :format(offset, steps, ts[1], self.T - 1), 2)
    end
  elseif spacing == 'trailing' then
    local ratio = self.T / steps
    for i = steps, 1, -1 do ts[#ts + 1] = math.floor(i * ratio + 0.5) - 1 end
  elseif spacing == 'linspace' then
    -- numpy: k · ((T−1)/(n−1)), the last point exactly T−1; one step starts at T−1 (numpy would give 0)
    local step = (self.T - 1) / math.max(steps - 1, 1)
    for k = steps - 1, 0, -1 do
      ts[#ts + 1] = (k == steps - 1) and self.T - 1 or round_half_even(k * step)
    end
  elseif spacing == 'karras' or spacing == 'exponential' then
    local smin, smax = opts.sigma_min or self:sigma(0), opts.sigma_max or self:sigma(self.T - 1)
    if smax == math.huge then
      error(("timesteps: '%s' spacing needs a finite largest σ, but this schedule has zero terminal SNR " ..
             "(σ = ∞ at t = %d): use leading, trailing or linspace (or give timesteps() a finite sigma_max)")
        :format(spacing, self.T - 1), 2)
    end
    local lo, hi = self:sigma(0), self:sigma(self.T - 1)
    -- at zero terminal SNR log σ is ∞ past T − 2: nothing above σ_{T−2} maps back to its own σ
    if hi == math.huge and self.interpolation == 'log_sigma' then hi = self:sigma(self.T - 2) end
    if not (smin > 0 and smin < smax) or smin < lo * (1 - 1e-12) or smax > hi * (1 + 1e-12) then
      error(('timesteps: %s σ range [%g, %g] must lie inside the schedule\'s [%g, %g] with sigma_min < sigma_max')
        :format(spacing, smin, smax, lo, hi), 2)
    end
    for k, s in ipairs(sigma_ramp(spacing, steps, smin, smax, opts.rho or 7)) do ts[k] = self:sigma_to_t(s) end
  else
    error(("timesteps: unknown spacing '%s' (leading, trailing, linspace, karras or exponential)")
      :format(tostring(spacing)), 2)
  end
  return ts
end

-- The model's raw output at (x_t, t) as both x0 and ε (tensors).
function Schedule:to_x0_eps(x, t, out)
  local a = self:alpha_bar(t)
  local sa, s1 = math.sqrt(a), math.sqrt(1 - a)
  if self.prediction == 'eps' then
    return (x - out * s1) * (1 / sa), out
  elseif self.prediction == 'v' then -- v = √ᾱ ε − √(1−ᾱ) x0
    local x0 = x * sa - out * s1
    return x0, x * s1 + out * sa
  else
    local x0 = out
    if s1 == 0 then return x0, out * 0 end
    return x0, (x - x0 * sa) * (1 / s1)
  end
end

-- The training target of this schedule's prediction type for (x0, ε) at t.
function Schedule:target(x0, eps, t)
  if self.prediction == 'eps' then return eps end
  if self.prediction == 'x0' then return x0 end
  local a = self:alpha_bar(t)
  return eps * math.sqrt(a) - x0 * math.sqrt(1 - a)
end

-- The DDIM update (Song et al. 2021, eq. 12) without its fresh noise: from
-- the clean latent x0 and the noise eps a prediction implies, the point at
-- t_next (−1: the clean end, ᾱ = 1), √ᾱ' x0 + √(1 − ᾱ' − σ²) ε. sigma (default
-- 0) is the share of fresh noise the caller adds itself (DDIM's η > 0). Every
-- sampler, inversion and distillation target steps through this one formula.
function Schedule:ddim_step(x0, eps, t_next, sigma)
  local an = self:alpha_bar(t_next)
  sigma = sigma or 0
  return x0 * math.sqrt(an) + eps * math.sqrt(math.max(1 - an - sigma * sigma, 0))
end

-- x_t from clean data and noise: the forward process is the same formula.
function Schedule:add_noise(x0, eps, t)
  return self:ddim_step(x0, eps, t)
end

M.Schedule = Schedule
return M
