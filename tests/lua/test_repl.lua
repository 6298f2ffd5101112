-- The REPL: completion candidates and help() called directly, then real
-- sessions on a pseudo-terminal (util-linux `script`), so readline is in
-- charge: TAB completion, results without '=', an error that does not end
-- the session, and history kept across sessions in $HOME/.fadalua_history.

local complete = require 'fada.complete'
local helpmod = require 'fada.help'

local sh = dofile(debug.getinfo(1, 'S').source:match('^@(.-)[^/]*$') .. 'shell_helpers.lua')
local FADALUA, quote, contains, temp_dir = sh.FADALUA, sh.quote, sh.contains, sh.temp_dir

local function same_list(got, expected, what)
  local g, e = table.concat(got, ' '), table.concat(expected, ' ')
  if g ~= e then error(('%s: got {%s}, expected {%s}'):format(what or 'list', g, e), 2) end
end

-- ---- completion ----------------------------------------------------------

test('complete: fields of a module, nested tables', function()
  same_list(complete.candidates('fada.ze'), {'fada.zeros', 'fada.zeros_like'}, 'fada.ze')
  same_list(complete.candidates('fada.lins'), {'fada.linspace'}, 'fada.lins')
  same_list(complete.candidates('fada.Tensor.nar'), {'fada.Tensor.narrow'}, 'nested')
  same_list(complete.candidates('string.rep'), {'string.rep'}, 'string.rep')
  local env = {deep = {a = {bcd = 1, bce = 2, x = 3}}}
  same_list(complete.candidates('deep.a.bc', env), {'deep.a.bcd', 'deep.a.bce'}, 'deep')
end)

test('complete: tensor methods through the metatable', function()
  local env = {t = fada.zeros(2), s = 'text', n = 5}
  same_list(complete.candidates('t:siz', env), {'t:size'}, 't:siz')
  same_list(complete.candidates('t:uns', env), {'t:unsqueeze'}, 't:uns')
  same_list(complete.candidates('s:up', env), {'s:upper'}, 'string methods')
  same_list(complete.candidates('n.x', env), {}, 'a number has no fields')
  -- ':' offers only callables, '.' every field
  local obj = {go = function() end, value = 1}
  same_list(complete.candidates('o:', {o = obj}), {'o:go'}, 'methods only')
  same_list(complete.candidates('o.', {o = obj}), {'o.go', 'o.value'}, 'all fields')
end)

test('complete: globals and keywords', function()
  local env = setmetatable({}, {__index = {printer = 1, prompt = 2}})
  env.pr_local = 3
  same_list(complete.candidates('pr', env), {'pr_local', 'printer', 'prompt'}, 'globals via __index table')
  same_list(complete.candidates('whi', {}), {'while'}, 'keyword')
  same_list(complete.candidates('fun', {}), {'function'}, 'keyword')
  same_list(complete.candidates('3.1', {}), {}, 'a number')
  same_list(complete.candidates('a:b.c', {a = {}}), {}, 'not a path')
end)

test('complete: never runs __index functions', function()
  local called = false
  local lazy = setmetatable({}, {__index = function() called = true return {x = 1} end})
  same_list(complete.candidates('lazy.anything.x', {lazy = lazy}), {}, 'no field through a function')
  assert_eq(called, false, '__index function called')
end)

-- ---- help ----------------------------------------------------------------

test('help: the functions the brief lists are documented', function()
  local names = {'zeros', 'empty', 'ones', 'full', 'arange', 'linspace', 'tensor', 'rand', 'randn', 'randint',
                 'Generator', 'manual_seed', 'set_num_threads', 'memory', 'versions', 'cpu'}
  for _, n in ipairs(names) do
    local text = helpmod.text(fada[n])
    assert(text:find('^fada%.' .. n .. '%('), ('fada.%s: %s'):format(n, text))
  end
  local methods = {'size', 'view', 'reshape', 'narrow', 'select', 'transpose', 'permute', 'expand', 'squeeze',
                   'unsqueeze', 'contiguous', 'clone', 'to', 'copy', 'fill', 'zero', 'get', 'set', 'item',
                   'totable', 'tolist', 'release'}
  for _, m in ipairs(methods) do
    local text = helpmod.text(fada.Tensor[m])
    assert(text:find('^Tensor:' .. m .. '%('), ('Tensor:%s: %s'):format(m, text))
  end
end)

test('help: by value, by name, tensors, modules, overview', function()
  local z = helpmod.text(fada.zeros)
  contains(z, 'fada.zeros(size..., [dtype]) -> Tensor')
  contains(z, "dtype: 'f32'")
  assert_eq(helpmod.text('zeros'), z, 'help "zeros"')
  assert_eq(helpmod.text('fada.zeros'), z, 'help "fada.zeros"')
  contains(helpmod.text('Tensor:size'), 'Tensor:size([dim])')
  contains(helpmod.text('t:size'), 'Tensor:size([dim])')
  local t = fada.zeros(2)
  contains(helpmod.text(t.narrow), 'Tensor:narrow(dim, start, length)')
  local methods = helpmod.text(t)
  contains(methods, 'Tensor:narrow')
  contains(methods, 'Tensor:expand_as  ', 'aliases listed')
  local module = helpmod.text(fada)
  contains(module, '  fada.zeros ')
  contains(module, '  fada.randn ')
  contains(helpmod.text(), 'help(fada)')
end)

test('help: unknown names suggest near ones', function()
  local s = helpmod.text('zeroes')
  contains(s, 'No documentation for zeroes.')
  contains(s, 'fada.zeros')
  contains(helpmod.text('fada.linspac'), 'fada.linspace')
  contains(helpmod.text(function() end), 'No documentation for this function (defined at')
  contains(helpmod.text(42), 'No documentation for number value 42')
end)

test('help: fada.doc documents Lua functions next to their definitions', function()
  local function blur(x, radius) return x end
  assert_eq(fada.doc(blur, 'mylib.blur(x, [radius = 1]) -> Tensor', 'A box blur.\nMore detail.'), blur)
  assert_eq(helpmod.text(blur), 'mylib.blur(x, [radius = 1]) -> Tensor\n  A box blur.\n  More detail.')
  assert_eq(helpmod.text('mylib.blur'), helpmod.text(blur))
  -- a module table lists its documented functions with their first sentence
  local mylib = {blur = blur, other = function() end}
  fada.doc(mylib, 'mylib', 'Image helpers.')
  local s = helpmod.text(mylib)
  contains(s, 'mylib\n  Image helpers.')
  contains(s, '  mylib.blur  A box blur.')
  contains(s, 'Undocumented: other')
  -- a name given as a string resolves when help runs (survives rewrapping)
  fada.doc('fada.later_defined_fn', 'fada.later_defined_fn()', 'Defined after its doc.')
  fada.later_defined_fn = function() end
  local ok, text = pcall(helpmod.text, fada.later_defined_fn)
  fada.later_defined_fn = nil
  assert(ok, text)
  contains(text, 'Defined after its doc.')
  checkerror(function() fada.doc(blur, 42) end, 'signature must be a string')
end)

test('help texts load on the first help, not with require \'fada\'; a name documented before keeps its text', function()
  local out, err, code = sh.run('-e ' .. quote(table.concat({
    "local before = package.loaded['fada.docs_math'] == nil and package.loaded['fada.docs_core'] == nil",
    "fada.doc('fada.add', 'fada.add(mine)', 'My own add.')",
    "print(before, require('fada.help').text('fada.add'), package.loaded['fada.docs_math'] ~= nil)",
  }, '\n')))
  assert_eq(code, 0, err)
  assert_eq(out, 'true\tfada.add(mine)\n  My own add.\ttrue\n')
  contains(helpmod.text('fada.sub'), 'Broadcasts a and b', 'a math text after the first help')
end)

test('help() prints to stdout and returns nothing', function()
  local out = io.popen(quote(FADALUA) .. ' -e "print(select(\'#\', help(fada.ones)))"'):read('a')
  contains(out, 'fada.ones(size..., [dtype]) -> Tensor\n')
  contains(out, '\n0\n')
end)

-- ---- sessions on a pseudo-terminal ---------------------------------------

local function have_script()
  return os.execute('command -v script >/dev/null 2>&1 && command -v timeout >/dev/null 2>&1') == true
end

-- One REPL session: `keys` are typed (all at once; readline reads them in
-- order) and the session ends with end of input. Returns the terminal
-- output with carriage returns and bracketed-paste switches removed.
local function session(home, keys)
  local input = os.tmpname()
  local f = assert(io.open(input, 'wb'))
  f:write(keys)
  f:close()
  local cmd = ('HOME=%s TERM=xterm timeout 20 script -qfec %s /dev/null <%s 2>&1'):format(
    quote(home), quote(quote(FADALUA)), quote(input))
  local p = assert(io.popen(cmd, 'r'))
  local out = p:read('a')
  local _, _, code = p:close()
  os.remove(input)
  out = out:gsub('\27%[%?2004[hl]', ''):gsub('\r', '')
  return out, code
end

test('pty session: completion, results, errors, history', function()
  if not have_script() then skip('util-linux `script` (or coreutils `timeout`) is not installed') end
  local home = temp_dir()
  local out, code = session(home, 'fada.ze\t(2)\nx = 6 * 7\nx, "b"\nerror("boom")\nprint("still " .. x)\n' ..
    't = fada.ones(3)\nt:siz\t()[1]\nprint("hist" .. 6 * 7)\n')
  assert_eq(code, 0, 'exit code of the session:\n' .. out)
  contains(out, 'fadalua ', 'banner')
  -- fada.ze<TAB> became fada.zeros (readline completed the common prefix)
  assert(out:find('> fada%.ze\7?ros%(2%)\n'), 'completion on screen:\n' .. out)
  contains(out, '\n 0  0\n[fada.Tensor f32 of size 2]\n', 'the completed call ran')
  contains(out, '\n42\tb\n', 'results without =, tab-separated')
  contains(out, 'stdin:1: boom\nstack traceback:', 'the error and its traceback')
  contains(out, '\nstill 42\n', 'the session went on after the error')
  contains(out, '\n3\n', 't:siz<TAB> completed to t:size')
  contains(out, '\nhist42\n')
  local h = assert(io.open(home .. '/.fadalua_history')):read('a')
  contains(h, 'fada.zeros(2)\n', 'history holds the completed line')
  contains(h, 't:size()[1]\n')
  contains(h, 'print("hist" .. 6 * 7)\n')
  -- a new session recalls the last line with the up arrow
  local out2 = session(home, '\27[A\n')
  contains(out2, '\nhist42\n', 'history from the previous session')
  os.remove(home .. '/.fadalua_history')
  os.remove(home)
end)

test('pty session: an unwritable or missing HOME only costs the history', function()
  if not have_script() then skip('util-linux `script` (or coreutils `timeout`) is not installed') end
  for _, home in ipairs({'/proc', '/nonexistent/dir'}) do
    local out, code = session(home, '1 + 2\n')
    assert_eq(code, 0, home .. ':\n' .. out)
    contains(out, '\n3\n', home)
    assert(not out:find('history', 1, true), 'no complaint about history: ' .. out)
  end
end)

-- Ctrl-C needs timing (the terminal turns the key into SIGINT when it is
-- typed, not when it is read), so a shell feeds the keys, waiting for
-- marker files that the typed chunks create before it presses Ctrl-C.
test('pty session: Ctrl-C stops a running chunk and clears a line, the REPL goes on', function()
  if not have_script() then skip('util-linux `script` (or coreutils `timeout`) is not installed') end
  local home = temp_dir()
  local running, idle, printing = home .. '/running', home .. '/idle', home .. '/printing'
  local function type_line(lua) return ("printf '%%s\\n' %s; "):format(quote(lua)) end
  local function wait_for(path)
    return ('i=0; while [ ! -e %s ] && [ $i -lt 300 ]; do sleep 0.05; i=$((i+1)); done; '):format(quote(path))
  end
  local feed = '(' ..
    type_line(('io.open(%q, "w"):close() while true do end'):format(running)) ..
    wait_for(running) .. "sleep 0.3; printf '\\003'; " ..
    type_line(('print("alive") io.open(%q, "w"):close()'):format(idle)) ..
    wait_for(idle) .. "sleep 0.5; printf abc; sleep 0.3; printf '\\003'; sleep 0.3; " ..
    type_line('print("after")') ..
    -- printing a result runs Lua code too (__tostring): Ctrl-C stops it
    type_line(('setmetatable({}, {__tostring = function() io.open(%q, "w"):close() while true do end end})')
      :format(printing)) ..
    wait_for(printing) .. "sleep 0.3; printf '\\003'; sleep 0.3; " ..
    type_line('print("printed")') .. ')'
  local cmd = ('%s | HOME=%s TERM=xterm timeout 30 script -qfec %s /dev/null 2>&1'):format(
    feed, quote(home), quote('exec ' .. quote(FADALUA)))
  local p = assert(io.popen(cmd, 'r'))
  local out = p:read('a'):gsub('\27%[%?2004[hl]', ''):gsub('\r', '')
  local _, _, code = p:close()
  assert_eq(code, 0, 'exit code:\n' .. out)
  contains(out, 'interrupted!\nstack traceback:', 'the loop was stopped')
  contains(out, '\nalive\n', 'the REPL survived')
  assert(out:find('> a?b?c?%^C\n> print%("after"%)'), 'Ctrl-C at the prompt drops the line:\n' .. out)
  contains(out, '\nafter\n')
  contains(out, "error calling 'print' (interrupted!", 'the endless __tostring was stopped')
  contains(out, '\nprinted\n', 'and the REPL went on')
  for _, f in ipairs({running, idle, printing, home .. '/.fadalua_history'}) do os.remove(f) end
  os.remove(home)
end)
