"""Speed levers of one Langevin step, each measured against the plain step.

The plain step is skebm's (``skebm.mcmc.langevin``, float32, as of issue 18):
the parameters of the network require gradients (as during training),
``torch.autograd.grad`` of the summed energy, then
``x.add_(noise.mul_(sigma).sub_(drift * grad))``, the noise drawn with
``torch.randn(x.shape)`` (``randn_like`` would follow a channels-last
layout and give other noise for the same seed). Each lever changes one
thing:

- ``frozen``: parameters ``requires_grad_(False)`` while sampling (restored after), as ebmkit does;
- ``no_grad``: the update under ``torch.no_grad()`` (``torch.inference_mode``
  cannot be used: the next step needs a gradient through ``x``);
- ``fused``: ``x.add_(grad, alpha=-drift).add_(noise, alpha=sigma)``
  (no temporaries for the drift);
- ``oop``: the papers' out-of-place ``x = x - drift * grad + sigma * noise``;
- ``cl``: conv nets only: module and chain tensor converted to channels-last
  once, before the chains (skebm's nets already make the *input*
  channels-last at every call);
- ``frozen+fused+cl``: the three together (``+cl`` on conv nets only);
- ``2x threads``: twice the block's thread count (interleaved with the plain step);
- ``mkldnn off``: oneDNN disabled (``torch.backends.mkldnn.flags(enabled=False)``);
- ``compile module``: ``torch.compile(net)`` with ``torch.autograd.grad``
  (AOTAutograd compiles forward and backward; the step itself stays eager);
- ``compile func.grad``: the whole step (gradient from ``torch.func.grad``
  and the update) in one ``torch.compile``d function; noise drawn outside.
  ``torch.autograd.grad`` inside a compiled function breaks the graph,
  ``torch.func.grad`` does not.

Every lever is first checked to give the plain step's chains within 1e-4
(same starts, same noise), then timed against it in interleaved rounds (A,
B, A, B, ... in one process); the reported number is the median over
rounds of time(plain) / time(lever): above 1 the lever is faster; in
brackets the ratio of the fastest rounds, which load from other processes
disturbs least. Compile times (the first call) are reported apart. With
``--threads 1 2`` a last line compares the plain step's two blocks (not
interleaved: ``2x threads`` is the interleaved comparison).

Results and the proposal drawn from them (issue 18): the step's arithmetic
is as fast as eager torch gets (every rewrite within noise); channels-last
*weights* speed grayscale 28x28 conv nets 1.3-1.4x (a 1-channel input is
contiguous and channels-last at once, so only the weights can make oneDNN
run channels-last); ``compile func.grad`` helps only the MLP (about 1.3-1.5x);
on a loaded 2-core machine two threads are 4-25x slower than one.

Usage::

    python benchmarks/bench_langevin_levers.py [--threads 1 2] [--nets mlp conv8 conv28 resnet]
        [--levers ...] [--rounds 7]
"""

import argparse
import contextlib
import os
import statistics
import sys
import time

import torch

from skebm.nn import ConvEnergy, MLPEnergy, ResNetEnergy

EPS, SIGMA = 0.1, 0.01
DRIFT = EPS**2 / 2

NETS = {
    # name: (factory, chain shape, steps per timing)
    "mlp": (lambda: MLPEnergy(2), (1000, 2), 20),
    "conv8": (lambda: ConvEnergy((1, 8, 8)), (64, 1, 8, 8), 4),
    "conv28": (lambda: ConvEnergy((1, 28, 28)), (16, 1, 28, 28), 2),
    "resnet": (lambda: ResNetEnergy((3, 32, 32)), (8, 3, 32, 32), 1),
}


@contextlib.contextmanager
def frozen(net):
    states = [(p, p.requires_grad) for p in net.parameters()]
    for p, _ in states:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, s in states:
            p.requires_grad_(s)


def _noise(x):
    """Standard normals in x's logical order whatever its memory format (randn_like follows the layout)."""
    return torch.randn(x.shape, dtype=x.dtype, device=x.device)


def _grad(net, x):
    x.requires_grad_(True)
    (g,) = torch.autograd.grad(net(x).sum(), x)
    return x.detach(), g


def run_plain(net, x, n):
    with torch.enable_grad():
        for _ in range(n):
            x, g = _grad(net, x)
            x.add_(_noise(x).mul_(SIGMA).sub_(g * DRIFT))
    return x


def run_fused(net, x, n):
    with torch.enable_grad():
        for _ in range(n):
            x, g = _grad(net, x)
            x.add_(g, alpha=-DRIFT).add_(_noise(x), alpha=SIGMA)
    return x


def run_nograd(net, x, n):
    with torch.enable_grad():
        for _ in range(n):
            x, g = _grad(net, x)
            with torch.no_grad():
                x.add_(_noise(x).mul_(SIGMA).sub_(g * DRIFT))
    return x


def run_oop(net, x, n):
    with torch.enable_grad():
        for _ in range(n):
            x, g = _grad(net, x)
            x = x - DRIFT * g + SIGMA * _noise(x)
    return x


def levers(net, is_conv):
    """name -> (prepare(x0) -> x, run(x, n) -> x)."""
    ident = lambda x0: x0.clone()  # noqa: E731
    cl = lambda x0: x0.clone().contiguous(memory_format=torch.channels_last)  # noqa: E731
    cl_net = None

    def with_cl_net(fn):
        def run(x, n):
            return fn(cl_net, x, n)
        return run

    out = {
        "plain": (ident, lambda x, n: run_plain(net, x, n)),
        "frozen": (ident, lambda x, n: _frozen(run_plain, x, n)),
        "no_grad": (ident, lambda x, n: run_nograd(net, x, n)),
        "fused": (ident, lambda x, n: run_fused(net, x, n)),
        "oop": (ident, lambda x, n: run_oop(net, x, n)),
        "mkldnn off": (ident, lambda x, n: _mkldnn_off(x, n)),
    }

    def _frozen(fn, x, n, module=net):
        with frozen(module):
            return fn(module, x, n)

    def _threads(x, n):
        saved = torch.get_num_threads()
        torch.set_num_threads(2 * saved)
        try:
            return run_plain(net, x, n)
        finally:
            torch.set_num_threads(saved)

    out["2x threads"] = (ident, _threads)

    def _mkldnn_off(x, n):
        with torch.backends.mkldnn.flags(enabled=False):
            return run_plain(net, x, n)

    if is_conv:
        import copy

        cl_net = copy.deepcopy(net).to(memory_format=torch.channels_last)
        out["cl"] = (cl, with_cl_net(run_plain))
        out["frozen+fused+cl"] = (cl, lambda x, n: _frozen(run_fused, x, n, module=cl_net))
    else:
        out["frozen+fused"] = (ident, lambda x, n: _frozen(run_fused, x, n))

    compiled_net = torch.compile(net)
    out["compile module"] = (ident, lambda x, n: run_plain(compiled_net, x, n))

    gfn = torch.func.grad(lambda x: net(x).sum())

    @torch.compile
    def step(x, noise):
        return x - DRIFT * gfn(x) + SIGMA * noise

    def run_compiled(x, n):
        with torch.no_grad():  # else the result would carry a graph through the parameters; func.grad ignores it
            for _ in range(n):
                x = step(x, _noise(x))
        return x

    out["compile func.grad"] = (ident, run_compiled)
    return out


def measure(name, threads, rounds, wanted):
    torch.set_num_threads(threads)
    make, shape, n = NETS[name]
    torch.manual_seed(0)
    net = make()
    x0 = torch.rand(shape) * 2 - 1
    all_levers = levers(net, name != "mlp")
    chosen = {k: v for k, v in all_levers.items() if k == "plain" or not wanted or k in wanted}
    # equality (and warm-up, and compile time)
    ref, compile_s, dev = None, {}, {}
    for key, (prep, run) in chosen.items():
        torch.manual_seed(7)
        t0 = time.perf_counter()
        out = run(prep(x0), 2).contiguous()
        if "compile" in key:
            compile_s[key] = time.perf_counter() - t0
        out = out.detach()
        if ref is None:
            ref = out
        dev[key] = float((out - ref).abs().max())
        if dev[key] > 1e-4:
            raise AssertionError(f"{name}: lever {key!r} departs from the plain step by {dev[key]:.2e}")
    keys = list(chosen)
    times = {k: [] for k in keys}
    for r in range(rounds):
        for key in keys[r % len(keys):] + keys[: r % len(keys)]:
            prep, run = chosen[key]
            x = prep(x0)
            t0 = time.perf_counter()
            run(x, n)
            times[key].append(time.perf_counter() - t0)
    ratios = {
        k: (statistics.median(a / b for a, b in zip(times["plain"], times[k])), min(times["plain"]) / min(times[k]))
        for k in keys if k != "plain"
    }
    plain_us = statistics.median(times["plain"]) / (n * shape[0]) * 1e6
    return plain_us, ratios, compile_s, dev


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    p.add_argument("--levers", nargs="*", default=None, help="names of levers to time (default: all)")
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args(argv)
    print(f"# Langevin step levers: time(plain) / time(lever), median of {args.rounds} interleaved rounds "
          f"(>1: faster); torch {torch.__version__}, load average {os.getloadavg()[0]:.2f} at the start\n")
    plain = {}
    for threads in args.threads:
        for name in args.nets:
            plain_us, ratios, compile_s, dev = measure(name, threads, args.rounds, args.levers)
            plain[threads, name] = plain_us
            cells = ", ".join(f"{k} {med:.2f} ({best:.2f})" for k, (med, best) in ratios.items())
            comp = ", ".join(f"{k} {v:.0f} s" for k, v in compile_s.items())
            print(f"{name} threads={threads}: plain {plain_us:.1f} us/image-step | {cells} | first call: {comp} "
                  f"| max dev {max(dev.values()):.1e} | load {os.getloadavg()[0]:.1f}")
            sys.stdout.flush()
    if 1 in args.threads and 2 in args.threads:  # measured in separate blocks: a rough number, not interleaved
        print("threads 2 vs 1 (plain step, not interleaved): "
              + ", ".join(f"{n} {plain[1, n] / plain[2, n]:.2f}" for n in args.nets))


if __name__ == "__main__":
    main()
