-- The yardstick's peers (scripts/bench_model.lua): the PyTorch twin of the
-- model (tests/peer/fada_twin.py) as one server per peer, eager in Debian's
-- torch 1.13 ('torch') or exported to ONNX and run by ONNX Runtime
-- ('onnxruntime') or OpenVINO ('openvino') from scripts/setup-bench.sh's
-- environment. Each server answers one timed denoiser call per request over
-- two FIFOs, so its calls alternate with fadalua's under the same load.
--
--   local found, skipped = peers.find{names = {'torch', 'onnxruntime'}, venv = PATH, setup = false}
--   local s = peers.start(found[1], 'model.safetensors', threads)
--   local ms = s:call{'base', 'ref', 'audio'}    -- the peer's milliseconds for one call
--   s:stop()
local fada = require 'fada'
local stats = require 'fada.metrics.stats'

local M = {}

M.NAMES = {'torch', 'onnxruntime', 'openvino'}
M.LABELS = {torch = 'PyTorch eager', onnxruntime = 'ONNX Runtime (torch.onnx.export)',
            openvino = 'OpenVINO (torch.onnx.export)'}
M.SYSTEM_PYTHON = '/usr/bin/python3'        -- Debian's, with python3-torch

local quote = fada.shell_quote

-- The repository: the folder above build*/lua (else the current folder).
function M.repo_dir()
  return fada.library_dir:match('^(.*)/build[^/]*/lua$') or '.'
end

-- ok, output (stdout and stderr, trailing space trimmed)
local function shell(cmd)
  local p = assert(io.popen(cmd .. ' 2>&1'))
  local out = p:read('a')
  local ok = p:close()
  return ok == true, (out:gsub('%s+$', ''))
end

local function last_line(s) return s:match('([^\n]*)$') end

-- The median of a list of numbers (fada.metrics.stats.median) and its minimum.
function M.median(list) return stats.median(list), math.min(table.unpack(list)) end

-- The median of a[r] / b[r] over the rounds r, and the ratios.
function M.paired(a, b)
  local ratios = {}
  for r = 1, #a do ratios[r] = a[r] / b[r] end
  return (M.median(ratios)), ratios
end

-- peers.rounds(reps, ours, servers, branches) -> {fadalua = {ms, ...}, [peer name] = {ms, ...}}:
-- a warm-up call each (a server's first also exports and checks), then `reps`
-- rounds of ours() (one timed fadalua call, its ms) and every server in turn.
function M.rounds(reps, ours, servers, branches)
  ours()
  for _, s in ipairs(servers) do s:call(branches) end
  local ms = {fadalua = {}}
  for _, s in ipairs(servers) do ms[s.name] = {} end
  for r = 1, reps do
    ms.fadalua[r] = ours()
    collectgarbage('step', 0)
    for _, s in ipairs(servers) do ms[s.name][r] = s:call(branches) end
  end
  return ms
end

-- peers.find{names =, venv =, setup =, off = {name = why}, repo =} -> found, skipped.
-- found: {{name =, python =, version =}, ...} in M.NAMES order, for the names
-- asked for that can run here; skipped: {{name =, why =}, ...} for every other
-- peer of M.NAMES (off[name] says why one was left out by a flag). The exported
-- peers use the python of scripts/setup-bench.sh's environment in venv, made
-- first when setup is true (else only found when already made).
function M.find(o)
  local repo = o.repo or M.repo_dir()
  local asked = {}
  for _, n in ipairs(o.names) do asked[n] = true end
  local venv_python, venv_why
  local function bench_python()
    if not (venv_python or venv_why) then
      local ok, out = shell(('sh %s %s%s'):format(quote(repo .. '/scripts/setup-bench.sh'),
        o.setup and '' or '--check ', quote(o.venv)))
      if ok then
        venv_python = last_line(out)
        if o.setup and out:find('\n') then print(out:match('^(.*)\n')) end   -- what setup-bench did
      else
        venv_why = last_line(out) .. (o.setup and '' or '; or pass --setup')
      end
    end
    return venv_python, venv_why
  end
  local found, skipped = {}, {}
  for _, name in ipairs(M.NAMES) do
    local python, why
    if not asked[name] then
      why = (o.off or {})[name] or 'not in --peers'
    elseif name == 'torch' then
      python = M.SYSTEM_PYTHON
    else
      python, why = bench_python()
    end
    if python then
      local ok, out = shell(('%s -c %s'):format(quote(python),
        quote(('import torch, %s; print(%s.__version__)'):format(name, name))))
      if ok then
        found[#found + 1] = {name = name, python = python, version = last_line(out):match('^[^-]*')}
      else
        why = ('%s cannot import torch and %s: %s'):format(python, name, last_line(out))
      end
    end
    if why then skipped[#skipped + 1] = {name = name, why = why} end
  end
  return found, skipped
end

local Server = {}
Server.__index = Server

-- Starts the twin's server for one found peer on the checkpoint at model_path.
function M.start(peer, model_path, threads, repo)
  repo = repo or M.repo_dir()
  local base = os.tmpname()
  local s = setmetatable({name = peer.name, base = base, fin = base .. '.in', fout = base .. '.out'}, Server)
  assert(os.execute(('mkfifo %s %s'):format(quote(s.fin), quote(s.fout))) == true, 'mkfifo failed')
  os.execute(('%s %s serve %s %d %s %s %s &'):format(quote(peer.python), quote(repo .. '/tests/peer/fada_twin.py'),
    quote(model_path), threads, quote(s.fin), quote(s.fout), peer.name))
  -- the server opens its end of IN, then of OUT: in that order here too
  s.w = assert(io.open(s.fin, 'w'))
  s.r = assert(io.open(s.fout, 'r'))
  return s
end

-- One timed call of the denoiser on one clip for this branch list: the
-- peer's milliseconds. A peer that failed (its export, its output check)
-- raises its message.
function Server:call(branches)
  self.w:write(table.concat(branches, ','), '\n')
  self.w:flush()
  local line = self.r:read('l')
  local ms = line and tonumber(line)
  if not ms then
    self.dead = true        -- no more writes: a closed FIFO would end fadalua with SIGPIPE
    error(('the %s peer %s'):format(self.name, line and 'failed: ' .. line or 'stopped'), 0)
  end
  return ms
end

function Server:stop()
  if self.w then
    if not self.dead then self.w:write('quit\n') end
    self.w:close()
    self.r:close()
    self.w, self.r = nil, nil
  end
  for _, f in ipairs{self.fin, self.fout, self.base} do os.remove(f) end
end

return M
