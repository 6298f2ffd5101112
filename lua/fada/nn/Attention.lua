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

-- k, v projections of a token set (reference tokens are projected once per
-- clip and reused across steps and CFG branches).
function Attention:project_kv(tokens) return self.to_k(tokens), self.to_v(tokens) end

-- forward(x [B, N, dim], [ctx [B, M, kv_dim]], [opts {extra_k, extra_v, q_rows}])
function Attention:forward(x, ctx, opts)
  local src = ctx or x
  local q, k, v = self.to_q(x), self.to_k(src), self.to_v(src)
  local o = F.attention(q, k, v, {heads = self.heads, extra_k = opts and opts.extra_k, extra_v = opts and opts.extra_v})
  return self.to_out(o)
end

return Attention
