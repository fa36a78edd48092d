"""Bad and hostile inputs over the five estimators: how each call ends.

Every case builds a fresh, small estimator (or fits one first), makes one
bad call and sorts the outcome:

* ``error``: a documented error (``ValueError``, including scikit-learn's
  ``InvalidParameterError``; ``TypeError``; ``NotFittedError``;
  :class:`skebm.engine.TrainingDivergedError`) and the estimator is as
  before the call: unfitted if it was, the previous model bit for bit if it
  was fitted;
* ``works``: the call succeeds and its output is finite;
* ``BAD``: anything else (NaN or infinite output, a fitted-looking model
  after a failed fit, a changed previous model, an undocumented exception
  such as ``AttributeError`` or ``KeyError``).

``-`` marks a case that does not apply to an estimator (a parameter it does
not have). The last table counts the outcomes. Run
``python benchmarks/bad_inputs.py [--out FILE]``; the last run is in ``benchmarks/reports/bad_inputs.md`` (a few minutes on two CPU
cores; tiny fits of a few updates). ``--section loaders`` runs only the hostile-file probes of the data-set
loaders (seconds; their own rules are in the comment that opens their section).

``--section params`` (or ``--params-outcomes``) runs only the probes of
parameters and training outcomes (issue 19, sections 4-5: bounds, devices,
energy modules, divergence, Ctrl-C, concurrent refits, ``compose``), each in
a child process with a 4 GB memory limit; the last run is in
``benchmarks/reports/bad_inputs_params_outcomes.md``.
"""

import argparse
import io
import os
import pickle
import tempfile
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import Callback

import skebm
from skebm import EBMDensity, EBMGenerator, EBMPurifier, NGEBMClassifier, PurifiedClassifier
from skebm.density import ImportanceML, QuadratureML
from skebm.engine import TrainingDivergedError
from skebm.utils._fingerprint import state_fingerprint

SMALL = {"hidden_units": (16,)}
DOCUMENTED = (ValueError, TypeError, NotFittedError, TrainingDivergedError)


def estimators():
    """name -> (factory of a fresh small estimator, the call that uses a fitted one)."""
    return {
        "EBMGenerator": (
            lambda: EBMGenerator(max_iter=4, batch_size=16, n_steps=2, buffer_size=64, energy_params=SMALL, random_state=0),
            lambda est, X: est.sample(3, random_state=0),
        ),
        "EBMPurifier": (
            lambda: EBMPurifier(max_iter=4, batch_size=16, n_steps=2, n_purify_steps=3, energy_params=SMALL,
                                random_state=0),
            lambda est, X: est.transform(X[:3]),
        ),
        "EBMDensity": (
            lambda: EBMDensity(method=ImportanceML(n_importance_samples=256), max_iter=4, batch_size=32,
                               energy_params=SMALL, random_state=0),
            lambda est, X: est.score_samples(X[:3]),
        ),
        "NGEBMClassifier": (
            lambda: NGEBMClassifier(max_iter=6, batch_size=32, energy_params=SMALL, random_state=0),
            lambda est, X: est.predict_proba(X[:3]),
        ),
        "PurifiedClassifier": (
            lambda: PurifiedClassifier(
                EBMPurifier(max_iter=3, batch_size=16, n_steps=2, n_purify_steps=2, energy_params=SMALL, random_state=0),
                LogisticRegression(max_iter=300), n_replicates=2,
            ),
            lambda est, X: est.predict_proba(X[:3]),
        ),
    }


def data():
    X, y = load_digits(return_X_y=True)
    return (X[:240] / 16.0), y[:240]


def _fitted(est):
    try:
        check_is_fitted(est)
        return True
    except NotFittedError:
        return False


def _finite(out):
    arr = np.asarray(out.detach() if torch.is_tensor(out) else out, dtype=float)
    return bool(np.all(np.isfinite(arr)))


def _y_for(name, y):
    return y if name in ("NGEBMClassifier", "PurifiedClassifier") else None


def _fit(est, X, y):
    return est.fit(X, y) if y is not None else est.fit(X)


class _Interrupt(Callback):
    def on_batch_end(self, net, **kwargs):
        if len(net.history) and len(net.history[-1]["batches"]) >= 2:
            raise KeyboardInterrupt


# --------------------------------------------------------------- the cases
def cases():
    """(case, kind, how): kind 'fit-X', 'param', 'after-fit', 'use-X', 'scenario'."""
    X, y = data()
    rng = np.random.RandomState(0)
    nan = X.copy()
    nan[1, 5] = np.nan  # within the first three rows, which the use calls take
    inf = X.copy()
    inf[2, 1] = np.inf
    out = [
        ("X with a NaN", "fit-X", lambda: nan),
        ("X with an inf", "fit-X", lambda: inf),
        ("X sparse (CSR)", "fit-X", lambda: sp.csr_matrix(X)),
        ("X empty (0 rows)", "fit-X", lambda: X[:0]),
        ("X one row", "fit-X", lambda: X[:1]),
        ("X 1-D", "fit-X", lambda: X[0]),
        ("X 3-D (n, 8, 8), no image_shape", "fit-X", lambda: X.reshape(-1, 8, 8)),
        ("X complex", "fit-X", lambda: X + 1j),
        ("X strings", "fit-X", lambda: X.astype(str)),
        ("X values near 1e300", "fit-X", lambda: X * 1e300),
        ("X constant column(s)", "fit-X", lambda: np.hstack([X, np.ones((len(X), 1))])),
        ("X pandas DataFrame", "fit-X", lambda: pd.DataFrame(X, columns=[f"p{i}" for i in range(64)])),
        ("X uint8 (0-255)", "fit-X", lambda: (X * 255 / X.max()).astype(np.uint8)),
        ("X float16", "fit-X", lambda: X.astype(np.float16)),
        ("X with +-1e6 outliers", "fit-X", lambda: X + 1e6 * (rng.uniform(size=X.shape) > 0.999)),
    ]
    bad_params = [
        ("lr", np.inf), ("lr", np.nan), ("lr", -1.0), ("lr", 0.0), ("max_iter", True), ("max_iter", -5),
        ("max_iter", 2.5), ("batch_size", 0), ("random_state", "seed"), ("on_divergence", "ignore"),
        ("n_threads", 0), ("step_size", np.inf), ("step_size", 0.0), ("n_steps", 0), ("n_steps", 2.5),
        ("buffer_size", 0), ("reinit_prob", 2.0), ("temperature", 0.0), ("temperature", np.inf),
        ("noise_scale", -1.0), ("n_purify_steps", -1), ("purify_step_size", np.inf), ("purify_noise", np.nan),
        ("n_replicates", 0), ("precision", "fp8"), ("device", "tpu"), ("energy", "transformer"),
        ("energy_params", {"hidden_units": (-3,)}), ("image_shape", (1, 9, 9)), ("optimizer", "rmsprop"),
        ("energy_variance", -1.0), ("approximate_mass", np.nan), ("data_noise", -0.1),
        # EBMDensity's method parameters (nested, as GridSearchCV sets them)
        ("method__data_noise", -0.1), ("method__tilt_bound", -1.0), ("method__validation_fraction", 1.5),
        ("method__n_importance_samples", 0), ("method__step_size", np.inf),
    ]
    out += [(f"{name}={value!r}", "param", (name, value)) for name, value in bad_params]
    after = [("n_purify_steps", 0), ("purify_noise", np.nan), ("temperature", 0.0), ("n_replicates", 0),
             ("n_steps", 0), ("temperature", np.inf)]
    out += [(f"set_params({name}={value!r}) after fit", "after-fit", (name, value)) for name, value in after]
    out += [
        ("use: wrong number of features", "use-X", lambda: X[:3, :10]),
        ("use: NaN", "use-X", lambda: nan[:6]),
        ("use: 4-D images for a flat model", "use-X", lambda: X[:3].reshape(3, 1, 8, 8)),
        ("use: empty", "use-X", lambda: X[:0]),
        ("use before fit", "scenario", "unfitted"),
        ("forced divergence (sgd lr=1e3), recover", "scenario", "diverge-recover"),
        ("forced divergence (sgd lr=1e3), raise", "scenario", "diverge-raise"),
        ("failed refit (NaN X) keeps the model", "scenario", "refit-nan"),
        ("failed warm refit (X * 1e30) keeps the model", "scenario", "warm-1e30"),
        ("failed refit (bad parameter) keeps the model", "scenario", "refit-param"),
        ("classifier refit with 3 classes after 10", "scenario", "refit-classes"),
        ("Ctrl-C during fit", "scenario", "interrupt"),
        ("conditional generator, continuous y", "scenario", "continuous-y"),
        ("sample(n_steps=2.5)", "scenario", "sample-steps"),
        ("load: random bytes", "scenario", "load-random"),
        ("load: truncated file", "scenario", "load-truncated"),
        ("load: pickle payload", "scenario", "load-pickle"),
        ("pickle round trip", "scenario", "pickle"),
    ]
    return out


def _error(exc, est, before):
    """Verdict for a raised exception: documented type and the estimator as before."""
    if not isinstance(exc, DOCUMENTED):
        return f"BAD ({type(exc).__name__})"
    if before is None and _fitted(est):
        return f"BAD ({type(exc).__name__}, looks fitted)"
    if before is not None and state_fingerprint(est) != before:
        return f"BAD ({type(exc).__name__}, previous model changed)"
    return f"error ({type(exc).__name__})"


def _use_verdict(use, est, X):
    out = use(est, X)
    return "works" if _finite(out) else "BAD (non-finite output)"


def run_case(name, kind, how, make, use, X, y):
    est = make()
    y_fit = _y_for(name, y)
    if kind == "param":
        pname, value = how
        if pname not in est.get_params():
            return "-"
        est.set_params(**{pname: value})
        try:
            _fit(est, X, y_fit)
        except Exception as exc:  # noqa: BLE001
            return _error(exc, est, None)
        return "BAD (accepted)" if not _fitted(est) else _use_verdict(use, est, X)
    if kind == "fit-X":
        Xb = how()
        try:
            _fit(est, Xb, None if y_fit is None else y_fit[: len(Xb)] if np.ndim(Xb) > 1 else y_fit[:1])
        except Exception as exc:  # noqa: BLE001
            return _error(exc, est, None)
        Xu = np.asarray(Xb, dtype=float).reshape(len(Xb), -1) if not sp.issparse(Xb) else Xb.toarray()
        try:
            return _use_verdict(use, est, Xu if len(Xu) >= 3 else np.repeat(Xu, 3, axis=0))
        except Exception as exc:  # noqa: BLE001
            return _error(exc, est, state_fingerprint(est))
    if kind == "after-fit":
        pname, value = how
        if pname not in est.get_params():
            return "-"
        _fit(est, X, y_fit)
        est.set_params(**{pname: value})
        before = state_fingerprint(est)
        try:
            return _use_verdict(use, est, X)
        except Exception as exc:  # noqa: BLE001
            return _error(exc, est, before)
    if kind == "use-X":
        _fit(est, X, y_fit)
        before = state_fingerprint(est)
        try:
            return _use_verdict(use, est, how())
        except Exception as exc:  # noqa: BLE001
            return _error(exc, est, before)
    return run_scenario(name, how, est, make, use, X, y_fit)


def run_scenario(name, how, est, make, use, X, y):
    if how == "unfitted":
        try:
            use(est, X)
        except Exception as exc:  # noqa: BLE001
            return _error(exc, est, None)
        return "BAD (no error)"
    if how.startswith("diverge"):
        target = est.purifier if isinstance(est, PurifiedClassifier) else est
        target.set_params(lr=1e3, optimizer="sgd", max_iter=30, on_divergence=how.split("-")[1])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _fit(est, X, y)
        except Exception as exc:  # noqa: BLE001
            return _error(exc, est, None)
        return _use_verdict(use, est, X)
    if how in ("refit-nan", "refit-param", "warm-1e30", "refit-classes"):
        if how == "warm-1e30":
            if "warm_start" not in est.get_params():
                return "-"
            est.set_params(warm_start=True)
        if how == "refit-classes" and y is None:
            return "-"
        _fit(est, X, y)
        before, reference = state_fingerprint(est), use(est, X)
        Xb, yb = X, y
        if how == "refit-nan":
            Xb = X.copy()
            Xb[0, 0] = np.nan
        elif how == "warm-1e30":
            Xb = X * 1e30
        elif how == "refit-param":
            est.set_params(**({"n_replicates": 0} if isinstance(est, PurifiedClassifier) else {"max_iter": -1}))
            before = state_fingerprint(est)
        else:
            keep = y < 3
            Xb, yb = X[keep], y[keep]
        try:
            _fit(est, Xb, yb)
        except Exception as exc:  # noqa: BLE001
            verdict = _error(exc, est, before)
            if how == "refit-param":  # the invalid parameter stays set: the call that uses it raises too
                return verdict
            if verdict.startswith("error") and not np.array_equal(np.asarray(use(est, X)), np.asarray(reference)):
                return "BAD (outputs changed)"
            return verdict
        if how == "refit-classes":
            ok = _use_verdict(use, est, X)
            shape_ok = np.asarray(use(est, X)).shape[1] == 3
            return ok if shape_ok else "BAD (old classes kept)"
        return _use_verdict(use, est, X)
    if how == "interrupt":
        target = est.purifier if isinstance(est, PurifiedClassifier) else est
        target.set_params(callbacks=[_Interrupt()], max_iter=20)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                _fit(est, X, y)
            except Exception as exc:  # noqa: BLE001
                return _error(exc, est, None)
        fitted = est.purifier_ if isinstance(est, PurifiedClassifier) else est
        warned = any("interrupted" in str(w.message) for w in caught)
        if not (getattr(fitted, "interrupted_", False) and warned):
            return "BAD (quiet)"
        return "works (warned, interrupted_)"
    if how == "continuous-y":
        if not isinstance(est, EBMGenerator):
            return "-"
        est.set_params(conditional=True)
        try:
            est.fit(X, np.linspace(0, 1, len(X)))
        except Exception as exc:  # noqa: BLE001
            return _error(exc, est, None)
        return "BAD (accepted)"
    if how == "sample-steps":
        if not hasattr(est, "sample"):
            return "-"
        _fit(est, X, y)
        before = state_fingerprint(est)
        try:
            est.sample(2, n_steps=2.5)
        except Exception as exc:  # noqa: BLE001
            return _error(exc, est, before)
        return "BAD (accepted)"
    if how.startswith("load"):
        if isinstance(est, PurifiedClassifier):
            return "-"
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.safetensors")
            if how == "load-random":
                with open(path, "wb") as f:
                    f.write(np.random.RandomState(0).bytes(4096))
            else:
                _fit(est, X, y)
                skebm.save(est, path)
                if how == "load-truncated":
                    raw = open(path, "rb").read()
                    with open(path, "wb") as f:
                        f.write(raw[: len(raw) // 2])
                else:
                    buf = io.BytesIO()
                    pickle.dump(os.system, buf)  # a code-running payload in place of the model
                    with open(path, "wb") as f:
                        f.write(buf.getvalue())
            try:
                skebm.load(path)
            except Exception as exc:  # noqa: BLE001
                return f"error ({type(exc).__name__})" if isinstance(exc, ValueError) else f"BAD ({type(exc).__name__})"
            return "BAD (loaded)"
    if how == "pickle":
        _fit(est, X, y)
        copy = pickle.loads(pickle.dumps(est))
        same = np.allclose(np.asarray(use(copy, X)), np.asarray(use(est, X)))
        return "works" if same else "BAD (outputs differ)"
    raise ValueError(how)


# =============================================================== loader probes
# Hostile files for the data-set loaders (issue 19, section 1). Each probe writes
# tiny files into a fresh folder and makes one loader call in a forked process
# (killed if it hangs), whose own peak resident memory is measured (the peak-RSS
# mark is reset first, on Linux; elsewhere tracemalloc's peak). Outcome: ``error (Type)`` for a documented error
# (ValueError, FileNotFoundError) naming the file or parameter; ``works (...)``
# when the call returns what it should; ``BAD (...)`` for anything else: an
# undocumented exception, an error that does not name the file, a wrong
# result, more than LOADER_SECONDS seconds or LOADER_MEGABYTES MB of peak memory, or
# no return within LOADER_TIMEOUT seconds (a hang). Register a probe with
# ``@loader_probe(name)``: the function gets the folder and returns
# ``(call, check)``, where ``check(result, warnings)`` returns None when the
# result is right, else what is wrong.
import gzip  # noqa: E402
import struct  # noqa: E402

import skebm.datasets  # noqa: E402

LOADER_PROBES = []
LOADER_SECONDS, LOADER_MEGABYTES, LOADER_TIMEOUT = 5.0, 200, 60.0
LOADER_ERRORS = (ValueError, FileNotFoundError)


def loader_probe(name):
    def register(build):
        LOADER_PROBES.append((name, build))
        return build

    return register


def _cifar10_folder(folder, test_batch=None, meta=None):
    """A CIFAR-10 folder whose test batch and meta file are these bytes (genuine ones by default)."""
    data = np.zeros((2, 3072), np.uint8)
    if test_batch is None:
        test_batch = pickle.dumps({b"data": data, b"labels": [0, 1], b"batch_label": b"t",
                                   b"filenames": [b"a.png", b"b.png"]}, protocol=2)
    if meta is None:
        meta = pickle.dumps({b"label_names": [f"c{i}".encode() for i in range(10)], b"num_vis": 3072}, protocol=2)
    with open(os.path.join(folder, "test_batch"), "wb") as f:
        f.write(test_batch)
    with open(os.path.join(folder, "batches.meta"), "wb") as f:
        f.write(meta)
    return lambda: skebm.datasets.load_cifar10(folder, split="test")


def _n_images(n):
    def check(result, caught):
        got = len(result[0]) if isinstance(result, tuple) else len(result.data)
        return None if got == n else f"{got} images instead of {n}"

    return check


class _ReduceAs:
    def __init__(self, *value):
        self.value = value

    def __reduce__(self):
        return self.value


def _batch_with(**entries):
    batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}
    batch.update({k.encode(): v for k, v in entries.items()})
    return pickle.dumps(batch, protocol=4)


_RECONSTRUCT = np.empty(0).__reduce__()[0]
for _name, _payload in [
    ("CIFAR: 10 KB billion laughs (shared nested lists)", None),
    ("CIFAR: list nested in a list", _batch_with(labels=[[0], [1]])),
    ("CIFAR: dict nested in the dict", _batch_with(labels={b"labels": 1})),
    ("CIFAR: set in a list", _batch_with(filenames=[{1}])),
    ("CIFAR: unknown entry", _batch_with(extra=1)),
    ("CIFAR: numpy.ndarray((1e6, 1e6)) called directly",
     pickle.dumps({b"data": _ReduceAs(np.ndarray, ((10**6, 10**6), "u1")), b"labels": [0]}, protocol=2)),
    ("CIFAR: _reconstruct with shape (1e6, 1e6)",
     pickle.dumps({b"data": _ReduceAs(_RECONSTRUCT, (np.ndarray, (10**6, 10**6), b"b")), b"labels": [0]})),
    ("CIFAR: array state announcing 3 GB, holding 8 bytes",
     pickle.dumps({b"data": _ReduceAs(_RECONSTRUCT, (np.ndarray, (0,), b"b"),
                                      (1, (10**6, 3072), np.dtype("u1"), False, b"\0" * 8)), b"labels": [0]})),
    ("CIFAR: object-dtype array", _batch_with(labels=np.array([0, "x"], dtype=object))),
    ("CIFAR: structured-dtype array", _batch_with(labels=np.zeros(2, [("a", "u1"), ("b", "f4")]))),
    ("CIFAR: BINBYTES8 announcing 2**40 bytes", b"\x80\x04}(\x8c\x04data\x8e" + (2**40).to_bytes(8, "little")),
    ("CIFAR: 100,000 nested MARKs", b"\x80\x02" + b"(" * 100_000),
    ("CIFAR: 100,000 empty lists", b"\x80\x02" + b"]" * 100_000),
    ("CIFAR: DUP opcode", b"\x80\x02N2."),
    ("CIFAR: 1.5 million NONE opcodes", b"\x80\x02]" + b"N" * 1_500_000),
    ("CIFAR: os.system payload", pickle.dumps({b"data": _ReduceAs(os.system, ("true",)), b"labels": [0]})),
    ("CIFAR: empty file", b""),
    ("CIFAR: 4 KB of random bytes", np.random.RandomState(0).bytes(4096)),
    ("CIFAR: float labels", _batch_with(labels=[0.0, 1.0])),
    ("CIFAR: label 2**100", _batch_with(labels=[0, 2**100])),
    ("CIFAR: label out of range", _batch_with(labels=[0, 10])),
    ("CIFAR: float32 data", _batch_with(data=np.zeros((2, 3072), np.float32))),
]:
    def _build(folder, payload=_payload):
        if payload is None:  # 12 levels of 400 references to the level below: 2e31 elements
            laughs = [0]
            for _ in range(12):
                laughs = [laughs] * 400
            payload = _batch_with(labels=laughs)
        return _cifar10_folder(folder, payload), None

    loader_probe(_name)(_build)


@loader_probe("CIFAR: hash-bomb dict key (tuples nested 60 deep, shared)")
def _probe_hash_bomb(folder):
    body = b"K\x00\x85q\x00" + b"".join(b"h" + bytes([i - 1]) + b"h" + bytes([i - 1]) + b"\x86q" + bytes([i])
                                        for i in range(1, 61))
    return _cifar10_folder(folder, b"\x80\x02}" + body + b"K\x01s."), None


@loader_probe("CIFAR: truncated batch (half)")
def _probe_cifar_truncated(folder):
    full = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}, protocol=2)
    return _cifar10_folder(folder, full[: len(full) // 2]), None


@loader_probe("CIFAR: class names are ints")
def _probe_cifar_names(folder):
    return _cifar10_folder(folder, meta=pickle.dumps({b"label_names": list(range(10))})), None


@loader_probe("CIFAR: FIFO named test_batch")
def _probe_cifar_fifo(folder):
    _cifar10_folder(folder)
    os.remove(os.path.join(folder, "test_batch"))
    os.mkfifo(os.path.join(folder, "test_batch"))
    return (lambda: skebm.datasets.load_cifar10(folder, split="test")), None


for _protocol in range(pickle.HIGHEST_PROTOCOL + 1):
    @loader_probe(f"CIFAR: genuine batch, pickle protocol {_protocol}")
    def _probe_cifar_protocol(folder, protocol=_protocol):
        data = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
        call = _cifar10_folder(folder, pickle.dumps({b"data": data, b"labels": np.array([3, 7], ">i4")},
                                                    protocol=protocol))
        return call, lambda r, w: None if np.array_equal(r.data, data) and list(r.target) == [3, 7] else "wrong data"


def _idx_folder(folder, image_header, body=b"", gz=False, labels=1):
    with open(os.path.join(folder, "train-labels-idx1-ubyte"), "wb") as f:
        f.write(struct.pack(">II", 0x0801, labels) + bytes(labels))
    payload, name = image_header + body, "train-images-idx3-ubyte"
    if gz:
        payload, name = gzip.compress(payload, 9), name + ".gz"
    with open(os.path.join(folder, name), "wb") as f:
        f.write(payload)
    return lambda: skebm.datasets.load_mnist(folder)


@loader_probe("IDX: dimensions whose product wraps int64 to 0")
def _probe_idx_wrap(folder):
    return _idx_folder(folder, struct.pack(">IIII", 0x0803, 2**31, 2**31, 4)), None


@loader_probe("IDX: 50 KB gzip announcing 100 GB")
def _probe_idx_gz_huge(folder):
    return _idx_folder(folder, struct.pack(">IIII", 0x0803, 100_000, 1000, 1000), bytes(50 << 20), gz=True), None


@loader_probe("IDX: 50 KB gzip bomb, header consistent (60,000 x 28 x 28), 1 label")
def _probe_idx_gz_bomb(folder):
    return _idx_folder(folder, struct.pack(">IIII", 0x0803, 60_000, 28, 28), bytes(60_000 * 784), gz=True), None


@loader_probe("IDX: plain file announcing 4 GB, holding 0 bytes")
def _probe_idx_plain_huge(folder):
    return _idx_folder(folder, struct.pack(">IIII", 0x0803, 2**12, 2**10, 2**10)), None


@loader_probe("IDX: 16-bit elements (type 0x0B)")
def _probe_idx_dtype(folder):
    return _idx_folder(folder, struct.pack(">IIII", 0x0B03, 1, 2, 2), bytes(8)), None


@loader_probe("IDX: FIFO named train-images-idx3-ubyte")
def _probe_idx_fifo(folder):
    _idx_folder(folder, b"")
    os.remove(os.path.join(folder, "train-images-idx3-ubyte"))
    os.mkfifo(os.path.join(folder, "train-images-idx3-ubyte"))
    return (lambda: skebm.datasets.load_mnist(folder)), None


def _png(path, size=(2, 2), value=0):
    from PIL import Image

    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.full(size, value, np.uint8)).save(path)


def _png_chunks(width, height, *extra):
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + b"".join(chunk(k, b) for k, b in extra) + chunk(b"IDAT", zlib.compress(bytes(64)))
            + chunk(b"IEND", b""))


def _two_classes(folder):
    _png(os.path.join(folder, "a", "1.png"), value=10)
    _png(os.path.join(folder, "b", "1.png"), value=20)
    return lambda: skebm.datasets.load_image_folder(folder)


def _folder_probe(name, setup, n_expected=None):
    @loader_probe("folder: " + name)
    def build(folder):
        call = _two_classes(folder)
        call = setup(folder) or call
        return call, (None if n_expected is None else _n_images(n_expected))


_folder_probe("symlink loop a/loop -> .", lambda d: os.symlink(".", os.path.join(d, "a", "loop")), 2)
_folder_probe("two symlink loops", lambda d: (os.symlink(".", os.path.join(d, "a", "l1")),
                                              os.symlink("..", os.path.join(d, "a", "l2"))) and None, 2)
_folder_probe("link back to root", lambda d: os.symlink("..", os.path.join(d, "b", "up")), 2)
_folder_probe("FIFO named x.png", lambda d: os.mkfifo(os.path.join(d, "a", "x.png")), 2)
_folder_probe("directory named x.png (holding an image)",
              lambda d: _png(os.path.join(d, "a", "x.png", "in.png")), 3)
_folder_probe("broken symlink y.png", lambda d: os.symlink("missing", os.path.join(d, "a", "y.png")), 2)
_folder_probe("hard link and symlink to a/1.png in b",
              lambda d: (os.link(os.path.join(d, "a", "1.png"), os.path.join(d, "b", "h.png")),
                         os.symlink("../a/1.png", os.path.join(d, "b", "s.png"))) and None, 2)
_folder_probe("/dev/zero linked as z.png", lambda d: os.symlink("/dev/zero", os.path.join(d, "a", "z.png")), 2)
_folder_probe("PNG declaring 60000x60000 (150 bytes)",
              lambda d: open(os.path.join(d, "a", "bomb.png"), "wb").write(_png_chunks(60000, 60000)) and None)
_folder_probe("PNG declaring 9000x9000, within Pillow's limit (150 bytes), image_size=2",
              lambda d: open(os.path.join(d, "a", "big.png"), "wb").write(_png_chunks(9000, 9000))
              and (lambda: skebm.datasets.load_image_folder(d, image_size=2)))
_folder_probe("PNG with a zTXt chunk inflating to 100 MB",
              lambda d: open(os.path.join(d, "a", "text.png"), "wb").write(
                  _png_chunks(2, 2, (b"zTXt", b"k\0\0" + __import__("zlib").compress(bytes(100 << 20), 9))))
              and None)
_folder_probe("zero-byte x.png", lambda d: open(os.path.join(d, "a", "x.png"), "wb").close())
_folder_probe("truncated PNG", lambda d: open(os.path.join(d, "a", "t.png"), "wb").write(_png_chunks(2, 2)[:40])
              and None)
_folder_probe("image_size=10**5 (10 GB per image)",
              lambda d: (lambda: skebm.datasets.load_image_folder(d, image_size=10**5)))
_folder_probe("max_pixels=0", lambda d: (lambda: skebm.datasets.load_image_folder(d, max_pixels=0)))
_folder_probe("non-UTF-8 file and folder names",
              lambda d: _png(os.path.join(os.fsencode(d), b"c\xe9", b"\xff.png")), 3)
_folder_probe("empty class folder", lambda d: os.mkdir(os.path.join(d, "c")))


@loader_probe("folder: root with no class folders")
def _probe_folder_empty(folder):
    return (lambda: skebm.datasets.load_image_folder(folder)), None


def _peak_rss_reset():
    """Reset the kernel's peak-RSS mark of this process; False where that is not possible (not Linux)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _probe_in_child(conn, call, check, folder):
    """Run one probe in a forked child: its time, its own peak memory, and how it ended."""
    import time
    import tracemalloc

    exact_rss = _peak_rss_reset()
    if exact_rss:
        base = _peak_rss_mb()
    else:
        tracemalloc.start()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        try:
            result, error = call(), None
        except Exception as exc:  # noqa: BLE001
            result, error = None, exc
        seconds = time.perf_counter() - start
    mb = _peak_rss_mb() - base if exact_rss else tracemalloc.get_traced_memory()[1] / 2**20
    warned = f", {len(caught)} warning" if caught else ""
    if error is not None:
        named = os.path.basename(folder) in str(error) or "max_pixels" in str(error)
        if not isinstance(error, LOADER_ERRORS):
            verdict = f"BAD ({type(error).__name__}: {str(error)[:60]})"
        else:
            verdict = f"error ({type(error).__name__}{warned})" if named else f"BAD (names no file: {error})"
    else:
        problem = check(result, [str(w.message) for w in caught]) if check else "loaded"
        verdict = f"BAD ({problem})" if problem else f"works ({len(result.data)} images{warned})"
    conn.send((verdict, seconds, mb))


def _run_loader_probe(build):
    """(outcome, seconds, peak MB) of one probe, run in a forked process that is killed if it hangs."""
    import multiprocessing

    with tempfile.TemporaryDirectory() as folder:
        call, check = build(folder)
        receive, send = multiprocessing.Pipe(duplex=False)
        child = multiprocessing.get_context("fork").Process(target=_probe_in_child, args=(send, call, check, folder))
        child.start()
        done = receive.poll(LOADER_TIMEOUT)
        if not done:
            child.kill()
            child.join()
            return f"BAD (no return in {LOADER_TIMEOUT:.0f} s)", "", ""
        verdict, seconds, mb = receive.recv()
        child.join()
    cost = (f"{seconds:.2f}", f"{mb:.1f}")
    if seconds > LOADER_SECONDS or mb > LOADER_MEGABYTES:
        return f"BAD ({seconds:.0f} s, {mb:.0f} MB: {verdict})", *cost
    return verdict, *cost


def run_loader_probes(selected=None):
    rows = []
    for name, build in LOADER_PROBES:
        if selected and not any(s in name for s in selected):
            continue
        outcome, seconds, mb = _run_loader_probe(build)
        rows.append({"case": name, "outcome": outcome, "seconds": seconds, "peak MB": mb})
        print(f"{name} | {outcome} | {seconds} s | {mb} MB", flush=True)
    table = pd.DataFrame(rows).set_index("case")
    counts = table["outcome"].map(lambda v: v.split(" ")[0]).value_counts().to_frame("cases")
    return ("## Loaders: outcome of each hostile file\n\n" + table.to_markdown() + "\n\n## Loader counts\n\n"
            + counts.to_markdown() + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="also write the Markdown tables to this file")
    parser.add_argument("--cases", nargs="*", default=None, help="only the cases whose name contains one of these")
    parser.add_argument("--section", choices=["all", "estimators", "loaders", "persistence", "params"], default="all",
                        help="the estimator cases, the loader probes, the hostile files and checkpoint folders, the "
                             "parameter and training-outcome probes, or all")
    parser.add_argument("--params-outcomes", dest="section", action="store_const", const="params",
                        help="the same as --section params")
    args = parser.parse_args()
    if args.section in ("loaders", "params"):
        text = run_loader_probes(args.cases) if args.section == "loaders" else run_params_outcomes(args.cases)
        print(text)
        if args.out:
            with open(args.out, "w") as f:
                f.write(text)
        return
    torch.set_num_threads(1)
    if args.section == "persistence":
        text = "## Hostile files and checkpoint folders\n\n" + persistence_probes().to_markdown(index=False) + "\n"
        print(text)
        if args.out:
            with open(args.out, "w") as f:
                f.write(text)
        return
    X, y = data()
    ests = estimators()
    rows = []
    for case, kind, how in cases():
        if args.cases and not any(c in case for c in args.cases):
            continue
        row = {"case": case}
        for name, (make, use) in ests.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    row[name] = run_case(name, kind, how, make, use, X, y)
                except Exception as exc:  # noqa: BLE001  (the harness itself: report, never hide)
                    row[name] = f"BAD (harness: {type(exc).__name__}: {str(exc)[:60]})"
        rows.append(row)
        print(" | ".join(str(v) for v in row.values()), flush=True)
    table = pd.DataFrame(rows).set_index("case")
    counts = {name: table[name].map(lambda v: "-" if v == "-" else v.split(" ")[0]).value_counts() for name in ests}
    summary = pd.DataFrame(counts).fillna(0).astype(int)
    summary["all"] = summary.sum(axis=1)
    text = "## Outcome of each bad input\n\n" + table.to_markdown() + "\n\n## Counts\n\n" + summary.to_markdown() + "\n"
    if args.section == "all":
        text += "\n" + run_loader_probes(args.cases)
        text += "\n## Hostile files and checkpoint folders\n\n" + persistence_probes().to_markdown(index=False) + "\n"
        text += "\n" + run_params_outcomes(args.cases)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


# =========================================================================================================
# Issue 19, sections 4-5: parameters checked where they are declared, training outcomes that match the
# docs. Self-contained: run ``python benchmarks/bad_inputs.py --section params [--out FILE]``.
# Each case makes one hostile call and sorts its outcome as above (error / works / BAD); memory-hungry
# cases run in a child process with a 4 GB address-space limit, so a refusal that comes too late shows as
# ``BAD (MemoryError)`` or ``BAD (killed)`` instead of taking the machine down.
# =========================================================================================================
def _po_small(**params):
    base = dict(max_iter=3, batch_size=16, n_steps=2, buffer_size=64, energy_params=SMALL, n_threads=1,
                random_state=0)
    return EBMGenerator(**{**base, **params})


def _po_toy():
    from skebm.datasets import make_toy_2d

    return make_toy_2d("moons", 200, random_state=0)


class _POModule(torch.nn.Module):
    """A small energy for flat 2-D data whose output is shaped by ``kind`` (hostile energy modules)."""

    def __init__(self, kind="ok", n_in=2):
        super().__init__()
        self.kind = kind
        self.lin = torch.nn.Linear(n_in, 2)

    def forward(self, x):
        out = self.lin(x.flatten(1))
        kind = self.kind
        if kind == "raises-value":
            raise ValueError("my module refuses")
        if kind == "raises-runtime":
            raise RuntimeError("my module broke")
        if kind == "2n":
            return out.reshape(-1)
        if kind == "tuple":
            return out[:, 0], out[:, 1]
        if kind == "numpy":
            return out[:, 0].detach().numpy()
        if kind == "scalar":
            return out.sum()
        if kind == "fixed-64":
            return out[:1, 0].expand(64)
        if kind == "int":
            return out[:, 0].round().long()
        if kind == "detached":
            return out[:, 0].detach()
        if kind == "3-d":
            return out[:, :, None]
        if kind == "nan":
            return out[:, 0] * float("nan")
        if kind == "n1":
            return out[:, :1]
        if kind == "logits":
            return out
        return out[:, 0]


def _po_verdict(call, est=None, before=None):
    """Run ``call``; the verdict as the main table sorts it (documented error with the estimator as before, ...)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = call()
    except Exception as exc:  # noqa: BLE001
        return _error(exc, est, before) if est is not None else (
            f"error ({type(exc).__name__})" if isinstance(exc, DOCUMENTED) else f"BAD ({type(exc).__name__})")
    if out is None or isinstance(out, str):
        return out or "works"
    return "works" if _finite(out) else "BAD (non-finite output)"


def _po_fit_then(est, X, then=lambda est: est.sample(3, random_state=0)):
    def call():
        est.fit(X)
        return then(est)

    return _po_verdict(call, est)


def _po_param_cases():
    params = [
        ("n_threads", 10**6), ("n_threads", 2**31), ("n_threads", 1025), ("n_threads", 1024), ("n_threads", -1),
        ("n_threads", 1.5), ("n_threads", np.int64(2)),
        ("device", "meta"), ("device", "mps"), ("device", "xla"), ("device", "cuda:99"), ("device", "fpga"),
        ("device", ""), ("device", "cpu:0"), ("device", torch.device("meta")),
        ("step_size", 1e300), ("step_size", 1e100), ("step_size", 1e7), ("step_size", 1e6), ("step_size", 1e-300),
        ("noise_scale", 1e300), ("noise_scale", 1e30), ("temperature", 1e-300), ("temperature", 1e300),
        ("lr", 1e300), ("l2_reg", 1e300), ("data_noise", 1e300), ("reinit_prob", np.nan),
        ("batch_size", 10**9), ("buffer_size", 10**12), ("n_steps", -1),
        ("random_state", 2**70), ("random_state", -1), ("energy_params", {"hidden_units": (10**9,)}),
    ]
    return [(f"{name}={value!r}", ("param", name, value)) for name, value in params]


def _po_data_cases():
    return [
        ("X int64", ("X", lambda X: (X * 10).astype(np.int64))),
        ("X bool", ("X", lambda X: X > 0)),
        ("X float16", ("X", lambda X: X.astype(np.float16))),
        ("X object of floats", ("X", lambda X: X.astype(object))),
        ("X list of lists", ("X", lambda X: X.tolist())),
        ("X torch tensor", ("X", lambda X: torch.as_tensor(X))),
        ("X empty (0, 2)", ("X", lambda X: X[:0])),
        ("X no features (200, 0)", ("X", lambda X: X[:, :0])),
        ("X one sample", ("X", lambda X: X[:1])),
        ("X two identical samples", ("X", lambda X: np.repeat(X[:1], 2, axis=0))),
        ("X 1e-300 scale", ("X", lambda X: X * 1e-300)),
        ("X subnormal (5e-324)", ("X", lambda X: np.full_like(X, 5e-324))),
        ("X max float64", ("X", lambda X: np.sign(X) * np.finfo(np.float64).max)),
    ]


def _po_module_cases():
    kinds = ["raises-value", "raises-runtime", "2n", "tuple", "numpy", "scalar", "fixed-64", "int", "detached",
             "3-d", "nan", "n1", "logits", "float64", "wrong input width"]
    return [(f"energy module: {kind}", ("module", kind)) for kind in kinds]


def _po_outcome_cases():
    out = [(f"every update diverges, max_iter={n}, {mode}", ("diverge", n, mode))
           for mode in ("recover", "raise") for n in (1, 2, 3, 5, 6, 7, 12)]
    out += [
        ("Ctrl-C during a first fit", ("interrupt", "first")),
        ("Ctrl-C during a refit", ("interrupt", "refit")),
        ("Ctrl-C during a warm refit", ("interrupt", "warm")),
        ("200 samples during a refit (threads)", ("threads", None)),
        ("compose weight nan", ("compose", [1.0, np.nan])),
        ("compose weight inf", ("compose", [1.0, np.inf])),
        ("compose weight 1e300", ("compose", [1.0, 1e300])),
        ("compose weight True", ("compose", [1.0, True])),
        ("compose weight '2'", ("compose", [1.0, "2"])),
        ("compose weight -0.5", ("compose", [1.0, -0.5])),
        ("compose 3 weights for 2", ("compose", [1.0, 1.0, 1.0])),
        ("SampleMonitor.save_evolution before fit", ("monitor", None)),
        ("SampleMonitor(n_samples=10**12)", ("monitor-size", None)),
        ("sample after set_params(step_size=1e5)", ("after", "step_size", 1e5)),
        ("sample after set_params(temperature=1e-30)", ("after", "temperature", 1e-30)),
        ("sample(n_samples=10**12)", ("sample-n", 10**12)),
        ("EBMPurifier.purify(n_replicates=10**9)", ("other", "purify-replicates")),
        ("EBMDensity, energy module returning (2n,)", ("other", "density-2n")),
        ("NGEBMClassifier, energy module returning (n,)", ("other", "ngebm-n")),
        ("NGEBMClassifier, every update diverges", ("other", "ngebm-diverge")),
        ("EBMDensity(method=QuadratureML(grid_resolution=10**6))", ("other", "density-grid")),
    ]
    return out


def _po_other(what, X):
    """Probes of the other estimators (tiny fits)."""
    y = (X[:, 0] > 0).astype(int)
    tiny = {"hidden_units": (8,)}
    if what == "purify-replicates":
        est = EBMPurifier(max_iter=2, n_steps=2, energy_params=tiny, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X)
        return _po_verdict(lambda: est.purify(X[:3], n_replicates=10**9), est, state_fingerprint(est))
    if what == "density-2n":
        est = EBMDensity(energy=_POModule("2n"), max_iter=3, method=QuadratureML(n_members=1), random_state=0)
        return _po_verdict(lambda: est.fit(X).score_samples(X[:3]), est)
    if what == "ngebm-n":
        est = NGEBMClassifier(energy=_POModule("n"), max_iter=3, random_state=0)
        return _po_verdict(lambda: est.fit(X, y).predict_proba(X[:3]), est)
    if what == "ngebm-diverge":
        est = NGEBMClassifier(energy_params=tiny, max_iter=4, lr=1e6, optimizer="sgd", random_state=0)
        return _po_verdict(lambda: est.fit(X, y).predict_proba(X[:3]), est)
    if what == "density-grid":
        est = EBMDensity(max_iter=2, method=QuadratureML(grid_resolution=10**6), random_state=0)
        return _po_verdict(lambda: est.fit(X).score_samples(X[:3]), est)
    raise ValueError(what)


class _POInterrupt(Callback):
    def __init__(self, at=2):
        self.at = at

    def on_batch_end(self, net, training=False, **kwargs):
        if training and net.n_updates() == self.at:
            raise KeyboardInterrupt


def _po_case(how, X):
    kind = how[0]
    if kind == "param":
        _, name, value = how
        return _po_fit_then(_po_small(**{name: value}), X)
    if kind == "X":
        Xb = how[1](X)
        return _po_fit_then(_po_small(), Xb)
    if kind == "module":
        mod_kind = how[1]
        if mod_kind == "float64":
            module = _POModule().double()
        elif mod_kind == "wrong input width":
            module = _POModule(n_in=3)
        else:
            module = _POModule(mod_kind)
        return _po_fit_then(_po_small(energy=module), X)
    if kind == "diverge":
        _, n, mode = how
        return _po_fit_then(_po_small(max_iter=n, lr=1e6, optimizer="sgd", on_divergence=mode), X)
    if kind == "interrupt":
        est = _po_small(max_iter=6)
        if how[1] == "first":
            est.set_params(callbacks=[_POInterrupt(2)])

            def call():
                est.fit(X)
                return "works (kept, interrupted_)" if est.interrupted_ and est.n_iter_ == 2 else "BAD (not marked)"

            return _po_verdict(call, est)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X)
        before, reference = state_fingerprint(est), est.sample(3, random_state=0)
        est.set_params(callbacks=[_POInterrupt(est.n_iter_ + 2 if how[1] == "warm" else 2)],
                       warm_start=how[1] == "warm")

        def call():
            est.fit(X * 2.0)
            same = state_fingerprint(est) == before and np.array_equal(est.sample(3, random_state=0), reference)
            if how[1] == "warm":
                return "works (kept, interrupted_)" if est.interrupted_ and est.n_iter_ == 8 else "BAD (not kept)"
            return "works (previous model kept)" if same else "BAD (previous model replaced)"

        return _po_verdict(call, est, before)
    if kind == "threads":
        return _po_threads(X)
    if kind == "compose":
        gen = _po_small()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gen.fit(X)
        return _po_verdict(lambda: skebm.compose(gen, gen, weights=how[1]).sample(3, random_state=0))
    if kind == "monitor":
        from skebm.engine import SampleMonitor

        return _po_verdict(lambda: SampleMonitor().save_evolution(os.path.join(tempfile.gettempdir(), "x.png")))
    if kind == "monitor-size":
        from skebm.engine import SampleMonitor

        est = _po_small(callbacks=[SampleMonitor(n_samples=10**12)])
        return _po_fit_then(est, X)
    if kind == "after":
        est = _po_small()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X)
        est.set_params(**{how[1]: how[2]})
        return _po_verdict(lambda: est.sample(3, random_state=0), est, state_fingerprint(est))
    if kind == "other":
        return _po_other(how[1], X)
    if kind == "sample-n":
        est = _po_small()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X)
        return _po_verdict(lambda: est.sample(how[1], random_state=0), est, state_fingerprint(est))
    raise ValueError(how)


def _po_threads(X, n_calls=200):
    """``n_calls`` seeded samples from 8 threads during a refit: each must equal the old or the new model's."""
    from concurrent.futures import ThreadPoolExecutor

    est = _po_small(max_iter=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X)
        old = est.sample(3, random_state=0)
        new_model = clone(est).set_params(random_state=1).fit(X * 3.0 + 5.0)
        new = new_model.sample(3, random_state=0)

        def call(_):
            try:
                out = est.sample(3, random_state=0)
            except Exception as exc:  # noqa: BLE001
                return type(exc).__name__
            return "old" if np.allclose(out, old) else "new" if np.allclose(out, new) else "mixture"

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(call, i) for i in range(n_calls)]
            est.set_params(random_state=1).fit(X * 3.0 + 5.0)
            results = [f.result() for f in futures]
    counts = {k: results.count(k) for k in sorted(set(results))}
    bad = {k: v for k, v in counts.items() if k not in ("old", "new")}
    return f"BAD ({bad})" if bad else f"works ({counts})"


def _po_child(how, queue):
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
    torch.set_num_threads(1)
    queue.put(_po_case(how, _po_toy()))


def params_outcomes_cases():
    """(case, how) of the issue-19 section 4-5 probes."""
    return [*_po_param_cases(), *_po_data_cases(), *_po_module_cases(), *_po_outcome_cases()]


def run_params_outcomes(only=None):
    """Run every section 4-5 probe (each in a memory-limited child process); return the Markdown tables."""
    import multiprocessing as mp
    import time

    ctx = mp.get_context("fork")
    rows = []
    for case, how in params_outcomes_cases():
        if only and not any(c in case for c in only):
            continue
        queue = ctx.Queue()
        begin = time.perf_counter()
        child = ctx.Process(target=_po_child, args=(how, queue))
        child.start()
        child.join(120)
        if child.is_alive():
            child.kill()
            child.join()
            verdict = "BAD (over 120 s)"
        elif child.exitcode != 0:
            verdict = f"BAD (killed, exit {child.exitcode})"
        else:
            verdict = queue.get()
        rows.append({"case": case, "outcome": verdict, "seconds": round(time.perf_counter() - begin, 1)})
        print(f"{case} | {verdict} | {rows[-1]['seconds']}", flush=True)
    table = pd.DataFrame(rows).set_index("case")
    counts = table["outcome"].map(lambda v: v.split(" ")[0]).value_counts()
    return ("## Parameters and training outcomes (issue 19, sections 4-5)\n\n" + table.to_markdown() + "\n\n"
            + counts.to_frame("cases").to_markdown() + "\n")


# ----------------------------------------------------------------------------------------------------------------
# Hostile files for skebm.load and hostile folders for TrainingCheckpoint (issue 19, sections 2 and 3).
# Self-contained: ``python benchmarks/bad_inputs.py --section persistence`` prints only this table.
# ----------------------------------------------------------------------------------------------------------------
def _persistence_probe_cases():
    """(case, how it is made) pairs: each ``make(saved_bytes, folder)`` gives what is loaded, or runs a fit."""
    import json
    import struct

    from safetensors.torch import load as st_load
    from safetensors.torch import save as st_save

    from skebm.utils._tampering import entry as get
    from skebm.utils._tampering import raw_file, rewrite_file, split_file, tensor_key
    from skebm.utils._tampering import set_entry as put

    def rewrite(edit_state=None, edit_tensors=None):
        return lambda data, folder: io.BytesIO(rewrite_file(data, edit_state, edit_tensors))

    def raw(header, body=b""):
        return lambda data, folder: io.BytesIO(raw_file(header, body))

    def set_tensor(path, value):
        return rewrite(edit_tensors=lambda s, t: t.__setitem__(tensor_key(s, *path), value))

    def param(name, value):
        return rewrite(lambda s: put(s["params"], name, value))

    def attr(name, value):
        return rewrite(lambda s: put(s["attrs"], name, value))

    def setting(name, value):
        return rewrite(lambda s: put(s["engine"]["sampler"], name, value))

    def header_edit(edit):
        def make(data, folder):
            header, _, body = split_file(data)
            return raw(edit(header, body), body)(data, folder)

        return make

    def first_tensor(header):
        return next(k for k in header if k != "__metadata__")

    def deep_metadata(data, folder):
        _, state, _ = split_file(data)
        text = json.dumps(state).replace('"engine": {', '"junk": ' + "[" * 100_000 + "]" * 100_000 + ', "engine": {', 1)
        return io.BytesIO(st_save(st_load(data), metadata={"skebm": text}))

    def fifo(data, folder):
        path = os.path.join(folder, "fifo.skebm")
        os.mkfifo(path)
        return path

    def in_folder(name, content):
        def make(data, folder):
            path = os.path.join(folder, name)
            with open(path, "wb") as f:
                f.write(content)
            return path

        return make

    cases = [
        ("NaN in the rescaler's centre", set_tensor(("rescaler_", "center_"), torch.full((3,), float("nan"),
                                                                                          dtype=torch.float64))),
        ("inf in the rescaler's scale", set_tensor(("rescaler_", "scale_"), torch.full((3,), float("inf"),
                                                                                        dtype=torch.float64))),
        ("zero rescaler scale", set_tensor(("rescaler_", "scale_"), torch.zeros(3, dtype=torch.float64))),
        ("rescaler centre of the wrong shape", set_tensor(("rescaler_", "center_"),
                                                          torch.zeros(5, dtype=torch.float64))),
        ("rescaler centre float16", set_tensor(("rescaler_", "center_"), torch.zeros(3, dtype=torch.float16))),
        ("rescaler centre bfloat16", set_tensor(("rescaler_", "center_"), torch.zeros(3, dtype=torch.bfloat16))),
        ("rescaler kind 'evil'", rewrite(lambda s: put(get(s["attrs"], "rescaler_")["state"], "kind", "evil"))),
        ("rescaler with __class__ entry", rewrite(lambda s: put(get(s["attrs"], "rescaler_")["state"], "__class__",
                                                                 1))),
        ("n_features_in_ = 7", attr("n_features_in_", 7)),
        ("n_features_in_ = 10**30", attr("n_features_in_", 10**30)),
        ("image_shape_ (2, 2, 2) for 3 features", attr("image_shape_", {"__tuple__": [2, 2, 2]})),
        ("n_iter_ = -1", attr("n_iter_", -1)),
        ("n_iter_ as a string", attr("n_iter_", "4")),
        ("interrupted_ = 'no'", attr("interrupted_", "no")),
        ("_n_outputs_ = 4 (no classes)", attr("_n_outputs_", 4)),
        ("classes_ unsorted", attr("classes_", {"__array_list__": ["b", "a"], "dtype": "<U1"})),
        ("_layout_ ('5d', float64)", attr("_layout_", {"__tuple__": ["5d", {"__dtype__": "<f8"}]})),
        ("_layout_ ('4d') without image shape", attr("_layout_", {"__tuple__": ["4d", {"__dtype__": "<f8"}]})),
        ("_layout_ dtype object", attr("_layout_", {"__tuple__": ["2d", {"__dtype__": "|O"}]})),
        ("_layout_ dtype V1e11", attr("_layout_", {"__tuple__": ["2d", {"__dtype__": "V100000000000"}]})),
        ("_fit_params_ with an unknown name", attr("_fit_params_", {"__dict__": [["evil", 1]]})),
        ("attribute score_samples", attr("score_samples", 1)),
        ("feature names as <U9999 x 10^5", attr("feature_names_in_", {"__array_list__": ["a"] * 100_000,
                                                                        "dtype": "<U9999"})),
        ("sampler __class__ = torch.optim.SGD", setting("__class__", {"__class__": "torch.optim.sgd.SGD"})),
        ("sampler proposal = 'base'", setting("proposal", "base")),
        ("sampler acceptance_rate_", setting("acceptance_rate_", 0.5)),
        ("sampler step_size NaN", setting("step_size", {"__float__": "nan"})),
        ("sampler step_size 1e300", setting("step_size", 1e300)),
        ("sampler clamp (1, -1)", setting("clamp", [1.0, -1.0])),
        ("sampler precision 'fp8'", setting("precision", "fp8")),
        ("sampler n_steps 10**12", setting("n_steps", 10**12)),
        ("optimizer torch.optimizer.X", param("optimizer", {"__class__": "torch.optimizer.X"})),
        ("optimizer torch.optim LambdaLR", param("optimizer", {"__class__": "torch.optim.lr_scheduler.LambdaLR"})),
        ("optimizer = MLPEnergy (other slot)", param("optimizer", {"__class__": "skebm.nn._nets.MLPEnergy"})),
        ("energy = torch.optim.SGD", param("energy", {"__class__": "torch.optim.sgd.SGD"})),
        ("energy = os.system", param("energy", {"__class__": "os.system"})),
        ("class inside energy_params", param("energy_params",
                                             {"__dict__": [["x", {"__class__": "torch.optim.sgd.SGD"}]]})),
        ("chain init as energy_params", param("energy_params",
                                              {"__chain_init__": "ReplayInit", "params": {"__dict__": []}})),
        ("chain init 'Popen'", param("init", {"__chain_init__": "Popen", "params": {"__dict__": []}})),
        ("chain init with bad params", param("init", {"__chain_init__": "ReplayInit",
                                                      "params": {"__dict__": [["buffer_size", -1]]}})),
        ("object os.system as attrs", rewrite(lambda s: s.update(attrs={"__object__": "os.system", "state": {}}))),
        ("buffer_size 3e8 (bank 2.4 GB)", param("buffer_size", 300_000_000)),
        ("hidden_units (60000, 60000)", param("energy_params",
                                              {"__dict__": [["hidden_units", {"__tuple__": [60000, 60000]}]]})),
        ("fourier_features 10**9", param("energy_params", {"__dict__": [["fourier_features", 10**9]]})),
        ("callbacks [1, 'x']", param("callbacks", [1, "x"])),
        ("energy ConvEnergy on flat data", param("energy", {"__class__": "skebm.nn._nets.ConvEnergy"})),
        ("image_shape (1, 1000, 1000)", param("image_shape", {"__tuple__": [1, 1000, 1000]})),
        ("random_state 10**30", param("random_state", 10**30)),
        ("accelerator {'prepare': 1}", param("accelerator", {"__dict__": [["prepare", 1]]})),
        ("energy_params 10**5 layers", param("energy_params", {"__dict__": [["hidden_units",
                                                                             {"__tuple__": [16] * 100_000}]]})),
        ("init LongrunInit(burnin_buffer_size=3e8)",
         param("init", {"__chain_init__": "LongrunInit",
                        "params": {"__dict__": [["burnin_buffer_size", 300_000_000]]}})),
        ("device 'meta'", param("device", "meta")),
        ("device 'cuda:7'", param("device", "cuda:7")),
        ("metadata nested 100,000 deep", deep_metadata),
        ("header nested 100,000 deep", raw(b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")),
        ("header length 2**63", lambda d, f: io.BytesIO(struct.pack("<Q", 2**63) + b"{}")),
        ("header length 1e9 (file 108 B)", lambda d, f: io.BytesIO(struct.pack("<Q", 10**9) + b"{" * 100)),
        ("duplicate key in the header", header_edit(
            lambda h, b: json.dumps(h).replace("{", '{"__metadata__": {"skebm": "{}"}, ', 1).encode())),
        ("duplicate parameter", rewrite(lambda s: s["params"]["__dict__"].append(["lr", 0.5]))),
        ("tensor offsets past the end", header_edit(lambda h, b: json.dumps(
            {**h, first_tensor(h): {**h[first_tensor(h)], "data_offsets": [0, len(b) + 10**9]}}).encode())),
        ("tensor offsets too short", header_edit(lambda h, b: json.dumps(
            {**h, first_tensor(h): {**h[first_tensor(h)], "data_offsets": [0, 8]}}).encode())),
        ("tensor dtype F8_E4M3", header_edit(lambda h, b: json.dumps(
            {**h, first_tensor(h): {**h[first_tensor(h)], "dtype": "F8_E4M3"}}).encode())),
        ("truncated to a third", lambda d, f: io.BytesIO(d[: len(d) // 3])),
        ("7 bytes", lambda d, f: io.BytesIO(d[:7])),
        ("header not UTF-8", raw(b"\xff\xfe{}")),
        ("metadata not a string", raw(b'{"__metadata__": {"skebm": 5}}')),
        ("format_version '2'", rewrite(lambda s: s.update(format_version="2"))),
        ("format_version 10**30, long version", rewrite(lambda s: s.update(format_version=10**30,
                                                                           skebm_version="x" * 10**5))),
        ("estimator class 'BaseEBM'", rewrite(lambda s: s.update({"class": "BaseEBM"}))),
        ("estimator class as a list", rewrite(lambda s: s.update({"class": ["EBMGenerator"]}))),
        ("history [1, 2, 3]", rewrite(lambda s: s["engine"].update(history=[1, 2, 3]))),
        ("history with 5 extra updates", rewrite(lambda s: s["engine"]["history"].extend(
            [{"__dict__": [["batches", [{"__dict__": [["train_loss", 1.0]]}]]]}] * 5))),
        ("optimizer exp_avg of shape (2, 2)", rewrite(edit_tensors=lambda s, t: t.__setitem__(
            get(get(s["engine"]["optimizer"], "state")["__dict__"][0][1], "exp_avg")["__tensor__"],
            torch.zeros(2, 2)))),
        ("optimizer lr NaN", rewrite(lambda s: put(get(s["engine"]["optimizer"], "param_groups")[0], "lr",
                                                   {"__float__": "nan"}))),
        ("rng state of 3 bytes", rewrite(edit_tensors=lambda s, t: t.__setitem__(
            get(get(get(s["engine"]["modules"], "rng"), "_extra_state"), "generator")["__tensor__"],
            torch.zeros(3, dtype=torch.uint8)))),
        ("a folder", lambda d, f: f),
        ("a FIFO", fifo),
        ("a pickle", in_folder("p.pkl", pickle.dumps({"a": 1}))),
        ("an empty file", in_folder("empty", b"")),
    ]
    return cases


def _checkpoint_probe_cases():
    """(case, damage(folder)) pairs: a generator's checkpoint folder damaged, then the same fit run again."""

    def write(name, content):
        def damage(folder):
            with open(os.path.join(folder, name), "wb") as f:
                f.write(content)

        return damage

    def record(edit):
        def damage(folder):
            path = os.path.join(folder, "checkpoint.json")
            with open(path) as f:
                text = f.read()
            with open(path, "w") as f:
                f.write(edit(text))

        return damage

    return [
        ("junk history.json", write("history.json", b'{"not": "a history"}')),
        ("history.json [1, 2, 3]", write("history.json", b"[1, 2, 3]")),
        ("history.json nested 100,000 deep", write("history.json", b"[" * 100_000)),
        ("random bytes as params.pt", write("params.pt", os.urandom(300))),
        ("empty params.pt", write("params.pt", b"")),
        ("a pickled module as optimizer.pt", lambda folder: torch.save({"m": torch.nn.Linear(2, 2)},
                                                                      os.path.join(folder, "optimizer.pt"))),
        ("params.pt copied over chain_init.pt", lambda folder: write(
            "chain_init.pt", open(os.path.join(folder, "params.pt"), "rb").read())(folder)),
        ("no checkpoint.json", lambda folder: os.remove(os.path.join(folder, "checkpoint.json"))),
        ("params.pt is a FIFO", lambda folder: (os.remove(os.path.join(folder, "params.pt")),
                                                os.mkfifo(os.path.join(folder, "params.pt")))),
        ("rng.pt -> /dev/zero", lambda folder: (os.remove(os.path.join(folder, "rng.pt")),
                                                os.symlink("/dev/zero", os.path.join(folder, "rng.pt")))),
        ("checkpoint.json nested deep", write("checkpoint.json", b"[" * 100_000)),
        ("checkpoint.json n_updates stale", record(lambda t: t.replace('"n_updates": 4', '"n_updates": 3'))),
        ("other data", "data"),
        ("other buffer_size", {"buffer_size": 30}),
        ("other estimator (EBMPurifier)", "purifier"),
        ("dirname is an existing file", "file"),
        ("params.pt is a folder (save fails)", "save"),
    ]


def persistence_probes():
    """Run every hostile file through ``skebm.load`` and every damaged folder through a resumed fit.

    Returns
    -------
    table : pandas.DataFrame
        Case, how it ends (the error type and the head of its message, or
        ``works``), seconds, and the rise of the process's peak memory (MB).
    """
    import resource
    import time

    from skebm.engine import TrainingCheckpoint

    X = np.random.RandomState(0).randn(60, 3)

    def peak_mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def gen(folder, **params):
        return EBMGenerator(**{"max_iter": 4, "n_steps": 2, "buffer_size": 20, "batch_size": 30, "random_state": 0,
                               "callbacks": [TrainingCheckpoint(folder)], **params})

    est = EBMGenerator(max_iter=2, n_steps=2, buffer_size=50, random_state=0).fit(X)
    buf = io.BytesIO()
    skebm.save(est, buf)
    saved = buf.getvalue()
    rows = []

    def run(surface, case, call):
        before, start = peak_mb(), time.perf_counter()
        try:
            call()
            outcome = "works"
        except (ValueError, OSError) as exc:
            outcome = f"{type(exc).__name__}: {str(exc)[:110]}"
            if "weights_only" in str(exc):
                outcome = "BAD (torch's weights_only advice) " + outcome
        except Exception as exc:  # noqa: BLE001 - an undocumented error is the finding
            outcome = f"BAD {type(exc).__name__}: {str(exc)[:100]}"
        rows.append({"surface": surface, "case": case, "ends": outcome.replace("|", "/").replace("\n", " "),
                     "s": round(time.perf_counter() - start, 2), "peak +MB": round(peak_mb() - before)})
        print(rows[-1], flush=True)

    for case, make in _persistence_probe_cases():
        with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run("skebm.load", case, lambda: skebm.load(make(saved, folder)))
    for case, damage in _checkpoint_probe_cases():
        with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if damage == "file":
                path = os.path.join(folder, "f")
                open(path, "wb").close()
                run("TrainingCheckpoint", case, lambda: gen(path).fit(X))
                continue
            if damage == "save":
                os.mkdir(os.path.join(folder, "params.pt"))
                run("TrainingCheckpoint", case, lambda: gen(folder).fit(X))
                continue
            gen(folder).fit(X)
            if damage == "data":
                run("TrainingCheckpoint", case, lambda: gen(folder).fit(np.random.RandomState(1).randn(60, 3)))
            elif damage == "purifier":
                run("TrainingCheckpoint", case, lambda: EBMPurifier(
                    max_iter=4, n_steps=2, batch_size=30, random_state=0,
                    callbacks=[TrainingCheckpoint(folder)]).fit(X))
            elif isinstance(damage, dict):
                run("TrainingCheckpoint", case, lambda: gen(folder, **damage).fit(X))
            else:
                damage(folder)
                run("TrainingCheckpoint", case, lambda: gen(folder).fit(X))
    return pd.DataFrame(rows)


if __name__ == "__main__":
    main()
