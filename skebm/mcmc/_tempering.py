"""Parallel tempering (replica exchange) around any sampler."""

import copy

import numpy as np
import torch

from .._validation import NONNEG_INT, POSITIVE_INT, Float, Int, MAX_SCALE, check_params
from ._noise import as_noise
from ._protocol import SamplerSettings, check_sampler, extend_trace

__all__ = ["ParallelTempering"]


def _ladder(temperatures, n_temperatures, max_temperature):
    """The temperature ladder: ``temperatures`` checked, or a geometric one from 1 to ``max_temperature``."""
    if temperatures is None:
        return np.geomspace(1.0, max_temperature, n_temperatures)
    try:
        ladder = np.asarray(temperatures, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"temperatures must be a sequence of numbers, got {temperatures!r}.") from None
    if ladder.ndim != 1 or len(ladder) < 2:
        raise ValueError(f"temperatures must list at least two temperatures, got {temperatures!r}.")
    if not (np.all(np.isfinite(ladder)) and np.all(ladder > 0) and np.all(ladder <= MAX_SCALE)):
        raise ValueError(f"temperatures must be positive finite numbers (at most {MAX_SCALE:g}), got {temperatures!r}.")
    if not np.all(np.diff(ladder) > 0):
        raise ValueError(f"temperatures must increase strictly, got {temperatures!r}.")
    return ladder


class ParallelTempering(SamplerSettings):
    r"""Replica exchange over a temperature ladder, around any sampler.

    Every chain start is replicated at each temperature
    :math:`T_0 < T_1 < \dots < T_{K-1}` of the ladder. The replicas run
    ``swap_every`` steps of the inner ``sampler`` at their own temperature
    (passed as its ``temperature`` override), then neighbouring
    temperatures propose to exchange their states, chain by chain, accepted
    with probability

    .. math::

        \min\left(1, \exp\left[\left(\frac{1}{T_k} - \frac{1}{T_{k+1}}\right)
        \left(E(x_k) - E(x_{k+1})\right)\right]\right),

    the pairs :math:`(0, 1), (2, 3), \dots` and :math:`(1, 2), (3, 4),
    \dots` in turn. Hot replicas cross energy barriers and hand their states
    down the ladder, so the replicas at :math:`T_0` (returned) visit modes
    that the inner sampler alone never leaves. Each of the :math:`K`
    temperatures costs as much as the inner sampler, and the result is
    exact when the inner sampler is (:class:`HMCSampler`,
    :class:`LangevinSampler` with ``metropolis=True``).

    An inner sampler that adapts during its first ``n_warmup`` steps
    (:class:`HMCSampler`) adapts once per temperature, in a first segment
    of ``n_warmup`` steps without swaps; the later segments run at the
    adapted ``step_size_`` of their temperature with ``n_warmup=0``.

    Parameters
    ----------
    sampler : object
        The inner sampler, called as ``sampler(energy_fn, x, generator=...,
        n_steps=..., temperature=...)``: :class:`LangevinSampler`,
        :class:`HMCSampler` or any object with that protocol. It is copied
        once per temperature at every call; it is not modified.
    temperatures : array-like of float, default=None
        The ladder, strictly increasing; the replicas at the first (usually
        1) are returned. ``None``: ``n_temperatures`` temperatures spaced
        geometrically from 1 to ``max_temperature``.
    n_temperatures : int, default=8
        Length of the geometric ladder (``temperatures=None``), 2 to
        1,000 (each temperature holds a copy of every chain).
    max_temperature : float, default=10.0
        Top of the geometric ladder (``temperatures=None``), above 1.
    n_steps : int, default=None
        Steps of the inner sampler per temperature, warm-up included;
        ``None`` uses the inner sampler's ``n_steps``.
    swap_every : int, default=10
        Inner steps between two rounds of swaps.

    Attributes
    ----------
    temperatures_ : ndarray of shape (n_temperatures,)
        The ladder of the last call.
    swap_acceptance_ : ndarray of shape (n_temperatures - 1,)
        Fraction of accepted swaps between temperatures ``k`` and ``k + 1``
        in the last call (NaN for a pair never tried). Low values (under
        about 0.2) ask for a denser ladder.
    samplers_ : list
        The inner sampler's copy of each temperature after the last call
        (e.g. each one's adapted ``step_size_``).

    See Also
    --------
    HMCSampler : Hamiltonian Monte Carlo with step-size adaptation.
    LangevinSampler : Langevin dynamics, unadjusted or Metropolis-adjusted.

    References
    ----------
    R. H. Swendsen and J.-S. Wang, "Replica Monte Carlo simulation of
    spin-glasses", Physical Review Letters 57, 1986. D. J. Earl and M. W.
    Deem, "Parallel tempering: theory, applications, and new perspectives",
    PCCP 7, 2005.

    Examples
    --------
    >>> import torch
    >>> from skebm.mcmc import HMCSampler, ParallelTempering
    >>> def two_modes(x):  # modes at -4 and +4, sd 0.5: a barrier of 32 nats
    ...     return -torch.logsumexp(-2.0 * (x - torch.tensor([-4.0, 4.0])) ** 2, dim=1)
    >>> hmc = HMCSampler(step_size=0.3, n_leapfrog=3, n_warmup=30)
    >>> pt = ParallelTempering(hmc, n_temperatures=6, max_temperature=60.0, n_steps=150, swap_every=2)
    >>> g, x0 = torch.Generator().manual_seed(0), torch.full((400, 1), -4.0)  # all in the left mode
    >>> x = pt(two_modes, x0, generator=g)
    >>> bool(abs(float((x > 0).float().mean()) - 0.5) < 0.1)  # HMC alone: none crosses
    True
    """

    _parameter_constraints = {
        "n_temperatures": [Int(2, 1000, closed="both")],  # each temperature holds a copy of every chain
        "max_temperature": [Float(1, MAX_SCALE, closed="right")],
        "n_steps": [NONNEG_INT, None],
        "swap_every": [POSITIVE_INT],
    }
    _own = ("temperatures", "n_temperatures", "max_temperature", "n_steps", "swap_every")

    def __init__(self, sampler, temperatures=None, n_temperatures=8, max_temperature=10.0, n_steps=None,
                 swap_every=10):
        self.sampler = sampler
        self.temperatures = temperatures
        self.n_temperatures = n_temperatures
        self.max_temperature = max_temperature
        self.n_steps = n_steps
        self.swap_every = swap_every
        self._settings(self.settings())

    def _settings(self, settings):
        """Check ``settings``; return ``(ladder, n_steps)``."""
        check_sampler(settings["sampler"])
        check_params(self._parameter_constraints, settings, type(self).__name__)
        ladder = _ladder(settings["temperatures"], settings["n_temperatures"], settings["max_temperature"])
        n_steps = settings["n_steps"]
        if n_steps is None:
            n_steps = getattr(settings["sampler"], "n_steps", None)
            if not isinstance(n_steps, int) or isinstance(n_steps, bool) or n_steps < 0:
                raise ValueError("ParallelTempering(n_steps=None) needs an inner sampler with an integer n_steps; "
                                 "pass n_steps.")
        return ladder, n_steps

    def __call__(self, energy_fn, x0, *, generator=None, noise=None, return_chains=False, return_trace=False,
                 **overrides):
        """Run the replicas from ``x0`` on ``energy_fn``; return those of the lowest temperature.

        Parameters
        ----------
        energy_fn : callable
            Maps a batch to ``(n,)`` energies.
        x0 : torch.Tensor
            Chain starts, shape ``(n_chains, ...)``, replicated at every
            temperature. Not modified.
        generator : torch.Generator, default=None
            Generator of every random draw (the inner sampler's and the
            swaps'); ``None`` uses torch's global generator.
        noise : object, default=None
            An explicit noise stream (e.g. :class:`RowNoise`): each
            temperature gets its own replicate of it
            (``noise.replicate``), passed to the inner sampler as
            ``noise``.
        return_chains : bool, default=False
            Also return the states at the lowest temperature after every
            step (after the swap at the end of a segment), shape
            ``(n_steps + 1, n_chains, ...)``; needs an inner sampler with
            ``return_chains``.
        return_trace : bool, default=False
            Also return the inner sampler's trace at the lowest
            temperature, its per-step lists put end to end; needs an inner
            sampler with ``return_trace``.
        **overrides
            This object's settings (``n_steps``, ``swap_every``,
            ``temperatures``, ...) for this call only; any other keyword
            goes to the inner sampler, except ``temperature``, which the
            ladder sets.

        Returns
        -------
        x : torch.Tensor
            States at the lowest temperature.
        chains : torch.Tensor
            Only if ``return_chains``.
        trace : dict
            Only if ``return_trace``.
        """
        if "temperature" in overrides:
            raise TypeError("ParallelTempering sets the temperature of each replica; change temperatures instead.")
        settings = self.settings()
        settings.update({k: v for k, v in overrides.items() if k in self._own and v is not None})
        inner = {k: v for k, v in overrides.items() if k not in self._own and v is not None}
        ladder, n_steps = self._settings(settings)
        samplers = [copy.copy(settings["sampler"]) for _ in ladder]
        swap_every, n_temps, n = settings["swap_every"], len(ladder), len(x0)
        draws = as_noise(noise, generator)
        if noise is not None:  # one stream per temperature; a generator is shared as it is
            replicas = noise.replicate(n_temps)
            streams = [replicas.subset(slice(k * n, (k + 1) * n)) for k in range(n_temps)]
            extra = [{"noise": s} for s in streams]
            draws = streams
        else:
            extra = [{} for _ in ladder]
            draws = [draws] * n_temps
        warmup = min(int(inner.get("n_warmup", getattr(settings["sampler"], "n_warmup", 0)) or 0), n_steps)
        segments = ([warmup] if warmup else []) + [swap_every] * ((n_steps - warmup) // swap_every)
        if sum(segments) < n_steps:
            segments.append(n_steps - sum(segments))

        xs = [x0.detach().to(torch.float32).clone() for _ in ladder]
        chains = [xs[0].clone()] if return_chains else None
        trace = {} if return_trace else None
        tried, accepted = np.zeros(n_temps - 1), np.zeros(n_temps - 1)
        for r, length in enumerate(segments):
            for k, temperature in enumerate(ladder):
                kwargs = {**inner, **extra[k], "n_steps": length, "temperature": float(temperature)}
                flags = {"return_chains": True} if return_chains and k == 0 else {}
                if return_trace and k == 0:
                    flags["return_trace"] = True
                out = samplers[k](energy_fn, xs[k], generator=generator, **kwargs, **flags)
                xs[k], rest = (out[0], list(out[1:])) if flags else (out, [])
                if "return_chains" in flags:
                    chains.extend(rest.pop(0)[1:])
                if "return_trace" in flags:
                    extend_trace(trace, rest.pop(0))
                if r == 0 and warmup and hasattr(samplers[k], "step_size_"):
                    extra[k].update(step_size=samplers[k].step_size_, n_warmup=0)
            self._swap(energy_fn, xs, ladder, r % 2, draws, tried, accepted)
            if return_chains and length:
                chains[-1] = xs[0].clone()
        self.temperatures_ = ladder
        self.samplers_ = samplers
        with np.errstate(invalid="ignore", divide="ignore"):
            self.swap_acceptance_ = accepted / tried
        result = [xs[0]]
        if return_chains:
            result.append(torch.stack(chains))
        if return_trace:
            result.append(trace)
        return result[0] if len(result) == 1 else tuple(result)

    @staticmethod
    def _swap(energy_fn, xs, ladder, parity, draws, tried, accepted):
        """One round of swaps between the pairs ``(k, k + 1)`` with ``k % 2 == parity``, in place."""
        if len(xs[0]) == 0:
            return
        with torch.no_grad():
            energies = [energy_fn(x).detach().to(torch.float64) for x in xs]
        for k in range(parity, len(ladder) - 1, 2):
            delta = (1.0 / ladder[k] - 1.0 / ladder[k + 1]) * (energies[k] - energies[k + 1])
            u = draws[k].rand_like(delta.float()).to(torch.float64)
            accept = torch.log(u) < delta  # NaN energies compare False: no swap
            a = accept.view(-1, *([1] * (xs[k].ndim - 1)))
            xs[k], xs[k + 1] = torch.where(a, xs[k + 1], xs[k]), torch.where(a, xs[k], xs[k + 1])
            energies[k], energies[k + 1] = (torch.where(accept, energies[k + 1], energies[k]),
                                            torch.where(accept, energies[k], energies[k + 1]))
            tried[k] += len(accept)
            accepted[k] += float(accept.sum())
