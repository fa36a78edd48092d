"""A normalising flow as a tractable base density: exact, seeded sampling and log-density.

:class:`FlowSource` follows the protocol of
:class:`~skebm.mcmc.GaussianMixtureSource` (``sample(n, shape,
generator=...)``, ``log_prob(x)``), so :class:`~skebm.EBMDensity` tilts it,
importance sampling draws from it and the independence moves of the MALA
chains propose from it. The flow itself is zuko's (a rational-quadratic
spline flow, `Durkan et al. 2019 <https://arxiv.org/abs/1906.04032>`_):
only its coupling form (two passes per transform) is used, whose inverse
costs two network evaluations, so drawing the hundreds of thousands of
samples of a ``log Z`` estimate stays cheap; a fully autoregressive flow
needs one evaluation per feature to sample.
"""

import copy
import math
from functools import partial

import numpy as np
import torch
from torch import nn

from .._random import seed_from
from ..nn._reset import reset_parameters
from ._sources import _device_of, _draw_shape

__all__ = ["FlowSource", "fit_flow_source"]


def _zuko():
    try:
        import zuko
    except ImportError as exc:  # a core dependency: only a broken install lacks it
        raise ImportError("FlowSource needs zuko (pip install zuko), a dependency of skebm.") from exc
    return zuko


class FlowSource(nn.Module):
    """A coupling spline flow with exact sampling and log-density, seeded by an explicit generator.

    ``transforms`` coupling transforms; transform ``2k`` splits the features
    into two random halves (drawn from ``generator``) and transforms the
    second half by monotonic rational-quadratic splines whose knots an MLP
    computes from the first, transform ``2k + 1`` swaps the halves. Draws
    are ``T^{-1}(z)`` with ``z`` standard normal from ``generator``
    (zuko's own sampling uses torch's global generator). The weights are
    parameters (trained by :func:`fit_flow_source`, then frozen) and the
    masks buffers: all travel in ``state_dict``.

    Parameters
    ----------
    n_features : int
        Features of a sample.
    transforms : int, default=4
        Coupling transforms.
    hidden_features : tuple of int, default=(128, 128)
        Hidden layers of each transform's MLP.
    bins : int, default=8
        Spline bins per feature.
    generator : torch.Generator, default=None
        CPU generator of the splits and the initial weights.

    Examples
    --------
    >>> import torch
    >>> from skebm.mcmc import FlowSource
    >>> flow = FlowSource(3, transforms=2, hidden_features=(16,), generator=torch.Generator().manual_seed(0))
    >>> x = flow.sample(5, generator=torch.Generator().manual_seed(1))
    >>> x.shape, flow.log_prob(x).shape
    (torch.Size([5, 3]), torch.Size([5]))
    """

    # drawing costs many network evaluations: importance-sampled training draws from a pool (ImportanceNet)
    _costly_sampling = True

    def __init__(self, n_features, *, transforms=4, hidden_features=(128, 128), bins=8, generator=None):
        super().__init__()
        zuko = _zuko()
        from zuko.flows.autoregressive import MaskedAutoregressiveTransform
        from zuko.transforms import MonotonicRQSTransform

        d = int(n_features)
        generator = torch.Generator().manual_seed(0) if generator is None else generator
        layers, order = [], None
        for k in range(int(transforms)):
            # a fresh random split every other transform, the halves swapped in between
            order = torch.randperm(d, generator=generator) if k % 2 == 0 else d - 1 - order
            layers.append(MaskedAutoregressiveTransform(
                features=d, passes=2 if d > 1 else 1, order=order, hidden_features=tuple(hidden_features),
                univariate=partial(MonotonicRQSTransform, slope=1e-3), shapes=[(bins,), (bins,), (bins - 1,)],
            ))
        base = zuko.flows.UnconditionalDistribution(
            zuko.distributions.DiagNormal, loc=torch.zeros(d), scale=torch.ones(d), buffer=True
        )
        self.flow = zuko.flows.Flow(layers, base)
        reset_parameters(self.flow, generator)
        self._n_features = d

    @property
    def n_features(self):
        """Features of a sample."""
        return self._n_features

    def sample(self, n, shape=None, *, generator=None, device=None):
        """``n`` exact draws ``T^{-1}(z)``, ``z ~ N(0, I)`` from ``generator``, shape ``(n, *shape)``.

        The arguments are those of :meth:`GaussianMixtureSource.sample
        <skebm.mcmc.GaussianMixtureSource.sample>`.
        """
        device = _device_of(self, device)
        shape = _draw_shape(self.n_features, shape, "flow")
        z = torch.randn(int(n), self.n_features, device=device, generator=generator)
        with torch.no_grad():
            x = self.flow().transform.inv(z)
        return x.reshape(int(n), *shape)

    def log_prob(self, x):
        """Normalised log-density ``(n,)`` of a batch ``x`` (flattened to ``n_features``), differentiable in ``x``."""
        return self.flow().log_prob(x.reshape(len(x), -1))

    def extra_repr(self):
        return f"n_features={self.n_features}, transforms={len(self.flow.transform.transforms)}"


def fit_flow_source(Z, Z_valid=None, *, random_state=None, validation_fraction=0.15, transforms=4,
                    hidden_features=(128, 128), lr=1e-3, batch_size=256, n_iter_no_change=20, max_epochs=500):
    """Fit a :class:`FlowSource` to ``Z`` by maximum likelihood, early-stopped on held-out data.

    Adam with gradient clipping on mini-batches; after every epoch the mean
    held-out log-likelihood on ``Z_valid`` (or on ``validation_fraction`` of
    ``Z``, held out here) is measured, and the best state is kept once it
    has not improved for ``n_iter_no_change`` epochs. The returned flow is
    frozen (no gradients to its weights) and in eval mode.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_features)
        Training data (standardised units).
    Z_valid : ndarray of shape (n_valid, n_features), default=None
        Held-out data of the early stopping.
    random_state : int, RandomState instance or None, default=None
        Seed of the initial weights, the splits and the batches.
    validation_fraction : float, default=0.15
        Share of ``Z`` held out where ``Z_valid`` is None.
    transforms, hidden_features : int and tuple of int
        As in :class:`FlowSource`.
    lr : float, default=1e-3
        Adam's learning rate.
    batch_size : int, default=256
        Samples per update.
    n_iter_no_change : int, default=20
        Epochs without a held-out improvement before stopping.
    max_epochs : int, default=500
        Epochs at most.

    Returns
    -------
    flow : FlowSource
    """
    seed = seed_from(random_state, "flow")
    g = torch.Generator().manual_seed(seed)
    Z = np.asarray(Z, dtype=np.float32)
    if Z_valid is None:
        perm = torch.randperm(len(Z), generator=g).numpy()
        n_valid = max(1, int(round(validation_fraction * len(Z))))
        Z, Z_valid = Z[perm[n_valid:]], Z[perm[:n_valid]]
    train = torch.as_tensor(Z, dtype=torch.float32)
    valid = torch.as_tensor(np.asarray(Z_valid, dtype=np.float32))
    flow = FlowSource(Z.shape[1], transforms=transforms, hidden_features=hidden_features, generator=g)
    opt = torch.optim.Adam(flow.parameters(), lr=lr)
    best, best_state, stale = -math.inf, copy.deepcopy(flow.state_dict()), 0
    batch = min(int(batch_size), len(train))
    for _ in range(int(max_epochs)):
        flow.train()
        order = torch.randperm(len(train), generator=g)
        for i in range(0, len(train) - batch + 1, batch):  # whole batches: no tiny noisy last one
            loss = -flow.log_prob(train[order[i : i + batch]]).mean()
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(flow.parameters(), 5.0)
            opt.step()
        flow.eval()
        with torch.no_grad():
            score = float(flow.log_prob(valid).mean())
        if score > best:
            best, best_state, stale = score, copy.deepcopy(flow.state_dict()), 0
        else:
            stale += 1
            if stale >= n_iter_no_change:
                break
    flow.load_state_dict(best_state)
    flow.eval()
    return flow.requires_grad_(False)
