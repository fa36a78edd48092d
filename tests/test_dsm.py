"""EBMGenerator(objective="dsm"): denoising score matching and annealed Langevin sampling."""

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.metrics import pairwise_distances

from skebm import EBMDensity, EBMGenerator
from skebm.density import ScoreMatching
from skebm.engine import DenoisingScoreMatchingLoss
from skebm.engine._density import ScoreMatchingNet
from skebm.mcmc import NoiseInit

SMALL = {"hidden_units": (64, 64)}


def _gaussian(n=1000, seed=0):
    rng = np.random.RandomState(seed)
    cov = np.array([[1.0, 0.6], [0.6, 0.5]])
    return rng.multivariate_normal([3.0, -1.0], cov, size=n)


@pytest.fixture(scope="module")
def gaussian_fit():
    X = _gaussian()
    # one level (Vincent's DSM): in two dimensions the levels overlap, and one network scaled by 1 / sigma cannot
    # give the score of every level at the same points (benchmarks/reports/dsm.md); on images they separate
    gen = EBMGenerator(objective="dsm", sigma_min=0.1, n_noise_levels=1, max_iter=1000, batch_size=128, lr=3e-3,
                       energy_params=SMALL, random_state=0).fit(X)
    return gen, X


def test_bad_objective_names_the_choices():
    gen = EBMGenerator(objective="score")
    with pytest.raises(ValueError, match="objective.*(ml|dsm).*(ml|dsm)"):
        gen.fit(_gaussian(50))
    assert gen.objective == "score"
    with pytest.raises(NotFittedError):
        gen.sample(2)


@pytest.mark.parametrize("n_levels", [10**9, 10_001, 0])
def test_n_noise_levels_is_bounded_before_anything_is_allocated(n_levels):
    gen = EBMGenerator(objective="dsm", n_noise_levels=n_levels)
    with pytest.raises(ValueError, match="n_noise_levels"):
        gen.fit(_gaussian(50))
    with pytest.raises(NotFittedError):
        gen.sample(2)


def test_sigma_max_below_sigma_min_is_refused():
    with pytest.raises(ValueError, match="sigma_max"):
        EBMGenerator(objective="dsm", sigma_max=0.01, sigma_min=0.1).fit(_gaussian(50))


def test_no_bank_no_negatives_geometric_levels():
    X = _gaussian(200)
    gen = EBMGenerator(objective="dsm", n_noise_levels=5, max_iter=3, energy_params=SMALL, random_state=0).fit(X)
    assert isinstance(gen.net_.chain_init_, NoiseInit) and not gen.net_.runs_chains
    assert not any("energy_samples" in row for row in gen.net_.history[-1]["batches"])
    levels = gen.noise_levels_
    Z = gen.rescaler_.transform(X)
    np.testing.assert_allclose(levels[0], pairwise_distances(Z).max(), rtol=1e-5)  # sigma_max="auto"
    np.testing.assert_allclose(levels[-1], 0.05, rtol=1e-6)
    np.testing.assert_allclose(levels[1:] / levels[:-1], levels[1] / levels[0], rtol=1e-5)  # geometric
    assert gen.step_size_ == pytest.approx(1.0 * 0.05)  # "auto": the step in units of the level, at sigma_min
    with pytest.raises(AttributeError, match="dsm"):
        EBMGenerator(max_iter=2, energy_params=SMALL).fit(X).noise_levels_


def test_loss_is_zero_at_the_true_score_and_positive_elsewhere():
    loss = DenoisingScoreMatchingLoss()
    z = torch.randn(16, 3, generator=torch.Generator().manual_seed(0))
    sigma = torch.linspace(0.1, 1.0, 16)
    assert float(loss((z / sigma[:, None], sigma), z)) == pytest.approx(0.0, abs=1e-12)
    assert float(loss((torch.zeros_like(z), sigma), z)) == pytest.approx(0.5 * float(z.pow(2).sum(1).mean()))


def test_dsm_recovers_the_score_of_a_gaussian(gaussian_fit):
    gen, X = gaussian_fit
    Z = torch.as_tensor(gen.rescaler_.transform(X[:300]), dtype=torch.float32)
    z = Z.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(gen.net_.energy(z).sum(), z)  # the energy at the smallest level
    learnt = -grad.numpy()
    Zall = gen.rescaler_.transform(X)
    sigma = gen.noise_levels_[-1]
    cov = np.cov(Zall.T) + sigma**2 * np.eye(2)  # the data smoothed at sigma_min
    true = -(Z.numpy() - Zall.mean(0)) @ np.linalg.inv(cov)
    cosine = np.sum(learnt * true, 1) / (np.linalg.norm(learnt, axis=1) * np.linalg.norm(true, axis=1))
    relative = np.linalg.norm(learnt - true, axis=1).mean() / np.linalg.norm(true, axis=1).mean()
    assert np.median(cosine) > 0.95, np.median(cosine)
    assert relative < 0.3, relative


def test_dsm_samples_have_the_data_mean_and_variance(gaussian_fit):
    gen, X = gaussian_fit
    samples = gen.sample(1000, random_state=0, n_steps=200)
    std = X.std(0)
    np.testing.assert_array_less(np.abs(samples.mean(0) - X.mean(0)), 0.15 * std)
    np.testing.assert_allclose(samples.std(0), std, rtol=0.2)


def test_seeded_dsm_fits_are_reproducible():
    X = _gaussian(200)
    a, b = (EBMGenerator(objective="dsm", max_iter=20, energy_params=SMALL, random_state=3).fit(X) for _ in range(2))
    np.testing.assert_array_equal(a.score_samples(X[:10]), b.score_samples(X[:10]))
    np.testing.assert_array_equal(a.sample(5, random_state=1), b.sample(5, random_state=1))
    chains = a.sample(3, random_state=1, n_steps=2, return_chains=True)[1]
    assert chains.shape == (a.n_noise_levels * 2 + 2, 3, 2)  # every level's steps, the start, the denoising step


# --------------------------------------------------------------- EBMDensity(method=ScoreMatching())
def _mixture(n, seed):
    """Three well separated Gaussians in 2-D."""
    rng = np.random.RandomState(seed)
    centers = np.array([[0.0, 0.0], [4.0, 0.0], [2.0, 3.5]])
    return centers[rng.randint(3, size=n)] + 0.4 * rng.randn(n, 2)


@pytest.fixture(scope="module")
def score_matching_fit():
    X = _mixture(1200, 0)
    est = EBMDensity(method=ScoreMatching(), base="gaussian", max_iter=1500, random_state=0).fit(X)
    return est, X


def test_score_matching_is_normalised(score_matching_fit):
    est, X = score_matching_fit
    assert est.log_partition_method_ == "grid"
    assert isinstance(est.net_, ScoreMatchingNet) and not est.net_.runs_chains
    # the density integrates to one on an independent fine grid in the units of X (midpoint rule)
    lo, hi, n = X.min(0) - 3.0, X.max(0) + 3.0, 400
    axes = [lo[i] + (np.arange(n) + 0.5) * (hi[i] - lo[i]) / n for i in range(2)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 2)
    cell = np.prod((hi - lo) / n)
    assert np.exp(est.score_samples(grid)).sum() * cell == pytest.approx(1.0, abs=0.02)


def test_score_matching_learns_beyond_the_base(score_matching_fit):
    est, X = score_matching_fit
    X_test = _mixture(2000, 1)
    base = EBMDensity(method=ScoreMatching(), base="gaussian", max_iter=0, random_state=0).fit(X)
    assert est.score(X_test) > base.score(X_test) + 0.5  # one Gaussian cannot hold three modes
    assert est.net_.stopped_early_ or len(est.net_.history) * 25 >= 1500
    assert np.isfinite(est.diagnostics_["valid_loss"]).all()


def test_score_matching_by_name_and_in_more_dimensions():
    X = np.random.RandomState(0).randn(300, 4)
    est = EBMDensity(method="score_matching", max_iter=10, random_state=0).fit(X)
    assert est.method_.name == "score_matching" and est.log_partition_method_ == "importance"
    assert np.isfinite(est.score(X))


@pytest.mark.parametrize(
    "params, match",
    [({"noise_level": 0.0}, "noise_level"), ({"noise_level": -1.0}, "noise_level"),
     ({"n_iter_no_change": 0}, "n_iter_no_change"), ({"validation_fraction": 1.0}, "validation_fraction")],
)
def test_score_matching_bad_parameters(params, match):
    est = EBMDensity(method=ScoreMatching(**params), max_iter=2)
    with pytest.raises(ValueError, match=match):
        est.fit(_mixture(50, 0))
    assert not hasattr(est, "net_") and est.method.get_params()[next(iter(params))] == next(iter(params.values()))


def test_auto_levels_overlap_by_dimension_and_survive_save(tmp_path):
    from skebm import load, save
    from skebm.engine._dsm import overlapping_n_levels

    # the ratio of consecutive levels shrinks with the dimension: more levels on larger inputs
    assert overlapping_n_levels(20.0, 0.05, 2) == 2 < overlapping_n_levels(20.0, 0.05, 64)
    assert overlapping_n_levels(20.0, 0.05, 64) < overlapping_n_levels(20.0, 0.05, 784)
    assert overlapping_n_levels(0.05, 0.05, 784) == 1
    X = np.random.RandomState(0).rand(60, 16)
    gen = EBMGenerator(objective="dsm", n_noise_levels="auto", max_iter=2, energy_params=SMALL, random_state=0).fit(X)
    levels = gen.noise_levels_
    assert len(levels) == overlapping_n_levels(levels[0], 0.05, 16) > 2
    save(gen, tmp_path / "gen.skebm")
    np.testing.assert_allclose(load(tmp_path / "gen.skebm").noise_levels_, levels)
    with pytest.raises(ValueError, match="n_noise_levels"):
        EBMGenerator(objective="dsm", n_noise_levels="many").fit(X)


def test_annealed_trace_is_one_run_of_the_chains():
    gen = EBMGenerator(objective="dsm", n_noise_levels=3, max_iter=3, energy_params=SMALL, random_state=0)
    gen.fit(_gaussian(50))
    x0 = torch.zeros(4, 2)
    _, trace = gen.net_.run_chains(x0, n_steps=2, return_trace=True)
    assert trace["chain_energy"].shape == (4, 3 * 2)  # each chain's energy over every level's steps
    assert len(trace["energy"]) == len(trace["grad_norm"]) == 3 * 2
