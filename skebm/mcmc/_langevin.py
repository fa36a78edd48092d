"""The Langevin sampler shared by every skebm estimator.

The sampler knows nothing of skorch or scikit-learn: it takes an energy
function (a callable mapping a batch tensor to one energy per sample) and a
tensor of chain starts, so research code can call it directly.
"""

import contextlib
import math

import torch

__all__ = ["LangevinSampler", "langevin", "autocast_context"]


def autocast_context(device, precision):
    """Return the autocast context for ``precision`` on ``device``.

    Parameters
    ----------
    device : str or torch.device
        Device the computation runs on.
    precision : {"fp32", "bf16"}
        ``"bf16"`` runs the wrapped code under bfloat16 autocast; ``"fp32"``
        returns a null context.

    Returns
    -------
    context : context manager
    """
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision != "bf16":
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}.")
    device_type = torch.device(device).type
    return torch.autocast(device_type=device_type, dtype=torch.bfloat16)


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
    return_chains=False,
    return_trace=False,
):
    r"""Run unadjusted Langevin dynamics on ``energy_fn`` from ``x0``.

    One step is

    .. math::

        x \leftarrow x - \frac{\epsilon^2}{2} \nabla_x \left[\frac{E(x)}{T}
        + \frac{\|x\|^2}{2\tau^2}\right] + \sigma \xi, \quad \xi \sim N(0, I)

    with step size :math:`\epsilon`, noise scale :math:`\sigma` (equal to
    :math:`\epsilon` for exact Langevin dynamics), temperature :math:`T` and
    an optional Gaussian prior of scale :math:`\tau`. Gradients are taken with
    respect to ``x`` only; the parameters of the energy receive none.

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
    return_chains : bool, default=False
        Also return every state, shape ``(n_steps + 1, n_chains, ...)``.
    return_trace : bool, default=False
        Also return a dict with the per-step mean energy and mean gradient
        norm (steady-state diagnostics).

    Returns
    -------
    x : torch.Tensor
        Final states, detached, float32.
    chains : torch.Tensor
        Only if ``return_chains``.
    trace : dict
        Only if ``return_trace``: ``{"energy": [...], "grad_norm": [...]}``.
    """
    if n_steps < 0:
        raise ValueError(f"n_steps must be >= 0, got {n_steps}.")
    if step_size <= 0:
        raise ValueError(f"step_size must be > 0, got {step_size}.")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}.")
    sigma = step_size if noise_scale is None else noise_scale
    drift_coef = step_size**2 / 2.0
    energy_coef = drift_coef / temperature
    prior_coef = None if tau is None else drift_coef / tau**2
    ctx = autocast_context(x0.device, precision)
    x = x0.detach().to(torch.float32).clone()
    chains = [x.clone()] if return_chains else None
    trace = {"energy": [], "grad_norm": []} if return_trace else None
    if mask is not None:
        mask = mask.to(device=x.device, dtype=x.dtype)
    with torch.enable_grad():
        for _ in range(n_steps):
            x.requires_grad_(True)
            with ctx:
                energy = energy_fn(x)
            (grad,) = torch.autograd.grad(energy.sum(), x)
            x = x.detach()
            drift = grad * energy_coef
            if prior_coef is not None:
                drift.add_(x, alpha=prior_coef)
            if grad_clip is not None:
                drift.clamp_(-grad_clip, grad_clip)
            step = torch.randn_like(x).mul_(sigma).sub_(drift)
            if mask is not None:
                step.mul_(mask)
            x.add_(step)
            if clamp is not None:
                x.clamp_(clamp[0], clamp[1])
            if return_chains:
                chains.append(x.clone())
            if return_trace:
                trace["energy"].append(float(energy.detach().float().mean()))
                trace["grad_norm"].append(float(grad.flatten(1).norm(dim=1).mean()))
    out = [x]
    if return_chains:
        out.append(torch.stack(chains))
    if return_trace:
        out.append(trace)
    return out[0] if len(out) == 1 else tuple(out)


class LangevinSampler:
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
    ):
        self.n_steps = n_steps
        self.step_size = step_size
        self.noise_scale = noise_scale
        self.temperature = temperature
        self.tau = tau
        self.grad_clip = grad_clip
        self.clamp = clamp
        self.precision = precision

    def settings(self):
        """Return the stored settings as a dict."""
        return dict(vars(self))

    def __call__(self, energy_fn, x0, **overrides):
        kwargs = self.settings()
        kwargs.update({k: v for k, v in overrides.items() if v is not None or k == "mask"})
        n_steps = kwargs.pop("n_steps")
        step_size = kwargs.pop("step_size")
        return langevin(energy_fn, x0, n_steps, step_size, **kwargs)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings().items())
        return f"LangevinSampler({args})"


def expected_stationary_std(step_size, temperature=1.0):
    """Stationary standard deviation of the discretised chain on N(0, T).

    For the quadratic energy ``||x||^2 / 2`` at temperature ``T`` the
    unadjusted chain has the slightly inflated variance
    ``T / (1 - eps^2 / (4 T))``; handy in tests.
    """
    return math.sqrt(temperature / (1.0 - step_size**2 / (4.0 * temperature)))
