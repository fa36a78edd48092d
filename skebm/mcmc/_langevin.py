"""The Langevin sampler shared by every skebm estimator.

The sampler knows nothing of skorch or scikit-learn: it takes an energy
function (a callable mapping a batch tensor to one energy per sample) and a
tensor of chain starts, so research code can call it directly.
"""

import math

import torch

from .._validation import NONNEG_INT, NONNEG_SCALE, POSITIVE, SCALE, TEMPERATURE, check_params
from .._torch_utils import autocast_context
from ._noise import GLOBAL_NOISE, as_noise
from ._protocol import SamplerSettings

__all__ = ["LangevinSampler", "langevin", "independence_mh", "autocast_context"]


def langevin(
    energy_fn,
    x0,
    n_steps,
    step_size,
    *,
    noise_scale=None,
    temperature=1.0,
    tau=None,
    grad_clip=None,
    clamp=None,
    mask=None,
    precision="fp32",
    metropolis=False,
    noise=None,
    generator=None,
    return_chains=False,
    return_trace=False,
):
    r"""Run Langevin dynamics on ``energy_fn`` from ``x0``.

    One step is

    .. math::

        x \leftarrow x - \frac{\epsilon^2}{2} \nabla_x \left[\frac{E(x)}{T}
        + \frac{\|x\|^2}{2\tau^2}\right] + \sigma \xi, \quad \xi \sim N(0, I)

    with step size :math:`\epsilon`, noise scale :math:`\sigma` (equal to
    :math:`\epsilon` for exact Langevin dynamics), temperature :math:`T` and
    an optional Gaussian prior of scale :math:`\tau`. Gradients are taken with
    respect to ``x`` only; the parameters of the energy receive none.

    By default the dynamics are unadjusted (ULA): their stationary law is
    :math:`\exp(-E/T - \|x\|^2 / 2\tau^2)` only up to a discretisation bias
    that grows with :math:`\epsilon`. With ``metropolis=True`` each step is
    a Metropolis-adjusted Langevin (MALA) proposal, accepted with probability

    .. math::

        \min\left(1, \frac{\pi(x') q(x \mid x')}{\pi(x) q(x' \mid x)}\right),
        \quad \pi = \exp\left(-\frac{E}{T} - \frac{\|x\|^2}{2\tau^2}\right),

    where :math:`q(\cdot \mid x)` is the Gaussian proposal of the step above
    (drift clipped as requested, noise :math:`\sigma`), so the chain leaves
    :math:`\pi` exactly invariant whatever the step size. A MALA step costs
    the same single energy and gradient evaluation as an unadjusted one.

    Parameters
    ----------
    energy_fn : callable
        Maps a tensor shaped like ``x0`` to a tensor of ``len(x0)`` energies.
    x0 : torch.Tensor
        Chain starts, shape ``(n_chains, ...)``. Not modified.
    n_steps : int
        Number of Langevin steps.
    step_size : float
        Step size :math:`\epsilon`.
    noise_scale : float, default=None
        Standard deviation :math:`\sigma` of the injected noise; ``None``
        uses ``step_size`` (exact Langevin dynamics).
    temperature : float, default=1.0
        Temperature :math:`T` dividing the energy.
    tau : float, default=None
        Scale of the optional Gaussian prior term that keeps chains bounded.
    grad_clip : float, default=None
        Clip the drift elementwise to ``[-grad_clip, grad_clip]`` (IGEBM).
    clamp : tuple of float, default=None
        Clamp the state to ``(low, high)`` after every step.
    mask : torch.Tensor, default=None
        Broadcastable to ``x0``; only entries where ``mask`` is nonzero move
        (inpainting). Other entries stay exactly at their start value.
    precision : {"fp32", "bf16"}, default="fp32"
        ``"bf16"`` evaluates the energy under bfloat16 autocast; the chain
        state stays float32.
    metropolis : bool, default=False
        Metropolis-adjust every step (MALA). Incompatible with ``clamp``
        (a clamped proposal has no tractable density).
    noise : object, default=None
        Source of the injected noise (and of MALA's acceptance draws): an
        object with ``randn_like(x)`` and ``rand_like(t)`` methods, such as
        :class:`RowNoise`, which makes each chain's noise a function of its
        own key, whatever the batch. ``None`` draws from ``generator``.
    generator : torch.Generator, default=None
        Generator (on the device of ``x0``) of the noise when ``noise`` is
        None; ``None`` uses torch's global generator. A seeded generator
        makes the call depend on nothing global (thread-safe).
    return_chains : bool, default=False
        Also return every state, shape ``(n_steps + 1, n_chains, ...)``.
    return_trace : bool, default=False
        Also return a dict with the per-step mean energy and mean gradient
        norm (steady-state diagnostics), plus the per-step acceptance rate
        under ``"acceptance"`` when ``metropolis=True``, and the energy of
        every chain before every step under ``"chain_energy"`` (a tensor
        ``(n_chains, n_steps)``: the draws of
        :func:`~skebm.mcmc.effective_sample_size` and
        :func:`~skebm.mcmc.split_rhat`).

    Returns
    -------
    x : torch.Tensor
        Final states, detached, float32.
    chains : torch.Tensor
        Only if ``return_chains``.
    trace : dict
        Only if ``return_trace``: ``{"energy": [...], "grad_norm": [...],
        "chain_energy": tensor}`` (and ``"acceptance"`` with
        ``metropolis=True``). Energies and
        gradient norms are those of ``energy_fn`` itself at the state before
        each step.
    """
    out, _ = _run(
        energy_fn, x0, n_steps, step_size, noise_scale=noise_scale, temperature=temperature, tau=tau,
        grad_clip=grad_clip, clamp=clamp, mask=mask, precision=precision, metropolis=metropolis,
        noise=as_noise(noise, generator), return_chains=return_chains, return_trace=return_trace,
    )
    return out


# ------------------------------------------------------------ the Langevin step
class _Dynamics:
    """The settings of a Langevin step, with the coefficients derived once per chain.

    One step is ``x <- clamp(x + mask * (sigma * xi - clip(eps**2/2 * (grad E / T + x / tau**2))))``;
    the sampler (:func:`langevin`, ULA and MALA) and the differentiable chain
    (:func:`~skebm.mcmc.unrolled_langevin`) both take their steps from this
    object, so the chain an attack differentiates is the defence's.
    """

    __slots__ = ("energy_coef", "prior_coef", "grad_clip", "sigma", "mask", "clamp", "ctx")

    def __init__(self, step_size, sigma, device, dtype, *, temperature=1.0, tau=None, grad_clip=None, clamp=None,
                 mask=None, precision="fp32"):
        drift_coef = step_size**2 / 2.0
        self.energy_coef = drift_coef / temperature
        self.prior_coef = None if tau is None else drift_coef / tau**2
        self.grad_clip = grad_clip
        self.sigma = sigma
        self.mask = None if mask is None else mask.to(device=device, dtype=dtype)
        self.clamp = clamp
        self.ctx = autocast_context(device, precision)

    def drift(self, grad, x):
        """``clip(eps**2/2 * (grad / T + x / tau**2))``, a new tensor.

        ``grad`` is not written to: autograd may return an expanded tensor
        (a flat energy's zero gradient).
        """
        drift = grad.to(x.dtype).mul(self.energy_coef)
        if self.prior_coef is not None:
            drift.add_(x, alpha=self.prior_coef)
        if self.grad_clip is not None:
            drift.clamp_(-self.grad_clip, self.grad_clip)
        return drift


def _energy_grad(energy_fn, x, ctx, create_graph=False):
    """Energies at ``x`` and their gradient with respect to ``x``: ``(x, energy, grad)``.

    The returned ``x`` is the tensor differentiated (in the graph when
    ``create_graph`` and ``x`` is). This is the seam of the step: a compiled
    step (``torch.func.grad`` composed with ``torch.compile``) would replace
    this function and leave the update rule of ``langevin_step`` alone.
    """
    with torch.enable_grad():
        if not (create_graph and x.requires_grad):
            x = x.detach().requires_grad_(True)
        with ctx:
            energy = energy_fn(x)
        (grad,) = torch.autograd.grad(energy.sum(), x, create_graph=create_graph)
    return x, energy, grad


def langevin_step(energy_fn, x, xi, dynamics, *, create_graph=False, trace=None):
    """One Langevin step from ``x`` with the standard normals ``xi`` (None: no noise).

    Parameters
    ----------
    energy_fn : callable
        Maps ``x`` to one energy per row.
    x : torch.Tensor
        Current states. With ``create_graph=False`` the step writes the new
        state into ``x``'s storage (the caller owns it) and consumes ``xi``.
    xi : torch.Tensor or None
        Standard normal draws shaped like ``x``.
    dynamics : _Dynamics
        Step size, noise scale, temperature, prior, drift clip, mask, clamp.
    create_graph : bool, default=False
        Keep the step in the autograd graph (second derivatives of the
        energy), for the differentiable chain; the only difference from the
        sampler's step.
    trace : dict, default=None
        Appends the mean energy and mean gradient norm at ``x`` to
        ``trace["energy"]`` and ``trace["grad_norm"]``, and the energy of
        each chain to ``trace["chain_energy"]``.

    Returns
    -------
    x : torch.Tensor
        The new states (detached unless ``create_graph``).
    """
    x, energy, grad = _energy_grad(energy_fn, x, dynamics.ctx, create_graph)
    if trace is not None:
        trace["energy"].append(float(energy.detach().float().mean()))
        trace["grad_norm"].append(float(grad.detach().flatten(1).norm(dim=1).mean()))
        trace["chain_energy"].append(energy.detach().float())
    if not create_graph:
        x = x.detach()
    drift = dynamics.drift(grad, x)
    if xi is None:
        step = drift.neg_()
    else:
        step = (xi.mul(dynamics.sigma) if create_graph else xi.mul_(dynamics.sigma)).sub_(drift)
    if dynamics.mask is not None:
        step.mul_(dynamics.mask)
    x = x + step if create_graph else x.add_(step)
    if dynamics.clamp is not None:
        x = x.clamp_(dynamics.clamp[0], dynamics.clamp[1])
    return x


def _ula(energy_fn, x0, n_steps, dynamics, return_chains, return_trace, noise):
    """Unadjusted Langevin; see :func:`langevin`."""
    x = x0.detach().to(torch.float32).clone()
    chains = [x.clone()] if return_chains else None
    trace = {"energy": [], "grad_norm": [], "chain_energy": []} if return_trace else None
    for _ in range(n_steps):
        x = langevin_step(energy_fn, x, noise.randn_like(x), dynamics, trace=trace)
        if return_chains:
            chains.append(x.clone())
    return x, chains, trace, float("nan")


def _run(energy_fn, x0, n_steps, step_size, *, noise_scale=None, temperature=1.0, tau=None, grad_clip=None,
         clamp=None, mask=None, precision="fp32", metropolis=False, noise=GLOBAL_NOISE, return_chains=False,
         return_trace=False):
    """Validate the settings, run ULA or MALA; return ``(output, acceptance_rate)``."""
    sigma = _check_settings(n_steps, step_size, noise_scale, temperature, metropolis, clamp, tau, grad_clip)
    dynamics = _Dynamics(step_size, sigma, x0.device, torch.float32, temperature=temperature, tau=tau,
                         grad_clip=grad_clip, clamp=clamp, mask=mask, precision=precision)
    if metropolis:
        x, chains, trace, rate = _mala(energy_fn, x0, n_steps, dynamics, return_chains, return_trace, noise,
                                       temperature, tau)
    else:
        x, chains, trace, rate = _ula(energy_fn, x0, n_steps, dynamics, return_chains, return_trace, noise)
    out = [x]
    if return_chains:
        out.append(torch.stack(chains))
    if return_trace:  # the energy of each chain before each step: (n_chains, n_steps), for ESS and R-hat
        energies = trace["chain_energy"]
        trace["chain_energy"] = torch.stack(energies, 1) if energies else torch.zeros(len(x), 0, device=x.device)
        out.append(trace)
    return (out[0] if len(out) == 1 else tuple(out)), rate


_SETTINGS = {
    "n_steps": [NONNEG_INT],
    "step_size": [SCALE],
    "noise_scale": [NONNEG_SCALE, None],
    "temperature": [TEMPERATURE],
    "tau": [SCALE, None],
    "grad_clip": [POSITIVE, None],
}


def _check_settings(n_steps, step_size, noise_scale, temperature, metropolis=False, clamp=None, tau=None,
                    grad_clip=None):
    """Validate Langevin settings; return the noise standard deviation."""
    check_params(
        _SETTINGS,
        dict(n_steps=n_steps, step_size=step_size, noise_scale=noise_scale, temperature=temperature, tau=tau,
             grad_clip=grad_clip),
        "langevin",
    )
    sigma = step_size if noise_scale is None else noise_scale
    if metropolis:
        if clamp is not None:
            raise ValueError("metropolis=True cannot be combined with clamp.")
        if sigma <= 0:
            raise ValueError("metropolis=True needs a positive noise_scale.")
    return sigma


def _mala(energy_fn, x0, n_steps, dynamics, return_chains, return_trace, noise, temperature, tau):
    """Metropolis-adjusted Langevin; see :func:`langevin` (``metropolis=True``).

    The proposal is the step of ``langevin_step`` (same drift, clip,
    mask and noise) from the cached gradient at the current state.
    """
    sigma, mask = dynamics.sigma, dynamics.mask
    x = x0.detach().to(torch.float32).clone()
    chains = [x.clone()] if return_chains else None
    trace = {"energy": [], "grad_norm": [], "acceptance": [], "chain_energy": []} if return_trace else None
    n_accepted = torch.zeros((), device=x.device)

    def potential(x):  # energy, its gradient, and the potential E/T + |x|^2/(2 tau^2)
        x, energy, grad = _energy_grad(energy_fn, x, dynamics.ctx)
        x, energy, grad = x.detach(), energy.detach().float(), grad.float()
        u = energy / temperature
        if tau is not None:
            u = u + x.pow(2).flatten(1).sum(1) / (2.0 * tau**2)
        return energy, grad, u

    def proposal_mean(x, grad):
        drift = dynamics.drift(grad, x)
        return x - (drift if mask is None else drift * mask)

    def log_q(to, mean):  # log proposal density, up to a constant
        diff = to - mean
        if mask is not None:
            diff = diff * mask
        return -diff.pow(2).flatten(1).sum(1) / (2.0 * sigma**2)

    if n_steps:
        energy, grad, u = potential(x)
    for _ in range(n_steps):
        mean = proposal_mean(x, grad)
        step = noise.randn_like(x).mul_(sigma)
        if mask is not None:
            step.mul_(mask)
        y = mean + step
        energy_y, grad_y, u_y = potential(y)
        log_alpha = u - u_y + log_q(x, proposal_mean(y, grad_y)) - log_q(y, mean)
        # NaN or inf proposals compare False: rejected
        accept = torch.log(noise.rand_like(log_alpha)) < log_alpha
        if return_trace:
            trace["energy"].append(float(energy.mean()))
            trace["grad_norm"].append(float(grad.flatten(1).norm(dim=1).mean()))
            trace["acceptance"].append(float(accept.float().mean()))
            trace["chain_energy"].append(energy.clone())
        n_accepted += accept.sum()
        a = accept.view(-1, *([1] * (x.ndim - 1)))
        x = torch.where(a, y, x)
        grad = torch.where(a, grad_y, grad)
        energy = torch.where(accept, energy_y, energy)
        u = torch.where(accept, u_y, u)
        if return_chains:
            chains.append(x.clone())
    rate = float(n_accepted) / (n_steps * len(x)) if n_steps and len(x) else float("nan")
    return x, chains, trace, rate


def independence_mh(
    energy_fn, x, proposal, *, n_steps=1, temperature=1.0, tau=None, generator=None, return_acceptance=False
):
    r"""Independence Metropolis-Hastings moves with proposals from a base density.

    Each step proposes ``y ~ proposal`` for every chain, independently of
    its state, and accepts it with probability

    .. math::

        \min\left(1, \frac{\pi(y)\, q(x)}{\pi(x)\, q(y)}\right), \quad
        \pi = \exp\left(-\frac{E}{T} - \frac{\|x\|^2}{2 \tau^2}\right),

    so ``pi`` stays invariant. Where ``q`` is close to ``pi`` (a base density
    that the energy only tilts) these moves jump between modes that local
    Langevin steps never cross; mixed with Langevin steps they keep the
    chains' share of each mode right. Costs one energy evaluation (no
    gradient) per step.

    Parameters
    ----------
    energy_fn : callable
        Maps a batch to ``(n,)`` energies.
    x : torch.Tensor
        Current states, shape ``(n, ...)``. Not modified.
    proposal : object
        ``proposal.sample(n, shape, generator=...)`` returns ``n`` draws of
        ``x``'s feature shape and ``proposal.log_prob(x)`` their
        log-density, e.g. a :class:`GaussianMixtureSource`.
    n_steps : int, default=1
        Number of independence moves.
    temperature : float, default=1.0
        Temperature ``T`` dividing the energy.
    tau : float, default=None
        Scale of the optional Gaussian prior.
    generator : torch.Generator, default=None
        Generator (on ``x``'s device) of the proposals and acceptance
        draws; ``None`` uses torch's global generator.
    return_acceptance : bool, default=False
        Also return the mean acceptance rate.

    Returns
    -------
    x : torch.Tensor
        New states.
    acceptance : float
        Only if ``return_acceptance``.

    Examples
    --------
    >>> import torch
    >>> from skebm.mcmc import GaussianMixtureSource, independence_mh
    >>> base = GaussianMixtureSource([0.5, 0.5], [[-3.0], [3.0]], [[[1.0]], [[1.0]]])
    >>> energy = lambda x: 0.5 * ((x - 3.0) ** 2).sum(1)  # all mass near +3
    >>> x = independence_mh(energy, torch.full((2000, 1), -3.0), base, n_steps=5)
    >>> bool((x > 0).float().mean() > 0.9)
    True
    """

    def log_target(z):
        u = energy_fn(z).float() / temperature
        if tau is not None:
            u = u + z.flatten(1).pow(2).sum(1) / (2.0 * tau**2)
        return -u - proposal.log_prob(z).float()

    x = x.detach().to(torch.float32).clone()
    n = len(x)
    accepted = 0.0
    with torch.no_grad():
        current = log_target(x)
        for _ in range(n_steps):
            y = proposal.sample(n, x.shape[1:], generator=generator, device=x.device).to(x.dtype)
            proposed = log_target(y)
            accept = torch.log(torch.rand(n, generator=generator, device=x.device)) < proposed - current
            x = torch.where(accept.view(-1, *([1] * (x.ndim - 1))), y, x)
            current = torch.where(accept, proposed, current)
            accepted += float(accept.float().mean())
    if return_acceptance:
        return x, accepted / max(n_steps, 1)
    return x


class LangevinSampler(SamplerSettings):
    """Langevin settings bundled as a reusable, picklable sampler.

    Calling the sampler runs :func:`langevin` with the stored settings; any
    keyword given at call time overrides the stored one.

    Parameters
    ----------
    n_steps : int, default=20
        Number of Langevin steps per call.
    step_size : float, default=0.01
        Step size epsilon.
    noise_scale : float, default=None
        Noise standard deviation; ``None`` uses ``step_size``.
    temperature : float, default=1.0
        Temperature dividing the energy.
    tau : float, default=None
        Scale of the optional Gaussian prior.
    grad_clip : float, default=None
        Elementwise clip of the drift.
    clamp : tuple of float, default=None
        Clamp of the state after every step.
    precision : {"fp32", "bf16"}, default="fp32"
        Autocast precision of the energy evaluation.
    metropolis : bool, default=False
        Metropolis-adjusted steps (MALA), see :func:`langevin`.
    proposal : object, default=None
        A base density (``sample``/``log_prob``, e.g. a
        :class:`GaussianMixtureSource`): each call (without ``mask``)
        starts with one independence Metropolis-Hastings move from it
        (:func:`independence_mh`), which lets chains jump between modes.

    Attributes
    ----------
    acceptance_rate_ : float
        Mean acceptance rate of the last call with ``metropolis=True``
        (over all chains and steps).
    jump_acceptance_ : float
        Acceptance rate of the independence move of the last call (only
        with a ``proposal``).

    Examples
    --------
    >>> import torch
    >>> from skebm.mcmc import LangevinSampler
    >>> sampler = LangevinSampler(n_steps=500, step_size=0.1)
    >>> x = sampler(lambda x: 0.5 * (x ** 2).sum(1), torch.zeros(1000, 2))
    >>> bool(abs(x.var() - 1) < 0.2)
    True
    """

    def __init__(
        self,
        n_steps=20,
        step_size=0.01,
        noise_scale=None,
        temperature=1.0,
        tau=None,
        grad_clip=None,
        clamp=None,
        precision="fp32",
        metropolis=False,
        proposal=None,
    ):
        self.n_steps = n_steps
        self.step_size = step_size
        self.noise_scale = noise_scale
        self.temperature = temperature
        self.tau = tau
        self.grad_clip = grad_clip
        self.clamp = clamp
        self.precision = precision
        self.metropolis = metropolis
        self.proposal = proposal

    def __call__(self, energy_fn, x0, *, generator=None, noise=None, **overrides):
        """Run the chains from ``x0`` on ``energy_fn`` (see :func:`langevin`).

        Parameters
        ----------
        energy_fn : callable
            Maps a batch to ``(n,)`` energies.
        x0 : torch.Tensor
            Chain starts.
        generator : torch.Generator, default=None
            Generator of every random draw of the call (noise, MALA
            acceptance, independence moves); ``None`` uses the global one.
        noise : object, default=None
            An explicit Langevin noise stream (e.g. :class:`RowNoise`).
        **overrides
            Any stored setting, for this call only, and ``mask``,
            ``return_chains``, ``return_trace``.

        Returns
        -------
        x : torch.Tensor
            As :func:`langevin`.
        """
        kwargs = self.settings()
        kwargs.update({k: v for k, v in overrides.items() if v is not None or k == "mask"})
        n_steps = kwargs.pop("n_steps")
        step_size = kwargs.pop("step_size")
        proposal = kwargs.pop("proposal", None)
        if proposal is not None and n_steps > 0 and kwargs.get("mask") is None:
            x0, self.jump_acceptance_ = independence_mh(
                energy_fn, x0, proposal, temperature=kwargs["temperature"], tau=kwargs["tau"], generator=generator,
                return_acceptance=True,
            )
        out, rate = _run(energy_fn, x0, n_steps, step_size, noise=as_noise(noise, generator), **kwargs)
        if kwargs.get("metropolis"):
            self.acceptance_rate_ = rate
        return out



def expected_stationary_std(step_size, temperature=1.0):
    """Stationary standard deviation of the discretised chain on N(0, T).

    For the quadratic energy ``||x||^2 / 2`` at temperature ``T`` the
    unadjusted chain has the slightly inflated variance
    ``T / (1 - eps^2 / (4 T))``; handy in tests.

    Parameters
    ----------
    step_size : float
        Langevin step size ``eps`` (drift ``eps^2 / 2`` times the gradient
        divided by ``T``, noise ``eps``).
    temperature : float, default=1.0
        Temperature ``T``.

    Returns
    -------
    std : float
        Per-coordinate standard deviation of the stationary chain.

    Examples
    --------
    >>> from skebm.mcmc import expected_stationary_std
    >>> round(expected_stationary_std(0.1), 5)
    1.00125
    """
    return math.sqrt(temperature / (1.0 - step_size**2 / (4.0 * temperature)))
