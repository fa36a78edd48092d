"""EBMGenerator with its defaults on three image sets, against scikit-learn samplers.

One script, one judge per set, for the three sets of the images issue:

- ``digits``: scikit-learn's 8x8 digits (1,797);
- ``mnist``: MNIST-5k, 28x28 (:func:`skebm.datasets.load_mnist_5k`);
- ``colour``: the 32x32 colour stand-in for CIFAR-sized tensors
  (:func:`skebm.datasets.make_colour_digits`: MNIST-5k digits in random
  colours on random backgrounds; not CIFAR).

Each set is split with ``train_test_split(stratify=y, random_state=0)``
into training images and held-out images (1,000, or half of the digits).
Every model is fitted on the training images and draws 1,000 samples. The
samples are scored in the features of a fixed small CNN
(:class:`skebm.metrics.ClassifierFeatures`, seed 0) trained on the
*held-out* images only, which the generators never saw:

- Frechet distance between the samples' features and the held-out images'
  (lower is better; training images against held-out ones give the floor);
- class coverage: the classes the judge assigns to at least 3% of the
  samples, and the smallest and largest shares.

Baselines: ``GaussianMixture`` with diagonal and with full covariances
(number of components chosen by BIC) and, for the grayscale sets,
``BernoulliRBM``. Targets (the images issue): EBMGenerator with only
``image_shape`` given beats every baseline, covers all 10 classes with at
least 3% each; on MNIST-5k a Frechet distance of at most 100.

``--grid`` turns the script into the sweep that chose the defaults: each
``--grid`` entry is one configuration (``name=value;name=value``) fitted
and scored like the defaults, with no baselines unless asked.

Usage::

    python benchmarks/bench_generator_images.py [--sets digits mnist colour] [--quick]
        [--max-iter N] [--set name=value ...] [--grid "a=1;b=2" "a=2" ...]
        [--no-baselines] [--out DIR] [--threads N] [--jsonl FILE]

``--out`` writes a sample grid per model and set, and ``results.json``.
"""

import argparse
import json
import os
import time

import numpy as np
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import train_test_split
from sklearn.neural_network import BernoulliRBM
from sklearn.utils import check_random_state

from skebm import EBMGenerator
from skebm.metrics import ClassifierFeatures, frechet_distance
from _common import ebm_params, parse_set, rbm_samples

SEED = 0
N_SAMPLES = 1000
COVERED_SHARE = 0.03

# GaussianMixture components tried per set (BIC picks), per covariance type.
GMM_COMPONENTS = {
    "digits": {"diag": (10, 20, 50), "full": (5, 10, 20)},
    "mnist": {"diag": (10, 20, 50), "full": (5, 10)},
    "colour": {"diag": (10, 20, 50), "full": (1, 2)},  # full covariances of 3,072 features: minutes per component
}


def load_set(name):
    """``(X_train, X_test, y_train, y_test, image_shape, value_range)`` of one image set."""
    if name == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        split = train_test_split(X, y, test_size=0.5, stratify=y, random_state=SEED)
        return (*split, (1, 8, 8), (0.0, 16.0))
    if name == "mnist":
        from skebm.datasets import load_mnist_5k

        X, y = load_mnist_5k(return_X_y=True)
        return (*train_test_split(X, y, test_size=1000, stratify=y, random_state=SEED), (1, 28, 28), (0.0, 255.0))
    if name == "colour":
        from skebm.datasets import make_colour_digits

        X, y = make_colour_digits(return_X_y=True, random_state=SEED)
        return (*train_test_split(X, y, test_size=1000, stratify=y, random_state=SEED), (3, 32, 32), (0.0, 255.0))
    raise ValueError(f"unknown set {name!r}: digits, mnist or colour")


def judge(name, X_test, y_test, image_shape, cache_dir):
    """The set's ClassifierFeatures, fitted on the held-out images (cached on disk: it is fixed)."""
    import joblib

    path = os.path.join(cache_dir, f"judge_{name}.joblib") if cache_dir else None
    if path and os.path.exists(path):
        return joblib.load(path)
    feat = ClassifierFeatures(image_shape=image_shape, random_state=SEED).fit(X_test, y_test)
    if path:
        os.makedirs(cache_dir, exist_ok=True)
        joblib.dump(feat, path)
    return feat


def evaluate(feat, samples, X_ref):
    samples = np.asarray(samples, dtype=np.float64).reshape(len(samples), -1)
    counts = np.bincount(feat.predict(samples), minlength=10)
    share = counts / counts.sum()
    return {
        "fd": float(frechet_distance(samples, np.asarray(X_ref, dtype=np.float64), feature_extractor=feat)),
        "counts": counts.tolist(),
        "covered": int(np.sum(share >= COVERED_SHARE)),
        "min_share": float(share.min()),
        "max_share": float(share.max()),
    }


def evaluate_variant(feat, gen, X_ref, variant=None):
    """:func:`evaluate` of ``N_SAMPLES`` samples of ``gen`` drawn as ``variant`` says.

    ``variant`` is ``"START:N_STEPS"`` (``START`` as ``sample``'s ``start``: ``bank`` for the replay buffer,
    ``source`` for fresh noise), or None for ``sample``'s defaults; the chains' seed is ``SEED``.
    """
    kwargs = {}
    if variant is not None:
        start, n_steps = variant.split(":")
        kwargs = {"start": start, "n_steps": int(n_steps)}
    return evaluate(feat, gen.sample(N_SAMPLES, random_state=SEED, **kwargs), X_ref)


def fit_gmm(X_train, value_range, covariance_type, components):
    """GaussianMixture on [0, 1] pixels, number of components chosen by BIC."""
    low, high = value_range
    X = (np.asarray(X_train, dtype=np.float64) - low) / (high - low)
    best = None
    for k in components:
        gmm = GaussianMixture(k, covariance_type=covariance_type, reg_covar=1e-2 if covariance_type == "full" else 1e-3,
                              max_iter=100, random_state=SEED).fit(X)
        bic = gmm.bic(X)
        if best is None or bic < best[0]:
            best = (bic, gmm)
    gmm = best[1]
    samples, _ = gmm.sample(N_SAMPLES)
    samples = samples[check_random_state(SEED).permutation(N_SAMPLES)]  # sample() orders by component
    return low + (high - low) * np.clip(samples, 0, 1), f"GaussianMixture ({covariance_type}, {gmm.n_components} comp., BIC)"


def fit_rbm(X_train, value_range, n_components=256, n_gibbs=1000):
    """BernoulliRBM on binarised pixels; Gibbs chains from random binary images."""
    low, high = value_range
    rbm = BernoulliRBM(n_components=n_components, learning_rate=0.01, batch_size=20, n_iter=40, random_state=SEED)
    rbm.fit((np.asarray(X_train) > (low + high) / 2).astype(np.float64))
    p_v = rbm_samples(rbm, N_SAMPLES, SEED, n_gibbs)
    return low + (high - low) * p_v, f"BernoulliRBM ({n_components} hidden, binarised, {n_gibbs} Gibbs steps)"


def fit_ebm(X_train, image_shape, params):
    gen = EBMGenerator(image_shape=image_shape, random_state=SEED, **params)
    wall, cpu = time.perf_counter(), time.process_time()
    gen.fit(X_train)
    info = {"fit_s": time.perf_counter() - wall, "fit_cpu_s": time.process_time() - cpu}
    wall = time.perf_counter()
    samples = gen.sample(N_SAMPLES, random_state=SEED)
    info["sample_s"] = time.perf_counter() - wall
    return samples, gen, info


def save_grid(samples, image_shape, value_range, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from skebm.plotting import plot_sample_grid

    fig, ax = plt.subplots(figsize=(5, 5))
    plot_sample_grid(np.asarray(samples)[:100], image_shape=image_shape, ax=ax, value_range=value_range,
                     cmap="gray_r" if image_shape[0] == 1 else None, title=title)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def run_set(name, args, params, grid):
    X_train, X_test, y_train, y_test, image_shape, value_range = load_set(name)
    start = time.perf_counter()
    feat = judge(name, X_test, y_test, image_shape, args.cache)
    load = f", load average {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else ""
    print(f"\n## {name}: {len(X_train)} training, {len(X_test)} held-out images {image_shape}, {N_SAMPLES} samples "
          f"per model{load}\njudge: ClassifierFeatures fitted on the held-out images ({time.perf_counter() - start:.0f} s),"
          f" accuracy on the training images {feat.score(X_train, y_train):.3f}", flush=True)
    rows = [("data: training images vs held-out (floor)", X_train[:N_SAMPLES], None, "data")]
    configs = [("EBMGenerator (defaults" + (", " + ", ".join(f"{k}={v!r}" for k, v in params.items()) if params else "")
                + ")", params, "ebm")] if not grid else [
        (f"EBMGenerator ({g})", {**params, **parse_set(g.split(";"))}, f"grid{i}") for i, g in enumerate(grid)]
    for label, p, tag in ([] if args.no_ebm else configs):
        samples, gen, info = fit_ebm(X_train, image_shape, p)
        info["n_iter"] = gen.n_iter_
        rows.append((label, samples, info, tag))
        r = evaluate(feat, samples, X_test)
        print(f"  {label}: FD {r['fd']:.2f}, {r['covered']}/10 classes, fit {info['fit_s']:.0f} s wall / "
              f"{info['fit_cpu_s']:.0f} s CPU", flush=True)
    if not args.no_baselines and not (grid and not args.baselines):
        for cov, comps in GMM_COMPONENTS[name].items():
            if args.quick and cov == "full":
                continue
            start = time.perf_counter()
            samples, label = fit_gmm(X_train, value_range, cov, comps)
            rows.append((label, samples, {"fit_s": time.perf_counter() - start}, f"gmm_{cov}"))
            print(f"  {label}: {rows[-1][2]['fit_s']:.0f} s", flush=True)
        if image_shape[0] == 1:
            start = time.perf_counter()
            samples, label = fit_rbm(X_train, value_range)
            rows.append((label, samples, {"fit_s": time.perf_counter() - start}, "rbm"))
            print(f"  {label}: {rows[-1][2]['fit_s']:.0f} s", flush=True)

    results = [(label, evaluate(feat, s, X_test), info, tag) for label, s, info, tag in rows]
    print(f"\n| {name} model | Frechet | classes (>= 3%) | min / max share | fit |\n|---|---:|---:|---:|---|")
    for label, r, info, _ in results:
        t = "-" if info is None else f"{info['fit_s']:.0f} s" + (
            f" ({info['fit_cpu_s']:.0f} s CPU)" if "fit_cpu_s" in info else "")
        print(f"| {label} | {r['fd']:.2f} | {r['covered']}/10 | {r['min_share']:.3f} / {r['max_share']:.3f} | {t} |")
    by_tag = {tag: r for _, r, _, tag in results}
    if "ebm" in by_tag:
        ebm = by_tag["ebm"]
        print()
        for tag, r in by_tag.items():
            if tag.startswith(("gmm", "rbm")):
                print(f"[{'PASS' if ebm['fd'] < r['fd'] else 'FAIL'}] {name}: EBMGenerator beats {tag} "
                      f"({ebm['fd']:.2f} vs {r['fd']:.2f})")
        print(f"[{'PASS' if ebm['covered'] == 10 else 'FAIL'}] {name}: all 10 classes with >= 3% ({ebm['covered']}/10)")
        if name == "mnist":
            print(f"[{'PASS' if ebm['fd'] <= 100 else 'FAIL'}] mnist: Frechet distance <= 100 ({ebm['fd']:.2f})")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        for (label, samples, _, tag) in rows:
            save_grid(samples, image_shape, value_range, os.path.join(args.out, f"{name}_{tag}.png"), label.split(" (")[0])
    out = [{"set": name, "model": label, "tag": tag, **r, **({} if info is None else info)}
           for label, r, info, tag in results]
    if args.jsonl:
        with open(args.jsonl, "a") as f:
            for row in out:
                f.write(json.dumps(row, default=str) + "\n")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="*", default=["digits", "mnist", "colour"])
    parser.add_argument("--quick", action="store_true", help="max_iter=100, no full-covariance mixtures")
    parser.add_argument("--max-iter", type=int, default=None, help="override EBMGenerator's max_iter")
    parser.add_argument("--set", nargs="*", metavar="NAME=VALUE", help="EBMGenerator parameters beside the defaults")
    parser.add_argument("--grid", nargs="*", help="configurations to sweep, each 'name=value;name=value'")
    parser.add_argument("--baselines", action="store_true", help="with --grid: fit the baselines too")
    parser.add_argument("--no-baselines", action="store_true", help="skip the scikit-learn baselines")
    parser.add_argument("--no-ebm", action="store_true", help="only the baselines (and the data floor)")
    parser.add_argument("--out", default=None, help="folder for sample grids and results.json")
    parser.add_argument("--cache", default=os.path.join(os.path.dirname(__file__), "results", "judges"),
                        help="folder caching the fitted judges")
    parser.add_argument("--jsonl", default=None, help="append one JSON line per model to this file")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    params = ebm_params(args, quick_max_iter=100)
    results = [row for name in args.sets for row in run_set(name, args, params, args.grid)]
    if args.out:
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump({"params": params, "results": results}, f, indent=1, default=str)
        print(f"\nPNG files and results.json written to {os.path.abspath(args.out)}")


if __name__ == "__main__":
    main()
