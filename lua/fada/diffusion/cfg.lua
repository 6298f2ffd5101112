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
local cli = require 'fada.cli'
local user_code = require 'fada.diffusion.user_code'
local guidance_mix = require 'fada.models.guidance_mix'

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

-- ---- the one grammar of a schedule (--cfg-schedule, sweeps, code) --------

M.schedule.GRAMMAR = 'constant | linear | cosine | interval:T_LO,T_HI | file:PATH.lua, or with scales of its own: '
  .. 'constant:W | linear:W0,W1 | cosine:W0,W1 | interval:W,T_LO,T_HI[,OUTSIDE]'

local function bad(msg, ...) error(msg:format(...), 0) end

local S = M.schedule
-- Each spelling by its name and count of numbers; base() is the scale w the
-- caller gives (the flags' --cfg-ref / --cfg-audio), used where the spec has none.
local SPELLINGS = {
  constant = {[0] = function(base) return base() end, [1] = function(_, n) return n[1] end},
  linear = {[0] = function(base) return S.linear(base(), 1) end, [2] = function(_, n) return S.linear(n[1], n[2]) end},
  cosine = {[0] = function(base) return S.cosine(base(), 1) end, [2] = function(_, n) return S.cosine(n[1], n[2]) end},
  interval = {[2] = function(base, n) return S.interval(base(), n[1], n[2]) end,
              [3] = function(_, n) return S.interval(n[1], n[2], n[3]) end,
              [4] = function(_, n) return S.interval(n[1], n[2], n[3], n[4]) end},
}

-- A file's function(w) -> a number or f(i, n, t), applied to w.
local function from_file(spec, w)
  local make = user_code.load(spec, 'cfg_schedule')
  local ok, s = pcall(make, w)
  if not ok then bad('%s failed for w = %g: %s', spec, w, tostring(s)) end
  if type(s) ~= 'number' and type(s) ~= 'function' then
    bad('%s must give a number or a function(i, n, t) for w = %g, gave a %s', spec, w, type(s))
  end
  return s
end

-- S.parse(spec, w) -> a number or f(i, n, t): spec is a number or a function
-- (returned as is) or a string of S.GRAMMAR; the spellings without scales of
-- their own shape w (linear: from w at the first step to 1, no guidance, at
-- the last). Raises a plain message (no position) naming the spec.
function S.parse(spec, w)
  if type(spec) == 'number' or type(spec) == 'function' then return spec end
  local function base()
    if w == nil then bad("'%s' shapes a given scale w; give its scales too (e.g. linear:4,1)", tostring(spec)) end
    return w
  end
  if user_code.is_file(spec) then return from_file(spec, base()) end
  local kind, args = tostring(spec):match('^(%a+):(.+)$')
  local n = {}
  if args then
    local why
    n, why = cli.values(args, 'number')
    if not n then bad("'%s': %s", spec, why) end
  end
  local make = SPELLINGS[kind or spec] and SPELLINGS[kind or spec][#n]
  if not make then bad("must be %s, got '%s'", S.GRAMMAR, tostring(spec)) end
  return make(base, n)
end

-- A strategy's scale as f(i, n, t): a number, a function, or a schedule
-- string with its scales ('linear:4,1', 'interval:3,200,800').
function S.from(spec)
  local ok, s = pcall(S.parse, spec)
  if not ok then error(('cfg: a scale must be a number, a function(i, n, t) or a schedule string; %s'):format(s), 2) end
  return type(s) == 'number' and S.constant(s) or s
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

-- The nested mixing formula, shared by outputs and CFG tokens alike (it
-- lives in fada.models, which mixes the tokens and may not require this layer).
M.mix = guidance_mix

-- The student's token mode (FADA-Fast, 1 NFE per step): the scales go into
-- the learnable CFG tokens instead of into extra passes.
function M.tokens(denoise, w_ref, w_audio)
  local wr, wa = M.schedule.from(w_ref), M.schedule.from(w_audio)
  return strategy(1, function(x, t, i, n)
    return denoise(x, t, {'tokens'}, {w_ref = wr(i, n, t), w_audio = wa(i, n, t)})
  end)
end

return M
