"""Shared data sets, baselines and helpers of the density research scripts.

All scripts: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/density_research/<script>.py``.
Held-out log-likelihoods are in nats per sample in the units the models see
(toys: raw units; tables: standardised with the training split's scaler).
"""

import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neighbors import KernelDensity
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

try:  # the working tree may be mid-refactor: fall back to a snapshot of HEAD
    import skebm  # noqa: F401
except Exception as exc:  # pragma: no cover
    import subprocess
    import sys

    snap = "/tmp/skebm_head"
    if not os.path.isdir(os.path.join(snap, "skebm")):
        os.makedirs(snap, exist_ok=True)
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        subprocess.run(f"git -C {root} archive HEAD skebm | tar -x -C {snap}", shell=True, check=True)
    print(f"[common] import skebm failed ({exc!r}); using the HEAD snapshot in {snap}", file=sys.stderr)
    for key in [k for k in sys.modules if k == "skebm" or k.startswith("skebm.")]:
        del sys.modules[key]
    sys.path.insert(0, snap)

from skebm.datasets import make_toy_2d, toy_2d_log_density

torch.set_num_threads(1)

TOYS = ("8gaussians", "rings", "moons", "checkerboard", "2spirals")
TABLES = ("wine", "breast_cancer", "digits", "gauss10")


def toy(name, n_train=5000, n_test=5000, seed=0):
    """(X_train, X_test, true test LL or None) of a 2-D toy."""
    X = make_toy_2d(name, n_train, random_state=seed)
    X_test = make_toy_2d(name, n_test, random_state=seed + 1000)
    true = None if name == "checkerboard" else float(np.mean(toy_2d_log_density(name, X_test)))
    return X, X_test, true


def _gauss10_cov(d=10, seed=0):
    rng = np.random.RandomState(seed)
    A = rng.standard_normal((d, d))
    # a random correlation structure with a spread of scales
    cov = A @ A.T / d + 0.1 * np.eye(d)
    return cov


def table(name, seed=0, n_gauss=2000):
    """(Z_train, Z_test, true test LL or None): standardised by the training split."""
    rng = np.random.RandomState(seed)
    true_fn = None
    if name == "wine":
        X = load_wine().data
    elif name == "breast_cancer":
        X = load_breast_cancer().data
    elif name == "digits":
        X = load_digits().data + rng.uniform(0.0, 1.0, size=(1797, 64))  # uniform dequantisation
    elif name == "gauss10":
        from scipy.stats import multivariate_normal

        cov = _gauss10_cov()
        mvn = multivariate_normal(np.zeros(len(cov)), cov)
        X = mvn.rvs(n_gauss + 5000, random_state=rng)
        true_fn = mvn.logpdf
    else:
        raise ValueError(name)
    if name == "gauss10":
        X_train, X_test = X[:n_gauss], X[n_gauss:]
    else:
        X_train, X_test = train_test_split(X, test_size=0.3, random_state=seed)
    scaler = StandardScaler().fit(X_train)
    true = None
    if true_fn is not None:
        true = float(np.mean(true_fn(X_test)) + np.sum(np.log(scaler.scale_)))
    return scaler.transform(X_train), scaler.transform(X_test), true


def dataset(name, seed=0, n_train=5000):
    if name in TOYS:
        return toy(name, n_train=n_train, seed=seed)
    return table(name, seed=seed)


class Timer:
    """Wall seconds (``s``) and this process's CPU seconds (``cpu``).

    With one thread, CPU seconds are what the wall clock would read on an idle core:
    robust to the other jobs sharing the machine.
    """

    def __enter__(self):
        self.t0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.s = time.perf_counter() - self.t0
        self.cpu = time.process_time() - self.c0


def cv_kde(X, seed=0):
    scale = X.std(0).mean()
    grid = {"bandwidth": scale * np.geomspace(0.01, 1.0, 25)}
    with threadpool_limits(1):
        return GridSearchCV(KernelDensity(), grid, cv=5).fit(X).best_estimator_


def cv_gmm(X, seed=0, max_components=64):
    ks = [k for k in (1, 2, 4, 8, 12, 16, 24, 32, 48, 64) if k <= min(max_components, len(X) // 10)]
    grid = {"n_components": ks, "covariance_type": ["full", "diag"]}
    with threadpool_limits(1):
        return GridSearchCV(GaussianMixture(random_state=seed, reg_covar=1e-6), grid, cv=5).fit(X).best_estimator_


def flow_fit(X, seed=0, kind="nsf", max_epochs=1000, patience=30, lr=1e-3, batch=256, time_limit=300, val_frac=0.15,
             transforms=None, hidden=None):
    """A zuko flow trained by Adam with early stopping on a held-out split.

    Returns a callable ``log_prob(X) -> ndarray`` in X's units (it standardises internally).
    """
    import zuko

    torch.manual_seed(seed)
    rng = np.random.RandomState(seed)
    mu, sd = X.mean(0), X.std(0)
    Z = (X - mu) / sd
    perm = rng.permutation(len(Z))
    n_val = max(1, int(val_frac * len(Z)))
    Zv = torch.as_tensor(Z[perm[:n_val]], dtype=torch.float32)
    Zt = torch.as_tensor(Z[perm[n_val:]], dtype=torch.float32)
    d = X.shape[1]
    if kind == "nsf":
        flow = zuko.flows.NSF(d, transforms=transforms or (3 if d <= 2 else 5), hidden_features=hidden or (128, 128))
    else:
        flow = zuko.flows.MAF(d, transforms=transforms or 5, hidden_features=hidden or (128, 128))
    opt = torch.optim.Adam(flow.parameters(), lr)
    best, best_state, bad = -np.inf, None, 0
    t0 = time.perf_counter()
    for epoch in range(max_epochs):
        flow.train()
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
            best, bad = val, 0
            best_state = {k: v.clone() for k, v in flow.state_dict().items()}
        else:
            bad += 1
        if bad >= patience or time.perf_counter() - t0 > time_limit:
            break
    flow.load_state_dict(best_state)
    flow.eval()
    offset = float(np.sum(np.log(sd)))

    def log_prob(Xn):
        with torch.no_grad():
            Zn = torch.as_tensor((Xn - mu) / sd, dtype=torch.float32)
            return flow().log_prob(Zn).double().numpy() - offset

    log_prob.epochs = epoch + 1
    return log_prob
