-- scripts/bench_model.lua, the yardstick, on the tiny config: its flags, a
-- line per peer or a loud skip line per absent one, the closing line last;
-- and the exported twin's output check in ONNX Runtime (and OpenVINO) against
-- torch, in scripts/setup-bench.sh's environment, which this test makes first
-- when it can (PyPI; as test_sampler_peers.lua makes its own), else skips
-- loudly. No timing is asserted.
-- labels: nosan;peer
local sh = dofile(debug.getinfo(1, 'S').source:match('^@(.-)[^/]*$') .. 'shell_helpers.lua')

local PEERS = {'torch', 'onnxruntime', 'openvino'}
local CLOSING = 'fadalua vs the fastest of them: '

local function lines_of(s)
  local t = {}
  for l in s:gmatch('[^\n]+') do t[#t + 1] = l end
  return t
end

-- The bench environment, made before the shared run so that run has every peer.
local bench_env = io.popen('sh scripts/setup-bench.sh 2>&1')
local bench_why = bench_env:read('a'):gsub('%s+$', '')
local have_bench_env = bench_env:close()

-- One run of the whole yardstick on the tiny config, shared by the tests below.
local run
local function tiny_run()
  if not run then
    local out, err, code = sh.run('scripts/bench_model.lua --config tiny --reps 1')
    run = {out = out, err = err, code = code}
  end
  assert_eq(run.code, 0, 'exit code; stdout:\n' .. run.out .. '\nstderr:\n' .. run.err)
  return run
end

test('--help lists every flag with its default', function()
  local out, code = sh.script('bench_model', '--help')
  assert_eq(code, 0, out)
  for _, f in ipairs{'--config STRING', '--reps INT', '--threads INT', '--peers STRINGS', '--torch / --no-torch',
                     '--venv STRING', '--setup / --no-setup', '--bf16 / --no-bf16'} do
    local line = out:match('\n  (' .. f:gsub('%p', '%%%0') .. '[^\n]*)')
    assert(line, ('--help does not list %s:\n%s'):format(f, out))
    assert(line:find('default', 1, true), ('--help gives no default for %s: %s'):format(f, line))
  end
  local _, ucode = sh.script('bench_model', '--peers torch,bogus')
  assert_eq(ucode, 2, 'an unknown peer')
end)

test('tiny: a line per peer or a skip line saying why, then the closing line', function()
  local r = tiny_run()
  io.write(r.out)
  local lines = lines_of(r.out)
  local ran = 0
  for _, p in ipairs(PEERS) do
    local rows = select(2, r.out:gsub('\n  ' .. p .. ' +[%d.]+ ms/call[^\n]* ms/NFE [^\n]*ms/frame%-NFE[^\n]*of peak  fadalua [%d.]+x', ''))
    local skip = r.out:match('\nskip: ' .. p .. ' +(%S[^\n]*)')
    assert((rows == 2) ~= (skip ~= nil), ('%s: expected a row in each of the 2 batches (got %d) or one skip ' ..
      'line:\n%s'):format(p, rows, r.out))
    if rows == 2 then ran = ran + 1 end
  end
  assert_eq(select(2, r.out:gsub('\n  fadalua +[%d.]+ ms/call', '')), 2, 'fadalua rows')
  local last = lines[#lines]
  assert(last:sub(1, #CLOSING) == CLOSING, 'the last line is not the closing line: ' .. last)
  if ran > 0 then
    assert(last:match('^' .. CLOSING .. '%d+%.%d%dx$'), 'closing line: ' .. last)
  else
    sh.contains(last, 'n/a (no peer ran)')
  end
end)

test('the exported twin computes what torch computes (ONNX Runtime; OpenVINO too when there)', function()
  need_torch()
  if not have_bench_env then
    skip('the bench environment could not be made, so no ONNX Runtime peer to check (' .. bench_why .. ')')
  end
  local r = tiny_run()
  local checked = {}
  for backend, branches, rel in r.err:gmatch('fada_twin: (%w+) %(exported to ONNX[^)]*%) vs torch on the same ' ..
                                             'inputs, branches (%S+): max abs diff %S+ %(relative (%S+),') do
    print(('  %s, %s: relative difference %s'):format(backend, branches, rel))
    assert(tonumber(rel) <= 1e-3, ('%s, %s: relative difference %s > 1e-3'):format(backend, branches, rel))
    checked[backend] = (checked[backend] or 0) + 1
  end
  assert_eq(checked.onnxruntime, 2, 'ONNX Runtime checks (one per branch set); stderr:\n' .. r.err)
  sh.lacks(r.out, 'skip: onnxruntime', 'stdout')
  if not r.out:find('skip: openvino', 1, true) then assert_eq(checked.openvino, 2, 'OpenVINO checks') end
end)

test('an absent environment is a loud skip, never a silent one', function()
  local out, err, code = sh.run('scripts/bench_model.lua --config tiny --reps 1 --no-bf16 --no-torch ' ..
                                '--venv /nonexistent/venv')
  assert_eq(code, 0, err)
  sh.contains(out, 'skip: torch        left out (--no-torch)')
  for _, p in ipairs{'onnxruntime', 'openvino'} do
    local why = out:match('\nskip: ' .. p .. ' +([^\n]*)')
    assert(why and why:find('/nonexistent/venv', 1, true) and why:find('--setup', 1, true),
      p .. ': no skip line naming the environment and --setup:\n' .. out)
  end
  sh.contains(out, 'bf16: skipped (--no-bf16)')
  sh.contains(out, CLOSING .. 'n/a (no peer ran)')
end)
