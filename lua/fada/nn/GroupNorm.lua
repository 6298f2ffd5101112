-- Group normalisation over [N, C, ...] (keys: weight [C], bias [C]),
-- optionally fused with SiLU: forward(x, 'silu'), and with a per-sample
-- modulation: forward(x, act, {scale = [N, C, 1, 1], shift = ...}) gives
-- act(norm(x) * (1 + scale) + shift) (see F.group_norm); {bf16_nhwc = true}
-- hands a following bf16 convolution its operand (inference only).
local fada = require 'fada'
local F = require 'fada.F'
local nn = require 'fada.nn'

local GroupNorm = nn.class('GroupNorm')

function GroupNorm:init(groups, channels, opts)
  opts = opts or {}
  if channels % groups ~= 0 then
    error(('GroupNorm: %d groups do not divide %d channels'):format(groups, channels), 3)
  end
  self.groups, self.eps = groups, opts.eps or 1e-5
  self.weight = self:param('weight', fada.ones(channels))
  self.bias = self:param('bias', fada.zeros(channels))
end

function GroupNorm:forward(x, act, opts)
  return F.group_norm(x, self.groups, self.weight, self.bias, {eps = self.eps, silu = act == 'silu',
                                                               scale = opts and opts.scale, shift = opts and opts.shift,
                                                               bf16_nhwc = opts and opts.bf16_nhwc})
end

return GroupNorm
