"""EBMDensity: an energy-based density estimator with a normalised likelihood.

The estimator is a facade over its training method (:class:`QuadratureML`,
:class:`ImportanceML`, :class:`LongrunML` or :class:`ScoreMatching`, see
``skebm/_density_methods.py``):
it holds the parameters every method shares and asks the method for the
rest of a fit.
"""

import numpy as np
from sklearn.base import DensityMixin
from sklearn.mixture import GaussianMixture
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import BaseEBM, consistent_read, make_generator, transactional_fit
from ._density_methods import METHODS, DensityMethod, ImportanceML, LongrunML, QuadratureML, ScoreMatching
from ._density_methods import MethodHooks, fit_base_density, resolve_method
from ._docs import fill_doc
from ._validation import NONNEG_INT, POSITIVE_INT, SCALE, Int, check_params
from ._torch_utils import batched, check_rows_fit
from .engine._history import training_rows
from .mcmc import FlowSource, chain_diagnostics, log_partition_bracket
from .mcmc._partition import _annealing_base
from .mcmc._protocol import check_sampler, run_sampler

__all__ = [
    "EBMDensity", "DensityMethod", "QuadratureML", "ImportanceML", "LongrunML", "ScoreMatching", "fit_base_density",
]


#: The keys of ``diagnose``'s output, from those of :func:`~skebm.mcmc.chain_diagnostics`.
_DIAGNOSE = {"chain_energy": "energy_chains", "chain_grad_norm": "grad_norm", "chain_acceptance": "acceptance",
             "data_energy": "energy_data", "energy_gap": "energy_gap", "chain_ess": "ess", "chain_rhat": "rhat"}


def _training_traces(history):
    """The training traces of ``diagnostics_``: per update, and the held-out loss per epoch."""
    rows = training_rows(history)
    return {
        "train_energy_data": [float(r.get("energy_data", np.nan)) for r in rows],
        "train_energy_chains": [float(r.get("energy_samples", np.nan)) for r in rows],
        "train_acceptance": [float(r.get("acceptance", np.nan)) for r in rows],
        "train_jump_acceptance": [float(r.get("jump_acceptance", np.nan)) for r in rows],
        "valid_loss": [float(epoch.get("valid_loss", np.nan)) for epoch in history],
    }


@fill_doc
class EBMDensity(DensityMixin, MethodHooks, BaseEBM):
    r"""Energy-based density estimator with a normalised likelihood.

    The model density of the transformed data :math:`u = T(x)` (a
    per-feature standardisation, or a Yeo-Johnson power transform) is an
    exponential tilt of a tractable base density :math:`q` by an energy
    network :math:`f_\theta` whose output layer starts at zero:

    .. math::

        p(u) = \frac{1}{Z} \, q(u) \exp\left(-f_\theta(u)\right),
        \qquad \log p(x) = \log p(u) + \log \left|\frac{du}{dx}\right| .

    The ``method`` trains it, an object with its own parameters:
    :class:`~skebm.density.QuadratureML` (exact maximum likelihood on a
    grid, one or two features), :class:`~skebm.density.ImportanceML`
    (importance-sampled maximum likelihood, more features) or
    :class:`~skebm.density.LongrunML` (Langevin negatives from longrun
    chains, images) or :class:`~skebm.density.ScoreMatching` (denoising
    score matching at one noise level, no ``log Z`` in training). After fitting it computes ``log Z`` once more, so
    :meth:`score_samples` is a normalised log-density in the units of
    ``X``; :meth:`sample` runs Metropolis-adjusted Langevin chains, which
    leave the model density invariant however long they run.

    Read more in the :ref:`User Guide <density>`.

    Parameters
    ----------
    {energy}
        ``"auto"`` gives the method's MLP unless ``energy_params`` says
        otherwise.
    {energy_params}
    {image_shape}
    method : {"auto", "quadrature", "importance", "longrun", "score_matching"} or DensityMethod, default="auto"
        How the network is trained: a method object (its parameters are
        nested ones, ``method__grid_resolution``), or the name of one with
        its defaults. ``"auto"``: ``"quadrature"`` for one or two
        features, ``"importance"`` for more, ``"longrun"`` for images.
    scaling : {"auto", "standard", "yeo-johnson"}, default="auto"
        The map :math:`T`: per-feature standardisation, or scikit-learn's
        Yeo-Johnson power transform then standardisation (its exact
        log-Jacobian enters the density). ``"auto"``: the method's
        (Yeo-Johnson for ``"importance"``).
    base : {"auto", "gaussian", "gmm", "flow"}, GaussianMixture or None, default="auto"
        Base density :math:`q` (see ``skebm.density.fit_base_density``).
        ``"flow"``: a coupling spline flow (:class:`~skebm.mcmc.FlowSource`,
        zuko's) fitted first, early-stopped on the held-out split, so the
        network only learns what the flow missed. ``"auto"``: the method's
        (one Gaussian for ``"quadrature"`` and ``"score_matching"``; for
        ``"importance"`` the best on the held-out split of 1, 2 and 4
        Gaussian components and, from 1,000 rows and 3 features on, the
        flow; ``"gmm"`` for ``"longrun"``). ``None``: no base
        (``LongrunML(tau=...)`` then bounds the density).
    base_components : int, "cv" or "bic", default="cv"
        Components of a ``"gmm"`` base.
    max_iter : int or None, default=None
        At most this many parameter updates (0: the base alone); ``None``:
        the method's (600, 3,000, 1,500 or 3,000).
    batch_size : int, default=256
        Data samples per update (``"quadrature"`` takes them all).
    lr : float or None, default=None
        Initial learning rate; ``None``: the method's, with its decay.
    {optimizer}
    {device}
    {precision}
    {callbacks}
    {verbose}
    {warm_start}
        The method's parameters follow the same rule.
    {on_divergence}
    {n_threads}
    {accelerator}
    {random_state}

    Attributes
    ----------
    {fitted}
    method_ : DensityMethod
        The method used (a copy of ``method``, or the one it names).
    base_ : GaussianMixtureSource, FlowSource or None
        The base density in model units.
    log_partition_, log_partition_se_ : float
        ``log Z`` in model units and its error (the change from the coarser
        grid, or the standard error).
    log_partition_method_ : str
        ``"grid"``, ``"importance"`` or ``"ais"``.
    log_partition_bracket_ : tuple of float
        ``(lower, upper)``: stochastic bounds of ``log Z`` by forward and
        reverse AIS, set by :meth:`log_partition_bracket` (not by ``fit``;
        absent until it is called). Their gap bounds the error of
        ``log_partition_``; a wide one means the chains do not mix.
    step_size_ : float
        Langevin step size of the chains (after adaptation in ``"longrun"``).
    diagnostics_ : dict
        Training traces per update (``"train_energy_data"``,
        ``"train_energy_chains"``, ``"train_acceptance"``,
        ``"train_jump_acceptance"``: NaN where a method has none) and per
        epoch (``"valid_loss"``).

    See Also
    --------
    skebm.EBMGenerator : Shortrun EBM for synthesis (unnormalised).
    sklearn.neighbors.KernelDensity : Kernel density estimation.
    sklearn.mixture.GaussianMixture : Gaussian mixture density.

    Notes
    -----
    Measured costs and held-out log-likelihoods against KernelDensity,
    GaussianMixture and a normalising flow: :ref:`User Guide <density>`.

    Examples
    --------
    >>> from skebm import EBMDensity
    >>> from skebm.datasets import make_toy_2d
    >>> from skebm.density import QuadratureML
    >>> X = make_toy_2d("moons", 500, random_state=0)
    >>> est = EBMDensity(method=QuadratureML(grid_resolution=32), max_iter=20, random_state=0).fit(X)
    >>> est.score_samples(X[:3]).shape
    (3,)
    >>> est.sample(4, random_state=0).shape
    (4, 2)
    """

    _parameter_constraints = {
        **BaseEBM._shared_constraints,
        "method": [StrOptions({"auto", *METHODS}), DensityMethod],
        "scaling": [StrOptions({"auto", "standard", "yeo-johnson"})],
        "base": [StrOptions({"auto", "gmm", "gaussian", "flow"}), GaussianMixture, None],
        "base_components": [StrOptions({"cv", "bic"}), POSITIVE_INT],
        "max_iter": [NONNEG_INT, None],
        "lr": [SCALE, None],
    }
    _warm_fixed = (*BaseEBM._warm_fixed, "method", "scaling", "base", "base_components")
    _fitted_attributes = (
        *BaseEBM._fitted_attributes, "net_", "method_", "log_partition_", "log_partition_se_",
        "log_partition_method_", "diagnostics_", "_folds_", "log_partition_bracket_", "_base_kind_",
    )

    def __init__(
        self, energy="auto", *, energy_params=None, image_shape=None, method="auto", scaling="auto", base="auto",
        base_components="cv", max_iter=None, batch_size=256, lr=None, optimizer="adam", device="auto",
        precision="fp32", callbacks=None, verbose=0, warm_start=False, on_divergence="recover", n_threads="auto",
        accelerator=None, random_state=None,
    ):
        self.energy = energy
        self.energy_params = energy_params
        self.image_shape = image_shape
        self.method = method
        self.scaling = scaling
        self.base = base
        self.base_components = base_components
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.device = device
        self.precision = precision
        self.callbacks = callbacks
        self.verbose = verbose
        self.warm_start = warm_start
        self.on_divergence = on_divergence
        self.n_threads = n_threads
        self.accelerator = accelerator
        self.random_state = random_state

    def _check_params(self):
        super()._check_params()
        if isinstance(self.method, DensityMethod):
            self.method._validate_params()

    @property
    def base_(self):
        """The base density in model units, or None.

        A :class:`~skebm.mcmc.GaussianMixtureSource` or a
        :class:`~skebm.mcmc.FlowSource`.
        """
        check_is_fitted(self, "net_")
        return self.net_.bare_module().base

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
        self._check_params()
        shape = np.shape(X)
        method = resolve_method(self.method, shape, self.image_shape, self.base)
        if self.warm_start and hasattr(self, "net_"):
            method.continue_from(self.method_, self._warm_setters())
        else:
            n = shape[0] if len(shape) else 0
            if 0 < n < 4:
                raise ValueError(f"EBMDensity needs at least 4 samples, got n_samples={n}.")
            self._folds_ = method.folds(n, self.random_state)
        self.method_ = method
        Z = self._fit_engine(X, None, n_outputs=1)
        g = make_generator(self.random_state, self.net_.device)
        self.log_partition_, self.log_partition_se_, self.log_partition_method_ = method.log_partition(self, Z, g)
        self.diagnostics_ = _training_traces(self.net_.history)
        vars(self).pop("log_partition_bracket_", None)  # a warm start's copy belongs to the previous model
        return self

    @consistent_read
    def log_partition_bracket(self, *, n_chains=256, n_temperatures=200, n_steps=None, random_state=None):
        r"""Bracket ``log Z`` between forward and reverse AIS; also sets ``log_partition_bracket_``.

        Forward annealed importance sampling from the base density gives a
        stochastic lower bound of the model's ``log Z``, reverse AIS from
        samples of the model (the chains of :meth:`sample`) a stochastic
        upper one (:func:`skebm.mcmc.log_partition_bracket`, bidirectional
        Monte Carlo). The width ``upper - lower`` bounds the error of
        both and of ``log_partition_`` when it lies inside: a narrow
        bracket (a few hundredths of a nat) says the normalisation, hence
        :meth:`score_samples`, can be trusted to that much; a wide one that
        the chains do not mix (the model has modes the base or the sampler
        miss) and neither estimate, nor ``log_partition_``, should be
        trusted. Not computed by ``fit`` (it costs about
        ``n_chains * (n_steps + 2 n_temperatures)`` gradient evaluations):
        call it once after fitting; a refit drops the attribute. Most useful
        for the ``"importance"`` and ``"longrun"`` methods, whose
        ``log_partition_`` is a sampling estimate.

        Parameters
        ----------
        n_chains : int, default=256
            AIS chains in each direction.
        n_temperatures : int, default=200
            Distributions on the annealing path, ends included (one MALA
            step each).
        n_steps : int, default=None
            MALA steps of the chains that draw the model samples of reverse
            AIS (from where :meth:`sample` starts); ``None``: the method's
            ``n_sample_steps``.
        random_state : int, RandomState instance or None, default=None
            Seed of the chains.

        Returns
        -------
        bracket : tuple of float
            ``(lower, upper)``, stochastic bounds of ``log Z`` in model
            units (those of ``log_partition_``).
        """
        self._check_fitted()
        limits = {"n_chains": [Int(2)], "n_temperatures": [Int(2)], "n_steps": [NONNEG_INT, None]}
        check_params(limits, {"n_chains": n_chains, "n_temperatures": n_temperatures, "n_steps": n_steps},
                     "log_partition_bracket")
        check_rows_fit(f"n_chains={n_chains}", n_chains, self._feature_shape, self.net_.device)
        n_steps = self.method_.n_sample_steps if n_steps is None else n_steps
        g, energy = self._generator(random_state), self.net_.energy
        with self.net_.thread_scope():
            x0, sampler = self.method_.starts(self, n_chains, g), self.method_.sampler(self)
            samples = sampler(energy, x0, generator=g, n_steps=n_steps)
            base = _annealing_base(self.base_, self._feature_shape, samples.cpu().numpy(), g)
            bracket = log_partition_bracket(energy, base, samples, n_chains=n_chains, n_temperatures=n_temperatures,
                                            step_size=float(getattr(sampler, "step_size", 0.1)), generator=g)
        self.log_partition_bracket_ = tuple(float(v) for v in bracket)
        return self.log_partition_bracket_

    @consistent_read
    def diagnose(self, X, *, n_steps=100, random_state=None, sampler=None):
        """Steady-state diagnostics: run chains further and compare them with ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data (held-out, ideally) in the units of ``fit``'s ``X``.
        n_steps : int, default=100
            Further MALA steps.
        random_state : int, RandomState instance or None, default=None
            Seed of the chains.
        sampler : object, default=None
            A sampler that runs the further steps instead of the method's
            MALA chains, as in :meth:`sample`; it must accept
            ``return_trace=True`` (see :func:`~skebm.mcmc.chain_diagnostics`).

        Returns
        -------
        diagnostics : dict
            ``diagnostics_`` plus, per further step, ``"chain_energy"``,
            ``"chain_grad_norm"`` and ``"chain_acceptance"``, and
            ``"data_energy"`` and ``"energy_gap"`` (chains minus data: near 0
            in a steady state), ``"chain_ess"`` and ``"chain_rhat"`` (the
            effective sample size and split-R-hat of the chains' energies
            over the steps: an R-hat above 1.01 or an ESS far below
            ``n_chains * n_steps`` says the chains mix slowly). Plot with
            :func:`skebm.plotting.plot_diagnostics`.
        """
        self._check_fitted()
        check_params({"n_steps": [POSITIVE_INT]}, {"n_steps": n_steps}, "diagnose")
        X = self._validate_X(X, reset=False)
        g, n = self._generator(random_state), min(512, len(X))
        chains, sampler = self.method_.starts(self, n, g), self.method_.sampler(self) if sampler is None else sampler
        run = chain_diagnostics(self.net_.energy, self._tensor(X[:n]), chains, sampler, n_steps=n_steps, generator=g)
        return {**self.diagnostics_, **{key: run[name] for key, name in _DIAGNOSE.items()}}

    @consistent_read
    def score_samples(self, X):
        """Normalised log-density ``-E(u) / T - log Z + log |du/dx|`` of each sample, in the units of ``X``.

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
        Z = self._tensor(X)
        if isinstance(self.base_, FlowSource):  # a flow's float32 result depends on its batch: batches of one size
            energies = batched(self.net_.energy, Z, pad=True).double().cpu().numpy()
        else:
            energies = self._energies(Z)
        return -energies - self.log_partition_ + self.rescaler_.log_jacobian(X)

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

    @consistent_read
    def sample(self, n_samples=1, *, random_state=None, n_steps=None, sampler=None):
        """Draw samples from the model density.

        MALA chains from the base density (after ``"longrun"`` training,
        from the update bank), with an independence move from the base
        first: they leave the model density invariant however long they run.
        A ``sampler`` given here runs from the same starts instead.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples.
        random_state : int, RandomState instance or None, default=None
            Seed of the chains.
        n_steps : int, default=None
            Langevin steps; ``None`` uses the method's ``n_sample_steps``
            (with a ``sampler``: that sampler's own ``n_steps``).
        sampler : object, default=None
            A sampler that replaces the method's MALA chains for this call,
            e.g. :class:`~skebm.mcmc.HMCSampler` (which adapts its step
            size to the model during its ``n_warmup`` steps, whatever the
            step size training adapted) or a
            :class:`~skebm.mcmc.ParallelTempering` for well separated
            modes: any callable ``sampler(energy_fn, x0, generator=...,
            n_steps=...)`` (see :ref:`samplers`). It runs on the energy
            ``E(u) / T`` in the model's (standardised) units and makes no
            independence move from the base. ``None``: the method's MALA.

        Returns
        -------
        X_new : ndarray or DataFrame
            Samples in the layout and value range of ``fit``'s ``X``.

        Raises
        ------
        TypeError
            When ``sampler`` is not a sampler.
        """
        self._check_fitted()
        limits = {"n_samples": [POSITIVE_INT], "n_steps": [NONNEG_INT, None]}
        check_params(limits, {"n_samples": n_samples, "n_steps": n_steps}, "sample")
        check_rows_fit(f"n_samples={n_samples}", n_samples, self._feature_shape, self.net_.device)
        if sampler is not None:
            check_sampler(sampler)
        g = self._generator(random_state)
        x0 = self.method_.starts(self, n_samples, g)
        with self.net_.thread_scope():  # threads: n_threads for the whole chain
            if sampler is not None:
                return self._from_model(run_sampler(sampler, self.net_.energy, x0, generator=g, n_steps=n_steps))
            n_steps = self.method_.n_sample_steps if n_steps is None else n_steps
            sampler = self.method_.sampler(self)
            return self._from_model(sampler(self.net_.energy, x0, generator=g, n_steps=n_steps))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags
