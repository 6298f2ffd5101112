-- Training and held-out frames for the evaluator, rendered on the fly.
--
-- Frame k of a split is a pure function of (split, k): its identity seed,
-- its motion and its render size come from one seeded stream, so a resumed
-- run rebuilds exactly the pool it had, and held-out numbers are stable.
--
-- Identity seeds: 'train' draws from [1 000 000, 2 000 000); 'heldout' from
-- [900 000, 1 000 000). Datasets built from small seeds (the clips'
-- identities) are therefore never seen in training either.
local fada = require 'fada'
local face = require 'fada.data.face'
local E = require 'fada.metrics.evaluator'

local M = {}

M.SPLITS = {
  train = {base = 1000000, span = 1000000, stream = 11},
  heldout = {base = 900000, span = 100000, stream = 23},
}

local function uniform(r, lo, hi) return lo + (hi - lo) * r() end

-- Motion with the evaluator's ranges: uniform, with a share of exact zeros
-- (closed mouth, open eyes, still head) as talking clips have many.
function M.motion(r)
  local m = {}
  for _, o in ipairs(E.MOTION) do m[o.name] = uniform(r, o.lo, o.hi) end
  if r() < 0.15 then m.open = 0 end
  if r() < 0.25 then m.round = 0 end
  if r() < 0.4 then m.blink = 0 end
  if r() < 0.1 then m.dx, m.dy, m.roll, m.yaw = 0, 0, 0, 0 end
  return m
end

-- (identity, motion, render size) of frame k of `split`.
function M.sample(k, split)
  local s = M.SPLITS[split or 'train']
  if not s then error(("renders: unknown split '%s' (train, heldout)"):format(tostring(split)), 2) end
  local r = face.rng(s.stream * 100000007 + k)
  local id = face.identity(s.base + math.floor(r() * s.span))
  local m = M.motion(r)
  -- 15 % rendered at 128 and reduced the way M.prepare reduces big frames,
  -- so the evaluator knows both the 64 renderer and a reduced 128 output
  local size = r() < 0.15 and 128 or 64
  return id, m, size
end

-- Frame k as f32 [3, 64, 64] and its normalised target row (Lua array).
function M.frame(k, split)
  local id, m, size = M.sample(k, split)
  local img = face.render(id, m, size)
  if size ~= E.SIZE then img = E.prepare(img):select(1, 1) end
  return img, E.target(id, m), id, m
end

-- A batch of frames [n, 3, 64, 64] and targets [n, N_OUT] for k = first .. first+n-1.
function M.batch(first, n, split)
  local imgs, rows = {}, {}
  for i = 1, n do
    imgs[i], rows[i] = M.frame(first + i - 1, split)
  end
  return fada.stack(imgs, 1), fada.tensor(rows)
end

return M
