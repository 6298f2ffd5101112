-- The one op list (ops/fd_oplist.h): every op has fast and reference
-- kernels, is bound in fada.ops with its backward (and in fada.ops.ref), and
-- has a finite-difference gradient-check test in the suite it names.
local fada = require 'fada'
local ops = fada.ops

-- the Lua names an op family is bound under
local BOUND = {
  activation = {'silu', 'gelu', 'sigmoid', 'tanh', 'relu'},
  loss = {'mse_loss', 'l1_loss'},
}

test('every op: fast and reference kernels, bound with its backward, a gradient-check test', function()
  local list = ops.oplist()
  assert(#list >= 16, 'the op list is short: ' .. #list)
  local sources, seen = {}, {}
  for _, op in ipairs(list) do
    assert(not seen[op.name], op.name .. ' listed twice')
    seen[op.name] = true
    assert(op.has_reference, op.name .. ' has no reference kernel')
    for _, fn in ipairs(BOUND[op.name] or {op.name}) do
      assert(type(ops[fn]) == 'function', 'fada.ops.' .. fn .. ' is not bound')
      assert(type(ops[fn .. '_backward']) == 'function' or op.name == 'pixel_shuffle',
             'fada.ops.' .. fn .. '_backward is not bound')
    end
    local path = 'tests/lua/' .. op.suite .. '.lua'
    sources[path] = sources[path] or assert(io.open(path)):read('a')
    assert(sources[path]:find("test('" .. op.gradcheck .. "'", 1, true),
           ('%s: no test named %q in %s'):format(op.name, op.gradcheck, path))
  end
  for _, name in ipairs{'conv2d', 'conv1d', 'linear', 'matmul', 'group_norm', 'layer_norm', 'softmax', 'attention',
                        'activation', 'upsample_nearest', 'resize_bilinear', 'avg_pool2d', 'pad', 'pixel_shuffle',
                        'embedding', 'loss'} do
    assert(seen[name], name .. ' is missing from the op list')
  end
end)

test('the nn reference kernels are bound in fada.ops.ref', function()
  for _, fn in ipairs{'group_norm', 'layer_norm', 'softmax', 'attention', 'silu', 'upsample_nearest', 'resize_bilinear',
                      'avg_pool2d', 'pad', 'pixel_shuffle', 'embedding', 'mse_loss', 'l1_loss'} do
    assert(type(ops.ref[fn]) == 'function', 'fada.ops.ref.' .. fn)
    assert(type(ops.ref[fn .. '_backward']) == 'function' or fn == 'pixel_shuffle', 'fada.ops.ref.' .. fn .. '_backward')
  end
end)
