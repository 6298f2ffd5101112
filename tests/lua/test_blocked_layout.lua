-- The blocked activation layout (Tensor:blocked, nChw8c): conv2d and
-- group_norm read and write it and must give what the reference kernels give
-- on NCHW (oneDNN reading our storage as its aBcd8b checks the layout itself);
-- every other op sees the NCHW tensor; shape queries leave it blocked.
local fada = require 'fada'
local F = fada.F
local ops, ref = fada.ops, fada.ops.ref

local gen = fada.Generator(77)
local function randn(...) return fada.randn({...}, gen) end

test('blocked -> NCHW round trip is exact (odd H*W, several samples and blocks)', function()
  for _, s in ipairs({{3, 24, 5, 7}, {1, 8, 1, 1}, {2, 16, 9, 8}}) do
    local x = randn(table.unpack(s))
    local xb = x:blocked()
    assert_eq(xb:is_blocked(), true, 'is_blocked')
    assert_eq(x:is_blocked(), false, 'the source stays NCHW')
    assert_eq(xb:blocked() == xb, true, 'blocked() of a blocked tensor is itself')
    assert_eq(max_abs_diff(xb:contiguous(), x), 0, 'round trip ' .. table.concat(s, 'x'))
  end
end)

test('shape queries leave the layout alone; the version survives the conversion', function()
  local xb = randn(2, 16, 3, 4):blocked()
  assert_eq(table.concat(xb:size(), 'x'), '2x16x3x4', 'size')
  assert_eq(xb:size(2) + xb:dim() + xb:numel(), 16 + 4 + 384, 'size/dim/numel')
  assert_eq(xb:dtype(), 'f32', 'dtype')
  local v = xb:version()
  assert_eq(xb:is_blocked(), true, 'still blocked after queries')
  local _ = xb + 0
  assert_eq(xb:is_blocked(), false, 'an elementwise op turned it into NCHW')
  assert_eq(xb:version(), v, 'version kept (autograd compares it)')
end)

test('every other op sees the NCHW values', function()
  local x = randn(2, 16, 5, 3)
  local function b() return x:blocked() end
  assert_eq(max_abs_diff(b() * 2 + 1, x * 2 + 1), 0, 'arithmetic')
  assert_eq(max_abs_diff(b():narrow(2, 3, 9), x:narrow(2, 3, 9)), 0, 'narrow')
  assert_eq(max_abs_diff(b():permute(1, 3, 4, 2):contiguous(), x:permute(1, 3, 4, 2):contiguous()), 0, 'permute')
  assert_eq(b():get(2, 11, 4, 2), x:get(2, 11, 4, 2), 'get')
  assert_close(b():sum():item(), x:sum():item(), 1e-4, 1e-6, 'sum')
  assert_eq(max_abs_diff(fada.cat({b(), x}, 2), fada.cat({x, x}, 2)), 0, 'cat')
  assert_eq(max_abs_diff(b():clone(), x), 0, 'clone')
  assert_eq(max_abs_diff(b():to('f64'), x:to('f64')), 0, 'to f64')
  local y = b()
  y:copy(x * 3)
  assert_eq(max_abs_diff(y, x * 3), 0, 'copy into a blocked tensor')
  local z = b()
  z:fill(2)
  assert_eq(z:min():item(), 2, 'fill')
  assert_eq(type(tostring(b())), 'string', 'tostring')
end)

test('conv2d on blocked operands equals the reference loops on NCHW', function()
  local cases = {
    {x = {2, 16, 9, 7}, w = {24, 16, 3, 3}, o = {padding = 1}},
    {x = {1, 8, 8, 8}, w = {8, 8, 3, 3}, o = {padding = 1, act = 'silu'}, res = true},
    {x = {3, 16, 10, 10}, w = {16, 16, 3, 3}, o = {padding = 1, stride = 2}},
    {x = {2, 16, 6, 6}, w = {12, 16, 1, 1}, o = {}}, -- 12 output channels: no blocked output
    {x = {2, 32, 6, 5}, w = {32, 8, 3, 3}, o = {padding = 1, groups = 4}, res = true},
  }
  for i, c in ipairs(cases) do
    local x, w, b = randn(table.unpack(c.x)), randn(table.unpack(c.w)) * 0.2, randn(c.w[1])
    local expect_o = {}
    for k, v in pairs(c.o) do expect_o[k] = v end
    local r
    if c.res then
      local n = (c.x[3] + 2 * (c.o.padding or 0) - c.w[3]) // (c.o.stride or 1) + 1
      local m = (c.x[4] + 2 * (c.o.padding or 0) - c.w[4]) // (c.o.stride or 1) + 1
      r = randn(c.x[1], c.w[1], n, m)
      expect_o.residual = r
    end
    expect_o.ref = true
    local expect = ops.conv2d(x:to('f64'), w:to('f64'), b:to('f64'), (function()
      local o = {}
      for k, v in pairs(expect_o) do o[k] = fada.is_tensor(v) and v:to('f64') or v end
      return o
    end)())
    for _, res_blocked in ipairs(c.res and {false, true} or {false}) do
      local o = {}
      for k, v in pairs(c.o) do o[k] = v end
      if r then o.residual = res_blocked and r:blocked() or r end
      local y = ops.conv2d(x:blocked(), w, b, o)
      assert_eq(y:is_blocked(), c.w[1] % 8 == 0, ('case %d: output blocked iff O %% 8 == 0'):format(i))
      assert_close(y:to('f64'), expect, 1e-4, 1e-4, ('case %d (residual blocked: %s)'):format(i, res_blocked))
    end
    local o = {blocked = true}
    for k, v in pairs(c.o) do o[k] = v end
    o.residual = r
    local y = ops.conv2d(x, w, b, o)
    assert_eq(y:is_blocked(), c.w[1] % 8 == 0, ('case %d: {blocked = true} on an NCHW input'):format(i))
    assert_close(y:to('f64'), expect, 1e-4, 1e-4, ('case %d with {blocked = true}'):format(i))
    assert_close(ops.conv2d(x:blocked(), w, b, {padding = c.o.padding, stride = c.o.stride, groups = c.o.groups,
                                                 ref = true}):to('f64'),
                 ops.conv2d(x, w, b, {padding = c.o.padding, stride = c.o.stride, groups = c.o.groups, ref = true}):to('f64'),
                 0, 0, ('case %d: the reference loops take a blocked input'):format(i))
  end
end)

test('group_norm on blocked input equals the f64 reference (every group size it takes, and the fallback)', function()
  -- C, G: a group of 1, 2, 4, 8, 16, 64 channels, then 3 (not a divisor or multiple of 8: runs on NCHW)
  for _, c in ipairs({{16, 16}, {16, 8}, {32, 8}, {16, 2}, {32, 2}, {64, 1}, {24, 8}}) do
    local C, G = c[1], c[2]
    local x = randn(2, C, 7, 5) * 3 + 5 -- a mean far from 0: the shifted sums matter
    local w, b = randn(C), randn(C)
    for _, silu in ipairs({false, true}) do
      local ey, em, er = ref.group_norm(x:to('f64'), G, w:to('f64'), b:to('f64'), {silu = silu})
      local y, m, r = ops.group_norm(x:blocked(), G, w, b, {silu = silu})
      local fits = (C // G) % 8 == 0 or 8 % (C // G) == 0
      assert_eq(y:is_blocked(), fits, ('C %d G %d: output blocked iff the group size fits'):format(C, G))
      local what = ('C %d G %d silu %s'):format(C, G, silu)
      assert_close(y:to('f64'), ey, 1e-5, 1e-5, what .. ': y')
      assert_close(m:to('f64'), em, 1e-5, 1e-6, what .. ': mean')
      assert_close(r:to('f64'), er, 1e-5, 1e-5, what .. ': rstd')
    end
  end
end)

test('training through blocked activations gives the NCHW losses and gradients', function()
  local x = randn(2, 16, 6, 6)
  local function run(blocked)
    local g = fada.Generator(5)
    local w1 = fada.randn({16, 16, 3, 3}, g) * 0.1
    local w2 = fada.randn({16, 16, 3, 3}, g) * 0.1
    local gw = fada.ones(16)
    local A = require 'fada.autograd'
    local p = {A.requires_grad(w1), A.requires_grad(w2), A.requires_grad(gw)}
    local h = blocked and x:blocked() or x
    local a = F.conv2d(F.group_norm(h, 4, p[3], nil, {silu = true}), p[1], nil, {padding = 1})
    local y = F.conv2d(F.group_norm(a, 4, p[3], nil, {silu = true}), p[2], nil, {padding = 1, residual = h})
    local loss = F.mean(y * y)
    A.backward(loss)
    return loss:item(), {A.grad(p[1]), A.grad(p[2]), A.grad(p[3])}
  end
  local l0, g0 = run(false)
  local l1, g1 = run(true)
  assert_close(l1, l0, 1e-6, 1e-5, 'loss')
  for i = 1, 3 do assert_close(g1[i], g0[i], 1e-5, 1e-4, 'gradient ' .. i) end
end)

test('a ResBlock with bf16 compute hands its convolutions bf16 channels-last operands, as the f32-operand path', function()
  local nn = require 'fada.nn'
  local blk = nn.ResBlock(16, 24, {temb_dim = 8, groups = 4, generator = fada.Generator(3)})
  local x, emb = randn(2, 16, 8, 8), randn(2, 8)
  -- the same block as its pieces, norms writing f32 (oneDNN rounds the operands to bf16 itself)
  local function by_hand()
    local e = F.linear(emb, blk.emb_proj.weight, blk.emb_proj.bias)
    local scale, shift = F.view(F.narrow(e, 2, 1, 24), 2, 24, 1, 1), F.view(F.narrow(e, 2, 25, 24), 2, 24, 1, 1)
    local h = F.conv2d(F.group_norm(x, 4, blk.norm1.weight, blk.norm1.bias, {silu = true}), blk.conv1.weight,
                       blk.conv1.bias, {padding = 1})
    h = F.group_norm(h, 4, blk.norm2.weight, blk.norm2.bias, {silu = true, scale = scale, shift = shift})
    local res = F.conv2d(x, blk.skip.weight, blk.skip.bias)
    return F.conv2d(h, blk.conv2.weight, blk.conv2.bias, {padding = 1, residual = res})
  end
  local seen, group_norm = 0, fada.ops.group_norm
  fada.ops.group_norm = function(x_, G, w, b, o)
    if o and o.bf16_nhwc then seen = seen + 1 end
    return group_norm(x_, G, w, b, o)
  end
  local A = require 'fada.autograd'
  fada.set_compute_dtype('bf16')
  local ok, y = pcall(A.no_grad, blk, x, emb) -- inference: while recording, activations stay f32
  local ok2, want = pcall(A.no_grad, by_hand)
  local ok3, recorded = pcall(blk, x, emb)
  fada.set_compute_dtype('f32')
  fada.ops.group_norm = group_norm
  assert(ok, y)
  assert(ok2, want)
  assert(ok3, recorded)
  assert_eq(seen, 2, 'both norms asked for bf16 operands (and only without recording)')
  assert_eq(y:dtype(), 'f32', 'the block still answers in f32')
  -- with bf16 convolutions both round the same operands the same way (identical on the AMX host
  -- measured); where convolutions fall back to f32, the by-hand path keeps its operands f32
  assert_close(y, want, 2e-2, 1e-2, 'bf16 operands vs the f32-operand path')
  local f32 = A.no_grad(blk, x, emb)
  assert_close(y, f32, 0.1, 3e-2, 'bf16 compute vs f32 (bf16 tolerance)')
end)

test('bad input: a clear error naming the shape', function()
  checkerror(function() randn(2, 12, 3, 3):blocked() end, 'C a multiple of 8, got f32 [2, 12, 3, 3]')
  checkerror(function() randn(4, 16):blocked() end, 'needs a 4-d f32 tensor [N, C, H, W]')
  checkerror(function() randn(1, 8, 2, 2):to('f64'):blocked() end, 'got f64 [1, 8, 2, 2]')
end)
