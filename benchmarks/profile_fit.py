"""Where the time of an EBMGenerator fit goes: chains, parameter step, the rest.

Fits EBMGenerator with its defaults on one image set and splits the wall
clock of the fit into

- chains: drawing the negatives (chain starts from the bank, the Langevin
  steps, writing the chains back): ``EBMNet.draw_negatives``;
- parameter step: the energies of data and negatives, the loss, its
  backward pass and the optimiser step (the rest of ``train_step``);
- the rest: batches of data, callbacks, skorch's loop, validation.

The split is measured by timing the engine's own methods in the fitting
process (no profiler overhead), ``torch.set_num_threads`` as the fit sets it.

Usage::

    python benchmarks/profile_fit.py [--set-name mnist] [--max-iter 200] [--set name=value ...]
"""

import argparse
import functools
import time

from skebm import EBMGenerator
from skebm.engine import EBMNet
from _common import parse_set
from bench_generator_images import load_set


def _timed(cls, name, totals):
    original = getattr(cls, name)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            totals[name] += time.perf_counter() - start

    setattr(cls, name, wrapper)
    return original


def profile(X, image_shape, params):
    totals = {"draw_negatives": 0.0, "train_step": 0.0}
    originals = {name: _timed(EBMNet, name, totals) for name in totals}
    try:
        gen = EBMGenerator(image_shape=image_shape, random_state=0, **params)
        start = time.perf_counter()
        gen.fit(X)
        total = time.perf_counter() - start
    finally:
        for name, original in originals.items():
            setattr(EBMNet, name, original)
    chains = totals["draw_negatives"]
    step = totals["train_step"] - chains
    return {"updates": gen.n_iter_, "total_s": total, "chains_s": chains, "step_s": step,
            "rest_s": total - totals["train_step"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set-name", default="mnist", choices=["digits", "mnist", "colour"])
    parser.add_argument("--max-iter", type=int, default=200)
    parser.add_argument("--set", nargs="*", metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    X, _, _, _, image_shape, _ = load_set(args.set_name)
    params = {"max_iter": args.max_iter, **parse_set(args.set)}
    r = profile(X, image_shape, params)
    print(f"EBMGenerator on {args.set_name} {image_shape}, {params}: {r['updates']} updates in {r['total_s']:.1f} s")
    print("\n| part | seconds | share |\n|---|---:|---:|")
    for key, label in (("chains_s", "chains (Langevin negatives)"), ("step_s", "parameter step (loss, backward, Adam)"),
                       ("rest_s", "data, callbacks, loop")):
        print(f"| {label} | {r[key]:.1f} | {r[key] / r['total_s']:.0%} |")


if __name__ == "__main__":
    main()
