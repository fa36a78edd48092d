"""Speed of skebm's Langevin sampler against a bare hand-written torch loop.

For each energy network (an MLP on 2-D points, the small conv net on 8x8
images, the SNGAN-style ResNet on 32x32 images) and each precision, both
samplers run the same number of steps on the same network from the same
starts and the time per image-step (one chain advanced by one step) is
reported in microseconds.

The bare loop is written the way the papers' reference code does it:
``x.requires_grad_()``, ``torch.autograd.grad`` of the summed energy, an
in-place update of ``x.data``. Its bf16 variant wraps the energy in the
same autocast. Timings of the two samplers are interleaved (A, B, A, B, ...)
after a warm-up, and the median over the repeats is reported, so that load
from other processes hits both alike.

Targets: fp32 within 5% of the bare fp32 loop; bf16 at least 3x faster
than the bare fp32 loop on the 32x32 ResNet.

Usage::

    python benchmarks/bench_langevin.py [--device cuda] [--quick] [--threads N]
"""

import argparse
import os
import statistics
import sys
import time

import torch

from skebm.mcmc import langevin
from skebm.nn import ConvEnergy, MLPEnergy, ResNetEnergy

STEP_SIZE = 0.1
NOISE = 0.01


def bare_langevin(net, x0, n_steps, precision, device_type):
    """The papers' way: requires_grad, autograd.grad, in-place update of x.data."""
    x = x0.clone().detach().requires_grad_(True)
    for _ in range(n_steps):
        if precision == "bf16":
            with torch.autocast(device_type=device_type, dtype=torch.bfloat16):
                energy = net(x)
        else:
            energy = net(x)
        grad = torch.autograd.grad(energy.sum(), [x])[0]
        x.data += -(STEP_SIZE**2 / 2) * grad + NOISE * torch.randn_like(x)
    return x.detach()


def ours(net, x0, n_steps, precision, device_type):
    """skebm's sampler with the same settings."""
    return langevin(net, x0, n_steps, STEP_SIZE, noise_scale=NOISE, precision=precision)


def cases(quick):
    """(name, input description, network factory, chain-start shape, steps per timing)."""
    return [
        ("MLP", "2-D", lambda: MLPEnergy(2), (1000, 2), 50 if quick else 200),
        ("conv", "8x8", lambda: ConvEnergy((1, 8, 8)), (128, 1, 8, 8), 10 if quick else 40),
        ("ResNet", "32x32", lambda: ResNetEnergy((3, 32, 32)), (16, 3, 32, 32) if quick else (32, 3, 32, 32), 2 if quick else 4),
    ]


def timed(fn, sync):
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def bench_case(make_net, shape, n_steps, precision, device, repeats):
    """Median microseconds per image-step of (bare, ours)."""
    torch.manual_seed(0)
    net = make_net().to(device)  # train mode, parameters require grad: as during training
    x0 = (torch.rand(shape, device=device) * 2 - 1).contiguous()
    device_type = torch.device(device).type
    sync = torch.cuda.synchronize if device_type == "cuda" else (lambda: None)
    runs = {"bare": bare_langevin, "ours": ours}
    for fn in runs.values():  # warm-up: allocator, oneDNN/cuDNN kernel selection
        fn(net, x0, max(1, n_steps // 4), precision, device_type)
    times = {k: [] for k in runs}
    for _ in range(repeats):
        for key, fn in runs.items():
            dt = timed(lambda fn=fn: fn(net, x0, n_steps, precision, device_type), sync)
            times[key].append(dt / (n_steps * shape[0]) * 1e6)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="'auto' (cuda when available), 'cpu', 'cuda', ...")
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per sampler (default 7, quick 3)")
    args = parser.parse_args(argv)

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = args.repeats or (3 if args.quick else 7)
    where = torch.cuda.get_device_name(device) if device.startswith("cuda") else f"cpu, {torch.get_num_threads()} threads"
    load = f", load average {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else ""
    print(f"Langevin sampler: microseconds per image-step ({where}{load}; torch {torch.__version__})")
    print(f"median of {repeats} interleaved repeats after a warm-up\n")

    header = f"{'network':<7} {'input':<6} {'chains':>6} {'precision':<9} {'bare (us)':>10} {'skebm (us)':>11} {'skebm/bare':>10} {'vs bare fp32':>12}"
    print(header)
    print("-" * len(header))
    verdicts = []
    for name, what, make_net, shape, n_steps in cases(args.quick):
        bare_fp32 = None
        for precision in ("fp32", "bf16"):
            t = bench_case(make_net, shape, n_steps, precision, device, repeats)
            if precision == "fp32":
                bare_fp32 = t["bare"]
            ratio = t["ours"] / t["bare"]
            speedup = bare_fp32 / t["ours"]
            print(
                f"{name:<7} {what:<6} {shape[0]:>6} {precision:<9} {t['bare']:>10.2f} {t['ours']:>11.2f} "
                f"{ratio:>10.3f} {speedup:>11.2f}x"
            )
            sys.stdout.flush()
            if precision == "fp32":
                verdicts.append((f"{name} fp32 within 5% of the bare loop (ratio {ratio:.3f})", ratio <= 1.05))
            elif name == "ResNet":
                verdicts.append((f"ResNet 32x32 bf16 >= 3x faster than bare fp32 ({speedup:.2f}x)", speedup >= 3.0))
    print()
    for text, ok in verdicts:
        print(f"[{'PASS' if ok else 'FAIL'}] {text}")


if __name__ == "__main__":
    main()
