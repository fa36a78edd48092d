"""HMCSampler and ParallelTempering reach known targets; the estimators take them as ``sampler``."""

import math

import numpy as np
import pytest
import torch

from skebm import EBMDensity, EBMGenerator, compose
from skebm.datasets import make_toy_2d
from skebm.mcmc import HMCSampler, LangevinSampler, ParallelTempering, RowNoise, chain_diagnostics


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def gaussian_energy(mean, cov):
    mean = torch.as_tensor(mean, dtype=torch.float32)
    precision = torch.linalg.inv(torch.as_tensor(cov, dtype=torch.float64)).float()
    return lambda x: 0.5 * (((x - mean) @ precision) * (x - mean)).sum(1)


def mixture_energy(weights, means, covs):
    """``-log sum_k w_k N(x; m_k, C_k)`` and the mixture's mean and covariance."""
    weights, means, covs = (np.asarray(v, dtype=np.float64) for v in (weights, means, covs))
    precisions = torch.tensor(np.linalg.inv(covs), dtype=torch.float32)
    mu = torch.tensor(means, dtype=torch.float32)
    log_norm = torch.tensor(np.log(weights) - 0.5 * np.linalg.slogdet(covs)[1], dtype=torch.float32)

    def energy(x):
        diff = x[:, None, :] - mu  # (n, k, d)
        quad = torch.einsum("nkd,kde,nke->nk", diff, precisions, diff)
        return -torch.logsumexp(log_norm - 0.5 * quad, dim=1)

    mean = weights @ means
    second = sum(w * (c + np.outer(m, m)) for w, m, c in zip(weights, means, covs))
    return energy, mean, second - np.outer(mean, mean)


def assert_moments(x, mean, cov, n_se=5.0):
    """Mean and covariance of the rows of ``x`` within ``n_se`` standard errors of the truth."""
    x = x.double().numpy()
    n = len(x)
    se_mean = np.sqrt(np.diag(cov) / n)
    np.testing.assert_array_less(np.abs(x.mean(0) - mean), n_se * se_mean + 1e-3)
    d = np.diag(cov)
    se_cov = np.sqrt((np.outer(d, d) + cov**2) / n)  # Gaussian approximation of the sampling error
    emp = np.atleast_2d(np.cov(x.T))
    np.testing.assert_array_less(np.abs(emp - cov), n_se * se_cov + 0.01)


def _correlated_cov(d, seed=0, condition=20.0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return q @ np.diag(np.geomspace(1.0 / math.sqrt(condition), math.sqrt(condition), d)) @ q.T


# ---------------------------------------------------------------- HMC: targets
@pytest.mark.parametrize("d", [2, 5])
def test_hmc_reaches_a_correlated_gaussian(d):
    cov, mean = _correlated_cov(d), np.linspace(-1.0, 2.0, d)
    sampler = HMCSampler(n_steps=150, step_size=0.05, n_leapfrog=8)
    x = sampler(gaussian_energy(mean, cov), torch.zeros(3000, d), generator=_gen())
    assert_moments(x, mean, cov)


def test_hmc_temperature_scales_the_covariance():
    cov = _correlated_cov(3)
    x = HMCSampler(n_steps=150, n_leapfrog=8, temperature=0.25)(
        gaussian_energy(np.zeros(3), cov), torch.zeros(3000, 3), generator=_gen()
    )
    assert_moments(x, np.zeros(3), 0.25 * cov)


@pytest.mark.parametrize(
    "weights, means, covs",
    [
        ([0.3, 0.7], [[-1.5], [1.5]], [[[0.5]], [[0.8]]]),
        pytest.param([0.35, 0.65], [[-1.0, 0.0], [1.5, 1.0]], [[[0.5, 0.0], [0.0, 0.5]], [[0.6, 0.2], [0.2, 0.4]]],
                     marks=pytest.mark.slow),
    ],
    ids=["1d", "2d"],
)
def test_hmc_reaches_a_two_component_mixture(weights, means, covs):
    energy, mean, cov = mixture_energy(weights, means, covs)
    d = len(mean)
    x = HMCSampler(n_steps=150, step_size=0.2, n_leapfrog=6)(energy, torch.randn(2000, d, generator=_gen(1)),
                                                           generator=_gen())
    assert_moments(x, mean, cov)


@pytest.mark.parametrize("target", [0.65, 0.85])
@pytest.mark.parametrize("start", [0.01, 5.0])
def test_adaptation_reaches_the_target_acceptance(target, start):
    cov = _correlated_cov(5, condition=50.0)
    sampler = HMCSampler(n_steps=100, step_size=start, n_leapfrog=5, n_warmup=50, target_acceptance=target)
    _, trace = sampler(gaussian_energy(np.zeros(5), cov), torch.zeros(500, 5), generator=_gen(), return_trace=True)
    assert abs(sampler.acceptance_rate_ - target) < 0.1
    assert sampler.step_size == start  # the parameter is the start, the adapted value is step_size_
    assert trace["step_size"][-1] == sampler.step_size_ != start
    # after warm-up the step size stays where adaptation left it
    assert len(set(trace["step_size"][50:])) == 1


def test_no_warmup_keeps_the_step_size():
    sampler = HMCSampler(n_steps=20, step_size=0.3, n_warmup=0)
    sampler(lambda x: 0.5 * (x**2).sum(1), torch.zeros(100, 2), generator=_gen())
    assert sampler.step_size_ == 0.3 and 0 < sampler.acceptance_rate_ <= 1


def test_accept_test_rejects_huge_steps_and_keeps_chains_finite():
    sampler = HMCSampler(n_steps=10, step_size=50.0, n_leapfrog=5, n_warmup=0)
    x = sampler(lambda x: 0.5 * (x**4).sum(1), torch.ones(200, 2), generator=_gen())
    assert torch.isfinite(x).all() and sampler.acceptance_rate_ < 0.05


def test_clamp_restricts_the_target_to_the_box():
    sampler = HMCSampler(n_steps=200, step_size=0.3, n_leapfrog=5, clamp=(0.0, 10.0))
    x = sampler(lambda x: 0.5 * (x**2).sum(1), torch.full((4000, 1), 0.5), generator=_gen())
    assert float(x.min()) >= 0.0
    # a standard normal truncated to x > 0: mean sqrt(2 / pi), variance 1 - 2 / pi
    assert abs(float(x.mean()) - math.sqrt(2 / math.pi)) < 5 * math.sqrt((1 - 2 / math.pi) / 4000)


def test_mask_moves_only_the_masked_entries():
    x0 = torch.arange(12.0).reshape(4, 3)
    mask = torch.tensor([1.0, 0.0, 1.0])
    x = HMCSampler(n_steps=10, step_size=0.3, n_leapfrog=3)(lambda x: 0.5 * (x**2).sum(1), x0, mask=mask,
                                                             generator=_gen())
    assert torch.equal(x[:, 1], x0[:, 1]) and not torch.equal(x[:, 0], x0[:, 0])


# ---------------------------------------------------------------- HMC: the call
def test_seeded_calls_are_reproducible_and_x0_untouched():
    energy = gaussian_energy(np.zeros(3), _correlated_cov(3))
    x0 = torch.randn(50, 3, generator=_gen(2))
    before = x0.clone()
    a = HMCSampler(n_steps=30, n_leapfrog=4)(energy, x0, generator=_gen(7))
    b = HMCSampler(n_steps=30, n_leapfrog=4)(energy, x0, generator=_gen(7))
    c = HMCSampler(n_steps=30, n_leapfrog=4)(energy, x0, generator=_gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c) and torch.equal(x0, before)


def test_row_noise_gives_each_chain_its_own_trajectory_whatever_the_batch():
    energy = lambda x: 0.5 * (x**2).sum(1)  # noqa: E731
    keys, x0 = torch.tensor([5, 6, 7, 8]), torch.randn(4, 2, generator=_gen(3))
    sampler = HMCSampler(n_steps=5, n_leapfrog=3, n_warmup=0, jitter=0.2)  # no adaptation: chains independent
    a = sampler(energy, x0, noise=RowNoise(keys))
    b = sampler(energy, x0[[2, 0]], noise=RowNoise(keys[[2, 0]]))
    assert torch.allclose(a[[2, 0]], b, atol=1e-5)


def test_return_chains_and_trace_and_call_overrides():
    sampler = HMCSampler(n_steps=30, n_leapfrog=4)
    x, chains, trace = sampler(lambda x: 0.5 * (x**2).sum(1), torch.zeros(20, 2), generator=_gen(), n_steps=12,
                               return_chains=True, return_trace=True)
    assert chains.shape == (13, 20, 2) and torch.equal(chains[-1], x) and torch.equal(chains[0], torch.zeros(20, 2))
    assert trace.pop("chain_energy").shape == (20, 12)  # each chain's energy before each step
    assert {k: len(v) for k, v in trace.items()} == {"energy": 12, "grad_norm": 12, "acceptance": 12, "step_size": 12}
    assert sampler.n_steps == 30  # overrides are for one call


def test_chain_diagnostics_runs_hmc_and_parallel_tempering():
    energy = lambda x: 0.5 * (x**2).sum(1)  # noqa: E731
    data = torch.randn(2000, 2, generator=_gen(4))
    for sampler in (HMCSampler(n_leapfrog=5), ParallelTempering(HMCSampler(n_leapfrog=3, n_warmup=10),
                                                                 n_temperatures=3, swap_every=5)):
        diag = chain_diagnostics(energy, data, torch.randn(2000, 2, generator=_gen(5)), sampler, n_steps=20,
                                 generator=_gen())
        assert abs(diag["energy_gap"]) < 0.15
        assert len(diag["grad_norm"]) == len(diag["acceptance"]) == 20
        # the per-chain energy trace gives ESS and R-hat (NaN without it); 20 correlated draws per chain: R-hat
        # a little above 1, far below that of chains that disagree
        assert 0 < diag["ess"] <= 2000 * 20 and 0.99 < diag["rhat"] < 1.5


BAD_HMC = [
    {"n_steps": -1}, {"n_steps": 1.5}, {"step_size": 0.0}, {"step_size": float("nan")}, {"n_leapfrog": 0},
    {"temperature": 0.0}, {"n_warmup": -1}, {"target_acceptance": 1.0}, {"target_acceptance": 0.0},
    {"jitter": 1.0}, {"jitter": -0.1}, {"clamp": (1.0, 0.0)}, {"clamp": (0.0, float("inf"))}, {"clamp": (0.0,)},
    {"precision": "fp16"}, {"n_leapfrog": True},
]


@pytest.mark.parametrize("params", BAD_HMC, ids=[str(p) for p in BAD_HMC])
def test_bad_hmc_parameters_raise_value_error(params):
    with pytest.raises(ValueError):
        HMCSampler(**params)
    sampler = HMCSampler()
    before = repr(sampler)
    with pytest.raises(ValueError):
        sampler(lambda x: (x**2).sum(1), torch.zeros(3, 2), **params)
    assert repr(sampler) == before and not hasattr(sampler, "step_size_")


def test_unknown_call_keyword_is_a_type_error():
    with pytest.raises(TypeError, match="unexpected keyword"):
        HMCSampler()(lambda x: (x**2).sum(1), torch.zeros(3, 2), metropolis=True)


# ---------------------------------------------------------------- parallel tempering
def two_modes(x):
    """Equal modes at -4 and +4 with sd 0.5 (a barrier of 32 nats), in one or two dimensions."""
    centre = torch.zeros(x.shape[1])
    centre[0] = 4.0
    return -torch.logsumexp(torch.stack([-2.0 * ((x - centre) ** 2).sum(1), -2.0 * ((x + centre) ** 2).sum(1)]), 0)


@pytest.mark.parametrize("d", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_parallel_tempering_balances_two_separated_modes(d):
    x0 = torch.zeros(400, d)
    x0[:, 0] = -4.0
    inner = HMCSampler(step_size=0.3, n_leapfrog=3, n_warmup=30)
    pt = ParallelTempering(inner, n_temperatures=6, max_temperature=60.0, n_steps=150, swap_every=2)
    x = pt(two_modes, x0, generator=_gen())
    assert abs(float((x[:, 0] > 0).float().mean()) - 0.5) < 0.1
    # each replica at T = 1 sits in a mode with the mode's spread
    assert abs(float(x[:, 0].abs().mean()) - 4.0) < 0.1 and abs(float(x[:, 0].abs().std()) - 0.5) < 0.08
    assert pt.swap_acceptance_.shape == (5,) and np.all((pt.swap_acceptance_ > 0.2) & (pt.swap_acceptance_ <= 1))
    # the same sampler at T = 1 alone never leaves the starting mode
    alone = inner(two_modes, x0, generator=_gen(), n_steps=150)
    assert float((alone[:, 0] > 0).float().mean()) < 0.05


def test_parallel_tempering_carries_mala_across_the_barrier():
    # MALA's one step size does not fit every temperature (HMC adapts one per temperature): the
    # chains cross, but 300 steps do not balance the modes yet
    x0 = torch.full((400, 1), -4.0)
    mala = LangevinSampler(step_size=1.5, metropolis=True)
    x = ParallelTempering(mala, n_temperatures=6, max_temperature=40.0, n_steps=300, swap_every=2)(
        two_modes, x0, generator=_gen()
    )
    assert 0.3 < float((x > 0).float().mean()) < 0.6
    assert float((mala(two_modes, x0, generator=_gen(), n_steps=300) > 0).float().mean()) < 0.05


def test_parallel_tempering_ladder_and_adaptation_per_temperature():
    pt = ParallelTempering(HMCSampler(n_leapfrog=3, n_warmup=20), n_temperatures=4, max_temperature=27.0,
                           n_steps=40)
    pt(lambda x: 0.5 * (x**2).sum(1), torch.zeros(200, 2), generator=_gen())
    np.testing.assert_allclose(pt.temperatures_, [1.0, 3.0, 9.0, 27.0])
    steps = [s.step_size_ for s in pt.samplers_]
    assert steps == sorted(steps) and steps[-1] > 3 * steps[0]  # hotter: wider, larger steps
    assert not hasattr(pt.sampler, "step_size_")  # the inner sampler is copied, not modified
    custom = ParallelTempering(LangevinSampler(metropolis=True), temperatures=[1.0, 1.5], n_steps=4, swap_every=2)
    custom(lambda x: 0.5 * (x**2).sum(1), torch.zeros(10, 2), generator=_gen())
    assert custom.temperatures_.tolist() == [1.0, 1.5]


def test_parallel_tempering_is_reproducible_and_returns_chains():
    pt = ParallelTempering(LangevinSampler(step_size=0.5, metropolis=True), n_temperatures=3, n_steps=7,
                           swap_every=3)
    energy = lambda x: 0.5 * (x**2).sum(1)  # noqa: E731
    x0 = torch.zeros(30, 2)
    a = pt(energy, x0, generator=_gen(1))
    b, chains, trace = pt(energy, x0, generator=_gen(1), return_chains=True, return_trace=True)
    assert torch.equal(a, b) and chains.shape == (8, 30, 2) and torch.equal(chains[-1], b)
    assert len(trace["energy"]) == 7 and not torch.equal(a, pt(energy, x0, generator=_gen(2)))
    keys = torch.arange(30)
    c, d = pt(energy, x0, noise=RowNoise(keys)), pt(energy, x0, noise=RowNoise(keys))
    assert torch.equal(c, d)


BAD_PT = [
    {"temperatures": [1.0]}, {"temperatures": [1.0, 1.0]}, {"temperatures": [2.0, 1.0]}, {"temperatures": [0.0, 1.0]},
    {"temperatures": [1.0, float("inf")]}, {"temperatures": "hot"}, {"n_temperatures": 1}, {"n_temperatures": 10**9}, {"max_temperature": 1.0},
    {"max_temperature": float("nan")}, {"swap_every": 0}, {"n_steps": -1},
]


@pytest.mark.parametrize("params", BAD_PT, ids=[str(p) for p in BAD_PT])
def test_bad_parallel_tempering_parameters_raise_value_error(params):
    with pytest.raises(ValueError):
        ParallelTempering(LangevinSampler(), **params)
    pt = ParallelTempering(LangevinSampler(), n_steps=2)
    with pytest.raises(ValueError):
        pt(lambda x: (x**2).sum(1), torch.zeros(3, 2), **params)
    assert not hasattr(pt, "swap_acceptance_")


@pytest.mark.parametrize("sampler", [HMCSampler, "langevin", None, lambda energy_fn: energy_fn])
def test_parallel_tempering_needs_a_sampler(sampler):
    with pytest.raises(TypeError, match="sampler"):
        ParallelTempering(sampler)


def test_parallel_tempering_owns_the_temperature():
    with pytest.raises(TypeError, match="temperatures"):
        ParallelTempering(LangevinSampler(), n_steps=2)(lambda x: (x**2).sum(1), torch.zeros(3, 2), temperature=2.0)


# ---------------------------------------------------------------- the estimators
@pytest.fixture(scope="module")
def generator():
    X = np.random.default_rng(0).normal(size=(200, 3))
    return EBMGenerator(max_iter=5, n_steps=3, random_state=0).fit(X)


def test_generator_sample_takes_a_sampler(generator):
    default = generator.sample(5, random_state=0)
    np.testing.assert_array_equal(generator.sample(5, random_state=0, sampler=None), default)
    hmc = HMCSampler(n_steps=15, n_leapfrog=3)
    a = generator.sample(5, random_state=0, sampler=hmc)
    assert a.shape == default.shape and not np.array_equal(a, default) and hasattr(hmc, "step_size_")
    np.testing.assert_array_equal(generator.sample(5, random_state=0, sampler=hmc), a)
    x, chains = generator.sample(5, random_state=0, sampler=hmc, n_steps=4, return_chains=True)
    assert chains.shape == (5, 5, 3)
    pt = ParallelTempering(LangevinSampler(step_size=0.1, metropolis=True), n_temperatures=3, n_steps=6)
    assert compose(generator, generator).sample(4, random_state=0, sampler=pt).shape == (4, 3)

    def minimal(energy_fn, x0, generator=None, n_steps=3):  # the protocol's minimum: stays where it starts
        return x0

    np.testing.assert_array_equal(generator.sample(2, random_state=0, sampler=minimal),
                                  generator.sample(2, random_state=0, n_steps=0))


@pytest.mark.parametrize("bad", [HMCSampler, "hmc", 3, lambda x: x])
def test_generator_sample_refuses_a_non_sampler(generator, bad):
    with pytest.raises(TypeError, match="sampler"):
        generator.sample(2, sampler=bad)
    with pytest.raises(TypeError, match="sampler"):
        compose(generator, generator).sample(2, sampler=bad)


def test_density_sample_and_diagnose_take_a_sampler():
    X = make_toy_2d("moons", 300, random_state=0)
    est = EBMDensity(method="longrun", max_iter=5, random_state=0).fit(X)
    default = est.sample(5, random_state=0)
    np.testing.assert_array_equal(est.sample(5, random_state=0, sampler=None), default)
    hmc = HMCSampler(n_steps=20, n_leapfrog=3)
    a = est.sample(5, random_state=0, sampler=hmc)
    assert a.shape == (5, 2) and np.isfinite(a).all() and not np.array_equal(a, default)
    diag = est.diagnose(X[:50], n_steps=6, random_state=0, sampler=hmc)
    assert len(diag["chain_acceptance"]) == 6
    with pytest.raises(TypeError, match="sampler"):
        est.sample(2, sampler="hmc")
    with pytest.raises(TypeError, match="sampler"):
        est.diagnose(X[:50], sampler=HMCSampler)
