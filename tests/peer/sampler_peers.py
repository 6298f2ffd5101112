"""The samplers of diffusers and k-diffusion on an analytic Gaussian denoiser,
for tests/lua/test_sampler_peers.lua (run by the Python of
scripts/setup-peers.sh's virtual environment).

  sampler_peers.py IN.safetensors OUT.safetensors

IN holds mu, s [N] (the data: x0 ~ N(mu, s^2) per element), per case
'<name>.xT' [N] (the start state, variance-preserving) and maybe
'<name>.noise' [n, N] (the noise of step i, replayed) or '<name>.sigmas'
[n + 1]; its __metadata__ 'config' is JSON {"cases": [...]}, each case
{"name", "peer": "diffusers" | "kdiff" | "kdiff_schedule", ...} (the fields
each runner reads are named there). OUT gets per case '<name>.x' [n, N]: the
state after each step, in variance-preserving form x_t = sqrt(abar) x0 +
sqrt(1 - abar) eps whatever space the peer steps in, and '<name>.t',
'<name>.sigmas' where the peer has them.

The exact denoiser: for x_sigma = x0 + sigma eps (variance exploding),
E[x0 | x_sigma] = mu + s^2 / (s^2 + sigma^2) (x_sigma - mu).
"""
import importlib.util
import json
import math
import struct
import sys
import types

import numpy as np
import torch

# ---- safetensors (minimal; the package is not needed) ------------------------------------

DT = {'F32': np.float32, 'F64': np.float64, 'I64': np.int64}


def st_load(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop('__metadata__', {}) or {}
    out = {}
    for name, e in header.items():
        b, en = e['data_offsets']
        out[name] = torch.from_numpy(np.frombuffer(data[b:en], dtype=DT[e['dtype']]).reshape(e['shape']).copy())
    return out, meta


def st_save(path, tensors):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        a = np.ascontiguousarray(t.detach().to(torch.float64).numpy())
        raw = a.tobytes()
        header[name] = {'dtype': 'F64', 'shape': list(a.shape), 'data_offsets': [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# ---- k-diffusion without its package __init__ (which wants torchvision, wandb, clip, ...) ----

def import_kdiffusion():
    if 'k_diffusion.external' in sys.modules:
        return sys.modules['k_diffusion.sampling'], sys.modules['k_diffusion.external']
    spec = importlib.util.find_spec('k_diffusion')
    if spec is None:
        raise ImportError('k_diffusion is not installed')
    pkg = types.ModuleType('k_diffusion')
    pkg.__path__ = list(spec.submodule_search_locations)
    sys.modules['k_diffusion'] = pkg
    # k_diffusion.utils imports torchvision's functional at the top and uses it only in image helpers
    for name in ('torchvision', 'torchvision.transforms', 'torchvision.transforms.functional'):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules['torchvision'].transforms = sys.modules['torchvision.transforms']
    sys.modules['torchvision.transforms'].functional = sys.modules['torchvision.transforms.functional']
    import k_diffusion.sampling as sampling
    import k_diffusion.external as external
    return sampling, external


# ---- the analytic denoiser -----------------------------------------------------------------

def x0_of(x_vp, abar, mu, s):
    """E[x0 | x_t] for x_t = sqrt(abar) x0 + sqrt(1 - abar) eps (float64)."""
    s2 = s * s
    return mu + math.sqrt(abar) * s2 / (abar * s2 + 1 - abar) * (x_vp - math.sqrt(abar) * mu)


def output_of(x_vp, abar, x0, prediction):
    if prediction == 'sample':
        return x0
    eps = (x_vp - math.sqrt(abar) * x0) / math.sqrt(1 - abar)
    if prediction == 'epsilon':
        return eps
    return math.sqrt(abar) * eps - math.sqrt(1 - abar) * x0   # v_prediction


# ---- diffusers (float32, as its pipelines run) -------------------------------------------------

VARIANCE_EXPLODING = {'EulerDiscreteScheduler', 'EulerAncestralDiscreteScheduler'}


def run_diffusers(case, inp, mu, s):
    import diffusers
    cls = getattr(diffusers, case['scheduler'])
    sched = cls(**case['config'])
    if 'timesteps' in case:
        sched.set_timesteps(timesteps=case['timesteps'])
    else:
        sched.set_timesteps(case['steps'])
    name = case['name']
    noise = inp.get(name + '.noise')
    ve = case['scheduler'] in VARIANCE_EXPLODING
    by_sigma = ve or case['scheduler'].startswith('DPMSolver')
    prediction = case['config'].get('prediction_type', 'epsilon')
    sigmas = getattr(sched, 'sigmas', None)
    step_now = [0]
    # the schedulers that draw their own noise (Euler ancestral, LCM) get step i's recorded noise
    module = sys.modules[cls.__module__]
    if noise is not None and hasattr(module, 'randn_tensor'):
        module.randn_tensor = lambda shape, **kw: noise[step_now[0]].reshape(shape).to(torch.float32)

    xT = inp[name + '.xT'].to(torch.float64)
    if ve:   # the same start state: x_sigma = x_vp · sqrt(sigma^2 + 1)
        x = (xT * math.sqrt(float(sigmas[0]) ** 2 + 1)).to(torch.float32)
    else:
        x = xT.to(torch.float32)
    states = []
    for i, t in enumerate(sched.timesteps):
        step_now[0] = i
        x_in = sched.scale_model_input(x, t)                       # variance preserving for every scheduler
        if by_sigma:
            abar = 1.0 / (1.0 + float(sigmas[i]) ** 2)
        else:
            abar = float(sched.alphas_cumprod[int(t)])
        xv = x_in.to(torch.float64)
        out = output_of(xv, abar, x0_of(xv, abar, mu, s), prediction).to(torch.float32)
        kw = {}
        if case['scheduler'] == 'DDIMScheduler':
            kw['eta'] = case.get('eta', 0.0)
            if kw['eta'] > 0:
                kw['variance_noise'] = noise[i].to(torch.float32)
        x = sched.step(out, t, x, **kw).prev_sample
        xs = x.to(torch.float64)
        if ve:
            xs = xs / math.sqrt(float(sigmas[i + 1]) ** 2 + 1)
        states.append(xs)
    res = {name + '.x': torch.stack(states), name + '.t': sched.timesteps.to(torch.float64)}
    if case['scheduler'] == 'EulerDiscreteScheduler' and (sched.config.use_karras_sigmas or
                                                          sched.config.use_exponential_sigmas):
        # the same σ and timesteps by diffusers' own functions, from a float64 table
        table = model_sigmas(case['config']).numpy()
        ends = np.array([table[-1], table[0]])                      # in_sigmas: only [0] and [-1] are read
        convert = sched._convert_to_karras if sched.config.use_karras_sigmas else sched._convert_to_exponential
        sig = convert(in_sigmas=torch.from_numpy(ends), num_inference_steps=case['steps'])
        res[name + '.t64'] = torch.tensor([float(sched._sigma_to_t(np.float64(v), np.log(table))) for v in sig],
                                          dtype=torch.float64)
    if sigmas is not None:
        res[name + '.sigmas'] = sigmas.to(torch.float64)
    return res


# ---- k-diffusion (float64) ---------------------------------------------------------------------

def model_sigmas(case):
    """sigma_t for t = 0 .. T-1 of a scaled-linear schedule (the case's, or a
    diffusers config), computed here in float64."""
    T = case.get('T', case.get('num_train_timesteps', 1000))
    b0, b1 = case.get('beta_start', 0.00085), case.get('beta_end', 0.012)
    betas = np.linspace(b0 ** 0.5, b1 ** 0.5, T, dtype=np.float64) ** 2       # scaled_linear
    abar = np.cumprod(1 - betas)
    return torch.from_numpy(((1 - abar) / abar) ** 0.5)


def run_kdiff(case, inp, mu, s):
    K, _ = import_kdiffusion()
    torch.set_default_dtype(torch.float64)
    name = case['name']
    table = model_sigmas(case)
    if case['sigmas'] == 'karras':
        sigmas = K.get_sigmas_karras(case['steps'], float(table[0]), float(table[-1]), rho=7.0)
    elif case['sigmas'] == 'exponential':
        sigmas = K.get_sigmas_exponential(case['steps'], float(table[0]), float(table[-1]))
    else:
        sigmas = inp[name + '.sigmas'].to(torch.float64)
    noise = inp.get(name + '.noise')

    def denoiser(x, sigma):
        s2 = s * s
        return mu + s2 / (s2 + sigma * sigma) * (x - mu)

    def noise_sampler(sigma, sigma_next):   # step i's recorded noise
        i = int((sigmas == sigma).nonzero()[0])
        return noise[i].to(torch.float64)

    states = []
    x = inp[name + '.xT'].to(torch.float64) * math.sqrt(float(sigmas[0]) ** 2 + 1)
    kw = {'noise_sampler': noise_sampler} if noise is not None else {}
    fn = getattr(K, case['sampler'])
    final = fn(denoiser, x, sigmas, disable=True, callback=lambda d: states.append(d['x']), **kw)
    # callback i sees x at sigma_i before step i: the states after each step are x_1 .. x_n
    states = states[1:] + [final]
    out = torch.stack([st / math.sqrt(float(sg) ** 2 + 1) for st, sg in zip(states, sigmas[1:])])
    torch.set_default_dtype(torch.float32)
    return {name + '.x': out, name + '.sigmas': sigmas}


def run_kdiff_schedule(case, inp):
    """k-diffusion's DiscreteSchedule (log-sigma interpolation both ways)."""
    _, E = import_kdiffusion()
    torch.set_default_dtype(torch.float64)
    name = case['name']
    sch = E.DiscreteSchedule(model_sigmas(case), quantize=False)
    res = {name + '.t_of_sigma': sch.sigma_to_t(inp[name + '.query_sigma'].to(torch.float64)),
           name + '.sigma_of_t': sch.t_to_sigma(inp[name + '.query_t'].to(torch.float64)),
           name + '.table': model_sigmas(case)}
    torch.set_default_dtype(torch.float32)
    return res


def main():
    inp, meta = st_load(sys.argv[1])
    config = json.loads(meta['config'])
    mu, s = inp['mu'].to(torch.float64), inp['s'].to(torch.float64)
    out = {}
    for case in config['cases']:
        if case['peer'] == 'diffusers':
            out.update(run_diffusers(case, inp, mu, s))
        elif case['peer'] == 'kdiff':
            out.update(run_kdiff(case, inp, mu, s))
        elif case['peer'] == 'kdiff_schedule':
            out.update(run_kdiff_schedule(case, inp))
        else:
            raise SystemExit('sampler_peers: unknown peer %r in case %r' % (case['peer'], case['name']))
    st_save(sys.argv[2], out)


if __name__ == '__main__':
    main()
