"""EBMDensity: a longrun energy-based model with a normalised density."""

import math

import numpy as np
import torch
from sklearn.base import DensityMixin
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import Callback, LRScheduler
from threadpoolctl import threadpool_limits

from ._base import BaseEBM, make_generator, transactional_fit
from ._docs import fill_doc
from ._validation import NONNEG_INT, POSITIVE, POSITIVE_INT, Float, Int, check_params
from .engine._random import seed_from
from .mcmc import GaussianMixtureSource, LangevinSampler, NoiseSource, chain_diagnostics, estimate_log_partition
from .nn import TiltedEnergy, make_energy, zero_init_output

__all__ = ["EBMDensity"]

_BASE_COMPONENTS = (1, 2, 4, 8, 16, 32, 48, 64)


def fit_base_density(Z, kind="gmm", components="cv", random_state=None):
    """The base density of :class:`EBMDensity`: a Gaussian mixture fitted to ``Z``.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_features)
        Standardised data.
    kind : {"gmm", "gaussian"} or sklearn.mixture.GaussianMixture, default="gmm"
        A mixture chosen by ``components``, a single full-covariance
        Gaussian, or a mixture estimator of the user's (fitted here).
    components : int, "cv" or "bic", default="cv"
        Components of ``"gmm"``: ``"cv"`` picks the number (1 to 64, at most
        ``n_samples / 20``) and the covariance type (full or diagonal) with
        scikit-learn's :class:`~sklearn.model_selection.GridSearchCV`
        (3-fold held-out log-likelihood); ``"bic"`` the number of
        full-covariance components with the lowest BIC.
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    base : GaussianMixtureSource
    """
    seed = seed_from(random_state)
    if isinstance(kind, GaussianMixture):
        from sklearn.base import clone

        gmm = clone(kind)
    elif kind == "gaussian":
        gmm = GaussianMixture(1, covariance_type="full", reg_covar=1e-6, random_state=seed)
    elif components in ("cv", "bic"):
        cap = max(1, len(Z) // 20)
        ks = [k for k in _BASE_COMPONENTS if k <= cap]
        gmm = GaussianMixture(reg_covar=1e-6, random_state=seed)
        # small dense problems: BLAS threads only add overhead (30x on a busy machine)
        with threadpool_limits(limits=1, user_api="blas"):
            if components == "bic":
                best = min(ks, key=lambda k: gmm.set_params(n_components=k).fit(Z).bic(Z))
                gmm.set_params(n_components=best, covariance_type="full")
            else:
                grid = {"n_components": ks, "covariance_type": ["full", "diag"]}
                search = GridSearchCV(gmm, grid, cv=KFold(3, shuffle=True, random_state=seed)).fit(Z)
                gmm.set_params(**search.best_params_)
    else:
        gmm = GaussianMixture(min(int(components), len(Z)), covariance_type="full", reg_covar=1e-6, random_state=seed)
    with threadpool_limits(limits=1, user_api="blas"):
        return GaussianMixtureSource.from_estimator(gmm.fit(Z))


class _LinearDecay:
    """Picklable LambdaLR factor decaying linearly from 1 (at epoch ``start``) to 0 over ``n_epochs`` epochs.

    Stepped per epoch, so that skorch's LRScheduler resumes it exactly from
    a checkpoint (it restarts the schedule at ``len(history) - 1``).
    """

    def __init__(self, n_epochs, start=0):
        self.n_epochs = max(1, int(n_epochs))
        self.start = int(start)

    def __call__(self, epoch):
        return max(0.0, 1.0 - (epoch - self.start) / self.n_epochs)


class _AdaptStepSize(Callback):
    """Adapt the Langevin step size to a target MALA acceptance rate.

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
    """Longrun energy-based density estimator with a normalised likelihood.

    The model density of the (internally standardised) data ``z`` is

    .. math::

        p(z) = \\frac{1}{Z} \\, q(z) \\exp\\left(-\\frac{f_\\theta(z)}{T}
        - \\frac{\\|z\\|^2}{2 \\tau^2}\\right),

    an exponential tilt of a tractable base density ``q`` (a Gaussian
    mixture fitted to the data, see ``base``) by an energy network
    :math:`f_\\theta` whose output layer starts at zero, so that training
    starts from ``p = q``. :math:`f_\\theta` is trained by maximum
    likelihood with Langevin negatives from *longrun* chains (EBM Life
    Cycle): a burn-in bank of chains drawn from ``q`` with staggered update
    counters feeds an update bank that is never reset and supplies the
    negatives (:class:`~skebm.mcmc.LongrunInit`). Chains are
    Metropolis-adjusted (MALA) by default, so their steady state is the
    model density itself, and the step size adapts to a target acceptance
    rate. After fitting, ``log Z`` is computed by grid quadrature for one or
    two features and by annealed importance sampling (AIS) from ``q``
    otherwise, so :meth:`score_samples` is a normalised log-density in the
    units of ``X``.

    Read more in the :ref:`User Guide <density>`.

    Parameters
    ----------
    {energy}
        The default MLP gets 64 random Fourier features of its input (see
        :class:`~skebm.nn.MLPEnergy`) unless ``energy_params`` says
        otherwise.
    {energy_params}
    {image_shape}
    base : {"gmm", "gaussian"} or None, default="gmm"
        Base density ``q``: a full-covariance Gaussian mixture fitted to
        the standardised data (components from ``base_components``), a
        single Gaussian, or none (then ``tau`` must bound the density). It
        also supplies fresh chains and the start of AIS.
    base_components : int, "cv" or "bic", default="cv"
        Components of the ``"gmm"`` base; ``"cv"`` picks among 1, 2, 4, 8,
        16, 32, 48 and 64 components (at most ``n_samples / 20``), full or
        diagonal covariances, the mixture with the best 3-fold
        cross-validated log-likelihood; ``"bic"`` picks the number of
        full-covariance components with the lowest Bayesian information
        criterion (cheaper, fewer components).
    tau : float or None, default=None
        Scale of the Gaussian prior ``|z|^2 / (2 tau^2)`` (standardised
        units) added to the energy, as in EBM Life Cycle; required when
        ``base=None``.
    tilt_bound : float or None, default=6.0
        The tilt is bounded softly, ``f = M tanh(g / M)`` with ``M =
        tilt_bound`` and ``g`` the network, so the model density stays
        within a factor ``exp(2 M)`` of ``q``: mass cannot pile up where no
        chain goes, and training cannot diverge. ``None`` leaves ``f``
        unbounded.
    max_iter : int, default=1500
        {max_iter} The learning rate decays linearly to zero over them
        (epoch by epoch).
    batch_size : int, default=256
        Data samples and negatives per update.
    lr : float, default=3e-3
        Initial learning rate.
    {optimizer}
    n_steps : int, default=20
        Langevin steps per update, for the negatives and the burn-in chains.
    step_size : float, default=0.1
        Initial Langevin step size (standardised units); adapted during
        training when ``target_acceptance`` is set (final value:
        ``step_size_``).
    noise_scale : float or None, default=None
        Standard deviation of the Langevin noise; ``None`` uses
        ``step_size`` (exact Langevin dynamics).
    temperature : float, default=1.0
        Temperature ``T`` of the tilt ``exp(-f / T)``.
    metropolis : bool, default=True
        Metropolis-adjusted Langevin (MALA) chains: exact steady state.
    target_acceptance : float or None, default=0.6
        MALA acceptance rate the step size is adapted to; ``None`` keeps
        ``step_size`` fixed.
    independence_proposals : bool, default=True
        Start every chain update with an independence Metropolis-Hastings
        move that proposes a fresh draw from the base density
        (:func:`~skebm.mcmc.independence_mh`). Local Langevin steps never
        cross between well separated modes, so without these moves the
        chains keep whatever share of each mode they started with and the
        relative weights of the modes go unlearned; with them the chains
        follow the model's weights exactly. Needs a base density.
    init : {"longrun", "persistent", "replay", "noise", "data"} or ChainInit, default="longrun"
        Chain initialisation (see :mod:`skebm.mcmc`); fresh chains come
        from the base density.
    buffer_size : int, default=4096
        Size of the update bank (longrun) or of the bank or buffer of the
        other strategies.
    burnin_size : int, default=1024
        Chains in the longrun burn-in bank.
    burnin_updates : int, default=20
        Updates (of ``n_steps`` steps) a burn-in chain receives before it
        moves into the update bank.
    reinit_prob : float, default=0.0
        Rejuvenation probability of the ``"persistent"`` and ``"replay"``
        strategies (the longrun update bank is never reset).
    l2_reg : float, default=0.01
        Weight of the L2 regulariser of the raw network output ``g``
        (before the ``tilt_bound``) on data and negatives. It keeps ``g``
        out of the saturated range of the bound, where the likelihood
        gradient vanishes.
    data_noise : float, default=0.03
        Standard deviation of Gaussian noise added to the standardised data
        in training: a smoothing of the target, like a kernel bandwidth,
        that keeps the network from carving a spike at each training
        point.
    log_partition : {"auto", "grid", "ais"}, default="auto"
        How ``log Z`` is computed: ``"auto"`` uses the grid for one or two
        features and AIS otherwise.
    grid_resolution : int or None, default=None
        Grid nodes per axis (odd); ``None`` uses 4097 in 1-D and, in 2-D,
        2 nodes per standard deviation of the narrowest base component
        (between 257 and 513).
    n_ais_chains : int, default=512
        Number of AIS chains.
    n_ais_temperatures : int, default=500
        Number of AIS temperatures (one MALA step each).
    n_sample_steps : int, default=200
        MALA steps :meth:`sample` runs from the update bank.
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
    base_ : GaussianMixtureSource or None
        The base density in standardised units.
    log_partition_ : float
        ``log Z`` of the model in standardised units.
    log_partition_se_ : float
        Its standard error (AIS) or quadrature error estimate (grid).
    log_partition_method_ : str
        ``"grid"`` or ``"ais"``.
    step_size_ : float
        Langevin step size after adaptation.
    diagnostics_ : dict
        Training traces, per update: ``"train_energy_data"``,
        ``"train_energy_chains"`` (mean energy of data and negatives),
        ``"train_acceptance"`` (MALA) and ``"train_jump_acceptance"``
        (independence moves). :meth:`diagnose` adds a steady-state run of
        the bank chains; plot either with
        :func:`skebm.plotting.plot_diagnostics`.

    See Also
    --------
    skebm.EBMGenerator : Shortrun EBM for synthesis (unnormalised).
    sklearn.neighbors.KernelDensity : Kernel density estimation.
    sklearn.mixture.GaussianMixture : Gaussian mixture density.

    Examples
    --------
    >>> import numpy as np
    >>> from skebm import EBMDensity
    >>> from skebm.datasets import make_toy_2d
    >>> X = make_toy_2d("moons", 500, random_state=0)
    >>> est = EBMDensity(max_iter=20, random_state=0).fit(X)
    >>> est.score_samples(X[:3]).shape
    (3,)
    >>> est.sample(4, random_state=0).shape
    (4, 2)
    """

    def __init__(
        self,
        energy="auto",
        *,
        energy_params=None,
        image_shape=None,
        base="gmm",
        base_components="cv",
        tau=None,
        tilt_bound=6.0,
        max_iter=1500,
        batch_size=256,
        lr=3e-3,
        optimizer="adam",
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
        data_noise=0.03,
        log_partition="auto",
        grid_resolution=None,
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
        self.base = base
        self.base_components = base_components
        self.tau = tau
        self.tilt_bound = tilt_bound
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
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
        self.grid_resolution = grid_resolution
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

    _parameter_constraints = {
        **BaseEBM._shared_constraints,
        "init": [StrOptions({"longrun", "persistent", "replay", "noise", "data"}), *BaseEBM._shared_constraints["init"][1:]],
        "base": [StrOptions({"gmm", "gaussian"}), GaussianMixture, None],
        "base_components": [StrOptions({"cv", "bic"}), POSITIVE_INT],
        "tau": [POSITIVE, None],
        "tilt_bound": [POSITIVE, None],
        "metropolis": ["boolean"],
        "target_acceptance": [Float(0, 1, closed="neither"), None],
        "independence_proposals": ["boolean"],
        "burnin_size": [POSITIVE_INT],
        "burnin_updates": [POSITIVE_INT],
        "log_partition": [StrOptions({"auto", "grid", "ais"})],
        "grid_resolution": [Int(5), None],
        "n_ais_chains": [Int(2)],
        "n_ais_temperatures": [Int(2)],
        "n_sample_steps": [NONNEG_INT],
    }
    _warm_fixed = (*BaseEBM._warm_fixed, "base", "base_components", "tau", "tilt_bound")
    _fitted_attributes = (
        *BaseEBM._fitted_attributes, "net_", "log_partition_", "log_partition_se_", "log_partition_method_",
        "diagnostics_",
    )

    # ----------------------------------------------------------- validation
    def _check_params(self):
        super()._check_params()
        if self.base is None and self.tau is None:
            raise ValueError("base=None needs a prior scale tau to keep the density normalisable.")
        res = self.grid_resolution
        if res is not None and res % 2 == 0:
            raise ValueError(f"grid_resolution must be None or an odd integer >= 5, got {res!r}.")

    # ------------------------------------------------------------ the model
    @property
    def base_(self):
        """The base density in standardised units (a :class:`~skebm.mcmc.GaussianMixtureSource`, or None)."""
        check_is_fitted_net(self)
        return self.net_.module_.base

    @property
    def step_size_(self):
        """Langevin step size after adaptation."""
        check_is_fitted_net(self)
        return float(self.net_.sampler_.step_size)

    def _make_energy(self, n_outputs, generator, Z):
        params = dict(self.energy_params or {})
        if self.energy in ("auto", "mlp") and self.image_shape_ is None:
            params.setdefault("fourier_features", 64)
            params.setdefault("fourier_scale", 3.0 * math.sqrt(2.0 / self.n_features_in_))
        net = make_energy(
            self.energy, n_features=self.n_features_in_, image_shape=self.image_shape_, n_outputs=1, params=params,
            generator=generator,
        )
        if not isinstance(self.energy, torch.nn.Module):
            net = zero_init_output(net)  # training starts from the base density: f = 0
        base = None
        if self.base is not None and Z is None:  # loading a saved model: the state dict sets the mixture
            d = self.n_features_in_
            base = GaussianMixtureSource([1.0], np.zeros((1, d)), np.eye(d)[None])
        elif self.base is not None:
            flat = Z.reshape(len(Z), -1).astype(np.float64)
            base = fit_base_density(flat, self.base, self.base_components, self.random_state)
        bound = None if self.tilt_bound is None else float(self.tilt_bound)
        return TiltedEnergy(net, base, self.tau, bound, float(self.l2_reg))

    def _source(self):
        if self.base is not None:
            return "base"
        return NoiseSource("gaussian", loc=0.0, scale=1.0 if self.tau is None else min(1.0, float(self.tau)))

    def _sampler(self):
        proposal = "base" if (self.independence_proposals and self.base is not None) else None
        return LangevinSampler(
            n_steps=self.n_steps,
            step_size=self.step_size,
            noise_scale=self.noise_scale,
            metropolis=bool(self.metropolis),
            proposal=proposal,
        )

    def _engine_params(self):
        net_cls, extra = super()._engine_params()
        # l2_reg acts on the raw network output (the module's penalty), not on the full energy
        return net_cls, {**extra, "criterion__l2_reg": 0.0}

    def _callbacks(self, total, done=0, n_samples=None):
        callbacks = super()._callbacks(total, done, n_samples)
        if n_samples is not None:  # training (not loading a saved model)
            per_epoch = max(1, math.ceil(n_samples / self.batch_size))
            start, n_epochs = math.ceil(done / per_epoch), math.ceil((total - done) / per_epoch)
            decay = _LinearDecay(n_epochs, start)
            callbacks.append(
                ("lr_decay", LRScheduler(policy=torch.optim.lr_scheduler.LambdaLR, lr_lambda=decay, step_every="epoch"))
            )
        if self.metropolis and self.target_acceptance is not None:
            callbacks.append(("adapt_step_size", _AdaptStepSize(float(self.target_acceptance))))
        return callbacks

    def _warm_setters(self):
        setters = super()._warm_setters()
        module = self.net_.module_
        setters["l2_reg"] = lambda value: setattr(module, "l2_reg", float(value))
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
        Z = self._fit_engine(X, None, n_outputs=1)
        g = make_generator(self.random_state, self.net_.device)
        self.log_partition_, self.log_partition_se_, self.log_partition_method_ = self._log_partition(Z, g)
        self.diagnostics_ = self._training_diagnostics()
        return self

    def _log_partition(self, Z, generator):
        bank = self.net_.chain_init_.starts(min(4096, max(len(Z), 1)), generator=generator)
        points = [Z.reshape(len(Z), -1), bank.reshape(len(bank), -1).cpu().numpy()]
        return estimate_log_partition(
            self.net_.energy,
            self._feature_shape,
            points=points,
            base=self.net_.module_.base,
            tau=self.tau,
            method=self.log_partition,
            grid_resolution=self.grid_resolution,
            n_ais_chains=self.n_ais_chains,
            n_ais_temperatures=self.n_ais_temperatures,
            step_size=self.step_size_,
            generator=generator,
        )

    def _training_diagnostics(self):
        rows = [b for epoch in self.net_.history for b in epoch["batches"]]
        return {
            "train_energy_data": [float(r.get("energy_data", np.nan)) for r in rows],
            "train_energy_chains": [float(r.get("energy_samples", np.nan)) for r in rows],
            "train_acceptance": [float(r.get("acceptance", np.nan)) for r in rows],
            "train_jump_acceptance": [float(r.get("jump_acceptance", np.nan)) for r in rows],
        }

    def diagnose(self, X, *, n_steps=100, random_state=None):
        """Steady-state diagnostics: run the bank chains further and compare them with ``X``.

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
    def score_samples(self, X):
        """Normalised log-density of each sample, in the units of ``X``.

        ``log p(x) = -E(z) / T - log Z - sum(log scale)``, with ``z`` the
        standardised ``x`` and ``scale`` the per-feature standard deviations
        of the training data (the Jacobian of the standardisation), so the
        values are comparable with any other density estimator's.

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
        return -self._energies(self._tensor(X)) - self.log_partition_ - self.rescaler_.log_det_jacobian()

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
    def sample(self, n_samples=1, *, random_state=None, n_steps=None):
        """Draw samples from the steady state.

        Chains start from the update bank (chains that have run through the
        whole fit) and run ``n_steps`` further MALA steps.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples.
        random_state : int, RandomState instance or None, default=None
            Seed of the chains.
        n_steps : int, default=None
            Further Langevin steps; ``None`` uses ``n_sample_steps``.

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


def check_is_fitted_net(estimator):
    """NotFittedError unless ``estimator`` has its engine."""
    check_is_fitted(estimator, "net_")
