-- fada.F: the functional layer that autograd records. Each function computes
-- its result with the raw kernels (fada.*, fada.ops.*) and, when an input
-- needs a gradient, records how to send the output's gradient back.
--
-- What is recorded: every op F defines, however it is called -- F.exp(x),
-- fada.exp(x), x:exp() or an operator (+ - * / ^, unary minus). The fada.*
-- functions and Tensor methods of those names are wrapped so that they go
-- through F when an operand is tracked and straight to the kernel otherwise.
-- In-place methods (add_, ...) are never recorded.
local fada = require 'fada'
local A = require 'fada.autograd'

local F = {}
local meta = getmetatable(fada.zeros(0))
local methods = meta.__index

-- The raw kernels, captured before the wrapping at the end of this file.
local K, KM = {}, {}
for k, v in pairs(fada) do if type(v) == 'function' then K[k] = v end end
for k, v in pairs(methods) do KM[k] = v end
local record, needs, sum_to = A.record, A.needs_grad, A.sum_to

local function is_t(x) return type(x) == 'userdata' end
local function shape(x) return x:size() end

-- ---- FLOP counting ----------------------------------------------------------

-- The running total while F.count_flops runs, nil otherwise: a counter the
-- ops below add to, so that counting needs no wrapping of F's functions.
local flops

-- F.count_flops(fn) -> the FLOPs of the convolutions, linear maps and
-- attention that fn runs through F (2 per multiply-add; norms and elementwise
-- ops are not counted). Nested counts add to the outer one.
function F.count_flops(fn)
  local outer = flops
  flops = 0
  local ok, err = pcall(fn)
  local total = flops
  flops = outer and outer + total
  if not ok then error(err, 0) end
  return total
end

-- y = x ⊛ w with w [out, ...]: each output element takes the weights of one
-- output channel, 2 FLOPs each.
local function count_weights(y, w)
  if not flops then return end
  local per = 1
  for d = 2, w:dim() do per = per * w:size(d) end
  local n = 1
  for _, s in ipairs(y:size()) do n = n * s end
  flops = flops + 2 * n * per
end

-- q [B, Nq, C] against Nk keys (plus the extra ones): q kᵀ and the weighted sum of v.
local function count_attention(q, k, ek)
  if not flops then return end
  local nk = k:size(2) + (ek and ek:size(2) or 0)
  flops = flops + 4 * q:size(1) * q:size(2) * nk * q:size(3)
end

-- ---- elementwise arithmetic ------------------------------------------------

function F.add(a, b)
  local out = K.add(a, b)
  if not needs(is_t(a) and a or nil, is_t(b) and b or nil) then return out end
  return record('add', out, {is_t(a) and a or nil, is_t(b) and b or nil}, function(g)
    return is_t(a) and sum_to(g, shape(a)) or nil, is_t(b) and sum_to(g, shape(b)) or nil
  end)
end

function F.sub(a, b)
  local out = K.sub(a, b)
  if not needs(is_t(a) and a or nil, is_t(b) and b or nil) then return out end
  return record('sub', out, {is_t(a) and a or nil, is_t(b) and b or nil}, function(g)
    return is_t(a) and sum_to(g, shape(a)) or nil, is_t(b) and sum_to(-g, shape(b)) or nil
  end)
end

function F.mul(a, b)
  local out = K.mul(a, b)
  if not needs(is_t(a) and a or nil, is_t(b) and b or nil) then return out end
  return record('mul', out, {is_t(a) and a or nil, is_t(b) and b or nil}, function(g)
    return is_t(a) and sum_to(g * b, shape(a)) or nil, is_t(b) and sum_to(g * a, shape(b)) or nil
  end, {is_t(a) and a or nil, is_t(b) and b or nil})
end

function F.div(a, b)
  local out = K.div(a, b)
  if not needs(is_t(a) and a or nil, is_t(b) and b or nil) then return out end
  return record('div', out, {is_t(a) and a or nil, is_t(b) and b or nil}, function(g)
    local ga = is_t(a) and sum_to(g / b, shape(a)) or nil
    local gb = is_t(b) and sum_to(-(g * out) / b, shape(b)) or nil
    return ga, gb
  end, {is_t(b) and b or nil, out})
end

-- a ^ p with p a number (the common case) or a tensor
function F.pow(a, p)
  local out = K.pow(a, p)
  if not needs(is_t(a) and a or nil, is_t(p) and p or nil) then return out end
  return record('pow', out, {is_t(a) and a or nil, is_t(p) and p or nil}, function(g)
    local ga, gp
    if is_t(a) then ga = sum_to(g * p * K.pow(a, p - 1), shape(a)) end
    if is_t(p) then gp = sum_to(g * out * K.log(a), shape(p)) end
    return ga, gp
  end, {is_t(a) and a or nil, out})
end

function F.neg(a)
  local out = K.neg(a)
  if not needs(a) then return out end
  return record('neg', out, {a}, function(g) return -g end)
end

-- Unary functions whose derivative is a function of input x and output y.
local unary = {
  exp = function(g, x, y) return g * y end,
  log = function(g, x) return g / x end,
  sqrt = function(g, x, y) return g * 0.5 / y end,
  rsqrt = function(g, x, y) return g * -0.5 * y * y * y end,
  tanh = function(g, x, y) return g * (1 - y * y) end,
  sigmoid = function(g, x, y) return g * y * (1 - y) end,
  sin = function(g, x) return g * K.cos(x) end,
  cos = function(g, x) return -(g * K.sin(x)) end,
  abs = function(g, x) return g * K.sign(x) end,
}
for name, deriv in pairs(unary) do
  local raw = K[name]
  F[name] = function(x)
    local y = raw(x)
    if not needs(x) then return y end
    return record(name, y, {x}, function(g) return deriv(g, x, y) end, {x, y})
  end
end

function F.clamp(x, lo, hi)
  local y = K.clamp(x, lo, hi)
  if not needs(x) then return y end
  return record('clamp', y, {x}, function(g)
    -- gradient flows where the input was inside the bounds
    local inside = K.eq(y, x)
    return K.where(inside, g, 0)
  end, {x, y})
end

-- ---- reductions -------------------------------------------------------------

-- F.sum(x, [dims], [keepdim]) with dims a 1-based dim or a list of them.
local function dims_list(x, dims)
  local n = x:dim()
  if dims == nil then
    local all = {}
    for d = 1, n do all[d] = d end
    return all
  end
  local list = type(dims) == 'table' and dims or {dims}
  local out = {}
  for i, d in ipairs(list) do out[i] = d < 0 and d + n + 1 or d end
  return out
end

-- The gradient of a reduction, broadcast back to x's shape.
local function expand_back(g, x, dims, keepdim)
  if not keepdim then
    local sorted = {table.unpack(dims)}
    table.sort(sorted)
    for _, d in ipairs(sorted) do g = g:unsqueeze(d) end
  end
  return g:expand(x:size())
end

function F.sum(x, dims, keepdim)
  local y = K.sum(x, dims, keepdim)
  if not needs(x) then return y end
  local ds = dims_list(x, dims)
  return record('sum', y, {x}, function(g)
    if x:dim() == 0 then return g:clone() end
    return expand_back(g, x, ds, keepdim):contiguous()
  end)
end

function F.mean(x, dims, keepdim)
  local y = K.mean(x, dims, keepdim)
  if not needs(x) then return y end
  local ds = dims_list(x, dims)
  local count = 1
  for _, d in ipairs(ds) do count = count * x:size(d) end
  return record('mean', y, {x}, function(g)
    if x:dim() == 0 then return g:clone() end
    return expand_back(g * (1 / count), x, ds, keepdim):contiguous()
  end)
end

-- ---- shapes -----------------------------------------------------------------

function F.view(x, ...)
  local y = KM.view(x, ...)
  if not needs(x) then return y end
  return record('view', y, {x}, function(g) return g:contiguous():view(x:size()) end)
end

function F.reshape(x, ...)
  local y = KM.reshape(x, ...)
  if not needs(x) then return y end
  return record('reshape', y, {x}, function(g) return g:reshape(x:size()) end)
end

function F.contiguous(x)
  local y = KM.contiguous(x)
  if not needs(x) or y == x then return y end
  return record('contiguous', y, {x}, function(g) return g end)
end

function F.transpose(x, d1, d2)
  local y = KM.transpose(x, d1, d2)
  if not needs(x) then return y end
  return record('transpose', y, {x}, function(g) return g:transpose(d1, d2) end)
end

function F.t(x)
  local y = KM.t(x)
  if not needs(x) then return y end
  return record('t', y, {x}, function(g) return g:t() end)
end

function F.permute(x, ...)
  local perm = select('#', ...) == 1 and type(...) == 'table' and ... or {...}
  local y = KM.permute(x, perm)
  if not needs(x) then return y end
  local inv = {}
  for i, p in ipairs(perm) do inv[p < 0 and p + #perm + 1 or p] = i end
  return record('permute', y, {x}, function(g) return g:permute(inv) end)
end

function F.unsqueeze(x, d)
  local y = KM.unsqueeze(x, d)
  if not needs(x) then return y end
  return record('unsqueeze', y, {x}, function(g) return g:contiguous():view(x:size()) end)
end

function F.squeeze(x, d)
  local y = KM.squeeze(x, d)
  if not needs(x) then return y end
  return record('squeeze', y, {x}, function(g) return g:contiguous():view(x:size()) end)
end

function F.expand(x, ...)
  local y = KM.expand(x, ...)
  if not needs(x) then return y end
  return record('expand', y, {x}, function(g) return sum_to(g, x:size()) end)
end

function F.narrow(x, dim, start, len)
  local y = KM.narrow(x, dim, start, len)
  if not needs(x) then return y end
  return record('narrow', y, {x}, function(g)
    local gx = K.zeros(x:size(), g:dtype())
    gx:narrow(dim, start, len):copy(g)
    return gx
  end)
end

function F.select(x, dim, index)
  local y = KM.select(x, dim, index)
  if not needs(x) then return y end
  return record('select', y, {x}, function(g)
    local gx = K.zeros(x:size(), g:dtype())
    gx:select(dim, index):copy(g)
    return gx
  end)
end

function F.cat(list, dim)
  dim = dim or 1
  local y = K.cat(list, dim)
  if not needs(table.unpack(list)) then return y end
  return record('cat', y, list, function(g)
    local grads, at = {}, 1
    local d = dim < 0 and dim + g:dim() + 1 or dim
    for i, x in ipairs(list) do
      local n = x:size(d)
      grads[i] = g:narrow(d, at, n)
      at = at + n
    end
    return table.unpack(grads, 1, #list)
  end)
end

function F.stack(list, dim)
  dim = dim or 1
  local parts = {}
  for i, x in ipairs(list) do parts[i] = F.unsqueeze(x, dim) end
  return F.cat(parts, dim)
end

function F.to(x, dtype)
  local y = KM.to(x, dtype)
  if y == x or not needs(x) then return y end
  local from = x:dtype()
  return record('to', y, {x}, function(g) return g:to(from) end)
end

-- ---- activations (fused kernels of fada.ops) ---------------------------------

local ACTS = {silu = true, gelu = true, gelu_tanh = true, relu = true, sigmoid = true, tanh = true}

-- F.activation(x, name) for name in silu, gelu (erf), gelu_tanh, relu, sigmoid, tanh
function F.activation(x, name)
  if not ACTS[name] then
    error(("F.activation: unknown activation '%s' (silu, gelu, gelu_tanh, relu, sigmoid, tanh)"):format(
      tostring(name)), 2)
  end
  local y = fada.ops[name](x)
  if not needs(x) then return y end
  local bwd = fada.ops[name .. '_backward']
  return record(name, y, {x}, function(g) return bwd(g, x) end, {x})
end

for name in pairs(ACTS) do
  if name ~= 'sigmoid' and name ~= 'tanh' then F[name] = function(x) return F.activation(x, name) end end
end

-- ---- normalisation, softmax, attention -------------------------------------------

-- F.group_norm(x [N, C, ...], groups, [w [C]], [b [C]], {eps = 1e-5, silu = false, scale, shift, bf16_nhwc})
-- scale, shift [N or 1, C, 1, 1]: a per-sample modulation (a ResBlock's time
-- embedding), y = act((norm(x) * w + b) * (1 + scale) + shift), one fused
-- kernel forward and one backward (f32; other dtypes run as the pieces).
-- bf16_nhwc: y comes out bf16 and channels-last, the operand a bf16
-- convolution reads without a reorder; only where no gradient is recorded
-- (training keeps its activations f32) and x is 4-d f32, else ignored.
function F.group_norm(x, groups, w, b, opts)
  if opts and opts.bf16_nhwc and (needs(x, w, b, opts.scale, opts.shift) or x:dtype() ~= 'f32' or x:dim() ~= 4) then
    opts = {eps = opts.eps, silu = opts.silu, scale = opts.scale, shift = opts.shift}
  end
  if opts and (opts.scale or opts.shift) then
    if x:dtype() ~= 'f32' then
      local h = F.group_norm(x, groups, w, b, {eps = opts.eps})
      if opts.scale then h = h * (opts.scale + 1) end
      if opts.shift then h = h + opts.shift end
      return opts.silu and F.silu(h) or h
    end
    local s, t, silu = opts.scale, opts.shift, opts.silu or false
    local y, mean, rstd = fada.ops.group_norm(x, groups, w, b, opts)
    if not needs(x, w, b, s, t) then return y end
    local saved = {x}
    for _, v in pairs({w, b, s, t}) do saved[#saved + 1] = v end
    -- false holds the place of an absent operand (a nil would end the list early)
    return record('group_norm_mod', y, {x, w or false, b or false, s or false, t or false}, function(g)
      return fada.ops.group_norm_mod_backward(g, x, mean, rstd, groups, w, b, s, t, {silu = silu})
    end, saved)
  end
  local y, mean, rstd = fada.ops.group_norm(x, groups, w, b, opts)
  if not needs(x, w, b) then return y end
  local silu = opts and opts.silu or false
  return record('group_norm', y, {x, w, b}, function(g)
    return fada.ops.group_norm_backward(g, x, mean, rstd, groups, w, b, {silu = silu})
  end, {x, w, b})
end

-- F.layer_norm(x [..., D], [w [D]], [b [D]], {eps = 1e-5})
function F.layer_norm(x, w, b, opts)
  local y, mean, rstd = fada.ops.layer_norm(x, w, b, opts)
  if not needs(x, w, b) then return y end
  return record('layer_norm', y, {x, w, b}, function(g)
    return fada.ops.layer_norm_backward(g, x, mean, rstd, w, b)
  end, {x, w, b})
end

function F.softmax(x, dim)
  local y = fada.ops.softmax(x, dim)
  if not needs(x) then return y end
  return record('softmax', y, {x}, function(g) return fada.ops.softmax_backward(g, y, dim) end, {y})
end

function F.log_softmax(x, dim)
  local y = fada.ops.log_softmax(x, dim)
  if not needs(x) then return y end
  return record('log_softmax', y, {x}, function(g) return fada.ops.log_softmax_backward(g, y, dim) end, {y})
end

-- F.attention(q [B, Nq, C], k [B, Nk, C], v [B, Nk, C], {heads, scale, extra_k, extra_v, mask, bf16})
-- Multi-head scaled dot-product attention; extra_k/extra_v [B or 1, Ne, C] are
-- more keys/values (reference tokens) attended together with k/v.
function F.attention(q, k, v, opts)
  opts = opts or {}
  local ek, ev = opts.extra_k, opts.extra_v
  local grad = needs(q, k, v, ek, ev)
  if grad and opts.bf16 == nil then
    -- f32 products when a backward follows: it recomputes the probabilities in
    -- f32 from this logsumexp, which must come from the same scores
    local exact = {bf16 = false}
    for key, value in pairs(opts) do exact[key] = value end
    opts = exact
  end
  local o, lse = fada.ops.attention(q, k, v, opts)
  count_attention(q, k, ek)
  if not grad then return o end
  return record('attention', o, {q, k, v, ek, ev}, function(g)
    return fada.ops.attention_backward(g, q, k, v, o, lse, opts)
  end, {q, k, v, o})
end

-- ---- resampling, padding, pixel shuffle, embedding --------------------------------

function F.upsample_nearest(x, sh, sw)
  sw = sw or sh
  local y = fada.ops.upsample_nearest(x, sh, sw)
  if not needs(x) then return y end
  return record('upsample_nearest', y, {x}, function(g) return fada.ops.upsample_nearest_backward(g, sh, sw) end)
end

-- torch's interpolate(x, size = {oh, ow}, mode = 'nearest'): any sizes, 7 -> 5 or 5 -> 12.
function F.resize_nearest(x, oh, ow)
  local y = fada.ops.resize_nearest(x, oh, ow)
  if not needs(x) then return y end
  local ih, iw = x:size(3), x:size(4)
  return record('resize_nearest', y, {x}, function(g) return fada.ops.resize_nearest_backward(g, ih, iw) end)
end

function F.resize_bilinear(x, oh, ow)
  local y = fada.ops.resize_bilinear(x, oh, ow)
  if not needs(x) then return y end
  local ih, iw = x:size(3), x:size(4)
  return record('resize_bilinear', y, {x}, function(g) return fada.ops.resize_bilinear_backward(g, ih, iw) end)
end

-- kernel = stride; odd sizes floor as in torch (7x9 by 2 -> 3x4), the dropped pixels get no gradient.
function F.avg_pool2d(x, kh, kw)
  kw = kw or kh
  local y = fada.ops.avg_pool2d(x, kh, kw)
  if not needs(x) then return y end
  local ih, iw = x:size(3), x:size(4)
  return record('avg_pool2d', y, {x}, function(g) return fada.ops.avg_pool2d_backward(g, kh, kw, ih, iw) end)
end

-- F.pad(x, {left, right, [top, bottom, ...]}, [mode = 'constant'], [value = 0])
function F.pad(x, pads, mode, value)
  local y = fada.ops.pad(x, pads, mode, value)
  if not needs(x) then return y end
  return record('pad', y, {x}, function(g) return fada.ops.pad_backward(g, x, pads, mode) end)
end

function F.pixel_shuffle(x, r)
  local y = fada.ops.pixel_shuffle(x, r)
  if not needs(x) then return y end
  return record('pixel_shuffle', y, {x}, function(g) return fada.ops.pixel_unshuffle(g, r) end)
end

function F.pixel_unshuffle(x, r)
  local y = fada.ops.pixel_unshuffle(x, r)
  if not needs(x) then return y end
  return record('pixel_unshuffle', y, {x}, function(g) return fada.ops.pixel_shuffle(g, r) end)
end

-- F.embedding(weight [V, D], indices (0-based)) -> [*indices, D]
function F.embedding(weight, indices)
  local y = fada.ops.embedding(weight, indices)
  if not needs(weight) then return y end
  local V = weight:size(1)
  return record('embedding', y, {weight}, function(g) return fada.ops.embedding_backward(g, indices, V) end)
end

-- ---- convolution and linear maps (oneDNN / BLAS kernels) ------------------

local ops = fada.ops

-- Copies the geometry options of a conv (what the backward needs).
local function conv_geometry(opts)
  opts = opts or {}
  return {stride = opts.stride, padding = opts.padding, dilation = opts.dilation, groups = opts.groups,
          compute = opts.compute}
end

-- F.conv2d(x, w, [b], {stride, padding, dilation, groups, act, residual, compute})
-- While recording, act and residual run as their own recorded ops; otherwise
-- they are fused into the convolution's epilogue.
local function conv(kind, x, w, b, opts)
  local fwd, bwd = ops[kind], ops[kind .. '_backward']
  opts = opts or {}
  if not needs(x, w, b, opts.residual) then
    local y = fwd(x, w, b, opts)
    count_weights(y, w)
    return y
  end
  local geo = conv_geometry(opts)
  geo.training = A.tracked(w) -- weights that train change every step: not worth caching in Winograd form
  local y = fwd(x, w, b, geo)
  count_weights(y, w)
  y = record(kind, y, {x, w, b}, function(g)
    local o = conv_geometry(opts)
    o.input, o.weight, o.bias = A.tracked(x), A.tracked(w), b ~= nil and A.tracked(b)
    return bwd(g, x, w, o)
  end, {x, w})
  if opts.act then y = F.activation(y, opts.act) end
  if opts.residual then y = F.add(y, opts.residual) end
  return y
end

function F.conv2d(x, w, b, opts) return conv('conv2d', x, w, b, opts) end
function F.conv1d(x, w, b, opts) return conv('conv1d', x, w, b, opts) end

-- F.linear(x [..., in], w [out, in], [b [out]], {act, compute})
function F.linear(x, w, b, opts)
  opts = opts or {}
  if not needs(x, w, b) then
    local y = ops.linear(x, w, b, opts)
    count_weights(y, w)
    return y
  end
  local y = ops.linear(x, w, b, {compute = opts.compute})
  count_weights(y, w)
  y = record('linear', y, {x, w, b}, function(g)
    return ops.linear_backward(g, x, w, {compute = opts.compute, input = A.tracked(x), weight = A.tracked(w),
                                         bias = b ~= nil and A.tracked(b)})
  end, {x, w})
  if opts.act then y = F.activation(y, opts.act) end
  return y
end

-- F.matmul(a, b): torch.matmul semantics
function F.matmul(a, b)
  local y = ops.matmul(a, b)
  if not needs(a, b) then return y end
  return record('matmul', y, {a, b}, function(g) return ops.matmul_backward(g, a, b) end, {a, b})
end

-- ---- losses -------------------------------------------------------------------

-- F.mse(x, target, [weight]): mean(weight · (x − target)²), weight broadcasting to x.
-- F.l1 the same with |x − target|. Gradients flow to x and target.
local function loss(kind)
  return function(x, target, weight)
    local opts = weight and {weight = weight} or nil
    local y = fada.ops[kind](x, target, opts)
    if not needs(x, target, weight) then return y end
    return record(kind, y, {x, target, weight}, function(g)
      local dx = fada.ops[kind .. '_backward'](x, target, {grad = g:item(), weight = weight})
      local dw
      if weight and A.tracked(weight) then
        local d = x - target
        local per = kind == 'mse_loss' and d * d or d:abs()
        dw = sum_to(per * (g:item() / x:numel()), weight:size())
      end
      return dx, -dx, dw
    end, {x, target, weight})
  end
end
F.mse = loss('mse_loss')
F.l1 = loss('l1_loss')

-- ---- routing fada.*, methods and operators through F ----------------------

local function any_tracked(a, b)
  if A.tracked(a) or (b ~= nil and A.tracked(b)) then return true end
  if type(a) == 'table' then -- cat/stack lists
    for _, t in ipairs(a) do if A.tracked(t) then return true end end
  end
  return false
end

-- f(a, b, ...) runs F's version when recording is on and a or b is tracked.
local function route(raw, rec)
  return function(a, b, ...)
    if A.is_enabled() and any_tracked(a, b) then return rec(a, b, ...) end
    return raw(a, b, ...)
  end
end

local recorded = {'add', 'sub', 'mul', 'div', 'pow', 'neg', 'exp', 'log', 'sqrt', 'rsqrt', 'tanh',
                  'sigmoid', 'sin', 'cos', 'abs', 'clamp', 'sum', 'mean', 'cat', 'stack'}
for _, name in ipairs(recorded) do
  if K[name] then fada[name] = route(K[name], F[name]) end
end
local recorded_methods = {'add', 'sub', 'mul', 'div', 'pow', 'neg', 'exp', 'log', 'sqrt', 'rsqrt', 'tanh',
                          'sigmoid', 'sin', 'cos', 'abs', 'clamp', 'sum', 'mean', 'view', 'reshape',
                          'contiguous', 'transpose', 'permute', 'unsqueeze', 'squeeze', 'expand', 'narrow',
                          'select', 'to', 't'}
local wrapped = {} -- raw method -> its routed version, so aliases (expand_as = expand) stay one function
for _, name in ipairs(recorded_methods) do
  if KM[name] then
    wrapped[KM[name]] = wrapped[KM[name]] or route(KM[name], F[name])
    methods[name] = wrapped[KM[name]]
  end
end
for name, raw in pairs(KM) do
  if wrapped[raw] then methods[name] = wrapped[raw] end
end
for mm, name in pairs{__add = 'add', __sub = 'sub', __mul = 'mul', __div = 'div', __pow = 'pow'} do
  meta[mm] = route(meta[mm], F[name])
end
local raw_unm = meta.__unm
meta.__unm = function(a)
  if A.is_enabled() and A.tracked(a) then return F.neg(a) end
  return raw_unm(a)
end

F.kernels = K -- the raw functions, for code that must not be recorded

return F
