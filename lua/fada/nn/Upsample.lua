-- 2x nearest-neighbour upsampling followed by a 3x3 convolution (key conv).
local F = require 'fada.F'
local nn = require 'fada.nn'

local Upsample = nn.class('Upsample')

function Upsample:init(cin, cout, opts)
  opts = opts or {}
  self.conv = self:add('conv', nn.Conv2d(cin, cout or cin, 3, {generator = opts.generator}))
end

function Upsample:forward(x) return self.conv(F.upsample_nearest(x, 2)) end

return Upsample
