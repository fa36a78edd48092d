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
cores; tiny fits of a few updates).

``--params-outcomes`` runs instead the probes of parameters and training
outcomes (issue 19, sections 4-5: bounds, devices, energy modules,
divergence, Ctrl-C, concurrent refits, ``compose``), each in a child process
with a 4 GB memory limit; the last run is in
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
from skebm.engine import TrainingDivergedError

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
            lambda: EBMDensity(max_iter=4, batch_size=32, n_members=1, n_importance_samples=256, energy_params=SMALL,
                               random_state=0),
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


def _state(est, _depth=0):
    """Fingerprint of the fitted state: every tensor, array and plain value of the ``*_`` attributes.

    (Pickled bytes are not stable between two dumps of one torch model, so they cannot be compared.)
    """
    parts = []
    for key, value in sorted(vars(est).items()):
        if not key.endswith("_") or key.startswith("_"):
            continue
        parts.append(key)
        if isinstance(value, torch.nn.Module):
            modules = [value]
        elif hasattr(value, "module_"):  # a skorch net: all of its registered modules
            modules = [getattr(value, m + "_") for m in value._modules if isinstance(getattr(value, m + "_", None),
                                                                                       torch.nn.Module)]
        else:
            modules = []
        for module in modules:
            parts += [(n, t.detach().cpu().numpy().tobytes() if torch.is_tensor(t) else repr(t))
                      for n, t in module.state_dict().items()]
        if isinstance(value, np.ndarray):
            parts.append(value.tobytes())
        elif isinstance(value, (int, float, str, bool, tuple)) or value is None:
            parts.append(repr(value))
        elif hasattr(value, "get_params") and _depth < 2 and not modules:
            parts.append(_state(value, _depth + 1))
    return parts


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
        ("energy_variance", -1.0), ("approximate_mass", np.nan), ("data_noise", -0.1), ("grid_resolution", 1),
        ("n_members", 0), ("tilt_bound", -1.0), ("validation_fraction", 1.5), ("n_importance_samples", 0),
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
    if before is not None and _state(est) != before:
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
            return _error(exc, est, _state(est))
    if kind == "after-fit":
        pname, value = how
        if pname not in est.get_params():
            return "-"
        _fit(est, X, y_fit)
        est.set_params(**{pname: value})
        before = _state(est)
        try:
            return _use_verdict(use, est, X)
        except Exception as exc:  # noqa: BLE001
            return _error(exc, est, before)
    if kind == "use-X":
        _fit(est, X, y_fit)
        before = _state(est)
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
        before, reference = _state(est), use(est, X)
        Xb, yb = X, y
        if how == "refit-nan":
            Xb = X.copy()
            Xb[0, 0] = np.nan
        elif how == "warm-1e30":
            Xb = X * 1e30
        elif how == "refit-param":
            est.set_params(**({"n_replicates": 0} if isinstance(est, PurifiedClassifier) else {"max_iter": -1}))
            before = _state(est)
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
        before = _state(est)
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="also write the Markdown tables to this file")
    parser.add_argument("--cases", nargs="*", default=None, help="only the cases whose name contains one of these")
    parser.add_argument("--params-outcomes", action="store_true", help="run the issue-19 section 4-5 probes instead")
    args = parser.parse_args()
    if args.params_outcomes:
        run_params_outcomes(args.out, args.cases)
        return
    torch.set_num_threads(1)
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
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


# =====================================================================================================
# Issue 19, sections 4-5: parameters checked where they are declared, training outcomes that match the
# docs. Self-contained: run ``python benchmarks/bad_inputs.py --params-outcomes [--out FILE]``.
# Each case makes one hostile call and sorts its outcome as above (error / works / BAD); memory-hungry
# cases run in a child process with a 4 GB address-space limit, so a refusal that comes too late shows as
# ``BAD (MemoryError)`` or ``BAD (killed)`` instead of taking the machine down.
# =====================================================================================================
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
        ("EBMDensity(grid_resolution=10**6)", ("other", "density-grid")),
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
        return _po_verdict(lambda: est.purify(X[:3], n_replicates=10**9), est, _state(est))
    if what == "density-2n":
        est = EBMDensity(energy=_POModule("2n"), max_iter=3, n_members=1, random_state=0)
        return _po_verdict(lambda: est.fit(X).score_samples(X[:3]), est)
    if what == "ngebm-n":
        est = NGEBMClassifier(energy=_POModule("n"), max_iter=3, random_state=0)
        return _po_verdict(lambda: est.fit(X, y).predict_proba(X[:3]), est)
    if what == "ngebm-diverge":
        est = NGEBMClassifier(energy_params=tiny, max_iter=4, lr=1e6, optimizer="sgd", random_state=0)
        return _po_verdict(lambda: est.fit(X, y).predict_proba(X[:3]), est)
    if what == "density-grid":
        est = EBMDensity(max_iter=2, grid_resolution=10**6, random_state=0)
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
        before, reference = _state(est), est.sample(3, random_state=0)
        est.set_params(callbacks=[_POInterrupt(est.n_iter_ + 2 if how[1] == "warm" else 2)],
                       warm_start=how[1] == "warm")

        def call():
            est.fit(X * 2.0)
            same = _state(est) == before and np.array_equal(est.sample(3, random_state=0), reference)
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
        return _po_verdict(lambda: est.sample(3, random_state=0), est, _state(est))
    if kind == "other":
        return _po_other(how[1], X)
    if kind == "sample-n":
        est = _po_small()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X)
        return _po_verdict(lambda: est.sample(how[1], random_state=0), est, _state(est))
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


def run_params_outcomes(out=None, only=None):
    """Run every section 4-5 probe (each in a memory-limited child process); print and return the table."""
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
    text = ("## Parameters and training outcomes (issue 19, sections 4-5)\n\n" + table.to_markdown() + "\n\n"
            + counts.to_frame("cases").to_markdown() + "\n")
    print(text)
    if out:
        with open(out, "w") as f:
            f.write(text)
    return table


if __name__ == "__main__":
    main()
