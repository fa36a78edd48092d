"""Small data sets for energy-based models.

Everything here is generated on the fly or loaded from files that ship with
scikit-learn; nothing is downloaded.

* :func:`make_toy_2d` samples the classic two-dimensional toy densities
  (``"8gaussians"``, ``"rings"``, ``"moons"``, ``"checkerboard"`` and
  ``"2spirals"``), and :func:`toy_2d_log_density` evaluates their
  log-density so that a learned model can be compared with the truth.
* :func:`load_digits_images` returns scikit-learn's 8x8 digits as images of
  shape ``(1, 8, 8)``.
* :func:`make_image_patches` cuts random patches out of the two sample
  photographs that ship with scikit-learn.

Images use the channels-first layout ``(C, H, W)`` throughout, and the
flattened ``data`` arrays are those images reshaped to ``(n, C * H * W)``.
"""

import numbers

import numpy as np
from scipy.special import log_ndtr
from scipy.special import ive as _bessel_ive
from sklearn.utils import Bunch, check_array, check_random_state

__all__ = [
    "TOY_2D_NAMES",
    "make_toy_2d",
    "toy_2d_log_density",
    "load_digits_images",
    "make_image_patches",
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


def _check_name(name):
    if not isinstance(name, str) or name not in TOY_2D_NAMES:
        raise ValueError(
            f"Unknown toy data set name {name!r}; expected one of {TOY_2D_NAMES}."
        )
    return name


def _check_noise(name, noise):
    if noise is None:
        return _DEFAULT_NOISE[name]
    if (
        isinstance(noise, bool)
        or not isinstance(noise, numbers.Real)
        or not np.isfinite(noise)
        or noise < 0
    ):
        raise ValueError(
            f"noise must be a finite non-negative number or None, got {noise!r}."
        )
    return float(noise)


def _check_positive_int(value, name, *, minimum=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)


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
    name = _check_name(name)
    n_samples = _check_positive_int(n_samples, "n_samples")
    noise = _check_noise(name, noise)
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
    name = _check_name(name)
    noise = _check_noise(name, noise)
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

    n_patches = _check_positive_int(n_patches, "n_patches")
    patch_size = _check_positive_int(patch_size, "patch_size")
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
