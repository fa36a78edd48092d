"""The one rule for the shape of a batch of images.

A batch of images is either a 4-D array ``(n, C, H, W)``, or flat
``(n, C * H * W)`` together with ``image_shape=(C, H, W)``. A 3-D array is
refused (is ``(n, A, B)`` ``n`` grayscale ``A x B`` images, or ``n``
one-row images of ``A`` channels?): pass ``X[:, None]`` for grayscale. The
estimators, the metrics, the plots and the training monitor all read shapes
through :func:`image_batch_shape`.
"""

import math
from numbers import Integral

import numpy as np

__all__ = ["check_image_shape", "image_batch_shape", "image_mosaic"]

_CHANNELS = (1, 3, 4)  # grayscale, RGB, RGBA


def _channels_last(shape):
    """Whether a 4-D array's image shape ``(a, b, c)`` looks like ``(H, W, C)`` rather than ``(C, H, W)``."""
    return shape[-1] in _CHANNELS and shape[0] not in _CHANNELS


def _image_shape_mismatch(image_shape, n_features, name="X"):
    """The error message when ``image_shape`` does not account for ``n_features``, with the shapes that would."""
    c, h, w = image_shape
    message = (
        f"{name} has {n_features} features but image_shape={image_shape} needs {math.prod(image_shape)} "
        f"({c} x {h} x {w})"
    )
    fits = [(k, h, w) for k in (1, 3) if k * h * w == n_features]  # same size, other channels
    for k in (3, 1):  # square images
        side = math.isqrt(n_features // k)
        if n_features % k == 0 and side * side * k == n_features:
            fits.append((k, side, side))
    fits = list(dict.fromkeys(fits))
    if not fits:
        return f"{message}; no grayscale or colour square image has {n_features} pixel values: check X and image_shape."
    kinds = {1: "grayscale", 3: "colour"}
    hints = [f"for {kinds[shape[0]]} images use image_shape={shape}" for shape in fits]
    return f"{message}; {', or '.join(hints)}."


def check_image_shape(image_shape, name="image_shape"):
    """``image_shape`` as a tuple of three positive ints ``(C, H, W)``.

    Parameters
    ----------
    image_shape : sequence of int
        The shape to check.
    name : str, default="image_shape"
        The parameter's name in the error message.

    Returns
    -------
    shape : tuple of int

    Raises
    ------
    ValueError
        If it is not three positive integers.
    """
    try:
        shape = tuple(image_shape)
    except TypeError:
        shape = ()
    if len(shape) != 3 or not all(
        isinstance(s, (Integral, np.integer)) and not isinstance(s, bool) and s > 0 for s in shape
    ):
        raise ValueError(f"{name} must be a tuple (C, H, W) of positive integers, got {image_shape!r}.")
    return tuple(int(s) for s in shape)


def image_batch_shape(X, image_shape=None, *, infer_square=False, name="X"):
    """The ``(C, H, W)`` of the images in ``X``, by the one rule of skebm.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n, C, H, W) or (n, n_features)
        The batch.
    image_shape : tuple of int (C, H, W), default=None
        The shape of one image of a flat batch; checked against a 4-D
        batch.
    infer_square : bool, default=False
        For a flat batch without ``image_shape``: a square number of
        features ``s * s`` is read as ``(1, s, s)`` (grayscale); otherwise
        refused.
    name : str, default="X"
        The argument's name in the error messages.

    Returns
    -------
    shape : tuple of int or None
        ``(C, H, W)``; ``None`` for a flat batch without ``image_shape``
        (flat features) when ``infer_square`` is False.

    Raises
    ------
    ValueError
        For a 3-D batch, a 4-D batch that looks channels-last ``(n, H, W,
        C)``, a batch of another dimension, an ``image_shape`` that is not
        ``(C, H, W)`` or does not match the batch (the message names the
        shapes that would), or (with
        ``infer_square``) a flat batch whose size is not a square.
    """
    shape = None if image_shape is None else check_image_shape(image_shape)
    dims = tuple(int(s) for s in getattr(X, "shape", np.shape(X)))
    if len(dims) == 3:
        raise ValueError(
            f"{name} has 3 dimensions {dims}: pass images as a 4-D array (n_samples, C, H, W) (for "
            "grayscale, X[:, None]), or flattened to (n_samples, C * H * W) with image_shape=(C, H, W)."
        )
    if len(dims) == 4:
        if shape != dims[1:] and _channels_last(dims[1:]):
            raise ValueError(
                f"{name} has images of shape {dims[1:]}, channels last (H, W, C); skebm takes them channels first "
                f"(n_samples, C, H, W): pass {name}.transpose(0, 3, 1, 2)."
            )
        if shape is not None and shape != dims[1:]:
            raise ValueError(f"image_shape={shape} does not match the shape {dims[1:]} of the 4-D {name}.")
        return dims[1:]
    if len(dims) != 2:
        raise ValueError(
            f"{name} must be a 4-D array (n_samples, C, H, W) or flat (n_samples, C * H * W) with "
            f"image_shape=(C, H, W); got shape {dims}."
        )
    n_features = dims[1]
    if shape is not None:
        if math.prod(shape) != n_features:
            raise ValueError(_image_shape_mismatch(shape, n_features, name))
        return shape
    if not infer_square:
        return None
    side = math.isqrt(n_features)
    if side * side != n_features or side == 0:
        raise ValueError(f"Cannot infer the image shape of {n_features} features; pass image_shape=(C, H, W).")
    return (1, side, side)


def image_mosaic(images, n_cols, padding, value_range=None):
    """Tile (n, C, H, W) images into one (rows, cols, C) array, scaled to [0, 1]: the picture of a grid.

    ``value_range=None`` scales with the images' global min and max;
    ``(low, high)`` maps that range to [0, 1] and clips.
    """
    n, c, h, w = images.shape
    if value_range is None:
        lo, hi = images.min(), images.max()
        scaled = (images - lo) / (hi - lo) if hi > lo else np.zeros_like(images)
    else:
        lo, hi = value_range
        scaled = np.clip((images - lo) / (hi - lo), 0.0, 1.0)
    n_rows = int(np.ceil(n / n_cols))
    mosaic = np.ones(
        (n_rows * (h + padding) + padding, n_cols * (w + padding) + padding, c)
    )
    for k in range(n):
        r, col = divmod(k, n_cols)
        top = padding + r * (h + padding)
        left = padding + col * (w + padding)
        mosaic[top : top + h, left : left + w] = np.transpose(scaled[k], (1, 2, 0))
    return mosaic
