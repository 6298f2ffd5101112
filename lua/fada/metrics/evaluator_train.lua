-- Training and measuring the evaluator CNN (fada.metrics.evaluator) on
-- synthetic renders whose parameters are known (scripts/train_evaluator.lua):
-- the held-out measurement, the run (resume, the render pool, the loop with
-- loss.csv, loss.png and checkpoints) and the export of the shipped weights.
--
--   local T = require 'fada.metrics.evaluator_train'
--   local run = T.open(o)                       -- o: the script's options (cli.parse keys)
--   local elapsed, t_render, t_step = T.train(run, o)
--   local final = T.finish(run.net, run.ema, o.out, {steps = o.steps, ...})
--   local rows, cls = T.measure(final, 256)     -- per output corr / MAE; class accuracies
--   io.write(T.table(rows, cls, 256))           -- the Markdown tables of --evaluate
local fada = require 'fada'
local F = require 'fada.F'
local A = require 'fada.autograd'
local optim = require 'fada.optim'
local progress = require 'fada.progress'
local checkpoint = require 'fada.train.checkpoint'
local E = require 'fada.metrics.evaluator'
local R = require 'fada.metrics.renders'
local stats = require 'fada.metrics.stats'

local M = {}

-- ---- held-out measurement ---------------------------------------------------------------

-- Reads `n` held-out frames with `net`; returns per-output rows
-- {name, corr, mae (renderer units)} plus hair-style and accessory accuracy.
function M.measure(net, n, first)
  first = first or 0
  local truth, preds = {}, {}
  local ev = E.wrap(net)
  for s = 0, n - 1, 64 do
    local m = math.min(64, n - s)
    local x, y = R.batch(first + s, m, 'heldout')
    local raw = ev:forward(x)
    local tr, pr = y:totable(), raw:totable()
    for i = 1, m do truth[#truth + 1], preds[#preds + 1] = tr[i], pr[i] end
  end
  local rows = {}
  for j, o in ipairs(E.OUTPUTS) do
    local a, b = {}, {}
    for i = 1, #truth do
      a[i] = o.lo + truth[i][j] * (o.hi - o.lo)
      b[i] = o.lo + preds[i][j] * (o.hi - o.lo)
    end
    rows[#rows + 1] = {name = o.name, corr = stats.pearson(b, a), mae = stats.mae(b, a), range = o.hi - o.lo}
  end
  -- classification views
  local s0 = E.INDEX['style_bald']
  local ok_style, acc = 0, {glasses = 0, earrings = 0, hat = 0}
  for i = 1, #truth do
    local bt, bp, it, ip = -1, -math.huge, 0, 0
    for k = 0, 5 do
      if truth[i][s0 + k] > bt then bt, it = truth[i][s0 + k], k end
      if preds[i][s0 + k] > bp then bp, ip = preds[i][s0 + k], k end
    end
    if it == ip then ok_style = ok_style + 1 end
    for key in pairs(acc) do
      local j = E.INDEX[key]
      if (truth[i][j] > 0.5) == (preds[i][j] > 0.5) then acc[key] = acc[key] + 1 end
    end
  end
  local cls = {hair_style = ok_style / #truth}
  for key, c in pairs(acc) do cls[key] = c / #truth end
  return rows, cls
end

function M.by_name(rows)
  local t = {}
  for _, r in ipairs(rows) do t[r.name] = r end
  return t
end

-- The Markdown tables of M.measure's rows and class accuracies on n frames
-- (the style one-hot and the accessories as their accuracies only).
function M.table(rows, cls, n)
  local out = {('Held-out renders: %d frames, identity seeds 900000-999999 (never trained on)\n\n'):format(n),
               '| output | correlation | mean abs error | range |\n|---|---|---|---|\n'}
  for _, r in ipairs(rows) do
    if not r.name:find('^style_') and r.name ~= 'glasses' and r.name ~= 'earrings' and r.name ~= 'hat' then
      out[#out + 1] = ('| %s | %.4f | %.4f | %.3g |\n'):format(r.name, r.corr, r.mae, r.range)
    end
  end
  out[#out + 1] = ('\n| class | accuracy |\n|---|---|\n| hair style (6-way) | %.3f |\n| glasses | %.3f |\n' ..
                   '| earrings | %.3f |\n| hat | %.3f |\n'):format(cls.hair_style, cls.glasses, cls.earrings, cls.hat)
  return table.concat(out)
end

-- ---- weights out ---------------------------------------------------------------------

-- Writes a state dict as the shipped f16 weights with their metadata (info added).
function M.export(path, sd, info)
  local t = {}
  for k, v in pairs(sd) do t[k] = v:to('f16') end
  fada.mkdir_parent(path)
  local meta = {format = 'fada-evaluator', outputs = {}}
  for i, o in ipairs(E.OUTPUTS) do meta.outputs[i] = o.name end
  for k, v in pairs(info) do meta[k] = v end
  fada.safetensors.save(path, t, {config = meta})
end

-- DIR/loss.png from DIR/loss.csv (gnuplot, when there is one).
function M.plot(dir)
  local csv, png = dir .. '/loss.csv', dir .. '/loss.png'
  local script = ([[
set terminal pngcairo size 900,500 noenhanced
set output '%s'
set datafile separator ','
set key autotitle columnhead
set xlabel 'step'
set ylabel 'weighted MSE (log)'
set logscale y
set y2label 'held-out open correlation'
set y2range [0:1]
set y2tics
set grid
plot '%s' using 1:2 with lines lc rgb '#3060c0' title 'train loss (EMA of batches)', \
     '%s' using 1:($5 > -1 ? $5 : 1/0) axes x1y2 with linespoints lc rgb '#c03030' title 'held-out open corr'
]]):format(png, csv, csv)
  local p = io.popen('gnuplot >/dev/null 2>&1', 'w')   -- its warnings (a one-point range) are no output of ours
  if p then p:write(script) p:close() end
end

-- Weighted held-out MSE of a state dict on selection frames (held-out
-- indices 20000+, apart from the frames the tables report).
local sel_x, sel_y
local function selection_loss(sd)
  if not sel_x then sel_x, sel_y = R.batch(20000, 256, 'heldout') end
  local probe = E.Net()
  probe:load_state_dict(sd)
  local raw = E.wrap(probe):forward(sel_x)
  return F.mse(raw, sel_y, E.loss_weights()):item()
end

-- Writes the final weights: the EMA of the weights or the last weights,
-- whichever reads the selection frames better (an EMA started at the
-- initialisation still carries some of it after a short run).
function M.finish(net, ema, out, info)
  local ema_sd = {}
  for k, v in pairs(ema:state_dict()) do ema_sd[k] = v end
  local l_ema, l_raw = selection_loss(ema_sd), selection_loss(net:state_dict())
  local final = E.Net()
  final:load_state_dict(l_ema <= l_raw and ema_sd or net:state_dict())
  info.weights = l_ema <= l_raw and 'ema' or 'last'
  M.export(out, final:state_dict(), info)
  io.stderr:write(('selection loss: EMA %.5f, last %.5f -> shipping the %s weights\n'):format(l_ema, l_raw,
    info.weights == 'ema' and 'EMA' or 'last'))
  return final
end

-- ---- the run -------------------------------------------------------------------------

-- The run in o.dir (options o as the script parses them: steps, batch, lr, seed,
-- fresh, ...): the net, AdamW, the EMA and the learning-rate schedule, resumed
-- from DIR/checkpoint.safetensors unless o.fresh (loss.csv cut back to the
-- checkpoint's step), or a fresh loss.csv. Returns the run: net, opt, ema, lr_at,
-- ckpt_path, start (step), elapsed0 (seconds trained before), loss_avg (the
-- running loss at the checkpoint, so a resumed loss.csv goes on as if never stopped).
function M.open(o)
  fada.mkdir(o.dir)
  local ckpt_path = o.dir .. '/checkpoint.safetensors'
  local net = E.Net({seed = o.seed})
  local opt = optim.AdamW(net:named_parameters(), {lr = o.lr, weight_decay = 1e-4})
  local ema = optim.EMA(net:named_parameters(), 0.998)
  local lr_at = optim.warmup_cosine(o.lr, 200, o.steps, 0.05)
  local weights = E.loss_weights()
  local start, elapsed0, loss_avg = 0, 0, nil
  local f = io.open(ckpt_path, 'rb')
  if f and not o.fresh then
    f:close()
    local st = checkpoint.load(ckpt_path, {model = net, optimizer = opt, ema = ema})
    start, elapsed0, loss_avg = st.step, tonumber(st.info.elapsed) or 0, tonumber(st.info.loss_avg)
    io.stderr:write(('resuming from %s at step %d (%.0f s trained)\n'):format(ckpt_path, start, elapsed0))
    -- drop log rows written after the checkpoint (they will be redone)
    local keep = {}
    for line in io.lines(o.dir .. '/loss.csv') do
      local s = tonumber(line:match('^(%d+),'))
      if not s or s <= start then keep[#keep + 1] = line end
    end
    local csv = io.open(o.dir .. '/loss.csv', 'w')
    csv:write(table.concat(keep, '\n'), '\n')
    csv:close()
  else
    if f then f:close() end
    local csv = io.open(o.dir .. '/loss.csv', 'w')
    csv:write('step,loss,lr,elapsed_s,heldout_open_corr,heldout_open_mae,heldout_round_corr,heldout_blink_corr\n')
    csv:close()
  end
  return {net = net, opt = opt, ema = ema, lr_at = lr_at, weights = weights, ckpt_path = ckpt_path, start = start,
          elapsed0 = elapsed0, loss_avg = loss_avg}
end

-- Trains the run from its step to o.steps: the render pool (slot j holds the
-- newest frame k = j mod pool), a batch per step from a per-step generator
-- (exact resume) with blur and noise augmentation, AdamW with the EMA, the
-- held-out check every o.eval_every steps and at the end, a loss.csv line
-- every o.log_every (25) steps and at each check, loss.png, a checkpoint every
-- o.ckpt_every steps and at the end.
-- Returns elapsed (seconds trained in all), t_render, t_step (this run's seconds).
function M.train(run, o)
  local net, opt, ema, lr_at, weights = run.net, run.opt, run.ema, run.lr_at, run.weights
  local ckpt_path, start, elapsed0 = run.ckpt_path, run.start, run.elapsed0
  io.stderr:write(('evaluator: %d parameters, %d outputs, batch %d, pool %d (+%d/step), %d threads\n'):format(
    net:num_parameters(), E.N_OUT, o.batch, o.pool, o.refresh, o.threads))

  -- The pool: slot j (0-based) holds the newest frame index k ≡ j (mod pool)
  -- with k < pool + step·refresh, so the pool after any step is known.
  local P, RF = o.pool, o.refresh
  local pool_x = fada.empty(P, 3, E.SIZE, E.SIZE)
  local pool_y = fada.empty(P, E.N_OUT)
  local function put(slot, k)
    local img, row = R.frame(k, 'train')
    pool_x:select(1, slot + 1):copy(img)
    pool_y:select(1, slot + 1):copy(fada.tensor(row))
  end
  do
    local t0 = fada.clock()
    local bar = progress.new(P, {label = 'render pool', unit = 'frame'})
    local limit = P + start * RF
    for j = 0, P - 1 do
      put(j, j + P * ((limit - 1 - j) // P))
      bar:update(j + 1)
    end
    bar:finish()
    io.stderr:write(('pool rendered in %.0f s\n'):format(fada.clock() - t0))
  end

  -- held-out frames for the periodic check, rendered once
  local hx, hy = R.batch(0, o.eval_frames, 'heldout')
  local function quick_eval(model_sd)
    local probe = E.Net()
    probe:load_state_dict(model_sd)
    local ev = E.wrap(probe)
    local raw = ev:forward(hx)
    local p, t = raw:totable(), hy:totable()
    local res = {}
    for _, name in ipairs{'open', 'round', 'blink'} do
      local j = E.INDEX[name]
      local a, b = {}, {}
      for i = 1, #p do a[i], b[i] = p[i][j], t[i][j] end
      res[name] = {corr = stats.pearson(a, b), mae = stats.mae(a, b)}
    end
    return res
  end

  local t_start = fada.clock()
  local loss_avg = run.loss_avg
  local log_every = o.log_every or 25
  local last_eval = {open = {corr = -2, mae = -1}, round = {corr = -2}, blink = {corr = -2}}
  local bar = progress.new(o.steps - start, {label = 'train evaluator', unit = 'step'})
  local t_render, t_step = 0, 0
  for step = start + 1, o.steps do
    local t0 = fada.clock()
    for i = 0, RF - 1 do
      local n = (step - 1) * RF + i
      put(n % P, P + n)
    end
    local t1 = fada.clock()
    -- the batch: pool indices from a per-step generator (exact resume)
    local g = fada.Generator(o.seed * 1000003 + step)
    local idx = fada.randint(1, P + 1, o.batch, g) -- 1-based rows
    local x = pool_x:index_select(1, idx)
    local y = pool_y:index_select(1, idx)
    -- augmentation: an eighth blurred (down to 32 and back), a half with
    -- pixel noise of a random strength up to 0.04 (none of either in batches too small for them)
    local nb = o.batch // 8
    if nb > 0 then
      local blurred = fada.ops.resize_bilinear(fada.ops.avg_pool2d(x:narrow(1, 1, nb), 2, 2), E.SIZE, E.SIZE)
      x:narrow(1, 1, nb):copy(blurred)
    end
    local nn_ = o.batch // 2
    if nn_ > 0 then
      local sigma = fada.rand(nn_, 1, 1, 1, g) * 0.04
      local noisy = x:narrow(1, o.batch - nn_ + 1, nn_)
      noisy:copy((noisy + fada.randn(nn_, 3, E.SIZE, E.SIZE, g) * sigma):clamp(0, 1))
    end

    opt.lr = lr_at(step)
    opt:zero_grad()
    local out = net(x)
    local loss = F.mse(out, y, weights)
    A.backward(loss)
    optim.clip_grad_norm(net:named_parameters(), 1.0)
    opt:step()
    ema:update()
    local lv = loss:item()
    loss_avg = loss_avg and 0.98 * loss_avg + 0.02 * lv or lv
    local t2 = fada.clock()
    t_render, t_step = t_render + (t1 - t0), t_step + (t2 - t1)

    local elapsed = elapsed0 + fada.clock() - t_start
    local evaluated = false
    if step % o.eval_every == 0 or step == o.steps then
      last_eval = quick_eval(ema:state_dict())
      evaluated = true
    end
    if step % log_every == 0 or evaluated then
      local csv = io.open(o.dir .. '/loss.csv', 'a')
      csv:write(('%d,%.6g,%.4g,%.1f,%s,%s,%s,%s\n'):format(step, loss_avg, opt.lr, elapsed,
        evaluated and ('%.4f'):format(last_eval.open.corr) or '-2',
        evaluated and ('%.4f'):format(last_eval.open.mae) or '-1',
        evaluated and ('%.4f'):format(last_eval.round.corr) or '-2',
        evaluated and ('%.4f'):format(last_eval.blink.corr) or '-2'))
      csv:close()
    end
    if evaluated then M.plot(o.dir) end
    if step % o.ckpt_every == 0 or step == o.steps then
      checkpoint.save(ckpt_path, {model = net, optimizer = opt, ema = ema, step = step,
                                  info = {elapsed = ('%.1f'):format(elapsed), loss_avg = ('%.17g'):format(loss_avg)}})
    end
    bar:update(step - start, {loss = loss_avg, open_r = last_eval.open.corr,
                              ['render%'] = 100 * t_render / math.max(t_render + t_step, 1e-9)})
  end
  bar:finish()
  return elapsed0 + fada.clock() - t_start, t_render, t_step
end

return M
