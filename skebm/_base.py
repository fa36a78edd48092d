"""What every skebm estimator shares.

Input validation, the layout and value-range round trip, device and
precision, seeding, and building and owning the skorch engine live here,
once, for the four estimators.
"""

import contextlib
import math
import numbers

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data
from torch.utils.data import RandomSampler

from .engine import EBMNet, MaxLikelihoodLoss, ProgressBar
from .mcmc import LangevinSampler, NoiseSource, make_chain_init
from .nn import make_energy

__all__ = ["BaseEBM", "Rescaler", "resolve_device", "seed_everything"]


def resolve_device(device):
    """Turn the ``device`` parameter into a torch device string.

    ``"auto"`` gives ``"cuda"`` when CUDA is available, else ``"cpu"``. A
    CUDA device on a machine without CUDA raises a ``ValueError``.
    """
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}.") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available; use 'auto' or 'cpu'.")
    return str(dev)


def _draw_seed(random_state):
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


@contextlib.contextmanager
def seed_everything(random_state, device="cpu"):
    """Context in which torch's global generators are seeded from ``random_state``.

    The caller's generator state is restored on exit (``torch.random.fork_rng``),
    so seeding an estimator never disturbs the user's own torch code.
    """
    devices = [torch.device(device).index or 0] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(_draw_seed(random_state))
        yield


class Rescaler:
    """Affine map between the user's value range and the model's.

    Images are mapped from their global ``[min, max]`` to ``[-1, 1]`` (and
    clipped back to ``[min, max]`` on the way out); flat features are
    standardised per feature.

    Parameters
    ----------
    kind : {"image", "standard"}
    """

    def __init__(self, kind="standard"):
        self.kind = kind

    def fit(self, X):
        """Learn the map from 2-D ``X``."""
        X = np.asarray(X, dtype=np.float64)
        if self.kind == "image":
            self.low_, self.high_ = float(X.min()), float(X.max())
            half = (self.high_ - self.low_) / 2.0
            self.center_ = np.full(X.shape[1], self.low_ + half)
            self.scale_ = np.full(X.shape[1], half if half > 0 else 1.0)
        else:
            self.center_ = X.mean(axis=0)
            std = X.std(axis=0)
            self.scale_ = np.where(std > 1e-12 * np.maximum(1.0, np.abs(self.center_)), std, 1.0)
        return self

    def transform(self, X):
        """User range -> model range, as float32."""
        return ((np.asarray(X, dtype=np.float64) - self.center_) / self.scale_).astype(np.float32)

    def inverse_transform(self, Z):
        """Model range -> user range (images clipped to the data range)."""
        X = np.asarray(Z, dtype=np.float64) * self.scale_ + self.center_
        if self.kind == "image":
            X = np.clip(X, self.low_, self.high_)
        return X


def _is_4d(X):
    return hasattr(X, "ndim") and hasattr(X, "shape") and X.ndim == 4 and not hasattr(X, "columns")


class BaseEBM(BaseEstimator):
    """Base class of the skebm estimators (not for direct use).

    Subclasses declare their ``__init__`` parameters and implement
    ``_make_net(n_outputs)``; the base class validates data, rescales it,
    seeds, runs the skorch engine and maps outputs back.
    """

    #: Rescaling kind for flat data; images always map to [-1, 1].
    _flat_rescaling = "standard"

    # ----------------------------------------------------------- validation
    def _check_common_params(self):
        """Validate the parameters all estimators share (called in ``fit``)."""
        for name in ("max_iter", "batch_size", "n_steps"):
            value = getattr(self, name, None)
            if value is not None and (not isinstance(value, numbers.Integral) or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        for name in ("lr", "step_size", "temperature"):
            value = getattr(self, name, None)
            if value is not None and (not isinstance(value, numbers.Real) or not value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}.")
        noise_scale = getattr(self, "noise_scale", None)
        if noise_scale is not None and (not isinstance(noise_scale, numbers.Real) or noise_scale < 0):
            raise ValueError(f"noise_scale must be None or a non-negative number, got {noise_scale!r}.")
        if getattr(self, "precision", "fp32") not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}.")
        if self.image_shape is not None:
            shape = tuple(self.image_shape)
            if len(shape) != 3 or not all(isinstance(s, numbers.Integral) and s > 0 for s in shape):
                raise ValueError(f"image_shape must be a tuple (C, H, W) of positive integers, got {self.image_shape!r}.")
        self._device = resolve_device(self.device)

    def _validate_X(self, X, *, reset):
        """Validate ``X`` (2-D, DataFrame or 4-D) and return a 2-D float array."""
        shape4 = None
        if _is_4d(X):
            shape4 = tuple(int(s) for s in X.shape[1:])
            X = np.asarray(X).reshape(X.shape[0], -1)
        X = validate_data(self, X, reset=reset, dtype=[np.float64, np.float32])
        if reset:
            self._input_kind = "4d" if shape4 is not None else ("frame" if hasattr(self, "feature_names_in_") else "2d")
            self._input_dtype = X.dtype
            image_shape = None if self.image_shape is None else tuple(int(s) for s in self.image_shape)
            if shape4 is not None and image_shape is not None and shape4 != image_shape:
                raise ValueError(f"image_shape={image_shape} does not match the shape {shape4} of the 4-D X.")
            image_shape = image_shape or shape4
            if image_shape is not None and math.prod(image_shape) != X.shape[1]:
                raise ValueError(
                    f"image_shape={image_shape} implies {math.prod(image_shape)} features, but X has {X.shape[1]}."
                )
            self.image_shape_ = image_shape
        elif shape4 is not None and shape4 != self.image_shape_:
            raise ValueError(f"X has image shape {shape4}, but {type(self).__name__} was fitted on {self.image_shape_}.")
        return X

    @property
    def _feature_shape(self):
        return self.image_shape_ if self.image_shape_ is not None else (self.n_features_in_,)

    # ------------------------------------------------- layout & value range
    def _fit_rescaler(self, X):
        self.rescaler_ = Rescaler("image" if self.image_shape_ is not None else self._flat_rescaling).fit(X)

    def _to_model(self, X):
        """2-D user-range array -> float32 array in network shape."""
        return self.rescaler_.transform(X).reshape(-1, *self._feature_shape)

    def _from_model(self, Z):
        """Model-range tensor/array -> output in the layout and range of ``fit``'s X."""
        if isinstance(Z, torch.Tensor):
            Z = Z.detach().float().cpu().numpy()
        lead = Z.shape[: Z.ndim - len(self._feature_shape)]
        X = self.rescaler_.inverse_transform(Z.reshape(-1, self.n_features_in_))
        X = X.astype(self._input_dtype if np.issubdtype(self._input_dtype, np.floating) else np.float64)
        if self._input_kind == "4d":
            return X.reshape(*lead, *self.image_shape_)
        X = X.reshape(*lead, self.n_features_in_)
        if self._input_kind == "frame" and X.ndim == 2:
            import pandas as pd

            return pd.DataFrame(X, columns=self.feature_names_in_)
        return X

    def _tensor(self, X):
        """Validated user X -> model-range tensor on the device."""
        return torch.as_tensor(self._to_model(X), device=self.net_.device)

    # ----------------------------------------------------------- the engine
    def _callbacks(self, total):
        callbacks = list(self.callbacks or [])
        if self.verbose:
            callbacks.append(("progress", ProgressBar(total=total)))
        return callbacks

    def _iterator_kwargs(self, n_samples):
        """Batches drawn with replacement, ``ceil(n / batch_size)`` per epoch."""
        per_epoch = min(self.max_iter, max(1, math.ceil(n_samples / self.batch_size)))
        n_epochs = math.ceil(self.max_iter / per_epoch)
        sampler = RandomSampler(range(n_samples), replacement=True, num_samples=per_epoch * self.batch_size)
        return {"iterator_train__sampler": sampler, "iterator_train__batch_size": self.batch_size}, n_epochs, per_epoch

    def _optimizer(self):
        if self.optimizer == "adam":
            return torch.optim.Adam, {"optimizer__betas": (0.0, 0.999)}
        if self.optimizer == "sgd":
            return torch.optim.SGD, {}
        if isinstance(self.optimizer, type) and issubclass(self.optimizer, torch.optim.Optimizer):
            return self.optimizer, {}
        raise ValueError(f"optimizer must be 'adam', 'sgd' or a torch.optim.Optimizer class, got {self.optimizer!r}.")

    def _engine_kwargs(self, n_samples):
        """skorch arguments shared by all engines."""
        iterator, n_epochs, per_epoch = self._iterator_kwargs(n_samples)
        optimizer, opt_kwargs = self._optimizer()
        return dict(
            optimizer=optimizer,
            lr=self.lr,
            max_epochs=n_epochs,
            batch_size=self.batch_size,
            callbacks=self._callbacks(n_epochs * per_epoch),
            warm_start=False,
            verbose=0,
            device=self._device,
            **iterator,
            **opt_kwargs,
        )

    def _run_fit(self, X, y=None, *, n_outputs=1):
        """Validate, rescale, build (or reuse) the engine and train it.

        Returns the model-range training tensor.
        """
        self._check_common_params()
        warm = self.warm_start and hasattr(self, "net_")
        self._n_outputs = n_outputs
        X = self._validate_X(X, reset=not warm)
        if not warm:
            self._fit_rescaler(X)
        Z = self._to_model(X)
        with seed_everything(self.random_state, self._device):
            if warm:
                iterator, n_epochs, _ = self._iterator_kwargs(len(Z))
                # plain attributes: skorch's set_params would re-initialise
                self.net_.max_epochs = n_epochs
                self.net_.iterator_train__sampler = iterator["iterator_train__sampler"]
                self.net_.partial_fit(Z, y)
            else:
                self.net_ = self._make_net(len(Z), n_outputs)
                self.net_.fit(Z, y)
        self.n_iter_ = sum(len(epoch["batches"]) for epoch in self.net_.history)
        return Z

    # ------------------------------------------- the ML-with-negatives engine
    def _noise_source(self):
        """Fresh chain starts: U[-1, 1] for images, N(0, I) for standardised features."""
        if self.image_shape_ is not None:
            return NoiseSource("uniform", low=-1.0, high=1.0)
        return NoiseSource("gaussian", loc=0.0, scale=1.0)

    def _langevin_sampler(self, **overrides):
        """The training sampler from the estimator's Langevin parameters."""
        settings = dict(
            n_steps=self.n_steps,
            step_size=self.step_size,
            noise_scale=self.noise_scale,
            temperature=self.temperature,
            precision=self.precision,
        )
        settings.update(overrides)
        return LangevinSampler(**settings)

    def _make_energy(self, n_outputs):
        return make_energy(
            self.energy,
            n_features=self.n_features_in_,
            image_shape=self.image_shape_,
            n_outputs=n_outputs,
            params=self.energy_params,
        )

    def _make_ml_net(self, n_samples, n_outputs, *, chain_init=None, sampler=None, net_cls=EBMNet, **extra):
        """Build the maximum-likelihood engine (:class:`~skebm.engine.EBMNet`).

        Used by the estimators trained with MCMC negatives. ``chain_init``
        defaults to the ``init``/``buffer_size``/``reinit_prob`` parameters,
        ``sampler`` to :meth:`_langevin_sampler`; ``extra`` goes to the net.
        """
        if chain_init is None:
            chain_init = make_chain_init(self.init, buffer_size=self.buffer_size, reinit_prob=self.reinit_prob)
        extra.setdefault("criterion", MaxLikelihoodLoss)
        extra.setdefault("criterion__l2_reg", getattr(self, "l2_reg", 0.0))
        extra.setdefault("criterion__temperature", self.temperature)
        extra.setdefault("data_noise", getattr(self, "data_noise", 0.0))
        return net_cls(
            self._make_energy(n_outputs),
            sampler=self._langevin_sampler() if sampler is None else sampler,
            chain_init=chain_init,
            noise=self._noise_source(),
            feature_shape=self._feature_shape,
            precision=self.precision,
            **extra,
            **self._engine_kwargs(n_samples),
        )

    def _energies(self, Z, y=None, batch_size=1024):
        """Energies (float64 numpy) of a model-range tensor, in batches, no grad."""
        out = []
        with torch.no_grad():
            for start in range(0, len(Z), batch_size):
                sl = slice(start, start + batch_size)
                out.append(self.net_.energy(Z[sl], None if y is None else y[sl]).cpu())
        return torch.cat(out).double().numpy()

    def _affine(self):
        """Tensors ``(center, scale)`` of the rescaling, in network shape."""
        dev = self.net_.device
        shape = self._feature_shape
        center = torch.as_tensor(self.rescaler_.center_, dtype=torch.float32, device=dev).view(*shape)
        scale = torch.as_tensor(self.rescaler_.scale_, dtype=torch.float32, device=dev).view(*shape)
        return center, scale

    def _check_fitted(self):
        check_is_fitted(self, "net_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        return tags
