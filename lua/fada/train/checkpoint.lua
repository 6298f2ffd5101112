-- Training checkpoints: weights, optimiser state, EMA weights, generator
-- states and the step in one safetensors file, so a run resumes exactly
-- where it stopped (same seed -> same run, with or without a stop).
--
--   checkpoint.save(path, {model = m, optimizer = opt, ema = ema, config = model_config,
--                          generators = {data = g1, noise = g2}, step = 1200, info = {...}})
--   local st = checkpoint.load(path, {model = m, optimizer = opt, ema = ema,
--                                     generators = {data = g1, noise = g2}})
--   -- st.step, st.info
-- The file is written to a temporary name and renamed, so a stop during a
-- save never leaves a broken checkpoint.
local fada = require 'fada'

local M = {}

local function prefixed(dst, prefix, sd)
  for k, t in pairs(sd) do dst[prefix .. k] = t end
end

local function strip(sd, prefix)
  local out = {}
  for k, t in pairs(sd) do
    if k:sub(1, #prefix) == prefix then out[k:sub(#prefix + 1)] = t end
  end
  return out
end

function M.save(path, parts)
  local tensors = {}
  if parts.model then prefixed(tensors, 'model.', parts.model:state_dict()) end
  if parts.optimizer then prefixed(tensors, 'optim.', parts.optimizer:state_dict()) end
  if parts.ema then prefixed(tensors, 'ema.', parts.ema:state_dict()) end
  local gens = {}
  for name, g in pairs(parts.generators or {}) do
    local st = g:get_state()
    gens[name] = {seed = tostring(st.seed), offset = tostring(st.offset)} -- 64-bit values as strings in JSON
  end
  local meta = {step = tostring(parts.step or 0), generators = gens, info = parts.info or {}}
  local tmp = path .. '.tmp'
  fada.safetensors.save(tmp, tensors, {config = {model = parts.config, checkpoint = meta}})
  local ok, err = os.rename(tmp, path)
  if not ok then error(('checkpoint: cannot rename %s to %s: %s'):format(tmp, path, err), 2) end
end

function M.load(path, parts)
  local tensors, _, config = fada.safetensors.load(path)
  local ck = (config and config.checkpoint) or {}
  if parts.model then parts.model:load_state_dict(strip(tensors, 'model.')) end
  if parts.optimizer then parts.optimizer:load_state_dict(strip(tensors, 'optim.')) end
  if parts.ema then parts.ema:load_state_dict(strip(tensors, 'ema.')) end
  for name, g in pairs(parts.generators or {}) do
    local st = (ck.generators or {})[name]
    if not st then error(("checkpoint: %s has no state for generator '%s'"):format(path, name), 2) end
    g:set_state({seed = math.tointeger(tonumber(st.seed)), offset = math.tointeger(tonumber(st.offset))})
  end
  return {step = math.tointeger(tonumber(ck.step or 0)) or 0, info = ck.info or {}, config = config and config.model}
end

return M
