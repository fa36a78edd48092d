"""The main job: ``python -m skebm --out results``.

Fits an :class:`~skebm.EBMGenerator` on scikit-learn's digits, writes a grid
of samples and a training-curve plot as PNG files, and prints where.
"""

import argparse
import time
from pathlib import Path

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m skebm", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results", help="output folder (default: results)")
    parser.add_argument("--max-iter", type=int, default=None, help="parameter updates (default: the estimator's)")
    parser.add_argument("--n-samples", type=int, default=100, help="samples in the grid (default: 100)")
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import EBMGenerator
    from .datasets import load_digits_images
    from .plotting import plot_sample_grid, plot_traces

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    digits = load_digits_images()
    params = {"image_shape": digits.image_shape, "random_state": args.random_state, "verbose": 0 if args.quiet else 1}
    if args.max_iter is not None:
        params["max_iter"] = args.max_iter
    gen = EBMGenerator(**params)
    start = time.perf_counter()
    gen.fit(digits.data)
    fit_time = time.perf_counter() - start
    samples = gen.sample(args.n_samples, random_state=args.random_state)

    fig, ax = plt.subplots(figsize=(6, 6))
    plot_sample_grid(samples, image_shape=digits.image_shape, ax=ax, cmap="gray_r", title="EBMGenerator samples (digits)")
    grid_path = out / "digits_samples.png"
    fig.savefig(grid_path, dpi=120, bbox_inches="tight")
    plt.close(fig)

    batches = [b for epoch in gen.net_.history for b in epoch["batches"]]
    curves = {k: [b[k] for b in batches] for k in ("train_loss", "energy_data", "energy_samples")}
    fig, ax = plt.subplots(figsize=(7, 4))
    plot_traces(curves, ax=ax, title="training curves")
    curve_path = out / "training_curves.png"
    fig.savefig(curve_path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    np.save(out / "digits_samples.npy", samples)

    print(f"fitted EBMGenerator on digits: {gen.n_iter_} updates in {fit_time:.0f} s")
    print(f"samples:         {grid_path.resolve()}")
    print(f"training curves: {curve_path.resolve()}")
    print(f"raw samples:     {(out / 'digits_samples.npy').resolve()}")


if __name__ == "__main__":
    main()
