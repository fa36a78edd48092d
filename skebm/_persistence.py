"""Safe persistence: save and load fitted estimators without pickle.

:func:`save` writes one `safetensors <https://huggingface.co/docs/safetensors>`_
file: the tensors (network and optimiser state, chain banks, generator
states, fitted arrays) as safetensors tensors, everything else (parameters,
fitted scalars, the history) as JSON in the file's metadata. Loading such a
file parses JSON and raw tensor bytes only: it cannot run code. Only the
fitted attributes an estimator declares (``_fitted_attributes``) may be
set, parameters are validated as in ``fit``, weights must be finite, and
any malformed or foreign file raises one clear ``ValueError``.

Pickle and joblib round trips work too (the estimators stamp pickles with
the skebm version and warn on a mismatch), but unpickling runs arbitrary
code: use them with trusted files only.
"""

import importlib
import json
import math
import os
import struct
import warnings

import numpy as np
import torch

__all__ = ["save", "load"]

FORMAT = "skebm"
FORMAT_VERSION = 2
_META_KEY = "skebm"

#: Classes that may appear in a saved file, by qualified name.
_ALLOWED_CLASSES = {"skebm._base.Rescaler", "sklearn.preprocessing._data.PowerTransformer"}
#: Modules whose classes may be named as parameter values (an energy class, an optimizer class, a ChainInit).
_ALLOWED_CLASS_MODULES = ("skebm.nn._nets", "torch.optim", "skebm.mcmc._init")


class _Writer:
    """Turns a nested Python value into JSON, collecting its tensors."""

    def __init__(self):
        self.tensors = {}

    def tensor(self, t):
        key = f"t{len(self.tensors)}"
        self.tensors[key] = t.detach().cpu().contiguous().clone()
        return {"__tensor__": key}

    def encode(self, value, where):
        if isinstance(value, np.generic):  # before float: np.float64 is a float subclass
            return self.encode(value.item(), where)
        if isinstance(value, float) and not math.isfinite(value):
            return {"__float__": repr(value)}
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, torch.Tensor):
            return self.tensor(value)
        if isinstance(value, np.ndarray):
            if value.dtype.kind in "biuf":
                return {"__ndarray__": self.tensor(torch.from_numpy(np.ascontiguousarray(value)))}
            return {"__array_list__": [self.encode(v, where) for v in value.tolist()], "dtype": value.dtype.str}
        if isinstance(value, np.dtype):
            return {"__dtype__": value.str}
        if isinstance(value, torch.device):
            return {"__device__": str(value)}
        if isinstance(value, (list, tuple)):
            items = [self.encode(v, where) for v in value]
            return items if isinstance(value, list) else {"__tuple__": items}
        if isinstance(value, dict):
            if not all(isinstance(k, (str, int)) for k in value):
                raise TypeError(f"cannot save {where}: dict keys must be strings or integers.")
            return {"__dict__": [[k, self.encode(v, f"{where}[{k!r}]")] for k, v in value.items()]}
        if isinstance(value, type):
            name = f"{value.__module__}.{value.__qualname__}"
            if value.__module__.startswith(_ALLOWED_CLASS_MODULES):
                return {"__class__": name}
            raise TypeError(f"cannot save {where}: the class {name} is not one skebm can name safely.")
        name = f"{type(value).__module__}.{type(value).__qualname__}"
        if name in _ALLOWED_CLASSES:
            return {"__object__": name, "state": self.encode(dict(vars(value)), where)}
        from .mcmc import ChainInit

        if isinstance(value, ChainInit) and type(value).__module__.startswith(_ALLOWED_CLASS_MODULES):
            params = {k: getattr(value, k) for k in value._params}
            return {"__chain_init__": type(value).__name__, "params": self.encode(params, where)}
        from ._density_methods import METHODS

        if type(value) in METHODS.values():  # EBMDensity's method: its class and parameters
            params = self.encode(value.get_params(deep=False), where)
            return {"__density_method__": type(value).__name__, "params": params}
        raise TypeError(
            f"cannot save {where} of type {name} safely; use pickle or joblib (trusted files only) for this estimator."
        )


class _Reader:
    """Turns the JSON of a file back into values; refuses anything unexpected."""

    def __init__(self, tensors):
        self.tensors = tensors

    def decode(self, value):
        if isinstance(value, list):
            return [self.decode(v) for v in value]
        if not isinstance(value, dict):
            return value
        if "__tensor__" in value:
            return self.tensors[value["__tensor__"]]
        if "__float__" in value:
            return float(value["__float__"])
        if "__ndarray__" in value:
            return self.decode(value["__ndarray__"]).numpy().copy()
        if "__array_list__" in value:
            return np.array([self.decode(v) for v in value["__array_list__"]], dtype=np.dtype(value["dtype"]))
        if "__dtype__" in value:
            return np.dtype(value["__dtype__"])
        if "__device__" in value:
            return torch.device(value["__device__"])
        if "__tuple__" in value:
            return tuple(self.decode(v) for v in value["__tuple__"])
        if "__dict__" in value:
            return {k: self.decode(v) for k, v in value["__dict__"]}
        if "__class__" in value:
            module, _, qualname = value["__class__"].rpartition(".")
            if not module.startswith(_ALLOWED_CLASS_MODULES) or "." in qualname:
                raise ValueError(f"refusing to load the class {value['__class__']!r}: not in skebm's allow-list.")
            return getattr(importlib.import_module(module), qualname)
        if "__chain_init__" in value:
            from .mcmc import CHAIN_INITS

            classes = {cls.__name__: cls for cls in CHAIN_INITS.values()}
            if value["__chain_init__"] not in classes:
                raise ValueError(f"refusing to load the chain initialisation {value['__chain_init__']!r}.")
            return classes[value["__chain_init__"]](**self.decode(value["params"]))
        if "__density_method__" in value:
            from ._density_methods import METHODS

            classes = {cls.__name__: cls for cls in METHODS.values()}
            if value["__density_method__"] not in classes:
                raise ValueError(f"refusing to load the density method {value['__density_method__']!r}.")
            method = classes[value["__density_method__"]](**self.decode(value["params"]))
            method._validate_params()
            return method
        if "__object__" in value:
            name = value["__object__"]
            if name not in _ALLOWED_CLASSES:
                raise ValueError(f"refusing to load an object of class {name!r}: not in skebm's allow-list.")
            module, _, qualname = name.rpartition(".")
            cls = getattr(importlib.import_module(module), qualname)
            obj = cls.__new__(cls)
            state = self.decode(value["state"])
            if not isinstance(state, dict) or not all(isinstance(k, str) and not k.startswith("__") for k in state):
                raise ValueError(f"malformed state of a {name} object.")
            obj.__dict__.update(state)
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


def _engine_state(net, writer):
    sampler = getattr(net, "sampler_", None)  # an engine that trains without chains has none
    settings = {} if sampler is None else {k: v for k, v in sampler.settings().items() if k != "proposal"}
    return {
        "modules": writer.encode({name: dict(getattr(net, name + "_").state_dict()) for name in net._modules}, "engine"),
        "optimizer": writer.encode(net.optimizer_.state_dict(), "optimizer"),
        "history": writer.encode(list(net.history), "history"),
        "sampler": writer.encode(settings, "sampler"),
    }


def save(estimator, path):
    """Save a (fitted) skebm estimator to ``path`` without pickle.

    The file (safetensors) holds the parameters, the fitted attributes, the
    state of every module of the training engine (network, chain bank,
    random generators), the optimiser state and the training history.
    Custom ``torch.nn.Module`` energy instances and callbacks cannot be
    stored this way: ``save`` raises ``TypeError`` for the former and drops
    the latter with a warning; use pickle or joblib for such estimators.

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
    from safetensors.torch import save as st_save

    import skebm

    classes = _estimator_classes()
    name = type(estimator).__name__
    if classes.get(name) is not type(estimator):
        raise TypeError(f"save takes a skebm estimator, got {name}.")
    params = estimator.get_params(deep=False)
    if params.get("accelerator") is not None:  # a process group of this run: the loaded model trains alone
        params["accelerator"] = None
    if params.get("callbacks"):
        warnings.warn("callbacks are not saved; the loaded estimator has callbacks=None.", UserWarning, stacklevel=2)
        params["callbacks"] = None
    writer = _Writer()
    allowed = type(estimator)._fitted_attributes
    attrs = {k: v for k, v in vars(estimator).items() if k in allowed and k != "net_"}
    state = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "skebm_version": skebm.__version__,
        "class": name,
        "params": writer.encode(params, "parameter"),
        "attrs": writer.encode(attrs, "attribute"),
        "engine": None,
    }
    net = getattr(estimator, "net_", None)
    if net is not None:
        state["engine"] = _engine_state(net, writer)
    data = st_save(writer.tensors, metadata={_META_KEY: json.dumps(state)})
    if hasattr(path, "write"):
        path.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)


def _read_bytes(path):
    if hasattr(path, "read"):
        return path.read()
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path!r}")
    with open(path, "rb") as f:
        return f.read()


def _parse(data, where):
    """(state dict, tensors) of a safetensors file written by :func:`save`; ValueError otherwise."""
    from safetensors.torch import load as st_load

    foreign = f"{where} is not a file written by skebm.save"
    if data[:2] == b"PK" or data[:1] == b"\x80":
        foreign += (
            " (it looks like a pickle or zip archive: torch.save, skebm < 0.2 or another library; skebm.load never "
            "unpickles)"
        )
    try:
        (n_header,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + n_header])
        state = json.loads(header["__metadata__"][_META_KEY])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, struct.error):
        raise ValueError(foreign + ".") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(foreign + ".")
    version = state.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{where} was written by a newer skebm ({state.get('skebm_version', '?')}, file format {version}); "
            f"this skebm reads formats up to {FORMAT_VERSION}: upgrade skebm."
        )
    if version < FORMAT_VERSION:
        raise ValueError(f"{where} uses the old file format {version}; refit the model and save it again.")
    try:
        tensors = st_load(data)
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise ValueError(f"{where} is not a valid skebm file: {exc}") from None
    return state, tensors


def load(path, *, device=None):
    """Load an estimator written by :func:`save`.

    No code from the file is run: it is JSON and raw tensors. Parameters
    are validated as ``fit`` validates them, only declared fitted
    attributes are set, and weights must be finite; a malformed, tampered
    or foreign file raises ``ValueError``. A model trained on CUDA loads on
    a CPU-only machine (its ``device`` parameter becomes ``"cpu"``, with a
    warning).

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
    where = repr(getattr(path, "name", path)) if not hasattr(path, "read") else "the file object"
    state, tensors = _parse(_read_bytes(path), where)
    try:
        return _build(state, tensors, device, where)
    except ValueError as exc:
        raise ValueError(f"{where} is not a valid skebm file: {exc}") from None
    except (KeyError, TypeError, AttributeError, IndexError, RuntimeError) as exc:
        raise ValueError(f"{where} is not a valid skebm file ({type(exc).__name__}: {exc}).") from None


def _check_finite(value, where):
    """ValueError if a floating tensor anywhere in ``value`` holds NaN or infinity."""
    if isinstance(value, torch.Tensor):
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ValueError(f"{where} holds non-finite values (a diverged model?)")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_finite(item, f"{where}[{i}]")


def _build(state, tensors, device, where):
    import skebm
    from skebm._base import resolve_device
    from skorch.history import History

    classes = _estimator_classes()
    cls = classes.get(state["class"])
    if cls is None:
        raise ValueError(f"unknown estimator class {state['class']!r}")
    reader = _Reader(tensors)
    params = reader.decode(state["params"])
    if not isinstance(params, dict):
        raise ValueError("malformed parameters")
    known = set(cls._get_param_names())
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(
            f"it was saved by skebm {state.get('skebm_version', '?')} with parameters this version "
            f"({skebm.__version__}) does not know: {unknown}"
        )
    if device is not None:
        params["device"] = device
    else:
        try:
            resolve_device(params.get("device", "cpu"))
        except ValueError:
            warnings.warn(
                f"the model was saved with device={params['device']!r}, which is not available here; loading on CPU.",
                UserWarning,
                stacklevel=4,
            )
            params["device"] = "cpu"
    estimator = cls(**params)
    estimator._validate_params()
    estimator._check_params()
    attrs = reader.decode(state["attrs"])
    if not isinstance(attrs, dict):
        raise ValueError("malformed fitted attributes")
    bad = sorted(set(attrs) - set(cls._fitted_attributes))
    if bad:
        raise ValueError(f"attributes {bad} are not fitted attributes of {cls.__name__}")
    estimator.__dict__.update(attrs)
    engine = state["engine"]
    if engine is not None:
        net = estimator._build_engine(estimator._n_outputs_, 0, None)
        net.initialize()
        modules = reader.decode(engine["modules"])
        if set(modules) != set(net._modules):
            raise ValueError(f"engine modules {sorted(modules)} do not match {sorted(net._modules)}")
        optimizer = reader.decode(engine["optimizer"])
        _check_finite(modules, "engine")
        _check_finite(optimizer, "optimizer")
        for name, module_state in modules.items():
            getattr(net, name + "_").load_state_dict(module_state)
        net.optimizer_.load_state_dict(optimizer)
        net.history = History(reader.decode(engine["history"]))
        settings = reader.decode(engine["sampler"])
        s = getattr(net, "sampler_", None)
        for key, value in settings.items():
            if not hasattr(s, key):
                raise ValueError(f"unknown sampler setting {key!r}")
            setattr(s, key, value)
        from .mcmc._langevin import _check_settings

        if s is not None:
            _check_settings(
                s.n_steps, s.step_size, s.noise_scale, s.temperature, s.metropolis, s.clamp, s.tau, s.grad_clip
            )
        estimator.net_ = net
    return estimator

