"""Sources of fresh chain starts, and tractable base densities.

A *source* is the distribution a chain starts from when it is (re)started:
``source.sample(n, shape, generator=...)`` returns ``n`` draws of feature
shape ``shape``. Sources are :class:`torch.nn.Module` objects whose
parameters are buffers, so they move with ``.to(device)``, travel in
``state_dict`` and pickle with the network that uses them.

:class:`GaussianMixtureSource` is also a normalised density (``log_prob``):
annealed importance sampling starts from it and :class:`~skebm.EBMDensity`
tilts it.
"""

import math

import numpy as np
import torch
from torch import nn

__all__ = ["NoiseSource", "GaussianMixtureSource"]


def _device_of(module, device):
    if device is not None:
        return torch.device(device)
    for buf in module.buffers():
        return buf.device
    return torch.device("cpu")


class NoiseSource(nn.Module):
    """Uniform or Gaussian noise as a source of chain starts.

    Parameters
    ----------
    kind : {"uniform", "gaussian"}, default="uniform"
        ``"uniform"`` draws from U[low, high], ``"gaussian"`` from
        N(loc, scale^2).
    low, high : float, default=-1, 1
        Bounds of the uniform noise.
    loc, scale : float, default=0, 1
        Mean and standard deviation of the Gaussian noise.

    Examples
    --------
    >>> import torch
    >>> from skebm.mcmc import NoiseSource
    >>> NoiseSource("uniform").sample(4, (2,), generator=torch.Generator().manual_seed(0)).shape
    torch.Size([4, 2])
    """

    def __init__(self, kind="uniform", low=-1.0, high=1.0, loc=0.0, scale=1.0):
        super().__init__()
        if kind not in ("uniform", "gaussian"):
            raise ValueError(f"kind must be 'uniform' or 'gaussian', got {kind!r}.")
        self.kind = kind
        self.low, self.high, self.loc, self.scale = float(low), float(high), float(loc), float(scale)
        # where the draws are made: follows .to(device) through this empty buffer
        self.register_buffer("_anchor", torch.zeros(0), persistent=False)

    def sample(self, n, shape, *, generator=None, device=None):
        """Draw ``n`` starts of feature shape ``shape``.

        Parameters
        ----------
        n : int
            Number of draws.
        shape : tuple of int
            Feature shape of one draw.
        generator : torch.Generator, default=None
            Random generator (on ``device``); ``None`` uses torch's global one.
        device : str or torch.device, default=None
            Device of the draws; ``None`` uses the module's device.

        Returns
        -------
        x : torch.Tensor of shape ``(n, *shape)``
        """
        size = (int(n), *shape)
        device = _device_of(self, device)
        if self.kind == "uniform":
            return torch.rand(size, generator=generator, device=device) * (self.high - self.low) + self.low
        return torch.randn(size, generator=generator, device=device) * self.scale + self.loc

    def extra_repr(self):
        if self.kind == "uniform":
            return f"'uniform', low={self.low}, high={self.high}"
        return f"'gaussian', loc={self.loc}, scale={self.scale}"


def _draw_shape(n_features, shape, what):
    """The feature shape of a draw: ``shape``, or ``(n_features,)``; ValueError unless it holds ``n_features``."""
    shape = (n_features,) if shape is None else tuple(shape)
    if math.prod(shape) != n_features:
        raise ValueError(f"shape {shape} does not hold the {n_features} features of the {what}.")
    return shape


def _float64(a):
    """A float64 CPU tensor copy of an array-like or a tensor."""
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().double()
    return torch.tensor(np.asarray(a, dtype=np.float64))


class GaussianMixtureSource(nn.Module):
    """Gaussian mixture with exact sampling and log-density.

    A source of fresh chain starts that is also a tractable, normalised
    base density: annealed importance sampling
    (:func:`~skebm.mcmc.ais_log_partition`) starts from it and
    :class:`~skebm.EBMDensity` tilts it. Flat features only: a sample has
    ``n_features`` entries (reshaped to the requested feature shape). The
    parameters are buffers; loading a ``state_dict`` of a mixture with a
    different number of components resizes them.

    Parameters
    ----------
    weights : array-like of shape (n_components,)
        Mixture weights (normalised internally).
    means : array-like of shape (n_components, n_features)
        Component means.
    covariances : array-like of shape (n_components, n_features, n_features)
        Full covariance matrices (symmetric positive definite).

    Attributes
    ----------
    n_components : int
    n_features : int

    Examples
    --------
    >>> import torch
    >>> from skebm.mcmc import GaussianMixtureSource
    >>> base = GaussianMixtureSource([1.0], [[0.0, 0.0]], [[[1.0, 0.0], [0.0, 1.0]]])
    >>> base.sample(5).shape
    torch.Size([5, 2])
    >>> round(float(base.log_prob(torch.zeros(1, 2))[0]), 4)  # -log(2 pi)
    -1.8379
    """

    _BUFFERS = ("log_weights", "means", "chol", "inv_chol", "log_det")

    def __init__(self, weights, means, covariances):
        super().__init__()
        means, covariances, weights = _float64(means), _float64(covariances), _float64(weights).reshape(-1)
        if means.ndim != 2 or covariances.shape != (*means.shape, means.shape[1]) or len(weights) != len(means):
            raise ValueError(
                "weights, means and covariances must have shapes (k,), (k, d) and (k, d, d); got "
                f"{tuple(weights.shape)}, {tuple(means.shape)} and {tuple(covariances.shape)}."
            )
        if not (weights >= 0).all() or not weights.sum() > 0:
            raise ValueError("weights must be non-negative with a positive sum.")
        chol = torch.linalg.cholesky(covariances)  # raises for a non positive definite covariance
        self.register_buffer("log_weights", torch.log(weights / weights.sum()).float())
        self.register_buffer("means", means.float())
        self.register_buffer("chol", chol.float())
        # precision factor: y = L^-1 (x - mu) whitens a component
        self.register_buffer("inv_chol", torch.linalg.inv(chol).float())
        self.register_buffer("log_det", torch.log(torch.diagonal(chol, dim1=1, dim2=2)).sum(1).float())

    @property
    def n_components(self):
        return self.means.shape[0]

    @property
    def n_features(self):
        return self.means.shape[1]

    @classmethod
    def from_estimator(cls, gmm):
        """Build from a fitted :class:`sklearn.mixture.GaussianMixture` (any covariance type).

        Parameters
        ----------
        gmm : sklearn.mixture.GaussianMixture
            A fitted mixture.

        Returns
        -------
        source : GaussianMixtureSource
        """
        k, d = gmm.means_.shape
        cov = np.asarray(gmm.covariances_, dtype=np.float64)
        if gmm.covariance_type == "full":
            full = cov
        elif gmm.covariance_type == "tied":
            full = np.broadcast_to(cov, (k, d, d))
        elif gmm.covariance_type == "diag":
            full = np.stack([np.diag(c) for c in cov])
        else:  # spherical
            full = np.stack([np.eye(d) * c for c in cov])
        return cls(gmm.weights_, gmm.means_, full)

    def component_std(self):
        """Per-component, per-feature standard deviations, as a float64 ndarray ``(k, d)``."""
        chol = self.chol.detach().double().cpu()
        return torch.sqrt(torch.diagonal(chol @ chol.transpose(1, 2), dim1=1, dim2=2)).numpy()

    def sample(self, n, shape=None, *, generator=None, device=None):
        """``n`` exact draws, shape ``(n, *shape)`` (default ``(n, n_features)``).

        Parameters
        ----------
        n : int
            Number of draws.
        shape : tuple of int, default=None
            Feature shape of one draw, with ``n_features`` entries.
        generator : torch.Generator, default=None
            Random generator on the source's device.
        device : str or torch.device, default=None
            Device of the draws; ``None`` uses the source's device.

        Returns
        -------
        x : torch.Tensor
        """
        device = _device_of(self, device)
        shape = _draw_shape(self.n_features, shape, "mixture")
        n = int(n)
        comp = torch.multinomial(self.log_weights.exp().to(device), n, replacement=True, generator=generator)
        eps = torch.randn(n, self.n_features, device=device, generator=generator)
        x = self.means.to(device)[comp] + torch.einsum("nde,ne->nd", self.chol.to(device)[comp], eps)
        return x.reshape(n, *shape)

    def log_prob(self, x):
        """Normalised log-density of a batch (flattened to ``n_features``), differentiable.

        Parameters
        ----------
        x : torch.Tensor of shape (n, ...)

        Returns
        -------
        log_density : torch.Tensor of shape (n,)
        """
        x = x.reshape(len(x), -1)
        k, d = self.n_components, self.n_features
        # whitened coordinates of every component in one matmul: y_k = L_k^-1 (x - mu_k)
        inv_chol = self.inv_chol.to(x.device)
        weight = inv_chol.permute(2, 0, 1).reshape(d, k * d)
        shift = torch.einsum("kde,ke->kd", inv_chol, self.means.to(x.device)).reshape(k * d)
        y = (x @ weight - shift).view(len(x), k, d)
        log_comp = -0.5 * y.pow(2).sum(-1) - self.log_det.to(x.device) - 0.5 * d * math.log(2 * math.pi)
        return torch.logsumexp(self.log_weights.to(x.device) + log_comp, dim=1)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a saved mixture may have another number of components: take its shapes
        for name in self._BUFFERS:
            incoming = state_dict.get(prefix + name)
            if incoming is not None and incoming.shape != getattr(self, name).shape:
                setattr(self, name, torch.empty_like(incoming, device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self):
        return f"n_components={self.n_components}, n_features={self.n_features}"


def check_source(source):
    """Raise a TypeError unless ``source`` has a ``sample(n, shape, generator=...)`` method."""
    if not callable(getattr(source, "sample", None)):
        raise TypeError(f"a chain-start source needs a sample(n, shape, generator=...) method, got {source!r}.")
    return source

