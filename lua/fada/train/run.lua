-- What the training scripts (train_teacher, distill_student) share: the
-- flags of an optimiser run, a batch encoded to latents, the per-clip audio
-- windows, the mouth-weighted loss map, and loss.csv kept in step with the
-- checkpoint (plus its PNG plot).
local fada = require 'fada'
local A = require 'fada.autograd'
local optim = require 'fada.optim'
local avatars = require 'fada.data.avatars'
local progress = require 'fada.progress'

local M = {}

-- M.flags(spec, defaults): appends the flags every run has to a cli.parse
-- spec; defaults = {steps =, lr =, warmup =, ema =, ckpt_every =} per script.
function M.flags(spec, d)
  local list = {
    {'steps', 'int', d.steps, 'optimiser steps in all'},
    {'batch', 'int', 4, 'clips per step (each clip is F frames)'},
    {'lr', 'number', d.lr, 'peak learning rate'},
    {'warmup', 'int', d.warmup, 'warm-up steps'},
    {'weight_decay', 'number', 0.01, 'AdamW weight decay'},
    {'ema', 'number', d.ema, 'EMA decay of the weights'},
    {'lip_weight', 'number', 4, 'extra loss weight on the mouth region (0 = plain MSE)'},
    {'clip_grad', 'number', 1.0, 'gradient norm limit'},
    {'ckpt_every', 'int', d.ckpt_every, 'steps between checkpoints'},
    {'log_every', 'int', 10, 'steps between loss.csv lines'},
    {'seed', 'int', 1, 'seed of the data order and the noise'},
    {'threads', 'int', nil, 'threads (default: all cores)'},
    {'max_minutes', 'number', nil, 'stop (with a checkpoint) after this many minutes'},
    {'stop_at', 'int', nil, 'stop (with a checkpoint) after this step; the schedule stays that of --steps'},
    {'dtype', 'string', 'f32', "the model passes' compute dtype: f32 | bf16 (mixed precision: weights, gradients and " ..
     'optimiser state stay f32) | auto (bf16 where the CPU has AVX512-BF16 or AMX)'},
    {'tune', 'string', 'host', 'kernel variants: 0 (oneDNN), 1 (OpenBLAS matmul, conv on the layout as it lies), ' ..
     'host (0 where the CPU has AVX-512, whose oneDNN matmuls train faster; 1 elsewhere) or auto (timed; not bit-repeatable)'},
    {'prefetch', 'bool', true, 'decode the next batch\'s clips on background threads'},
    {'export', 'string', nil, 'write the EMA weights of the last checkpoint to this path (f16) and exit'},
    {'export_raw', 'bool', false, 'with --export: the raw weights instead of the EMA (which lags early in a run)'},
  }
  for _, f in ipairs(list) do spec[#spec + 1] = f end
  return spec
end

-- Threads and kernel variants as the flags say. One variant per op instead of
-- timing both per shape: a resumed run then repeats an uninterrupted one bit for bit.
function M.setup(opts)
  io.stdout:setvbuf('line') -- a run's log file gets each line when it is printed, not at exit (runs are often killed)
  if opts.threads then fada.set_num_threads(opts.threads) end
  if opts.tune == 'host' then opts.tune = fada.cpu().avx512f and '0' or '1' end
  if opts.tune ~= 'auto' and opts.tune ~= '0' and opts.tune ~= '1' then
    require('fada.cli').fail(("--tune must be 0, 1, host or auto, got '%s'"):format(opts.tune))
  end
  fada.ops.tune(opts.tune == 'auto' and 'auto' or math.tointeger(tonumber(opts.tune)))
  local dtype, err = require('fada.pipeline').resolve_dtype(opts.dtype)
  if not dtype then require('fada.cli').fail(err) end
  opts.dtype = dtype
  fada.set_compute_dtype(dtype)
  fada.mkdir(opts.out)
end

-- A loader audio callback: each clip's windows computed once, cut per sample.
function M.audio_windows(model)
  local windows_of = setmetatable({}, {__mode = 'k'})
  return function(clip, start, n)
    local w = windows_of[clip]
    if not w then
      w = model:audio_windows(clip.audio, model.config.audio.sample_rate, clip.frames:size(1))   -- [T, n_mels, W]
      windows_of[clip] = w
    end
    return w:narrow(1, start, n)
  end
end

-- A loader batch as latents (no gradient: E is fixed):
-- x0 [B·F, Cl, h, w], ref [B, Cl, h, w], motion [B, M, Cl, h, w] or nil.
function M.encode_batch(model, b)
  local c = model.config
  local B, Fr, Mf, S = b.frames:size(1), c.clip_frames, c.motion_frames, c.image_size
  return A.no_grad(function()
    local x0 = model:encode(b.frames:view(B * Fr, 3, S, S))                      -- [B·F, Cl, h, w]
    local ref = model:encode(b.ref)                                             -- [B, Cl, h, w]
    local mot
    if Mf > 0 then
      local m = model:encode(b.motion:reshape(B * Mf, 3, S, S))                 -- [B·M, Cl, h, w]
      mot = m:view(B, Mf, m:size(2), m:size(3), m:size(4))                       -- [B, M, Cl, h, w]
    end
    return x0, ref, mot
  end)
end

-- The parameters a run trains: all of model's, or with patterns (Lua
-- patterns, anchored to the whole name) only those whose names match one; the
-- rest are frozen (no gradient, so backward skips their weight gradients).
-- Returns the {name =, tensor =} list, or nil and a message naming a pattern
-- that matches nothing.
function M.trained_parameters(model, patterns)
  local all = model:named_parameters()
  if not patterns or #patterns == 0 then return all end
  local hits, keep = {}, {}
  for _, p in ipairs(all) do
    for i, pat in ipairs(patterns) do
      local ok, m = pcall(string.match, p.name, '^' .. pat .. '$')
      if not ok then return nil, ("'%s' is not a Lua pattern: %s"):format(pat, tostring(m):gsub('^.-: ', '')) end
      if m then keep[p], hits[i] = true, true end
    end
  end
  local list = {}
  for _, p in ipairs(all) do
    if keep[p] then list[#list + 1] = p else A.requires_grad(p.tensor, false) end
  end
  for i, pat in ipairs(patterns) do
    if not hits[i] then
      local names = {}
      for j = 1, math.min(#all, 4) do names[j] = all[j].name end
      return nil, ("'%s' matches no parameter (names look like %s, ...)"):format(pat, table.concat(names, ', '))
    end
  end
  return list
end

-- One optimiser update from loss: gradients, clipping, the scheduled learning
-- rate, the step and the EMA of the weights. Returns the gradient norm before clipping.
function M.update(loss, opt, ema, params, clip_grad, lr)
  opt:zero_grad()
  A.backward(loss)
  local gnorm = optim.clip_grad_norm(params, clip_grad)
  opt.lr = lr
  opt:step()
  ema:update()
  return gnorm
end

-- M.loop(opts, step, label, fns): optimiser steps step+1 .. opts.steps. For
-- each, fns.step(s) with the new step number s; every opts.log_every steps
-- fns.log(s) (returns the progress bar's fields); fns.save() every
-- opts.ckpt_every steps and at the end. Stops early (with a save) past
-- opts.max_minutes or after step opts.stop_at (the learning-rate schedule
-- still that of opts.steps, so runs cut from one recipe match step for step).
-- Returns the last step and the minutes it ran.
function M.loop(opts, step, label, fns)
  local last = math.min(opts.steps, opts.stop_at or opts.steps)
  local bar = progress.new(last - step, {label = label, unit = 'step'})
  local start, t0 = step, fada.clock()
  while step < last do
    step = step + 1
    fns.step(step)
    if step % opts.log_every == 0 then bar:update(step - start, fns.log(step)) end
    if step % opts.ckpt_every == 0 then fns.save() end
    if opts.max_minutes and fada.clock() - t0 > opts.max_minutes * 60 then break end
  end
  fns.save()
  if step < last then bar:stop() else bar:finish() end   -- stopped by --max-minutes: drawn as it stands
  return step, (fada.clock() - t0) / 60
end

-- Loss weights over the latent grid: 1 everywhere plus lip_weight inside the mouth region.
function M.mouth_weights(h, w, lip_weight)
  return (avatars.mouth_mask(h, w) * lip_weight + 1):view(1, 1, h, w)            -- [1, 1, h, w]
end

-- Starts loss.csv with `header`, keeping only the lines up to `keep_step`
-- (those a resumed run does not repeat). Returns append(line).
function M.csv(path, header, keep_step)
  local kept = {header}
  if keep_step and fada.readable(path) then
    for line in io.lines(path) do
      local s = tonumber(line:match('^(%d+),'))
      if s and s <= keep_step then kept[#kept + 1] = line end
    end
  end
  local f = assert(io.open(path .. '.tmp', 'w'))
  f:write(table.concat(kept, '\n'), '\n')
  f:close()
  assert(os.rename(path .. '.tmp', path))
  return function(line)
    local a = assert(io.open(path, 'a'))
    a:write(line, '\n')
    a:close()
  end
end

-- loss.png beside the CSV with gnuplot (skipped quietly where it is missing):
-- series = {{column, title}, ...}.
function M.plot(png, csv_path, ylabel, series)
  local parts = {}
  for i, s in ipairs(series) do
    parts[i] = ("%s using 1:%d with lines title '%s'"):format(i == 1 and ("'" .. csv_path .. "'") or "''", s[1], s[2])
  end
  os.execute(("gnuplot -e \"set terminal png size 800,400; set output '%s'; set datafile separator ','; " ..
              "set key autotitle columnhead; set logscale y; set xlabel 'step'; set ylabel '%s'; plot %s\" 2>/dev/null")
             :format(png, ylabel, table.concat(parts, ', ')))
end

return M
