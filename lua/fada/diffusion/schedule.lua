-- Noise schedules: β schedules, zero-terminal-SNR rescaling, timestep
-- spacings, and conversions between ε, v and x0 predictions.
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
--       beta_end = 0.012, zero_terminal_snr = false, prediction = 'eps'}
-- prediction: what the model outputs: 'eps', 'v' or 'x0'.
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
  return setmetatable({T = T, alphas_cumprod = abar, prediction = prediction, beta_schedule = kind,
                       zero_terminal_snr = opts.zero_terminal_snr or false}, Schedule)
end

-- The schedule a model was trained with: its config's `schedule` table plus
-- its `prediction`.
function M.for_model(config)
  local o = {}
  for k, v in pairs(config.schedule or {}) do o[k] = v end
  o.prediction = config.prediction or o.prediction
  return M.new(o)
end

-- ᾱ at a training timestep t (0-based, may be fractional: interpolated);
-- t = −1 means "clean data" (ᾱ = 1).
function Schedule:alpha_bar(t)
  if t < 0 then return 1.0 end
  local lo = math.floor(t)
  local a = self.alphas_cumprod[lo + 1]
  if t == lo or lo + 2 > self.T then return a end
  local b = self.alphas_cumprod[lo + 2]
  return a + (b - a) * (t - lo)
end

-- σ of the equivalent variance-exploding process: √((1 − ᾱ)/ᾱ) (∞ at SNR 0).
function Schedule:sigma(t)
  local a = self:alpha_bar(t)
  if a <= 0 then return math.huge end
  return math.sqrt((1 - a) / a)
end

-- `steps` sampling timesteps, from noisy to clean, by the named spacing
-- (Lin et al. table 2): 'leading' (SD's default), 'trailing' (starts at
-- T−1, needed with zero-terminal SNR), 'linspace'.
function Schedule:timesteps(steps, spacing)
  spacing = spacing or 'trailing'
  if type(steps) ~= 'number' or steps < 1 or steps % 1 ~= 0 or steps > self.T then
    error(('timesteps: steps must be an integer in 1..%d, got %s'):format(self.T, tostring(steps)), 2)
  end
  local ts = {}
  if spacing == 'leading' then
    local ratio = self.T // steps
    for i = steps - 1, 0, -1 do ts[#ts + 1] = i * ratio end
  elseif spacing == 'trailing' then
    local ratio = self.T / steps
    for i = steps, 1, -1 do ts[#ts + 1] = math.floor(i * ratio + 0.5) - 1 end
  elseif spacing == 'linspace' then
    for i = 0, steps - 1 do
      ts[#ts + 1] = math.floor((self.T - 1) * (1 - i / math.max(steps - 1, 1)) + 0.5)
    end
  else
    error(("timesteps: unknown spacing '%s' (leading, trailing or linspace)"):format(tostring(spacing)), 2)
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

-- x_t from clean data and noise.
function Schedule:add_noise(x0, eps, t)
  local a = self:alpha_bar(t)
  return x0 * math.sqrt(a) + eps * math.sqrt(1 - a)
end

M.Schedule = Schedule
return M
