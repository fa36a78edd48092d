"""The Langevin sampler reaches known targets; init strategies behave as specified."""

import math
import pickle

import numpy as np
import pytest
import torch

from skebm.mcmc import (
    DataInit,
    LangevinSampler,
    NoiseInit,
    NoiseSource,
    PersistentInit,
    ReplayInit,
    RowNoise,
    expected_stationary_std,
    langevin,
    make_chain_init,
    row_keys,
)


def gaussian_energy(mean, std):
    mean = torch.as_tensor(mean, dtype=torch.float32)
    std = torch.as_tensor(std, dtype=torch.float32)
    return lambda x: 0.5 * (((x - mean) / std) ** 2).sum(1)


@pytest.mark.parametrize("temperature", [1.0, 0.25])
def test_langevin_reaches_gaussian_target(temperature):
    mean, std = [1.0, -2.0], [0.5, 2.0]
    n, eps = 4000, 0.3
    x = langevin(gaussian_energy(mean, std), torch.zeros(n, 2), 1500, eps, temperature=temperature)
    target_std = np.array(std) * math.sqrt(temperature)
    # discretisation inflates the variance by 1 / (1 - eps^2 / (4 s^2 T)) per axis
    target_std = target_std / np.sqrt(1 - eps**2 / (4 * np.array(std) ** 2 * temperature))
    emp_mean, emp_std = x.mean(0).numpy(), x.std(0).numpy()
    # sampling error of the mean: std / sqrt(n); allow 5 standard errors
    assert np.all(np.abs(emp_mean - mean) < 5 * target_std / math.sqrt(n))
    # std of the sample std ~ std / sqrt(2 n)
    assert np.all(np.abs(emp_std - target_std) < 5 * target_std / math.sqrt(2 * n) + 0.01)


def test_expected_stationary_std_matches_chain():
    eps = 0.5
    x = langevin(lambda x: 0.5 * (x**2).sum(1), torch.zeros(20000, 1), 300, eps)
    assert abs(float(x.std()) - expected_stationary_std(eps)) < 0.02
    assert expected_stationary_std(eps) > 1.0


def test_langevin_reaches_mixture_weights():
    # two 1-D components at -2 and +2, weights 0.25 / 0.75, std 0.5
    mu = torch.tensor([-2.0, 2.0])
    logw = torch.log(torch.tensor([0.25, 0.75]))

    def energy(x):
        comp = logw - 0.5 * ((x - mu) / 0.5) ** 2
        return -torch.logsumexp(comp, dim=1)

    # start from the exact mixture; the chain must keep the weights and shapes
    n = 6000
    start = torch.where(torch.rand(n, 1) < 0.25, torch.tensor(-2.0), torch.tensor(2.0)) + 0.5 * torch.randn(n, 1)
    x = langevin(energy, start, 400, 0.1)
    right = (x > 0).float().mean().item()
    assert abs(right - 0.75) < 4 * math.sqrt(0.75 * 0.25 / n) + 0.01
    assert abs(x[x > 0].std().item() - 0.5) < 0.03


def test_tau_prior_bounds_flat_energy():
    # zero energy + prior tau: stationary N(0, tau^2)
    tau = 0.7
    x = langevin(lambda x: 0.0 * x.sum(1), torch.zeros(8000, 3), 800, 0.2, tau=tau)
    assert abs(float(x.std()) - tau) < 0.03


def test_mask_keeps_unmasked_entries_fixed():
    x0 = torch.randn(10, 4)
    mask = torch.tensor([1.0, 0.0, 1.0, 0.0])
    x = langevin(lambda x: (x**2).sum(1), x0, 20, 0.3, mask=mask)
    assert torch.equal(x[:, 1], x0[:, 1]) and torch.equal(x[:, 3], x0[:, 3])
    assert not torch.allclose(x[:, 0], x0[:, 0])


def test_clamp_grad_clip_and_outputs():
    x0 = torch.zeros(5, 2)
    x, chains, trace = langevin(
        lambda x: -100 * x.sum(1), x0, 10, 1.0, clamp=(-1, 1), grad_clip=0.05, return_chains=True, return_trace=True
    )
    assert chains.shape == (11, 5, 2)
    assert torch.equal(chains[0], x0)
    assert x.max() <= 1 and x.min() >= -1
    # drift clipped at 0.05 per step; noise scale 1 -> positions still bounded by clamp
    assert len(trace["energy"]) == 10 and len(trace["grad_norm"]) == 10
    assert trace["grad_norm"][0] == pytest.approx(100 * math.sqrt(2), rel=1e-4)
    assert not x0.requires_grad and torch.equal(x0, torch.zeros(5, 2))


def test_langevin_does_not_touch_parameter_grads():
    net = torch.nn.Linear(3, 1)
    langevin(lambda x: net(x)[:, 0], torch.randn(4, 3), 5, 0.1)
    assert net.weight.grad is None


def test_bf16_keeps_float32_state():
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.SiLU(), torch.nn.Linear(16, 1))
    x = langevin(lambda x: net(x)[:, 0], torch.randn(8, 4), 3, 0.1, precision="bf16")
    assert x.dtype == torch.float32


@pytest.mark.parametrize(
    "kwargs, match",
    [({"n_steps": -1}, "n_steps"), ({"step_size": 0.0}, "step_size"), ({"temperature": 0}, "temperature")],
)
def test_langevin_rejects_bad_settings(kwargs, match):
    args = {"n_steps": 1, "step_size": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        langevin(lambda x: x.sum(1), torch.zeros(2, 2), args.pop("n_steps"), args.pop("step_size"), **args)


def test_sampler_object_overrides_and_pickles():
    sampler = LangevinSampler(n_steps=3, step_size=0.1)
    out = sampler(lambda x: x.sum(1), torch.zeros(2, 2), n_steps=0)
    assert torch.equal(out, torch.zeros(2, 2))
    assert pickle.loads(pickle.dumps(sampler)).settings() == sampler.settings()
    with pytest.raises(ValueError, match="precision"):
        sampler(lambda x: x.sum(1), torch.zeros(2, 2), precision="fp16")


# ---------------------------------------------------------------- strategies
SHAPE = (3,)


def _setup(strategy):
    return strategy.setup(NoiseSource("uniform", low=10.0, high=11.0), SHAPE)


def test_noise_and_data_init():
    data = torch.zeros(50, 3)
    x0, _ = _setup(NoiseInit()).draw(data)
    assert x0.shape == (50, 3) and x0.min() >= 10 and x0.max() <= 11
    x0, _ = _setup(DataInit()).draw(data)
    assert torch.equal(x0, data) and x0.data_ptr() != data.data_ptr()
    x0, _ = _setup(DataInit(noise_std=0.1)).draw(data)
    assert 0.05 < float(x0.std()) < 0.15


def test_replay_reinit_rate_and_ring_buffer():
    replay = _setup(ReplayInit(buffer_size=100, reinit_prob=0.2))
    data = torch.zeros(40, 3)
    x0, _ = replay.draw(data)  # empty buffer: all noise
    assert replay.last_reinit_.all()
    replay.update(None, torch.zeros(40, 3))
    replay.update(None, torch.zeros(40, 3))
    assert replay.n_filled_ == 80 and replay.write_pos_ == 80
    replay.update(None, torch.full((40, 3), -5.0))  # wraps around
    assert replay.n_filled_ == 100 and replay.write_pos_ == 20
    assert torch.equal(replay.buffer_[:20], torch.full((20, 3), -5.0))
    assert torch.equal(replay.buffer_[80:], torch.full((20, 3), -5.0))
    # reinitialised chains come from noise (>= 10), the others from the buffer (<= 0)
    n_draws, n_reinit = 200, 0
    for _ in range(n_draws):
        x0, _ = replay.draw(data)
        from_noise = x0[:, 0] >= 10
        assert torch.equal(from_noise, replay.last_reinit_)
        n_reinit += int(from_noise.sum())
    rate = n_reinit / (n_draws * 40)
    assert abs(rate - 0.2) < 4 * math.sqrt(0.2 * 0.8 / (n_draws * 40))


def test_persistent_bank_updated_in_place_and_forced_reset():
    bank = _setup(PersistentInit(buffer_size=30, reinit_prob=0.0, max_updates=2))
    assert bank.bank_.shape == (30, 3) and bank.bank_.min() >= 10
    data = torch.full((30, 3), -1.0)
    x0, idx = bank.draw(data)
    assert sorted(idx.tolist()) == list(range(30))  # without replacement
    bank.update(idx, torch.zeros(30, 3))
    assert torch.equal(bank.bank_, torch.zeros(30, 3))
    assert bank.n_updates_.tolist() == [1] * 30
    x0, idx = bank.draw(data)
    assert not bank.last_reinit_.any() and torch.equal(x0, torch.zeros(30, 3))
    bank.update(idx, torch.ones(30, 3))
    assert bank.n_updates_.tolist() == [2] * 30
    x0, idx = bank.draw(data)  # every chain hit max_updates: forced reset from noise
    assert bank.last_reinit_.all() and x0.min() >= 10
    assert bank.n_updates_.tolist() == [0] * 30


def test_persistent_rejuvenation_rate_and_data_source():
    bank = _setup(PersistentInit(buffer_size=1000, reinit_prob=0.3, rejuvenate="data"))
    data = torch.full((500, 3), -7.0)
    total = 0
    for _ in range(20):
        x0, idx = bank.draw(data)
        rejuv = x0[:, 0] == -7.0
        assert torch.equal(rejuv, bank.last_reinit_)
        total += int(rejuv.sum())
        bank.update(idx, torch.zeros_like(x0))
    rate = total / (20 * 500)
    assert abs(rate - 0.3) < 4 * math.sqrt(0.3 * 0.7 / 10000)


def test_make_chain_init_and_errors():
    assert isinstance(make_chain_init("replay", buffer_size=5), ReplayInit)
    assert make_chain_init("persistent", buffer_size=7, reinit_prob=0.5).buffer_size == 7
    custom = PersistentInit(buffer_size=3)
    assert make_chain_init(custom) is not custom
    with pytest.raises(ValueError, match="init must be one of"):
        make_chain_init("bogus")
    with pytest.raises(ValueError, match="reinit_prob"):
        ReplayInit(reinit_prob=1.5)
    with pytest.raises(ValueError, match="buffer_size"):
        PersistentInit(buffer_size=0)
    with pytest.raises(ValueError, match="rejuvenate"):
        PersistentInit(rejuvenate="generator")


def test_row_noise_is_standard_normal_and_uniform():
    from scipy import stats

    noise = RowNoise(row_keys(np.arange(2000.0)[:, None], seed=3))
    z = noise.randn_like(torch.empty(2000, 7)).numpy()
    assert z.dtype == np.float32 and z.shape == (2000, 7)
    assert stats.kstest(z.ravel(), "norm").pvalue > 1e-3
    # the next call draws afresh, uncorrelated with the first
    z2 = noise.randn_like(torch.empty(2000, 7)).numpy()
    assert abs(np.corrcoef(z.ravel(), z2.ravel())[0, 1]) < 0.03
    # entries of one row are uncorrelated too (even vs odd elements)
    assert abs(np.corrcoef(z[:, 0], z[:, 1])[0, 1]) < 0.08
    u = noise.rand_like(torch.empty(2000)).numpy()
    assert u.min() > 0 and u.max() < 1 and stats.kstest(u, "uniform").pvalue > 1e-3
    assert noise.n_calls == 3


def test_row_noise_depends_on_the_row_only():
    keys = row_keys(np.random.RandomState(0).rand(6, 3), seed=0)
    full = RowNoise(keys).randn_like(torch.empty(6, 5))
    perm = [4, 1, 5]
    np.testing.assert_array_equal(RowNoise(keys[perm]).randn_like(torch.empty(3, 5)), full[perm])
    # replicates are independent streams, replicate-major, and the same for any subset
    reps = RowNoise(keys).replicate(3).randn_like(torch.empty(18, 5)).view(3, 6, 5)
    sub = RowNoise(keys).subset(slice(2, 4)).replicate(3).randn_like(torch.empty(6, 5)).view(3, 2, 5)
    np.testing.assert_array_equal(sub, reps[:, 2:4])
    assert not torch.allclose(reps[0], reps[1])
    assert not torch.equal(row_keys(np.ones((1, 3)), seed=0), row_keys(np.ones((1, 3)), seed=1))
    with pytest.raises(ValueError, match="keys"):
        RowNoise(keys).randn_like(torch.empty(5, 5))


@pytest.mark.parametrize("metropolis", [False, True])
def test_langevin_with_row_noise_reaches_target_and_ignores_batch(metropolis):
    energy = gaussian_energy([1.0], [0.5])
    keys = row_keys(np.arange(3000.0)[:, None])
    x = langevin(energy, torch.zeros(3000, 1), 400, 0.2, metropolis=metropolis, noise=RowNoise(keys))
    assert abs(float(x.mean()) - 1.0) < 0.05 and abs(float(x.std()) - 0.5) < 0.03
    # a chain run alone follows the same trajectory as inside the batch
    alone = langevin(energy, torch.zeros(2, 1), 400, 0.2, metropolis=metropolis, noise=RowNoise(keys[[7, 11]]))
    torch.testing.assert_close(alone, x[[7, 11]])
