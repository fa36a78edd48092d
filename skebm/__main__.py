"""The main job: ``python -m skebm --out results``.

Fits an :class:`~skebm.EBMGenerator` on scikit-learn's 8x8 digits with a
progress bar, and writes three pictures: the samples over training (one
row per snapshot: the first thing to look at), a grid of final samples, and
the training curves; plus the raw samples as ``.npy``.
"""

import argparse
import os
import time
from pathlib import Path

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m skebm", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results", help="output folder (default: results)")
    parser.add_argument("--max-iter", type=int, default=None, help="parameter updates (default: the estimator's)")
    parser.add_argument("--n-samples", type=int, default=100, help="samples in the final grid (default: 100)")
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import EBMGenerator
    from .generator import auto_max_iter, auto_n_steps
    from .datasets import load_digits_images
    from .engine import SampleMonitor
    from .plotting import plot_sample_evolution, plot_sample_grid, plot_training

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    digits = load_digits_images()
    params = {"image_shape": digits.image_shape, "random_state": args.random_state, "verbose": 0 if args.quiet else 1}
    if args.max_iter is not None:
        params["max_iter"] = args.max_iter
    gen = EBMGenerator(**params)
    n_values = int(np.prod(digits.image_shape))
    n_updates = auto_max_iter(n_values) if gen.max_iter == "auto" else gen.max_iter
    n_steps = auto_n_steps(n_values) if gen.n_steps == "auto" else gen.n_steps
    every = max(1, n_updates // 10)
    monitor = SampleMonitor(every=every, n_samples=16, start="bank", random_state=args.random_state)
    gen.set_params(callbacks=[("monitor", monitor)])
    print(
        f"skebm demo: EBMGenerator on scikit-learn's {len(digits.data)} digits (8x8), {n_updates} updates of "
        f"{gen.batch_size} Langevin chains of {n_steps} steps; about a minute on 2 CPU cores "
        f"(load average now {os.getloadavg()[0]:.1f})." if hasattr(os, "getloadavg") else "",
        flush=True,
    )
    start = time.perf_counter()
    gen.fit(digits.data)
    fit_time = time.perf_counter() - start
    samples = gen.sample(args.n_samples, random_state=args.random_state)

    fig, ax = plt.subplots(figsize=(8, 6))
    plot_sample_evolution(monitor, ax=ax, value_range=(-1, 1), cmap="gray_r",
                          title=f"samples every {every} updates (rows: training time; chains from the replay buffer)")
    evolution_path = out / "digits_samples_over_training.png"
    fig.savefig(evolution_path, dpi=120, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 6))
    plot_sample_grid(samples, image_shape=digits.image_shape, ax=ax, cmap="gray_r",
                     title=f"EBMGenerator samples ({n_steps} Langevin steps from the replay buffer)")
    grid_path = out / "digits_samples.png"
    fig.savefig(grid_path, dpi=120, bbox_inches="tight")
    plt.close(fig)

    axes = plot_training(gen, keys=["train_loss", "energy_data", "energy_samples", "grad_norm"])
    curve_path = out / "training_curves.png"
    np.ravel(axes)[0].figure.savefig(curve_path, dpi=120, bbox_inches="tight")
    plt.close("all")
    np.save(out / "digits_samples.npy", samples)

    print(f"fitted in {fit_time:.0f} s ({gen.n_iter_} updates)")
    print(f"samples over training: {evolution_path.resolve()}")
    print(f"samples:               {grid_path.resolve()}")
    print(f"training curves:       {curve_path.resolve()}")
    print(f"raw samples:           {(out / 'digits_samples.npy').resolve()}")


if __name__ == "__main__":
    main()
