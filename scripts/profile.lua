-- fadalua scripts/profile.lua SCRIPT [args...]: runs a script with every
-- fada function and tensor method timed (fada.profile) and prints where the
-- wall time went, function by function, when it ends.
--
--   fadalua scripts/profile.lua scripts/train_teacher.lua --out /tmp/p --steps 5
--   fadalua scripts/profile.lua scripts/sample.lua --steps 6
if not arg[1] or arg[1] == '--help' or arg[1] == '-h' then
  print('usage: fadalua scripts/profile.lua SCRIPT [args...]\n\nRuns SCRIPT with its arguments under ' ..
        'fada.profile and prints the functions that took the\nwall time (exclusive time, calls, ms per call) to stderr.')
  os.exit(arg[1] and 0 or 2)
end
local profile = require 'fada.profile'
local script = arg[1]
local f, err = loadfile(script)
if not f then require('fada.cli').fail(err) end
local args = {}
for i = 2, #arg do args[i - 1] = arg[i] end
args[0] = script
arg = args
profile.start()
f(table.unpack(args))
profile.report(40)
