-- Shared by test_layout.lua (C includes and calls) and test_layers.lua (Lua
-- requires): local circles = dofile(<this dir> .. 'circles.lua').

-- The strongly connected components (more than one node) of graph
-- {node = {neighbour = true}}, each sorted, in a stable order.
local function circles(graph)
  local index, low, stack, on, out, n = {}, {}, {}, {}, {}, 0
  local nodes = {}
  for v in pairs(graph) do nodes[#nodes + 1] = v end
  table.sort(nodes)
  local function visit(v)
    n = n + 1
    index[v], low[v] = n, n
    stack[#stack + 1], on[v] = v, true
    local ws = {}
    for w in pairs(graph[v] or {}) do ws[#ws + 1] = w end
    table.sort(ws)
    for _, w in ipairs(ws) do
      if not index[w] then
        visit(w)
        low[v] = math.min(low[v], low[w])
      elseif on[w] then
        low[v] = math.min(low[v], index[w])
      end
    end
    if low[v] == index[v] then
      local comp = {}
      repeat
        local w = table.remove(stack)
        on[w] = nil
        comp[#comp + 1] = w
      until w == v
      if #comp > 1 then
        table.sort(comp)
        out[#out + 1] = comp
      end
    end
  end
  for _, v in ipairs(nodes) do
    if not index[v] then visit(v) end
  end
  return out
end

return circles
