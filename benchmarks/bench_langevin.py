"""Side-by-side speed of Langevin samplers: the papers' bare loop, torchebm, ebmkit and skebm.

For each energy network (an MLP on 2-D points, skebm's default conv net
(``energy="auto"``) on 8x8, 28x28 and 32x32 colour images, the SNGAN-style
ResNet on 32x32 colour images)
every sampler runs the same dynamics on the same module from the same
starts, and the time per image-step (one chain advanced by one step) is
reported in microseconds:

- ``bare``: the papers' reference loop: ``x.requires_grad_()``,
  ``torch.autograd.grad`` of the summed energy, an in-place update of
  ``x.data``;
- ``torchebm``: torchebm 0.8.9's ``LangevinDynamics`` (the module wrapped in
  a ``torchebm.core.BaseModel``);
- ``ebmkit``: ebmkit 0.16.0's ``LangevinDynamics`` (import name ``ebm``);
- ``skebm``: :func:`skebm.mcmc.langevin` on the network as skebm's engine
  holds it (on the CPU its conv weights channels-last, as
  ``EBMNet.initialize_module`` stores them), the default path (float32);
- ``skebm bf16``: the same under bfloat16 autocast, skebm's other path. On
  CPUs without fast bfloat16 kernels it is *slower* than float32, on others
  faster; it is timed here so that this shows.
- ``auto``: what an estimator with ``precision="auto"`` runs: the column
  (fp32 or bf16) that :func:`skebm._cost.bf16_speedup`, the estimators'
  own measurement, picks for this network and chain count (bf16 when at
  least ``AUTO_BF16_SPEEDUP`` times faster), and its speed-ups.

The dynamics are ``x <- x - (eps^2 / 2) grad E(x) + sigma xi`` with
``eps = 0.1`` and ``sigma = 0.01``; the peers' parametrisations are
converted: torchebm's ``x <- x - h grad E + noise_scale sqrt(2 h) xi``
takes ``h = eps^2 / 2`` and ``noise_scale = sigma / sqrt(2 h)``; ebmkit's
``x <- x - step_size grad E + noise_scale xi`` takes ``step_size = eps^2 /
2`` and ``noise_scale = sigma``. Every sampler draws one ``randn_like`` per
step from torch's global generator after the gradient, so with the global
generator seeded alike all runs see the same noise: before any timing the
float32 outputs of every sampler are checked to equal the bare loop's
within 1e-5 (noise on) over 3 steps, with the step size raised so that the
gradient moves the chains by 0.05 per step (at the timed step size an
untrained network barely moves them, and a wrong gradient would pass); the
bf16 path only reports its largest deviation.

The networks are in train mode with parameters that require gradients, as
during training. Timings are interleaved in rounds (each round times every
sampler once, the order rotating from round to round) after a warm-up, in
one process, so load from other processes hits all alike. The speed-ups
(``bare/skebm`` etc., >1 means skebm is faster) are the medians of the
per-round ratios.

Target (issue 18): skebm's default path at least 1.3x faster than the bare
loop and than both peers on the conv nets. Checked for the default
(``precision="fp32"``) and for ``precision="auto"``.

The peers are in the ``bench`` extra; by hand, without touching the
installed torch::

    pip install -c constraints.txt torchebm==0.8.9 ebmkit==0.16.0

A peer that is not installed is left out of the table.

Usage::

    python benchmarks/bench_langevin.py [--device cuda] [--quick] [--threads N] [--repeats R]
"""

import argparse
import copy
import os
import statistics
import sys
import time

import torch

from skebm._cost import AUTO_BF16_SPEEDUP, bf16_speedup
from skebm.mcmc import langevin
from skebm.nn import ConvEnergy, MLPEnergy, ResNetEnergy

STEP_SIZE = 0.1  # eps: the drift is eps^2 / 2 times the gradient
NOISE = 0.01  # sigma
TOLERANCE = 1e-5
CHECK_STEPS = 3
CHECK_CHAINS = 8
CHECK_DRIFT = 0.05  # largest displacement by the gradient per step in the equality check
TARGET = 1.3


def bare_loop(eps, sigma):
    """The papers' way: requires_grad, autograd.grad, in-place update of x.data."""
    drift = eps**2 / 2

    def run(net, x0, n_steps):
        x = x0.clone().detach().requires_grad_(True)
        for _ in range(n_steps):
            energy = net(x)
            grad = torch.autograd.grad(energy.sum(), [x])[0]
            x.data += -drift * grad + sigma * torch.randn_like(x)
        return x.detach()

    return run


def engine_module(net, device):
    """The network as skebm's engine holds it: on the CPU with channels-last conv weights (``EBMNet.initialize_module``)."""
    module = copy.deepcopy(net)
    return module.to(memory_format=torch.channels_last) if torch.device(device).type == "cpu" else module


def skebm_sampler(net, device, eps, sigma, precision):
    module = engine_module(net, device)
    return lambda _net, x0, n_steps: langevin(module, x0, n_steps, eps, noise_scale=sigma, precision=precision)


def torchebm_sampler(net, device, eps, sigma):
    """torchebm 0.8.9's LangevinDynamics on ``net``, or None when torchebm is missing."""
    try:
        from torchebm.core import BaseModel
        from torchebm.samplers import LangevinDynamics
    except ImportError:
        return None

    class Wrapped(BaseModel):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x)

    h = eps**2 / 2
    sampler = LangevinDynamics(Wrapped(net), step_size=h, noise_scale=sigma / (2 * h) ** 0.5, device=device)
    return lambda net, x0, n_steps: sampler.sample(x=x0, n_steps=n_steps)


def ebmkit_sampler(eps, sigma):
    """ebmkit 0.16.0's LangevinDynamics, or None when ebmkit is missing."""
    try:
        from ebm.samplers import LangevinDynamics
    except ImportError:
        return None
    sampler = LangevinDynamics(step_size=eps**2 / 2, noise_scale=sigma)
    return lambda net, x0, n_steps: sampler.sample(net, x0, steps=n_steps)


def samplers(net, device, eps=STEP_SIZE, sigma=NOISE):
    """Name -> fn(net, x0, n_steps) of every available sampler; 'bare' first."""
    runs = {
        "bare": bare_loop(eps, sigma),
        "torchebm": torchebm_sampler(net, device, eps, sigma),
        "ebmkit": ebmkit_sampler(eps, sigma),
        "skebm": skebm_sampler(net, device, eps, sigma, "fp32"),
        "skebm bf16": skebm_sampler(net, device, eps, sigma, "bf16"),
    }
    return {k: v for k, v in runs.items() if v is not None}


def cases(quick):
    """(name, input description, network factory, chain-start shape, steps per timing)."""
    return [
        ("MLP", "2-D", lambda: MLPEnergy(2), (1000, 2), 10 if quick else 100),
        ("conv", "8x8", lambda: ConvEnergy((1, 8, 8)), (64 if quick else 128, 1, 8, 8), 3 if quick else 20),
        ("conv", "28x28", lambda: ConvEnergy((1, 28, 28)), (32 if quick else 64, 1, 28, 28), 2 if quick else 5),
        ("conv", "32x32 colour", lambda: ConvEnergy((3, 32, 32)), (16 if quick else 32, 3, 32, 32), 2 if quick else 5),
        ("ResNet", "32x32", lambda: ResNetEnergy((3, 32, 32)), (8 if quick else 32, 3, 32, 32), 1 if quick else 3),
    ]


def timed(fn, sync):
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def check_equal(net, x0, device):
    """Largest deviation from the bare loop of each sampler over CHECK_STEPS steps, same noise.

    The check runs with a step size that moves the chains by CHECK_DRIFT per step where the
    gradient is largest (the timing's step size barely moves them on an untrained network, so a
    wrong gradient would pass): the gradient term, not only the noise, is compared.
    """
    x0, outs = x0[:CHECK_CHAINS], {}
    x = x0.clone().requires_grad_(True)
    g_max = float(torch.autograd.grad(net(x).sum(), x)[0].abs().max())
    eps = (2 * CHECK_DRIFT / max(g_max, 1e-12)) ** 0.5
    for key, fn in samplers(net, device, eps, NOISE).items():
        torch.manual_seed(1234)
        outs[key] = fn(net, x0, CHECK_STEPS).float()
    return {k: float((v - outs["bare"]).abs().max()) for k, v in outs.items() if k != "bare"}


def bench_case(make_net, shape, n_steps, device, repeats):
    """(median microseconds per image-step, median per-round speed-ups of skebm, deviations)."""
    torch.manual_seed(0)
    net = make_net().to(device)  # train mode, parameters require grad: as during training
    x0 = (torch.rand(shape, device=device) * 2 - 1).contiguous()
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    runs = samplers(net, device)
    deviations = check_equal(net, x0, device)
    bad = {k: d for k, d in deviations.items() if d > TOLERANCE and "bf16" not in k}
    if bad:
        raise AssertionError(f"outputs differ from the bare loop's by more than {TOLERANCE}: {bad}")
    for fn in runs.values():  # warm-up: allocator, oneDNN/cuDNN kernel selection
        fn(net, x0, 1)
    keys = list(runs)
    times = {k: [] for k in keys}
    for r in range(repeats):
        for key in keys[r % len(keys):] + keys[: r % len(keys)]:  # rotate the order from round to round
            dt = timed(lambda fn=runs[key]: fn(net, x0, n_steps), sync)
            times[key].append(dt / (n_steps * shape[0]) * 1e6)
    medians = {k: statistics.median(v) for k, v in times.items()}
    # precision="auto": the estimators' own measurement on the network as the engine holds it, these chains
    measured = bf16_speedup(engine_module(net, device), tuple(shape[1:]), threads=torch.get_num_threads(),
                            batch_size=shape[0], device=device)
    auto = "skebm bf16" if measured >= AUTO_BF16_SPEEDUP else "skebm"
    speedups = {
        ref: {k: statistics.median(a / b for a, b in zip(times[k], times[ref])) for k in keys if k != ref}
        for ref in ("skebm", auto)
    }
    return medians, speedups, deviations, (auto, measured)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="'auto' (cuda when available), 'cpu', 'cuda', ...")
    parser.add_argument("--quick", action="store_true", help="fewer steps, chains and repeats (under a minute on 2 cores)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 9, quick 5)")
    args = parser.parse_args(argv)

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = args.repeats or (5 if args.quick else 9)
    where = torch.cuda.get_device_name(device) if device.startswith("cuda") else f"cpu, {torch.get_num_threads()} threads"
    load = f", load average {os.getloadavg()[0]:.2f} at the start" if hasattr(os, "getloadavg") else ""
    print(f"Langevin samplers side by side: microseconds per image-step ({where}{load}; torch {torch.__version__})")
    print(f"median of {repeats} interleaved rounds after a warm-up; speed-ups (X/skebm: time of X over skebm's) are "
          f"medians of per-round ratios, >1 means skebm is faster; float32 outputs equal the bare loop's within "
          f"{TOLERANCE:g} (checked), bf16 ones only approximately (their largest deviation is shown)\n")

    verdicts, names = [], None
    for name, what, make_net, shape, n_steps in cases(args.quick):
        t, ratios, dev, (auto, measured) = bench_case(make_net, shape, n_steps, device, repeats)
        s, a = ratios["skebm"], ratios[auto]
        if names is None:
            names = list(t)
            peers = [k for k in ("bare", "torchebm", "ebmkit") if k in t]
            head = ["network", "input", "chains", *(f"{k} (us)" for k in names), *(f"{k}/skebm" for k in peers),
                    "bare/skebm bf16", "auto picks (bf16 speed-up measured)", *(f"{k}/auto" for k in peers),
                    "max deviation fp32", "bf16"]
            print("| " + " | ".join(head) + " |")
            print("|" + "|".join("---" for _ in head) + "|")
        worst = max(d for k, d in dev.items() if "bf16" not in k)
        bf16 = s["bare"] / s["skebm bf16"]  # both per-round ratios to skebm: their quotient is bare/bf16
        picked = "bf16" if auto == "skebm bf16" else "fp32"
        cells = [name, what, str(shape[0]), *(f"{t[k]:.2f}" for k in names), *(f"{s[k]:.2f}x" for k in peers),
                 f"{bf16:.2f}x", f"{picked} ({measured:.2f}x)", *(f"{a[k]:.2f}x" for k in peers),
                 f"{worst:.1e}", f"{dev['skebm bf16']:.1e}"]
        print("| " + " | ".join(cells) + " |")
        sys.stdout.flush()
        if name != "MLP":
            for k in peers:
                verdicts.append((f"{name} {what}: skebm {s[k]:.2f}x the speed of {k} (target {TARGET}x)", s[k] >= TARGET))
                verdicts.append((f"{name} {what}: skebm precision='auto' ({picked}) {a[k]:.2f}x the speed of {k} "
                                 f"(target {TARGET}x)", a[k] >= TARGET))
    print()
    for text, ok in verdicts:
        print(f"[{'PASS' if ok else 'FAIL'}] {text}")
    if hasattr(os, "getloadavg"):
        print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
