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
                        'activation', 'upsample_nearest', 'resize_nearest', 'resize_bilinear', 'avg_pool2d', 'pad',
                        'pixel_shuffle', 'embedding', 'loss'} do
    assert(seen[name], name .. ' is missing from the op list')
  end
end)

test('the nn reference kernels are bound in fada.ops.ref', function()
  for _, fn in ipairs{'group_norm', 'layer_norm', 'softmax', 'attention', 'silu', 'upsample_nearest', 'resize_nearest',
                      'resize_bilinear', 'avg_pool2d', 'pad', 'pixel_shuffle', 'embedding', 'mse_loss', 'l1_loss'} do
    assert(type(ops.ref[fn]) == 'function', 'fada.ops.ref.' .. fn)
    assert(type(ops.ref[fn .. '_backward']) == 'function' or fn == 'pixel_shuffle', 'fada.ops.ref.' .. fn .. '_backward')
  end
end)

test('option tables: a wrong type is an error naming the key (one set of getters for every binding)', function()
  local x = fada.randn(1, 4, 3, 3)
  local cases = {
    {function() ops.group_norm(x, 2, nil, nil, {silu = 1}) end, "option 'silu' must be a boolean, got number"},
    {function() ops.group_norm(x, 2, nil, nil, {eps = 'small'}) end, "option 'eps' must be a number, got string"},
    {function() ops.attention(fada.randn(1, 3, 4), fada.randn(1, 3, 4), fada.randn(1, 3, 4), {heads = 1.5}) end,
     "option 'heads' must be an integer, got number"},
    {function() ops.attention(fada.randn(1, 3, 4), fada.randn(1, 3, 4), fada.randn(1, 3, 4), {mask = 'all'}) end,
     "option 'mask' must be a tensor, got string"},
    {function() ops.mse_loss(x, x, {reduction = 3}) end, "option 'reduction' must be a string, got number"},
    {function() ops.conv2d(x, fada.randn(2, 4, 3, 3), nil, {ref = 'yes'}) end, "option 'ref' must be a boolean, got string"},
    {function() ops.matmul(fada.randn(2, 3), fada.randn(3, 2), {transpose_a = 0}) end,
     "option 'transpose_a' must be a boolean, got number"},
  }
  for i, c in ipairs(cases) do
    local ok, err = pcall(c[1])
    assert(not ok, 'case ' .. i .. ' did not fail')
    assert(tostring(err):find(c[2], 1, true), ('case %d: expected %q in %s'):format(i, c[2], tostring(err)))
  end
end)
