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
-- same (--cfg-ref = cfg_ref); bools take --name / --no-name.
local M = {}

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

-- Parses the script's arg table against spec. Returns opts; exits with
-- status 0 after printing help, or 2 with a message on a bad flag.
function M.parse(argv, spec, opts_in)
  local by_key = {}
  local opts = {}
  for _, s in ipairs(spec) do
    by_key[key(s[1])] = s
    opts[key(s[1])] = s[3]
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
        if kind == 'int' or kind == 'number' then
          local v = tonumber(value)
          if not v or (kind == 'int' and math.type(v) ~= 'integer' and v % 1 ~= 0) then
            die(('%s must be %s, got %q'):format(flag(s[1]), kind == 'int' and 'an integer' or 'a number', value))
          end
          opts[key(s[1])] = kind == 'int' and math.tointeger(v) or v
        else
          opts[key(s[1])] = value
        end
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
