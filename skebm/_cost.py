"""What a fit will cost on the CPU, and the warnings given before a slow one starts.

The estimate counts floating-point operations, it does not time anything:
one forward pass of the energy network on one sample (its linear and
convolution layers, :func:`skebm._threads._forward_flops`, on a meta-device
copy: no computation, a few milliseconds), times the chains of an update
and the Langevin steps of each, plus about two step-equivalents for the
parameter update (the forward and backward passes of the data and the
negatives), times the updates::

    seconds = max_iter * batch_size * flops * (steps + 2) / (CPU_FLOPS * threads)

:data:`CPU_FLOPS` was measured on this project's two 2-core machines with
the default networks (one thread, counting forward FLOPs): default fits of
800 updates on MNIST-5k (28x28) took 122 s on an AMD EPYC and 190 s on an
Intel Xeon, estimated at 214; on the 32x32 colour set 152 and 241 s,
estimated at 264; on the digits 28 and 46 CPU seconds, estimated at 32;
the 32x32 ResNet ran at about 36 GFLOP/s. The estimate is good to a factor
of about two on such machines; faster CPUs finish sooner.
"""

import warnings

import torch

from ._threads import _forward_flops

__all__ = [
    "AUTO_BF16_SPEEDUP", "CPU_FLOPS", "SLOW_FIT_SECONDS", "bf16_speedup", "estimate_fit_seconds", "resolve_precision",
    "warn_bf16_on_cpu", "warn_if_slow",
]

#: Forward-pass FLOPs per second and thread that a CPU fit achieves (measured, see the module docstring).
CPU_FLOPS = 3.5e10
#: A CPU fit estimated to take longer than this warns before it starts (30 minutes).
SLOW_FIT_SECONDS = 1800.0


def estimate_fit_seconds(module, feature_shape, *, batch_size, n_steps, n_updates, threads=1):
    """Estimated CPU seconds of ``n_updates`` updates of ``batch_size`` chains of ``n_steps`` steps.

    Parameters
    ----------
    module : torch.nn.Module
        The energy network.
    feature_shape : tuple of int
        Shape of one sample as the network sees it.
    batch_size : int
        Chains (and data rows) per update.
    n_steps : int
        Langevin steps per update (0 for a training without MCMC).
    n_updates : int
        Parameter updates of the fit.
    threads : int, default=1
        Torch threads the fit runs with.

    Returns
    -------
    seconds : float
    """
    flops = _forward_flops(module, tuple(feature_shape))
    return n_updates * batch_size * flops * (n_steps + 2) / (CPU_FLOPS * max(1, threads))


def _duration(seconds):
    if seconds >= 5400:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 60:.0f} minutes"


def warn_if_slow(estimator, net, n_updates):
    """Warn, before training, when a fit on the CPU is estimated to take more than :data:`SLOW_FIT_SECONDS`.

    Parameters
    ----------
    estimator : BaseEBM
        The estimator being fitted (its ``batch_size`` and chain steps).
    net : skorch engine
        Its initialised engine (the network, the device, the thread count).
    n_updates : int
        Updates this fit will make.
    """
    if torch.device(net.device).type != "cpu":
        return
    module = net.bare_module() if getattr(net, "initialized_", False) else net.module
    if not isinstance(module, torch.nn.Module):
        return
    threads = getattr(net, "threads_", None) or torch.get_num_threads()
    n_steps = estimator._chain_steps_per_update()
    seconds = estimate_fit_seconds(
        module, estimator._feature_shape, batch_size=estimator.batch_size, n_steps=n_steps, n_updates=n_updates,
        threads=threads,
    )
    if seconds <= SLOW_FIT_SECONDS:
        return
    name = type(estimator).__name__
    warnings.warn(
        f"{name}.fit on the CPU is estimated to take about {_duration(seconds)} ({n_updates} updates of "
        f"{estimator.batch_size} samples, {n_steps} Langevin steps each, through an energy network of "
        f"{_forward_flops(module, tuple(estimator._feature_shape)):.2g} FLOPs per sample, on {threads} "
        f"thread(s); the estimate counts FLOPs and is good to a factor of about two). Use a GPU "
        "(device='cuda'), or fewer updates (max_iter), fewer steps (n_steps) or a smaller network "
        "(energy_params).",
        UserWarning,
        stacklevel=4,
    )


#: fp32 time over bf16 time of one chain step per (device, network class, feature shape, weights, threads, batch):
#: measured once per process by :func:`bf16_speedup`.
_BF16_SPEEDUP = {}
#: ``precision="auto"`` takes bfloat16 when a chain step measures at least this much faster than float32. A margin
#: above the noise of short timings, so that the choice does not flip from one process to the next on one machine:
#: on an AMD EPYC with AVX-512 BF16, 64 chains, the conv nets measured 1.5 or more at 28x28 and 32x32 and 1.10-1.13
#: at 8x8 (``benchmarks/reports/generator_images.md``, table 6).
AUTO_BF16_SPEEDUP = 1.25


def bf16_speedup(module, feature_shape, *, threads=1, batch_size=16, repeats=3, budget=0.25, device="cpu"):
    """How much faster a chain step of ``module`` runs under bfloat16 autocast than in float32, on ``device``.

    Measured, not guessed from the CPU's flags: whether bfloat16 pays on a
    CPU depends on its instructions (AMX, AVX-512 BF16), on the oneDNN
    kernels of the installed torch and on the network, and measurements on
    two machines without AMX disagreed (3 to 14 times slower on one, 1.4
    to 2 times faster on another, ``benchmarks/reports/generator_images.md``
    table 6). One step is an energy evaluation of ``batch_size`` random
    inputs and its input gradient, on a copy of the network (the caller's
    is untouched), timed after a warm-up in interleaved rounds (one step per
    precision per round): at least ``repeats`` rounds, and more until the
    rounds have taken ``budget`` seconds (at most 100), so that a network
    of a few milliseconds per step is timed as many times as it takes to
    see through the noise. The ratio of the fastest times (the least
    disturbed by other work, as :mod:`timeit` advises) is cached per
    device, network class, feature shape, weight count, thread count and
    batch size for the rest of the process (a few tenths of a second,
    once).

    Returns
    -------
    speedup : float
        fp32 time / bf16 time: above 1 bfloat16 is faster.
    """
    import copy
    import time

    from ._threads import thread_limit
    from ._torch_utils import autocast_context

    device = torch.device(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    n_weights = sum(p.numel() for p in module.parameters())
    key = (str(device), type(module).__qualname__, tuple(feature_shape), n_weights, threads, batch_size)
    if key not in _BF16_SPEEDUP:
        probe = copy.deepcopy(module).to(device)
        x = (torch.rand(batch_size, *feature_shape, generator=torch.Generator().manual_seed(0)) * 2 - 1).to(device)

        def step(precision):
            xx = x.clone().requires_grad_(True)
            sync()
            start = time.perf_counter()
            with autocast_context(device, precision):
                energy = probe(xx)
            torch.autograd.grad(energy.float().sum(), [xx])
            sync()
            return time.perf_counter() - start

        times = {"fp32": [], "bf16": []}
        with thread_limit(threads):
            step("fp32"), step("bf16")  # warm-up: oneDNN builds its kernels on the first call
            start = time.perf_counter()
            for i in range(100):
                if i >= repeats and time.perf_counter() - start >= budget:
                    break
                for precision in times:
                    times[precision].append(step(precision))
        _BF16_SPEEDUP[key] = min(times["fp32"]) / max(min(times["bf16"]), 1e-12)
    return _BF16_SPEEDUP[key]


def _measured_speedup(estimator, net, device):
    """:func:`bf16_speedup` of the engine's network, with the fit's threads and chains; None without a torch module."""
    module = net.bare_module() if getattr(net, "initialized_", False) else net.module
    if not isinstance(module, torch.nn.Module):
        return None
    threads = getattr(net, "threads_", None) or torch.get_num_threads()
    batch_size = min(int(getattr(estimator, "batch_size", 16)), 256)  # the chains of an update, as the fit runs them
    return bf16_speedup(module, tuple(estimator._feature_shape), threads=threads, batch_size=batch_size, device=device)


def resolve_precision(estimator, net):
    """The precision the engine runs for the estimator's ``precision``: ``"auto"`` measured on the engine's device.

    ``"fp32"`` and ``"bf16"`` are kept as given. ``"auto"`` times one chain
    step of the network in both precisions on the engine's device
    (:func:`bf16_speedup`, once per process and network) and takes
    ``"bf16"`` when it is at least :data:`AUTO_BF16_SPEEDUP` times faster,
    else ``"fp32"``: never the slower one. A device without bfloat16
    autocast (a CUDA GPU without bfloat16 units) gets ``"fp32"`` unmeasured.
    """
    precision = getattr(estimator, "precision", "fp32")
    if precision != "auto":
        return precision
    device = torch.device(net.device)
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return "fp32"
    if device.type not in ("cpu", "cuda"):
        return "fp32"
    speedup = _measured_speedup(estimator, net, device)
    return "bf16" if speedup is not None and speedup >= AUTO_BF16_SPEEDUP else "fp32"


def warn_bf16_on_cpu(estimator, net):
    """Warn when ``precision="bf16"`` runs the CPU chains slower than float32 would (measured: :func:`bf16_speedup`)."""
    if getattr(estimator, "precision", "fp32") != "bf16" or torch.device(net.device).type != "cpu":
        return
    speedup = _measured_speedup(estimator, net, "cpu")
    if speedup is None or speedup >= 0.9:  # within the timing noise of a few short steps, or faster: no warning
        return
    warnings.warn(
        f"{type(estimator).__name__}(precision='bf16') on this CPU: a chain step of this network under bfloat16 "
        f"autocast measured {1 / speedup:.1f} times slower than in float32 (no fast bfloat16 kernels here); "
        "keep the default precision='fp32' on this machine, or pass precision='auto' (bfloat16 only where it is "
        "faster).",
        UserWarning,
        stacklevel=4,
    )
