-- Synthetic talking faces: a seeded identity sampler and an anti-aliased
-- renderer built from signed-distance shapes composed with tensor ops.
--
-- Coordinates: u (left -> right) and v (top -> bottom), both in [-1, 1].
-- An identity is a table of numbers and colours; a frame's motion is
--   {dx, dy, roll, yaw, blink, open, round}
-- (head offset, roll angle in radians, a fake yaw in [-1, 1] that slides the
-- features sideways, eyelid closure 0..1, mouth opening 0..1, lip rounding 0..1).
-- render(identity, motion, size) -> f32 [3, size, size] in [0, 1].
local fada = require 'fada'

local M = {}

-- ---- identities --------------------------------------------------------

local SKIN = {
  {0.99, 0.86, 0.74}, {0.94, 0.76, 0.62}, {0.86, 0.65, 0.50}, {0.76, 0.55, 0.40},
  {0.62, 0.43, 0.31}, {0.47, 0.32, 0.23}, {0.36, 0.24, 0.17}, {0.98, 0.80, 0.70},
}
local HAIR = {
  {0.08, 0.06, 0.05}, {0.25, 0.16, 0.09}, {0.45, 0.30, 0.15}, {0.75, 0.58, 0.30},
  {0.55, 0.20, 0.08}, {0.65, 0.65, 0.68}, {0.95, 0.92, 0.85}, {0.20, 0.25, 0.55},
  {0.55, 0.15, 0.45},
}
local IRIS = {{0.30, 0.20, 0.10}, {0.15, 0.35, 0.60}, {0.25, 0.45, 0.25}, {0.45, 0.45, 0.50}, {0.10, 0.08, 0.06}}
M.HAIR_STYLES = {'bald', 'short', 'long', 'bun', 'curly', 'side'}

local function pick(rng, list) return list[math.floor(rng() * #list) + 1] end
local function uniform(rng, a, b) return a + (b - a) * rng() end
local function jitter(rng, c, amount)
  local out = {}
  for i = 1, 3 do out[i] = math.min(1, math.max(0, c[i] + (rng() - 0.5) * amount)) end
  return out
end

-- A tiny deterministic stream from a seed (Philox through a 1-element draw
-- would be slow per number; a small LCG-free hash is enough for attributes).
function M.rng(seed)
  local g = fada.Generator(seed)
  local buf, k = nil, 64
  return function()
    if k >= 64 then buf, k = fada.rand(64, 'f64', g):tolist(), 0 end
    k = k + 1
    return buf[k]
  end
end

-- Identity `seed`: every attribute drawn from one seeded stream.
function M.identity(seed)
  local r = M.rng(seed * 7919 + 17)
  local skin = jitter(r, pick(r, SKIN), 0.08)
  local hair = jitter(r, pick(r, HAIR), 0.1)
  local id = {
    seed = seed,
    skin = skin,
    hair = hair,
    hair_style = pick(r, M.HAIR_STYLES),
    face_rx = uniform(r, 0.46, 0.58), face_ry = uniform(r, 0.60, 0.72),
    face_cy = uniform(r, 0.02, 0.10),
    jaw = uniform(r, 0.0, 0.25),                 -- how much the chin narrows
    eye_dx = uniform(r, 0.17, 0.25), eye_y = uniform(r, -0.16, -0.06),
    eye_rx = uniform(r, 0.07, 0.10), eye_ry = uniform(r, 0.04, 0.065),
    iris = pick(r, IRIS),
    brow_dy = uniform(r, 0.08, 0.13), brow_thick = uniform(r, 0.018, 0.035), brow_tilt = uniform(r, -0.25, 0.25),
    nose_len = uniform(r, 0.08, 0.16), nose_w = uniform(r, 0.04, 0.07),
    mouth_y = uniform(r, 0.30, 0.38), mouth_w = uniform(r, 0.15, 0.22),
    lips = jitter(r, {0.72, 0.30, 0.32}, 0.2),
    lip_thick = uniform(r, 0.025, 0.045),
    bg1 = {r(), r(), r()}, bg2 = {r(), r(), r()},
    glasses = r() < 0.25, earrings = r() < 0.25, hat = r() < 0.12,
    accent = {r(), r(), r()},
  }
  id.lips = {id.lips[1] * 0.6 + skin[1] * 0.4, id.lips[2] * 0.6 + skin[2] * 0.4, id.lips[3] * 0.6 + skin[3] * 0.4}
  return id
end

-- ---- shapes as signed distances (tensors) --------------------------------

-- Approximate distance to an axis-aligned ellipse (exact for circles).
local function ellipse(px, py, cx, cy, rx, ry)
  local qx, qy = (px - cx) * (1 / rx), (py - cy) * (1 / ry)
  return ((qx * qx + qy * qy):sqrt() - 1) * math.min(rx, ry)
end

-- Rounded box centred at (cx, cy) with half sizes (hx, hy) and corner radius r.
local function box(px, py, cx, cy, hx, hy, r)
  local qx = (px - cx):abs() - (hx - r)
  local qy = (py - cy):abs() - (hy - r)
  local ox, oy = qx:clamp(0, math.huge), qy:clamp(0, math.huge)
  local outside = (ox * ox + oy * oy):sqrt()
  local inside = fada.maximum(qx, qy):clamp(-math.huge, 0)
  return outside + inside - r
end

local function union(a, b) return fada.minimum(a, b) end
local function intersect(a, b) return fada.maximum(a, b) end
local function subtract(a, b) return fada.maximum(a, -b) end

-- Coverage of a shape at one pixel's width: a 1-pixel linear ramp is the
-- anti-aliasing.
local function coverage(d, px) return (d * (-1 / px) + 0.5):clamp(0, 1) end

-- Paints colour c over img [3, H, W] where the coverage a [H, W] says.
local function paint(img, a, c, opacity)
  local H, W = a:size(1), a:size(2)
  local col = fada.tensor(c):view(3, 1, 1)
  if opacity then a = a * opacity end
  return img + (col - img) * a:view(1, H, W)
end

-- ---- the renderer ------------------------------------------------------------

local grids = {}
local function grid(size)
  if not grids[size] then
    local lin = fada.linspace(-1 + 1 / size, 1 - 1 / size, size)   -- pixel centres
    grids[size] = {u = lin:view(1, size):expand(size, size):contiguous(),
                   v = lin:view(size, 1):expand(size, size):contiguous()}
  end
  return grids[size]
end

-- One frame of identity `id` in pose/expression `m` as f32 [3, size, size].
function M.render(id, m, size)
  local g = grid(size)
  local px = 2 / size
  local u, v = g.u, g.v
  -- background: a vertical gradient in screen space
  local t = (v + 1) * 0.5
  local img = fada.stack({
    t * (id.bg2[1] - id.bg1[1]) + id.bg1[1],
    t * (id.bg2[2] - id.bg1[2]) + id.bg1[2],
    t * (id.bg2[3] - id.bg1[3]) + id.bg1[3]}, 1)
  -- head space: translate, then rotate by -roll
  local c, s = math.cos(m.roll or 0), math.sin(m.roll or 0)
  local ux, vy = u - (m.dx or 0), v - (m.dy or 0)
  local x = ux * c + vy * s
  local y = vy * c - ux * s
  local yaw = m.yaw or 0
  local fx = x - yaw * 0.12 -- features slide with yaw; the outline slides less
  local cy = id.face_cy
  local darker = function(col, k) return {col[1] * k, col[2] * k, col[3] * k} end

  -- hair behind the head and the neck
  if id.hair_style == 'long' or id.hair_style == 'side' then
    local back = box(x, y, 0, cy + 0.25, id.face_rx + 0.12, id.face_ry + 0.15, 0.25)
    img = paint(img, coverage(back, px), darker(id.hair, 0.85))
  end
  local neck = box(x, y, 0, cy + id.face_ry + 0.15, id.face_rx * 0.45, 0.3, 0.08)
  img = paint(img, coverage(neck, px), darker(id.skin, 0.82))
  -- ears, then the face: an ellipse whose lower half narrows toward the chin
  for side = -1, 1, 2 do
    local ear = ellipse(x, y, side * id.face_rx * 0.98, cy - 0.02, 0.07, 0.11)
    img = paint(img, coverage(ear, px), darker(id.skin, 0.92))
    if id.earrings then
      local ring = ellipse(x, y, side * id.face_rx * 0.98, cy + 0.12, 0.025, 0.025)
      img = paint(img, coverage(ring, px), id.accent)
    end
  end
  local below = (y - cy):clamp(0, math.huge) * (1 / id.face_ry)        -- 0 above the centre
  local narrow = below * id.jaw + 1
  local face = ellipse(x * narrow, y, 0, cy, id.face_rx, id.face_ry)
  img = paint(img, coverage(face, px), id.skin)
  -- cheek shading on the side the head turns away from
  local cheek = ellipse(x, y, -yaw * id.face_rx * 0.8, cy + 0.1, id.face_rx * 0.5, id.face_ry * 0.6)
  img = paint(img, coverage(cheek, px * 8), darker(id.skin, 0.93), math.abs(yaw) * 0.6)

  -- hair in front
  local top = cy - id.face_ry
  if id.hair_style ~= 'bald' then
    local cap = intersect(ellipse(x, y, 0, cy - 0.05, id.face_rx + 0.05, id.face_ry + 0.06),
                          y - (cy - id.face_ry * (id.hair_style == 'side' and 0.35 or 0.5)))
    if id.hair_style == 'side' then cap = subtract(cap, ellipse(x, y, 0.25, top + 0.28, 0.3, 0.18)) end
    if id.hair_style == 'bun' then cap = union(cap, ellipse(x, y, 0, top - 0.08, 0.16, 0.14)) end
    if id.hair_style == 'curly' then
      for k = -3, 3 do cap = union(cap, ellipse(x, y, k * 0.15, top + 0.08 + math.abs(k) * 0.04, 0.11, 0.11)) end
    end
    img = paint(img, coverage(cap, px), id.hair)
  end
  if id.hat then
    local hat = union(box(x, y, 0, top - 0.02, id.face_rx + 0.12, 0.045, 0.03),
                      box(x, y, 0, top - 0.2, id.face_rx * 0.75, 0.2, 0.08))
    img = paint(img, coverage(hat, px), id.accent)
  end

  -- eyes: white, iris and pupil clipped to the lid opening; blink closes the lid
  local open_eye = math.max(1 - (m.blink or 0), 0.06)
  local ey = cy + id.eye_y
  for side = -1, 1, 2 do
    local ex = side * id.eye_dx
    local eye = ellipse(fx, y, ex, ey, id.eye_rx, id.eye_ry * open_eye)
    img = paint(img, coverage(eye, px), {0.97, 0.97, 0.96})
    local iris = intersect(ellipse(fx, y, ex + yaw * 0.02, ey, id.eye_ry * 0.95, id.eye_ry * 0.95), eye)
    img = paint(img, coverage(iris, px), id.iris)
    local pupil = intersect(ellipse(fx, y, ex + yaw * 0.02, ey, id.eye_ry * 0.42, id.eye_ry * 0.42), eye)
    img = paint(img, coverage(pupil, px), {0.03, 0.03, 0.03})
    local lid = subtract(ellipse(fx, y, ex, ey, id.eye_rx * 1.1, id.eye_ry * 1.15), eye)
    img = paint(img, coverage(intersect(lid, y - ey), px), darker(id.skin, 0.8), 0.5 + 0.5 * (m.blink or 0))
    -- brow: a tilted rounded bar
    local by = ey - id.eye_ry - id.brow_dy
    local tilt = side * id.brow_tilt
    local bx, byy = fx - ex, y - by
    local rx = bx * math.cos(tilt) + byy * math.sin(tilt)
    local ry = byy * math.cos(tilt) - bx * math.sin(tilt)
    local brow = box(rx, ry, 0, 0, id.eye_rx * 1.2, id.brow_thick, id.brow_thick * 0.9)
    img = paint(img, coverage(brow, px), darker(id.hair, 0.8))
  end
  if id.glasses then
    local frame
    for side = -1, 1, 2 do
      local ring = ellipse(fx, y, side * id.eye_dx, ey, id.eye_rx * 1.7, id.eye_ry * 2.2 + 0.03):abs() - 0.012
      frame = frame and union(frame, ring) or ring
    end
    frame = union(frame, box(fx, y, 0, ey - 0.01, id.eye_dx - id.eye_rx * 1.6, 0.01, 0.005))
    img = paint(img, coverage(frame, px), darker(id.accent, 0.5))
  end

  -- nose: a soft shadow
  local nose = ellipse(fx, y, 0.02 * yaw, cy + id.eye_y + 0.08 + id.nose_len * 0.6, id.nose_w, id.nose_len * 0.55)
  img = paint(img, coverage(nose, px * 6), darker(id.skin, 0.78), 0.55)

  -- mouth: lips (width shrinks and height grows with rounding), the opening
  -- inside them, a band of teeth at the top of the opening
  local open, round = m.open or 0, m.round or 0
  local my = cy + id.mouth_y
  local mw = id.mouth_w * (1 - 0.38 * round)
  local gap = 0.16 * open                                -- inner opening height
  local lips = ellipse(fx, y, 0, my, mw, id.lip_thick + gap * 0.55 + round * 0.02)
  img = paint(img, coverage(lips, px), id.lips)
  local inner_h = math.max(gap * 0.5, 0.004)
  local inner = ellipse(fx, y, 0, my, mw * (0.82 - 0.1 * round), inner_h)
  img = paint(img, coverage(inner, px), {0.22, 0.05, 0.07})
  if open > 0.15 then
    local teeth = intersect(inner, y - (my - inner_h * 0.45))
    img = paint(img, coverage(teeth, px), {0.95, 0.94, 0.90})
  end
  return img:clamp(0, 1)
end

-- The drawing kit, for overlays drawn in the same pixel grid (the moderate
-- tier's occluders): signed distances, coverage, paint, the pixel grid.
M.sdf = {ellipse = ellipse, box = box, union = union, intersect = intersect, subtract = subtract}
M.coverage, M.paint, M.grid = coverage, paint, grid

return M
