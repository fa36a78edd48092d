"""The engines of EBMDensity: exact maximum likelihood without MCMC.

Two ways to train an energy by maximum likelihood when ``log Z`` can be
estimated well at every step:

- :class:`QuadratureNet` (one or two dimensions): ``log Z`` by the midpoint
  rule on a jittered :class:`~skebm.mcmc.CellGrid`, differentiable, so the
  loss ``mean E(x) + log Z`` is the exact negative log-likelihood. Several
  members can be trained at once, each holding out its own fold of the
  data (cross-validation bagging); the model is their mean energy.
- :class:`ImportanceNet` (more dimensions): ``log Z`` of a tilted base
  ``q exp(-f)`` by importance sampling from ``q`` with fresh draws at every
  step; the gradient is the self-normalised importance-sampling estimate
  of the exact one.

:class:`ScoreMatchingNet` trains the same tilted energy without ``log Z``,
by denoising score matching at one noise level (:class:`~skebm.engine.DSMNet`);
its ``valid_loss`` is the held-out score-matching loss.

All three record a held-out ``valid_loss`` (negative log-likelihood) after every
epoch for :class:`~skebm.engine.HeldOutEarlyStopping`, which keeps the best
state in ``best_module_``.
"""

import copy
import math

import torch
from skorch.dataset import unpack_data
from skorch.utils import to_tensor
from torch.utils.data import Sampler

from ..mcmc import autocast_context
from ._dsm import DSMNet
from ._ml import EBMNet
from .._random import seed_from

__all__ = ["QuadratureNet", "ImportanceNet", "ScoreMatchingNet"]


def _logmeanexp(a, dim=-1):
    return torch.logsumexp(a, dim=dim) - math.log(a.shape[dim])


class _DensityNet(EBMNet):
    """What the two engines share: no chains (no sampler, no chain bank), a best state, a held-out loss."""

    def __init__(self, module, **kwargs):
        for name in ("sampler", "chain_init", "source"):
            if kwargs.get(name) is not None:
                raise ValueError(f"{type(self).__name__} trains without chains: {name} must be None.")
        super().__init__(module, **kwargs)

    @property
    def runs_chains(self):
        """Training draws no MCMC negatives."""
        return False

    def initialize_module(self):
        super().initialize_module()
        self.best_module_ = copy.deepcopy(self.bare_module())
        return self

    def divergence_hint(self):
        """Advice appended to a :class:`TrainingDivergedError`."""
        return "Lower lr or raise l2_reg."

    def _amp(self):
        return autocast_context(self.device, self.precision)


class QuadratureNet(_DensityNet):
    """Exact maximum likelihood of an energy in one or two dimensions, by quadrature.

    Each update takes the whole training set (full batch) and, for every
    member ``k`` of a :class:`~skebm.nn.MemberMean` tilt, the loss
    ``mean_{x not in fold k} E_k(x + noise) + log Z_k``, with ``log Z_k`` by
    the midpoint rule on the grid with every node jittered inside its cell
    (an unbiased estimate of ``Z``, so the network cannot hide mass between
    nodes). The targets ``y`` of the data are the fold indices: member
    ``k`` trains on the rows whose fold is not ``k`` and is validated on
    those whose fold is ``k`` (``-1``: training rows of every member). The
    ``valid_loss`` is the mean over members of the held-out negative
    log-likelihood on the grid's midpoints.

    Parameters
    ----------
    module : TiltedEnergy
        A tilted energy whose network is a :class:`~skebm.nn.MemberMean`.
    grid : CellGrid
        The quadrature grid (copied into ``grid_``).
    **kwargs
        The arguments of :class:`EBMNet`.

    Attributes
    ----------
    grid_ : CellGrid
        The grid, on the engine's device.
    best_module_ : torch.nn.Module
        The network at the best held-out loss.
    """

    def __init__(self, module, *, grid, **kwargs):
        self.grid = grid
        super().__init__(module, **kwargs)

    def initialize_module(self):
        super().initialize_module()
        self.grid_ = copy.deepcopy(self.grid)
        return self

    def get_iterator(self, dataset, training=False):
        """Training: the whole data set as one batch, ``updates_this_epoch`` times; validation: one batch."""
        if not training:
            return self.iterator_valid(dataset, batch_size=len(dataset), shuffle=False)
        sampler = _FullBatches(len(dataset), self)
        return self.iterator_train(dataset, batch_size=len(dataset), sampler=sampler)

    def _split(self, x, folds):
        """Member energies of the data and of the grid, from one forward pass (one DDP call)."""
        nodes = self.grid_.nodes(jitter=self.module_.training, generator=self.generator)
        with self._amp():
            energies = self.module_(torch.cat([x, nodes.to(x.dtype)]), members=True).float() / self.temperature
        e_data, e_grid = energies[:, : len(x)], energies[:, len(x) :]
        log_z = torch.logsumexp(-e_grid + self.grid_.log_area, dim=1)
        k = torch.arange(len(energies), device=x.device)[:, None]
        return e_data, log_z, folds[None, :] != k

    def train_step_single(self, batch, **fit_params):
        """Full-batch exact negative log-likelihood of every member, back-propagated."""
        self._set_training(True)
        x, folds = unpack_data(batch)
        x = self._noisy(to_tensor(x, device=self.device).float())
        folds = to_tensor(folds, device=self.device).long()
        e_data, log_z, train = self._split(x, folds)
        nll = (e_data * train).sum(1) / train.sum(1).clamp_min(1) + log_z
        loss = nll.sum()
        loss.backward()
        self.history.record_batch("energy_data", float(e_data.detach().mean()))
        return {"loss": nll.mean().detach(), "y_pred": e_data.detach()}

    def validation_step(self, batch, **fit_params):
        """Held-out negative log-likelihood (midpoint grid), averaged over members."""
        self._set_training(False)
        x, folds = unpack_data(batch)
        x = to_tensor(x, device=self.device).float()
        folds = to_tensor(folds, device=self.device).long()
        with torch.no_grad():
            e_data, log_z, train = self._split(x, folds)
            held = ~train
            nll = (e_data * held).sum(1) / held.sum(1).clamp_min(1) + log_z
        return {"loss": nll.mean(), "y_pred": e_data}


class _FullBatches(Sampler):
    """All row indices, once per update, as many updates as the epoch has."""

    def __init__(self, n, net):
        self.n, self.net, self._updates = n, net, None

    def __len__(self):
        updates = self._updates if self._updates is not None else self.net.updates_this_epoch(self.n)
        return updates * self.n

    def __iter__(self):
        self._updates = self.net.updates_this_epoch(self.n)
        try:
            for _ in range(self._updates):
                yield from range(self.n)
        finally:
            self._updates = None


class ImportanceNet(_DensityNet):
    """Maximum likelihood of a tilted base density by importance sampling from the base.

    The model is ``p = q exp(-f) / Z`` (``module`` a
    :class:`~skebm.nn.TiltedEnergy` with a base ``q``). Each update draws
    ``n_importance_samples`` fresh ``y ~ q`` and minimises
    ``mean f(x) + log mean exp(-f(y))`` plus the module's penalty: the
    first two terms are the negative log-likelihood with ``log Z = log E_q
    exp(-f)`` estimated from the draws, so the gradient is the
    self-normalised importance-sampling estimate of the exact gradient. The
    ``valid_loss`` is the held-out negative log-likelihood with ``log Z``
    from ``n_validation_samples`` draws fixed at initialisation (the same
    at every epoch, so epochs compare fairly).

    Parameters
    ----------
    module : TiltedEnergy
        A tilted energy with a base.
    n_importance_samples : int, default=4096
        Draws from the base per update.
    n_validation_samples : int, default=16384
        Fixed draws of the held-out ``log Z``.
    pool_size : int or None, default=None
        Where set and the base's sampling is costly (a
        :class:`~skebm.mcmc.FlowSource`), the draws of an update are
        taken with replacement from a pool of ``pool_size`` draws made once,
        not drawn afresh. ``None``: fresh draws at every update.
    **kwargs
        The arguments of :class:`EBMNet`.
    """

    def __init__(self, module, *, n_importance_samples=4096, n_validation_samples=16384, pool_size=None, **kwargs):
        self.n_importance_samples = n_importance_samples
        self.n_validation_samples = n_validation_samples
        self.pool_size = pool_size
        super().__init__(module, **kwargs)

    def initialize_module(self):
        super().initialize_module()
        draws = torch.Generator(device=self.device).manual_seed(seed_from(self.seed, "validation"))
        base = self.bare_module().base
        self.validation_draws_ = base.sample(self.n_validation_samples, self.feature_shape, generator=draws)
        self._pool = None  # drawn at the first update (a model being loaded never needs it)
        return self

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_pool", None)  # drawn again from its seed when needed: pickles stay small
        return state

    def _draws(self, base):
        """The ``n_importance_samples`` draws of an update: fresh, or from the pool."""
        if self.pool_size is None or not getattr(base, "_costly_sampling", False):
            return base.sample(self.n_importance_samples, self.feature_shape, generator=self.generator)
        if getattr(self, "_pool", None) is None:
            pool = torch.Generator(device=self.device).manual_seed(seed_from(self.seed, "pool"))
            self._pool = base.sample(int(self.pool_size), self.feature_shape, generator=pool)
        rows = torch.randint(len(self._pool), (self.n_importance_samples,), generator=self.generator,
                             device=self._pool.device)
        return self._pool[rows]

    def _tilt(self, x, module=None):
        module = self.bare_module() if module is None else module
        with self._amp():
            return module.tilt(x).float() / self.temperature

    def train_step_single(self, batch, **fit_params):
        """Importance-sampled negative log-likelihood, back-propagated."""
        self._set_training(True)
        x, _ = unpack_data(batch)
        x = self._noisy(to_tensor(x, device=self.device).float())
        y = self._draws(self.bare_module().base)
        with self._amp():  # the tilt alone, E + log q, without evaluating the base
            f = self.module_(torch.cat([x, y]), members=False, base=False).float() / self.temperature
        f_x, f_y = f[: len(x)], f[len(x) :]
        loss = f_x.mean() + _logmeanexp(-f_y)
        penalty = getattr(self.bare_module(), "penalty", None)
        if callable(penalty):
            loss = loss + penalty(x, y[: len(x)])
        loss.backward()
        self.history.record_batch("energy_data", float(f_x.detach().mean()))
        return {"loss": loss.detach(), "y_pred": f_x.detach()}

    def validation_step(self, batch, **fit_params):
        """Held-out negative log-likelihood, ``log Z`` from the fixed draws."""
        self._set_training(False)
        x, _ = unpack_data(batch)
        x = to_tensor(x, device=self.device).float()
        with torch.no_grad():
            nll = self.energy(x).mean() + _logmeanexp(-self._tilt(self.validation_draws_))
        return {"loss": nll, "y_pred": None}


class ScoreMatchingNet(_DensityNet, DSMNet):
    """Denoising score matching of an energy at one noise level, early-stopped on the held-out loss.

    :class:`~skebm.engine.DSMNet` with one level and the energy not scaled
    by it (``noise_levels=[sigma]``, ``scale_energy=False``; Vincent's
    DSM): each update perturbs the batch by ``sigma z`` and minimises
    :class:`~skebm.engine.DenoisingScoreMatchingLoss`, so the score of the
    model matches that of the data smoothed by ``N(0, sigma^2)``. No
    ``log Z`` in training, no chains. The ``valid_loss`` is the same loss
    on the held-out rows, each perturbed by ``n_validation_draws`` noise
    draws fixed at initialisation (the same at every epoch, so epochs
    compare fairly).

    Parameters
    ----------
    module : TiltedEnergy
        The energy (a tilted base, as in :class:`ImportanceNet`).
    noise_levels : sequence of one float
        The noise level ``[sigma]``.
    n_validation_draws : int, default=8
        Noise draws per held-out row.
    **kwargs
        The arguments of :class:`~skebm.engine.DSMNet`.
    """

    def __init__(self, module, *, noise_levels, n_validation_draws=8, scale_energy=False, **kwargs):
        if len(noise_levels) != 1:
            raise ValueError(f"ScoreMatchingNet trains at one noise level, got {len(noise_levels)}.")
        self.n_validation_draws = n_validation_draws
        # the estimators build engines with the maximum-likelihood loss and its arguments: the loss here is DSM's
        kwargs = {k: v for k, v in kwargs.items() if not k.startswith("criterion")}
        super().__init__(module, noise_levels=noise_levels, scale_energy=scale_energy, **kwargs)

    def validation_step(self, batch, **fit_params):
        """Held-out denoising score-matching loss with fixed noise draws (a gradient, not a graph)."""
        self._set_training(False)
        x, _ = unpack_data(batch)
        x = to_tensor(x, device=self.device).float()
        x = x.repeat(self.n_validation_draws, *([1] * (x.dim() - 1)))
        draws = torch.Generator(device=x.device).manual_seed(seed_from(self.seed, "validation"))  # same every epoch
        z = torch.randn(x.shape, generator=draws, device=x.device)
        sigma = self.noise_levels_.sigmas.expand(len(x))
        with torch.enable_grad():
            x_noisy = (x + self.sigma_min * z).requires_grad_(True)
            (grad,) = torch.autograd.grad(self.energy(x_noisy).sum(), x_noisy)
        with torch.no_grad():
            loss = self.get_loss((grad, sigma), z, X=x, training=False)
        return {"loss": loss, "y_pred": None}
