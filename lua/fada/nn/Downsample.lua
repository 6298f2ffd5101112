-- 2x downsampling by a stride-2 3x3 convolution (key conv).
local nn = require 'fada.nn'

local Downsample = nn.class('Downsample')

function Downsample:init(cin, cout, opts)
  opts = opts or {}
  self.conv = self:add('conv', nn.Conv2d(cin, cout or cin, 3, {stride = 2, padding = 1, generator = opts.generator}))
end

function Downsample:forward(x) return self.conv(x) end

return Downsample
