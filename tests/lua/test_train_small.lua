-- Small networks train to a known loss on fixed problems: the whole training
-- stack (nn modules, F, autograd, AdamW) working together.
local fada = require 'fada'
local nn = require 'fada.nn'
local F = require 'fada.F'
local A = require 'fada.autograd'
local optim = require 'fada.optim'

local function train(model, batch_fn, steps, lr)
  local opt = optim.AdamW(model:named_parameters(), {lr = lr, weight_decay = 0})
  local first, last
  for step = 1, steps do
    local x, y = batch_fn(step)
    opt:zero_grad()
    local loss = F.mse(model(x), y)
    A.backward(loss)
    opt:step()
    if step == 1 then first = loss:item() end
    last = loss:item()
  end
  return first, last
end

test('an MLP fits sin on [-π, π]', function()
  local Mlp = nn.class('Mlp')
  function Mlp:init()
    local g = fada.Generator(1)
    self.l1 = self:add('l1', nn.Linear(1, 32, {generator = g}))
    self.l2 = self:add('l2', nn.Linear(32, 32, {generator = g}))
    self.l3 = self:add('l3', nn.Linear(32, 1, {generator = g}))
  end
  function Mlp:forward(x) return self.l3(self.l2(self.l1(x, 'silu'), 'silu')) end
  local x = fada.linspace(-math.pi, math.pi, 128):view(128, 1)   -- [128, 1]
  local y = fada.sin(x)
  local first, last = train(Mlp(), function() return x, y end, 600, 0.01)
  print(('  MLP: loss %.4f -> %.5f'):format(first, last))
  assert(last < 2e-3, ('MLP final loss %.4g'):format(last))
end)

test('a small conv net learns where a bright square is', function()
  local Net = nn.class('Net')
  function Net:init()
    local g = fada.Generator(2)
    self.c1 = self:add('c1', nn.Conv2d(1, 8, 3, {stride = 2, generator = g}))   -- 16 -> 8
    self.c2 = self:add('c2', nn.Conv2d(8, 16, 3, {stride = 2, generator = g}))  -- 8 -> 4
    self.out = self:add('out', nn.Linear(16 * 4 * 4, 2, {generator = g}))
  end
  function Net:forward(x)
    local h = self.c2(self.c1(x, {act = 'silu'}), {act = 'silu'})
    return self.out(F.reshape(h, h:size(1), -1))
  end
  -- 32 fixed images 16x16 with a 4x4 square at a known (row, col) to regress
  local gen = fada.Generator(3)
  local pos = fada.randint(0, 13, 32, 2, gen)
  local imgs = fada.zeros(32, 1, 16, 16)
  for i = 1, 32 do
    local r, c = pos:get(i, 1), pos:get(i, 2)
    imgs:select(1, i):narrow(2, r + 1, 4):narrow(3, c + 1, 4):fill(1)
  end
  local target = pos:to('f32') * (1 / 12) - 0.5          -- [32, 2] in [-0.5, 0.5]
  local first, last = train(Net(), function() return imgs, target end, 300, 0.01)
  print(('  conv net: loss %.4f -> %.5f'):format(first, last))
  assert(last < 2e-3 and last < first / 20, ('conv net loss %.4g -> %.4g'):format(first, last))
end)
