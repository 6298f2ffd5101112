-- The sweep of docs/sweeps.md: the shipped teacher at 6, 12 and 25 steps and the
-- distilled student in both modes at its 6, each over the same 3 x 3 guidance
-- grid, on 4 held-out clips. A list of two tables: the sweep is the union of
-- their products (27 teacher jobs, then 18 student jobs).
--   build/fadalua scripts/sweep.lua --file examples/sweep_modes.lua --out runs/sweep --shards 2 --threads 1 --list \
--     | parallel -j 2
--   build/fadalua scripts/sweep.lua --file examples/sweep_modes.lua --out runs/sweep merge
local grid = {w_ref = {1, 2, 3}, w_audio = {1, 3.5, 6}, clips = 4}
local function with_grid(t)
  for k, v in pairs(grid) do t[k] = v end
  return t
end
return {
  with_grid{model = 'weights/fada-teacher.safetensors', mode = 'teacher', steps = {6, 12, 25}},
  with_grid{model = 'weights/fada-student.safetensors', mode = {'balanced', 'fast'}, steps = 6},
}
