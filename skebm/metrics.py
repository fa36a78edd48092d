"""Evaluation metrics for energy-based models.

* Calibration of classifiers: :func:`expected_calibration_error` and
  :func:`maximum_calibration_error`.
* Sample quality of generative models: :func:`frechet_distance` (the
  distance behind FID, on feature arrays or on the output of any feature
  extractor) and :func:`mmd`; feature extractors for it:
  :func:`inception_features` (the Inception pool3 features of the FID
  papers, from a weights file on disk; never downloaded) and
  :class:`ClassifierFeatures` (the penultimate layer of a small CNN trained
  on held-out labelled images, when no Inception weights are at hand).
* Out-of-distribution detection: :func:`ood_auroc`.

The functions depend on NumPy, SciPy and scikit-learn only; the feature
extractors import torch (and ``torch-fidelity`` or ``pytorch-fid``) when
they are used.

Which Frechet distances compare with the papers' FID
-----------------------------------------------------
Only one kind: Inception-v3 pool3 features (2,048 dimensions) of the
TensorFlow FID network (the weights ``pt_inception-2015-12-05`` of
pytorch-fid, or ``weights-inception-2015-12-05`` of torch-fidelity; not
torchvision's ImageNet Inception), images resized to 299x299 by those
packages, 50,000 samples against the statistics of the reference set the
paper names (for CIFAR-10 usually the 50,000 training images). Every other
number is a Frechet distance that ranks models measured the same way and
no more:

- fewer samples bias the FID upwards (roughly like ``1 / n``; 1,000
  samples read several points higher than 50,000), so compare at one ``n``;
- other Inception weights, resizing or image ranges change the value;
- a :class:`ClassifierFeatures` distance depends on that classifier (its
  data, seed and training): comparable between models scored with the same
  fitted extractor only, never with a published FID, and on another scale
  (MNIST "FID"s of papers also use their own classifiers).
"""

import contextlib
import numbers
import os
import threading
import warnings
from typing import NamedTuple

import numpy as np
from scipy import linalg
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.metrics import roc_auc_score
from sklearn.metrics.pairwise import euclidean_distances, rbf_kernel
from sklearn.utils import check_array, column_or_1d
from sklearn.utils.validation import check_is_fitted

__all__ = [
    "expected_calibration_error",
    "maximum_calibration_error",
    "frechet_distance",
    "extract_features",
    "inception_features",
    "ClassifierFeatures",
    "mmd",
    "ood_auroc",
]


# ---------------------------------------------------------------------------
# Calibration
# ---------------------------------------------------------------------------
class _CalibrationBins(NamedTuple):
    """Per-bin statistics of top-label confidence (see ``_calibration_bins``)."""

    edges: np.ndarray  # (n_bins + 1,) bin edges, linspace(0, 1)
    counts: np.ndarray  # (n_bins,) number of samples per bin
    accuracy: np.ndarray  # (n_bins,) accuracy per bin, nan where empty
    confidence: np.ndarray  # (n_bins,) mean confidence per bin, nan where empty
    n_samples: int


def _check_n_bins(n_bins):
    if isinstance(n_bins, bool) or not isinstance(n_bins, numbers.Integral):
        raise ValueError(f"n_bins must be an integer, got {n_bins!r}.")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}.")
    return int(n_bins)


def _top_label(y_true, y_prob, labels):
    """Validate inputs; return top-label confidences and correctness."""
    y_true = column_or_1d(np.asarray(y_true), warn=False)
    y_prob = np.asarray(y_prob)
    if y_prob.ndim not in (1, 2):
        raise ValueError(
            "y_prob must be 1-D (positive-class probabilities) or 2-D "
            f"(n_samples, n_classes), got an array with {y_prob.ndim} dimensions."
        )
    y_prob = check_array(y_prob, ensure_2d=False, dtype=np.float64)
    if y_prob.shape[0] != y_true.shape[0]:
        raise ValueError(
            f"y_true and y_prob have different numbers of samples: "
            f"{y_true.shape[0]} and {y_prob.shape[0]}."
        )
    if y_true.shape[0] == 0:
        raise ValueError("y_true and y_prob must contain at least one sample.")
    if np.any(y_prob < 0) or np.any(y_prob > 1):
        raise ValueError("y_prob must contain probabilities in [0, 1].")

    if labels is None:
        labels = np.unique(y_true)
    else:
        labels = column_or_1d(np.asarray(labels), warn=False)
        if len(np.unique(labels)) != len(labels):
            raise ValueError("labels must not contain duplicates.")
        missing = np.setdiff1d(y_true, labels)
        if missing.size:
            raise ValueError(
                f"y_true contains labels not in `labels`: {missing.tolist()}."
            )

    if y_prob.ndim == 1:
        if len(labels) != 2:
            raise ValueError(
                "A 1-D y_prob holds positive-class probabilities of a binary "
                f"problem, which needs exactly 2 labels; got {len(labels)} "
                f"({labels.tolist()}). Pass `labels` explicitly if y_true does "
                "not contain both classes."
            )
        y_prob = np.column_stack([1.0 - y_prob, y_prob])
    elif y_prob.shape[1] != len(labels):
        raise ValueError(
            f"y_prob has {y_prob.shape[1]} columns but there are {len(labels)} "
            f"labels ({labels.tolist()}). Pass `labels` to name the columns of "
            "y_prob if y_true does not contain every class."
        )

    pred = labels[np.argmax(y_prob, axis=1)]
    confidence = np.max(y_prob, axis=1)
    correct = (pred == y_true).astype(np.float64)
    return confidence, correct


def _calibration_bins(y_true, y_prob, *, n_bins=15, labels=None):
    """Bin top-label confidences into equal-width bins over [0, 1].

    Bin ``b`` is the interval ``(edges[b], edges[b + 1]]``, except that the
    first bin also contains 0.  Shared by the calibration metrics and by
    :func:`skebm.plotting.plot_reliability_diagram`.

    Parameters
    ----------
    y_true, y_prob, n_bins, labels
        As in :func:`expected_calibration_error`.

    Returns
    -------
    bins : _CalibrationBins
        Named tuple ``(edges, counts, accuracy, confidence, n_samples)``;
        ``accuracy`` and ``confidence`` are NaN for empty bins.
    """
    n_bins = _check_n_bins(n_bins)
    confidence, correct = _top_label(y_true, y_prob, labels)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # side="left" puts a value equal to an inner edge into the lower bin.
    idx = np.searchsorted(edges[1:-1], confidence, side="left")
    counts = np.bincount(idx, minlength=n_bins).astype(np.int64)
    sum_correct = np.bincount(idx, weights=correct, minlength=n_bins)
    sum_conf = np.bincount(idx, weights=confidence, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(counts > 0, sum_correct / counts, np.nan)
        mean_conf = np.where(counts > 0, sum_conf / counts, np.nan)
    return _CalibrationBins(edges, counts, accuracy, mean_conf, len(confidence))


def expected_calibration_error(y_true, y_prob, *, n_bins=15, labels=None):
    r"""Top-label expected calibration error (ECE).

    Predictions are grouped by their top-label confidence into ``n_bins``
    equal-width bins over [0, 1] (bin ``b`` is ``(b / n_bins, (b + 1) /
    n_bins]``; a confidence of exactly 0 goes into the first bin), and

    .. math::

        \mathrm{ECE} = \sum_b \frac{n_b}{n} \left| \mathrm{acc}_b -
        \mathrm{conf}_b \right|,

    where :math:`\mathrm{acc}_b` is the fraction of correct top-label
    predictions in bin :math:`b` and :math:`\mathrm{conf}_b` their mean
    confidence.  Empty bins contribute nothing.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels.
    y_prob : array-like of shape (n_samples, n_classes) or (n_samples,)
        Predicted probabilities, e.g. the output of ``predict_proba``, with
        columns ordered as ``labels``.  A 1-D array is read as the
        probabilities of the positive class (``labels[1]``) of a binary
        problem, so that the confidence is ``max(p, 1 - p)``.  Values must lie
        in [0, 1]; rows are not required to sum to one.  Ties between classes
        are resolved in favour of the first column.
    n_bins : int, default=15
        Number of confidence bins, at least 1.
    labels : array-like of shape (n_classes,), default=None
        Class labels corresponding to the columns of ``y_prob``.  Defaults to
        ``np.unique(y_true)``; pass it when ``y_true`` does not contain every
        class.

    Returns
    -------
    ece : float
        Expected calibration error, in [0, 1].

    See Also
    --------
    maximum_calibration_error : Worst-bin calibration gap.

    Examples
    --------
    >>> from skebm.metrics import expected_calibration_error
    >>> y_true = [0, 1, 1, 0]
    >>> y_prob = [[0.9, 0.1], [0.25, 0.75], [0.55, 0.45], [0.65, 0.35]]
    >>> round(expected_calibration_error(y_true, y_prob, n_bins=5), 4)
    0.3125
    """
    bins = _calibration_bins(y_true, y_prob, n_bins=n_bins, labels=labels)
    nonempty = bins.counts > 0
    gaps = np.abs(bins.accuracy[nonempty] - bins.confidence[nonempty])
    return float(np.sum(bins.counts[nonempty] / bins.n_samples * gaps))


def maximum_calibration_error(y_true, y_prob, *, n_bins=15, labels=None):
    """Top-label maximum calibration error (MCE).

    The largest gap ``|acc_b - conf_b|`` over the non-empty confidence bins,
    with the same binning as :func:`expected_calibration_error`.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels.
    y_prob : array-like of shape (n_samples, n_classes) or (n_samples,)
        Predicted probabilities, as in :func:`expected_calibration_error`.
    n_bins : int, default=15
        Number of confidence bins, at least 1.
    labels : array-like of shape (n_classes,), default=None
        Class labels corresponding to the columns of ``y_prob``.

    Returns
    -------
    mce : float
        Maximum calibration error, in [0, 1].

    Examples
    --------
    >>> from skebm.metrics import maximum_calibration_error
    >>> y_true = [0, 1, 1, 0]
    >>> y_prob = [[0.9, 0.1], [0.25, 0.75], [0.55, 0.45], [0.65, 0.35]]
    >>> round(maximum_calibration_error(y_true, y_prob, n_bins=5), 4)
    0.55
    """
    bins = _calibration_bins(y_true, y_prob, n_bins=n_bins, labels=labels)
    nonempty = bins.counts > 0
    return float(np.max(np.abs(bins.accuracy[nonempty] - bins.confidence[nonempty])))


# ---------------------------------------------------------------------------
# Sample quality
# ---------------------------------------------------------------------------
def _check_two_samples(A, B, names, *, min_samples):
    A = check_array(A, dtype=np.float64)
    B = check_array(B, dtype=np.float64)
    if A.shape[1] != B.shape[1]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same number of features, "
            f"got {A.shape[1]} and {B.shape[1]}."
        )
    for arr, name in zip((A, B), names, strict=True):
        if arr.shape[0] < min_samples:
            raise ValueError(
                f"{name} needs at least {min_samples} samples, got {arr.shape[0]}."
            )
    return A, B


def frechet_distance(features_a, features_b, *, feature_extractor=None, batch_size=256, eps=1e-6):
    r"""Fréchet distance between Gaussian fits of two feature sets.

    Each set is summarised by its mean :math:`\mu` and (unbiased) covariance
    :math:`\Sigma`, and the squared 2-Wasserstein distance between the two
    Gaussians is returned:

    .. math::

        d^2 = \lVert \mu_a - \mu_b \rVert^2 + \operatorname{tr}\left(
        \Sigma_a + \Sigma_b - 2 (\Sigma_a \Sigma_b)^{1/2} \right).

    With Inception pool3 features this is the FID (see
    :func:`inception_features`, and the module notes on which numbers
    compare with the papers'); here any features can be used: feature
    arrays directly, or raw inputs together with a ``feature_extractor``
    (a torch module, a callable, a fitted transformer such as
    :class:`ClassifierFeatures`) applied by :func:`extract_features`. The
    matrix square root is computed with :func:`scipy.linalg.sqrtm`. If the
    product of the covariances is singular (SciPy warns) or its root is not
    finite, ``eps`` is added to the diagonal of both covariances
    (everywhere in the formula) and the root recomputed; a negligible
    imaginary part caused by round-off is dropped.

    Parameters
    ----------
    features_a : array-like of shape (n_samples_a, n_features)
        First feature set, at least 2 samples; with ``feature_extractor``,
        the inputs it maps to features (e.g. images, or a torch tensor).
    features_b : array-like of shape (n_samples_b, n_features)
        Second feature set (or inputs), at least 2 samples.
    feature_extractor : torch.nn.Module, callable or transformer, default=None
        Maps a batch of inputs to features, see :func:`extract_features`;
        ``None``: the arguments are features already.
    batch_size : int, default=256
        Inputs per call of ``feature_extractor``.
    eps : float, default=1e-6
        Diagonal offset used when the product of covariances is singular.

    Returns
    -------
    distance : float
        The squared Fréchet distance (FID convention: no square root taken),
        clipped at 0 to remove round-off.

    Raises
    ------
    ValueError
        If the inputs have different numbers of features, too few samples, or
        the square root has a significant imaginary part.

    See Also
    --------
    inception_features : The FID's Inception features, from a local weights file.
    ClassifierFeatures : Features of a small CNN trained on held-out images.

    Examples
    --------
    >>> import numpy as np
    >>> from skebm.metrics import frechet_distance
    >>> rng = np.random.RandomState(0)
    >>> A = rng.normal(size=(2000, 2))
    >>> round(frechet_distance(A, A + [3.0, 0.0]), 6)
    9.0

    Any callable maps inputs to the features compared:

    >>> X = rng.normal(size=(500, 3))
    >>> first_two = lambda batch: batch[:, :2]
    >>> frechet_distance(X, X + [0.0, 0.0, 5.0], feature_extractor=first_two) < 0.01
    True
    """
    if not (isinstance(eps, numbers.Real) and eps >= 0):
        raise ValueError(f"eps must be a non-negative number, got {eps!r}.")
    if feature_extractor is not None:
        features_a = extract_features(feature_extractor, features_a, batch_size=batch_size)
        features_b = extract_features(feature_extractor, features_b, batch_size=batch_size)
    A, B = _check_two_samples(
        features_a, features_b, ("features_a", "features_b"), min_samples=2
    )
    mu_a, mu_b = A.mean(axis=0), B.mean(axis=0)
    cov_a = np.atleast_2d(np.cov(A, rowvar=False))
    cov_b = np.atleast_2d(np.cov(B, rowvar=False))

    with warnings.catch_warnings():
        warnings.simplefilter("error", linalg.LinAlgWarning)
        try:
            covmean = linalg.sqrtm(cov_a @ cov_b)
            singular = not np.all(np.isfinite(covmean))
        except linalg.LinAlgWarning:
            singular = True
    if singular:
        # Regularise both covariances consistently (also in the traces below).
        offset = eps * np.eye(cov_a.shape[0])
        cov_a, cov_b = cov_a + offset, cov_b + offset
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", linalg.LinAlgWarning)
            covmean = linalg.sqrtm(cov_a @ cov_b)
    if np.iscomplexobj(covmean):
        imag = np.max(np.abs(np.diagonal(covmean).imag))
        scale = max(1.0, np.max(np.abs(covmean.real)))
        if imag > 1e-3 * scale:
            raise ValueError(
                f"The matrix square root has a significant imaginary part "
                f"({imag:.3g}); the covariances may be badly conditioned."
            )
        covmean = covmean.real

    diff = mu_a - mu_b
    dist = diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(covmean)
    return float(max(dist, 0.0))


# ---------------------------------------------------------------------------
# Feature extractors
# ---------------------------------------------------------------------------
def _is_torch_module(obj):
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def _is_tensor(obj):
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def _features_to_numpy(out, n):
    if isinstance(out, (tuple, list)) and len(out) and not np.isscalar(out[0]):
        out = out[0]  # e.g. torch-fidelity / pytorch-fid return one entry per requested layer
    if _is_tensor(out):
        out = out.detach().float().cpu().numpy()
    out = np.asarray(out, dtype=np.float64)
    if out.ndim == 0 or out.shape[0] != n:
        raise ValueError(
            f"The feature extractor returned an array of shape {out.shape} for a batch of {n} inputs; "
            "it must return one row of features per input."
        )
    return out.reshape(n, -1)


def _run_module(module, batch):
    import torch

    param = next(iter(module.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    x = batch if _is_tensor(batch) else torch.as_tensor(np.asarray(batch, dtype=np.float32))
    with torch.no_grad():
        return module(x.to(device=device, dtype=torch.float32))


def extract_features(feature_extractor, X, *, batch_size=256):
    """Apply a feature extractor to ``X`` in batches; return a 2-D float64 array.

    Parameters
    ----------
    feature_extractor : torch.nn.Module, callable or transformer
        What maps a batch of inputs to features:

        * a :class:`torch.nn.Module`: called on float32 tensors on the
          device of its parameters, in evaluation mode (its previous mode
          is restored) and without gradients;
        * an object with a ``transform`` method (a fitted scikit-learn
          transformer, :class:`ClassifierFeatures`): ``transform(batch)``;
        * any other callable: ``feature_extractor(batch)``, with the batch
          as given (NumPy rows, or torch tensor rows if ``X`` is a tensor).

        The output may be an array, a tensor, or a tuple or list whose first
        entry is one (as Inception wrappers return); it is flattened to one
        row per input.
    X : array-like or torch.Tensor of shape (n_samples, ...)
        Inputs.
    batch_size : int, default=256
        Inputs per call.

    Returns
    -------
    features : ndarray of shape (n_samples, n_features)

    Examples
    --------
    >>> import numpy as np
    >>> from skebm.metrics import extract_features
    >>> extract_features(lambda b: b.sum(axis=1), np.ones((5, 3)), batch_size=2).ravel()
    array([3., 3., 3., 3., 3.])
    """
    if not (isinstance(batch_size, numbers.Integral) and not isinstance(batch_size, bool) and batch_size >= 1):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if _is_torch_module(feature_extractor):
        module = feature_extractor

        def run(batch):
            return _run_module(module, batch)

    elif hasattr(feature_extractor, "transform") and not callable(feature_extractor):
        run = feature_extractor.transform
    elif callable(feature_extractor):
        run = feature_extractor
    elif hasattr(feature_extractor, "transform"):
        run = feature_extractor.transform
    else:
        raise TypeError(
            "feature_extractor must be a torch.nn.Module, a callable or an object with a transform method, "
            f"got {type(feature_extractor).__name__}."
        )
    if not _is_tensor(X):
        X = np.asarray(X)
    n = len(X)
    if n == 0:
        raise ValueError("X must contain at least one sample.")
    was_training = getattr(feature_extractor, "training", None) if _is_torch_module(feature_extractor) else None
    if was_training:
        feature_extractor.train(False)
    from ._torch_utils import batched

    try:
        return batched(lambda batch: _features_to_numpy(run(batch), len(batch)), X, batch_size, grad=None)
    finally:
        if was_training:
            feature_extractor.train(True)


# The FID network's weights, as the two packages name them (never downloaded here).
_INCEPTION_FILES = {
    "torch-fidelity": (
        "weights-inception-2015-12-05-6726825d.pth",
        "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
    ),
    "pytorch-fid": (
        "pt_inception-2015-12-05-6726825d.pth",
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    ),
}
_PATCH_LOCK = threading.Lock()


def _weights_help():
    lines = [f"  {backend}: {name} from {url}" for backend, (name, url) in _INCEPTION_FILES.items()]
    return "\n".join(lines)


class _InceptionFeatures:
    """Callable: images -> 2,048 Inception pool3 features (see :func:`inception_features`)."""

    def __init__(self, module, backend, device, value_range):
        self.module = module
        self.backend = backend
        self.device = device
        self.value_range = value_range

    def __call__(self, images):
        import torch

        x = images if _is_tensor(images) else torch.as_tensor(np.asarray(images, dtype=np.float32))
        x = x.float()
        if x.ndim == 3:
            x = x[:, None]
        if x.ndim == 2:
            side = int(round(np.sqrt(x.shape[1])))
            if side * side != x.shape[1]:
                raise ValueError(
                    f"Flat images of {x.shape[1]} features are not square single-channel images; pass them "
                    "as (n, C, H, W)."
                )
            x = x.reshape(len(x), 1, side, side)
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"Inception features need (n, 1 or 3, H, W) images, got shape {tuple(x.shape)}.")
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        low, high = self.value_range
        unit = ((x - low) / (high - low)).clamp(0.0, 1.0).to(self.device)
        with torch.no_grad():
            if self.backend == "torch-fidelity":
                # its network takes uint8 images in [0, 255] and resizes them as TensorFlow 1 does
                out = self.module((unit * 255.0).round().to(torch.uint8))
            else:
                out = self.module(unit)
        out = out[0] if isinstance(out, (tuple, list)) else out
        return out.reshape(len(out), -1).float().cpu().numpy()

    def __repr__(self):
        return f"InceptionFeatures(backend={self.backend!r}, device={self.device!r}, value_range={self.value_range!r})"


def inception_features(weights_path, *, backend="auto", device="cpu", value_range=(0, 255)):
    """The FID's Inception-v3 pool3 features, from a weights file on disk.

    Builds the TensorFlow-compatible Inception network of
    `torch-fidelity <https://github.com/toshas/torch-fidelity>`_ or of
    `pytorch-fid <https://github.com/mseitzer/pytorch-fid>`_ (whichever is
    installed, or the one named) with the weights read from
    ``weights_path``. Nothing is ever downloaded: without the file this
    raises with the names and addresses of the weights to fetch yourself.
    The returned callable maps images to 2,048 features; pass it to
    :func:`frechet_distance` as ``feature_extractor``. Grayscale images are
    repeated to three channels; both packages resize to 299x299 themselves.
    For numbers comparable with the papers' FID read the module notes
    (50,000 samples, the paper's reference set).

    Parameters
    ----------
    weights_path : str or path-like
        The weights file: ``weights-inception-2015-12-05-6726825d.pth``
        (torch-fidelity) or ``pt_inception-2015-12-05-6726825d.pth``
        (pytorch-fid); the two hold the same network.
    backend : {"auto", "torch-fidelity", "pytorch-fid"}, default="auto"
        Package whose network is used; ``"auto"`` takes torch-fidelity when
        it is installed, else pytorch-fid.
    device : str, default="cpu"
        Device of the network.
    value_range : tuple of float, default=(0, 255)
        Range ``(low, high)`` of the images' values (``(0, 1)`` for unit
        images; a generator's samples come in the range of its training
        data); values outside are clipped.

    Returns
    -------
    extractor : callable
        ``extractor(images)`` with images of shape ``(n, C, H, W)``,
        ``(n, H, W)`` or flat square grayscale ``(n, H * W)`` (array or
        tensor) returns an ``(n, 2048)`` float32 array.

    Raises
    ------
    FileNotFoundError
        If ``weights_path`` is None or does not exist.
    ImportError
        If neither package (or the one named) is installed.

    Examples
    --------
    >>> from skebm.metrics import inception_features
    >>> inception_features(None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileNotFoundError: inception_features needs the Inception weights file on disk...
    """
    if backend not in ("auto", "torch-fidelity", "pytorch-fid"):
        raise ValueError(f"backend must be 'auto', 'torch-fidelity' or 'pytorch-fid', got {backend!r}.")
    try:
        low, high = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise ValueError(f"value_range must be a pair (low, high), got {value_range!r}.") from None
    if not high > low:
        raise ValueError(f"value_range must satisfy low < high, got {value_range!r}.")
    if weights_path is None or not os.path.isfile(os.fspath(weights_path)):
        where = "no path was given" if weights_path is None else f"{os.fspath(weights_path)!r} is not a file"
        raise FileNotFoundError(
            f"inception_features needs the Inception weights file on disk ({where}); skebm never downloads it. "
            f"Fetch one of\n{_weights_help()}\nand pass its path. Without them, use ClassifierFeatures (not "
            "comparable with published FIDs)."
        )
    path = os.fspath(weights_path)
    chosen = _pick_inception_backend(backend)
    import torch

    if chosen == "torch-fidelity":
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        with _patched_torch_load():
            module = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=path)
    else:
        import pytorch_fid.inception as pfid

        state = torch.load(path, map_location="cpu", weights_only=True)

        def no_download(*args, **kwargs):
            return state

        with _PATCH_LOCK:  # pytorch-fid reads its weights through this module-level function only
            original = pfid.load_state_dict_from_url
            pfid.load_state_dict_from_url = no_download
            try:
                module = pfid.InceptionV3([pfid.InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=True,
                                          normalize_input=True, use_fid_inception=True)
            finally:
                pfid.load_state_dict_from_url = original
    module = module.to(device).eval()
    return _InceptionFeatures(module, chosen, device, (low, high))


@contextlib.contextmanager
def _patched_torch_load():
    """torch-fidelity calls ``torch.load(path)``: load tensors only (no pickled code) while it does."""
    import torch

    original = torch.load

    def safe_load(*args, **kwargs):
        kwargs.setdefault("weights_only", True)
        kwargs.setdefault("map_location", "cpu")
        return original(*args, **kwargs)

    with _PATCH_LOCK:
        torch.load = safe_load
        try:
            yield
        finally:
            torch.load = original


def _pick_inception_backend(backend):
    import importlib.util

    available = {
        "torch-fidelity": importlib.util.find_spec("torch_fidelity") is not None,
        "pytorch-fid": importlib.util.find_spec("pytorch_fid") is not None,
    }
    if backend == "auto":
        for name, ok in available.items():
            if ok:
                return name
        raise ImportError(
            "inception_features needs torch-fidelity or pytorch-fid: `pip install torch-fidelity` (or "
            "`pip install pytorch-fid`); the weights file stays yours to provide."
        )
    if not available[backend]:
        raise ImportError(f"backend={backend!r} is not installed: `pip install {backend}`.")
    return backend


def _random_shifts(xb, shift, generator):
    """Translate each image by its own random offset in [-shift, shift]^2 (zero padding)."""
    import torch

    h, w = xb.shape[2], xb.shape[3]
    padded = torch.nn.functional.pad(xb, (shift,) * 4)
    offsets = torch.randint(2 * shift + 1, (len(xb), 2), generator=generator)
    out = torch.empty_like(xb)
    for dy, dx in torch.unique(offsets, dim=0).tolist():
        rows = ((offsets[:, 0] == dy) & (offsets[:, 1] == dx)).nonzero()[:, 0]
        out[rows] = padded[rows, :, dy : dy + h, dx : dx + w]
    return out


class ClassifierFeatures(TransformerMixin, BaseEstimator):
    """Penultimate-layer features of a small CNN classifier, for Frechet distances.

    When the FID's Inception weights are not at hand (or the images are
    tiny digits, far from ImageNet), a fixed classifier trained on
    *held-out* labelled images gives a feature space in which a Frechet
    distance and the class coverage of samples mean something: digits that
    look right land near the real ones, and :meth:`predict` says which
    class each sample shows. ``fit`` trains two 3x3 conv layers with max
    pooling and a hidden layer of ``hidden_units`` ReLU units (Adam,
    cross-entropy, random shifts of up to ``max_shift`` pixels);
    :meth:`transform` returns the hidden layer. Train it on images the
    generative models never saw, and compare models only through the same
    fitted extractor: the numbers are not comparable with published FIDs
    (see the module notes).

    Parameters
    ----------
    image_shape : tuple of int, default=None
        ``(C, H, W)`` of flat inputs; ``None`` infers it from 4-D input or
        from square single-channel flat input (3-D input is refused: pass
        ``X[:, None]``).
    channels : tuple of int, default=(32, 64)
        Channels of the two conv layers.
    hidden_units : int, default=128
        Width of the feature layer.
    max_epochs : int, default=30
        Passes over the training data.
    batch_size : int, default=64
        Images per update.
    lr : float, default=1e-3
        Adam learning rate.
    weight_decay : float, default=1e-4
        Adam weight decay.
    max_shift : int or "auto", default="auto"
        Largest random translation (pixels, per image) of the training
        augmentation; ``"auto"`` is ``H // 14`` (2 on 28x28 MNIST, none on
        8x8 digits).
    random_state : int, default=0
        Seed of the weights, batch order and shifts.

    Attributes
    ----------
    classes_ : ndarray
        Class labels.
    image_shape_ : tuple of int
        Image shape used.
    low_, high_ : float
        Value range of the training images (inputs are mapped to [0, 1]
        with it, and clipped).
    module_ : torch.nn.Module
        The trained network.
    n_features_in_ : int
        Number of flat input features.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skebm.metrics import ClassifierFeatures, frechet_distance
    >>> X, y = load_digits(return_X_y=True)
    >>> feat = ClassifierFeatures(max_epochs=10).fit(X[:800], y[:800])
    >>> feat.transform(X[800:805]).shape
    (5, 128)
    >>> bool(feat.score(X[800:], y[800:]) > 0.8)
    True
    """

    def __init__(self, image_shape=None, *, channels=(32, 64), hidden_units=128, max_epochs=30, batch_size=64,
                 lr=1e-3, weight_decay=1e-4, max_shift="auto", random_state=0):
        self.image_shape = image_shape
        self.channels = channels
        self.hidden_units = hidden_units
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_shift = max_shift
        self.random_state = random_state

    def _build(self, n_classes):
        import torch
        from torch import nn

        c, h, w = self.image_shape_
        c1, c2 = (int(v) for v in self.channels)
        hh, ww = h // 2 // 2, w // 2 // 2
        if hh < 1 or ww < 1:
            raise ValueError(f"Images of shape {self.image_shape_} are too small for two 2x2 poolings.")
        body = nn.Sequential(
            nn.Conv2d(c, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(c2 * hh * ww, int(self.hidden_units)), nn.ReLU(),
        )
        return nn.Sequential(body, nn.Linear(int(self.hidden_units), n_classes)), torch

    def _as_unit_images(self, X):
        import torch

        if _is_tensor(X):
            X = X.detach().cpu().numpy()
        X = np.asarray(X, dtype=np.float64)
        X = X.reshape(len(X), *self.image_shape_) if X.ndim != 4 else X
        unit = np.clip((X - self.low_) / (self.high_ - self.low_), 0.0, 1.0)
        return torch.as_tensor(unit, dtype=torch.float32)

    def fit(self, X, y):
        """Train the classifier on labelled images.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Images (e.g. held-out digits the generators never saw).
        y : array-like of shape (n_samples,)
            Class labels.

        Returns
        -------
        self : ClassifierFeatures
        """
        import torch

        X = np.asarray(X)
        y = column_or_1d(np.asarray(y), warn=True)
        if len(X) != len(y):
            raise ValueError(f"X and y have inconsistent numbers of samples: {len(X)} and {len(y)}.")
        from ._images import image_batch_shape

        self.image_shape_ = image_batch_shape(X, self.image_shape, infer_square=True)
        flat = X.reshape(len(X), -1).astype(np.float64)
        self.n_features_in_ = flat.shape[1]
        self.low_, self.high_ = float(flat.min()), float(flat.max())
        if not self.high_ > self.low_:
            self.high_ = self.low_ + 1.0
        self.classes_, codes = np.unique(y, return_inverse=True)
        from ._random import derive_seed, seed_from
        from .nn._reset import reset_parameters

        seed = seed_from(self.random_state)
        module, _ = self._build(len(self.classes_))
        reset_parameters(module, torch.Generator().manual_seed(derive_seed(seed, "weights")))
        g = torch.Generator().manual_seed(derive_seed(seed, "data"))
        images = self._as_unit_images(flat)
        targets = torch.as_tensor(codes, dtype=torch.long)
        opt = torch.optim.Adam(module.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        shift = self.image_shape_[1] // 14 if self.max_shift == "auto" else int(self.max_shift)
        n = len(images)
        module.train(True)
        for _ in range(int(self.max_epochs)):
            order = torch.randperm(n, generator=g)
            for start in range(0, n, int(self.batch_size)):
                idx = order[start : start + int(self.batch_size)]
                xb = images[idx]
                if shift:
                    xb = _random_shifts(xb, shift, g)
                loss = torch.nn.functional.cross_entropy(module(xb), targets[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        module.train(False)
        self.module_ = module
        return self

    def _forward(self, X, features):
        from ._torch_utils import batched

        check_is_fitted(self, "module_")
        head = self.module_[0] if features else self.module_
        return batched(head, self._as_unit_images(X), 512).double().numpy()

    def transform(self, X):
        """Penultimate-layer (hidden ReLU) features.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Images in the value range of the training images.

        Returns
        -------
        features : ndarray of shape (n_samples, hidden_units)
        """
        return self._forward(X, features=True)

    def __call__(self, X):
        """Same as :meth:`transform` (so the object is a feature extractor)."""
        return self.transform(X)

    def predict_proba(self, X):
        """Class probabilities of the classifier.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Images.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        from scipy.special import softmax

        return softmax(self._forward(X, features=False), axis=1)

    def predict(self, X):
        """Predicted classes (e.g. the class coverage of generated samples).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Images.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        return self.classes_[np.argmax(self._forward(X, features=False), axis=1)]

    def score(self, X, y):
        """Accuracy on ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Images.
        y : array-like of shape (n_samples,)
            True labels.

        Returns
        -------
        accuracy : float
        """
        return float(np.mean(self.predict(X) == np.asarray(y)))


def _median_heuristic_gamma(Z):
    d = euclidean_distances(Z, Z, squared=True)
    iu = np.triu_indices(Z.shape[0], k=1)
    med = np.median(d[iu])
    if not med > 0:
        return 1.0
    return 1.0 / (2.0 * med)


def mmd(X, Y, *, kernel="rbf", gamma=None):
    r"""Unbiased estimate of the squared maximum mean discrepancy (MMD).

    .. math::

        \widehat{\mathrm{MMD}}^2 = \frac{1}{m(m-1)} \sum_{i \ne j} k(x_i, x_j)
        + \frac{1}{n(n-1)} \sum_{i \ne j} k(y_i, y_j)
        - \frac{2}{mn} \sum_{i, j} k(x_i, y_j)

    with the Gaussian kernel :math:`k(x, y) = \exp(-\gamma \lVert x - y
    \rVert^2)`.  Being unbiased, the estimate fluctuates around 0 (and can be
    slightly negative) when both samples come from the same distribution.

    Parameters
    ----------
    X : array-like of shape (n_samples_X, n_features)
        First sample, at least 2 points.
    Y : array-like of shape (n_samples_Y, n_features)
        Second sample, at least 2 points.
    kernel : "rbf" or callable, default="rbf"
        ``"rbf"`` for the Gaussian kernel, or a callable ``kernel(A, B)``
        returning the Gram matrix of shape ``(len(A), len(B))`` (``gamma`` is
        then ignored).
    gamma : float or None, default=None
        Inverse squared length scale of the RBF kernel.  ``None`` uses the
        median heuristic on the pooled sample ``Z = [X; Y]``:
        ``gamma = 1 / (2 * median_{i<j} ||z_i - z_j||^2)``, i.e. a bandwidth
        equal to the median pairwise distance.  Costs O((m + n)^2) memory.

    Returns
    -------
    mmd2 : float
        The unbiased squared MMD estimate.

    Examples
    --------
    >>> import numpy as np
    >>> from skebm.metrics import mmd
    >>> rng = np.random.RandomState(0)
    >>> X, Y = rng.normal(size=(300, 2)), rng.normal(size=(300, 2))
    >>> abs(mmd(X, Y)) < 0.01, mmd(X, Y + 2.0) > 0.1
    (True, True)
    """
    X, Y = _check_two_samples(X, Y, ("X", "Y"), min_samples=2)
    if callable(kernel):
        kern = kernel
    elif kernel == "rbf":
        if gamma is None:
            gamma = _median_heuristic_gamma(np.vstack([X, Y]))
        elif not (
            isinstance(gamma, numbers.Real) and np.isfinite(gamma) and gamma > 0
        ):
            raise ValueError(f"gamma must be a positive number or None, got {gamma!r}.")

        def kern(A, B):
            return rbf_kernel(A, B, gamma=gamma)

    else:
        raise ValueError(f"kernel must be 'rbf' or a callable, got {kernel!r}.")

    m, n = X.shape[0], Y.shape[0]
    Kxx, Kyy, Kxy = (
        np.asarray(kern(A, B), dtype=np.float64) for A, B in ((X, X), (Y, Y), (X, Y))
    )
    for K, shape in ((Kxx, (m, m)), (Kyy, (n, n)), (Kxy, (m, n))):
        if K.shape != shape:
            raise ValueError(
                f"kernel returned a Gram matrix of shape {K.shape}, expected {shape}."
            )
    term_xx = (Kxx.sum() - np.trace(Kxx)) / (m * (m - 1))
    term_yy = (Kyy.sum() - np.trace(Kyy)) / (n * (n - 1))
    term_xy = Kxy.mean()
    return float(term_xx + term_yy - 2.0 * term_xy)


# ---------------------------------------------------------------------------
# Out-of-distribution detection
# ---------------------------------------------------------------------------
def ood_auroc(scores_in, scores_out):
    """Area under the ROC curve for separating in- from out-of-distribution.

    In-distribution samples are the positive class, so scores must be larger
    for more "in-distribution" inputs (e.g. negative energies or
    log-likelihoods; pass ``-energy`` when using energies).  1 means perfect
    separation, 0.5 chance level, and values below 0.5 that the score ranks
    the two sets the wrong way round.

    Parameters
    ----------
    scores_in : array-like of shape (n_in,)
        Scores of in-distribution samples.
    scores_out : array-like of shape (n_out,)
        Scores of out-of-distribution samples.

    Returns
    -------
    auroc : float
        The AUROC, computed with :func:`sklearn.metrics.roc_auc_score`.

    Examples
    --------
    >>> from skebm.metrics import ood_auroc
    >>> ood_auroc([3.0, 2.0, 1.5], [0.0, 1.0])
    1.0
    """
    s_in = _check_scores(scores_in, "scores_in")
    s_out = _check_scores(scores_out, "scores_out")
    y = np.concatenate([np.ones(len(s_in)), np.zeros(len(s_out))])
    return float(roc_auc_score(y, np.concatenate([s_in, s_out])))


def _check_scores(scores, name):
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 2 and 1 in scores.shape:
        scores = scores.ravel()
    if scores.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {scores.shape}.")
    if scores.size == 0:
        raise ValueError(f"{name} must not be empty.")
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"{name} must contain only finite values.")
    return scores
