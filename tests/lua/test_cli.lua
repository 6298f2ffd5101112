-- The fadalua command line, driven through the shell: script arguments and
-- the arg table, -e, -l, stdin, -v, -h, exit codes, tracebacks, unknown
-- options, Ctrl-C, and the REPL when stdin is not a terminal.

local sh = dofile(debug.getinfo(1, 'S').source:match('^@(.-)[^/]*$') .. 'shell_helpers.lua')
local FADALUA, quote, run, contains, lacks = sh.FADALUA, sh.quote, sh.run, sh.contains, sh.lacks
local slurp, write_file, temp_file = sh.slurp, sh.write_file, sh.temp_file

local ARGS_SCRIPT = [[
local n = select('#', ...)
io.write('varargs ', n, ':', table.concat({...}, ','), '\n')
for i = -3, #arg do io.write(i, '=', tostring(arg[i]), ' ') end
io.write('\n')
]]

test('fadalua is found', function()
  assert(FADALUA and FADALUA ~= '', 'arg[-1] should name the fadalua binary')
  local out, _, code = run('-e ' .. quote('print("hi")'))
  assert_eq(out, 'hi\n')
  assert_eq(code, 0)
end)

test('script arguments: ... and the arg table', function()
  local script = temp_file(ARGS_SCRIPT)
  local out, err, code = run(quote(script) .. ' a "b c" -x')
  assert_eq(code, 0, err)
  contains(out, 'varargs 3:a,b c,-x')
  contains(out, '-1=' .. FADALUA .. ' 0=' .. script .. ' 1=a 2=b c 3=-x')
  contains(out, '-2=nil')
  os.remove(script)
end)

test('interpreter options get negative indices in arg', function()
  local script = temp_file(ARGS_SCRIPT)
  local out, err, code = run('-e x=1 ' .. quote(script) .. ' z')
  assert_eq(code, 0, err)
  contains(out, '-3=' .. FADALUA .. ' -2=-e -1=x=1 0=' .. script .. ' 1=z')
  os.remove(script)
end)

test('-- ends the options', function()
  local script = temp_file(ARGS_SCRIPT)
  local out, err, code = run('-- ' .. quote(script) .. ' -e')
  assert_eq(code, 0, err)
  contains(out, 'varargs 1:-e')
  os.remove(script)
end)

test('-e runs chunks in order, before the script', function()
  local script = temp_file('print("script", x)')
  local out, err, code = run('-e "x = 1" -e "x = x + 1; print(x)" ' .. quote(script))
  assert_eq(code, 0, err)
  assert_eq(out, '2\nscript\t2\n')
  local out2 = run('-e"print(7)"')
  assert_eq(out2, '7\n', 'the chunk attached to -e')
  os.remove(script)
end)

test('-l mod and -l g=mod', function()
  local dir = sh.temp_dir()
  write_file(dir .. '/mymod.lua', 'return {answer = 42}')
  local env = 'LUA_PATH=' .. quote(dir .. '/?.lua;;')
  local out, err, code = run('-l mymod -e "print(mymod.answer)"', nil, env)
  assert_eq(code, 0, err)
  assert_eq(out, '42\n')
  out, err, code = run('-l m=mymod -e "print(m.answer, mymod)"', nil, env)
  assert_eq(code, 0, err)
  assert_eq(out, '42\tnil\n')
  out, err, code = run('-lc=fada.complete -e "print(type(c.candidates))"')
  assert_eq(out, 'function\n', err)
  out, err, code = run('-l no_such_module_xyz')
  assert_eq(code, 1)
  contains(err, "module 'no_such_module_xyz' not found", 'stderr')
  os.remove(dir .. '/mymod.lua')
  os.remove(dir)
end)

test('fada is preloaded and global, help is global', function()
  local out, err, code = run('-e ' .. quote(
    'print(package.preload.fada ~= nil, require("fada") == fada, type(fada.zeros), help == fada.help)'))
  assert_eq(code, 0, err)
  assert_eq(out, 'true\ttrue\tfunction\ttrue\n')
  local script = temp_file('print(fada.zeros(2):dtype())')
  out = run(quote(script))
  assert_eq(out, 'f32\n', 'the global fada inside a script')
  os.remove(script)
end)

test('- runs stdin as the script, with arguments', function()
  local out, err, code = run('- p q', 'print("stdin", ...) print(arg[0], arg[1])')
  assert_eq(code, 0, err)
  assert_eq(out, 'stdin\tp\tq\n-\tp\n')
end)

test('piped stdin without a script runs as a script', function()
  local out, err, code = run('', 'local t = fada.ones(3) print(t:numel(), arg[0] ~= nil)')
  assert_eq(code, 0, err)
  assert_eq(out, '3\ttrue\n')
  out, err, code = run('', 'error("from stdin")')
  assert_eq(code, 1)
  contains(err, 'stdin:1: from stdin', 'stderr')
  contains(err, 'stack traceback:', 'stderr')
end)

test('-v prints the versions block', function()
  local out, err, code = run('-v')
  assert_eq(code, 0, err)
  local lines = {}
  for l in out:gmatch('[^\n]+') do lines[#lines + 1] = l end
  assert(lines[1]:match('^fadalua %d+%.%d+%.%d+$'), 'first line: ' .. lines[1])
  assert(lines[2]:match('^Lua 5%.4%.%d+'), 'second line: ' .. tostring(lines[2]))
  for _, piece in ipairs({'oneDNN ', 'OpenBLAS', 'FFmpeg libavcodec', 'libpng', 'libsndfile', 'CPU: ',
                          'avx2 ', 'kernels: ', 'Lua library: '}) do
    contains(out, piece, '-v')
  end
  -- the CPU line agrees with what fada.cpu() reports
  local cpu = fada.cpu()
  contains(out, 'avx2 ' .. (cpu.avx2 and 'yes' or 'no'))
  contains(out, 'avx512f ' .. (cpu.avx512f and 'yes' or 'no'))
  -- AMX and the processor's name, against the kernel's own reading of CPUID (/proc/cpuinfo)
  local f = io.open('/proc/cpuinfo', 'r')
  if f then
    local info = f:read('a')
    f:close()
    local flags = ' ' .. (info:match('\nflags%s*:%s*([^\n]*)') or '') .. ' '
    local amx = flags:find(' amx_bf16 ', 1, true) ~= nil and flags:find(' amx_tile ', 1, true) ~= nil
    assert_eq(cpu.amx_bf16, amx, 'amx_bf16 against /proc/cpuinfo')
    contains(out, 'amx-bf16 ' .. (amx and 'yes' or 'no'))
    local model = info:match('model name%s*:%s*([^\n]-)%s*\n')
    if model then assert_eq(cpu.brand, model, 'brand against /proc/cpuinfo') end
  else
    print('    skipped: no /proc/cpuinfo to check AMX and the processor name against')
  end
  -- -v with a script runs the script too
  out = run('-v -e "print(123)"')
  contains(out, '\n123\n')
end)

test('-h and --help print the usage on stdout', function()
  for _, opt in ipairs({'-h', '--help'}) do
    local out, err, code = run(opt)
    assert_eq(code, 0, opt)
    contains(out, 'usage: fadalua [options] [script [args]]')
    contains(out, '-l g=mod')
    assert_eq(err, '')
  end
end)

test('an unknown option prints the usage on stderr and exits 1', function()
  local out, err, code = run('-x')
  assert_eq(code, 1)
  assert_eq(out, '')
  contains(err, "unrecognized option '-x'", 'stderr')
  contains(err, 'usage: fadalua', 'stderr')
  out, err, code = run('--frobnicate')
  assert_eq(code, 1)
  contains(err, "unrecognized option '--frobnicate'", 'stderr')
  out, err, code = run('-e')
  assert_eq(code, 1)
  contains(err, "'-e' needs an argument", 'stderr')
  out, err, code = run('-ix')
  assert_eq(code, 1)
  contains(err, "unrecognized option '-ix'", 'stderr')
end)

test('errors: message, traceback, exit code 1', function()
  local script = temp_file('local function inner() error("deep trouble") end\nlocal function outer() inner() end\nouter()\n')
  local out, err, code = run(quote(script))
  assert_eq(code, 1)
  assert_eq(out, '')
  contains(err, 'fadalua: ' .. script .. ':1: deep trouble', 'stderr')
  contains(err, 'stack traceback:', 'stderr')
  contains(err, "in upvalue 'inner'", 'stderr')
  contains(err, "in local 'outer'", 'stderr')
  os.remove(script)
end)

test('errors: an error in -e stops before the script', function()
  local script = temp_file('print("should not run")')
  local out, err, code = run('-e "error(\'early\')" ' .. quote(script))
  assert_eq(code, 1)
  lacks(out, 'should not run')
  contains(err, '(command line):1: early', 'stderr')
  os.remove(script)
end)

test('errors: non-string error objects', function()
  local _, err, code = run('-e ' .. quote('error(setmetatable({}, {__tostring = function() return "custom object" end}))'))
  assert_eq(code, 1)
  contains(err, 'fadalua: custom object', 'stderr')
  contains(err, 'stack traceback:', 'stderr')
  _, err, code = run('-e "error({})"')
  assert_eq(code, 1)
  contains(err, '(error object is a table value)', 'stderr')
  _, err, code = run('-e "error(42)"')
  assert_eq(code, 1)
  contains(err, 'fadalua: 42', 'stderr')
end)

test('errors: a tensor error from C carries the traceback', function()
  local _, err, code = run('-e ' .. quote('local t = fada.zeros(2, 3)\nt:get(5, 1)'))
  assert_eq(code, 1)
  contains(err, 'index 5 out of range', 'stderr')
  contains(err, "in method 'get'", 'stderr')
end)

test('errors: missing script file and syntax errors', function()
  local _, err, code = run('/no/such/script.lua')
  assert_eq(code, 1)
  contains(err, 'cannot open /no/such/script.lua', 'stderr')
  local script = temp_file('x = = 1')
  _, err, code = run(quote(script))
  assert_eq(code, 1)
  contains(err, "unexpected symbol near '='", 'stderr')
  os.remove(script)
end)

test('os.exit codes pass through', function()
  local _, _, code = run('-e "os.exit(3)"')
  assert_eq(code, 3)
  _, _, code = run('-e "os.exit(false)"')
  assert_eq(code, 1)
end)

test('LUA_INIT runs first; -E ignores it', function()
  local out = run('-e "print(init_value)"', nil, 'LUA_INIT=' .. quote('init_value = 5'))
  assert_eq(out, '5\n')
  out = run('-E -e "print(init_value)"', nil, 'LUA_INIT=' .. quote('init_value = 5'))
  assert_eq(out, 'nil\n')
end)

test('Ctrl-C stops a running chunk with "interrupted!"', function()
  local errf = os.tmpname()
  -- SIGINT to a busy loop; fadalua must end with the message, not be killed
  local cmd = ('%s -e "while true do end" 2>%s & pid=$!; sleep 0.5; kill -INT $pid; wait $pid; echo $?'):format(
    quote(FADALUA), quote(errf))
  local p = io.popen('sh -c ' .. quote(cmd))
  local code = tonumber(p:read('a'):match('%d+'))
  p:close()
  local err = slurp(errf)
  os.remove(errf)
  assert_eq(code, 1, 'exit code (130 would mean killed by the signal)')
  contains(err, 'interrupted!', 'stderr')
  contains(err, 'stack traceback:', 'stderr')
end)

-- The REPL over a pipe (no terminal: plain reading, same evaluation).
test('-i: REPL reads stdin, prints results without =', function()
  local out, err, code = run('-i', '1 + 1\n"a", 2, nil\nx = 5\nx\n')
  assert_eq(code, 0, err)
  assert_eq(out, '> 2\n> a\t2\tnil\n> > 5\n> \n')
end)

test('-i: multi-line chunks continue with >>', function()
  local out, err, code = run('-i', 'for i = 1, 3 do\nio.write(i, " ")\nend\nfunction f(a,\nb) return a + b end\nf(2, 3)\n')
  assert_eq(code, 0, err)
  assert_eq(out, '> >> >> 1 2 3 > >> > 5\n> \n')
end)

test('-i: an error does not end the session', function()
  local out, err, code = run('-i', 'error("first")\nprint("after")\nfada.zeros(2):get(9)\n41 + 1\n')
  assert_eq(code, 0, err)
  contains(err, 'stdin:1: first')
  lacks(err, 'fadalua: stdin', 'no program name inside the REPL, as lua')
  contains(err, 'stack traceback:')
  contains(err, 'index 9 out of range')
  contains(out, 'after\n')
  contains(out, '42\n')
end)

test('-i: tensors print with the torch-style __tostring', function()
  local out = run('-i', 'fada.tensor{{1, 2}, {3, 4}}\n')
  contains(out, ' 1  2\n 3  4\n[fada.Tensor f32 of size 2x2]\n')
end)

test('-i after a script keeps its globals', function()
  local script = temp_file('answer = 42')
  local out, err, code = run('-i ' .. quote(script), 'answer\n')
  assert_eq(code, 0, err)
  contains(out, '> 42\n')
  os.remove(script)
end)

test('-i: _PROMPT and _PROMPT2 change the prompts', function()
  local out = run('-e "_PROMPT=\'fada> \' _PROMPT2=\'... \'" -i', 'if true then\nend\n')
  assert_eq(out, 'fada> ... fada> \n')
end)

test('-i: plain tables print inline, other values as tostring does', function()
  local out, err, code = run('-i', table.concat({
    'fada.zeros(2, 3):size()',
    '{1, "a", {x = 1}, [10] = true}',
    'local c = {} c.c = c return c',
    'setmetatable({}, {__tostring = function() return "obj" end})',
    '#fada.arange(100):tolist(), fada.arange(100):tolist()',
  }, '\n') .. '\n')
  assert_eq(code, 0, err)
  contains(out, '> {2, 3}\n')
  contains(out, '> {1, "a", {x = 1}, [10] = true}\n')
  contains(out, '> {c = {...}}\n', 'cycles')
  contains(out, '> obj\n')
  contains(out, '> 100\t{0, 1, 2, ')
  contains(out, ', 39, ...}\n', 'long tables are cut')
end)

test('fada.mkdir: parents made, any name, the failing folder named', function()
  local dir = sh.temp_dir()
  local odd = dir .. "/it's \"odd\" $(x)/b//c/"
  fada.mkdir(odd)
  fada.mkdir(odd) -- already there: fine
  fada.mkdir_parent(dir .. '/p/q/file.csv')
  fada.mkdir_parent('bare-name.csv') -- nothing to make
  assert(sh.exists(odd .. '.'), 'made with its parents')
  assert(sh.exists(dir .. '/p/q/.'), 'the parent of a file')
  assert(not sh.exists(dir .. '/p/q/file.csv'), 'not the file itself')
  write_file(dir .. '/f', 'x')
  checkerror(function() fada.mkdir(dir .. '/f/sub') end, "'" .. dir .. "/f' is there and is not a folder")
  checkerror(function() fada.mkdir('') end, 'mkdir: empty path')
  os.execute('rm -rf ' .. quote(dir))
end)

test("cli.fail: 'script: message' on stderr, exit code 2, the name once", function()
  local dir = sh.temp_dir()
  local script = write_file(dir .. '/my_tool.lua', [[
local cli = require 'fada.cli'
local opts = cli.parse(arg, {{'n', 'int', 1, 'a count'}})
cli.fail(opts.n == 1 and 'bad input' or 'my_tool: named already')]])
  local out, err, code = run(quote(script))
  assert_eq(code, 2, err)
  assert_eq(err, 'my_tool: bad input\n')
  assert_eq(out, '')
  _, err, code = run(quote(script) .. ' --n 2')
  assert_eq(err, 'my_tool: named already\n')
  _, err, code = run(quote(script) .. ' --m 2')
  assert_eq(code, 2, err)
  assert_eq(err, 'my_tool: unknown flag --m\n(see --help)\n')
  os.execute('rm -rf ' .. quote(dir))
end)

test('cli lists: numbers, ints and strings from comma lists, ranges lo:hi:step, defaults parsed', function()
  local cli = require 'fada.cli'
  assert_eq(table.concat(cli.values('6,12,20:25:5', 'int'), ','), '6,12,20,25')
  assert_eq(table.concat(cli.values('1:2:0.5,3.5', 'number'), ','), '1,1.5,2,3.5', 'a range lands on whole numbers')
  assert_eq(table.concat(cli.values("a:1,'b,c'", 'string'), '|'), 'a:1|b,c', 'strings: no ranges, quotes keep commas')
  for _, c in ipairs{{'4,x', "'x' is not a number"}, {'4.5', "'4.5' is not an integer"},
                     {'6:1:1', 'range 6:1:1 needs lo <= hi'}, {'1,,2', 'an empty value in "1,,2"'}} do
    local v, why = cli.values(c[1], 'int')
    assert(v == nil and why:find(c[2], 1, true), ('%s: %s'):format(c[1], tostring(why)))
  end
  local spec = {{'steps', 'ints', '6,12', 'steps'}, {'names', 'strings', nil, 'names'}, {'w', 'numbers', '1:2:1', 'scales'}}
  local opts = cli.parse({'--names', 'a,b', '--w=0.5'}, spec)
  assert_eq(table.concat(opts.steps, ','), '6,12', 'a default given as text')
  assert_eq(table.concat(opts.names, ','), 'a,b')
  assert_eq(table.concat(opts.w, ','), '0.5')
  local dir = sh.temp_dir()
  local script = write_file(dir .. '/lists.lua', [[
local cli = require 'fada.cli'
cli.parse(arg, {{'steps', 'ints', '6,12', 'sampling steps'}})]])
  local out, err, code = run(quote(script) .. ' --steps 6,x')
  assert_eq(code, 2, err)
  assert_eq(err, "lists: --steps: 'x' is not a number\n(see --help)\n")
  out = run(quote(script) .. ' --help')
  contains(out, '--steps INTS', 'help')
  contains(out, '(default: 6,12)', 'help')
  os.execute('rm -rf ' .. quote(dir))
end)

test('fada.readable and fada.shell_quote: what a check before a load and a shell command rely on', function()
  local dir = os.tmpname()
  os.remove(dir)
  fada.mkdir(dir)
  local path = dir .. "/it's $HOME `x` \"q\".txt"
  assert_eq(fada.readable(path), false, 'a missing file')
  local f = assert(io.open(path, 'w'))
  f:write('x')
  f:close()
  assert_eq(fada.readable(path), true, 'a file')
  assert_eq(fada.readable(dir), true, 'a folder')
  -- the quoted word reaches the shell as itself: ls finds the file, echo prints it back
  local p = io.popen('ls ' .. fada.shell_quote(path) .. ' && echo ' .. fada.shell_quote(path))
  local out = p:read('a')
  assert(p:close(), out)
  assert_eq(out, path .. '\n' .. path .. '\n')
  os.remove(path)
  os.remove(dir)
end)
