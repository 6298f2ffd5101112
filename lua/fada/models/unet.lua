-- The denoising UNet, its attention block and the reference net of the FADA
-- reconstruction (see fada/models/init.lua for the whole design and the
-- config keys). Shapes: N = rows of the batch (n branches × B clips × F
-- frames, clip-major inside a branch), C channels, H×W latent pixels.
local fada = require 'fada'
local A = require 'fada.autograd'
local F = require 'fada.F'
local nn = require 'fada.nn'

local M = {}

-- ---- helpers ------------------------------------------------------------------

-- Sinusoidal embedding of timesteps t [N] (f32) -> [N, dim], cos half first
-- (diffusers' flip_sin_to_cos = true, shift 0, max period 10000).
function M.timestep_embedding(t, dim)
  local half = dim // 2
  local freqs = fada.arange(0, half):to('f32') * (-math.log(10000) / half)
  local args = t:view(-1, 1) * freqs:exp():view(1, half)         -- [N, half]
  return fada.cat({fada.cos(args), fada.sin(args)}, 2)
end

-- Sinusoidal position table [n, dim] (sin on even, cos on odd channels).
function M.position_table(n, dim)
  local pos = fada.arange(0, n):to('f64'):view(n, 1)
  local i = fada.arange(0, dim):to('f64')
  local rate = ((i / 2):floor() * (-2 * math.log(10000) / dim)):exp():view(1, dim)
  local ang = pos * rate                                            -- [n, dim]
  local even = (fada.arange(0, dim):remainder(2)):eq(0):view(1, dim):expand(n, dim)
  return fada.where(even, ang:sin(), ang:cos()):to('f32'):contiguous()
end

-- [N, C, H, W] -> [N, H·W, C] (a copy) and back.
local function to_tokens(h)
  local N, C, H, W = table.unpack(h:size())
  return F.reshape(F.permute(h, 1, 3, 4, 2), N, H * W, C)
end
local function to_map(x, H, W)
  local N, C = x:size(1), x:size(3)
  local m = F.permute(F.view(x, N, H, W, C), 1, 4, 2, 3)
  -- bf16 inference keeps activations channels-last (nn.Conv2d): the view is that layout
  if fada.get_compute_dtype() == 'bf16' and not A.needs_grad(x) then return m end
  return F.contiguous(m)
end
M.to_tokens, M.to_map = to_tokens, to_map

-- ---- attention block ------------------------------------------------------------

-- keys: norm1, attn1 (reference attention), norm2, attn2 (audio cross-attention),
-- norm3, attn3 (temporal), norm4, ff.0, ff.1 (feed-forward, GELU)
local AttnBlock = nn.class('FadaAttnBlock')
M.AttnBlock = AttnBlock

function AttnBlock:init(C, cfg, g)
  local heads = math.max(1, C // cfg.head_dim)
  self.C = C
  self.norm1 = self:add('norm1', nn.LayerNorm(C))
  self.attn1 = self:add('attn1', nn.Attention(C, {heads = heads, generator = g}))
  self.norm2 = self:add('norm2', nn.LayerNorm(C))
  self.attn2 = self:add('attn2', nn.Attention(C, {heads = heads, kv_dim = cfg.audio.dim, generator = g}))
  self.temporal = cfg.temporal ~= false
  if self.temporal then
    self.norm3 = self:add('norm3', nn.LayerNorm(C))
    self.attn3 = self:add('attn3', nn.Attention(C, {heads = heads, generator = g}))
  end
  self.norm4 = self:add('norm4', nn.LayerNorm(C))
  local hid = C * cfg.ff_mult
  self.ff1 = self:add('ff.0', nn.Linear(C, hid, {generator = g}))
  self.ff2 = self:add('ff.1', nn.Linear(hid, C, {generator = g}))
end

-- The reference tokens of this block projected by attn1 (after norm1), cached
-- in the clip's context: [B, Ne, C] each.
function AttnBlock:ref_kv(st, id)
  local ctx = st.ctx
  local kv = ctx.kv[id]
  if not kv then
    local tok = self.norm1(ctx.tokens[st.level])
    local k, v = self.attn1:project_kv(tok)
    kv = {k = k, v = v, rows = {}}
    ctx.kv[id] = kv
  end
  return kv
end

-- extra k/v for `rows` conditioned rows (a multiple of B·F): batch 1 when one
-- clip, else the clip's tokens repeated over its F frames and the branches.
local function rows_kv(kv, rows, B, Fr)
  if B == 1 then return kv.k, kv.v end
  local key = rows .. 'x' .. Fr
  local hit = kv.rows[key]
  if not hit then
    local function rep(t)
      local Ne, C = t:size(2), t:size(3)
      local r = F.reshape(F.expand(F.view(t, 1, B, 1, Ne, C), rows // (B * Fr), B, Fr, Ne, C), rows, Ne, C)
      return r
    end
    hit = {rep(kv.k), rep(kv.v)}
    kv.rows[key] = hit
  end
  return hit[1], hit[2]
end

-- forward(h [N, C, H, W], st) with st the per-call state the UNet builds:
-- {groups = {{first row, rows, ref = bool}}, audio = [N, Na, D], ctx, Fr, B, level, pos}
function AttnBlock:forward(h, st, id)
  local N, C, H, W = table.unpack(h:size())
  local x = to_tokens(h)                                     -- [N, HW, C]
  -- 1. reference attention: own tokens + this block's reference tokens, by row group
  local n1 = self.norm1(x)
  local a1 = self.attn1
  local q, k, v = a1:qkv(n1)
  local outs = {}
  for i, gr in ipairs(st.groups) do
    local ek, ev
    if gr.ref then ek, ev = rows_kv(self:ref_kv(st, id), gr.rows, st.B, st.Fr) end
    local function part(t) return #st.groups == 1 and t or F.narrow(t, 1, gr.first, gr.rows) end
    outs[i] = nn.Attention.attend(part(q), part(k), part(v), a1.heads, ek, ev)
  end
  local o = #outs == 1 and outs[1] or F.cat(outs, 1)
  x = x + a1.to_out(o)
  -- 2. audio cross-attention: pixels query the frame's audio tokens
  x = x + self.attn2(self.norm2(x), st.audio)
  -- 3. temporal attention across the F frames of a clip at each position
  if self.temporal then
    local G, Fr = N // st.Fr, st.Fr
    local n3 = F.view(self.norm3(x), G, Fr, H * W, C) + F.view(st.pos(C), 1, Fr, 1, C)
    local tt = F.reshape(F.permute(n3, 1, 3, 2, 4), G * H * W, Fr, C)   -- [G·HW, F, C]
    local a = self.attn3(tt)
    x = x + F.reshape(F.permute(F.view(a, G, H * W, Fr, C), 1, 3, 2, 4), N, H * W, C)
  end
  -- 4. feed-forward
  x = x + self.ff2(self.ff1(self.norm4(x), 'gelu'))
  return to_map(x, H, W)
end

-- ---- UNet ------------------------------------------------------------------------

-- keys: conv_in, time_embed.0/1, down.L.res.J, down.L.attn.J, down.L.downsample,
-- mid.res.J, mid.attn.0, up.L.res.J, up.L.attn.J, up.L.upsample, norm_out, conv_out,
-- cfg_ctrl.K (student only; K counts the blocks in forward order), cfg_ctrl.time
-- (student with time_control only)
local UNet = nn.class('FadaUNet')
M.UNet = UNet

function UNet:init(cfg, g)
  local ch, L, nres = cfg.channels, #cfg.channels, cfg.num_res_blocks
  local Cl = cfg.latent.channels
  local temb = cfg.time_dim
  local ro = {temb_dim = temb, groups = cfg.groups, time_mode = cfg.time_mode, generator = g}
  self.cfg = cfg
  self.conv_in = self:add('conv_in', nn.Conv2d(cfg.ref_concat and 2 * Cl or Cl, ch[1], 3, {generator = g}))
  self.time1 = self:add('time_embed.0', nn.Linear(ch[1], temb, {generator = g}))
  self.time2 = self:add('time_embed.1', nn.Linear(temb, temb, {generator = g}))
  self.blocks = {}    -- every ResBlock/AttnBlock in forward order: {module, C, kind}
  local function reg(m, C, kind) self.blocks[#self.blocks + 1] = {m = m, C = C, kind = kind} ; return m end
  self.down = {}
  local c = ch[1]
  for l = 1, L do
    local lv = {res = {}, attn = {}}
    for j = 1, nres do
      lv.res[j] = reg(self:add(('down.%d.res.%d'):format(l - 1, j - 1), nn.ResBlock(c, ch[l], ro)), ch[l], 'res')
      c = ch[l]
      if cfg.attn_levels[l] then
        lv.attn[j] = reg(self:add(('down.%d.attn.%d'):format(l - 1, j - 1), AttnBlock(c, cfg, g)), c, 'attn')
      end
    end
    if l < L then lv.downsample = self:add(('down.%d.downsample'):format(l - 1), nn.Downsample(c, c, {generator = g})) end
    self.down[l] = lv
  end
  self.mid = {res = {}}
  for j = 1, cfg.mid_res do
    self.mid.res[j] = reg(self:add(('mid.res.%d'):format(j - 1), nn.ResBlock(c, c, ro)), c, 'res')
    if j == 1 and cfg.mid_attn then
      self.mid.attn = reg(self:add('mid.attn.0', AttnBlock(c, cfg, g)), c, 'attn')
    end
  end
  self.up = {}
  for l = L, 1, -1 do
    local lv = {res = {}, attn = {}}
    for j = 1, nres do
      lv.res[j] = reg(self:add(('up.%d.res.%d'):format(l - 1, j - 1), nn.ResBlock(c + ch[l], ch[l], ro)), ch[l], 'res')
      c = ch[l]
      if cfg.attn_levels[l] then
        lv.attn[j] = reg(self:add(('up.%d.attn.%d'):format(l - 1, j - 1), AttnBlock(c, cfg, g)), c, 'attn')
      end
    end
    if l > 1 then
      lv.upsample = self:add(('up.%d.upsample'):format(l - 1), nn.Upsample(c, ch[l - 1], {generator = g}))
      c = ch[l - 1]
    end
    self.up[l] = lv
  end
  self.norm_out = self:add('norm_out', nn.GroupNorm(nn.ResBlock.groups_for(c, cfg.groups), c))
  self.conv_out = self:add('conv_out', nn.Conv2d(c, Cl, 3, {generator = g}))
  if cfg.student then
    self.ctrl = {}
    for k, b in ipairs(self.blocks) do
      self.ctrl[k] = self:add(('cfg_ctrl.%d'):format(k - 1), nn.Linear(cfg.student.token_dim, b.C, {zero_init = true}))
    end
    if cfg.student.time_control then
      -- the token also joins the time embedding, as guided distillation conditions on w (Meng et al. 2023):
      -- every ResBlock's scale-shift then depends on the scales and the timestep together
      self.ctrl_time = self:add('cfg_ctrl.time', nn.Linear(cfg.student.token_dim, temb, {zero_init = true}))
    end
  end
end

-- The time embedding (after its MLP and the SiLU every ResBlock applies first):
-- t [1 or N] -> [1 or N, temb]. With a student's tau [n, token_dim] (one token per
-- branch block of the N rows) and time control, the token's projection joins it
-- before the SiLU -> [1, temb] when one token and one t, else [N, temb].
function UNet:time_embedding(t, tau, N)
  local e = M.timestep_embedding(t, self.cfg.channels[1])
  local h = self.time2(self.time1(e, 'silu'))               -- [1 or N, temb]
  if tau and self.ctrl_time then
    local n, temb = tau:size(1), h:size(2)
    local c = self.ctrl_time(tau)                            -- [n, temb]
    if h:size(1) == 1 and n == 1 then h = h + c              -- [1, temb]
    else
      local rows = h:size(1) == 1 and 1 or N // n
      h = F.view(h, h:size(1) == 1 and 1 or n, rows, temb) + F.view(c, n, 1, temb)   -- [n, 1 or N/n, temb]
      h = F.reshape(F.expand(h, n, N // n, temb), N, temb)  -- [N, temb]
    end
  end
  return F.silu(h)
end

-- forward(x [N, Cin, H, W], emb [N or 1, temb], st, tau [1, token_dim] or nil)
function UNet:forward(x, emb, st, tau)
  local k = 0
  local function block(b, h, ...)
    k = k + 1
    local out = b.kind == 'res' and b.m(h, emb) or b.m(h, st, k)
    if tau and self.ctrl then
      -- tau [n, token_dim]: one token per branch block of rows
      local n, C = tau:size(1), self.blocks[k].C
      local c = F.view(self.ctrl[k](tau), n, 1, C, 1, 1)
      local N, H, W = out:size(1), out:size(3), out:size(4)
      out = F.view(F.view(out, n, N // n, C, H, W) + c, N, C, H, W)
    end
    return out
  end
  local h = self.conv_in(x)
  local skips = {}
  local L = #self.cfg.channels
  local bi = 0
  local function nextb() bi = bi + 1 ; return self.blocks[bi] end
  for l = 1, L do
    st.level = l
    local lv = self.down[l]
    for j = 1, #lv.res do
      h = block(nextb(), h)
      if lv.attn[j] then h = block(nextb(), h) end
      skips[#skips + 1] = h
    end
    if lv.downsample then h = lv.downsample(h) end
  end
  st.level = L
  for j = 1, #self.mid.res do
    h = block(nextb(), h)
    if j == 1 and self.mid.attn then h = block(nextb(), h) end
  end
  for l = L, 1, -1 do
    st.level = l
    local lv = self.up[l]
    for j = 1, #lv.res do
      local s = table.remove(skips)
      h = block(nextb(), F.cat({h, s}, 2))
      if lv.attn[j] then h = block(nextb(), h) end
    end
    if lv.upsample then h = lv.upsample(h) end
  end
  return self.conv_out(self.norm_out(h, 'silu', {bf16_nhwc = fada.get_compute_dtype() == 'bf16' or nil}))
end

-- ---- reference net -----------------------------------------------------------------

-- The denoiser's down path without time input, on the reference latent with
-- the motion-frame latents on extra channels. keys: conv_in, down.L.res.J,
-- down.L.downsample. Returns the tokens [B, h_l·w_l, C_l] of each level
-- (the output of the level's last ResBlock).
local RefNet = nn.class('FadaRefNet')
M.RefNet = RefNet

function RefNet:init(cfg, g)
  local ch, L = cfg.channels, #cfg.channels
  local Cl = cfg.latent.channels
  local cin = Cl * (1 + cfg.motion_frames)
  local ro = {groups = cfg.groups, generator = g}
  self.conv_in = self:add('conv_in', nn.Conv2d(cin, ch[1], 3, {generator = g}))
  -- only the levels up to the deepest attention level are needed
  local need = 0
  for l = 1, L do if cfg.attn_levels[l] or (l == L and cfg.mid_attn) then need = l end end
  self.levels = need
  self.down = {}
  local c = ch[1]
  for l = 1, need do
    local lv = {res = {}}
    for j = 1, cfg.num_res_blocks do
      lv.res[j] = self:add(('down.%d.res.%d'):format(l - 1, j - 1), nn.ResBlock(c, ch[l], ro))
      c = ch[l]
    end
    if l < need then lv.downsample = self:add(('down.%d.downsample'):format(l - 1), nn.Downsample(c, c, {generator = g})) end
    self.down[l] = lv
  end
end

-- forward(x [B, Cl·(1+M), h, w]) -> {[level] = tokens [B, h_l·w_l, C_l]}
function RefNet:forward(x)
  local h = self.conv_in(x)
  local tokens = {}
  for l = 1, self.levels do
    local lv = self.down[l]
    for j = 1, #lv.res do h = lv.res[j](h) end
    tokens[l] = to_tokens(h)
    if lv.downsample then h = lv.downsample(h) end
  end
  return tokens
end

return M
