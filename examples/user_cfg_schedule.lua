-- A guidance schedule of your own, without recompiling: strong guidance while
-- the layout forms, fading linearly to none (scale 1) at the last step.
--   build/fadalua scripts/sample.lua --cfg-schedule file:examples/user_cfg_schedule.lua
-- The file returns function(w) -> a number or a function(i, n, t) -> scale for
-- step i of n at timestep t; it is applied to w_ref and w_audio alike.
return function(w)
  return function(i, n)
    if n <= 1 then return w end
    return w + (1 - w) * (i - 1) / (n - 1)
  end
end
