-- fada.models on tiny seeded configs: CFG identities (multi-CFG at scale 1,
-- batched = separate branches, fresh student = teacher), NFE counts through
-- fada.diffusion, checkpoints, gradients, a golden checksum, the VAE, and
-- parity with an independent PyTorch twin (tests/peer/fada_twin.py).
local fada = require 'fada'
local A = require 'fada.autograd'
local F = require 'fada.F'
local models = require 'fada.models'
local cfgm = require 'fada.diffusion.cfg'
local schedule = require 'fada.diffusion.schedule'
local samplers = require 'fada.diffusion.samplers'
local optim = require 'fada.optim'

local tmpdir = os.getenv('TMPDIR') or '/tmp'
local serial = 0
local function tmp(name)
  serial = serial + 1
  return ('%s/fada_models_%d_%d_%s'):format(tmpdir, math.floor(fada.clock and fada.clock() * 1000 or os.time()) % 1000000,
    serial, name)
end

local function maxdiff(a, b) return (a - b):abs():max():item() end
local function rel(a, b) return maxdiff(a, b) / math.max(b:abs():max():item(), 1e-30) end

-- A tiny model with inputs for B clips: ctx, atok, x [B·F, Cl, 8, 8].
local function setup(cfg, B, seed)
  local m = models.FadaModel(cfg):eval()
  local g = fada.Generator(seed or 7)
  local Cl, Fr, M = cfg.latent.channels, cfg.clip_frames, cfg.motion_frames
  local hw = cfg.image_size // 2
  local inp = {ref_lat = fada.randn(B, Cl, hw, hw, g), motion_lat = fada.randn(B, M, Cl, hw, hw, g),
               win = fada.randn(B * Fr, cfg.audio.n_mels, m.audio.W, g), x = fada.randn(B * Fr, Cl, hw, hw, g)}
  local ctx = m:reference(inp.ref_lat, inp.motion_lat)
  local atok = m:audio_tokens(inp.win)
  return m, ctx, atok, inp
end

test('multi-CFG at w_ref = w_audio = 1 equals the fully conditioned pass', function()
  local m, ctx, atok, inp = setup(models.config('tiny'), 2)
  local den = function(x, t, br, ex) return m:denoise(x, t, br, ex, ctx, atok) end
  local s = cfgm.multi(den, 1, 1)
  s.steps = 1
  local guided = s.model(inp.x, 500, 1)
  local full = m:denoise(inp.x, 500, {'audio'}, nil, ctx, atok)
  assert_close(guided, full, 1e-5, 1e-4, 'multi-CFG(1, 1) vs audio pass')
  assert(maxdiff(m:denoise(inp.x, 500, {'base'}, nil, ctx, atok), full) > 1e-3, 'base must differ from audio')
  assert(maxdiff(m:denoise(inp.x, 500, {'ref'}, nil, ctx, atok), full) > 1e-3, 'ref must differ from audio')
end)

test('the batched 3-branch call equals three 1-branch calls', function()
  local m, ctx, atok, inp = setup(models.config('tiny'), 2)
  local x = inp.x
  local BF = x:size(1)
  local out = m:denoise(fada.cat({x, x, x}, 1), 321, {'base', 'ref', 'audio'}, nil, ctx, atok)
  for i, br in ipairs{'base', 'ref', 'audio'} do
    local one = m:denoise(x, 321, {br}, nil, ctx, atok)
    assert_close(out:narrow(1, (i - 1) * BF + 1, BF), one, 1e-5, 1e-4, br)
  end
  -- per-row timesteps: a tensor of one value equals the number
  local tt = fada.full({3 * BF}, 321)
  assert_close(m:denoise(fada.cat({x, x, x}, 1), tt, {'base', 'ref', 'audio'}, nil, ctx, atok), out, 1e-5, 1e-4)
end)

test('a fresh student (zero control layers) equals the teacher for any scales', function()
  local teacher, ctx, atok, inp = setup(models.config('tiny'), 2)
  local student = models.student_from(teacher, {token_dim = 8})
  assert_eq(student.training, false)
  assert_eq(student.cfg_tokens:size(2), 8)
  local sctx = student:reference(inp.ref_lat, inp.motion_lat)
  local satok = student:audio_tokens(inp.win)
  local want = teacher:denoise(inp.x, 700, {'audio'}, nil, ctx, atok)
  local g = fada.Generator(3)
  for _ = 1, 3 do
    local wr, wa = fada.rand(1, g):item() * 4, fada.rand(1, g):item() * 8
    local got = student:denoise(inp.x, 700, {'tokens'}, {w_ref = wr, w_audio = wa}, sctx, satok)
    assert_close(got, want, 1e-5, 1e-4, ('student(%.2f, %.2f)'):format(wr, wa))
  end
  -- the token mix is the CFG formula over the three tokens
  local tk = student.cfg_tokens
  local mixed = student:_tau('tokens', {w_ref = 2, w_audio = 3})
  assert_close(mixed, tk:narrow(1, 1, 1) + (tk:narrow(1, 2, 1) - tk:narrow(1, 1, 1)) * 2 +
    (tk:narrow(1, 3, 1) - tk:narrow(1, 2, 1)) * 3, 1e-6, 1e-6)
  -- a teacher has no tokens branch
  checkerror(function() teacher:denoise(inp.x, 700, {'tokens'}, {w_ref = 1, w_audio = 1}, ctx, atok) end,
    "'tokens' branch needs a student")
end)

test('student time control: the scales reach the time embedding, per branch block and per row', function()
  local teacher, _, _, inp = setup(models.config('tiny'), 2)
  local student = models.student_from(teacher, {token_dim = 8})
  assert(student.unet.ctrl_time, 'student_from gives time control by default')
  assert(not models.student_from(teacher, {token_dim = 8, time_control = false}).unet.ctrl_time)
  -- give the zero-initialised layers weights, so the scales change the output
  local g = fada.Generator(5)
  for _, p in ipairs(student:named_parameters()) do
    if p.name:find('cfg_ctrl') then p.tensor:copy(fada.randn(p.tensor:size(), g) * 0.3) end
  end
  local ctx = student:reference(inp.ref_lat, inp.motion_lat)
  local atok = student:audio_tokens(inp.win)
  local BF = inp.x:size(1)
  local a = student:denoise(inp.x, 600, {'tokens'}, {w_ref = 2, w_audio = 3.5}, ctx, atok)
  local b = student:denoise(inp.x, 600, {'tokens'}, {w_ref = 1, w_audio = 3.5}, ctx, atok)
  assert(maxdiff(a, b) > 1e-3, 'w_ref must change the output')
  -- per-row timesteps equal the number; three branches batched equal each alone
  assert_close(student:denoise(inp.x, fada.full({BF}, 600), {'tokens'}, {w_ref = 2, w_audio = 3.5}, ctx, atok), a,
    1e-5, 1e-4, 'per-row t')
  local x3 = fada.cat({inp.x, inp.x, inp.x}, 1)
  for _, t in ipairs{600, fada.full({3 * BF}, 600)} do
    local out = student:denoise(x3, t, {'base', 'ref', 'audio'}, nil, ctx, atok)
    for i, br in ipairs{'base', 'ref', 'audio'} do
      assert_close(out:narrow(1, (i - 1) * BF + 1, BF), student:denoise(inp.x, 600, {br}, nil, ctx, atok), 1e-5, 1e-4,
        br .. (type(t) == 'number' and ' (t a number)' or ' (t per row)'))
    end
  end
  -- scales per clip: equal to each clip alone with its own scales, also beside another branch
  local Fr = BF // 2
  local per = student:denoise(x3:narrow(1, 1, 2 * BF), 600, {'tokens', 'base'}, {w_ref = {1, 3}, w_audio = {2, 5}},
    ctx, atok)
  for i, w in ipairs{{1, 2}, {3, 5}} do
    local c1 = student:reference(inp.ref_lat:narrow(1, i, 1), inp.motion_lat:narrow(1, i, 1))
    local a1 = atok:narrow(1, (i - 1) * Fr + 1, Fr)
    local x1 = inp.x:narrow(1, (i - 1) * Fr + 1, Fr)
    local one = student:denoise(fada.cat({x1, x1}, 1), 600, {'tokens', 'base'}, {w_ref = w[1], w_audio = w[2]}, c1, a1)
    assert_close(per:narrow(1, (i - 1) * Fr + 1, Fr), one:narrow(1, 1, Fr), 1e-5, 1e-4, 'tokens, clip ' .. i)
    assert_close(per:narrow(1, BF + (i - 1) * Fr + 1, Fr), one:narrow(1, Fr + 1, Fr), 1e-5, 1e-4, 'base, clip ' .. i)
  end
  checkerror(function() student:denoise(inp.x, 600, {'tokens'}, {w_ref = {1}, w_audio = {2}}, ctx, atok) end,
    'each a number or a list of 2 (one per clip)')
  -- without time control the same weights give another output (the layer is in use)
  local plain = models.student_from(teacher, {token_dim = 8, time_control = false})
  plain:load_state_dict(student:state_dict(), {strict = false})
  local c = plain:denoise(inp.x, 600, {'tokens'}, {w_ref = 2, w_audio = 3.5}, plain:reference(inp.ref_lat,
    inp.motion_lat), plain:audio_tokens(inp.win))
  assert(maxdiff(a, c) > 1e-4, 'cfg_ctrl.time must change the output')
end)

test('NFE: 3 x steps for the multi-CFG teacher, 1 x steps for the student tokens', function()
  local cfg = models.config('tiny', {student = {token_dim = 8}})
  local m, ctx, atok, inp = setup(cfg, 1)
  local den = function(x, t, br, ex) return m:denoise(x, t, br, ex, ctx, atok) end
  local sched = schedule.new{prediction = 'v', zero_terminal_snr = true}
  local ts = sched:timesteps(4, 'trailing')
  local teacher = cfgm.multi(den, 2, 3)
  teacher.steps = #ts
  local x = samplers.ddim(teacher.model, inp.x, sched, ts)
  assert_eq(teacher.nfe, 12, 'teacher NFE')
  assert_eq(teacher.calls, 4, 'teacher batched calls')
  local fast = cfgm.tokens(den, 2, 3)
  fast.steps = #ts
  local y = samplers.lcm(fast.model, inp.x, sched, ts, {generator = fada.Generator(1)})
  assert_eq(fast.nfe, 4, 'student NFE')
  assert(x:size(1) == inp.x:size(1) and y:size(1) == inp.x:size(1))
end)

test('save / load round trip (f32 and f16 storage), metadata, bad checkpoints', function()
  local m, ctx, atok, inp = setup(models.config('tiny', {student = {token_dim = 8}}), 1)
  local p32, p16 = tmp('m32.safetensors'), tmp('m16.safetensors')
  models.save(m, p32, {step = 12, note = 'test'})
  models.save(m, p16, nil, {dtype = 'f16'})
  local want = m:denoise(inp.x, 400, {'tokens'}, {w_ref = 2, w_audio = 4}, ctx, atok)
  local m2 = models.load(p32)
  assert_eq(m2.metadata.step, '12')
  assert_eq(m2.config.student.token_dim, 8)
  assert_eq(m2.training, false)
  local got = m2:denoise(inp.x, 400, {'tokens'}, {w_ref = 2, w_audio = 4}, m2:reference(inp.ref_lat, inp.motion_lat),
    m2:audio_tokens(inp.win))
  -- (the same weights in another model instance: equal up to summation order in the kernels)
  assert(rel(got, want) < 1e-5, ('f32 round trip: relative error %.3g'):format(rel(got, want)))
  local m3 = models.load(p16, {dtype = 'f32'})
  local sd, sd3 = m:state_dict(), m3:state_dict()
  for k, t in pairs(sd) do
    assert_eq(maxdiff(sd3[k], t:to('f16'):to('f32')), 0, k)
  end
  local got16 = m3:denoise(inp.x, 400, {'tokens'}, {w_ref = 2, w_audio = 4}, m3:reference(inp.ref_lat, inp.motion_lat),
    m3:audio_tokens(inp.win))
  assert(rel(got16, want) < 2e-2, ('f16 weights: relative error %.3g'):format(rel(got16, want)))
  -- a config that does not match the tensors: the message names the key
  local bad = models.config('tiny', {student = {token_dim = 8}, channels = {16, 24}})
  local pbad = tmp('bad.safetensors')
  fada.safetensors.save(pbad, m:state_dict(), {config = bad})
  local err = checkerror(function() models.load(pbad) end, 'the stored config does not match the tensors')
  assert(err:find('unet.down.1.res.0.conv1.weight', 1, true), err)
  -- a teacher config against student tensors: unexpected keys named
  local pt = tmp('teacher_cfg.safetensors')
  fada.safetensors.save(pt, m:state_dict(), {config = models.config('tiny')})
  checkerror(function() models.load(pt) end, 'unexpected keys: ')
  -- no config at all
  local pn = tmp('nocfg.safetensors')
  fada.safetensors.save(pn, {w = fada.zeros(2)})
  checkerror(function() models.load(pn) end, 'has no model config')
  checkerror(function() models.load(tmp('missing.safetensors')) end, 'models.load')
  for _, p in ipairs{p32, p16, pbad, pt, pn} do os.remove(p) end
end)

test('bad inputs give clear messages', function()
  local m, ctx, atok, inp = setup(models.config('tiny'), 1)
  checkerror(function() m:denoise(inp.x:narrow(1, 1, 2), 1, {'audio'}, nil, ctx, atok) end, 'denoise: atok must be [2, Na, D]')
  checkerror(function() m:denoise(inp.x:narrow(2, 1, 5), 1, {'audio'}, nil, ctx, atok) end, 'denoise: x must be [n·B·F, 12, 8, 8]')
  checkerror(function() m:denoise(inp.x, 1, {'bogus'}, nil, ctx, atok) end, "unknown branch 'bogus'")
  checkerror(function() m:denoise(inp.x, 1, {'audio'}, nil, ctx, nil) end, 'denoise: atok must be [3, Na, D]')
  checkerror(function() m:reference(fada.zeros(1, 5, 8, 8)) end, 'reference: ref_lat must be [B, 12, h, w]')
  checkerror(function() m:reference(inp.ref_lat, fada.zeros(1, 3, 12, 8, 8)) end, 'motion_lat must be [1, 1, 12, 8, 8]')
  checkerror(function() m:audio_tokens(fada.zeros(3, 5, 20)) end, 'expected [N, 16, 20]')
  checkerror(function() models.config('huge') end, "unknown config 'huge'")
  -- F follows x: a shorter clip with the same context (the last clip of a sentence)
  local two = m:denoise(inp.x:narrow(1, 1, 2), 5, {'audio'}, nil, ctx, atok:narrow(1, 1, 2))
  assert_eq(two:size(1), 2)
  local six = m:denoise(fada.cat({inp.x:narrow(1, 1, 2), inp.x:narrow(1, 1, 2)}, 1), 5, {'base', 'audio'}, nil, ctx,
    atok:narrow(1, 1, 2))
  assert_close(six:narrow(1, 3, 2), two, 1e-5, 1e-4, 'F = 2 after F = 3')
  -- the base branch needs no audio tokens
  local b = m:denoise(inp.x, 1, {'base'}, nil, ctx, nil)
  assert_eq(b:size(1), 3)
end)

test('one training step changes every parameter (autograd through the whole model)', function()
  local cfg = models.config('tiny', {student = {token_dim = 8}})
  local m = models.FadaModel(cfg):train()
  local g = fada.Generator(11)
  local Cl, Fr = cfg.latent.channels, cfg.clip_frames
  local params = m:named_parameters()
  local before = {}
  for i, p in ipairs(params) do before[i] = p.tensor:clone() end
  local opt = optim.AdamW(params, {lr = 1e-3, weight_decay = 0})
  local losses = {}
  for step = 1, 2 do   -- two steps: the zero-initialised control layers gate the tokens' gradient in the first
    opt:zero_grad()
    local ctx = m:reference(fada.randn(1, Cl, 8, 8, g), fada.randn(1, 1, Cl, 8, 8, g))
    local atok = m:audio_tokens(fada.randn(Fr, cfg.audio.n_mels, m.audio.W, g))
    local x = fada.randn(Fr, Cl, 8, 8, g)
    local out = m:denoise(fada.cat({x, x, x, x}, 1), fada.tensor({100, 100, 100, 400, 400, 400, 700, 700, 700, 900, 900, 900}),
      {'base', 'ref', 'audio', 'tokens'}, {w_ref = 2, w_audio = 3}, ctx, atok)
    local loss = F.mse(out, fada.randn(out:size(), g))
    A.backward(loss)
    opt:step()
    losses[step] = loss:item()
  end
  local unchanged = {}
  for i, p in ipairs(params) do
    if maxdiff(p.tensor, before[i]) == 0 then unchanged[#unchanged + 1] = p.name end
  end
  assert(#unchanged == 0, 'parameters that did not change: ' .. table.concat(unchanged, ', '))
  print(('  %d parameter tensors, all changed; losses %.4f, %.4f'):format(#params, losses[1], losses[2]))
end)

-- Golden checksum of the tiny teacher (seed 0) on seeded inputs. If the
-- architecture or init changes on purpose, regenerate with
--   FADA_GOLDEN=1 build/fadalua tests/lua/run.lua tests/lua/test_models.lua
-- and paste the printed numbers here (and rerun the PyTorch parity test).
local GOLDEN = {sum = 318.171596, abs = 1187.968}
test('golden checksum of the tiny denoiser', function()
  local m, ctx, atok, inp = setup(models.config('tiny'), 1, 99)
  local out = m:denoise(fada.cat({inp.x, inp.x}, 1), 250, {'base', 'audio'}, nil, ctx, atok)
  local s, a = out:to('f64'):sum():item(), out:to('f64'):abs():sum():item()
  if os.getenv('FADA_GOLDEN') then print(('  GOLDEN = {sum = %.9g, abs = %.9g}'):format(s, a)) end
  assert_close(s, GOLDEN.sum, 1e-3, 1e-4, 'sum')
  assert_close(a, GOLDEN.abs, 1e-3, 1e-5, 'abs sum')
end)

test('audio windows: shape, silence padding, resampling, tokens', function()
  local m = models.FadaModel(models.config('tiny')):eval()
  local ac = m.config.audio
  local sr = 16000
  local n = 12
  local t = fada.arange(0, sr // 2):to('f32') * (1 / sr)
  local tone = fada.sin(t * (2 * math.pi * 440)) * 0.5            -- 0.5 s of 440 Hz
  local win = m:audio_windows(tone, sr, n)
  assert_eq(table.concat(win:size(), 'x'), ('%dx%dx%d'):format(n, ac.n_mels, 20))
  local silence = (math.log(ac.floor) - ac.mean) / ac.std
  -- frame 0's first column lies 2 frames before the start: silence
  assert_close(win:select(1, 1):select(2, 1), fada.full({ac.n_mels}, silence), 1e-4, 0, 'padding is silence')
  -- frame i's window starts 4 mel frames after frame i-1's
  assert_close(win:select(1, 5):narrow(2, 5, 16), win:select(1, 6):narrow(2, 1, 16), 0, 0, 'hop of 4 mel frames')
  -- past the end of the audio (0.5 s = 12.5 frames): frame 12 sees silence in its last columns
  assert_close(win:select(1, n):select(2, 20), fada.full({ac.n_mels}, silence), 1e-4, 0, 'silence after the end')
  -- the same tone given at 8 kHz is resampled to about the same windows
  local t8 = fada.arange(0, 4000):to('f32') * (1 / 8000)
  local win8 = m:audio_windows(fada.sin(t8 * (2 * math.pi * 440)) * 0.5, 8000, n)
  -- (bands below 4 kHz: linear interpolation leaves images above the old Nyquist)
  local mid = win:narrow(1, 4, 4):narrow(2, 1, 8):narrow(3, 5, 12)
  local mid8 = win8:narrow(1, 4, 4):narrow(2, 1, 8):narrow(3, 5, 12)
  local err = (mid - mid8):abs():mean():item()
  assert(err < 0.05, ('resampled windows differ by %.3g on average'):format(err))
  local atok = m:audio_tokens(win)
  assert_eq(table.concat(atok:size(), 'x'), ('%dx%dx%d'):format(n, ac.tokens, ac.dim))
end)

test('SD-style VAE: shapes, diffusers keys, save/load, denoising in its latent space', function()
  local cfg = models.config('tiny', {latent = {kind = 'vae', block_out_channels = {8, 16}, layers_per_block = 1,
                                               latent_channels = 4, norm_groups = 4, scaling_factor = 0.18215}})
  assert_eq(cfg.latent.channels, 4)
  local m = models.FadaModel(cfg):eval()
  local sd = m:state_dict()
  for _, k in ipairs{'vae.encoder.conv_in.weight', 'vae.encoder.down_blocks.0.resnets.0.norm1.weight',
                     'vae.encoder.down_blocks.0.downsamplers.0.conv.weight', 'vae.encoder.mid_block.attentions.0.to_q.weight',
                     'vae.encoder.mid_block.attentions.0.to_out.0.bias', 'vae.encoder.down_blocks.1.resnets.0.conv_shortcut.weight',
                     'vae.quant_conv.weight', 'vae.post_quant_conv.weight', 'vae.decoder.up_blocks.0.resnets.1.conv2.weight',
                     'vae.decoder.up_blocks.0.upsamplers.0.conv.weight', 'vae.decoder.conv_norm_out.weight',
                     'vae.decoder.conv_out.bias'} do
    assert(sd[k], 'missing diffusers key ' .. k)
  end
  for _, p in ipairs(m:named_parameters()) do assert(not p.name:find('^vae%.'), 'the VAE is frozen: ' .. p.name) end
  local frames = fada.rand(2, 3, 16, 16, fada.Generator(2)) * 2 - 1
  local lat = m:encode(frames)
  assert_eq(table.concat(lat:size(), 'x'), '2x4x8x8')
  local img = m:decode(lat)
  assert_eq(table.concat(img:size(), 'x'), '2x3x16x16')
  local ctx = m:reference(lat:narrow(1, 1, 1))
  local atok = m:audio_tokens(fada.randn(3, 16, 20, fada.Generator(4)))
  local x = fada.randn(3, 4, 8, 8, fada.Generator(5))
  local out = m:denoise(x, 10, {'audio'}, nil, ctx, atok)
  local p = tmp('vae.safetensors')
  models.save(m, p)
  local m2 = models.load(p)
  os.remove(p)
  assert(rel(m2:encode(frames), lat) < 1e-5, 'encode after load')
  assert(rel(m2:decode(lat), img) < 1e-5, 'decode after load')
  assert_eq(rel(m2:denoise(x, 10, {'audio'}, nil, m2:reference(lat:narrow(1, 1, 1)), m2:audio_tokens(
    fada.randn(3, 16, 20, fada.Generator(4)))), out) < 1e-5 and 0 or 1, 0, 'denoise after load')
end)

test('space-to-depth E is lossless', function()
  local m = models.FadaModel(models.config('tiny')):eval()
  local frames = fada.rand(2, 3, 16, 16, fada.Generator(2)) * 2 - 1
  local lat = m:encode(frames)
  assert_eq(table.concat(lat:size(), 'x'), '2x12x8x8')
  assert_eq(maxdiff(m:decode(lat), frames), 0)
  -- channel c·4 + i·2 + j holds pixel (2y + i, 2x + j) of colour c (torch pixel_unshuffle)
  assert_eq(lat:get(1, 4 * 1 + 2 * 1 + 0 + 1, 3, 4), frames:get(1, 2, 2 * 2 + 1 + 1, 2 * 3 + 0 + 1))
  checkerror(function() m:encode(fada.zeros(1, 3, 15, 16)) end, 'not divisible by the latent factor 2')
end)

-- PyTorch parity: the twin reads the same checkpoint and inputs.
local function parity(cfg, B, branches, extra, prepare)
  need_torch()
  local m, ctx, atok, inp = setup(cfg, B, 21)
  if prepare then prepare(m) end
  local n = #branches
  local parts = {}
  for i = 1, n do parts[i] = inp.x end
  local x = fada.cat(parts, 1)
  local out = m:denoise(x, 437, branches, extra, ctx, atok)
  local pm, pin, pout = tmp('twin_model.safetensors'), tmp('twin_in.safetensors'), tmp('twin_out.safetensors')
  models.save(m, pm)
  fada.safetensors.save(pin, {ref_lat = inp.ref_lat, motion_lat = inp.motion_lat, win = inp.win, x = x},
    {metadata = {t = '437', branches = table.concat(branches, ','),
                 w_ref = tostring(extra and extra.w_ref or 1), w_audio = tostring(extra and extra.w_audio or 1)}})
  local script = fada.library_dir:match('^(.*)/build[^/]*/lua$') or (fada.library_dir .. '/../..')
  local twin = script .. '/tests/peer/fada_twin.py'
  local f = io.open(twin)
  if not f then twin = 'tests/peer/fada_twin.py' else f:close() end
  local p = io.popen(('/usr/bin/python3 %s run %s %s %s 2>&1'):format(twin, pm, pin, pout))
  local msg = p:read('a')
  local ok = p:close()
  assert(ok, 'twin failed: ' .. msg)
  local res = fada.safetensors.load(pout)
  for _, q in ipairs{pm, pin, pout} do os.remove(q) end
  local e_tok, e_out = rel(atok, res.atok), rel(out, res.out)
  print(('  PyTorch twin: relative error audio tokens %.2e, denoiser %.2e (%s, B = %d)'):format(e_tok, e_out,
    table.concat(branches, ','), B))
  assert(e_tok <= 1e-4 and e_out <= 1e-4, ('relative error %.3g / %.3g > 1e-4'):format(e_tok, e_out))
end

test('PyTorch parity: teacher, 3 branches, 2 clips', function()
  parity(models.config('tiny'), 2, {'base', 'ref', 'audio'})
end)

test('PyTorch parity: student tokens, 1 clip, mini widths', function()
  parity(models.config('tiny', {student = {token_dim = 8}, channels = {32, 64}, head_dim = 32,
                                attn_levels = {true, true}, mid_res = 2, num_res_blocks = 2}),
    1, {'tokens', 'ref'}, {w_ref = 1.5, w_audio = 4.5})
end)

test('PyTorch parity: student with time control (non-zero control layers), 2 clips', function()
  parity(models.config('tiny', {student = {token_dim = 8, time_control = true}}), 2, {'tokens', 'base'},
    {w_ref = 2.5, w_audio = 3}, function(m)
      local g = fada.Generator(13)
      for _, p in ipairs(m:named_parameters()) do
        if p.name:find('cfg_ctrl') then p.tensor:copy(fada.randn(p.tensor:size(), g) * 0.2) end
      end
    end)
end)

test('PyTorch parity: student with branch tokens (FADA-Balanced\'s branches), 2 clips', function()
  parity(models.config('tiny', {student = {token_dim = 8, time_control = true, branch_tokens = true}}), 2,
    {'base', 'ref', 'audio', 'tokens'}, {w_ref = 2, w_audio = 3.5}, function(m)
      local g = fada.Generator(17)
      for _, p in ipairs(m:named_parameters()) do
        if p.name:find('cfg_ctrl') then p.tensor:copy(fada.randn(p.tensor:size(), g) * 0.2) end
      end
    end)
end)

test('attention over few keys (the temporal path) matches the reference kernel', function()
  local g = fada.Generator(8)
  for _, c in ipairs{{B = 6, Nq = 5, Nk = 5, Ne = 0}, {B = 4, Nq = 7, Nk = 3, Ne = 4}, {B = 3, Nq = 9, Nk = 20, Ne = 12}} do
    local q, k, v = fada.randn(c.B, c.Nq, 32, g), fada.randn(c.B, c.Nk, 32, g), fada.randn(c.B, c.Nk, 32, g)
    local o = {heads = 2}
    if c.Ne > 0 then o.extra_k, o.extra_v = fada.randn(1, c.Ne, 32, g), fada.randn(1, c.Ne, 32, g) end
    local y, lse = fada.ops.attention(q, k, v, o)
    local yr, lr = fada.ops.ref.attention(q, k, v, o)
    assert_close(y, yr:to('f32'), 1e-5, 1e-4, 'output')
    assert_close(lse, lr:to('f32'), 1e-5, 1e-5, 'logsumexp')
    -- with a mask that hides the first key of every row
    local mask = fada.ones(1, 1, 1, c.Nk + c.Ne)
    mask:narrow(4, 1, 1):fill(0)
    o.mask = mask:to('bool')
    assert_close(fada.ops.attention(q, k, v, o), fada.ops.ref.attention(q, k, v, o):to('f32'), 1e-5, 1e-4, 'masked')
  end
end)

test('F.count_flops counts conv, linear and attention without replacing F\'s functions', function()
  local before = {F.conv2d, F.conv1d, F.linear, F.attention}
  local x, w = fada.randn(2, 3, 8, 8), fada.randn(4, 3, 3, 3)
  local lin_x, lin_w = fada.randn(5, 6), fada.randn(7, 6)
  local q, k = fada.randn(2, 4, 8), fada.randn(2, 6, 8)
  local inner
  local total = F.count_flops(function()
    F.conv2d(x, w, nil, {padding = 1})                         -- 2 · (2·4·8·8) · (3·3·3)
    inner = F.count_flops(function() F.linear(lin_x, lin_w) end) -- 2 · (5·7) · 6
    F.attention(q, k, k, {heads = 2, extra_k = k, extra_v = k}) -- 4 · 2 · 4 · (6 + 6) · 8
  end)
  assert_eq(inner, 2 * 35 * 6, 'the nested count')
  assert_eq(total, 2 * 512 * 27 + 2 * 35 * 6 + 4 * 2 * 4 * 12 * 8, 'the outer count, the nested one included')
  assert_eq(F.count_flops(function() F.conv1d(fada.randn(1, 2, 5), fada.randn(3, 2, 3)) end), 2 * 9 * 6, 'conv1d')
  local after = {F.conv2d, F.conv1d, F.linear, F.attention}
  for i = 1, 4 do assert_eq(after[i], before[i], 'F function ' .. i) end
  checkerror(function() F.count_flops(function() error('inside') end) end, 'inside')
  F.linear(lin_x, lin_w) -- outside a count: nothing to add to
end)
