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

function sh.temp_dir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute('mkdir ' .. sh.quote(d)))
  return d
end

return sh
