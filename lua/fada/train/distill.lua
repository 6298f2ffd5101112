-- Distillation pieces (FADA's mixed-supervised multi-CFG distillation, as this
-- project reconstructs it; docs/distillation.md), as pure functions so a
-- researcher swaps one without touching the training loop:
--
--   D.ddim_target(sched, x_t, t, x_next, t_next) -> the prediction (in the
--       schedule's parameterisation) whose one DDIM step from x_t at t lands
--       exactly on x_next at t_next;
--   D.teacher_target(guided, sched, x_t, t, t_next, substeps) -> that
--       prediction for where the guided teacher gets to in `substeps` DDIM
--       steps: several teacher steps collapsed into one student step
--       (progressive-distillation style). substeps = 1 gives the teacher's
--       guided output itself, the paper's "‖ε_stu − ε_tea‖²" form;
--   D.LossMixer{share = 0.5, decay = 0.99, fixed = false} -> the adaptive
--       mixer of the teacher-matching and ground-truth losses (fixed = true:
--       the plain weighted sum, the ablation).
local fada = require 'fada'

local M = {}

-- The prediction that one DDIM (eta = 0) step turns from (x_t, t) into x_next
-- at t_next (t_next = -1: the clean end, ᾱ = 1). With x0 the implied clean
-- latent and ε = (x_t − √ᾱ x0)/√(1−ᾱ), the step gives √ᾱ' x0 + √(1−ᾱ') ε;
-- setting that to x_next and solving for x0:
--   x0 = (x_next − k x_t) / (√ᾱ' − k √ᾱ),  k = √(1−ᾱ') / √(1−ᾱ).
function M.ddim_target(sched, x_t, t, x_next, t_next)
  local a, an = sched:alpha_bar(t), sched:alpha_bar(t_next)
  local sa, s1, san, s1n = math.sqrt(a), math.sqrt(1 - a), math.sqrt(an), math.sqrt(1 - an)
  if s1 == 0 then error(('ddim_target: t = %d has no noise to remove'):format(t), 2) end
  local k = s1n / s1
  local x0 = (x_next - x_t * k) * (1 / (san - k * sa))
  local eps = (x_t - x0 * sa) * (1 / s1)
  return sched:target(x0, eps, t)
end

-- Teacher timesteps from t down to t_next in `substeps` equal parts (t_next
-- itself is not evaluated: the last substep lands there).
function M.substep_times(t, t_next, substeps)
  local ts = {}
  for j = 0, substeps - 1 do ts[#ts + 1] = math.floor(t - j * (t - t_next) / substeps + 0.5) end
  return ts
end

-- guided(x, t) -> the teacher's guided prediction (e.g. the multi-CFG mix).
function M.teacher_target(guided, sched, x_t, t, t_next, substeps)
  substeps = substeps or 1
  if substeps == 1 then return guided(x_t, t) end
  local ts = M.substep_times(t, t_next, substeps)
  local x = x_t
  for i, ti in ipairs(ts) do
    local x0, eps = sched:to_x0_eps(x, ti, guided(x, ti))
    x = sched:ddim_step(x0, eps, ts[i + 1] or t_next)
  end
  return M.ddim_target(sched, x_t, t, x, t_next)
end

-- ---- the adaptive loss mixer ----------------------------------------------------------

-- Each term is divided by its running mean (an EMA of its detached value), so
-- both pull with the same strength whatever their scale, and the sum is
-- scaled back by the mixed running mean so the step size stays that of a
-- plain MSE. This is uncertainty weighting's optimum (Kendall et al. 2018:
-- weights 1/L_i) without its extra parameters. `share` is the ground-truth
-- term's share (0: teacher matching only; 1: ground truth only). A batch
-- without a trustworthy ground truth (moderate-quality data) passes gt = nil
-- and trains on the teacher term alone.
local LossMixer = {}
LossMixer.__index = LossMixer

function M.LossMixer(opts)
  opts = opts or {}
  local share = opts.share or 0.5
  if share < 0 or share > 1 then error(('LossMixer: share must be in [0, 1], got %s'):format(share), 2) end
  return setmetatable({share = share, decay = opts.decay or 0.99, fixed = opts.fixed, mean = {}}, LossMixer)
end

local function track(self, key, v)
  local m = self.mean[key]
  self.mean[key] = m and m * self.decay + v * (1 - self.decay) or v
  return self.mean[key]
end

-- mix(distill, gt) -> the combined loss (a graph tensor) and the weights used {distill =, gt =}.
function LossMixer:mix(distill, gt)
  local md = track(self, 'distill', distill:item())
  if not gt or self.share == 0 then return distill, {distill = 1, gt = 0} end
  local mg = track(self, 'gt', gt:item())
  if self.share == 1 then return gt, {distill = 0, gt = 1} end
  if self.fixed then return distill * (1 - self.share) + gt * self.share, {distill = 1 - self.share, gt = self.share} end
  local scale = (1 - self.share) * md + self.share * mg
  local wd, wg = scale * (1 - self.share) / md, scale * self.share / mg
  return distill * wd + gt * wg, {distill = wd, gt = wg}
end

-- The running means as strings (for a checkpoint's JSON info) and back.
function LossMixer:state()
  local s = {}
  for k, v in pairs(self.mean) do s[k] = ('%.17g'):format(v) end
  return s
end

function LossMixer:load_state(s)
  self.mean = {}
  for k, v in pairs(s or {}) do self.mean[k] = tonumber(v) end
end

return M
