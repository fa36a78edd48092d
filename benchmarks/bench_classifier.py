"""NGEBMClassifier on digits: calibration, accuracy, fit time and OOD detection.

Run ``python benchmarks/bench_classifier.py`` (about 20-30 minutes on two
shared CPU cores) or ``--quick`` (two seeds, fewer updates, a few minutes).

Tables printed (markdown):

1. Digits as flat features (the default MLP), N seeds, 50/50 stratified
   split: accuracy, expected calibration error (15 bins, top label) and
   negative log-likelihood of NGEBMClassifier's defaults, of the same
   estimator with ``energy_variance = approximate_mass = 0`` (plain
   cross-entropy: same network, same budget), of JEM mode
   (``generative_weight=1``, 20 Langevin steps per update), of
   scikit-learn's MLPClassifier (same hidden layers) and of
   LogisticRegression; fit time relative to the baseline.
2. The same for digits as 8x8 images with the default conv net (NG-EBM vs
   its baseline; skipped with ``--quick``).
3. OOD detection: train on digits 0-4; held-out 0-4 are in-distribution,
   digits 5-9 and uniform-noise images out-of-distribution; AUROC of each
   OOD score of NGEBMClassifier and of the baseline.
"""

import argparse
import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skebm import NGEBMClassifier
from skebm.metrics import expected_calibration_error, ood_auroc

BASELINE = {"energy_variance": 0.0, "approximate_mass": 0.0}


def models(max_iter, with_jem):
    """name -> factory(seed) for the calibration table (flat features)."""
    out = {
        "NGEBMClassifier (defaults)": lambda s: NGEBMClassifier(max_iter=max_iter, random_state=s),
        "baseline (beta = gamma = 0)": lambda s: NGEBMClassifier(max_iter=max_iter, random_state=s, **BASELINE),
    }
    if with_jem:
        out["JEM mode (generative_weight=1)"] = lambda s: NGEBMClassifier(
            max_iter=max_iter, generative_weight=1.0, random_state=s, **BASELINE
        )
    out["sklearn MLPClassifier (128, 128, 128)"] = lambda s: make_pipeline(
        StandardScaler(), MLPClassifier((128, 128, 128), max_iter=500, random_state=s)
    )
    out["sklearn LogisticRegression"] = lambda s: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return out


def evaluate(factories, X, y, seeds):
    """Fit every model on every seed's split; return name -> dict of per-seed lists."""
    results = {name: {"acc": [], "ece": [], "nll": [], "time": []} for name in factories}
    for seed in seeds:
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.5, random_state=seed, stratify=y)
        for name, factory in factories.items():
            model = factory(seed)
            start = time.perf_counter()
            model.fit(Xtr, ytr)
            elapsed = time.perf_counter() - start
            proba = model.predict_proba(Xte)
            r = results[name]
            r["acc"].append(accuracy_score(yte, model.classes_[proba.argmax(1)]))
            r["ece"].append(expected_calibration_error(yte, proba, labels=model.classes_))
            r["nll"].append(log_loss(yte, proba, labels=model.classes_))
            r["time"].append(elapsed)
            print(f"  seed {seed} {name}: acc {r['acc'][-1]:.4f} ece {r['ece'][-1]:.4f} {elapsed:.1f}s", flush=True)
    return results


def calibration_table(results, baseline):
    base_time = np.median(results[baseline]["time"])
    base_ece = np.mean(results[baseline]["ece"])
    lines = [
        "| model | accuracy | ECE | ECE / baseline | NLL | fit time (s) | time / baseline |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {np.mean(r['acc']):.4f} ± {np.std(r['acc']):.4f} "
            f"| {np.mean(r['ece']):.4f} ± {np.std(r['ece']):.4f} | {np.mean(r['ece']) / base_ece:.2f} "
            f"| {np.mean(r['nll']):.4f} | {np.median(r['time']):.1f} | {np.median(r['time']) / base_time:.2f}x |"
        )
    return "\n".join(lines)


def ood_table(X, y, seeds, max_iter, image_shape=None):
    rng = np.random.RandomState(0)
    noise = rng.uniform(X.min(), X.max(), size=(500, X.shape[1]))
    inside = y < 5
    kinds = ("logsumexp", "max_softmax", "approximate_mass")
    rows = {}
    for name, params in (("NGEBMClassifier (defaults)", {}), ("baseline (beta = gamma = 0)", BASELINE)):
        aurocs = {(kind, ood): [] for kind in kinds for ood in ("digits 5-9", "uniform noise")}
        for seed in seeds:
            Xtr, Xte, ytr, _ = train_test_split(
                X[inside], y[inside], test_size=0.3, random_state=seed, stratify=y[inside]
            )
            clf = NGEBMClassifier(image_shape=image_shape, max_iter=max_iter, random_state=seed, **params)
            clf.fit(Xtr, ytr)
            for kind in kinds:
                s_in = clf.ood_score(Xte, kind=kind)
                aurocs[(kind, "digits 5-9")].append(ood_auroc(s_in, clf.ood_score(X[~inside], kind=kind)))
                aurocs[(kind, "uniform noise")].append(ood_auroc(s_in, clf.ood_score(noise, kind=kind)))
        rows[name] = aurocs
        print(f"  OOD {name} done", flush=True)
    lines = ["| model | OOD set | " + " | ".join(kinds) + " |", "|---|---|" + "---|" * len(kinds)]
    for name, aurocs in rows.items():
        for ood in ("digits 5-9", "uniform noise"):
            cells = [f"{np.mean(aurocs[(kind, ood)]):.3f} ± {np.std(aurocs[(kind, ood)]):.3f}" for kind in kinds]
            lines.append(f"| {name} | {ood} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, 300 updates, no conv table")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default 5, quick 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n_seeds = args.seeds or (2 if args.quick else 5)
    seeds = list(range(n_seeds))
    max_iter = 300 if args.quick else None  # None: the estimator's default
    kwargs_iter = {} if max_iter is None else {"max_iter": max_iter}
    default_iter = NGEBMClassifier().max_iter
    X, y = load_digits(return_X_y=True)

    print(f"# NGEBMClassifier benchmark: digits, {n_seeds} seeds, {max_iter or default_iter} updates\n", flush=True)
    factories = models(max_iter or default_iter, with_jem=True)
    flat = evaluate(factories, X, y, seeds)

    tables = [
        "## Digits, flat features (default MLP), 50/50 split\n\n"
        + calibration_table(flat, "baseline (beta = gamma = 0)")
    ]
    if not args.quick:
        conv = {
            "NGEBMClassifier (defaults), conv": lambda s: NGEBMClassifier(
                image_shape=(1, 8, 8), random_state=s, **kwargs_iter
            ),
            "baseline (beta = gamma = 0), conv": lambda s: NGEBMClassifier(
                image_shape=(1, 8, 8), random_state=s, **BASELINE, **kwargs_iter
            ),
        }
        tables.append(
            "## Digits as 8x8 images (default conv net), 50/50 split\n\n"
            + calibration_table(evaluate(conv, X, y, seeds), "baseline (beta = gamma = 0), conv")
        )
    tables.append(
        "## OOD AUROC (train on digits 0-4, flat features; in-distribution = held-out 0-4)\n\n"
        + ood_table(X, y, seeds, max_iter or default_iter)
    )
    print()
    print("\n\n".join(tables))


if __name__ == "__main__":
    main()
