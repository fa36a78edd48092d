"""Normalising constants of energies: exact grid quadrature and AIS.

``Z = integral of exp(-E(x)) dx``. In one or two dimensions a grid gives
``log Z`` to high accuracy (:func:`grid_log_partition`); in more dimensions
annealed importance sampling (:func:`ais_log_partition`) estimates it, with
a standard error, from a tractable base density such as a
:class:`~skebm.mcmc.GaussianMixtureSource`.
"""

import math

import numpy as np
import torch

from .._torch_utils import batched
from ._langevin import _check_settings, _run
from ._noise import as_noise

__all__ = ["ais_log_partition", "grid_log_partition", "sigmoid_schedule"]


def _batched(fn, x, batch_size):
    return batched(lambda part: fn(part).detach().double(), x, batch_size)


def grid_log_partition(energy_fn, low, high, *, resolution=None, batch_size=65536, return_error=False):
    r"""``log Z`` of ``exp(-energy_fn)`` over a box, by the trapezoidal rule.

    The box ``[low, high]`` (one or two dimensions) is covered by a regular
    grid of ``resolution`` nodes per axis; ``exp(-E)`` must be negligible
    on its boundary. For a smooth, rapidly decaying integrand the
    trapezoidal rule converges faster than any power of the spacing, so a
    grid a little finer than the narrowest feature of the density is
    enough.

    Parameters
    ----------
    energy_fn : callable
        Maps a float32 tensor ``(m, d)`` to ``(m,)`` energies.
    low, high : array-like of shape (d,)
        Corners of the box, ``d`` in {1, 2}.
    resolution : int, default=None
        Nodes per axis; ``None`` uses 4097 in 1-D and 513 in 2-D. Must be
        odd (so that every other node forms the coarse grid of the error
        estimate).
    batch_size : int, default=65536
        Grid points per call of ``energy_fn``.
    return_error : bool, default=False
        Also return an error estimate: ``|log Z - log Z_coarse|``, the
        change when the grid spacing is doubled (an overestimate of the
        quadrature error), plus the float32 rounding of nodes and energies.

    Returns
    -------
    log_z : float
    error : float
        Only when ``return_error``.

    Examples
    --------
    >>> import math, torch
    >>> from skebm.mcmc import grid_log_partition
    >>> log_z = grid_log_partition(lambda x: 0.5 * (x ** 2).sum(1), [-8, -8], [8, 8])
    >>> round(log_z, 6) == round(math.log(2 * math.pi), 6)
    True
    """
    low = np.atleast_1d(np.asarray(low, dtype=np.float64))
    high = np.atleast_1d(np.asarray(high, dtype=np.float64))
    d = len(low)
    if d not in (1, 2) or high.shape != low.shape:
        raise ValueError(f"grid quadrature needs 1 or 2 dimensions with matching low/high, got {low} and {high}.")
    if not np.all(high > low):
        raise ValueError(f"high must exceed low on every axis, got low={low}, high={high}.")
    if resolution is None:
        resolution = 4097 if d == 1 else 513
    if resolution < 5 or resolution % 2 == 0:
        raise ValueError(f"resolution must be an odd integer >= 5, got {resolution}.")
    axes = [np.linspace(lo, hi, resolution) for lo, hi in zip(low, high)]
    steps = np.array([ax[1] - ax[0] for ax in axes])
    mesh = np.meshgrid(*axes, indexing="ij")
    points = torch.as_tensor(np.stack([m.ravel() for m in mesh], 1), dtype=torch.float32)
    log_f = -_batched(energy_fn, points, batch_size).numpy().reshape([resolution] * d)
    if not np.all(np.isfinite(log_f) | (log_f == -np.inf)):
        raise ValueError("energy_fn returned NaN or -inf energies on the grid.")

    def trapezoid(values, step):
        weights_1d = [np.r_[0.5, np.ones(n - 2), 0.5] for n in values.shape]
        w = weights_1d[0] if d == 1 else np.outer(weights_1d[0], weights_1d[1])
        with np.errstate(divide="ignore"):
            log_w = np.log(w)
        total = values + log_w
        top = total.max()
        return float(top + np.log(np.exp(total - top).sum()) + np.log(step).sum())

    log_z = trapezoid(log_f, steps)
    if not return_error:
        return log_z
    coarse = log_f[(slice(None, None, 2),) * d]
    # the change on halving the grid, plus the float32 rounding of the nodes and energies
    rounding = 4 * np.finfo(np.float32).eps * max(1.0, abs(log_z))
    return log_z, abs(log_z - trapezoid(coarse, 2 * steps)) + rounding


def sigmoid_schedule(n_temperatures, sharpness=4.0):
    """Inverse temperatures from 0 to 1 on a sigmoid (Grosse et al., 2013).

    Parameters
    ----------
    n_temperatures : int
        Number of intermediate distributions (at least 2), ends included.
    sharpness : float, default=4.0
        Larger values put more temperatures near both ends.

    Returns
    -------
    betas : ndarray of shape (n_temperatures,)
        Increasing, ``betas[0] == 0`` and ``betas[-1] == 1``.
    """
    if n_temperatures < 2:
        raise ValueError(f"n_temperatures must be >= 2, got {n_temperatures}.")
    t = np.linspace(-sharpness, sharpness, n_temperatures)
    s = 1.0 / (1.0 + np.exp(-t))
    return (s - s[0]) / (s[-1] - s[0])


def ais_log_partition(
    energy_fn,
    base,
    *,
    n_chains=256,
    n_temperatures=200,
    n_steps=1,
    step_size=0.1,
    adapt_step_size=True,
    target_acceptance=0.6,
    metropolis=True,
    batch_size=None,
    generator=None,
    return_samples=False,
):
    r"""Estimate ``log Z`` of ``exp(-energy_fn)`` by annealed importance sampling.

    Chains start from the normalised base density ``q`` and move through
    the geometric path

    .. math::

        \pi_\beta(x) \propto q(x)^{1 - \beta} \exp(-\beta E(x)),
        \quad 0 = \beta_0 < \beta_1 < \dots < \beta_K = 1,

    accumulating the log importance weight
    :math:`\log w \mathrel{+}= (\beta_k - \beta_{k-1}) (-E(x) - \log q(x))`;
    at each temperature ``n_steps`` Langevin steps (MALA by default, so each
    transition leaves :math:`\pi_{\beta_k}` invariant) move the chains. The
    estimate is :math:`\log \frac{1}{N}\sum_i w_i`; its standard error is
    the delta-method value :math:`\mathrm{sd}(w) / (\bar w \sqrt{N})`. The
    estimate of :math:`\log Z` is biased low by about half its variance, and
    the error bar is only as good as the weights' spread: if the chains miss
    a mode of the target, both are too small.

    Parameters
    ----------
    energy_fn : callable
        Maps a tensor ``(n, *shape)`` to ``(n,)`` energies ``E``.
    base : GaussianMixtureSource or object
        The normalised starting density: ``base.sample(n, generator=...)``
        returns ``n`` draws and ``base.log_prob(x)`` their log-density; pick one
        close to the target (e.g. fitted to data) for small error bars.
    n_chains : int, default=256
        Number of independent AIS chains (importance weights).
    n_temperatures : int, default=200
        Number of distributions on the path, ends included (sigmoid
        schedule, :func:`sigmoid_schedule`).
    n_steps : int, default=1
        Langevin steps per temperature.
    step_size : float, default=0.1
        Initial Langevin step size.
    adapt_step_size : bool, default=True
        After each temperature, multiply the step size by
        ``exp(acceptance - target_acceptance)`` (population-level
        adaptation, MALA only).
    target_acceptance : float, default=0.6
        Target MALA acceptance rate of the adaptation.
    metropolis : bool, default=True
        MALA transitions; ``False`` uses unadjusted Langevin (biased).
    batch_size : int, default=None
        Chains per evaluation of ``energy_fn``; ``None`` runs all at once.
    generator : torch.Generator, default=None
        Generator of every random draw (base samples, Langevin noise, MALA
        acceptance), on the base's device; ``None`` uses the global one.
    return_samples : bool, default=False
        Also return the final states and their log weights.

    Returns
    -------
    log_z : float
        Estimate of ``log Z``.
    std_err : float
        Its standard error.
    samples : torch.Tensor
        Only if ``return_samples``: final chain states.
    log_weights : torch.Tensor
        Only if ``return_samples``: their log importance weights.

    Examples
    --------
    >>> import math, torch
    >>> from skebm.mcmc import GaussianMixtureSource, ais_log_partition
    >>> base = GaussianMixtureSource([1.0], [[0.0, 0.0]], [4.0 * torch.eye(2)])
    >>> log_z, se = ais_log_partition(lambda x: 0.5 * (x ** 2).sum(1), base, n_temperatures=50,
    ...                               generator=torch.Generator().manual_seed(0))
    >>> abs(log_z - math.log(2 * math.pi)) < 4 * se + 0.01
    True
    """
    if n_chains < 2:
        raise ValueError(f"n_chains must be >= 2, got {n_chains}.")
    betas = sigmoid_schedule(n_temperatures)
    _check_settings(n_steps, step_size, None, 1.0, metropolis)
    batch_size = n_chains if batch_size is None else batch_size

    def annealed(beta):
        def fn(x):
            return beta * energy_fn(x) - (1.0 - beta) * base.log_prob(x)

        return fn

    def log_ratio(x):  # -E(x) - log q(x)
        return -energy_fn(x).double() - base.log_prob(x).double()

    noise = as_noise(None, generator)
    x = base.sample(n_chains, generator=generator)
    log_w = torch.zeros(n_chains, dtype=torch.float64, device=x.device)
    eps = float(step_size)
    for k in range(1, len(betas)):
        log_w += (betas[k] - betas[k - 1]) * _batched(log_ratio, x, batch_size).to(log_w.device)
        fn = annealed(float(betas[k]))
        if not n_steps:
            continue
        def move(part, fn=fn, eps=eps):
            out, rate = _run(fn, part, n_steps, eps, metropolis=metropolis, noise=noise)
            return out, torch.tensor([rate * len(part)], dtype=torch.float64)

        x, accepted = batched(move, x, batch_size, grad=None)
        if metropolis and adapt_step_size:
            eps *= math.exp(float(accepted.sum()) / n_chains - target_acceptance)
    top = log_w.max()
    w = torch.exp(log_w - top)
    mean = w.mean()
    log_z = float(top + torch.log(mean))
    std_err = float(w.std() / (mean * math.sqrt(n_chains)))
    if return_samples:
        return log_z, std_err, x, log_w
    return log_z, std_err
