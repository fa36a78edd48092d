"""EBMDensity against KDE, a Gaussian mixture and a normalising flow.

One run prints two Markdown tables:

1. **Held-out log-likelihood** (nats per sample, higher is better) and fit
   seconds. Rows: the 2-D toys of :mod:`skebm.datasets` (``--n-train``
   training and 5,000 test points, raw units) and six tables, standardised
   by the training split's scaler (wine 13-D, breast cancer 30-D, diabetes
   9-D without its binary sex column, as scikit-learn ships it and
   dequantised: its raw columns plus uniform noise of each column's
   resolution, the smallest gap between its values; digits 64-D
   dequantised with uniform noise, a 10-D correlated Gaussian with known
   truth; 70/30 splits, the Gaussian 2,000 / 5,000). Columns:

   * ``EBMDensity``: the estimator's defaults;
   * ``base alone``: ``EBMDensity(max_iter=0)``, the base density without
     the energy network (the gap to the default column is what the network
     adds);
   * ``KDE``: :class:`~sklearn.neighbors.KernelDensity`, bandwidth by 5-fold
     :class:`~sklearn.model_selection.GridSearchCV`;
   * ``GMM``: :class:`~sklearn.mixture.GaussianMixture`, components (1-64)
     and full/diagonal covariances by 5-fold cross-validation;
   * ``NSF`` and ``MAF``: zuko's (autoregressive) neural spline flow and
     masked autoregressive flow, tuned: 2 or 4 transforms x two hidden
     layers of 64 or 128, each trained by Adam with early stopping on a
     held-out 15% of the training split, the best on that split kept
     (skipped, with a note, when zuko is not installed);
   * ``truth``: the exact mean log-density of the test points, where known.

   ``EBM - best`` is EBMDensity minus the better of KDE and GMM, ``EBM -
   flow`` minus the better of the two flows, ``EBM - base`` what the
   network adds. The last row averages the tables.

2. **Anomaly detection**: AUROC of ``score_samples`` (higher = more normal)
   on held-out classes: digits (train on 9 digits, the 10th is the outlier
   class; mean over ``--outlier-digits``) and breast cancer (train on
   benign, malignant are the outliers), for EBMDensity, the CV-GMM, the
   CV-KDE and :class:`~sklearn.ensemble.IsolationForest`.

Fit seconds are wall-clock on whatever the machine is doing: on a shared
machine read them as ratios to the KDE and GMM columns of the same run, or
pass ``--cpu-time`` to report the process's CPU seconds (every fit here is
single-threaded, so that is what an idle core's wall clock would read).

Usage::

    python benchmarks/bench_density.py                 # everything (an hour or more with the
                                                       # MALA-trained EBMDensity of today)
    python benchmarks/bench_density.py --quick         # smoke run: about a minute of CPU
                                                       # (2 toys of 500 points, wine, breast cancer)
    python benchmarks/bench_density.py --datasets rings wine --out density.md
    python benchmarks/bench_density.py --out density.csv   # CSV instead of Markdown

Threads: the script sets ``torch.set_num_threads(1)`` and limits BLAS to one
thread (set ``OMP_NUM_THREADS=1`` too), so the numbers are one-core numbers.
"""

import argparse
import math
import os
import sys
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_wine
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neighbors import KernelDensity
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from skebm import EBMDensity
from skebm.datasets import TOY_2D_NAMES, make_toy_2d, toy_2d_log_density

TOYS = tuple(TOY_2D_NAMES)
TABLES = ("wine", "breast_cancer", "diabetes", "diabetes_deq", "digits", "gauss10")
ALL = TOYS + TABLES
N_TEST_TOY = 5000

# --quick: tiny sizes and short fits (a smoke run of the script, not a measurement)
QUICK_DATASETS = ("8gaussians", "moons", "wine")
QUICK_N_TRAIN = 500
QUICK_N_TEST = 1000
QUICK_EBM = {"max_iter": 30}  # method="auto": quadrature on the toys, importance sampling on the tables


# ---------------------------------------------------------------- data sets
def _gauss10_cov(d=10, seed=0):
    A = np.random.RandomState(seed).standard_normal((d, d))
    return A @ A.T / d + 0.1 * np.eye(d)


def load(name, n_train, n_test, seed):
    """(X_train, X_test, true mean test log-density or None)."""
    rng = np.random.RandomState(seed)
    if name in TOYS:
        X = make_toy_2d(name, n_train, random_state=seed)
        X_test = make_toy_2d(name, n_test, random_state=seed + 1000)
        true = None if name == "checkerboard" else float(np.mean(toy_2d_log_density(name, X_test)))
        return X, X_test, true
    true_fn = None
    if name == "wine":
        X = load_wine().data
    elif name == "breast_cancer":
        X = load_breast_cancer().data
    elif name == "diabetes":  # without the binary sex column (no density on two values)
        X = np.delete(load_diabetes().data, 1, axis=1)
    elif name == "diabetes_deq":  # the same in raw units, each column dequantised at its resolution
        X = np.delete(load_diabetes(scaled=False).data, 1, axis=1)
        step = np.array([np.diff(np.unique(col)).min() for col in X.T])
        X = X + rng.uniform(0.0, 1.0, size=X.shape) * step
    elif name == "digits":
        X = load_digits().data + rng.uniform(0.0, 1.0, size=(1797, 64))  # uniform dequantisation
    elif name == "gauss10":
        from scipy.stats import multivariate_normal

        mvn = multivariate_normal(np.zeros(10), _gauss10_cov())
        X = mvn.rvs(2000 + 5000, random_state=rng)
        true_fn = mvn.logpdf
    else:
        raise ValueError(f"unknown data set {name!r}; choose from {ALL}")
    if name == "gauss10":
        X_train, X_test = X[:2000], X[2000:]
    else:
        X_train, X_test = train_test_split(X, test_size=0.3, random_state=seed)
    scaler = StandardScaler().fit(X_train)
    true = None
    if true_fn is not None:  # in standardised units: add the scaler's log-Jacobian
        true = float(np.mean(true_fn(X_test)) + np.sum(np.log(scaler.scale_)))
    return scaler.transform(X_train), scaler.transform(X_test), true


# ------------------------------------------------------------------ models
def _ebm_params(extra):
    """``extra`` restricted to the parameters this EBMDensity has (the API is moving)."""
    known = EBMDensity().get_params()
    dropped = sorted(set(extra) - set(known))
    if dropped:
        print(f"[bench] EBMDensity has no parameter(s) {dropped}; ignored", file=sys.stderr)
    return {k: v for k, v in extra.items() if k in known}


def fit_ebm(X, seed, params):
    return EBMDensity(**_ebm_params(params), random_state=seed).fit(X).score_samples


def fit_ebm_base(X, seed, params):
    params = {**params, "max_iter": 0}
    try:
        est = EBMDensity(**_ebm_params(params), random_state=seed)
        return est.fit(X).score_samples
    except Exception as exc:  # the base-alone mode is part of the new API
        raise NotImplementedError(
            f"EBMDensity(max_iter=0) (the base density alone) is not supported by this version: "
            f"{type(exc).__name__}: {exc}"
        ) from None


def fit_kde(X, seed, _params=None):
    grid = {"bandwidth": X.std(0).mean() * np.geomspace(0.01, 1.0, 25)}
    with threadpool_limits(1):
        return GridSearchCV(KernelDensity(), grid, cv=5).fit(X).best_estimator_.score_samples


def fit_gmm(X, seed, _params=None):
    ks = [k for k in (1, 2, 4, 8, 12, 16, 24, 32, 48, 64) if k <= len(X) // 10] or [1]
    grid = {"n_components": ks, "covariance_type": ["full", "diag"]}
    with threadpool_limits(1):
        search = GridSearchCV(GaussianMixture(random_state=seed, reg_covar=1e-6), grid, cv=5)
        return search.fit(X).best_estimator_.score_samples


#: The search of the tuned flows: transforms x hidden width (two hidden layers), picked on the held-out 15%.
FLOW_GRID = [(t, w) for t in (2, 4) for w in (64, 128)]


def _train_flow(flow, Zt, Zv, *, patience, lr, batch, max_epochs, time_limit):
    """Adam on ``Zt`` with early stopping on ``Zv``: (best held-out mean log-likelihood, its state)."""
    opt = torch.optim.Adam(flow.parameters(), lr)
    best, best_state, bad, start = -np.inf, None, 0, time.perf_counter()
    for _ in range(max_epochs):
        order = torch.randperm(len(Zt))
        for i in range(0, len(Zt), batch):
            loss = -flow().log_prob(Zt[order[i : i + batch]]).mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(flow.parameters(), 5.0)
            opt.step()
        with torch.no_grad():
            val = float(flow().log_prob(Zv).mean())
        if val > best:
            best, bad, best_state = val, 0, {k: v.clone() for k, v in flow.state_dict().items()}
        else:
            bad += 1
        if bad >= patience or time.perf_counter() - start > time_limit:
            break
    return best, best_state


def fit_flow(X, seed, params=None, *, kind="NSF", val_frac=0.15, patience=20, lr=1e-3, batch=256):
    """A tuned zuko flow (autoregressive ``NSF`` or ``MAF``): every (transforms, width) of ``FLOW_GRID``
    trained by Adam, early-stopped on a held-out 15% of the training split, the best on that split kept."""
    try:
        import zuko
    except ImportError:
        raise NotImplementedError("zuko is not installed (pip install zuko)") from None
    params = params or {}
    max_epochs, time_limit = params.get("max_epochs", 1000), params.get("time_limit", 600.0)
    grid = params.get("grid", FLOW_GRID)
    mu, sd = X.mean(0), X.std(0) + 1e-12
    Z = (X - mu) / sd
    perm = np.random.RandomState(seed).permutation(len(Z))
    n_val = max(1, int(val_frac * len(Z)))
    Zv = torch.as_tensor(Z[perm[:n_val]], dtype=torch.float32)
    Zt = torch.as_tensor(Z[perm[n_val:]], dtype=torch.float32)
    d = X.shape[1]
    best = (-np.inf, None, None)
    for transforms, width in grid:
        torch.manual_seed(seed)
        flow = getattr(zuko.flows, kind)(d, transforms=transforms, hidden_features=(width, width))
        val, state = _train_flow(flow, Zt, Zv, patience=patience, lr=lr, batch=batch, max_epochs=max_epochs,
                                 time_limit=time_limit)
        print(f"[bench]   {kind} transforms={transforms} width={width}: held-out {val:.3f}", file=sys.stderr)
        if val > best[0]:
            flow.load_state_dict(state)
            best = (val, flow, (transforms, width))
    flow = best[1]
    offset = float(np.sum(np.log(sd)))

    def score_samples(Xn):
        with torch.no_grad():
            z = torch.as_tensor((Xn - mu) / sd, dtype=torch.float32)
            return flow().log_prob(z).double().numpy() - offset

    return score_samples


def fit_nsf(X, seed, params=None):
    return fit_flow(X, seed, params, kind="NSF")


def fit_maf(X, seed, params=None):
    return fit_flow(X, seed, params, kind="MAF")


def fit_iforest(X, seed, _params=None):
    return IsolationForest(n_estimators=300, random_state=seed).fit(X).score_samples


DENSITY_METHODS = {
    "EBMDensity": fit_ebm,
    "base alone": fit_ebm_base,
    "KDE": fit_kde,
    "GMM": fit_gmm,
    "NSF": fit_nsf,
    "MAF": fit_maf,
}


CLOCK = time.perf_counter  # --cpu-time: time.process_time


def run(fit, X, seed, params):
    """(score_samples or None, seconds, note)."""
    start = CLOCK()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            score = fit(X, seed, params)
    except NotImplementedError as exc:
        return None, None, str(exc)
    return score, CLOCK() - start, ""


# ------------------------------------------------------------------ tables
def _secs(s):
    return f"{s:.1f} s" if s < 10 else f"{s:.0f} s"


def _fmt(value, digits=3):
    return "-" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def density_table(names, args, ebm_params, flow_params):
    header = ["data", "n x d", *DENSITY_METHODS, "truth", "EBM - best", "EBM - flow", "EBM - base"]
    rows, notes, table_rows = [], {}, []
    for name in names:
        n_test = QUICK_N_TEST if args.quick else N_TEST_TOY
        X, X_test, true = load(name, args.n_train, n_test, args.seed)
        cells, lls = {}, {}
        for method, fit in DENSITY_METHODS.items():
            flows = method in ("NSF", "MAF")
            params = ebm_params if method in ("EBMDensity", "base alone") else flow_params if flows else None
            score, seconds, note = run(fit, X, args.seed, params)
            if score is None:
                notes[method] = note
                cells[method], lls[method] = "n/a", None
            else:
                ll = float(np.mean(score(X_test)))
                lls[method] = ll
                cells[method] = f"{ll:.3f} ({_secs(seconds)})"
            print(f"[bench] {name} {method}: {cells[method]}", file=sys.stderr, flush=True)
        baselines = [lls[m] for m in ("KDE", "GMM") if lls.get(m) is not None]
        ebm = lls.get("EBMDensity")
        gap_best = ebm - max(baselines) if ebm is not None and baselines else None
        gap_base = ebm - lls["base alone"] if ebm is not None and lls.get("base alone") is not None else None
        flows = [lls[m] for m in ("NSF", "MAF") if lls.get(m) is not None]
        gap_flow = ebm - max(flows) if ebm is not None and flows else None
        row = [name, f"{X.shape[0]} x {X.shape[1]}", *cells.values(), _fmt(true), _fmt(gap_best, 3),
               _fmt(gap_flow, 3), _fmt(gap_base, 3)]
        rows.append(row)
        if name in TABLES:
            table_rows.append((lls, true))
    if table_rows:  # the tables' average
        avg = ["tables' mean", ""]
        for method in DENSITY_METHODS:
            vals = [lls.get(method) for lls, _ in table_rows]
            avg.append("-" if any(v is None for v in vals) else f"{np.mean(vals):.3f}")
        avg += ["", "", "", ""]
        rows.append(avg)
    return header, rows, notes


def anomaly_sets(args):
    """(name, X_train, X_test, y_test with 1 = outlier)."""
    rng = np.random.RandomState(args.seed)
    digits = load_digits()
    X_all = digits.data + rng.uniform(0.0, 1.0, size=digits.data.shape)
    for k in args.outlier_digits:
        inl, out = X_all[digits.target != k], X_all[digits.target == k]
        X_tr, X_te = train_test_split(inl, test_size=0.3, random_state=args.seed)
        scaler = StandardScaler().fit(X_tr)
        X_test = np.vstack([X_te, out])
        y = np.r_[np.zeros(len(X_te)), np.ones(len(out))]
        yield f"digits (outlier {k})", scaler.transform(X_tr), scaler.transform(X_test), y
    bc = load_breast_cancer()  # target 1 = benign
    ben, mal = bc.data[bc.target == 1], bc.data[bc.target == 0]
    X_tr, X_te = train_test_split(ben, test_size=0.3, random_state=args.seed)
    scaler = StandardScaler().fit(X_tr)
    X_test = np.vstack([X_te, mal])
    y = np.r_[np.zeros(len(X_te)), np.ones(len(mal))]
    yield "breast cancer (malignant)", scaler.transform(X_tr), scaler.transform(X_test), y


def anomaly_table(args, ebm_params):
    methods = {"EBMDensity": fit_ebm, "GMM": fit_gmm, "KDE": fit_kde, "IsolationForest": fit_iforest}
    results = {}  # group -> method -> list of AUROC
    seconds = {}
    for name, X, X_test, y in anomaly_sets(args):
        group = "digits (mean over held-out digits)" if name.startswith("digits") else name
        for method, fit in methods.items():
            score, sec, note = run(fit, X, args.seed, ebm_params if method == "EBMDensity" else None)
            if score is None:
                continue
            s = score(X_test)
            s = np.where(np.isfinite(s), s, np.nanmin(s[np.isfinite(s)]) - 1.0 if np.isfinite(s).any() else 0.0)
            auc = roc_auc_score(y, -s)  # low density = outlier
            results.setdefault(group, {}).setdefault(method, []).append(auc)
            seconds.setdefault(group, {}).setdefault(method, []).append(sec)
            print(f"[bench] anomaly {name} {method}: AUROC {auc:.3f} ({_secs(sec)})", file=sys.stderr, flush=True)
    header = ["data", *methods]
    rows = []
    for group, by_method in results.items():
        row = [group]
        for method in methods:
            aucs, secs = by_method.get(method), seconds[group].get(method)
            row.append("n/a" if not aucs else f"{np.mean(aucs):.3f} ({_secs(np.mean(secs))})")
        rows.append(row)
    return header, rows


def markdown(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def csv_text(header, rows, title):
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([f"# {title}"])
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, short fits (~1 minute)")
    parser.add_argument("--datasets", nargs="+", default=None, choices=ALL, help="data sets of the density table")
    parser.add_argument("--n-train", type=int, default=None, help="training points of the 2-D toys (default 5000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--outlier-digits", type=int, nargs="+", default=None,
                        help="held-out digits of the anomaly table "
                        "(default: all ten; --quick: none, breast cancer only)")
    parser.add_argument("--no-anomaly", action="store_true", help="skip the anomaly-detection table")
    parser.add_argument("--cpu-time", action="store_true",
                        help="report this process's CPU seconds instead of wall seconds (robust on a shared "
                        "machine when every fit is single-threaded, as here)")
    parser.add_argument("--out", default=None, help="also write the tables to this file (.csv: CSV, else Markdown)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    global CLOCK
    if args.cpu_time:
        CLOCK = time.process_time
    names = args.datasets or (QUICK_DATASETS if args.quick else ALL)
    if args.n_train is None:
        args.n_train = QUICK_N_TRAIN if args.quick else 5000
    if args.outlier_digits is None:
        args.outlier_digits = [] if args.quick else list(range(10))
    ebm_params = dict(QUICK_EBM) if args.quick else {}
    flow_params = {"max_epochs": 20, "time_limit": 20.0} if args.quick else {}
    start = time.perf_counter()
    with threadpool_limits(1):
        header, rows, notes = density_table(names, args, ebm_params, flow_params)
        title1 = "Held-out log-likelihood, nats per sample (fit seconds)"
        out = [f"## {title1}\n", markdown(header, rows)]
        for method, note in notes.items():
            out.append(f"\n* {method}: {note}")
        tables = [(title1, header, rows)]
        if not args.no_anomaly:
            header2, rows2 = anomaly_table(args, ebm_params)
            title2 = "Anomaly detection, AUROC of score_samples (fit seconds)"
            out += [f"\n\n## {title2}\n", markdown(header2, rows2)]
            tables.append((title2, header2, rows2))
    clock = "CPU seconds of this process" if args.cpu_time else "wall-clock seconds"
    out.append(
        f"\n\nTotal {time.perf_counter() - start:.0f} s. Fit times are {clock}; on a shared machine "
        "compare them as ratios to the KDE and GMM columns of the same run."
    )
    text = "\n".join(out)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            if args.out.endswith(".csv"):
                f.write("\n".join(csv_text(h, r, t) for t, h, r in tables))
            else:
                f.write(text + "\n")


if __name__ == "__main__":
    main()
