-- Helpers for the I/O tests (not a test file): temporary paths, running a
-- shell command, and calling PyTorch (/usr/bin/python3) on fada tensors.
-- Tensors travel as safetensors files, read and written on the Python side
-- with struct + json (no safetensors package needed there).
local fada = require 'fada'
local M = {}

local tmpdir = os.getenv('TMPDIR') or '/tmp'
local serial = 0
function M.tmp(name)
  serial = serial + 1
  return ('%s/fada_io_%d_%d_%s'):format(tmpdir, math.floor(os.time() % 100000 * 1000 + math.random(999)), serial, name)
end

-- Runs a shell command; returns its stdout, errors (with the output) if it fails.
function M.sh(cmd)
  local p = assert(io.popen(cmd .. ' 2>&1'))
  local out = p:read('a')
  local ok, _, code = p:close()
  if not ok then error(('command failed (%s): %s\n%s'):format(tostring(code), cmd, out), 2) end
  return out
end

function M.write(path, text)
  local f = assert(io.open(path, 'wb')); f:write(text); f:close()
end

function M.read(path)
  local f = io.open(path, 'rb'); if not f then return nil end
  local s = f:read('a'); f:close(); return s
end

local prelude = [==[
import json, struct, sys, torch
_DT = {'F32': torch.float32, 'F64': torch.float64, 'I64': torch.int64, 'U8': torch.uint8}
_NAME = {v: k for k, v in _DT.items()}
def st_read(path):
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == '__metadata__': continue
        s, e = v['data_offsets']
        t = torch.frombuffer(bytearray(b[8 + n + s:8 + n + e]), dtype=_DT[v['dtype']]) if e > s else torch.zeros(0, dtype=_DT[v['dtype']])
        out[k] = t.reshape(v['shape'])
    return out
def st_write(path, d):
    h, data, pos = {}, b'', 0
    for k, t in d.items():
        t = t.contiguous()
        raw = t.numpy().tobytes()
        h[k] = {'dtype': _NAME[t.dtype], 'shape': list(t.shape), 'data_offsets': [pos, pos + len(raw)]}
        data += raw; pos += len(raw)
    s = json.dumps(h).encode(); s += b' ' * (-len(s) % 8)
    open(path, 'wb').write(struct.pack('<Q', len(s)) + s + data)
inp = st_read(sys.argv[1])
out = {}
]==]

-- torch(code, inputs) -> outputs: code sees `inp` (dict of tensors) and
-- fills `out`; both sides are tables of tensors keyed by name.
function M.torch(code, inputs)
  local pin, pout, pscript = M.tmp('in.safetensors'), M.tmp('out.safetensors'), M.tmp('peer.py')
  fada.safetensors.save(pin, inputs or {})
  M.write(pscript, prelude .. code .. '\nst_write(sys.argv[2], out)\n')
  M.sh(('/usr/bin/python3 %s %s %s'):format(pscript, pin, pout))
  local res = fada.safetensors.load(pout)
  os.remove(pin); os.remove(pout); os.remove(pscript)
  return res
end

function M.has_torchaudio()
  if M._ta == nil then
    M._ta = os.execute('/usr/bin/python3 -c "import torchaudio" >/dev/null 2>&1') == true
  end
  return M._ta
end

-- A smooth u8 [H, W, 3] test picture (gradients + a soft disc): lossy codecs
-- keep it well, so their tolerance can be tight.
function M.picture(h, w)
  local rows = {}
  for y = 1, h do
    local row = {}
    for x = 1, w do
      local d = math.sqrt((x - w / 2) ^ 2 + (y - h / 2) ^ 2) / (math.min(w, h) / 2)
      row[x] = {math.floor(255 * x / w), math.floor(255 * y / h), math.floor(255 * math.max(0, 1 - d))}
    end
    rows[y] = row
  end
  return fada.tensor(rows):to('u8')
end

-- PSNR (dB) between two u8 (or [0, 1] float) tensors of one shape.
function M.psnr(a, b, peak)
  local la, lb = a:to('f64'):contiguous():view(-1):tolist(), b:to('f64'):contiguous():view(-1):tolist()
  assert(#la == #lb, 'psnr: sizes differ')
  local se = 0
  for i = 1, #la do se = se + (la[i] - lb[i]) ^ 2 end
  local mse = se / #la
  if mse == 0 then return math.huge end
  return 10 * math.log((peak or 255) ^ 2 / mse, 10)
end

return M
