"""Common corruptions of grey images in [0, 1] (MNIST-C / CIFAR-10-C style) for ``bench_purifier.py``.

Benchmark code, not library code: the corruptions only measure how a defence
behaves off the attack's norm ball, users do not need them to purify, and
MNIST-C (Mu & Gilmer 2019) and CIFAR-10-C (Hendrycks & Dietterich 2019)
already ship their own. Each function takes flat images ``X`` of shape
``(n, h * w)``, the image ``shape`` ``(h, w)``, a ``severity`` (the
corruption's own parameter, not a level number) and a
:class:`numpy.random.Generator`, and returns new images in [0, 1].
"""

import numpy as np
from scipy import ndimage


def gaussian_noise(X, shape, severity, rng):
    """Add N(0, ``severity``^2) to every pixel, clip to [0, 1] (CIFAR-10-C ``gaussian_noise``)."""
    return np.clip(X + rng.normal(0.0, severity, size=X.shape), 0.0, 1.0).astype(X.dtype)


def gaussian_blur(X, shape, severity, rng):
    """Gaussian filter of standard deviation ``severity`` pixels, edges extended (CIFAR-10-C ``gaussian_blur``)."""
    images = X.reshape(len(X), *shape)
    blurred = ndimage.gaussian_filter(images, sigma=(0.0, severity, severity), mode="nearest")
    return np.clip(blurred, 0.0, 1.0).reshape(X.shape).astype(X.dtype)


def contrast(X, shape, severity, rng):
    """Pull every pixel towards its image's mean: ``(x - mean) * severity + mean`` (CIFAR-10-C ``contrast``)."""
    mean = X.mean(axis=1, keepdims=True)
    return ((X - mean) * severity + mean).astype(X.dtype)


def impulse_noise(X, shape, severity, rng):
    """Salt and pepper: a share ``severity`` of the pixels set to 0 or 1, each with probability 1/2."""
    hit = rng.random(X.shape) < severity
    salt = rng.random(X.shape) < 0.5
    return np.where(hit, salt.astype(X.dtype), X).astype(X.dtype)


#: name -> (function, the severity's meaning in the report)
CORRUPTIONS = {
    "gaussian noise": (gaussian_noise, "sigma"),
    "gaussian blur": (gaussian_blur, "sigma (pixels)"),
    "contrast": (contrast, "factor"),
    "salt and pepper": (impulse_noise, "share"),
}


def corrupt(X, name, severity, shape, seed):
    """``X`` corrupted by ``CORRUPTIONS[name]`` at ``severity``, random draws seeded by ``seed``."""
    function, _ = CORRUPTIONS[name]
    return function(np.asarray(X), tuple(shape), severity, np.random.default_rng(seed))
