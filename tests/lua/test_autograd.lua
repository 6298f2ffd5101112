-- The autograd tape: every F function against central differences (f64),
-- broadcasting gradients, no_grad, and saved tensors changed in place.
local fada = require 'fada'
local A = require 'fada.autograd'
local F = require 'fada.F'

local function rnd(seed, ...) return fada.randn({...}, 'f64', fada.Generator(seed)) end
local function pos(seed, ...) return rnd(seed, ...):abs() + 0.5 end

local function check(name, f, inputs)
  local ok, msg = A.gradcheck(f, inputs)
  assert(ok, name .. ': ' .. tostring(msg))
end

test('gradcheck: elementwise arithmetic with broadcasting and scalars', function()
  check('add/sub/mul/div', function(a, b) return (a + b) * (a - 2) / (b * b + 1) end, {rnd(1, 3, 4), rnd(2, 4)})
  check('scalar first', function(a) return 3 - a * 2 + 1 / (a * a + 1) end, {rnd(3, 5)})
  check('pow', function(a, b) return F.pow(a, 3) + F.pow(a, b) end, {pos(4, 2, 3), rnd(5, 2, 1)})
  check('neg', function(a) return -a end, {rnd(6, 4)})
end)

test('gradcheck: unary functions', function()
  for _, name in ipairs{'exp', 'tanh', 'sigmoid', 'sin', 'cos', 'abs'} do
    check(name, F[name], {rnd(7, 3, 2)})
  end
  for _, name in ipairs{'log', 'sqrt', 'rsqrt'} do check(name, F[name], {pos(8, 3, 2)}) end
  check('clamp', function(a) return F.clamp(a, -0.5, 0.5) end, {rnd(9, 10)})
end)

test('gradcheck: reductions and shapes', function()
  check('sum all', function(a) return F.sum(a) end, {rnd(10, 2, 3)})
  check('sum dims keepdim', function(a) return F.sum(a, {1, 3}, true) end, {rnd(11, 2, 3, 4)})
  check('mean dim', function(a) return F.mean(a, -1) end, {rnd(12, 2, 3, 4)})
  check('view/transpose/permute', function(a)
    return F.permute(F.transpose(F.view(a, 4, 6), 1, 2), 2, 1) * 2 end, {rnd(13, 2, 3, 4)})
  check('narrow/select', function(a) return F.narrow(a, 2, 2, 2) * F.select(a, 2, 1):unsqueeze(2) + a:select(2, 2):view(3, 1) end, {rnd(14, 3, 4)})
  check('expand/unsqueeze/squeeze', function(a) return F.squeeze(F.expand(F.unsqueeze(a, 1), 3, 4), 1) end, {rnd(15, 4)})
  check('cat/stack', function(a, b) return F.cat({a, b}, 2):narrow(2, 2, 3) + F.stack({b, b}, 1):sum(1) end, {rnd(16, 2, 3), rnd(17, 2, 3)})
  check('mse', function(a, b) return F.mse(a, b, fada.tensor({1, 2, 3}, 'f64')) end, {rnd(18, 2, 3), rnd(19, 2, 3)})
end)

test('gradients accumulate over uses and over backward calls', function()
  local x = A.requires_grad(fada.tensor({1, 2, 3}, 'f64'))
  local y = F.sum(x * x + x)          -- d/dx = 2x + 1
  A.backward(y)
  assert_close(A.grad(x), {3, 5, 7}, 0, 0)
  A.backward(F.sum(x * 2))
  assert_close(A.grad(x), {5, 7, 9}, 0, 0)
  A.zero_grad(x)
  assert_eq(A.grad(x), nil)
end)

-- add's backward hands the same gradient tensor to both inputs; sums over
-- several uses go in place only into tensors the sum itself made
test('gradients summed over many uses, through shared gradient tensors', function()
  local x = A.requires_grad(fada.tensor({1, 2, 3}, 'f64'))
  local z = A.requires_grad(fada.tensor({-1, 0.5, 4}, 'f64'))
  local a = x + z
  local b = a + x
  A.backward(F.sum(b * x + a + a * z))  -- 2x^2 + zx + x + z + xz + z^2
  assert_close(A.grad(x), {4 * 1 + 2 * -1 + 1, 4 * 2 + 2 * 0.5 + 1, 4 * 3 + 2 * 4 + 1}, 1e-12, 0, 'd/dx = 4x + 2z + 1')
  assert_close(A.grad(z), {2 * 1 + 2 * -1 + 1, 2 * 2 + 2 * 0.5 + 1, 2 * 3 + 2 * 4 + 1}, 1e-12, 0, 'd/dz = 2x + 2z + 1')
  -- a and b get one gradient tensor from the last add; a's backward adds it to b's
  local w = A.requires_grad(fada.tensor({1, 2}, 'f64'))
  local bw = w * 3
  A.backward(F.sum((bw + w) + bw))
  assert_close(A.grad(w), {7, 7}, 0, 0, 'd/dw (3w + w + 3w) = 7')
end)

test('nothing is recorded under no_grad; untracked inputs are free', function()
  local x = A.requires_grad(fada.ones(3))
  local y = A.no_grad(function() return x * 2 end)
  assert(not A.tracked(y))
  assert(not A.tracked(fada.ones(3) * 2))
  assert(A.tracked(x * 2))
  checkerror(function() A.backward(F.sum(fada.ones(2))) end, 'not computed from anything that requires a gradient')
end)

test('a saved tensor changed in place is an error, not a wrong gradient', function()
  local x = A.requires_grad(fada.tensor({1, 2, 3}))
  local w = fada.tensor({4, 5, 6})
  local y = F.sum(F.mul(x, w))
  w:add_(1) -- changes what mul saved
  checkerror(function() A.backward(y) end, 'modified in place after the forward pass')
end)

test('backward of a non-scalar needs grad_output', function()
  local x = A.requires_grad(fada.ones(3))
  checkerror(function() A.backward(x * 2) end, 'pass grad_output')
  A.backward(x * 2, fada.tensor{1, 10, 100})
  assert_close(A.grad(x), {2, 20, 200})
end)

test('methods, fada.* and operators of tracked tensors are recorded too', function()
  check('methods', function(a) return a:view(6):narrow(1, 2, 3):exp():sum() + fada.tanh(a):mean() end, {rnd(20, 2, 3)})
  local x = A.requires_grad(fada.ones(2))
  assert(A.tracked(x:mul(3)) and A.tracked(fada.exp(x)) and A.tracked(x:view(1, 2):t()) and not A.tracked(fada.ones(2):view(1, 2):t()))
  assert(not A.tracked(fada.ones(2):mul(3)))
end)

test('gradcheck: conv2d, conv1d, linear, matmul (f64)', function()
  local g = fada.Generator(2)
  local function r(...) return fada.randn({...}, 'f64', g) end
  check('conv2d stride/pad/act', function(x, w, b)
    return F.conv2d(x, w, b, {padding = 1, stride = 2, act = 'silu'}) end, {r(2, 3, 5, 5), r(4, 3, 3, 3), r(4)})
  check('conv2d groups/dilation/residual', function(x, w, res)
    return F.conv2d(x, w, nil, {padding = 2, dilation = 2, groups = 2, residual = res}) end,
    {r(1, 4, 6, 6), r(4, 2, 3, 3), r(1, 4, 6, 6)})
  check('conv1d', function(x, w, b) return F.conv1d(x, w, b, {padding = 1}) end, {r(2, 3, 7), r(5, 3, 3), r(5)})
  check('linear', function(x, w, b) return F.linear(x, w, b, {act = 'silu'}) end, {r(3, 4, 6), r(5, 6), r(5)})
  check('matmul batched', function(a, b) return F.matmul(a, b) end, {r(2, 3, 4), r(4, 5)})
end)

test('gradcheck: norms, softmax, attention, activations, resampling, losses (f64)', function()
  local g = fada.Generator(4)
  local function r(...) return fada.randn({...}, 'f64', g) end
  check('group_norm + silu', function(x, w, b) return F.group_norm(x, 2, w, b, {silu = true}) end, {r(2, 4, 3, 3), r(4), r(4)})
  check('layer_norm', function(x, w, b) return F.layer_norm(x, w, b) end, {r(3, 5), r(5), r(5)})
  check('softmax/log_softmax', function(x) return F.softmax(x, 2) + F.log_softmax(x, 1) end, {r(3, 4)})
  check('attention with extra tokens', function(q, k, v, ek, ev)
    return F.attention(q, k, v, {heads = 2, extra_k = ek, extra_v = ev}) end,
    {r(2, 3, 4), r(2, 5, 4), r(2, 5, 4), r(2, 2, 4), r(2, 2, 4)})
  for _, name in ipairs{'silu', 'gelu', 'gelu_tanh', 'relu'} do
    check(name, function(x) return F.activation(x, name) end, {r(7)})
  end
  check('upsample/avg_pool/pixel (un)shuffle', function(x)
    return F.avg_pool2d(F.upsample_nearest(x, 2), 2) + F.pixel_shuffle(F.pixel_unshuffle(x, 2), 2) end, {r(1, 2, 4, 4)})
  check('resize_bilinear', function(x) return F.resize_bilinear(x, 5, 3) end, {r(1, 2, 4, 4)})
  check('resize_nearest 5x7 -> 3x12', function(x) return F.resize_nearest(x, 3, 12) end, {r(1, 2, 5, 7)})
  check('avg_pool2d of an odd size (7x9 -> 3x4)', function(x) return F.avg_pool2d(x, 2) end, {r(1, 2, 7, 9)})
  check('pad', function(x) return F.pad(x, {1, 2, 0, 1}) end, {r(1, 1, 2, 3)})
  check('embedding', function(w) return F.embedding(w, fada.tensor({{0, 2}, {2, 1}}, 'i64')) end, {r(3, 4)})
  check('mse/l1 weighted', function(a, b) return F.mse(a, b, fada.tensor({1, 2, 3}, 'f64')) + F.l1(a, b) end, {r(2, 3), r(2, 3)})
end)

-- In the bf16 compute mode the attention's products may run in bf16 (AMX), but
-- not when a backward follows: it recomputes the probabilities in f32 from the
-- forward's logsumexp, which must come from the same f32 scores.
test('attention under bf16 compute: f32 products when a gradient is needed', function()
  local q, k, v = rnd(1, 2, 40, 32):to('f32'), rnd(2, 2, 50, 32):to('f32'), rnd(3, 2, 50, 32):to('f32')
  local exact = fada.ops.attention(q, k, v, {heads = 2, bf16 = false})
  local before = fada.get_compute_dtype()
  fada.set_compute_dtype('bf16')
  local ok, err = pcall(function()
    local tracked = F.attention(A.requires_grad(q:clone()), k, v, {heads = 2})
    assert_close(tracked, exact, 0, 0, 'with a gradient: the f32 kernel')
    if fada.ops.nn_amx_enabled() then
      local untracked = F.attention(q, k, v, {heads = 2})
      local moved = ((untracked - exact):abs():max()):item()
      assert(moved > 1e-5, 'without one: bf16 products on AMX (moved ' .. moved .. ')')
    end
  end)
  fada.set_compute_dtype(before)
  if not ok then error(err, 0) end
end)
