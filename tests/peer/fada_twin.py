#!/usr/bin/python3
"""PyTorch 1.13 twin of fada.models (lua/fada/models): the denoising UNet,
the reference net and the audio encoder, written independently from the Lua
code with torch.nn.functional, reading the same safetensors checkpoint (its
__metadata__ holds the config JSON) so the two can be compared number for
number.

  fada_twin.py run   MODEL.safetensors INPUTS.safetensors OUT.safetensors
      INPUTS: ref_lat [B,Cl,h,w], motion_lat [B,M,Cl,h,w] (optional),
      win [B*F,n_mels,W], x [n*B*F,Cl,h,w]; metadata t, branches ("base,ref,audio"),
      w_ref, w_audio. OUT: out [n*B*F,Cl,h,w].
  fada_twin.py bench MODEL.safetensors BRANCHES REPS THREADS
      prints one line "median_ms <m> min_ms <m>" for one denoiser call on one
      clip (x of n*F rows, B = 1), after a warm-up call.
  fada_twin.py serve MODEL.safetensors THREADS IN_FIFO OUT_FIFO [BACKEND]
      scripts/bench_model.lua's peer: per line "BRANCHES" on IN_FIFO, one timed
      denoiser call on one clip, its milliseconds on OUT_FIFO ("quit" ends; a
      failure answers "error ..."). BACKEND: torch (eager, the default), or
      onnxruntime / openvino running the same call exported with
      torch.onnx.export (once per branch set, its output checked against
      torch's on the same inputs; the max abs diff goes to stderr).

The safetensors reader/writer is minimal and local (the `safetensors`
package is not installed for /usr/bin/python3).
"""
import json
import math
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

# ---- safetensors -------------------------------------------------------------------

DT = {'F32': np.float32, 'F16': np.float16, 'F64': np.float64, 'I64': np.int64, 'I32': np.int32, 'U8': np.uint8}


def st_load(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop('__metadata__', {}) or {}
    out = {}
    for name, e in header.items():
        b, en = e['data_offsets']
        raw = data[b:en]
        if e['dtype'] == 'BF16':
            u = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=DT[e['dtype']])
        out[name] = torch.from_numpy(arr.astype(np.float32).reshape(e['shape']).copy())
    return out, meta


def st_save(path, tensors, meta=None):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        a = t.detach().to(torch.float32).contiguous().numpy()
        raw = a.tobytes()
        header[name] = {'dtype': 'F32', 'shape': list(a.shape), 'data_offsets': [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if meta:
        header['__metadata__'] = meta
    h = json.dumps(header).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)

# ---- layers ---------------------------------------------------------------------------


def groups_for(c, want):
    g = min(want, c)
    while c % g:
        g -= 1
    return g


class Twin:
    def __init__(self, W, cfg):
        self.W, self.cfg = W, cfg
        self.L = len(cfg['channels'])

    def p(self, k):
        return self.W[k]

    def has(self, k):
        return k in self.W

    def linear(self, x, pre, act=None):
        y = F.linear(x, self.p(pre + '.weight'), self.W.get(pre + '.bias'))
        return F.gelu(y) if act == 'gelu' else (F.silu(y) if act == 'silu' else y)

    def conv(self, x, pre, stride=1, padding=None):
        w = self.p(pre + '.weight')
        if padding is None:
            padding = int(w.shape[-1]) // 2     # a Python int also while torch.onnx.export traces
        return F.conv2d(x, w, self.W.get(pre + '.bias'), stride=stride, padding=padding)

    def gn(self, x, pre, eps=1e-5):
        w = self.p(pre + '.weight')
        return F.group_norm(x, groups_for(w.shape[0], self.cfg['groups']), w, self.p(pre + '.bias'), eps)

    def ln(self, x, pre):
        w = self.p(pre + '.weight')
        return F.layer_norm(x, (w.shape[0],), w, self.p(pre + '.bias'), 1e-5)

    def res(self, x, pre, emb):
        h = self.conv(F.silu(self.gn(x, pre + '.norm1')), pre + '.conv1')
        cout = h.shape[1]
        if emb is not None and self.has(pre + '.emb_proj.weight'):
            e = self.linear(emb, pre + '.emb_proj')
            if self.cfg.get('time_mode', 'scale_shift') == 'scale_shift':
                scale = e[:, :cout].reshape(-1, cout, 1, 1)
                shift = e[:, cout:].reshape(-1, cout, 1, 1)
                h = F.silu(self.gn(h, pre + '.norm2') * (1 + scale) + shift)
            else:
                h = F.silu(self.gn(h + e.reshape(-1, cout, 1, 1), pre + '.norm2'))
        else:
            h = F.silu(self.gn(h, pre + '.norm2'))
        skip = self.conv(x, pre + '.skip') if self.has(pre + '.skip.weight') else x
        return self.conv(h, pre + '.conv2') + skip

    def mha(self, q, k, v, heads):
        B, Nq, C = q.shape
        d = C // heads
        q = q.reshape(B, Nq, heads, d).transpose(1, 2)
        k = k.reshape(k.shape[0], k.shape[1], heads, d).transpose(1, 2)
        v = v.reshape(v.shape[0], v.shape[1], heads, d).transpose(1, 2)
        s = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(d))
        o = torch.matmul(torch.softmax(s, dim=-1), v)
        return o.transpose(1, 2).reshape(B, Nq, C)

    def pos_table(self, n, dim):
        pos = torch.arange(n, dtype=torch.float64).reshape(n, 1)
        i = torch.arange(dim, dtype=torch.float64)
        rate = torch.exp(torch.floor(i / 2) * (-2 * math.log(10000) / dim)).reshape(1, dim)
        ang = pos * rate
        even = (torch.arange(dim) % 2 == 0).reshape(1, dim)
        return torch.where(even, torch.sin(ang), torch.cos(ang)).to(torch.float32)

    def attn_block(self, h, pre, st):
        N, C, H, Wd = h.shape
        heads = max(1, C // self.cfg['head_dim'])
        x = h.permute(0, 2, 3, 1).reshape(N, H * Wd, C)
        # 1. reference attention by row groups
        n1 = self.ln(x, pre + '.norm1')
        q, k, v = (self.linear(n1, pre + '.attn1.to_' + s) for s in 'qkv')
        outs = []
        for first, rows, ref in st['groups']:
            qq, kk, vv = q[first:first + rows], k[first:first + rows], v[first:first + rows]
            if ref:
                tok = self.ln(st['tokens'][st['level']], pre + '.norm1')      # [B, Ne, C]
                ek, ev = self.linear(tok, pre + '.attn1.to_k'), self.linear(tok, pre + '.attn1.to_v')
                B, Fr = st['B'], st['Fr']
                rep = lambda t: t.reshape(1, B, 1, t.shape[1], C).expand(rows // (B * Fr), B, Fr, t.shape[1], C) \
                    .reshape(rows, t.shape[1], C)
                kk, vv = torch.cat([kk, rep(ek)], 1), torch.cat([vv, rep(ev)], 1)
            outs.append(self.mha(qq, kk, vv, heads))
        x = x + self.linear(torch.cat(outs, 0), pre + '.attn1.to_out')
        # 2. audio cross-attention
        n2 = self.ln(x, pre + '.norm2')
        a = st['audio']
        x = x + self.linear(self.mha(self.linear(n2, pre + '.attn2.to_q'), self.linear(a, pre + '.attn2.to_k'),
                                     self.linear(a, pre + '.attn2.to_v'), heads), pre + '.attn2.to_out')
        # 3. temporal attention
        if self.cfg.get('temporal', True):
            Fr = st['Fr']
            G = N // Fr
            n3 = self.ln(x, pre + '.norm3').reshape(G, Fr, H * Wd, C) + self.pos_table(Fr, C).reshape(1, Fr, 1, C)
            tt = n3.permute(0, 2, 1, 3).reshape(G * H * Wd, Fr, C)
            o = self.mha(self.linear(tt, pre + '.attn3.to_q'), self.linear(tt, pre + '.attn3.to_k'),
                         self.linear(tt, pre + '.attn3.to_v'), heads)
            o = self.linear(o, pre + '.attn3.to_out')
            x = x + o.reshape(G, H * Wd, Fr, C).permute(0, 2, 1, 3).reshape(N, H * Wd, C)
        # 4. feed-forward
        x = x + self.linear(self.linear(self.ln(x, pre + '.norm4'), pre + '.ff.0', 'gelu'), pre + '.ff.1')
        return x.reshape(N, H, Wd, C).permute(0, 3, 1, 2).contiguous()

    # ---- reference net / audio / unet ----

    def refnet(self, x):
        cfg = self.cfg
        h = self.conv(x, 'refnet.conv_in')
        tokens = {}
        l = 1
        while self.has('refnet.down.%d.res.0.conv1.weight' % (l - 1)):
            for j in range(cfg['num_res_blocks']):
                h = self.res(h, 'refnet.down.%d.res.%d' % (l - 1, j), None)
            tokens[l] = h.permute(0, 2, 3, 1).reshape(h.shape[0], -1, h.shape[1])
            if self.has('refnet.down.%d.downsample.conv.weight' % (l - 1)):
                h = self.conv(h, 'refnet.down.%d.downsample.conv' % (l - 1), stride=2, padding=1)
            l += 1
        return tokens

    def audio_tokens(self, win):
        N = win.shape[0]
        h = F.silu(F.conv1d(win, self.p('audio.conv1.weight'), self.p('audio.conv1.bias'), padding=1))
        h = F.silu(F.conv1d(h, self.p('audio.conv2.weight'), self.p('audio.conv2.bias'), stride=2, padding=1))
        pos = self.p('audio.pos')
        Na, D = pos.shape
        h = self.linear(h.reshape(N, -1), 'audio.proj').reshape(N, Na, D) + pos.reshape(1, Na, D)
        return self.ln(h, 'audio.norm')

    def time_embedding(self, t, tau=None, N=None):
        dim = self.cfg['channels'][0]
        half = dim // 2
        freqs = torch.exp(torch.arange(half, dtype=torch.float32) * (-math.log(10000) / half))
        args = t.reshape(-1, 1) * freqs.reshape(1, half)
        e = torch.cat([torch.cos(args), torch.sin(args)], 1)
        h = self.linear(self.linear(e, 'unet.time_embed.0', 'silu'), 'unet.time_embed.1')   # [1 or N, temb]
        if tau is not None and self.has('unet.cfg_ctrl.time.weight'):
            c = self.linear(tau, 'unet.cfg_ctrl.time')                                     # [n, temb]
            n = c.shape[0]
            # one token per branch block of N / n rows; t per row or one t for all
            h = (h.reshape(n if h.shape[0] > 1 else 1, -1, h.shape[1]) + c.reshape(n, 1, -1)).expand(n, N // n, -1)
            h = h.reshape(N, -1)
        return F.silu(h)

    def unet(self, x, emb, st, tau):
        cfg = self.cfg
        L, nres = self.L, cfg['num_res_blocks']
        k = [0]

        def block(kind, pre, h):
            out = self.res(h, pre, emb) if kind == 'res' else self.attn_block(h, pre, st)
            if tau is not None:
                c = self.linear(tau, 'unet.cfg_ctrl.%d' % k[0])                   # [n, C]
                n, C = c.shape
                out = (out.reshape(n, -1, C, out.shape[2], out.shape[3]) + c.reshape(n, 1, C, 1, 1)) \
                    .reshape(out.shape)
            k[0] += 1
            return out

        h = self.conv(x, 'unet.conv_in')
        skips = []
        for l in range(1, L + 1):
            st['level'] = l
            for j in range(nres):
                h = block('res', 'unet.down.%d.res.%d' % (l - 1, j), h)
                if cfg['attn_levels'][l - 1]:
                    h = block('attn', 'unet.down.%d.attn.%d' % (l - 1, j), h)
                skips.append(h)
            if l < L:
                h = self.conv(h, 'unet.down.%d.downsample.conv' % (l - 1), stride=2, padding=1)
        st['level'] = L
        for j in range(cfg['mid_res']):
            h = block('res', 'unet.mid.res.%d' % j, h)
            if j == 0 and cfg['mid_attn']:
                h = block('attn', 'unet.mid.attn.0', h)
        for l in range(L, 0, -1):
            st['level'] = l
            for j in range(nres):
                h = block('res', 'unet.up.%d.res.%d' % (l - 1, j), torch.cat([h, skips.pop()], 1))
                if cfg['attn_levels'][l - 1]:
                    h = block('attn', 'unet.up.%d.attn.%d' % (l - 1, j), h)
            if l > 1:
                h = self.conv(F.interpolate(h, scale_factor=2, mode='nearest'), 'unet.up.%d.upsample.conv' % (l - 1))
        return self.conv(F.silu(self.gn(h, 'unet.norm_out')), 'unet.conv_out')

    def reference(self, ref_lat, motion_lat=None):
        cfg = self.cfg
        B, Cl, h, w = ref_lat.shape
        M = cfg['motion_frames']
        x = ref_lat
        if M > 0:
            mot = motion_lat.reshape(B, M * Cl, h, w) if motion_lat is not None else torch.zeros(B, M * Cl, h, w)
            x = torch.cat([ref_lat, mot], 1)
        return {'B': B, 'ref_lat': ref_lat, 'tokens': self.refnet(x)}

    def denoise(self, x, t, branches, extra, ctx, atok):
        cfg = self.cfg
        Fr, B = cfg['clip_frames'], ctx['B']
        BF = B * Fr
        drop = cfg['drop']
        groups = []
        for i, br in enumerate(branches):
            ref = drop[br]['ref']
            if groups and groups[-1][2] == ref:
                groups[-1][1] += BF
            else:
                groups.append([i * BF, BF, ref])
        Na, D = self.p('audio.null_tokens').shape
        null = torch.zeros(Na, D) if cfg.get('null_audio') == 'zeros' else self.p('audio.null_tokens')
        parts = [atok if drop[br]['audio'] else null.reshape(1, Na, D).expand(BF, Na, D) for br in branches]
        xin = x
        if cfg.get('ref_concat'):
            r = ctx['ref_lat']
            rep = r.reshape(B, 1, *r.shape[1:]).expand(B, Fr, *r.shape[1:]).reshape(BF, *r.shape[1:])
            cp = [rep if drop[br]['ref'] else torch.zeros_like(rep) for br in branches]
            xin = torch.cat([x, torch.cat(cp, 0)], 1)
        tt = torch.full((1,), float(t)) if not torch.is_tensor(t) else t.reshape(-1).float()
        tau = None
        if cfg.get('student'):
            tk = self.p('cfg_tokens')
            # branches take their own tokens when the student has them
            bt = self.p('cfg_branch_tokens') if cfg['student'].get('branch_tokens') else tk
            taus = []
            for br in branches:
                if br == 'base':
                    taus.append(bt[0:1])
                elif br == 'ref':
                    taus.append(bt[1:2])
                elif br == 'audio':
                    taus.append(bt[2:3])
                else:
                    b, r, a = tk[0:1], tk[1:2], tk[2:3]
                    taus.append(b + (r - b) * extra['w_ref'] + (a - r) * extra['w_audio'])
            tau = torch.cat(taus, 0)
        emb = self.time_embedding(tt, tau, x.shape[0])
        st = {'groups': groups, 'audio': torch.cat(parts, 0), 'tokens': ctx['tokens'], 'B': B, 'Fr': Fr}
        return self.unet(xin, emb, st, tau)


def load_model(path):
    W, meta = st_load(path)
    return Twin(W, json.loads(meta['config']))


# ---- serve: the benchmark's peer, eager or exported ------------------------------------------------------

BACKENDS = ('torch', 'onnxruntime', 'openvino')
TOLERANCE = 1e-3    # an exported graph's max |out - torch's| over max |torch's|


class DenoiseGraph(torch.nn.Module):
    """Twin.denoise for one branch list, for torch.onnx.export: x, the audio
    tokens, the reference latent and the reference net's tokens are the graph's
    inputs (as they are the torch call's); t, the branches and the guidance
    scales are fixed; the weights become the graph's constants."""

    def __init__(self, m, branches, extra, ctx):
        super().__init__()
        self.m, self.branches, self.extra = m, branches, extra
        self.B, self.levels = ctx['B'], sorted(ctx['tokens'])

    def forward(self, x, atok, ref_lat, *tokens):
        ctx = {'B': self.B, 'ref_lat': ref_lat, 'tokens': dict(zip(self.levels, tokens))}
        return self.m.denoise(x, 500, self.branches, self.extra, ctx, atok)


def export_onnx(m, branches, extra, ctx, atok, x, path):
    """Writes the graph of one denoiser call to path; returns its inputs by name (numpy)."""
    import warnings
    graph = DenoiseGraph(m, branches, extra, ctx)
    names = ['x', 'atok', 'ref_lat'] + ['tokens%d' % l for l in graph.levels]
    args = (x, atok, ctx['ref_lat']) + tuple(ctx['tokens'][l] for l in graph.levels)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')     # the tracer's notes on Python numbers taken from shapes
        torch.onnx.export(graph, args, path, input_names=names, output_names=['out'], opset_version=17,
                          do_constant_folding=True)
    return {n: a.detach().contiguous().numpy() for n, a in zip(names, args)}


def runtime_call(backend, path, feeds, threads):
    """The exported graph in ONNX Runtime or OpenVINO on `threads` threads:
    returns a call that runs it once and gives its output (numpy)."""
    if backend == 'onnxruntime':
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(path, so, providers=['CPUExecutionProvider'])
        used = {i.name for i in sess.get_inputs()}
        feeds = {k: v for k, v in feeds.items() if k in used}    # the exporter drops unused inputs
        return lambda: sess.run(None, feeds)[0]
    if backend == 'openvino':
        import openvino as ov
        compiled = ov.Core().compile_model(path, 'CPU', {'INFERENCE_NUM_THREADS': threads,
                                                          'PERFORMANCE_HINT': 'LATENCY',
                                                          # f32 like the others (bf16 is its default on some CPUs)
                                                          'INFERENCE_PRECISION_HINT': 'f32'})
        used = {n for p in compiled.inputs for n in p.get_names()}
        feeds = {k: v for k, v in feeds.items() if k in used}
        req = compiled.create_infer_request()

        def call():
            req.infer(feeds)
            return req.get_output_tensor(0).data
        return call
    raise ValueError('unknown backend %r (%s)' % (backend, ' | '.join(BACKENDS)))


def serve(m, threads, fin, fout, backend, workdir):
    """Answers the benchmark: per line "BRANCHES" on fin, one timed denoiser
    call on one clip, its milliseconds written to fout; "quit" ends. Each branch
    set's first line builds its call (for onnxruntime/openvino: the export and
    the output check, untimed); the time is that of the call alone."""
    if backend not in BACKENDS:
        raise ValueError('unknown backend %r (%s)' % (backend, ' | '.join(BACKENDS)))
    torch.set_num_threads(threads)
    cfg = m.cfg
    Cl, Fr, hw = cfg['latent']['channels'], cfg['clip_frames'], cfg['image_size'] // cfg['latent']['factor']
    g = torch.Generator().manual_seed(1)
    ctx = m.reference(torch.randn(1, Cl, hw, hw, generator=g))
    per = cfg['audio']['sample_rate'] // cfg['audio']['hop'] // cfg['fps']
    atok = m.audio_tokens(torch.randn(Fr, cfg['audio']['n_mels'], per * (2 * cfg['audio']['context'] + 1),
                                      generator=g))
    extra = {'w_ref': 2.0, 'w_audio': 3.0}
    calls = {}
    for line in fin:
        line = line.strip()
        if line == 'quit' or not line:
            break
        if line not in calls:
            branches = line.split(',')
            x = torch.randn(len(branches) * Fr, Cl, hw, hw, generator=g)
            if backend == 'torch':
                calls[line] = (lambda x=x, branches=branches: m.denoise(x, 500, branches, extra, ctx, atok))
            else:
                path = '%s/denoise-%d.onnx' % (workdir, len(calls))
                feeds = export_onnx(m, branches, extra, ctx, atok, x, path)
                call = runtime_call(backend, path, feeds, threads)
                want = m.denoise(x, 500, branches, extra, ctx, atok).numpy()
                got = np.asarray(call())
                diff = float(np.abs(got.astype(np.float64) - want).max()) if got.shape == want.shape else math.inf
                rel = diff / max(float(np.abs(want).max()), 1e-30)
                print('fada_twin: %s (%s, %d threads) vs torch on the same inputs, branches %s: max abs diff %.3g '
                      '(relative %.2e, tolerance %g)' % (backend, 'exported to ONNX', threads, line, diff, rel,
                                                          TOLERANCE), file=sys.stderr, flush=True)
                if not rel <= TOLERANCE:
                    raise ValueError('%s output differs from torch\'s: relative %.3g > %g (shape %s vs %s)'
                                     % (backend, rel, TOLERANCE, got.shape, want.shape))
                calls[line] = call
        t0 = time.perf_counter()
        calls[line]()
        fout.write('%.3f\n' % ((time.perf_counter() - t0) * 1000))
        fout.flush()


def main():
    torch.set_grad_enabled(False)
    mode = sys.argv[1]
    if mode == 'run':
        m = load_model(sys.argv[2])
        inp, meta = st_load(sys.argv[3])
        ctx = m.reference(inp['ref_lat'], inp.get('motion_lat'))
        atok = m.audio_tokens(inp['win'])
        extra = {'w_ref': float(meta.get('w_ref', 1)), 'w_audio': float(meta.get('w_audio', 1))}
        out = m.denoise(inp['x'], float(meta['t']), meta['branches'].split(','), extra, ctx, atok)
        st_save(sys.argv[4], {'out': out, 'atok': atok})
    elif mode == 'bench':
        m = load_model(sys.argv[2])
        branches, reps, threads = sys.argv[3].split(','), int(sys.argv[4]), int(sys.argv[5])
        torch.set_num_threads(threads)
        cfg = m.cfg
        Cl, Fr, hw = cfg['latent']['channels'], cfg['clip_frames'], cfg['image_size'] // cfg['latent']['factor']
        g = torch.Generator().manual_seed(1)
        ctx = m.reference(torch.randn(1, Cl, hw, hw, generator=g))
        n_mels = cfg['audio']['n_mels']
        W = m.p('audio.conv1.weight').shape[0] and None
        per = cfg['audio']['sample_rate'] // cfg['audio']['hop'] // cfg['fps']
        win = torch.randn(Fr, n_mels, per * (2 * cfg['audio']['context'] + 1), generator=g)
        atok = m.audio_tokens(win)
        x = torch.randn(len(branches) * Fr, Cl, hw, hw, generator=g)
        extra = {'w_ref': 2.0, 'w_audio': 3.0}
        m.denoise(x, 500, branches, extra, ctx, atok)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            m.denoise(x, 500, branches, extra, ctx, atok)
            times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        print('median_ms %.3f min_ms %.3f threads %d' % (times[len(times) // 2], times[0], torch.get_num_threads()))
    elif mode == 'serve':
        # serve MODEL THREADS IN_FIFO OUT_FIFO [BACKEND]: per line "BRANCHES" on IN, one
        # timed denoiser call on one clip, its milliseconds written to OUT ("quit" ends).
        # Lets the benchmark alternate fadalua's calls and the peer's under the same load.
        # The FIFOs open first, so that a failure reaches the benchmark as a line "error ...".
        import shutil
        import tempfile
        with open(sys.argv[4]) as fin, open(sys.argv[5], 'w') as fout:
            workdir = tempfile.mkdtemp(prefix='fada_twin.')
            try:
                serve(load_model(sys.argv[2]), int(sys.argv[3]), fin, fout,
                      sys.argv[6] if len(sys.argv) > 6 else 'torch', workdir)
            except Exception as e:      # noqa: BLE001 (any failure goes back as one line)
                fout.write('error %s: %s\n' % (type(e).__name__, str(e).replace('\n', ' ')))
                fout.flush()
                raise
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
    else:
        raise SystemExit('usage: fada_twin.py run|bench|serve ...')


if __name__ == '__main__':
    main()
