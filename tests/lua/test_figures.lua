-- fada.figures: the contact sheet's geometry and where it draws.
local fada = require 'fada'
local figures = require 'fada.figures'

test('contact sheet: the shown frames on top, curves at their values, the busiest window', function()
  local T, S = 40, 4
  local frames = fada.zeros(T, 3, S, S)
  for t = 1, T do frames:select(1, t):fill(t / T) end          -- frame t is flat grey t/T
  local open = {}
  for t = 1, T do open[t] = t >= 21 and t <= 28 and (t % 2) or 0.5 end -- moves only in 21..28
  local img, first = figures.contact_sheet(frames, {first = 'busiest', count = 4, stride = 2, height = 40,
                                                   curves = {{values = open, color = figures.RED}}})
  assert_eq(table.concat(img:size(), 'x'), '3x44x16')
  assert(first >= 21 - 7 and first <= 21, 'busiest window starts near the movement: ' .. first)
  for j = 0, 3 do -- tile j shows frame first + 2j
    assert_close(img:get(1, 2, j * S + 2), (first + 2 * j) / T, 1e-6, 0, 'tile ' .. j)
  end
  -- before the movement the curve sits at 0.5: row H - 4 - round(0.5 (H - 8)) of the plot, red
  local sheet, first2 = figures.contact_sheet(frames, {first = 1, count = 4, stride = 2, height = 40,
                                                      curves = {{values = open, color = figures.RED}}})
  assert_eq(first2, 1)
  local y = S + 40 - 4 - math.floor(0.5 * 32 + 0.5)
  assert_close(sheet:get(1, y, 3), 0.85, 1e-6, 0, 'red')
  assert_close(sheet:get(3, y, 3), 0.1, 1e-6, 0, 'red, blue channel')
  assert_close(sheet:get(1, y - 5, 3), 1, 0, 0, 'white elsewhere')
end)
