-- Tensor creation, views, element access and the errors of misuse.
local fada = require 'fada'

test('creation: shapes either way, dtypes, fill values', function()
  local a, b = fada.zeros(2, 3), fada.zeros({2, 3})
  assert_eq(table.concat(a:size(), 'x'), '2x3')
  assert_eq(table.concat(b:size(), 'x'), '2x3')
  assert_eq(fada.ones(4, 'bf16'):dtype(), 'bf16')
  assert_close(fada.full({2, 2}, 7.5):tolist(), {7.5, 7.5, 7.5, 7.5})
  assert_eq(fada.empty(0, 3):numel(), 0)
  assert_eq(fada.zeros():dim(), 0)
  assert_eq(fada.zeros():numel(), 1)
  for _, dt in ipairs{'f32', 'f64', 'f16', 'bf16', 'i32', 'i64', 'u8', 'bool'} do
    assert_eq(fada.ones(3, dt):dtype(), dt)
  end
end)

test('arange and linspace match their closed forms', function()
  local r = fada.arange(5)
  assert_eq(r:dtype(), 'i64')
  assert_close(r:tolist(), {0, 1, 2, 3, 4})
  assert_close(fada.arange(1, 2, 0.25):tolist(), {1, 1.25, 1.5, 1.75})
  assert_close(fada.arange(5, 0, -2):tolist(), {5, 3, 1})
  assert_eq(fada.arange(3, 3):numel(), 0)
  local l = fada.linspace(-1, 1, 5, 'f64')
  assert_close(l:tolist(), {-1, -0.5, 0, 0.5, 1}, 0, 0)
  assert_close(fada.linspace(0, 1, 1):tolist(), {0})
end)

test('tensor{} from nested tables; get/set/item/totable', function()
  local t = fada.tensor{{1, 2, 3}, {4, 5, 6}}
  assert_eq(t:dim(), 2)
  assert_eq(t:get(2, 3), 6.0)
  assert_eq(t:get(-1, -1), 6.0)
  t:set(1, 2, 20)
  assert_eq(t:get({1, 2}), 20.0)
  assert_eq(t:totable()[2][1], 4.0)
  assert_eq(fada.tensor(3.5):item(), 3.5)
  local i = fada.tensor({1, 2}, 'i64')
  assert_eq(math.type(i:get(1)), 'integer')
  assert_eq(fada.tensor({true, false}, 'bool'):get(1), true)
  local big = fada.tensor({9007199254740993}, 'i64') -- 2^53 + 1 survives as an integer
  big:set(1, 9007199254740993)
  assert_eq(big:get(1), 9007199254740993)
end)

test('views share storage and see writes', function()
  local t = fada.arange(24):to('f32'):view(2, 3, 4)
  local n = t:narrow(3, 2, 2)           -- [2, 3, 2]
  assert_eq(table.concat(n:size(), 'x'), '2x3x2')
  assert_eq(n:get(2, 3, 2), 22.0)       -- t[2][3][3]
  n:set(1, 1, 1, -1)
  assert_eq(t:get(1, 1, 2), -1.0)
  assert(n:is_same_storage(t))
  local s = t:select(1, 2)               -- [3, 4]
  assert_eq(s:get(1, 1), 12.0)
  local tr = t:transpose(1, 3)           -- [4, 3, 2]
  assert(not tr:is_contiguous())
  assert_eq(tr:get(4, 3, 2), t:get(2, 3, 4))
  local p = t:permute(3, 1, 2)
  assert_eq(p:get(4, 2, 3), t:get(2, 3, 4))
  local c = tr:contiguous()
  assert(c:is_contiguous() and not c:is_same_storage(t))
  assert_close(c:view(-1):narrow(1, 1, 4):tolist(), {0, 12, 4, 16})
  local e = fada.tensor{1, 2, 3}:view(1, 3):expand(4, 3)
  assert_eq(e:stride(1), 0)
  assert_eq(e:get(4, 3), 3.0)
  assert_eq(fada.zeros(1, 3, 1):squeeze():dim(), 1)
  assert_eq(table.concat(fada.zeros(1, 3, 1):squeeze(1):size(), 'x'), '3x1')
  assert_eq(table.concat(fada.zeros(3):unsqueeze(1):size(), 'x'), '1x3')
  assert_eq(table.concat(fada.zeros(3):unsqueeze(-1):size(), 'x'), '3x1')
  assert_eq(table.concat(tr:reshape(24):size(), 'x'), '24') -- copies when a view is impossible
  assert_eq(tr:reshape(-1):get(2), t:get(2, 1, 1))
end)

test('copy converts dtypes and broadcasts; clone is deep', function()
  local a = fada.tensor{1.5, -2.25, 3}
  local h = fada.zeros(2, 3, 'f16'):copy(a)
  assert_close(h:tolist(), {1.5, -2.25, 3, 1.5, -2.25, 3})
  local u = fada.zeros(3, 'u8'):copy(fada.tensor{-5, 3.7, 400})
  assert_close(u:tolist(), {0, 3, 255})
  local c = a:clone()
  c:set(1, 100)
  assert_eq(a:get(1), 1.5)
  assert_eq(a:to('f64'):dtype(), 'f64')
  assert(a:to('f32') == a) -- same dtype: the tensor itself
  local v0 = a:version()
  a:fill(0)
  assert(a:version() > v0)
  assert_close(a:tolist(), {0, 0, 0})
end)

test('copy into strided destinations (channels-last, transposed, narrowed, broadcast) matches an element loop', function()
  local g = fada.Generator(11)
  local function check(dst, src, what)
    local want = {}
    local n1, n2, n3, n4 = table.unpack(dst:size())
    local sb = src:expand(dst:size())
    for i = 1, n1 do for j = 1, n2 do for k = 1, n3 do for l = 1, n4 do
      want[#want + 1] = sb:get(i, j, k, l)
    end end end end
    dst:copy(src)
    local got = {}
    for i = 1, n1 do for j = 1, n2 do for k = 1, n3 do for l = 1, n4 do
      got[#got + 1] = dst:get(i, j, k, l)
    end end end end
    local rt = dst:dtype() == 'f16' and 1e-3 or 0
    assert_close(got, dst:dtype() == 'f32' and want or fada.tensor(want):to(dst:dtype()):tolist(), 0, rt, what)
  end
  local x = fada.randn({2, 5, 3, 4}, g)
  local cl = fada.zeros(2, 3, 4, 5):permute(1, 4, 2, 3)                                 -- [2, 5, 3, 4] channels-last
  check(cl, x, 'contiguous -> channels-last')
  check(fada.zeros(2, 3, 4, 5):permute(1, 4, 2, 3), cl, 'channels-last -> channels-last')
  check(fada.zeros(2, 5, 3, 4), cl, 'channels-last -> contiguous')
  check(fada.zeros(4, 3, 5, 2):permute(4, 3, 2, 1), x, 'reversed dims')
  check(fada.zeros(2, 5, 3, 9):narrow(4, 3, 4), x, 'narrowed (not dense)')
  check(fada.zeros(2, 3, 4, 5):permute(1, 4, 2, 3), fada.randn({5, 1, 1}, g), 'broadcast into channels-last')
  check(fada.zeros(2, 3, 4, 5, 'f16'):permute(1, 4, 2, 3), x, 'f32 -> f16 channels-last')
  check(fada.zeros(2, 3, 4, 5, 'i32'):permute(1, 4, 2, 3), (x * 10):to('i32'), 'i32 channels-last')
end)

-- Copies of 1 MB and more between two storages split their runs across the threads;
-- src holds its flat index, so every destination element is checked in closed form.
test('large copies (split across threads) put every element where its index says', function()
  local A, B, C, D = 3, 64, 40, 37                                                    -- 284 160 floats, 1.1 MB
  local src = fada.arange(0, A * B * C * D):to('f32'):view(A, B, C, D)
  local function check(dst, what)
    dst:copy(src)
    local bad = 0
    for i = 1, A do for j = 1, B do for k = 1, C do for l = 1, D do
      local want = (((i - 1) * B + j - 1) * C + k - 1) * D + l - 1
      if dst:get(i, j, k, l) ~= want then bad = bad + 1 end
    end end end end
    assert_eq(bad, 0, what .. ': misplaced elements')
  end
  check(fada.zeros(A, C, D, B):permute(1, 4, 2, 3), 'contiguous -> channels-last (element runs)')
  check(fada.zeros(D, C, B, A):permute(4, 3, 2, 1), 'reversed dims (strided source)')
  check(fada.zeros(A, B, C, 2 * D):narrow(4, 5, D), 'narrowed destination (contiguous runs)')
  check(fada.zeros(A, B, C, D, 'f64'), 'f32 -> f64 (converting runs)')
  local threads = fada.get_num_threads()
  fada.set_num_threads(1) -- the serial walk: the same
  check(fada.zeros(A, C, D, B):permute(1, 4, 2, 3), 'one thread')
  fada.set_num_threads(threads)
end)

test('random: seeded generators reproduce, state resumes', function()
  local g1, g2 = fada.Generator(123), fada.Generator(123)
  assert_close(fada.randn(4, 5, g1):tolist(), fada.randn({4, 5}, g2):tolist(), 0, 0)
  local st = g1:get_state()
  local x = fada.rand(100, g1)
  g2:set_state(st)
  assert_close(fada.rand(100, g2):tolist(), x:tolist(), 0, 0)
  local r = fada.randint(3, 7, 1000, fada.Generator(1))
  local lo, hi = math.huge, -math.huge
  for _, v in ipairs(r:tolist()) do lo, hi = math.min(lo, v), math.max(hi, v) end
  assert(lo == 3 and hi == 6, ('randint range %d..%d'):format(lo, hi))
  fada.manual_seed(9)
  local a = fada.randn(10)
  fada.manual_seed(9)
  assert_close(fada.randn(10):tolist(), a:tolist(), 0, 0)
  local b = fada.randn(10, 'bf16', fada.Generator(5))
  assert_eq(b:dtype(), 'bf16')
end)

test('release: __close and release() free once; use after raises', function()
  collectgarbage() -- earlier tests' garbage must not be collected while this one counts bytes
  local before = fada.memory().live
  do
    local t <close> = fada.zeros(1024, 1024)
    assert(fada.memory().live >= before + 4 * 1024 * 1024)
  end
  assert_eq(fada.memory().live, before)
  local t = fada.zeros(10)
  t:release()
  t:release() -- idempotent
  assert(t:is_released())
  checkerror(function() return t:size() end, 'attempt to use a released tensor')
  checkerror(function() return fada.zeros(10):copy(t) end, 'attempt to use a released tensor')
end)

test('errors name the function, the argument and both values', function()
  checkerror(function() return fada.zeros(2, 3):view(4, 2) end, 'view: shape [4, 2] has 8 elements, the tensor [2, 3] has 6')
  checkerror(function() return fada.zeros(2, 3):t():view(6) end, 'call :contiguous() first')
  checkerror(function() return fada.zeros(2, 3):narrow(2, 3, 2) end, 'narrow: start 3 length 2 out of range for dim 2 of size 3')
  checkerror(function() return fada.zeros(2, 3):select(1, 3) end, 'select: index 3 out of range for dim 1 of size 2')
  checkerror(function() return fada.zeros(2, 3):size(3) end, 'dim 3 out of range for a tensor of 2 dims')
  checkerror(function() return fada.zeros(2, 3):get(3, 1) end, 'get: index 3 out of range for dim 1 of size 2')
  checkerror(function() return fada.zeros(2, 3):get(1) end, 'get: 1 indices given for a tensor of 2 dims')
  checkerror(function() return fada.zeros(2, 3):set(1, 1) end, 'set: expects 2 indices and a value')
  checkerror(function() return fada.zeros(2, 'f33') end, "unknown dtype 'f33'")
  checkerror(function() return fada.zeros(2, -3) end, 'size is negative')
  checkerror(function() return fada.zeros(2.5) end, 'size must be an integer')
  checkerror(function() return fada.zeros(2^31, 2^31, 2^31) end, 'more elements than fit in 64 bits')
  checkerror(function() return fada.zeros(1, 1, 1, 1, 1, 1, 1, 1, 1) end, 'at most 8 dims')
  checkerror(function() return fada.zeros(2):copy(fada.zeros(3)) end, 'copy: shapes [2] and [3] do not broadcast')
  checkerror(function() return fada.zeros(3):copy('x') end, 'tensor expected, got string')
  checkerror(function() return fada.tensor{{1, 2}, {3}} end, 'ragged nesting')
  checkerror(function() return fada.tensor{{1, 'a'}} end, 'expected a number')
  checkerror(function() return fada.zeros(2, 3):permute(1, 1) end, 'permute: dim 1 appears twice')
  checkerror(function() return fada.zeros(2, 3):permute(1) end, 'permute: 1 dims given for a tensor of 2 dims')
  checkerror(function() return fada.zeros(2, 3):expand(4, 3) end, 'expand: the tensor [2, 3] cannot expand to [4, 3]')
  checkerror(function() return fada.zeros(3):item() end, 'item: the tensor [3] has 3 elements, expected 1')
  checkerror(function() return fada.Generator(1):set_state({}) end, 'seed and offset')
  checkerror(function() return fada.randint(5, 5, 3) end, 'randint: high 5 must be > low 5')
  checkerror(function() return fada.rand(3, 'i32') end, 'rand: needs a float tensor, got i32')
  checkerror(function() return fada.set_num_threads(0) end, 'thread count must be 1..1024')
  checkerror(function() return fada.arange(1, 5, 0) end, 'step must not be 0')
end)

test('set_num_threads is reported back', function()
  local n = fada.get_num_threads()
  fada.set_num_threads(1)
  assert_eq(fada.get_num_threads(), 1)
  fada.set_num_threads(n)
  assert_eq(fada.get_num_threads(), n)
end)
