-- Command-line flags for scripts: a spec list gives names, types, defaults
-- and help; parse() returns a table or exits with a one-line message.
--
--   local opts = cli.parse(arg, {
--     usage = 'fadalua scripts/sample.lua [flags]',
--     about = 'Makes a talking-head video from a portrait and speech.',
--     {'ref', 'string', 'examples/portrait.png', 'portrait image'},
--     {'steps', 'int', nil, 'sampler steps (default: by mode)'},
--     {'progress', 'bool', true, 'show a progress bar'},
--   })
-- Flags are --name value or --name=value; dashes and underscores are the
-- same (--cfg-ref = cfg_ref); bools take --name / --no-name. The list kinds
-- 'numbers', 'ints' and 'strings' take a comma list (numbers may be ranges
-- lo:hi:step, see M.values) and give a table; a string default is parsed too.
local M = {}

-- ---- lists and ranges (also the grammar of fada.sweep's axes) ----------------------------

local function bad(msg, ...) error(msg:format(...), 0) end

-- Items of a list: commas separate, quotes (' or ") protect commas inside an
-- item ('interval:200,800').
local function split_items(s)
  local items, i = {}, 1
  while i <= #s do
    local q = s:sub(i, i)
    if q == "'" or q == '"' then
      local j = s:find(q, i + 1, true)
      if not j then bad('an unclosed %s quote in "%s"', q, s) end
      items[#items + 1] = s:sub(i + 1, j - 1)
      i = j + 1
      if i <= #s and s:sub(i, i) ~= ',' then bad('text after the quoted value "%s" in "%s"', items[#items], s) end
      i = i + 1
    else
      local j = s:find(',', i, true) or #s + 1
      items[#items + 1] = s:sub(i, j - 1)
      i = j + 1
    end
  end
  return items
end

local function number_of(text, kind)
  local v = tonumber(text)
  if not v then bad("'%s' is not a number", text) end
  if kind == 'int' then
    if v % 1 ~= 0 then bad("'%s' is not an integer", text) end
    v = math.tointeger(v)
  end
  return v
end

-- lo:hi:step, both ends included.
local function range_values(item, lo, hi, step, kind, out)
  lo, hi, step = number_of(lo, kind), number_of(hi, kind), number_of(step, kind)
  if step <= 0 or hi < lo then bad('range %s needs lo <= hi and a step > 0', item) end
  local n = math.floor((hi - lo) / step + 1e-9)
  if n > 10000 then bad('range %s has %d values (at most 10000)', item, n + 1) end
  for k = 0, n do
    local v = lo + k * step
    v = math.abs(v - math.floor(v + 0.5)) < 1e-9 and math.floor(v + 0.5) or v   -- 1 + 10 x 0.1 is 2, not 1.9999
    out[#out + 1] = kind == 'int' and math.tointeger(v) or v
  end
end

local function item_values(item, kind, out)
  if kind == 'string' then out[#out + 1] = item
  elseif kind == 'bool' then
    if item ~= 'true' and item ~= 'false' then bad("'%s' is not true or false", item) end
    out[#out + 1] = item == 'true'
  else
    local lo, hi, step = item:match('^([^:]+):([^:]+):([^:]+)$')
    if lo then range_values(item, lo, hi, step, kind, out) else out[#out + 1] = number_of(item, kind) end
  end
end

-- M.values('1,2,5:8:1', 'int') -> {1, 2, 5, 6, 7, 8}: the values of a comma
-- list of kind 'string', 'bool', 'number' or 'int'; numeric items may be
-- inclusive ranges lo:hi:step (1:6:0.5). Returns the list, or nil and why.
function M.values(text, kind)
  local ok, res = pcall(function()
    local out = {}
    for _, item in ipairs(split_items(text)) do
      if item == '' then bad('an empty value in "%s"', text) end
      item_values(item, kind, out)
    end
    return out
  end)
  if ok then return res end
  return nil, res
end

local function key(name) return (name:gsub('-', '_')) end
local function flag(name) return '--' .. name:gsub('_', '-') end

function M.help(spec)
  local lines = {spec.usage or 'usage: fadalua script.lua [flags]'}
  if spec.about then lines[#lines + 1] = '\n' .. spec.about end
  lines[#lines + 1] = '\nflags:'
  for _, s in ipairs(spec) do
    local name, kind, default, text = s[1], s[2], s[3], s[4]
    local shown = kind == 'bool' and flag(name) .. ' / --no-' .. name:gsub('_', '-') or flag(name) .. ' ' .. kind:upper()
    local def = default ~= nil and (' (default: %s)'):format(tostring(default)) or ''
    lines[#lines + 1] = ('  %-28s %s%s'):format(shown, text or '', def)
  end
  lines[#lines + 1] = ('  %-28s %s'):format('-h, --help', 'show this help')
  return table.concat(lines, '\n')
end

-- The running script's name for messages: scripts/eval.lua -> eval.
local function script_name()
  local path = arg and arg[0]
  return path and (path:match('([^/]*)$'):gsub('%.lua$', '')) or 'fadalua'
end

-- Stops a script on bad input or a failed job: "script: message" on stderr,
-- exit code 2. A message that already starts with the script's name (an
-- error the library raised for it) is not named twice.
function M.fail(msg)
  local name = script_name()
  msg = tostring(msg)
  if msg:sub(1, #name + 2) ~= name .. ': ' then msg = name .. ': ' .. msg end
  io.stderr:write(msg, '\n')
  os.exit(2)
end

local function die(msg) M.fail(msg .. '\n(see --help)') end

local LIST_OF = {numbers = 'number', ints = 'int', strings = 'string'}

-- A flag's text as its kind's value, or a message and exit 2.
local function value_of(s, text)
  local kind = s[2]
  if kind == 'int' or kind == 'number' then
    local v = tonumber(text)
    if not v or (kind == 'int' and math.type(v) ~= 'integer' and v % 1 ~= 0) then
      die(('%s must be %s, got %q'):format(flag(s[1]), kind == 'int' and 'an integer' or 'a number', text))
    end
    return kind == 'int' and math.tointeger(v) or v
  elseif LIST_OF[kind] then
    local v, why = M.values(text, LIST_OF[kind])
    if not v then die(('%s: %s'):format(flag(s[1]), why)) end
    return v
  end
  return text
end

-- A flag's default: list kinds take theirs as text too (it is what --help shows).
local function default_of(s)
  if LIST_OF[s[2]] and type(s[3]) == 'string' then
    return assert(M.values(s[3], LIST_OF[s[2]]))
  end
  return s[3]
end

-- Parses the script's arg table against spec. Returns opts; exits with
-- status 0 after printing help, or 2 with a message on a bad flag.
function M.parse(argv, spec, opts_in)
  local by_key = {}
  local opts = {}
  for _, s in ipairs(spec) do
    by_key[key(s[1])] = s
    opts[key(s[1])] = default_of(s)
  end
  local positional = {}
  local i = 1
  while argv[i] ~= nil do
    local a = argv[i]
    if a == '-h' or a == '--help' then
      print(M.help(spec))
      os.exit(0)
    elseif a:sub(1, 2) == '--' then
      local name, value = a:sub(3):match('^([^=]+)=(.*)$')
      name = name or a:sub(3)
      local negated = false
      local s = by_key[key(name)]
      if not s and name:sub(1, 3) == 'no-' then
        s = by_key[key(name:sub(4))]
        negated = s and s[2] == 'bool'
        if not negated then s = nil end
      end
      if not s then die(('unknown flag %s'):format(a)) end
      local kind = s[2]
      if kind == 'bool' then
        if value then
          if value ~= 'true' and value ~= 'false' then die(('%s takes true or false, got %q'):format(flag(s[1]), value)) end
          opts[key(s[1])] = value == 'true'
        else
          opts[key(s[1])] = not negated
        end
      else
        if not value then
          i = i + 1
          value = argv[i]
          if value == nil then die(('%s needs a value'):format(flag(s[1]))) end
        end
        opts[key(s[1])] = value_of(s, value)
      end
    else
      positional[#positional + 1] = a
    end
    i = i + 1
  end
  if #positional > 0 and not spec.positional then
    die(('unexpected argument %q'):format(positional[1]))
  end
  opts.args = positional
  return opts
end

-- For scripts that parse their own flags: when argv holds -h or --help,
-- prints the script's leading comment block (its usage notes) and exits 0.
function M.help_from_header(argv)
  for _, a in ipairs(argv) do
    if a == '-h' or a == '--help' then
      local f = io.open(argv[0] or '', 'r')
      local lines = {}
      if f then
        for line in f:lines() do
          if not line:match('^%-%-') then break end
          lines[#lines + 1] = line:gsub('^%-%- ?', '')
        end
        f:close()
      end
      print(#lines > 0 and table.concat(lines, '\n') or 'usage: see the comment at the top of ' .. tostring(argv[0]))
      os.exit(0)
    end
  end
end

return M
