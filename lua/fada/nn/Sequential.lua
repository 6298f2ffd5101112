-- Layers applied in order; children are keyed '0', '1', ... as torch's
-- nn.Sequential does, so checkpoint keys match.
local nn = require 'fada.nn'

local Sequential = nn.class('Sequential')

function Sequential:init(...)
  self.layers = {}
  for i, m in ipairs({...}) do self.layers[i] = self:add(tostring(i - 1), m) end
end

function Sequential:forward(x)
  for _, m in ipairs(self.layers) do x = m(x) end
  return x
end

return Sequential
