-- y[..., out] = x[..., in] · weightᵀ + bias   (keys: weight [out, in], bias [out])
local fada = require 'fada'
local F = require 'fada.F'
local nn = require 'fada.nn'

local Linear = nn.class('Linear')

-- Linear(in_features, out_features, {bias = true, zero_init = false, generator =})
function Linear:init(in_f, out_f, opts)
  opts = opts or {}
  self.in_features, self.out_features = in_f, out_f
  self.weight = self:param('weight', fada.empty(out_f, in_f))
  if opts.zero_init then self.weight:zero() else nn.init_uniform(self.weight, in_f, opts.generator) end
  if opts.bias ~= false then
    self.bias = self:param('bias', fada.empty(out_f))
    if opts.zero_init then self.bias:zero() else nn.init_uniform(self.bias, in_f, opts.generator) end
  end
end

function Linear:forward(x, act)
  return F.linear(x, self.weight, self.bias, act and {act = act} or nil)
end

return Linear
