"""Safe persistence: save and load fitted estimators without pickle.

:func:`save` writes a ``torch.save`` file that holds only tensors, plain
Python values and the names of a fixed list of skebm/scikit-learn classes;
:func:`load` reads it with ``torch.load(weights_only=True)`` and rebuilds
the estimator, so loading a file never runs code from the file. (Pickle and
joblib round trips work too, but unpickling runs arbitrary code and must
only be done with trusted files.)
"""

import importlib
import warnings

import numpy as np
import torch

__all__ = ["save", "load"]

FORMAT = "skebm"
FORMAT_VERSION = 1

#: Classes whose instances may appear in a saved file (by qualified name).
_ALLOWED = {
    "skebm._base.Rescaler",
    "skebm.mcmc._init.NoiseSource",
    "skebm.mcmc._init.NoiseInit",
    "skebm.mcmc._init.DataInit",
    "skebm.mcmc._init.ReplayInit",
    "skebm.mcmc._init.PersistentInit",
    "skebm.mcmc._init.LongrunInit",
    "skebm.mcmc._init.GaussianMixtureSource",
    "skebm.mcmc._langevin.LangevinSampler",
    "sklearn.preprocessing._label.LabelEncoder",
}


def _qualname(obj):
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _encode(value, where):
    if isinstance(value, np.generic):  # before float: np.float64 is a float subclass
        return _encode(value.item(), where)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biuf":
            return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(value))}
        return {"__array_list__": [_encode(v, where) for v in value.tolist()], "dtype": value.dtype.str}
    if isinstance(value, np.dtype):
        return {"__dtype__": value.str}
    if isinstance(value, torch.device):
        return {"__device__": str(value)}
    if isinstance(value, (list, tuple)):
        items = [_encode(v, where) for v in value]
        return items if isinstance(value, list) else {"__tuple__": items}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"cannot save {where}: dict keys must be strings.")
        return {"__dict__": {k: _encode(v, f"{where}[{k!r}]") for k, v in value.items()}}
    name = _qualname(value)
    if name in _ALLOWED:
        return {"__object__": name, "state": _encode(dict(vars(value)), where)}
    raise TypeError(
        f"cannot save {where} of type {name} safely; use pickle or joblib (trusted files only) for this estimator."
    )


def _decode(value):
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__ndarray__" in value:
        return value["__ndarray__"].numpy().copy()
    if "__array_list__" in value:
        return np.array([_decode(v) for v in value["__array_list__"]], dtype=np.dtype(value["dtype"]))
    if "__dtype__" in value:
        return np.dtype(value["__dtype__"])
    if "__device__" in value:
        return torch.device(value["__device__"])
    if "__tuple__" in value:
        return tuple(_decode(v) for v in value["__tuple__"])
    if "__dict__" in value:
        return {k: _decode(v) for k, v in value["__dict__"].items()}
    if "__object__" in value:
        name = value["__object__"]
        if name not in _ALLOWED:
            raise ValueError(f"refusing to load an object of class {name!r}: not in skebm's allow-list.")
        module, _, qualname = name.rpartition(".")
        cls = getattr(importlib.import_module(module), qualname)
        obj = cls.__new__(cls)
        obj.__dict__.update(_decode(value["state"]))
        return obj
    raise ValueError(f"unknown entry in a skebm file: {sorted(value)}")


def _estimator_classes():
    import skebm
    from skebm._base import BaseEBM

    return {
        name: obj
        for name in skebm.__all__
        if isinstance(obj := getattr(skebm, name), type) and issubclass(obj, BaseEBM)
    }


def save(estimator, path):
    """Save a (fitted) skebm estimator to ``path`` without pickle.

    The file holds the parameters, the fitted attributes, the network and
    optimiser state dicts, the chain bank and the training history. Custom
    ``torch.nn.Module`` energies and callbacks cannot be stored this way:
    ``save`` raises ``TypeError`` for the former and drops the latter with
    a warning; use pickle or joblib for such estimators.

    Parameters
    ----------
    estimator : skebm estimator
        An :class:`~skebm.EBMGenerator`, :class:`~skebm.EBMPurifier`,
        :class:`~skebm.EBMDensity` or :class:`~skebm.NGEBMClassifier`.
    path : str or path-like or file object
        Destination.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> import skebm
    >>> gen = skebm.EBMGenerator(max_iter=2, n_steps=2).fit(np.random.randn(50, 2))
    >>> path = os.path.join(tempfile.mkdtemp(), "gen.skebm")
    >>> skebm.save(gen, path)
    >>> skebm.load(path).n_features_in_
    2
    """
    classes = _estimator_classes()
    name = type(estimator).__name__
    if classes.get(name) is not type(estimator):
        raise TypeError(f"save takes a skebm estimator, got {name}.")
    params = estimator.get_params(deep=False)
    if params.get("callbacks"):
        warnings.warn("callbacks are not saved; the loaded estimator has callbacks=None.", UserWarning, stacklevel=2)
        params["callbacks"] = None
    state = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class": name,
        "params": _encode(params, "parameter"),
        "attrs": _encode({k: v for k, v in vars(estimator).items() if k not in params and k != "net_"}, "attribute"),
        "net": None,
    }
    net = getattr(estimator, "net_", None)
    if net is not None:
        state["net"] = {
            "module": net.module_.state_dict(),
            "optimizer": net.optimizer_.state_dict(),
            "chain_init": _encode(getattr(net, "chain_init_", None), "chain bank"),
            "history": _encode(list(net.history), "history"),
        }
    torch.save(state, path)


def load(path, *, device=None):
    """Load an estimator written by :func:`save`.

    Reads with ``torch.load(weights_only=True)``: no code from the file is
    run. A model trained on CUDA loads on a CPU-only machine (its ``device``
    parameter becomes ``"cpu"``, with a warning).

    Parameters
    ----------
    path : str or path-like or file object
        A file written by :func:`save`.
    device : str, default=None
        Device to load the network on; ``None`` uses the saved ``device``
        parameter when available, else the CPU.

    Returns
    -------
    estimator : skebm estimator
    """
    from skebm._base import resolve_device
    from skorch.history import History

    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path!r} is not a file written by skebm.save.")
    if state["format_version"] > FORMAT_VERSION:
        raise ValueError(f"{path!r} was written by a newer skebm (format {state['format_version']}).")
    classes = _estimator_classes()
    if state["class"] not in classes:
        raise ValueError(f"unknown estimator class {state['class']!r}.")
    params = _decode(state["params"])
    if device is not None:
        params["device"] = device
    else:
        try:
            resolve_device(params["device"])
        except ValueError:
            warnings.warn(
                f"the model was saved with device={params['device']!r}, which is not available here; loading on CPU.",
                UserWarning,
                stacklevel=2,
            )
            params["device"] = "cpu"
    estimator = classes[state["class"]](**params)
    estimator.__dict__.update(_decode(state["attrs"]))
    if state["net"] is not None:
        estimator._device = resolve_device(estimator.device)
        net = estimator._make_net(1, estimator._n_outputs)
        net.initialize()
        net.module_.load_state_dict(state["net"]["module"])
        net.optimizer_.load_state_dict(state["net"]["optimizer"])
        chain_init = _decode(state["net"]["chain_init"])
        if chain_init is not None:
            net.chain_init_ = chain_init.to(net.device)
        net.history = History(_decode(state["net"]["history"]))
        estimator.net_ = net
    return estimator
