-- Timing of the elementwise and reduction fast paths, single-threaded (os.clock
-- is CPU time, so one thread keeps it honest), against PyTorch's CPU kernels
-- under /usr/bin/python3 when available. Usage: fadalua scripts/bench_math.lua [n]
require('fada.cli').help_from_header(arg)
local fada = require 'fada'
fada.set_num_threads(1)
local n = tonumber(arg and arg[1]) or 1 << 24
local G = fada.Generator(1)
local a, b = fada.randn(n, G), fada.randn(n, G)
local m = a:view(n // 1024, 1024)
local row, col = fada.randn(1024, G), fada.randn(n // 1024, 1, G)
local out = fada.empty(n)

local function time(fn)
  fn()
  local reps, t0 = 0, os.clock()
  repeat fn(); reps = reps + 1 until os.clock() - t0 > 0.5
  return (os.clock() - t0) / reps
end

local cases = {
  {'add(a, b, out)',  function() fada.add(a, b, out) end, 12},
  {'mul(a, 2.5, out)', function() fada.mul(a, 2.5, out) end, 8},
  {'m + row (out)',   function() fada.add(m, row, out:view(n // 1024, 1024)) end, 8},
  {'m * col (out)',   function() fada.mul(m, col, out:view(n // 1024, 1024)) end, 8},
  {'exp(a, out)',     function() fada.exp(a, out) end, 8},
  {'a:sum()',         function() a:sum() end, 4},
  {'m:sum(2)',        function() m:sum(2) end, 4},
  {'m:sum(1)',        function() m:sum(1) end, 4},
  {'m:max(2)',        function() m:max(2) end, 4},
  {'m:var(2)',        function() m:var(2) end, 8},
}
local ours = {}
print(('n = %d f32 elements, 1 thread'):format(n))
for i, c in ipairs(cases) do
  local s = time(c[2])
  ours[i] = s
  print(('%-18s %8.2f ms  %6.2f GB/s'):format(c[1], s * 1e3, c[3] * n / s / 1e9))
end

if os.execute('/usr/bin/python3 -c "import torch" >/dev/null 2>&1') then
  local py = ([[
import torch, time
torch.set_num_threads(1)
n = %d
a, b = torch.randn(n), torch.randn(n)
m = a.view(n // 1024, 1024)
row, col, out = torch.randn(1024), torch.randn(n // 1024, 1), torch.empty(n)
o2 = out.view(n // 1024, 1024)
cases = [lambda: torch.add(a, b, out=out), lambda: torch.mul(a, 2.5, out=out),
         lambda: torch.add(m, row, out=o2), lambda: torch.mul(m, col, out=o2),
         lambda: torch.exp(a, out=out), lambda: a.sum(), lambda: m.sum(1), lambda: m.sum(0),
         lambda: m.max(1), lambda: m.var(1)]
for f in cases:
    f(); reps = 0; t0 = time.process_time()
    while time.process_time() - t0 < 0.5:
        f(); reps += 1
    print((time.process_time() - t0) / reps)
]]):format(n)
  local path = os.tmpname()
  local f = assert(io.open(path, 'w')); f:write(py); f:close()
  local p = io.popen('/usr/bin/python3 ' .. path)
  print('\ntorch (1 thread): time ratio fada / torch')
  local i = 0
  for line in p:lines() do
    i = i + 1
    print(('%-18s %8.2f ms  ratio %.2f'):format(cases[i][1], tonumber(line) * 1e3, ours[i] / tonumber(line)))
  end
  p:close()
  os.remove(path)
end
