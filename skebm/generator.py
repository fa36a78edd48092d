"""EBMGenerator: shortrun Langevin synthesis, and the composition of energies."""

import warnings

import numpy as np
import torch
from sklearn.utils._param_validation import StrOptions

from sklearn.utils.validation import _num_samples, check_is_fitted

from ._base import (
    BaseEBM, _ClassLabelsMixin, _PresetMixin, consistent_read, consistent_view, make_generator, seed_from,
    transactional_fit,
)
from ._docs import fill_doc
from ._torch_utils import batched, check_rows_fit
from ._validation import FINITE, NONNEG_INT, POSITIVE, POSITIVE_INT, SCALE, Float, Int, check_params
from .engine._callbacks import CosineLearningRate
from .engine._dsm import DSMNet, geometric_noise_levels, overlapping_n_levels
from .mcmc import LangevinSampler, make_chain_init

__all__ = ["EBMGenerator", "compose"]

#: Most noise levels of ``objective="dsm"`` (NCSN's ladders have up to about 2,300).
MAX_NOISE_LEVELS = 10_000

_START = {"source", "bank"}
#: The training objectives of ``objective``.
_OBJECTIVES = ("ml", "dsm")
#: ``step_size="auto"`` with ``objective="dsm"``: the Langevin step at each noise level in units of the level
#: (NCSN's alpha_i = eps * sigma_i^2 / sigma_min^2 with sqrt(eps) / sigma_min = this value); the sweep that chose it
#: is in benchmarks/reports/dsm.md.
_DSM_AUTO_STEP = 1.0
#: Rows of the data whose largest pairwise distance gives ``sigma_max="auto"`` (a seeded subsample beyond).
_SIGMA_MAX_ROWS = 2000
#: Rows per network call of a DSM generator's score_samples (the last chunk zero-padded).
_SCORE_CHUNK = 128


def _check_call(n_samples=1, n_steps=None):
    check_params(
        {"n_samples": [POSITIVE_INT], "n_steps": [NONNEG_INT, None]},
        {"n_samples": n_samples, "n_steps": n_steps},
        "sample",
    )


def _check_finite_chains(x, hint):
    """Refuse chains that diverged (non-finite states) instead of returning NaN samples."""
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"The Langevin chains diverged (their states are not finite): {hint}")


def _resolve_start(start, init):
    """``start`` of :meth:`EBMGenerator.sample`, with the deprecated ``init`` alias."""
    if init is not None:
        warnings.warn(
            "sample(init=...) is deprecated: use start='source' (was 'noise') or start='bank'.",
            FutureWarning,
            stacklevel=3,
        )
        start = {"noise": "source"}.get(init, init)
    if start is not None and start not in _START:
        raise ValueError(f"start must be None, 'source' or 'bank', got {start!r}.")
    return start


#: ``max_iter="auto"`` and ``n_steps="auto"``: updates of a fit and Langevin steps per update, and those of one on
#: data of more than ``_LARGE_DATA_VALUES`` values per sample (the colour sweep of the images guide)
_AUTO_MAX_ITER, _AUTO_MAX_ITER_LARGE, _LARGE_DATA_VALUES = 800, 3200, 1024
_AUTO_N_STEPS, _AUTO_N_STEPS_LARGE = 10, 15


def auto_max_iter(n_values):
    """The updates of ``max_iter="auto"`` for data of ``n_values`` values per sample (pixels times channels)."""
    return _AUTO_MAX_ITER_LARGE if n_values > _LARGE_DATA_VALUES else _AUTO_MAX_ITER


def auto_n_steps(n_values):
    """The Langevin steps per update of ``n_steps="auto"`` for data of ``n_values`` values per sample."""
    return _AUTO_N_STEPS_LARGE if n_values > _LARGE_DATA_VALUES else _AUTO_N_STEPS


#: ``lr_schedule="auto"``: the longest fit kept at a constant learning rate
_CONSTANT_LR_MAX_UPDATES = 1600


@fill_doc
class EBMGenerator(_ClassLabelsMixin, _PresetMixin, BaseEBM):
    """Energy-based generator trained for shortrun Langevin synthesis.

    The energy ``E(x)`` is trained by maximum likelihood with Langevin
    negatives (chains of ``n_steps`` steps from the ``init`` strategy); new
    samples are drawn by running the same short chains. This is the
    shortrun regime of the EBM Life Cycle paper and of IGEBM: good samples,
    but ``exp(-E)`` is not a calibrated density (use
    :class:`~skebm.EBMDensity` for that).

    Read more in the :ref:`User Guide <generator>`.

    Parameters
    ----------
    {energy}
    {energy_params}
    {image_shape}
    conditional : bool, default=False
        Learn a class-conditional energy ``E(x, y)`` from ``fit(X, y)``;
        ``sample(y=...)`` then draws from a chosen class.
    max_iter : int or "auto", default="auto"
        {max_iter} ``"auto"``: 800, and 3,200 for data of more than
        1,024 values per sample (32x32 colour images: with 800 updates they
        cover about half the classes; the table is in the
        :ref:`User Guide <images>`).
    batch_size : int, default=64
        Data samples (and chains) per update.
    lr : float, default=1e-3
        Learning rate.
    lr_schedule : {{"auto", "constant", "cosine"}}, default="auto"
        The learning rate over the updates: ``"constant"``, or
        ``"cosine"``, from ``lr`` to zero at the last update
        (:class:`~skebm.engine.CosineLearningRate`). ``"auto"``: cosine for
        fits of more than 1,600 updates, where a constant rate was measured
        to collapse the samples onto one class (32x32 colour, 3,200
        updates), constant otherwise (on MNIST-5k the cosine is worse at 800
        updates).
    {optimizer}
    n_steps : int or "auto", default="auto"
        Langevin steps per update, and the default for :meth:`sample`.
        ``"auto"``: 10, and 15 for data of more than 1,024 values per
        sample (32x32 colour images, whose fits with 10 steps missed a
        class; the table is in the :ref:`User Guide <images>`).
    step_size : float or "auto", default="auto"
        Langevin step size epsilon: the drift is ``step_size**2 / 2`` times
        the energy gradient divided by ``temperature`` (a number is at
        most 1e6, in the rescaled units). ``"auto"`` grows
        it with the image, ``(C * H * W / 64) ** 0.6``: 1.0 on 8x8 digits,
        4.5 on 28x28 and 10.2 on 32x32 colour images (1.0 for flat
        features); a number is used as given. The value used is
        ``step_size_``.
    noise_scale : float or None, default=0.01
        Standard deviation of the Langevin noise; ``None`` uses
        ``step_size`` (exact Langevin dynamics at ``temperature``). The
        shortrun default follows IGEBM and JEM: a large drift with small
        noise.
    temperature : float, default=1.0
        Temperature ``T`` of the density ``exp(-E(x) / T)``.
    {init}
        :meth:`sample` starts its chains the same way.
    buffer_size : int, default=10000
        Size of the replay buffer or persistent bank.
    reinit_prob : float, default=0.05
        Probability that a chain drawn from the bank restarts from the
        source (fresh noise).
    l2_reg : float, default=0.1
        {l2_reg}
    data_noise : float, default=0.01
        {data_noise}
    objective : {{"ml", "dsm"}}, default="ml"
        Training objective. ``"ml"``: maximum likelihood with Langevin
        negatives (the chains above). ``"dsm"``: denoising score matching
        over ``n_noise_levels`` noise levels (Song & Ermon's NCSN with the
        energy scaled by the level, ``E(x, sigma) = E(x) / sigma``): no
        chains, no negatives and no bank in training, so a fit costs a
        fraction of an ``"ml"`` one; :meth:`sample` runs annealed Langevin
        dynamics over the levels, ``n_steps`` steps per level with the step
        size ``step_size * sigma`` (``"auto"``: 1.0), exact Langevin noise
        (``noise_scale`` is not used), then one denoising step. ``init``,
        ``buffer_size``, ``reinit_prob``, ``l2_reg`` and ``data_noise`` are
        not used with ``"dsm"``; chains start from the source.
    sigma_max : float or "auto", default="auto"
        Largest noise level of ``objective="dsm"`` (in the rescaled units).
        ``"auto"``: the largest distance between two training rows (of a
        seeded subsample of 2,000), as NCSN v2 advises; at least
        ``sigma_min``.
    sigma_min : float, default=0.05
        Smallest noise level of ``objective="dsm"``: :meth:`score_samples`
        and :meth:`inpaint`'s last step use the energy at this level.
    n_noise_levels : int or "auto", default=10
        Number of noise levels of ``objective="dsm"``, in geometric
        progression from ``sigma_max`` to ``sigma_min``; the fitted levels
        are ``noise_levels_``. ``"auto"``: as many as make consecutive
        levels overlap in the data's dimension ``D`` (NCSN v2's technique
        2: the ratio of two levels about 1.36 for ``D = 64``, 1.08 for
        784, so more levels in more dimensions); with the default step and
        800 updates it samples worse on MNIST than 10 levels. At most
        10,000.
    ema_decay : float or None, default=0.995
        Decay (per update) of the exponential moving average of the
        network's weights kept during training (the engine's ``average_``,
        :class:`torch.optim.swa_utils.AveragedModel`). The training chains
        and the loss use the weights being trained; :meth:`sample`,
        :meth:`score_samples`, :meth:`inpaint` and :func:`compose` use the
        average, whose energy is smoother (on MNIST-5k it samples better
        than the final weights; the sweep is in the
        :ref:`User Guide <images>`). ``None`` keeps no average
        (the final weights). Fixed for a warm start.
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
    step_size_ : float
        Langevin step size of the training chains (``step_size`` resolved);
        with ``objective="dsm"`` that of the smallest noise level.
    noise_levels_ : ndarray of shape (n_noise_levels,)
        The decreasing noise levels (``objective="dsm"`` only).
    classes_ : ndarray
        Class labels (only when ``conditional=True``).

    See Also
    --------
    skebm.EBMDensity : Longrun EBM with a normalised density.
    sklearn.neural_network.BernoulliRBM : Energy model with Gibbs sampling.

    Notes
    -----
    Cost of a default fit: 800 updates of 64 chains of 10 Langevin steps
    (about 0.5 million network evaluations with their input gradients),
    about a minute of one CPU core on 8x8 digits with the default conv
    net; above 16x16 the net downsamples in its first layer and is twice
    as wide; on 32x32 colour images a default fit makes 3,200 updates of
    15 Langevin steps with a cosine learning rate. The measured times and
    sample quality on 8x8, 28x28 and 32x32 colour images against
    GaussianMixture and BernoulliRBM (from ``benchmarks/reports/``) are in
    the :ref:`User Guide <images>`.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skebm import EBMGenerator
    >>> X, _ = load_digits(return_X_y=True)
    >>> gen = EBMGenerator(image_shape=(1, 8, 8), max_iter=20, random_state=0).fit(X)
    >>> gen.sample(4).shape
    (4, 64)
    """

    _parameter_constraints = {
        **BaseEBM._shared_constraints,
        "step_size": [*BaseEBM._shared_constraints["step_size"], StrOptions({"auto"})],
        "conditional": ["boolean"],
        "objective": [StrOptions(set(_OBJECTIVES))],
        "sigma_max": [SCALE, StrOptions({"auto"})],
        "sigma_min": [SCALE],
        "n_noise_levels": [Int(1, MAX_NOISE_LEVELS, closed="both"), StrOptions({"auto"})],
        "ema_decay": [Float(0, 1, closed="neither"), None],
        "max_iter": [*BaseEBM._shared_constraints["max_iter"], StrOptions({"auto"})],
        "n_steps": [*BaseEBM._shared_constraints["n_steps"], StrOptions({"auto"})],
        "lr_schedule": [StrOptions({"auto", "constant", "cosine"})],
    }
    _fitted_attributes = (*BaseEBM._fitted_attributes, "net_", "classes_")
    _warm_fixed = (*BaseEBM._warm_fixed, "objective", "sigma_max", "sigma_min", "n_noise_levels", "ema_decay")

    def __init__(
        self,
        energy="auto",
        *,
        energy_params=None,
        image_shape=None,
        conditional=False,
        max_iter="auto",
        batch_size=64,
        lr=1e-3,
        lr_schedule="auto",
        optimizer="adam",
        n_steps="auto",
        step_size="auto",
        noise_scale=0.01,
        temperature=1.0,
        init="replay",
        buffer_size=10000,
        reinit_prob=0.05,
        l2_reg=0.1,
        data_noise=0.01,
        objective="ml",
        sigma_max="auto",
        sigma_min=0.05,
        n_noise_levels=10,
        ema_decay=0.995,
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
        self.conditional = conditional
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.lr = lr
        self.lr_schedule = lr_schedule
        self.optimizer = optimizer
        self.n_steps = n_steps
        self.step_size = step_size
        self.noise_scale = noise_scale
        self.temperature = temperature
        self.init = init
        self.buffer_size = buffer_size
        self.reinit_prob = reinit_prob
        self.l2_reg = l2_reg
        self.data_noise = data_noise
        self.objective = objective
        self.sigma_max = sigma_max
        self.sigma_min = sigma_min
        self.n_noise_levels = n_noise_levels
        self.ema_decay = ema_decay
        self.device = device
        self.precision = precision
        self.callbacks = callbacks
        self.verbose = verbose
        self.warm_start = warm_start
        self.on_divergence = on_divergence
        self.n_threads = n_threads
        self.accelerator = accelerator
        self.random_state = random_state

    # ------------------------------------------------------- the training length
    def _updates_per_fit(self):
        """``max_iter``; ``"auto"``: more updates for larger data (the sweep of the images guide)."""
        if not isinstance(self.max_iter, str):
            return self.max_iter
        return auto_max_iter(int(np.prod(self._feature_shape)))

    def _n_steps(self, value=None):
        """``value`` (default: ``n_steps``); ``"auto"``: more steps for larger data (:func:`auto_n_steps`)."""
        value = self.n_steps if value is None else value
        if not isinstance(value, str):
            return value
        return auto_n_steps(int(np.prod(self._feature_shape)))

    def _lr_schedule(self):
        """``lr_schedule`` resolved: ``"auto"`` is the cosine for fits of more than ``_CONSTANT_LR_MAX_UPDATES``."""
        if self.lr_schedule != "auto":
            return self.lr_schedule
        return "cosine" if self._updates_per_fit() > _CONSTANT_LR_MAX_UPDATES else "constant"

    def _own_callbacks(self, total, done=0, n_samples=None):
        cosine = self._lr_schedule() == "cosine"
        schedule = [("lr_schedule", CosineLearningRate(n_updates=self._updates_per_fit()))] if cosine else []
        return [*schedule, *super()._own_callbacks(total, done, n_samples)]

    # ------------------------------------------------------- the objective
    def _check_params(self):
        super()._check_params()
        if self.sigma_max != "auto" and self.sigma_max < self.sigma_min:
            raise ValueError(f"sigma_max ({self.sigma_max}) must be at least sigma_min ({self.sigma_min}).")

    @property
    def _dsm(self):
        return self.objective == "dsm"

    def _noise_levels(self, Z):
        """The noise levels of a DSM fit on the model-range data ``Z`` (None: loading, the file sets them)."""
        if Z is None:  # "auto": one level here, the file's count replaces it
            return [1.0] * (1 if isinstance(self.n_noise_levels, str) else self.n_noise_levels)
        sigma_max = self.sigma_max
        if isinstance(sigma_max, str):  # "auto": the largest distance between two rows (NCSN v2, technique 1)
            from sklearn.metrics import pairwise_distances

            flat = Z.reshape(len(Z), -1)
            if len(flat) > _SIGMA_MAX_ROWS:
                rows = np.random.RandomState(seed_from(self.random_state) % 2**32).choice(
                    len(flat), _SIGMA_MAX_ROWS, replace=False
                )
                flat = flat[np.sort(rows)]
            sigma_max = float(pairwise_distances(flat.astype(np.float64)).max()) if len(flat) > 1 else 0.0
        sigma_max = max(float(sigma_max), self.sigma_min)
        n_levels = self.n_noise_levels
        if isinstance(n_levels, str):  # "auto": consecutive levels overlap in this dimension (NCSN v2, technique 2)
            n_levels = min(overlapping_n_levels(sigma_max, self.sigma_min, int(np.prod(Z.shape[1:]))), MAX_NOISE_LEVELS)
        return geometric_noise_levels(sigma_max, self.sigma_min, n_levels)

    def _engine_params(self, Z=None):
        net_cls, extra = (DSMNet, {"noise_levels": self._noise_levels(Z)}) if self._dsm else super()._engine_params(Z)
        return net_cls, {**extra, "average": self.ema_decay}

    def _step_size(self, value=None):
        value = self.step_size if value is None else value
        if self._dsm:  # the step of the smallest level: step_size is in units of the level
            relative = _DSM_AUTO_STEP if isinstance(value, str) else float(value)
            return relative * self.sigma_min
        return super()._step_size(value)

    def _sampler(self):
        if not self._dsm:
            return super()._sampler()
        return LangevinSampler(n_steps=self._n_steps(), step_size=self._step_size(), noise_scale=None)

    def _build_chain_init(self):
        if not self._dsm:
            return super()._build_chain_init()
        return make_chain_init("noise")  # no bank: fresh starts from the source only

    def _optimizer(self):
        if self._dsm and self.optimizer == "adam":
            return torch.optim.Adam, {}  # Adam's own betas: DSM is a regression, not the ML game of IGEBM
        return super()._optimizer()

    def _chain_steps_per_update(self):
        return 1 if self._dsm else super()._chain_steps_per_update()  # dsm: the double backprop, about one step

    def _warm_setters(self):
        setters = super()._warm_setters()
        if self._dsm:  # what a DSM engine does not use stays as built (its sampler is exact Langevin)
            for name in ("noise_scale", "reinit_prob", "l2_reg", "data_noise"):
                setters.pop(name)
        return setters

    def _energies(self, Z, y=None):
        if not self._dsm:
            return super()._energies(Z, y)
        # E / sigma_min magnifies float32 rounding a hundredfold: chunks of one size make a row's energy independent
        # of the rows scored with it (as NGEBMNet.predict_logits does)
        idx = torch.arange(len(Z), device=Z.device)
        energy = (lambda i: self.net_.energy(Z[i])) if y is None else (lambda i: self.net_.energy(Z[i], y[i]))
        return batched(energy, idx, _SCORE_CHUNK, pad=True).double().cpu().numpy()

    @property
    def noise_levels_(self):
        """The decreasing noise levels of a DSM fit (``objective="dsm"`` only)."""
        check_is_fitted(self, "net_")
        levels = getattr(self.net_, "noise_levels_", None)
        if levels is None:
            raise AttributeError("noise_levels_ exists only for objective='dsm'.")
        return levels.sigmas.detach().cpu().numpy().astype(np.float64)

    # ------------------------------------------------------------------ fit
    @transactional_fit
    def fit(self, X, y=None):
        """Fit the energy to ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Training data; a DataFrame is accepted.
        y : array-like of shape (n_samples,), default=None
            Class labels, used only when ``conditional=True`` (then required).

        Returns
        -------
        self : EBMGenerator
            The fitted generator.
        """
        if not self.conditional:
            self._fit_engine(X, None, n_outputs=1)
            return self
        codes = self._fit_classes(y, _num_samples(X))
        self._fit_engine(X, codes, n_outputs=max(2, len(self.classes_)))
        return self

    def _label_tensor(self, y, n, generator):
        if not self.conditional:
            if y is not None:
                raise ValueError("y is only accepted by a generator fitted with conditional=True.")
            return None
        device = self.net_.device
        if y is None:
            return torch.randint(len(self.classes_), (n,), generator=generator, device=device)
        codes = self._encode_classes([y] if np.ndim(y) == 0 else y)
        if np.ndim(y) == 0:
            codes = np.full(n, codes[0])
        elif len(codes) != n:
            raise ValueError(f"y has {len(codes)} labels for n_samples={n}.")
        return torch.as_tensor(codes, dtype=torch.long, device=device)

    # -------------------------------------------------------------- sample
    def _starts(self, n, y, start, generator):
        bank = self.net_.chain_init_
        return bank.fresh(n, generator) if start == "source" else bank.starts(n, y, generator)

    @consistent_read
    def sample(self, n_samples=1, *, random_state=None, n_steps=None, y=None, start=None, return_chains=False,
               init=None, sampler=None):
        """Draw samples by shortrun Langevin dynamics (or the ``sampler`` given).

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples.
        random_state : int, RandomState instance or None, default=None
            Seed of the chains (a generator of this call only: thread-safe).
        n_steps : int, default=None
            Langevin steps; ``None`` uses the training ``n_steps``.
        y : label or array-like of shape (n_samples,), default=None
            Class(es) to sample from (``conditional=True`` only); ``None``
            draws classes uniformly.
        start : {"source", "bank"}, default=None
            Chain starts: ``"source"`` for fresh noise, ``"bank"`` for the
            fitted replay buffer or persistent bank; ``None`` starts as the
            training chains did.
        return_chains : bool, default=False
            Also return every intermediate state.
        init : {"noise", "bank"}, default=None
            Deprecated alias of ``start``.
        sampler : object, default=None
            A sampler that replaces the fitted Langevin sampler
            (``net_.sampler_``) for this call, e.g.
            :class:`~skebm.mcmc.HMCSampler` or a
            :class:`~skebm.mcmc.ParallelTempering`: any callable
            ``sampler(energy_fn, x0, generator=..., n_steps=...)`` that
            returns the final states (see :ref:`samplers`). It runs on the
            model's energy ``E(x) / T`` in the model's value space, with its
            own settings (``n_steps`` overrides its ``n_steps`` when given).
            ``None`` samples exactly as before.

        Returns
        -------
        X_new : ndarray or DataFrame
            Samples in the layout and value range of ``fit``'s ``X``.
        chains : ndarray of shape (n_steps + 1, n_samples, ...)
            Only when ``return_chains``: the trajectories.

        Raises
        ------
        ValueError
            When the chains diverge (non-finite states: a ``step_size`` far
            too large for the energy), or when ``n_samples`` chains cannot
            fit in the device's memory.
        TypeError
            When ``sampler`` is not a sampler.
        """
        self._check_fitted()
        _check_call(n_samples, n_steps)
        from .mcmc._protocol import check_sampler, run_sampler

        if sampler is not None:
            check_sampler(sampler)
        check_rows_fit(f"n_samples={n_samples}", n_samples, self._feature_shape, self.net_.device)
        start = _resolve_start(start, init)
        g = self._generator(random_state)
        y_t = self._label_tensor(y, n_samples, g)
        x0 = self._starts(n_samples, y_t, start, g)
        if sampler is None:
            out = self.net_.run_chains(x0, y_t, generator=g, n_steps=n_steps, return_chains=return_chains)
        else:
            with self.net_.thread_scope():  # threads: n_threads for the whole chain
                out = run_sampler(sampler, lambda x: self.net_.energy(x, y_t), x0, generator=g, n_steps=n_steps,
                                  return_chains=return_chains)
        _check_finite_chains(out[0] if return_chains else out, "lower step_size or raise temperature.")
        if return_chains:
            x, chains = out
            return self._from_model(x), self._from_model(chains)
        return self._from_model(out)

    # -------------------------------------------------------------- scores
    @consistent_read
    def score_samples(self, X):
        """Unnormalised log-density ``-E(x) / T`` of each sample.

        The value is a log-density only up to the unknown constant
        ``log Z``; compare samples under one model, not models with each
        other. For a normalised density use :class:`~skebm.EBMDensity`.
        With ``objective="dsm"`` it is the energy at the smallest noise
        level, ``-E(x) / (sigma_min * T)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Samples in the layout of ``fit``'s ``X``.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            ``-E(x) / T`` of each sample; higher is more typical.
        """
        self._check_fitted()
        X = self._validate_X(X, reset=False)
        return -self._energies(self._tensor(X))

    @consistent_read
    def score(self, X, y=None):
        """Sample quality against ``X``: minus the squared MMD.

        Draws ``min(len(X), 500)`` samples (seeded by ``random_state``) and
        returns ``-MMD^2`` between them and ``X`` in the model's rescaled
        space (RBF kernel, median bandwidth). Higher is better, so
        :class:`~sklearn.model_selection.GridSearchCV` can select sampler
        settings with it.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Reference samples, e.g. held-out data.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        score : float
            ``-MMD^2`` between samples and ``X``; 0 is the best.
        """
        from .metrics import mmd

        self._check_fitted()
        X = self._validate_X(X, reset=False)
        n = min(len(X), 500)
        g = self._generator(self.random_state)
        y_t = self._label_tensor(None, n, g)
        samples = self.net_.run_chains(self._starts(n, y_t, None, g), y_t, generator=g)
        samples = samples.reshape(n, -1).cpu().numpy().astype(np.float64)
        data = self._to_model(X).reshape(len(X), -1).astype(np.float64)
        return -float(mmd(samples, data))

    # ------------------------------------------------------------- inpaint
    @consistent_read
    def inpaint(self, X, mask, *, n_steps=None, random_state=None):
        """Fill the masked entries of ``X`` by Langevin dynamics.

        Only the entries where ``mask`` is True move; they start from noise
        and follow the energy's gradient with the rest of the sample held
        fixed (IGEBM inpainting). Also denoises: mask the corrupted region.

        Parameters
        ----------
        X : array-like, same layout as in ``fit``
            Samples to complete.
        mask : array-like of bool, shape of ``X`` or broadcastable to it
            True where values are missing (to be generated).
        n_steps : int, default=None
            Langevin steps; ``None`` uses the training ``n_steps``.
        random_state : int, RandomState instance or None, default=None
            Seed of the noise starts and of the chains.

        Returns
        -------
        X_filled : ndarray or DataFrame
            ``X`` with the masked entries generated, in the layout of ``X``.
        """
        self._check_fitted()
        _check_call(1, n_steps)
        X_valid = self._validate_X(X, reset=False)
        mask = np.asarray(mask, dtype=bool)
        try:
            mask = np.broadcast_to(mask.reshape(-1, *mask.shape[-1:]) if mask.ndim == 2 else mask, np.shape(X))
        except ValueError as exc:
            raise ValueError(f"mask of shape {mask.shape} does not broadcast to X of shape {np.shape(X)}.") from exc
        device = self.net_.device
        mask_t = torch.as_tensor(mask.reshape(len(X_valid), *self._feature_shape).astype(np.float32), device=device)
        g = self._generator(random_state)
        z = self._tensor(X_valid)
        x0 = torch.where(mask_t.bool(), self.net_.chain_init_.fresh(len(z), g), z)
        out = self.net_.run_chains(x0, None, generator=g, n_steps=n_steps, mask=mask_t)
        return self._from_model(out)


class ComposedGenerator:
    """Sum of the energies of several fitted generators (IGEBM composition).

    Built by :func:`compose`. Chains run on ``sum_i w_i E_i(x | y_i) / T_i``
    in the value space of the first generator (each generator's
    :class:`~skebm._base.Rescaler` maps the state into its own space);
    every generator must share the number of features.

    Parameters
    ----------
    terms : list of (EBMGenerator, label or None, float)
        Fitted generators, an optional class label of each (conditional
        generators), and weights.
    """

    def __init__(self, terms):
        self.terms = terms

    def energy(self, z, terms=None):
        """Composed energy of a batch ``z`` in the first generator's space (``terms``: those of one call)."""
        terms = self.terms if terms is None else terms
        first = terms[0][0]
        x_user = first.rescaler_.inverse_transform(z, clip=False)
        total = 0.0
        for gen, label, weight in terms:
            zi = gen.rescaler_.transform(x_user).reshape(-1, *gen._feature_shape)
            y = None
            if label is not None:
                y = torch.full((len(z),), int(gen._encode_classes([label])[0]), device=z.device, dtype=torch.long)
            total = total + weight * gen.net_.energy(zi, y)
        return total

    def sample(self, n_samples=1, *, random_state=None, n_steps=None, return_chains=False, sampler=None):
        """Draw samples from the composed energy (see :meth:`EBMGenerator.sample`).

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples.
        random_state : int, RandomState instance or None, default=None
            Seed of the chains.
        n_steps : int, default=None
            Langevin steps; ``None`` uses the first generator's ``n_steps``.
        return_chains : bool, default=False
            Also return every intermediate state.
        sampler : object, default=None
            A sampler that replaces the first generator's fitted sampler for
            this call (see :meth:`EBMGenerator.sample`).

        Returns
        -------
        X_new : ndarray or DataFrame
            Samples in the layout of the first generator's ``X``.
        """
        _check_call(n_samples, n_steps)
        from .mcmc._protocol import check_sampler, run_sampler

        if sampler is not None:
            check_sampler(sampler)
        # one fitted state of each generator for the whole call, whatever a concurrent refit commits
        terms = [(consistent_view(gen), label, weight) for gen, label, weight in self.terms]
        first = terms[0][0]
        check_rows_fit(f"n_samples={n_samples}", n_samples, first._feature_shape, first.net_.device)
        g = make_generator(random_state, first.net_.device)
        x0 = first.net_.chain_init_.fresh(n_samples, g)
        if sampler is None:
            out = first.net_.sampler_(lambda z: self.energy(z, terms), x0, generator=g, n_steps=n_steps,
                                      return_chains=return_chains)
        else:
            out = run_sampler(sampler, lambda z: self.energy(z, terms), x0, generator=g, n_steps=n_steps,
                              return_chains=return_chains)
        _check_finite_chains(out[0] if return_chains else out, "lower the weights or the first generator's step_size.")
        if return_chains:
            return first._from_model(out[0]), first._from_model(out[1])
        return first._from_model(out)


def compose(*generators, weights=None):
    """Compose fitted generators into one energy ``sum_i w_i E_i``.

    Sampling the sum draws samples that satisfy every model at once (the
    IGEBM "concept conjunction"); with conditional generators each term can
    fix its own class.

    Parameters
    ----------
    *generators : EBMGenerator or (EBMGenerator, label)
        Fitted generators with the same number of features; pass a
        ``(generator, label)`` pair to condition a conditional generator.
    weights : sequence of float, default=None
        Weight of each energy (finite numbers; a negative one repels);
        ``None`` gives 1 to each. Sampling raises a ``ValueError`` when
        the chains diverge (non-finite states), e.g. with huge weights.

    Returns
    -------
    composed : ComposedGenerator
        An object with ``sample(n_samples, n_steps=None, random_state=None)``.

    Examples
    --------
    >>> from skebm import EBMGenerator, compose
    >>> from skebm.datasets import make_toy_2d
    >>> a = EBMGenerator(max_iter=5, random_state=0).fit(make_toy_2d("moons", 200, random_state=0))
    >>> compose(a, a).sample(3, random_state=0).shape
    (3, 2)
    """
    if not generators:
        raise ValueError("compose needs at least one fitted generator.")
    terms = []
    weights = [1.0] * len(generators) if weights is None else list(weights)
    if len(weights) != len(generators):
        raise ValueError(f"Got {len(weights)} weights for {len(generators)} generators.")
    bad = [w for w in weights if not FINITE.is_satisfied_by(w)]
    if bad:
        raise ValueError(f"compose: each weight must be a finite number (not a bool), got {bad[0]!r} in {weights!r}.")
    for item, weight in zip(generators, weights):
        gen, label = item if isinstance(item, tuple) else (item, None)
        if not isinstance(gen, EBMGenerator):
            raise TypeError(f"compose takes fitted EBMGenerator objects, got {type(gen).__name__}.")
        gen._check_fitted()
        if label is not None and not gen.conditional:
            raise ValueError("A label can only condition a generator fitted with conditional=True.")
        terms.append((gen, label, float(weight)))
    n_features = {t[0].n_features_in_ for t in terms}
    if len(n_features) > 1:
        raise ValueError(f"Composed generators must share the number of features, got {sorted(n_features)}.")
    return ComposedGenerator(terms)
