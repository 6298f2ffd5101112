-- Tensor math: elementwise ops, reductions, joining and indexing.
-- Every op is checked against plain Lua loops over t:tolist() (with
-- broadcasting and dtype rules written out here), closed forms, and, where
-- /usr/bin/python3 has torch, against PyTorch itself.
local fada = require 'fada'

local G = fada.Generator(20261126)

-- ---- reference helpers ------------------------------------------------------

local function num(v)
  if type(v) == 'boolean' then return v and 1 or 0 end
  return v
end

local function list(t)
  local l = t:tolist()
  for i = 1, #l do l[i] = num(l[i]) end
  return l
end

local function prod(shape)
  local n = 1
  for _, s in ipairs(shape) do n = n * s end
  return n
end

local function same_shape(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

local function shape_str(s) return '[' .. table.concat(s, ', ') .. ']' end

local isfloat = {f32 = true, f64 = true, f16 = true, bf16 = true}
local intrank = {bool = 0, u8 = 1, i32 = 2, i64 = 3}
local DTYPES = {'f32', 'f64', 'f16', 'bf16', 'i32', 'i64', 'u8', 'bool'}

-- torch's promotion rules, written out
local function promote(a, b)
  if a == b then return a end
  if isfloat[a] and not isfloat[b] then return a end
  if isfloat[b] and not isfloat[a] then return b end
  if not isfloat[a] then return intrank[a] >= intrank[b] and a or b end
  if a == 'f64' or b == 'f64' then return 'f64' end
  return 'f32'
end

-- A random tensor of a dtype: normals for floats, small integers otherwise.
local function rnd(shape, dt)
  dt = dt or 'f32'
  if dt == 'bool' then return fada.randint(0, 2, shape, 'i64', G):to('bool') end
  if dt == 'u8' then return fada.randint(0, 12, shape, 'u8', G) end
  if dt == 'i32' or dt == 'i64' then return fada.randint(-9, 10, shape, dt, G) end
  return fada.randn(shape, 'f64', G):to(dt)
end

local function bshape(a, b)
  local n, out = math.max(#a, #b), {}
  for i = 1, n do
    local da, db = a[i - (n - #a)] or 1, b[i - (n - #b)] or 1
    assert(da == db or da == 1 or db == 1, 'reference: shapes do not broadcast')
    out[i] = da == 1 and db or da
  end
  return out
end

-- The values of t broadcast to oshape, in row-major order.
local function bvalues(t, oshape)
  local l, s = list(t), t:size()
  local n, lead, res = #oshape, #oshape - #s, {}
  for flat = 0, prod(oshape) - 1 do
    local rem, idx, mult = flat, 0, 1
    for d = n, 1, -1 do
      local i = rem % oshape[d]
      rem = rem // oshape[d]
      local sd = d - lead
      if sd >= 1 then
        if s[sd] ~= 1 then idx = idx + i * mult end
        mult = mult * s[sd]
      end
    end
    res[flat + 1] = l[idx + 1]
  end
  return res
end

local function nan(x) return x ~= x end

local function tanh(x)
  if x > 20 then return 1 elseif x < -20 then return -1 end
  local e = math.exp(2 * x)
  return (e - 1) / (e + 1)
end

local function round_even(x)
  local f = math.floor(x)
  local d = x - f
  if d > 0.5 or (d == 0.5 and f % 2 == 1) then f = f + 1 end
  return f
end

local BIN = {
  add = function(x, y) return x + y end,
  sub = function(x, y) return x - y end,
  mul = function(x, y) return x * y end,
  div = function(x, y) return x / y end,
  pow = function(x, y) return (x + 0.0) ^ y end,
  maximum = function(x, y) return (nan(x) or x > y) and x or y end,
  minimum = function(x, y) return (nan(x) or x < y) and x or y end,
  remainder = function(x, y) return x - math.floor(x / y) * y end,
  eq = function(x, y) return x == y and 1 or 0 end,
  ne = function(x, y) return x ~= y and 1 or 0 end,
  lt = function(x, y) return x < y and 1 or 0 end,
  le = function(x, y) return x <= y and 1 or 0 end,
  gt = function(x, y) return x > y and 1 or 0 end,
  ge = function(x, y) return x >= y and 1 or 0 end,
}
local COMPARISON = {eq = true, ne = true, lt = true, le = true, gt = true, ge = true}

local UN = {
  neg = function(x) return -x end,
  exp = math.exp,
  log = math.log,
  sqrt = math.sqrt,
  rsqrt = function(x) return 1 / math.sqrt(x) end,
  abs = math.abs,
  tanh = tanh,
  sigmoid = function(x) return 1 / (1 + math.exp(-x)) end,
  sin = math.sin,
  cos = math.cos,
  floor = math.floor,
  round = round_even,
  sign = function(x) return x > 0 and 1 or x < 0 and -1 or 0 end,
}
local POSITIVE_ONLY = {log = true, sqrt = true, rsqrt = true}

-- What storing the exact value v into dtype dt gives (for integer results).
local function as_dtype(v, dt)
  if dt == 'bool' then return v ~= 0 and 1 or 0 end
  if isfloat[dt] then return v end
  if v ~= v then return 0 end
  local t = v < 0 and math.ceil(v) or math.floor(v)
  if dt == 'u8' then t = t % 256 end         -- integer arithmetic wraps, as torch's
  return t
end

local TOL = {f64 = 1e-12, f32 = 2e-6, f16 = 2e-3, bf16 = 1.6e-2, i32 = 0, i64 = 0, u8 = 0, bool = 0}

-- got (a tensor) against expected values (a list) for dtype dt
local function check_values(got, expected, dt, what)
  local tol = TOL[dt]
  local l = list(got)
  assert_eq(#l, #expected, (what or '') .. ' element count')
  for i = 1, #l do
    local e = as_dtype(expected[i], dt)
    local a = l[i]
    local ok = (a == e) or (nan(a) and nan(e)) or math.abs(a - e) <= tol * (1 + math.abs(e))
    if not ok then
      error(('%s: element %d: %.9g vs expected %.9g (%s)'):format(what or '?', i, a, e, dt), 2)
    end
  end
end

-- fada.op(a, b) against the Lua reference (a and b tensors or numbers).
local function check_binary(op, a, b, what)
  what = what or op
  local got = fada[op](a, b)
  local ta, tb = fada.is_tensor(a), fada.is_tensor(b)
  local sa, sb = ta and a:size() or {}, tb and b:size() or {}
  local oshape = bshape(sa, sb)
  assert_eq(shape_str(got:size()), shape_str(oshape), what .. ' shape')
  local n = prod(oshape)
  local va = ta and bvalues(a, oshape) or nil
  local vb = tb and bvalues(b, oshape) or nil
  local expected = {}
  for i = 1, n do
    expected[i] = BIN[op](ta and va[i] or num(a), tb and vb[i] or num(b))
  end
  -- dtype rules: scalars do not promote float tensors
  local dt
  if ta and tb then dt = promote(a:dtype(), b:dtype())
  else
    local t, s = ta and a or b, ta and b or a
    dt = t:dtype()
    if not isfloat[dt] then
      if math.type(s) == 'float' then dt = 'f32' elseif dt == 'bool' then dt = 'i64' end
    end
  end
  if COMPARISON[op] then dt = 'bool' elseif op == 'div' and not isfloat[dt] then dt = 'f32' end
  assert_eq(got:dtype(), dt, what .. ' dtype')
  check_values(got, expected, dt, what)
  return got
end

local function check_unary(op, a, what)
  what = what or op
  local got = fada[op](a)
  local dt = a:dtype()
  if not isfloat[dt] and not ({neg = 1, abs = 1, floor = 1, round = 1, sign = 1})[op] then dt = 'f32' end
  assert_eq(got:dtype(), dt, what .. ' dtype')
  assert_eq(shape_str(got:size()), shape_str(a:size()), what .. ' shape')
  local expected = {}
  for i, x in ipairs(list(a)) do expected[i] = UN[op](x) end
  check_values(got, expected, dt, what)
end

-- Views that are not contiguous, for every test that cares.
local function noncontig(shape, dt)
  -- transpose of a [shape[2], shape[1]] tensor
  return rnd({shape[2], shape[1]}, dt):t()
end

-- ---- binary ops ------------------------------------------------------------

local ALLBIN = {'add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'remainder',
                'eq', 'ne', 'lt', 'le', 'gt', 'ge'}

test('binary ops, contiguous f32 (the fast path)', function()
  for _, op in ipairs(ALLBIN) do
    local a, b = rnd({5, 7}), rnd({5, 7})
    if op == 'pow' then a = a:abs() + 0.5 end
    check_binary(op, a, b)
  end
end)

test('binary ops over the thread threshold (40000 elements)', function()
  local a, b = rnd({200, 200}), rnd({200, 200})
  for _, op in ipairs({'add', 'mul', 'div', 'maximum', 'gt'}) do check_binary(op, a, b, op .. ' 40000') end
  check_binary('sub', a, rnd({200}), 'sub row broadcast 40000')
  check_binary('mul', a, rnd({200, 1}), 'mul column broadcast 40000')
  check_binary('add', a:t(), b, 'add transposed 40000')
end)

test('binary broadcasting: rows, columns, scalars-as-tensors, 3-d', function()
  local cases = {
    {{5, 7}, {7}}, {{5, 7}, {5, 1}}, {{5, 1}, {1, 7}}, {{3, 1, 4}, {2, 1}}, {{1}, {4, 3}},
    {{}, {2, 3}}, {{2, 3}, {}}, {{2, 1, 3, 1}, {4, 1, 5}}, {{0, 3}, {3}},
  }
  for _, c in ipairs(cases) do
    for _, op in ipairs({'add', 'sub', 'div', 'minimum', 'le'}) do
      check_binary(op, rnd(c[1]), rnd(c[2]), op .. ' ' .. shape_str(c[1]) .. ' ' .. shape_str(c[2]))
    end
  end
end)

test('channel broadcasts over 4-d tensors (walked fast path)', function()
  check_binary('mul', rnd({2, 3, 4, 5}), rnd({1, 3, 1, 1}), 'mul [2,3,4,5] x [1,3,1,1]')
  check_binary('add', rnd({2, 3, 4, 5}), rnd({3, 1, 5}), 'add [2,3,4,5] + [3,1,5]')
  check_binary('sub', rnd({3, 1, 1}), rnd({2, 3, 4, 5}), 'sub [3,1,1] - [2,3,4,5]')
  check_binary('div', rnd({4, 8, 32, 40}), rnd({1, 8, 1, 1}), 'div over threads [4,8,32,40] / [1,8,1,1]')
  check_binary('maximum', rnd({2, 6, 7, 9}):narrow(4, 2, 6), rnd({6, 1, 1}), 'maximum narrowed x channel')
  check_unary('sigmoid', rnd({4, 8, 32, 41}):narrow(4, 1, 40), 'sigmoid of a narrowed 4-d view')
end)

test('binary ops on views: transpose, narrow, expand, select', function()
  local base = rnd({6, 8})
  local tr = base:t()                            -- [8, 6] strides (1, 8)
  local nar = base:narrow(2, 3, 4)               -- [6, 4]
  local ex = rnd({1, 4}):expand(6, 4)            -- stride 0 rows
  local sel = rnd({3, 5, 6}):select(2, 2)        -- [3, 6]
  for _, op in ipairs(ALLBIN) do
    local p = op == 'pow' and nar:abs() + 0.1 or nar
    check_binary(op, p, ex, op .. ' narrow x expand')
    check_binary(op, tr:narrow(1, 2, 3), sel, op .. ' transposed x selected')
    check_binary(op, tr, rnd({6}), op .. ' transposed x row')
  end
end)

test('transposed operands (the tiled walk): ragged tiles, batches, mixed dtypes', function()
  check_binary('add', rnd({37, 53}):t(), rnd({53, 37}), 'add [53, 37] transposed + contiguous')
  check_binary('sub', rnd({300, 40}):t(), rnd({300}), 'sub [40, 300] transposed - row (two column blocks)')
  check_binary('mul', rnd({3, 20, 300}):transpose(2, 3), rnd({300, 20}), 'mul batched transpose')
  check_binary('maximum', rnd({64, 48}, 'i32'):t(), rnd({48, 64}, 'bf16'), 'maximum i32^T x bf16')
  check_binary('lt', rnd({300, 200}):t(), rnd({200, 1}), 'lt [200, 300] transposed over threads')
  check_unary('exp', rnd({40, 30}):t(), 'exp of a transpose (tiled unary)')
  local c, a = rnd({20, 30}, 'bool'):t(), rnd({30, 20})
  local w = fada.where(c, a, a:neg())
  local vc, va, e = list(c), list(a), {}
  for i = 1, #va do e[i] = vc[i] ~= 0 and va[i] or -va[i] end
  check_values(w, e, 'f32', 'where with a transposed condition')
end)

test('binary dtype promotion over every pair of dtypes', function()
  for _, da in ipairs(DTYPES) do
    for _, db in ipairs(DTYPES) do
      local a, b = rnd({3, 4}, da), rnd({4}, db)
      for _, op in ipairs({'add', 'mul', 'maximum', 'minimum', 'eq', 'lt', 'ge'}) do
        check_binary(op, a, b, ('%s %s x %s'):format(op, da, db))
      end
      if da ~= 'bool' and db ~= 'bool' and da ~= 'u8' and db ~= 'u8' then
        check_binary('sub', a, b, ('sub %s x %s'):format(da, db))
        local nz = fada.where(b:eq(0), 1, b)    -- no division by zero for integers
        check_binary('div', a, nz, ('div %s x %s'):format(da, db))
        if isfloat[da] or isfloat[db] then check_binary('remainder', a, nz, ('remainder %s x %s'):format(da, db)) end
      end
    end
  end
  -- the rules spelled out, as torch states them
  local function dt(a, b) return fada.add(fada.zeros(1, a), fada.zeros(1, b)):dtype() end
  assert_eq(dt('i32', 'f32'), 'f32'); assert_eq(dt('bf16', 'f16'), 'f32'); assert_eq(dt('u8', 'bool'), 'u8')
  assert_eq(dt('i32', 'i64'), 'i64'); assert_eq(dt('f16', 'f64'), 'f64'); assert_eq(dt('bool', 'bool'), 'bool')
  assert_eq(fada.div(fada.ones(2, 'i32'), fada.ones(2, 'i32')):dtype(), 'f32', 'integer division is true division')
end)

test('integer ops stay exact: remainder and pow of integers', function()
  local a = fada.tensor({-7, -3, 0, 3, 7, 9}, 'i64')
  local b = fada.tensor({2, -2, 5, -4, 3, 2}, 'i64')
  check_binary('remainder', a, b)
  assert_close(fada.remainder(a, b), {1, -1, 0, -1, 1, 1}, 0, 0, 'sign of the divisor')
  local p = fada.pow(fada.tensor({3, 5, 7}, 'i64'), fada.tensor({2, 3, 4}, 'i64'))
  assert_eq(p:dtype(), 'i64')
  assert_close(p, {9, 125, 2401}, 0, 0)
end)

test('integer arithmetic is exact in int64 and wraps like torch', function()
  local big = fada.tensor({0}, 'i64') + (1 << 53)
  assert_eq((big + 1):get(1), (1 << 53) + 1, '2^53 + 1 stays exact')
  assert_eq((big * 3 - 1):get(1), 3 * (1 << 53) - 1)
  assert_eq(big:add(1):gt(big):get(1), true, 'comparisons see the last bit')
  assert_eq(fada.maximum(big + 1, big):get(1), (1 << 53) + 1)
  assert_eq((fada.tensor({math.maxinteger}, 'i64') + 1):get(1), math.mininteger, 'i64 wraps')
  assert_close(fada.tensor({1, 250}, 'u8') - fada.tensor({3, 0}, 'u8'), {254, 250}, 0, 0, 'u8 wraps below 0')
  assert_close(fada.tensor({200}, 'u8') + 100, {44}, 0, 0, 'u8 wraps above 255')
  assert_close(fada.tensor({2147483647}, 'i32') + 1, {-2147483648}, 0, 0, 'i32 wraps')
  assert_close(fada.pow(fada.tensor({2, 1, -1, 3}, 'i64'), fada.tensor({62, -3, -3, -1}, 'i64')),
               {1 << 62, 1, -1, 0}, 0, 0, 'integer powers, negative exponents truncate')
  assert_close(fada.tensor({7, -7}, 'i64') % 0, {0, 0}, 0, 0, 'remainder by 0 is 0 (torch raises)')
  local f = fada.zeros(2, 'f64')
  fada.add(big, fada.tensor({1, 2}, 'i64'), f)
  assert_close(f, {(1 << 53) + 1.0, (1 << 53) + 2.0}, 0, 0, 'i64 result into an f64 out')
end)

test('scalars on either side, and their dtype rules', function()
  local a = rnd({3, 4})
  for _, op in ipairs(ALLBIN) do
    local p = op == 'pow' and a:abs() + 0.2 or a
    check_binary(op, p, 1.5, op .. ' t, 1.5')
    check_binary(op, 2.5, p, op .. ' 2.5, t')
    check_binary(op, p, 3, op .. ' t, 3')
  end
  local i = rnd({3, 4}, 'i32')
  check_binary('add', i, 2, 'i32 + 2 stays i32')
  check_binary('mul', i, 0.5, 'i32 * 0.5 is f32')
  check_binary('sub', 10, i, '10 - i32')
  check_binary('add', rnd({5}, 'bool'), 1, 'bool + 1 is i64')
  check_binary('add', rnd({5}, 'f16'), 1.5, 'f16 + 1.5 stays f16')
  check_binary('mul', rnd({5}, 'bf16'), 3, 'bf16 * 3 stays bf16')
  check_binary('add', rnd({5}, 'u8'), 3, 'u8 + 3 stays u8')
  check_binary('mul', rnd({5}, 'f64'), 1 / 3, 'f64 keeps the scalar in double')
  check_binary('eq', rnd({6}, 'bool'), true, 'bool eq true')
end)

test('operators + - * / ^ % and unary minus, numbers on either side', function()
  local a, b = rnd({2, 3}), rnd({3})
  assert_close(a + b, fada.add(a, b), 0, 0, '+')
  assert_close(a - b, fada.sub(a, b), 0, 0, '-')
  assert_close(a * b, fada.mul(a, b), 0, 0, '*')
  assert_close(a / b, fada.div(a, b), 0, 0, '/')
  assert_close(a:abs() ^ b, fada.pow(a:abs(), b), 0, 0, '^')
  assert_close(a % b, fada.remainder(a, b), 0, 0, '%')
  assert_close(-a, fada.neg(a), 0, 0, 'unary minus')
  check_values(2 - a, (function() local e = {} for i, x in ipairs(list(a)) do e[i] = 2 - x end return e end)(), 'f32', '2 - a')
  check_values(1 / a, (function() local e = {} for i, x in ipairs(list(a)) do e[i] = 1 / x end return e end)(), 'f32', '1 / a')
  check_values(2 ^ a, (function() local e = {} for i, x in ipairs(list(a)) do e[i] = 2 ^ x end return e end)(), 'f32', '2 ^ a')
  check_values(a * 3 + 1, (function() local e = {} for i, x in ipairs(list(a)) do e[i] = x * 3 + 1 end return e end)(), 'f32', 'a * 3 + 1')
  -- == is identity (t:eq(u) compares values); < and <= are not defined
  local c = a:clone()
  assert_eq(a == a, true, 'a == a')
  assert_eq(a == c, false, 'a == a:clone() (identity)')
  checkerror(function() return a < c end, 'attempt to compare')
  checkerror(function() return a <= c end, 'attempt to compare')
end)

test('in-place ops: values, returned self, shared storage, version', function()
  for _, op in ipairs({'add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'remainder'}) do
    local a, b = rnd({4, 5}):abs() + 0.5, rnd({5})
    local expected = fada[op](a, b)
    local v0 = a:version()
    local r = a[op .. '_'](a, b)
    assert_eq(r, a, op .. '_ returns self')
    assert(a:version() > v0, op .. '_ bumps the version')
    assert_close(a, expected, 0, 0, op .. '_')
  end
  -- writes through a non-contiguous view into its base
  local base = fada.zeros(3, 4)
  base:t():add_(fada.arange(3):to('f32'))
  assert_close(base, {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2}, 0, 0, 'add_ through a transpose')
  -- scalar in place; integer tensor with an integral scalar
  local i = fada.tensor({1, 2, 3}, 'i32')
  i:mul_(4):sub_(1)
  assert_close(i, {3, 7, 11}, 0, 0, 'i32 mul_ sub_')
  -- an input aliasing the output in another layout is read before it is overwritten
  local m = rnd({6, 6})
  local expected = m + m:t()
  m:add_(m:t())
  assert_close(m, expected, 0, 0, 'm:add_(m:t())')
  local big = rnd({200, 200})
  local expected2 = big + big:t()
  big:add_(big:t())
  assert_close(big, expected2, 0, 0, 'big:add_(big:t()) over threads')
  -- unary in place
  local u = rnd({3, 3})
  local e = u:exp()
  assert_eq(u:exp_(), u)
  assert_close(u, e, 0, 0, 'exp_')
  local c = rnd({7})
  local ce = c:clamp(-0.5, 0.5)
  c:clamp_(-0.5, 0.5)
  assert_close(c, ce, 0, 0, 'clamp_')
end)

test('out= variant writes into a given tensor', function()
  local a, b, out = rnd({3, 4}), rnd({4}), fada.empty(3, 4)
  local v0 = out:version()
  local r = fada.add(a, b, out)
  assert_eq(r, out)
  assert(out:version() > v0, 'out version bumped')
  check_values(out, (function()
    local va, vb, e = bvalues(a, {3, 4}), bvalues(b, {3, 4}), {}
    for i = 1, 12 do e[i] = va[i] + vb[i] end
    return e
  end)(), 'f32', 'add out=')
  local o64 = fada.empty({3, 4}, 'f64')
  fada.mul(a, 2, o64)
  assert_close(o64, a * 2, 1e-7, 0, 'mul into an f64 out')
  local ob = fada.empty(3, 4, 'bool')
  fada.gt(a, 0, ob)
  assert_close(ob, a:gt(0), 0, 0, 'gt into a bool out')
  local oe = fada.empty(3, 4)
  fada.exp(a, oe)
  assert_close(oe, a:exp(), 0, 0, 'exp out=')
end)

-- ---- unary ops ---------------------------------------------------------------

test('unary ops on f32, f64, f16, bf16, views', function()
  for op in pairs(UN) do
    for _, dt in ipairs({'f32', 'f64', 'f16', 'bf16'}) do
      local a = rnd({4, 6}, dt) * 2
      if POSITIVE_ONLY[op] then a = a:abs() + 0.1 end
      check_unary(op, a, op .. ' ' .. dt)
    end
    local v = noncontig({5, 3})
    if POSITIVE_ONLY[op] then v = v:abs():t():t() + 0 end
    check_unary(op, POSITIVE_ONLY[op] and v or v, op .. ' transposed')
    local big = rnd({200, 201})
    if POSITIVE_ONLY[op] then big = big:abs() + 0.1 end
    check_unary(op, big:narrow(2, 2, 199), op .. ' 40000 narrow')
    check_unary(op, POSITIVE_ONLY[op] and big or big, op .. ' 40200 contiguous')
  end
end)

test('f32 exp and sigmoid (own vectorised exp): dense grid, extremes, subnormals', function()
  local x = fada.linspace(-110, 95, 200001)          -- f32 grid, spacing ~1e-3
  local e = x:exp()
  local lx, le = list(x), list(e)
  local worst = 0
  for i, v in ipairs(lx) do
    local ref = math.exp(v)
    if ref > 3.4028234663852886e38 then
      assert(le[i] == math.huge, ('exp(%.9g) = %.9g, expected inf'):format(v, le[i]))
    elseif ref >= 1.1754943508222875e-38 then     -- normal results: relative error in ulps
      worst = math.max(worst, math.abs(le[i] - ref) / ref)
    else                                          -- subnormal results: absolute, a few units of 2^-149
      assert(math.abs(le[i] - ref) <= 4 * 1.401298464324817e-45, ('exp(%.9g) = %.9g vs %.9g'):format(v, le[i], ref))
    end
  end
  assert(worst < 3e-7, ('exp: worst relative error %.3g (> 2.5 ulp)'):format(worst))
  local special = fada.tensor({-math.huge, math.huge, 0, 88.72, -87.3, -103.9, -104, 89})
  local se, sx = list(special:exp()), list(special)   -- references from the f32 inputs
  assert_eq(se[1], 0.0); assert_eq(se[2], math.huge); assert_eq(se[3], 1.0)
  assert_close(se[4], math.exp(sx[4]), 0, 3e-7, 'exp(88.72) just below FLT_MAX')
  assert_close(se[5], math.exp(sx[5]), 0, 3e-7, 'exp(-87.3) near the smallest normal')
  assert_eq(se[7], 0.0, 'exp(-104) underflows to 0'); assert_eq(se[8], math.huge, 'exp(89) overflows')
  local sg = fada.tensor({-200, -50, 0, 50, 200}):sigmoid()
  assert_close(sg, {0, 1 / (1 + math.exp(50)), 0.5, 1, 1}, 1e-30, 1e-6, 'sigmoid tails')
end)

test('unary ops on integers: float functions give f32, others keep the dtype', function()
  local i = fada.tensor({-3, -1, 0, 2, 5}, 'i32')
  for op in pairs(UN) do
    local a = POSITIVE_ONLY[op] and fada.tensor({1, 2, 4, 9, 16}, 'i64') or i
    check_unary(op, a, op .. ' int')
  end
  check_unary('abs', fada.tensor({0, 7, 255}, 'u8'), 'abs u8')
end)

test('round is half to even; sign keeps 0; NaN passes through', function()
  assert_close(fada.tensor({-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 2.6}):round(), {-2, -2, 0, 0, 2, 2, 3}, 0, 0)
  assert_close(fada.tensor({-3, 0, 0.1}):sign(), {-1, 0, 1}, 0, 0)
  local n = fada.tensor({0 / 0, 1})
  for _, op in ipairs({'exp', 'abs', 'tanh', 'sigmoid', 'floor', 'round', 'sign', 'neg'}) do
    assert(nan(fada[op](n):get(1)), op .. '(NaN) is NaN')
  end
  assert(nan(n:clamp(0, 0.5):get(1)), 'clamp(NaN) is NaN')
  assert(nan(fada.maximum(n, 0):get(1)) and nan(fada.minimum(0, n):get(1)), 'NaN wins maximum and minimum')
end)

test('clamp: both bounds, one bound, integers', function()
  local a = rnd({4, 5}) * 3
  local function ref(lo, hi)
    local e = {}
    for i, x in ipairs(list(a)) do
      if lo and x < lo then x = lo end
      if hi and x > hi then x = hi end
      e[i] = x
    end
    return e
  end
  check_values(a:clamp(-1, 1), ref(-1, 1), 'f32', 'clamp(-1, 1)')
  check_values(a:clamp(0), ref(0, nil), 'f32', 'clamp(0)')
  check_values(a:clamp(nil, 0.5), ref(nil, 0.5), 'f32', 'clamp(nil, 0.5)')
  check_values(a:t():clamp(-1, 1), (function() local b = a:t():contiguous() local e = {} for i, x in ipairs(list(b)) do e[i] = math.max(-1, math.min(1, x)) end return e end)(), 'f32', 'clamp transposed')
  local i = fada.tensor({-5, 0, 5, 9}, 'i32')
  local ci = i:clamp(-2, 6)
  assert_eq(ci:dtype(), 'i32')
  assert_close(ci, {-2, 0, 5, 6}, 0, 0)
  assert_eq(i:clamp(-2.5, 6):dtype(), 'f32', 'fractional bound on integers gives f32')
end)

-- ---- where -------------------------------------------------------------------

test('where: tensors, scalars, broadcasting, dtypes', function()
  local c, a, b = rnd({3, 1}, 'bool'), rnd({3, 4}), rnd({4}, 'f64')
  local w = fada.where(c, a, b)
  assert_eq(w:dtype(), 'f64')
  local vc, va, vb, e = bvalues(c, {3, 4}), bvalues(a, {3, 4}), bvalues(b, {3, 4}), {}
  for i = 1, 12 do e[i] = vc[i] ~= 0 and va[i] or vb[i] end
  check_values(w, e, 'f64', 'where tensors')
  local w2 = fada.where(a:gt(0), a, 0)
  assert_eq(w2:dtype(), 'f32')
  e = {}
  for i, x in ipairs(list(a)) do e[i] = x > 0 and x or 0 end
  check_values(w2, e, 'f32', 'where(a > 0, a, 0)')
  local w3 = fada.where(a:t():lt(0), -1, 1)
  assert_eq(w3:dtype(), 'i64', 'two integer scalars give i64')
  e = {}
  for i, x in ipairs(list(a:t())) do e[i] = x < 0 and -1 or 1 end
  check_values(w3, e, 'i64', 'where of two scalars')
  assert_eq(fada.where(c, 1.5, 0):dtype(), 'f32')
  local ci = fada.where(c, fada.ones(3, 4, 'i32'), 0.5)
  assert_eq(ci:dtype(), 'f32', 'i32 tensor with a fractional scalar gives f32')
end)

-- ---- reductions --------------------------------------------------------------

-- Groups the elements of t by the kept dims (dims: set of 1-based dims, or nil for all).
local function groups(t, dims)
  local s, l = t:size(), list(t)
  local n = #s
  local kept, oshape, oshape_keep = {}, {}, {}
  for d = 1, n do
    if dims and not dims[d] then
      kept[#kept + 1] = d
      oshape[#oshape + 1] = s[d]
      oshape_keep[d] = s[d]
    else
      oshape_keep[d] = 1
    end
  end
  local g = {}
  for m = 1, prod(oshape) do g[m] = {} end
  for flat = 0, #l - 1 do
    local rem, idx = flat, {}
    for d = n, 1, -1 do idx[d] = rem % s[d]; rem = rem // s[d] end
    local m, mult = 0, 1
    for k = #kept, 1, -1 do m = m + idx[kept[k]] * mult; mult = mult * s[kept[k]] end
    local grp = g[m + 1]
    grp[#grp + 1] = l[flat + 1]
  end
  return g, oshape, oshape_keep
end

local RED = {
  sum = function(g) local s = 0 for _, x in ipairs(g) do s = s + x end return s end,
  prod = function(g) local s = 1 for _, x in ipairs(g) do s = s * x end return s end,
  max = function(g) local b, bi = g[1], 1 for i, x in ipairs(g) do if x > b then b, bi = x, i end end return b, bi end,
  min = function(g) local b, bi = g[1], 1 for i, x in ipairs(g) do if x < b then b, bi = x, i end end return b, bi end,
}
RED.mean = function(g) return RED.sum(g) / #g end
RED.argmax = function(g) local _, i = RED.max(g) return i end
RED.argmin = function(g) local _, i = RED.min(g) return i end
-- two passes, as a statistician would write it
RED.var = function(g, unbiased)
  local m = RED.mean(g)
  local s = 0
  for _, x in ipairs(g) do s = s + (x - m) ^ 2 end
  return s / (#g - (unbiased == false and 0 or 1))
end
RED.std = function(g, unbiased) return math.sqrt(RED.var(g, unbiased)) end
local function pnorm(g, p)
  if p == math.huge then local b = 0 for _, x in ipairs(g) do b = math.max(b, math.abs(x)) end return b end
  local s = 0
  for _, x in ipairs(g) do s = s + math.abs(x) ^ p end
  return s ^ (1 / p)
end

local function out_dtype(op, dt)
  if op == 'sum' or op == 'prod' then return isfloat[dt] and dt or 'i64' end
  if op == 'argmax' or op == 'argmin' then return 'i64' end
  if op == 'max' or op == 'min' then return dt end
  return isfloat[dt] and dt or 'f32'
end

-- t:op(dims, keepdim) against the grouped reference
local function check_reduce(op, t, dims, keepdim, what)
  what = what or op
  local set
  if type(dims) == 'number' then set = {[dims > 0 and dims or t:dim() + 1 + dims] = true}
  elseif type(dims) == 'table' then set = {} for _, d in ipairs(dims) do set[d] = true end end
  local got
  if op == 'var' or op == 'std' then got = t[op](t, dims, true, keepdim)
  else got = t[op](t, dims, keepdim) end
  local g, oshape, oshape_keep = groups(t, set)
  assert_eq(shape_str(got:size()), shape_str(keepdim and oshape_keep or oshape), what .. ' shape')
  local dt = out_dtype(op, t:dtype())
  assert_eq(got:dtype(), dt, what .. ' dtype')
  local e = {}
  for m, grp in ipairs(g) do e[m] = RED[op](grp) end
  check_values(got, e, dt, what)
end

test('reductions over all, each dim, dim lists, keepdim, on views', function()
  local tensors = {
    {'contiguous', rnd({3, 4, 5})},
    {'permuted', rnd({5, 3, 4}):permute(2, 3, 1)},
    {'narrowed', rnd({3, 9, 5}):narrow(2, 3, 4)},
    {'expanded', rnd({3, 1, 5}):expand(3, 4, 5)},
  }
  for _, op in ipairs({'sum', 'mean', 'prod', 'argmax', 'argmin', 'var', 'std'}) do
    for _, tc in ipairs(tensors) do
      local name, t = tc[1], tc[2]
      check_reduce(op, t, nil, false, op .. ' all ' .. name)
      for _, d in ipairs({1, 2, 3, -1}) do
        check_reduce(op, t, d, false, op .. ' dim ' .. d .. ' ' .. name)
        check_reduce(op, t, d, true, op .. ' dim ' .. d .. ' keepdim ' .. name)
      end
      check_reduce(op, t, {1, 3}, false, op .. ' dims {1,3} ' .. name)
      check_reduce(op, t, {2, 3}, true, op .. ' dims {2,3} keepdim ' .. name)
    end
  end
end)

test('reductions across memory (the column path): contiguous kept dims, any position', function()
  local cases = {
    {'[6, 9, 10] over dim 1', rnd({6, 9, 10}), 1},
    {'[6, 9, 10] over dims {1, 2}', rnd({6, 9, 10}), {1, 2}},
    {'permuted, contiguous dim first', rnd({6, 9, 10}):permute(3, 1, 2), 2},
    {'permuted, contiguous dim in the middle', rnd({6, 9, 10}):permute(2, 3, 1), {1}},
    {'300 columns (two blocks)', rnd({7, 300}), 1},
    {'transposed [300, 7] over dim 2', rnd({7, 300}):t(), 2},
  }
  for _, c in ipairs(cases) do
    for _, op in ipairs({'sum', 'mean', 'prod', 'argmax', 'argmin', 'var', 'std'}) do
      check_reduce(op, c[2], c[3], false, op .. ' ' .. c[1])
      check_reduce(op, c[2], c[3], true, op .. ' keepdim ' .. c[1])
    end
    local t, d = c[2], c[3]
    if type(d) == 'number' then
      local v, i = t:max(d)
      local g = groups(t, {[d] = true})
      local ev, ei = {}, {}
      for m, grp in ipairs(g) do ev[m], ei[m] = RED.max(grp) end
      check_values(v, ev, 'f32', 'max values ' .. c[1])
      check_values(i, ei, 'i64', 'max indices ' .. c[1])
      for _, p in ipairs({1, 3, math.huge}) do
        local e = {}
        for m, grp in ipairs(g) do e[m] = pnorm(grp, p) end
        check_values(t:norm(p, d), e, 'f32', 'norm ' .. p .. ' ' .. c[1])
      end
    end
  end
  local big = rnd({64, 1024})     -- over the thread threshold
  check_reduce('sum', big, 1, false, 'sum over rows of [64, 1024]')
  check_reduce('var', big:t(), 2, false, 'var of the transpose')
end)

test('max/min: values and 1-based indices, first of ties, whole-tensor form', function()
  local t = rnd({4, 6})
  for _, op in ipairs({'max', 'min'}) do
    for _, d in ipairs({1, 2}) do
      local v, i = t[op](t, d)
      local g = groups(t, {[d] = true})
      local ev, ei = {}, {}
      for m, grp in ipairs(g) do ev[m], ei[m] = RED[op](grp) end
      check_values(v, ev, 'f32', op .. ' values dim ' .. d)
      assert_eq(i:dtype(), 'i64')
      check_values(i, ei, 'i64', op .. ' indices dim ' .. d)
    end
    local whole = t[op](t)
    assert_eq(whole:dim(), 0, op .. '() is 0-d')
    local e = RED[op](list(t))
    assert_close(whole:item(), e, 0, 0, op .. '()')
  end
  local ties = fada.tensor({{1, 3, 3, 0}, {2, 2, 2, 2}})
  local _, i = ties:max(2)
  assert_close(i, {2, 1}, 0, 0, 'first maximum wins')
  local am = ties:argmin(2, true)
  assert_eq(shape_str(am:size()), '[2, 1]', 'argmin keepdim shape')
  assert_close(am, {4, 1}, 0, 0, 'argmin keepdim')
  assert_eq(ties:argmax():item(), 2, 'argmax over all: flat 1-based index')
  local n = fada.tensor({1, 0 / 0, 5})
  assert(nan(n:max():item()) and nan(n:min():item()), 'NaN wins max and min')
  assert_eq(n:argmax():item(), 2, 'argmax points at the NaN')
  -- max with a tensor is the elementwise maximum
  local a, b = rnd({3}), rnd({3})
  assert_close(a:max(b), fada.maximum(a, b), 0, 0, 't:max(u)')
  assert_close(a:min(b), fada.minimum(a, b), 0, 0, 't:min(u)')
end)

test('reductions of integer and low-precision dtypes', function()
  for _, dt in ipairs({'i32', 'i64', 'u8', 'bool', 'f16', 'bf16', 'f64'}) do
    local t = rnd({4, 5}, dt)
    for _, op in ipairs({'sum', 'mean', 'max', 'min', 'argmax', 'std'}) do
      check_reduce(op, t, nil, false, op .. ' ' .. dt)
      check_reduce(op, t, 2, false, op .. ' dim 2 ' .. dt)
    end
  end
  assert_eq(fada.tensor({true, true, false}, 'bool'):sum():item(), 2, 'sum of bool counts')
  -- integer sums and products are exact in int64
  local big = fada.tensor({0, 1, 1}, 'i64') + (1 << 53)
  assert_eq(big:sum():item(), 3 * (1 << 53) + 2, 'i64 sum beyond 2^53')
  assert_eq(fada.tensor({1 << 31, 1 << 31}, 'i64'):prod():item(), 1 << 62, 'i64 prod')
  local cols = fada.ones(3, 8, 'i64') + (1 << 60)       -- the column path
  local cs = cols:sum(1)
  assert_eq(cs:get(8), 3 * (1 << 60) + 3, 'column sums exact')
  assert_eq(cols:t():sum(2):get(1), 3 * (1 << 60) + 3, 'transposed column sums exact')
  assert_eq(fada.zeros(0, 'i32'):prod():item(), 1, 'empty integer product')
end)

test('var and std: unbiased by default, biased on request', function()
  local t = rnd({6, 7})
  for _, d in ipairs({1, 2}) do
    local g = groups(t, {[d] = true})
    local eu, eb, su = {}, {}, {}
    for m, grp in ipairs(g) do eu[m], eb[m], su[m] = RED.var(grp), RED.var(grp, false), RED.std(grp) end
    check_values(t:var(d), eu, 'f32', 'var unbiased')
    check_values(t:var(d, false), eb, 'f32', 'var biased')
    check_values(t:std(d), su, 'f32', 'std unbiased')
  end
  assert_close(fada.tensor({2, 4, 4, 4, 5, 5, 7, 9}):std(nil, false):item(), 2, 1e-6, 0, 'textbook std = 2')
  assert(nan(fada.tensor({3}):var():item()), 'unbiased var of one element is NaN')
  -- two-pass keeps precision where a one-pass formula loses it
  local shifted = rnd({1000}, 'f64') + 1e8
  local g = list(shifted)
  assert_close(shifted:var():item(), RED.var(g), 1e-6, 1e-9, 'var around 1e8')
end)

test('norm: p = 2 (default), 1, inf, 3; over dims', function()
  local t = rnd({4, 5})
  local l = list(t)
  assert_close(t:norm():item(), pnorm(l, 2), 1e-6, 1e-6, 'norm 2')
  assert_close(t:norm(1):item(), pnorm(l, 1), 1e-6, 1e-6, 'norm 1')
  assert_close(t:norm('inf'):item(), pnorm(l, math.huge), 0, 0, 'norm inf')
  assert_close(t:norm(math.huge):item(), pnorm(l, math.huge), 0, 0, 'norm math.huge')
  assert_close(t:norm(3):item(), pnorm(l, 3), 1e-6, 1e-6, 'norm 3')
  for _, p in ipairs({1, 2, 3, math.huge}) do
    local g = groups(t:t(), {[2] = true})
    local e = {}
    for m, grp in ipairs(g) do e[m] = pnorm(grp, p) end
    check_values(t:t():norm(p, 2), e, 'f32', 'norm p=' .. p .. ' dim 2 of a transpose')
  end
  assert_close(fada.tensor({3, 4}):norm(2, 1, true), {5}, 1e-6, 0, 'keepdim')
end)

test('closed forms: sum of arange = n(n-1)/2 (10^7 elements, threads)', function()
  local n = 10000000
  local e = n * (n - 1) // 2
  local i = fada.arange(n)
  assert_eq(i:dtype(), 'i64')
  assert_eq(i:sum():item(), e, 'i64 sum exact')
  local f = i:to('f32')
  local s = f:sum():item()
  -- a float accumulator would be off by ~1e-3 relative; double gives f32 rounding only
  assert(math.abs(s - e) <= 1e-7 * e, ('f32 sum %.17g vs %d'):format(s, e))
  assert_close(f:mean():item(), (n - 1) / 2, 0, 1e-7, 'mean of arange')
  -- many outputs and few: sum over dims of a [2, n/2] view, both ways
  local v = f:view(2, n // 2)
  local h = n // 2
  assert_close(v:sum(2), {h * (h - 1) / 2, h * (h - 1) / 2 + h * h}, 0, 1e-7, 'row sums')
  local cs = v:sum(1)
  assert_close(cs:narrow(1, 1, 3), {h, h + 2, h + 4}, 0, 1e-7, 'column sums')
  -- variance of 0..n-1 is n(n+1)/12 (unbiased)
  assert_close(f:var():item(), n * (n + 1) / 12, 0, 1e-6, 'var of arange')
  local ones = fada.ones(n)
  assert_eq(ones:sum():item(), n + 0.0, 'sum of ones')
  assert_close(ones:norm():item(), math.sqrt(n), 0, 1e-7, 'norm of ones')
end)

test('results do not depend on the thread count', function()
  local n0 = fada.get_num_threads()
  local a, b = rnd({300, 301}), rnd({301})
  local function run()
    return {a + b, a:t() * 2, a:exp(), fada.where(a:gt(0), a, b), a:sum(), a:sum(1), a:t():sum(2), a:var(2),
            a:max(1), a:norm(), a:t():contiguous():sum()}
  end
  fada.set_num_threads(1)
  local one = run()
  fada.set_num_threads(2)
  local two = run()
  fada.set_num_threads(n0)
  for i = 1, #one do
    -- elementwise results are identical; reductions may differ in the last bit of a double
    local tol = i <= 4 and 0 or 1e-6
    assert_close(two[i], one[i], 0, tol, 'result ' .. i .. ' with 1 vs 2 threads')
  end
end)

test('empty reductions', function()
  local z = fada.zeros(0, 3)
  assert_close(z:sum(1), {0, 0, 0}, 0, 0, 'empty sum')
  assert_close(z:prod(1), {1, 1, 1}, 0, 0, 'empty prod')
  assert_eq(z:sum(2):numel(), 0, 'sum over a non-empty dim of an empty tensor')
  checkerror(function() return z:max(1) end, 'max: cannot reduce over an empty dim')
  checkerror(function() return z:argmin() end, 'argmin: cannot reduce over an empty dim')
end)

-- ---- joining and splitting ---------------------------------------------------

test('cat along each dim, with views and dtype promotion', function()
  local a, b, c = rnd({2, 3}), rnd({4, 3}):t():t(), rnd({3, 1}):t()   -- c: [1, 3] view
  local r = fada.cat({a, b, c})
  assert_eq(shape_str(r:size()), '[7, 3]')
  local e = list(a)
  for _, x in ipairs(list(b)) do e[#e + 1] = x end
  for _, x in ipairs(list(c)) do e[#e + 1] = x end
  check_values(r, e, 'f32', 'cat dim 1')
  local p, q = rnd({2, 3}), rnd({3, 2}):t()    -- [2, 3] transposed
  local r2 = fada.cat({p, q, p}, 2)
  assert_eq(shape_str(r2:size()), '[2, 9]')
  local lp, lq, e2 = list(p), list(q), {}
  for i = 0, 1 do
    for j = 1, 3 do e2[#e2 + 1] = lp[i * 3 + j] end
    for j = 1, 3 do e2[#e2 + 1] = lq[i * 3 + j] end
    for j = 1, 3 do e2[#e2 + 1] = lp[i * 3 + j] end
  end
  check_values(r2, e2, 'f32', 'cat dim 2')
  check_values(fada.cat({p, q}, -1), (function() local x = {} for i = 0, 1 do for j = 1, 3 do x[#x + 1] = lp[i * 3 + j] end for j = 1, 3 do x[#x + 1] = lq[i * 3 + j] end end return x end)(), 'f32', 'cat dim -1')
  local mixed = fada.cat({fada.ones(2, 'i32'), fada.tensor({0.5}, 'f64')})
  assert_eq(mixed:dtype(), 'f64')
  assert_close(mixed, {1, 1, 0.5}, 0, 0)
end)

test('results keep a dense operand layout (channels-last, transposes): element-wise ops and cat', function()
  -- torch's rule: a new result is laid out as its (first full-shape) dense operand; values never change
  local function cl(t) return t:permute(1, 3, 4, 2):contiguous():permute(1, 4, 2, 3) end
  local x, c = rnd({2, 16, 5, 6}), rnd({1, 16, 1, 1})
  local xc = cl(x)
  local cases = {
    {'add broadcast', xc + c, x + c}, {'mul scalar', xc * 3, x * 3}, {'sub, layout of a', c - xc, c - x},
    {'exp', xc:exp(), x:exp()}, {'neg', -xc, -x}, {'add two channels-last', xc + xc, x + x},
  }
  for _, k in ipairs(cases) do
    assert_eq(max_abs_diff(k[2], k[3]), 0, k[1] .. ': values')
    assert_eq(table.concat(k[2]:stride(), ','), table.concat(xc:stride(), ','), k[1] .. ': channels-last kept')
  end
  local a = rnd({7, 9}):t()                                  -- [9, 7], a transpose
  local y = a + 1
  assert_eq(table.concat(y:stride(), ','), '1,9', 'a transpose stays transposed')
  assert_eq(max_abs_diff(y, a:contiguous() + 1), 0, 'transpose values')
  assert_eq(table.concat((x + c):stride(), ','), table.concat(x:stride(), ','), 'contiguous stays contiguous')
  assert((xc + x):is_contiguous(), 'operands of the full shape in two layouts: contiguous')
  assert_eq(max_abs_diff(xc + x, x + x), 0, 'mixed layouts: values')
  -- in place into a channels-last tensor walks its memory order
  local z = xc:clone()
  z:add_(c)
  assert_eq(max_abs_diff(z, x + c), 0, 'in place on channels-last')
  -- cat of channels-last parts along C is channels-last; mixed layouts give a contiguous result
  local p2 = rnd({2, 8, 5, 6})
  local cat = fada.cat({xc, cl(p2)}, 2)
  assert_eq(max_abs_diff(cat, fada.cat({x, p2}, 2)), 0, 'cat values')
  assert_eq(cat:stride(2), 1, 'cat of channels-last parts is channels-last')
  assert(fada.cat({xc, p2}, 2):is_contiguous(), 'mixed parts: contiguous')
end)

test('stack at every position', function()
  local a, b = rnd({2, 3}), rnd({3, 2}):t()
  local la, lb = list(a), list(b)
  local s1 = fada.stack({a, b})
  assert_eq(shape_str(s1:size()), '[2, 2, 3]')
  local e = {}
  for _, x in ipairs(la) do e[#e + 1] = x end
  for _, x in ipairs(lb) do e[#e + 1] = x end
  check_values(s1, e, 'f32', 'stack dim 1')
  local s3 = fada.stack({a, b}, 3)
  assert_eq(shape_str(s3:size()), '[2, 3, 2]')
  e = {}
  for i = 1, 6 do e[#e + 1] = la[i]; e[#e + 1] = lb[i] end
  check_values(s3, e, 'f32', 'stack dim 3 (new last)')
  assert_eq(shape_str(fada.stack({a, b, a}, 2):size()), '[2, 3, 3]')
end)

test('split by size, by sizes; chunk; the pieces are views', function()
  local t = fada.arange(10):to('f32'):view(5, 2)
  local p = t:split(2)
  assert_eq(#p, 3)
  assert_close(p[1], {0, 1, 2, 3}, 0, 0)
  assert_close(p[3], {8, 9}, 0, 0)
  assert(p[2]:is_same_storage(t), 'split gives views')
  local q = t:split({1, 4})
  assert_eq(#q, 2)
  assert_eq(shape_str(q[2]:size()), '[4, 2]')
  assert_close(q[2], {2, 3, 4, 5, 6, 7, 8, 9}, 0, 0)
  local cols = fada.split(t, 1, 2)
  assert_eq(#cols, 2)
  assert_close(cols[2], {1, 3, 5, 7, 9}, 0, 0, 'split along dim 2')
  local c = fada.arange(10):chunk(3)
  assert_eq(#c, 3)
  assert_eq(c[1]:numel(), 4); assert_eq(c[3]:numel(), 2)
  assert_close(c[3], {8, 9}, 0, 0)
  assert_eq(#fada.arange(6):chunk(4), 3, 'chunk follows torch: ceil-sized pieces')
  assert_eq(#t:chunk(2, 2), 2)
end)

-- ---- indexing ------------------------------------------------------------------

test('index_select along each dim, i64 and i32 indices, views', function()
  local t = rnd({4, 5, 3}):permute(2, 1, 3)    -- [5, 4, 3], non-contiguous
  local s = t:size()
  for d = 1, 3 do
    for _, idt in ipairs({'i64', 'i32'}) do
      local idx = fada.randint(1, s[d] + 1, {6}, idt, G)
      local r = t:index_select(d, idx)
      local os = {s[1], s[2], s[3]}
      os[d] = 6
      assert_eq(shape_str(r:size()), shape_str(os))
      local li, e = list(idx), {}
      local lt = list(t)
      for i = 0, os[1] - 1 do for j = 0, os[2] - 1 do for k = 0, os[3] - 1 do
        local src = {i, j, k}
        src[d] = li[src[d] + 1] - 1
        e[#e + 1] = lt[(src[1] * s[2] + src[2]) * s[3] + src[3] + 1]
      end end end
      check_values(r, e, 'f32', 'index_select dim ' .. d .. ' ' .. idt)
    end
  end
  local strided = fada.tensor({3, 9, 1, 9, 2}, 'i64'):narrow(1, 1, 5):view(5)
  assert_close(fada.arange(10):index_select(1, strided:index_select(1, fada.tensor({1, 3, 5}, 'i64'))),
               {2, 0, 1}, 0, 0, 'chained index_select')
end)

test('gather along each dim against the definition', function()
  local t = rnd({3, 4, 5})
  local s = t:size()
  local lt = list(t)
  for d = 1, 3 do
    local ishape = {2, 3, 4}
    local idx = fada.randint(1, s[d] + 1, ishape, 'i64', G)
    local r = t:gather(d, idx)
    assert_eq(shape_str(r:size()), shape_str(ishape))
    local li, e = list(idx), {}
    local n = 0
    for i = 0, 1 do for j = 0, 2 do for k = 0, 3 do
      n = n + 1
      local src = {i, j, k}
      src[d] = li[n] - 1
      e[n] = lt[(src[1] * s[2] + src[2]) * s[3] + src[3] + 1]
    end end end
    check_values(r, e, 'f32', 'gather dim ' .. d)
  end
  -- gather with argmax indices picks the maxima
  local m = rnd({4, 6})
  local v, i = m:max(2, true)
  assert_close(m:gather(2, i), v, 0, 0, 'gather(argmax) = max')
  assert_close(m:t():gather(1, m:t():argmax(1, true)), m:max(2, true):t(), 0, 0, 'gather on a transpose')
end)

test('masked_fill, broadcasting the mask; in place', function()
  local t = rnd({3, 4})
  local mask = rnd({4}, 'bool')
  local r = t:masked_fill(mask, -1)
  local vm, e = bvalues(mask, {3, 4}), {}
  for i, x in ipairs(list(t)) do e[i] = vm[i] ~= 0 and -1 or x end
  check_values(r, e, 'f32', 'masked_fill')
  assert(not r:is_same_storage(t), 'masked_fill makes a copy')
  local tt = t:t()
  local v0 = t:version()
  assert_eq(tt:masked_fill_(tt:gt(0), 0), tt)
  assert(t:version() > v0)
  e = {}
  for i, x in ipairs(list(t)) do e[i] = x > 0 and 0 or x end
  check_values(t, e, 'f32', 'masked_fill_ through a transpose')
  local ints = fada.tensor({1, 2, 3}, 'i64'):masked_fill(fada.tensor({true, false, true}, 'bool'), 7)
  assert_close(ints, {7, 2, 7}, 0, 0, 'masked_fill on i64')
end)

test('allclose: tolerances, broadcasting, NaN, infinities', function()
  local a = rnd({3, 4})
  assert_eq(fada.allclose(a, a:clone()), true)
  assert_eq(fada.allclose(a, a + 1e-3), false)
  assert_eq(fada.allclose(a, a + 1e-3, 0, 2e-3), true, 'atol')
  assert_eq(fada.allclose(a * 1.001, a, 2e-3, 0), true, 'rtol')
  assert_eq(a:allclose(a:t():t()), true, 'method form')
  assert_eq(fada.allclose(fada.ones(3, 4), fada.ones(4)), true, 'broadcast')
  assert_eq(fada.allclose(fada.tensor({0 / 0}), fada.tensor({0 / 0})), false, 'NaN is never close')
  assert_eq(fada.allclose(fada.tensor({math.huge}), fada.tensor({math.huge})), true, 'equal infinities')
  assert_eq(fada.allclose(fada.ones(3, 'i32'), fada.ones(3, 'f16')), true, 'mixed dtypes')
end)

-- ---- errors --------------------------------------------------------------------

test('errors name the op, the argument and both values', function()
  local a, b = fada.zeros(2, 3), fada.zeros(4)
  checkerror(function() return fada.add(a, b) end, 'add: shapes [2, 3] and [4] do not broadcast (dim 2: 3 vs 4)')
  checkerror(function() return a + b end, 'add: shapes [2, 3] and [4]')
  checkerror(function() return a:mul_(fada.zeros(3, 2, 3)) end, 'mul: output [2, 3] does not match the result shape [3, 2, 3]')
  checkerror(function() return fada.zeros(3, 'i64'):add_(0.5) end, 'add: result type f32 cannot be written into the i64 output')
  checkerror(function() return fada.zeros(1, 3):expand(2, 3):add_(1) end, 'add: the output [2, 3] is an expanded view (dim 1 has stride 0)')
  checkerror(function() return fada.add(1, 2) end, 'add: expects at least one tensor, got two numbers')
  checkerror(function() return fada.add(a, 'x') end, 'tensor expected, got string')
  checkerror(function() return fada.add(a, b, fada.zeros(5)) end, 'do not broadcast')
  checkerror(function() return fada.add(a, 1, fada.zeros(5)) end, 'add: output [5] does not match the result shape [2, 3]')
  checkerror(function() return a:to('f33') end, "unknown dtype 'f33'")
  checkerror(function() return fada.zeros(2, 'bool'):neg() end, 'neg: a bool tensor cannot be negated')
  checkerror(function() return a:clamp(1, 0) end, 'clamp: min 1 is greater than max 0')
  checkerror(function() return a:clamp() end, 'clamp: give min, max or both')
  checkerror(function() return fada.where(fada.zeros(2, 'bool'), a, 0) end, 'where: shapes [2] and [2, 3] do not broadcast (dim 2: 2 vs 3)')
end)

test('errors: dims out of range', function()
  local a = fada.zeros(2, 3)
  checkerror(function() return a:sum(3) end, 'dim 3 out of range for a tensor of 2 dims')
  checkerror(function() return a:max(0) end, 'dim 0 out of range')
  checkerror(function() return a:mean(-3) end, 'dim -3 out of range')
  checkerror(function() return a:sum({1, 1}) end, 'dim 1 appears twice')
  checkerror(function() return a:sum({1, 5}) end, 'dims entry 2 (5) is not a dim of a tensor of 2 dims')
  checkerror(function() return a:var(1, 'yes') end, 'boolean expected')
  checkerror(function() return a:norm(0) end, 'norm: p must be > 0')
  checkerror(function() return a:norm('nuc') end, "p must be a number, 'inf' or 'fro', got 'nuc'")
  checkerror(function() return fada.cat({a, a}, 3) end, 'dim 3 out of range')
  checkerror(function() return fada.stack({a, a}, 4) end, 'dim 4 out of range')
  checkerror(function() return a:index_select(3, fada.ones(1, 'i64')) end, 'dim 3 out of range')
  checkerror(function() return a:split(1, 3) end, 'dim 3 out of range')
end)

test('errors: indices out of range, bad index and mask dtypes', function()
  local a = fada.zeros(2, 3)
  checkerror(function() return a:index_select(2, fada.tensor({1, 4}, 'i64')) end,
             'index_select: index 4 (entry 2) out of range for dim 2 of size 3')
  checkerror(function() return a:index_select(1, fada.tensor({0}, 'i64')) end, 'index 0 (entry 1) out of range for dim 1 of size 2')
  checkerror(function() return a:index_select(1, fada.tensor({1})) end, 'index_select: index must be an integer tensor (i64, i32 or u8), got f32')
  checkerror(function() return a:index_select(1, fada.ones(1, 1, 'i64')) end, 'index_select: index must be 1-d, got [1, 1]')
  checkerror(function() return a:gather(2, fada.tensor({{1, 2, 7}}, 'i64')) end, 'gather: index 7 out of range for dim 2 of size 3')
  checkerror(function() return a:gather(2, fada.tensor({1, 2}, 'i64')) end, 'gather: index [2] has 1 dims, the input [2, 3] has 2')
  checkerror(function() return a:gather(1, fada.ones(2, 4, 'i64')) end, 'gather: index [2, 4] vs input [2, 3]: size 4 of dim 2 exceeds 3')
  checkerror(function() return a:masked_fill(fada.ones(3), 1) end, 'masked_fill: mask must be bool (or u8), got f32')
  checkerror(function() return a:masked_fill(fada.ones(4, 'bool'), 1) end, 'masked_fill: shapes [2, 3] and [4] do not broadcast')
  checkerror(function() return a:masked_fill_(fada.ones(2, 2, 3, 'bool'), 1) end, 'masked_fill: mask [2, 2, 3] does not broadcast to the tensor [2, 3]')
end)

test('errors: cat, stack, split misuse', function()
  local a = fada.zeros(2, 3)
  checkerror(function() return fada.cat({a, fada.zeros(2, 4)}) end, 'cat: tensor 2 [2, 4] vs tensor 1 [2, 3]: size of dim 2 is 4, expected 3')
  checkerror(function() return fada.cat({a, fada.zeros(3)}) end, 'cat: tensor 2 has 1 dims [3], tensor 1 has 2 [2, 3]')
  checkerror(function() return fada.cat({}) end, 'cat: the list of tensors is empty')
  checkerror(function() return fada.cat({a, 3}) end, 'cat: entry 2 is number, expected a live tensor')
  checkerror(function() return fada.stack({a, a:t()}) end, 'stack: tensor 2 [3, 2] vs tensor 1 [2, 3]: all shapes must be equal')
  checkerror(function() return a:split({1, 2}) end, 'split: sizes add up to 3, but dim 1 of [2, 3] has size 2')
  checkerror(function() return a:split(0) end, 'split: size must be > 0, got 0')
  checkerror(function() return a:chunk(0) end, 'chunk: count must be > 0, got 0')
end)

test('errors: released tensors', function()
  local a, b = fada.ones(3), fada.ones(3)
  b:release()
  checkerror(function() return a + b end, 'attempt to use a released tensor')
  checkerror(function() return fada.add(1, b) end, 'attempt to use a released tensor')
  checkerror(function() return b:exp() end, 'attempt to use a released tensor')
  checkerror(function() return b:sum() end, 'attempt to use a released tensor')
  checkerror(function() return a:add_(b) end, 'attempt to use a released tensor')
  checkerror(function() return fada.add(a, a, b) end, 'attempt to use a released tensor')
  checkerror(function() return fada.cat({a, b}) end, 'cat: entry 2 is a released tensor')
  checkerror(function() return a:index_select(1, b) end, 'attempt to use a released tensor')
  checkerror(function() return fada.where(b, a, a) end, 'attempt to use a released tensor')
  checkerror(function() return fada.allclose(a, b) end, 'attempt to use a released tensor')
end)

-- ---- PyTorch parity ------------------------------------------------------------

test('parity with PyTorch on a few ops', function()
  need_torch()
  local a, b = rnd({3, 4}), rnd({4})
  local idx = fada.randint(1, 5, {3, 2}, 'i64', G)
  local ints = fada.randint(-20, 20, {3, 2}, 'i32', G)
  local function py(t)
    local parts = {}
    for _, x in ipairs(list(t)) do parts[#parts + 1] = ('%.17g'):format(x) end
    return ('torch.tensor([%s], dtype=torch.float64).to(torch.float32).reshape(%s)'):format(
      table.concat(parts, ','), table.concat(t:size(), ','))
  end
  local script = ([[
import torch
a = %s
b = %s
idx = torch.tensor([%s]).reshape(3, 2) - 1
def out(t):
    print(' '.join(repr(float(v)) for v in t.flatten().tolist()))
out(a + b)
out(a / b)
out(torch.remainder(a * 3, b))
out(torch.pow(a.abs(), b))
out(torch.sigmoid(a))
out(torch.tanh(a))
out(torch.round(a * 4))
out(a.var(1))
out(a.std(0, unbiased=False))
out(a.norm(p=3, dim=1))
out(a.max(1).indices + 1)
out(torch.gather(a, 1, idx))
out(torch.where(a > 0, a, b))
out(torch.cat([a, a * 2], 1))
out(a.sum())
ab, bb = a.to(torch.bfloat16), b.to(torch.bfloat16)
out((ab + bb).float())
out((a.to(torch.float16) * 3).float())
ia = torch.tensor([%s], dtype=torch.int32).reshape(3, 2)
out(torch.remainder(ia, 4))
out(ia * 0.5)
out(ia.sum(1))
out(torch.round(torch.tensor([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5])))
]]):format(py(a), py(b), table.concat(list(idx), ','), table.concat(list(ints), ','))
  local path = os.tmpname()
  local f = assert(io.open(path, 'w'))
  f:write(script)
  f:close()
  local p = assert(io.popen('/usr/bin/python3 ' .. path .. ' 2>&1'))
  local text = p:read('a')
  p:close()
  os.remove(path)
  local ours = {
    a + b, a / b, fada.remainder(a * 3, b), fada.pow(a:abs(), b), a:sigmoid(), a:tanh(), (a * 4):round(),
    a:var(2), a:std(1, false), a:norm(3, 2), select(2, a:max(2)), a:gather(2, idx), fada.where(a:gt(0), a, b),
    fada.cat({a, a * 2}, 2), a:sum(),
    a:to('bf16') + b:to('bf16'), a:to('f16') * 3, fada.remainder(ints, 4), ints * 0.5, ints:sum(2),
    fada.tensor({-2.5, -1.5, -0.5, 0.5, 1.5, 2.5}):round(),
  }
  local k = 0
  for line in text:gmatch('[^\n]+') do
    k = k + 1
    local theirs = {}
    for v in line:gmatch('%S+') do
      local x = tonumber(v)
      assert(x, 'torch output: ' .. line)
      theirs[#theirs + 1] = x
    end
    assert(ours[k], 'unexpected torch output: ' .. text)
    assert_close(ours[k]:to('f64'):view(-1), theirs, 1e-6, 1e-5, 'torch parity line ' .. k)
  end
  assert_eq(k, #ours, 'lines from torch')
end)
