"""The Langevin sampler reaches known targets; init strategies behave as specified."""

import math
import pickle
import re

import numpy as np
import pytest
import torch

from sklearn.utils._param_validation import InvalidParameterError

from skebm.mcmc import (
    GLOBAL_NOISE,
    ChainDraw,
    DataInit,
    GaussianMixtureSource,
    GeneratorNoise,
    LangevinSampler,
    NoiseInit,
    NoiseSource,
    PersistentInit,
    ReplayInit,
    RowNoise,
    as_noise,
    chain_diagnostics,
    expected_stationary_std,
    independence_mh,
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


def _msg(name, rule, got):
    """The scikit-learn message of a rejected Langevin setting, as a regex."""
    return re.escape(f"The '{name}' parameter of langevin must be {rule}. Got {got} instead.")


_BAD_SETTINGS = [
    ({"n_steps": -1}, _msg("n_steps", "an int in the range [0, inf)", "-1")),
    ({"n_steps": True}, _msg("n_steps", "an int in the range [0, inf)", "True")),
    ({"step_size": 0.0}, _msg("step_size", "a float in the range (0.0, 1000000.0]", "0.0")),
    ({"step_size": float("inf")}, _msg("step_size", "a float in the range (0.0, 1000000.0]", "inf")),
    ({"step_size": float("nan")}, _msg("step_size", "a float in the range (0.0, 1000000.0]", "nan")),
    ({"step_size": 1e300}, _msg("step_size", "a float in the range (0.0, 1000000.0]", "1e+300")),
    ({"noise_scale": float("nan")}, _msg("noise_scale", "a float in the range [0.0, 1000000.0] or None", "nan")),
    ({"noise_scale": float("inf")}, _msg("noise_scale", "a float in the range [0.0, 1000000.0] or None", "inf")),
    ({"temperature": 0}, _msg("temperature", "a float in the range [1e-06, 1000000.0]", "0")),
    ({"tau": float("inf")}, _msg("tau", "a float in the range (0.0, 1000000.0] or None", "inf")),
]


@pytest.mark.parametrize("kwargs, match", _BAD_SETTINGS)
def test_langevin_rejects_bad_settings(kwargs, match):
    args = {"n_steps": 1, "step_size": 0.1, **kwargs}
    with pytest.raises(InvalidParameterError, match=match):
        langevin(lambda x: x.sum(1), torch.zeros(2, 2), args.pop("n_steps"), args.pop("step_size"), **args)
    # the sampler object validates the same settings at call time
    with pytest.raises(InvalidParameterError, match=match):
        LangevinSampler(n_steps=1, step_size=0.1)(lambda x: x.sum(1), torch.zeros(2, 2), **kwargs)


def test_mala_needs_positive_noise():
    with pytest.raises(ValueError, match="positive noise_scale"):
        langevin(lambda x: x.sum(1), torch.zeros(2, 2), 1, 0.1, noise_scale=0.0, metropolis=True)


def test_sampler_object_overrides_and_pickles():
    sampler = LangevinSampler(n_steps=3, step_size=0.1)
    out = sampler(lambda x: x.sum(1), torch.zeros(2, 2), n_steps=0)
    assert torch.equal(out, torch.zeros(2, 2))
    assert pickle.loads(pickle.dumps(sampler)).settings() == sampler.settings()
    with pytest.raises(ValueError, match="precision"):
        sampler(lambda x: x.sum(1), torch.zeros(2, 2), precision="fp16")


# ------------------------------------------------------- seeded generators
SHAPE = (3,)


def _setup(strategy, generator=None):
    return strategy.setup(NoiseSource("uniform", low=10.0, high=11.0), SHAPE, generator=generator)


def _tensors(out):
    """Every tensor and number of a (nested) result, in order."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for key in sorted(out) for t in _tensors(out[key])]
    if isinstance(out, (list, tuple)):
        return [t for item in out for t in _tensors(item)]
    if out is None:
        return []
    return [torch.tensor(float(out), dtype=torch.float64)]


def _same(a, b):
    a, b = _tensors(a), _tensors(b)
    return len(a) == len(b) and all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(a, b))


def assert_seeded(run):
    """``run(generator)`` depends on its generator only, and leaves torch's global stream alone."""
    torch.manual_seed(1)
    first = run(torch.Generator().manual_seed(7))
    torch.manual_seed(2)
    second = run(torch.Generator().manual_seed(7))
    assert _same(first, second), "a seeded call depends on torch's global RNG"
    assert not _same(first, run(torch.Generator().manual_seed(8))), "the generator is not used"
    torch.manual_seed(3)
    uninterrupted = torch.rand(2)
    torch.manual_seed(3)
    before = torch.rand(1)
    run(torch.Generator().manual_seed(7))
    after = torch.rand(1)
    assert torch.equal(torch.cat([before, after]), uninterrupted), "a seeded call consumed the global RNG"


_quadratic = gaussian_energy([0.5, -0.5], [1.0, 0.5])
_BASE = GaussianMixtureSource([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.0]], [torch.eye(2), torch.eye(2)])


def _fill(init, generator, y=None, n_updates=3, batch=8):
    """A few training updates of a strategy with a fake sampler (shift by 1); the starts of each."""
    out = []
    data = torch.zeros(batch, *SHAPE)
    for _ in range(n_updates):
        draw = init.draw(data, y, generator=generator)
        init.update(draw, draw.x0 + 1.0, y, generator=generator)
        out.append(draw)
    return out


_SEEDED = {
    "langevin": lambda g: langevin(_quadratic, torch.zeros(50, 2), 10, 0.3, generator=g),
    "mala": lambda g: langevin(
        _quadratic, torch.zeros(50, 2), 10, 0.8, metropolis=True, return_trace=True, generator=g
    ),
    "sampler_with_proposal": lambda g: LangevinSampler(n_steps=5, step_size=0.5, metropolis=True, proposal=_BASE)(
        _quadratic, torch.zeros(50, 2), generator=g
    ),
    "independence_mh": lambda g: independence_mh(
        _quadratic, torch.zeros(50, 2), _BASE, n_steps=3, generator=g, return_acceptance=True
    ),
    "chain_diagnostics": lambda g: chain_diagnostics(
        _quadratic, torch.zeros(5, 2), torch.zeros(50, 2), LangevinSampler(step_size=0.5), n_steps=5, generator=g
    ),
    "noise_source": lambda g: NoiseSource("gaussian").sample(20, (2,), generator=g),
    "mixture_source": lambda g: _BASE.sample(20, generator=g),
    "data_init": lambda g: DataInit(init_noise=0.5).setup(NoiseSource(), SHAPE).draw(torch.zeros(20, 3), generator=g),
    "replay": lambda g: _fill(ReplayInit(buffer_size=16, reinit_prob=0.3).setup(NoiseSource(), SHAPE), g),
    "replay_conditional": lambda g: _fill(
        ReplayInit(buffer_size=16, reinit_prob=0.3).setup(NoiseSource(), SHAPE), g, y=torch.arange(8) % 3
    ),
    "persistent": lambda g: _fill(
        PersistentInit(buffer_size=16, reinit_prob=0.3).setup(NoiseSource(), SHAPE, generator=g), g
    ),
    "persistent_conditional": lambda g: _fill(
        PersistentInit(buffer_size=16, reinit_prob=0.3).setup(NoiseSource(), SHAPE, generator=g),
        g,
        y=torch.arange(8) % 3,
    ),
}


@pytest.mark.parametrize("name", sorted(_SEEDED))
def test_seeded_generator_makes_calls_reproducible_and_leaves_global_rng(name):
    assert_seeded(_SEEDED[name])


def test_noise_streams():
    g = torch.Generator().manual_seed(0)
    assert as_noise(None, None) is GLOBAL_NOISE and GLOBAL_NOISE.generator is None
    from_gen = as_noise(None, g)
    assert isinstance(from_gen, GeneratorNoise) and from_gen.generator is g
    assert from_gen.subset(slice(0, 2)) is from_gen and from_gen.replicate(3) is from_gen
    rows = RowNoise(torch.tensor([1, 2]))
    assert as_noise(rows, g) is rows
    # an explicit noise stream wins: the generator is left untouched
    state = g.get_state()
    x = langevin(_quadratic, torch.zeros(2, 2), 3, 0.1, noise=RowNoise(torch.tensor([1, 2])), generator=g)
    assert torch.equal(g.get_state(), state)
    assert torch.equal(x, langevin(_quadratic, torch.zeros(2, 2), 3, 0.1, noise=RowNoise(torch.tensor([1, 2]))))
    a = GeneratorNoise(torch.Generator().manual_seed(5)).randn_like(torch.empty(4, 3, dtype=torch.float64))
    assert a.dtype == torch.float64
    assert torch.equal(a, torch.randn((4, 3), generator=torch.Generator().manual_seed(5), dtype=torch.float64))


# ---------------------------------------------------------------- strategies
def test_noise_and_data_init():
    data = torch.zeros(50, 3)
    draw = _setup(NoiseInit()).draw(data)
    assert isinstance(draw, ChainDraw) and draw.index is None and draw.burnin_index is None
    x0 = draw.x0
    assert x0.shape == (50, 3) and x0.min() >= 10 and x0.max() <= 11
    x0 = _setup(DataInit()).draw(data).x0
    assert torch.equal(x0, data) and x0.data_ptr() != data.data_ptr()
    x0 = _setup(DataInit(init_noise=0.1)).draw(data).x0
    assert 0.05 < float(x0.std()) < 0.15
    with pytest.warns(FutureWarning, match="init_noise"):  # renamed init_noise: a deprecated alias
        assert DataInit(noise_std=0.1).init_noise == 0.1
    with pytest.raises(InvalidParameterError, match=r"The 'init_noise' parameter of DataInit must be a float"):
        DataInit(init_noise=-0.1)
    with pytest.raises(InvalidParameterError, match=r"The 'init_noise' parameter of DataInit must be a float"):
        DataInit(init_noise=float("nan"))


def test_fresh_starts_and_setup_errors():
    init = _setup(NoiseInit())
    x = init.fresh(6, torch.Generator().manual_seed(0))
    assert x.shape == (6, 3) and x.dtype == torch.float32 and x.min() >= 10 and x.max() <= 11
    assert torch.equal(x, init.fresh(6, torch.Generator().manual_seed(0)))
    assert init.starts(4).shape == (4, 3)
    with pytest.raises(RuntimeError, match="not set up"):
        NoiseInit().fresh(2)
    with pytest.raises(TypeError, match="sample"):
        NoiseInit().setup(object(), SHAPE)


def test_replay_reinit_rate_and_ring_buffer():
    replay = _setup(ReplayInit(buffer_size=100, reinit_prob=0.2))
    assert replay.n_filled_.shape == () and replay.write_pos_.shape == ()  # counters are 0-d tensors
    data = torch.zeros(40, 3)
    draw = replay.draw(data)  # empty buffer: all noise
    assert replay.last_reinit_.all() and draw.x0.min() >= 10
    replay.update(draw, torch.zeros(40, 3))
    replay.update(draw, torch.zeros(40, 3))
    assert int(replay.n_filled_) == 80 and int(replay.write_pos_) == 80
    replay.update(draw, torch.full((40, 3), -5.0))  # wraps around
    assert int(replay.n_filled_) == 100 and int(replay.write_pos_) == 20
    assert torch.equal(replay.buffer_[:20], torch.full((20, 3), -5.0))
    assert torch.equal(replay.buffer_[80:], torch.full((20, 3), -5.0))
    assert torch.equal(replay.labels_, torch.full((100,), -1))
    # reinitialised chains come from noise (>= 10), the others from the buffer (<= 0)
    n_draws, n_reinit = 200, 0
    for _ in range(n_draws):
        x0 = replay.draw(data).x0
        from_noise = x0[:, 0] >= 10
        assert torch.equal(from_noise, replay.last_reinit_)
        n_reinit += int(from_noise.sum())
    rate = n_reinit / (n_draws * 40)
    assert abs(rate - 0.2) < 4 * math.sqrt(0.2 * 0.8 / (n_draws * 40))


def test_replay_conditional_draws_rows_of_the_chains_class():
    replay = _setup(ReplayInit(buffer_size=60, reinit_prob=0.0))
    data = torch.zeros(20, 3)
    # class 0 ends at -1, class 1 at -2 (rows interleaved in the buffer)
    y = torch.arange(40) % 2
    replay.update(ChainDraw(torch.zeros(40, 3)), -1.0 - y[:, None].float().expand(40, 3), y)
    assert torch.equal(replay.labels_[:40], y)
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        x0 = replay.draw(data, torch.zeros(20, dtype=torch.long), generator=g).x0
        assert torch.equal(x0, torch.full((20, 3), -1.0))  # class-0 rows only
        x0 = replay.draw(data, torch.ones(20, dtype=torch.long), generator=g).x0
        assert torch.equal(x0, torch.full((20, 3), -2.0))
        mixed = torch.randint(2, (20,), generator=g)
        x0 = replay.draw(data, mixed, generator=g).x0
        assert torch.equal(x0[:, 0], -1.0 - mixed.float())
    # a class the buffer does not hold starts from the source
    x0 = replay.draw(data, torch.tensor([0] * 10 + [2] * 10)).x0
    assert torch.equal(x0[:10], torch.full((10, 3), -1.0)) and x0[10:].min() >= 10
    # sampling from the fitted model: starts per class too
    assert torch.equal(replay.starts(7, torch.ones(7, dtype=torch.long)), torch.full((7, 3), -2.0))
    assert replay.starts(3, torch.full((3,), 5)).min() >= 10


def test_replay_last_reinit_flags_chains_without_a_row_of_their_class():
    replay = _setup(ReplayInit(buffer_size=60, reinit_prob=0.0))
    replay.update(ChainDraw(torch.zeros(40, 3)), torch.zeros(40, 3), torch.zeros(40, dtype=torch.long))
    x0 = replay.draw(torch.zeros(4, 3), torch.tensor([0, 0, 2, 2])).x0
    assert torch.equal(replay.last_reinit_, x0[:, 0] >= 10)


def test_persistent_bank_updated_in_place_and_forced_reset():
    bank = _setup(PersistentInit(buffer_size=30, reinit_prob=0.0, max_updates=2))
    assert bank.bank_.shape == (30, 3) and bank.bank_.min() >= 10
    data = torch.full((30, 3), -1.0)
    draw = bank.draw(data)
    assert sorted(draw.index.tolist()) == list(range(30))  # without replacement
    bank.update(draw, torch.zeros(30, 3))
    assert torch.equal(bank.bank_, torch.zeros(30, 3))
    assert bank.n_updates_.tolist() == [1] * 30
    draw = bank.draw(data)
    assert not bank.last_reinit_.any() and torch.equal(draw.x0, torch.zeros(30, 3))
    bank.update(draw, torch.ones(30, 3))
    assert bank.n_updates_.tolist() == [2] * 30
    draw = bank.draw(data)  # every chain hit max_updates: forced reset from noise
    assert bank.last_reinit_.all() and draw.x0.min() >= 10
    assert bank.n_updates_.tolist() == [0] * 30


def test_persistent_rejuvenation_rate_and_data_source():
    bank = _setup(PersistentInit(buffer_size=1000, reinit_prob=0.3, rejuvenate="data"))
    data = torch.full((500, 3), -7.0)
    total = 0
    for _ in range(20):
        draw = bank.draw(data)
        rejuv = draw.x0[:, 0] == -7.0
        assert torch.equal(rejuv, bank.last_reinit_)
        total += int(rejuv.sum())
        bank.update(draw, torch.zeros_like(draw.x0))
    rate = total / (20 * 500)
    assert abs(rate - 0.3) < 4 * math.sqrt(0.3 * 0.7 / 10000)


def test_persistent_conditional_draws_chains_last_run_with_the_class():
    bank = _setup(PersistentInit(buffer_size=40, reinit_prob=0.0))
    data = torch.zeros(10, 3)
    g = torch.Generator().manual_seed(0)
    # no chain has run with any class yet: every chain restarts from the source
    y = torch.zeros(10, dtype=torch.long)
    draw = bank.draw(data, y, generator=g)
    assert bank.last_reinit_.all() and draw.x0.min() >= 10
    bank.update(draw, torch.full((10, 3), -1.0), y)
    assert torch.equal(bank.labels_[draw.index], y)
    seen_class_1 = False
    for _ in range(30):
        y = torch.randint(2, (10,), generator=g)
        draw = bank.draw(data, y, generator=g)
        available = [int((bank.labels_ == c).sum()) for c in range(2)]
        kept = ~bank.last_reinit_
        # rows never repeat within a draw; each class keeps as many chains as it has rows, the rest restart
        assert len(torch.unique(draw.index)) == len(draw.index)
        for c in range(2):
            assert int(kept[y == c].sum()) == min(int((y == c).sum()), available[c])
        assert torch.equal(bank.labels_[draw.index[kept]], y[kept])
        assert torch.equal(draw.x0[kept, 0], -1.0 - y[kept].float())
        assert bool((draw.x0[~kept] >= 10).all())
        seen_class_1 |= bool(kept[y == 1].any())
        bank.update(draw, -1.0 - y[:, None].float().expand(10, 3), y)
        # each drawn row now carries the class (and end state) of the chain that ran from it
        assert torch.equal(bank.labels_[draw.index], y)
        assert torch.equal(bank.bank_[draw.index, 0], -1.0 - y.float())
    assert seen_class_1
    # sampling from the fitted model: starts from chains of the asked class, fresh for an unseen class
    assert torch.equal(bank.starts(5, torch.ones(5, dtype=torch.long)), torch.full((5, 3), -2.0))
    assert bank.starts(5, torch.full((5,), 3)).min() >= 10


def _continue(init):
    """What a strategy does next: a draw and sampling starts, from fixed generators."""
    draw = init.draw(torch.zeros(8, *SHAPE), torch.arange(8) % 2, generator=torch.Generator().manual_seed(11))
    return draw, init.starts(4, generator=torch.Generator().manual_seed(12))


_STATEFUL = {
    "replay": lambda: ReplayInit(buffer_size=16, reinit_prob=0.3),
    "persistent": lambda: PersistentInit(buffer_size=16, reinit_prob=0.3, max_updates=2),
}


@pytest.mark.parametrize("name", sorted(_STATEFUL))
def test_strategy_state_dict_and_pickle_round_trip(name):
    init = _setup(_STATEFUL[name](), torch.Generator().manual_seed(0))
    _fill(init, torch.Generator().manual_seed(1), y=torch.arange(8) % 2, n_updates=5)
    state = {k: v.clone() for k, v in init.state_dict().items()}
    assert "labels_" in state and (state["labels_"] >= 0).any()
    fresh = _setup(_STATEFUL[name](), torch.Generator().manual_seed(99))
    assert not all(torch.equal(fresh.state_dict()[k], v) for k, v in state.items())  # a fresh set-up differs
    fresh.load_state_dict(init.state_dict())
    clone = pickle.loads(pickle.dumps(init))
    for other in (fresh, clone):
        restored = other.state_dict()
        assert set(restored) == set(state)
        for key, value in state.items():
            assert restored[key].dtype == value.dtype and torch.equal(restored[key], value), key
        for attr in ("n_filled_", "write_pos_"):
            if hasattr(init, attr):
                assert getattr(other, attr).shape == () and int(getattr(other, attr)) == int(getattr(init, attr))
    # both copies continue exactly as the original
    expected = _continue(init)
    assert _same(_continue(fresh), expected) and _same(_continue(clone), expected)


def test_make_chain_init_and_errors():
    assert isinstance(make_chain_init("replay", buffer_size=5), ReplayInit)
    assert make_chain_init("persistent", buffer_size=7, reinit_prob=0.5).buffer_size == 7
    custom = PersistentInit(buffer_size=3)
    assert make_chain_init(custom) is not custom
    # one set of estimator parameters serves every strategy: those a strategy does not take are ignored
    params = dict(buffer_size=5, reinit_prob=0.5, init_noise=0.2, rejuvenate="data", burnin_buffer_size=3)
    assert isinstance(make_chain_init("noise", **params), NoiseInit)
    data = make_chain_init("data", **params)
    assert isinstance(data, DataInit) and data.init_noise == 0.2 and not hasattr(data, "buffer_size")
    replay = make_chain_init("replay", **params)
    assert (replay.buffer_size, replay.reinit_prob) == (5, 0.5) and not hasattr(replay, "rejuvenate")
    assert make_chain_init("persistent", **params).rejuvenate == "data"
    with pytest.raises(ValueError, match="init must be one of"):
        make_chain_init("bogus")
    with pytest.raises(InvalidParameterError, match=r"The 'buffer_size' parameter of ReplayInit must be an int"):
        make_chain_init("replay", buffer_size=0)
    with pytest.raises(
        InvalidParameterError,
        match=re.escape("The 'reinit_prob' parameter of ReplayInit must be a float in the range [0.0, 1.0]. Got 1.5"),
    ):
        ReplayInit(reinit_prob=1.5)
    with pytest.raises(
        InvalidParameterError,
        match=re.escape("The 'buffer_size' parameter of PersistentInit must be an int in the range [1, inf). Got 0"),
    ):
        PersistentInit(buffer_size=0)
    with pytest.raises(InvalidParameterError, match=r"The 'buffer_size' parameter of ReplayInit must be an int"):
        ReplayInit(buffer_size=2.0)
    with pytest.raises(InvalidParameterError, match=r"The 'max_updates' parameter of PersistentInit must be an int"):
        PersistentInit(max_updates=0)
    with pytest.raises(InvalidParameterError, match=r"The 'rejuvenate' parameter of PersistentInit must be a str among"):
        PersistentInit(rejuvenate="generator")
    with pytest.warns(FutureWarning, match="source"):  # "noise" is now "source": a deprecated alias
        assert PersistentInit(rejuvenate="noise").rejuvenate == "source"


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
