"""NGEBMClassifier: the non-generative energy-based classifier (NG-EBM, JEM)."""

import warnings

import numpy as np
import torch
from scipy.special import logsumexp, softmax
from sklearn.base import ClassifierMixin
from sklearn.utils._param_validation import Hidden, StrOptions

from sklearn.utils.validation import _num_samples

from ._base import BaseEBM, _ClassLabelsMixin, _PresetMixin, _TorchLogitsMixin, consistent_read, transactional_fit
from ._docs import fill_doc
from ._validation import NONNEG, NONNEG_SCALE
from .engine import NGEBMLoss, NGEBMNet
from .mcmc import NoiseInit

__all__ = ["NGEBMClassifier"]

_OOD_KINDS = ("logsumexp", "max_softmax", "approximate_mass")

#: What each prediction method reads off the float64 logits (n, n_classes): one path for all of them.
_FROM_LOGITS = {
    # two classes, as in scikit-learn: the 1-D score of the positive class
    "decision_function": lambda logits: logits[:, 1] - logits[:, 0] if logits.shape[1] == 2 else logits,
    "predict_log_proba": lambda logits: logits - logsumexp(logits, axis=1, keepdims=True),
    "predict_proba": lambda logits: softmax(logits, axis=1),
    "predict": lambda logits: np.argmax(logits, axis=1),
    "logsumexp": lambda logits: logsumexp(logits, axis=1),
    "max_softmax": lambda logits: softmax(logits, axis=1).max(axis=1),
}


@fill_doc
class NGEBMClassifier(_ClassLabelsMixin, _TorchLogitsMixin, _PresetMixin, ClassifierMixin, BaseEBM):
    r"""Classifier trained with the non-generative EBM loss (NG-EBM).

    A network maps ``x`` to logits ``f(x)``; read as an energy-based model
    (JEM), ``E(x, y) = -f(x)[y]`` and ``E(x) = -logsumexp_y f(x)[y]``. The
    NG-EBM loss of Piland et al. (2023) adds two terms to the
    cross-entropy that act on ``E(x)`` without any MCMC:

    .. math::

        L = \mathrm{CE}(f(x), y)
            + \beta \, \mathrm{mean}_i (\bar E - E_i)^2
            + \gamma \, \mathrm{mean}_i \|\nabla_x E_i\|_2

    the energy variance (weight ``energy_variance``) and the approximate
    mass (weight ``approximate_mass``, double backprop), on inputs with
    Gaussian noise ``data_noise``. The result is a classifier with better
    calibrated probabilities and energy-based out-of-distribution scores
    (:meth:`ood_score`). ``energy_variance = approximate_mass = 0`` gives a
    plain cross-entropy classifier with the same network, the baseline to
    compare with. ``generative_weight > 0`` adds JEM's maximum-likelihood
    term for ``p(x)`` with Langevin negatives from a replay buffer (about
    ``n_steps`` times the cost per update; JEM training can diverge: see
    ``on_divergence``).

    Features are standardised and images mapped to [-1, 1] internally.

    Cost of a default fit: 1,500 updates of 64 samples with a double
    backward pass (the approximate-mass term) and no MCMC: two to three
    times a plain cross-entropy fit of the same network. JEM mode adds
    ``n_steps`` Langevin steps per update. Measured times, accuracy and
    calibration (from ``benchmarks/reports/``): :ref:`User Guide <classifier>`.

    Read more in the :ref:`User Guide <classifier>`.

    Parameters
    ----------
    {energy}
    {energy_params}
    {image_shape}
    energy_variance : float, default=0.01
        Weight beta of the energy-variance term. The NG-EBM paper uses 1 on
        CIFAR with a wide ResNet; on small data that makes the model
        under-confident, so the default is chosen on digits.
    approximate_mass : float, default=0.01
        Weight gamma of the approximate-mass term
        ``mean ||grad_x logsumexp f(x)||_2``.
    data_noise : float, default=0.03
        {data_noise} Sigma, 0.03 in NG-EBM and JEM.
    generative_weight : float, default=0.0
        Weight of JEM's ``p(x)`` maximum-likelihood term; 0 is NG-EBM (no
        MCMC at all), a positive value turns on JEM mode.
    max_iter : int, default=1500
        {max_iter}
    batch_size : int, default=64
        Training samples per update (and Langevin chains in JEM mode).
    lr : float, default=1e-3
        Learning rate.
    optimizer : {"adam", "sgd"} or torch.optim.Optimizer class, default="adam"
        Optimiser; ``"adam"`` uses the usual ``betas=(0.9, 0.999)`` as the
        NG-EBM and JEM code do.
    n_steps : int, default=20
        Langevin steps per update in JEM mode (JEM: 20).
    step_size : float, default=1.0
        Langevin step size epsilon in JEM mode: the drift is
        ``step_size**2 / 2`` times the energy gradient divided by
        ``temperature``.
    noise_scale : float or None, default=0.01
        Standard deviation of the Langevin noise in JEM mode (JEM: 0.01);
        ``None`` uses ``step_size``.
    temperature : float, default=1.0
        Temperature ``T`` of ``p(x) = exp(-E(x) / T) / Z`` in JEM mode.
    init : {"replay", "noise", "data", "persistent"} or ChainInit, default="replay"
        Where the JEM-mode chains start (see :mod:`skebm.mcmc`); JEM uses a
        replay buffer.
    buffer_size : int, default=10000
        Size of the replay buffer or persistent bank (JEM mode).
    reinit_prob : float, default=0.05
        Probability that a chain drawn from the bank restarts from noise
        (JEM mode).
    {device}
    {precision}
    {callbacks}
    {verbose}
    {warm_start}
    {on_divergence}
    {n_threads}
    {accelerator}
    {random_state}
    input_noise : float, default="deprecated"
        Deprecated alias of ``data_noise``; will be removed.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels, as given in ``y`` (strings too).
    {fitted}

    See Also
    --------
    sklearn.neural_network.MLPClassifier : Plain cross-entropy network.
    sklearn.calibration.CalibratedClassifierCV : Post-hoc calibration.
    skebm.metrics.expected_calibration_error : Calibration metric.

    References
    ----------
    .. [1] Piland, Sweet, Czajka, Flynn (2023), "Non-Generative Energy Based
       Models", arXiv:2304.01297.
    .. [2] Grathwohl et al. (2020), "Your classifier is secretly an energy
       based model and you should treat it like one", ICLR.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skebm import NGEBMClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = NGEBMClassifier(max_iter=100, random_state=0).fit(X[:500], y[:500])
    >>> clf.predict_proba(X[500:502]).shape
    (2, 10)
    >>> bool(clf.score(X[500:800], y[500:800]) > 0.8)
    True
    """

    def __init__(
        self,
        energy="auto",
        *,
        energy_params=None,
        image_shape=None,
        energy_variance=0.01,
        approximate_mass=0.01,
        data_noise=0.03,
        generative_weight=0.0,
        max_iter=1500,
        batch_size=64,
        lr=1e-3,
        optimizer="adam",
        n_steps=20,
        step_size=1.0,
        noise_scale=0.01,
        temperature=1.0,
        init="replay",
        buffer_size=10000,
        reinit_prob=0.05,
        device="auto",
        precision="fp32",
        callbacks=None,
        verbose=0,
        warm_start=False,
        on_divergence="recover",
        n_threads="auto",
        accelerator=None,
        random_state=None,
        input_noise="deprecated",
    ):
        self.energy = energy
        self.energy_params = energy_params
        self.image_shape = image_shape
        self.energy_variance = energy_variance
        self.approximate_mass = approximate_mass
        self.data_noise = data_noise
        self.generative_weight = generative_weight
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.n_steps = n_steps
        self.step_size = step_size
        self.noise_scale = noise_scale
        self.temperature = temperature
        self.init = init
        self.buffer_size = buffer_size
        self.reinit_prob = reinit_prob
        self.device = device
        self.precision = precision
        self.callbacks = callbacks
        self.verbose = verbose
        self.warm_start = warm_start
        self.on_divergence = on_divergence
        self.n_threads = n_threads
        self.accelerator = accelerator
        self.random_state = random_state
        self.input_noise = input_noise

    _parameter_constraints = {
        **BaseEBM._shared_constraints,
        "energy_variance": [NONNEG],
        "approximate_mass": [NONNEG],
        "generative_weight": [NONNEG],
        "input_noise": [NONNEG_SCALE, Hidden(StrOptions({"deprecated"}))],
    }
    _fitted_attributes = (*BaseEBM._fitted_attributes, "net_", "classes_")

    # ------------------------------------------------------------------ fit
    @property
    def _data_noise(self):
        if self.input_noise != "deprecated":
            warnings.warn(
                "input_noise is deprecated and will be removed; use data_noise (the same noise under the name "
                "every skebm estimator uses).",
                FutureWarning,
                stacklevel=4,
            )
            return float(self.input_noise)
        return float(self.data_noise)

    def _optimizer(self):
        if self.optimizer == "adam":
            return torch.optim.Adam, {"optimizer__betas": (0.9, 0.999)}
        return super()._optimizer()

    def _build_chain_init(self):
        # NG-EBM runs no chain and allocates no bank; JEM mode uses the init strategy
        return super()._build_chain_init() if self.generative_weight > 0 else NoiseInit()

    def _chain_steps_per_update(self):
        return self.n_steps if self.generative_weight > 0 else 0  # NG-EBM runs no chain

    def _engine_params(self, Z=None):
        return NGEBMNet, {
            "criterion": NGEBMLoss,
            "criterion__energy_variance": self.energy_variance,
            "criterion__approximate_mass": self.approximate_mass,
            "criterion__generative_weight": self.generative_weight,
            "criterion__l2_reg": 0.0,
        }

    def _warm_setters(self):
        setters = super()._warm_setters()
        criterion = self.net_.criterion_
        for name in ("energy_variance", "approximate_mass"):
            setters[name] = lambda value, name=name: setattr(criterion, name, value)
        setters["input_noise"] = lambda value: setattr(self.net_, "data_noise", self._data_noise)
        setters["data_noise"] = setters["input_noise"]
        return setters

    @transactional_fit
    def fit(self, X, y):
        """Fit the classifier.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Training data; a DataFrame is accepted. Flat images need
            ``image_shape``.
        y : array-like of shape (n_samples,)
            Class labels (numbers or strings).

        Returns
        -------
        self : NGEBMClassifier
            The fitted classifier.
        """
        codes = self._fit_classes(y, _num_samples(X), min_classes=2)
        self._fit_engine(X, codes, n_outputs=len(self.classes_))
        return self

    # -------------------------------------------------------------- predict
    def _outputs(self, X, kind):
        """Validate ``X``; the output ``kind`` (a key of ``_FROM_LOGITS``, or ``"approximate_mass"``)."""
        self._check_fitted()
        Z = self._tensor(self._validate_X(X, reset=False))
        if kind == "approximate_mass":
            return -self.net_.predict_logits(Z, approximate_mass=True)[1]
        return _FROM_LOGITS[kind](self.net_.predict_logits(Z))

    @consistent_read
    def decision_function(self, X):
        """Logits of each class.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Samples, in the layout and value range of ``fit``'s ``X``.

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes) or (n_samples,)
            The logits ``f(x)``; for two classes, as in scikit-learn, the 1-D
            score of the positive class ``f(x)[1] - f(x)[0]``.
        """
        return self._outputs(X, "decision_function")

    @consistent_read
    def predict_log_proba(self, X):
        """Log of the class probabilities ``log softmax f(x)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Samples, in the layout and value range of ``fit``'s ``X``.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Columns ordered as ``classes_``.
        """
        return self._outputs(X, "predict_log_proba")

    @consistent_read
    def predict_proba(self, X):
        """Class probabilities ``softmax f(x)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Samples, in the layout and value range of ``fit``'s ``X``.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns ordered as ``classes_``.
        """
        return self._outputs(X, "predict_proba")

    @consistent_read
    def predict(self, X):
        """Predicted class labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Samples, in the layout and value range of ``fit``'s ``X``.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        index = self._outputs(X, "predict")  # before classes_: an unfitted call raises NotFittedError
        return self.classes_[index]

    # ------------------------------------------------------------ EBM scores
    @consistent_read
    def score_samples(self, X):
        """Unnormalised log-density ``logsumexp_y f(x)[y] = -E(x)``.

        ``log p(x)`` up to the unknown constant ``log Z`` (JEM): larger for
        inputs that look like the training data. See :meth:`ood_score` for
        the other out-of-distribution scores.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Samples, in the layout and value range of ``fit``'s ``X``.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            The logsumexp of the logits of each sample.
        """
        return self._outputs(X, "logsumexp")

    @consistent_read
    def ood_score(self, X, kind="logsumexp"):
        """Out-of-distribution score: higher means more in-distribution.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Samples, in the layout and value range of ``fit``'s ``X``.
        kind : {"logsumexp", "max_softmax", "approximate_mass"}, default="logsumexp"
            ``"logsumexp"``: ``logsumexp f(x) = -E(x)`` (:meth:`score_samples`);
            ``"max_softmax"``: the largest class probability;
            ``"approximate_mass"``: ``-||grad_x logsumexp f(x)||_2`` in the
            model's rescaled input space (JEM's approximate mass: a
            steep density means little mass around ``x``).

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Use with :func:`skebm.metrics.ood_auroc` (in-distribution
            positive).
        """
        if kind not in _OOD_KINDS:
            raise ValueError(f"kind must be one of {_OOD_KINDS}, got {kind!r}.")
        return self._outputs(X, kind)
