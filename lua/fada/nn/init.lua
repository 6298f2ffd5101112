-- fada.nn: layers as Modules whose parameters are named by checkpoint key.
-- Layers compute with fada.F, so autograd records them when training.
local nn = {}

nn.Module = require 'fada.nn.Module'
nn.class = nn.Module.class

-- Loaded on first use: nn.Linear, nn.Conv2d, ... (one file per class).
setmetatable(nn, {__index = function(t, name)
  local ok, cls = pcall(require, 'fada.nn.' .. name)
  if not ok then
    if tostring(cls):find("module 'fada.nn." .. name .. "' not found", 1, true) then
      error(("fada.nn has no layer '%s'"):format(name), 2)
    end
    error(cls, 2)
  end
  rawset(t, name, cls)
  return cls
end})

-- Uniform(-bound, bound) init as torch's default for Linear/Conv:
-- bound = 1/√fan_in for weights (kaiming_uniform with a = √5) and biases.
function nn.init_uniform(t, fan_in, generator)
  local fada = require 'fada'
  local bound = 1 / math.sqrt(fan_in)
  return t:uniform_(-bound, bound, generator or fada.default_generator)
end

return nn
