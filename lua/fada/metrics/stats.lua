-- Small statistics on Lua arrays of numbers (trajectories are short: a few
-- hundred frames).
local M = {}

function M.mean(v)
  local s = 0
  for i = 1, #v do s = s + v[i] end
  return #v > 0 and s / #v or 0/0
end

function M.std(v)
  local m, s = M.mean(v), 0
  for i = 1, #v do s = s + (v[i] - m) ^ 2 end
  return #v > 0 and math.sqrt(s / #v) or 0/0
end

function M.median(v)
  local s = {}
  for i = 1, #v do s[i] = v[i] end
  table.sort(s)
  local n = #s
  if n == 0 then return 0/0 end
  return n % 2 == 1 and s[(n + 1) // 2] or 0.5 * (s[n // 2] + s[n // 2 + 1])
end

-- Pearson correlation of a and b (same length); 0 when either is constant.
function M.pearson(a, b)
  local n = math.min(#a, #b)
  if n < 2 then return 0 end
  local ma, mb = 0, 0
  for i = 1, n do ma, mb = ma + a[i], mb + b[i] end
  ma, mb = ma / n, mb / n
  local sab, saa, sbb = 0, 0, 0
  for i = 1, n do
    local x, y = a[i] - ma, b[i] - mb
    sab, saa, sbb = sab + x * y, saa + x * x, sbb + y * y
  end
  if saa <= 1e-12 or sbb <= 1e-12 then return 0 end
  return sab / math.sqrt(saa * sbb)
end

function M.mae(a, b)
  local n, s = math.min(#a, #b), 0
  for i = 1, n do s = s + math.abs(a[i] - b[i]) end
  return n > 0 and s / n or 0/0
end

return M
