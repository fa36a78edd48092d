"""EBMDensity against KernelDensity and GaussianMixture: held-out log-likelihood.

Run ``python benchmarks/bench_density.py`` (about an hour on two shared CPU
cores) or ``--quick`` (fewer updates, no tabular sets, steady state up to
10k steps; a few minutes).

Tables printed (markdown):

1. Held-out log-likelihood (nats per sample, in the data's own units) on the
   2-D toys of :mod:`skebm.datasets` (2,000 training and 5,000 test points)
   and on standardised scikit-learn tables (70/30 split): EBMDensity with
   its defaults, KernelDensity with the bandwidth chosen by 5-fold
   cross-validation, GaussianMixture with the number of components (and
   full or diagonal covariances) chosen by 5-fold cross-validation; the
   error bar of EBMDensity is the standard error of its ``log Z`` (AIS) or
   the grid quadrature error; fit times in seconds. "true" is the
   log-likelihood under the exact toy density (not available for the
   noiseless checkerboard).
2. Steady state: chains started from the fitted update bank and run 1k, 10k
   and 100k further MALA steps: squared MMD to held-out data (RBF kernel,
   median bandwidth, standardised units; "data" is the MMD between two
   held-out halves, the noise floor), the mean true log-density of the
   chains (vs the data's), and the mean energy gap chains - data.
"""

import argparse
import time

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neighbors import KernelDensity
from sklearn.preprocessing import StandardScaler

from skebm import EBMDensity
from skebm.datasets import make_toy_2d, toy_2d_log_density
from skebm.metrics import mmd

TOYS = ("8gaussians", "rings", "moons", "checkerboard")
TABLES = {"wine": load_wine, "breast_cancer": load_breast_cancer}


def toy(name):
    return make_toy_2d(name, 2000, random_state=0), make_toy_2d(name, 5000, random_state=1)


def table(name):
    X = TABLES[name]().data
    X_train, X_test = train_test_split(X, test_size=0.3, random_state=0)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def kde(X):
    scale = X.std(0).mean()
    grid = {"bandwidth": scale * np.geomspace(0.01, 1.0, 25)}
    return GridSearchCV(KernelDensity(), grid, cv=5).fit(X).best_estimator_


def gmm(X):
    ks = [k for k in (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48) if k <= len(X) // 10]
    grid = {"n_components": ks, "covariance_type": ["full", "diag"]}
    return GridSearchCV(GaussianMixture(random_state=0), grid, cv=5).fit(X).best_estimator_


def mean_loglik(model, X):
    return float(np.mean(model.score_samples(X)))


def compare(datasets, params):
    print("\n## Held-out log-likelihood (nats per sample, higher is better)\n")
    print("| data | n_train x d | EBMDensity | KernelDensity (CV) | GaussianMixture (CV) | best baseline - EBM | true | fit s (EBM / KDE / GMM) |")
    print("|---|---|---|---|---|---|---|---|")
    fitted = {}
    for name, (X, X_test) in datasets.items():
        ebm, t_ebm = timed(lambda: EBMDensity(**params, random_state=0).fit(X))
        kd, t_kde = timed(lambda: kde(X))
        gm, t_gmm = timed(lambda: gmm(X))
        ll_ebm, ll_kde, ll_gmm = mean_loglik(ebm, X_test), mean_loglik(kd, X_test), mean_loglik(gm, X_test)
        true = "-"
        if name in TOYS and name != "checkerboard":
            true = f"{np.mean(toy_2d_log_density(name, X_test)):.3f}"
        err = f"{ebm.log_partition_se_:.3f} ({ebm.log_partition_method_})"
        gap = max(ll_kde, ll_gmm) - ll_ebm
        kd_txt = f"{ll_kde:.3f} (bw {kd.bandwidth:.3g})"
        gm_txt = f"{ll_gmm:.3f} ({gm.n_components} {gm.covariance_type})"
        print(
            f"| {name} | {X.shape[0]} x {X.shape[1]} | {ll_ebm:.3f} +/- {err} | {kd_txt} | {gm_txt} | {gap:+.3f} | {true} "
            f"| {t_ebm:.0f} / {t_kde:.0f} / {t_gmm:.0f} |",
            flush=True,
        )
        fitted[name] = ebm
    return fitted


def steady_state(name, est, steps, n_chains=500):
    X, X_test = toy(name)
    scale = X.std(0)
    ref = X_test[:n_chains] / scale
    other = X_test[n_chains : 2 * n_chains] / scale
    energy_data = -np.mean(est.score_samples(X_test[:n_chains]))
    print(f"\n## Steady state on {name}: {n_chains} chains from the update bank, further MALA steps\n")
    print("| Langevin steps | MMD^2 to held-out data | mean true log-density | energy gap chains - data |")
    print("|---|---|---|---|")
    print(f"| data (noise floor) | {mmd(other, ref):.5f} | {np.mean(toy_2d_log_density(name, X_test[:n_chains])):.3f} | 0 |")
    for k in steps:
        x, seconds = timed(lambda: est.sample(n_chains, random_state=0, n_steps=k))
        gap = -np.mean(est.score_samples(x)) - energy_data
        print(
            f"| {k:,} | {mmd(x / scale, ref):.5f} | {np.mean(toy_2d_log_density(name, x)):.3f} | {gap:+.3f} |"
            f" ({seconds:.0f} s)",
            flush=True,
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run: fewer updates, toys only")
    parser.add_argument("--datasets", nargs="+", default=None, help=f"subset of {TOYS + tuple(TABLES)}")
    parser.add_argument("--steady-state", default="rings", help="toy of the steady-state table ('none' to skip)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # small networks: a second thread only adds overhead
    params = {"max_iter": 200} if args.quick else {}  # full run: the estimator's defaults
    names = args.datasets or (TOYS[:2] if args.quick else TOYS + tuple(TABLES))
    datasets = {name: toy(name) if name in TOYS else table(name) for name in names}
    fitted = compare(datasets, params)
    name = args.steady_state
    if name != "none":
        est = fitted.get(name) or EBMDensity(**params, random_state=0).fit(toy(name)[0])
        steady_state(name, est, (1000, 10000) if args.quick else (1000, 10000, 100000))


if __name__ == "__main__":
    main()
