-- The Lua half of the fada module: loaded once by luaopen_fada after the C
-- functions are registered. Everything here extends the table that
-- `require 'fada'` returns.
local fada = require 'fada'

require 'fada.doc' -- fada.doc: documentation next to definitions (fada.help, the REPL's, prints it)
require 'fada.show' -- tostring(tensor), torch style
fada.autograd = require 'fada.autograd'
fada.F = require 'fada.F' -- also routes fada.* / methods / operators of tracked tensors through the tape

return fada
