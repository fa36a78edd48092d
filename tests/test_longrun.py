"""LongrunInit, MALA, AIS, grid quadrature and chain diagnostics (shared MCMC pieces)."""

import math
import pickle
import re

import numpy as np
import pytest
import torch

from sklearn.utils._param_validation import InvalidParameterError

from skebm.mcmc import (
    CellGrid,
    ChainDraw,
    GaussianMixtureSource,
    LangevinSampler,
    LongrunInit,
    NoiseSource,
    ais_log_partition,
    chain_diagnostics,
    estimate_log_partition,
    grid_box,
    grid_log_partition,
    independence_mh,
    langevin,
    make_chain_init,
    sigmoid_schedule,
)

SHAPE = (3,)


def _setup(strategy, generator=None):
    # fresh chains in [10, 11]: easy to tell from anything the "sampler" produced
    return strategy.setup(NoiseSource("uniform", low=10.0, high=11.0), SHAPE, generator=generator)


def _step(init, data, shift=1.0, generator=None):
    """One training update with a fake sampler that adds ``shift`` to every chain."""
    draw = init.draw(data, generator=generator)
    x_out = draw.x0 + shift
    init.update(draw, x_out, generator=generator)
    return draw.x0, draw, init.negatives(draw, x_out)


def _same(a, b):
    """Equal nested results: tensors exactly, numbers and None as they are."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


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


# ------------------------------------------------------------------ longrun
def test_longrun_staggered_counters_and_negatives_while_filling():
    init = _setup(LongrunInit(buffer_size=50, burnin_buffer_size=40, burnin_updates=5, burnin_batch=8))
    counts = init.burnin_count_
    assert counts.min() >= 0 and counts.max() < 5 and len(torch.unique(counts)) > 1  # staggered
    assert init.n_filled_.shape == () and int(init.n_filled_) == 0 and int(init.n_graduated_) == 0
    data = torch.zeros(10, 3)
    x0, draw, neg = _step(init, data)
    # empty update bank: the 8 advanced burn-in chains are the negatives
    assert isinstance(draw, ChainDraw) and draw.index is None and len(draw.burnin_index) == 8
    assert draw.x_data is None  # rejuvenate="source" keeps no data
    assert x0.shape == (8, 3) and neg.shape == (8, 3)
    assert torch.equal(neg, x0 + 1.0)


def test_longrun_graduation_moves_burnin_chains_into_update_bank():
    init = _setup(LongrunInit(buffer_size=1000, burnin_buffer_size=20, burnin_updates=4, burnin_batch=20))
    init.burnin_count_.zero_()  # synchronise to check the exact count
    data = torch.zeros(5, 3)
    for i in range(3):
        _step(init, data)
        assert int(init.n_filled_) == 0
    assert init.burnin_count_.tolist() == [3] * 20
    _step(init, data)  # 4th update: all graduate
    assert int(init.n_filled_) == 20 and int(init.n_graduated_) == 20
    # graduates advanced exactly 4 times (+1 each) from noise in [10, 11]
    bank = init.update_bank_[:20]
    assert bank.min() >= 14.0 and bank.max() <= 15.0
    # their burn-in slots restarted from fresh noise with zero counters
    assert init.burnin_count_.tolist() == [0] * 20
    assert init.burnin_bank_.min() >= 10.0 and init.burnin_bank_.max() <= 11.0


def test_longrun_update_bank_supplies_negatives_and_is_never_reset():
    init = _setup(LongrunInit(buffer_size=30, burnin_buffer_size=60, burnin_updates=3, burnin_batch=20))
    data = torch.zeros(10, 3)
    for _ in range(40):
        x0, draw, neg = _step(init, data)
    assert int(init.n_filled_) == 30
    update_idx, burnin_idx = draw.index, draw.burnin_index
    assert update_idx is not None and len(update_idx) == 10 and len(burnin_idx) == 20
    assert len(torch.unique(update_idx)) == 10  # without replacement
    # negatives are the update-bank part of the draw, advanced once
    assert neg.shape == (10, 3) and torch.equal(neg, x0[:10] + 1.0)
    # no update-bank chain is fresh noise: each has had >= 3 updates (value >= 13)
    assert init.update_bank_.min() >= 13.0
    # graduates keep flowing in once the bank is full (they replace drawn chains)
    before = int(init.n_graduated_)
    for _ in range(10):
        _step(init, data)
    assert int(init.n_graduated_) > before and int(init.n_filled_) == 30


def test_longrun_rate_of_graduation_is_steady():
    # staggered counters: about burnin_batch / burnin_updates graduates per update from the start
    init = _setup(LongrunInit(buffer_size=100000, burnin_buffer_size=400, burnin_updates=10, burnin_batch=100))
    data = torch.zeros(10, 3)
    per_update = []
    for _ in range(30):
        before = int(init.n_graduated_)
        _step(init, data)
        per_update.append(int(init.n_graduated_) - before)
    assert 5 <= np.mean(per_update[:10]) <= 15 and 5 <= np.mean(per_update[10:]) <= 15


def test_longrun_starts_data_rejuvenation_and_errors():
    init = _setup(LongrunInit(buffer_size=10, burnin_buffer_size=10, burnin_updates=1, rejuvenate="data"))
    assert init.starts(4).min() >= 10.0  # empty bank: burn-in chains
    data = torch.full((10, 3), -7.0)
    _, draw, _ = _step(init, data)  # every burn-in chain graduates and restarts from the data
    assert torch.equal(draw.x_data, data)
    assert torch.equal(init.burnin_bank_, data)
    assert init.starts(4).shape == (4, 3)
    y = torch.zeros(10, dtype=torch.long)
    with pytest.raises(ValueError, match="class-conditional"):
        init.draw(data, y)
    draw = init.draw(data)
    with pytest.raises(ValueError, match="class-conditional"):
        init.update(draw, draw.x0, y=y)
    with pytest.raises(ValueError, match="class-conditional"):
        init.starts(4, y=y[:4])
    with pytest.raises(InvalidParameterError, match=r"The 'rejuvenate' parameter of LongrunInit must be a str"):
        LongrunInit(rejuvenate="generator")
    with pytest.warns(FutureWarning, match="source"):  # "noise" is now "source": a deprecated alias
        assert LongrunInit(rejuvenate="noise").rejuvenate == "source"
    with pytest.raises(
        InvalidParameterError,
        match=re.escape("The 'burnin_updates' parameter of LongrunInit must be an int in the range [1, inf). Got 0"),
    ):
        LongrunInit(burnin_updates=0)
    with pytest.raises(InvalidParameterError, match=r"The 'burnin_batch' parameter of LongrunInit must be an int"):
        LongrunInit(burnin_batch=0)
    made = make_chain_init("longrun", buffer_size=7, reinit_prob=0.3, burnin_buffer_size=5)
    assert isinstance(made, LongrunInit) and made.buffer_size == 7 and made.burnin_buffer_size == 5
    assert not hasattr(made, "reinit_prob")  # a parameter longrun does not take is ignored
    assert int(pickle.loads(pickle.dumps(init)).n_filled_) == int(init.n_filled_) == 10


def _longrun_run(generator):
    init = _setup(LongrunInit(buffer_size=12, burnin_buffer_size=16, burnin_updates=2, burnin_batch=8), generator)
    out = [init.burnin_bank_.clone(), init.burnin_count_.clone()]
    for _ in range(8):  # fills the bank, then graduates replace drawn chains
        x0, draw, _ = _step(init, torch.zeros(6, 3), generator=generator)
        out += [x0, draw.index, draw.burnin_index]
    assert int(init.n_graduated_) > 12  # the full-bank replacement path ran
    return out + [init.update_bank_.clone(), init.starts(5, generator=generator)]


def test_longrun_seeded_draws_and_updates_are_reproducible():
    assert_seeded(_longrun_run)


def _longrun_continue(init):
    g = torch.Generator().manual_seed(11)
    x0, draw, neg = _step(init, torch.zeros(6, 3), generator=g)
    return [x0, draw.index, draw.burnin_index, neg, init.update_bank_, init.burnin_bank_, init.burnin_count_,
            int(init.n_filled_), int(init.n_graduated_), init.starts(4, generator=g)]


def test_longrun_state_dict_and_pickle_round_trip():
    def make(seed):
        return _setup(LongrunInit(buffer_size=40, burnin_buffer_size=16, burnin_updates=3, burnin_batch=8),
                      torch.Generator().manual_seed(seed))

    init = make(0)
    g = torch.Generator().manual_seed(1)
    for _ in range(4):
        _step(init, torch.zeros(6, 3), generator=g)
    assert 0 < int(init.n_filled_) < 40  # mid-way: both banks and the counters carry state
    state = {k: v.clone() for k, v in init.state_dict().items()}
    assert {"update_bank_", "burnin_bank_", "burnin_count_", "n_filled_", "n_graduated_"} <= set(state)
    fresh = make(99)
    assert not torch.equal(fresh.burnin_bank_, state["burnin_bank_"])
    fresh.load_state_dict(init.state_dict())
    clone = pickle.loads(pickle.dumps(init))
    for other in (fresh, clone):
        restored = other.state_dict()
        assert set(restored) == set(state)
        for key, value in state.items():
            assert restored[key].dtype == value.dtype and torch.equal(restored[key], value), key
        assert int(other.n_filled_) == int(init.n_filled_) and int(other.n_graduated_) == int(init.n_graduated_)
    expected = _longrun_continue(init)
    assert _same(_longrun_continue(fresh), expected) and _same(_longrun_continue(clone), expected)


def test_generator_engine_trains_with_longrun():
    # the shared engine asks the strategy which chains are negatives
    from skebm import EBMGenerator

    X = np.random.RandomState(0).randn(64, 2)
    gen = EBMGenerator(
        init=LongrunInit(buffer_size=32, burnin_buffer_size=32, burnin_updates=2),
        max_iter=6,
        batch_size=16,
        n_steps=2,
        energy_params={"hidden_units": (8,)},
        random_state=0,
    ).fit(X)
    bank = gen.net_.chain_init_
    assert int(bank.n_graduated_) > 0 and int(bank.n_filled_) > 0


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
        sd = src.component_std()
        assert sd.dtype == np.float64 and sd.shape == (2, 2)
        if cov == "diag":
            np.testing.assert_allclose(sd, np.sqrt(gmm.covariances_), rtol=1e-5)
        elif cov == "full":
            np.testing.assert_allclose(sd, np.sqrt(np.diagonal(gmm.covariances_, axis1=1, axis2=2)), rtol=1e-5)
    x = src.sample(5000, (2,))
    assert x.shape == (5000, 2) and abs(float(x[:, 0].mean())) < 0.2
    assert src.sample(7).shape == (7, 2)  # default shape: (n, n_features)
    assert src.sample(4, (1, 2)).shape == (4, 1, 2)
    with pytest.raises(ValueError, match="does not hold"):
        src.sample(4, (3,))
    with pytest.raises(ValueError, match="shapes"):
        GaussianMixtureSource([1.0], [[0.0]], [[[1.0, 0.0], [0.0, 1.0]]])


def test_gaussian_mixture_state_dict_resizes_to_the_saved_components():
    covariances = torch.stack([torch.eye(2), 0.5 * torch.eye(2), torch.tensor([[1.0, 0.3], [0.3, 2.0]])])
    three = GaussianMixtureSource([0.2, 0.3, 0.5], [[-2.0, 0.0], [0.0, 1.0], [2.0, -1.0]], covariances)
    one = GaussianMixtureSource([1.0], [[5.0, 5.0]], [torch.eye(2)])
    x = torch.randn(50, 2) * 2
    assert not torch.equal(one.log_prob(x), three.log_prob(x))
    one.load_state_dict(three.state_dict())
    assert one.n_components == 3 and one.n_features == 2
    assert torch.equal(one.log_prob(x), three.log_prob(x))
    np.testing.assert_array_equal(one.component_std(), three.component_std())
    g = torch.Generator()
    assert torch.equal(one.sample(20, generator=g.manual_seed(0)), three.sample(20, generator=g.manual_seed(0)))
    # and back to one component
    three.load_state_dict(GaussianMixtureSource([1.0], [[5.0, 5.0]], [torch.eye(2)]).state_dict())
    assert three.n_components == 1
    torch.testing.assert_close(three.log_prob(torch.tensor([[5.0, 5.0]])), torch.tensor([-math.log(2 * math.pi)]))


def test_seeded_sources_ais_and_diagnostics_are_reproducible():
    base = GaussianMixtureSource([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.0]], [torch.eye(2), torch.eye(2)])
    energy = lambda x: 0.5 * (x**2).sum(1)  # noqa: E731
    assert_seeded(lambda g: base.sample(30, generator=g))
    assert_seeded(
        lambda g: list(
            ais_log_partition(energy, base, n_chains=32, n_temperatures=10, generator=g, return_samples=True)
        )
    )
    assert_seeded(
        lambda g: list(
            estimate_log_partition(energy, (2,), points=[np.zeros((1, 2))], base=base, method="ais",
                                   n_ais_chains=32, n_ais_temperatures=10, generator=g)
        )
    )
    sampler = LangevinSampler(step_size=0.5, metropolis=True)
    assert_seeded(
        lambda g: [
            v for k, v in sorted(chain_diagnostics(energy, torch.zeros(4, 2), torch.zeros(30, 2), sampler,
                                                   n_steps=5, generator=g).items())
        ]
    )


def test_ais_rejects_bad_settings():
    base = GaussianMixtureSource([1.0], [[0.0]], [[[1.0]]])
    energy = lambda x: 0.5 * (x**2).sum(1)  # noqa: E731
    with pytest.raises(ValueError, match="n_chains"):
        ais_log_partition(energy, base, n_chains=1)
    with pytest.raises(InvalidParameterError, match="'step_size' parameter of langevin"):
        ais_log_partition(energy, base, step_size=float("inf"))
    with pytest.raises(InvalidParameterError, match="'n_steps' parameter of langevin"):
        ais_log_partition(energy, base, n_steps=-1)


def test_grid_box():
    points = [np.array([[0.0, 0.0], [1.0, 2.0]]), np.array([[np.nan, 5.0], [-1.0, 0.0]])]
    # the points (rows with a non-finite entry dropped), padded by 10% of the width + 0.1
    lo, hi = grid_box(points)
    np.testing.assert_allclose(lo, [-1.3, -0.3])
    np.testing.assert_allclose(hi, [1.3, 2.3])
    lo, hi = grid_box(points[:1], tau=2.0)  # +- 6 tau
    np.testing.assert_allclose(lo, [-14.5, -14.5])
    np.testing.assert_allclose(hi, [14.5, 14.5])
    base = GaussianMixtureSource([0.5, 0.5], [[-1.0, 0.0], [3.0, 0.0]], [torch.eye(2), 0.25 * torch.eye(2)])
    # +- 6 standard deviations around every component (the base wins over the prior): [-7, 6] x [-6, 6]
    lo, hi = grid_box(points[:1], base=base, tau=100.0)
    np.testing.assert_allclose(lo, [-7 - 1.4, -6 - 1.3])
    np.testing.assert_allclose(hi, [6 + 1.4, 6 + 1.3])


def test_estimate_log_partition_grid_within_its_error():
    sigma = 0.6
    energy = lambda x: 0.5 * ((x / sigma) ** 2).sum(1)  # noqa: E731
    truth = math.log(2 * math.pi * sigma**2)
    points = [np.random.RandomState(0).randn(400, 2) * sigma]
    base = GaussianMixtureSource([1.0], [[0.2, -0.1]], [torch.eye(2)])
    errors = []
    for cells in (12, 16, 24):  # coarse grids: the quadrature error is real, and bounded by the estimate
        grid = CellGrid([-2.0, -2.0], [2.0, 2.0], n_cells=cells, n_tail=8)
        log_z, err, method = estimate_log_partition(energy, (2,), points=points, base=base, method="grid", grid=grid)
        assert method == "grid" and abs(log_z - truth) <= err < 1.0
        errors.append(err)
    assert errors[0] > errors[1] > errors[2]
    # the default grid (auto in 2-D, built over the points): accurate to 1e-4, within its estimate
    for kwargs in ({"base": base}, {"tau": sigma}):
        log_z, err, method = estimate_log_partition(energy, (2,), points=points, **kwargs)
        assert method == "grid" and abs(log_z - truth) <= err < 1e-3
    with pytest.raises(ValueError, match="1 or 2 features"):
        estimate_log_partition(lambda x: 0.5 * (x**2).sum(1), (3,), points=[np.zeros((2, 3))], method="grid")


def test_estimate_log_partition_ais_in_3d_within_4_standard_errors():
    sigma = 0.7
    energy = lambda x: 0.5 * ((x / sigma) ** 2).sum(1)  # noqa: E731
    truth = 1.5 * math.log(2 * math.pi * sigma**2)
    # a base wider than the target and off-centre: the weights spread, the standard error is not zero
    base = GaussianMixtureSource([1.0], [[0.3, 0.0, -0.2]], [1.44 * torch.eye(3)])
    log_z, se, method = estimate_log_partition(
        energy, (3,), points=[np.zeros((1, 3))], base=base, method="ais", n_ais_chains=256, n_ais_temperatures=200,
        generator=torch.Generator().manual_seed(0),
    )
    assert method == "ais" and 0 < se < 0.05
    assert abs(log_z - truth) < 4 * se
    # no base: a Gaussian fitted to the points starts the annealing
    points = [np.random.RandomState(0).randn(300, 3) * sigma]
    log_z, se, method = estimate_log_partition(
        energy, (3,), points=points, n_ais_chains=256, n_ais_temperatures=100,
        generator=torch.Generator().manual_seed(1),
    )
    assert method == "ais" and 0 < se < 0.05
    assert abs(log_z - truth) < 4 * se


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


def test_burnin_size_is_a_deprecated_alias_of_burnin_buffer_size():
    from sklearn.base import clone

    from skebm.density import LongrunML

    renamed = re.escape("`burnin_size` was renamed `burnin_buffer_size` in 0.2 and will be removed in 0.5")
    new = LongrunInit(buffer_size=8, burnin_buffer_size=5, burnin_updates=2)
    with pytest.warns(FutureWarning, match=renamed):
        old = LongrunInit(buffer_size=8, burnin_size=5, burnin_updates=2)
    # the same object: only the new name is a parameter (so only it is saved)
    assert old._params == new._params and old.burnin_buffer_size == 5 and not hasattr(old, "burnin_size")
    with pytest.warns(FutureWarning, match=renamed):
        made = make_chain_init("longrun", buffer_size=8, burnin_size=5)
    assert made.burnin_buffer_size == 5
    # the same behaviour: equal banks from equal generators
    banks = [_setup(init, torch.Generator().manual_seed(0)).burnin_bank_ for init in (old, new)]
    assert banks[0].shape == (5, *SHAPE) and torch.equal(*banks)

    # LongrunML: the old name stays a parameter (clone, set_params) and warns when the chains are built
    method = clone(LongrunML(burnin_size=6))
    assert method.get_params()["burnin_size"] == 6
    with pytest.warns(FutureWarning, match=renamed):
        init = method.chain_init(None)
    assert isinstance(init, LongrunInit) and init.burnin_buffer_size == 6
    assert init._params == LongrunML(burnin_buffer_size=6).chain_init(None)._params
