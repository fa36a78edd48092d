"""EBMDensity(method=ScoreMatching()) on a 2-D mixture of six Gaussians on a ring: held-out log-likelihood.

Against the base alone and QuadratureML (exact maximum likelihood), over the noise level and the tilt bound.
The table is in benchmarks/reports/dsm.md::

    python benchmarks/bench_density_score_matching.py
"""

import time

import numpy as np

from skebm import EBMDensity
from skebm.density import QuadratureML, ScoreMatching


def ring(n, rng):
    """Six Gaussians of std 0.3 on a circle of radius 3."""
    t = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    centers = 3 * np.stack([np.cos(t), np.sin(t)], 1)
    return centers[rng.randint(6, size=n)] + 0.3 * rng.randn(n, 2)


def main():
    rng = np.random.RandomState(0)
    X, X_test = ring(1500, rng), ring(1000, rng)
    rows = [
        ("base alone (one Gaussian)", ScoreMatching(), {"base": "gaussian", "max_iter": 0}),
        ("ScoreMatching() (defaults: Gaussian base)", ScoreMatching(), {}),
        ("ScoreMatching(noise_level=0.2), Gaussian base", ScoreMatching(noise_level=0.2), {"base": "gaussian"}),
        ("ScoreMatching(noise_level=0.05), Gaussian base", ScoreMatching(noise_level=0.05), {"base": "gaussian"}),
        ("ScoreMatching(), base 'select'", ScoreMatching(), {"base": "select"}),
        ("ScoreMatching(tilt_bound=6.0), base 'select'", ScoreMatching(tilt_bound=6.0), {"base": "select"}),
        ("QuadratureML() (defaults)", QuadratureML(), {}),
    ]
    print("| model | held-out log-likelihood | log Z | epochs | fit (s, wall) |")
    print("|---|---:|---:|---:|---:|")
    for label, method, params in rows:
        start = time.perf_counter()
        est = EBMDensity(method=method, random_state=0, **params).fit(X)
        seconds = time.perf_counter() - start
        epochs = len(est.net_.history) if params.get("max_iter") != 0 else 0
        print(f"| {label} | {est.score(X_test):.3f} | {est.log_partition_:.3f} | {epochs} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
