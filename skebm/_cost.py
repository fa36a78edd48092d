"""What a fit will cost on the CPU, and the warnings given before a slow one starts.

The estimate counts floating-point operations, it does not time anything:
one forward pass of the energy network on one sample (its linear and
convolution layers, :func:`skebm._threads._forward_flops`, on a meta-device
copy: no computation, a few milliseconds), times the chains of an update
and the Langevin steps of each, plus about two step-equivalents for the
parameter update (the forward and backward passes of the data and the
negatives), times the updates::

    seconds = max_iter * batch_size * flops * (steps + 2) / (CPU_FLOPS * threads)

:data:`CPU_FLOPS` was measured on this project's 2-core machine (one thread,
a Langevin step of 16 chains: 16 GFLOP/s for the 8x8 conv net, 20 for the
28x28 one, 36 for the 32x32 ResNet, counting forward FLOPs); a default
MNIST-5k fit, measured at about 550 CPU seconds, is estimated at 350, so the
estimate is good to a factor of about two on such a machine. Faster CPUs
finish sooner than estimated.
"""

import warnings

import torch

from ._threads import _forward_flops

__all__ = ["CPU_FLOPS", "SLOW_FIT_SECONDS", "estimate_fit_seconds", "warn_bf16_on_cpu", "warn_if_slow"]

#: Forward-pass FLOPs per second and thread that a CPU fit achieves (measured, see the module docstring).
CPU_FLOPS = 2e10
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


def _has_amx():
    """Whether the CPU has AMX tiles (oneDNN's fast bfloat16 matrix units), as torch sees them."""
    probe = getattr(getattr(torch, "cpu", None), "_is_amx_tile_supported", None)
    if probe is not None:
        try:
            return bool(probe())
        except Exception:  # a private torch function: any failure reads as "unknown"  # noqa: BLE001
            return False
    return "AMX" in str(torch.backends.cpu.get_cpu_capability()).upper()


def warn_bf16_on_cpu(estimator, device):
    """Warn when ``precision="bf16"`` is asked on a CPU without AMX, where bfloat16 is usually slower."""
    if getattr(estimator, "precision", "fp32") != "bf16" or torch.device(device).type != "cpu" or _has_amx():
        return
    warnings.warn(
        f"{type(estimator).__name__}(precision='bf16') on a CPU without AMX: bfloat16 autocast is usually "
        "slower than float32 there (its convolutions are emulated), not faster; keep the default "
        "precision='fp32' on this machine, or measure with benchmarks/bench_langevin.py.",
        UserWarning,
        stacklevel=4,
    )
