-- Shell helpers shared by the tests that drive the fadalua binary
-- (test_cli.lua, test_repl.lua, test_*_cli.lua):
-- local sh = dofile(<this dir> .. 'shell_helpers.lua').
local sh = {}

-- The binary running the tests: `fadalua tests/lua/run.lua tests/lua/test_x.lua`.
sh.FADALUA = arg[-1]
local FADALUA = sh.FADALUA

function sh.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

function sh.slurp(path)
  local f = assert(io.open(path, 'rb'))
  local s = f:read('a')
  f:close()
  return s
end

function sh.write_file(path, text)
  local f = assert(io.open(path, 'wb'))
  f:write(text)
  f:close()
  return path
end

function sh.temp_file(text)
  return sh.write_file(os.tmpname(), text)
end

-- sh.run(args, [stdin_text], [env]) -> stdout, stderr, exit code
-- args is shell text after the program name; env a prefix like "A=1".
function sh.run(args, stdin_text, env)
  local errf = os.tmpname()
  local inf = stdin_text and sh.temp_file(stdin_text) or '/dev/null'
  local cmd = ('%s %s %s <%s 2>%s'):format(env or '', sh.quote(FADALUA), args, sh.quote(inf), sh.quote(errf))
  local p = assert(io.popen(cmd, 'r'))
  local out = p:read('a')
  local _, _, code = p:close()
  local err = sh.slurp(errf)
  os.remove(errf)
  if stdin_text then os.remove(inf) end
  return out, err, code
end

-- sh.script(name, args) -> stdout and stderr together, exit code:
-- `fadalua scripts/<name>.lua <args>` (args is shell text).
function sh.script(name, args)
  local p = assert(io.popen(('%s scripts/%s.lua %s 2>&1'):format(sh.quote(FADALUA), name, args)))
  local out = p:read('a')
  local ok, _, code = p:close()
  return out, ok and 0 or code
end

function sh.exists(path)
  local f = io.open(path, 'rb')
  if f then f:close() end
  return f ~= nil
end

function sh.contains(s, piece, what)
  if not s:find(piece, 1, true) then
    error(('%s: expected to find %q in:\n%s'):format(what or 'output', piece, s), 2)
  end
end

function sh.lacks(s, piece, what)
  if s:find(piece, 1, true) then
    error(('%s: did not expect %q in:\n%s'):format(what or 'output', piece, s), 2)
  end
end

-- sh.csv_rows(path, ncols) -> {[step] = "the ncols columns after the step"}, count:
-- a training run's loss.csv without its timing columns (they differ run to run).
-- A step logged twice is an error.
function sh.csv_rows(path, ncols)
  local rows, n = {}, 0
  local pattern = '^(%d+),(' .. ('[^,]*,'):rep(ncols - 1) .. '[^,]*),'
  for line in io.lines(path) do
    local step, rest = line:match(pattern)
    if step then
      assert(rows[tonumber(step)] == nil, 'step ' .. step .. ' logged twice in ' .. path)
      rows[tonumber(step)], n = rest, n + 1
    end
  end
  return rows, n
end

-- sh.resume_rows(script, args, dir, steps, ncols): runs `script` for `steps`
-- steps in dir/whole, and in dir/parts stopped after step 1 (--max-minutes 0)
-- then resumed; both must exit 0, the second part must say it resumed at step 1.
-- Returns the two runs' loss.csv rows (sh.csv_rows), each checked to have `steps` lines.
function sh.resume_rows(script, args, dir, steps, ncols)
  local function go(out_dir, extra)
    local out, code = sh.script(script, ('%s --out %s --steps %d %s'):format(args, sh.quote(out_dir), steps, extra))
    assert(code == 0, out)
    return out
  end
  go(dir .. '/whole', '')
  local first = go(dir .. '/parts', '--max-minutes 0')
  assert(first:find('stopped at step 1 ', 1, true), first)
  local second = go(dir .. '/parts', '')
  assert(second:find('resuming .* at step 1'), second)
  local a, na = sh.csv_rows(dir .. '/whole/loss.csv', ncols)
  local b, nb = sh.csv_rows(dir .. '/parts/loss.csv', ncols)
  assert(na == steps and nb == steps, ('%d and %d loss.csv lines, expected %d'):format(na, nb, steps))
  return a, b
end

function sh.temp_dir()
  local d = os.tmpname()
  os.remove(d)
  fada.mkdir(d)
  return d
end

return sh
