-- Residual block of a diffusion UNet (keys norm1, conv1, emb_proj, norm2,
-- conv2, skip): GroupNorm+SiLU → conv3x3 → GroupNorm → time embedding as
-- scale-shift (h·(1 + s) + b) → SiLU → conv3x3, plus the input (through a
-- 1x1 conv when the channel count changes).
--
--   nn.ResBlock(cin, cout, {temb_dim = 256 (nil: no time input), groups = 32, eps = 1e-5,
--                          time_mode = 'scale_shift' | 'add', generator = g})
--   block(x [N, cin, H, W], [emb [N or 1, temb_dim], already through SiLU]) -> [N, cout, H, W]
local fada = require 'fada'
local F = require 'fada.F'
local nn = require 'fada.nn'

local ResBlock = nn.class('ResBlock')

local function groups_for(c, want)
  local g = math.min(want, c)
  while c % g ~= 0 do g = g - 1 end
  return g
end
ResBlock.groups_for = groups_for

function ResBlock:init(cin, cout, opts)
  opts = opts or {}
  local g = opts.generator
  local eps = opts.eps or 1e-5
  self.cin, self.cout = cin, cout
  self.time_mode = opts.time_mode or 'scale_shift'
  if self.time_mode ~= 'scale_shift' and self.time_mode ~= 'add' then
    error(("ResBlock: time_mode must be 'scale_shift' or 'add', got %s"):format(tostring(self.time_mode)), 3)
  end
  self.norm1 = self:add('norm1', nn.GroupNorm(groups_for(cin, opts.groups or 32), cin, {eps = eps}))
  self.conv1 = self:add('conv1', nn.Conv2d(cin, cout, 3, {generator = g}))
  if opts.temb_dim then
    local n = self.time_mode == 'scale_shift' and 2 * cout or cout
    self.emb_proj = self:add('emb_proj', nn.Linear(opts.temb_dim, n, {generator = g}))
  end
  self.norm2 = self:add('norm2', nn.GroupNorm(groups_for(cout, opts.groups or 32), cout, {eps = eps}))
  self.conv2 = self:add('conv2', nn.Conv2d(cout, cout, 3, {generator = g}))
  if cin ~= cout then self.skip = self:add('skip', nn.Conv2d(cin, cout, 1, {generator = g})) end
end

function ResBlock:forward(x, emb)
  -- conv1 -> norm2 -> conv2 stay in the blocked layout (no reorders between
  -- them) outside training; while recording, the pieces run as before. With
  -- bf16 compute the norms write the convolutions' bf16 channels-last operands
  -- and the convolutions answer channels-last (Conv2d).
  local bf16 = fada.get_compute_dtype() == 'bf16' or nil
  local h = self.conv1(self.norm1(x, 'silu', {bf16_nhwc = bf16}), {blocked = not bf16})
  if self.emb_proj and emb then
    local e = self.emb_proj(emb)                       -- [N or 1, 2·cout]
    local n = e:size(1)
    if self.time_mode == 'scale_shift' then
      local scale = F.view(F.narrow(e, 2, 1, self.cout), n, self.cout, 1, 1)
      local shift = F.view(F.narrow(e, 2, self.cout + 1, self.cout), n, self.cout, 1, 1)
      -- silu(norm2(h) * (1 + scale) + shift)
      h = self.norm2(h, 'silu', {scale = scale, shift = shift, bf16_nhwc = bf16})
    else
      h = self.norm2(h + F.view(e, n, self.cout, 1, 1), 'silu', {bf16_nhwc = bf16})
    end
  else
    h = self.norm2(h, 'silu', {bf16_nhwc = bf16})
  end
  local res = self.skip and self.skip(x) or x
  return self.conv2(h, {residual = res})
end

return ResBlock
