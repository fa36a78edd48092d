"""Safe persistence: save and load fitted estimators without pickle.

:func:`save` writes one `safetensors <https://huggingface.co/docs/safetensors>`_
file: the tensors (network and optimiser state, chain banks, generator
states, fitted arrays) as safetensors tensors, everything else (parameters,
fitted scalars, the history) as JSON in the file's metadata. Loading such a
file parses JSON and raw tensor bytes only: it cannot run code.

:func:`load` trusts nothing in the file. Before anything is built it
bounds the header (its length by the file's, the nesting of its JSON,
no duplicate keys), decodes each value only where that kind of value may
appear (a class only as the ``energy`` or ``optimizer`` parameter and only
one of an exact list, a chain-initialisation strategy only as ``init``, a
rescaler only as ``rescaler_``), validates the parameters as ``fit`` does
and every fitted value (type, dtype, shape, finiteness, consistency), and
checks the sizes the parameters imply (chain banks, network, quadrature
grid, planned on torch's ``meta`` device) against the file's own tensors,
so the memory a load takes is bounded by the file. Any malformed,
tampered or foreign file raises one ``ValueError`` naming the file.

Pickle and joblib round trips work too (the estimators stamp pickles with
the skebm version and warn on a mismatch), but unpickling runs arbitrary
code: use them with trusted files only.
"""

import copy
import json
import math
import os
import re
import struct
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel

__all__ = ["save", "load"]

FORMAT = "skebm"
FORMAT_VERSION = 2
_META_KEY = "skebm"
#: Largest header safetensors itself accepts (its ``MAX_HEADER_SIZE``); a longer one is refused before parsing.
_MAX_HEADER_BYTES = 100_000_000
#: Deepest JSON nesting a file may have (a saved model needs about 15; Python's parser recurses per level).
_MAX_JSON_DEPTH = 64
_STATE_KEYS = {"format", "format_version", "skebm_version", "class", "params", "attrs", "engine"}
_ENGINE_KEYS = {"modules", "optimizer", "history", "sampler"}


def _optimizer_classes():
    """The optimizers a file may name (``optimizer`` parameter): torch.optim's own, by qualified name."""
    classes = (getattr(torch.optim, name) for name in torch.optim.__all__)
    return {
        _qualname(c): c for c in classes if isinstance(c, type) and issubclass(c, torch.optim.Optimizer)
        and c is not torch.optim.Optimizer
    }


def _energy_classes():
    """The energy network classes a file may name (``energy`` parameter): skebm's built-in ones."""
    from .nn import ENERGIES

    return {_qualname(c): c for c in ENERGIES.values()}


def _chain_init_classes():
    """The chain-initialisation strategies a file may hold (``init`` parameter), by class name."""
    from .mcmc import CHAIN_INITS

    return {cls.__name__: cls for cls in CHAIN_INITS.values()}


#: Parameters whose value may be a class, and the exact classes each may name.
_CLASS_SLOTS = {"energy": _energy_classes, "optimizer": _optimizer_classes}


def _qualname(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


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
            name = _qualname(value)
            if any(name in classes() for classes in _CLASS_SLOTS.values()):
                return {"__class__": name}
            raise TypeError(f"cannot save {where}: the class {name} is not one skebm can name safely.")
        from ._base import Rescaler
        from sklearn.preprocessing import PowerTransformer

        if type(value) in (Rescaler, PowerTransformer):
            return {"__object__": _qualname(type(value)), "state": self.encode(dict(vars(value)), where)}
        if _chain_init_classes().get(type(value).__name__) is type(value):
            params = {k: getattr(value, k) for k in value._params}
            return {"__chain_init__": type(value).__name__, "params": self.encode(params, where)}
        from ._density_methods import METHODS

        if type(value) in METHODS.values():  # EBMDensity's method: its class and parameters
            params = self.encode(value.get_params(deep=False), where)
            return {"__density_method__": type(value).__name__, "params": params}
        raise TypeError(
            f"cannot save {where} of type {_qualname(type(value))} safely; use pickle or joblib (trusted files only) "
            "for this estimator."
        )


#: dtype strings ``__dtype__`` may hold (what a layout records: the dtypes ``fit`` accepts).
_DTYPES = {np.dtype(t).str: np.dtype(t) for t in (np.float64, np.float32, np.uint8)}
_UNICODE = re.compile(r"[<>|=]U[0-9]{1,4}")


class _Reader:
    """Turns the JSON of a file back into plain values; refuses anything not expected where it appears.

    :meth:`decode` gives numbers, strings, lists, tuples, dicts, arrays and
    tensors only. A class, a chain-initialisation strategy or an object is
    decoded only by the method of the one place it may appear
    (:meth:`param`, :meth:`rescaler`), and only from an exact allow-list.
    """

    def __init__(self, tensors):
        self.tensors = tensors

    @staticmethod
    def _marker(value, *keys):
        if set(value) != set(keys):
            raise ValueError(f"malformed entry with keys {sorted(value)[:4]}")

    def decode(self, value):
        if isinstance(value, list):
            return [self.decode(v) for v in value]
        if not isinstance(value, dict):
            return value
        if "__tensor__" in value:
            self._marker(value, "__tensor__")
            key = value["__tensor__"]
            if not isinstance(key, str) or key not in self.tensors:
                raise ValueError(f"it refers to a tensor {str(key)[:40]!r} it does not hold")
            return self.tensors[key]
        if "__float__" in value:
            self._marker(value, "__float__")
            number = float(str(value["__float__"])[:10])
            if math.isfinite(number):
                raise ValueError("a finite number stored as a special float")
            return number
        if "__ndarray__" in value:
            self._marker(value, "__ndarray__")
            tensor = self.decode(value["__ndarray__"])
            if not isinstance(tensor, torch.Tensor) or tensor.dtype not in _NUMPY_DTYPES:
                raise ValueError("an array entry does not hold a plain numeric tensor")
            return tensor.numpy().copy()
        if "__array_list__" in value:
            self._marker(value, "__array_list__", "dtype")
            items, dtype = value["__array_list__"], value["dtype"]
            if not isinstance(items, list) or not all(isinstance(v, (str, int, float)) for v in items):
                raise ValueError("an array of strings holds something else")
            if dtype != "|O" and not (isinstance(dtype, str) and _UNICODE.fullmatch(dtype)):
                raise ValueError(f"an array of strings with dtype {str(dtype)[:20]!r}")
            # a fixed-width string array takes the width of its longest item, not the file's claim (memory)
            return np.array(items, dtype=object) if dtype == "|O" else np.array(items, dtype=str)
        if "__dtype__" in value:
            self._marker(value, "__dtype__")
            if value["__dtype__"] not in _DTYPES:
                raise ValueError(f"the dtype {str(value['__dtype__'])[:20]!r} is not one skebm records")
            return _DTYPES[value["__dtype__"]]
        if "__device__" in value:
            self._marker(value, "__device__")
            if not isinstance(value["__device__"], str):
                raise ValueError("malformed device")
            return torch.device(value["__device__"][:20])
        if "__tuple__" in value:
            self._marker(value, "__tuple__")
            return tuple(self.decode(v) for v in self._list(value["__tuple__"]))
        if "__dict__" in value:
            self._marker(value, "__dict__")
            return self._dict(value, self._item)
        raise ValueError(
            f"unexpected entry {sorted(map(str, value))[:4]} (classes and objects: only skebm's allow-list, where "
            "skebm puts them)"
        )

    def _item(self, key, value):
        return self.decode(value)

    @staticmethod
    def _list(value):
        if not isinstance(value, list):
            raise ValueError("malformed list")
        return value

    def _dict(self, value, decode_item):
        """A ``{"__dict__": [[key, value], ...]}`` entry (string or integer keys, each once), by ``decode_item``."""
        if not isinstance(value, dict) or set(value) != {"__dict__"}:
            keys = sorted(map(str, value))[:4] if isinstance(value, dict) else type(value).__name__
            raise ValueError(f"a dict was expected, not {keys} (classes and objects: only skebm's allow-list, where "
                             "skebm puts them)")
        out = {}
        for pair in self._list(value["__dict__"]):
            if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], (str, int))
                    and not isinstance(pair[0], bool)):
                raise ValueError("malformed dict item")
            if pair[0] in out:
                raise ValueError(f"the key {str(pair[0])[:40]!r} appears twice")
            out[pair[0]] = decode_item(pair[0], pair[1])
        return out

    def params(self, value):
        """The estimator's parameters: a class only as ``energy``/``optimizer``, a strategy only as ``init``."""
        return self._dict(value, self.param)

    def param(self, name, value):
        if isinstance(value, dict) and "__class__" in value:
            self._marker(value, "__class__")
            allowed = _CLASS_SLOTS[name]() if name in _CLASS_SLOTS else {}
            if value["__class__"] not in allowed:
                raise ValueError(
                    f"refusing the class {str(value['__class__'])[:80]!r} as {name!r}: not in skebm's allow-list"
                )
            return allowed[value["__class__"]]
        if isinstance(value, dict) and "__chain_init__" in value:
            self._marker(value, "__chain_init__", "params")
            classes = _chain_init_classes() if name == "init" else {}
            if value["__chain_init__"] not in classes:
                raise ValueError(f"refusing the chain initialisation {str(value['__chain_init__'])[:80]!r} as {name!r}")
            params = self._dict(value["params"], self._item)
            if not all(isinstance(k, str) for k in params):
                raise ValueError("malformed chain initialisation parameters")
            return classes[value["__chain_init__"]](**params)  # validates its parameters
        if isinstance(value, dict) and "__density_method__" in value:
            self._marker(value, "__density_method__", "params")
            from ._density_methods import METHODS

            classes = {cls.__name__: cls for cls in METHODS.values()} if name == "method" else {}
            if value["__density_method__"] not in classes:
                raise ValueError(f"refusing the density method {str(value['__density_method__'])[:80]!r} as {name!r}")
            params = self._dict(value["params"], self.param)
            if not all(isinstance(k, str) for k in params):
                raise ValueError("malformed density method parameters")
            method = classes[value["__density_method__"]](**params)
            method._validate_params()
            return method
        return self.decode(value)

    def attrs(self, value):
        """The fitted attributes: an object only as ``rescaler_`` (and its Yeo-Johnson map), a method as ``method_``."""

        def attr(name, item):
            if name == "rescaler_":
                return self.rescaler(item)
            if name == "method_":  # EBMDensity's fitted training method
                return self.param("method", item)
            return self.decode(item)

        return self._dict(value, attr)

    def rescaler(self, value):
        from ._base import Rescaler
        from sklearn.preprocessing import PowerTransformer

        def power(name, item):
            return self._object(item, PowerTransformer, self._item) if name == "power_" else self.decode(item)

        return self._object(value, Rescaler, power)

    def _object(self, value, cls, decode_item):
        if not isinstance(value, dict):
            raise ValueError(f"malformed {cls.__name__}")
        self._marker(value, "__object__", "state")
        if value["__object__"] != _qualname(cls):
            raise ValueError(
                f"refusing an object of class {str(value['__object__'])[:80]!r} where a {cls.__name__} belongs"
            )
        state = self._dict(value["state"], decode_item)
        obj = cls.__new__(cls)
        obj.__dict__.update(state)
        return obj


_NUMPY_DTYPES = {torch.float64, torch.float32, torch.float16, torch.int64, torch.int32, torch.int16, torch.int8,
                 torch.uint8, torch.bool}


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
    Custom ``torch.nn.Module`` energy instances and classes, optimizer
    classes from outside ``torch.optim`` and custom chain-initialisation
    classes cannot be stored this way: ``save`` raises ``TypeError`` for
    them; callbacks are dropped with a warning. Use pickle or joblib for
    such estimators.

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


def _read_bytes(path, where):
    if hasattr(path, "read"):
        data = path.read()
        if not isinstance(data, (bytes, bytearray)):
            raise ValueError(f"{where} is not opened in binary mode.")
        return bytes(data)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path!r}")
    if not os.path.isfile(path):  # a folder, a FIFO (which would block), a device
        raise ValueError(f"{where} is not a regular file.")
    with open(path, "rb") as f:
        return f.read()


_JSON_STRING = re.compile(rb'"(?:[^"\\]+|\\.)*"', re.DOTALL)


def _json_loads(text, what):
    """``json.loads`` with the nesting bounded (checked before parsing) and duplicate keys refused."""
    if not isinstance(text, (str, bytes)):
        raise ValueError(f"its {what} is not text")
    raw = text.encode("utf-8") if isinstance(text, str) else text
    codes = np.frombuffer(_JSON_STRING.sub(b'""', raw), dtype=np.uint8)
    steps = (np.isin(codes, (ord("["), ord("{"))).astype(np.int64) - np.isin(codes, (ord("]"), ord("}"))))
    if len(steps) and int(np.cumsum(steps).max()) > _MAX_JSON_DEPTH:
        raise ValueError(f"its {what} is nested deeper than {_MAX_JSON_DEPTH} levels")

    def pairs(items):
        out = dict(items)
        if len(out) != len(items):
            raise ValueError(f"its {what} repeats a key")
        return out

    return json.loads(raw, object_pairs_hook=pairs)


def _parse(data, where):
    """(state dict, tensors) of a safetensors file written by :func:`save`; ValueError otherwise."""
    from safetensors.torch import load as st_load

    foreign = f"{where} is not a file written by skebm.save"
    if data[:2] == b"PK" or data[:1] == b"\x80":
        foreign += (
            " (it looks like a pickle or zip archive: torch.save, skebm < 0.2 or another library; skebm.load never "
            "unpickles)"
        )
    if len(data) < 8:
        raise ValueError(foreign + ".")
    (n_header,) = struct.unpack("<Q", data[:8])
    if n_header > min(len(data) - 8, _MAX_HEADER_BYTES):
        raise ValueError(f"{foreign}: its header claims {n_header} bytes, more than the file holds (or 100 MB).")
    try:
        header = _json_loads(data[8 : 8 + n_header], "header")
        state = _json_loads(header["__metadata__"][_META_KEY], "metadata")
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        detail = str(exc) if str(exc).startswith("its ") else ""
        raise ValueError(foreign + (f": {detail}." if detail else ".")) from None
    except (KeyError, TypeError):
        raise ValueError(foreign + ".") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(foreign + ".")
    version = state.get("format_version")
    written_by = str(state.get("skebm_version", "?"))[:40]
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"{where} is not a valid skebm file: its format version is {str(version)[:40]!r}.")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{where} was written by a newer skebm ({written_by}, file format {version}); "
            f"this skebm reads formats up to {FORMAT_VERSION}: upgrade skebm."
        )
    if version < FORMAT_VERSION:
        raise ValueError(f"{where} uses the old file format {version}; refit the model and save it again.")
    if set(state) != _STATE_KEYS:
        raise ValueError(f"{where} is not a valid skebm file: its entries are {sorted(state)[:10]}.")
    try:
        tensors = st_load(data)
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise ValueError(f"{where} is not a valid skebm file: {str(exc)[:200]}") from None
    return state, tensors


def load(path, *, device=None):
    """Load an estimator written by :func:`save`.

    No code from the file is run: it is JSON and raw tensors, and nothing
    is built before every value has been checked. Classes are accepted
    only where the estimator takes one (``energy``: skebm's built-in
    networks; ``optimizer``: ``torch.optim``'s optimizers), parameters are
    validated as ``fit`` validates them, only the estimator's declared
    fitted attributes may be set and each is checked (type, dtype, shape,
    finite values, consistency with the others), the sampler settings and
    the history are checked, weights must be finite, and the sizes the
    parameters imply must match the file's own tensors (so a load never
    takes much more memory than the file). A malformed, tampered or
    foreign file, or a path that is not a regular file, raises one
    ``ValueError`` naming it; a missing file raises ``FileNotFoundError``.
    A model trained on CUDA loads on a CPU-only machine (its ``device``
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

    Raises
    ------
    ValueError
        The file is not a valid skebm file (the message names it and says
        why).
    FileNotFoundError
        No file at ``path``.
    TypeError
        ``path`` is neither a path nor a file object.
    """
    if hasattr(path, "read"):
        where = "the file object"
    elif isinstance(path, (str, bytes, os.PathLike)):
        where = repr(os.fspath(path))  # the whole path, not a Path's last part
    else:
        raise TypeError(f"load takes a path or a binary file object, got {type(path).__name__}.")
    state, tensors = _parse(_read_bytes(path, where), where)
    try:
        return _build(state, tensors, device, where)
    except ValueError as exc:
        raise ValueError(f"{where} is not a valid skebm file: {str(exc)[:500]}") from None
    except (LookupError, TypeError, AttributeError, RuntimeError, ArithmeticError, RecursionError) as exc:
        raise ValueError(f"{where} is not a valid skebm file ({type(exc).__name__}: {str(exc)[:300]}).") from None


def _check_finite(value, where):
    """ValueError if a floating tensor or number anywhere in ``value`` holds NaN or infinity."""
    if isinstance(value, torch.Tensor):
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ValueError(f"{where} holds non-finite values (a diverged model?)")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} is not finite")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_finite(item, f"{where}[{i}]")


# ------------------------------------------------------------- fitted values
def _is_int(value, low=0):
    return isinstance(value, Integral) and not isinstance(value, bool) and value >= low


def _float_array(value, name, n):
    if not (isinstance(value, np.ndarray) and value.dtype == np.float64 and value.shape == (n,)):
        raise ValueError(f"{name} must be a float64 array of shape ({n},)")
    if not np.all(np.isfinite(value)):
        raise ValueError(f"{name} holds non-finite values")
    return value


def _check_rescaler(rescaler, n):
    """The fitted :class:`~skebm._base.Rescaler` for ``n`` features: exactly its attributes, each valid."""
    kind = vars(rescaler).get("kind")
    expected = {"kind", "center_", "scale_"} | {"image": {"low_", "high_"}, "yeo-johnson": {"power_"}}.get(kind, set())
    if kind not in ("image", "standard", "yeo-johnson") or set(vars(rescaler)) != expected:
        raise ValueError(f"rescaler_ has kind {str(kind)[:20]!r} and entries {sorted(vars(rescaler))[:8]}")
    _float_array(rescaler.center_, "rescaler_.center_", n)
    if not np.all(_float_array(rescaler.scale_, "rescaler_.scale_", n) > 0):
        raise ValueError("rescaler_.scale_ must be positive")
    if kind == "image":
        low, high = rescaler.low_, rescaler.high_
        if not (isinstance(low, Real) and isinstance(high, Real) and math.isfinite(low) and math.isfinite(high)
                and low <= high):
            raise ValueError("rescaler_.low_ and high_ must be finite numbers with low_ <= high_")
    if kind == "yeo-johnson":
        power = vars(rescaler.power_)
        if (power.get("method") != "yeo-johnson" or power.get("standardize") is not False
                or not set(power) <= {"method", "standardize", "copy", "lambdas_", "n_features_in_", "_sklearn_version"}
                or power.get("n_features_in_") != n or not isinstance(power.get("copy", True), bool)):
            raise ValueError("rescaler_.power_ is not the fitted Yeo-Johnson map of the data")
        _float_array(power.get("lambdas_"), "rescaler_.power_.lambdas_", n)


def _check_classes(classes):
    if not (isinstance(classes, np.ndarray) and classes.ndim == 1 and len(classes) and classes.dtype.kind in "biufUO"):
        raise ValueError("classes_ must be a non-empty 1-D array of labels")
    if classes.dtype.kind == "O" and not all(isinstance(c, (str, int, float)) for c in classes):
        raise ValueError("classes_ holds something other than labels")
    if classes.dtype.kind == "f" and not np.all(np.isfinite(classes)):
        raise ValueError("classes_ holds non-finite labels")
    if len(np.unique(classes)) != len(classes) or not np.array_equal(np.unique(classes), classes):
        raise ValueError("classes_ must be sorted and unique")


def _check_fitted_values(cls, estimator, attrs, fitted):
    """ValueError unless ``attrs`` are exactly the fitted attributes of a fitted ``cls``, each valid.

    Every attribute a file may set is checked here, before anything is
    built from it; an attribute an estimator declares without a check
    below is refused, so a new one cannot load unchecked.
    """
    declared = set(cls._fitted_attributes) - {"net_"}
    unchecked = sorted(set(attrs) - declared)
    if unchecked:
        raise ValueError(f"attributes {unchecked[:8]} are not fitted attributes of {cls.__name__}")
    if not fitted:
        if attrs:
            raise ValueError("an unfitted estimator with fitted attributes")
        return
    # log_partition_bracket_: set after fit, on request; _base_kind_: absent from files saved before the flow base
    optional = {"feature_names_in_", "classes_", "log_partition_bracket_", "_base_kind_"}
    missing = sorted(declared - optional - set(attrs))
    if missing:
        raise ValueError(f"fitted attributes {missing} are missing")
    checks = {**_BASE_CHECKS, **_CLASS_CHECKS.get(cls.__name__, {})}
    no_check = sorted(set(attrs) - set(checks))
    if no_check:
        raise ValueError(f"attributes {no_check} have no check in skebm.load")  # a declared one skebm forgot
    n = attrs["n_features_in_"]
    if not _is_int(n, 1):
        raise ValueError("n_features_in_ must be a positive integer")
    for name, value in attrs.items():
        checks[name](value, attrs, estimator)


def _check_feature_names(value, attrs, estimator):
    if not (isinstance(value, np.ndarray) and value.dtype == object and value.shape == (attrs["n_features_in_"],)
            and all(isinstance(v, str) for v in value)):
        raise ValueError("feature_names_in_ must be an object array of n_features_in_ strings")


def _check_image_shape(value, attrs, estimator):
    if value is None:
        if estimator.image_shape is not None:
            raise ValueError("image_shape_ is None, but the image_shape parameter is set")
        return
    if not (isinstance(value, tuple) and len(value) == 3 and all(_is_int(s, 1) for s in value)
            and math.prod(value) == attrs["n_features_in_"]):
        raise ValueError("image_shape_ must be None or (C, H, W) with C * H * W = n_features_in_")
    if estimator.image_shape is not None and tuple(estimator.image_shape) != value:
        raise ValueError("image_shape_ differs from the image_shape parameter")


def _check_layout(value, attrs, estimator):
    kinds = {"2d", "frame", "4d"}
    if not (isinstance(value, tuple) and len(value) == 2 and value[0] in kinds and value[1] in _DTYPES.values()):
        raise ValueError(f"_layout_ must be (one of {sorted(kinds)}, a dtype fit accepts)")
    if value[0] == "4d" and attrs.get("image_shape_") is None:
        raise ValueError("_layout_ says images, but image_shape_ is None")
    if value[0] == "frame" and "feature_names_in_" not in attrs:
        raise ValueError("_layout_ says DataFrame, but there are no feature_names_in_")


def _check_fit_params(value, attrs, estimator):
    from ._base import _is_plain

    if not (isinstance(value, dict) and set(value) <= set(estimator.get_params(deep=False)) and _is_plain(value)):
        raise ValueError("_fit_params_ must map parameter names to plain values")


def _check_n_outputs(value, attrs, estimator):
    if not _is_int(value, 1):
        raise ValueError("_n_outputs_ must be a positive integer")
    classes = attrs.get("classes_")
    if value > 1 and classes is None:
        raise ValueError("_n_outputs_ > 1 without classes_")
    if classes is not None and value not in (len(classes), max(2, len(classes))):
        raise ValueError("_n_outputs_ does not match classes_")


def _expect(test, message):
    def check(value, attrs, estimator):
        if not test(value):
            raise ValueError(message)

    return check


_BASE_CHECKS = {
    "n_features_in_": _expect(lambda v: _is_int(v, 1), "n_features_in_ must be a positive integer"),
    "feature_names_in_": _check_feature_names,
    "image_shape_": _check_image_shape,
    "rescaler_": lambda value, attrs, estimator: _check_rescaler(value, attrs["n_features_in_"]),
    "n_iter_": _expect(lambda v: _is_int(v, 0), "n_iter_ must be a non-negative integer"),
    "interrupted_": _expect(lambda v: isinstance(v, bool), "interrupted_ must be a bool"),
    "_layout_": _check_layout,
    "_fit_params_": _check_fit_params,
    "_n_outputs_": _check_n_outputs,
    "classes_": lambda value, attrs, estimator: _check_classes(value),
}


def _check_density_method(value, attrs, estimator):
    from ._density_methods import DensityMethod

    method = estimator.method
    if isinstance(method, str):
        ok = isinstance(value, DensityMethod) and method in ("auto", value.name)
    else:
        ok = type(value) is type(method) and _same_params(value.get_params(deep=False), method.get_params(deep=False))
    if not ok:
        raise ValueError(f"method_ {str(value)[:40]!r} is not a method of the method parameter")


def _same_params(a, b):
    from ._base import _same

    return set(a) == set(b) and all(_same(a[k], b[k]) for k in a)


def _check_folds(value, attrs, estimator):
    from ._density_methods import DensityMethod

    method = attrs.get("method_")
    if value is None and isinstance(method, DensityMethod) and type(method).folds is DensityMethod.folds:
        return  # a method without held-out folds (LongrunML)
    if not (isinstance(value, np.ndarray) and value.dtype == np.int64 and value.ndim == 1):
        raise ValueError("_folds_ must be a 1-D int64 array")
    n_members = getattr(attrs.get("method_"), "n_members", 1)
    if len(value) and not (value.min() >= -1 and value.max() < max(n_members, 1)):
        raise ValueError("_folds_ holds fold numbers out of range")


def _is_number(value):
    return isinstance(value, Real) and not isinstance(value, bool)


_CLASS_CHECKS = {
    "EBMDensity": {
        "method_": _check_density_method,
        "log_partition_": _expect(lambda v: _is_number(v) and math.isfinite(v), "log_partition_ must be finite"),
        "log_partition_se_": _expect(
            lambda v: _is_number(v) and (math.isnan(v) or 0 <= v < math.inf), "log_partition_se_ must be >= 0"
        ),
        "log_partition_method_": _expect(
            lambda v: v in ("grid", "importance", "ais"), "log_partition_method_ must be 'grid', 'importance' or 'ais'"
        ),
        "diagnostics_": _expect(
            lambda v: isinstance(v, dict) and all(
                isinstance(k, str) and isinstance(s, list) and all(_is_number(x) for x in s) for k, s in v.items()
            ),
            "diagnostics_ must map names to lists of numbers",
        ),
        "_folds_": _check_folds,
        "log_partition_bracket_": _expect(
            lambda v: isinstance(v, tuple) and len(v) == 2 and all(_is_number(b) and math.isfinite(b) for b in v),
            "log_partition_bracket_ must be a (lower, upper) tuple of finite numbers",
        ),
        "_base_kind_": _expect(lambda v: v in ("gmm", "flow", None), "_base_kind_ must be 'gmm', 'flow' or None"),
    },
}


# ------------------------------------------------------------ engine state
def _check_sampler_settings(settings, estimator):
    """The saved Langevin settings: exactly the sampler's own (no proposal, no other attribute), each valid.

    All but ``step_size`` (which training adapts) must be those the
    parameters of the last fit (``_fit_params_``) give the sampler:
    parameters changed since then do not reach the trained sampler.
    """
    from .mcmc._langevin import _check_settings

    last_fit = copy.copy(estimator)
    last_fit.__dict__.update(estimator._fit_params_)
    sampler = last_fit._sampler()
    if sampler is None:  # an engine that trains without chains (a density's quadrature or importance method)
        if settings != {}:
            raise ValueError("this model's engine has no sampler, but the file has sampler settings")
        return {}
    built = {k: v for k, v in sampler.settings().items() if k != "proposal"}
    if not isinstance(settings, dict) or set(settings) != set(built):
        keys = sorted(map(str, settings))[:10] if isinstance(settings, dict) else type(settings).__name__
        raise ValueError(f"the sampler settings are {keys}, not {sorted(built)}")
    s = settings
    _check_settings(s["n_steps"], s["step_size"], s["noise_scale"], s["temperature"], s["metropolis"], s["clamp"],
                    s["tau"], s["grad_clip"])
    if s["precision"] not in ("fp32", "bf16") or not isinstance(s["metropolis"], bool):
        raise ValueError("the sampler's precision must be 'fp32' or 'bf16' and metropolis a bool")
    clamp = s["clamp"]
    if clamp is not None and not (
        isinstance(clamp, (tuple, list)) and len(clamp) == 2 and all(_is_number(c) and math.isfinite(c) for c in clamp)
        and clamp[0] < clamp[1]
    ):
        raise ValueError("the sampler's clamp must be None or (low, high) with low < high")
    if isinstance(clamp, list):
        s["clamp"] = tuple(clamp)
    differ = sorted(k for k in built if k != "step_size" and s[k] != built[k])
    if differ:
        raise ValueError(f"the sampler settings {differ} differ from those of the parameters")
    return s


def _check_history(history, n_iter):
    """The saved skorch history, checked as a checkpoint's is; its updates must be ``n_iter_``."""
    from .engine._history import check_history, n_updates

    check_history(history, "the training history")
    if n_updates(history) != n_iter:
        raise ValueError(f"the history records {n_updates(history)} updates, n_iter_ is {n_iter}")
    return history


def _shapes(state, sized_by_file=()):
    """``{key: (shape, dtype)}`` of the tensors of a state dict; under a ``sized_by_file`` prefix, ndim for shape."""
    return {
        k: (v.ndim if k.startswith(sized_by_file) else tuple(v.shape), v.dtype)
        for k, v in state.items()
        if isinstance(v, torch.Tensor)
    }


def _sized_by_file(module):
    """Prefixes of the submodules that take their tensors' shapes from a loaded state (a Gaussian mixture's
    number of components): their memory is that of the file's tensors."""
    own = torch.nn.Module._load_from_state_dict
    return tuple(
        f"{name}." if name else "" for name, m in module.named_modules() if type(m)._load_from_state_dict is not own
    )


def _planned_states(estimator):
    """State dicts (on torch's meta device: no memory) of the sized modules the engine of ``estimator`` builds.

    The network (also the shape of ``best_module``), the chain bank and any
    module among the engine's arguments (the quadrature grid): what the
    parameters size. Comparing them with the file's tensors first bounds
    the memory of a load by the file.
    """
    with torch.device("meta"):
        energy = estimator._make_energy(estimator._n_outputs_, None, None)
        _, extra = estimator._engine_params(None)
        source = estimator._source()  # as the engine does: a name is an attribute of the network (its base density)
        source = getattr(energy, source) if isinstance(source, str) else source
        chain_init = estimator._build_chain_init()  # None: an engine that trains without chains
        if chain_init is not None:
            chain_init = chain_init.setup(source, estimator._feature_shape, "meta")
        average = None if extra.get("average") is None else AveragedModel(energy)
    modules = {"module": energy, "best_module": energy}
    if chain_init is not None:
        modules["chain_init"] = chain_init
    if average is not None:
        modules["average"] = average
    modules.update({name: v for name, v in extra.items() if isinstance(v, torch.nn.Module)})
    return {name: (m.state_dict(), _sized_by_file(m)) for name, m in modules.items()}


def _check_sizes(estimator, modules):
    """ValueError unless the file's module tensors have the keys, shapes and dtypes the parameters imply."""
    for name, (planned, sized_by_file) in _planned_states(estimator).items():
        if name not in modules:
            continue  # the engine may not have it (best_module); the module names are checked after the build
        if not isinstance(modules[name], dict):
            raise ValueError(f"the state of the engine's {name!r} is not a dict")
        saved, expected = _shapes(modules[name], sized_by_file), _shapes(planned, sized_by_file)
        if saved != expected:
            wrong = sorted(k for k in set(saved) | set(expected) if saved.get(k) != expected.get(k))[:4]
            detail = ", ".join(f"{k}: file {saved.get(k, 'none')} vs parameters {expected.get(k, 'none')}"
                               for k in wrong)
            raise ValueError(f"the engine's {name!r} does not match the parameters ({detail})")


#: Parameters the plan of the engine loops over (members, layers, grid cells) before any shape can be compared.
_COUNT_PARAMS = ("energy_params", "method")


def _check_counts(params, tensors):
    """ValueError if an integer (or a list's length) in a :data:`_COUNT_PARAMS` parameter exceeds the file's.

    A count of modules is at most the file's number of tensors, a size at
    most its largest tensor dimension: bounding both by the larger keeps
    the plan's own work (Python objects, 1-D grid edges) within the file's.
    """
    bound = max([len(tensors), *(max(t.shape, default=1) for t in tensors.values())])

    def ints(value):
        if isinstance(value, bool):
            return
        if isinstance(value, Integral):
            yield value
        elif isinstance(value, (list, tuple)):  # its length too: a list of layer widths is a count of layers
            yield len(value)
            for v in value:
                yield from ints(v)
        elif isinstance(value, dict):
            for v in value.values():
                yield from ints(v)
        elif isinstance(value, DensityMethod):  # EBMDensity's method: its members, grid cells, samples
            yield from ints(value.get_params(deep=False))

    from ._density_methods import DensityMethod

    for name in _COUNT_PARAMS:
        big = [v for v in ints(params.get(name)) if v > bound]
        if big:
            raise ValueError(f"the parameter {name} holds {big[0]}, more than a file of these tensors could fit")


def _check_optimizer_state(optimizer):
    """Every per-parameter optimiser tensor has its parameter's shape (``load_state_dict`` checks counts only)."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            for key, value in optimizer.state.get(param, {}).items():
                if isinstance(value, torch.Tensor) and value.ndim and value.shape != param.shape:
                    raise ValueError(f"the optimiser's {key!r} has shape {tuple(value.shape)}, its parameter "
                                     f"{tuple(param.shape)}")


#: Parameters added after the file format, with the value that reproduces what a file without them was fitted with.
_LATER_PARAMS = {"ema_decay": None}


def _build(state, tensors, device, where):
    import skebm
    from skebm._base import resolve_device
    from skorch.history import History

    classes = _estimator_classes()
    cls = classes.get(state["class"]) if isinstance(state["class"], str) else None
    if cls is None:
        raise ValueError(f"unknown estimator class {str(state['class'])[:80]!r}")
    reader = _Reader(tensors)
    params = reader.params(state["params"])
    known = set(cls._get_param_names())
    for name, before in _LATER_PARAMS.items():  # a file of an earlier skebm ran without them
        if name in known and name not in params:
            params[name] = before
    unknown = sorted(map(str, set(params) - known))
    if unknown:
        raise ValueError(
            f"it was saved by skebm {str(state['skebm_version'])[:40]} with parameters this version "
            f"({skebm.__version__}) does not know: {unknown[:10]}"
        )
    if state["engine"] is not None:
        _check_counts(params, tensors)
    if device is not None:
        params["device"] = device
    else:
        try:
            resolve_device(params.get("device", "cpu"))
        except ValueError:
            warnings.warn(
                f"the model was saved with device={str(params['device'])[:40]!r}, which is not available here; "
                "loading on CPU.",
                UserWarning,
                stacklevel=4,
            )
            params["device"] = "cpu"
    estimator = cls(**params)
    estimator._validate_params()
    estimator._check_params()
    engine = state["engine"]
    if engine is not None and not (isinstance(engine, dict) and set(engine) == _ENGINE_KEYS):
        raise ValueError("malformed engine state")
    attrs = reader.attrs(state["attrs"])
    _check_fitted_values(cls, estimator, attrs, fitted=engine is not None)
    if engine is None:
        return estimator
    estimator.__dict__.update(attrs)
    settings = _check_sampler_settings(reader.decode(engine["sampler"]), estimator)
    history = _check_history(reader.decode(engine["history"]), attrs["n_iter_"])
    modules = reader.decode(engine["modules"])
    optimizer = reader.decode(engine["optimizer"])
    if not isinstance(modules, dict) or not isinstance(optimizer, dict):
        raise ValueError("malformed engine state")
    _check_finite(modules, "engine")
    _check_finite(optimizer, "optimizer")
    _check_sizes(estimator, modules)  # before the engine allocates anything the parameters size
    net = estimator._build_engine(estimator._n_outputs_, 0, None)
    net.initialize()
    if set(modules) != set(net._modules):
        raise ValueError(f"engine modules {sorted(map(str, modules))[:8]} do not match {sorted(net._modules)}")
    for name, module_state in modules.items():
        getattr(net, name + "_").load_state_dict(module_state)
    net.optimizer_.load_state_dict(optimizer)
    _check_optimizer_state(net.optimizer_)
    net.history = History(history)
    for key, value in settings.items():
        setattr(net.sampler_, key, value)
    estimator.net_ = net
    return estimator
