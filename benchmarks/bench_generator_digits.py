"""Sample quality of EBMGenerator on digits against scikit-learn samplers.

The 1797 digits are split (stratified, fixed seed) into a training half and
a held-out half. Every model is fitted on the training half and draws as
many samples as the held-out half holds. Samples are compared with the
held-out half in the feature space of a fixed digits classifier (the
hidden layer of an ``MLPClassifier`` trained on the training half with a
fixed seed):

- Frechet distance (:func:`skebm.metrics.frechet_distance`; lower is
  better). The distance between the two data halves is the floor.
- The share of samples the classifier assigns to each class, and the
  number of classes covered (at least 2.5% of the samples, a quarter of a
  fair share).

Baselines that also sample: ``GaussianMixture`` (full covariances, number
of components chosen by BIC) and ``BernoulliRBM`` (pixels scaled to [0, 1];
Gibbs chains from random binary images, the visible probabilities of the
last step as samples).

Target: EBMGenerator (default parameters) beats both baselines and covers
all 10 classes.

Usage::

    python benchmarks/bench_generator_digits.py [--quick] [--max-iter N] [--out DIR]
        [--set name=value ...]
"""

import argparse
import os
import time

import numpy as np
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import train_test_split
from sklearn.neural_network import BernoulliRBM, MLPClassifier
from sklearn.utils import check_random_state

from skebm import EBMGenerator
from skebm.datasets import load_digits_images
from skebm.metrics import frechet_distance
from _common import ebm_params, rbm_samples

SEED = 0
COVERED_SHARE = 0.025


class DigitsFeatures:
    """A fixed digits classifier whose hidden layer is the feature space."""

    def __init__(self, X, y):
        self.clf = MLPClassifier(hidden_layer_sizes=(128,), alpha=1e-3, max_iter=500, random_state=SEED)
        self.clf.fit(X / 16.0, y)

    def features(self, X):
        """ReLU activations of the hidden layer."""
        h = np.clip(X, 0, 16) / 16.0 @ self.clf.coefs_[0] + self.clf.intercepts_[0]
        return np.maximum(h, 0.0)

    def predict(self, X):
        return self.clf.predict(np.clip(X, 0, 16) / 16.0)


def split_digits():
    X, y = load_digits_images(return_X_y=True)
    X = X.astype(np.float64)
    return train_test_split(X, y, test_size=0.5, stratify=y, random_state=SEED)


def fit_gmm(X_train, n_samples):
    """GaussianMixture with the number of components chosen by BIC."""
    best = None
    for k in (5, 10, 20, 40):
        gmm = GaussianMixture(k, covariance_type="full", reg_covar=1e-2, random_state=SEED).fit(X_train)
        bic = gmm.bic(X_train)
        if best is None or bic < best[0]:
            best = (bic, gmm)
    gmm = best[1]
    samples, _ = gmm.sample(n_samples)
    rng = check_random_state(SEED)
    samples = samples[rng.permutation(n_samples)]  # GaussianMixture.sample orders by component
    return np.clip(samples, 0, 16), f"GaussianMixture ({gmm.n_components} components, BIC)"


def fit_rbm(X_train, n_samples, n_gibbs=1000):
    """BernoulliRBM on [0, 1] pixels; Gibbs chains from random binary images."""
    rbm = BernoulliRBM(n_components=256, learning_rate=0.02, batch_size=20, n_iter=100, random_state=SEED)
    rbm.fit(X_train / 16.0)
    p_v = rbm_samples(rbm, n_samples, SEED, n_gibbs)
    return 16.0 * p_v, f"BernoulliRBM (256 hidden, {n_gibbs} Gibbs steps)"


def fit_ebm(X_train, n_samples, params):
    gen = EBMGenerator(image_shape=(1, 8, 8), random_state=SEED, **params)
    gen.fit(X_train)
    samples = gen.sample(n_samples, random_state=SEED)
    return samples, gen


def evaluate(feat, samples, X_ref):
    pred = feat.predict(samples)
    counts = np.bincount(pred, minlength=10)
    return {
        "fd": frechet_distance(feat.features(samples), feat.features(X_ref)),
        "counts": counts,
        "covered": int(np.sum(counts >= COVERED_SHARE * len(samples))),
    }


def save_grid(samples, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from skebm.plotting import plot_sample_grid

    fig, ax = plt.subplots(figsize=(5, 5))
    plot_sample_grid(samples[:100], image_shape=(1, 8, 8), ax=ax, cmap="gray_r", title=title)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="EBMGenerator with max_iter=200 (not the defaults)")
    parser.add_argument("--max-iter", type=int, default=None, help="override EBMGenerator's max_iter")
    parser.add_argument("--set", nargs="*", metavar="NAME=VALUE", help="other EBMGenerator parameters")
    parser.add_argument("--out", default=None, help="folder for PNG sample grids")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    params = ebm_params(args, quick_max_iter=200)

    X_train, X_test, y_train, y_test = split_digits()
    n = len(X_test)
    feat = DigitsFeatures(X_train, y_train)
    load = f", load average {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else ""
    print(f"Digits sample quality: {len(X_train)} training, {n} held-out images, {n} samples per model{load}")
    print(f"feature classifier: MLPClassifier(128 hidden), held-out accuracy {feat.clf.score(X_test / 16, y_test):.3f}\n")

    rows = []
    rows.append(("data: training half vs held-out half (floor)", X_train[:n], None))
    start = time.perf_counter()
    samples, gen = fit_ebm(X_train, n, params)
    fit_s = time.perf_counter() - start
    shown = ", ".join(f"{k}={v!r}" for k, v in params.items()) or "defaults"
    rows.append((f"EBMGenerator ({shown})", samples, f"{fit_s:.0f} s ({1000 * fit_s / gen.n_iter_:.0f} ms/update)"))
    start = time.perf_counter()
    samples, name = fit_gmm(X_train, n)
    rows.append((name, samples, f"{time.perf_counter() - start:.0f} s"))
    start = time.perf_counter()
    samples, name = fit_rbm(X_train, n)
    rows.append((name, samples, f"{time.perf_counter() - start:.0f} s"))

    results = [(label, evaluate(feat, s, X_test), t) for label, s, t in rows]
    width = max(len(r[0]) for r in results)
    header = f"{'model':<{width}}  {'Frechet':>8}  {'classes':>7}  {'min/max share':>13}  fit + sample time"
    print(header)
    print("-" * len(header))
    for label, r, t in results:
        c = r["counts"] / r["counts"].sum()
        print(f"{label:<{width}}  {r['fd']:>8.2f}  {r['covered']:>4}/10  {c.min():>6.3f}/{c.max():.3f}  {t or '-'}")
    print(f"\nsamples per class (predicted by the feature classifier), of {n}:")
    print(f"{'model':<{width}}  " + " ".join(f"{k:>4}" for k in range(10)))
    for label, r, _ in results:
        print(f"{label:<{width}}  " + " ".join(f"{v:>4}" for v in r["counts"]))

    ebm, gmm, rbm = (r for _, r, _ in results[1:])
    print()
    ok = ebm["fd"] < gmm["fd"]
    print(f"[{'PASS' if ok else 'FAIL'}] EBMGenerator beats GaussianMixture ({ebm['fd']:.2f} vs {gmm['fd']:.2f})")
    ok = ebm["fd"] < rbm["fd"]
    print(f"[{'PASS' if ok else 'FAIL'}] EBMGenerator beats BernoulliRBM ({ebm['fd']:.2f} vs {rbm['fd']:.2f})")
    ok = ebm["covered"] == 10
    print(f"[{'PASS' if ok else 'FAIL'}] EBMGenerator covers all 10 classes ({ebm['covered']}/10)")

    if args.out:
        os.makedirs(args.out, exist_ok=True)
        for (label, s, _), tag in zip(rows, ("data", "ebm", "gmm", "rbm")):
            save_grid(s, os.path.join(args.out, f"digits_{tag}.png"), label.split(" (")[0])
        print(f"\nsample grids written to {os.path.abspath(args.out)}")


if __name__ == "__main__":
    main()
