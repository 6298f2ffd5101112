-- Reverse-mode autograd as plain Lua records.
--
-- A tensor that takes part in differentiation has a node in `nodes` (a
-- weak-keyed table, so a graph lives exactly as long as its output tensor):
--   leaf:   {leaf = true, grad = tensor or nil}            (parameters, inputs)
--   result: {name, inputs = {tensor, ...}, backward = fn, saved = {{t, version}}}
-- `backward(grad_output)` returns one gradient per input (nil where none).
-- Functions in fada.F call `A.record` after computing their output with the
-- raw kernels; nothing is recorded under `A.no_grad`, or when no input needs
-- a gradient.
local fada = require 'fada'

local A = {}

local nodes = setmetatable({}, {__mode = 'k'})
local enabled = true
local detect_anomaly = os.getenv('FADA_DETECT_ANOMALY') == '1'

-- With anomaly detection on, backward checks every gradient it computes and
-- stops at the first op that produced a NaN or an infinity, naming it
-- (slow: one reduction per gradient). Also FADA_DETECT_ANOMALY=1.
function A.set_detect_anomaly(on) detect_anomaly = on and true or false end

local function finite(t)
  local s = t:abs():sum():item()
  return s == s and s ~= math.huge
end

-- Marks t as a leaf whose gradient backward() accumulates; returns t.
function A.requires_grad(t, flag)
  if flag == false then
    nodes[t] = nil
  elseif not nodes[t] then
    nodes[t] = {leaf = true}
  end
  return t
end

-- true when t is a leaf that wants a gradient or the result of recorded ops.
function A.tracked(t) return nodes[t] ~= nil end

function A.is_enabled() return enabled end

-- Runs fn(...) with recording off (inference, EMA updates, metrics).
function A.no_grad(fn, ...)
  local was = enabled
  enabled = false
  local res = table.pack(pcall(fn, ...))
  enabled = was
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

-- Whether any of the tensors in the list needs a gradient (while recording).
function A.needs_grad(...)
  if not enabled then return false end
  for i = 1, select('#', ...) do
    local t = select(i, ...)
    if t ~= nil and nodes[t] then return true end
  end
  return false
end

-- Records output = name(inputs...). `saved` lists tensors the backward will
-- read; their versions are checked then, so an in-place change in between
-- is an error instead of a wrong gradient.
function A.record(name, output, inputs, backward, saved)
  if not enabled then return output end
  local any = false
  for i = 1, #inputs do
    if inputs[i] ~= nil and nodes[inputs[i]] then any = true break end
  end
  if not any then return output end
  local versions
  if saved then
    versions = {}
    for i, t in ipairs(saved) do versions[i] = {t, t:version()} end
  end
  if detect_anomaly and not finite(output) then
    error(('forward: %s produced a non-finite output'):format(name), 0)
  end
  nodes[output] = {name = name, inputs = inputs, n_inputs = #inputs, backward = backward, saved = versions}
  return output
end

-- Sums grad over the dims that broadcasting expanded, back to `shape`.
function A.sum_to(grad, shape)
  local gs = grad:size()
  if #gs == #shape then
    local same = true
    for i = 1, #gs do if gs[i] ~= shape[i] then same = false break end end
    if same then return grad end
  end
  local lead = #gs - #shape
  local g = grad
  for d = 1, lead do g = g:sum(1) end -- drop leading dims
  for d = 1, #shape do
    if shape[d] == 1 and gs[d + lead] ~= 1 then g = g:sum(d, true) end
  end
  return g
end

local function check_saved(node)
  if not node.saved then return end
  for _, sv in ipairs(node.saved) do
    if sv[1]:version() ~= sv[2] then
      error(('backward: a tensor saved by %s was modified in place after the forward pass ' ..
             '(version %d, now %d); clone it before changing it'):format(node.name, sv[2], sv[1]:version()), 0)
    end
  end
end

-- Accumulates d(output)/d(leaf) · grad_output into every reachable leaf's
-- .grad (see A.grad). grad_output defaults to 1 for a one-element output.
function A.backward(output, grad_output)
  if not nodes[output] then
    error('backward: the tensor was not computed from anything that requires a gradient', 2)
  end
  if grad_output == nil then
    if output:numel() ~= 1 then
      error(('backward: output has %d elements; pass grad_output for a non-scalar'):format(output:numel()), 2)
    end
    grad_output = fada.ones_like(output)
  end
  -- order the graph: depth-first post-order from the output
  local order, seen = {}, {}
  local stack = {{output, 1}}
  seen[output] = true
  while #stack > 0 do
    local top = stack[#stack]
    local t, k = top[1], top[2]
    local node = nodes[t]
    local inputs = node and not node.leaf and node.inputs or {}
    local n = node and node.n_inputs or 0
    while k <= n and (inputs[k] == nil or seen[inputs[k]] or not nodes[inputs[k]]) do k = k + 1 end
    if k <= n then
      top[2] = k + 1
      seen[inputs[k]] = true
      stack[#stack + 1] = {inputs[k], 1}
    else
      stack[#stack] = nil
      order[#order + 1] = t
    end
  end
  local grads = {[output] = grad_output}
  -- grads[x] made here by a sum belongs to no one else: later sums go into it
  -- in place (a gradient handed back by a backward may be shared, e.g. add's)
  local summed = {}
  local was = enabled
  enabled = false -- backward formulas are not themselves recorded
  local ok, err = pcall(function()
    for i = #order, 1, -1 do
      local t = order[i]
      local node, g = nodes[t], grads[t]
      grads[t] = nil
      if g ~= nil then
        if node.leaf then
          node.grad = node.grad and node.grad + g or g
        else
          check_saved(node)
          local gin = table.pack(node.backward(g))
          for k = 1, node.n_inputs do
            local x, gx = node.inputs[k], gin[k]
            if detect_anomaly and gx ~= nil and not finite(gx) then
              error(('backward: %s produced a non-finite gradient for its input %d (its output gradient was %s)'):format(
                node.name, k, finite(g) and 'finite' or 'already non-finite'), 0)
            end
            if x ~= nil and gx ~= nil and nodes[x] then
              local have = grads[x]
              if have == nil then
                grads[x] = gx
              elseif summed[x] and have:numel() == gx:numel() then
                have:add_(gx)
              else
                grads[x], summed[x] = have + gx, true
              end
            end
          end
        end
      end
    end
  end)
  enabled = was
  if not ok then error(err, 0) end
end

-- The accumulated gradient of a leaf (nil before any backward).
function A.grad(t)
  local n = nodes[t]
  return n and n.grad
end

function A.zero_grad(t)
  local n = nodes[t]
  if n then n.grad = nil end
end

-- Central-difference check of f's gradient at the given inputs (f64 tensors
-- recommended). f(inputs...) must return one tensor. Returns true, or
-- false and a message naming the input and element that disagree.
-- opts: eps (1e-6), atol (1e-5), rtol (1e-3), seed.
function A.gradcheck(f, inputs, opts)
  opts = opts or {}
  local eps, atol, rtol = opts.eps or 1e-6, opts.atol or 1e-5, opts.rtol or 1e-3
  for _, x in ipairs(inputs) do A.requires_grad(x) ; A.zero_grad(x) end
  local out = f(table.unpack(inputs))
  -- a random projection makes the check cover every output element at once
  local w = fada.randn(out:size(), fada.Generator(opts.seed or 1)):to(out:dtype())
  local function objective()
    local y = A.no_grad(f, table.unpack(inputs))
    return (y * w):sum():item()
  end
  A.backward(out, w)
  for k, x in ipairs(inputs) do
    local g = A.grad(x)
    local flat = x:view(-1) -- inputs must be contiguous
    local gflat = g and g:contiguous():view(-1)
    for i = 1, x:numel() do
      local orig = flat:get(i)
      flat:set(i, orig + eps)
      local fp = objective()
      flat:set(i, orig - eps)
      local fm = objective()
      flat:set(i, orig)
      local numeric = (fp - fm) / (2 * eps)
      local analytic = gflat and gflat:get(i) or 0
      if math.abs(numeric - analytic) > atol + rtol * math.abs(numeric) then
        return false, ('gradcheck: input %d element %d: analytic %.8g vs numeric %.8g'):format(k, i, analytic, numeric)
      end
    end
  end
  return true
end

return A
