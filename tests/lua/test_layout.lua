-- The C layout of docs/architecture.md, enforced: which folder of runtime/ and
-- ops/ may include which, and no circles. Read twice: from the #include lines
-- of the sources, and (when the build tree is at hand) from the symbols the
-- core's object files define and use, which catches a call that the include
-- lines hide (a header that declares what another folder defines).

-- The op families: each may use the core, ops/common and ops/backend, and itself.
local FAMILIES = {'attention', 'conv', 'elementwise', 'index', 'matmul', 'norm', 'reduce', 'resample'}

-- folder -> the folders its files may include (and, in the objects, call)
local MAY = {
  ['runtime/core'] = {'runtime/core'},
  ['runtime/io'] = {'runtime/core', 'runtime/io'},
  ['runtime/lua'] = {'runtime/core', 'runtime/io', 'runtime/lua'},
  ['runtime/programs'] = {'runtime/core', 'runtime/lua', 'runtime/programs'},
  ['ops/common'] = {'runtime/core', 'ops/common'},
  ['ops/backend'] = {'runtime/core', 'ops/common', 'ops/backend'},
  ['ops'] = {'runtime/core', 'ops/common'}, -- fd_oplist.h: the one op list, over the families
  ['ops/lua'] = {'runtime/core', 'runtime/lua', 'ops', 'ops/common', 'ops/backend'},
}
for _, f in ipairs(FAMILIES) do
  MAY['ops/' .. f] = {'runtime/core', 'ops/common', 'ops/backend', 'ops/' .. f}
  table.insert(MAY['ops'], 'ops/' .. f)
  table.insert(MAY['ops/lua'], 'ops/' .. f)
end

-- Headers made by the build (CMakeLists.txt), and the folder that may include each.
local GENERATED = {['fd_openers.h'] = 'runtime/lua'}

-- Circles between files that are one idea split for size, with the reason.
local ALLOWED_CIRCLES = {
  ['runtime/core/fd_tensor.c runtime/core/fd_tensor_block.c'] =
    'fd_tensor_copy_ hands blocked operands to fd_tensor_copy_blocked_, which copies plain views with fd_tensor_copy_',
}

local function dirname(p) return p:match('^(.*)/[^/]*$') or '.' end
local function basename(p) return p:match('[^/]*$') end

local function set_of(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end
local MAY_SET = {}
for folder, list in pairs(MAY) do MAY_SET[folder] = set_of(list) end

local function lines_of(cmd)
  local p = assert(io.popen(cmd))
  local out = {}
  for l in p:lines() do out[#out + 1] = l end
  p:close()
  return out
end

-- What a file is within its family: the checks both paths share, a reference
-- kernel, or a fast kernel (anything else).
local function role(path)
  if path:match('_check%.[ch]$') then return 'check' end
  if path:match('_ref%.c$') then return 'ref' end
  return 'fast'
end
local function in_family(path)
  local f = path:match('^ops/([^/]+)/')
  return f and set_of(FAMILIES)[f] and f
end

local circles = dofile(debug.getinfo(1, 'S').source:match('^@(.-)[^/]*$') .. 'circles.lua')

-- Checks the include lines of `files` ({path = source text}); returns a list
-- of problems, each naming the file, the line and the include.
local function check_includes(files)
  local problems, graph = {}, {}
  local function bad(fmt, ...) problems[#problems + 1] = fmt:format(...) end
  local paths, by_name = {}, {}
  for path in pairs(files) do paths[#paths + 1] = path end
  table.sort(paths)
  for _, path in ipairs(paths) do
    local name = basename(path)
    by_name[name] = by_name[name] and by_name[name] .. '" or "' .. path or path
  end
  for _, path in ipairs(paths) do
    local folder = dirname(path)
    graph[path] = graph[path] or {}
    if not MAY_SET[folder] then
      bad('%s: folder %s is not in the layout (add it to docs/architecture.md and to MAY in tests/lua/test_layout.lua)',
          path, folder)
    end
    local n = 0
    for line in (files[path] .. '\n'):gmatch('([^\n]*)\n') do
      n = n + 1
      local inc = line:match('^%s*#%s*include%s*"([^"]+)"')
      if inc then
        local target
        if GENERATED[inc] then
          if GENERATED[inc] ~= folder then
            bad('%s:%d includes "%s": only %s may include this generated header', path, n, inc, GENERATED[inc])
          end
        elseif not inc:find('/') then
          bad('%s:%d includes "%s": name it from the repository root ("%s")', path, n, inc,
              by_name[inc] or folder .. '/' .. inc)
        elseif not files[inc] then
          bad('%s:%d includes "%s", which is not a file of runtime/ or ops/', path, n, inc)
        else
          target = inc
        end
        if target then
          graph[path][target] = true
          local to = dirname(target)
          if MAY_SET[folder] and not MAY_SET[folder][to] then
            bad('%s:%d includes "%s": %s may include only %s', path, n, inc, folder, table.concat(MAY[folder], ', '))
          end
        end
      end
    end
  end
  for _, comp in ipairs(circles(graph)) do
    bad('include circle: %s', table.concat(comp, ' <-> '))
  end
  return problems
end

-- Checks the calls between the core's object files: `defs` {symbol = source},
-- `uses` {source = {symbol, ...}}; returns a list of problems.
local function check_calls(defs, uses)
  local problems, graph, why = {}, {}, {}
  local function bad(fmt, ...) problems[#problems + 1] = fmt:format(...) end
  local sources = {}
  for src in pairs(uses) do sources[#sources + 1] = src end
  table.sort(sources)
  for _, src in ipairs(sources) do
    graph[src] = graph[src] or {}
    local syms = uses[src]
    table.sort(syms)
    for _, sym in ipairs(syms) do
      local dst = defs[sym]
      if dst and dst ~= src then
        graph[src][dst] = true
        why[src .. ' ' .. dst] = why[src .. ' ' .. dst] or sym
        local from, to = dirname(src), dirname(dst)
        -- the module opens every binding file, found by CMake (fd_openers.h)
        local opener = src == 'runtime/lua/fd_module.c' and to == 'ops/lua' and sym:match('^fd_open_')
        if MAY_SET[from] and not MAY_SET[from][to] and not opener then
          bad('%s calls %s, defined in %s: %s may use only %s', src, sym, dst, from, table.concat(MAY[from], ', '))
        end
        local fam = in_family(src)
        if fam and fam == in_family(dst) then
          local r, rd = role(src), role(dst)
          if (r == 'check' and rd ~= 'check') or (r == 'ref' and rd == 'fast') then
            bad('%s calls %s, defined in %s: a %s file of ops/%s may use only %s', src, sym, dst,
                r == 'ref' and 'reference' or 'check', fam,
                r == 'ref' and 'the checks and other references' or 'other checks')
          end
        end
      end
    end
  end
  for _, comp in ipairs(circles(graph)) do
    local key = table.concat(comp, ' ')
    if not ALLOWED_CIRCLES[key] then
      local steps = {}
      for _, a in ipairs(comp) do
        for _, b in ipairs(comp) do
          if graph[a][b] then steps[#steps + 1] = ('%s -> %s (%s)'):format(a, b, why[a .. ' ' .. b]) end
        end
      end
      bad('circle between %s: %s', table.concat(comp, ', '), table.concat(steps, '; '))
    end
  end
  return problems
end

local function report(problems)
  if #problems > 0 then error(#problems .. ' layout problem(s):\n  ' .. table.concat(problems, '\n  '), 0) end
end

test('the checker names the file, the include and the rule (a planted cycle and a wrong-way include)', function()
  local problems = check_includes{
    ['runtime/core/fd_a.h'] = '#include "runtime/core/fd_b.h"\n',
    ['runtime/core/fd_b.h'] = '#include "runtime/core/fd_a.h"\n',
    ['runtime/core/fd_c.c'] = '/* x */\n#include "ops/conv/fd_conv.h"\n',
    ['ops/conv/fd_conv.h'] = '#include "fd_tensor.h"\n',
    ['runtime/bogus/fd_d.c'] = '',
  }
  assert_lines(problems, {
    'include circle: runtime/core/fd_a.h <-> runtime/core/fd_b.h',
    'runtime/core/fd_c.c:2 includes "ops/conv/fd_conv.h": runtime/core may include only runtime/core',
    'ops/conv/fd_conv.h:1 includes "fd_tensor.h": name it from the repository root',
    'runtime/bogus/fd_d.c: folder runtime/bogus is not in the layout',
  })
  -- the object-level check: a reference that takes its check from the fast
  -- file is both a wrong-way call and (with the fallback) a circle
  problems = check_calls({fd_x = 'ops/conv/fd_conv.c', fd_ref_x = 'ops/conv/fd_conv_ref.c', fd_fail = 'runtime/core/fd_error.c',
                          fd_y = 'runtime/lua/fd_module.c'},
                         {['ops/conv/fd_conv.c'] = {'fd_ref_x', 'fd_fail'}, ['ops/conv/fd_conv_ref.c'] = {'fd_x'},
                          ['runtime/core/fd_error.c'] = {'fd_y'}})
  assert_lines(problems, {
    'ops/conv/fd_conv_ref.c calls fd_x, defined in ops/conv/fd_conv.c: a reference file of ops/conv may use only',
    'runtime/core/fd_error.c calls fd_y, defined in runtime/lua/fd_module.c: runtime/core may use only runtime/core',
    'circle between ops/conv/fd_conv.c, ops/conv/fd_conv_ref.c',
  })
end)

test('every #include in runtime/ and ops/ goes the allowed way, and none closes a circle', function()
  local files, count = {}, 0
  for _, path in ipairs(lines_of("find runtime ops -type f -name '*.[ch]' | LC_ALL=C sort")) do
    local f = assert(io.open(path))
    files[path] = f:read('a')
    f:close()
    count = count + 1
  end
  assert(count > 60, 'found only ' .. count .. ' C files under runtime/ and ops/ (run from the source tree)')
  report(check_includes(files))
end)

test('no circle between the core\'s C files, and every call goes the allowed way (nm on the objects)', function()
  local build = dirname(arg[-1]) -- the fadalua running this test
  local objdir = build .. '/CMakeFiles/fada_core.dir'
  local objs = lines_of(("find '%s' -name '*.c.o' 2>/dev/null | LC_ALL=C sort"):format(objdir))
  if #objs == 0 then skip('no object files under ' .. objdir .. ' (an installed fadalua?)') end
  local defs, uses = {}, {}
  for i = 1, #objs, 40 do -- a few nm calls, not one per object
    local batch = {}
    for j = i, math.min(i + 39, #objs) do batch[#batch + 1] = "'" .. objs[j] .. "'" end
    for _, l in ipairs(lines_of('nm -A -g ' .. table.concat(batch, ' '))) do
      local obj, kind, sym = l:match('^(.-%.c%.o):%s*%x*%s+(%a)%s+(%S+)$')
      if obj then
        local src = obj:sub(#objdir + 2, -3) -- runtime/core/fd_tensor.c
        uses[src] = uses[src] or {}
        if kind == 'U' then
          table.insert(uses[src], sym)
        else
          defs[sym] = src
        end
      end
    end
  end
  assert(defs.fd_conv2d and defs.fd_ref_conv2d, 'nm found no fd_conv2d / fd_ref_conv2d in ' .. objdir)
  report(check_calls(defs, uses))
end)
