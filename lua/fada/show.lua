-- Printing tensors, torch7 style: the values in aligned columns (with one
-- common scale factor when they are all very large or very small), 2-d
-- slices of bigger tensors headed "(i,.,.) =", and a footer
-- "[fada.Tensor f32 of size 2x3]". A tensor with more than `threshold`
-- elements is summarised the way PyTorch does: `edgeitems` values at each
-- end of every long dim, "..." between them.
-- Only reads the tensor (size, dtype, tolist, get), so printing never
-- allocates a tensor or depends on the math ops.
local fada = require 'fada'

local M = {
  threshold = 1000, -- more elements than this: summarise
  edgeitems = 3,    -- values kept at each end of a summarised dim
  linewidth = 80,   -- wider matrices print in blocks of columns
}

local floor, abs = math.floor, math.abs
local INTEGER_DTYPES = {i32 = true, i64 = true, u8 = true}

-- The indices shown along a dim of size n: all, or the first and last
-- edgeitems with `false` standing for the "...".
local function shown_indices(n, summarise)
  local idx = {}
  if summarise and n > 2 * M.edgeitems then
    for i = 1, M.edgeitems do idx[#idx + 1] = i end
    idx[#idx + 1] = false
    for i = n - M.edgeitems + 1, n do idx[#idx + 1] = i end
  else
    for i = 1, n do idx[i] = i end
  end
  return idx
end

local function special(v)
  if v ~= v then return 'nan' end
  if v == math.huge then return 'inf' end
  if v == -math.huge then return '-inf' end
end

-- formatter(values, dtype) -> fmt(v) -> string, [scale line]
-- torch7's choice: whole numbers without decimals; 4 decimals; a common
-- scale factor 10^k when the largest magnitude is >= 1e5 or < 0.1;
-- scientific notation when the magnitudes span more than 4 decades.
local function formatter(values, dtype)
  if dtype == 'bool' then return tostring end
  if INTEGER_DTYPES[dtype] then
    return function(v) return ('%d'):format(v) end
  end
  local maxabs, minabs, whole = 0, math.huge, true
  for _, v in ipairs(values) do
    if not special(v) then
      local a = abs(v)
      if a > maxabs then maxabs = a end
      if a > 0 and a < minabs then minabs = a end
      if v ~= floor(v) then whole = false end
    end
  end
  local function with_special(f)
    return function(v) return special(v) or f(v) end
  end
  local sci = with_special(function(v) return ('%.4e'):format(v) end)
  local expmax = maxabs > 0 and floor(math.log(maxabs, 10)) + 1 or 1
  local expmin = minabs < math.huge and floor(math.log(minabs, 10)) + 1 or 1
  if whole then
    if expmax > 9 then return sci end
    return with_special(function(v) return ('%.0f'):format(v) end)
  end
  if expmax - expmin > 4 then return sci end
  if expmax > 5 or expmax < 0 then
    local scale = 10.0 ^ (expmax - 1)
    return with_special(function(v) return ('%.4f'):format(v / scale) end), ('%.0e *'):format(scale)
  end
  return with_special(function(v) return ('%.4f'):format(v) end)
end

local function pad(s, width)
  return (' '):rep(width - #s) .. s
end

-- Element reader: one tolist() for a small tensor, get() per shown
-- element for a summarised one. ix is a table of 1-based indices.
local function reader(t, size, summarise)
  if summarise then
    return function(ix) return t:get(ix) end
  end
  local list, strides, s = t:tolist(), {}, 1
  for d = #size, 1, -1 do strides[d], s = s, s * size[d] end
  return function(ix)
    local k = 1
    for d = 1, #ix do k = k + (ix[d] - 1) * strides[d] end
    return list[k]
  end
end

-- Calls fn(ix) for every shown element (no "..." positions), row-major.
local function each_shown(idx, fn)
  local nd, ix = #idx, {}
  local function walk(d)
    if d > nd then return fn(ix) end
    for _, i in ipairs(idx[d]) do
      if i then
        ix[d] = i
        walk(d + 1)
      end
    end
    ix[d] = nil
  end
  walk(1)
end

local function size_string(size)
  return table.concat(size, 'x')
end

-- The lines of the matrix at leading indices `lead`: rows idx[nd-1],
-- columns idx[nd], cut into blocks of columns that fit linewidth.
local function matrix_lines(lines, get, lead, ri, ci, fmt, width, summarise)
  local per_line = math.max(1, (M.linewidth - 1) // (width + 2))
  if summarise then per_line = #ci end
  local ix = {table.unpack(lead)}
  local r_at, c_at = #lead + 1, #lead + 2
  for c0 = 1, #ci, per_line do
    local c1 = math.min(#ci, c0 + per_line - 1)
    if #ci > per_line then
      if c0 > 1 then lines[#lines + 1] = '' end
      lines[#lines + 1] = ('Columns %d to %d'):format(ci[c0], ci[c1])
    end
    for _, r in ipairs(ri) do
      if not r then
        lines[#lines + 1] = ' ' .. pad('...', width)
      else
        local cells = {}
        ix[r_at] = r
        for c = c0, c1 do
          local col = ci[c]
          if col then
            ix[c_at] = col
            cells[#cells + 1] = pad(fmt(get(ix)), width)
          else
            cells[#cells + 1] = pad('...', width)
          end
        end
        lines[#lines + 1] = ' ' .. table.concat(cells, '  ')
      end
    end
  end
end

-- A 1-d tensor prints as one row, wrapped at linewidth.
local function vector_lines(lines, get, ci, fmt, width)
  local per_line = math.max(1, (M.linewidth - 1) // (width + 2))
  local cells = {}
  for _, i in ipairs(ci) do
    cells[#cells + 1] = pad(i and fmt(get({i})) or '...', width)
    if #cells == per_line then
      lines[#lines + 1] = ' ' .. table.concat(cells, '  ')
      cells = {}
    end
  end
  if #cells > 0 then lines[#lines + 1] = ' ' .. table.concat(cells, '  ') end
end

-- tostring(t) -> the printed form, without a trailing newline
function M.tostring(t)
  if t:is_released() then return '[released tensor]' end
  local size, dtype = t:size(), t:dtype()
  local nd, numel = #size, 1
  for _, n in ipairs(size) do numel = numel * n end
  local footer = ('[fada.Tensor %s of size %s]'):format(dtype, size_string(size))
  if nd == 0 then
    local v = t:get()
    local fmt = formatter({v}, dtype)
    return ' ' .. fmt(v) .. '\n' .. ('[fada.Tensor %s 0-dim]'):format(dtype)
  end
  if numel == 0 then
    return ('[fada.Tensor %s of size %s, empty]'):format(dtype, size_string(size))
  end

  local summarise = numel > M.threshold
  local idx = {}
  for d = 1, nd do idx[d] = shown_indices(size[d], summarise) end
  local get = reader(t, size, summarise)
  local values = {}
  each_shown(idx, function(ix) values[#values + 1] = get(ix) end)
  local fmt, scale = formatter(values, dtype)
  local width = summarise and 3 or 1
  for _, v in ipairs(values) do width = math.max(width, #fmt(v)) end

  local lines = {}
  if scale then lines[1] = scale end
  if nd == 1 then
    vector_lines(lines, get, idx[1], fmt, width)
  elseif nd == 2 then
    matrix_lines(lines, get, {}, idx[1], idx[2], fmt, width, summarise)
  else
    -- every 2-d slice over the leading dims, with "..." where a leading
    -- dim is summarised
    local lead = {}
    local function walk(d)
      if d > nd - 2 then
        if #lines > (scale and 1 or 0) then lines[#lines + 1] = '' end
        lines[#lines + 1] = '(' .. table.concat(lead, ',') .. ',.,.) ='
        matrix_lines(lines, get, lead, idx[nd - 1], idx[nd], fmt, width, summarise)
        return
      end
      for _, i in ipairs(idx[d]) do
        if i then
          lead[d] = i
          walk(d + 1)
        else
          lines[#lines + 1] = ''
          lines[#lines + 1] = ' ...'
        end
      end
      lead[d] = nil
    end
    walk(1)
  end
  lines[#lines + 1] = footer
  return table.concat(lines, '\n')
end

-- fada.set_printoptions{threshold = n, edgeitems = n, linewidth = n}
function M.set_printoptions(opts)
  for _, k in ipairs({'threshold', 'edgeitems', 'linewidth'}) do
    local v = opts[k]
    if v ~= nil then
      if math.type(v) ~= 'integer' or v < 1 then
        error(('set_printoptions: %s must be a positive integer, got %s'):format(k, tostring(v)), 2)
      end
      M[k] = v
    end
  end
end

-- ---- REPL results -------------------------------------------------------

-- How the REPL shows one value: tensors and anything with __tostring as
-- tostring does; a plain table inline and short, {2, 3} or
-- {live = 0, peak = 4096}, instead of "table: 0x...". `budget` caps the
-- entries shown over the whole value.
local function repr(v, depth, budget, seen)
  local tv = type(v)
  if tv == 'string' then return depth > 0 and ('%q'):format(v) or v end
  if tv ~= 'table' then
    if fada.is_tensor(v) and depth > 0 then
      if v:is_released() then return '[released tensor]' end
      return ('[fada.Tensor %s of size %s]'):format(v:dtype(), size_string(v:size()))
    end
    return tostring(v)
  end
  local mt = getmetatable(v)
  if mt ~= nil then return tostring(v) end
  if seen[v] or depth >= 3 then return '{...}' end
  seen[v] = true
  local parts, n = {}, #v
  for i = 1, n do
    if budget[1] <= 0 then parts[#parts + 1] = '...' break end
    budget[1] = budget[1] - 1
    parts[#parts + 1] = repr(v[i], depth + 1, budget, seen)
  end
  local keys = {}
  for k in next, v do
    if not (math.type(k) == 'integer' and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(keys) do
    if budget[1] <= 0 then parts[#parts + 1] = '...' break end
    budget[1] = budget[1] - 1
    local key = type(k) == 'string' and k:match('^[%a_][%w_]*$') and k or ('[' .. repr(k, depth + 1, budget, seen) .. ']')
    parts[#parts + 1] = key .. ' = ' .. repr(v[k], depth + 1, budget, seen)
  end
  seen[v] = nil
  return '{' .. table.concat(parts, ', ') .. '}'
end

-- repl_print(...): what the REPL does with a chunk's results (through the
-- global print, so a redefined print still applies).
function M.repl_print(...)
  local out = table.pack(...)
  for i = 1, out.n do out[i] = repr(out[i], 0, {40}, {}) end
  print(table.unpack(out, 1, out.n))
end

-- Printing must never raise: a broken tensor still says what it is.
local function tensor_tostring(t)
  local ok, s = pcall(M.tostring, t)
  if ok then return s end
  return '[fada.Tensor: cannot print: ' .. tostring(s) .. ']'
end

local meta = debug.getregistry()['fada.Tensor']
meta.__tostring = tensor_tostring
fada.set_printoptions = M.set_printoptions

return M
