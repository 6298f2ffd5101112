-- The nn ops (ops/<family>/, conventions in ops/common/fd_nn_common.h) through fada.ops:
--  * every fast kernel against its reference kernel (fada.ops.ref) on random
--    shapes: odd sizes, non-contiguous views, channels-last, batch 1 and > 1,
--    with the AVX2 kernels on and off;
--  * every reference backward against central finite differences in f64;
--  * parity with torch.nn.functional where /usr/bin/python3 has torch;
--  * bad input gives a clear error.
local fada = require 'fada'
local ops = fada.ops
local ref = ops.ref

fada.manual_seed(1234)

local function randn(...) return fada.randn(...) end

-- a * t + b elementwise (the tensor type has no arithmetic yet)
local function affine(t, a, b)
  local l = t:tolist()
  for i = 1, #l do l[i] = l[i] * a + (b or 0) end
  return fada.tensor(l, t:dtype()):view(t:size())
end

-- A channels-last view of NCHW data ([N, C, H, W] with strides [HWC, 1, WC, C]).
local function channels_last(x) return x:permute{1, 3, 4, 2}:contiguous():permute{1, 4, 2, 3} end

-- A non-contiguous view with x's values: every other element of a wider tensor.
local function strided(x)
  local shp = x:size()
  local wide = {table.unpack(shp)}
  wide[#wide + 1] = 2
  local v = fada.zeros(table.unpack(wide)):select(#wide, 1)
  v:copy(x)
  assert(not v:is_contiguous())
  return v
end

-- Runs fn with the best kernels the CPU has, then with each lesser set: AVX-512, AVX2, plain C.
local function both_isa(fn)
  local had, had512 = ops.nn_simd_enabled(), ops.nn_avx512_enabled()
  fn(had512 and 'avx512' or 'simd=' .. tostring(had))
  local function lesser(what, off, on)
    off()
    local ok, err = pcall(fn, what)
    on()
    if not ok then error(err, 0) end
  end
  if had512 then lesser('avx2', function() ops.nn_set_avx512(false) end, function() ops.nn_set_avx512(true) end) end
  if had then lesser('simd=false', function() ops.nn_set_simd(false) end, function() ops.nn_set_simd(true) end) end
end

-- ---- finite differences ------------------------------------------------------

-- sum over outputs of <out_i, g_i>, as a Lua number
local function dot(outs, gs)
  local s = 0
  for i, o in ipairs(outs) do
    if gs[i] then
      local a, b = o:tolist(), gs[i]:tolist()
      for k = 1, #a do s = s + a[k] * b[k] end
    end
  end
  return s
end

-- Checks analytic gradients of f (a function of the f64 tensors `inputs`,
-- returning a list of outputs) against central differences of
-- L = sum_i <out_i, g_i>, for random g. `backward(gs)` returns the analytic
-- gradients, one per input (nil to skip).
local function gradcheck(name, f, inputs, backward, opts)
  opts = opts or {}
  local h, tol = opts.h or 1e-6, opts.tol or 1e-6
  local outs = f(table.unpack(inputs))
  local gs = {}
  for i, o in ipairs(outs) do gs[i] = randn(table.unpack(o:size())):to('f64') end
  if opts.grad_only then for i = 2, #gs do gs[i] = nil end end
  local analytic = backward(gs)
  for i, x in ipairs(inputs) do
    if analytic[i] then
      assert(x:is_contiguous(), 'gradcheck inputs must be contiguous')
      local flat, ana = x:view(-1), analytic[i]:contiguous():view(-1)
      local n = flat:numel()
      local step = opts.max_points and math.max(1, n // opts.max_points) or 1
      for k = 1, n, step do
        local x0 = flat:get(k)
        flat:set(k, x0 + h)
        local lp = dot(f(table.unpack(inputs)), gs)
        flat:set(k, x0 - h)
        local lm = dot(f(table.unpack(inputs)), gs)
        flat:set(k, x0)
        local num, a = (lp - lm) / (2 * h), ana:get(k)
        if math.abs(num - a) > tol * (1 + math.abs(num)) then
          error(('%s: d/d input %d element %d: analytic %.10g vs numeric %.10g'):format(name, i, k, a, num), 2)
        end
      end
    end
  end
end

local function f64(t) return t:to('f64') end

-- ---- group_norm ---------------------------------------------------------------

test('group_norm fast vs reference (NCHW, channels-last, strided, silu)', function()
  both_isa(function(isa)
    for _, c in ipairs{{1, 4, 1, 5, 7}, {2, 6, 3, 9, 5}, {3, 16, 8, 4, 4}, {2, 8, 8, 1, 13}, {1, 33, 3, 2, 3}} do
      local N, C, G, H, W = table.unpack(c)
      local x = randn(N, C, H, W)
      local w, b = randn(C), randn(C)
      for _, silu in ipairs{false, true} do
        local ey, em, er = ref.group_norm(x, G, w, b, {silu = silu, eps = 1e-5})
        for _, view in ipairs{'nchw', 'cl', 'strided'} do
          local xv = view == 'cl' and channels_last(x) or view == 'strided' and strided(x) or x
          local y, m, r = ops.group_norm(xv, G, w, b, {silu = silu})
          local what = ('%s %s silu=%s %s'):format(isa, view, tostring(silu), table.concat(c, 'x'))
          assert_close(y, ey, 2e-5, 2e-5, what .. ' y')
          assert_close(m, em, 1e-5, 1e-5, what .. ' mean')
          assert_close(r, er, 1e-5, 1e-4, what .. ' rstd')
          if view == 'cl' then assert_eq(y:stride(2), 1, 'channels-last output keeps its layout') end
          local dy = randn(N, C, H, W)
          local dyv = view == 'cl' and channels_last(dy) or dy
          local dx, dw, db = ops.group_norm_backward(dyv, xv, m, r, G, w, b, {silu = silu})
          local ex, ew, eb = ref.group_norm_backward(dy, x, em, er, G, w, b, {silu = silu})
          assert_close(dx, ex, 1e-4, 1e-4, what .. ' dx')
          assert_close(dw, ew, 1e-4, 1e-4, what .. ' dw')
          assert_close(db, eb, 1e-4, 1e-4, what .. ' db')
        end
      end
    end
  end)
end)

test('group_norm without affine, large mean', function()
  local x = affine(randn(2, 4, 6, 6), 1, 1000) -- the variance must survive a mean of 1000
  local y, m, r = ops.group_norm(x, 2, nil, nil)
  local ey, em, er = ref.group_norm(x, 2, nil, nil)
  assert_close(y, ey, 5e-3, 1e-3, 'y')
  assert_close(r, er, 1e-3, 1e-3, 'rstd')
  local dx, dw, db = ops.group_norm_backward(randn(2, 4, 6, 6), x, m, r, 2, nil, nil)
  assert_eq(dw, nil, 'no weight, no dweight')
  assert_eq(db, nil, 'no bias, no dbias')
end)

test('gradcheck group_norm', function()
  local x, w, b = f64(randn(2, 4, 3, 3)), f64(randn(4)), f64(randn(4))
  for _, silu in ipairs{false, true} do
    local f = function(x_, w_, b_) local y = ref.group_norm(x_, 2, w_, b_, {silu = silu}); return {y} end
    gradcheck('group_norm', f, {x, w, b}, function(gs)
      local _, m, r = ref.group_norm(x, 2, w, b, {silu = silu})
      return {ref.group_norm_backward(gs[1], x, m, r, 2, w, b, {silu = silu})}
    end)
  end
  -- the f64 path of the fast entry is the reference: same numbers
  local y1 = ops.group_norm(x, 2, w, b, {silu = true})
  local y2 = ref.group_norm(x, 2, w, b, {silu = true})
  assert_close(y1, y2, 0, 0)
end)

-- ---- layer_norm ---------------------------------------------------------------

test('layer_norm fast vs reference', function()
  both_isa(function(isa)
    for _, shp in ipairs{{1, 7}, {3, 5, 33}, {2, 64}, {4, 1, 129}} do
      local D = shp[#shp]
      local x, w, b = randn(table.unpack(shp)), randn(D), randn(D)
      local y, m, r = ops.layer_norm(strided(x), w, b)
      local ey, em, er = ref.layer_norm(x, w, b)
      assert_close(y, ey, 2e-5, 2e-5, isa .. ' y')
      assert_close(m, em, 1e-5, 1e-5, isa .. ' mean')
      local dy = randn(table.unpack(shp))
      local dx, dw, db = ops.layer_norm_backward(dy, x, m, r, w, b)
      local ex, ew, eb = ref.layer_norm_backward(dy, x, em, er, w, b)
      assert_close(dx, ex, 1e-4, 1e-4, isa .. ' dx')
      assert_close(dw, ew, 1e-4, 1e-4, isa .. ' dw')
      assert_close(db, eb, 1e-4, 1e-4, isa .. ' db')
    end
  end)
end)

test('gradcheck layer_norm', function()
  local x, w, b = f64(randn(3, 5)), f64(randn(5)), f64(randn(5))
  gradcheck('layer_norm', function(x_, w_, b_) return {(ref.layer_norm(x_, w_, b_))} end, {x, w, b}, function(gs)
    local _, m, r = ref.layer_norm(x, w, b)
    return {ref.layer_norm_backward(gs[1], x, m, r, w, b)}
  end)
end)

-- ---- softmax ------------------------------------------------------------------

test('softmax / log_softmax fast vs reference, every dim', function()
  both_isa(function(isa)
    for _, shp in ipairs{{3, 7}, {2, 5, 33}, {1, 300}, {4, 3, 2, 9}} do
      local x = affine(randn(table.unpack(shp)), 3)
      for dim = 1, #shp do
        for _, name in ipairs{'softmax', 'log_softmax'} do
          local what = ('%s %s dim %d %s'):format(isa, name, dim, table.concat(shp, 'x'))
          local y, ey = ops[name](strided(x), dim), ref[name](x, dim)
          assert_close(y, ey, 1e-6, 1e-5, what)
          local dy = randn(table.unpack(shp))
          assert_close(ops[name .. '_backward'](dy, y, dim), ref[name .. '_backward'](dy, ey, dim), 1e-5, 1e-4, what .. ' backward')
        end
      end
    end
    -- negative dims count from the end
    local x = randn(2, 3, 4)
    assert_close(ops.softmax(x, -2), ops.softmax(x, 2), 0, 0)
  end)
end)

test('gradcheck softmax', function()
  local x = f64(randn(3, 4))
  for _, name in ipairs{'softmax', 'log_softmax'} do
    for dim = 1, 2 do
      gradcheck(name, function(x_) return {ref[name](x_, dim)} end, {x}, function(gs)
        return {ref[name .. '_backward'](gs[1], ref[name](x, dim), dim)}
      end)
    end
  end
end)

-- ---- attention ------------------------------------------------------------------

local function attention_cases()
  return {
    {B = 1, Nq = 5, Nk = 7, C = 8, heads = 1},
    {B = 2, Nq = 50, Nk = 97, C = 24, heads = 3, Ne = 5, Be = 1, sliced = true},
    {B = 2, Nq = 49, Nk = 100, C = 64, heads = 2, Ne = 13, Be = 2, mask = 'float', sliced = true},
    {B = 1, Nq = 130, Nk = 96, C = 40, heads = 1, mask = 'bool'},
    {B = 3, Nq = 17, Nk = 193, C = 16, heads = 4, Ne = 3, Be = 3, mask = 'bool', scale = 0.3},
    -- few keys (<= 32): the untiled path, forward and backward (temporal and audio attention)
    {B = 6, Nq = 8, Nk = 8, C = 32, heads = 2, sliced = true},
    {B = 2, Nq = 40, Nk = 4, C = 24, heads = 3, Ne = 3, Be = 1, mask = 'bool'},
    {B = 3, Nq = 9, Nk = 20, C = 16, heads = 2, Ne = 12, Be = 3, mask = 'float', scale = 0.7},
  }
end

-- sliced: q, k and v as column slices of one [B, N, 3C] projection, as the layers
-- pass them (read in place, row stride 3C).
local function attention_inputs(c)
  local q, k, v = randn(c.B, c.Nq, c.C), randn(c.B, c.Nk, c.C), randn(c.B, c.Nk, c.C)
  if c.sliced then
    local qkv = randn(c.B, c.Nk, 3 * c.C)
    q, k, v = randn(c.B, c.Nq, 2 * c.C):narrow(3, c.C + 1, c.C), qkv:narrow(3, 1, c.C), qkv:narrow(3, 2 * c.C + 1, c.C)
    assert(not q:is_contiguous() and not k:is_contiguous())
  end
  local opt = {heads = c.heads, scale = c.scale}
  local Nkt = c.Nk + (c.Ne or 0)
  if c.Ne then opt.extra_k, opt.extra_v = randn(c.Be, c.Ne, c.C), randn(c.Be, c.Ne, c.C) end
  if c.mask == 'float' then
    opt.mask = randn(c.B, 1, c.Nq, Nkt)
  elseif c.mask == 'bool' then
    -- random keep pattern, with one query row fully masked (its output must be 0)
    local m = fada.rand(c.Nq, Nkt)
    local keep = fada.zeros(c.Nq, Nkt, 'bool')
    local lm = m:tolist()
    for i = 1, c.Nq do
      for j = 1, Nkt do keep:set(i, j, i ~= 2 and lm[(i - 1) * Nkt + j] > 0.3) end
    end
    opt.mask = keep
  end
  return q, k, v, opt
end

test('attention fast vs reference (heads, extra tokens, masks, odd sizes)', function()
  both_isa(function(isa)
    for ci, c in ipairs(attention_cases()) do
      local q, k, v, opt = attention_inputs(c)
      local what = ('%s case %d'):format(isa, ci)
      local o, lse = ops.attention(q, k, v, opt)
      local eo, else_ = ref.attention(q, k, v, opt)
      assert_close(o, eo, 2e-5, 1e-4, what .. ' o')
      local dout = randn(c.B, c.Nq, c.C)
      local a = {ops.attention_backward(dout, strided(q), k, v, o, lse, opt)}
      local e = {ref.attention_backward(dout, q, k, v, eo, else_, opt)}
      for i, name in ipairs{'dq', 'dk', 'dv', 'dextra_k', 'dextra_v'} do
        if e[i] then assert_close(a[i], e[i], 5e-5, 1e-4, what .. ' ' .. name)
        else assert_eq(a[i], nil, what .. ' ' .. name) end
      end
    end
  end)
end)

-- bf16 products on AMX tiles (inference in bf16): the operands round to bf16
-- (8 significant bits), so the outputs (|o| <= max |v|, about 4 here) may move
-- by a few 1e-3; a layout or padding mistake moves them by O(1).
test('attention with bf16 products (AMX) vs reference', function()
  if not ops.nn_amx_enabled() then
    skip('this CPU has no AMX-BF16 (or the kernel refused the tile state): the AMX attention is untested here')
  end
  for ci, c in ipairs(attention_cases()) do
    local q, k, v, opt = attention_inputs(c)
    local what = ('amx case %d'):format(ci)
    opt.bf16 = true
    local o, lse = ops.attention(q, k, v, opt)
    local eo, else_ = ref.attention(q, k, v, opt)
    assert_close(o, eo, 2e-2, 1e-2, what .. ' o')
    assert_close(lse:clamp(-1e30, 1e30), else_:clamp(-1e30, 1e30), 2e-2, 1e-2, what .. ' lse')
    opt.bf16 = false
    local exact = ops.attention(q, k, v, opt)
    local moved = (o - exact):abs():max():item()
    if c.Nk + (c.Ne or 0) > 32 then  -- the tiled path: bf16 rounding must show
      assert(moved > 1e-5, what .. ': bf16 products gave the f32 result (the AMX path did not run?)')
    else                              -- few keys: always the f32 path
      assert_eq(moved, 0, what .. ' (few keys stay f32)')
    end
  end
end)

test('attention: a fully masked row gives zeros', function()
  local q, k, v = randn(1, 3, 4), randn(1, 5, 4), randn(1, 5, 4)
  local keep = fada.ones(3, 5, 'bool')
  for j = 1, 5 do keep:set(2, j, false) end
  local o = ops.attention(q, k, v, {mask = keep})
  assert_close(o:select(2, 2), fada.zeros(1, 4), 0, 0)
end)

test('gradcheck attention', function()
  local c = {B = 2, Nq = 3, Nk = 4, C = 4, heads = 2, Ne = 2, Be = 1, mask = 'float'}
  local q, k, v, opt = attention_inputs(c)
  q, k, v, opt.extra_k, opt.extra_v, opt.mask = f64(q), f64(k), f64(v), f64(opt.extra_k), f64(opt.extra_v), f64(opt.mask)
  local function f(q_, k_, v_, ek, ev)
    local o2 = {heads = 2, extra_k = ek, extra_v = ev, mask = opt.mask}
    return {(ref.attention(q_, k_, v_, o2))}
  end
  gradcheck('attention', f, {q, k, v, opt.extra_k, opt.extra_v}, function(gs)
    local o, lse = ref.attention(q, k, v, opt)
    return {ref.attention_backward(gs[1], q, k, v, o, lse, opt)}
  end)
end)

-- ---- activations ------------------------------------------------------------------

local acts = {'silu', 'gelu', 'gelu_tanh', 'sigmoid', 'tanh', 'relu'}

test('activations fast vs reference', function()
  both_isa(function(isa)
    local x = affine(randn(3, 1001), 4)
    local xv = strided(x)
    for _, a in ipairs(acts) do
      assert_close(ops[a](xv), ref[a](x), 1e-6, 2e-6, isa .. ' ' .. a)
      local dy = randn(3, 1001)
      assert_close(ops[a .. '_backward'](dy, xv), ref[a .. '_backward'](dy, x), 1e-5, 1e-5, isa .. ' ' .. a .. ' backward')
    end
  end)
end)

test('fast exp: silu, its gradient and softmax within 1e-6 over the whole f32 exp range', function()
  local x = fada.linspace(-87, 88, 20001)
  local a, e, xs = ops.silu(x):tolist(), ref.silu(x:to('f64')):tolist(), x:tolist()
  for i = 1, #a do
    local r = math.abs(a[i] - e[i]) / math.max(math.abs(e[i]), 1e-37)
    if r > 1e-6 then error(('silu(%.9g): %.9g vs %.9g, rel %.3g'):format(xs[i], a[i], e[i], r)) end
  end
  local ones = fada.ones(20001)
  local ga, ge = ops.silu_backward(ones, x):tolist(), ref.silu_backward(ones:to('f64'), x:to('f64')):tolist()
  for i = 1, #ga do
    if math.abs(ga[i] - ge[i]) > 1e-6 * (1 + math.abs(ge[i])) then
      error(("silu'(%.9g): %.9g vs %.9g"):format(xs[i], ga[i], ge[i]))
    end
  end
  local z = fada.linspace(-87, 0, 4001):view(1, -1)
  local s, r = ops.softmax(z):tolist(), ref.softmax(z:to('f64')):tolist()
  for i = 1, #s do
    if r[i] > 1e-30 and math.abs(s[i] - r[i]) > 1e-6 * r[i] then
      error(('softmax element %d: %.9g vs %.9g'):format(i, s[i], r[i]))
    end
  end
end)

test('fast erf: gelu and its gradient within 1e-6 of the f64 reference over [-30, 30]', function()
  local x = fada.linspace(-30, 30, 60001)
  local dy = fada.ones(60001)
  both_isa(function(isa)
    local ga, ge = ops.gelu(x):to('f64'), ref.gelu(x:to('f64'))
    local gb, gf = ops.gelu_backward(dy, x):to('f64'), ref.gelu_backward(dy:to('f64'), x:to('f64'))
    local ea, eb = (ga - ge):abs():max():item(), (gb - gf):abs():max():item()
    if ea > 1e-6 or eb > 1e-6 then error(('%s gelu: max error %.3g forward, %.3g backward'):format(isa, ea, eb)) end
  end)
end)

test('gradcheck activations', function()
  local x = f64(randn(17))
  for _, a in ipairs(acts) do
    gradcheck(a, function(x_) return {ref[a](x_)} end, {x}, function(gs) return {ref[a .. '_backward'](gs[1], x)} end)
  end
end)

-- ---- resampling, pad, pixel shuffle, embedding, losses -------------------------------

test('resampling fast vs reference', function()
  for _, shp in ipairs{{1, 1, 3, 5}, {2, 3, 7, 4}} do
    local x = randn(table.unpack(shp))
    local xv = strided(x)
    local N, C, H, W = table.unpack(shp)
    for _, s in ipairs{{2, 2}, {3, 1}} do
      local y = ops.upsample_nearest(xv, s[1], s[2])
      assert_close(y, ref.upsample_nearest(x, s[1], s[2]), 0, 0, 'upsample')
      local yc = ops.upsample_nearest(channels_last(x), s[1], s[2]) -- read as it lies, written channels-last
      assert_close(yc, ref.upsample_nearest(x, s[1], s[2]), 0, 0, 'upsample channels-last')
      if C > 1 then assert_eq(yc:stride(2), 1, 'upsample keeps channels-last') end
      local dy = randn(table.unpack(y:size()))
      assert_close(ops.upsample_nearest_backward(dy, s[1], s[2]), ref.upsample_nearest_backward(dy, s[1], s[2]), 1e-5, 1e-5)
    end
    for _, o in ipairs{{2 * H, 2 * W}, {H + 3, W - 1 > 0 and W - 1 or 1}, {1, 1}} do
      local y = ops.resize_bilinear(xv, o[1], o[2])
      assert_close(y, ref.resize_bilinear(x, o[1], o[2]), 1e-5, 1e-5, 'bilinear')
      local dy = randn(N, C, o[1], o[2])
      assert_close(ops.resize_bilinear_backward(dy, H, W), ref.resize_bilinear_backward(dy, H, W), 1e-5, 1e-5, 'bilinear bwd')
    end
  end
  for _, shp in ipairs{{1, 1, 3, 5}, {2, 3, 7, 4}} do
    local x = randn(table.unpack(shp))
    local N, C, H, W = table.unpack(shp)
    -- equal, twice, and sizes whose ratio is not an integer either way (torch's float index rule)
    for _, o in ipairs{{H, W}, {2 * H, 2 * W}, {5, 12}, {12, 5}, {2 * H + 1, W + 2}, {1, 1}} do
      local y = ops.resize_nearest(strided(x), o[1], o[2])
      assert_eq(table.concat(y:size(), 'x'), ('%dx%dx%dx%d'):format(N, C, o[1], o[2]))
      assert_close(y, ref.resize_nearest(x, o[1], o[2]), 0, 0, 'resize_nearest')
      local dy = randn(N, C, o[1], o[2])
      assert_close(ops.resize_nearest_backward(dy, H, W), ref.resize_nearest_backward(dy, H, W), 1e-6, 1e-6,
        'resize_nearest bwd')
    end
  end
  local x2 = randn(1, 2, 3, 4)
  assert_close(ops.resize_nearest(x2, 6, 8), ops.upsample_nearest(x2, 2), 0, 0, 'twice the size = upsample by 2')
  assert_close(ops.resize_nearest(x2, 9, 12), ops.upsample_nearest(x2, 3), 0, 0, 'three times = upsample by 3')
  local x = randn(2, 3, 6, 9)
  assert_close(ops.avg_pool2d(strided(x), 2, 3), ref.avg_pool2d(x, 2, 3), 1e-6, 1e-6, 'avg_pool2d')
  local dy = randn(2, 3, 3, 3)
  assert_close(ops.avg_pool2d_backward(dy, 2, 3), ref.avg_pool2d_backward(dy, 2, 3), 1e-6, 1e-6)
  -- odd sizes floor as torch does: 7x9 by 2 -> 3x4, by (2, 3) -> 3x3; the last row / columns are dropped
  local xo = randn(2, 3, 7, 9)
  for _, k in ipairs{{2, 2}, {2, 3}, {3, 2}} do
    local y = ops.avg_pool2d(strided(xo), k[1], k[2])
    assert_eq(table.concat(y:size(), 'x'), ('2x3x%dx%d'):format(7 // k[1], 9 // k[2]))
    assert_close(y, ref.avg_pool2d(xo, k[1], k[2]), 1e-6, 1e-6, 'avg_pool2d odd')
    local g = randn(table.unpack(y:size()))
    local dx = ops.avg_pool2d_backward(g, k[1], k[2], 7, 9)
    assert_eq(table.concat(dx:size(), 'x'), '2x3x7x9')
    assert_close(dx, ref.avg_pool2d_backward(g, k[1], k[2], 7, 9), 1e-6, 1e-6, 'avg_pool2d odd bwd')
    local used = 7 // k[1] * k[1]
    assert_eq(dx:narrow(3, used + 1, 7 - used):abs():max():item(), 0, 'dropped rows get no gradient')
  end
end)

test('pad, pixel shuffle, embedding, losses fast vs reference', function()
  local x = randn(2, 3, 5, 4)
  for _, p in ipairs{{{1, 2}, 'constant'}, {{1, 0, 2, 3}, 'zeros'}, {{-1, 2, 0, 1}, 'constant'}, {{2, 1, 3, 1}, 'reflect'},
                     {{1, 1, 0, 0, 1, 1}, 'constant'}} do
    local y = ops.pad(strided(x), p[1], p[2], 0.5)
    assert_close(y, ref.pad(x, p[1], p[2], 0.5), 0, 0, 'pad ' .. p[2])
    local dy = randn(table.unpack(y:size()))
    assert_close(ops.pad_backward(dy, x, p[1], p[2]), ref.pad_backward(dy, x, p[1], p[2]), 1e-6, 1e-6, 'pad bwd ' .. p[2])
  end
  local s = randn(2, 12, 3, 5)
  local y = ops.pixel_shuffle(strided(s), 2)
  assert_eq(table.concat(y:size(), 'x'), '2x3x6x10')
  assert_close(y, ref.pixel_shuffle(s, 2), 0, 0, 'pixel_shuffle')
  assert_close(ops.pixel_unshuffle(y, 2), s, 0, 0, 'unshuffle inverts shuffle')
  assert_close(ops.pixel_unshuffle(y, 2), ref.pixel_unshuffle(y, 2), 0, 0, 'pixel_unshuffle')
  local w = randn(11, 6)
  local idx = fada.tensor({{0, 3, 10}, {3, 3, 1}}, 'i64')
  assert_close(ops.embedding(w, idx), ref.embedding(w, idx), 0, 0, 'embedding')
  local dy = randn(2, 3, 6)
  assert_close(ops.embedding_backward(dy, idx, 11), ref.embedding_backward(dy, idx, 11), 1e-6, 1e-6, 'embedding bwd')
  local a, t, wm = randn(3, 50), randn(3, 50), fada.rand(1, 50)
  for _, l in ipairs{'mse_loss', 'l1_loss'} do
    for _, red in ipairs{'mean', 'sum'} do
      for _, wmap in ipairs{false, true} do
        local o = {reduction = red, weight = wmap and wm or nil, grad = 0.7}
        assert_close(ops[l](strided(a), t, o), ref[l](a, t, o), 1e-5, 1e-5, l .. ' ' .. red)
        assert_close(ops[l .. '_backward'](a, t, o), ref[l .. '_backward'](a, t, o), 1e-6, 1e-6, l .. ' backward')
      end
    end
  end
end)

test('gradcheck resampling', function()
  local x = f64(randn(1, 2, 3, 4))
  gradcheck('upsample', function(x_) return {ref.upsample_nearest(x_, 2, 3)} end, {x},
    function(gs) return {ref.upsample_nearest_backward(gs[1], 2, 3)} end)
  for _, o in ipairs{{5, 7}, {2, 3}} do
    gradcheck('bilinear', function(x_) return {ref.resize_bilinear(x_, o[1], o[2])} end, {x},
      function(gs) return {ref.resize_bilinear_backward(gs[1], 3, 4)} end)
  end
  for _, o in ipairs{{2, 3}, {5, 7}, {7, 5}} do
    gradcheck('nearest', function(x_) return {ref.resize_nearest(x_, o[1], o[2])} end, {x},
      function(gs) return {ref.resize_nearest_backward(gs[1], 3, 4)} end)
  end
  local x2 = f64(randn(1, 2, 4, 6))
  gradcheck('avg_pool2d', function(x_) return {ref.avg_pool2d(x_, 2, 3)} end, {x2},
    function(gs) return {ref.avg_pool2d_backward(gs[1], 2, 3)} end)
  local x3 = f64(randn(1, 2, 7, 9))
  gradcheck('avg_pool2d odd', function(x_) return {ref.avg_pool2d(x_, 2, 2)} end, {x3},
    function(gs) return {ref.avg_pool2d_backward(gs[1], 2, 2, 7, 9)} end)
end)

test('gradcheck pad', function()
  local x = f64(randn(2, 3, 4))
  for _, p in ipairs{{{1, 2, -1, 1}, 'constant'}, {{2, 1, 1, 2}, 'reflect'}} do
    gradcheck('pad', function(x_) return {ref.pad(x_, p[1], p[2], 0.25)} end, {x},
      function(gs) return {ref.pad_backward(gs[1], x, p[1], p[2])} end)
  end
end)

test('gradcheck pixel_shuffle', function()
  local x = f64(randn(1, 8, 2, 3))
  gradcheck('pixel_shuffle', function(x_) return {ref.pixel_shuffle(x_, 2)} end, {x},
    function(gs) return {ref.pixel_shuffle_backward(gs[1], 2)} end)
  local x2 = f64(randn(1, 2, 4, 6))
  gradcheck('pixel_unshuffle', function(x_) return {ref.pixel_unshuffle(x_, 2)} end, {x2},
    function(gs) return {ref.pixel_unshuffle_backward(gs[1], 2)} end)
end)

test('gradcheck embedding', function()
  local w = f64(randn(5, 3))
  local idx = fada.tensor({4, 0, 4, 2}, 'i64')
  gradcheck('embedding', function(w_) return {ref.embedding(w_, idx)} end, {w},
    function(gs) return {ref.embedding_backward(gs[1], idx, 5)} end)
end)

test('gradcheck losses', function()
  local a, t, wm = f64(randn(2, 5)), f64(randn(2, 5)), f64(fada.rand(2, 1))
  for _, l in ipairs{'mse_loss', 'l1_loss'} do
    for _, red in ipairs{'mean', 'sum'} do
      local o = {reduction = red, weight = wm}
      gradcheck(l, function(a_) return {ref[l](a_, t, o)} end, {a}, function(gs)
        return {ref[l .. '_backward'](a, t, {reduction = red, weight = wm, grad = gs[1]:item()})}
      end)
    end
  end
end)

-- ---- bf16 / f16 inputs ---------------------------------------------------------------

test('bf16 and f16 inputs compute in f32 and come back in their dtype', function()
  local x = randn(2, 8, 5, 6):to('bf16')
  local w, b = randn(8), randn(8)
  local y, m, r = ops.group_norm(channels_last(x), 4, w, b, {silu = true})
  assert_eq(y:dtype(), 'bf16', 'group_norm output dtype')
  assert_eq(m:dtype(), 'f32', 'mean stays f32')
  local ey = ref.group_norm(x:to('f32'), 4, w, b, {silu = true})
  assert_close(y:to('f32'), ey, 2e-2, 1e-2, 'group_norm bf16')
  local dx = ops.group_norm_backward(randn(2, 8, 5, 6):to('bf16'), x, m, r, 4, w, b, {silu = true})
  assert_eq(dx:dtype(), 'bf16', 'dx dtype')
  local q, k, v = randn(1, 20, 16):to('f16'), randn(1, 30, 16):to('f16'), randn(1, 30, 16):to('f16')
  local o, lse = ops.attention(q, k, v, {heads = 2})
  assert_eq(o:dtype(), 'f16', 'attention output dtype')
  assert_close(o:to('f32'), ref.attention(q:to('f32'), k:to('f32'), v:to('f32'), {heads = 2}), 2e-3, 2e-3, 'attention f16')
  local grads = {ops.attention_backward(randn(1, 20, 16):to('f16'), q, k, v, o, lse, {heads = 2})}
  assert_eq(grads[1]:dtype(), 'f16', 'dq dtype')
  local s = randn(3, 40):to('bf16')
  assert_close(ops.softmax(s):to('f32'), ref.softmax(s:to('f32')), 4e-3, 1e-2, 'softmax bf16')
  assert_close(ops.silu(s):to('f32'), ref.silu(s:to('f32')), 1e-2, 1e-2, 'silu bf16')
end)

-- ---- bad input ---------------------------------------------------------------------------

test('bad input gives clear errors', function()
  local x = randn(2, 6, 4, 4)
  checkerror(function() ops.group_norm(x, 4) end, 'groups 4 do not divide the 6 channels')
  checkerror(function() ops.group_norm(x, 0) end, 'groups 0 do not divide')
  checkerror(function() ops.group_norm(x, 3, randn(5)) end, 'weight [5], expected [6]')
  checkerror(function() ops.group_norm(fada.zeros(2, 6, 0, 4), 3) end, 'zero-size dim')
  checkerror(function() ops.group_norm(fada.zeros(2, 6, 4, 4, 'i64'), 3) end, 'dtype i64, expected a float dtype')
  checkerror(function() ops.group_norm(randn(6), 3) end, 'needs at least 2 dims')
  local _, m, r = ops.group_norm(x, 3)
  checkerror(function() ops.group_norm_backward(randn(2, 6, 4, 5), x, m, r, 3) end, 'shapes differ')
  checkerror(function() ops.layer_norm(randn(3, 4), randn(5)) end, 'weight [5], expected [4]')
  checkerror(function() ops.softmax(randn(3, 4), 3) end, '')
  checkerror(function() ops.softmax(fada.zeros(3, 0), 1) end, 'zero-size dim')
  local q, k, v = randn(1, 4, 8), randn(1, 5, 8), randn(1, 5, 8)
  checkerror(function() ops.attention(q, k, v, {heads = 3}) end, 'heads 3 do not divide the 8 channels')
  checkerror(function() ops.attention(q, randn(1, 5, 6), v) end, 'k [1, 5, 6], expected [1, N, 8]')
  checkerror(function() ops.attention(q, k, randn(1, 4, 8)) end, 'key counts differ')
  checkerror(function() ops.attention(q, k, v, {extra_k = randn(1, 2, 8)}) end, 'must be given together')
  checkerror(function() ops.attention(q, k, v, {mask = randn(4, 6)}) end, 'does not broadcast')
  checkerror(function() ops.attention(q, k, v, {mask = fada.zeros(4, 5, 'i64')}) end, 'expected bool, u8 or a float')
  checkerror(function() ops.attention(randn(1, 0, 8), k, v) end, 'zero-size dim')
  checkerror(function() ops.attention(q:to('i32'), k, v) end, 'expected a float dtype')
  checkerror(function() ops.upsample_nearest(randn(2, 3, 4), 2) end, 'expected 4')
  checkerror(function() ops.upsample_nearest(x, 0) end, 'must be >= 1')
  checkerror(function() ops.avg_pool2d(randn(1, 1, 1, 4), 2) end, 'x [1, 1, 1, 4] is smaller than the kernel (2, 2)')
  checkerror(function() ops.avg_pool2d_backward(randn(1, 1, 3, 4), 2, 2, 5, 9) end,
    'does not pool from an input of 5x9 by kernel (2, 2): expected 2x4')
  checkerror(function() ops.resize_nearest(x, 0, 3) end, 'output size (0, 3) must be >= 1')
  checkerror(function() ops.resize_nearest(randn(3, 4), 2, 2) end, 'expected 4')
  checkerror(function() ops.pad(x, {1}) end, 'need an even count')
  checkerror(function() ops.pad(x, {4, 0}, 'reflect') end, 'reflect pads (4, 0) must be in [0, 4)')
  checkerror(function() ops.pad(x, {-3, -1}) end, 'leave dim 3')
  checkerror(function() ops.pad(x, {1, 1}, 'circular') end, "pad mode 'circular'")
  checkerror(function() ops.pixel_shuffle(randn(1, 6, 2, 2), 2) end, 'not a multiple of 4')
  checkerror(function() ops.pixel_unshuffle(randn(1, 2, 3, 4), 2) end, 'multiples of 2')
  checkerror(function() ops.embedding(randn(4, 3), fada.tensor({1, 4}, 'i64')) end, 'index 4 out of range [0, 4)')
  checkerror(function() ops.embedding(randn(4, 3), fada.tensor({1.0, 2.0})) end, 'expected i64 or i32')
  checkerror(function() ops.mse_loss(randn(3), randn(4)) end, 'shapes differ')
  checkerror(function() ops.mse_loss(randn(3), randn(3), {reduction = 'max'}) end, "reduction 'max'")
  checkerror(function() ops.mse_loss(randn(3, 2), randn(3, 2), {weight = randn(4)}) end, '')
  checkerror(function() ops.silu(fada.zeros(3, 'u8')) end, 'expected a float dtype')
end)

-- ---- torch parity ------------------------------------------------------------------------------

-- Runs `code` in /usr/bin/python3 with torch, the given tensors bound as f64
-- torch tensors (requires_grad) under their names; the code sets `outs`, a
-- list of tensors, which come back as flat Lua lists.
local function torch_run(inputs, code)
  local base = os.tmpname()
  local py, out = base .. '.py', base .. '.out'
  local f = assert(io.open(py, 'w'))
  f:write('import torch\nimport torch.nn.functional as F\ntorch.set_default_dtype(torch.float64)\n')
  for name, t in pairs(inputs) do
    local vals = t:tolist()
    for i, v in ipairs(vals) do vals[i] = type(v) == 'boolean' and (v and '1' or '0') or ('%.17g'):format(v) end
    local dt = t:dtype() == 'bool' and 'torch.bool' or t:dtype() == 'i64' and 'torch.int64' or 'torch.float64'
    f:write(('%s = torch.tensor([%s], dtype=%s).reshape([%s])\n'):format(name, table.concat(vals, ','), dt,
      table.concat(t:size(), ',')))
    if dt == 'torch.float64' then f:write(name .. '.requires_grad_()\n') end
  end
  f:write(code, '\n')
  f:write(('with open(%q, "w") as fh:\n'):format(out))
  f:write('    for o in outs:\n        fh.write(" ".join(repr(float(v)) for v in o.detach().reshape(-1).tolist()) + "\\n")\n')
  f:close()
  local ok = os.execute('/usr/bin/python3 ' .. py)
  os.remove(py)
  assert(ok, 'python failed on ' .. py)
  local res = {}
  for line in io.lines(out) do
    local l = {}
    for v in line:gmatch('%S+') do l[#l + 1] = tonumber(v) end
    res[#res + 1] = l
  end
  os.remove(out)
  os.remove(base)
  return res
end

test('torch parity: group_norm (+silu), layer_norm, softmax', function()
  need_torch()
  local x, w, b = randn(2, 8, 5, 3), randn(8), randn(8)
  local g = randn(2, 8, 5, 3)
  local r = torch_run({x = x, w = w, b = b, g = g}, [==[
y = F.silu(F.group_norm(x, 4, w, b, 1e-5))
y.backward(g)
z = F.layer_norm(x, [3], w[:3], b[:3], 1e-5)
s = F.softmax(x, dim=1)
ls = F.log_softmax(x, dim=-1)
outs = [y, x.grad, w.grad, b.grad, z, s, ls]]==])
  local y, m, rs = ops.group_norm(channels_last(x), 4, w, b, {silu = true})
  assert_close(y, r[1], 2e-5, 2e-5, 'group_norm+silu')
  local dx, dw, db = ops.group_norm_backward(g, channels_last(x), m, rs, 4, w, b, {silu = true})
  assert_close(dx, r[2], 1e-4, 1e-4, 'dx')
  assert_close(dw, r[3], 1e-4, 1e-4, 'dw')
  assert_close(db, r[4], 1e-4, 1e-4, 'db')
  assert_close(ops.layer_norm(x, w:narrow(1, 1, 3), b:narrow(1, 1, 3)), r[5], 2e-5, 2e-5, 'layer_norm')
  assert_close(ops.softmax(x, 2), r[6], 1e-6, 1e-5, 'softmax')
  assert_close(ops.log_softmax(x, -1), r[7], 1e-5, 1e-5, 'log_softmax')
end)

test('torch parity: attention vs explicit softmax(QK^T)V', function()
  need_torch()
  local B, Nq, Nk, Ne, C, H = 2, 37, 50, 6, 16, 2
  local q, k, v = randn(B, Nq, C), randn(B, Nk, C), randn(B, Nk, C)
  local ek, ev = randn(B, Ne, C), randn(B, Ne, C)
  local mask = randn(1, 1, Nq, Nk + Ne)
  local g = randn(B, Nq, C)
  local r = torch_run({q = q, k = k, v = v, ek = ek, ev = ev, mask = mask, g = g}, [==[
B, Nq, C = q.shape; H = 2; d = C // H
kk = torch.cat([k, ek], 1); vv = torch.cat([v, ev], 1)
split = lambda t: t.reshape(B, t.shape[1], H, d).transpose(1, 2)
s = split(q) @ split(kk).transpose(-1, -2) / d ** 0.5 + mask
o = (torch.softmax(s, -1) @ split(vv)).transpose(1, 2).reshape(B, Nq, C)
o.backward(g)
outs = [o, q.grad, k.grad, v.grad, ek.grad, ev.grad]]==])
  local opt = {heads = H, extra_k = ek, extra_v = ev, mask = mask}
  local o, lse = ops.attention(q, k, v, opt)
  assert_close(o, r[1], 2e-5, 1e-4, 'o')
  local grads = {ops.attention_backward(g, q, k, v, o, lse, opt)}
  for i, name in ipairs{'dq', 'dk', 'dv', 'dextra_k', 'dextra_v'} do assert_close(grads[i], r[i + 1], 5e-5, 1e-4, name) end
end)

test('torch parity: interpolate bilinear / nearest', function()
  need_torch()
  local x = randn(2, 3, 5, 7)
  local g = randn(2, 3, 8, 4)
  local r = torch_run({x = x, g = g}, [==[
y = F.interpolate(x, size=(8, 4), mode='bilinear', align_corners=False)
y.backward(g)
n = F.interpolate(x, scale_factor=2, mode='nearest')
outs = [y, x.grad, n]]==])
  assert_close(ops.resize_bilinear(x, 8, 4), r[1], 1e-5, 1e-5, 'bilinear')
  assert_close(ops.resize_bilinear_backward(g, 5, 7), r[2], 1e-5, 1e-5, 'bilinear backward')
  assert_close(ops.upsample_nearest(x, 2), r[3], 0, 0, 'nearest')
end)

test('torch parity: nearest to any size (7 -> 5, 5 -> 12), avg_pool2d of odd sizes, with gradients', function()
  need_torch()
  local x = randn(2, 3, 7, 5)
  local g1, g2, g3 = randn(2, 3, 5, 12), randn(2, 3, 3, 2), randn(2, 3, 14, 3)
  local p = randn(2, 3, 7, 9)
  local gp1, gp2 = randn(2, 3, 3, 4), randn(2, 3, 2, 3)
  local w = fada.arange(26):to('f32'):view(1, 1, 1, 26)
  local r = torch_run({x = x, g1 = g1, g2 = g2, g3 = g3, p = p, gp1 = gp1, gp2 = gp2, w = w}, [==[
outs = [F.interpolate(w, size=(1, 22), mode='nearest')]
for size, g in (((5, 12), g1), ((3, 2), g2), ((14, 3), g3)):
    x.grad = None
    y = F.interpolate(x, size=size, mode='nearest')
    y.backward(g)
    outs += [y, x.grad.clone()]
for k, g in ((2, gp1), ((3, 3), gp2)):
    p.grad = None
    y = F.avg_pool2d(p, k)
    y.backward(g)
    outs += [y, p.grad.clone()]]==])
  -- 26 -> 22: output 11 takes pixel 12, where the exact 11 * 26 / 22 = 13 (torch's float product rounds down)
  local wr = ops.resize_nearest(w, 1, 22)
  assert_close(wr, r[1], 0, 0, 'nearest 26 -> 22')
  assert_eq(wr:view(22):get(12), 12, 'output 11 of 26 -> 22 is pixel 12, as torch')
  table.remove(r, 1)
  for i, c in ipairs{{5, 12, g1}, {3, 2, g2}, {14, 3, g3}} do
    local what = ('nearest 7x5 -> %dx%d'):format(c[1], c[2])
    local y = ops.resize_nearest(x, c[1], c[2])
    assert_eq(table.concat(y:size(), 'x'), ('2x3x%dx%d'):format(c[1], c[2]), what)
    assert_close(y, r[2 * i - 1], 0, 0, what)
    assert_close(ops.resize_nearest_backward(c[3], 7, 5), r[2 * i], 1e-6, 1e-6, what .. ' backward')
    assert_close(ref.resize_nearest_backward(c[3]:to('f64'), 7, 5), r[2 * i], 1e-12, 1e-12, what .. ' backward (ref)')
  end
  for i, c in ipairs{{2, 2, gp1, '3x4'}, {3, 3, gp2, '2x3'}} do
    local what = ('avg_pool2d 7x9 by %dx%d'):format(c[1], c[2])
    local y = ops.avg_pool2d(p, c[1], c[2])
    assert_eq(table.concat(y:size(), 'x'), '2x3x' .. c[4], what .. ': torch floors')
    assert_close(y, r[6 + 2 * i - 1], 1e-6, 1e-6, what)
    assert_close(ops.avg_pool2d_backward(c[3], c[1], c[2], 7, 9), r[6 + 2 * i], 1e-6, 1e-6, what .. ' backward')
  end
end)

-- act((group_norm(x) * w + b) * (1 + s) + t) in f64, from its pieces (s, t may be nil)
local function gn_pieces(x, G, w, b, s, t, silu)
  local y = ref.group_norm(x:to('f64'), G, w:to('f64'), b:to('f64'))
  if s then y = y * (s:to('f64') + 1) end
  if t then y = y + t:to('f64') end
  return silu and y / ((-y):exp() + 1) or y
end

test('group_norm with a per-sample scale/shift (ResBlock time embedding) equals its pieces in f64', function()
  for _, simd in ipairs({true, false}) do
    ops.nn_set_simd(simd)
    for _, layout in ipairs({'nchw', 'channels_last', 'blocked'}) do
      for _, c in ipairs({{N = 3, C = 16, G = 4, rows = 3}, {N = 2, C = 32, G = 32, rows = 1}, {N = 2, C = 24, G = 8, rows = 2}}) do
        local x0 = randn({c.N, c.C, 5, 6}) * 2 + 1
        local x = layout == 'channels_last' and channels_last(x0) or layout == 'blocked' and x0:blocked() or x0
        local w, b = randn({c.C}), randn({c.C})
        local s, t = randn({c.rows, c.C, 1, 1}) * 0.5, randn({c.rows, c.C})
        for _, which in ipairs({'both', 'scale', 'shift'}) do
          local ss = which ~= 'shift' and s or nil
          local tt = which ~= 'scale' and t:view(c.rows, c.C, 1, 1) or nil
          local y = ops.group_norm(x, c.G, w, b, {silu = true, scale = ss, shift = which ~= 'scale' and t or nil})
          assert_close(y:to('f64'), gn_pieces(x0, c.G, w, b, ss, tt, true), 1e-5, 1e-5,
            ('%s C %d G %d rows %d %s simd %s'):format(layout, c.C, c.G, c.rows, which, simd))
        end
      end
    end
  end
  ops.nn_set_simd(true)
  local x = randn({2, 8, 3, 3})
  -- one scale row for every sample, a shift row per sample
  local s1, t2, w, b = randn({1, 8}), randn({2, 8, 1, 1}), randn({8}), randn({8})
  assert_close(ops.group_norm(x, 2, w, b, {scale = s1, shift = t2}):to('f64'),
    gn_pieces(x, 2, w, b, s1:view(1, 8, 1, 1), t2, false), 1e-5, 1e-5, 'scale [1, C] with shift [N, C, 1, 1]')
  checkerror(function() ops.group_norm(x, 2, nil, nil, {scale = randn({3, 8})}) end,
    'scale [3, 8] must be [N or 1, C] or [N or 1, C, 1, 1] for x [2, 8, 3, 3]')
  checkerror(function() ops.group_norm(x:to('f64'), 2, nil, nil, {shift = randn({2, 8}):to('f64')}) end,
    'scale / shift take an f32 x, got f64')
end)

test('group_norm with scale/shift recorded: the fused backward gives the gradients of its recorded pieces', function()
  local F, A = fada.F, require 'fada.autograd'
  local function grads(fused, x, w, b, s, t, silu)
    local p = {A.requires_grad(x:clone()), A.requires_grad(w:clone()), A.requires_grad(b:clone()),
               s and A.requires_grad(s:clone()), t and A.requires_grad(t:clone())}
    local y
    if fused then
      y = F.group_norm(p[1], 2, p[2], p[3], {silu = silu, scale = p[4] or nil, shift = p[5] or nil})
    else -- the pieces, each its own recorded op
      local function as4(v) return v:dim() == 2 and F.view(v, v:size(1), v:size(2), 1, 1) or v end
      y = F.group_norm(p[1], 2, p[2], p[3])
      if s then y = y * (as4(p[4]) + 1) end
      if t then y = y + as4(p[5]) end
      if silu then y = F.silu(y) end
    end
    local gy = randn(table.unpack(y:size()))
    A.backward(y, gy)
    return y, {A.grad(p[1]), A.grad(p[2]), A.grad(p[3]), s and A.grad(p[4]) or false, t and A.grad(p[5]) or false}
  end
  both_isa(function(isa)
    for _, c in ipairs({{'per sample', {2, 8, 1, 1}, {2, 8, 1, 1}}, {'one scale row, no shift', {1, 8}, nil},
                        {'shift only', nil, {2, 8}}}) do
      for _, silu in ipairs({true, false}) do
        for _, layout in ipairs({'nchw', 'cl'}) do
          local x0 = randn(2, 8, 5, 6) * 2 + 1
          local x = layout == 'cl' and channels_last(x0) or x0
          local w, b = randn(8), randn(8)
          local s, t = c[2] and randn(table.unpack(c[2])) * 0.5, c[3] and randn(table.unpack(c[3]))
          local what = ('%s %s silu %s %s'):format(isa, c[1], tostring(silu), layout)
          fada.manual_seed(7)
          local y1, g1 = grads(true, x, w, b, s, t, silu)
          fada.manual_seed(7)
          local y0, g0 = grads(false, x, w, b, s, t, silu)
          assert_close(y1, y0, 1e-5, 1e-5, what .. ' forward')
          for i, name in ipairs({'x', 'weight', 'bias', 'scale', 'shift'}) do
            if g0[i] then
              local dn = what .. ' d' .. name
              assert_eq(table.concat(g1[i]:size(), 'x'), table.concat(g0[i]:size(), 'x'), dn .. ' shape')
              assert_close(g1[i], g0[i], 1e-4, 1e-4, dn)
            end
          end
        end
      end
    end
  end)
  checkerror(function() ops.ref.group_norm_mod_backward(randn(1, 4, 2, 2), randn(1, 4, 2, 2)) end,
    'no reference kernel')
end)

test('group_norm with bf16_nhwc (bf16 channels-last) equals the f64 pieces rounded to bf16, every layout', function()
  -- C 16 and 24 with 5x6 pixels: whole 8x8 tiles and edge pixels; C 12: edge channels; 8x8: tiles only
  local shapes = {{N = 3, C = 16, G = 4, H = 5, W = 6}, {N = 2, C = 32, G = 32, H = 8, W = 8},
                  {N = 2, C = 24, G = 8, H = 5, W = 6}, {N = 1, C = 12, G = 3, H = 3, W = 5}}
  both_isa(function(isa)
    for _, c in ipairs(shapes) do
      local x0 = randn({c.N, c.C, c.H, c.W}) * 2 + 1
      local w, b = randn({c.C}), randn({c.C})
      local s, t = randn({c.N, c.C, 1, 1}) * 0.5, randn({c.N, c.C})
      for _, layout in ipairs({'nchw', 'channels_last', 'blocked', 'strided'}) do
        if layout ~= 'blocked' or c.C % 8 == 0 then
          local x = layout == 'channels_last' and channels_last(x0) or layout == 'blocked' and x0:blocked()
                    or layout == 'strided' and strided(x0) or x0
          for _, mod in ipairs({false, true}) do
            local silu = mod -- the two ResBlock uses: norm + SiLU, and norm + modulation + SiLU
            local what = ('%s %s C %d G %d %dx%d mod %s'):format(isa, layout, c.C, c.G, c.H, c.W, tostring(mod))
            local y, m, r = ops.group_norm(x, c.G, w, b, {silu = silu, bf16_nhwc = true,
                                                         scale = mod and s or nil, shift = mod and t or nil})
            assert_eq(y:dtype(), 'bf16', what .. ' dtype')
            assert_eq(y:stride(2), 1, what .. ': channels-last')
            assert_eq(y:stride(4), c.C, what .. ': channels-last')
            -- rounding to bf16 (8 significant bits) moves a value by at most half its last place: 2^-8 of it
            local want = gn_pieces(x0, c.G, w, b, mod and s or nil, mod and t:view(c.N, c.C, 1, 1) or nil, silu)
            assert_close(y:to('f64'), want, 1e-5, 2 ^ -8 + 1e-5, what)
            local _, em, er = ref.group_norm(x0, c.G, w, b)
            assert_close(m, em, 1e-5, 1e-5, what .. ' mean')
            assert_close(r, er, 1e-5, 1e-4, what .. ' rstd')
          end
        end
      end
    end
  end)
  local x = randn({2, 8, 3, 3})
  checkerror(function() ops.group_norm(x:view(2, 8, 9), 2, nil, nil, {bf16_nhwc = true}) end,
    'group_norm: a bf16 channels-last output takes a 4-d f32 x, got f32 [2, 8, 9]')
  checkerror(function() ops.group_norm(x:to('f64'), 2, nil, nil, {bf16_nhwc = true}) end,
    'takes a 4-d f32 x, got f64')
  checkerror(function() ref.group_norm(x, 2, nil, nil, {bf16_nhwc = true}) end,
    'the reference kernel writes no bf16_nhwc output')
end)
