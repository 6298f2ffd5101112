-- 2-d convolution (keys: weight [out, in/groups, k, k], bias [out]).
local fada = require 'fada'
local F = require 'fada.F'
local nn = require 'fada.nn'

local Conv2d = nn.class('Conv2d')

-- Conv2d(in, out, kernel, {stride = 1, padding = kernel // 2, dilation = 1,
--        groups = 1, bias = true, zero_init = false, generator =})
function Conv2d:init(cin, cout, k, opts)
  opts = opts or {}
  local groups = opts.groups or 1
  if cin % groups ~= 0 or cout % groups ~= 0 then
    error(('Conv2d: groups %d must divide in %d and out %d channels'):format(groups, cin, cout), 3)
  end
  self.opts = {stride = opts.stride or 1, padding = opts.padding or k // 2, dilation = opts.dilation or 1,
               groups = groups}
  self.weight = self:param('weight', fada.empty(cout, cin // groups, k, k))
  local fan_in = cin // groups * k * k
  if opts.zero_init then self.weight:zero() else nn.init_uniform(self.weight, fan_in, opts.generator) end
  if opts.bias ~= false then
    self.bias = self:param('bias', fada.empty(cout))
    if opts.zero_init then self.bias:zero() else nn.init_uniform(self.bias, fan_in, opts.generator) end
  end
end

-- forward(x [N, in, H, W], [extra]) with extra = {act =, residual =} fused
-- into the convolution's epilogue, and blocked = true for an output in the
-- blocked layout (Tensor:blocked) when the next op is a conv or a GroupNorm,
-- or channels_last = true / false for that layout. Otherwise the output takes
-- the input's layout, except with bf16 compute: channels-last, the layout the
-- AMX kernels compute in, which the norms, element-wise ops, cat and nearest
-- upsampling keep, so activations go from one convolution to the next
-- without a transposing reorder. (While recording, F.conv2d picks the layout.)
function Conv2d:forward(x, extra)
  local o, e = self.opts, extra or {}
  local cl = e.channels_last
  if cl == nil and not e.blocked and fada.get_compute_dtype() == 'bf16' then cl = true end
  if extra or cl then
    o = {stride = o.stride, padding = o.padding, dilation = o.dilation, groups = o.groups,
         act = e.act, residual = e.residual, blocked = e.blocked, channels_last = cl}
  end
  return F.conv2d(x, self.weight, self.bias, o)
end

return Conv2d
