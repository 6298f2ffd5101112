-- The Lua half of the fada module: loaded once by luaopen_fada after the C
-- functions are registered. Everything here extends the table that
-- `require 'fada'` returns.
local fada = require 'fada'

fada.autograd = require 'fada.autograd'
fada.F = require 'fada.F' -- also routes fada.* / methods / operators of tracked tensors through the tape

return fada
