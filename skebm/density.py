"""EBMDensity: an energy-based density estimator with a normalised likelihood."""

import math

import numpy as np
import torch
from sklearn.base import DensityMixin, clone
from sklearn.covariance import LedoitWolf
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import Callback, LRScheduler
from skorch.dataset import Dataset
from skorch.helper import predefined_split
from threadpoolctl import threadpool_limits

from ._base import BaseEBM, consistent_read, make_generator, transactional_fit
from ._docs import fill_doc
from ._validation import NONNEG_INT, NONNEG_SCALE, POSITIVE, POSITIVE_INT, SCALE, Float, Int, check_params
from .engine import HeldOutEarlyStopping
from .engine._density import ImportanceNet, QuadratureNet
from .engine._history import training_rows
from .engine._random import seed_from
from .mcmc import CellGrid, GaussianMixtureSource, LangevinSampler, NoiseInit, NoiseSource, chain_diagnostics
from .mcmc import estimate_log_partition
from .nn import MemberMean, TiltedEnergy, make_energy, zero_init_output

__all__ = ["EBMDensity", "fit_base_density"]

_BASE_COMPONENTS = (1, 2, 4, 8, 16, 32, 48, 64)

#: The settings each training method measured best with (benchmarks/density_research/FINDINGS.md); "auto"
#: parameters take them.
_METHOD_DEFAULTS = {
    "quadrature": dict(
        scaling="standard", base="gaussian", tilt_bound=None, max_iter=600, lr=5e-3, data_noise=0.03,
        n_iter_no_change=10, updates_per_epoch=10, hidden_units=(64, 64), fourier_features=64, fourier_scale=4.0,
        schedule="cosine",
    ),
    "importance": dict(
        scaling="yeo-johnson", base="select", tilt_bound=6.0, max_iter=3000, lr=1e-3, data_noise=0.0,
        n_iter_no_change=12, updates_per_epoch=25, hidden_units=(128, 128), fourier_features=0, fourier_scale=1.0,
        schedule="constant",
    ),
    "longrun": dict(
        scaling="standard", base="gmm", tilt_bound=6.0, max_iter=1500, lr=3e-3, data_noise=0.03,
        n_iter_no_change=None, updates_per_epoch=None, hidden_units=(128, 128, 128), fourier_features=64,
        fourier_scale=None, schedule="linear",
    ),
}


def _gaussian(Z):
    """One Gaussian with the Ledoit-Wolf covariance of ``Z`` (plus ``1e-6``, as GaussianMixture's ``reg_covar``)."""
    cov = LedoitWolf().fit(Z).covariance_ + 1e-6 * np.eye(Z.shape[1])  # a constant feature has no variance
    return GaussianMixtureSource([1.0], Z.mean(0, keepdims=True), cov[None])


def fit_base_density(Z, kind="gmm", components="cv", random_state=None, Z_valid=None):
    """The base density of :class:`EBMDensity`, fitted to standardised data ``Z``.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_features)
        Standardised (or transformed) training data.
    kind : {"gaussian", "gmm", "select"} or sklearn.mixture.GaussianMixture, default="gmm"
        ``"gaussian"``: one full-covariance Gaussian (Ledoit-Wolf
        shrinkage); ``"gmm"``: a mixture chosen by ``components``;
        ``"select"``: the best of 1, 2 and 4 full-covariance components by
        the held-out log-likelihood on ``Z_valid``; or a mixture estimator
        of the user's (cloned and fitted here).
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
    base : GaussianMixtureSource
    """
    seed = seed_from(random_state)
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


@fill_doc
class EBMDensity(DensityMixin, BaseEBM):
    r"""Energy-based density estimator with a normalised likelihood.

    The model density of the transformed data :math:`u = T(x)` is an
    exponential tilt of a tractable base density :math:`q`,

    .. math::

        p(u) = \frac{1}{Z} \, q(u) \exp\left(-f_\theta(u)\right),
        \qquad \log p(x) = \log p(u) + \log \left|\frac{du}{dx}\right|,

    with :math:`f_\theta` an energy network whose output layer starts at
    zero (training starts at :math:`p = q`) and :math:`T` a per-feature
    standardisation (or a Yeo-Johnson power transform). The network does
    the modelling: the base is one Gaussian, or a few components. How it is
    trained (``method``):

    - ``"quadrature"`` (one or two features): exact maximum likelihood.
      :math:`\log Z` is the midpoint rule on a grid of cells that covers the
      data finely and the base's mass out to six standard units
      (:class:`~skebm.mcmc.CellGrid`), every node jittered inside its cell
      at each step; the loss ``mean E(x) + log Z`` is the exact negative
      log-likelihood, no MCMC. ``n_members`` networks are trained at once,
      each holding out its own fold for early stopping
      (cross-validation bagging); the model is their mean energy.
    - ``"importance"`` (more features): maximum likelihood with
      :math:`\log Z = \log E_q \exp(-f)` estimated at every step from fresh
      draws of the base (the self-normalised importance-sampling
      gradient), early stopping on a held-out split.
    - ``"longrun"``: maximum likelihood with Langevin negatives from
      *longrun* chains (EBM Life Cycle): a burn-in bank feeds an update bank
      that is never reset (:class:`~skebm.mcmc.LongrunInit`), MALA steps
      with an adapted step size, for energies the other two cannot
      normalise during training (images).

    After fitting, ``log Z`` is computed once (``log_partition``): on a grid
    twice as fine in one or two dimensions, by importance sampling from
    :math:`q` (``2**18`` draws) or AIS otherwise, so :meth:`score_samples`
    is a normalised log-density in the units of ``X``. :meth:`sample` runs
    Metropolis-adjusted Langevin chains from the base (with independence
    moves from it): they leave the model density invariant, however long
    they run.

    Read more in the :ref:`User Guide <density>`.

    Parameters
    ----------
    {energy}
        ``"auto"`` gives an MLP (for ``"quadrature"``: two layers of 64 and
        64 random Fourier features of scale 4; for ``"importance"``: two
        layers of 128) unless ``energy_params`` says otherwise.
    {energy_params}
    {image_shape}
    method : {"auto", "quadrature", "importance", "longrun"}, default="auto"
        How the network is trained (see above): ``"auto"`` is
        ``"quadrature"`` for one or two features and flat data,
        ``"importance"`` for more, ``"longrun"`` for images.
    scaling : {"auto", "standard", "yeo-johnson"}, default="auto"
        The map :math:`T` to the model's space: per-feature standardisation,
        or scikit-learn's Yeo-Johnson power transform then standardisation
        (its exact log-Jacobian enters the density). ``"auto"``:
        Yeo-Johnson for ``"importance"``, standardisation otherwise.
    base : {"auto", "gaussian", "gmm"}, GaussianMixture or None, default="auto"
        Base density :math:`q` (see :func:`fit_base_density`):
        ``"auto"`` is one Gaussian for ``"quadrature"``, the best of 1, 2
        and 4 Gaussian components on the held-out split for
        ``"importance"``, the cross-validated mixture (``base_components``)
        for ``"longrun"``. ``None``: no base (``tau`` then bounds the
        density; ``"longrun"`` only).
    base_components : int, "cv" or "bic", default="cv"
        Components of a ``"gmm"`` base.
    tau : float or None, default=None
        Scale of a Gaussian prior ``|u|^2 / (2 tau^2)`` added to the energy,
        as in EBM Life Cycle; required when ``base=None``.
    tilt_bound : float, None or "auto", default="auto"
        Soft bound ``f = M tanh(g / M)`` of the tilt (``M = tilt_bound``,
        ``g`` the network), keeping the model within a factor ``exp(2 M)``
        of the base. ``"auto"``: none for ``"quadrature"`` (its likelihood
        is exact), 6 otherwise.
    n_members : int, default=3
        Networks of the cross-validation bagging of ``"quadrature"``, each
        early-stopped on its own fold of ``1 / n_members`` of the data; 1
        trains one network with ``validation_fraction`` held out.
    early_stopping : bool, default=True
        Stop when the held-out negative log-likelihood has not improved for
        ``n_iter_no_change`` evaluations, and keep the best state
        (``"quadrature"`` and ``"importance"``): ``max_iter`` is then an
        upper bound.
    validation_fraction : float, default=0.15
        Share of the data held out for early stopping (``"importance"``,
        and ``"quadrature"`` with one member).
    n_iter_no_change : int or "auto", default="auto"
        Evaluations without improvement before stopping: 10 (every 10
        updates) for ``"quadrature"``, 12 (every 25 updates) for
        ``"importance"``.
    max_iter : int or None, default=None
        At most this many parameter updates; 0 fits the base alone.
        ``None``: 600 (``"quadrature"``, full batch), 3,000
        (``"importance"``), 1,500 (``"longrun"``).
    batch_size : int, default=256
        Data samples (and negatives) per update (``"quadrature"`` uses the
        whole data set at each update).
    lr : float or None, default=None
        Initial learning rate; ``None``: 5e-3 with a cosine decay
        (``"quadrature"``), 1e-3 constant (``"importance"``), 3e-3 with a
        linear decay (``"longrun"``).
    {optimizer}
    n_importance_samples : int, default=4096
        Draws from the base per update (``"importance"``); the final
        ``log Z`` uses 64 times as many.
    grid_resolution : int or None, default=None
        Equal cells per axis over the data of the quadrature grid (plus 8
        growing ones per side out to six standard units); ``None`` is 128.
        The final ``log Z`` uses a grid twice as fine.
    n_steps : int, default=20
        Langevin steps per update of ``"longrun"`` training.
    step_size : float, default=0.1
        Langevin step size (model units) of the chains: in training
        (``"longrun"``, adapted when ``target_acceptance`` is set) and in
        :meth:`sample`.
    noise_scale : float or None, default=None
        Standard deviation of the Langevin noise; ``None`` uses
        ``step_size`` (exact Langevin dynamics).
    temperature : float, default=1.0
        Temperature ``T`` of the model ``exp(-E / T)`` (``"longrun"``; the
        other methods fit ``T = 1``).
    metropolis : bool, default=True
        Metropolis-adjusted Langevin (MALA) chains: exact steady state.
    target_acceptance : float or None, default=0.6
        MALA acceptance rate the step size is adapted to in ``"longrun"``
        training; ``None`` keeps ``step_size`` fixed.
    independence_proposals : bool, default=True
        Start every chain update with an independence Metropolis-Hastings
        move that proposes a fresh draw from the base density
        (:func:`~skebm.mcmc.independence_mh`): chains then jump between
        well separated modes and follow the model's weights exactly.
    init : {"longrun", "persistent", "replay", "noise", "data"} or ChainInit, default="longrun"
        Chain initialisation of ``"longrun"`` training (see
        :mod:`skebm.mcmc`); fresh chains come from the base density.
    buffer_size : int, default=4096
        Size of the update bank (``"longrun"``) or of the bank or buffer of
        the other strategies.
    burnin_size : int, default=1024
        Chains in the longrun burn-in bank.
    burnin_updates : int, default=20
        Updates (of ``n_steps`` steps) a burn-in chain receives before it
        moves into the update bank.
    reinit_prob : float, default=0.0
        Rejuvenation probability of the ``"persistent"`` and ``"replay"``
        strategies.
    l2_reg : float, default=0.01
        Weight of the L2 regulariser of the raw network output ``g`` on data
        and negatives (``"importance"`` and ``"longrun"``), which keeps
        ``g`` out of the saturated range of the bound.
    data_noise : float or "auto", default="auto"
        Standard deviation of Gaussian noise added to the transformed data
        in training, a smoothing like a kernel bandwidth; ``"auto"``: 0.03,
        none for ``"importance"``.
    log_partition : {"auto", "grid", "importance", "ais"}, default="auto"
        How the final ``log Z`` is computed: ``"auto"`` is the grid for one
        or two features, importance sampling from the base otherwise (AIS
        without a base).
    n_ais_chains : int, default=512
        Number of AIS chains.
    n_ais_temperatures : int, default=500
        Number of AIS temperatures (one MALA step each).
    n_sample_steps : int, default=200
        MALA steps :meth:`sample` runs from the base (or, after
        ``"longrun"`` training, from the update bank).
    {device}
    {precision}
    {callbacks}
    {verbose}
    {warm_start}
    {on_divergence}
    {n_threads}
    {accelerator}
    {random_state}

    Attributes
    ----------
    {fitted}
    method_ : str
        The training method used.
    base_ : GaussianMixtureSource or None
        The base density in model units.
    log_partition_ : float
        ``log Z`` of the model in model units.
    log_partition_se_ : float
        Its error: the change from the coarser grid (grid), the standard
        error (importance sampling, AIS).
    log_partition_method_ : str
        ``"grid"``, ``"importance"`` or ``"ais"``.
    step_size_ : float
        Langevin step size of the chains (after adaptation in ``"longrun"``).
    diagnostics_ : dict
        Training traces, per update: ``"train_energy_data"``,
        ``"train_energy_chains"``, ``"train_acceptance"``,
        ``"train_jump_acceptance"`` (NaN where a method has none), and per
        epoch ``"valid_loss"`` (the held-out negative log-likelihood).
        :meth:`diagnose` adds a steady-state run of chains; plot it with
        :func:`skebm.plotting.plot_diagnostics`.

    See Also
    --------
    skebm.EBMGenerator : Shortrun EBM for synthesis (unnormalised).
    sklearn.neighbors.KernelDensity : Kernel density estimation.
    sklearn.mixture.GaussianMixture : Gaussian mixture density.

    Notes
    -----
    Cost of a default fit: 72 s on one CPU core for 5,000 points of the
    2-D moons (the other core busy; a 5-fold cross-validated KernelDensity:
    10 s; ``n_members=2``: 34 s for 0.006 nats less); the research runs of
    ``benchmarks/density_research`` measured 21-32 CPU seconds on the toys
    and 11-30 s on the tables (13-64 features). Held-out log-likelihoods:
    see the user guide, or run ``benchmarks/bench_density.py``.

    Examples
    --------
    >>> import numpy as np
    >>> from skebm import EBMDensity
    >>> from skebm.datasets import make_toy_2d
    >>> X = make_toy_2d("moons", 500, random_state=0)
    >>> est = EBMDensity(max_iter=20, grid_resolution=32, random_state=0).fit(X)
    >>> est.score_samples(X[:3]).shape
    (3,)
    >>> est.sample(4, random_state=0).shape
    (4, 2)
    """

    _parameter_constraints = {
        **BaseEBM._shared_constraints,
        "method": [StrOptions({"auto", "quadrature", "importance", "longrun"})],
        "scaling": [StrOptions({"auto", "standard", "yeo-johnson"})],
        "init": [StrOptions({"longrun", "persistent", "replay", "noise", "data"}), *BaseEBM._shared_constraints["init"][1:]],
        "base": [StrOptions({"auto", "gmm", "gaussian"}), GaussianMixture, None],
        "base_components": [StrOptions({"cv", "bic"}), POSITIVE_INT],
        "tau": [SCALE, None],
        "tilt_bound": [POSITIVE, None, StrOptions({"auto"})],
        "n_members": [POSITIVE_INT],
        "early_stopping": ["boolean"],
        "validation_fraction": [Float(0, 1, closed="neither")],
        "n_iter_no_change": [POSITIVE_INT, StrOptions({"auto"})],
        "max_iter": [NONNEG_INT, None],
        "lr": [SCALE, None],
        "n_importance_samples": [Int(2)],
        "grid_resolution": [Int(4), None],
        "metropolis": ["boolean"],
        "target_acceptance": [Float(0, 1, closed="neither"), None],
        "independence_proposals": ["boolean"],
        "burnin_size": [POSITIVE_INT],
        "burnin_updates": [POSITIVE_INT],
        "data_noise": [NONNEG_SCALE, StrOptions({"auto"})],
        "log_partition": [StrOptions({"auto", "grid", "importance", "ais"})],
        "n_ais_chains": [Int(2)],
        "n_ais_temperatures": [Int(2)],
        "n_sample_steps": [NONNEG_INT],
    }
    _warm_fixed = (
        *BaseEBM._warm_fixed, "method", "scaling", "base", "base_components", "tau", "tilt_bound", "n_members",
        "grid_resolution",
    )
    _fitted_attributes = (
        *BaseEBM._fitted_attributes, "net_", "method_", "log_partition_", "log_partition_se_",
        "log_partition_method_", "diagnostics_", "_folds_",
    )

    def __init__(
        self,
        energy="auto",
        *,
        energy_params=None,
        image_shape=None,
        method="auto",
        scaling="auto",
        base="auto",
        base_components="cv",
        tau=None,
        tilt_bound="auto",
        n_members=3,
        early_stopping=True,
        validation_fraction=0.15,
        n_iter_no_change="auto",
        max_iter=None,
        batch_size=256,
        lr=None,
        optimizer="adam",
        n_importance_samples=4096,
        grid_resolution=None,
        n_steps=20,
        step_size=0.1,
        noise_scale=None,
        temperature=1.0,
        metropolis=True,
        target_acceptance=0.6,
        independence_proposals=True,
        init="longrun",
        buffer_size=4096,
        burnin_size=1024,
        burnin_updates=20,
        reinit_prob=0.0,
        l2_reg=0.01,
        data_noise="auto",
        log_partition="auto",
        n_ais_chains=512,
        n_ais_temperatures=500,
        n_sample_steps=200,
        device="auto",
        precision="fp32",
        callbacks=None,
        verbose=0,
        warm_start=False,
        on_divergence="recover",
        n_threads="auto",
        accelerator=None,
        random_state=None,
    ):
        self.energy = energy
        self.energy_params = energy_params
        self.image_shape = image_shape
        self.method = method
        self.scaling = scaling
        self.base = base
        self.base_components = base_components
        self.tau = tau
        self.tilt_bound = tilt_bound
        self.n_members = n_members
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.n_importance_samples = n_importance_samples
        self.grid_resolution = grid_resolution
        self.n_steps = n_steps
        self.step_size = step_size
        self.noise_scale = noise_scale
        self.temperature = temperature
        self.metropolis = metropolis
        self.target_acceptance = target_acceptance
        self.independence_proposals = independence_proposals
        self.init = init
        self.buffer_size = buffer_size
        self.burnin_size = burnin_size
        self.burnin_updates = burnin_updates
        self.reinit_prob = reinit_prob
        self.l2_reg = l2_reg
        self.data_noise = data_noise
        self.log_partition = log_partition
        self.n_ais_chains = n_ais_chains
        self.n_ais_temperatures = n_ais_temperatures
        self.n_sample_steps = n_sample_steps
        self.device = device
        self.precision = precision
        self.callbacks = callbacks
        self.verbose = verbose
        self.warm_start = warm_start
        self.on_divergence = on_divergence
        self.n_threads = n_threads
        self.accelerator = accelerator
        self.random_state = random_state

    # ----------------------------------------------------------- settings
    def _resolved_method(self, n_dims=None, images=None):
        if "method_" in vars(self):  # fixed for the fit in progress (or the fitted model)
            return self.method_
        if self.method != "auto":
            return self.method
        images = getattr(self, "image_shape_", self.image_shape) is not None if images is None else images
        n_dims = getattr(self, "n_features_in_", None) if n_dims is None else n_dims
        if images:
            return "longrun"
        return "quadrature" if n_dims is not None and n_dims <= 2 else "importance"

    def _setting(self, name):
        """A parameter, or the measured default of the training method where it is ``"auto"`` / None."""
        value = getattr(self, name)
        defaults = _METHOD_DEFAULTS[self._resolved_method()]
        auto = value is None if name in ("max_iter", "lr") else isinstance(value, str) and value == "auto"
        return defaults[name] if auto else value

    def _check_params(self):
        super()._check_params()
        method = self._resolved_method()
        if self.base is None and self.tau is None:
            raise ValueError("base=None needs a prior scale tau to keep the density normalisable.")
        if self.base is None and method != "longrun":
            raise ValueError(f"method={method!r} needs a base density; base=None works with method='longrun'.")
        if method != "longrun" and self.temperature != 1.0:
            raise ValueError(f"method={method!r} fits the density itself: temperature must be 1 (got {self.temperature}).")
        n_dims = getattr(self, "n_features_in_", None)
        if method == "quadrature" and n_dims is not None and n_dims > 2:
            raise ValueError(f"method='quadrature' needs 1 or 2 features, the data has {n_dims}.")

    def _extra_rows(self):
        if self.n_features_in_ > 2:  # one or two features: a quadrature grid (training or the log-partition)
            return []
        cells = ((self.grid_resolution or 128) + 16) ** self.n_features_in_  # the grid and its tails (n_tail=8)
        return [(f"grid_resolution={self.grid_resolution}", cells)]

    # ------------------------------------------------------------ the model
    @property
    def base_(self):
        """The base density in model units (a :class:`~skebm.mcmc.GaussianMixtureSource`, or None)."""
        check_is_fitted(self, "net_")
        return self.net_.bare_module().base

    @property
    def step_size_(self):
        """Langevin step size of the chains."""
        check_is_fitted(self, "net_")
        return float(self.net_.sampler_.step_size)

    def _make_rescaler(self, X):
        self._check_params()  # now that the number of features is known
        from ._base import Rescaler

        if self.image_shape_ is not None:
            return Rescaler("image").fit(X)
        return Rescaler(self._setting("scaling")).fit(X)

    def _updates_per_fit(self):
        return int(self._setting("max_iter"))

    def _learning_rate(self):
        return float(self._setting("lr"))

    @property
    def _data_noise(self):
        return float(self._setting("data_noise"))

    def _split(self, n):
        """Fold of every training row: member ``k`` holds out fold ``k``; ``-1``: training rows of all."""
        rng = np.random.RandomState(seed_from(self.random_state) % (2**31))
        perm = rng.permutation(n)
        folds = np.full(n, -1, dtype=np.int64)
        if self.method_ == "quadrature" and self.n_members > 1:
            for k, rows in enumerate(np.array_split(perm, self.n_members)):
                folds[rows] = k
        else:
            folds[perm[: max(1, int(round(self.validation_fraction * n)))]] = 0
        return folds

    def _network(self, generator):
        defaults = _METHOD_DEFAULTS[self.method_]
        params = dict(self.energy_params or {})
        if self.energy in ("auto", "mlp") and self.image_shape_ is None:
            params.setdefault("hidden_units", defaults["hidden_units"])
            if defaults["fourier_features"]:
                params.setdefault("fourier_features", defaults["fourier_features"])
                scale = defaults["fourier_scale"] or 3.0 * math.sqrt(2.0 / self.n_features_in_)
                params.setdefault("fourier_scale", scale)
        net = make_energy(
            self.energy, n_features=self.n_features_in_, image_shape=self.image_shape_, n_outputs=1, params=params,
            generator=generator,
        )
        if not isinstance(self.energy, torch.nn.Module):
            net = zero_init_output(net)  # training starts from the base density: f = 0
        return net

    def _make_energy(self, n_outputs, generator, Z):
        n_members = self.n_members if self.method_ == "quadrature" else 1
        nets = [self._network(generator) for _ in range(n_members)]
        net = MemberMean(nets) if self.method_ == "quadrature" else nets[0]
        kind = self._setting("base")
        base = None
        if kind is not None and Z is None:  # loading a saved model: the state dict sets the mixture
            d = self.n_features_in_
            base = GaussianMixtureSource([1.0], np.zeros((1, d)), np.eye(d)[None])
        elif kind is not None:
            flat = Z.reshape(len(Z), -1).astype(np.float64)
            held = self._folds_ == 0 if self.method_ == "importance" else np.zeros(len(flat), bool)
            train = flat[~held] if held.any() else flat
            base = fit_base_density(
                train, kind, self.base_components, self.random_state, Z_valid=flat[held] if held.any() else None
            )
        bound = self._setting("tilt_bound")
        return TiltedEnergy(net, base, self.tau, None if bound is None else float(bound), float(self.l2_reg))

    def _source(self):
        if self._setting("base") is not None:
            return "base"
        return NoiseSource("gaussian", loc=0.0, scale=1.0 if self.tau is None else min(1.0, float(self.tau)))

    def _build_chain_init(self):
        return super()._build_chain_init() if self.method_ == "longrun" else NoiseInit()

    def _sampler(self):
        proposal = "base" if (self.independence_proposals and self._setting("base") is not None) else None
        return LangevinSampler(
            n_steps=self.n_steps,
            step_size=self.step_size,
            noise_scale=self.noise_scale,
            metropolis=bool(self.metropolis),
            proposal=proposal,
        )

    def _grid(self, Z):
        low, high = (Z.min(0) - 0.25, Z.max(0) + 0.25) if Z is not None else (-np.ones(self.n_features_in_),) * 2
        if Z is None:
            high = -low
        return CellGrid(low, high, n_cells=self.grid_resolution or 128, n_tail=8, tail=6.0)

    def _engine_params(self, Z=None):
        net_cls, extra = super()._engine_params(Z)
        extra = {**extra, "criterion__l2_reg": 0.0}  # l2_reg acts on the raw network output (the module's penalty)
        per_epoch = _METHOD_DEFAULTS[self.method_]["updates_per_epoch"]
        if self.method_ == "longrun":
            return net_cls, extra
        extra["updates_per_epoch"] = per_epoch
        if Z is not None:
            flat = Z.reshape(len(Z), -1)
            if self.method_ == "quadrature":
                extra["train_split"] = predefined_split(Dataset(Z, self._folds_))
            else:
                held = self._folds_ == 0
                extra["train_split"] = predefined_split(Dataset(Z[held], None))
                extra["iterator_valid__batch_size"] = -1
        if self.method_ == "quadrature":
            grid_data = None if Z is None else Z.reshape(len(Z), -1)
            return QuadratureNet, {**extra, "grid": self._grid(grid_data)}
        return ImportanceNet, {**extra, "n_importance_samples": self.n_importance_samples}

    def _engine_data(self, Z, y):
        if self.method_ == "quadrature":
            return Z, self._folds_
        if self.method_ == "importance":
            return Z[self._folds_ != 0], None
        return Z, y

    def _own_callbacks(self, total, done=0, n_samples=None):
        callbacks = super()._own_callbacks(total, done, n_samples)
        if n_samples is None:  # loading a saved model
            return callbacks
        defaults = _METHOD_DEFAULTS[self.method_]
        per_epoch = defaults["updates_per_epoch"] or max(1, math.ceil(n_samples / self.batch_size))
        start, n_epochs = math.ceil(done / per_epoch), math.ceil((total - done) / per_epoch)
        if defaults["schedule"] != "constant":
            decay = _Decay(n_epochs, start, defaults["schedule"])
            callbacks.append(
                ("lr_decay", LRScheduler(policy=torch.optim.lr_scheduler.LambdaLR, lr_lambda=decay, step_every="epoch"))
            )
        if self.method_ == "longrun":
            if self.metropolis and self.target_acceptance is not None:
                callbacks.append(("adapt_step_size", _AdaptStepSize(float(self.target_acceptance))))
        elif self.early_stopping:
            callbacks.append(("early_stopping", HeldOutEarlyStopping(int(self._setting("n_iter_no_change")))))
        return callbacks

    def _warm_setters(self):
        setters = super()._warm_setters()
        module = self.net_.bare_module()
        setters["l2_reg"] = lambda value: setattr(module, "l2_reg", float(value))
        lr = setters["lr"]
        setters["lr"] = lambda value: lr(self._learning_rate())
        return setters

    # ------------------------------------------------------------------ fit
    @transactional_fit
    def fit(self, X, y=None):
        """Fit the density to ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Training data; a DataFrame is accepted.
        y : ignored
            Not used, present for API consistency.

        Returns
        -------
        self : EBMDensity
            The fitted estimator.
        """
        if not (self.warm_start and hasattr(self, "net_")):
            shape = np.shape(X)
            if len(shape) >= 1 and 0 < shape[0] < 4:
                raise ValueError(f"EBMDensity needs at least 4 samples, got n_samples={shape[0]}.")
            images = len(shape) == 4 or self.image_shape is not None
            self.method_ = self._resolved_method(shape[1] if len(shape) == 2 else None, images)
            self._folds_ = self._split(shape[0])
        Z = self._fit_engine(X, None, n_outputs=1)
        g = make_generator(self.random_state, self.net_.device)
        self.log_partition_, self.log_partition_se_, self.log_partition_method_ = self._log_partition(Z, g)
        self.diagnostics_ = self._training_diagnostics()
        return self

    def _log_partition(self, Z, generator):
        flat = Z.reshape(len(Z), -1)
        points = [flat]
        if self.method_ == "longrun":
            bank = self.net_.chain_init_.starts(min(4096, max(len(Z), 1)), generator=generator)
            points.append(bank.reshape(len(bank), -1).cpu().numpy())
        grid = getattr(self.net_, "grid_", None)
        if grid is None and flat.shape[1] <= 2:
            lo, hi = np.min([p.min(0) for p in points], 0) - 0.25, np.max([p.max(0) for p in points], 0) + 0.25
            grid = CellGrid(lo, hi, n_cells=self.grid_resolution or 128).to(self.net_.device)
        return estimate_log_partition(
            self.net_.energy,
            self._feature_shape,
            points=points,
            base=self.net_.bare_module().base,
            tau=self.tau,
            method=self.log_partition,
            grid=grid,
            n_ais_chains=self.n_ais_chains,
            n_ais_temperatures=self.n_ais_temperatures,
            n_importance_samples=64 * self.n_importance_samples,
            step_size=self.step_size_,
            generator=generator,
        )

    def _training_diagnostics(self):
        rows = training_rows(self.net_.history)
        return {
            "train_energy_data": [float(r.get("energy_data", np.nan)) for r in rows],
            "train_energy_chains": [float(r.get("energy_samples", np.nan)) for r in rows],
            "train_acceptance": [float(r.get("acceptance", np.nan)) for r in rows],
            "train_jump_acceptance": [float(r.get("jump_acceptance", np.nan)) for r in rows],
            "valid_loss": [float(epoch.get("valid_loss", np.nan)) for epoch in self.net_.history],
        }

    @consistent_read
    def diagnose(self, X, *, n_steps=100, random_state=None):
        """Steady-state diagnostics: run chains further and compare them with ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data (held-out, ideally) in the units of ``fit``'s ``X``.
        n_steps : int, default=100
            Further MALA steps.
        random_state : int, RandomState instance or None, default=None
            Seed of the chains.

        Returns
        -------
        diagnostics : dict
            The training traces of ``diagnostics_`` plus, per further step,
            ``"chain_energy"``, ``"chain_grad_norm"`` and
            ``"chain_acceptance"``, and ``"data_energy"`` and
            ``"energy_gap"`` (chains minus data: near 0 in a steady state).
            Plot with :func:`skebm.plotting.plot_diagnostics`.
        """
        self._check_fitted()
        check_params({"n_steps": [POSITIVE_INT]}, {"n_steps": n_steps}, "diagnose")
        X = self._validate_X(X, reset=False)
        g = self._generator(random_state)
        n = min(512, len(X))
        data = self._tensor(X[:n])
        chains = self.net_.chain_init_.starts(n, generator=g)
        run = chain_diagnostics(self.net_.energy, data, chains, self.net_.sampler_, n_steps=n_steps, generator=g)
        return {
            **self.diagnostics_,
            "chain_energy": run["energy_chains"],
            "chain_grad_norm": run["grad_norm"],
            "chain_acceptance": run["acceptance"],
            "data_energy": run["energy_data"],
            "energy_gap": run["energy_gap"],
        }

    # --------------------------------------------------------------- scores
    @consistent_read
    def score_samples(self, X):
        """Normalised log-density of each sample, in the units of ``X``.

        ``log p(x) = -E(u) / T - log Z + log |du/dx|``, with ``u`` the
        transformed ``x``: the values are comparable with any other density
        estimator's.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Samples.

        Returns
        -------
        log_density : ndarray of shape (n_samples,)
            Log-density of each sample (nats).
        """
        self._check_fitted()
        X = self._validate_X(X, reset=False)
        return -self._energies(self._tensor(X)) - self.log_partition_ + self.rescaler_.log_jacobian(X)

    @consistent_read
    def score(self, X, y=None):
        """Mean log-likelihood per sample (nats), higher is better.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Samples.
        y : ignored
            Not used, present for API consistency.

        Returns
        -------
        score : float
            Mean of :meth:`score_samples`.
        """
        return float(np.mean(self.score_samples(X)))

    # --------------------------------------------------------------- sample
    @consistent_read
    def sample(self, n_samples=1, *, random_state=None, n_steps=None):
        """Draw samples from the model density.

        Chains start from the base density (after ``"longrun"`` training,
        from the update bank) and run ``n_steps`` MALA steps, with an
        independence move from the base at the start: MALA leaves the model
        density invariant, so the chains stay on it however long they run.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples.
        random_state : int, RandomState instance or None, default=None
            Seed of the chains.
        n_steps : int, default=None
            Langevin steps; ``None`` uses ``n_sample_steps``.

        Returns
        -------
        X_new : ndarray or DataFrame
            Samples in the layout and value range of ``fit``'s ``X``.
        """
        self._check_fitted()
        check_params(
            {"n_samples": [POSITIVE_INT], "n_steps": [NONNEG_INT, None]},
            {"n_samples": n_samples, "n_steps": n_steps},
            "sample",
        )
        n_steps = self.n_sample_steps if n_steps is None else n_steps
        g = self._generator(random_state)
        x0 = self.net_.chain_init_.starts(n_samples, generator=g)
        return self._from_model(self.net_.run_chains(x0, None, generator=g, n_steps=n_steps))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags
