"""The sampler protocol: what an object must offer to replace the Langevin sampler.

A *sampler* is a callable ``sampler(energy_fn, x0, *, generator=None,
**overrides)`` that runs chains from the starts ``x0`` on ``energy_fn``
(a callable mapping a batch to one energy per row) and returns the final
states, a tensor shaped like ``x0``. Keyword ``overrides`` change a stored
setting for one call: every sampler accepts ``n_steps``; skebm's own
(:class:`~skebm.mcmc.LangevinSampler`, :class:`~skebm.mcmc.HMCSampler`,
:class:`~skebm.mcmc.ParallelTempering`) also accept ``temperature``,
``noise``, ``return_chains`` (then return ``(x, chains)``) and
``return_trace`` (then return ``(x, trace)``, the trace a dict of per-step
lists ``"energy"``, ``"grad_norm"`` and, for Metropolis samplers,
``"acceptance"``), which :func:`~skebm.mcmc.chain_diagnostics` needs.
"""

import inspect

import torch

__all__ = ["SamplerSettings", "check_sampler", "extend_trace", "run_sampler"]


def check_sampler(sampler, name="sampler"):
    """Raise a TypeError unless ``sampler`` can be called as a sampler; return it.

    A class (``HMCSampler`` instead of ``HMCSampler()``) and a callable whose
    signature cannot take ``(energy_fn, x0, generator=..., n_steps=...)`` are
    refused.
    """
    if isinstance(sampler, type):
        raise TypeError(f"{name} must be a sampler object, got the class {sampler.__name__}; pass an instance, "
                        f"e.g. {sampler.__name__}().")
    if not callable(sampler):
        raise TypeError(f"{name} must be a sampler: a callable sampler(energy_fn, x0, generator=..., n_steps=...), "
                        f"such as skebm.mcmc.HMCSampler(); got {type(sampler).__name__}.")
    try:
        signature = inspect.signature(sampler)
    except (TypeError, ValueError):  # builtins without a signature: let the call decide
        return sampler
    try:
        signature.bind(None, None, generator=None, n_steps=1)
    except TypeError as exc:
        raise TypeError(f"{name} must be callable as sampler(energy_fn, x0, generator=..., n_steps=...); "
                        f"{type(sampler).__name__} is not ({exc}).") from None
    return sampler


def run_sampler(sampler, energy_fn, x0, *, generator=None, **overrides):
    """Call a protocol sampler, passing only the overrides that are set.

    ``None`` means "the sampler's own setting" and a false ``return_chains``
    or ``return_trace`` asks for nothing, so neither is passed: a sampler
    that only knows ``n_steps`` works wherever no more is asked of it.
    """
    flags = ("return_chains", "return_trace")
    kwargs = {k: v for k, v in overrides.items() if v is not None and not (k in flags and v is False)}
    return sampler(energy_fn, x0, generator=generator, **kwargs)


def extend_trace(trace, part):
    """Append the trace ``part`` of a later segment of the same chains to ``trace`` (in place); return it.

    Per-step lists are concatenated; per-chain tensors ``(n_chains,
    n_steps)`` (``"chain_energy"``) are joined along the steps, so a chain
    run in segments (the temperatures' rounds of parallel tempering, the
    levels of annealed Langevin) has the trace of one run.
    """
    for key, values in part.items():
        if torch.is_tensor(values):
            trace[key] = values if key not in trace else torch.cat([trace[key], values], 1)
        else:
            trace.setdefault(key, []).extend(values)
    return trace


class SamplerSettings:
    """What skebm's samplers share: the settings are the attributes without a trailing ``_``."""

    def settings(self):
        """Return the stored settings as a dict."""
        return {k: v for k, v in vars(self).items() if not k.endswith("_")}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings().items())
        return f"{type(self).__name__}({args})"
