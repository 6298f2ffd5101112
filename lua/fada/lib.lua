-- The Lua half of the fada module: loaded once by luaopen_fada after the C
-- functions are registered. Everything here extends the table that
-- `require 'fada'` returns.
local fada = require 'fada'

return fada
