-- fada.safetensors: round trips, a file written by an independent writer
-- (Python's struct + json), zero-copy loads, half conversion.
local fada = require 'fada'
local st = fada.safetensors

local tmpdir = os.getenv('TMPDIR') or '/tmp'
local function tmp(name) return ('%s/fada_st_%d_%s'):format(tmpdir, math.random(1 << 30), name) end

test('round trip of every dtype with metadata and a JSON config', function()
  local path = tmp('rt.safetensors')
  local a = fada.arange(0, 24):to('f32'):view(2, 3, 4)
  local tensors = {
    a = a,
    h = fada.tensor({0.5, -2, 1024, 3.140625}):to('f16'),
    b = fada.tensor({{1.5, -0.25}, {7, 1e10}}):to('bf16'),
    i = fada.tensor({1, -5, 1 << 40}):to('i64'),
    u = fada.tensor({0, 255, 17}):to('u8'),
    s = a:narrow(3, 2, 2), -- a non-contiguous view is written contiguous
    e = fada.zeros(0, 3),
  }
  st.save(path, tensors, {metadata = {format = 'pt', note = 'hi'},
                          config = {dim = 64, heads = {4, 8}, name = 'tiny', scale = 0.5, flag = true}})
  local back, meta, config = st.load(path)
  for k, t in pairs(tensors) do
    assert_eq(back[k]:dtype(), t:dtype(), k .. ' dtype')
    assert_close(back[k]:to('f64'), t:to('f64'), 0, 0, k)
  end
  assert_eq(meta.format, 'pt'); assert_eq(meta.note, 'hi')
  assert_eq(config.dim, 64); assert_eq(config.heads[2], 8); assert_eq(config.name, 'tiny')
  assert_eq(config.scale, 0.5); assert_eq(config.flag, true)
  local entries = st.header(path)
  assert_eq(#entries, 7)
  os.remove(path)
end)

test('reads a file made by an independent writer (python struct + json; space padding, a UTF-8 key)', function()
  local path = tmp('py.safetensors')
  local py = [[
import json, struct, sys
vals = [1.5, -2.0, 3.25, 1e-3, 0.0, 7.0]
data = struct.pack('<6f', *vals) + struct.pack('<2q', -7, 9)
hdr = {"x": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
       "n": {"dtype": "I64", "shape": [2], "data_offsets": [24, 40]},
       "__metadata__": {"config": json.dumps({"k": [1, 2.5e-3]})}}
h = json.dumps(hdr).encode().replace(b'"n"', '"n\u00e9"'.encode())
h += b' ' * (7 - len(h) % 8)  # padded with spaces, as the reference writer aligns its data
open(sys.argv[1], 'wb').write(struct.pack('<Q', len(h)) + h + data)
]]
  local f = assert(io.open(path .. '.py', 'w')); f:write(py); f:close()
  assert(os.execute(('python3 %s.py %s'):format(path, path)))
  local t, meta, config = st.load(path)
  assert_close(t.x, fada.tensor({{1.5, -2, 3.25}, {1e-3, 0, 7}}), 0, 0, 'x')
  assert_eq(t['n\u{e9}']:get(1), -7); assert_eq(t['n\u{e9}']:get(2), 9)
  assert_eq(config.k[2], 2.5e-3)
  os.remove(path); os.remove(path .. '.py')
end)

test('f32 loads are views of the mapped file; writes to them stay private', function()
  local path = tmp('zc.safetensors')
  st.save(path, {w = fada.ones(256, 256), v = fada.full({3}, 2)})
  local t1 = st.load(path)
  local t2 = st.load(path)
  assert(not t1.w:is_same_storage(t1.v), 'one storage per tensor')
  t1.w:fill(5) -- MAP_PRIVATE: copy-on-write, never written back
  assert_eq(t1.w:get(1, 1), 5)
  assert_eq(t2.w:get(1, 1), 1)
  local t3 = st.load(path)
  assert_eq(t3.w:get(256, 256), 1)
  t1, t2, t3 = nil, nil, nil
  collectgarbage(); collectgarbage() -- the maps go with their last view
  os.remove(path)
end)

test('f16/bf16 kept by default, converted to f32 on request', function()
  local path = tmp('half.safetensors')
  local ref = fada.tensor({0.1, 1, -3.5, 65504})
  st.save(path, {h = ref:to('f16'), b = ref:to('bf16')})
  local kept = st.load(path)
  assert_eq(kept.h:dtype(), 'f16'); assert_eq(kept.b:dtype(), 'bf16')
  local conv = st.load(path, {dtype = 'f32'})
  assert_eq(conv.h:dtype(), 'f32'); assert_eq(conv.b:dtype(), 'f32')
  assert_close(conv.h, ref:to('f16'):to('f32'), 0, 0, 'f16')
  assert_close(conv.b, ref:to('bf16'):to('f32'), 0, 0, 'bf16')
  os.remove(path)
end)

test('save refuses bad arguments and unwritable places, leaving no file', function()
  checkerror(function() st.save('/nonexistent_dir/x.safetensors', {a = fada.ones(2)}) end, "'/nonexistent_dir/x.safetensors'")
  checkerror(function() st.save(tmpdir, {a = fada.ones(2)}) end, 'is a directory')
  checkerror(function() st.save(tmp('x'), {a = fada.ones(2)}, {config = {f = print}}) end, 'config holds')
  checkerror(function() st.load(tmp('missing.safetensors')) end, 'No such file')
end)
