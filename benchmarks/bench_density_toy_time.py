"""Fit cost of EBMDensity's defaults on the 2-D toys, as a ratio to the cross-validated GaussianMixture.

For each toy of :mod:`skebm.datasets` (``--n-train`` training points,
5,000 test points, seed 0): the CPU seconds of this process (every fit
single-threaded) and the held-out log-likelihood of ``EBMDensity()`` and of
the 5-fold CV GaussianMixture of ``bench_density.py``, and their time ratio.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_density_toy_time.py [--datasets moons rings] [--n-train 5000]
"""

import argparse
import os
import sys
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_density import TOYS, fit_ebm, fit_gmm, load  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(TOYS), choices=TOYS)
    parser.add_argument("--n-train", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in args.datasets:
            X, X_test, true = load(name, args.n_train, 5000, args.seed)
            cells = {}
            for label, fit in (("GMM (CV)", fit_gmm), ("EBMDensity", fit_ebm)):
                start = time.process_time()
                score = fit(X, args.seed, {})
                cells[label] = (float(np.mean(score(X_test))), time.process_time() - start)
                print(f"[toy-time] {name} {label}: {cells[label][0]:.3f} ({cells[label][1]:.1f} s CPU)",
                      file=sys.stderr, flush=True)
            (ll_e, s_e), (ll_g, s_g) = cells["EBMDensity"], cells["GMM (CV)"]
            truth = "-" if true is None else f"{true:.3f}"
            rows.append(f"| {name} | {ll_e:.3f} | {ll_g:.3f} | {truth} | {s_e:.1f} | {s_g:.1f} | {s_e / s_g:.1f} |")
    print("| toy | EBMDensity | GMM (CV) | truth | EBM CPU s | GMM CPU s | EBM / GMM time |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
