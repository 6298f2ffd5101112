-- Documentation of the math ops written in C (ops/lua/lua_math.c), for help(x).
-- Loaded by help.lua the first time help is asked for.
local fada = require 'fada'
local doc = fada.doc

local BIN = [[
Broadcasts a and b (either may be a Lua number) and computes in the promoted
dtype (torch's rules; a number does not promote a float tensor, a fractional
number makes an integer tensor f32). out, when given, receives the result
(it must have the broadcast shape). Operators: + - * / ^ % and unary minus.]]

local function binary(name, what, op)
  doc('fada.' .. name, ('fada.%s(a, b, [out]) -> Tensor'):format(name), what .. '\n' .. BIN)
  doc('Tensor:' .. name, ('Tensor:%s(b, [out]) -> Tensor'):format(name), what .. ' (see fada.' .. name .. ')')
  doc('Tensor:' .. name .. '_', ('Tensor:%s_(b) -> self'):format(name),
      what .. ', written into self (self is not broadcast; its dtype must hold the result).')
end
binary('add', 'a + b')
binary('sub', 'a - b')
binary('mul', 'a * b')
binary('div', 'a / b (true division: integers give f32)')
binary('pow', 'a ^ b')
binary('maximum', 'The larger of a and b, elementwise (NaN wins)')
binary('minimum', 'The smaller of a and b, elementwise (NaN wins)')
binary('remainder', 'a - floor(a / b) * b: the sign of b, like Lua\'s %')

for name, what in pairs {eq = '==', ne = '~=', lt = '<', le = '<=', gt = '>', ge = '>='} do
  doc('fada.' .. name, ('fada.%s(a, b, [out]) -> Tensor (bool)'):format(name),
      ('a %s b elementwise, broadcasting; a bool tensor. (Tensors compare by identity with ==; '
       .. 'use t:eq(u) for values.)'):format(what))
end

local UN = {
  neg = '-x', exp = 'e^x', log = 'natural log', sqrt = 'square root', rsqrt = '1 / sqrt(x)',
  abs = '|x|', tanh = 'hyperbolic tangent', sigmoid = '1 / (1 + e^-x)', sin = 'sine', cos = 'cosine',
  floor = 'round down', round = 'round half to even', sign = '-1, 0 or 1 (0 and NaN stay)',
}
for name, what in pairs(UN) do
  doc('fada.' .. name, ('fada.%s(x, [out]) -> Tensor'):format(name),
      what .. ', elementwise. Integer input gives f32 for the float functions. In place: x:'
      .. name .. '_().')
end
doc('fada.clamp', 'fada.clamp(x, [min], [max], [out]) -> Tensor', [[
Limits x to [min, max]; nil leaves a side open. In place: x:clamp_(min, max).]])
doc('fada.where', 'fada.where(cond, a, b) -> Tensor', [[
a where cond is nonzero, else b; all three broadcast, a and b may be numbers.]])

local DIMS = [[
dims: nil (every element), a dim, or a table of dims (1-based, negative from
the end); keepdim keeps reduced dims as size 1.]]
doc('fada.sum', 'fada.sum(x, [dims], [keepdim]) -> Tensor', 'Sum (accumulated in double; integers give i64).\n' .. DIMS)
doc('fada.mean', 'fada.mean(x, [dims], [keepdim]) -> Tensor', 'Mean.\n' .. DIMS)
doc('fada.prod', 'fada.prod(x, [dims], [keepdim]) -> Tensor', 'Product.\n' .. DIMS)
doc('fada.max', 'fada.max(x, [dim], [keepdim]) -> Tensor[, Tensor]', [[
x:max() is the largest element (0-d); x:max(dim) returns values and their
1-based indices (i64) along dim; x:max(u) with a tensor u is fada.maximum.]])
doc('fada.min', 'fada.min(x, [dim], [keepdim]) -> Tensor[, Tensor]', 'As fada.max, for the smallest.')
doc('fada.argmax', 'fada.argmax(x, [dims], [keepdim]) -> Tensor (i64)', '1-based index of the first maximum.\n' .. DIMS)
doc('fada.argmin', 'fada.argmin(x, [dims], [keepdim]) -> Tensor (i64)', '1-based index of the first minimum.\n' .. DIMS)
doc('fada.var', 'fada.var(x, [dims], [unbiased = true], [keepdim]) -> Tensor', 'Variance (two-pass).\n' .. DIMS)
doc('fada.std', 'fada.std(x, [dims], [unbiased = true], [keepdim]) -> Tensor', 'Standard deviation.\n' .. DIMS)
doc('fada.norm', 'fada.norm(x, [p = 2], [dims], [keepdim]) -> Tensor', [[
The p-norm: p a number > 0, 'inf' (or math.huge) for the largest |x|, 'fro' = 2.]] .. '\n' .. DIMS)

doc('fada.cat', 'fada.cat(tensors, [dim = 1]) -> Tensor', 'Joins a list of tensors along dim (other sizes must match).')
doc('fada.stack', 'fada.stack(tensors, [dim = 1]) -> Tensor', 'Joins same-shape tensors along a new dim.')
doc('fada.split', 'fada.split(x, size | sizes, [dim = 1]) -> {Tensor...}', [[
Views of x along dim: pieces of `size` (the last may be shorter) or of the
listed sizes (which must add up to the dim's size).]])
doc('fada.chunk', 'fada.chunk(x, n, [dim = 1]) -> {Tensor...}', 'Views of x in pieces of ceil(size / n) (as torch).')
doc('fada.index_select', 'fada.index_select(x, dim, index) -> Tensor', [[
The entries of x along dim picked by index (a 1-d integer tensor of 1-based indices).]])
doc('fada.gather', 'fada.gather(x, dim, index) -> Tensor', [==[
out[i][j] = x[i][index[i][j]] for dim 2 (and so on); 1-based indices, index
has x's number of dims.]==])
doc('fada.masked_fill', 'fada.masked_fill(x, mask, value) -> Tensor', [[
A copy of x with value where mask (bool, broadcast to x) is true. In place: x:masked_fill_(mask, value).]])
doc('fada.allclose', 'fada.allclose(a, b, [rtol = 1e-5], [atol = 1e-8]) -> boolean', [[
Whether |a - b| <= atol + rtol * |b| everywhere (broadcasting; NaN is never close).]])
return {}
