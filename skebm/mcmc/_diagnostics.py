"""Steady-state diagnostics of Langevin chains (EBM Anatomy).

A longrun model is in a steady state when its chains, run much longer than
in training, neither drift nor saturate: the energy of the chains stays at
the energy of the data, the mean Langevin gradient norm stays flat, and a
Metropolis-adjusted chain keeps accepting at a stable rate.
"""

import numpy as np
import torch

from .._torch_utils import batched
from ._convergence import _energy_convergence
from ._protocol import check_sampler

__all__ = ["chain_diagnostics"]


def _mean_energy(energy_fn, x):
    return float(batched(lambda part: energy_fn(part).float(), x).mean())


def chain_diagnostics(energy_fn, x_data, x_chains, sampler, *, n_steps=100, generator=None):
    """Run chains further and report steady-state statistics.

    Parameters
    ----------
    energy_fn : callable
        Maps a batch tensor to ``(n,)`` energies.
    x_data : torch.Tensor
        A batch of data, in the space the energy sees.
    x_chains : torch.Tensor
        Chain states to continue (e.g. the longrun bank).
    sampler : object
        A sampler (:class:`LangevinSampler`, :class:`HMCSampler`,
        :class:`ParallelTempering` or any callable with their protocol
        that accepts ``return_trace=True`` and then returns ``(x, trace)``,
        the trace a dict of per-step lists ``"energy"``, ``"grad_norm"``
        and optionally ``"acceptance"``). A Metropolis sampler
        (``metropolis=True``, HMC) also reports acceptance.
    n_steps : int, default=100
        Number of further steps.
    generator : torch.Generator, default=None
        Generator of the chains' noise; ``None`` uses the global one.

    Returns
    -------
    diagnostics : dict
        ``"energy_data"`` (float, mean energy of the data),
        ``"energy_chains"`` (list, the chains' mean energy per step),
        ``"grad_norm"`` (list, mean gradient norm of the energy per step),
        ``"acceptance"`` (list, acceptance per step; empty without
        a Metropolis test), ``"energy_gap"`` (float, mean energy of the final chains
        minus that of the data: near 0 in a steady state) and
        ``"chains"`` (the final states); ``"ess"`` and ``"rhat"`` (floats,
        :func:`effective_sample_size` and :func:`split_rhat` of the energy
        of each chain over the steps, shape ``(n_chains, n_steps)``: an ESS
        near ``n_chains * n_steps`` and an R-hat below 1.01 say the chains
        mix and agree; NaN with fewer than 4 steps).

    Examples
    --------
    >>> import torch
    >>> from skebm.mcmc import LangevinSampler, chain_diagnostics
    >>> energy = lambda x: 0.5 * (x ** 2).sum(1)
    >>> data = torch.randn(2000, 2)
    >>> diag = chain_diagnostics(energy, data, torch.randn(2000, 2),
    ...                          LangevinSampler(step_size=0.5, metropolis=True), n_steps=20)
    >>> abs(diag["energy_gap"]) < 0.2
    True
    """
    check_sampler(sampler)
    x, trace = sampler(energy_fn, x_chains, n_steps=n_steps, return_trace=True, generator=generator)
    e_data = _mean_energy(energy_fn, x_data)
    e_end = _mean_energy(energy_fn, x)
    ess, rhat = _energy_convergence(trace.get("chain_energy"))
    return {
        "energy_data": e_data,
        "energy_chains": [float(v) for v in trace["energy"]] + [e_end],
        "grad_norm": [float(v) for v in trace["grad_norm"]],
        "acceptance": [float(v) for v in trace.get("acceptance", [])],
        "energy_gap": float(np.float64(e_end) - e_data),
        "chains": x,
        "ess": ess,
        "rhat": rhat,
    }
