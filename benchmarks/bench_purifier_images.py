"""EBMPurifier with its defaults: natural accuracy kept on MNIST-5k and the colour set.

A purifier that changes what clean images show is no defence. For each
set (split as in ``bench_generator_images.py``: stratified, seed 0), a
small CNN classifier (:class:`skebm.metrics.ClassifierFeatures`, seed 0)
is trained on the training images, an :class:`~skebm.EBMPurifier` with
only ``image_shape`` given is fitted on the same images, and the
classifier's accuracy on the first ``--n-test`` held-out images is
measured without and with purification (one purification per image, the
purifier's own defaults).

Target (the images issue): purified natural accuracy within 3 points of
the classifier's. Robustness is measured by ``bench_purifier.py``.

Usage::

    python benchmarks/bench_purifier_images.py [--sets mnist colour] [--n-test 500] [--set name=value ...]
        [--purify "n_purify_steps=50" "purify_step_size=5.0" ...]
"""

import argparse
import time

from skebm import EBMPurifier
from skebm.metrics import ClassifierFeatures
from _common import parse_set
from bench_generator_images import SEED, load_set


def run_set(name, n_test, params, variants=()):
    X_train, X_test, y_train, y_test, image_shape, _ = load_set(name)
    X_test, y_test = X_test[:n_test], y_test[:n_test]
    clf = ClassifierFeatures(image_shape=image_shape, random_state=SEED).fit(X_train, y_train)
    start = time.perf_counter()
    purifier = EBMPurifier(image_shape=image_shape, random_state=SEED, **params).fit(X_train)
    fit_s = time.perf_counter() - start
    clean, rows = clf.score(X_test, y_test), []
    for variant in ({}, *variants):  # purification settings tried on the same fitted purifier
        before = {k: purifier.get_params()[k] for k in variant}
        purifier.set_params(**variant)
        start = time.perf_counter()
        purified = purifier.purify(X_test, random_state=SEED)[0]
        purify_s = time.perf_counter() - start
        purifier.set_params(**before)
        after = clf.score(purified, y_test)
        label = ", ".join(f"{k}={v}" for k, v in variant.items())
        rows.append({"set": f"{name} ({label})" if variant else name, "clean": clean, "purified": after,
                     "drop": clean - after, "fit_s": fit_s, "purify_ms": 1000 * purify_s / len(X_test),
                     "step_size": purifier.step_size_})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="*", default=["mnist", "colour"])
    parser.add_argument("--n-test", type=int, default=500)
    parser.add_argument("--set", nargs="*", metavar="NAME=VALUE", help="EBMPurifier parameters beside the defaults")
    parser.add_argument("--purify", nargs="*", default=[], metavar="A=1;B=2",
                        help="purification settings (n_purify_steps, purify_step_size...) also tried on the fitted purifier")
    args = parser.parse_args(argv)
    params = parse_set(args.set)
    rows = []
    for name in args.sets:
        variants = [parse_set(v.split(";")) for v in args.purify]
        rows.extend(run_set(name, args.n_test, params, variants))
        print(f"  {name}: {rows[-1 - len(variants):]}", flush=True)
    print(f"\nEBMPurifier (defaults{', ' + str(params) if params else ''}), {args.n_test} held-out images per set\n")
    print("| set | classifier accuracy | purified accuracy | drop (points) | purifier fit | purify per image |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['set']} | {r['clean']:.3f} | {r['purified']:.3f} | {100 * r['drop']:.1f} | {r['fit_s']:.0f} s | "
              f"{r['purify_ms']:.1f} ms |")
    print()
    for r in rows:
        ok = r["drop"] <= 0.03
        print(f"[{'PASS' if ok else 'FAIL'}] {r['set']}: purified accuracy within 3 points ({100 * r['drop']:.1f})")


if __name__ == "__main__":
    main()
