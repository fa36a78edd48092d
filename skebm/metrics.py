"""Evaluation metrics for energy-based models.

* Calibration of classifiers: :func:`expected_calibration_error` and
  :func:`maximum_calibration_error`.
* Sample quality of generative models: :func:`frechet_distance` (the
  distance behind FID, on whatever features are given) and :func:`mmd`.
* Out-of-distribution detection: :func:`ood_auroc`.

This module depends on NumPy, SciPy and scikit-learn only.
"""

import numbers
import warnings
from typing import NamedTuple

import numpy as np
from scipy import linalg
from sklearn.metrics import roc_auc_score
from sklearn.metrics.pairwise import euclidean_distances, rbf_kernel
from sklearn.utils import check_array, column_or_1d

__all__ = [
    "expected_calibration_error",
    "maximum_calibration_error",
    "frechet_distance",
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


def frechet_distance(features_a, features_b, *, eps=1e-6):
    r"""Fréchet distance between Gaussian fits of two feature sets.

    Each set is summarised by its mean :math:`\mu` and (unbiased) covariance
    :math:`\Sigma`, and the squared 2-Wasserstein distance between the two
    Gaussians is returned:

    .. math::

        d^2 = \lVert \mu_a - \mu_b \rVert^2 + \operatorname{tr}\left(
        \Sigma_a + \Sigma_b - 2 (\Sigma_a \Sigma_b)^{1/2} \right).

    With Inception features this is the FID; here any features (raw pixels,
    the penultimate layer of a classifier, ...) can be used.  The matrix
    square root is computed with :func:`scipy.linalg.sqrtm`.  If the product
    of the covariances is singular (SciPy warns) or its root is not finite,
    ``eps`` is added to the diagonal of both covariances (everywhere in the
    formula) and the root recomputed; a negligible imaginary part caused by
    round-off is dropped.

    Parameters
    ----------
    features_a : array-like of shape (n_samples_a, n_features)
        First feature set, at least 2 samples.
    features_b : array-like of shape (n_samples_b, n_features)
        Second feature set, at least 2 samples.
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

    Examples
    --------
    >>> import numpy as np
    >>> from skebm.metrics import frechet_distance
    >>> rng = np.random.RandomState(0)
    >>> A = rng.normal(size=(2000, 2))
    >>> round(frechet_distance(A, A + [3.0, 0.0]), 6)
    9.0
    """
    A, B = _check_two_samples(
        features_a, features_b, ("features_a", "features_b"), min_samples=2
    )
    if not (isinstance(eps, numbers.Real) and eps >= 0):
        raise ValueError(f"eps must be a non-negative number, got {eps!r}.")
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
