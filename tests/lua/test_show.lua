-- Tensor printing (lua/fada/show.lua): exact text for small tensors of each
-- kind, and the summary of a large one checked against t:get().

local function lines(...)
  return table.concat({...}, '\n')
end

test('2-d integers: aligned columns and the footer', function()
  assert_eq(tostring(fada.tensor{{1, 2, 3}, {4, 5, 6}}), lines(
    ' 1  2  3',
    ' 4  5  6',
    '[fada.Tensor f32 of size 2x3]'))
  assert_eq(tostring(fada.arange(6):view(2, 3)), lines(
    ' 0  1  2',
    ' 3  4  5',
    '[fada.Tensor i64 of size 2x3]'))
end)

test('2-d floats with a sign: 4 decimals, right-aligned', function()
  assert_eq(tostring(fada.tensor{{1.5, -2.25}, {3, 4}}), lines(
    '  1.5000  -2.2500',
    '  3.0000   4.0000',
    '[fada.Tensor f32 of size 2x2]'))
end)

test('a common scale factor for small values', function()
  assert_eq(tostring(fada.tensor({1e-5, 2e-5, 3.5e-5}, 'f64')), lines(
    '1e-05 *',
    ' 1.0000  2.0000  3.5000',
    '[fada.Tensor f64 of size 3]'))
end)

test('scientific notation when magnitudes span many decades', function()
  assert_eq(tostring(fada.tensor{123456.7, 2}), lines(
    ' 1.2346e+05  2.0000e+00',
    '[fada.Tensor f32 of size 2]'))
end)

test('3-d: one 2-d slice per leading index', function()
  assert_eq(tostring(fada.arange(8):view(2, 2, 2)), lines(
    '(1,.,.) =',
    ' 0  1',
    ' 2  3',
    '',
    '(2,.,.) =',
    ' 4  5',
    ' 6  7',
    '[fada.Tensor i64 of size 2x2x2]'))
  local four = tostring(fada.zeros(2, 1, 1, 2, 'i32'))
  assert(four:find('(2,1,.,.) =', 1, true), four)
end)

test('0-d, empty, bool, u8, bf16, nan/inf', function()
  assert_eq(tostring(fada.tensor(3.5)), ' 3.5000\n[fada.Tensor f32 0-dim]')
  assert_eq(tostring(fada.tensor(7, 'i32')), ' 7\n[fada.Tensor i32 0-dim]')
  assert_eq(tostring(fada.zeros(0, 3)), '[fada.Tensor f32 of size 0x3, empty]')
  assert_eq(tostring(fada.tensor({1, 0, 1}, 'bool')), '  true  false   true\n[fada.Tensor bool of size 3]')
  assert_eq(tostring(fada.tensor({250, 3}, 'u8')), ' 250    3\n[fada.Tensor u8 of size 2]')
  assert_eq(tostring(fada.tensor({1.25, 2.5}, 'bf16')), ' 1.2500  2.5000\n[fada.Tensor bf16 of size 2]')
  assert_eq(tostring(fada.tensor{0 / 0, 1 / 0, -1 / 0, 1.5}),
    '    nan     inf    -inf  1.5000\n[fada.Tensor f32 of size 4]')
end)

test('non-contiguous views print their own elements', function()
  local x = fada.arange(12):view(3, 4)
  assert_eq(tostring(x:narrow(2, 2, 2)), lines(
    '  1   2',
    '  5   6',
    '  9  10',
    '[fada.Tensor i64 of size 3x2]'))
  assert_eq(tostring(fada.arange(6):view(2, 3):t()), lines(
    ' 0  3',
    ' 1  4',
    ' 2  5',
    '[fada.Tensor i64 of size 3x2]'))
  local e = fada.tensor{1, 2}:view(1, 2):expand(3, 2) -- stride 0
  assert_eq(tostring(e), ' 1  2\n 1  2\n 1  2\n[fada.Tensor f32 of size 3x2]')
  local r = fada.randn(4, 5, 6, fada.Generator(3))
  local v = r:transpose(1, 3)
  assert_eq(tostring(v), tostring(v:contiguous()), 'a view prints as its contiguous copy')
end)

test('a released tensor prints without an error', function()
  local t = fada.zeros(2)
  t:release()
  assert_eq(tostring(t), '[released tensor]')
end)

test('wide matrices print in blocks of columns', function()
  local s = tostring(fada.linspace(0, 1, 24):view(2, 12))
  assert_eq(s, lines(
    'Columns 1 to 9',
    ' 0.0000  0.0435  0.0870  0.1304  0.1739  0.2174  0.2609  0.3043  0.3478',
    ' 0.5217  0.5652  0.6087  0.6522  0.6957  0.7391  0.7826  0.8261  0.8696',
    '',
    'Columns 10 to 12',
    ' 0.3913  0.4348  0.4783',
    ' 0.9130  0.9565  1.0000',
    '[fada.Tensor f32 of size 2x12]'))
  for l in s:gmatch('[^\n]+') do assert(#l <= 80, 'line longer than 80: ' .. l) end
end)

test('a large tensor prints a summary with the corner values', function()
  local t = fada.randn(100, 200, fada.Generator(7)) -- [100, 200]
  local s = tostring(t)
  local rows = {}
  for l in s:gmatch('[^\n]+') do rows[#rows + 1] = l end
  -- the shown values are the corners, in the printed precision
  local scale = 1
  local first = 1
  if rows[1]:match('%*$') then scale, first = tonumber(rows[1]:match('^(%S+)')), 2 end
  assert_eq(#rows, first - 1 + 7 + 1, '[scale line,] 3 rows, "...", 3 rows, footer: ' .. s)
  assert_eq(rows[#rows], '[fada.Tensor f32 of size 100x200]')
  local shown_rows = {1, 2, 3, false, 98, 99, 100}
  local shown_cols = {1, 2, 3, false, 198, 199, 200}
  local k = first
  for _, r in ipairs(shown_rows) do
    local line = rows[k]
    k = k + 1
    if not r then
      assert(line:match('^%s*%.%.%.%s*$'), 'the row ellipsis: ' .. line)
    else
      local cells = {}
      for cell in line:gmatch('%S+') do cells[#cells + 1] = cell end
      assert_eq(#cells, 7, 'cells in ' .. line)
      for j, c in ipairs(shown_cols) do
        if c then
          assert_close(tonumber(cells[j]) * scale, t:get(r, c), 1e-4 * scale + 1e-4, 1e-3,
            ('element (%d, %d)'):format(r, c))
        else
          assert_eq(cells[j], '...')
        end
      end
    end
  end
end)

test('a large 3-d tensor summarises the leading dim too', function()
  local s = tostring(fada.arange(2000):view(10, 10, 20))
  assert(s:find('(3,.,.) =', 1, true) and s:find('(8,.,.) =', 1, true), s)
  assert(not s:find('(4,.,.) =', 1, true), 'slices 4..7 are summarised away')
  assert(s:find('\n ...\n', 1, true), 'the slice ellipsis')
  assert(s:find(' 1980  1981  1982   ...  1997  1998  1999\n', 1, true), 'the last row of the last slice')
  assert(s:find('[fada.Tensor i64 of size 10x10x20]', 1, true))
end)

test('set_printoptions changes the summary threshold and edge items', function()
  fada.set_printoptions{threshold = 5, edgeitems = 1}
  local ok, s = pcall(tostring, fada.arange(10))
  fada.set_printoptions{threshold = 1000, edgeitems = 3}
  assert(ok, s)
  assert_eq(s, '   0  ...    9\n[fada.Tensor i64 of size 10]')
  checkerror(function() fada.set_printoptions{threshold = 0} end, 'threshold must be a positive integer')
end)

test('print() and the REPL use the same __tostring', function()
  assert_eq(getmetatable(fada.zeros(1)).__tostring, debug.getregistry()['fada.Tensor'].__tostring)
  assert(type(getmetatable(fada.zeros(1)).__tostring) == 'function')
end)
