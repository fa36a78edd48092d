"""Differentiable views of purifiers, as the attacks need them (classifiers: ``skebm/_torch_classifier.py``)."""

import inspect

from .._torch_classifier import TorchClassifier, _unwrap, as_torch_classifier  # noqa: F401 (re-exported)
from ..mcmc import GeneratorNoise

__all__ = ["TorchClassifier", "as_torch_classifier"]


# ------------------------------------------------------------- purifiers
def _takes_noise(fn):
    """Whether the callable ``fn`` accepts a second argument (a noise stream)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    if any(p.name == "noise" for p in params):
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)


def _call_with_noise(fn, x, noise):
    try:
        names = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        names = {}
    return fn(x, noise=noise) if "noise" in names else fn(x, noise)


class _Defence:
    """What the attacks need of a purifier.

    Attributes
    ----------
    sample : callable
        ``x -> purified x``: one purification per row, fresh noise, no graph
        (the defence as deployed; BPDA and the verdicts use it).
    differentiable : callable or None
        ``(x, noise) -> purified x`` in the autograd graph; ``noise=None``
        draws fresh noise, a stream (``RowNoise``) fixes it. ``None`` when
        the purifier offers no differentiable path.
    takes_noise : bool
        Whether ``differentiable`` honours a given noise stream (needed by
        the reparameterised full-gradient attack).
    same_path : bool
        Whether ``differentiable(x, None)`` is the deployed purification
        itself (a callable), so that its fresh draws may serve as verdicts;
        ``purify_tensor`` defences are judged by their own non-differentiable
        path.
    """

    def __init__(self, sample, differentiable=None, takes_noise=False, same_path=False):
        self.sample = sample
        self.differentiable = differentiable
        self.takes_noise = takes_noise
        self.same_path = same_path


def _has_parameters(fn, *names):
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return all(name in params for name in names)


def _as_differentiable_purifier(purifier, fresh=None):
    """``(x, noise) -> purified x`` through which gradients flow, or None.

    An object with ``purify_tensor(X, *, noise=..., differentiable=...)``
    (:class:`~skebm.EBMPurifier`) is called with ``differentiable=True``:
    it runs :func:`skebm.mcmc.unrolled_langevin` on its energy in its own
    rescaled space and maps back, keeping the graph. A callable
    ``purify(x, noise)`` or ``purify(x)`` is taken to be differentiable as
    it is (built on ``unrolled_langevin``, or any torch code); a
    one-argument callable ignores the noise stream. ``noise=None`` is
    replaced by ``fresh`` (the attack's own seeded stream).
    """
    purifier = _unwrap(purifier)
    method = getattr(purifier, "purify_tensor", None)
    if callable(method):
        if not _has_parameters(method, "noise", "differentiable"):
            return None
        return lambda x, noise: method(x, noise=fresh if noise is None else noise, differentiable=True)
    if callable(purifier):
        if _takes_noise(purifier):
            return lambda x, noise: _call_with_noise(purifier, x, fresh if noise is None else noise)
        return lambda x, noise: purifier(x)
    return None


def _resolve_defence(purifier, generators=None):
    """A :class:`_Defence` for ``purifier`` (None stays None).

    ``generators`` (a :class:`~skebm._random.PerDeviceGenerator`) is where
    the fresh noise of every purification comes from, for purifiers that
    take a noise stream (``purify_tensor(X, noise=...)`` or ``purify(x,
    noise)``); a one-argument callable draws its own noise.
    """
    if purifier is None:
        return None
    fresh = None if generators is None else GeneratorNoise(generators)
    purifier = _unwrap(purifier)
    method = getattr(purifier, "purify_tensor", None)
    if callable(method):
        takes = _has_parameters(method, "noise")
        sample = (lambda x: method(x, noise=fresh)) if takes else (lambda x: method(x))
        return _Defence(sample, _as_differentiable_purifier(purifier, fresh), takes)
    if callable(purifier):
        takes = _takes_noise(purifier)
        sample = (lambda x: _call_with_noise(purifier, x, fresh)) if takes else purifier
        return _Defence(sample, _as_differentiable_purifier(purifier, fresh), takes, same_path=True)
    raise TypeError(
        "purifier must have a purify_tensor method (EBMPurifier) or be a callable on tensors, "
        f"got {type(purifier).__name__}."
    )
