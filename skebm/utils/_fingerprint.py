"""The fingerprint of an estimator's fitted state (did a refused call leave it as it was?).

One function for the contract checks (:mod:`skebm.utils.estimator_checks`),
the property tests and the hostile-input benchmark: every ``*_`` attribute,
down to the bytes of each tensor of the engine's registered modules (weights,
chain bank, generator states), each array, each plain value, and nested
estimators and helper objects (a rescaler, the fitted components of a
meta-estimator).
"""

import numpy as np
import torch

__all__ = ["assert_same_state", "state_fingerprint"]

_PLAIN = (int, float, str, bool, bytes, type(None))


def _value(value, depth):
    """A comparable image of ``value``: bytes for tensors and arrays, nested dicts and lists, reprs."""
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous().reshape(-1)
        return (str(value.dtype), tuple(value.shape), t.view(torch.uint8).numpy().tobytes())
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return ("object", value.shape, [_value(v, depth) for v in value.ravel()])
        return (str(value.dtype), value.shape, np.ascontiguousarray(value).tobytes())
    if isinstance(value, _PLAIN) or isinstance(value, (np.generic, torch.dtype, torch.device)):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): _value(v, depth) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_value(v, depth) for v in value]
    if isinstance(value, torch.nn.Module):
        return {key: _value(t, depth) for key, t in value.state_dict().items()}
    if hasattr(value, "module_") and hasattr(value, "_modules"):  # a skorch net: all of its registered modules
        out = {
            name: _value(getattr(value, name + "_"), depth)
            for name in value._modules
            if isinstance(getattr(value, name + "_", None), torch.nn.Module)
        }
        out["history length"] = repr(len(value.history))
        return out
    if depth < 2 and hasattr(value, "__dict__") and not callable(value):
        return state_fingerprint(value, _depth=depth + 1, fitted_only=hasattr(value, "get_params"))
    return type(value).__name__


def state_fingerprint(est, *, _depth=0, fitted_only=True):
    """Bit-exact fingerprint of ``est``'s fitted state.

    Two fingerprints compare equal (``==``) exactly when the fitted state
    did not change: every ``*_`` attribute (all attributes of helper
    objects), tensors and arrays to the byte, skorch engines through their
    registered modules and the length of their history.

    Parameters
    ----------
    est : object
        A (fitted or not) estimator.
    fitted_only : bool, default=True
        Only the attributes ending in ``_`` (an estimator's fitted state);
        ``False`` takes every attribute.

    Returns
    -------
    fingerprint : dict
        Attribute name to a comparable image of its value.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skebm.utils._fingerprint import state_fingerprint
    >>> scaler = StandardScaler().fit(np.eye(3))
    >>> before = state_fingerprint(scaler)
    >>> before == state_fingerprint(scaler.set_params(with_std=False))  # parameters are not fitted state
    True
    >>> before == state_fingerprint(scaler.fit(np.ones((3, 3))))
    False
    """
    out = {}
    for key, value in sorted(vars(est).items()):
        if fitted_only and (not key.endswith("_") or key.startswith("_")):
            continue
        out[key] = _value(value, _depth)
    return out


def assert_same_state(before, after):
    """Assert that two fingerprints of :func:`state_fingerprint` are equal, naming what changed.

    Parameters
    ----------
    before, after : dict
        The fingerprints.

    Raises
    ------
    AssertionError
        Naming the attributes that appeared, disappeared or changed.
    """
    if before == after:
        return
    changed = sorted(k for k in before.keys() & after.keys() if before[k] != after[k])
    added, removed = sorted(after.keys() - before.keys()), sorted(before.keys() - after.keys())
    raise AssertionError(f"the fitted state changed: changed {changed}, added {added}, removed {removed}")
