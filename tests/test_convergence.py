"""Chain diagnostics: ESS and split-R-hat (ArviZ's definitions) and the AIS bracket of log Z.

Known answers: independent draws have an ESS of their number and an R-hat of
1; an AR(1) chain of coefficient rho has an ESS of ``(1 - rho) / (1 + rho)``
of its length; chains at different means have an R-hat well above 1. The
bracket is checked on energies of known ``log Z`` (a Gaussian, a Gaussian
mixture) and on a fitted EBMDensity.
"""

import math
import os
import tempfile

import numpy as np
import pytest
import torch
from scipy.signal import lfilter
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

import skebm
from skebm import EBMDensity, EBMGenerator
from skebm.density import ImportanceML, LongrunML
from skebm.engine import SampleMonitor
from skebm.mcmc import (
    GaussianMixtureSource,
    LangevinSampler,
    ais_log_partition,
    chain_diagnostics,
    effective_sample_size,
    langevin,
    log_partition_bracket,
    reverse_ais_log_partition,
    split_rhat,
)


def _ar1(rho, n_chains, n_draws, seed=0):
    noise = np.random.default_rng(seed).normal(size=(n_chains, n_draws))
    noise[:, 0] /= math.sqrt(1 - rho**2)  # start in the stationary law
    return lfilter([1.0], [1.0, -rho], noise, axis=1)


# ------------------------------------------------------------ ESS and R-hat
def test_independent_draws_have_their_number_as_ess_and_rhat_one():
    draws = np.random.default_rng(0).normal(size=(4, 2000))
    for method in ("bulk", "mean"):
        assert abs(effective_sample_size(draws, method=method) / draws.size - 1) < 0.1
    for method in ("rank", "split"):
        assert abs(split_rhat(draws, method=method) - 1) < 0.01


def test_ar1_chain_ess_is_its_integrated_autocorrelation():
    rho = 0.95
    draws = _ar1(rho, 4, 10000)
    expected = (1 - rho) / (1 + rho)  # 1/39 of the draws
    for method in ("bulk", "mean"):
        assert abs(effective_sample_size(draws, method=method) / draws.size / expected - 1) < 0.2
    assert split_rhat(draws) < 1.02  # stationary and long enough: the chains agree


def test_chains_at_separated_means_have_a_large_rhat():
    draws = np.random.default_rng(0).normal(size=(4, 1000)) + np.array([0.0, 0.0, 4.0, 4.0])[:, None]
    assert split_rhat(draws) > 1.5 and split_rhat(draws, method="split") > 1.5
    assert split_rhat(draws[:2]) < 1.01  # the two chains at the same mean agree
    drifting = np.random.default_rng(1).normal(size=(1, 1000)) + np.linspace(0, 5, 1000)
    assert split_rhat(drifting) > 1.5  # one chain against itself: its halves disagree


def test_extra_dimensions_torch_and_non_finite_draws():
    draws = np.random.default_rng(0).normal(size=(3, 200, 2, 2))
    ess, rhat = effective_sample_size(draws), split_rhat(draws)
    assert ess.shape == (2, 2) and rhat.shape == (2, 2)
    assert ess[1, 0] == effective_sample_size(draws[:, :, 1, 0])
    assert rhat[0, 1] == split_rhat(draws[:, :, 0, 1])
    assert effective_sample_size(torch.as_tensor(draws[:, :, 0, 0])) == ess[0, 0]
    bad = draws.copy()
    bad[0, 5, 1, 1] = np.nan
    assert np.isnan(effective_sample_size(bad)[1, 1]) and np.isfinite(effective_sample_size(bad)[0, 0])
    assert effective_sample_size(np.ones((2, 10))) == 20  # constant draws: ArviZ's convention


def test_ess_and_rhat_refuse_bad_input():
    for fn in (effective_sample_size, split_rhat):
        with pytest.raises(ValueError, match="n_chains, n_draws"):
            fn(np.zeros(100))
        with pytest.raises(ValueError, match="4 draws"):
            fn(np.zeros((2, 3)))
        with pytest.raises(TypeError, match="numeric"):
            fn([["a", "b", "c", "d"]])
        with pytest.raises(InvalidParameterError, match="method"):
            fn(np.zeros((2, 10)), method="tail")


def test_matches_arviz():
    array_stats = pytest.importorskip("arviz_stats.base").array_stats
    rng = np.random.default_rng(1)
    arrays = [rng.normal(size=(4, 500)), _ar1(0.9, 3, 3000), rng.standard_t(3, size=(2, 101)),
              rng.normal(size=(4, 300)) + np.arange(4)[:, None] * 0.5, rng.normal(size=(3, 5))]
    for draws in arrays:
        for method in ("bulk", "mean"):
            assert effective_sample_size(draws, method=method) == pytest.approx(
                float(array_stats.ess(draws, method=method)), rel=1e-9)
        for method in ("rank", "split"):
            assert split_rhat(draws, method=method) == pytest.approx(
                float(array_stats.rhat(draws, method=method)), rel=1e-9)


def test_chain_diagnostics_and_the_trace_report_per_chain_energies():
    energy = lambda x: 0.5 * (x**2).sum(1)  # noqa: E731
    g = torch.Generator().manual_seed(0)
    x, trace = langevin(energy, torch.randn(50, 2, generator=g), 10, 0.5, metropolis=True, return_trace=True,
                        generator=g)
    assert trace["chain_energy"].shape == (50, 10)
    np.testing.assert_allclose(trace["chain_energy"].mean(0).numpy(), trace["energy"], rtol=1e-5)
    sampler = LangevinSampler(step_size=1.0, metropolis=True)
    data = torch.randn(500, 2, generator=g)
    good = chain_diagnostics(energy, data, torch.randn(200, 2, generator=g), sampler, n_steps=200, generator=g)
    assert good["rhat"] < 1.02 and good["ess"] > 0.05 * 200 * 200
    # chains started far out with a small step drift down the whole run: R-hat flags them
    bad = chain_diagnostics(energy, data, 6 + torch.randn(200, 2, generator=g), LangevinSampler(step_size=0.05),
                            n_steps=200, generator=g)
    assert bad["rhat"] > 1.5 and bad["ess"] < good["ess"] / 10
    short = chain_diagnostics(energy, data, data[:20], sampler, n_steps=3, generator=g)
    assert math.isnan(short["ess"]) and math.isnan(short["rhat"])


def test_sample_monitor_records_ess_and_rhat():
    X = np.random.default_rng(0).normal(size=(128, 4))
    monitor = SampleMonitor(every=2, n_samples=16, n_steps=8)
    EBMGenerator(max_iter=4, batch_size=32, n_steps=3, buffer_size=64, energy_params={"hidden_units": (8,)},
                 callbacks=[monitor], random_state=0).fit(X)
    assert all(r["ess"] > 0 and r["rhat"] > 0.9 for r in monitor.records_)


# ------------------------------------------------------------ the log Z bracket
def _gaussian_energy(x):
    return 0.5 * (x**2).sum(1)


BROAD = GaussianMixtureSource([1.0], [[0.0, 0.0]], [4.0 * torch.eye(2)])
MEANS, WEIGHTS, SCALE = torch.tensor([[-2.0, 0.0], [2.0, 1.0]]), torch.tensor([0.3, 0.7]), 0.7


def _mixture_energy(x):  # 3 times a mixture of two Gaussians: log Z = log 3
    d2 = ((x[:, None, :] - MEANS) ** 2).sum(-1)
    log_comp = torch.log(WEIGHTS) - d2 / (2 * SCALE**2) - math.log(2 * math.pi * SCALE**2)
    return -(math.log(3.0) + torch.logsumexp(log_comp, 1))


def _mixture_draws(n, g):
    component = torch.multinomial(WEIGHTS, n, replacement=True, generator=g)
    return MEANS[component] + SCALE * torch.randn(n, 2, generator=g)


@pytest.mark.parametrize("case", ["gaussian", "mixture"])
def test_bracket_holds_the_true_log_partition(case):
    g = torch.Generator().manual_seed(0)
    energy, true, draws = {
        "gaussian": (_gaussian_energy, math.log(2 * math.pi), lambda n: torch.randn(n, 2, generator=g)),
        "mixture": (_mixture_energy, math.log(3.0), lambda n: _mixture_draws(n, g)),
    }[case]
    for samples in (draws(256), None):  # exact draws, or the forward chains resampled
        lower, upper = log_partition_bracket(energy, BROAD, samples, n_temperatures=200, generator=g)
        assert lower - 0.05 < true < upper + 0.05  # stochastic bounds: up to their noise (0.01-0.02 here)
        assert abs(upper - lower) < 0.1
    upper, se = reverse_ais_log_partition(energy, BROAD, draws(256), n_temperatures=200, generator=g)
    assert abs(upper - true) < 4 * se + 0.02


def test_a_wide_bracket_flags_a_missed_mode():
    # two modes 8 apart, a base on one of them, few temperatures: forward AIS misses the far mode
    means = torch.tensor([[-4.0, 0.0], [4.0, 0.0]])

    def energy(x):
        return -torch.logsumexp(-0.5 * ((x[:, None, :] - means) ** 2).sum(-1) / 0.25, 1)

    g = torch.Generator().manual_seed(0)
    narrow = GaussianMixtureSource([1.0], [[-4.0, 0.0]], [0.5 * torch.eye(2)])
    samples = means[torch.arange(256) % 2] + 0.5 * torch.randn(256, 2, generator=g)
    true = math.log(2 * 2 * math.pi * 0.25)
    lower, upper = log_partition_bracket(energy, narrow, samples, n_temperatures=20, generator=g)
    assert lower < true - 0.3 and upper - lower > 0.5  # the gap says what the lower estimate alone hides


def test_ais_refactor_keeps_the_forward_estimate():
    # the shared loop: return_samples gives the final states and weights whose log mean is the estimate
    g = torch.Generator().manual_seed(0)
    log_z, se, x, log_w = ais_log_partition(_gaussian_energy, BROAD, n_temperatures=50, generator=g,
                                            return_samples=True)
    assert x.shape == (256, 2) and log_w.shape == (256,)
    assert log_z == pytest.approx(float(torch.logsumexp(log_w, 0) - math.log(256)), abs=1e-9)


def test_bracket_refuses_bad_input():
    with pytest.raises(TypeError, match="samples"):
        log_partition_bracket(_gaussian_energy, BROAD, np.zeros((10, 2)))
    with pytest.raises(ValueError, match="at least 2 draws"):
        reverse_ais_log_partition(_gaussian_energy, BROAD, torch.zeros(1, 2))
    with pytest.raises(ValueError, match="finite"):
        reverse_ais_log_partition(_gaussian_energy, BROAD, torch.full((4, 2), float("nan")))
    with pytest.raises(InvalidParameterError, match="n_temperatures"):
        log_partition_bracket(_gaussian_energy, BROAD, n_temperatures=1)
    with pytest.raises(InvalidParameterError, match="batch_size"):
        reverse_ais_log_partition(_gaussian_energy, BROAD, torch.zeros(4, 2), batch_size=0)


# ------------------------------------------------------------ on EBMDensity
@pytest.fixture(scope="module")
def gaussian_10d():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(600, 10)) @ rng.normal(size=(10, 10)) * 0.5 + 1.0
    method = ImportanceML(n_importance_samples=1024, n_sample_steps=50)
    est = EBMDensity(method=method, max_iter=60, energy_params={"hidden_units": (32, 32)}, random_state=0).fit(X)
    return est, X


def test_density_bracket_holds_its_log_partition(gaussian_10d):
    est, X = gaussian_10d
    assert not hasattr(est, "log_partition_bracket_")  # not computed by fit
    lower, upper = est.log_partition_bracket(n_chains=128, n_temperatures=100, random_state=0)
    assert est.log_partition_bracket_ == (lower, upper)
    assert abs(upper - lower) < 0.5
    assert min(lower, upper) - 0.05 < est.log_partition_ < max(lower, upper) + 0.05
    assert est.log_partition_bracket(n_chains=128, n_temperatures=100, random_state=0) == (lower, upper)  # seeded
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.skebm")
        skebm.save(est, path)
        assert skebm.load(path).log_partition_bracket_ == (lower, upper)
    diag = est.diagnose(X[:100], n_steps=20, random_state=0)
    assert diag["chain_ess"] > 0 and diag["chain_rhat"] > 0.9


def test_density_bracket_refuses_bad_input_and_a_refit_drops_it(gaussian_10d):
    est, X = gaussian_10d
    est.log_partition_bracket(n_chains=16, n_temperatures=10, random_state=0)
    before = est.log_partition_bracket_
    for bad in ({"n_chains": 1}, {"n_temperatures": 0}, {"n_steps": -1}):
        with pytest.raises(InvalidParameterError, match=next(iter(bad))):
            est.log_partition_bracket(**bad)
    assert est.log_partition_bracket_ == before
    with pytest.raises(NotFittedError):
        EBMDensity().log_partition_bracket()
    warm = EBMDensity(method=ImportanceML(n_importance_samples=256), max_iter=2, warm_start=True,
                      energy_params={"hidden_units": (8,)}, random_state=0).fit(X)
    warm.log_partition_bracket(n_chains=8, n_temperatures=5, random_state=0)
    warm.set_params(max_iter=4).fit(X)
    assert not hasattr(warm, "log_partition_bracket_")  # the previous model's bracket is gone


def test_density_bracket_without_a_base_anneals_from_a_gaussian_of_the_samples():
    X = np.random.RandomState(0).randn(200, 3)
    method = LongrunML(tau=2.0, buffer_size=32, burnin_buffer_size=16, burnin_updates=2, n_sample_steps=20)
    est = EBMDensity(method=method, base=None, max_iter=10, energy_params={"hidden_units": (8,)},
                     random_state=0).fit(X)
    assert est.log_partition_method_ == "ais"
    lower, upper = est.log_partition_bracket(n_chains=64, n_temperatures=100, random_state=0)
    assert abs(upper - lower) < 0.2 and min(lower, upper) - 0.1 < est.log_partition_ < max(lower, upper) + 0.1
