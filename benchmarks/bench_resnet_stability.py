"""Training stability of the ResNet energy at 32x32, in fp32 and bf16.

``energy="resnet"`` is :class:`skebm.nn.ResNetEnergy` (SNGAN-style, width
128, 4 blocks; ``"auto"`` picks it above 32x32). This benchmark fits
EBMGenerator with it and the other defaults on CIFAR-shaped data and records, every update, the mean
energy of the data batch and of the Langevin samples, the loss and the
global L2 norm of the parameter gradients (recorded by
:class:`skebm.engine.SampleMonitor`), once with ``precision="fp32"`` and
once with ``precision="bf16"``. A stable fit keeps the two energies
together (their gap oscillates around zero instead of drifting), keeps the
gradient norm bounded and needs no roll-back of the divergence guard.

Data (``--data``):

- ``patches`` (default): 32x32 RGB patches of scikit-learn's two sample
  photographs (:func:`skebm.datasets.make_image_patches`), natural-image
  statistics with no download;
- ``mnist``: MNIST-5k digits padded to 32x32 and repeated to 3 channels.

On a CPU a default update of this network costs about 10 s in fp32 (64
chains of 20 steps), so the CPU run is short: ``--quick`` keeps the
network and every sampler setting but uses 16 chains of 10 steps and 60
updates; the full run (``--max-iter``, default 300, all defaults) is meant
for a GPU. Writes ``resnet_stability.png`` (the curves) and
``resnet_stability.json`` to ``--out`` and prints a table.

Usage::

    python benchmarks/bench_resnet_stability.py [--quick] [--max-iter N] [--data patches|mnist]
        [--precisions fp32 bf16] [--threads N] [--out DIR] [--set name=value ...]
"""

import argparse
import json
import math
import os
import time

import numpy as np
import torch

from skebm import EBMGenerator
from skebm.engine import SampleMonitor
from _common import parse_set


def load_data(kind, n):
    if kind == "patches":
        from skebm.datasets import make_image_patches

        d = make_image_patches(n, patch_size=32, grayscale=False, random_state=0)
        return d.data, d.image_shape
    from skebm.datasets import load_mnist_5k

    X, _ = load_mnist_5k(return_X_y=True)
    X = X[np.random.RandomState(0).permutation(len(X))[:n]].reshape(-1, 1, 28, 28)
    X = np.pad(X, ((0, 0), (0, 0), (2, 2), (2, 2)))
    X = np.repeat(X, 3, axis=1)
    return X.reshape(len(X), -1), (3, 32, 32)


def fit(X, image_shape, precision, params, every):
    monitor = SampleMonitor(every=every, n_samples=16)
    gen = EBMGenerator(energy="resnet", image_shape=image_shape, precision=precision, random_state=0,
                       callbacks=[monitor], **params)
    wall, cpu = time.perf_counter(), time.process_time()
    gen.fit(X)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rows = [row for epoch in gen.net_.history for row in epoch["batches"]]
    return gen, monitor, rows, wall, cpu


def summarise(rows, wall, cpu, module):
    e_data = np.array([r["energy_data"] for r in rows])
    e_samp = np.array([r["energy_samples"] for r in rows])
    gnorm = np.array([r.get("grad_norm", math.nan) for r in rows])
    loss = np.array([r["train_loss"] for r in rows])
    gap = e_samp - e_data
    half = len(rows) // 2
    finite = bool(np.all(np.isfinite(np.concatenate([e_data, e_samp, gnorm, loss]))))
    weights_finite = all(bool(torch.isfinite(p).all()) for p in module.parameters())
    return {
        "updates": len(rows),
        "finite": finite and weights_finite,
        "recoveries": int(sum(bool(r.get("recovered")) for r in rows)),
        "gap_first_half": float(np.mean(np.abs(gap[:half]))),
        "gap_second_half": float(np.mean(np.abs(gap[half:]))),
        "energy_range": float(np.max(np.abs(np.concatenate([e_data, e_samp])))),
        "grad_norm_median": float(np.nanmedian(gnorm)),
        "grad_norm_max": float(np.nanmax(gnorm)),
        "grad_norm_last_tenth": float(np.nanmedian(gnorm[-max(1, len(rows) // 10):])),
        "fit_s": wall,
        "fit_cpu_s": cpu,
    }


def plot(curves, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from skebm.plotting import _moving_average, save_sample_evolution

    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    for i, (precision, rows) in enumerate(curves.items()):
        x = np.arange(1, len(rows) + 1)
        window = max(1, len(rows) // 20)
        for ax, key, label in ((axes[0], "energy_data", "data"), (axes[0], "energy_samples", "samples")):
            y = np.array([r[key] for r in rows])
            style = "-" if key == "energy_data" else "--"
            ax.plot(x, y, color=f"C{i}", alpha=0.2, linestyle=style)
            ax.plot(x, _moving_average(y, window), color=f"C{i}", linestyle=style, label=f"{precision}: {label}")
        gap = np.array([r["energy_samples"] - r["energy_data"] for r in rows])
        axes[1].plot(x, gap, color=f"C{i}", alpha=0.2)
        axes[1].plot(x, _moving_average(gap, window), color=f"C{i}", label=precision)
        g = np.array([r.get("grad_norm", np.nan) for r in rows])
        axes[2].plot(x, g, color=f"C{i}", alpha=0.2)
        axes[2].plot(x, _moving_average(g, window), color=f"C{i}", label=precision)
    axes[0].set_title("mean energies")
    axes[0].set_ylabel("E(x) / T")
    axes[1].axhline(0, color="k", linewidth=0.8)
    axes[1].set_title("gap: E(samples) - E(data)")
    axes[1].set_ylabel("energy gap")
    axes[2].set_yscale("log")
    axes[2].set_title("parameter gradient norm")
    axes[2].set_ylabel("global L2 norm")
    for ax in axes:
        ax.set_xlabel("update")
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 chains of 10 steps, 60 updates (same network)")
    parser.add_argument("--max-iter", type=int, default=None, help="updates (default 300, quick 60)")
    parser.add_argument("--data", choices=("patches", "mnist"), default="patches")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=("fp32", "bf16"))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--set", nargs="*", metavar="NAME=VALUE", help="other EBMGenerator parameters")
    parser.add_argument("--out", default="resnet_stability", help="output folder (default: resnet_stability)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    params = {"batch_size": 16, "n_steps": 10} if args.quick else {}
    params.update(parse_set(args.set))
    params["max_iter"] = args.max_iter or (60 if args.quick else 300)
    X, image_shape = load_data(args.data, 5000 if args.data == "mnist" else 4000)
    os.makedirs(args.out, exist_ok=True)
    load = f", load average {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else ""
    print(f"ResNet energy stability: {args.data} {image_shape}, {len(X)} images, "
          f"settings: defaults{''.join(f', {k}={v!r}' for k, v in params.items())}{load}", flush=True)

    curves, table = {}, {}
    for precision in args.precisions:
        gen, monitor, rows, wall, cpu = fit(X, image_shape, precision, params, every=max(1, params["max_iter"] // 4))
        assert type(gen.net_.module_).__name__ == "ResNetEnergy", type(gen.net_.module_).__name__
        curves[precision] = rows
        table[precision] = summarise(rows, wall, cpu, gen.net_.module_)
        save_sample_evolution(monitor, os.path.join(args.out, f"resnet_samples_{precision}.png"), n_cols=8)
        print(f"  {precision}: {len(rows)} updates in {wall:.0f} s ({cpu:.0f} s CPU)", flush=True)

    keys = ["updates", "finite", "recoveries", "gap_first_half", "gap_second_half", "energy_range",
            "grad_norm_median", "grad_norm_max", "grad_norm_last_tenth", "fit_s", "fit_cpu_s"]
    print("\n| quantity | " + " | ".join(table) + " |")
    print("|---|" + "---|" * len(table))
    for key in keys:
        cells = []
        for precision in table:
            v = table[precision][key]
            cells.append(f"{v:.3g}" if isinstance(v, float) else str(v))
        label = {"fit_s": "fit time, s (under load)", "fit_cpu_s": "fit CPU time, s"}.get(key, key)
        print(f"| {label} | " + " | ".join(cells) + " |")
    plot(curves, os.path.join(args.out, "resnet_stability.png"))
    with open(os.path.join(args.out, "resnet_stability.json"), "w") as f:
        json.dump({"data": args.data, "params": params, "summary": table,
                   "curves": {p: [{k: v for k, v in r.items() if isinstance(v, (int, float))} for r in rows]
                              for p, rows in curves.items()}}, f)
    ok = all(t["finite"] and t["recoveries"] == 0 for t in table.values())
    print(f"\n[{'PASS' if ok else 'FAIL'}] finite energies and gradients, no roll-back, in "
          f"{' and '.join(table)}")
    print(f"curves: {os.path.abspath(os.path.join(args.out, 'resnet_stability.png'))}")


if __name__ == "__main__":
    main()
