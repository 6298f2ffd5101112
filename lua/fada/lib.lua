-- The Lua half of the fada module: loaded once by luaopen_fada after the C
-- functions are registered. Everything here extends the table that
-- `require 'fada'` returns.
local fada = require 'fada'

require 'fada.docs_math' -- help(x) texts for the math ops (when fada.help is there)

return fada
