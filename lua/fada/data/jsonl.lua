-- JSON lines for the dataset manifest: one flat object (strings, numbers,
-- booleans) per line. Small on purpose; nested values are refused.
local M = {}

local ESC = {['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f', ['\n'] = '\\n', ['\r'] = '\\r',
             ['\t'] = '\\t'}

local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c) return ESC[c] or ('\\u%04x'):format(c:byte()) end) .. '"'
end

local function encode_value(v, key)
  local t = type(v)
  if t == 'string' then return encode_string(v) end
  if t == 'boolean' then return tostring(v) end
  if t == 'number' then
    if v ~= v or v == math.huge or v == -math.huge then
      error(('jsonl.encode: field %q is %s, not a finite number'):format(key, v), 3)
    end
    if math.type(v) == 'integer' then return tostring(v) end
    return ('%.17g'):format(v)
  end
  error(('jsonl.encode: field %q is a %s; only strings, numbers and booleans'):format(key, t), 3)
end

-- One line (no newline) for a flat table; keys sorted, or in `order` first.
function M.encode(obj, order)
  local keys, seen = {}, {}
  for _, k in ipairs(order or {}) do
    if obj[k] ~= nil then keys[#keys + 1], seen[k] = k, true end
  end
  local rest = {}
  for k in pairs(obj) do if not seen[k] then rest[#rest + 1] = k end end
  table.sort(rest)
  for _, k in ipairs(rest) do keys[#keys + 1] = k end
  local parts = {}
  for i, k in ipairs(keys) do parts[i] = encode_string(k) .. ':' .. encode_value(obj[k], k) end
  return '{' .. table.concat(parts, ',') .. '}'
end

local UNESC = {['"'] = '"', ['\\'] = '\\', ['/'] = '/', b = '\b', f = '\f', n = '\n', r = '\r', t = '\t'}

-- A flat object from one line. `where` names the line in errors.
function M.decode(line, where)
  where = where or 'jsonl.decode'
  local pos = 1
  local function fail(msg) error(('%s: %s at column %d'):format(where, msg, pos), 0) end
  local function ws() pos = line:find('[^ \t\r\n]', pos) or #line + 1 end
  local function str()
    if line:sub(pos, pos) ~= '"' then fail('expected a string') end
    pos = pos + 1
    local out = {}
    while true do
      local c = line:sub(pos, pos)
      if c == '' then fail('unterminated string') end
      if c == '"' then pos = pos + 1; break end
      if c == '\\' then
        local e = line:sub(pos + 1, pos + 1)
        if e == 'u' then
          local code = tonumber(line:sub(pos + 2, pos + 5), 16) or fail('bad \\u escape')
          out[#out + 1] = utf8.char(code)
          pos = pos + 6
        else
          out[#out + 1] = UNESC[e] or fail('bad escape')
          pos = pos + 2
        end
      else
        out[#out + 1] = c
        pos = pos + 1
      end
    end
    return table.concat(out)
  end
  local obj = {}
  ws()
  if line:sub(pos, pos) ~= '{' then fail('expected {') end
  pos = pos + 1
  ws()
  if line:sub(pos, pos) == '}' then return obj end
  while true do
    ws()
    local k = str()
    ws()
    if line:sub(pos, pos) ~= ':' then fail('expected :') end
    pos = pos + 1
    ws()
    local c = line:sub(pos, pos)
    if c == '"' then obj[k] = str()
    elseif line:sub(pos, pos + 3) == 'true' then obj[k], pos = true, pos + 4
    elseif line:sub(pos, pos + 4) == 'false' then obj[k], pos = false, pos + 5
    else
      local num = line:match('^-?%d+%.?%d*[eE]?[-+]?%d*', pos)
      if not num or num == '' then fail('expected a string, number or boolean') end
      obj[k] = math.tointeger(tonumber(num)) or tonumber(num)
      pos = pos + #num
    end
    ws()
    c = line:sub(pos, pos)
    pos = pos + 1
    if c == '}' then return obj end
    if c ~= ',' then fail('expected , or }') end
  end
end

-- All objects of a .jsonl file (blank lines skipped).
function M.read(path)
  local f, err = io.open(path, 'r')
  if not f then error(('jsonl.read: %s'):format(err), 2) end
  local out, n = {}, 0
  for line in f:lines() do
    n = n + 1
    if line:find('%S') then out[#out + 1] = M.decode(line, ('%s:%d'):format(path, n)) end
  end
  f:close()
  return out
end

return M
