"""Hamiltonian Monte Carlo with a Metropolis correction and step-size adaptation.

Written here rather than taken from Pyro or NumPyro: those run one chain per
kernel on their own distributions, while an EBM sampler runs thousands of
independent chains of an arbitrary energy network in one batch, with the
gradient helper, autocast and noise streams the Langevin sampler uses.
"""

import math

import torch

from .._validation import NONNEG_INT, POSITIVE_INT, SCALE, TEMPERATURE, Float, StrOptions, check_params
from ._langevin import _energy_grad, autocast_context
from ._noise import as_noise
from ._protocol import SamplerSettings

__all__ = ["HMCSampler"]

class _StepSizeAdaptation:
    """Adapt ``log step_size`` toward a mean acceptance probability ``target``.

    While the acceptance stays above the target from the start, the step
    size doubles at every step (a step size far too small is found fast);
    then Robbins-Monro steps ``log eps <- log eps + gain / sqrt(m) *
    (acceptance_m - target)``, ``m`` counting from the first of them. The
    step size kept after warm-up is the geometric mean of the second half
    of the iterates. Dual averaging (Hoffman & Gelman, 2014) damps the noise
    of one chain's acceptance; here the acceptance is the mean over the
    whole batch of chains, nearly noise-free, and this faster rule reaches
    the target (within 0.04) in 20 steps from a step size 100 times too
    small or 5 times too large (measured on Gaussians in 2, 5 and 20
    dimensions, 100 and 1000 chains), where dual averaging is still 0.03 to
    0.2 away after 100 steps.
    """

    gain = 2.0

    def __init__(self, step_size, target):
        self.log_step = math.log(step_size)
        self.target = target
        self.history = []
        self.growing = True
        self.m = 0

    def update(self, acceptance):
        """Record one step's mean acceptance probability; return the step size of the next step."""
        self.growing = self.growing and acceptance > self.target
        if self.growing:
            self.log_step += math.log(2.0)
        else:
            self.m += 1
            self.log_step += self.gain / math.sqrt(self.m) * (acceptance - self.target)
        self.history.append(self.log_step)
        return math.exp(self.log_step)

    @property
    def final(self):
        """The step size kept after warm-up."""
        tail = self.history[len(self.history) // 2:]
        return math.exp(sum(tail) / len(tail))


def _check_clamp(clamp):
    if clamp is None:
        return None
    try:
        low, high = (float(v) for v in clamp)
    except (TypeError, ValueError):
        raise ValueError(f"clamp must be None or a pair (low, high) of numbers, got {clamp!r}.") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"clamp must be a pair (low, high) of finite numbers with low < high, got {clamp!r}.")
    return low, high


class HMCSampler(SamplerSettings):
    r"""Hamiltonian Monte Carlo, Metropolis-adjusted, with step-size adaptation.

    Each step draws a momentum :math:`p \sim N(0, I)` for every chain, runs
    ``n_leapfrog`` leapfrog steps of size :math:`\epsilon` on the
    Hamiltonian :math:`H(x, p) = E(x)/T + \|p\|^2/2` and accepts the end
    point of each chain independently with probability
    :math:`\min(1, \exp(H_0 - H_1))` (computed in float64), so the chains
    leave :math:`\exp(-E/T)` exactly invariant. A step costs ``n_leapfrog``
    energy gradients (the gradient at the end point is reused by the next
    step), against one for a Langevin step: compare samplers at the same
    number of gradients.

    During the first ``n_warmup`` steps of every call the step size adapts
    (Robbins-Monro steps on its logarithm, driven by the mean acceptance
    probability over the chains) so that the acceptance reaches
    ``target_acceptance``; the remaining
    steps use the averaged value, kept in ``step_size_``. The stored
    ``step_size`` is only the starting point and is never changed. Each
    step, every chain draws its step size uniformly in
    :math:`\epsilon [1 - j, 1 + j]` (``jitter``), which keeps the
    trajectories of a fixed length from resonating with the energy.

    Calling the sampler runs the chains with the stored settings; any
    keyword given at call time overrides the stored one, as with
    :class:`LangevinSampler`, so an ``HMCSampler`` can replace a
    ``LangevinSampler`` anywhere a sampler is taken (the ``sampler``
    argument of :meth:`skebm.EBMGenerator.sample` and
    :meth:`skebm.EBMDensity.sample`, :func:`chain_diagnostics`,
    :class:`ParallelTempering`).

    Parameters
    ----------
    n_steps : int, default=100
        HMC steps (trajectories) per call, warm-up included.
    step_size : float, default=0.1
        Leapfrog step size :math:`\epsilon`, where adaptation starts.
    n_leapfrog : int, default=10
        Leapfrog steps per trajectory (energy gradients per HMC step).
    temperature : float, default=1.0
        Temperature :math:`T` dividing the energy.
    n_warmup : int, default=50
        Steps at the start of every call during which the step size adapts
        (at most ``n_steps``); 0 keeps ``step_size`` fixed.
    target_acceptance : float, default=0.65
        Mean acceptance probability the adaptation aims at.
    jitter : float, default=0.1
        Relative half-width of the random per-chain, per-step step size;
        0 for a fixed step size.
    clamp : tuple of float, default=None
        ``(low, high)``: restricts the target to this box; a trajectory
        that ends outside it is rejected, which keeps the sampler exact
        (unlike clamping the state).
    precision : {"fp32", "bf16"}, default="fp32"
        Autocast precision of the energy evaluation; the chain state and
        the momenta stay float32.

    Attributes
    ----------
    step_size_ : float
        Step size after the warm-up of the last call (``step_size`` when
        nothing adapted).
    acceptance_rate_ : float
        Fraction of accepted trajectories in the last call, over all chains
        and the steps after the warm-up (all steps when every step was
        warm-up).

    See Also
    --------
    LangevinSampler : Langevin dynamics, unadjusted or Metropolis-adjusted.
    ParallelTempering : Replica exchange around any sampler.

    References
    ----------
    R. M. Neal, "MCMC using Hamiltonian dynamics", Handbook of Markov Chain
    Monte Carlo, 2011.

    Examples
    --------
    >>> import torch
    >>> from skebm.mcmc import HMCSampler
    >>> sampler = HMCSampler(n_steps=100, step_size=0.5, n_leapfrog=5)
    >>> g = torch.Generator().manual_seed(0)
    >>> x = sampler(lambda x: 0.5 * (x ** 2).sum(1), torch.zeros(2000, 2), generator=g)
    >>> bool(abs(x.var() - 1) < 0.1), bool(abs(sampler.acceptance_rate_ - 0.65) < 0.1)
    (True, True)
    """

    _parameter_constraints = {
        "n_steps": [NONNEG_INT],
        "step_size": [SCALE],
        "n_leapfrog": [POSITIVE_INT],
        "temperature": [TEMPERATURE],
        "n_warmup": [NONNEG_INT],
        "target_acceptance": [Float(0, 1, closed="neither")],
        "jitter": [Float(0, 1, closed="left")],
        "clamp": [tuple, list, None],
        "precision": [StrOptions({"fp32", "bf16"})],
    }

    def __init__(self, n_steps=100, step_size=0.1, n_leapfrog=10, temperature=1.0, n_warmup=50,
                 target_acceptance=0.65, jitter=0.1, clamp=None, precision="fp32"):
        self.n_steps = n_steps
        self.step_size = step_size
        self.n_leapfrog = n_leapfrog
        self.temperature = temperature
        self.n_warmup = n_warmup
        self.target_acceptance = target_acceptance
        self.jitter = jitter
        self.clamp = clamp
        self.precision = precision
        self._check(self.settings())

    def _check(self, settings):
        check_params(self._parameter_constraints, settings, type(self).__name__)
        _check_clamp(settings["clamp"])

    def __call__(self, energy_fn, x0, *, generator=None, noise=None, mask=None, return_chains=False,
                 return_trace=False, **overrides):
        """Run the chains from ``x0`` on ``energy_fn``.

        Parameters
        ----------
        energy_fn : callable
            Maps a batch to ``(n,)`` energies.
        x0 : torch.Tensor
            Chain starts, shape ``(n_chains, ...)``. Not modified.
        generator : torch.Generator, default=None
            Generator (on ``x0``'s device) of every random draw of the call
            (momenta, step-size jitter, acceptance); ``None`` uses torch's
            global generator.
        noise : object, default=None
            An explicit noise stream (e.g. :class:`RowNoise`) instead of
            ``generator``.
        mask : torch.Tensor, default=None
            Broadcastable to ``x0``; only entries where it is nonzero move.
        return_chains : bool, default=False
            Also return every state, shape ``(n_steps + 1, n_chains, ...)``.
        return_trace : bool, default=False
            Also return a dict of per-step lists: ``"energy"`` and
            ``"grad_norm"`` (means over the chains of ``energy_fn`` and of
            its gradient norm at the state before the step),
            ``"acceptance"`` (fraction of chains accepted) and
            ``"step_size"``.
        **overrides
            Any stored setting, for this call only (``None``: the stored
            one).

        Returns
        -------
        x : torch.Tensor
            Final states, detached, float32.
        chains : torch.Tensor
            Only if ``return_chains``.
        trace : dict
            Only if ``return_trace``.

        Raises
        ------
        ValueError
            For a bad setting (the sampler is left as it was).
        """
        settings = self.settings()
        unknown = set(overrides) - set(settings)
        if unknown:
            raise TypeError(f"HMCSampler got unexpected keyword(s) {sorted(unknown)}; "
                            f"it takes {sorted(settings)}, mask, noise, return_chains and return_trace.")
        settings.update({k: v for k, v in overrides.items() if v is not None})
        self._check(settings)
        x, chains, trace, step_size, rate = _hmc(energy_fn, x0, noise=as_noise(noise, generator), mask=mask,
                                                 return_chains=return_chains, return_trace=return_trace, **settings)
        self.step_size_, self.acceptance_rate_ = step_size, rate
        out = [x]
        if return_chains:
            out.append(torch.stack(chains))
        if return_trace:
            out.append(trace)
        return out[0] if len(out) == 1 else tuple(out)



def _hmc(energy_fn, x0, *, n_steps, step_size, n_leapfrog, temperature, n_warmup, target_acceptance, jitter, clamp,
         precision, noise, mask, return_chains, return_trace):
    """The chains of :class:`HMCSampler`: ``(x, chains, trace, step_size_, acceptance_rate_)``."""
    ctx = autocast_context(x0.device, precision)
    clamp = _check_clamp(clamp)
    x = x0.detach().to(torch.float32).clone()
    if mask is not None:
        mask = mask.to(device=x.device, dtype=x.dtype)
    n, shape = len(x), (-1,) + (1,) * (x.ndim - 1)
    chains = [x.clone()] if return_chains else None
    trace = {"energy": [], "grad_norm": [], "acceptance": [], "step_size": [], "chain_energy": []} if return_trace else None
    n_warmup = min(n_warmup, n_steps)
    adapt = _StepSizeAdaptation(step_size, target_acceptance) if n_warmup else None
    eps, accepted, counted = float(step_size), 0.0, 0

    def potential(x):  # energies (float64, of energy_fn itself) and the gradient of E/T
        x, energy, grad = _energy_grad(energy_fn, x, ctx)
        grad = grad.detach().to(torch.float32).div_(temperature)
        return energy.detach().to(torch.float64), grad if mask is None else grad.mul_(mask)

    def kinetic(p):
        return p.to(torch.float64).pow(2).flatten(1).sum(1).mul_(0.5)

    if n_steps:
        energy, grad = potential(x)
    for step in range(n_steps):
        p = noise.randn_like(x)
        if mask is not None:
            p.mul_(mask)
        h0 = energy / temperature + kinetic(p)
        eps_i = torch.full((n,), eps, device=x.device)
        if jitter:
            eps_i = eps_i * (1.0 + jitter * (2.0 * noise.rand_like(eps_i) - 1.0))
        eps_b = eps_i.view(shape)
        # leapfrog: half step in momentum, n_leapfrog full steps in position, half step at the end
        y, g = x, grad
        p = p - 0.5 * eps_b * g
        for i in range(n_leapfrog):
            y = y + eps_b * p
            energy_y, g = potential(y)
            p = p - (eps_b if i < n_leapfrog - 1 else 0.5 * eps_b) * g
        log_alpha = h0 - (energy_y / temperature + kinetic(p))
        if clamp is not None:
            outside = ((y < clamp[0]) | (y > clamp[1])).flatten(1).any(1)
            log_alpha = log_alpha.masked_fill(outside, -math.inf)
        # NaN or inf energies compare False: rejected
        accept = torch.log(noise.rand_like(log_alpha.float())).to(torch.float64) < log_alpha
        if return_trace:
            trace["energy"].append(float(energy.mean()))
            trace["grad_norm"].append(float(grad.flatten(1).norm(dim=1).mean() * temperature))
            trace["acceptance"].append(float(accept.float().mean()))
            trace["step_size"].append(eps)
            trace["chain_energy"].append(energy.detach().float().clone())  # each chain before the step: ESS, R-hat
        a = accept.view(shape)
        x = torch.where(a, y, x)
        grad = torch.where(a, g, grad)
        energy = torch.where(accept, energy_y, energy)
        if step < n_warmup:
            prob = torch.nan_to_num(log_alpha.clamp(max=0.0).exp(), nan=0.0)
            eps = adapt.update(float(prob.mean()))
            if step == n_warmup - 1:
                eps = adapt.final
        if step >= n_warmup or n_warmup == n_steps:
            accepted += float(accept.sum())
            counted += n
        if return_chains:
            chains.append(x.clone())
    rate = accepted / counted if counted else float("nan")
    if return_trace:  # (n_chains, n_steps), as the Langevin trace
        energies = trace["chain_energy"]
        trace["chain_energy"] = torch.stack(energies, 1) if energies else torch.zeros(len(x), 0, device=x.device)
    return x, chains, trace, eps, rate
