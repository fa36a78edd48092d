"""EBMPurifier: midrun Langevin purification, and the defended classifier."""

import numpy as np
import torch
from scipy.special import softmax
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    MetaEstimatorMixin,
    OneToOneFeatureMixin,
    TransformerMixin,
    clone,
)
from sklearn.utils._param_validation import HasMethods, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import BaseEBM, _PresetMixin, consistent_read, transactional_fit
from ._docs import fill_doc
from ._random import seed_from
from ._torch_classifier import as_torch_classifier
from ._torch_utils import check_rows_fit
from ._validation import NONNEG_SCALE, POSITIVE_INT, SCALE, check_params
from .engine._purify import PurifyChains
from .mcmc import RowNoise, as_noise, row_keys

__all__ = ["EBMPurifier", "PurifiedClassifier"]

def _input_layout(X, n_features):
    """Layout ``(kind, dtype)`` of a transform's input, as :meth:`BaseEBM._from_model` takes it."""
    kind = "frame" if hasattr(X, "columns") else ("4d" if getattr(X, "ndim", 2) == 4 else "2d")
    dtype = getattr(X, "dtype", None)
    if kind == "frame":  # pandas extension dtypes (Int64, Float32) by their numpy counterparts
        dtypes = [getattr(d, "numpy_dtype", d) for d in X.dtypes]
        dtype = np.result_type(*dtypes) if len(X.columns) else np.float64
    dtype = np.dtype(dtype) if dtype is not None and np.issubdtype(np.dtype(dtype), np.floating) else np.float64
    return kind, dtype


@fill_doc
class EBMPurifier(OneToOneFeatureMixin, TransformerMixin, _PresetMixin, BaseEBM):
    """Energy-based purifier: midrun Langevin dynamics from each input.

    ``fit`` learns an energy ``E(x)`` by maximum likelihood with Langevin
    negatives started at perturbed data (or drawn from a persistent bank
    rejuvenated from the data), the midrun setting of the EBM Life Cycle
    defence. ``transform`` then runs ``n_purify_steps`` Langevin steps from
    each input: the dynamics pull an off-manifold input (an adversarial
    perturbation, noise) back towards the data while the injected noise
    washes out the fine structure an attack relies on. Put it in front of
    any classifier with :func:`~sklearn.pipeline.make_pipeline`, or use
    :class:`PurifiedClassifier` to average the classifier over several
    purified replicates, as the defence of the literature does.

    Read more in the :ref:`User Guide <purifier>`.

    Parameters
    ----------
    {energy}
    {energy_params}
    {image_shape}
    max_iter : int, default=1000
        {max_iter}
    batch_size : int, default=64
        Data samples (and chains) per update.
    lr : float, default=1e-3
        Learning rate (Life Cycle: 1e-4 for its larger networks and longer
        training).
    {optimizer}
    n_steps : int, default=50
        Langevin steps per training update (Life Cycle: 100 on CIFAR-10).
    step_size : float or "auto", default="auto"
        Langevin step size epsilon, in the model's rescaled space (images
        in ``[-1, 1]``, flat features standardised). ``"auto"`` grows it
        with the image as :class:`EBMGenerator`'s does (1.0 on 8x8 digits,
        4.5 on 28x28, 10.2 on 32x32 colour; 1.0 for flat features); the
        value used is ``step_size_``. The drift is
        ``step_size**2 / 2`` times the energy gradient divided by
        ``temperature``. With ``noise_scale=0.01`` the update is
        ``x <- x - grad E / 2 + 0.01 xi``, a large drift and a small noise
        as in the Life Cycle code (``x <- x - grad E + eps xi``, exact
        Langevin at temperature ``eps**2 / 2``).
    noise_scale : float or None, default=0.01
        Standard deviation of the Langevin noise; ``None`` uses
        ``step_size`` (exact Langevin dynamics at ``temperature``).
    temperature : float, default=1.0
        Temperature ``T`` of the density ``exp(-E(x) / T)``.
    init : {"data", "persistent"} or ChainInit, default="data"
        Where training chains start. ``"data"``: at the data batch plus
        Gaussian noise of standard deviation ``init_noise`` (a
        data-initialised bank; the model learns to bring perturbed
        inputs back within ``n_steps`` steps). ``"persistent"``: a
        persistent bank of ``buffer_size`` chains, started from noise, whose
        drawn chains restart from the data batch with probability
        ``reinit_prob`` (the EBM Life Cycle defence; it needs long training).
        Any name of :mod:`skebm.mcmc` or a ChainInit instance is accepted.
        Whatever the strategy, purification itself always starts at the
        input.
    init_noise : float, default=0.5
        Standard deviation of the noise added to data-initialised chain
        starts (``init="data"`` only), in the rescaled space (images in
        ``[-1, 1]``).
    buffer_size : int, default=10000
        Number of chains in the persistent bank (Life Cycle: 25,000).
    reinit_prob : float, default=0.05
        Probability that a chain drawn from the bank restarts from the data
        (Life Cycle: 0.05).
    l2_reg : float, default=0.0
        {l2_reg}
    data_noise : float, default=0.01
        {data_noise} Life Cycle: 0.02.
    n_purify_steps : int, default=50
        Langevin steps run from each input by :meth:`transform` (Life
        Cycle: 1,500 on CIFAR-10). Longer purification removes larger
        perturbations but drifts further from the input; choose it on
        held-out data. The default is the setting of the robustness
        tables of the user guide; 100 steps were no more robust there and
        moved clean 32x32 colour images out of their class (the
        :ref:`images guide <images>`).
    purify_step_size : float, default=None
        Step size of purification; ``None`` uses ``step_size``. The noise
        scale keeps the training ratio ``noise_scale / step_size``.
    purify_noise : float, default=0.0
        Standard deviation of Gaussian noise added to each input before the
        Langevin steps (model space: images in ``[-1, 1]``), the
        noise-then-denoise purification of Yoon et al. (2021); it matches
        how ``init="data"`` chains start in training (``init_noise``). 0
        starts the chains at the input itself, as in EBM Life Cycle.
    n_replicates : int, default=1
        Independent purifications of each input. :meth:`transform` returns
        their mean; :meth:`purify` returns them all;
        :class:`PurifiedClassifier` averages the classifier over them.
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
        Langevin step size of the training chains (``step_size`` resolved).

    See Also
    --------
    PurifiedClassifier : Classifier averaged over purified replicates.
    skebm.attacks.evaluate_robustness : BPDA + EOT evaluation of the defence.
    skebm.EBMGenerator : Shortrun synthesis with the same engine.

    Notes
    -----
    Purification is stochastic, but :meth:`transform` and :meth:`purify`
    draw each row's noise from a counter-based stream keyed by the row's
    values and ``random_state`` (:class:`~skebm.mcmc.RowNoise`): a row is
    purified the same way alone, inside any batch and in any order, and
    repeated calls agree (with an integer ``random_state``). Replicates of
    a row get independent streams. :meth:`purify_tensor` draws from a
    generator instead (fresh noise at every call, as attacks need), or
    from a noise stream the caller passes (the noise an attacker knows);
    with ``differentiable=True`` it keeps the autograd graph through every
    Langevin step (full-gradient attacks, :mod:`skebm.attacks`).

    Output layout: :meth:`transform` returns the layout and float dtype of
    its input (a 4-D array stays 4-D, a DataFrame stays a DataFrame); it
    supports :meth:`set_output`.

    Cost of a default fit: 1,000 updates of 64 chains of 50 Langevin
    steps, minutes of one CPU core on 8x8 digits with the default conv net;
    purification costs ``n_purify_steps`` network evaluations with
    gradients per input and replicate. Measured times and robust accuracies
    (from ``benchmarks/reports/``): :ref:`User Guide <purifier>`.

    References
    ----------
    .. [1] Hill, Mitchell, Zhu, "Stochastic Security: Adversarial Defense
       Using Long-Run Dynamics of Energy-Based Models", ICLR 2021.
    .. [2] Hill, Mitchell, Chen, Du, Shah, Zhu, "EBM Life Cycle: MCMC
       Strategies for Synthesis, Defense, and Density Modeling",
       arXiv:2205.12243, 2022.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skebm import EBMPurifier
    >>> X, _ = load_digits(return_X_y=True)
    >>> purifier = EBMPurifier(image_shape=(1, 8, 8), max_iter=10, n_steps=5,
    ...                        n_purify_steps=10, random_state=0).fit(X)
    >>> purifier.transform(X[:3]).shape
    (3, 64)
    """

    def __init__(
        self,
        energy="auto",
        *,
        energy_params=None,
        image_shape=None,
        max_iter=1000,
        batch_size=64,
        lr=1e-3,
        optimizer="adam",
        n_steps=50,
        step_size="auto",
        noise_scale=0.01,
        temperature=1.0,
        init="data",
        init_noise=0.5,
        buffer_size=10000,
        reinit_prob=0.05,
        l2_reg=0.0,
        data_noise=0.01,
        n_purify_steps=50,
        purify_step_size=None,
        purify_noise=0.0,
        n_replicates=1,
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
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.n_steps = n_steps
        self.step_size = step_size
        self.noise_scale = noise_scale
        self.temperature = temperature
        self.init = init
        self.init_noise = init_noise
        self.buffer_size = buffer_size
        self.reinit_prob = reinit_prob
        self.l2_reg = l2_reg
        self.data_noise = data_noise
        self.n_purify_steps = n_purify_steps
        self.purify_step_size = purify_step_size
        self.purify_noise = purify_noise
        self.n_replicates = n_replicates
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
        "step_size": [*BaseEBM._shared_constraints["step_size"], StrOptions({"auto"})],
        "init_noise": [NONNEG_SCALE],
        "n_purify_steps": [POSITIVE_INT],
        "purify_step_size": [SCALE, None],
        "purify_noise": [NONNEG_SCALE],
        "n_replicates": [POSITIVE_INT],
    }
    _fitted_attributes = (*BaseEBM._fitted_attributes, "net_")
    # bank chains rejuvenate from the data (Life Cycle defence); data starts get init_noise
    _chain_init_defaults = {"rejuvenate": "data"}

    # ------------------------------------------------------------------ fit
    @transactional_fit
    def fit(self, X, y=None):
        """Learn the energy of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Clean training data; a DataFrame is accepted.
        y : None
            Ignored.

        Returns
        -------
        self : EBMPurifier
            The fitted purifier.
        """
        self._fit_engine(X, None, n_outputs=1)
        return self

    # ------------------------------------------------------------ purify
    def _chains(self, n_steps=None):
        """The purification chains on the engine (:class:`~skebm.engine._purify.PurifyChains`)."""
        train_step = self._step_size()
        step = train_step if self.purify_step_size is None else self.purify_step_size
        noise = None if self.noise_scale is None else self.noise_scale * step / train_step
        n_steps = self.n_purify_steps if n_steps is None else n_steps
        return PurifyChains(self.net_, n_steps, step, noise, start_noise=self.purify_noise)

    @consistent_read
    def purify(self, X, *, n_replicates=None, n_steps=None, random_state=None):
        """Purify each input ``n_replicates`` times, independently.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Inputs to purify.
        n_replicates : int, default=None
            Number of replicates; ``None`` uses the ``n_replicates``
            parameter.
        n_steps : int, default=None
            Langevin steps; ``None`` uses ``n_purify_steps``.
        random_state : int, RandomState instance or None, default=None
            Seed of the Langevin noise; ``None`` uses the estimator's
            ``random_state`` (so repeated calls agree).

        Returns
        -------
        X_purified : ndarray of shape (n_replicates, n_samples, ...)
            The replicates, each in the layout of ``X`` (a DataFrame input
            gives a 3-D array) and the value range of ``fit``'s ``X``.
        """
        self._check_fitted()
        n_replicates = self.n_replicates if n_replicates is None else n_replicates
        check_params(
            {"n_replicates": [POSITIVE_INT], "n_steps": [POSITIVE_INT, None]},
            {"n_replicates": n_replicates, "n_steps": n_steps},
            "purify",
        )
        layout = _input_layout(X, self.n_features_in_)
        X = self._validate_X(X, reset=False)
        check_rows_fit(f"n_replicates={n_replicates} of {len(X)} inputs", n_replicates * len(X), self._feature_shape,
                       self.net_.device)
        random_state = self.random_state if random_state is None else random_state
        z = self._tensor(X)
        noise = RowNoise(row_keys(z, seed_from(random_state)))
        out = self._chains(n_steps).run(z, n_replicates, noise, progress=bool(self.verbose))
        return self._from_model(out, ("2d" if layout[0] == "frame" else layout[0], layout[1]))

    @consistent_read
    def transform(self, X):
        """Purify ``X``: ``n_purify_steps`` Langevin steps from each input.

        With ``n_replicates > 1`` the mean of the replicates is returned.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Inputs, in the value range of ``fit``'s ``X``.

        Returns
        -------
        X_purified : ndarray or DataFrame
            Purified copy of ``X``, in the layout and float dtype of ``X``.
        """
        out = self.purify(X).mean(axis=0)
        if hasattr(X, "columns"):
            import pandas as pd

            return pd.DataFrame(out, columns=self.feature_names_in_, index=X.index)
        return out

    @consistent_read
    def purify_tensor(self, X, *, n_steps=None, noise=None, generator=None, differentiable=False,
                      checkpoint_segments="sqrt"):
        """Purify a torch tensor in the user's value range (for attacks).

        Parameters
        ----------
        X : torch.Tensor of shape (n, n_features) or (n, C, H, W)
            Inputs in the value range of ``fit``'s ``X``, on any device.
        n_steps : int, default=None
            Langevin steps; ``None`` uses ``n_purify_steps``.
        noise : object, default=None
            A noise stream (``randn_like``): a fixed one (e.g. a seeded
            :class:`~skebm.mcmc.RowNoise`) reproduces the same purification,
            as a reparameterised attack needs. ``None`` draws fresh noise
            from ``generator``.
        generator : torch.Generator, default=None
            Generator of the fresh noise (on the model's device); ``None``
            uses torch's global generator.
        differentiable : bool, default=False
            Keep the autograd graph through every Langevin step (second
            derivatives of the energy), so gradients reach ``X``: the
            full-gradient attack. Memory grows like ``sqrt(n_steps)`` with
            the default checkpointing.
        checkpoint_segments : "sqrt", int or None, default="sqrt"
            Gradient checkpointing of the differentiable chain (see
            :func:`skebm.mcmc.unrolled_langevin`).

        Returns
        -------
        X_purified : torch.Tensor
            Same shape, dtype and device as ``X``; detached unless
            ``differentiable``.
        """
        self._check_fitted()
        if not isinstance(X, torch.Tensor):
            raise TypeError(f"purify_tensor takes a torch.Tensor, got {type(X).__name__}.")
        if X[0].numel() != self.n_features_in_:
            raise ValueError(
                f"X has {X[0].numel()} features per sample, but the purifier was fitted on {self.n_features_in_}."
            )
        z = self.rescaler_.transform(X.to(device=self.net_.device, dtype=torch.float32).reshape(len(X), -1))
        z = z.reshape(len(X), *self._feature_shape)
        chains, noise = self._chains(n_steps), as_noise(noise, generator)
        out = chains.run_differentiable(z, noise, checkpoint_segments) if differentiable else chains.run(z, 1, noise)[0]
        out = self.rescaler_.inverse_transform(out.reshape(len(X), -1))
        return out.reshape(X.shape).to(device=X.device, dtype=X.dtype)

    @consistent_read
    def score_samples(self, X):
        """Unnormalised log-density ``-E(x) / T`` of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Samples in the value range of ``fit``'s ``X``.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Higher for inputs the model finds more typical (up to the
            unknown ``log Z``).
        """
        self._check_fitted()
        X = self._validate_X(X, reset=False)
        return -self._energies(self._tensor(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


class PurifiedClassifier(MetaEstimatorMixin, ClassifierMixin, BaseEstimator):
    """Classifier defended by purification: averaged over purified replicates.

    Each input is purified ``n_replicates`` times independently by the
    purifier, the classifier is applied to every replicate, and its outputs
    are averaged: probabilities for scikit-learn classifiers, logits for
    torch classifiers (a :class:`torch.nn.Module`, a skorch net, or an
    object implementing ``torch_logits``, see
    :func:`skebm.attacks.as_torch_classifier`), the defended prediction of
    Hill et al. (2021). All replicates of a batch run as one batch of
    chains.

    ``fit`` fits clones of both: the purifier on ``X`` (unsupervised) and
    the classifier on the clean ``X, y``. To use components fitted
    already, wrap them in :class:`sklearn.frozen.FrozenEstimator`.

    Read more in the :ref:`User Guide <purifier>`.

    Parameters
    ----------
    purifier : EBMPurifier or transformer with ``purify``
        The purifier. Anything with
        ``purify(X, n_replicates=..., random_state=...)`` returning
        ``(n_replicates, n_samples, ...)`` works.
    classifier : classifier
        Any scikit-learn classifier with ``predict_proba``, or a torch
        classifier (see above).
    n_replicates : int, default=None
        Purified replicates per input; ``None`` uses the purifier's
        ``n_replicates``.
    average : {"auto", "proba", "logits"}, default="auto"
        What is averaged over replicates: ``"auto"`` averages logits for
        torch classifiers and probabilities otherwise; ``"logits"`` with a
        non-torch classifier averages ``log(predict_proba)``.
    random_state : int, RandomState instance or None, default=None
        Seed of the purification noise at prediction time; ``None`` uses
        the purifier's own ``random_state``.

    Attributes
    ----------
    purifier_ : estimator
        The fitted purifier.
    classifier_ : estimator
        The fitted classifier.
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    n_features_in_ : int
        Number of features seen in ``fit``.

    See Also
    --------
    EBMPurifier : The purifier.
    skebm.attacks.evaluate_robustness : Attack it honestly (BPDA + EOT).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skebm import EBMPurifier, PurifiedClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> purifier = EBMPurifier(image_shape=(1, 8, 8), max_iter=10, n_steps=5,
    ...                        n_purify_steps=5, random_state=0)
    >>> clf = PurifiedClassifier(purifier, LogisticRegression(max_iter=500), n_replicates=4)
    >>> clf.fit(X[:500], y[:500]).predict_proba(X[:2]).shape
    (2, 10)
    """

    _parameter_constraints = {
        "purifier": [HasMethods(["fit", "purify"])],
        "classifier": [HasMethods(["fit"])],
        "n_replicates": [POSITIVE_INT, None],
        "average": [StrOptions({"auto", "proba", "logits"})],
        "random_state": ["random_state"],
    }

    def __init__(self, purifier, classifier, *, n_replicates=None, average="auto", random_state=None):
        self.purifier = purifier
        self.classifier = classifier
        self.n_replicates = n_replicates
        self.average = average
        self.random_state = random_state

    @transactional_fit
    def fit(self, X, y):
        """Fit the purifier on ``X`` and the classifier on ``(X, y)``.

        Both are fitted before either becomes the meta-estimator's: a fit
        that fails leaves it as it was.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Clean training data.
        y : array-like of shape (n_samples,)
            Class labels.

        Returns
        -------
        self : PurifiedClassifier
        """
        purifier = clone(self.purifier).fit(X, None)
        classifier = clone(self.classifier).fit(X, y)
        self.purifier_, self.classifier_ = purifier, classifier
        self.classes_ = np.asarray(self.classifier_.classes_)
        self.n_features_in_ = self.purifier_.n_features_in_
        if hasattr(self.purifier_, "feature_names_in_"):
            self.feature_names_in_ = self.purifier_.feature_names_in_
        return self

    def _torch_view(self):
        try:
            return as_torch_classifier(self.classifier_)
        except TypeError:
            return None

    def _replicate_outputs(self, X):
        """Average of the classifier's outputs over purified replicates (and its kind)."""
        check_is_fitted(self, "classifier_")
        self._validate_params()
        n_rep = self.n_replicates if self.n_replicates is not None else getattr(self.purifier_, "n_replicates", 1)
        reps = np.asarray(self.purifier_.purify(X, n_replicates=n_rep, random_state=self.random_state))
        n = reps.shape[1]
        flat = reps.reshape(n_rep * n, *reps.shape[2:])
        view = self._torch_view() if self.average in ("auto", "logits") else None
        if view is not None:
            return view.predict_logits(flat).reshape(n_rep, n, -1).mean(axis=0), "logits"
        proba = self.classifier_.predict_proba(flat).reshape(n_rep, n, -1)
        if self.average == "logits":
            return np.log(np.clip(proba, 1e-12, None)).mean(axis=0), "logits"
        return proba.mean(axis=0), "proba"

    @consistent_read
    def predict_proba(self, X):
        """Class probabilities of the defended classifier.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Inputs.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Mean probabilities over replicates, or the softmax of the mean
            logits.
        """
        out, kind = self._replicate_outputs(X)
        return softmax(out, axis=1) if kind == "logits" else out

    @consistent_read
    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
        """
        return np.log(np.clip(self.predict_proba(X), 1e-300, None))

    @consistent_read
    def predict(self, X):
        """Predicted class of each input (the arg-max of the averaged output).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        out, _ = self._replicate_outputs(X)
        return self.classes_[np.argmax(out, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        return tags
