-- conv2d / conv1d / linear / matmul: oneDNN fast paths against the plain-C
-- reference kernels, reference backward against central finite differences
-- in f64, PyTorch parity where /usr/bin/python3 imports torch, bad input.
local fada = require 'fada'
local ops = fada.ops

local gen = fada.Generator(1234)
local function randn(...)
  local shape = {...}
  return fada.randn(shape, gen)
end
local function f64(t) return t:to('f64') end
-- channels-last copy of a 4-d tensor: same logical NCHW shape, NHWC strides
local function channels_last(t) return t:permute(1, 3, 4, 2):contiguous():permute(1, 4, 2, 3) end
local function is_channels_last(t)
  local s, st = t:size(), t:stride()
  return st[2] == 1 and st[4] == s[2]
end

-- sum(a .* b) over all elements, in double
local function dot(a, b)
  local la, lb, s = a:tolist(), b:tolist(), 0
  for i = 1, #la do s = s + la[i] * lb[i] end
  return s
end

-- flat (1-based, row-major) index -> multi-index for t:get/t:set
local function unflatten(t, k)
  local size, idx = t:size(), {}
  k = k - 1
  for d = #size, 1, -1 do
    idx[d] = k % size[d] + 1
    k = k // size[d]
  end
  return idx
end

-- Central differences of L(x) = sum(f() .* g) with respect to `count` random
-- elements of the f64 tensor x (perturbed in place), against the analytic
-- gradient `grad` (f64). f must read x.
local function fd_check(f, x, g, grad, what, count)
  count = count or 6
  local n, eps = x:numel(), 1e-6
  local analytic = grad:tolist()
  for _ = 1, count do
    local k = math.random(n)
    local idx = unflatten(x, k)
    local v = x:get(table.unpack(idx))
    idx[#idx + 1] = v + eps
    x:set(table.unpack(idx))
    local lp = dot(f(), g)
    idx[#idx] = v - eps
    x:set(table.unpack(idx))
    local lm = dot(f(), g)
    idx[#idx] = v
    x:set(table.unpack(idx))
    local numeric = (lp - lm) / (2 * eps)
    assert_close(analytic[k], numeric, 1e-6, 1e-5, ('%s: d/dx[%d]'):format(what, k))
  end
end

math.randomseed(42)

-- ---------------------------------------------------------------- conv2d

local conv_cases = {
  -- N, C, H, W, O, K, opts
  {1, 3, 7, 9, 5, 3, {padding = 1}},
  {2, 8, 11, 10, 16, 3, {padding = 1, stride = 2}},
  {3, 6, 9, 9, 4, 3, {padding = {2, 1}, dilation = {2, 1}}},
  {2, 8, 8, 7, 12, 3, {padding = 1, groups = 4}},
  {1, 16, 5, 6, 16, 1, {}},
  {2, 4, 10, 9, 6, 5, {padding = 2, stride = {2, 3}}},
  {1, 32, 16, 16, 32, 3, {padding = 1}},
}

local function with(t, extra)
  local o = {}
  for k, v in pairs(t) do o[k] = v end
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

local function describe(c) return ('N%d C%d %dx%d O%d K%d'):format(c[1], c[2], c[3], c[4], c[5], c[6]) end

test('conv2d forward: oneDNN vs reference (NCHW, channels-last, views, bias, act, residual)', function()
  for _, c in ipairs(conv_cases) do
    local N, C, H, W, O, K, opts = table.unpack(c)
    local g = opts.groups or 1
    local x = randn(N, C, H, W)
    local w = randn(O, C // g, K, K)
    local b = randn(O)
    local ref = ops.conv2d(x, w, b, with(opts, {ref = true}))
    local tol = 2e-4 * math.sqrt(C // g * K * K)
    assert_close(ops.conv2d(x, w, b, opts), ref, tol, 1e-4, describe(c) .. ' NCHW')
    assert_close(ops.conv2d(x, w, nil, opts), ops.conv2d(x, w, nil, with(opts, {ref = true})), tol, 1e-4,
      describe(c) .. ' no bias')
    -- channels-last in, channels-last out (and the other way)
    local xc = channels_last(x)
    for _, pol in ipairs{'any', 'plain'} do
      assert_close(ops.conv2d(xc, w, b, with(opts, {layout_policy = pol})), ref, tol, 1e-4,
        describe(c) .. ' channels-last, layout ' .. pol)
      assert_close(ops.conv2d(x, w, b, with(opts, {layout_policy = pol})), ref, tol, 1e-4,
        describe(c) .. ' NCHW, layout ' .. pol)
    end
    local y = ops.conv2d(xc, w, b, opts)
    assert(is_channels_last(y) or y:size(2) == 1, 'channels-last input should give channels-last output')
    assert_close(y, ref, tol, 1e-4, describe(c) .. ' channels-last')
    local y2 = ops.conv2d(x, w, b, with(opts, {channels_last = true}))
    assert(is_channels_last(y2) or y2:size(2) == 1 or y2:size(3) * y2:size(4) == 1, 'channels_last=true')
    assert_close(y2, ref, tol, 1e-4, describe(c) .. ' NCHW -> channels-last')
    assert(ops.conv2d(xc, w, b, with(opts, {channels_last = false})):is_contiguous())
    -- a non-contiguous view (every other column of a wider tensor)
    local wide = randn(N, C, H, 2 * W)
    local xv = wide:view(N, C, H, W, 2):select(5, 1)
    assert(not xv:is_contiguous())
    assert_close(ops.conv2d(xv, w, b, opts), ops.conv2d(xv:contiguous(), w, b, with(opts, {ref = true})), tol,
      1e-4, describe(c) .. ' strided view')
    -- fused epilogue: silu / gelu and a residual
    local r = randn(table.unpack(ref:size()))
    for i, act in ipairs{'silu', 'gelu', 'gelu_tanh'} do
      local pol = ({'any', 'plain', 'auto'})[i]
      local o2 = with(opts, {act = act, residual = r, layout_policy = pol})
      local rr = ops.conv2d(x, w, b, with(o2, {ref = true}))
      assert_close(ops.conv2d(x, w, b, o2), rr, tol, 1e-4, describe(c) .. ' ' .. act .. ' + residual ' .. pol)
      assert_close(ops.conv2d(xc, w, b, o2), rr, tol, 1e-4, describe(c) .. ' cl ' .. act .. ' + residual ' .. pol)
    end
  end
end)

test('conv2d: weights are packed once and repacked after an in-place update', function()
  local x, w, b = randn(1, 8, 6, 6), randn(8, 8, 3, 3), randn(8)
  ops.dnnl_clear()
  ops.conv2d(x, w, b, {padding = 1, layout_policy = 'any'})
  local s1 = ops.dnnl_stats()
  ops.conv2d(x, w, b, {padding = 1, layout_policy = 'any'})
  local s2 = ops.dnnl_stats()
  assert_eq(s2.misses, s1.misses, 'second call builds no primitive')
  if s1.weight_reorders > 0 then -- weights needed packing on this CPU
    assert_eq(s2.weight_reorders, s1.weight_reorders, 'second call reorders no weights')
    assert(s2.weight_hits > s1.weight_hits, 'second call hits the weight cache')
  end
  -- a training step writes w in place (and bumps its version): new values must be used
  w:set(1, 1, 2, 2, 5.0)
  assert_close(ops.conv2d(x, w, b, {padding = 1, layout_policy = 'any'}), ops.conv2d(x, w, b, {padding = 1, ref = true}), 1e-3, 1e-4,
    'after in-place update')
end)

test('conv2d: the packed-weight cache holds a model of 300 weights without re-packing', function()
  local x, ws = randn(1, 16, 6, 6), {}
  for i = 1, 300 do ws[i] = randn(16, 16, 3, 3) end
  local function pass() for i = 1, #ws do ops.conv2d(x, ws[i], nil, {padding = 1, layout_policy = 'any'}) end end
  ops.dnnl_clear()
  pass()
  local s1 = ops.dnnl_stats()
  if s1.weight_reorders == 0 then skip('the weights needed no packing on this CPU: nothing to cache') end
  pass()
  local s2 = ops.dnnl_stats()
  assert_eq(s2.weight_reorders, s1.weight_reorders, 'the second pass re-packs no weights')
end)

test('conv2d backward: reference vs f64 finite differences', function()
  for _, c in ipairs{conv_cases[1], conv_cases[2], conv_cases[3], conv_cases[4], conv_cases[6]} do
    local N, C, H, W, O, K, opts = table.unpack(c)
    local g = opts.groups or 1
    local x, w, b = f64(randn(N, C, H, W)), f64(randn(O, C // g, K, K)), f64(randn(O))
    local y = ops.conv2d(x, w, b, opts)
    local gy = f64(randn(table.unpack(y:size())))
    local gx, gw, gb = ops.conv2d_backward(gy, x, w, opts)
    local f = function() return ops.conv2d(x, w, b, opts) end
    fd_check(f, x, gy, gx, describe(c) .. ' grad_input')
    fd_check(f, w, gy, gw, describe(c) .. ' grad_weight')
    fd_check(f, b, gy, gb, describe(c) .. ' grad_bias', 3)
  end
end)

test('conv2d backward: oneDNN vs reference (NCHW and channels-last)', function()
  for _, c in ipairs(conv_cases) do
    local N, C, H, W, O, K, opts = table.unpack(c)
    local g = opts.groups or 1
    local x, w = randn(N, C, H, W), randn(O, C // g, K, K)
    local y = ops.conv2d(x, w, nil, opts)
    local gy = randn(table.unpack(y:size()))
    local rx, rw, rb = ops.conv2d_backward(gy, x, w, with(opts, {ref = true}))
    local tol = 3e-4 * math.sqrt(N * y:size(3) * y:size(4) + C * K * K)
    for _, layout in ipairs{'nchw', 'nhwc'} do
      local xx, gg = x, gy
      if layout == 'nhwc' then xx, gg = channels_last(x), channels_last(gy) end
      local gx, gw, gb = ops.conv2d_backward(gg, xx, w, opts)
      assert_close(gx, rx, tol, 1e-4, describe(c) .. ' grad_input ' .. layout)
      assert_close(gw, rw, tol, 1e-4, describe(c) .. ' grad_weight ' .. layout)
      assert_close(gb, rb, tol, 1e-4, describe(c) .. ' grad_bias ' .. layout)
      if layout == 'nhwc' then assert(is_channels_last(gx) or C == 1, 'grad_input follows the input layout') end
    end
    local gx, gw, gb = ops.conv2d_backward(gy, x, w, with(opts, {weight = false, bias = false}))
    assert(gx and gw == nil and gb == nil, 'skipped gradients are nil')
  end
end)

-- Winograd (on by default for f32 3x3 stride-1 convolutions where oneDNN has
-- it): the f64 reference bounds its error as it bounds the direct kernel's,
-- at the UNet's shapes, forward (with the fused epilogue) and backward.
test('conv2d with Winograd vs reference, and algorithm = direct / conv_set_winograd(false) turn it off', function()
  assert(ops.conv_winograd_enabled(), 'Winograd is on by default')
  local ran = false
  for _, c in ipairs{{2, 64, 16, 16, 64}, {1, 3, 7, 9, 5}, {2, 32, 12, 10, 48}} do
    local N, C, H, W, O = table.unpack(c)
    local x, w, b = randn(N, C, H, W), randn(O, C, 3, 3), randn(O)
    local r = randn(N, O, H, W)
    local opts = {padding = 1, act = 'silu', residual = r, layout_policy = 'any'}
    local ref = ops.conv2d(x, w, b, with(opts, {ref = true}))
    local tol = 2e-4 * math.sqrt(C * 9)
    local before = ops.conv_winograd_calls()
    assert_close(ops.conv2d(x, w, b, opts), ref, tol, 1e-4, describe{N, C, H, W, O, 3} .. ' forward')
    assert_close(ops.conv2d(channels_last(x), w, b, opts), ref, tol, 1e-4, describe{N, C, H, W, O, 3} .. ' channels-last')
    assert_close(ops.conv2d(x, w, b, with(opts, {training = true})), ref, tol, 1e-4,
      describe{N, C, H, W, O, 3} .. ' training (weights transformed in the kernel)')
    local gy = randn(N, O, H, W)
    local rx, rw, rb = ops.conv2d_backward(gy, x, w, {padding = 1, ref = true})
    local gx, gw, gb = ops.conv2d_backward(gy, x, w, {padding = 1})
    local btol = 3e-4 * math.sqrt(N * H * W + C * 9)
    assert_close(gx, rx, btol, 1e-4, describe{N, C, H, W, O, 3} .. ' grad_input')
    assert_close(gw, rw, btol, 1e-4, describe{N, C, H, W, O, 3} .. ' grad_weight')
    assert_close(gb, rb, btol, 1e-4, describe{N, C, H, W, O, 3} .. ' grad_bias')
    ran = ran or ops.conv_winograd_calls() > before
    -- asked for direct, per call or for the process: no Winograd call
    local n = ops.conv_winograd_calls()
    ops.conv2d(x, w, b, with(opts, {algorithm = 'direct'}))
    ops.conv2d_backward(gy, x, w, {padding = 1, algorithm = 'direct'})
    ops.conv_set_winograd(false)
    assert_close(ops.conv2d(x, w, b, opts), ref, tol, 1e-4, describe{N, C, H, W, O, 3} .. ' Winograd off')
    ops.conv_set_winograd(true)
    assert_eq(ops.conv_winograd_calls(), n, 'direct calls ran no Winograd kernel')
  end
  if not ran then skip("this CPU's oneDNN has no Winograd kernel (AVX-512 only): the direct kernels ran") end
end)

-- ---------------------------------------------------------------- conv1d

test('conv1d forward and backward: oneDNN vs reference, reference vs finite differences', function()
  local cases = {{2, 5, 17, 7, 3, {padding = 1}}, {1, 8, 32, 8, 5, {padding = 4, dilation = 2, groups = 2}},
                 {3, 4, 20, 6, 4, {stride = 2}}}
  for _, c in ipairs(cases) do
    local N, C, L, O, K, opts = table.unpack(c)
    local g = opts.groups or 1
    local x, w, b = randn(N, C, L), randn(O, C // g, K), randn(O)
    local ref = ops.conv1d(x, w, b, with(opts, {ref = true}))
    assert_close(ops.conv1d(x, w, b, opts), ref, 1e-4 * K * C, 1e-4, 'conv1d forward')
    local gy = randn(table.unpack(ref:size()))
    local rx, rw, rb = ops.conv1d_backward(gy, x, w, with(opts, {ref = true}))
    local gx, gw, gb = ops.conv1d_backward(gy, x, w, opts)
    assert_close(gx, rx, 1e-3, 1e-4, 'conv1d grad_input')
    assert_close(gw, rw, 1e-3, 1e-4, 'conv1d grad_weight')
    assert_close(gb, rb, 1e-3, 1e-4, 'conv1d grad_bias')
    local X, Wt, B, G = f64(x), f64(w), f64(b), f64(gy)
    local dx, dw, db = ops.conv1d_backward(G, X, Wt, opts)
    local f = function() return ops.conv1d(X, Wt, B, opts) end
    fd_check(f, X, G, dx, 'conv1d grad_input')
    fd_check(f, Wt, G, dw, 'conv1d grad_weight')
    fd_check(f, B, G, db, 'conv1d grad_bias', 2)
  end
end)

-- ---------------------------------------------------------------- linear

test('linear forward/backward: oneDNN vs reference, finite differences, views', function()
  for _, c in ipairs{{{7, 13}, 5}, {{2, 3, 16}, 9}, {{1, 64}, 32}, {{33}, 17}} do
    local xs, out = c[1], c[2]
    local inf = xs[#xs]
    local x, w, b = randn(table.unpack(xs)), randn(out, inf), randn(out)
    local ref = ops.linear(x, w, b, {ref = true})
    assert_close(ops.linear(x, w, b), ref, 1e-4 * inf, 1e-4, 'linear')
    assert_close(ops.linear(x, w, nil), ops.linear(x, w, nil, {ref = true}), 1e-4 * inf, 1e-4, 'linear no bias')
    assert_close(ops.linear(x, w, b, {act = 'silu'}), ops.linear(x, w, b, {act = 'silu', ref = true}), 1e-4 * inf,
      1e-4, 'linear + silu')
    -- a non-contiguous input (a transposed view)
    if #xs == 2 then
      local xt = randn(xs[2], xs[1]):t()
      assert_close(ops.linear(xt, w, b), ops.linear(xt, w, b, {ref = true}), 1e-4 * inf, 1e-4, 'linear x view')
      local gxt = ops.linear_backward(ref, xt, w, {weight = false, bias = false})
      assert_close(gxt, (ops.linear_backward(ref, xt, w, {ref = true})), 1e-3, 1e-4, 'linear x view grad')
    end
    -- a transposed (non-contiguous) weight view; both backends
    local wt = randn(inf, out):t()
    assert_close(ops.linear(x, wt, b), ops.linear(x, wt, b, {ref = true}), 1e-4 * inf, 1e-4, 'linear W view')
    for _, be in ipairs{'dnnl', 'blas'} do
      assert_close(ops.linear(x, w, b, {backend = be}), ref, 1e-4 * inf, 1e-4, 'linear ' .. be)
      local gx, gw, gb = ops.linear_backward(ref, x, w, {backend = be})
      local rx, rw, rb = ops.linear_backward(ref, x, w, {ref = true})
      assert_close(gx, rx, 1e-3, 1e-4, 'linear grad_input ' .. be)
      assert_close(gw, rw, 1e-3, 1e-4, 'linear grad_weight ' .. be)
      assert_close(gb, rb, 1e-3, 1e-4, 'linear grad_bias ' .. be)
    end
    local gy = randn(table.unpack(ref:size()))
    local rx, rw, rb = ops.linear_backward(gy, x, w, {ref = true})
    local gx, gw, gb = ops.linear_backward(gy, x, w)
    assert_close(gx, rx, 1e-3, 1e-4, 'linear grad_input')
    assert_close(gw, rw, 1e-3, 1e-4, 'linear grad_weight')
    assert_close(gb, rb, 1e-3, 1e-4, 'linear grad_bias')
    local X, Wd, B, G = f64(x), f64(w), f64(b), f64(gy)
    local dx, dw, db = ops.linear_backward(G, X, Wd)
    local f = function() return ops.linear(X, Wd, B) end
    fd_check(f, X, G, dx, 'linear grad_input')
    fd_check(f, Wd, G, dw, 'linear grad_weight')
    fd_check(f, B, G, db, 'linear grad_bias', 2)
  end
end)

-- ---------------------------------------------------------------- matmul

local mm_cases = {
  {{5}, {5}}, {{3, 4}, {4}}, {{4}, {4, 6}}, {{3, 4}, {4, 5}},
  {{2, 3, 4}, {4, 5}}, {{4}, {2, 4, 3}}, {{2, 1, 3, 4}, {5, 4, 2}}, {{1, 3, 7}, {4, 7, 2}},
}

test('matmul forward/backward: torch.matmul shapes, broadcasting, transposes', function()
  for _, c in ipairs(mm_cases) do
    local a, b = randn(table.unpack(c[1])), randn(table.unpack(c[2]))
    local what = ('%s @ %s'):format(table.concat(c[1], 'x'), table.concat(c[2], 'x'))
    local ref = ops.matmul(a, b, {ref = true})
    local y = ops.matmul(a, b)
    assert_close(y, ref, 1e-4, 1e-4, what)
    assert_close(fada.matmul(a, b), ref, 1e-4, 1e-4, what .. ' fada.matmul')
    assert_close(a:matmul(b), ref, 1e-4, 1e-4, what .. ' t:matmul')
    local gy = randn(table.unpack(ref:size()))
    local ra, rb = ops.matmul_backward(gy, a, b, {ref = true})
    local ga, gb = ops.matmul_backward(gy, a, b)
    assert_close(ga, ra, 1e-4, 1e-4, what .. ' grad a')
    assert_close(gb, rb, 1e-4, 1e-4, what .. ' grad b')
    local A, B, G = f64(a), f64(b), f64(gy)
    local da, db = ops.matmul_backward(G, A, B)
    local f = function() return ops.matmul(A, B) end
    fd_check(f, A, G, da, what .. ' grad a', 4)
    fd_check(f, B, G, db, what .. ' grad b', 4)
  end
  -- transposes as options and as strided views
  local a, b = randn(3, 6, 4), randn(3, 5, 6)
  local ref = ops.matmul(a:transpose(2, 3), b:transpose(2, 3), {ref = true})
  assert_close(ops.matmul(a, b, {transpose_a = true, transpose_b = true}), ref, 1e-4, 1e-4, 'transpose options')
  assert_close(ops.matmul(a:transpose(2, 3), b:transpose(2, 3)), ref, 1e-4, 1e-4, 'transposed views')
  local gy = randn(3, 4, 5)
  local ra, rb = ops.matmul_backward(gy, a, b, {transpose_a = true, transpose_b = true, ref = true})
  local ga, gb = ops.matmul_backward(gy, a, b, {transpose_a = true, transpose_b = true})
  assert_close(ga, ra, 1e-4, 1e-4, 'transposed grad a')
  assert_close(gb, rb, 1e-4, 1e-4, 'transposed grad b')
  -- a larger product (blocked kernels, odd sizes), on each backend and on the
  -- automatic choice after it has timed both (10 calls)
  local big_a, big_b = randn(67, 129), randn(129, 45)
  local big_ref = ops.matmul(big_a, big_b, {ref = true})
  for _, be in ipairs{'dnnl', 'blas', 'auto', 'auto', 'auto', 'auto', 'auto', 'auto', 'auto', 'auto', 'auto', 'auto', 'auto'} do
    assert_close(ops.matmul(big_a, big_b, {backend = be}), big_ref, 1e-3, 1e-4, '67x129 @ 129x45 ' .. be)
  end
  -- OpenBLAS's share is split over the threads by row blocks of A: a transposed A (its rows are
  -- columns in memory), a bias, and a batch smaller than the thread count each place the blocks
  local ta = randn(129, 67):t()                                            -- [67, 129], column-major
  assert_close(ops.matmul(ta, big_b, {backend = 'blas'}), ops.matmul(ta, big_b, {ref = true}), 1e-3, 1e-4,
    '67x129 (transposed view) @ 129x45 blas')
  local lw, lb = randn(45, 129), randn(45)
  assert_close(ops.linear(big_a, lw, lb, {backend = 'blas'}), ops.linear(big_a, lw, lb, {ref = true}), 1e-3, 1e-4,
    'linear 67 rows, bias, blas')
  local one_a = randn(1, 67, 129)
  assert_close(ops.matmul(one_a, big_b, {backend = 'blas'}), ops.matmul(one_a, big_b, {ref = true}), 1e-3, 1e-4,
    'batch of 1, 67 rows, blas')
  local bt_a, bt_b = randn(3, 1, 17, 9), randn(4, 9, 11):transpose(2, 3):contiguous():transpose(2, 3)
  local bt_ref = ops.matmul(bt_a, bt_b, {ref = true})
  for _, be in ipairs{'dnnl', 'blas'} do
    assert_close(ops.matmul(bt_a, bt_b, {backend = be}), bt_ref, 1e-4, 1e-4, 'broadcast batch, transposed b ' .. be)
    local ga, gb = ops.matmul_backward(bt_ref, bt_a, bt_b, {backend = be})
    local ra, rb = ops.matmul_backward(bt_ref, bt_a, bt_b, {ref = true})
    assert_close(ga, ra, 1e-3, 1e-4, 'broadcast grad a ' .. be)
    assert_close(gb, rb, 1e-3, 1e-4, 'broadcast grad b ' .. be)
  end
  checkerror(function() ops.matmul(big_a, big_b, {backend = 'mkl'}) end, "backend must be 'auto', 'dnnl' or 'blas'")
end)

-- ---------------------------------------------------------------- bf16

test('bf16 compute: per call and global, within bf16 tolerance (or the f32 fallback)', function()
  local x, w, b = randn(2, 16, 12, 12), randn(32, 16, 3, 3), randn(32)
  local ref = ops.conv2d(x, w, b, {padding = 1, ref = true})
  -- bf16 keeps 8 significant bits: relative error ~2^-8 per product, summed over 144 terms
  local y = ops.conv2d(x, w, b, {padding = 1, compute = 'bf16'})
  assert_close(y, ref, 0.15, 2e-2, 'conv2d bf16')
  assert_eq(y:dtype(), 'f32', 'bf16 compute keeps f32 output')
  local gy = randn(table.unpack(ref:size()))
  local rx, rw = ops.conv2d_backward(gy, x, w, {padding = 1, ref = true})
  local gx, gw = ops.conv2d_backward(gy, x, w, {padding = 1, compute = 'bf16'})
  assert_close(gx, rx, 0.3, 2e-2, 'conv2d bf16 grad_input')
  assert_close(gw, rw, 1.5, 2e-2, 'conv2d bf16 grad_weight')
  local xl, wl = randn(9, 64), randn(24, 64)
  fada.set_compute_dtype('bf16')
  assert_eq(fada.get_compute_dtype(), 'bf16')
  local ok, yl = pcall(ops.linear, xl, wl)
  local ym = ok and ops.matmul(xl, wl:t())
  fada.set_compute_dtype('f32')
  assert(ok, yl)
  assert_close(yl, ops.linear(xl, wl, nil, {ref = true}), 0.25, 2e-2, 'linear bf16 (global)')
  assert_close(ym, ops.linear(xl, wl, nil, {ref = true}), 0.25, 2e-2, 'matmul bf16 (global)')
  local cpu = fada.cpu and fada.cpu() or {}
  local fb = ops.fallbacks().bf16
  print(('    bf16: %s, %d call(s) fell back to f32'):format(cpu.avx512bf16 and 'AVX512-BF16 CPU' or 'no AVX512-BF16',
    fb))
  checkerror(function() fada.set_compute_dtype('f16') end, "expected 'f32' or 'bf16'")
  checkerror(function() ops.conv2d(x, w, b, {compute = 'f8'}) end, "compute must be 'f32' or 'bf16'")
end)

test('conv2d on a bf16 input (group_norm bf16_nhwc): the f32 convolution of the same values, f32 out', function()
  local x, w, b, res = randn(2, 16, 9, 10), randn(24, 16, 3, 3), randn(24), randn(2, 24, 9, 10)
  for _, layout in ipairs({'channels_last', 'nchw'}) do
    local xb = layout == 'channels_last' and x:permute(1, 3, 4, 2):contiguous():to('bf16'):permute(1, 4, 2, 3)
               or x:to('bf16')
    if layout == 'channels_last' then assert(is_channels_last(xb), 'a channels-last bf16 view') end
    local xv = xb:to('f32') -- exactly the bf16 values, in f32
    for _, compute in ipairs({'f32', 'bf16'}) do
      local what = layout .. ' compute ' .. compute
      local o = {padding = 1, compute = compute, residual = res, act = 'silu'}
      local y = ops.conv2d(xb, w, b, o)
      assert_eq(y:dtype(), 'f32', what .. ': f32 output')
      -- the same values given as f32: oneDNN rounds them to bf16 (no change) for bf16 compute
      assert_close(y, ops.conv2d(xv, w, b, o), 1e-5, 1e-5, what .. ' vs the f32 input')
      if compute == 'f32' then
        assert_close(y, ops.conv2d(f64(xv), f64(w), f64(b), {padding = 1, residual = f64(res), act = 'silu'}),
          1e-4, 1e-4, what .. ' vs the f64 reference')
      end
    end
    local yr = ops.conv2d(xb, w, b, {padding = 1, ref = true})
    assert_eq(yr:dtype(), 'f32', layout .. ': the reference loops give f32 too')
    assert_close(yr, ops.conv2d(xv, w, b, {padding = 1, ref = true}), 1e-5, 1e-5, layout .. ' reference')
  end
  local xb = x:to('bf16')
  checkerror(function() ops.conv2d(xb, w:to('bf16')) end, 'weight dtype bf16; convolution takes f32')
  checkerror(function() ops.conv2d(xb, w:to('f64')) end, 'weight dtype f64 vs input dtype bf16 (wants f32)')
  checkerror(function() ops.conv2d(xb, w, nil, {padding = 1, residual = res:to('bf16')}) end, 'residual dtype bf16')
  checkerror(function() ops.conv2d_backward(randn(2, 24, 9, 10), xb, w, {padding = 1}) end,
    'conv2d_backward: input dtype bf16; the backward takes the f32 activations')
end)

-- ---------------------------------------------------------------- bad input

test('bad input gives clear errors, never a crash', function()
  local x, w = randn(1, 8, 6, 6), randn(4, 8, 3, 3)
  checkerror(function() ops.conv2d(x, randn(4, 3, 3, 3)) end, 'in_channels 8')
  checkerror(function() ops.conv2d(x, randn(4, 8, 3)) end, 'must have 4 dims')
  checkerror(function() ops.conv2d(x, randn(6, 2, 3, 3), nil, {groups = 3}) end, 'groups 3 do not divide')
  checkerror(function() ops.conv2d(x, randn(6, 8, 3, 3), nil, {groups = 0}) end, 'groups 0 must be >= 1')
  checkerror(function() ops.conv2d(x, w, nil, {padding = -1}) end, 'padding -1 must be >= 0')
  checkerror(function() ops.conv2d(x, w, nil, {stride = 0}) end, 'stride 0 must be >= 1')
  checkerror(function() ops.conv2d(x, w, nil, {stride = 1.5}) end, 'must be an integer')
  checkerror(function() ops.conv2d(x, randn(4, 8, 9, 9)) end, 'larger than the padded input')
  checkerror(function() ops.conv2d(randn(0, 8, 6, 6), w) end, 'zero-size dim')
  checkerror(function() ops.conv2d(x:to('i32'), w) end, 'input dtype i32')
  checkerror(function() ops.conv2d(x, w:to('f64')) end, 'weight dtype f64 vs input dtype f32')
  checkerror(function() ops.conv2d(x, w, randn(5)) end, 'bias [5] vs 4 output channels')
  checkerror(function() ops.conv2d(x, w, nil, {residual = randn(1, 4, 5, 5)}) end, 'residual [1, 4, 5, 5] vs output')
  checkerror(function() ops.conv2d(x, w, nil, {act = 'swish2'}) end, "act 'swish2'")
  checkerror(function() ops.conv2d(x, w, nil, {layout_policy = 'best'}) end, "layout_policy must be")
  checkerror(function() ops.conv2d(x, w, nil, {algorithm = 'fft'}) end, "algorithm must be 'auto' or 'direct', got fft")
  checkerror(function() ops.conv2d_backward(randn(1, 4, 5, 5), x, w) end, 'grad_output [1, 4, 5, 5]')
  checkerror(function() ops.conv1d(x, w) end, 'must have 3 dims')
  checkerror(function() ops.linear(randn(3, 5), randn(4, 6)) end, 'in_features 5')
  checkerror(function() ops.linear(randn(3, 6), randn(4, 6), randn(3)) end, 'bias [3] vs 4 out_features')
  checkerror(function() ops.linear(randn(3, 6):to('i64'), randn(4, 6)) end, 'input dtype i64')
  checkerror(function() ops.linear_backward(randn(3, 5), randn(3, 6), randn(4, 6)) end, 'grad_output [3, 5]')
  checkerror(function() fada.matmul(randn(3, 4), randn(5, 6)) end, 'inner dims 4 ~= 5')
  checkerror(function() fada.matmul(randn(2, 3, 4), randn(3, 4, 5)) end, 'do not broadcast')
  checkerror(function() fada.matmul(randn(3, 4), 7) end, 'tensor expected')
  checkerror(function() ops.matmul_backward(randn(3, 6), randn(3, 4), randn(4, 5)) end, 'grad_output [3, 6]')
  -- zero-size matmul is well defined (torch gives zeros / empty)
  assert_eq(fada.matmul(randn(3, 0), randn(0, 2)):numel(), 6)
  assert_close(fada.matmul(randn(3, 0), randn(0, 2)), fada.zeros(3, 2), 0, 0, 'empty inner dim sums to 0')
  -- a released tensor
  local r = randn(2, 2)
  r:release()
  checkerror(function() fada.matmul(r, randn(2, 2)) end, 'released tensor')
end)

-- ---------------------------------------------------------------- torch parity

-- Runs a Python snippet under Debian's torch with the given tensors bound as
-- float64 torch tensors; the snippet sets `out` to a list of tensors, printed
-- back one per line.
local function torch_run(inputs, body)
  local lines = {'import torch', 'import torch.nn.functional as F', 'torch.set_grad_enabled(True)'}
  for name, t in pairs(inputs) do
    local vals = {}
    for i, v in ipairs(t:tolist()) do vals[i] = ('%.17g'):format(v) end
    lines[#lines + 1] = ('%s = torch.tensor([%s], dtype=torch.float64).reshape(%s).requires_grad_()'):format(
      name, table.concat(vals, ','), '[' .. table.concat(t:size(), ',') .. ']')
  end
  lines[#lines + 1] = body
  lines[#lines + 1] = "for o in out: print(' '.join('%.17g' % v for v in o.detach().reshape(-1).tolist()))"
  local path = os.tmpname()
  local f = assert(io.open(path, 'w'))
  f:write(table.concat(lines, '\n'), '\n')
  f:close()
  local p = assert(io.popen('/usr/bin/python3 ' .. path .. ' 2>&1'))
  local res = {}
  for line in p:lines() do
    local row = {}
    for v in line:gmatch('%S+') do row[#row + 1] = tonumber(v) end
    if #row == 0 or row[1] == nil then error('torch script failed: ' .. line) end
    res[#res + 1] = row
  end
  p:close()
  os.remove(path)
  return res
end

test('torch parity: conv2d forward and backward (groups, stride, dilation)', function()
  need_torch()
  local x, w, b = randn(2, 6, 9, 8), randn(4, 3, 3, 3), randn(4)
  local opts = {stride = {2, 1}, padding = {1, 2}, dilation = {1, 2}, groups = 2}
  local y = ops.conv2d(x, w, b, opts)
  local gy = randn(table.unpack(y:size()))
  local gx, gw, gb = ops.conv2d_backward(gy, x, w, opts)
  local r = torch_run({x = x, w = w, b = b, gy = gy}, [=[
y = F.conv2d(x, w, b, stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)
y.backward(gy)
out = [y, x.grad, w.grad, b.grad]]=])
  assert_close(y, r[1], 1e-4, 1e-4, 'torch conv2d y')
  assert_close(gx, r[2], 1e-4, 1e-4, 'torch conv2d grad x')
  assert_close(gw, r[3], 1e-3, 1e-4, 'torch conv2d grad w')
  assert_close(gb, r[4], 1e-3, 1e-4, 'torch conv2d grad b')
end)

test('torch parity: conv1d and linear forward and backward', function()
  need_torch()
  local x, w, b = randn(2, 4, 15), randn(6, 4, 3), randn(6)
  local y = ops.conv1d(x, w, b, {padding = 2, dilation = 2})
  local gy = randn(table.unpack(y:size()))
  local gx, gw, gb = ops.conv1d_backward(gy, x, w, {padding = 2, dilation = 2})
  local xl, wl, bl = randn(3, 5, 10), randn(7, 10), randn(7)
  local yl = ops.linear(xl, wl, bl, {act = 'gelu'})
  local ylin = ops.linear(xl, wl, bl)
  local gyl = randn(3, 5, 7)
  local gxl, gwl, gbl = ops.linear_backward(gyl, xl, wl)
  local r = torch_run({x = x, w = w, b = b, gy = gy, xl = xl, wl = wl, bl = bl, gyl = gyl}, [=[
y = F.conv1d(x, w, b, padding=2, dilation=2)
y.backward(gy)
yl = F.linear(xl, wl, bl)
yl.backward(gyl)
out = [y, x.grad, w.grad, b.grad, F.gelu(yl), yl, xl.grad, wl.grad, bl.grad]]=])
  assert_close(y, r[1], 1e-4, 1e-4, 'torch conv1d y')
  assert_close(gx, r[2], 1e-4, 1e-4, 'torch conv1d grad x')
  assert_close(gw, r[3], 1e-4, 1e-4, 'torch conv1d grad w')
  assert_close(gb, r[4], 1e-4, 1e-4, 'torch conv1d grad b')
  assert_close(yl, r[5], 1e-4, 1e-4, 'torch gelu(linear)')
  assert_close(ylin, r[6], 1e-4, 1e-4, 'torch linear')
  assert_close(gxl, r[7], 1e-4, 1e-4, 'torch linear grad x')
  assert_close(gwl, r[8], 1e-4, 1e-4, 'torch linear grad w')
  assert_close(gbl, r[9], 1e-4, 1e-4, 'torch linear grad b')
end)
