"""NGEBMClassifier on MNIST-5k (28x28, conv net): calibration, accuracy and OOD detection.

The 5,000 MNIST digits of :func:`skebm.datasets.load_mnist_5k` are split
with ``train_test_split(test_size=1000, stratify=y, random_state=0)``
(4,000 training, 1,000 test digits); every model is refitted with seeds
``0 .. n_seeds - 1`` on that one split.

Table 1, calibration: accuracy, expected calibration error (15 bins, top
label) and NLL on the test digits of

- NGEBMClassifier with the package defaults (``energy="auto"``: the conv
  net for 28x28; ``energy_variance = approximate_mass = 0.01``);
- NGEBMClassifier with the per-network setting proposed for conv nets
  (``energy_variance=0.03, approximate_mass=0``);
- the same estimator and network with plain cross-entropy
  (``energy_variance = approximate_mass = 0``: same budget);
- scikit-learn's ``MLPClassifier`` (two hidden layers) on pixels / 255.

Target (as on 8x8 digits): ECE at most half of cross-entropy's at equal
accuracy.

Table 2, OOD AUROC (test digits in-distribution, higher scores = more
in-distribution) of each OOD score, against three sets of 1,000 images
with MNIST's value range:

- "smooth shapes": synthetic Fashion-MNIST stand-ins (random smooth blobs
  and oriented stripes, a centred soft mask), no download;
- uniform noise;
- scikit-learn's 8x8 digits upsampled (bilinear) to 28x28: other digits,
  other strokes and framing.

Usage::

    python benchmarks/bench_classifier_mnist.py [--quick] [--seeds N] [--max-iter N]
        [--threads N] [--out DIR] [--set name=value ...]
"""

import argparse
import json
import os
import time

import numpy as np
import torch
from scipy import ndimage
from sklearn.datasets import load_digits
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

from skebm import NGEBMClassifier
from skebm.datasets import load_mnist_5k
from skebm.metrics import expected_calibration_error, ood_auroc
from _common import parse_set

IMAGE_SHAPE = (1, 28, 28)
BASELINE = {"energy_variance": 0.0, "approximate_mass": 0.0}
CONV_PROPOSAL = {"energy_variance": 0.03, "approximate_mass": 0.0}
KINDS = ("logsumexp", "max_softmax", "approximate_mass")


def split_mnist():
    X, y = load_mnist_5k(return_X_y=True)
    return train_test_split(X, y, test_size=1000, stratify=y, random_state=0)


# ------------------------------------------------------------------ OOD sets
def smooth_shapes(n, rng):
    """Fashion-style stand-ins: smooth random blobs and stripes under a centred soft mask, in [0, 255]."""
    yy, xx = np.mgrid[0:28, 0:28] / 27.0 - 0.5
    out = np.empty((n, 28, 28))
    for i in range(n):
        if rng.rand() < 0.5:  # a garment-like smooth blob: low-pass filtered noise
            img = ndimage.gaussian_filter(rng.normal(size=(28, 28)), sigma=rng.uniform(2.0, 4.0))
        else:  # stripes of random orientation and frequency
            theta, freq = rng.uniform(0, np.pi), rng.uniform(2, 8)
            img = np.sin(2 * np.pi * freq * (np.cos(theta) * xx + np.sin(theta) * yy) + rng.uniform(0, 2 * np.pi))
        img = (img - img.min()) / (np.ptp(img) + 1e-12)
        w, h = rng.uniform(0.25, 0.45, size=2)
        mask = 1.0 / (1.0 + np.exp(((np.abs(xx) / w) ** 4 + (np.abs(yy) / h) ** 4 - 1.0) * 8.0))
        out[i] = 255.0 * img * mask
    return out.reshape(n, -1)


def upsampled_digits(n, rng):
    """scikit-learn's 8x8 digits (0..16) upsampled to 28x28 and scaled to [0, 255]."""
    X8 = load_digits().images
    idx = rng.choice(len(X8), size=n, replace=False)
    up = np.stack([ndimage.zoom(X8[i], 28 / 8, order=1) for i in idx])
    return np.clip(up / 16.0 * 255.0, 0, 255).reshape(n, -1)


def ood_sets(seed=0):
    rng = np.random.RandomState(seed)
    return {
        "smooth shapes": smooth_shapes(1000, rng),
        "uniform noise": rng.uniform(0, 255, size=(1000, 784)),
        "8x8 digits upsampled": upsampled_digits(1000, rng),
    }


# ------------------------------------------------------------------- models
def factories(max_iter, extra):
    kw = {} if max_iter is None else {"max_iter": max_iter}
    kw.update(extra)

    def ngebm(params):
        return lambda s: NGEBMClassifier(image_shape=IMAGE_SHAPE, random_state=s, **{**kw, **params})

    return {
        "NGEBMClassifier (defaults: beta=gamma=0.01)": ngebm({}),
        "NGEBMClassifier (beta=0.03, gamma=0)": ngebm(CONV_PROPOSAL),
        "cross-entropy (beta=gamma=0), same net": ngebm(BASELINE),
        "sklearn MLPClassifier (256, 128)": lambda s: MLPClassifier((256, 128), max_iter=200, early_stopping=False,
                                                                    random_state=s),
    }


def run(names_factories, X_train, y_train, X_test, y_test, seeds, oods):
    results = {}
    for name, factory in names_factories.items():
        r = {"acc": [], "ece": [], "nll": [], "time": [], "cpu": [], "ood": {}}
        sklearn_model = name.startswith("sklearn")
        for seed in seeds:
            model = factory(seed)
            Xtr, Xte = (X_train / 255.0, X_test / 255.0) if sklearn_model else (X_train, X_test)
            wall, cpu = time.perf_counter(), time.process_time()
            model.fit(Xtr, y_train)
            r["time"].append(time.perf_counter() - wall)
            r["cpu"].append(time.process_time() - cpu)
            proba = model.predict_proba(Xte)
            r["acc"].append(accuracy_score(y_test, model.classes_[proba.argmax(1)]))
            r["ece"].append(expected_calibration_error(y_test, proba, labels=model.classes_))
            r["nll"].append(log_loss(y_test, proba, labels=model.classes_))
            for ood_name, X_ood in oods.items():
                if sklearn_model:
                    s_in = model.predict_proba(Xte).max(1)
                    s_out = model.predict_proba(X_ood / 255.0).max(1)
                    r["ood"].setdefault(("max_softmax", ood_name), []).append(ood_auroc(s_in, s_out))
                    continue
                for kind in KINDS:
                    auroc = ood_auroc(model.ood_score(Xte, kind=kind), model.ood_score(X_ood, kind=kind))
                    r["ood"].setdefault((kind, ood_name), []).append(auroc)
            print(f"  seed {seed} {name}: acc {r['acc'][-1]:.4f} ece {r['ece'][-1]:.4f} "
                  f"nll {r['nll'][-1]:.3f} {r['time'][-1]:.0f} s ({r['cpu'][-1]:.0f} s CPU)", flush=True)
        results[name] = r
    return results


def _ms(values, digits=4):
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}"


def calibration_table(results, baseline):
    base_ece = np.mean(results[baseline]["ece"])
    lines = [
        "| model | accuracy | ECE | ECE / cross-entropy | NLL | fit time, s (under load) |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {_ms(r['acc'])} | {_ms(r['ece'])} | {np.mean(r['ece']) / base_ece:.2f} "
            f"| {_ms(r['nll'], 3)} | {np.median(r['time']):.0f} ({np.median(r['cpu']):.0f} CPU) |"
        )
    return "\n".join(lines)


def ood_table(results, oods):
    lines = ["| model | OOD set | " + " | ".join(KINDS) + " |", "|---|---|" + "---|" * len(KINDS)]
    for name, r in results.items():
        for ood_name in oods:
            cells = [_ms(r["ood"][(k, ood_name)], 3) if (k, ood_name) in r["ood"] else "-" for k in KINDS]
            lines.append(f"| {name} | {ood_name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, 300 updates")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default 3, quick 1)")
    parser.add_argument("--max-iter", type=int, default=None, help="updates of the NGEBMClassifier fits")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--set", nargs="*", metavar="NAME=VALUE", help="NGEBMClassifier parameters of every fit")
    parser.add_argument("--out", default=None, help="folder for classifier_mnist.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    seeds = list(range(args.seeds or (1 if args.quick else 3)))
    max_iter = args.max_iter if args.max_iter is not None else (300 if args.quick else None)
    X_train, X_test, y_train, y_test = split_mnist()
    oods = ood_sets()
    load = f", load average {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else ""
    n_iter = max_iter or NGEBMClassifier().max_iter
    print(f"# NGEBMClassifier on MNIST-5k: {len(X_train)} train / {len(X_test)} test, {len(seeds)} seed(s), "
          f"{n_iter} updates{load}\n", flush=True)
    results = run(factories(max_iter, parse_set(args.set)), X_train, y_train, X_test, y_test, seeds, oods)
    baseline = "cross-entropy (beta=gamma=0), same net"
    print("\n## Calibration on the 1,000 test digits\n\n" + calibration_table(results, baseline))
    print("\n## OOD AUROC (in-distribution: the test digits)\n\n" + ood_table(results, oods))
    base = results[baseline]
    print()
    for name in list(results)[:2]:
        r = results[name]
        ok = np.mean(r["ece"]) <= 0.5 * np.mean(base["ece"]) and np.mean(r["acc"]) >= np.mean(base["acc"]) - 0.005
        print(f"[{'PASS' if ok else 'FAIL'}] {name}: ECE {np.mean(r['ece']):.4f} <= half of cross-entropy's "
              f"{np.mean(base['ece']):.4f} at accuracy {np.mean(r['acc']):.4f} vs {np.mean(base['acc']):.4f}")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        dump = {name: {**{k: v for k, v in r.items() if k != "ood"},
                       "ood": {f"{k}|{o}": v for (k, o), v in r["ood"].items()}} for name, r in results.items()}
        with open(os.path.join(args.out, "classifier_mnist.json"), "w") as f:
            json.dump({"max_iter": n_iter, "seeds": seeds, "results": dump}, f, indent=1)
        print(f"\nresults written to {os.path.abspath(args.out)}")


if __name__ == "__main__":
    main()
