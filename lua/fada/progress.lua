-- A terminal progress bar for long work (sampling, training, data
-- generation): one line, redrawn in place on a terminal, or a line every
-- few seconds when the output is a file or a pipe.
--
--   local bar = progress.new(total, {label = 'sampling', unit = 'step'})
--   bar:update(done, {['NFE/s'] = 12.3})   -- extra fields printed after the bar
--   bar:finish()                           -- or bar:stop() when stopped early (drawn as it stands)
local M = {}
local Bar = {}
Bar.__index = Bar

local clock = require('fada').clock -- wall-clock seconds

local function is_tty()
  local ok = os.execute('test -t 2')
  return ok == true
end
local tty -- decided once

local function fmt_time(s)
  if s ~= s or s == math.huge then return '--:--' end
  s = math.floor(s + 0.5)
  if s >= 3600 then return ('%d:%02d:%02d'):format(s // 3600, s % 3600 // 60, s % 60) end
  return ('%02d:%02d'):format(s // 60, s % 60)
end
M.format_time = fmt_time

-- opts: label, unit, stream (io.stderr), enabled (true), width (30)
function M.new(total, opts)
  opts = opts or {}
  if tty == nil then tty = is_tty() end
  return setmetatable({total = math.max(total, 1), done = 0, label = opts.label or '', unit = opts.unit or 'it',
    stream = opts.stream or io.stderr, enabled = opts.enabled ~= false, width = opts.width or 30,
    start = clock(), last_draw = -math.huge}, Bar)
end

function Bar:line(extra)
  local frac = math.min(self.done / self.total, 1)
  local filled = math.floor(frac * self.width + 0.5)
  local elapsed = clock() - self.start
  local rate = self.done / math.max(elapsed, 1e-9)
  local eta = self.done > 0 and (self.total - self.done) / rate or math.huge
  local fields = {}
  for k, v in pairs(extra or {}) do
    fields[#fields + 1] = type(v) == 'number' and ('%s %.3g'):format(k, v) or ('%s %s'):format(k, tostring(v))
  end
  table.sort(fields)
  return ('%s [%s%s] %d/%d %s | %s elapsed, ETA %s | %.2f %s/s%s'):format(self.label,
    ('#'):rep(filled), ('.'):rep(self.width - filled), self.done, self.total, self.unit,
    fmt_time(elapsed), fmt_time(eta), rate, self.unit, #fields > 0 and ' | ' .. table.concat(fields, ', ') or '')
end

function Bar:update(done, extra)
  self.done = done
  if not self.enabled then return end
  local now = clock()
  local final = done >= self.total
  if final and self.final_drawn then return end
  self.final_drawn = final
  if tty then
    if now - self.last_draw < 0.1 and not final then return end
    self.stream:write('\r' .. self:line(extra) .. '\27[K')
  else
    if now - self.last_draw < 5 and not final then return end
    self.stream:write(self:line(extra) .. '\n')
  end
  self.last_draw = now
  self.stream:flush()
end

-- Work stopped before its end (a time limit): the bar as it stands, not filled.
function Bar:stop(extra)
  if self.enabled then
    self.stream:write((tty and '\r' or '') .. self:line(extra) .. (tty and '\27[K\n' or '\n'))
    self.stream:flush()
  end
  self.enabled = false
  return clock() - self.start
end

function Bar:finish(extra)
  self:update(self.total, extra)
  if self.enabled and tty then self.stream:write('\n') end
  return clock() - self.start
end

return M
