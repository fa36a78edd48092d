"""The training methods of :class:`~skebm.EBMDensity`: each an object holding its own parameters.

:class:`~skebm.EBMDensity` is a facade: it holds what every method shares
(the energy network, the base density, the optimiser, the device...) and
asks its method (``method_``, a :class:`DensityMethod`) for the rest. A
method holds its parameters the scikit-learn way (``get_params`` /
``set_params``, so ``GridSearchCV`` tunes ``method__grid_resolution`` and
``clone`` copies it) and builds its part of a fit:

- the tilted energy (:meth:`DensityMethod.make_energy`);
- the training engine: its class and arguments, its data, its callbacks
  and, for MCMC training only, the sampler, the chain initialisation and
  its source;
- ``log Z`` after training (:meth:`DensityMethod.log_partition`);
- the chains of ``sample`` and ``diagnose`` (:meth:`DensityMethod.starts`,
  :meth:`DensityMethod.sampler`).

:class:`QuadratureML` and :class:`ImportanceML` estimate ``log Z`` at every
step and build no sampler and no chain bank; :class:`LongrunML` trains with
Langevin negatives from longrun chains.
"""

import math
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, clone
from sklearn.covariance import LedoitWolf
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.utils._param_validation import Hidden, StrOptions
from skorch.callbacks import Callback, LRScheduler
from skorch.dataset import Dataset
from skorch.helper import predefined_split
from threadpoolctl import threadpool_limits

from ._base import _is_plain, _same
from ._validation import NONNEG, NONNEG_INT, NONNEG_SCALE, POSITIVE, POSITIVE_INT, PROB, SCALE, TEMPERATURE, Float, Int
from .engine import EBMNet, HeldOutEarlyStopping
from .engine._density import ImportanceNet, QuadratureNet, ScoreMatchingNet
from .engine._random import seed_from
from .mcmc import CHAIN_INITS, CellGrid, ChainInit, GaussianMixtureSource, LangevinSampler, NoiseSource
from .mcmc import estimate_log_partition, make_chain_init
from .mcmc._flows import FlowSource, fit_flow_source
from .mcmc._init import _BURNIN_SIZE_RENAMED
from .nn import MemberMean, TiltedEnergy, make_energy, zero_init_output

__all__ = [
    "DensityMethod", "QuadratureML", "ImportanceML", "LongrunML", "ScoreMatching", "METHODS", "MethodHooks",
    "fit_base_density", "resolve_method",
]

_BASE_COMPONENTS = (1, 2, 4, 8, 16, 32, 48, 64)
#: Rows (training and held out) from which ``"select"`` also tries a flow base: fewer, and flows overfit.
_FLOW_MIN_ROWS = 1000
#: Equal cells per axis of a grid over the data (the final ``log Z`` grid of the methods that train without one).
_GRID_CELLS = 128


# ------------------------------------------------------------ the base density
def _gaussian(Z):
    """One Gaussian with the Ledoit-Wolf covariance of ``Z`` (plus ``1e-6``, as GaussianMixture's ``reg_covar``)."""
    cov = LedoitWolf().fit(Z).covariance_ + 1e-6 * np.eye(Z.shape[1])  # a constant feature has no variance
    return GaussianMixtureSource([1.0], Z.mean(0, keepdims=True), cov[None])


def fit_base_density(Z, kind="gmm", components="cv", random_state=None, Z_valid=None):
    """The base density of :class:`~skebm.EBMDensity`, fitted to standardised data ``Z``.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_features)
        Standardised (or transformed) training data.
    kind : {"gaussian", "gmm", "flow", "select"} or sklearn.mixture.GaussianMixture, default="gmm"
        ``"gaussian"``: one full-covariance Gaussian (Ledoit-Wolf
        shrinkage); ``"gmm"``: a mixture chosen by ``components``;
        ``"flow"``: a coupling spline flow (:class:`~skebm.mcmc.FlowSource`)
        early-stopped on ``Z_valid`` (or on 15% of ``Z``);
        ``"select"``: the best of 1, 2 and 4 full-covariance components
        (and of a flow, from 1,000 rows and 3 features on) by the held-out
        log-likelihood on ``Z_valid``; or a mixture estimator of the
        user's (cloned and fitted here).
    components : int, "cv" or "bic", default="cv"
        Components of ``"gmm"``: ``"cv"`` picks the number (1 to 64, at most
        ``n_samples / 20``) and the covariance type (full or diagonal) with
        scikit-learn's :class:`~sklearn.model_selection.GridSearchCV`
        (3-fold held-out log-likelihood); ``"bic"`` the number of
        full-covariance components with the lowest BIC.
    random_state : int, RandomState instance or None, default=None
        Seed of the mixture fits.
    Z_valid : ndarray of shape (n_valid, n_features), default=None
        Held-out data of ``"select"``.

    Returns
    -------
    base : GaussianMixtureSource or FlowSource
    """
    seed = seed_from(random_state)
    if isinstance(kind, str) and kind == "flow":
        return fit_flow_source(Z, Z_valid, random_state=random_state)
    # small dense problems: BLAS threads only add overhead (30x on a busy machine)
    with threadpool_limits(limits=1, user_api="blas"):
        if isinstance(kind, GaussianMixture):
            return GaussianMixtureSource.from_estimator(clone(kind).fit(Z))
        if kind == "gaussian":
            return _gaussian(Z)
        if kind == "select":
            candidates = [_gaussian(Z)]
            for k in (2, 4):
                if 10 * k <= len(Z):
                    gmm = GaussianMixture(k, covariance_type="full", reg_covar=1e-3, random_state=seed).fit(Z)
                    candidates.append(GaussianMixtureSource.from_estimator(gmm))
            if Z_valid is None or len(candidates) == 1:
                return candidates[0]
            if len(Z) + len(Z_valid) >= _FLOW_MIN_ROWS and Z.shape[1] >= 3:
                candidates.append(fit_flow_source(Z, Z_valid, random_state=random_state))
            held = torch.as_tensor(Z_valid, dtype=torch.float32)
            with torch.no_grad():
                scores = [float(base.log_prob(held).mean()) for base in candidates]
            return candidates[int(np.argmax(scores))]
        gmm = GaussianMixture(reg_covar=1e-6, random_state=seed)
        if components in ("cv", "bic"):
            ks = [k for k in _BASE_COMPONENTS if k <= max(1, len(Z) // 20)]
            if components == "bic":
                best = min(ks, key=lambda k: gmm.set_params(n_components=k).fit(Z).bic(Z))
                gmm.set_params(n_components=best, covariance_type="full")
            else:
                grid = {"n_components": ks, "covariance_type": ["full", "diag"]}
                search = GridSearchCV(gmm, grid, cv=KFold(3, shuffle=True, random_state=seed)).fit(Z)
                gmm.set_params(**search.best_params_)
        else:
            gmm.set_params(n_components=min(int(components), len(Z)), covariance_type="full")
        return GaussianMixtureSource.from_estimator(gmm.fit(Z))


# ------------------------------------------------------------ training callbacks
class _Decay:
    """Picklable LambdaLR factor, per epoch from epoch ``start``: linear or cosine to 0 over ``n_epochs``.

    Stepped per epoch, so that skorch's LRScheduler resumes it exactly from
    a checkpoint (it restarts the schedule at ``len(history) - 1``).
    """

    def __init__(self, n_epochs, start=0, kind="linear"):
        self.n_epochs = max(1, int(n_epochs))
        self.start = int(start)
        self.kind = kind

    def __call__(self, epoch):
        t = min(max(epoch - self.start, 0) / self.n_epochs, 1.0)
        return 1.0 - t if self.kind == "linear" else 0.5 * (1.0 + math.cos(math.pi * t))


class _AdaptStepSize(Callback):
    """Adapt the Langevin step size to a target MALA acceptance rate (longrun training).

    After every update the engine's ``sampler_.step_size`` (fitted state) is
    multiplied by ``exp(rate * (acceptance - target))``: a Robbins-Monro
    step on the log step size. Each chain step is still an exact MALA step.
    """

    def __init__(self, target=0.6, rate=0.05):
        self.target = target
        self.rate = rate

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        if not training:
            return
        acceptance = net.history[-1]["batches"][-1].get("acceptance")
        if acceptance is not None and math.isfinite(acceptance):
            net.sampler_.step_size *= math.exp(self.rate * (acceptance - self.target))
            net.history.record_batch("step_size", float(net.sampler_.step_size))  # what a resume restores


# ------------------------------------------------------------ the methods
def _base_kind(est, method):
    """The base density a fit uses: EBMDensity's ``base``, or the method's choice where it is ``"auto"``."""
    return method.defaults["base"] if isinstance(est.base, str) and est.base == "auto" else est.base


def _network(est, defaults, generator):
    """One energy network, its output layer at zero (training starts from the base density)."""
    params = dict(est.energy_params or {})
    if est.energy in ("auto", "mlp") and est.image_shape_ is None:
        params.setdefault("hidden_units", defaults["hidden_units"])
        if defaults["fourier_features"]:
            params.setdefault("fourier_features", defaults["fourier_features"])
            scale = defaults["fourier_scale"] or 3.0 * math.sqrt(2.0 / est.n_features_in_)
            params.setdefault("fourier_scale", scale)
    net = make_energy(
        est.energy, n_features=est.n_features_in_, image_shape=est.image_shape_, n_outputs=1, params=params,
        generator=generator,
    )
    return net if isinstance(est.energy, torch.nn.Module) else zero_init_output(net)


class DensityMethod(BaseEstimator):
    """Base class of the training methods of :class:`~skebm.EBMDensity` (not for direct use).

    A method holds its parameters (declared in ``__init__`` and
    ``_parameter_constraints``, as a scikit-learn estimator does) and the
    hooks :class:`~skebm.EBMDensity` calls: the energy, the training
    engine, ``log Z`` and the chains of ``sample``. The defaults here are
    those of a method that estimates ``log Z`` at every step: no sampler,
    no chain bank in training; ``sample`` runs MALA chains from the base
    density with an independence move from it (``step_size``,
    ``n_sample_steps``).
    """

    #: The string shortcut of ``EBMDensity(method=...)``.
    name = None
    #: What EBMDensity's ``scaling="auto"``, ``base="auto"``, ``max_iter=None`` and ``lr=None`` mean here.
    defaults = {}
    #: The MLP of ``energy="auto"`` on flat data (``fourier_scale=None``: ``3 sqrt(2 / n_features)``).
    network = {}
    #: Learning-rate schedule over the fit: ``"constant"``, or a ``"linear"`` or ``"cosine"`` decay to 0.
    schedule = "constant"
    #: Updates per epoch; ``None``: one pass over the data at ``batch_size``.
    updates_per_epoch = None
    #: Parameters a warm start cannot change (they fix the network, the split or the chains).
    _warm_fixed = ()
    #: Parameters a warm start applies to the engine; the others are read where they are used.
    _warm_applied = ("data_noise",)
    #: Whether the base ``"select"`` chooses on the held-out fold.
    _select_base_on_held_out = False

    # ------------------------------------------------------------ the model
    def check(self, n_features, base):
        """Raise a ValueError if the method cannot fit ``n_features`` features with the base ``base``."""
        if base is None:
            raise ValueError(f"method={self.name!r} needs a base density; base=None works with LongrunML(tau=...).")

    def folds(self, n, random_state):
        """Fold of each of ``n`` training rows (``-1``: training rows of every member), or None."""
        return None

    def make_energy(self, est, generator, Z):
        """The tilted energy of a fit of ``est`` on the model-range data ``Z`` (None: loading a saved model)."""
        net, kind, base = self._networks(est, generator), _base_kind(est, self), None
        if kind is not None and Z is None:  # loading a saved model: the state dict sets the mixture or the flow
            d = est.n_features_in_
            with torch.device("cpu"):  # tiny and checked on build; skebm.load plans the rest on the meta device
                if getattr(est, "_base_kind_", "gmm") == "flow":
                    base = FlowSource(d)
                else:
                    base = GaussianMixtureSource([1.0], np.zeros((1, d)), np.eye(d)[None])
        elif kind is not None:
            flat = Z.reshape(len(Z), -1).astype(np.float64)
            held = est._folds_ == 0 if self._select_base_on_held_out else np.zeros(len(flat), bool)
            train, valid = (flat[~held], flat[held]) if held.any() else (flat, None)
            base = fit_base_density(train, kind, est.base_components, est.random_state, Z_valid=valid)
        if Z is not None:  # what a load rebuilds before the state dict fills it in
            est._base_kind_ = "flow" if isinstance(base, FlowSource) else None if base is None else "gmm"
        bound = None if self.tilt_bound is None else float(self.tilt_bound)
        # the prior and the output penalty: parameters of the methods that have them
        return TiltedEnergy(net, base, getattr(self, "tau", None), bound, float(getattr(self, "l2_reg", 0.0)))

    def _networks(self, est, generator):
        """The network ``g`` of the tilt."""
        return _network(est, self.network, generator)

    # ------------------------------------------------------------ the engine
    def engine_params(self, est, Z):
        """``(engine class, its arguments)`` for the model-range data ``Z`` (None: loading a saved model)."""
        raise NotImplementedError

    def engine_data(self, Z, folds):
        """What the engine is fitted on: ``(X, y)``."""
        return Z, None

    def train_sampler(self, est):
        """The sampler of the training negatives (None: training runs no chains)."""
        return None

    def chain_init(self, est):
        """The chain initialisation of training (None: training runs no chains)."""
        return None

    def source(self, est):
        """The source of fresh training chains (None: training runs no chains)."""
        return None

    def callbacks(self, est, total, done=0, n_samples=None):
        """The method's training callbacks for ``total`` updates (``done`` made already): the learning-rate decay."""
        if n_samples is None or self.schedule == "constant":  # n_samples None: loading a saved model
            return []
        per_epoch = self.updates_per_epoch or max(1, math.ceil(n_samples / est.batch_size))
        start, n_epochs = math.ceil(done / per_epoch), math.ceil((total - done) / per_epoch)
        decay = _Decay(n_epochs, start, self.schedule)
        scheduler = LRScheduler(policy=torch.optim.lr_scheduler.LambdaLR, lr_lambda=decay, step_every="epoch")
        return [("lr_decay", scheduler)]

    def extra_rows(self, est):
        """``(what, n_rows)`` of other arrays a fit of ``est`` allocates, checked like a training batch."""
        return []

    def continue_from(self, fitted, setters):
        """Check a warm start from the ``fitted`` method; apply the changed parameters to the engine (``setters``)."""
        if type(self) is not type(fitted):
            raise ValueError(
                f"warm_start=True cannot change the method ({fitted.name!r} -> {self.name!r}); "
                "set warm_start=False to fit afresh."
            )
        new, old = self.get_params(deep=False), fitted.get_params(deep=False)
        changed = [k for k in new if _is_plain(new[k]) and not _same(new[k], old[k])]
        fixed = [f"method__{k}" for k in changed if k in self._warm_fixed]
        if fixed:
            raise ValueError(
                f"warm_start=True cannot change {', '.join(fixed)} (they fix the network, the split or the chains); "
                "set warm_start=False to fit afresh."
            )
        for k in changed:
            if k in self._warm_applied:
                setters[k](new[k])
        return self

    # ------------------------------------------------------------ after training
    def log_partition(self, est, Z, generator, *, points=(), grid=None, **kwargs):
        """``(log Z, its error, how)`` of the fitted energy: on a grid in one or two dimensions, else by sampling.

        ``points`` (where mass is seen, beside the data ``Z``) widen the
        grid; ``kwargs`` go to :func:`~skebm.mcmc.estimate_log_partition`.
        """
        points = [Z.reshape(len(Z), -1), *points]
        if grid is None and points[0].shape[1] <= 2:
            lo, hi = np.min([p.min(0) for p in points], 0) - 0.25, np.max([p.max(0) for p in points], 0) + 0.25
            grid = CellGrid(lo, hi, n_cells=_GRID_CELLS).to(est.net_.device)
        return estimate_log_partition(
            est.net_.energy, est._feature_shape, points=points, base=est.base_, grid=grid, generator=generator,
            **kwargs,
        )

    def starts(self, est, n, generator):
        """``n`` chain starts of ``sample`` and ``diagnose``: draws from the base density."""
        return est.base_.sample(int(n), est._feature_shape, generator=generator, device=est.net_.device).float()

    def sampler(self, est):
        """The sampler of ``sample`` and ``diagnose``: MALA with an independence move from the base."""
        base = est.base_
        return LangevinSampler(n_steps=self.n_sample_steps, step_size=self.step_size, metropolis=True, proposal=base)


def _permutation(n, random_state):
    """The order of the training rows the held-out folds are cut from."""
    return np.random.RandomState(seed_from(random_state) % (2**31)).permutation(n)


class _HeldOutML(DensityMethod):
    """Maximum likelihood with ``log Z`` at every step, early-stopped on held-out data."""

    _warm_fixed = ("validation_fraction", "tilt_bound")

    def folds(self, n, random_state):
        """Fold of each training row: 0 held out for early stopping, -1 training."""
        perm = _permutation(n, random_state)
        folds = np.full(n, -1, dtype=np.int64)
        folds[perm[: max(1, int(round(self.validation_fraction * n)))]] = 0
        return folds

    @staticmethod
    def held_out_split(est, Z):
        """The engine's validation set: the held-out rows (fold 0) of ``Z``, scored in one batch."""
        return {"train_split": predefined_split(Dataset(Z[est._folds_ == 0], None)), "iterator_valid__batch_size": -1}

    def engine_data(self, Z, folds):
        """The training rows (the held-out fold left out)."""
        return Z[folds != 0], None

    def callbacks(self, est, total, done=0, n_samples=None):
        callbacks = super().callbacks(est, total, done, n_samples)
        if n_samples is not None and self.early_stopping:
            callbacks.append(("early_stopping", HeldOutEarlyStopping(int(self.n_iter_no_change))))
        return callbacks


_HELD_OUT_CONSTRAINTS = {
    "early_stopping": ["boolean"],
    "validation_fraction": [Float(0, 1, closed="neither")],
    "n_iter_no_change": [POSITIVE_INT],
    "tilt_bound": [POSITIVE, None],
    "data_noise": [NONNEG_SCALE],
    "step_size": [SCALE],
    "n_sample_steps": [NONNEG_INT],
}


class QuadratureML(_HeldOutML):
    """Exact maximum likelihood by quadrature (one or two features): the method ``"quadrature"``.

    ``log Z`` is the midpoint rule on a grid of cells that covers the data
    finely and the base's mass out to six standard units
    (:class:`~skebm.mcmc.CellGrid`), every node jittered inside its cell at
    each step; the loss ``mean E(x) + log Z`` is the exact negative
    log-likelihood of the whole training set (full batch), no MCMC.
    ``n_members`` networks are trained at once, each holding out its own
    fold for early stopping (cross-validation bagging); the model is their
    mean energy. The final ``log Z`` uses the grid twice as fine. With
    :class:`~skebm.EBMDensity`'s ``"auto"`` settings: standardised
    features, one Gaussian base, an MLP of two layers of 64 on 64 random
    Fourier features of scale 4, 600 updates at most (10 per epoch), lr
    5e-3 with a cosine decay.

    Parameters
    ----------
    grid_resolution : int, default=64
        Equal cells per axis over the data (plus 8 growing ones per side out
        to six standard units).
    n_members : int, default=3
        Networks of the cross-validation bagging, each early-stopped on its
        own fold of ``1 / n_members`` of the data; 1 trains one network with
        ``validation_fraction`` held out.
    early_stopping : bool, default=True
        Stop when the held-out negative log-likelihood has not improved for
        ``n_iter_no_change`` epochs and keep the best state: ``max_iter`` is
        then an upper bound.
    validation_fraction : float, default=0.15
        Share of the data held out for early stopping with one member.
    n_iter_no_change : int, default=10
        Epochs (of 10 updates) without improvement before stopping.
    tilt_bound : float or None, default=None
        Soft bound ``f = M tanh(g / M)`` of the tilt (none: the likelihood
        is exact).
    data_noise : float, default=0.03
        Standard deviation of Gaussian noise added to the transformed data
        in training, a smoothing like a kernel bandwidth.
    step_size : float, default=0.1
        Langevin step size of the MALA chains of ``sample`` and ``diagnose``.
    n_sample_steps : int, default=200
        MALA steps ``sample`` runs from the base.

    Examples
    --------
    >>> from skebm import EBMDensity
    >>> from skebm.density import QuadratureML
    >>> est = EBMDensity(method=QuadratureML(grid_resolution=64, n_members=2))
    >>> est.get_params()["method__grid_resolution"]
    64
    """

    name = "quadrature"
    defaults = {"scaling": "standard", "base": "gaussian", "max_iter": 600, "lr": 5e-3}
    network = {"hidden_units": (64, 64), "fourier_features": 64, "fourier_scale": 4.0}
    schedule = "cosine"
    updates_per_epoch = 10
    _warm_fixed = (*_HeldOutML._warm_fixed, "grid_resolution", "n_members")
    _parameter_constraints = {**_HELD_OUT_CONSTRAINTS, "grid_resolution": [Int(4)], "n_members": [POSITIVE_INT]}

    def __init__(
        self, grid_resolution=64, n_members=3, early_stopping=True, validation_fraction=0.15, n_iter_no_change=10,
        tilt_bound=None, data_noise=0.03, step_size=0.1, n_sample_steps=200,
    ):
        self.grid_resolution = grid_resolution
        self.n_members = n_members
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tilt_bound = tilt_bound
        self.data_noise = data_noise
        self.step_size = step_size
        self.n_sample_steps = n_sample_steps

    def check(self, n_features, base):
        super().check(n_features, base)
        if n_features is not None and n_features > 2:
            raise ValueError(f"method='quadrature' needs 1 or 2 features, the data has {n_features}.")

    def folds(self, n, random_state):
        """Fold of each training row: member ``k`` holds out fold ``k`` (one member: 0 held out, -1 training)."""
        if self.n_members == 1:
            return super().folds(n, random_state)
        folds = np.empty(n, dtype=np.int64)
        for k, rows in enumerate(np.array_split(_permutation(n, random_state), self.n_members)):
            folds[rows] = k
        return folds

    def extra_rows(self, est):
        """The quadrature grid with its tails (8 cells per side): refused before it is built if it cannot fit."""
        if est.n_features_in_ > 2:  # refused by check: no grid
            return []
        cells = (self.grid_resolution + 16) ** est.n_features_in_
        return [(f"method__grid_resolution={self.grid_resolution}", cells)]

    def _networks(self, est, generator):
        return MemberMean([_network(est, self.network, generator) for _ in range(self.n_members)])

    def engine_params(self, est, Z):
        if Z is None:  # loading a saved model: the state dict sets the grid
            low = -np.ones(est.n_features_in_)
            grid = CellGrid(low, -low, n_cells=self.grid_resolution, n_tail=8, tail=6.0)
            return QuadratureNet, {"updates_per_epoch": self.updates_per_epoch, "grid": grid}
        flat = Z.reshape(len(Z), -1)
        grid = CellGrid(flat.min(0) - 0.25, flat.max(0) + 0.25, n_cells=self.grid_resolution, n_tail=8, tail=6.0)
        split = predefined_split(Dataset(Z, est._folds_))
        return QuadratureNet, {"updates_per_epoch": self.updates_per_epoch, "grid": grid, "train_split": split}

    def engine_data(self, Z, folds):
        return Z, folds

    def log_partition(self, est, Z, generator, **kwargs):
        return super().log_partition(est, Z, generator, grid=est.net_.grid_)


class ImportanceML(_HeldOutML):
    """Importance-sampled maximum likelihood: the method ``"importance"``.

    Each update draws ``n_importance_samples`` fresh points :math:`y \\sim q`
    of the base and minimises ``mean f(x) + log mean exp(-f(y))``: the
    negative log-likelihood with ``log Z = log E_q exp(-f)`` estimated from
    the draws, whose gradient is the self-normalised importance-sampling
    estimate of the exact one; early stopping on a held-out split. The
    final ``log Z`` is importance sampling with 64 times as many draws (the
    grid in one or two dimensions). A flow base draws slowly: the updates
    then take their draws from a pool of 16 times ``n_importance_samples``
    made once, and the final ``log Z`` uses 16 times as many fresh ones. With :class:`~skebm.EBMDensity`'s
    ``"auto"`` settings: the Yeo-Johnson transform, the best of 1, 2 and 4
    Gaussian components on the held-out split as the base, an MLP of two
    layers of 128, 3,000 updates at most (25 per epoch), lr 1e-3.

    Parameters
    ----------
    n_importance_samples : int, default=4096
        Draws from the base per update.
    early_stopping : bool, default=True
        Stop when the held-out negative log-likelihood has not improved for
        ``n_iter_no_change`` epochs and keep the best state.
    validation_fraction : float, default=0.15
        Share of the data held out for early stopping (and for choosing the
        base).
    n_iter_no_change : int, default=12
        Epochs (of 25 updates) without improvement before stopping.
    tilt_bound : float or None, default=6.0
        Soft bound ``f = M tanh(g / M)`` of the tilt: the model stays within
        a factor ``exp(2 M)`` of the base.
    l2_reg : float, default=0.01
        Weight of the L2 regulariser of the raw network output ``g`` on data
        and draws, which keeps ``g`` out of the saturated range of the bound.
    data_noise : float, default=0.0
        Standard deviation of Gaussian noise added to the transformed data
        in training.
    step_size : float, default=0.1
        Langevin step size of the MALA chains of ``sample`` and ``diagnose``.
    n_sample_steps : int, default=200
        MALA steps ``sample`` runs from the base.
    """

    name = "importance"
    defaults = {"scaling": "yeo-johnson", "base": "select", "max_iter": 3000, "lr": 1e-3}
    network = {"hidden_units": (128, 128), "fourier_features": 0, "fourier_scale": 1.0}
    updates_per_epoch = 25
    _warm_applied = ("data_noise", "l2_reg")
    _select_base_on_held_out = True
    _parameter_constraints = {**_HELD_OUT_CONSTRAINTS, "n_importance_samples": [Int(2)], "l2_reg": [NONNEG]}

    def __init__(
        self, n_importance_samples=4096, early_stopping=True, validation_fraction=0.15, n_iter_no_change=12,
        tilt_bound=6.0, l2_reg=0.01, data_noise=0.0, step_size=0.1, n_sample_steps=200,
    ):
        self.n_importance_samples = n_importance_samples
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tilt_bound = tilt_bound
        self.l2_reg = l2_reg
        self.data_noise = data_noise
        self.step_size = step_size
        self.n_sample_steps = n_sample_steps

    def engine_params(self, est, Z):
        extra = {"updates_per_epoch": self.updates_per_epoch, "n_importance_samples": self.n_importance_samples,
                 "pool_size": 16 * self.n_importance_samples}  # used with a flow base only: its draws are costly
        if Z is not None:
            extra.update(self.held_out_split(est, Z))
        return ImportanceNet, extra

    def log_partition(self, est, Z, generator, **kwargs):
        draws = (16 if getattr(est, "_base_kind_", None) == "flow" else 64) * self.n_importance_samples
        return super().log_partition(est, Z, generator, n_importance_samples=draws)


class LongrunML(DensityMethod):
    """Maximum likelihood with Langevin negatives from longrun chains: the method ``"longrun"``.

    The chains of EBM Life Cycle (:class:`~skebm.mcmc.LongrunInit` with the
    default ``init``): a burn-in bank of ``burnin_buffer_size`` chains drawn from
    the base with staggered update counters feeds an update bank of
    ``buffer_size`` chains that is never reset and supplies the negatives.
    The chains are Metropolis-adjusted (MALA), with a step size adapted to
    ``target_acceptance`` and an independence move from the base at the
    start of every update. For energies the other two methods cannot
    normalise during training (images). The final ``log Z``: the grid in
    one or two dimensions, importance sampling from the base (2**18 draws)
    or AIS without a base. With :class:`~skebm.EBMDensity`'s ``"auto"``
    settings: standardised features, a cross-validated Gaussian mixture as
    the base, an MLP of three layers of 128 on 64 random Fourier features,
    1,500 updates, lr 3e-3 with a linear decay.

    Parameters
    ----------
    n_steps : int, default=20
        Langevin steps per update.
    step_size : float, default=0.1
        Langevin step size (model units) of the chains, in training (adapted
        when ``target_acceptance`` is set) and in ``sample``.
    noise_scale : float or None, default=None
        Standard deviation of the Langevin noise; ``None`` uses
        ``step_size`` (exact Langevin dynamics).
    metropolis : bool, default=True
        Metropolis-adjusted Langevin (MALA) chains: exact steady state.
    target_acceptance : float or None, default=0.6
        MALA acceptance rate the step size is adapted to in training;
        ``None`` keeps ``step_size`` fixed.
    independence_proposals : bool, default=True
        Start every chain update with an independence Metropolis-Hastings
        move that proposes a fresh draw from the base density
        (:func:`~skebm.mcmc.independence_mh`): chains then jump between
        well separated modes and follow the model's weights exactly.
    init : {"longrun", "persistent", "replay", "noise", "data"} or ChainInit, default="longrun"
        Chain initialisation of training (see :mod:`skebm.mcmc`); fresh
        chains come from the base density.
    buffer_size : int, default=4096
        Size of the update bank (or of the bank or buffer of the other
        strategies).
    burnin_buffer_size : int, default=1024
        Chains in the longrun burn-in bank.
    burnin_updates : int, default=20
        Updates (of ``n_steps`` steps) a burn-in chain receives before it
        moves into the update bank.
    reinit_prob : float, default=0.0
        Rejuvenation probability of the ``"persistent"`` and ``"replay"``
        strategies.
    temperature : float, default=1.0
        Temperature ``T`` of the model ``exp(-E / T)``.
    tau : float or None, default=None
        Scale of a Gaussian prior ``|u|^2 / (2 tau^2)`` added to the energy,
        as in EBM Life Cycle; required with ``EBMDensity(base=None)``.
    tilt_bound : float or None, default=6.0
        Soft bound ``f = M tanh(g / M)`` of the tilt: the model stays within
        a factor ``exp(2 M)`` of the base.
    l2_reg : float, default=0.01
        Weight of the L2 regulariser of the raw network output ``g`` on data
        and negatives, which keeps ``g`` out of the saturated range of the
        bound.
    data_noise : float, default=0.03
        Standard deviation of Gaussian noise added to the transformed data
        in training.
    n_sample_steps : int, default=200
        MALA steps ``sample`` runs from the update bank.
    n_ais_chains : int, default=512
        AIS chains of the final ``log Z`` (without a base).
    n_ais_temperatures : int, default=500
        AIS temperatures (one MALA step each).
    burnin_size : int, default="deprecated"
        Deprecated alias of ``burnin_buffer_size``; will be removed in 0.5.
    """

    name = "longrun"
    defaults = {"scaling": "standard", "base": "gmm", "max_iter": 1500, "lr": 3e-3}
    network = {"hidden_units": (128, 128, 128), "fourier_features": 64, "fourier_scale": None}
    schedule = "linear"
    _warm_fixed = ("init", "buffer_size", "burnin_buffer_size", "burnin_updates", "tau", "tilt_bound", "metropolis",
                   "independence_proposals", "burnin_size")
    _warm_applied = ("n_steps", "step_size", "noise_scale", "temperature", "data_noise", "reinit_prob", "l2_reg")
    _parameter_constraints = {
        "n_steps": [NONNEG_INT],
        "step_size": [SCALE],
        "noise_scale": [NONNEG_SCALE, None],
        "metropolis": ["boolean"],
        "target_acceptance": [Float(0, 1, closed="neither"), None],
        "independence_proposals": ["boolean"],
        "init": [StrOptions(set(CHAIN_INITS)), ChainInit],
        "buffer_size": [POSITIVE_INT],
        "burnin_buffer_size": [POSITIVE_INT],
        "burnin_updates": [POSITIVE_INT],
        "reinit_prob": [PROB],
        "temperature": [TEMPERATURE],
        "tau": [SCALE, None],
        "tilt_bound": [POSITIVE, None],
        "l2_reg": [NONNEG],
        "data_noise": [NONNEG_SCALE],
        "n_sample_steps": [NONNEG_INT],
        "n_ais_chains": [Int(2)],
        "n_ais_temperatures": [Int(2)],
        "burnin_size": [POSITIVE_INT, Hidden(StrOptions({"deprecated"}))],
    }

    def __init__(
        self, n_steps=20, step_size=0.1, noise_scale=None, metropolis=True, target_acceptance=0.6,
        independence_proposals=True, init="longrun", buffer_size=4096, burnin_buffer_size=1024, burnin_updates=20,
        reinit_prob=0.0, temperature=1.0, tau=None, tilt_bound=6.0, l2_reg=0.01, data_noise=0.03, n_sample_steps=200,
        n_ais_chains=512, n_ais_temperatures=500, burnin_size="deprecated",
    ):
        self.n_steps = n_steps
        self.step_size = step_size
        self.noise_scale = noise_scale
        self.metropolis = metropolis
        self.target_acceptance = target_acceptance
        self.independence_proposals = independence_proposals
        self.init = init
        self.buffer_size = buffer_size
        self.burnin_buffer_size = burnin_buffer_size
        self.burnin_updates = burnin_updates
        self.reinit_prob = reinit_prob
        self.temperature = temperature
        self.tau = tau
        self.tilt_bound = tilt_bound
        self.l2_reg = l2_reg
        self.data_noise = data_noise
        self.n_sample_steps = n_sample_steps
        self.n_ais_chains = n_ais_chains
        self.n_ais_temperatures = n_ais_temperatures
        self.burnin_size = burnin_size

    def check(self, n_features, base):
        if base is None and self.tau is None:
            raise ValueError("base=None needs a prior scale to keep the density normalisable: LongrunML(tau=...).")
        if self.metropolis and self.noise_scale == 0:  # MALA chains, in training and in sample()
            raise ValueError("LongrunML(metropolis=True) needs a positive noise_scale (None: step_size), got 0.")

    def engine_params(self, est, Z):
        return EBMNet, {}

    def train_sampler(self, est):
        proposal = "base" if (self.independence_proposals and _base_kind(est, self) is not None) else None
        return LangevinSampler(
            n_steps=self.n_steps, step_size=self.step_size, noise_scale=self.noise_scale,
            metropolis=bool(self.metropolis), proposal=proposal,
        )

    def chain_init(self, est):
        params = dict(buffer_size=self.buffer_size, reinit_prob=self.reinit_prob,
                      burnin_buffer_size=self._burnin_buffer_size(), burnin_updates=self.burnin_updates)
        return make_chain_init(self.init, **params)

    def _burnin_buffer_size(self):
        """``burnin_buffer_size``, or the deprecated ``burnin_size`` (with a FutureWarning) where it is set."""
        if isinstance(self.burnin_size, str) and self.burnin_size == "deprecated":
            return self.burnin_buffer_size
        warnings.warn(_BURNIN_SIZE_RENAMED, FutureWarning, stacklevel=2)
        return self.burnin_size

    def source(self, est):
        if _base_kind(est, self) is not None:
            return "base"
        return NoiseSource("gaussian", loc=0.0, scale=1.0 if self.tau is None else min(1.0, float(self.tau)))

    def callbacks(self, est, total, done=0, n_samples=None):
        callbacks = super().callbacks(est, total, done, n_samples)
        if n_samples is not None and self.metropolis and self.target_acceptance is not None:
            callbacks.append(("adapt_step_size", _AdaptStepSize(float(self.target_acceptance))))
        return callbacks

    def log_partition(self, est, Z, generator, **kwargs):
        bank = est.net_.chain_init_.starts(min(4096, max(len(Z), 1)), generator=generator)
        return super().log_partition(
            est, Z, generator, points=[bank.reshape(len(bank), -1).cpu().numpy()], tau=self.tau,
            n_ais_chains=self.n_ais_chains, n_ais_temperatures=self.n_ais_temperatures,
            step_size=float(est.net_.sampler_.step_size),
        )

    def starts(self, est, n, generator):
        """``n`` starts from the update bank."""
        return est.net_.chain_init_.starts(n, generator=generator)

    def sampler(self, est):
        """The training sampler (its step size adapted)."""
        return est.net_.sampler_


class ScoreMatching(_HeldOutML):
    """Denoising score matching at one noise level, then ``log Z`` once: the method ``"score_matching"``.

    Trains the tilt without ``log Z`` and without chains: each update
    perturbs a batch by ``noise_level * z`` (:math:`z \\sim N(0, I)`) and
    minimises :class:`~skebm.engine.DenoisingScoreMatchingLoss` (Vincent's
    DSM, one level, the energy not scaled by it), whose minimiser is the
    score of the data smoothed by :math:`N(0, \\sigma^2)`. Early stopping
    on the same loss over a held-out split (fixed noise draws). The
    normalising constant is computed once after training, as the other
    methods do (the grid in one or two dimensions, importance sampling from
    the base with 2**18 draws beyond), so ``score_samples`` stays
    normalised. The cost per update is one forward and one double-backward
    pass of a batch: no grid, no importance draws. With
    :class:`~skebm.EBMDensity`'s ``"auto"`` settings: standardised
    features, one Gaussian base (a mixture base leaves regions between
    its components where the tilt extrapolates freely; measured in
    ``benchmarks/reports/dsm.md``), an MLP of two layers of 128, 3,000
    updates at most (25 per epoch), lr 1e-3.

    Parameters
    ----------
    noise_level : float, default=0.1
        Standard deviation :math:`\\sigma` of the noise, in model units
        (standardised features): the model is the data smoothed at this
        scale, like a kernel bandwidth.
    early_stopping : bool, default=True
        Stop when the held-out score-matching loss has not improved for
        ``n_iter_no_change`` epochs and keep the best state.
    validation_fraction : float, default=0.15
        Share of the data held out for early stopping (and for choosing the
        base).
    n_iter_no_change : int, default=12
        Epochs (of 25 updates) without improvement before stopping.
    tilt_bound : float or None, default=None
        Soft bound ``f = M tanh(g / M)`` of the tilt. None by default: the
        score-matching loss does not see a constant added to the tilt, so
        the tilt drifts and a bound saturates (measured in
        ``benchmarks/reports/dsm.md``).
    step_size : float, default=0.1
        Langevin step size of the MALA chains of ``sample`` and ``diagnose``.
    n_sample_steps : int, default=200
        MALA steps ``sample`` runs from the base.

    Examples
    --------
    >>> from skebm import EBMDensity
    >>> from skebm.datasets import make_toy_2d
    >>> from skebm.density import ScoreMatching
    >>> X = make_toy_2d("moons", 300, random_state=0)
    >>> est = EBMDensity(method=ScoreMatching(noise_level=0.2), max_iter=20, random_state=0).fit(X)
    >>> est.log_partition_method_
    'grid'
    >>> est.score_samples(X[:3]).shape
    (3,)
    """

    name = "score_matching"
    defaults = {"scaling": "standard", "base": "gaussian", "max_iter": 3000, "lr": 1e-3}
    network = {"hidden_units": (128, 128), "fourier_features": 0, "fourier_scale": 1.0}
    updates_per_epoch = 25
    _warm_fixed = (*_HeldOutML._warm_fixed, "noise_level")
    _warm_applied = ()
    _select_base_on_held_out = True
    _parameter_constraints = {
        **{k: v for k, v in _HELD_OUT_CONSTRAINTS.items() if k != "data_noise"}, "noise_level": [SCALE],
    }
    #: The data are not noised beside the score-matching perturbation (read by the engine, not a parameter).
    data_noise = 0.0

    def __init__(
        self, noise_level=0.1, early_stopping=True, validation_fraction=0.15, n_iter_no_change=12, tilt_bound=None,
        step_size=0.1, n_sample_steps=200,
    ):
        self.noise_level = noise_level
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tilt_bound = tilt_bound
        self.step_size = step_size
        self.n_sample_steps = n_sample_steps

    def engine_params(self, est, Z):
        extra = {"updates_per_epoch": self.updates_per_epoch, "noise_levels": [float(self.noise_level)]}
        if Z is not None:
            extra.update(self.held_out_split(est, Z))
        return ScoreMatchingNet, extra


class MethodHooks:
    """How :class:`~skebm.EBMDensity` answers the hooks of ``BaseEBM``: from its fitted method ``method_``.

    A mixin before ``BaseEBM``: the rescaling, the budget of updates, the
    learning rate, the energy and the training engine of a fit are the
    method's, with the estimator's ``scaling``, ``max_iter`` and ``lr``
    where they are set.
    """

    @property
    def _flat_rescaling(self):
        return self.method_.defaults["scaling"] if self.scaling == "auto" else self.scaling

    def _updates_per_fit(self):
        return int(self.method_.defaults["max_iter"] if self.max_iter is None else self.max_iter)

    def _learning_rate(self):
        return float(self.method_.defaults["lr"] if self.lr is None else self.lr)

    @property
    def _data_noise(self):
        return float(self.method_.data_noise)

    def _make_energy(self, n_outputs, generator, Z):
        return self.method_.make_energy(self, generator, Z)

    def _source(self):  # the chain machinery: None where training runs no chains
        return self.method_.source(self)

    def _extra_rows(self):
        return self.method_.extra_rows(self)

    def _chain_sampler(self):  # step_size_: a chain-free engine samples with the method's sampler
        return self.method_.sampler(self)

    def _chain_steps_per_update(self):  # what a fit's cost estimate counts: no chains but the longrun method's
        return int(getattr(self.method_, "n_steps", 0) or 0)

    def _build_chain_init(self):
        return self.method_.chain_init(self)

    def _sampler(self):
        return self.method_.train_sampler(self)

    def _engine_params(self, Z=None):
        net_cls, extra = self.method_.engine_params(self, Z)
        return net_cls, {**super()._engine_params(Z)[1], **extra}

    def _build_engine(self, n_outputs, seed, Z):
        net = super()._build_engine(n_outputs, seed, Z)
        net.temperature = float(getattr(self.method_, "temperature", 1.0))  # LongrunML's; the others fit T = 1
        return net

    def _engine_data(self, Z, y):
        return self.method_.engine_data(Z, self._folds_)

    def _own_callbacks(self, total, done=0, n_samples=None):
        return [*super()._own_callbacks(total, done, n_samples), *self.method_.callbacks(self, total, done, n_samples)]

    def set_params(self, **params):
        """Set parameters; ``method__<name>`` needs a method object (``method=QuadratureML()``), not a name."""
        nested = [k for k in params if k.startswith("method__")]
        if nested and isinstance(self.method, str) and "method" not in params:
            raise ValueError(
                f"method={self.method!r} is a name: nested parameters such as {nested[0]!r} need a method object, "
                "e.g. method=QuadratureML()."
            )
        return super().set_params(**params)

    def _warm_setters(self):
        setters = super()._warm_setters()
        module, lr = self.net_.bare_module(), setters["lr"]
        setters["l2_reg"] = lambda value: setattr(module, "l2_reg", float(value))  # the module's penalty
        setters["lr"] = lambda value: lr(self._learning_rate())
        return setters


#: The methods by their string shortcut.
METHODS = {cls.name: cls for cls in (QuadratureML, ImportanceML, LongrunML, ScoreMatching)}


def resolve_method(method, shape, image_shape=None, base="auto"):
    """The method of a fit on ``X`` of shape ``shape``: a copy of ``method``, or the one it names.

    ``"auto"`` is ``"longrun"`` for images (4-D ``X`` or an ``image_shape``),
    ``"quadrature"`` for one or two features, ``"importance"`` for more.
    Raises a ValueError where the method cannot fit such data with ``base``.
    """
    n_features = int(np.prod(shape[1:])) if len(shape) >= 2 else None
    if isinstance(method, str) and method == "auto":
        flat = "quadrature" if n_features is not None and n_features <= 2 else "importance"
        method = "longrun" if len(shape) == 4 or image_shape is not None else flat
    method = METHODS[method]() if isinstance(method, str) else clone(method)
    method.check(n_features, base)
    return method
