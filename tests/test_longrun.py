"""LongrunInit, MALA, AIS, grid quadrature and chain diagnostics (shared MCMC pieces)."""

import math
import pickle

import numpy as np
import pytest
import torch

from skebm.mcmc import (
    GaussianMixtureSource,
    LangevinSampler,
    LongrunInit,
    NoiseSource,
    chain_diagnostics,
    grid_log_partition,
    independence_mh,
    langevin,
    make_chain_init,
    sigmoid_schedule,
)

SHAPE = (3,)


def _setup(strategy):
    # fresh chains in [10, 11]: easy to tell from anything the "sampler" produced
    return strategy.setup(NoiseSource("uniform", low=10.0, high=11.0), SHAPE)


def _step(init, data, shift=1.0):
    """One training update with a fake sampler that adds ``shift`` to every chain."""
    x0, token = init.draw(data)
    x_out = x0 + shift
    init.update(token, x_out)
    return x0, token, init.negatives(token, x_out)


# ------------------------------------------------------------------ longrun
def test_longrun_staggered_counters_and_negatives_while_filling():
    init = _setup(LongrunInit(buffer_size=50, burnin_size=40, burnin_updates=5, burnin_batch=8))
    counts = init.burnin_count_
    assert counts.min() >= 0 and counts.max() < 5 and len(torch.unique(counts)) > 1  # staggered
    assert init.n_filled_ == 0
    data = torch.zeros(10, 3)
    x0, token, neg = _step(init, data)
    # empty update bank: the 8 advanced burn-in chains are the negatives
    assert x0.shape == (8, 3) and neg.shape == (8, 3)
    assert torch.equal(neg, x0 + 1.0)


def test_longrun_graduation_moves_burnin_chains_into_update_bank():
    init = _setup(LongrunInit(buffer_size=1000, burnin_size=20, burnin_updates=4, burnin_batch=20))
    init.burnin_count_.zero_()  # synchronise to check the exact count
    data = torch.zeros(5, 3)
    for i in range(3):
        _step(init, data)
        assert init.n_filled_ == 0
    assert init.burnin_count_.tolist() == [3] * 20
    _step(init, data)  # 4th update: all graduate
    assert init.n_filled_ == 20 and init.n_graduated_ == 20
    # graduates advanced exactly 4 times (+1 each) from noise in [10, 11]
    bank = init.update_bank_[:20]
    assert bank.min() >= 14.0 and bank.max() <= 15.0
    # their burn-in slots restarted from fresh noise with zero counters
    assert init.burnin_count_.tolist() == [0] * 20
    assert init.burnin_bank_.min() >= 10.0 and init.burnin_bank_.max() <= 11.0


def test_longrun_update_bank_supplies_negatives_and_is_never_reset():
    init = _setup(LongrunInit(buffer_size=30, burnin_size=60, burnin_updates=3, burnin_batch=20))
    data = torch.zeros(10, 3)
    for _ in range(40):
        x0, token, neg = _step(init, data)
    assert init.n_filled_ == 30
    update_idx, burnin_idx, _ = token
    assert update_idx is not None and len(update_idx) == 10 and len(burnin_idx) == 20
    # negatives are the update-bank part of the draw, advanced once
    assert neg.shape == (10, 3) and torch.equal(neg, x0[:10] + 1.0)
    # no update-bank chain is fresh noise: each has had >= 3 updates (value >= 13)
    assert init.update_bank_.min() >= 13.0
    # graduates keep flowing in once the bank is full (they replace drawn chains)
    before = init.n_graduated_
    for _ in range(10):
        _step(init, data)
    assert init.n_graduated_ > before and init.n_filled_ == 30


def test_longrun_rate_of_graduation_is_steady():
    # staggered counters: about burnin_batch / burnin_updates graduates per update from the start
    init = _setup(LongrunInit(buffer_size=100000, burnin_size=400, burnin_updates=10, burnin_batch=100))
    data = torch.zeros(10, 3)
    per_update = []
    for _ in range(30):
        before = init.n_graduated_
        _step(init, data)
        per_update.append(init.n_graduated_ - before)
    assert 5 <= np.mean(per_update[:10]) <= 15 and 5 <= np.mean(per_update[10:]) <= 15


def test_longrun_starts_data_rejuvenation_and_errors():
    init = _setup(LongrunInit(buffer_size=10, burnin_size=10, burnin_updates=1, rejuvenate="data"))
    assert init.starts(4).min() >= 10.0  # empty bank: burn-in chains
    data = torch.full((10, 3), -7.0)
    _step(init, data)  # every burn-in chain graduates and restarts from the data
    assert torch.equal(init.burnin_bank_, data)
    assert init.starts(4).shape == (4, 3)
    with pytest.raises(ValueError, match="class-conditional"):
        x0, token = init.draw(data)
        init.update(token, x0, y=torch.zeros(10, dtype=torch.long))
    with pytest.raises(ValueError, match="rejuvenate"):
        LongrunInit(rejuvenate="generator")
    with pytest.raises(ValueError, match="burnin_updates"):
        LongrunInit(burnin_updates=0)
    made = make_chain_init("longrun", buffer_size=7, reinit_prob=0.3, burnin_size=5)
    assert isinstance(made, LongrunInit) and made.buffer_size == 7 and made.burnin_size == 5
    assert pickle.loads(pickle.dumps(init)).n_filled_ == init.n_filled_


def test_generator_engine_trains_with_longrun():
    # the shared engine asks the strategy which chains are negatives
    from skebm import EBMGenerator

    X = np.random.RandomState(0).randn(64, 2)
    gen = EBMGenerator(
        init=LongrunInit(buffer_size=32, burnin_size=32, burnin_updates=2),
        max_iter=6,
        batch_size=16,
        n_steps=2,
        energy_params={"hidden_units": (8,)},
        random_state=0,
    ).fit(X)
    bank = gen.net_.chain_init_
    assert bank.n_graduated_ > 0 and bank.n_filled_ > 0


# --------------------------------------------------------------------- MALA
def test_mala_is_exact_where_ula_is_biased():
    # N(0, 0.5^2) with a large step: ULA inflates the variance, MALA does not
    energy = lambda x: 0.5 * ((x / 0.5) ** 2).sum(1)  # noqa: E731
    n, eps = 20000, 0.6
    x_ula = langevin(energy, torch.zeros(n, 1), 300, eps)
    x_mala, trace = langevin(energy, torch.zeros(n, 1), 300, eps, metropolis=True, return_trace=True)
    tol = 5 * 0.5 / math.sqrt(2 * n)
    assert abs(float(x_mala.std()) - 0.5) < tol
    assert float(x_ula.std()) - 0.5 > 10 * tol
    acc = trace["acceptance"]
    assert len(acc) == 300 and 0.5 < np.mean(acc) < 1.0


def test_mala_with_tau_mask_and_sampler_records_acceptance():
    sampler = LangevinSampler(n_steps=400, step_size=0.8, tau=0.7, metropolis=True)
    x = sampler(lambda x: 0.0 * x.sum(1), torch.zeros(8000, 3))
    assert abs(float(x.std()) - 0.7) < 0.03
    assert 0.3 < sampler.acceptance_rate_ < 1.0
    assert "acceptance_rate_" not in sampler.settings()
    x0 = torch.randn(10, 4)
    mask = torch.tensor([1.0, 0.0, 1.0, 0.0])
    x = langevin(lambda x: (x**2).sum(1), x0, 20, 0.3, mask=mask, metropolis=True)
    assert torch.equal(x[:, 1], x0[:, 1]) and not torch.allclose(x[:, 0], x0[:, 0])
    with pytest.raises(ValueError, match="clamp"):
        langevin(lambda x: x.sum(1), x0, 2, 0.1, clamp=(-1, 1), metropolis=True)


def test_mala_rejects_non_finite_proposals():
    # energy is +inf beyond |x| > 1: chains never leave [-1, 1]
    def energy(x):
        return torch.where(x.abs().max(1).values > 1, torch.full_like(x[:, 0], float("inf")), 0.0 * x[:, 0])

    x = langevin(energy, torch.zeros(500, 2), 100, 0.5, metropolis=True)
    assert x.abs().max() <= 1.0 and torch.isfinite(x).all()


# ------------------------------------------------------ independence moves
def _two_wells(weights, var=0.05):
    centers = torch.tensor([[-3.0], [3.0]])
    log_w = torch.log(torch.tensor(weights))

    def energy(x):
        d2 = ((x[:, None, :] - centers[None]) ** 2).sum(-1)
        return -torch.logsumexp(log_w - d2 / (2 * var), 1)

    return energy


def test_independence_moves_fix_mode_weights_that_langevin_cannot():
    energy = _two_wells([0.2, 0.8])
    base = GaussianMixtureSource([0.5, 0.5], [[-3.0], [3.0]], [[[0.1]], [[0.1]]])
    start = torch.full((4000, 1), -3.0) + 0.2 * torch.randn(4000, 1)
    # MALA alone: the barrier is never crossed
    stuck = langevin(energy, start, 200, 0.1, metropolis=True)
    assert float((stuck > 0).float().mean()) < 0.01
    # one independence move per call, then MALA: the weights become right
    sampler = LangevinSampler(n_steps=5, step_size=0.1, metropolis=True, proposal=base)
    x = start
    for _ in range(20):
        x = sampler(energy, x)
    assert abs(float((x > 0).float().mean()) - 0.8) < 4 * math.sqrt(0.16 / 4000) + 0.01
    assert 0.3 < sampler.jump_acceptance_ < 1.0
    x, rate = independence_mh(energy, start, base, n_steps=3, return_acceptance=True)
    assert 0.0 < rate < 1.0 and x.shape == start.shape


# ---------------------------------------------------------- log partitions
def test_grid_log_partition_1d_and_2d():
    # 1-D: Z = sqrt(2 pi) * 0.3; 2-D: two-component mixture with total mass 5
    log_z, err = grid_log_partition(lambda x: 0.5 * (x[:, 0] / 0.3) ** 2, [-3], [3], return_error=True)
    assert log_z == pytest.approx(math.log(math.sqrt(2 * math.pi) * 0.3), abs=1e-6) and err < 1e-6
    centers = torch.tensor([[-1.0, 0.5], [1.5, -1.0]])

    def energy(x):
        d2 = ((x[:, None, :] - centers[None]) ** 2).sum(-1)
        dens = torch.exp(-d2 / (2 * 0.2**2)) / (2 * math.pi * 0.2**2)
        return -torch.log(5 * (0.3 * dens[:, 0] + 0.7 * dens[:, 1]))

    assert grid_log_partition(energy, [-3, -3], [3, 3]) == pytest.approx(math.log(5), abs=1e-4)
    with pytest.raises(ValueError, match="1 or 2 dimensions"):
        grid_log_partition(energy, [0, 0, 0], [1, 1, 1])
    with pytest.raises(ValueError, match="odd"):
        grid_log_partition(energy, [-3, -3], [3, 3], resolution=100)


def test_sigmoid_schedule():
    betas = sigmoid_schedule(50)
    assert betas[0] == 0 and betas[-1] == 1 and np.all(np.diff(betas) > 0)
    with pytest.raises(ValueError):
        sigmoid_schedule(1)


def test_gaussian_mixture_source():
    from sklearn.mixture import GaussianMixture

    rng = np.random.RandomState(0)
    X = np.vstack([rng.normal(-2, 0.5, (300, 2)), rng.normal(2, 1.0, (300, 2))])
    for cov in ("full", "diag", "tied", "spherical"):
        gmm = GaussianMixture(2, covariance_type=cov, random_state=0).fit(X)
        src = GaussianMixtureSource.from_estimator(gmm)
        np.testing.assert_allclose(
            src.log_prob(torch.as_tensor(X[:20], dtype=torch.float32)).numpy(), gmm.score_samples(X[:20]), rtol=1e-4
        )
    x = src(5000, (2,))
    assert x.shape == (5000, 2) and abs(float(x[:, 0].mean())) < 0.2
    with pytest.raises(ValueError, match="shapes"):
        GaussianMixtureSource([1.0], [[0.0]], [[[1.0, 0.0], [0.0, 1.0]]])


def test_chain_diagnostics_detects_a_wrong_chain():
    energy = lambda x: 0.5 * (x**2).sum(1)  # noqa: E731
    data = torch.randn(2000, 2)
    sampler = LangevinSampler(step_size=0.5, metropolis=True)
    good = chain_diagnostics(energy, data, torch.randn(2000, 2), sampler, n_steps=20)
    assert abs(good["energy_gap"]) < 0.15 and len(good["grad_norm"]) == 20 and len(good["acceptance"]) == 20
    # chains started far out: the energy trace falls, the final gap is still large after 2 steps
    bad = chain_diagnostics(energy, data, 10 + torch.randn(2000, 2), LangevinSampler(step_size=0.05), n_steps=2)
    assert bad["energy_gap"] > 10 and bad["energy_chains"][0] > bad["energy_chains"][-1]
    assert bad["acceptance"] == []
    with pytest.raises(TypeError):
        chain_diagnostics(energy, data, data, "not a sampler")
