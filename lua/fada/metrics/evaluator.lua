-- The evaluator: a small CNN that reads a synthetic-avatar frame back into
-- the renderer's parameters (lua/fada/data/face.lua): mouth opening and
-- rounding, blink, head pose, and identity attributes; its penultimate layer
-- is the feature vector of the Fréchet distance.
--
--   local E = require 'fada.metrics.evaluator'
--   local ev = E.load('weights/evaluator.safetensors')
--   local r = ev:read(frames)          -- frames [T, 3, S, S] f32 in [0, 1] or u8 [T, S, S, 3]
--   r.open[t], r.round[t], r.yaw[t], ..., r.identity [T, K], r.features [T, 128]
--
-- Every output is regressed in a normalised unit: (value − lo) / (hi − lo)
-- over the generator's range, so all targets lie in [0, 1] and one MSE
-- (weighted per output) trains them together. The hair style is a one-hot
-- over face.HAIR_STYLES regressed the same way (argmax reads the class).
local fada = require 'fada'
local nn = require 'fada.nn'
local F = require 'fada.F'
local A = require 'fada.autograd'
local face = require 'fada.data.face'

local M = {}

M.SIZE = 64

-- Motion ranges the training renders cover (uniform draws). The poses are
-- wider than a talking head's sway so the evaluator never extrapolates.
M.MOTION = {
  {name = 'open', lo = 0, hi = 1, weight = 6},
  {name = 'round', lo = 0, hi = 1, weight = 3},
  {name = 'blink', lo = 0, hi = 1, weight = 1},
  {name = 'dx', lo = -0.12, hi = 0.12, weight = 1},
  {name = 'dy', lo = -0.12, hi = 0.12, weight = 1},
  {name = 'roll', lo = -0.3, hi = 0.3, weight = 1},
  {name = 'yaw', lo = -1, hi = 1, weight = 1},
}

-- Identity outputs: {name, getter(id) -> value, lo, hi, weight}.
local function col(key, i) return function(id) return id[key][i] end end
local function num(key) return function(id) return id[key] end end
local function flag(key) return function(id) return id[key] and 1 or 0 end end
M.IDENTITY = {}
do
  local I = M.IDENTITY
  for _, key in ipairs{'skin', 'hair', 'lips', 'bg1', 'bg2'} do
    for i, c in ipairs{'r', 'g', 'b'} do
      I[#I + 1] = {name = key .. '_' .. c, get = col(key, i), lo = 0, hi = 1, weight = 1}
    end
  end
  local geometry = {
    {'face_rx', 0.46, 0.58}, {'face_ry', 0.60, 0.72}, {'face_cy', 0.02, 0.10}, {'jaw', 0, 0.25},
    {'eye_dx', 0.17, 0.25}, {'eye_y', -0.16, -0.06}, {'mouth_y', 0.30, 0.38}, {'mouth_w', 0.15, 0.22},
  }
  for _, g in ipairs(geometry) do
    I[#I + 1] = {name = g[1], get = num(g[1]), lo = g[2], hi = g[3], weight = 0.5}
  end
  for _, style in ipairs(face.HAIR_STYLES) do
    I[#I + 1] = {name = 'style_' .. style, get = function(id) return id.hair_style == style and 1 or 0 end,
                 lo = 0, hi = 1, weight = 0.5}
  end
  for _, key in ipairs{'glasses', 'earrings', 'hat'} do
    I[#I + 1] = {name = key, get = flag(key), lo = 0, hi = 1, weight = 0.5}
  end
end

M.OUTPUTS = {}
for _, o in ipairs(M.MOTION) do M.OUTPUTS[#M.OUTPUTS + 1] = o end
for _, o in ipairs(M.IDENTITY) do M.OUTPUTS[#M.OUTPUTS + 1] = o end
M.INDEX = {}
for i, o in ipairs(M.OUTPUTS) do M.INDEX[o.name] = i end
M.N_MOTION, M.N_IDENTITY, M.N_OUT = #M.MOTION, #M.IDENTITY, #M.OUTPUTS

-- Normalised target row (Lua array of N_OUT numbers) for identity + motion.
function M.target(id, motion)
  local row = {}
  for i, o in ipairs(M.MOTION) do row[i] = ((motion[o.name] or 0) - o.lo) / (o.hi - o.lo) end
  for j, o in ipairs(M.IDENTITY) do row[M.N_MOTION + j] = (o.get(id) - o.lo) / (o.hi - o.lo) end
  return row
end

-- Per-output loss weights as f32 [1, N_OUT].
function M.loss_weights()
  local w = {}
  for i, o in ipairs(M.OUTPUTS) do w[i] = o.weight end
  return fada.tensor(w):view(1, M.N_OUT)
end

-- ---- the network -------------------------------------------------------------------

local Net = nn.class('Evaluator')
M.Net = Net

-- Conv (3x3) -> GroupNorm+SiLU; 'pool' is a 2x2 average pool before the
-- conv. (Pool + stride-1 conv rather than a stride-2 conv: oneDNN 2.6 on AVX2
-- runs some stride-2 shapes, e.g. 48 -> 96 channels, ~25x slower per FLOP.)
local PLAN = { -- {in, out, pool}; 64 -> 32 -> 16 -> 8
  {3, 32}, {32, 48, true}, {48, 48}, {48, 96, true}, {96, 96}, {96, 128, true}, {128, 128},
}
M.FEATURES = 128

function Net:init(opts)
  opts = opts or {}
  local g = opts.generator or fada.Generator(opts.seed or 1)
  self.n_conv = #PLAN
  for i, p in ipairs(PLAN) do
    self:add('conv' .. i, nn.Conv2d(p[1], p[2], 3, {generator = g}))
    self:add('norm' .. i, nn.GroupNorm(8, p[2]))
  end
  self:add('squeeze', nn.Conv2d(128, 32, 1, {generator = g}))           -- [N, 32, 8, 8]
  self:add('fc', nn.Linear(32 * 8 * 8, M.FEATURES, {generator = g}))
  self:add('head', nn.Linear(M.FEATURES, M.N_OUT, {generator = g}))
end

-- forward(x [N, 3, 64, 64] in [0, 1]) -> outputs [N, N_OUT], features [N, FEATURES]
function Net:forward(x)
  local h = F.sub(x, 0.5)
  for i = 1, self.n_conv do
    if PLAN[i][3] then h = F.avg_pool2d(h, 2, 2) end
    h = self._children['conv' .. i](h)
    h = self._children['norm' .. i](h, 'silu')
  end
  h = self._children.squeeze(h, {act = 'silu'})
  local feat = self._children.fc(F.reshape(h, h:size(1), -1), 'silu')
  return self._children.head(feat), feat
end

-- ---- frames in, parameters out -----------------------------------------------------------

-- Any frames to f32 [T, 3, 64, 64] in [0, 1]: f32/f16 [T, 3, S, S] or
-- [3, S, S], u8 [T, S, S, 3] / [S, S, 3] (as decoders give) or u8 [T, 3, S, S].
function M.prepare(frames)
  local x = frames
  if x:dtype() == 'u8' then
    if x:dim() == 3 then x = x:view(1, x:size(1), x:size(2), x:size(3)) end
    if x:size(4) == 3 then x = x:permute(1, 4, 2, 3) end
    x = x:to('f32') * (1 / 255)
  else
    if x:dim() == 3 then x = x:view(1, x:size(1), x:size(2), x:size(3)) end
    if x:dtype() ~= 'f32' then x = x:to('f32') end
  end
  if x:size(2) ~= 3 then
    error(('evaluator: frames must have 3 channels, got shape [%s]'):format(table.concat(x:size(), ', ')), 3)
  end
  x = x:contiguous()
  if x:size(3) ~= M.SIZE or x:size(4) ~= M.SIZE then
    -- area-like: halve with 2x2 means while it stays >= 2x the target, then bilinear
    while x:size(3) >= 2 * M.SIZE and x:size(4) >= 2 * M.SIZE and x:size(3) % 2 == 0 and x:size(4) % 2 == 0 do
      x = fada.ops.avg_pool2d(x, 2, 2)
    end
    if x:size(3) ~= M.SIZE or x:size(4) ~= M.SIZE then x = fada.ops.resize_bilinear(x, M.SIZE, M.SIZE) end
  end
  return x
end

local Evaluator = {}
Evaluator.__index = Evaluator

-- Wraps a trained Net.
function M.wrap(net, meta)
  return setmetatable({net = net, meta = meta or {}}, Evaluator)
end

-- Loads weights saved by scripts/train_evaluator.lua.
function M.load(path)
  path = path or M.default_path()
  local f = io.open(path, 'rb')
  if not f then
    error(('evaluator: no weights at %s (train them: fadalua scripts/train_evaluator.lua)'):format(path), 2)
  end
  f:close()
  local sd, meta = fada.safetensors.load(path, {dtype = 'f32'})
  local net = Net()
  net:load_state_dict(sd)
  net:eval()
  return M.wrap(net, meta)
end

-- $FADA_EVALUATOR_WEIGHTS, else weights/evaluator.safetensors of the source
-- tree (beside lua/, or two up from a build folder's lua/), else the working
-- directory's.
function M.default_path()
  local env = os.getenv('FADA_EVALUATOR_WEIGHTS')
  if env and env ~= '' then return env end
  local dir = type(fada.library_dir) == 'string' and fada.library_dir or nil
  if dir then
    for _, up in ipairs{'/../weights/evaluator.safetensors', '/../../weights/evaluator.safetensors'} do
      local f = io.open(dir .. up, 'rb')
      if f then f:close() return dir .. up end
    end
  end
  return 'weights/evaluator.safetensors'
end

-- Raw outputs (normalised units) [T, N_OUT] and features [T, FEATURES] of
-- frames, in batches of 64.
function Evaluator:forward(frames)
  local x = M.prepare(frames)
  local T = x:size(1)
  local outs, feats = {}, {}
  A.no_grad(function()
    for s = 1, T, 64 do
      local n = math.min(64, T - s + 1)
      local o, f = self.net(x:narrow(1, s, n))
      outs[#outs + 1], feats[#feats + 1] = o, f
    end
  end)
  return fada.cat(outs, 1), fada.cat(feats, 1)
end

-- Reads frames: per-output Lua arrays in the renderer's units (r.open[t],
-- r.dx[t], r.skin_r[t], ...), r.hair_style[t] (name), r.identity f32
-- [T, N_IDENTITY] (normalised units, the identity-error space), r.motion f32
-- [T, N_MOTION] (normalised), r.features f32 [T, FEATURES], r.raw [T, N_OUT].
function Evaluator:read(frames)
  local raw, feats = self:forward(frames)
  local T = raw:size(1)
  local rows = raw:totable()
  local r = {raw = raw, features = feats, frames = T,
             motion = raw:narrow(2, 1, M.N_MOTION):contiguous(),
             identity = raw:narrow(2, M.N_MOTION + 1, M.N_IDENTITY):contiguous()}
  for i, o in ipairs(M.OUTPUTS) do
    local v = {}
    for t = 1, T do v[t] = o.lo + rows[t][i] * (o.hi - o.lo) end
    r[o.name] = v
  end
  r.hair_style = {}
  local s0 = M.INDEX['style_' .. face.HAIR_STYLES[1]]
  for t = 1, T do
    local best, bi = -math.huge, 1
    for k = 1, #face.HAIR_STYLES do
      if rows[t][s0 + k - 1] > best then best, bi = rows[t][s0 + k - 1], k end
    end
    r.hair_style[t] = face.HAIR_STYLES[bi]
  end
  return r
end

return M
