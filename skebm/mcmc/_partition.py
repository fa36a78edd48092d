"""``log Z`` of a fitted energy by the method its dimension allows."""

import math

import numpy as np

from ._ais import ais_log_partition, grid_log_partition
from ._sources import GaussianMixtureSource

__all__ = ["estimate_log_partition", "grid_box"]


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


def _grid_resolution(width, n_dims, base):
    """Nodes per axis: 2 per standard deviation of the narrowest base component (odd, 257-513 in 2-D).

    The trapezoidal rule on a Gaussian bump of standard deviation ``s``
    with spacing ``s / 2`` errs by about ``exp(-8 pi^2)``.
    """
    if n_dims == 1:
        return 4097
    res = 257
    if base is not None:
        narrow = float(base.component_std().min())
        res = int(np.clip(2 * np.max(width) / max(narrow, 1e-12), 257, 513))
    return res + 1 - res % 2


class _FlatBase:
    """A flat base density seen in the network's feature shape."""

    def __init__(self, base, shape):
        self.base = base
        self.shape = tuple(shape)

    def sample(self, n, generator=None):
        return self.base.sample(n, self.shape, generator=generator)

    def log_prob(self, x):
        return self.base.log_prob(x.reshape(len(x), -1))


def estimate_log_partition(
    energy_fn,
    shape,
    *,
    points,
    base=None,
    tau=None,
    method="auto",
    grid_resolution=None,
    n_ais_chains=512,
    n_ais_temperatures=500,
    step_size=0.1,
    generator=None,
):
    """``log Z`` of ``exp(-energy_fn)`` and its error: grid quadrature in 1-2-D, AIS otherwise.

    Parameters
    ----------
    energy_fn : callable
        Maps a float32 tensor ``(n, *shape)`` (on the energy's device) to
        ``(n,)`` energies.
    shape : tuple of int
        Feature shape of one sample.
    points : sequence of ndarray of shape (n, d)
        Where the mass is (data, chain states): they set the grid's box.
    base : GaussianMixtureSource, default=None
        The base density: it bounds the box and starts the annealing. None:
        a Gaussian fitted to the first of ``points`` starts it.
    tau : float, default=None
        Scale of a Gaussian prior bounding the box when there is no base.
    method : {"auto", "grid", "ais"}, default="auto"
        ``"auto"``: the grid for one or two dimensions, AIS otherwise.
    grid_resolution : int, default=None
        Nodes per axis (odd); ``None``: 4097 in 1-D, 2 per standard
        deviation of the narrowest base component in 2-D (257-513).
    n_ais_chains, n_ais_temperatures : int, default=512, 500
        AIS settings (see :func:`ais_log_partition`).
    step_size : float, default=0.1
        Initial AIS step size.
    generator : torch.Generator, default=None
        Generator of AIS's draws.

    Returns
    -------
    log_z : float
    error : float
        Quadrature error estimate (grid) or standard error (AIS).
    method : str
        ``"grid"`` or ``"ais"``.
    """
    n_dims = math.prod(shape)
    if method == "auto":
        method = "grid" if n_dims <= 2 else "ais"
    if method == "grid":
        if n_dims > 2:
            raise ValueError(f"method='grid' (log_partition='grid') needs 1 or 2 features, the data has {n_dims}.")
        lo, hi = grid_box(points, base, tau)
        device = base.means.device if base is not None else "cpu"
        log_z, error = grid_log_partition(
            lambda x: energy_fn(x.to(device).reshape(len(x), *shape)).cpu(),
            lo,
            hi,
            resolution=grid_resolution or _grid_resolution(hi - lo, n_dims, base),
            return_error=True,
        )
        return log_z, error, "grid"
    if base is None:  # a Gaussian fitted to the data starts the annealing
        flat = np.asarray(points[0], dtype=np.float64).reshape(len(points[0]), -1)
        cov = np.atleast_2d(np.cov(flat, rowvar=False)) + 1e-3 * np.eye(n_dims)
        base = GaussianMixtureSource([1.0], flat.mean(0, keepdims=True), cov[None])
        if generator is not None:
            base = base.to(generator.device)
    log_z, error = ais_log_partition(
        energy_fn,
        _FlatBase(base, shape),
        n_chains=n_ais_chains,
        n_temperatures=n_ais_temperatures,
        step_size=step_size,
        generator=generator,
    )
    return log_z, error, "ais"



