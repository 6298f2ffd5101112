-- Held-out evaluation shared by the evaluation scripts (eval.lua, compare.lua,
-- cfg_control.lua): the held-out clips cut to a length, one setting sampled on
-- one clip and read by the evaluator, a resume journal of finished results, and
-- eval.lua's sweep of settings over the clips with its CSV.
--
--   local heldout = require 'fada.metrics.heldout'
--   local set = heldout.clips{first = 0, count = 8, seconds = 2.4, size = 64, tier = 'hq'}
--   local m = heldout.measure(set[1].frames, set[1], ev)       -- the ground truth's own reading
--   local r = heldout.sample(model, set[1], {mode = 'fast', steps = 6, w_ref = 2, w_audio = 3.5, seed = 42}, ev)
--   local j = heldout.journal('out/x.csv.partial', heldout.FIELDS)  -- j:get(key), j:add(key, r), j:close()
local fada = require 'fada'
local metrics = require 'fada.metrics'
local clips = require 'fada.metrics.clips'
local pipeline = require 'fada.pipeline'

local M = {}

-- What one (setting, clip) result holds: the evaluator's readings, then the cost.
M.METRICS = {'corr', 'offset', 'dist', 'conf', 'identity', 'flicker', 'sharpness'}
M.FIELDS = {'corr', 'offset', 'dist', 'conf', 'identity', 'flicker', 'sharpness', 'nfe', 'videos', 'seconds'}

-- Held-out clips first .. first + count - 1 of a tier, cut to `seconds` of speech
-- (0 = whole sentences). opts: first (0), count (8), seconds (2.4), size (64), tier ('hq').
function M.clips(opts)
  local out = {}
  local seconds = opts.seconds or 2.4
  for k = opts.first or 0, (opts.first or 0) + (opts.count or 8) - 1 do
    local c = clips.ground_truth(k, {size = opts.size or 64, tier = opts.tier})
    local n = c.frames:size(1)
    if seconds > 0 then
      n = math.min(n, math.floor(seconds * c.fps + 0.5))
      c.samples = c.samples:narrow(1, 1, math.min(c.samples:size(1), math.floor(n / c.fps * c.sample_rate)))
      c.frames = c.frames:narrow(1, 1, n)                                   -- [n, 3, S, S]
    end
    c.index = k
    out[#out + 1] = c
  end
  return out
end

-- The evaluator's reading of frames [T, 3, S, S] in [0, 1] against the clip's speech and portrait.
function M.measure(frames, c, ev)
  local m = metrics.evaluate(frames, c.samples, c.sample_rate, {ref = c.ref, evaluator = ev})
  return {corr = m.lipsync.corr, offset = m.lipsync.offset, dist = m.lipsync.dist, conf = m.lipsync.confidence,
          identity = m.identity.error, flicker = m.flicker.pixel, sharpness = m.sharpness}
end

-- One setting on one clip: the clip's first frames generated from its portrait
-- and speech, measured; plus nfe (all windows), videos (windows) and seconds.
-- setting: mode, steps, w_ref, w_audio, sampler, cfg_schedule, seed, noise_share, dtype,
-- and the sampling conventions of pipeline.SAMPLING_FLAGS (spacing, eta, ...).
-- Errors (a bad setting) are raised as the pipeline words them.
function M.sample(model, c, s, ev)
  local made = {}
  local o = {
    model = model, ref = c.ref, audio = {samples = c.samples, sample_rate = c.sample_rate}, out = false,
    mode = s.mode, steps = s.steps, sampler = s.sampler, cfg_ref = s.w_ref, cfg_audio = s.w_audio,
    cfg_schedule = s.cfg_schedule, seed = s.seed, noise_share = s.noise_share, progress = false,
    -- f32 unless the setting names a dtype: the evaluation scripts' committed figures are f32
    dtype = s.dtype or 'f32',
    on_clip = function(_, frames) made[#made + 1] = frames end}
  for _, f in ipairs(pipeline.SAMPLING_FLAGS) do o[f[1]] = s[f[1]] end
  local summary = pipeline.sample(o)
  local video = fada.cat(made, 1):narrow(1, 1, c.frames:size(1))             -- [n, 3, S, S] in [0, 1]
  local m = M.measure(video, c, ev)
  m.nfe, m.videos, m.seconds = summary.nfe, summary.clips, summary.seconds
  return m, video
end

-- The model an evaluation script was given, checked for its role: `role` names
-- the flag (teacher, student, ...); kind = 'student' or 'teacher' says what it
-- must be; hint is added when the file is missing (how to make one). Returns
-- {model, path, digest} (the digest keys the journal), or nil and a message
-- the script prints before it exits.
function M.load_model(path, role, kind, hint)
  local f = io.open(path, 'rb')
  if not f then return nil, ("cannot read the %s '%s'%s"):format(role, path, hint and (' (' .. hint .. ')') or '') end
  f:close()
  local models = require 'fada.models'
  local ok, m = pcall(models.load, path)
  if not ok then return nil, tostring(m) end
  local is = m.config.student and 'student' or 'teacher'
  if kind and is ~= kind then
    return nil, ("the %s '%s' is a %s; --%s needs a %s%s"):format(role, path, is, role,
      kind == 'student' and 'distilled student' or 'teacher', kind == 'student' and ' (make student)' or '')
  end
  return {model = m, path = path, digest = models.digest(path)}
end

-- ---- the resume journal ------------------------------------------------------------------------

-- One line per finished result: key TAB value TAB ... (the fields in order).
-- A key should name everything that decides the numbers (models.digest of the
-- weights, the setting, the clip), so a rerun of the same command reuses them.
local Journal = {}
Journal.__index = Journal

function M.journal(path, fields)
  local j = setmetatable({path = path, fields = fields, rows = {}, reused = 0}, Journal)
  local fh = path and io.open(path, 'r')
  if fh then
    for line in fh:lines() do
      local key, rest = line:match('^([^\t]+)\t(.*)$')
      local vals = {}
      for v in (rest or ''):gmatch('[^\t]+') do vals[#vals + 1] = tonumber(v) end
      if key and #vals == #fields then
        local r = {}
        for i, k in ipairs(fields) do r[k] = vals[i] end
        j.rows[key] = r
      end
    end
    fh:close()
  end
  return j
end

function Journal:get(key)
  local r = self.path and self.rows[key]
  if r then self.reused = self.reused + 1 end
  return r
end

function Journal:add(key, r)
  if not self.path then return end
  if not self.fh then
    fada.mkdir_parent(self.path)
    self.fh = assert(io.open(self.path, 'a'))
  end
  local vals = {}
  for i, k in ipairs(self.fields) do vals[i] = ('%.17g'):format(r[k]) end
  self.fh:write(key, '\t', table.concat(vals, '\t'), '\n')
  self.fh:flush()
  self.rows[key] = r
end

-- Closes the journal; remove = true deletes it (the results went to their CSV).
function Journal:close(remove)
  if self.fh then self.fh:close() ; self.fh = nil end
  if remove and self.path then os.remove(self.path) end
end

-- ---- a sweep of settings (scripts/eval.lua) ----------------------------------------------------

-- Every setting on every held-out clip, the ground truth first (o.ceiling). model: the
-- loaded model; o: model_path (keys the journal), mode, sampler, cfg_schedule, seed,
-- seconds, noise_share, first, count (clips), settings ({steps, w_ref, w_audio} each),
-- ceiling, journal (CSV.partial or nil), max_minutes, fail (a bad setting's message).
-- Returns {held, ceiling = per clip, runs = {{setting, label, per, nfe, spf}}, csv =
-- rows for M.write_csv, journal, t0}; with stopped = minutes when --max-minutes ran out.
function M.sweep(model, o)
  local progress = require 'fada.progress'
  -- The resume journal: one line per finished (setting, clip), keyed by everything
  -- that decides its numbers, the model's bytes included (exports of one
  -- architecture all have the same size), so a rerun of the same command skips them.
  local journal = M.journal(o.journal, M.FIELDS)
  local digest = journal.path and require('fada.models').digest(o.model_path)
  local function row_key(label, steps, w_ref, w_audio, clip)
    return table.concat({digest, o.mode, label, steps, w_ref, w_audio, o.sampler, o.cfg_schedule, o.seed,
                         o.seconds, o.noise_share, clip}, '|')
  end
  local ev = metrics.evaluator()
  local held = M.clips{first = o.first, count = o.count, seconds = o.seconds, size = model.config.image_size}
  local res = {held = held, runs = {}, csv = {}, journal = journal}
  local csv = res.csv
  if o.ceiling then
    local per = {}
    for i, c in ipairs(held) do
      per[i] = M.measure(c.frames, c, ev)
      csv[#csv + 1] = {'ground truth', 0, '', '', 0, o.first + i - 1, per[i]}
    end
    res.ceiling = per
  end
  local total_frames = 0
  for _, c in ipairs(held) do total_frames = total_frames + c.frames:size(1) end
  local bar = progress.new(#o.settings * total_frames, {label = 'evaluating', unit = 'frame'})
  local done = 0
  local pairs_left = #o.settings * #held -- (setting, clip) pairs not yet visited
  res.t0 = fada.clock()
  for _, s in ipairs(o.settings) do
    local per, nfe, n_videos, seconds, frames_made = {}, 0, 0, 0, 0
    for i, c in ipairs(held) do
      local n = c.frames:size(1)
      local key = journal.path and row_key('sample', s.steps, s.w_ref, s.w_audio, o.first + i - 1)
      local m = key and journal:get(key)
      pairs_left = pairs_left - 1
      if not m then
        local ok
        ok, m = pcall(M.sample, model, c, {mode = o.mode, steps = s.steps, sampler = o.sampler, w_ref = s.w_ref,
          w_audio = s.w_audio, cfg_schedule = o.cfg_schedule, seed = o.seed, noise_share = o.noise_share}, ev)
        if not ok then o.fail(m) end
        if key then journal:add(key, m) end
        if o.max_minutes and pairs_left > 0 and (fada.clock() - res.t0) / 60 >= o.max_minutes then
          bar:stop()
          res.stopped = (fada.clock() - res.t0) / 60
          return res
        end
      end
      per[i] = m
      nfe, n_videos = nfe + m.nfe, n_videos + m.videos
      seconds, frames_made = seconds + m.seconds, frames_made + n
      csv[#csv + 1] = {o.mode, s.steps, s.w_ref, s.w_audio, m.nfe / m.videos, o.first + i - 1, per[i]}
      done = done + n
      bar:update(done)
    end
    res.runs[#res.runs + 1] = {setting = s, per = per, label = ('%s, w_ref %g, w_audio %g'):format(o.mode, s.w_ref,
      s.w_audio), nfe = ('%.0f'):format(nfe / n_videos), spf = ('%.2f'):format(seconds / frames_made)}
  end
  bar:finish()
  return res
end

-- The sweep's rows (M.sweep's csv: mode, steps, w_ref, w_audio, NFE per clip, clip,
-- the metrics) to path, written beside it and renamed into place.
function M.write_csv(path, rows)
  fada.mkdir_parent(path)
  local tmp = path .. '.tmp'
  local out = assert(io.open(tmp, 'w'))
  out:write('mode,steps,w_ref,w_audio,nfe_per_clip,clip,' .. table.concat(M.METRICS, ',') .. '\n')
  for _, r in ipairs(rows) do
    local m = r[7]
    out:write(('%s,%s,%s,%s,%s,%d,%.5f,%d,%.5f,%.5f,%.5f,%.5f,%.5f\n'):format(r[1], r[2], r[3], r[4], r[5], r[6],
      m.corr, m.offset, m.dist, m.conf, m.identity, m.flicker, m.sharpness))
  end
  out:close()
  os.rename(tmp, path)
end

return M
