"""Plotting helpers for energy-based models (matplotlib).

Every function draws on a given :class:`matplotlib.axes.Axes` (``ax``) or, if
none is given, on a new figure, and returns the Axes.  Nothing calls
``plt.show()``; showing or saving the figure is left to the caller.

Matplotlib is imported lazily, so importing :mod:`skebm.plotting` does not
require it.
"""

import numbers
import warnings

import numpy as np

from skebm._images import image_batch_shape, image_mosaic
from skebm.metrics import _calibration_bins, expected_calibration_error, ood_auroc

__all__ = [
    "plot_sample_grid",
    "plot_energy_landscape",
    "plot_reliability_diagram",
    "plot_ood_histograms",
    "plot_traces",
    "plot_training",
    "plot_sample_evolution",
    "save_sample_evolution",
    "plot_training_curves",
    "plot_robustness",
    "plot_diagnostics",
]


def _get_ax(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots()
    return ax


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _to_numpy(x):
    """Convert array-likes (including CPU torch tensors) to ndarray."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


# ---------------------------------------------------------------------------
# Image grids
# ---------------------------------------------------------------------------
def _images_to_nchw(images, image_shape):
    images = _to_numpy(images)
    if images.dtype == object or not np.issubdtype(images.dtype, np.number):
        raise ValueError("images must be a numeric array.")
    images = images.astype(np.float64)
    shape = image_batch_shape(images, image_shape, name="images")
    if shape is None:
        raise ValueError(
            f"images of shape {images.shape} are flat: pass image_shape=(C, H, W), or a 4-D array (n, C, H, W)."
        )
    images = images.reshape((images.shape[0],) + shape)
    n, c = images.shape[:2]
    if n == 0:
        raise ValueError("images must contain at least one image.")
    if c not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got {c}.")
    if not np.all(np.isfinite(images)):
        raise ValueError("images must contain only finite values.")
    return images


def _check_value_range(value_range):
    if value_range is None:
        return None
    try:
        lo, hi = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise ValueError(f"value_range must be None or a pair (low, high), got {value_range!r}.") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"value_range must satisfy low < high, got {value_range!r}.")
    return lo, hi


def plot_sample_grid(
    images,
    *,
    image_shape=None,
    n_cols=None,
    ax=None,
    cmap="gray",
    title=None,
    padding=1,
    value_range=None,
):
    """Show a batch of images as a single grid.

    All images are scaled together with the grid's global minimum and maximum
    (or with ``value_range``) to [0, 1] (so relative brightness between
    images is preserved), tiled
    row by row with ``padding`` white pixels between them, and drawn with one
    ``imshow`` call.

    Parameters
    ----------
    images : array-like of shape (n, C, H, W) or (n, C*H*W)
        Images in channels-first layout with ``C = 1`` (grayscale, e.g.
        ``X[:, None]`` of ``(n, H, W)`` images) or ``C = 3`` (RGB). Flat
        images need ``image_shape``; a 3-D array is refused, as everywhere
        in skebm. CPU torch tensors are accepted.
    image_shape : tuple of int, default=None
        ``(C, H, W)`` of a single image, used to reshape flat images, e.g. the ``image_shape`` of
        :func:`skebm.datasets.load_digits_images`.
    n_cols : int, default=None
        Number of columns; defaults to ``ceil(sqrt(n))``.
    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure is created if None.
    cmap : str or Colormap, default="gray"
        Colormap for grayscale images (ignored for RGB).
    title : str, default=None
        Axes title.
    padding : int, default=1
        Width in pixels of the white border between images.
    value_range : tuple of float, default=None
        ``(low, high)`` shown as black..white (values outside are clipped),
        e.g. ``(-1, 1)`` for the estimators' model space or ``(0, 255)``
        for MNIST pixels; ``None`` uses the grid's own minimum and maximum
        (a grid of pure noise then looks as contrasted as one of digits).

    Returns
    -------
    ax : matplotlib Axes
        The Axes holding the grid (``ax.images[-1]`` is the mosaic).

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from skebm.plotting import plot_sample_grid
    >>> ax = plot_sample_grid(np.random.rand(10, 64), image_shape=(1, 8, 8))
    >>> ax.images[-1].get_array().shape  # 4 x 3 grid of 8x8 images
    (28, 37)
    """
    images = _images_to_nchw(images, image_shape)
    n = images.shape[0]
    if n_cols is None:
        n_cols = int(np.ceil(np.sqrt(n)))
    if not _is_int(n_cols) or n_cols < 1:
        raise ValueError(f"n_cols must be a positive integer, got {n_cols!r}.")
    if not _is_int(padding) or padding < 0:
        raise ValueError(f"padding must be a non-negative integer, got {padding!r}.")
    n_cols = min(int(n_cols), n)
    mosaic = image_mosaic(images, n_cols, int(padding), _check_value_range(value_range))

    ax = _get_ax(ax)
    if mosaic.shape[2] == 1:
        ax.imshow(
            mosaic[:, :, 0], cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest"
        )
    else:
        ax.imshow(mosaic, interpolation="nearest")
    ax.set_axis_off()
    if title is not None:
        ax.set_title(title)
    return ax


# ---------------------------------------------------------------------------
# 2-D energy landscapes
# ---------------------------------------------------------------------------
def _check_lim(lim, name):
    try:
        lo, hi = (float(v) for v in lim)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high), got {lim!r}.") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"{name} must satisfy low < high, got {lim!r}.")
    return lo, hi


def _check_points_2d(points, name):
    points = _to_numpy(points).astype(np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"{name} must have shape (n, 2), got {points.shape}.")
    return points


def plot_energy_landscape(
    energy_fn,
    *,
    xlim=(-3, 3),
    ylim=(-3, 3),
    resolution=200,
    log_density=False,
    density=True,
    data=None,
    samples=None,
    ax=None,
    cmap="viridis",
    colorbar=False,
):
    """Show a 2-D energy function (or the density it defines) on a grid.

    ``energy_fn`` is evaluated once on all ``resolution x resolution`` grid
    points.  With ``density=True`` the image shows the Boltzmann density
    ``exp(-E)`` normalised to integrate to one over the plotted window
    (Riemann sum over the grid); with ``density=False`` it shows the energy
    ``E`` itself.

    Parameters
    ----------
    energy_fn : callable
        Maps an ndarray of shape ``(m, 2)`` (float64) to an array-like of
        shape ``(m,)`` or ``(m, 1)`` of energies ``E(x)``, or of
        log-densities ``log p(x)`` when ``log_density=True`` (then
        ``E = -log p``).  For an estimator, pass e.g. its ``score_samples``
        method with ``log_density=True``.  ``+inf`` energies (zero density)
        are allowed, NaN is not.
    xlim, ylim : tuple of float, default=(-3, 3)
        Plotted window.
    resolution : int, default=200
        Number of grid points per axis (at least 2).
    log_density : bool, default=False
        Whether ``energy_fn`` returns log-densities instead of energies.
    density : bool, default=True
        Show the normalised density ``exp(-E)`` (True) or the energy (False).
    data : array-like of shape (n, 2), default=None
        Training points to overlay as a scatter plot.
    samples : array-like of shape (n, 2), default=None
        Model samples (e.g. MCMC chains) to overlay as a scatter plot.
    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure is created if None.
    cmap : str or Colormap, default="viridis"
        Colormap of the image.
    colorbar : bool, default=False
        Whether to add a colorbar.

    Returns
    -------
    ax : matplotlib Axes
        The Axes; ``ax.images[-1]`` is the landscape, with array of shape
        ``(resolution, resolution)`` (rows along y, origin at the bottom).

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from skebm.plotting import plot_energy_landscape
    >>> ax = plot_energy_landscape(lambda X: 0.5 * np.sum(X**2, axis=1),
    ...                            resolution=50)
    >>> ax.images[-1].get_array().shape
    (50, 50)
    """
    if not callable(energy_fn):
        raise ValueError("energy_fn must be callable.")
    xlim = _check_lim(xlim, "xlim")
    ylim = _check_lim(ylim, "ylim")
    if not _is_int(resolution) or resolution < 2:
        raise ValueError(f"resolution must be an integer >= 2, got {resolution!r}.")
    data = None if data is None else _check_points_2d(data, "data")
    samples = None if samples is None else _check_points_2d(samples, "samples")

    xs = np.linspace(xlim[0], xlim[1], resolution)
    ys = np.linspace(ylim[0], ylim[1], resolution)
    gx, gy = np.meshgrid(xs, ys)
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    values = _to_numpy(energy_fn(grid)).astype(np.float64)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.shape != (grid.shape[0],):
        raise ValueError(
            f"energy_fn must return an array of shape ({grid.shape[0]},) for "
            f"an input of shape {grid.shape}, got shape {values.shape}."
        )
    if np.any(np.isnan(values)):
        raise ValueError("energy_fn returned NaN values.")
    energy = -values if log_density else values
    if np.all(np.isinf(energy) & (energy > 0)):
        raise ValueError("energy_fn returned +inf (zero density) everywhere.")
    if np.any(np.isinf(energy) & (energy < 0)):
        raise ValueError("energy_fn returned -inf energies (infinite density).")

    if density:
        cell = (xs[1] - xs[0]) * (ys[1] - ys[0])
        z = np.exp(-(energy - np.min(energy)))
        z /= z.sum() * cell
        label = "density exp(-E) (normalised)"
    else:
        z = energy
        label = "energy E"
    z = z.reshape(resolution, resolution)

    ax = _get_ax(ax)
    dx, dy = (xs[1] - xs[0]) / 2, (ys[1] - ys[0]) / 2
    im = ax.imshow(
        z,
        origin="lower",
        extent=(xlim[0] - dx, xlim[1] + dx, ylim[0] - dy, ylim[1] + dy),
        aspect="auto",
        cmap=cmap,
        interpolation="nearest",
    )
    if colorbar:
        ax.figure.colorbar(im, ax=ax, label=label)
    if data is not None:
        ax.scatter(data[:, 0], data[:, 1], s=3, c="white", alpha=0.5, label="data")
    if samples is not None:
        ax.scatter(
            samples[:, 0], samples[:, 1], s=3, c="red", alpha=0.5, label="samples"
        )
    if data is not None or samples is not None:
        ax.legend(loc="upper right", markerscale=3)
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)
    return ax


# ---------------------------------------------------------------------------
# Calibration and OOD
# ---------------------------------------------------------------------------
def plot_reliability_diagram(
    y_true, y_prob, *, n_bins=15, labels=None, ax=None, label=None
):
    """Reliability diagram of top-label confidence.

    One bar per non-empty confidence bin, of height equal to the accuracy in
    that bin, plus the diagonal of perfect calibration.  The binning and the
    ECE shown in the legend are those of
    :func:`skebm.metrics.expected_calibration_error`.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels.
    y_prob : array-like of shape (n_samples, n_classes) or (n_samples,)
        Predicted probabilities (columns ordered as ``labels``), or
        positive-class probabilities of a binary problem.
    n_bins : int, default=15
        Number of equal-width confidence bins over [0, 1].
    labels : array-like of shape (n_classes,), default=None
        Class labels of the columns of ``y_prob``; defaults to
        ``np.unique(y_true)``.
    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure is created if None.
    label : str, default=None
        Name of the model, prefixed to the legend entry of the bars.

    Returns
    -------
    ax : matplotlib Axes
        The Axes; ``ax.patches`` holds one bar per non-empty bin.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skebm.plotting import plot_reliability_diagram
    >>> ax = plot_reliability_diagram([0, 1, 1], [0.25, 0.9, 0.35], n_bins=5)
    >>> len(ax.patches)
    2
    """
    bins = _calibration_bins(y_true, y_prob, n_bins=n_bins, labels=labels)
    ece = expected_calibration_error(y_true, y_prob, n_bins=n_bins, labels=labels)
    nonempty = bins.counts > 0
    width = bins.edges[1:] - bins.edges[:-1]
    text = f"ECE = {ece:.3f}" if label is None else f"{label} (ECE = {ece:.3f})"

    ax = _get_ax(ax)
    bars = ax.bar(
        bins.edges[:-1][nonempty],
        bins.accuracy[nonempty],
        width=width[nonempty],
        align="edge",
        edgecolor="black",
        alpha=0.7,
        label=text,
    )
    (diagonal,) = ax.plot(
        [0, 1], [0, 1], linestyle="--", color="gray", label="perfect calibration"
    )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.legend(handles=[bars, diagonal], loc="upper left")
    return ax


def plot_ood_histograms(
    scores_in,
    scores_out,
    *,
    bins=50,
    ax=None,
    labels=("in-distribution", "out-of-distribution"),
    show_auroc=True,
):
    """Overlaid histograms of scores of in- and out-of-distribution samples.

    Both histograms share the same bin edges (over the pooled range) and are
    normalised to unit area, so sets of different sizes are comparable.

    Parameters
    ----------
    scores_in : array-like of shape (n_in,)
        Scores of in-distribution samples (higher = more in-distribution,
        e.g. ``-energy``).
    scores_out : array-like of shape (n_out,)
        Scores of out-of-distribution samples.
    bins : int, default=50
        Number of shared bins.
    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure is created if None.
    labels : tuple of two str, default=("in-distribution", "out-of-distribution")
        Legend entries of the two histograms.
    show_auroc : bool, default=True
        Show the AUROC (:func:`skebm.metrics.ood_auroc`) as the legend title.

    Returns
    -------
    ax : matplotlib Axes
        The Axes holding the two histograms.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skebm.plotting import plot_ood_histograms
    >>> ax = plot_ood_histograms([1.0, 2.0, 3.0], [-1.0, 0.0], bins=10)
    >>> ax.get_legend().get_title().get_text()
    'AUROC = 1.000'
    """
    auroc = ood_auroc(scores_in, scores_out)  # also validates the scores
    s_in = np.asarray(scores_in, dtype=np.float64).ravel()
    s_out = np.asarray(scores_out, dtype=np.float64).ravel()
    if not _is_int(bins) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}.")
    if isinstance(labels, str) or len(labels) != 2:
        raise ValueError(f"labels must be a pair of strings, got {labels!r}.")
    edges = np.histogram_bin_edges(np.concatenate([s_in, s_out]), bins=int(bins))

    ax = _get_ax(ax)
    ax.hist(s_in, bins=edges, density=True, alpha=0.5, label=labels[0])
    ax.hist(s_out, bins=edges, density=True, alpha=0.5, label=labels[1])
    ax.set_xlabel("score")
    ax.set_ylabel("density")
    ax.legend(title=f"AUROC = {auroc:.3f}" if show_auroc else None)
    return ax


# ---------------------------------------------------------------------------
# Traces and training curves
# ---------------------------------------------------------------------------
def _is_skorch_history(obj):
    return (
        isinstance(obj, list)
        and len(obj) > 0
        and all(isinstance(e, dict) and "batches" in e for e in obj)
    )


def _batch_rows(history):
    """Per-update rows of a fitted estimator, a skorch net or History; None for other inputs."""
    net = getattr(history, "net_", None)
    if net is not None and hasattr(net, "history"):
        history = net.history
    elif hasattr(history, "history") and hasattr(history, "module_"):
        history = history.history  # a skorch net
    if _is_skorch_history(history):
        return [row for epoch in history for row in epoch["batches"]]
    if isinstance(history, list) and len(history) == 0 and type(history).__name__ == "History":
        return []
    return None


def _rows_to_series(rows):
    """Numeric, non-boolean entries of per-update rows -> name -> (update numbers, values)."""
    names = []
    for row in rows:
        for key, value in row.items():
            if key not in names and _is_number(value):
                names.append(key)
    series = {}
    for name in names:
        x = [i + 1 for i, row in enumerate(rows) if _is_number(row.get(name))]
        y = [float(row[name]) for row in rows if _is_number(row.get(name))]
        series[name] = (np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    return series


def _is_number(value):
    return isinstance(value, (numbers.Real, np.floating, np.integer)) and not isinstance(value, (bool, np.bool_))


def _history_to_series(history):
    """Return an ordered dict name -> (x, y) of 1-D float arrays."""
    rows = _batch_rows(history)
    if rows is not None:
        return _rows_to_series(rows)
    if hasattr(history, "history_") and not isinstance(history, dict):
        history = history.history_
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        pd = None
    if isinstance(history, (list, tuple)) and all(isinstance(r, dict) for r in history):
        if pd is None:  # pragma: no cover
            raise ValueError("A list of records needs pandas.")
        history = pd.DataFrame.from_records(history)
    if pd is not None and isinstance(history, pd.Series):
        history = history.to_frame()
    if pd is not None and isinstance(history, pd.DataFrame):
        index = np.asarray(history.index)
        if not np.issubdtype(index.dtype, np.number):
            index = np.arange(len(history))
        series = {}
        for name in history.columns:
            col = history[name]
            types = pd.api.types
            if types.is_numeric_dtype(col) and not types.is_bool_dtype(col):
                series[name] = (index.astype(np.float64), col.to_numpy(np.float64))
        return series
    if isinstance(history, dict):
        series = {}
        for name, values in history.items():
            y = _to_numpy(values)
            if y.ndim != 1 or not np.issubdtype(y.dtype, np.number):
                raise ValueError(
                    f"history[{name!r}] must be a 1-D numeric sequence, got an "
                    f"array of shape {y.shape} and dtype {y.dtype}."
                )
            series[name] = (np.arange(len(y), dtype=np.float64), y.astype(np.float64))
        return series
    hint = ""
    if hasattr(history, "get_params") and not hasattr(history, "net_"):
        hint = " (an estimator must be fitted first: it has no net_ yet)"
    raise ValueError(
        "history must be a fitted estimator, a skorch net or History, a dict of name -> 1-D sequence, a pandas "
        "DataFrame, a list of dicts (one per iteration) or an object with a `history_` attribute, got "
        f"{type(history).__name__}{hint}."
    )


def plot_traces(
    history, keys=None, *, ax=None, logy=False, xlabel="iteration", title=None
):
    """Plot named 1-D series against the iteration number.

    A generic plotter of named series on one Axes; for the training
    history of an estimator, :func:`plot_training` draws one labelled panel
    per quantity with smoothing.

    Parameters
    ----------
    history : dict, DataFrame, list of dict, fitted estimator or skorch History
        The series to plot:

        * a fitted skebm estimator, its skorch engine (``est.net_``) or a
          skorch ``History``: the per-update (batch) entries, plotted
          against the update number ``1, 2, ...``;
        * a dict mapping names to 1-D sequences (possibly of different
          lengths), plotted against ``0, 1, 2, ...``;
        * a :class:`pandas.DataFrame` whose numeric columns are plotted
          against its index (if numeric, else against ``0, 1, ...``);
        * a list of dicts, one record per iteration (converted to a
          DataFrame; missing entries become gaps);
        * any object with a ``history_`` attribute holding one of the
          above.
    keys : str or sequence of str, default=None
        Names of the series to plot, in order; all numeric series if None.
    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure is created if None.
    logy : bool, default=False
        Use a logarithmic y axis.
    xlabel : str, default="iteration"
        Label of the x axis.
    title : str, default=None
        Axes title.

    Returns
    -------
    ax : matplotlib Axes
        The Axes, with one line per plotted series, labelled by its name.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skebm.plotting import plot_traces
    >>> hist = {"loss": [1.0, 0.5, 0.2], "energy_data": [0.1, -0.3, -0.5]}
    >>> ax = plot_traces(hist)
    >>> [line.get_label() for line in ax.get_lines()]
    ['loss', 'energy_data']
    """
    series = _history_to_series(history)
    if keys is None:
        keys = list(series)
    elif isinstance(keys, str):
        keys = [keys]
    else:
        keys = list(keys)
    missing = [k for k in keys if k not in series]
    if missing:
        raise ValueError(
            f"Unknown or non-numeric series {missing}; available: {list(series)}."
        )
    if not keys:
        raise ValueError("There are no numeric series to plot.")

    ax = _get_ax(ax)
    for key in keys:
        x, y = series[key]
        ax.plot(x, y, label=str(key))
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    if title is not None:
        ax.set_title(title)
    ax.legend()
    return ax


def _moving_average(values, window):
    """Centred moving average over ``window`` points, ignoring NaN; the edges average what they have."""
    values = np.asarray(values, dtype=np.float64)
    window = int(window)
    if window <= 1 or len(values) < 2:
        return values.copy()
    window = min(window, len(values))
    finite = np.isfinite(values)
    kernel = np.ones(window)
    total = np.convolve(np.where(finite, values, 0.0), kernel, mode="same")
    count = np.convolve(finite.astype(np.float64), kernel, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def _smoothing_window(smooth, n):
    if smooth is None or smooth is False or smooth == 0:
        return 1
    if isinstance(smooth, str):
        if smooth != "auto":
            raise ValueError(f"smooth must be 'auto', None, an int window or a fraction in (0, 1), got {smooth!r}.")
        return max(1, n // 50) if n >= 100 else 1
    if _is_int(smooth) and smooth >= 1:
        return int(smooth)
    if isinstance(smooth, numbers.Real) and 0 < smooth < 1:
        return max(1, int(round(smooth * n)))
    raise ValueError(f"smooth must be 'auto', None, an int window or a fraction in (0, 1), got {smooth!r}.")


#: Panels of plot_training: title, y label, series on the left axis, series on a right axis.
_TRAINING_PANELS = (
    ("loss", "loss", ("train_loss", "valid_loss"), ()),
    ("energies", "mean energy E(x) / T", ("energy_data", "energy_samples"), ()),
    ("loss terms", "value", ("cross_entropy", "energy_variance", "approximate_mass", "max_likelihood"), ()),
    ("Langevin sampler", "step size", ("step_size",), ("acceptance", "jump_acceptance")),
    ("parameter gradient", "gradient norm (L2)", ("grad_norm",), ()),
)
_TRAINING_LABELS = {
    "train_loss": "training loss",
    "valid_loss": "validation loss",
    "energy_data": "data",
    "energy_samples": "samples (negatives)",
    "step_size": "step size",
    "acceptance": "MALA acceptance",
    "jump_acceptance": "jump acceptance",
    "grad_norm": "gradient norm",
}


def plot_training(history, *, keys=None, smooth="auto", axes=None, logy=None, xlabel="update", title=None):
    """Training history in one labelled panel per quantity.

    Panels (those whose quantities the history holds, in this order): the
    loss; the mean energies of the data batches and of the samples
    (negatives), whose gap drives the maximum-likelihood update; the loss
    terms of :class:`~skebm.NGEBMClassifier`; the Langevin step size with
    the MALA (and jump) acceptance rate on a second axis; the parameter
    gradient norm (recorded by :class:`~skebm.engine.SampleMonitor`).
    Updates a :class:`~skebm.engine.DivergenceGuard` rolled back are marked
    with dotted red lines. With smoothing, each series is drawn faint as
    recorded with its centred moving average on top.

    Parameters
    ----------
    history : fitted estimator, skorch net or History, dict, DataFrame or list of dict
        A fitted skebm estimator (its ``net_.history``), a skorch net or
        ``History``, or named series as :func:`plot_traces` takes them
        (a dict of 1-D sequences, a DataFrame, a list of per-update dicts).
    keys : sequence of str, default=None
        Quantities to plot; ``None`` plots every panel the history has
        (unknown keys get a panel each).
    smooth : "auto", int, float or None, default="auto"
        Moving-average window: an int number of updates, a float fraction
        of the series length, ``"auto"`` (a fiftieth of the length for 100
        updates or more, none below) or ``None`` for the raw series only.
    axes : sequence of matplotlib Axes, default=None
        Axes to draw on, one per panel; a new figure with one row of panels
        per two is created if None.
    logy : bool, default=None
        Logarithmic y axis for the loss and gradient-norm panels; ``None``
        chooses it for the gradient norm only.
    xlabel : str, default="update"
        Label of the x axes.
    title : str, default=None
        Figure title (``suptitle``).

    Returns
    -------
    axes : ndarray of matplotlib Axes
        One per panel drawn, in the order above.

    See Also
    --------
    plot_traces : Named series on one Axes, no panels.
    plot_sample_evolution : Samples over training, one row per snapshot.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skebm.plotting import plot_training
    >>> rows = [{"train_loss": 1.0 / (i + 1), "energy_data": -i, "energy_samples": i,
    ...          "step_size": 1.0} for i in range(200)]
    >>> axes = plot_training(rows)
    >>> [ax.get_title() for ax in axes]
    ['loss', 'energies', 'Langevin sampler']
    >>> axes[1].get_ylabel()
    'mean energy E(x) / T'
    """
    rows = _batch_rows(history)
    recovered = []
    if rows is not None:
        series = _rows_to_series(rows)
        recovered = [i + 1 for i, row in enumerate(rows) if row.get("recovered") is True]
    else:
        series = _history_to_series(history)
    wanted = list(series) if keys is None else ([keys] if isinstance(keys, str) else list(keys))
    missing = [k for k in wanted if k not in series]
    if missing:
        raise ValueError(f"Unknown or non-numeric series {missing}; available: {list(series)}.")
    if not wanted:
        raise ValueError("There are no numeric series to plot.")
    ignored = {"train_batch_size", "valid_batch_size"} if keys is None else set()
    panels, placed = [], set()
    for name, ylabel, left, right in _TRAINING_PANELS:
        lk = [k for k in left if k in wanted]
        rk = [k for k in right if k in wanted]
        if lk or rk:
            panels.append((name, ylabel, lk, rk))
            placed.update(lk + rk)
    for key in wanted:
        if key not in placed and key not in ignored:
            panels.append((key, key, [key], []))
    if not panels:
        raise ValueError("There are no numeric series to plot.")

    if axes is None:
        import matplotlib.pyplot as plt

        n_cols = 1 if len(panels) == 1 else 2
        n_rows = int(np.ceil(len(panels) / n_cols))
        fig, axes = plt.subplots(n_rows, n_cols, figsize=(6 * n_cols, 3.2 * n_rows), squeeze=False)
        for ax in axes.ravel()[len(panels):]:
            ax.set_visible(False)
        axes = axes.ravel()[: len(panels)]
    else:
        axes = np.asarray(axes, dtype=object).ravel()
        if len(axes) < len(panels):
            raise ValueError(f"axes must hold at least {len(panels)} Axes (one per panel), got {len(axes)}.")
        axes = axes[: len(panels)]

    def draw(ax, key, color):
        x, y = series[key]
        window = _smoothing_window(smooth, len(y))
        label = _TRAINING_LABELS.get(key, key)
        if window > 1:
            ax.plot(x, y, color=color, alpha=0.25, linewidth=0.8)
            return ax.plot(x, _moving_average(y, window), color=color, label=f"{label} (mean of {window})")[0]
        return ax.plot(x, y, color=color, label=label)[0]

    color_index = 0
    for ax, (name, ylabel, left, right) in zip(axes, panels):
        handles = []
        for key in left:
            handles.append(draw(ax, key, f"C{color_index % 10}"))
            color_index += 1
        ax.set_title(name)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel if left else "")
        log = (name in ("loss", "parameter gradient")) if logy else (logy is None and name == "parameter gradient")
        if log and all(np.nanmin(series[k][1]) > 0 for k in left):
            ax.set_yscale("log")
        if right:
            twin = ax.twinx() if left else ax
            for key in right:
                handles.append(draw(twin, key, f"C{color_index % 10}"))
                color_index += 1
            twin.set_ylim(0, 1.02)
            twin.set_ylabel("acceptance rate")
        for i, update in enumerate(recovered):
            ax.axvline(update, color="red", linestyle=":", linewidth=1, label="rolled back" if i == 0 else None)
        if recovered:
            handles.append(ax.get_lines()[-1])
        ax.legend(handles=handles, fontsize="small", loc="best")
    if title is not None:
        axes[0].figure.suptitle(title)
    axes[0].figure.tight_layout()
    return axes


def plot_sample_evolution(grids, *, n_cols=None, updates=None, image_shape=None, value_range=None, ax=None,
                          cmap="gray", padding=1, title="samples over training"):
    """Samples over training as one image: one row per snapshot, time downwards.

    Parameters
    ----------
    grids : SampleMonitor, sequence of arrays or dict
        A :class:`~skebm.engine.SampleMonitor` after a fit (its ``grids_``
        and ``updates_``), a sequence of sample batches (one per snapshot,
        each ``(n, C, H, W)`` or flat with ``image_shape``),
        or a dict ``{update: samples}``.
    n_cols : int, default=None
        Samples per row (the first ``n_cols`` of each snapshot); ``None``
        shows ``min(n, 16)``.
    updates : sequence of int, default=None
        Update number of each snapshot, shown at the start of its row;
        taken from a monitor or a dict, else ``0, 1, ...``.
    image_shape : tuple of int, default=None
        ``(C, H, W)`` of flat samples.
    value_range : tuple of float, default=None
        ``(low, high)`` shown as black..white for every row alike (e.g.
        ``(-1, 1)`` in the model's space); ``None`` uses the global min and
        max of all rows.
    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure is created if None.
    cmap : str, default="gray"
        Colormap of grayscale samples.
    padding : int, default=1
        White pixels between images.
    title : str, default="samples over training"
        Axes title.

    Returns
    -------
    ax : matplotlib Axes
        The Axes; ``ax.images[-1]`` is the mosaic, its y tick labels name
        the updates.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from skebm.plotting import plot_sample_evolution
    >>> grids = {0: np.random.rand(8, 1, 6, 6), 100: np.random.rand(8, 1, 6, 6)}
    >>> ax = plot_sample_evolution(grids, n_cols=4)
    >>> ax.images[-1].get_array().shape  # 2 rows x 4 columns of 6x6 images
    (15, 29)
    >>> [t.get_text() for t in ax.get_yticklabels()]
    ['update 0', 'update 100']
    """
    if hasattr(grids, "grids_"):
        if updates is None:
            updates = list(grids.updates_)
        if image_shape is None:
            image_shape = getattr(grids, "image_shape_", None)
        if value_range is None:
            value_range = getattr(grids, "value_range_", None)
        grids = list(grids.grids_)
    elif isinstance(grids, dict):
        if updates is None:
            updates = list(grids.keys())
        grids = list(grids.values())
    else:
        grids = list(grids)
    if not grids:
        raise ValueError("grids holds no snapshot.")
    if updates is None:
        updates = list(range(len(grids)))
    updates = list(updates)
    if len(updates) != len(grids):
        raise ValueError(f"Got {len(updates)} update numbers for {len(grids)} snapshots.")
    batches = [_images_to_nchw(g, image_shape) for g in grids]
    shapes = {b.shape[1:] for b in batches}
    if len(shapes) != 1:
        raise ValueError(f"Every snapshot must have the same image shape, got {sorted(shapes)}.")
    n_min = min(len(b) for b in batches)
    if n_cols is None:
        n_cols = min(n_min, 16)
    if not _is_int(n_cols) or n_cols < 1:
        raise ValueError(f"n_cols must be a positive integer, got {n_cols!r}.")
    if not _is_int(padding) or padding < 0:
        raise ValueError(f"padding must be a non-negative integer, got {padding!r}.")
    n_cols = min(int(n_cols), n_min)
    stacked = np.concatenate([b[:n_cols] for b in batches])
    value_range = _check_value_range(value_range)
    mosaic = image_mosaic(stacked, n_cols, int(padding), value_range)

    ax = _get_ax(ax)
    if mosaic.shape[2] == 1:
        ax.imshow(mosaic[:, :, 0], cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(mosaic, interpolation="nearest")
    h = stacked.shape[2]
    centres = [padding + r * (h + padding) + (h - 1) / 2 for r in range(len(batches))]
    ax.set_yticks(centres)
    ax.set_yticklabels([f"update {u}" for u in updates])
    ax.set_xticks([])
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    ax.tick_params(axis="y", length=0)
    if title:
        ax.set_title(title)
    return ax


def save_sample_evolution(monitor, path, *, n_cols=None, **kwargs):
    """Write a :class:`~skebm.engine.SampleMonitor`'s snapshots as one PNG, one row per snapshot.

    Parameters
    ----------
    monitor : SampleMonitor
        A monitor after a fit (its ``grids_``, ``updates_``,
        ``image_shape_``, ``value_range_`` and ``cmap``).
    path : str or path-like
        PNG file to write.
    n_cols : int, default=None
        Samples shown per row; ``None`` shows ``min(n_samples, 16)``.
    **kwargs
        Passed to :func:`plot_sample_evolution`.

    Returns
    -------
    path : str

    Raises
    ------
    sklearn.exceptions.NotFittedError
        Before any snapshot (no estimator was fitted with the monitor).
    """
    import os

    from matplotlib.figure import Figure
    from sklearn.exceptions import NotFittedError

    if not getattr(monitor, "grids_", None):
        raise NotFittedError("SampleMonitor has no snapshot yet: fit an estimator with it first.")
    kwargs.setdefault("image_shape", getattr(monitor, "image_shape_", None))
    kwargs.setdefault("value_range", getattr(monitor, "value_range_", None))
    kwargs.setdefault("cmap", monitor.cmap)
    n_cols = n_cols or min(monitor.n_samples, 16)
    rows = len(monitor.grids_)
    fig = Figure(figsize=(max(4.0, 0.5 * n_cols + 1.2), max(2.0, 0.5 * rows + 0.6)))
    ax = fig.subplots()
    plot_sample_evolution(monitor, n_cols=n_cols, ax=ax, **kwargs)
    fig.savefig(os.fspath(path), dpi=100, bbox_inches="tight")
    return os.fspath(path)


def plot_training_curves(
    history,
    keys=None,
    *,
    ax=None,
    logy=False,
    xlabel="iteration",
    title="training curves",
):
    """Deprecated: use :func:`plot_training` (one panel per quantity) or :func:`plot_traces`.

    Emits a ``FutureWarning`` and draws what :func:`plot_traces` draws (all
    series on one Axes) with a title. It now also reads fitted estimators
    (their ``net_.history``), which it used to reject.

    Parameters
    ----------
    history : fitted estimator, skorch History, dict, DataFrame, list of dict
        See :func:`plot_traces`.
    keys : str or sequence of str, default=None
        Names of the series to plot; all numeric series if None.
    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure is created if None.
    logy : bool, default=False
        Use a logarithmic y axis.
    xlabel : str, default="iteration"
        Label of the x axis.
    title : str, default="training curves"
        Axes title.

    Returns
    -------
    ax : matplotlib Axes
        The Axes with one line per series.

    Examples
    --------
    >>> import warnings
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skebm.plotting import plot_training_curves
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", FutureWarning)
    ...     ax = plot_training_curves({"loss": [3.0, 2.0, 1.5]}, logy=True)
    >>> ax.get_yscale()
    'log'
    """
    warnings.warn(
        "plot_training_curves is deprecated and will be removed: use plot_training(estimator) for one panel per "
        "quantity, or plot_traces for named series on one Axes.",
        FutureWarning,
        stacklevel=2,
    )
    return plot_traces(history, keys, ax=ax, logy=logy, xlabel=xlabel, title=title)


def plot_robustness(results, *, ax=None, title="accuracy under attack"):
    """Plot accuracy against the attack radius, one line per defence.

    Parameters
    ----------
    results : DataFrame
        Output of :func:`skebm.attacks.evaluate_robustness`: index
        ``epsilon`` (0 is the natural accuracy), one column per defence
        (e.g. ``"undefended"``, ``"min over attacks"``, ``"N-eval"``),
        accuracies in [0, 1].
    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure is created if None.
    title : str, default="accuracy under attack"
        Axes title; the attack settings in ``results.attrs`` (norm, steps,
        and, when a defended column is drawn, replicates and EOT samples)
        are appended when present.

    Returns
    -------
    ax : matplotlib Axes
        The Axes with one line per column.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import pandas as pd
    >>> from skebm.plotting import plot_robustness
    >>> table = pd.DataFrame({"undefended": [0.97, 0.4], "min over attacks": [0.95, 0.8]},
    ...                      index=pd.Index([0.0, 0.1], name="epsilon"))
    >>> len(plot_robustness(table).get_lines())
    2
    """
    if not hasattr(results, "columns") or not hasattr(results, "index"):
        raise TypeError("results must be a DataFrame such as evaluate_robustness returns.")
    if len(results.columns) == 0 or len(results.index) == 0:
        raise ValueError("results is empty.")
    ax = _get_ax(ax)
    eps = np.asarray(results.index, dtype=float)
    for name in results.columns:
        ax.plot(eps, np.asarray(results[name], dtype=float), marker="o", label=str(name))
    ax.set_xlabel("attack radius epsilon (0: natural accuracy)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    attrs = getattr(results, "attrs", {}) or {}
    details = []
    if "norm" in attrs:
        details.append(f"L-{attrs['norm']}")
    steps = attrs.get("pgd_steps", attrs.get("n_steps"))  # n_steps: tables of skebm < 0.3
    if steps is not None:
        details.append(f"{steps} steps")
    if any(name != "undefended" for name in results.columns):  # a defended column: its budgets matter
        if "n_replicates" in attrs:
            details.append(f"{attrs['n_replicates']} replicates")
        if "eot_samples" in attrs:
            details.append(f"EOT x{attrs['eot_samples']}")
    if title:
        ax.set_title(title + (f" ({', '.join(details)})" if details else ""))
    ax.legend()
    return ax


# ---------------------------------------------------------------------------
# Steady-state diagnostics of longrun chains
# ---------------------------------------------------------------------------
def plot_diagnostics(diagnostics, *, axes=None):
    """Convergence diagnostics of a longrun EBM in three panels.

    1. Training: mean energy of the data batch and of the negatives per
       update; a steady state keeps them together.
    2. Further chain steps after fitting: the chains' mean energy per step
       against the data's (dashed); no drift means no saturation.
    3. Mean Langevin gradient norm per step and, on a second axis, the MALA
       acceptance rate.

    Parameters
    ----------
    diagnostics : dict
        What :meth:`EBMDensity.diagnose(X) <skebm.EBMDensity.diagnose>`
        returns, with the keys ``"train_energy_data"``,
        ``"train_energy_chains"``, ``"chain_energy"``, ``"data_energy"``,
        ``"chain_grad_norm"`` and optionally ``"chain_acceptance"``.
    axes : sequence of 3 matplotlib Axes, default=None
        Axes to draw on; a new 1x3 figure is created if None.

    Returns
    -------
    axes : ndarray of 3 matplotlib Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skebm.plotting import plot_diagnostics
    >>> diag = {"train_energy_data": [0.5, 0.2], "train_energy_chains": [0.9, 0.3],
    ...         "chain_energy": [0.3, 0.25, 0.28], "data_energy": 0.2,
    ...         "chain_grad_norm": [1.0, 1.1], "chain_acceptance": [0.7, 0.6]}
    >>> axes = plot_diagnostics(diag)
    >>> len(axes)
    3
    """
    if not isinstance(diagnostics, dict):
        hint = " (call its diagnose(X) method)" if hasattr(diagnostics, "diagnose") else ""
        raise ValueError(
            f"diagnostics must be the dict EBMDensity.diagnose(X) returns, got {type(diagnostics).__name__}{hint}."
        )
    required = ("train_energy_data", "train_energy_chains", "chain_energy", "data_energy", "chain_grad_norm")
    missing = [k for k in required if k not in diagnostics]
    if missing:
        raise ValueError(f"diagnostics is missing the keys {missing}.")
    if axes is None:
        import matplotlib.pyplot as plt

        _, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    axes = np.asarray(axes, dtype=object).ravel()
    if len(axes) != 3:
        raise ValueError(f"axes must hold 3 Axes, got {len(axes)}.")

    ax = axes[0]
    ax.plot(_to_numpy(diagnostics["train_energy_data"]), label="data")
    ax.plot(_to_numpy(diagnostics["train_energy_chains"]), label="chains")
    ax.set_xlabel("update")
    ax.set_ylabel("mean energy")
    ax.set_title("training")
    ax.legend()

    ax = axes[1]
    ax.plot(_to_numpy(diagnostics["chain_energy"]), label="chains")
    ax.axhline(float(diagnostics["data_energy"]), color="k", linestyle="--", label="data")
    ax.set_xlabel("further Langevin step")
    ax.set_ylabel("mean energy")
    ax.set_title("steady state")
    ax.legend()

    ax = axes[2]
    ax.plot(_to_numpy(diagnostics["chain_grad_norm"]), color="C2", label="gradient norm")
    ax.set_xlabel("further Langevin step")
    ax.set_ylabel("mean gradient norm")
    handles = list(ax.get_lines())
    acceptance = diagnostics.get("chain_acceptance")
    if acceptance is not None and len(acceptance):
        twin = ax.twinx()
        handles += twin.plot(_to_numpy(acceptance), color="C3", alpha=0.7, label="MALA acceptance")
        twin.set_ylim(0, 1)
        twin.set_ylabel("acceptance rate")
    ax.legend(handles=handles, loc="lower right")
    ax.set_title("Langevin dynamics")
    return axes
