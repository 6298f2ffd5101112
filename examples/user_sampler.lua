-- A sampler of your own, without recompiling: deterministic DDIM written out.
--   build/fadalua scripts/sample.lua --sampler file:examples/user_sampler.lua
-- The file returns a function with the contract of fada.diffusion.samplers:
--   sampler(model, x_T, schedule, timesteps, opts) -> x_0
-- model(x, t, i) gives the network's raw output at timestep t on step i
-- (already guided: multi-CFG or the student's tokens); schedule converts it;
-- opts.callback(i, t, x, x0) drives the progress bar. Change a line, rerun.
return function(model, x, sched, ts, opts)
  opts = opts or {}
  for i, t in ipairs(ts) do
    local x0, eps = sched:to_x0_eps(x, t, model(x, t, i))   -- the clean latent and the noise it implies
    local a_next = sched:alpha_bar(ts[i + 1] or -1)           -- -1: the clean end, alpha_bar = 1
    x = x0 * math.sqrt(a_next) + eps * math.sqrt(1 - a_next) -- jump to the next noise level along eps
    if opts.callback then opts.callback(i, t, x, x0) end
  end
  return x
end
