-- Layer normalisation over the last dim (keys: weight [C], bias [C]).
local fada = require 'fada'
local F = require 'fada.F'
local nn = require 'fada.nn'

local LayerNorm = nn.class('LayerNorm')

function LayerNorm:init(channels, opts)
  opts = opts or {}
  self.eps = opts.eps or 1e-5
  if opts.affine ~= false then
    self.weight = self:param('weight', fada.ones(channels))
    self.bias = self:param('bias', fada.zeros(channels))
  end
end

function LayerNorm:forward(x) return F.layer_norm(x, self.weight, self.bias, {eps = self.eps}) end

return LayerNorm
