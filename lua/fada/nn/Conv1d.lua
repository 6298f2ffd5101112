-- 1-d convolution over [N, C, L] (keys: weight [out, in/groups, k], bias [out]).
local fada = require 'fada'
local F = require 'fada.F'
local nn = require 'fada.nn'

local Conv1d = nn.class('Conv1d')

function Conv1d:init(cin, cout, k, opts)
  opts = opts or {}
  local groups = opts.groups or 1
  self.opts = {stride = opts.stride or 1, padding = opts.padding or k // 2, dilation = opts.dilation or 1,
               groups = groups}
  self.weight = self:param('weight', fada.empty(cout, cin // groups, k))
  nn.init_uniform(self.weight, cin // groups * k, opts.generator)
  if opts.bias ~= false then
    self.bias = self:param('bias', fada.empty(cout))
    nn.init_uniform(self.bias, cin // groups * k, opts.generator)
  end
end

function Conv1d:forward(x) return F.conv1d(x, self.weight, self.bias, self.opts) end

return Conv1d
