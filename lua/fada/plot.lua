-- Charts as PNG through gnuplot (Debian's gnuplot-nox, installed by
-- scripts/setup-deps.sh), the data written inline as datablocks: no temporary
-- files, and the PNG appears whole or not at all.
--
--   local plot = require 'fada.plot'
--   local ok, err = plot.chart{png = 'out/x.png', title = 'FADA on 8 held-out clips', width = 1100, height = 450,
--     panels = {
--       {title = 'identity', xlabel = 'speed-up over the teacher', ylabel = 'identity error', logx = true,
--        series = {{name = 'teacher', style = 'points', points = {{1, 0.063, 'teacher 25x3'}, ...}}, ...}},
--       ...}}
--
-- A point is {x, y} or {x, y, label}; style is 'linespoints' (default),
-- 'lines' or 'points'; hline = {y, 'label'} draws a dashed reference line;
-- key = 'below' puts the legend under the panels (many series).
-- Returns true, or nil and why (gnuplot missing or failing).
local fada = require 'fada'

local M = {}

local function quote(s) return "'" .. tostring(s or ''):gsub("'", "''") .. "'" end

local function script(opts)
  local lines = {}
  local function add(...) lines[#lines + 1] = table.concat({...}) end
  local tmp = opts.png .. '.tmp'
  add(('set terminal pngcairo size %d,%d font "sans,10"'):format(opts.width or 800 * #opts.panels, opts.height or 420))
  add('set output ', quote(tmp))
  add("set termoption noenhanced; set grid")
  add(opts.key == 'below' and 'set key below horizontal box' or 'set key top left box opaque')
  -- every series' data as a datablock: x y label
  for p, panel in ipairs(opts.panels) do
    for s, ser in ipairs(panel.series) do
      add(('$d%d_%d << EOD'):format(p, s))
      for _, pt in ipairs(ser.points) do
        add(('%.9g %.9g "%s"'):format(pt[1], pt[2], tostring(pt[3] or ''):gsub('"', "'")))
      end
      add('EOD')
    end
  end
  add(('set multiplot layout 1,%d%s'):format(#opts.panels, opts.title and (' title ' .. quote(opts.title)) or ''))
  for p, panel in ipairs(opts.panels) do
    add('set title ', quote(panel.title))
    add('set xlabel ', quote(panel.xlabel))
    add('set ylabel ', quote(panel.ylabel))
    add(panel.logx and 'set logscale x' or 'unset logscale x')
    add(panel.xrange and ('set xrange [%s]'):format(panel.xrange) or 'set autoscale x')
    add(panel.yrange and ('set yrange [%s]'):format(panel.yrange) or 'set autoscale y')
    add('set offsets graph 0.08, graph 0.08, graph 0.08, graph 0.08')
    local parts = {}
    for s, ser in ipairs(panel.series) do
      local style = ser.style or 'linespoints'
      local with = style == 'points' and 'points pt 7 ps 1.4' or style == 'lines' and 'lines lw 2'
                   or 'linespoints lw 2 pt 7 ps 1.1'
      parts[#parts + 1] = ('$d%d_%d using 1:2 with %s title %s'):format(p, s, with, quote(ser.name))
      if ser.labels then
        parts[#parts + 1] = ('$d%d_%d using 1:2:3 with labels offset char 0.8,0.7 left font ",8" notitle'):format(p, s)
      end
    end
    if panel.hline then
      parts[#parts + 1] = ('%.9g with lines dt 2 lc rgb "gray40" title %s'):format(panel.hline[1], quote(panel.hline[2]))
    end
    add('plot ', table.concat(parts, ', '))
  end
  add('unset multiplot')
  add('set output')
  return table.concat(lines, '\n') .. '\n', tmp
end

function M.chart(opts)
  assert(opts.png and opts.panels and #opts.panels > 0, 'plot.chart: png and panels are required')
  local text, tmp = script(opts)
  local p = io.popen('gnuplot 2>&1 >/dev/null', 'w')
  if not p then return nil, 'gnuplot cannot be started (install gnuplot-nox: scripts/setup-deps.sh)' end
  p:write(text)
  local ok, _, code = p:close()
  if not ok then
    os.remove(tmp)
    return nil, ('gnuplot failed (exit %s) drawing %s'):format(tostring(code), opts.png)
  end
  local made, why = pcall(fada.mkdir_parent, opts.png)
  if not made then
    os.remove(tmp)
    return nil, why
  end
  return os.rename(tmp, opts.png)
end

-- Heat maps: panels = {{title, xlabel, ylabel, cells = {{x, y, value}, ...}}} on
-- a grid of the distinct x and y values (each cell its value, printed on it).
function M.heatmap(opts)
  assert(opts.png and opts.panels and #opts.panels > 0, 'plot.heatmap: png and panels are required')
  local tmp = opts.png .. '.tmp'
  local lines = {('set terminal pngcairo size %d,%d font "sans,10"'):format(opts.width or 560 * #opts.panels,
                                                                          opts.height or 460),
                 'set output ' .. quote(tmp), 'set termoption noenhanced', 'set view map', 'unset key',
                 'set palette rgbformulae 33,13,10'}
  for p, panel in ipairs(opts.panels) do
    -- grid indices for the distinct values, so uneven scales still give square cells
    local xs, ys, xi, yi = {}, {}, {}, {}
    for _, c in ipairs(panel.cells) do
      if not xi[c[1]] then xi[c[1]] = true ; xs[#xs + 1] = c[1] end
      if not yi[c[2]] then yi[c[2]] = true ; ys[#ys + 1] = c[2] end
    end
    table.sort(xs) ; table.sort(ys)
    for i, v in ipairs(xs) do xi[v] = i - 1 end
    for i, v in ipairs(ys) do yi[v] = i - 1 end
    lines[#lines + 1] = ('$h%d << EOD'):format(p)
    for _, c in ipairs(panel.cells) do lines[#lines + 1] = ('%d %d %.9g'):format(xi[c[1]], yi[c[2]], c[3]) end
    lines[#lines + 1] = 'EOD'
    local function tics(vals)
      local t = {}
      for i, v in ipairs(vals) do t[i] = ('"%g" %d'):format(v, i - 1) end
      return '(' .. table.concat(t, ', ') .. ')'
    end
    panel.xt, panel.yt, panel.nx, panel.ny = tics(xs), tics(ys), #xs, #ys
  end
  lines[#lines + 1] = ('set multiplot layout 1,%d%s'):format(#opts.panels, opts.title and (' title ' .. quote(opts.title)) or '')
  for p, panel in ipairs(opts.panels) do
    lines[#lines + 1] = 'set title ' .. quote(panel.title)
    lines[#lines + 1] = 'set xlabel ' .. quote(panel.xlabel)
    lines[#lines + 1] = 'set ylabel ' .. quote(panel.ylabel)
    lines[#lines + 1] = ('set xtics %s; set ytics %s'):format(panel.xt, panel.yt)
    lines[#lines + 1] = ('set xrange [-0.5:%g]; set yrange [-0.5:%g]'):format(panel.nx - 0.5, panel.ny - 0.5)
    lines[#lines + 1] = ('plot $h%d using 1:2:3 with image, $h%d using 1:2:(sprintf("%%.3g", $3)) with labels'):format(p, p)
  end
  lines[#lines + 1] = 'unset multiplot'
  lines[#lines + 1] = 'set output'
  local pipe = io.popen('gnuplot 2>&1 >/dev/null', 'w')
  if not pipe then return nil, 'gnuplot cannot be started (install gnuplot-nox: scripts/setup-deps.sh)' end
  pipe:write(table.concat(lines, '\n') .. '\n')
  local ok, _, code = pipe:close()
  if not ok then
    os.remove(tmp)
    return nil, ('gnuplot failed (exit %s) drawing %s'):format(tostring(code), opts.png)
  end
  return os.rename(tmp, opts.png)
end

M._script = script -- for tests

return M
