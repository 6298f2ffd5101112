-- Optimisers, gradient clipping, EMA of weights and learning-rate schedules.
--
-- An optimiser takes the named parameter list of a module
-- (module:named_parameters(), or {{name =, tensor =}, ...}) and reads each
-- gradient from the autograd leaves. Its state (moments, step) is a flat
-- name -> tensor table, so a checkpoint stores it beside the weights.
local fada = require 'fada'
local A = require 'fada.autograd'

local M = {}

local function named(params)
  local list = {}
  for i, p in ipairs(params) do
    if type(p) == 'table' and p.tensor then list[i] = p
    else list[i] = {name = 'p' .. i, tensor = p} end
  end
  return list
end

local function zero_grads(self)
  for _, p in ipairs(self.params) do A.zero_grad(p.tensor) end
end

-- ---- AdamW -----------------------------------------------------------------------

local AdamW = {}
AdamW.__index = AdamW

-- M.AdamW(params, {lr = 1e-3, betas = {0.9, 0.999}, eps = 1e-8, weight_decay = 0.01})
-- Decoupled weight decay (Loshchilov & Hutter).
function M.AdamW(params, opts)
  opts = opts or {}
  local self = setmetatable({params = named(params), lr = opts.lr or 1e-3,
    beta1 = (opts.betas or {})[1] or 0.9, beta2 = (opts.betas or {})[2] or 0.999,
    eps = opts.eps or 1e-8, weight_decay = opts.weight_decay or 0.01, step_count = 0,
    m = {}, v = {}}, AdamW)
  for _, p in ipairs(self.params) do
    self.m[p.name] = fada.zeros_like(p.tensor, 'f32')
    self.v[p.name] = fada.zeros_like(p.tensor, 'f32')
  end
  return self
end

-- One update from the accumulated gradients (parameters without one are skipped).
function AdamW:step()
  self.step_count = self.step_count + 1
  local t = self.step_count
  local b1, b2 = self.beta1, self.beta2
  local bc1, bc2 = 1 - b1 ^ t, 1 - b2 ^ t
  local fused = {lr = self.lr, beta1 = b1, beta2 = b2, eps = self.eps, weight_decay = self.weight_decay, step = t}
  A.no_grad(function()
    for _, p in ipairs(self.params) do
      local g = A.grad(p.tensor)
      if g and p.tensor:dtype() == 'f32' and p.tensor:is_contiguous() then
        -- one pass over memory in C (ops/elementwise/fd_adamw.c) instead of the ten ops below
        fada.ops.adamw_step_(p.tensor, g, self.m[p.name], self.v[p.name], fused)
      elseif g then
        g = g:to('f32')
        local m, v = self.m[p.name], self.v[p.name]
        m:mul_(b1):add_(g * (1 - b1))
        v:mul_(b2):add_(g * g * (1 - b2))
        local denom = (v * (1 / bc2)):sqrt():add_(self.eps)
        local update = m * (self.lr / bc1) / denom
        if self.weight_decay ~= 0 then p.tensor:mul_(1 - self.lr * self.weight_decay) end
        p.tensor:sub_(update)
      end
    end
  end)
end

AdamW.zero_grad = zero_grads

function AdamW:state_dict()
  local sd = {}
  for _, p in ipairs(self.params) do
    sd['exp_avg.' .. p.name] = self.m[p.name]
    sd['exp_avg_sq.' .. p.name] = self.v[p.name]
  end
  sd['step'] = fada.tensor({self.step_count}, 'i64')
  return sd
end

function AdamW:load_state_dict(sd)
  for _, p in ipairs(self.params) do
    for key, dst in pairs{['exp_avg.'] = self.m[p.name], ['exp_avg_sq.'] = self.v[p.name]} do
      local src = sd[key .. p.name]
      if not src then error(('AdamW: optimiser state has no %s%s'):format(key, p.name), 2) end
      dst:copy(src)
    end
  end
  self.step_count = sd.step and sd.step:get(1) or 0
end

-- ---- SGD with momentum ---------------------------------------------------------

local SGD = {}
SGD.__index = SGD

-- M.SGD(params, {lr = 0.01, momentum = 0, weight_decay = 0, nesterov = false})
function M.SGD(params, opts)
  opts = opts or {}
  local self = setmetatable({params = named(params), lr = opts.lr or 0.01, momentum = opts.momentum or 0,
    weight_decay = opts.weight_decay or 0, nesterov = opts.nesterov or false, buf = {}, step_count = 0}, SGD)
  return self
end

function SGD:step()
  self.step_count = self.step_count + 1
  A.no_grad(function()
    for _, p in ipairs(self.params) do
      local g = A.grad(p.tensor)
      if g then
        if self.weight_decay ~= 0 then g = g + p.tensor * self.weight_decay end
        if self.momentum ~= 0 then
          local b = self.buf[p.name]
          if not b then b = g:clone(); self.buf[p.name] = b
          else b:mul_(self.momentum):add_(g) end
          g = self.nesterov and g + b * self.momentum or b
        end
        p.tensor:sub_(g * self.lr)
      end
    end
  end)
end

SGD.zero_grad = zero_grads

function SGD:state_dict()
  local sd = {step = fada.tensor({self.step_count}, 'i64')}
  for name, b in pairs(self.buf) do sd['momentum_buffer.' .. name] = b end
  return sd
end

function SGD:load_state_dict(sd)
  for _, p in ipairs(self.params) do
    local b = sd['momentum_buffer.' .. p.name]
    if b then self.buf[p.name] = b:clone() end
  end
  self.step_count = sd.step and sd.step:get(1) or 0
end

-- ---- gradient clipping -------------------------------------------------------------

-- Scales all gradients so their joint L2 norm is at most max_norm; returns
-- the norm before clipping.
function M.clip_grad_norm(params, max_norm)
  local total = 0
  local grads = {}
  for _, p in ipairs(named(params)) do
    local g = A.grad(p.tensor)
    if g then
      grads[#grads + 1] = g
      local n = g:norm():item()
      total = total + n * n
    end
  end
  total = math.sqrt(total)
  if total > max_norm and total > 0 then
    local s = max_norm / (total + 1e-6)
    for _, g in ipairs(grads) do g:mul_(s) end
  end
  return total
end

-- ---- EMA of weights -------------------------------------------------------------------

local EMA = {}
EMA.__index = EMA

-- M.EMA(params, decay): shadow copies updated as shadow = d·shadow + (1−d)·param.
function M.EMA(params, decay)
  local self = setmetatable({params = named(params), decay = decay or 0.999, shadow = {}}, EMA)
  for _, p in ipairs(self.params) do self.shadow[p.name] = p.tensor:to('f32'):clone() end
  return self
end

function EMA:update()
  local d = self.decay
  A.no_grad(function()
    for _, p in ipairs(self.params) do
      self.shadow[p.name]:mul_(d):add_(p.tensor:to('f32') * (1 - d))
    end
  end)
end

-- name -> shadow tensor (for saving the EMA weights as a state dict)
function EMA:state_dict()
  local sd = {}
  for name, t in pairs(self.shadow) do sd[name] = t end
  return sd
end

function EMA:load_state_dict(sd)
  for _, p in ipairs(self.params) do
    if sd[p.name] then self.shadow[p.name]:copy(sd[p.name]) end
  end
end

-- ---- learning-rate schedules -------------------------------------------------------

-- Linear warm-up for `warmup` steps, then cosine decay from base to
-- base·final_ratio at `total` steps. Returns f(step) -> lr (step from 1).
function M.warmup_cosine(base, warmup, total, final_ratio)
  final_ratio = final_ratio or 0
  return function(step)
    if step <= warmup then return base * step / math.max(warmup, 1) end
    local u = math.min((step - warmup) / math.max(total - warmup, 1), 1)
    return base * (final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * u)))
  end
end

return M
