-- Optimisers against their update rules written out on plain Lua numbers,
-- and a fixed regression problem trained to a known loss.
local fada = require 'fada'
local A = require 'fada.autograd'
local F = require 'fada.F'
local optim = require 'fada.optim'

-- f(p) = Σ c_i p_i²  ->  grad 2 c_i p_i
local C = {1, -2, 0.5}

local function quad_grad(p) local g = {}; for i = 1, 3 do g[i] = 2 * C[i] * p[i] end; return g end

local function step_tensor(opt, p)
  opt:zero_grad()
  A.backward(F.sum(p * p * fada.tensor(C, 'f64')))
  opt:step()
end

-- AdamW on a tensor of `dtype` (f64: the Lua ops; f32: the fused C step) against
-- the rule on Lua numbers after 5 steps; returns the optimiser and the parameter.
local function adamw_against_rule(dtype)
  local p = A.requires_grad(fada.tensor({1, 2, -3}, dtype))
  local opt = optim.AdamW({{name = 'w', tensor = p}}, {lr = 0.1, weight_decay = 0.05})
  local ref, m, v = {1, 2, -3}, {0, 0, 0}, {0, 0, 0}
  for t = 1, 5 do
    opt:zero_grad()
    A.backward(F.sum(p * p * fada.tensor(C, dtype)))
    opt:step()
    local g = quad_grad(ref)
    for i = 1, 3 do
      m[i] = 0.9 * m[i] + 0.1 * g[i]
      v[i] = 0.999 * v[i] + 0.001 * g[i] ^ 2
      local mhat, vhat = m[i] / (1 - 0.9 ^ t), v[i] / (1 - 0.999 ^ t)
      ref[i] = ref[i] * (1 - 0.1 * 0.05) - 0.1 * mhat / (math.sqrt(vhat) + 1e-8)
    end
  end
  assert_close(p, ref, 1e-5, 1e-5) -- moments are kept in f32
  return opt, p
end

test('AdamW matches its update rule', function()
  local opt, p = adamw_against_rule('f64')
  local sd = opt:state_dict()
  assert_eq(sd.step:get(1), 5)
  local opt2 = optim.AdamW({{name = 'w', tensor = p:clone()}})
  opt2:load_state_dict(sd)
  assert_close(opt2.m.w, opt.m.w, 0, 0)
  assert_eq(opt2.step_count, 5)
end)

test('AdamW on f32 parameters (the fused C step) matches its update rule', function()
  adamw_against_rule('f32')
end)

test('fused AdamW step (fada.ops.adamw_step_) against its double-precision reference', function()
  local g = fada.Generator(11)
  local n = 100003 -- odd, and large enough for the threaded loop
  local p0, m0 = fada.randn(n, g), fada.randn(n, g) * 0.1
  local v0 = (fada.randn(n, g) * 0.01):abs()
  local grad = fada.randn({n, 2}, g):select(2, 1) -- a strided gradient view
  local opts = {lr = 3e-3, beta1 = 0.8, beta2 = 0.99, eps = 1e-6, weight_decay = 0.1, step = 3}
  local p, m, v = p0:clone(), m0:clone(), v0:clone()
  local rp, rm, rv = p0:clone(), m0:clone(), v0:clone()
  assert_eq(fada.ops.adamw_step_(p, grad, m, v, opts), p)
  fada.ops.ref.adamw_step_(rp, grad, rm, rv, opts)
  assert_close(m, rm, 1e-7, 1e-6, 'exp_avg')
  assert_close(v, rv, 1e-9, 1e-6, 'exp_avg_sq')
  assert_close(p, rp, 1e-7, 1e-6, 'param')
  assert((p - p0):abs():max():item() > 1e-4, 'the step moved the parameters')
  checkerror(function() fada.ops.adamw_step_(p:to('f64'), grad, m, v, opts) end, 'param [100003] f64 must be f32')
  checkerror(function() fada.ops.adamw_step_(p, grad, m:narrow(1, 1, 10), v, opts) end,
    'exp_avg [10] has 10 elements, param [100003] has 100003')
  checkerror(function() fada.ops.adamw_step_(p, grad, m, v, {lr = 1, step = 0}) end, 'step must be >= 1')
  checkerror(function() fada.ops.adamw_step_(p, grad, m, v, {step = 1}) end, 'give the options table an lr')
end)

test('SGD with momentum matches its update rule', function()
  local p = A.requires_grad(fada.tensor({1, 2, -3}, 'f64'))
  local opt = optim.SGD({p}, {lr = 0.05, momentum = 0.9})
  local ref, buf = {1, 2, -3}, nil
  for _ = 1, 4 do
    step_tensor(opt, p)
    local g = quad_grad(ref)
    if not buf then buf = g else for i = 1, 3 do buf[i] = 0.9 * buf[i] + g[i] end end
    for i = 1, 3 do ref[i] = ref[i] - 0.05 * buf[i] end
  end
  assert_close(p, ref, 1e-12, 1e-12)
end)

test('clip_grad_norm scales to the joint norm', function()
  local a, b = A.requires_grad(fada.tensor{3, 0}), A.requires_grad(fada.tensor{0, 4})
  A.backward(F.sum(a * fada.tensor{3, 0} + b * fada.tensor{0, 4}))
  local n = optim.clip_grad_norm({a, b}, 1)
  assert_close(n, 5, 1e-6)
  assert_close(A.grad(a), {0.6, 0}, 1e-6)
  assert_close(A.grad(b), {0, 0.8}, 1e-6)
end)

test('EMA and warm-up + cosine schedule', function()
  local p = fada.tensor{1.0}
  local ema = optim.EMA({p}, 0.5)
  p:fill(3); ema:update()        -- 0.5·1 + 0.5·3
  assert_close(ema.shadow.p1, {2})
  local lr = optim.warmup_cosine(1.0, 10, 110, 0.1)
  assert_close(lr(5), 0.5, 1e-12)
  assert_close(lr(10), 1.0, 1e-12)
  assert_close(lr(60), 0.55, 1e-12)
  assert_close(lr(110), 0.1, 1e-12)
end)

test('AdamW fits a fixed linear regression to a known loss', function()
  local g = fada.Generator(3)
  local X = fada.randn(256, 4, g)                     -- [256, 4]
  local w_true = fada.tensor{{1.5}, {-2}, {0.5}, {3}}  -- [4, 1]
  local y = (X * w_true:view(1, 4)):sum(2, true) + 0.7 -- [256, 1]
  local w = A.requires_grad(fada.zeros(1, 4))
  local b = A.requires_grad(fada.zeros(1))
  local opt = optim.AdamW({{name = 'w', tensor = w}, {name = 'b', tensor = b}}, {lr = 0.05, weight_decay = 0})
  local loss
  for _ = 1, 400 do
    opt:zero_grad()
    local pred = F.sum(X * w, 2, true) + b
    loss = F.mse(pred, y)
    A.backward(loss)
    opt:step()
  end
  assert(loss:item() < 1e-4, ('final loss %.3g'):format(loss:item()))
  assert_close(w, {1.5, -2, 0.5, 3}, 1e-2)
  assert_close(b, {0.7}, 1e-2)
end)
