-- The Lua layers of docs/architecture.md, enforced: every require in
-- lua/fada (at the top of a file or inside a function) goes to the module's
-- own layer or one below it, and no requires close a circle. The C module
-- `fada` (runtime/lua/fd_module.c) counts as the core module that requires
-- what it asks for by name: its Lua half, fada.lib. test_layout.lua does the
-- same for the C folders.
local circles = dofile(debug.getinfo(1, 'S').source:match('^@(.-)[^/]*$') .. 'circles.lua')

-- The layers bottom up, as in the doc's table; `x.*` names every module under x.
local LAYERS = {
  {'core', {'fada', 'fada.lib', 'fada.doc', 'fada.autograd', 'fada.F', 'fada.nn', 'fada.nn.*', 'fada.optim',
            'fada.progress', 'fada.cli', 'fada.show'}},
  {'data', {'fada.data.*'}},
  {'models', {'fada.models', 'fada.models.*'}},
  {'diffusion', {'fada.diffusion.*'}},
  {'pipeline, training', {'fada.pipeline', 'fada.train.*'}},
  {'evaluation, tools', {'fada.metrics', 'fada.metrics.*', 'fada.sweep', 'fada.plot', 'fada.figures',
                         'fada.profile', 'fada.bench.*'}},
  {'REPL', {'fada.help', 'fada.docs_core', 'fada.docs_math', 'fada.complete'}},
}

-- Upward requires not fixed yet, 'from -> to' = why. An entry that no longer
-- matches anything fails too, so the list only shrinks.
local ALLOWED_UP = {}

-- The layer (its index in LAYERS) of a module name; a prefix (the literal
-- part of 'fada.nn.' .. name) matches only the `x.*` entries.
local function layer_of(name, is_prefix)
  for i, layer in ipairs(LAYERS) do
    for _, pat in ipairs(layer[2]) do
      if pat:sub(-2) == '.*' then
        local stem = pat:sub(1, -2)
        if name:sub(1, #stem) == stem and #name >= #stem then return i end
      elseif not is_prefix and name == pat then
        return i
      end
    end
  end
end

-- lua/fada/x/init.lua -> fada.x, lua/fada/x/y.lua -> fada.x.y
local function module_of(path)
  return (path:gsub('^lua/', ''):gsub('/init%.lua$', ''):gsub('%.lua$', ''):gsub('/', '.'))
end

-- The source with comments and long strings blanked (newlines kept, so line
-- numbers hold) and short strings kept, so that only code is searched.
local function code_only(src)
  local out, i, n = {}, 1, #src
  local function blank(a, b)
    out[#out + 1] = src:sub(a, b):gsub('[^\n]', ' ')
    return b + 1
  end
  while i <= n do
    local c = src:sub(i, i)
    local long = src:match('^%-%-%[(=*)%[', i) or src:match('^%[(=*)%[', i)
    if long then
      i = blank(i, select(2, src:find(']' .. long .. ']', i, true)) or n)
    elseif src:find('^%-%-', i) then
      i = blank(i, (src:find('\n', i, true) or n + 1) - 1)
    elseif c == '"' or c == "'" then
      local j = i + 1
      while j <= n and src:sub(j, j) ~= c and src:sub(j, j) ~= '\n' do
        j = j + (src:sub(j, j) == '\\' and 2 or 1)
      end
      out[#out + 1] = src:sub(i, j)
      i = j + 1
    else
      local j = src:find('[%-%[\'"]', i + 1) or n + 1
      out[#out + 1] = src:sub(i, j - 1)
      i = j
    end
  end
  return table.concat(out)
end

-- The requires of one Lua source: {line =, name =, prefix = bool} for each
-- require 'x', require('x'), pcall(require, 'x') and require('x.' .. y);
-- a require of anything else (a variable) is returned with name = nil.
local function requires_of(src)
  local found, n = {}, 0
  for line in (code_only(src) .. '\n'):gmatch('([^\n]*)\n') do
    n = n + 1
    for name, stop in line:gmatch('%f[%w_]require%s*[%(,]?%s*[\'"]([^\'"]*)[\'"]()') do
      found[#found + 1] = {line = n, name = name, prefix = line:find('^%s*%.%.', stop) ~= nil}
    end
    if line:find('%f[%w_]require%s*[%(,]%s*[^\'"%s]') then found[#found + 1] = {line = n} end
  end
  return found
end

-- The requires the C module makes by name (lua_getglobal(L, "require") then
-- lua_pushliteral(L, "x")), as {line =, name =}.
local function c_requires_of(src)
  local found = {}
  local pattern = 'lua_getglobal%(%s*L%s*,%s*"require"%s*%)%s*;%s*()lua_pushliteral%(%s*L%s*,%s*"([^"]+)"'
  for at, name in src:gmatch(pattern) do
    local _, lines = src:sub(1, at):gsub('\n', '')
    found[#found + 1] = {line = lines + 1, name = name}
  end
  return found
end

-- Checks `files` ({path = source}; Lua files under lua/fada, C files of the
-- module under runtime/lua); returns a list of problems, each naming the
-- file, the line, the module and both layers.
local function check_requires(files, allowed)
  allowed = allowed or {}
  local problems, graph, used = {}, {}, {}
  local function bad(fmt, ...) problems[#problems + 1] = fmt:format(...) end
  local paths = {}
  for path in pairs(files) do paths[#paths + 1] = path end
  table.sort(paths)
  for _, path in ipairs(paths) do
    local is_c = path:match('%.c$')
    local from = is_c and 'fada' or module_of(path)
    local lf = layer_of(from)
    graph[from] = graph[from] or {}
    if not lf then bad('%s: module %s is in no layer (add it to docs/architecture.md and to LAYERS in %s)',
                       path, from, 'tests/lua/test_layers.lua') end
    for _, r in ipairs(is_c and c_requires_of(files[path]) or requires_of(files[path])) do
      local lt = r.name and layer_of(r.name, r.prefix)
      local shown = r.name and (r.prefix and r.name .. '*' or r.name)
      if not r.name then
        bad('%s:%d requires a module by a computed name, which this test cannot check', path, r.line)
      elseif r.name:match('^fada') and not lt then
        bad('%s:%d requires %s, which is in no layer', path, r.line, shown)
      elseif lt and lf then
        -- `require 'fada'` gets the C functions, there before the C module
        -- requires fada.lib, so that require closes no circle at load time
        if not r.prefix and not is_c and r.name ~= from then graph[from][r.name] = true end
        local key = from .. ' -> ' .. r.name
        if lt > lf and allowed[key] then
          used[key] = true
        elseif lt > lf then
          bad('%s:%d: %s (%s) requires %s (%s), an upper layer', path, r.line, from, LAYERS[lf][1], shown,
              LAYERS[lt][1])
        end
      end
    end
  end
  for _, comp in ipairs(circles(graph)) do
    bad('require circle: %s', table.concat(comp, ' <-> '))
  end
  for key in pairs(allowed) do
    if not used[key] then bad('allowed upward require %q is no longer made: drop it from ALLOWED_UP', key) end
  end
  table.sort(problems)
  return problems
end

local function report(problems)
  if #problems > 0 then error(#problems .. ' layer problem(s):\n  ' .. table.concat(problems, '\n  '), 0) end
end

local function read(path)
  local f = assert(io.open(path))
  local s = f:read('a')
  f:close()
  return s
end

local function lines_of(cmd)
  local p = assert(io.popen(cmd))
  local out = {}
  for l in p:lines() do out[#out + 1] = l end
  p:close()
  return out
end

test('the checker names the file, the line, the module and both layers (planted)', function()
  local problems = check_requires({
    ['lua/fada/models/x.lua'] = "local a = require 'fada.F'\n-- require 'fada.pipeline'\n"
      .. "local s = [[require 'fada.sweep']]\nlocal function f() return require('fada.pipeline') end\n",
    ['lua/fada/nn/init.lua'] = "local ok = pcall(require, 'fada.nn.' .. name)\nlocal y = require(name)\n",
    ['lua/fada/data/a.lua'] = "require 'fada.data.b'\n",
    ['lua/fada/data/b.lua'] = "\n\nrequire \"fada.data.a\"\n",
    ['lua/fada/bogus.lua'] = '',
    ['runtime/lua/fd_module.c'] = 'x;\n    lua_getglobal(L, "require");\n    lua_pushliteral(L, "fada.help");\n',
    ['lua/fada/train/run.lua'] = "require 'fada.pipeline'\n",
  }, {['fada.train.run -> fada.sweep'] = 'planted'})
  assert_lines(problems, {
    'lua/fada/models/x.lua:4: fada.models.x (models) requires fada.pipeline (pipeline, training), an upper layer',
    'lua/fada/nn/init.lua:2 requires a module by a computed name',
    'require circle: fada.data.a <-> fada.data.b',
    'lua/fada/bogus.lua: module fada.bogus is in no layer',
    'runtime/lua/fd_module.c:3: fada (core) requires fada.help (REPL), an upper layer',
    'allowed upward require "fada.train.run -> fada.sweep" is no longer made',
  })
end)

test('every require in lua/fada goes to its own layer or a lower one, and none closes a circle', function()
  local files, count = {}, 0
  for _, path in ipairs(lines_of("find lua/fada -type f -name '*.lua' | LC_ALL=C sort")) do
    files[path] = read(path)
    count = count + 1
  end
  assert(count > 40, 'found only ' .. count .. ' Lua files under lua/fada (run from the source tree)')
  files['runtime/lua/fd_module.c'] = read('runtime/lua/fd_module.c')
  assert(#c_requires_of(files['runtime/lua/fd_module.c']) > 0, 'fd_module.c requires no Lua module by name any more')
  report(check_requires(files, ALLOWED_UP))
end)

test('the layer table of docs/architecture.md names every module where LAYERS puts it', function()
  local doc = read('docs/architecture.md'):match('\n## Lua library\n(.-)\n##') or read('docs/architecture.md')
  local rows = {}
  for row in doc:gmatch('\n(| [^\n]+ |)') do
    local layer = row:match('^| ([^|]-) |')
    if layer ~= 'layer' and not layer:match('^%-') then rows[#rows + 1] = {layer, row} end
  end
  assert_eq(#rows, #LAYERS, 'rows of the layer table')
  for i, layer in ipairs(LAYERS) do
    assert_eq(rows[i][1], layer[1], 'layer ' .. i)
    local named = {}
    for w in rows[i][2]:gmatch('`([^`]+)`') do named[w] = true end
    for _, pat in ipairs(layer[2]) do
      local stem = pat:gsub('%.%*$', '')
      local some_child = false -- `fada.diffusion.schedule` names fada.diffusion.*
      for w in pairs(named) do some_child = some_child or (pat ~= stem and w:sub(1, #stem + 1) == stem .. '.') end
      assert(named[pat] or named[stem] or named[stem .. '.*'] or some_child or named[stem:match('[^.]+$')],
             ('the %s row of docs/architecture.md does not name %s'):format(layer[1], pat))
    end
  end
end)
