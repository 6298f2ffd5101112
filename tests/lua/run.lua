-- The Lua test runner: fadalua tests/lua/run.lua tests/lua/test_x.lua [...]
-- A test file returns nothing; it calls test(name, fn) for each case and
-- uses the helpers below (globals inside test files). Prints one line per
-- failure with its traceback, then "N passed, N failed, N skipped" and exits
-- non-zero when anything failed. A skip is printed loudly with its reason.
local fada = require 'fada'

local cases = {}
local env = setmetatable({}, {__index = _G})

function env.test(name, fn) cases[#cases + 1] = {name = name, fn = fn} end

local Skip = {}
-- Ends the current test as skipped, printing why (never a silent pass).
function env.skip(reason) error(setmetatable({reason = reason}, Skip), 0) end

local function describe(x)
  if fada.is_tensor(x) then
    return ('tensor %s %s'):format(x:dtype(), table.concat(x:size(), 'x'))
  end
  return tostring(x)
end

-- Largest |a - b| over elements of two tensors (or numbers).
local function max_abs_diff(a, b)
  if type(a) == 'number' and type(b) == 'number' then return math.abs(a - b), a, b end
  local la = fada.is_tensor(a) and a:tolist() or {a}
  local lb = fada.is_tensor(b) and b:tolist() or {b}
  assert(#la == #lb or #la == 1 or #lb == 1,
    ('element counts differ: %s vs %s'):format(describe(a), describe(b)))
  local worst, wa, wb = 0, la[1], lb[1]
  for i = 1, math.max(#la, #lb) do
    local x, y = la[#la == 1 and 1 or i], lb[#lb == 1 and 1 or i]
    if type(x) == 'boolean' then x = x and 1 or 0 end
    if type(y) == 'boolean' then y = y and 1 or 0 end
    local d = math.abs(x - y)
    if d ~= d then d = math.huge end
    if d > worst then worst, wa, wb = d, x, y end
  end
  return worst, wa, wb
end
env.max_abs_diff = max_abs_diff

-- assert_close(actual, expected, [atol = 1e-5], [rtol = 1e-5], [what])
-- passes when |a - e| <= atol + rtol * |e| for every element.
function env.assert_close(actual, expected, atol, rtol, what)
  atol, rtol = atol or 1e-5, rtol or 1e-5
  local function flat(x)
    if fada.is_tensor(x) then return x:tolist() end
    return type(x) == 'table' and x or {x}
  end
  local la, le = flat(actual), flat(expected)
  if fada.is_tensor(actual) and fada.is_tensor(expected) then
    local sa, se = table.concat(actual:size(), 'x'), table.concat(expected:size(), 'x')
    if sa ~= se then error(('%sshape %s vs expected %s'):format(what and what .. ': ' or '', sa, se), 2) end
  end
  if #la ~= #le then
    error(('%s%d elements vs expected %d'):format(what and what .. ': ' or '', #la, #le), 2)
  end
  for i = 1, #la do
    local a, e = la[i], le[i]
    if type(a) == 'boolean' then a = a and 1 or 0 end
    if type(e) == 'boolean' then e = e and 1 or 0 end
    local ok = math.abs(a - e) <= atol + rtol * math.abs(e) or (a == e)
    if not ok then
      error(('%selement %d: %.9g vs expected %.9g (|diff| %.3g > atol %g + rtol %g)'):format(
        what and what .. ': ' or '', i, a, e, math.abs(a - e), atol, rtol), 2)
    end
  end
end

function env.assert_eq(actual, expected, what)
  if actual ~= expected then
    error(('%sgot %s, expected %s'):format(what and what .. ': ' or '', describe(actual), describe(expected)), 2)
  end
end

-- assert_lines(lines, wants): each text of wants is found (plain) in the list of
-- messages, and there are no others (as many lines as wants).
function env.assert_lines(lines, wants)
  local text = table.concat(lines, '\n')
  for _, want in ipairs(wants) do
    if not text:find(want, 1, true) then error(('expected %q among:\n%s'):format(want, text), 2) end
  end
  if #lines ~= #wants then error(('%d messages, expected %d:\n%s'):format(#lines, #wants, text), 2) end
end

-- checkerror(fn, pattern): fn must raise an error whose message contains
-- pattern (plain text, not a Lua pattern). Returns the message.
function env.checkerror(fn, pattern, ...)
  local ok, err = pcall(fn, ...)
  if ok then error(('expected an error containing %q, but the call succeeded'):format(pattern), 2) end
  err = tostring(err)
  if not err:find(pattern, 1, true) then
    error(('expected an error containing %q, got: %s'):format(pattern, err), 2)
  end
  return err
end

-- The PyTorch peer (Debian's python3-torch, only under /usr/bin/python3).
-- has_torch() is cached; tests that need it call need_torch(), which skips loudly.
local torch_state
function env.has_torch()
  if torch_state == nil then
    local ok = os.execute('/usr/bin/python3 -c "import torch" >/dev/null 2>&1')
    torch_state = ok == true
  end
  return torch_state
end
function env.need_torch()
  if not env.has_torch() then env.skip('PyTorch (/usr/bin/python3 -c "import torch") is not installed') end
end

local passed, failed, skipped = 0, 0, 0
for _, file in ipairs(arg) do
  cases = {}
  local chunk, err = loadfile(file, 't', env)
  if not chunk then
    print(('FAIL %s: cannot load: %s'):format(file, err))
    failed = failed + 1
  else
    chunk()
    for _, case in ipairs(cases) do
      local t0 = os.clock()
      local ok, e = xpcall(case.fn, function(m)
        if getmetatable(m) == Skip then return m end
        return debug.traceback(tostring(m), 2)
      end)
      if ok then
        passed = passed + 1
        print(('ok   %-50s %.2fs'):format(case.name, os.clock() - t0))
      elseif getmetatable(e) == Skip then
        skipped = skipped + 1
        print(('SKIP %-50s %s'):format(case.name, e.reason))
      else
        failed = failed + 1
        print(('FAIL %s\n%s'):format(case.name, e))
      end
    end
  end
end
print(('%d passed, %d failed, %d skipped'):format(passed, failed, skipped))
os.exit(failed == 0 and 0 or 1)
