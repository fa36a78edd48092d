"""Widths of the AIS bracket of log Z: energies of known log Z, and fitted EBMDensity models.

For each case, forward AIS from a base density (a stochastic lower bound of
``log Z``) and reverse AIS from samples of the model (a stochastic upper
bound) run with :func:`skebm.mcmc.log_partition_bracket` (256 chains, one
MALA step per temperature, seed 0); the table gives both bounds, the width
``upper - lower`` and the ``log Z`` they should hold:

- energies of known ``log Z`` (the true value; reverse AIS from exact
  draws): a 2-D Gaussian, a correlated 10-D Gaussian (three schedules), a 2-D
  mixture of two Gaussians, and a bimodal energy whose base covers one mode
  only, with few temperatures: the case the bracket is for (forward AIS
  misses the mode; the width says so);
- fitted :class:`~skebm.EBMDensity` models (``method="importance"`` and
  ``"longrun"``) on a correlated 10-D Gaussian (2,000 points) and on
  scikit-learn's wine table (178 x 13, standardised): their
  ``log_partition_`` and its standard error ``log_partition_se_``
  (importance sampling from the base, 262,144 draws)
  against :meth:`~skebm.EBMDensity.log_partition_bracket` (reverse AIS from
  the chains of ``sample``). A negative width means the two bounds met
  within their noise. A second table gives the chain ESS and R-hat of
  their :meth:`~skebm.EBMDensity.diagnose`. Where ``log_partition_`` falls
  outside the bracket, a long forward AIS run (1,000
  temperatures) referees, in the log below the tables.

Usage::

    python benchmarks/bench_log_partition.py [--quick] [--out FILE]

``--quick`` (a smoke run, about a minute) fits for fewer updates and uses
fewer chains; the numbers then mean little.
"""

import argparse
import math
import sys
import time

import numpy as np
import torch

RERUN = "python benchmarks/bench_log_partition.py --out benchmarks/reports/log_partition.md"


def _known_cases(n_chains):
    """``(name, energy, base, exact draws, true log Z, n_temperatures)`` of the energies of known log Z."""
    from skebm.mcmc import GaussianMixtureSource

    g = torch.Generator().manual_seed(0)
    cases = []

    def gaussian(d, scale_rows):
        a = torch.randn(d, d, generator=g) * scale_rows / math.sqrt(d) + torch.eye(d)
        cov = a @ a.T
        precision = torch.linalg.inv(cov)

        def energy(x):
            return 0.5 * ((x @ precision) * x).sum(1)

        true = 0.5 * d * math.log(2 * math.pi) + 0.5 * float(torch.logdet(cov))
        draws = torch.randn(n_chains, d, generator=g) @ torch.linalg.cholesky(cov).T
        base = GaussianMixtureSource([1.0], torch.zeros(1, d), (2.0 * torch.eye(d))[None])
        return energy, base, draws, true

    energy, base, draws, true = gaussian(2, 0.5)
    cases.append(("Gaussian 2-D", energy, base, draws, true, 200))
    energy, base, draws, true = gaussian(10, 0.5)
    cases.append(("correlated Gaussian 10-D", energy, base, draws, true, 50))
    cases.append(("correlated Gaussian 10-D", energy, base, draws, true, 200))
    cases.append(("correlated Gaussian 10-D", energy, base, draws, true, 1000))

    means, weights, s = torch.tensor([[-2.0, 0.0], [2.0, 1.0]]), torch.tensor([0.3, 0.7]), 0.7

    def mixture(x):  # 3 times a mixture: log Z = log 3
        d2 = ((x[:, None, :] - means) ** 2).sum(-1)
        return -(math.log(3.0) + torch.logsumexp(torch.log(weights) - d2 / (2 * s**2) - math.log(2 * math.pi * s**2), 1))

    component = torch.multinomial(weights, n_chains, replacement=True, generator=g)
    draws = means[component] + s * torch.randn(n_chains, 2, generator=g)
    broad = GaussianMixtureSource([1.0], [[0.0, 0.0]], [4.0 * torch.eye(2)])
    cases.append(("Gaussian mixture 2-D", mixture, broad, draws, math.log(3.0), 200))

    far = torch.tensor([[-4.0, 0.0], [4.0, 0.0]])

    def bimodal(x):  # two unnormalised Gaussians of variance 0.25: log Z = log(2 * 2 pi 0.25)
        return -torch.logsumexp(-0.5 * ((x[:, None, :] - far) ** 2).sum(-1) / 0.25, 1)

    draws = far[torch.arange(n_chains) % 2] + 0.5 * torch.randn(n_chains, 2, generator=g)
    one_mode = GaussianMixtureSource([1.0], [[-4.0, 0.0]], [0.5 * torch.eye(2)])
    cases.append(("bimodal 2-D, base on one mode", bimodal, one_mode, draws, math.log(math.pi), 20))
    return cases


def _data():
    from sklearn.datasets import load_wine
    from sklearn.preprocessing import StandardScaler

    rng = np.random.RandomState(0)
    gauss = rng.normal(size=(2000, 10)) @ rng.normal(size=(10, 10)) * 0.5 + 1.0
    wine = StandardScaler().fit_transform(load_wine().data)
    return {"correlated Gaussian 10-D (2,000 x 10)": gauss, "wine (178 x 13, standardised)": wine}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (about a minute); numbers mean little")
    parser.add_argument("--out", default=None, help="also write the markdown report to this file")
    args = parser.parse_args(argv)

    from skebm import EBMDensity
    from skebm.density import ImportanceML, LongrunML
    from skebm.mcmc import ais_log_partition, log_partition_bracket
    from skebm.mcmc._partition import _annealing_base

    n_chains = 64 if args.quick else 256
    rows, log, chain_rows = [], [], []

    def row(name, method, n_temperatures, lower, upper, log_z, which, seconds, se=None):
        pm = "" if se is None else f" +- {se:.3f}"
        rows.append(f"| {name} | {method} | {n_temperatures} | {lower:.3f} | {upper:.3f} | {upper - lower:+.3f} | "
                    f"{log_z:.3f}{pm} ({which}) | {seconds:.1f} |")
        log.append(f"[bench] {name} {method} T={n_temperatures}: [{lower:.3f}, {upper:.3f}] width "
                   f"{upper - lower:+.3f}, log Z {log_z:.3f}{pm} ({which}), {seconds:.1f} s")
        print(log[-1], flush=True)

    for name, energy, base, draws, true, n_temperatures in _known_cases(n_chains):
        begin = time.perf_counter()
        lower, upper = log_partition_bracket(energy, base, draws, n_chains=n_chains, n_temperatures=n_temperatures,
                                             generator=torch.Generator().manual_seed(0))
        row(name, "-", n_temperatures, lower, upper, true, "true", time.perf_counter() - begin)

    quick = {"max_iter": 60} if args.quick else {}
    methods = {
        "importance": lambda: ImportanceML(),
        "longrun": lambda: LongrunML(buffer_size=1024, burnin_buffer_size=256),
    }
    fit_params = {"importance": {}, "longrun": {"max_iter": 150}}
    for data_name, X in _data().items():
        for method, make in methods.items():
            params = {**fit_params[method], **quick}
            begin = time.perf_counter()
            est = EBMDensity(method=make(), random_state=0, **params).fit(X)
            fit_s = time.perf_counter() - begin
            begin = time.perf_counter()
            lower, upper = est.log_partition_bracket(n_chains=n_chains, n_temperatures=200, random_state=0)
            label = f"{method}, {est.n_iter_} updates ({fit_s:.0f} s)"
            row(data_name, label, 200, lower, upper, est.log_partition_, est.log_partition_method_,
                time.perf_counter() - begin, se=est.log_partition_se_)
            if not min(lower, upper) <= est.log_partition_ <= max(lower, upper):  # who is right: a long AIS run
                base = _annealing_base(est.base_, est._feature_shape, None)
                log_z, se = ais_log_partition(est.net_.energy, base, n_chains=n_chains, n_temperatures=1000,
                                              generator=torch.Generator().manual_seed(1))
                log.append(f"[bench] {data_name} {method}: log_partition_ outside the bracket; referee, forward AIS "
                           f"with {n_chains} chains x 1000 temperatures: {log_z:.3f} +- {se:.3f}")
                print(log[-1], flush=True)
            diag = est.diagnose(X, random_state=0)
            n_draws = min(512, len(X)) * 100
            chain_rows.append(f"| {data_name} | {method} | {n_draws:,} | {diag['chain_ess']:.0f} | "
                              f"{diag['chain_rhat']:.2f} |")
            log.append(f"[bench] {data_name} {method} diagnose: ESS {diag['chain_ess']:.0f} of {n_draws}, "
                       f"R-hat {diag['chain_rhat']:.3f}")
            print(log[-1], flush=True)

    report = [
        "# log Z bracket widths (forward and reverse AIS)",
        "",
        f"Rerun: `{RERUN}`" + (" (this run: --quick)" if args.quick else ""),
        "",
        f"{n_chains} chains in each direction, one MALA step per temperature (sigmoid schedule), seed 0, "
        f"torch {torch.__version__}, one CPU thread per job on a shared 2-core machine. Known energies: reverse "
        "AIS from exact draws; fitted models: from the chains of `sample` "
        "(`EBMDensity.log_partition_bracket`), their `log_partition_` +- `log_partition_se_` from importance "
        "sampling (262,144 draws). "
        "Width = upper - lower (negative: the bounds met within their noise). Seconds: the bracket alone.",
        "",
        "| energy | EBMDensity method | temperatures | lower | upper | width | log Z (which) | bracket s |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "The fitted models' `diagnose(X, random_state=0)`: bulk ESS and rank-normalised split-R-hat of the "
        "energy of each chain (min(512, n) chains from the starts of `sample`, 100 further MALA steps each).",
        "",
        "| data | method | draws | chain ESS | chain R-hat |",
        "|---|---|---|---|---|",
        *chain_rows,
        "",
        "```",
        *log,
        "```",
    ]
    text = "\n".join(report) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
