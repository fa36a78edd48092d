"""Error per gradient evaluation of skebm's samplers: HMC, MALA and ULA on known targets.

Targets, whose mean and covariance are known exactly:

- ``gauss20``: a correlated Gaussian in 20 dimensions, covariance
  eigenvalues spaced geometrically from 0.1 to 10 (condition number 100)
  in a random rotation, mean ``(1, ..., 1)``;
- ``mixture2``: a two-component Gaussian mixture in 2 dimensions (weights
  0.35 / 0.65, means (-1.5, 0) and (1.5, 1), correlated covariances), whose
  modes a chain must cross.

Samplers, all from :mod:`skebm.mcmc`, compared at the same budget of
energy gradients per chain:

- ``ULA``: :class:`~skebm.mcmc.LangevinSampler` (unadjusted), one gradient
  per step;
- ``MALA``: the same with ``metropolis=True``, one gradient per step;
- ``HMC``: :class:`~skebm.mcmc.HMCSampler` with ``n_leapfrog=10``, ten
  gradients per step; its step size adapts during its first 15 steps
  (counted in the budget).

ULA and MALA run at the step size that a pilot run (not counted) adapted
for MALA to an acceptance of 0.574 (the optimal MALA rate); ULA gets no
step size of its own, which is how it is used in training. Every sampler
runs ``--chains`` chains for the largest budget once, from ``N(0, I)``
on the Gaussian and from inside the lighter mode on the mixture (the chains
must cross to the other); the error at a budget ``B`` uses the states of
every chain between ``B / 2`` and ``B`` gradients (the first half is
burn-in): the error of the mean, ``|m - mu| / sqrt(tr Sigma)``, of the
covariance, ``|S - Sigma|_F / |Sigma|_F``, and of the whitened covariance,
``|W S W^T - I|_F / sqrt(d)`` with ``W Sigma W^T = I`` (the covariance
error in every direction alike: the Frobenius error is dominated by the
widest directions, where ULA's bias is smallest). Each cell is the mean over
the seeds. Lower is better; an error that stops falling with the budget is
a bias (ULA's discretisation) or a mode the chains do not cross.

Usage::

    python benchmarks/bench_samplers.py [--quick] [--seeds 0 1 2] [--chains 500] [--threads 1]
"""

import argparse
import math
import sys
import time

import numpy as np
import torch

from skebm.mcmc import HMCSampler, LangevinSampler

N_LEAPFROG = 10
HMC_WARMUP = 15
MALA_TARGET = 0.574
METRICS = ("mean", "covariance", "whitened covariance")


def gaussian_target(d=20, condition=100.0, seed=1234):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    cov = q @ np.diag(np.geomspace(1.0 / math.sqrt(condition), math.sqrt(condition), d)) @ q.T
    mean = np.ones(d)
    precision = torch.tensor(np.linalg.inv(cov), dtype=torch.float32)
    mu = torch.tensor(mean, dtype=torch.float32)

    def energy(x):
        diff = x - mu
        return 0.5 * ((diff @ precision) * diff).sum(1)

    return energy, mean, cov


def mixture_target():
    weights = np.array([0.35, 0.65])
    means = np.array([[-1.5, 0.0], [1.5, 1.0]])
    covs = np.array([[[0.5, 0.2], [0.2, 0.4]], [[0.6, -0.2], [-0.2, 0.5]]])
    precisions = torch.tensor(np.linalg.inv(covs), dtype=torch.float32)
    mu = torch.tensor(means, dtype=torch.float32)
    log_norm = torch.tensor(np.log(weights) - 0.5 * np.linalg.slogdet(covs)[1], dtype=torch.float32)

    def energy(x):
        diff = x[:, None, :] - mu
        quad = torch.einsum("nkd,kde,nke->nk", diff, precisions, diff)
        return -torch.logsumexp(log_norm - 0.5 * quad, dim=1)

    mean = weights @ means
    second = sum(w * (c + np.outer(m, m)) for w, m, c in zip(weights, means, covs))
    return energy, mean, second - np.outer(mean, mean)


TARGETS = {"gauss20": gaussian_target, "mixture2": mixture_target}
#: Where the chains start: N(0, I) for the Gaussian, inside the lighter mode of the mixture (its weight 0.35).
START = {"gauss20": 0.0, "mixture2": [-1.5, 0.0]}
START_SD = {"gauss20": 1.0, "mixture2": 0.3}


def pilot_step_size(energy, d, generator, rounds=30, steps=10, chains=200):
    """MALA step size adapted to an acceptance of 0.574 (log step + (acceptance - target) per round)."""
    sampler = LangevinSampler(n_steps=steps, step_size=0.1, metropolis=True)
    x = torch.randn(chains, d, generator=generator)
    for r in range(rounds):
        x = sampler(energy, x, generator=generator)
        sampler.step_size *= math.exp(2.0 / math.sqrt(r + 1) * (sampler.acceptance_rate_ - MALA_TARGET))
    return sampler.step_size


def errors(states, mean, cov):
    """Relative errors of the mean, of the covariance and of the whitened covariance of ``states``."""
    x = states.reshape(-1, states.shape[-1]).double().numpy()
    m = x.mean(0)
    s = np.cov(x.T)
    w = np.linalg.inv(np.linalg.cholesky(cov))  # whitening: w cov w^T = I
    return (np.linalg.norm(m - mean) / math.sqrt(np.trace(cov)),
            np.linalg.norm(s - cov) / np.linalg.norm(cov),
            np.linalg.norm(w @ s @ w.T - np.eye(len(mean))) / math.sqrt(len(mean)))


def run(target, seed, budgets, n_chains):
    energy, mean, cov = TARGETS[target]()
    d = len(mean)
    g = torch.Generator().manual_seed(seed)
    step = pilot_step_size(energy, d, g)
    x0 = torch.as_tensor(START[target], dtype=torch.float32) + START_SD[target] * torch.randn(n_chains, d, generator=g)
    top = max(budgets)
    samplers = {
        "ULA": (LangevinSampler(n_steps=top, step_size=step), 1),
        "MALA": (LangevinSampler(n_steps=top, step_size=step, metropolis=True), 1),
        "HMC": (HMCSampler(n_steps=top // N_LEAPFROG, step_size=step, n_leapfrog=N_LEAPFROG, n_warmup=HMC_WARMUP),
                N_LEAPFROG),
    }
    out, info = {}, {}
    for name, (sampler, cost) in samplers.items():
        start = time.perf_counter()
        _, chains = sampler(energy, x0, generator=torch.Generator().manual_seed(seed), return_chains=True)
        seconds = time.perf_counter() - start
        for budget in budgets:
            steps = budget // cost
            out[name, budget] = errors(chains[steps // 2 + 1: steps + 1], mean, cov)
        info[name] = (getattr(sampler, "step_size_", step), getattr(sampler, "acceptance_rate_", float("nan")),
                      seconds)
    return out, info


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="two seeds, budgets up to 1,600 gradients")
    p.add_argument("--seeds", type=int, nargs="+", default=None)
    p.add_argument("--chains", type=int, default=500)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds = args.seeds if args.seeds is not None else ([0, 1] if args.quick else [0, 1, 2])
    budgets = [200, 400, 800, 1600] if args.quick else [200, 400, 800, 1600, 3200]
    command = "python benchmarks/bench_samplers.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"# Samplers: error per gradient evaluation (`{command.strip()}`)\n")
    print(f"{args.chains} chains; seeds {', '.join(map(str, seeds))}; torch threads {args.threads}. "
          "Each cell: a relative error (see the script's docstring), mean over the seeds, lower is better; "
          "the budget is energy gradients per chain (HMC: "
          f"{N_LEAPFROG} per step, its warm-up of {HMC_WARMUP} steps included).\n")
    for target in args.targets:
        results = [run(target, seed, budgets, args.chains) for seed in seeds]
        print(f"## {target}\n")
        print("| sampler | error | " + " | ".join(f"{b:,} gradients" for b in budgets) + " |")
        print("|---|---|" + "---|" * len(budgets))
        spread = 0.0
        for name in ("ULA", "MALA", "HMC"):
            m = np.array([[r[0][name, b] for b in budgets] for r in results])  # (seed, budget, error)
            spread = max(spread, float((m.max(0) - m.min(0)).max()))
            for k, what in enumerate(METRICS):
                print(f"| {name} | {what} | " + " | ".join(f"{v:.3f}" for v in m[:, :, k].mean(0)) + " |")
        print(f"\nLargest spread over the seeds (largest minus smallest) in one cell: {spread:.3f}.\n")
        print("| sampler | step size (seed " + str(seeds[0]) + ") | acceptance | wall-time ratio to MALA |")
        print("|---|---|---|---|")
        info = results[0][1]
        for name in ("ULA", "MALA", "HMC"):
            step, acc, seconds = info[name]
            acc_text = "-" if math.isnan(acc) else f"{acc:.2f}"
            print(f"| {name} | {step:.3g} | {acc_text} | {seconds / info['MALA'][2]:.2f} |")
        print()


if __name__ == "__main__":
    main()
