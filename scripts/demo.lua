-- make demo: until the sampler and the shipped weights exist, this runs the
-- most complete real job the runtime has. Replaced by scripts/sample.lua.
local fada = require 'fada'
io.write(fada.versions())
local g = fada.Generator(2025)
local x = fada.randn(4, 8, g)
print(('randn(4, 8) from Generator(2025): x[1][1] = %.6f'):format(x:get(1, 1)))
