-- Classifier-free guidance as strategies that turn a conditional denoiser
-- into the `model(x, t, i)` a sampler calls, counting the network
-- evaluations (NFE) they really make.
--
-- The conditional denoiser is `denoise(x, t, branches, extra)`: x is a batch
-- [B, ...]; `branches` lists the conditioning of each block of B rows when
-- the batch is repeated, from
--   'base'  no reference, no audio
--   'ref'   reference only
--   'audio' reference and audio (fully conditioned)
--   'tokens' the student's single pass, with extra = {w_ref =, w_audio =}
-- and it returns the stacked outputs [#branches · B, ...]. Running all the
-- branches of a step as one batch is what makes the 3-pass teacher cheap.
local fada = require 'fada'

local M = {}

-- ---- guidance-scale schedules over the steps ----------------------------
-- Each returns f(i, n, t) -> scale for step i of n at timestep t.
M.schedule = {}

function M.schedule.constant(w) return function() return w end end

-- from w0 at the first step to w1 at the last
function M.schedule.linear(w0, w1)
  return function(i, n) return n <= 1 and w0 or w0 + (w1 - w0) * (i - 1) / (n - 1) end
end

-- cosine from w0 (first step) to w1 (last step)
function M.schedule.cosine(w0, w1)
  return function(i, n)
    local u = n <= 1 and 0 or (i - 1) / (n - 1)
    return w1 + (w0 - w1) * 0.5 * (1 + math.cos(math.pi * u))
  end
end

-- w inside the timestep interval [t_lo, t_hi], `outside` (default 1 = no guidance) elsewhere
function M.schedule.interval(w, t_lo, t_hi, outside)
  outside = outside or 1
  return function(_, _, t) return (t >= t_lo and t <= t_hi) and w or outside end
end

-- A number, a schedule function, or a spec string: "linear:4,1", "cosine:5,1",
-- "interval:3,200,800".
function M.schedule.from(spec)
  if type(spec) == 'number' then return M.schedule.constant(spec) end
  if type(spec) == 'function' then return spec end
  if type(spec) == 'string' then
    local kind, args = spec:match('^(%a+):(.+)$')
    local nums = {}
    for v in (args or ''):gmatch('[^,]+') do nums[#nums + 1] = tonumber(v) end
    local make = kind and M.schedule[kind]
    if make and kind ~= 'from' and #nums >= 1 then return make(table.unpack(nums)) end
  end
  error(("cfg: a scale must be a number, a function(i, n, t) or 'linear:w0,w1' / 'cosine:w0,w1' / " ..
         "'interval:w,t_lo,t_hi', got %s"):format(tostring(spec)), 2)
end

-- ---- strategies -------------------------------------------------------------

-- A strategy object: s.model is the sampler's model(x, t, i); s.nfe counts
-- network evaluations (one per batch block per call); s.steps is set by the
-- caller (the number of sampler steps) so schedules know n.
local function strategy(branches_per_call, step)
  local s = {nfe = 0, calls = 0, steps = 1}
  s.model = function(x, t, i)
    s.nfe = s.nfe + branches_per_call
    s.calls = s.calls + 1
    return step(x, t, i, s.steps)
  end
  return s
end

-- Rows k of an output stacked by branch: [n·B, ...] -> the k-th [B, ...].
local function block(out, k, B) return out:narrow(1, (k - 1) * B + 1, B) end

-- No guidance: the fully conditioned pass only (1 NFE per step).
function M.none(denoise)
  return strategy(1, function(x, t) return denoise(x, t, {'audio'}) end)
end

-- Single-condition CFG: ε_u + w (ε_c − ε_u), both passes in one batch.
-- uncond/cond name branches ('base'/'audio' by default).
function M.single(denoise, w, opts)
  opts = opts or {}
  local wf = M.schedule.from(w)
  local u, c = opts.uncond or 'base', opts.cond or 'audio'
  return strategy(2, function(x, t, i, n)
    local B = x:size(1)
    local out = denoise(fada.cat({x, x}, 1), t, {u, c})
    local eu, ec = block(out, 1, B), block(out, 2, B)
    return eu + (ec - eu) * wf(i, n, t)
  end)
end

-- Nested multi-CFG (FADA's teacher, 3 NFE per step):
--   ε = ε_base + w_ref (ε_ref − ε_base) + w_audio (ε_audio − ε_ref)
-- With w_ref = w_audio = 1 it is exactly ε_audio.
function M.multi(denoise, w_ref, w_audio)
  local wr, wa = M.schedule.from(w_ref), M.schedule.from(w_audio)
  return strategy(3, function(x, t, i, n)
    local B = x:size(1)
    local out = denoise(fada.cat({x, x, x}, 1), t, {'base', 'ref', 'audio'})
    local eb, er, ea = block(out, 1, B), block(out, 2, B), block(out, 3, B)
    return M.mix(eb, er, ea, wr(i, n, t), wa(i, n, t))
  end)
end

-- The nested mixing formula, shared by outputs and CFG tokens alike.
function M.mix(base, ref, audio, w_ref, w_audio)
  return base + (ref - base) * w_ref + (audio - ref) * w_audio
end

-- The student's token mode (FADA-Fast, 1 NFE per step): the scales go into
-- the learnable CFG tokens instead of into extra passes.
function M.tokens(denoise, w_ref, w_audio)
  local wr, wa = M.schedule.from(w_ref), M.schedule.from(w_audio)
  return strategy(1, function(x, t, i, n)
    return denoise(x, t, {'tokens'}, {w_ref = wr(i, n, t), w_audio = wa(i, n, t)})
  end)
end

return M
