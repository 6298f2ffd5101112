-- Small statistics on Lua arrays of numbers (trajectories are short: a few
-- hundred frames), and the symmetric eigen-decomposition the Fréchet
-- distance needs.
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

-- Eigenvalues and eigenvectors of a symmetric matrix (Lua table of rows),
-- cyclic Jacobi: returns values {λ1..λn} and vectors V (columns) with
-- A = V diag(λ) Vᵀ. Fine for n up to a few hundred.
function M.eigh(A)
  local n = #A
  local a, V = {}, {}
  for i = 1, n do
    a[i], V[i] = {}, {}
    for j = 1, n do a[i][j], V[i][j] = A[i][j], i == j and 1 or 0 end
  end
  for _ = 1, 60 do
    local off = 0
    for i = 1, n - 1 do for j = i + 1, n do off = off + a[i][j] * a[i][j] end end
    local diag = 0
    for i = 1, n do diag = diag + a[i][i] * a[i][i] end
    if off <= 1e-22 * math.max(diag, 1e-300) then break end
    for p = 1, n - 1 do
      local ap = a[p]
      for q = p + 1, n do
        local apq = ap[q]
        if math.abs(apq) > 1e-300 then
          local aq = a[q]
          local theta = (aq[q] - ap[p]) / (2 * apq)
          local t = (theta >= 0 and 1 or -1) / (math.abs(theta) + math.sqrt(theta * theta + 1))
          local c = 1 / math.sqrt(t * t + 1)
          local s = t * c
          for k = 1, n do -- rows p and q of A·J, columns by symmetry
            local ak = a[k]
            local akp, akq = ak[p], ak[q]
            ak[p], ak[q] = c * akp - s * akq, s * akp + c * akq
          end
          for k = 1, n do
            local apk, aqk = ap[k], aq[k]
            ap[k], aq[k] = c * apk - s * aqk, s * apk + c * aqk
          end
          for k = 1, n do
            local vk = V[k]
            local vkp, vkq = vk[p], vk[q]
            vk[p], vk[q] = c * vkp - s * vkq, s * vkp + c * vkq
          end
        end
      end
    end
  end
  local vals = {}
  for i = 1, n do vals[i] = a[i][i] end
  return vals, V
end

return M
