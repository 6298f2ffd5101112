-- The Lua half of the fada module: loaded once by luaopen_fada after the C
-- functions are registered. Everything here extends the table that
-- `require 'fada'` returns.
local fada = require 'fada'

require 'fada.doc' -- fada.doc: documentation next to definitions (fada.help, the REPL's, prints it)
require 'fada.show' -- tostring(tensor), torch style
fada.autograd = require 'fada.autograd'
fada.F = require 'fada.F' -- also routes fada.* / methods / operators of tracked tensors through the tape

-- Two file-system helpers every layer needs (fada.mkdir is C's).
function fada.readable(path)
  local f = io.open(path, 'rb')
  if f then f:close() end
  return f ~= nil
end
fada.doc(fada.readable, 'fada.readable(path) -> boolean',
  'Whether path exists and opens for reading (a folder does too): the check before a load, so a\n' ..
  'missing file is refused with its name rather than met halfway.')

function fada.shell_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
fada.doc(fada.shell_quote, 'fada.shell_quote(s) -> string',
  "s as one word for /bin/sh (single quotes; a ' inside becomes '\\''), for os.execute and io.popen.")

return fada
