-- nn.Module: the base of every layer and model.
--
-- Parameters and buffers are named by their checkpoint key: a child added
-- as 'down.1' holding a parameter 'weight' gives the key 'down.1.weight',
-- the same names a PyTorch state_dict of the same architecture has, so
-- checkpoints map one to one.
--
--   local Block = nn.class('Block', nn.Module)
--   function Block:init(c)
--     self.norm = self:add('norm', nn.GroupNorm(32, c))
--     self.scale = self:param('scale', fada.ones(c))
--   end
--   function Block:forward(x) return self.norm(x) * self.scale:view(1, -1, 1, 1) end
local fada = require 'fada'
local A = require 'fada.autograd'

local Module = {}
Module.__index = Module
Module.__name = 'Module'

-- Classes: nn.class(name, parent) makes a table whose instances are built by
-- calling it: Block(64) runs Module setup, then Block.init(self, 64).
function Module.class(name, parent)
  parent = parent or Module
  local cls = setmetatable({}, {__index = parent, __call = function(c, ...) return c.new(c, ...) end})
  cls.__index = cls
  cls.__name = name
  cls.__call = function(self, ...) return self:forward(...) end
  cls.__tostring = parent.__tostring
  return cls
end

function Module.new(cls, ...)
  local self = setmetatable({_params = {}, _buffers = {}, _children = {}, _order = {}, training = true}, cls)
  if cls.init then cls.init(self, ...) end
  return self
end

Module.__call = function(self, ...) return self:forward(...) end

function Module:forward()
  error(('%s: forward is not defined'):format(getmetatable(self).__name or 'Module'), 2)
end

local function check_name(self, name)
  if type(name) ~= 'string' or name == '' or name:find('%.$') then
    error(('%s: a parameter/child name must be a non-empty string, got %s'):format(
      getmetatable(self).__name, tostring(name)), 3)
  end
  if self._params[name] or self._buffers[name] or self._children[name] then
    error(('%s: the name %q is already taken'):format(getmetatable(self).__name, name), 3)
  end
end

-- Registers a trainable tensor under `name`; returns it.
function Module:param(name, t)
  check_name(self, name)
  self._params[name] = t
  self._order[#self._order + 1] = name
  A.requires_grad(t)
  return t
end

-- Registers state that is saved but not trained (running statistics, fixed
-- tables); returns it.
function Module:buffer(name, t)
  check_name(self, name)
  self._buffers[name] = t
  self._order[#self._order + 1] = name
  return t
end

-- Registers a child module under `name` (may contain dots: 'blocks.3'); returns it.
function Module:add(name, child)
  check_name(self, name)
  if type(child) ~= 'table' or not child._params then
    error(('%s: add(%q, ...) expects a module, got %s'):format(getmetatable(self).__name, name, type(child)), 2)
  end
  self._children[name] = child
  self._order[#self._order + 1] = name
  return child
end

-- Calls fn(key, tensor, kind, owner, local_name) for every parameter ('param')
-- and buffer ('buffer') in registration order, depth first.
function Module:walk(fn, prefix)
  prefix = prefix or ''
  for _, name in ipairs(self._order) do
    if self._params[name] then
      fn(prefix .. name, self._params[name], 'param', self, name)
    elseif self._buffers[name] then
      fn(prefix .. name, self._buffers[name], 'buffer', self, name)
    else
      self._children[name]:walk(fn, prefix .. name .. '.')
    end
  end
end

-- {{name = key, tensor = t}, ...} of the trainable parameters, in order.
function Module:named_parameters()
  local list = {}
  self:walk(function(key, t, kind)
    if kind == 'param' then list[#list + 1] = {name = key, tensor = t} end
  end)
  return list
end

function Module:parameters()
  local list = {}
  for _, p in ipairs(self:named_parameters()) do list[#list + 1] = p.tensor end
  return list
end

function Module:num_parameters()
  local n = 0
  for _, t in ipairs(self:parameters()) do n = n + t:numel() end
  return n
end

-- key -> tensor for parameters and buffers (the tensors themselves, not copies).
function Module:state_dict()
  local sd = {}
  self:walk(function(key, t) sd[key] = t end)
  return sd
end

-- Copies values from a key -> tensor table (converting dtypes). strict
-- (default true) demands the same key set; shapes must always match. The
-- module's own tensors keep their identity, so optimisers stay valid.
function Module:load_state_dict(sd, opts)
  local strict = not (opts and opts.strict == false)
  local missing, seen = {}, {}
  local problems = {}
  self:walk(function(key, t)
    local src = sd[key]
    if src == nil then
      missing[#missing + 1] = key
      return
    end
    seen[key] = true
    local a, b = table.concat(t:size(), 'x'), table.concat(src:size(), 'x')
    if a ~= b then
      problems[#problems + 1] = ('%s: checkpoint has shape [%s], the model [%s]'):format(key, b, a)
      return
    end
    A.no_grad(function() t:copy(src) end)
  end)
  local unexpected = {}
  for key in pairs(sd) do if not seen[key] then unexpected[#unexpected + 1] = key end end
  table.sort(unexpected)
  if #problems > 0 then error('load_state_dict: ' .. table.concat(problems, '; '), 2) end
  if strict and (#missing > 0 or #unexpected > 0) then
    local function head(list)
      local s = table.concat(list, ', ', 1, math.min(#list, 8))
      return #list > 8 and s .. (', ... (%d in all)'):format(#list) or s
    end
    error(('load_state_dict: %s%s%s'):format(
      #missing > 0 and ('missing keys: ' .. head(missing)) or '',
      (#missing > 0 and #unexpected > 0) and '; ' or '',
      #unexpected > 0 and ('unexpected keys: ' .. head(unexpected)) or ''), 2)
  end
  return {missing = missing, unexpected = unexpected}
end

function Module:train(flag)
  local on = flag ~= false
  self.training = on
  for _, child in pairs(self._children) do child:train(on) end
  return self
end

function Module:eval() return self:train(false) end

-- Children in registration order: {{name =, module =}, ...} (direct only).
function Module:children()
  local list = {}
  for _, name in ipairs(self._order) do
    if self._children[name] then list[#list + 1] = {name = name, module = self._children[name]} end
  end
  return list
end

Module.__tostring = function(self)
  local lines = {}
  local function show(m, indent, name)
    local cls = getmetatable(m).__name or 'Module'
    local own = {}
    for _, n in ipairs(m._order) do
      local t = m._params[n] or m._buffers[n]
      if t then own[#own + 1] = ('%s[%s]'):format(n, table.concat(t:size(), 'x')) end
    end
    lines[#lines + 1] = ('%s%s%s%s'):format(indent, name and name .. ': ' or '', cls,
      #own > 0 and ' (' .. table.concat(own, ', ') .. ')' or '')
    for _, c in ipairs(m:children()) do show(c.module, indent .. '  ', c.name) end
  end
  show(self, '', nil)
  return table.concat(lines, '\n')
end

return Module
