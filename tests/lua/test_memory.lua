-- Memory stays bounded without collectgarbage(): the binding tells the
-- collector about C bytes, and the pool recycles same-sized buffers.
local fada = require 'fada'

local function peak_rss_mib()
  local f = assert(io.open('/proc/self/status'))
  local s = f:read('a')
  f:close()
  return tonumber(s:match('VmHWM:%s+(%d+) kB')) / 1024
end

test('10,000 iterations making a 4 MiB tensor keep peak RSS under 300 MiB', function()
  local sum = 0
  for i = 1, 10000 do
    local t = fada.zeros(1024, 1024) -- 4 MiB, dropped each iteration
    t:set(1, 1, i)
    sum = sum + t:get(1, 1)
  end
  assert_eq(sum, 10000 * 10001 / 2)
  local rss = peak_rss_mib()
  print(('  peak RSS %.0f MiB, pool hits %d, misses %d'):format(rss, fada.memory().pool_hits, fada.memory().pool_misses))
  assert(rss < 300, ('peak RSS %.0f MiB >= 300 MiB'):format(rss))
end)

test('views keep their storage alive after the base is dropped', function()
  local v
  do
    local base = fada.arange(10):to('f32')
    v = base:narrow(1, 4, 3)
  end
  collectgarbage()
  assert_close(v:tolist(), {3, 4, 5})
end)

test('the pool reuses buffers and the limit trims it', function()
  local m0 = fada.memory()
  for _ = 1, 20 do fada.empty(256, 1024):release() end -- 1 MiB each
  local m1 = fada.memory()
  assert(m1.pool_hits - m0.pool_hits >= 19, 'pool should serve repeated same-size allocations')
  fada.set_pool_limit(0)
  assert_eq(fada.memory().pooled, 0)
  fada.set_pool_limit(1 << 30)
end)
