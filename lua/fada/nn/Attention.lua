-- Multi-head attention with separate projections (keys to_q, to_k, to_v,
-- to_out, the diffusers names): self-attention, cross-attention (keys from
-- another token set of width kv_dim) and attention with extra key/value
-- tokens (reference attention) all go through forward().
--
--   local a = nn.Attention(dim, {heads = 4, kv_dim = dim, qkv_bias = false, generator = g})
--   a(x [B, N, dim])                                  self-attention
--   a(x, ctx [B, M, kv_dim])                          cross-attention
--   a(x, nil, {extra_k =, extra_v =})                 self + extra tokens, already projected
--                                                     by a:project_kv(tokens) ([1 or B, Ne, dim])
local A = require 'fada.autograd'
local F = require 'fada.F'
local nn = require 'fada.nn'

local Attention = nn.class('Attention')

function Attention:init(dim, opts)
  opts = opts or {}
  local g = opts.generator
  local kv = opts.kv_dim or dim
  self.heads = opts.heads or 1
  if dim % self.heads ~= 0 then
    error(('Attention: %d heads do not divide dim %d'):format(self.heads, dim), 3)
  end
  local bias = opts.qkv_bias == true
  self.to_q = self:add('to_q', nn.Linear(dim, dim, {bias = bias, generator = g}))
  self.to_k = self:add('to_k', nn.Linear(kv, dim, {bias = bias, generator = g}))
  self.to_v = self:add('to_v', nn.Linear(kv, dim, {bias = bias, generator = g}))
  self.to_out = self:add('to_out', nn.Linear(dim, dim, {generator = g, zero_init = opts.zero_out}))
end

-- The projections named in `names` stacked into one weight [Σ out, in] (and
-- bias), rebuilt when a part changes (tensor versions), so inference runs one
-- GEMM instead of two or three over the same input.
function Attention:_stacked(names)
  local key = table.concat(names, ',')
  self._stack = self._stack or {}
  local c = self._stack[key]
  local ver = {}
  for i, n in ipairs(names) do ver[i] = self[n].weight:version() .. ':' .. (self[n].bias and self[n].bias:version() or '') end
  ver = table.concat(ver, ',')
  if not c or c.ver ~= ver then
    local ws, bs = {}, {}
    for i, n in ipairs(names) do ws[i], bs[i] = self[n].weight, self[n].bias end
    c = {ver = ver, w = F.kernels.cat(ws, 1):contiguous(), b = #bs == #names and F.kernels.cat(bs, 1) or nil}
    self._stack[key] = c
  end
  return c.w, c.b
end

-- Projects x by the named maps: separate recorded linears while training,
-- one stacked GEMM (outputs are narrow views of it) otherwise.
function Attention:project(x, names)
  local w0 = self[names[1]].weight
  if #names == 1 or A.needs_grad(x, w0) then
    local out = {}
    for i, n in ipairs(names) do out[i] = self[n](x) end
    return table.unpack(out)
  end
  local w, b = self:_stacked(names)
  local y = F.linear(x, w, b)
  local d, out = y:dim(), {}
  local at = 1
  for i, n in ipairs(names) do
    local m = self[n].out_features
    out[i] = y:narrow(d, at, m)
    at = at + m
  end
  return table.unpack(out)
end

-- k, v projections of a token set (reference tokens are projected once per
-- clip and reused across steps and CFG branches).
function Attention:project_kv(tokens) return self:project(tokens, {'to_k', 'to_v'}) end

-- q, k, v of a self-attention over x.
function Attention:qkv(x) return self:project(x, {'to_q', 'to_k', 'to_v'}) end

-- attend(q [B, Nq, C], k, v [B, Nk, C], heads, [extra_k, extra_v [1 or B, Ne, C]]) -> [B, Nq, C]
-- The flash kernel for training and inference alike. (Inference used to form
-- the scores with batched GEMMs + softmax; since the kernel stopped computing
-- padded tiles it is the faster one at every shape of the mini denoiser:
-- 16x256 queries, 256+256 keys, 2 heads: 18.5-20.7 vs 24.0-29.1 ms.)
function Attention.attend(q, k, v, heads, ek, ev)
  return F.attention(q, k, v, {heads = heads, extra_k = ek, extra_v = ev})
end

-- forward(x [B, N, dim], [ctx [B, M, kv_dim]], [opts {extra_k, extra_v}])
function Attention:forward(x, ctx, opts)
  local q, k, v
  if ctx then
    q = self.to_q(x)
    k, v = self:project_kv(ctx)
  else
    q, k, v = self:qkv(x)
  end
  local o = Attention.attend(q, k, v, self.heads, opts and opts.extra_k, opts and opts.extra_v)
  return self.to_out(o)
end

return Attention
