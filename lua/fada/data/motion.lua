-- Random head sway and blinks for the synthetic talking avatars: seeded, and
-- independent of the audio (this is the part of the video a model cannot
-- predict from speech, the part CFG must not wash out).
--
-- Sway, per axis: a sum of three sinusoids with random frequencies
-- (0.08-0.7 Hz), phases and amplitudes. The amplitudes sum to at most the
-- axis's bound, so |dx|, |dy| <= 0.06, |roll| <= 0.08 rad, |yaw| <= 0.5 hold
-- exactly, and the motion is smooth (no frame-to-frame jumps).
-- Blinks: the first after 0.3-3 s, then intervals of 2-6 s; each blink is a
-- 3-5 frame close/open profile (closing is faster than opening).
--
--   local motion = require 'fada.data.motion'
--   local tr = motion.track(seed, frames, fps)  -- {dx=, dy=, roll=, yaw=, blink=} arrays
--   local m = motion.frame(tr, i)               -- {dx, dy, roll, yaw, blink} of frame i
local face = require 'fada.data.face'

local M = {}

M.BOUNDS = {dx = 0.06, dy = 0.05, roll = 0.08, yaw = 0.5}
M.AXES = {'dx', 'dy', 'roll', 'yaw'}

-- Blink closure profiles by length (frames); values are eyelid closure 0..1.
M.BLINK_PROFILES = {
  [3] = {0.6, 1.0, 0.4},
  [4] = {0.5, 1.0, 0.7, 0.25},
  [5] = {0.4, 0.9, 1.0, 0.55, 0.2},
}

local function uniform(r, a, b) return a + (b - a) * r() end

-- One axis: values for frames 1..n at `fps`, bounded by `bound`.
local function sway(r, n, fps, bound)
  local scale = bound * uniform(r, 0.45, 1.0)   -- how lively this clip is on this axis
  local w = {r() + 0.2, r() + 0.2, r() + 0.2}
  local total = w[1] + w[2] + w[3]
  local comps = {}
  for k = 1, 3 do
    comps[k] = {amp = scale * w[k] / total, hz = uniform(r, 0.08, 0.7), phase = uniform(r, 0, 2 * math.pi)}
  end
  local out = {}
  for i = 1, n do
    local t, v = (i - 1) / fps, 0
    for k = 1, 3 do
      local c = comps[k]
      v = v + c.amp * math.sin(2 * math.pi * c.hz * t + c.phase)
    end
    out[i] = v
  end
  return out
end

-- Blink closure per frame and the list of blink start frames.
local function blinks(r, n, fps)
  local out, starts = {}, {}
  for i = 1, n do out[i] = 0 end
  local t = uniform(r, 0.3, 3.0)
  while true do
    local start = math.floor(t * fps) + 1
    if start > n then break end
    local profile = M.BLINK_PROFILES[3 + math.floor(r() * 3)]
    starts[#starts + 1] = start
    for k = 1, #profile do
      if start + k - 1 <= n then out[start + k - 1] = profile[k] end
    end
    t = t + uniform(r, 2.0, 6.0)
  end
  return out, starts
end

-- The motion of a clip: n frames at fps from `seed`.
function M.track(seed, n, fps)
  assert(math.type(n) == 'integer' and n >= 0, 'motion.track: frames must be an integer >= 0')
  fps = fps or 25
  local r = face.rng(seed * 104729 + 3)
  local tr = {frames = n, fps = fps, seed = seed}
  for _, axis in ipairs(M.AXES) do tr[axis] = sway(r, n, fps, M.BOUNDS[axis]) end
  tr.blink, tr.blink_starts = blinks(r, n, fps)
  return tr
end

-- Frame i's motion table (the renderer's dx, dy, roll, yaw, blink).
function M.frame(tr, i)
  return {dx = tr.dx[i], dy = tr.dy[i], roll = tr.roll[i], yaw = tr.yaw[i], blink = tr.blink[i]}
end

return M
