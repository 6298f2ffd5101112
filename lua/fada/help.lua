-- Documentation for functions and modules: the registry (fada.doc, the
-- core's) that any module fills next to its definitions,
--
--   fada.doc(fada.zeros, 'fada.zeros(size..., [dtype]) -> Tensor', 'Zeros ...')
--   fada.doc('Tensor:size', 'Tensor:size([dim]) -> table | integer', '...')
--
-- and help(x), which prints it (the global `help` in fadalua, fada.help).
-- A target named by a string is looked up when help needs it, so the doc
-- survives the function being wrapped or replaced later; the first word of
-- the signature names a target given by value. The docs of the C functions
-- live in docs_core.lua and docs_math.lua, loaded the first time help is
-- asked for, so that `require 'fada'` does not read them.
local fada = require 'fada'

local registry = require 'fada.doc'

local M = {}

local entries, by_value = registry.entries, registry.by_value
local texts_loaded = false

M.doc = registry.doc

-- The texts of the C functions. docs_math was read with the module, before
-- any user code, so a name documented since keeps its own text.
local function load_texts()
  if texts_loaded then return end
  texts_loaded = true
  local doc = fada.doc
  fada.doc = function(target, signature, text)
    local name = type(target) == 'string' and target or signature:match('^[%w_%.:]+')
    if entries[name] then return target end
    return doc(target, signature, text)
  end
  local ok, err = pcall(require, 'fada.docs_math')
  fada.doc = doc
  if not ok then error(err, 0) end
  require 'fada.docs_core'
end

-- "fada.zeros" -> fada.zeros, "Tensor:size" -> fada.Tensor.size, "string.rep"
-- -> the global's field; nil when it does not exist. Reads with rawget only.
local function resolve(name)
  local v
  for part in name:gsub(':', '.'):gmatch('[^%.]+') do
    if v == nil then
      if part == 'fada' then v = fada
      elseif part == 'Tensor' then v = fada.Tensor
      else v = rawget(_G, part) end
    elseif type(v) == 'table' then
      v = rawget(v, part)
    else
      return nil
    end
    if v == nil then return nil end
  end
  return v
end

local function entry_of(v)
  if by_value[v] then return by_value[v] end
  for name, e in pairs(entries) do
    if resolve(name) == v then return e end
  end
end

-- The doc's first sentence on one line, for lists.
local function summary(e)
  local s = e.text:match('^(.-)\n\n') or e.text
  s = s:gsub('%s+', ' ')
  s = s:match('^(.-%.)%s') or s
  if #s > 72 then s = s:sub(1, 69) .. '...' end
  return s
end

local function indent(text)
  return '  ' .. text:gsub('\n', '\n  ')
end

local function format_entry(e)
  if e.text == '' then return e.signature end
  return e.signature .. '\n' .. indent(e.text)
end

-- The documented and undocumented functions of a table (module or class),
-- following a __index table (a tensor's methods).
local function list_table(t, label, sep)
  local documented, undocumented = {}, {}
  for k, v in pairs(t) do
    if type(k) == 'string' and (type(v) == 'function' or type(v) == 'table') then
      if entry_of(v) then
        documented[#documented + 1] = k
      elseif type(v) == 'function' then
        undocumented[#undocumented + 1] = k
      end
    end
  end
  table.sort(documented)
  table.sort(undocumented)
  local lines = {}
  local width = 0
  for _, k in ipairs(documented) do width = math.max(width, #k) end
  for _, k in ipairs(documented) do
    local e = entry_of(t[k])
    local short = e.name:match('[^%.:]+$')
    local what = short == k and summary(e) or ('the same as %s'):format(e.name)
    lines[#lines + 1] = ('  %s%s%s  %s'):format(label .. sep, k, (' '):rep(width - #k), what)
  end
  if #undocumented > 0 then
    lines[#lines + 1] = 'Undocumented: ' .. table.concat(undocumented, ', ')
  end
  return table.concat(lines, '\n')
end

local function levenshtein(a, b)
  if #a > 64 or #b > 64 then return math.huge end
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = {[0] = i}
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

-- Up to 5 documented names near `name` (by edit distance of the whole name
-- or its last part, or sharing a prefix).
local function near_names(name)
  local short = name:match('[^%.:]+$') or name
  local scored = {}
  for n in pairs(entries) do
    local nshort = n:match('[^%.:]+$') or n
    local d = math.min(levenshtein(name, n), levenshtein(short, nshort))
    if nshort:sub(1, #short) == short and #short >= 2 then d = math.min(d, 1) end
    if d <= math.max(2, #short // 3) then scored[#scored + 1] = {n, d} end
  end
  table.sort(scored, function(x, y) return x[2] < y[2] or (x[2] == y[2] and x[1] < y[1]) end)
  local out = {}
  for i = 1, math.min(5, #scored) do out[i] = scored[i][1] end
  return out
end

local function unknown(what)
  local s = ('No documentation for %s.'):format(what)
  local near = near_names(what)
  if #near > 0 then s = s .. ' Did you mean: ' .. table.concat(near, ', ') .. '?' end
  return s
end

-- "fada.ops" for an undocumented table found in fada or as a global.
local function name_of(x)
  for k, v in pairs(fada) do
    if v == x and type(k) == 'string' then return 'fada.' .. k end
  end
  for k, v in pairs(_G) do
    if v == x and type(k) == 'string' then return k end
  end
end

local OVERVIEW = [[
fadalua: Lua 5.4 with tensors. The module `fada` is also the global `fada`.
  help(fada)          the documented functions of fada
  help(fada.Tensor)   the tensor methods (help(t) for a tensor t works too)
  help(fada.zeros)    one function; help 'zeros' or help 'Tensor:size' also work
  fada.doc(fn, 'name(args) -> result', 'what it does')   documents your own
In the REPL: TAB completes names and fields (fada.ze<TAB>, t:si<TAB>),
an expression prints its value, a chunk may span lines, Ctrl-C stops a
running chunk, history is kept in ~/.fadalua_history.]]

-- text(x) -> the help for x as a string (what help(x) prints)
function M.text(...)
  load_texts()
  if select('#', ...) == 0 then return OVERVIEW end
  local x = ...
  if fada.is_tensor(x) or (type(x) == 'userdata' and getmetatable(x) == debug.getregistry()['fada.Tensor']) then
    x = fada.Tensor
  end
  if type(x) == 'string' then
    local name = x:gsub('^t:', 'Tensor:'):gsub('^fada%.Tensor[%.:]', 'Tensor:')
    local e = entries[name] or entries['fada.' .. name] or entries['Tensor:' .. name]
    if e then return format_entry(e) end
    local v = resolve(name)
    if type(v) == 'function' or type(v) == 'table' then return M.text(v) end
    return unknown(name)
  end
  local e = entry_of(x)
  if type(x) == 'table' then
    local label = e and e.name or (x == fada.Tensor and 'Tensor') or name_of(x)
    local head = e and format_entry(e) or (label and label .. ' (no module documentation)') or
      'A table without documentation.'
    local sep = label == 'Tensor' and ':' or '.'
    local listing = list_table(x, label or '?', sep)
    return listing ~= '' and head .. '\n' .. listing or head
  end
  if e then return format_entry(e) end
  if type(x) == 'function' then
    local info = debug.getinfo(x, 'S')
    local where = info.what == 'C' and 'a C function' or ('defined at %s:%d'):format(info.short_src, info.linedefined)
    return ('No documentation for this function (%s).'):format(where)
  end
  return ('No documentation for %s value %s.'):format(type(x), tostring(x))
end

-- help([x]): prints the documentation of x, or an overview
function M.help(...)
  io.write(M.text(...), '\n')
end

-- names() -> sorted list of the documented names
function M.names()
  load_texts()
  local out = {}
  for n in pairs(entries) do out[#out + 1] = n end
  table.sort(out)
  return out
end

fada.help = M.help

return M
