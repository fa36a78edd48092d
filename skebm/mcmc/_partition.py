"""``log Z`` of a fitted energy by the method its dimension allows."""

import math

import numpy as np
import torch

from .._torch_utils import batched
from ._ais import ais_log_partition
from ._quadrature import CellGrid
from ._sources import GaussianMixtureSource

__all__ = ["estimate_log_partition", "grid_box", "importance_log_partition"]


def grid_box(points, base=None, tau=None, n_std=6.0, pad=0.1):
    """A box holding the mass of a density: the points, and the bulk of the base or the prior.

    Parameters
    ----------
    points : sequence of ndarray of shape (n, d)
        Data, chain states: where the mass is seen to be.
    base : GaussianMixtureSource, default=None
        With a bounded tilt the model is at most a constant times the base,
        so ``n_std`` standard deviations around every component bound where
        mass can be.
    tau : float, default=None
        Scale of a Gaussian prior, used when there is no base.
    n_std : float, default=6.0
    pad : float, default=0.1
        Relative padding of each side.

    Returns
    -------
    low, high : ndarray of shape (d,)
    """
    pts = [np.asarray(p, dtype=np.float64) for p in points if len(p)]
    pts = [p[np.all(np.isfinite(p), axis=1)] for p in pts]
    pts = [p for p in pts if len(p)]
    if pts:
        lo, hi = np.min([p.min(0) for p in pts], axis=0), np.max([p.max(0) for p in pts], axis=0)
    elif base is not None:
        lo = hi = base.means.detach().cpu().numpy().mean(0)
    else:
        raise ValueError("grid_box needs finite points or a base density to bound the box.")
    if base is not None:
        means, sd = base.means.detach().cpu().numpy(), base.component_std()
        lo, hi = np.minimum(lo, (means - n_std * sd).min(0)), np.maximum(hi, (means + n_std * sd).max(0))
    elif tau is not None:
        lo, hi = np.minimum(lo, -n_std * tau), np.maximum(hi, n_std * tau)
    width = pad * (hi - lo) + pad
    return lo - width, hi + width


class _FlatBase:
    """A flat base density seen in the network's feature shape."""

    def __init__(self, base, shape):
        self.base = base
        self.shape = tuple(shape)

    def sample(self, n, generator=None):
        return self.base.sample(n, self.shape, generator=generator)

    def log_prob(self, x):
        return self.base.log_prob(x.reshape(len(x), -1))


def _annealing_base(base, shape, points, generator=None):
    """The start of AIS in the feature shape ``shape``: ``base``, or a Gaussian fitted to ``points`` without one."""
    if base is None:  # a Gaussian fitted to the data starts the annealing
        flat = np.asarray(points, dtype=np.float64).reshape(len(points), -1)
        cov = np.atleast_2d(np.cov(flat, rowvar=False)) + 1e-3 * np.eye(flat.shape[1])
        base = GaussianMixtureSource([1.0], flat.mean(0, keepdims=True), cov[None])
        if generator is not None:
            base = base.to(generator.device)
    return _FlatBase(base, shape)


def importance_log_partition(energy_fn, base, shape, *, n_samples=2**18, batch_size=32768, generator=None):
    """``log Z`` of ``exp(-energy_fn)`` by importance sampling from a normalised base density.

    ``Z = E_q[exp(-E(y) - log q(y))]`` with ``y ~ q``: exact in
    expectation, and accurate when ``q`` is close to the model (a tilted
    base). Returns the estimate, its standard error
    ``sd(w) / (mean(w) sqrt(N))`` and the effective sample size as a share
    of ``N`` (small values flag an unreliable estimate).

    Parameters
    ----------
    energy_fn : callable
        Maps ``(n, *shape)`` to ``(n,)`` energies.
    base : GaussianMixtureSource
        The proposal ``q``.
    shape : tuple of int
        Feature shape.
    n_samples : int, default=262144
        Draws in all (2**18).
    batch_size : int, default=32768
        Draws per evaluation.
    generator : torch.Generator, default=None
        Generator of the draws.

    Returns
    -------
    log_z, std_err, ess : float
    """
    def log_weights(rows):
        y = base.sample(len(rows), shape, generator=generator)
        return -energy_fn(y).double() - base.log_prob(y).double()

    log_w = batched(log_weights, torch.arange(n_samples), batch_size)
    top = log_w.max()
    w = torch.exp(log_w - top)
    mean = w.mean()
    return float(top + torch.log(mean)), float(w.std() / (mean * math.sqrt(len(w)))), float(w.sum() ** 2 / (w**2).sum() / len(w))


def estimate_log_partition(
    energy_fn,
    shape,
    *,
    points,
    base=None,
    tau=None,
    method="auto",
    grid=None,
    n_ais_chains=512,
    n_ais_temperatures=500,
    n_importance_samples=2**18,
    step_size=0.1,
    generator=None,
):
    """``log Z`` of ``exp(-energy_fn)`` and its error, by the method the dimension allows.

    Parameters
    ----------
    energy_fn : callable
        Maps a float32 tensor ``(n, *shape)`` (on the energy's device) to
        ``(n,)`` energies.
    shape : tuple of int
        Feature shape of one sample.
    points : sequence of ndarray of shape (n, d)
        Where the mass is (data, chain states): they set the grid's fine
        region, and the first starts AIS where there is no base.
    base : GaussianMixtureSource, default=None
        A normalised base density: the proposal of importance sampling and
        the start of AIS.
    tau : float, default=None
        Scale of a Gaussian prior (AIS without a base).
    method : {"auto", "grid", "importance", "ais"}, default="auto"
        ``"grid"``: the midpoint rule on a :class:`CellGrid` and on the
        grid twice as fine (the estimate; the change between the two is its
        error estimate, which overestimates the error of the fine grid for
        grids of a dozen cells per axis or more); ``"importance"``: importance sampling from ``base``;
        ``"ais"``: annealed importance sampling. ``"auto"``: the grid for
        one or two dimensions, else importance sampling with a base and AIS
        without.
    grid : CellGrid, default=None
        The grid of ``"grid"`` (its refinement gives the estimate); ``None``
        builds one over the points.
    n_ais_chains, n_ais_temperatures : int, default=512, 500
        AIS settings (see :func:`ais_log_partition`).
    n_importance_samples : int, default=262144
        Draws of importance sampling (2**18).
    step_size : float, default=0.1
        Initial AIS step size.
    generator : torch.Generator, default=None
        Generator of the random draws.

    Returns
    -------
    log_z : float
    error : float
        Grid refinement change (grid) or standard error (importance, AIS).
    method : str
        ``"grid"``, ``"importance"`` or ``"ais"``.
    """
    n_dims = math.prod(shape)
    if method == "auto":
        method = "grid" if n_dims <= 2 else ("importance" if base is not None else "ais")
    if method == "grid":
        if n_dims > 2:
            raise ValueError(f"method='grid' (log_partition='grid') needs 1 or 2 features, the data has {n_dims}.")
        if grid is None:
            lo, hi = grid_box(points, pad=0.05)
            grid = CellGrid(lo, hi)
        device = grid.corner.device

        def flat(x):
            return energy_fn(x.to(device).reshape(len(x), *shape))

        with torch.no_grad():
            coarse = float(grid.log_z(flat))
            log_z = float(grid.refined(2).log_z(flat))
        return log_z, abs(log_z - coarse), "grid"
    if method == "importance":
        if base is None:
            raise ValueError("method='importance' needs a base density.")
        log_z, error, _ = importance_log_partition(
            energy_fn, base, shape, n_samples=n_importance_samples, generator=generator
        )
        return log_z, error, "importance"
    log_z, error = ais_log_partition(
        energy_fn,
        _annealing_base(base, shape, points[0], generator),
        n_chains=n_ais_chains,
        n_temperatures=n_ais_temperatures,
        step_size=step_size,
        generator=generator,
    )
    return log_z, error, "ais"
