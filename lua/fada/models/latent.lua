-- The frozen encoder/decoder E of the FADA reconstruction.
--   kind 's2d': space-to-depth by `factor` (pixel_unshuffle), lossless, no weights:
--               [N, 3, H, W] -> [N, 3·f², H/f, W/f]; scaled by `scale` (default 1).
--   kind 'vae': an AutoencoderKL-shaped (Stable Diffusion) VAE with diffusers key
--               names under 'vae.' (encoder.*, decoder.*, quant_conv, post_quant_conv),
--               so latent-space checkpoints load the same way. encode() takes the
--               posterior mean (deterministic) times scaling_factor.
local fada = require 'fada'
local F = require 'fada.F'
local nn = require 'fada.nn'

local M = {}

-- Latent channels and downsampling factor of a latent config.
function M.shape(lc)
  if lc.kind == 's2d' then return 3 * lc.factor * lc.factor, lc.factor end
  if lc.kind == 'vae' then return lc.latent_channels, 1 << (#lc.block_out_channels - 1) end
  error(("latent: unknown kind '%s' (s2d or vae)"):format(tostring(lc.kind)), 3)
end

-- ---- space-to-depth -------------------------------------------------------------

local S2D = nn.class('SpaceToDepth')
M.S2D = S2D

function S2D:init(lc) self.f, self.scale = lc.factor, lc.scale or 1 end

function S2D:encode(x)
  local H, W = x:size(3), x:size(4)
  if H % self.f ~= 0 or W % self.f ~= 0 then
    error(('encode: frames %dx%d are not divisible by the latent factor %d'):format(H, W, self.f), 3)
  end
  local z = F.pixel_unshuffle(x, self.f)
  return self.scale ~= 1 and z * self.scale or z
end

function S2D:decode(z)
  if self.scale ~= 1 then z = z * (1 / self.scale) end
  return F.pixel_shuffle(z, self.f)
end

-- ---- SD-style VAE ---------------------------------------------------------------------

local function gn(c, lc) return nn.GroupNorm(lc.norm_groups, c, {eps = 1e-6}) end

-- diffusers ResnetBlock2D without time: norm1, conv1, norm2, conv2, conv_shortcut
local VaeRes = nn.class('VaeResnet')
function VaeRes:init(cin, cout, lc, g)
  self.norm1 = self:add('norm1', gn(cin, lc))
  self.conv1 = self:add('conv1', nn.Conv2d(cin, cout, 3, {generator = g}))
  self.norm2 = self:add('norm2', gn(cout, lc))
  self.conv2 = self:add('conv2', nn.Conv2d(cout, cout, 3, {generator = g}))
  if cin ~= cout then self.conv_shortcut = self:add('conv_shortcut', nn.Conv2d(cin, cout, 1, {generator = g})) end
end
function VaeRes:forward(x)
  local h = self.conv1(self.norm1(x, 'silu'))
  h = self.norm2(h, 'silu')
  return self.conv2(h, {residual = self.conv_shortcut and self.conv_shortcut(x) or x})
end

-- diffusers Attention of the VAE mid block: group_norm, to_q/k/v, to_out.0 (one head)
local VaeAttn = nn.class('VaeAttention')
function VaeAttn:init(c, lc, g)
  self.group_norm = self:add('group_norm', gn(c, lc))
  self.to_q = self:add('to_q', nn.Linear(c, c, {generator = g}))
  self.to_k = self:add('to_k', nn.Linear(c, c, {generator = g}))
  self.to_v = self:add('to_v', nn.Linear(c, c, {generator = g}))
  self.to_out = self:add('to_out.0', nn.Linear(c, c, {generator = g}))
end
function VaeAttn:forward(x)
  local H, W = x:size(3), x:size(4)
  local t = require('fada.models.unet').to_tokens(self.group_norm(x))
  local o = F.attention(self.to_q(t), self.to_k(t), self.to_v(t), {heads = 1})
  return require('fada.models.unet').to_map(self.to_out(o), H, W) + x
end

-- diffusers Downsample2D of the VAE: pad (0, 1, 0, 1) then a 3x3 stride-2 conv without padding
local VaeDown = nn.class('VaeDownsample')
function VaeDown:init(c, g) self.conv = self:add('conv', nn.Conv2d(c, c, 3, {stride = 2, padding = 0, generator = g})) end
function VaeDown:forward(x) return self.conv(F.pad(x, {0, 1, 0, 1})) end

local function mid_block(self, prefix, c, lc, g)
  local mid = {}
  mid[1] = self:add(prefix .. 'mid_block.resnets.0', VaeRes(c, c, lc, g))
  if lc.mid_attention ~= false then mid.attn = self:add(prefix .. 'mid_block.attentions.0', VaeAttn(c, lc, g)) end
  mid[2] = self:add(prefix .. 'mid_block.resnets.1', VaeRes(c, c, lc, g))
  return mid
end
local function run_mid(mid, h)
  h = mid[1](h)
  if mid.attn then h = mid.attn(h) end
  return mid[2](h)
end

local VAE = nn.class('AutoencoderKL')
M.VAE = VAE

function VAE:init(lc, g)
  local ch, nl, Lc = lc.block_out_channels, lc.layers_per_block, lc.latent_channels
  self.lc = lc
  -- encoder
  self.enc_in = self:add('encoder.conv_in', nn.Conv2d(lc.in_channels or 3, ch[1], 3, {generator = g}))
  self.enc_down = {}
  local c = ch[1]
  for i = 1, #ch do
    local blk = {res = {}}
    for j = 1, nl do
      blk.res[j] = self:add(('encoder.down_blocks.%d.resnets.%d'):format(i - 1, j - 1), VaeRes(c, ch[i], lc, g))
      c = ch[i]
    end
    if i < #ch then blk.down = self:add(('encoder.down_blocks.%d.downsamplers.0'):format(i - 1), VaeDown(c, g)) end
    self.enc_down[i] = blk
  end
  self.enc_mid = mid_block(self, 'encoder.', c, lc, g)
  self.enc_norm = self:add('encoder.conv_norm_out', gn(c, lc))
  self.enc_out = self:add('encoder.conv_out', nn.Conv2d(c, 2 * Lc, 3, {generator = g}))
  self.quant = self:add('quant_conv', nn.Conv2d(2 * Lc, 2 * Lc, 1, {generator = g}))
  -- decoder
  self.post_quant = self:add('post_quant_conv', nn.Conv2d(Lc, Lc, 1, {generator = g}))
  c = ch[#ch]
  self.dec_in = self:add('decoder.conv_in', nn.Conv2d(Lc, c, 3, {generator = g}))
  self.dec_mid = mid_block(self, 'decoder.', c, lc, g)
  self.dec_up = {}
  for i = 1, #ch do
    local co = ch[#ch - i + 1]
    local blk = {res = {}}
    for j = 1, nl + 1 do
      blk.res[j] = self:add(('decoder.up_blocks.%d.resnets.%d'):format(i - 1, j - 1), VaeRes(c, co, lc, g))
      c = co
    end
    if i < #ch then
      blk.up = self:add(('decoder.up_blocks.%d.upsamplers.0'):format(i - 1), nn.Upsample(c, c, {generator = g}))
    end
    self.dec_up[i] = blk
  end
  self.dec_norm = self:add('decoder.conv_norm_out', gn(c, lc))
  self.dec_out = self:add('decoder.conv_out', nn.Conv2d(c, lc.out_channels or 3, 3, {generator = g}))
end

function VAE:encode(x)
  local h = self.enc_in(x)
  for _, blk in ipairs(self.enc_down) do
    for _, r in ipairs(blk.res) do h = r(h) end
    if blk.down then h = blk.down(h) end
  end
  h = run_mid(self.enc_mid, h)
  local moments = self.quant(self.enc_out(self.enc_norm(h, 'silu')))
  local mean = F.narrow(moments, 2, 1, self.lc.latent_channels)
  return mean * (self.lc.scaling_factor or 1)
end

function VAE:decode(z)
  local h = self.post_quant(z * (1 / (self.lc.scaling_factor or 1)))
  h = run_mid(self.dec_mid, self.dec_in(h))
  for _, blk in ipairs(self.dec_up) do
    for _, r in ipairs(blk.res) do h = r(h) end
    if blk.up then h = blk.up(h) end
  end
  return self.dec_out(self.dec_norm(h, 'silu'))
end

return M
