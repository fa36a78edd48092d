"""What every skebm estimator shares.

Parameter constraints, the transactional ``fit``, input validation, the
layout and value-range round trip (:class:`Rescaler`), device, label
encoding, and building and owning the skorch engine live here, once, for
the four estimators. The estimators themselves convert layouts and ranges
and call the engine; the engine owns every piece of fitted MCMC state.
"""

import copy
import functools
import math
import warnings
from numbers import Integral

import numpy as np
import torch
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils._param_validation import HasMethods, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from ._cost import resolve_precision, warn_bf16_on_cpu, warn_if_slow
from ._images import image_batch_shape
from ._threads import thread_limit
from ._torch_utils import check_rows_fit
from ._version import __version__
from ._validation import N_THREADS, NONNEG, NONNEG_INT, NONNEG_SCALE, POSITIVE_INT, PROB, SCALE, TEMPERATURE
from .engine import EBMNet, MaxLikelihoodLoss, ProgressBar
from ._random import derive_seed, make_generator, seed_from  # noqa: F401 (make_generator: re-exported)
from .mcmc import CHAIN_INITS, ChainInit, LangevinSampler, NoiseSource, make_chain_init
from .nn import check_energy_module, make_energy

__all__ = [
    "BaseEBM",
    "Rescaler",
    "auto_step_size",
    "consistent_read",
    "consistent_view",
    "resolve_device",
    "transactional_fit",
]


def resolve_device(device):
    """Turn the ``device`` parameter into a torch device string, refusing devices this machine cannot use.

    ``"auto"`` gives ``"cuda"`` when CUDA is available, else ``"cpu"``.
    Any other device is checked once (per process) the way the estimators
    use it: a tensor and a random generator are made on it. A device this
    machine lacks (``"cuda"`` without a GPU, ``"mps"`` off Apple silicon,
    ``"xla"`` without ``torch_xla``), or one that holds no data
    (``"meta"``), raises one ``ValueError`` before anything is built.

    Parameters
    ----------
    device : str or torch.device
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or another torch
        device available on this machine.

    Returns
    -------
    device : str
    """
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}.") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available; use 'auto' or 'cpu'.")
    if dev.type == "meta":  # tensors without data: nothing can be fitted or sampled there
        raise ValueError(f"device={device!r} holds no data (torch's meta device); use 'auto', 'cpu' or 'cuda'.")
    _check_usable(str(dev))
    return str(dev)


@functools.lru_cache(maxsize=None)  # only successes are cached: an unusable device raises every time
def _check_usable(device):
    """Make a tensor and a generator on ``device`` (what every fit does first); ``ValueError`` if torch cannot."""
    try:
        torch.zeros(1, device=device)
        torch.Generator(device=device)
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError, AssertionError, ... per backend
        raise ValueError(
            f"device={device!r} is not available on this machine ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
            "use 'auto', 'cpu' or 'cuda'."
        ) from exc


#: Image size (C * H * W) at which ``step_size="auto"`` is 1: scikit-learn's 8x8 digits.
_AUTO_STEP_PIXELS = 64
#: How ``step_size="auto"`` grows with the image size (the sweep in ``benchmarks/reports/generator_images.md``).
_AUTO_STEP_EXPONENT = 0.6


def auto_step_size(image_shape):
    """The Langevin step size that ``step_size="auto"`` gives for data of ``image_shape``.

    Images are rescaled to ``[-1, 1]`` and the Langevin noise is small, so
    the drift ``step_size**2 / 2 * grad E`` does the work of moving a chain
    from noise to an image. How far a chain has to travel grows as
    ``sqrt(C * H * W)`` while a regularised energy's gradient does not
    grow with it, so the step grows with the image, as ``(C * H * W / 64)
    ** 0.6``: 1.0 on 8x8 digits (where the default was chosen), 4.5 on
    28x28 MNIST and 10.2 on 32x32 colour images. The sweep that chose the
    rule is in ``benchmarks/reports/generator_images.md``. Flat
    (non-image) data, standardised per feature, get 1.0.

    Parameters
    ----------
    image_shape : tuple of int (C, H, W) or None

    Returns
    -------
    step_size : float

    Examples
    --------
    >>> from skebm._base import auto_step_size
    >>> round(auto_step_size((1, 8, 8)), 2), round(auto_step_size((1, 28, 28)), 2), auto_step_size(None)
    (1.0, 4.49, 1.0)
    """
    if image_shape is None:
        return 1.0
    return max(1.0, (math.prod(image_shape) / _AUTO_STEP_PIXELS) ** _AUTO_STEP_EXPONENT)


# ----------------------------------------------------------------- rescaling
_CHUNK = 8192


class Rescaler:
    """Affine map between the user's value range and the model's, for arrays and tensors.

    Images are mapped from their global ``[min, max]`` to ``[-1, 1]`` (and
    clipped back to ``[min, max]`` on the way out); flat features are
    standardised per feature. :meth:`transform` and
    :meth:`inverse_transform` take NumPy arrays (returning float32 and
    float64 arrays) or torch tensors (returning tensors on the same device,
    differentiably), so the numpy paths of the estimators and the torch
    paths of attacks and composition use this one object.

    Integer input (e.g. uint8 images) is read in chunks: no float64 copy of
    the whole data set is made. Values so large that their standard
    deviation overflows are rescaled robustly; data whose scale is still
    not finite raise a ``ValueError``.

    ``kind="yeo-johnson"`` (density estimation of skewed features) first
    maps each feature by scikit-learn's Yeo-Johnson
    :class:`~sklearn.preprocessing.PowerTransformer`, then standardises;
    that map is not affine, NumPy only, and :meth:`log_jacobian` gives its
    per-sample log-Jacobian.

    Parameters
    ----------
    kind : {"image", "standard", "yeo-johnson"}, default="standard"

    Attributes
    ----------
    center_ : ndarray of shape (n_features,)
    scale_ : ndarray of shape (n_features,)
    low_, high_ : float
        The data range (images only).
    power_ : sklearn.preprocessing.PowerTransformer
        The fitted Yeo-Johnson map (``kind="yeo-johnson"`` only).
    """

    def __init__(self, kind="standard"):
        self.kind = kind

    def fit(self, X):
        """Learn the map from 2-D ``X``.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)

        Returns
        -------
        self : Rescaler
        """
        X = np.asarray(X)
        n_features = X.shape[1]
        if self.kind == "yeo-johnson":
            from sklearn.preprocessing import PowerTransformer

            self.power_ = PowerTransformer(method="yeo-johnson", standardize=False).fit(X.astype(np.float64))
            X = self.power_.transform(X.astype(np.float64))
        if self.kind == "image":
            self.low_, self.high_ = float(X.min()), float(X.max())
            half = self.high_ / 2.0 - self.low_ / 2.0  # no overflow for values near the float64 limit
            self.center_ = np.full(n_features, self.low_ + half)
            self.scale_ = np.full(n_features, half if half > 0 else 1.0)
        else:
            unit = float(np.abs(X).max()) if X.size else 1.0
            unit = unit if unit > 1e100 else 1.0  # huge values: work in units of the largest one
            mean = np.zeros(n_features)
            for start in range(0, len(X), _CHUNK):
                mean += (X[start : start + _CHUNK].astype(np.float64) / unit).sum(0)
            mean /= max(len(X), 1)
            var = np.zeros(n_features)
            for start in range(0, len(X), _CHUNK):
                var += ((X[start : start + _CHUNK].astype(np.float64) / unit - mean) ** 2).sum(0)
            std = np.sqrt(var / max(len(X), 1))
            center, std = mean * unit, std * unit
            self.center_ = center
            self.scale_ = np.where(std > 1e-12 * np.maximum(1.0, np.abs(center)), std, 1.0)
        if not (np.all(np.isfinite(self.center_)) and np.all(np.isfinite(self.scale_))):
            raise ValueError("X has values too large to rescale (their range overflows float64).")
        return self

    def _torch_affine(self, like):
        if self.kind == "yeo-johnson":
            raise NotImplementedError("the Yeo-Johnson rescaling has no torch path; use kind='standard'.")
        big = np.finfo(np.float32).max
        if np.any(np.abs(self.center_) > big) or np.any(self.scale_ > big):
            raise ValueError(
                f"The data's scale ({self.scale_.max():.3g}) is beyond float32's range: tensors in the user's units "
                "cannot hold it; rescale X before fitting to use the torch paths (attacks, compose, purify_tensor)."
            )
        center = torch.as_tensor(self.center_, dtype=torch.float32, device=like.device)
        scale = torch.as_tensor(self.scale_, dtype=torch.float32, device=like.device)
        return center, scale

    def transform(self, X):
        """User range -> model range.

        Parameters
        ----------
        X : ndarray of shape (n, n_features) or torch.Tensor of shape (n, ...)

        Returns
        -------
        Z : float32 ndarray, or a float32 tensor of the shape of ``X``
        """
        if isinstance(X, torch.Tensor):
            center, scale = self._torch_affine(X)
            return ((X.reshape(len(X), -1).float() - center) / scale).reshape(X.shape)
        X = np.asarray(X)
        if self.kind == "yeo-johnson":
            X = self.power_.transform(X.astype(np.float64))
        out = np.empty(X.shape, dtype=np.float32)
        for start in range(0, len(X), _CHUNK):
            sl = slice(start, start + _CHUNK)
            x = X[sl].astype(np.float64)
            with np.errstate(over="ignore", invalid="ignore"):
                z = (x - self.center_) / self.scale_
            if not np.all(np.isfinite(z)):  # x - center overflowed (values near the float64 limit): divide first
                z = x / self.scale_ - self.center_ / self.scale_
            out[sl] = z
        return out

    def inverse_transform(self, Z, *, clip=True):
        """Model range -> user range (images clipped to the data range).

        Parameters
        ----------
        Z : array-like of shape (n, n_features) or torch.Tensor of shape (n, ...)
        clip : bool, default=True
            Clip images to the data range ``[low_, high_]``.

        Returns
        -------
        X : float64 ndarray, or a float32 tensor of the shape of ``Z``
        """
        clip = clip and self.kind == "image"
        if isinstance(Z, torch.Tensor):
            center, scale = self._torch_affine(Z)
            X = Z.reshape(len(Z), -1).float() * scale + center
            return (X.clamp(self.low_, self.high_) if clip else X).reshape(Z.shape)
        with np.errstate(over="ignore"):
            X = np.asarray(Z, dtype=np.float64) * self.scale_ + self.center_
        if np.any(np.isinf(X)):  # data near the float64 limit: a state just past it saturates there, never inf
            big = np.finfo(np.float64).max
            X = np.where(np.isfinite(np.asarray(Z, dtype=np.float64)), np.clip(X, -big, big), X)
        if self.kind == "yeo-johnson":
            return self.power_.inverse_transform(X)
        return np.clip(X, self.low_, self.high_) if clip else X

    def log_jacobian(self, X):
        """``log |det d transform(x) / dx|`` of each row of ``X``: what a density in the model's space needs.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
            In the user's range.

        Returns
        -------
        log_jacobian : ndarray of shape (n_samples,)
        """
        X = np.asarray(X, dtype=np.float64)
        out = np.full(len(X), -float(np.sum(np.log(self.scale_))))
        if self.kind == "yeo-johnson":  # d/dx of Yeo-Johnson: (1 + x)^(lam - 1) for x >= 0, (1 - x)^(1 - lam) below
            lam, a = self.power_.lambdas_, np.log1p(np.abs(X))
            out += np.where(X >= 0, (lam - 1) * a, (1 - lam) * a).sum(1)
        return out


# ---------------------------------------------------------- transactional fit
def _is_fitted_attr(name):
    return name.endswith("_") and not name.startswith("__")


def _fitted_state(est):
    return {k: v for k, v in vars(est).items() if _is_fitted_attr(k)}


def _interrupted(est):
    """Whether the fit that made ``est``'s fitted state was cut short by Ctrl-C (its own, or a nested estimator's)."""
    if getattr(est, "interrupted_", False) is True:
        return True
    nested = [v for v in _fitted_state(est).values() if isinstance(v, BaseEstimator)]
    return any(getattr(v, "interrupted_", False) is True for v in nested)


def transactional_fit(fit):
    """Make ``fit`` all-or-nothing, and validate the parameters first (scikit-learn's ``_fit_context``).

    ``fit`` runs on a working copy of the estimator: its parameters (and,
    for a warm start, a deep copy of its fitted state). Only when the whole
    fit succeeded is the copy's fitted state moved into the estimator; on
    any exception the estimator is exactly as before the call (unfitted, or
    the previous model bit for bit). Fitted state is every attribute whose
    name ends with ``_``.

    Ctrl-C during training ends the training loop early (skorch's
    convention) and ``fit`` returns, with a ``UserWarning``:

    - a first fit keeps what it learned (``interrupted_ = True``);
    - a refit with ``warm_start=True`` keeps what it learned so far, on top
      of the previous model (``interrupted_ = True``);
    - a refit without ``warm_start`` keeps the previous model, exactly as
      it was: an interrupted fresh fit is discarded.

    Ctrl-C outside the training loop (while validating or rescaling the
    data) propagates, the estimator as before.

    The move is one assignment of the estimator's attribute dictionary,
    never changing the old one, so a call decorated with
    :func:`consistent_read` running in another thread sees the old model
    or the new one from its start to its end, never a mixture.

    Parameters
    ----------
    fit : callable
        The estimator's ``fit(self, X, y=None, **kwargs)``.

    Returns
    -------
    fit : callable
    """

    @functools.wraps(fit)
    def wrapper(self, *args, **kwargs):
        warm = bool(getattr(self, "warm_start", False))
        previous = _fitted_state(self)
        work = type(self).__new__(type(self))
        work.__dict__.update({k: v for k, v in vars(self).items() if not _is_fitted_attr(k)})
        if warm:
            work.__dict__.update(copy.deepcopy(previous))
        result = fit(work, *args, **kwargs)
        name = type(self).__name__
        if _interrupted(work) and previous and not warm:
            warnings.warn(
                f"{name}.fit was interrupted (KeyboardInterrupt): the previous model is kept, unchanged (an "
                "interrupted refit without warm_start is discarded; with warm_start=True it keeps what it learned).",
                UserWarning,
                stacklevel=3,
            )
            return self
        if getattr(work, "interrupted_", False) is True:
            of = f" of {work.net_.max_updates}" if hasattr(work, "net_") else ""
            warnings.warn(
                f"{name}.fit was interrupted (KeyboardInterrupt) after {work.n_iter_}{of} updates: the model is "
                "usable but not fully trained (interrupted_ = True).",
                UserWarning,
                stacklevel=3,
            )
        self.__dict__ = dict(vars(work))  # the commit: one assignment (see consistent_read)
        return self if result is work else result

    # nested estimators (a user's classifier or base mixture) validate their own parameters
    return _fit_context(prefer_skip_nested_validation=False)(wrapper)


def consistent_read(method):
    """Run ``method`` on one fitted state from its start to its end, whatever a concurrent ``fit`` commits.

    The method runs on a view of the estimator that shares the attribute
    dictionary the estimator has when the call starts. The commit of
    :func:`transactional_fit` replaces that dictionary in one assignment
    instead of changing it, so the view keeps reading the model it started
    with: a sampling or prediction call in one thread during a refit in
    another answers from the old model or from the new one, never from a
    mixture (the network of one and the rescaling of the other). Without a
    concurrent commit the view and the estimator share one dictionary, so
    the call behaves exactly as on the estimator. Every public method that
    reads fitted state is decorated with it.

    Parameters
    ----------
    method : callable

    Returns
    -------
    method : callable
    """

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        return method(consistent_view(self), *args, **kwargs)

    wrapper.consistent_read = True
    return wrapper


def consistent_view(est):
    """A view of ``est`` on its fitted state of now, which a later commit of ``fit`` does not change.

    See :func:`consistent_read`; for code that reads an estimator without a
    decorated method (e.g. :func:`skebm.compose`).

    Parameters
    ----------
    est : estimator

    Returns
    -------
    view : estimator
        An object of ``est``'s class sharing its current attribute dictionary.
    """
    view = type(est).__new__(type(est))
    view.__dict__ = est.__dict__  # bound once: a commit replaces est.__dict__, never changes this one
    return view


# ------------------------------------------------------------ label encoding
class _ClassLabelsMixin:
    """One encoding of class labels for the estimators that take ``y`` classes."""

    def _fit_classes(self, y, n_samples, *, min_classes=1):
        """Validate ``y`` (classification targets), set or check ``classes_``; return int64 codes."""
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if len(y) != n_samples:
            raise ValueError(f"X and y have inconsistent numbers of samples: {n_samples} and {len(y)}.")
        if not (getattr(self, "warm_start", False) and hasattr(self, "classes_")):
            classes = np.unique(y)
            if len(classes) < min_classes:
                raise ValueError(
                    f"{type(self).__name__} needs at least {min_classes} classes in y; got {len(classes)} class(es) "
                    f"in {len(y)} sample(s)."
                )
            self.classes_ = classes
        return self._encode_classes(y)

    def _encode_classes(self, y):
        """Class labels -> indices into ``classes_``; unknown labels raise a ValueError."""
        y = np.asarray(y).ravel()
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if len(unknown):
            raise ValueError(f"y contains labels not seen in fit: {unknown.tolist()}.")
        return np.searchsorted(self.classes_, y).astype(np.int64)


# ------------------------------------------------------------ the torch view
class _TorchLogitsMixin:
    """The protocol of :func:`~skebm.attacks.as_torch_classifier` for an estimator whose engine gives logits.

    The estimator's fitted engine ``net_`` has ``logits`` (the network's, in
    the model's space); ``rescaler_`` maps the user's values to that space.
    """

    @consistent_read
    def torch_logits(self, X):
        """Differentiable logits of a tensor of inputs in the user's value range.

        The protocol of :func:`skebm.attacks.as_torch_classifier`: attacks
        perturb the user's values and back-propagate through the rescaling
        and the network.

        Parameters
        ----------
        X : torch.Tensor of shape (n, n_features) or (n, C, H, W)
            Inputs in the value range of ``fit``'s ``X``.

        Returns
        -------
        logits : torch.Tensor of shape (n, n_classes)
            Columns ordered as ``classes_``.
        """
        self._check_fitted()
        z = self.rescaler_.transform(X.to(self.net_.device).reshape(len(X), -1)).reshape(-1, *self._feature_shape)
        self.net_.module_.train(False)
        return self.net_.logits(z)

    @property
    def torch_device(self):
        """Device :meth:`torch_logits` computes on (the network's)."""
        check_is_fitted(self, "net_")
        return torch.device(self.net_.device)


# ------------------------------------------------------------ the estimators
_ACCEPTED_DTYPES = [np.float64, np.float32, np.uint8]


class _PresetMixin:
    """``from_preset``: an estimator configured as a paper's published setting (:mod:`skebm.presets`)."""

    @classmethod
    def from_preset(cls, name, **overrides):
        """The estimator configured as a published paper's setting (:mod:`skebm.presets`).

        Parameters
        ----------
        name : str
            A name in :data:`skebm.presets.PRESET_NAMES` that configures this
            class (:func:`skebm.presets.get` tells which and lists the
            settings, their sources and what skebm cannot express).
        **overrides
            Parameters that replace the preset's (``device``, ``max_iter``,
            ``verbose``, ...).

        Returns
        -------
        estimator : an unfitted instance of this class

        Raises
        ------
        ValueError
            If ``name`` is no preset, a preset of another class, or an
            override is no parameter of this class.
        """
        from .presets import _build

        return _build(cls, name, overrides)


class BaseEBM(BaseEstimator):
    """Base class of the skebm estimators (not for direct use).

    Subclasses declare their ``__init__`` parameters (their constraints in
    ``_parameter_constraints``, from :attr:`_shared_constraints`), decorate
    ``fit`` with :func:`transactional_fit` and call :meth:`_fit_engine`;
    hooks: :meth:`_make_energy`, :meth:`_engine_params` (engine class and
    extra arguments), :meth:`_sampler`, :meth:`_source`,
    :attr:`_chain_init_defaults`, :meth:`_warm_setters`.
    """

    #: Constraints of the parameters the estimators share (each takes those it has).
    _shared_constraints = {
        "energy": [StrOptions({"auto", "mlp", "conv", "resnet"}), type, torch.nn.Module],
        "energy_params": [dict, None],
        "image_shape": ["array-like", None],
        "max_iter": [POSITIVE_INT],
        "batch_size": [POSITIVE_INT],
        "lr": [SCALE],
        "optimizer": [StrOptions({"adam", "sgd"}), type],
        "n_steps": [NONNEG_INT],
        "step_size": [SCALE],
        "noise_scale": [NONNEG_SCALE, None],
        "temperature": [TEMPERATURE],
        "init": [StrOptions(set(CHAIN_INITS)), ChainInit],
        "buffer_size": [POSITIVE_INT],
        "reinit_prob": [PROB],
        "l2_reg": [NONNEG],
        "data_noise": [NONNEG_SCALE],
        "device": [str, torch.device],
        "precision": [StrOptions({"fp32", "bf16", "auto"})],
        "callbacks": [list, None],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "on_divergence": [StrOptions({"recover", "raise"})],
        "n_threads": [N_THREADS, StrOptions({"auto"})],
        "accelerator": [HasMethods(["prepare", "unwrap_model"]), None],
        "random_state": ["random_state"],
    }

    #: Rescaling kind for flat data; images always map to [-1, 1].
    _flat_rescaling = "standard"
    #: Fixed chain-initialisation arguments of this estimator (e.g. where bank chains rejuvenate).
    _chain_init_defaults = {}
    #: Parameters a warm start cannot change (they fix the network or the bank).
    _warm_fixed = (
        "energy", "energy_params", "image_shape", "conditional", "init", "buffer_size", "optimizer", "device",
        "accelerator",
    )
    #: Fitted attributes a safe file may set (see :func:`skebm.save`).
    _fitted_attributes = (
        "n_features_in_", "feature_names_in_", "image_shape_", "rescaler_", "n_iter_", "interrupted_",
        "_layout_", "_fit_params_", "_n_outputs_",
    )


    # ----------------------------------------------------------- validation
    def _check_params(self):
        """Cross-parameter checks beyond ``_parameter_constraints`` (called by :meth:`_check_fitted` too)."""
        if self.image_shape is not None:
            shape = tuple(self.image_shape)
            if len(shape) != 3 or not all(isinstance(s, Integral) and not isinstance(s, bool) and s > 0 for s in shape):
                raise ValueError(f"image_shape must be a tuple (C, H, W) of positive integers, got {self.image_shape!r}.")
        if isinstance(getattr(self, "optimizer", None), type) and not issubclass(self.optimizer, torch.optim.Optimizer):
            raise ValueError(f"optimizer must be 'adam', 'sgd' or a torch.optim.Optimizer class, got {self.optimizer!r}.")
        energy = getattr(self, "energy", None)
        if isinstance(energy, type) and not issubclass(energy, torch.nn.Module):
            raise TypeError(f"energy must be a name, a torch.nn.Module class or instance, got {energy!r}.")
        self._device = resolve_device(self.device)

    def _validate_X(self, X, *, reset):
        """Validate ``X`` (2-D, DataFrame or 4-D) and return a 2-D array (float, or uint8 as given)."""
        shape4 = None
        if getattr(X, "ndim", 2) in (3, 4) and hasattr(X, "shape") and not hasattr(X, "columns"):
            shape4 = image_batch_shape(X, self.image_shape if reset else None)  # 3-D: refused
            X = np.asarray(X).reshape(X.shape[0], -1)
        X = validate_data(self, X, reset=reset, dtype=_ACCEPTED_DTYPES)
        if reset:
            kind = "4d" if shape4 is not None else ("frame" if hasattr(self, "feature_names_in_") else "2d")
            self._layout_ = (kind, X.dtype)
            self.image_shape_ = shape4 or image_batch_shape(X, self.image_shape)
        elif shape4 is not None and shape4 != self.image_shape_:
            fitted = "flat features" if self.image_shape_ is None else f"images of shape {self.image_shape_}"
            raise ValueError(f"X has image shape {shape4}, but {type(self).__name__} was fitted on {fitted}.")
        return X

    @property
    def _feature_shape(self):
        return self.image_shape_ if self.image_shape_ is not None else (self.n_features_in_,)

    def _check_fitted(self):
        """Raise NotFittedError before fit; validate the parameters a call uses."""
        check_is_fitted(self, "net_")
        self._validate_params()
        self._check_params()

    # ------------------------------------------------- layout & value range
    def _to_model(self, X):
        """2-D user-range array -> float32 array in network shape."""
        return self.rescaler_.transform(X).reshape(-1, *self._feature_shape)

    def _from_model(self, Z, layout=None):
        """Model-range tensor/array -> output in ``layout`` (default: that of ``fit``'s X) and the user's range."""
        kind, dtype = self._layout_ if layout is None else layout
        if isinstance(Z, torch.Tensor):
            Z = Z.detach().float().cpu().numpy()
        lead = Z.shape[: Z.ndim - len(self._feature_shape)]
        X = self.rescaler_.inverse_transform(Z.reshape(-1, self.n_features_in_))
        out = np.dtype(dtype if np.issubdtype(dtype, np.floating) else np.float64)
        big = np.finfo(out).max  # float32 data near its limit: a state just past it saturates there, never inf
        X = np.clip(X, -big, big).astype(out)
        if kind == "4d":
            return X.reshape(*lead, *self.image_shape_)
        X = X.reshape(*lead, self.n_features_in_)
        if kind == "frame" and X.ndim == 2:
            import pandas as pd

            return pd.DataFrame(X, columns=self.feature_names_in_)
        return X

    def _tensor(self, X):
        """Validated user X -> model-range tensor on the device."""
        return torch.as_tensor(self._to_model(X), device=self.net_.device)

    def _energies(self, Z, y=None):
        """``E(z) / T`` (float64 numpy) of a model-range tensor, batched, no grad."""
        from ._torch_utils import batched

        if y is None:
            return batched(self.net_.energy, Z).double().cpu().numpy()
        idx = torch.arange(len(Z), device=Z.device)
        return batched(lambda i: self.net_.energy(Z[i], y[i]), idx).double().cpu().numpy()

    def _generator(self, random_state):
        """A fresh generator on the engine's device, seeded from ``random_state``."""
        return make_generator(random_state, self.net_.device)

    # ----------------------------------------------------------- the engine
    def _make_energy(self, n_outputs, generator, Z):
        return make_energy(
            self.energy,
            n_features=self.n_features_in_,
            image_shape=self.image_shape_,
            n_outputs=n_outputs,
            params=self.energy_params,
            generator=generator,
        )

    @property
    def _data_noise(self):
        return float(getattr(self, "data_noise", 0.0))

    def _source(self):
        """Fresh chain starts: U[-1, 1] for images, N(0, I) for standardised features."""
        if self.image_shape_ is not None:
            return NoiseSource("uniform", low=-1.0, high=1.0)
        return NoiseSource("gaussian", loc=0.0, scale=1.0)

    def _step_size(self, value=None):
        """The Langevin step size ``value`` (default: ``step_size``), :func:`auto_step_size` of the data for ``"auto"``."""
        value = self.step_size if value is None else value
        if isinstance(value, str) and value == "auto":
            return auto_step_size(self.image_shape_)
        return float(value)

    @property
    def precision_(self):
        """Precision of the fitted engine's energy evaluations: ``precision`` resolved (``"auto"`` measured)."""
        check_is_fitted(self, "net_")
        return self.net_.precision

    @property
    def step_size_(self):
        """Langevin step size of the chains (``step_size`` resolved, after any adaptation)."""
        check_is_fitted(self, "net_")
        return float(self._chain_sampler().step_size)

    def _chain_sampler(self):
        """The sampler whose step size ``step_size_`` reports: the engine's."""
        return self.net_.sampler_

    def _sampler(self):
        """The training sampler from the estimator's Langevin parameters."""
        return LangevinSampler(n_steps=self._n_steps(), step_size=self._step_size(), noise_scale=self.noise_scale)

    def _build_chain_init(self):
        """The chain-initialisation strategy from ``init`` and the bank parameters (one table)."""
        params = {
            name: getattr(self, name)
            for name in ("buffer_size", "reinit_prob", "init_noise", "burnin_buffer_size", "burnin_updates")
            if hasattr(self, name)
        }
        return make_chain_init(self.init, **{**params, **self._chain_init_defaults})

    def _optimizer(self):
        if self.optimizer == "adam":
            return torch.optim.Adam, {"optimizer__betas": (0.0, 0.999)}
        if self.optimizer == "sgd":
            return torch.optim.SGD, {}
        return self.optimizer, {}

    def _engine_params(self, Z=None):
        """Engine class and its estimator-specific arguments, for the model-range data ``Z`` (None: loading)."""
        return EBMNet, {"criterion": MaxLikelihoodLoss, "criterion__l2_reg": getattr(self, "l2_reg", 0.0)}

    def _own_callbacks(self, total, done=0, n_samples=None):
        """The estimator's callbacks: a progress bar to ``total`` updates (``done`` made already)."""
        if not self.verbose:
            return []
        return [("progress", ProgressBar(total=total, desc=type(self).__name__))]

    def _callbacks(self, total, done=0, n_samples=None):
        """The user's callbacks, then the estimator's (a checkpoint loaded first sets the history they start from)."""
        return [*(self.callbacks or []), *self._own_callbacks(total, done, n_samples)]

    def _build_engine(self, n_outputs, seed, Z):
        """Build the skorch engine for a fresh fit on the model-range data ``Z``."""
        net_cls, extra = self._engine_params(Z)
        optimizer, opt_kwargs = self._optimizer()
        weights = torch.Generator().manual_seed(seed)
        # distributed: with an accelerator, the data-parallel engine on the accelerator's device
        net_cls, device, extra, callbacks = _distributed_engine(
            self, net_cls, extra, self._callbacks(self._updates_per_fit(), 0, None if Z is None else len(Z))
        )
        module = self._make_energy(n_outputs, weights, Z)
        net = net_cls(
            module,
            sampler=self._sampler(),
            chain_init=self._build_chain_init(),
            source=self._source(),
            feature_shape=self._feature_shape,
            temperature=float(getattr(self, "temperature", 1.0)),
            data_noise=self._data_noise,
            conditional=bool(getattr(self, "conditional", False)),
            precision=self.precision,
            seed=derive_seed(seed, "chains"),
            max_updates=self._updates_per_fit(),
            optimizer=optimizer,
            lr=self._learning_rate(),
            batch_size=self.batch_size,
            callbacks=callbacks,
            callbacks__divergence_guard__on_divergence=self.on_divergence,
            warm_start=False,
            verbose=0,
            device=device,
            **opt_kwargs,
            **extra,
        )
        _set_engine_threads(self, net)  # threads: n_threads of the sampling and prediction calls
        with thread_limit(net.threads_):  # threads: the probe is a compute call like any other
            check_energy_module(module, self._feature_shape, n_outputs, name=_energy_name(module, self.energy))
            net.precision = resolve_precision(self, net)  # "auto": bfloat16 where measured faster, else float32
        return net

    def _warm_setters(self):
        """How each training parameter a warm start may change is applied to the engine."""
        net = self.net_

        def lr(value):
            for group in net.optimizer_.param_groups:
                group["lr"] = value
                if "initial_lr" in group:  # the base of an LR schedule
                    group["initial_lr"] = value

        def sampler(name):
            return lambda value: setattr(net.sampler_, name, value)

        return {
            "lr": lr,
            "batch_size": lambda value: setattr(net, "batch_size", value),
            "n_steps": lambda value: setattr(net.sampler_, "n_steps", self._n_steps(value)),
            "step_size": lambda value: setattr(net.sampler_, "step_size", self._step_size(value)),
            "noise_scale": sampler("noise_scale"),
            "temperature": lambda value: setattr(net, "temperature", float(value)),
            "data_noise": lambda value: setattr(net, "data_noise", float(value)),
            "precision": lambda value: setattr(net, "precision", resolve_precision(self, net)),
            "reinit_prob": lambda value: setattr(net.chain_init_, "reinit_prob", value),
            "l2_reg": lambda value: setattr(net.criterion_, "l2_reg", value),
        }

    def _apply_warm_params(self, n_samples):
        """Apply the training parameters changed since the last fit; refuse those that cannot change."""
        before, now = self._fit_params_, self.get_params(deep=False)
        changed = [k for k in now if k in before and not _same(now[k], before[k])]
        fixed = [k for k in changed if k in self._warm_fixed]
        if fixed:
            raise ValueError(
                f"warm_start=True cannot change {', '.join(fixed)} (they fix the network or the chain bank); "
                "set warm_start=False to fit afresh."
            )
        setters = self._warm_setters()
        for name in changed:
            if name in setters:
                setters[name](now[name])
        net = self.net_
        net.callbacks = self._callbacks(net.n_updates() + self._updates_per_fit(), net.n_updates(), n_samples)
        net.callbacks__divergence_guard__on_divergence = self.on_divergence
        net.initialize_callbacks()

    def _make_rescaler(self, X):
        """The map between the user's range and the model's: [-1, 1] for images, standardised otherwise."""
        return Rescaler("image" if self.image_shape_ is not None else self._flat_rescaling).fit(X)

    def _learning_rate(self):
        """The optimiser's learning rate (``lr``)."""
        return self.lr

    def _n_steps(self, value=None):
        """The training chains' Langevin steps: ``value`` (default ``n_steps``), resolved where it can be ``"auto"``."""
        return self.n_steps if value is None else value

    def _chain_steps_per_update(self):
        """Langevin steps each chain runs per update (what a fit's cost estimate counts)."""
        return self._n_steps()

    def _updates_per_fit(self):
        """Parameter updates of one fit (``max_iter``)."""
        return self.max_iter

    def _engine_data(self, Z, y):
        """What the engine is fitted on: ``(X, y)`` (an estimator may add fold labels or a split)."""
        return Z, y

    def _check_memory(self):
        """Refuse a training batch or chain banks that cannot fit in the device's memory (before allocating)."""
        check_rows_fit(f"batch_size={self.batch_size}", self.batch_size, self._feature_shape, self._device)
        init = self._build_chain_init()
        for name in ("buffer_size", "burnin_buffer_size"):
            rows = getattr(init, name, None)
            if isinstance(rows, Integral):
                check_rows_fit(f"{name}={rows}", rows, self._feature_shape, self._device, bytes_per_value=4,
                               bytes_per_row=8)
        for what, rows in self._extra_rows():
            check_rows_fit(what, rows, self._feature_shape, self._device)

    def _extra_rows(self):
        """``(what, n_rows)`` of other arrays a fit allocates (an estimator's grid, ...), checked like the batch."""
        return []

    def _fit_engine(self, X, y=None, *, n_outputs=1):
        """Validate ``X``, rescale, build (or continue) the engine and train it.

        Runs inside :func:`transactional_fit`. Returns the model-range
        training array.
        """
        self._check_params()
        warm = self.warm_start and hasattr(self, "net_")
        X = self._validate_X(X, reset=not warm)
        if not warm:
            self.rescaler_ = self._make_rescaler(X)
            self._n_outputs_ = n_outputs
        elif n_outputs != self._n_outputs_:
            raise ValueError(f"warm_start=True cannot change the number of outputs ({self._n_outputs_} -> {n_outputs}).")
        self._check_memory()
        Z = self._to_model(X)
        if warm:
            self._apply_warm_params(len(Z))
            self.net_.max_updates = self.net_.n_updates() + self._updates_per_fit()
            _set_engine_threads(self, self.net_)  # threads: n_threads may have changed
        else:
            self.net_ = self._build_engine(n_outputs, seed_from(self.random_state), Z)
        warn_if_slow(self, self.net_, self._updates_per_fit())  # before training: the estimated CPU cost
        warn_bf16_on_cpu(self, self.net_)  # and bfloat16 measured slower than float32 on this CPU
        with thread_limit(self.net_.threads_, fit=True):  # threads: the whole fit, restored afterwards
            if warm:
                self.net_.partial_fit(*self._engine_data(Z, y))
            else:
                self.net_.fit(*self._engine_data(Z, y))
        self.n_iter_ = self.net_.n_updates()
        self.interrupted_ = bool(self.net_.interrupted_)  # transactional_fit warns, and decides what is kept
        self._fit_params_ = {k: v for k, v in self.get_params(deep=False).items() if _is_plain(v)}
        return Z

    def __getstate__(self):
        state = super().__getstate__()
        state["_skebm_version"] = __version__
        return state

    def __setstate__(self, state):
        version = state.pop("_skebm_version", None)
        if version != __version__:
            warnings.warn(
                f"Trying to unpickle {type(self).__name__} from skebm {version or '< 0.2'} with skebm {__version__}: "
                "this might lead to breaking code or invalid results; refit the model, or use skebm.save/load.",
                UserWarning,
                stacklevel=2,
            )
        super().__setstate__(state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        return tags


# distributed: the engine class, device and callbacks of a fit with an accelerator
def _distributed_engine(estimator, net_cls, extra, callbacks):
    """``(net_cls, device, extra, callbacks)`` of the engine: data-parallel ones when ``accelerator`` is set."""
    accelerator = getattr(estimator, "accelerator", None)
    if accelerator is None:
        return net_cls, estimator._device, extra, callbacks
    from .engine._distributed import check_accelerator, data_parallel

    device = check_accelerator(accelerator, estimator.batch_size, estimator.device)
    if not accelerator.is_main_process:  # one progress bar: the main process's
        callbacks = [cb for cb in callbacks if not isinstance(cb[1] if isinstance(cb, tuple) else cb, ProgressBar)]
    return data_parallel(net_cls), device, {**extra, "accelerator": accelerator}, callbacks


# threads: the engine's thread count, from the estimator's n_threads
def _set_engine_threads(estimator, net):
    """Resolve ``n_threads`` (``"auto"``: by the network's cost per batch) into ``net.threads_``."""
    from ._threads import resolve_n_threads

    module = net.bare_module() if getattr(net, "initialized_", False) else net.module
    accelerator = getattr(estimator, "accelerator", None)
    per_process = max(1, estimator.batch_size // (1 if accelerator is None else int(accelerator.num_processes)))
    if not isinstance(module, torch.nn.Module):
        net.threads_ = None if estimator.n_threads == "auto" else int(estimator.n_threads)
        return
    net.threads_ = resolve_n_threads(estimator.n_threads, module, estimator._feature_shape, per_process)


def _energy_name(module, energy):
    """How errors name the built network: its class, and the user's module it wraps, if any."""
    user = energy if isinstance(energy, type) else type(energy)
    if isinstance(energy, str) or isinstance(module, user):
        return type(module).__name__
    return f"{type(module).__name__} (around energy={user.__name__})"


def _is_plain(value):
    """Whether a parameter value compares by value (numbers, strings, containers of them)."""
    if value is None or isinstance(value, (bool, Integral, float, str)):
        return True
    if isinstance(value, (tuple, list)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


def _same(a, b):
    return type(a) is type(b) and a == b
