"""EBMDensity: a normalised density that the network (not the base) models; log Z, steady state, tools.

The API contract every estimator shares is checked in test_common.py.
"""

import math
import os
import pickle
import tempfile

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import skebm
from skebm import EBMDensity
from skebm.density import ImportanceML, LongrunML, QuadratureML
from skebm.datasets import make_toy_2d, toy_2d_log_density
from skebm.mcmc import GaussianMixtureSource, ais_log_partition, grid_log_partition
from skebm.metrics import mmd

SMALL = dict(method=QuadratureML(grid_resolution=48), energy_params={"hidden_units": (32, 32), "fourier_features": 32})
FAST = dict(
    max_iter=4, method=QuadratureML(grid_resolution=8, n_members=2, n_sample_steps=2),
    energy_params={"hidden_units": (8,)},
)


def fast(**kwargs):
    return EBMDensity(**{**FAST, "random_state": 0, **kwargs})


@pytest.fixture(scope="module")
def moons():
    return make_toy_2d("moons", 1200, random_state=0), make_toy_2d("moons", 1000, random_state=1)


# moons in user units far from standardised: exercises the Jacobian of the rescaling
SCALE, SHIFT = np.array([3.0, 0.5]), np.array([10.0, -4.0])
JACOBIAN = -np.log(SCALE).sum()  # log-density shift of the transformed data


def _transform(X):
    return X * SCALE + SHIFT


@pytest.fixture(scope="module")
def fitted(moons):
    X = _transform(moons[0])
    return EBMDensity(**SMALL, random_state=0).fit(X), X


def _user_grid_integral(est, X, resolution=301):
    lo, hi = X.min(0), X.max(0)
    pad = 0.6 * (hi - lo)
    xs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], resolution)
    ys = np.linspace(lo[1] - pad[1], hi[1] + pad[1], resolution)
    gx, gy = np.meshgrid(xs, ys)
    dens = np.exp(est.score_samples(np.c_[gx.ravel(), gy.ravel()])).reshape(gx.shape)
    return np.trapezoid(np.trapezoid(dens, xs, axis=1), ys)


# ------------------------------------------------------------ the network models
def test_the_network_beats_its_gaussian_base_where_the_base_is_weak():
    # measured (user guide, density: 5,000 points): rings +0.53 nats over the Gaussian base; here 1,500
    # training points and a smaller grid: the margin asked is 0.3 nats. Deleting the network (the base alone,
    # max_iter=0) or breaking its training fails this test.
    X, X_test = make_toy_2d("rings", 1500, random_state=0), make_toy_2d("rings", 2000, random_state=1)
    est = EBMDensity(**SMALL, random_state=0).fit(X)
    base = EBMDensity(**SMALL, max_iter=0, random_state=0).fit(X)
    assert est.method_.name == "quadrature" and est.base_.n_components == 1
    assert est.score(X_test) > base.score(X_test) + 0.3
    truth = toy_2d_log_density("rings", X_test).mean()
    assert est.score(X_test) > truth - 0.25  # the base alone is about 0.6 below the truth
    # the early stop chose the number of updates: max_iter is an upper bound
    assert est.n_iter_ < 600 and len(est.diagnostics_["valid_loss"]) == len(est.net_.history)


def test_max_iter_zero_is_the_base_alone(moons):
    X = moons[0]
    base = fast(max_iter=0, method=QuadratureML(n_members=2)).fit(X)
    from scipy.stats import multivariate_normal
    from sklearn.covariance import LedoitWolf

    Z = (X - X.mean(0)) / X.std(0)
    gauss = multivariate_normal(Z.mean(0), LedoitWolf().fit(Z).covariance_)
    expected = gauss.logpdf((moons[1] - X.mean(0)) / X.std(0)) - np.log(X.std(0)).sum()
    # the exact Gaussian, up to the quadrature error of log Z (the base alone has log Z = 0)
    assert base.n_iter_ == 0 and abs(base.log_partition_) <= 2 * base.log_partition_se_ + 1e-5
    np.testing.assert_allclose(base.score_samples(moons[1]), expected, atol=2 * base.log_partition_se_ + 1e-5)


# ------------------------------------------------------------ normalisation
def test_density_integrates_to_one_on_a_grid(fitted):
    est, X = fitted
    assert abs(_user_grid_integral(est, X) - 1.0) < 0.02


def test_density_integrates_to_one_in_1d():
    rng = np.random.RandomState(0)
    X = np.r_[rng.normal(-3, 0.5, 300), rng.normal(40, 5.0, 300)][:, None]
    est = EBMDensity(max_iter=100, **SMALL, random_state=0).fit(X)
    xs = np.linspace(-10, 70, 20001)
    total = np.trapezoid(np.exp(est.score_samples(xs[:, None])), xs)
    assert abs(total - 1.0) < 0.02


def test_ais_agrees_with_grid_on_a_fitted_model(fitted):
    est, _ = fitted
    assert est.log_partition_method_ == "grid" and est.log_partition_se_ < 1e-3
    log_z, se = ais_log_partition(est.net_.energy, est.base_, n_chains=256, n_temperatures=100)
    assert 0 < se < 0.1
    assert abs(log_z - est.log_partition_) < 4 * se + 0.01


def test_ais_gaussian_10d_within_reported_error():
    d = 10
    mu = torch.linspace(-1, 1, d)
    sd = torch.linspace(0.5, 2.0, d)
    energy = lambda x: 0.5 * (((x - mu) / sd) ** 2).sum(1) + 3.0  # noqa: E731
    true = 0.5 * d * math.log(2 * math.pi) + float(torch.log(sd).sum()) - 3.0
    base = GaussianMixtureSource([1.0], torch.zeros(1, d), 4.0 * torch.eye(d)[None])
    log_z, se = ais_log_partition(energy, base, n_chains=256, n_temperatures=150)
    assert 0 < se < 0.2
    assert abs(log_z - true) < 4 * se


def test_ais_mixture_within_reported_error():
    # unequal two-component mixture of total mass 3, annealed from a broad Gaussian
    centers = torch.tensor([[-2.0, 0.0], [2.0, 0.0]])
    var = 0.25

    def energy(x):
        d2 = ((x[:, None, :] - centers[None]) ** 2).sum(-1)
        log_comp = torch.log(torch.tensor([0.3, 0.7])) - d2 / (2 * var) - math.log(2 * math.pi * var)
        return -(math.log(3.0) + torch.logsumexp(log_comp, 1))

    base = GaussianMixtureSource([1.0], [[0.0, 0.0]], [[[4.0, 0.0], [0.0, 4.0]]])
    log_z, se = ais_log_partition(energy, base, n_chains=384, n_temperatures=200)
    assert se < 0.1
    assert abs(log_z - math.log(3.0)) < 4 * se
    assert abs(log_z - grid_log_partition(energy, [-6, -5], [6, 5])) < 4 * se


def test_high_dimensional_fit_uses_importance_sampling_and_agrees_with_ais():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(600, 5)) @ rng.normal(size=(5, 5)) + 3.0
    est = EBMDensity(max_iter=200, random_state=0).fit(X[:500])
    assert est.method_.name == "importance" and est.log_partition_method_ == "importance"
    assert not hasattr(est.net_, "sampler_") and not hasattr(est.net_, "chain_init_")  # no chain machinery
    assert 0 < est.log_partition_se_ < 0.05
    energy = est.net_.energy
    log_z, se = ais_log_partition(energy, est.base_, n_chains=256, n_temperatures=200)
    assert abs(log_z - est.log_partition_) < 4 * (se + est.log_partition_se_) + 0.02
    # the data are Gaussian: compare with the exact Gaussian log-likelihood of a fit
    from scipy.stats import multivariate_normal

    gauss = multivariate_normal(X[:500].mean(0), np.cov(X[:500], rowvar=False)).logpdf(X[500:]).mean()
    assert abs(est.score(X[500:]) - gauss) < 0.2


def test_yeo_johnson_log_jacobian_matches_finite_differences():
    from skebm._base import Rescaler

    rng = np.random.RandomState(0)
    X = np.c_[rng.lognormal(size=300), -rng.lognormal(size=300), rng.normal(size=300)]
    r = Rescaler("yeo-johnson").fit(X)
    x, h = X[:20], 1e-3  # the transform answers in float32: a step large against its rounding
    numeric = np.zeros(len(x))
    for j in range(3):  # the map is per feature: the Jacobian is diagonal
        step = np.zeros(3)
        step[j] = h
        numeric += np.log((r.transform(x + step).astype(np.float64)[:, j] - r.transform(x - step)[:, j]) / (2 * h))
    np.testing.assert_allclose(r.log_jacobian(x), numeric, atol=5e-3)
    np.testing.assert_allclose(r.inverse_transform(r.transform(X)), X, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------ a density of the data
@pytest.mark.slow
def test_heldout_likelihood_beats_shortrun_model(fitted, moons):
    from skebm import EBMGenerator

    est, X = fitted
    X_test = _transform(moons[1])
    gen = EBMGenerator(max_iter=200, n_steps=20, step_size=0.3, noise_scale=0.05, random_state=0).fit(X)
    # normalise the shortrun energy exactly on a grid (standardised units, then the Jacobian)
    log_z = grid_log_partition(lambda z: gen.net_.module_(z), [-6, -6], [6, 6])
    shortrun = np.mean(gen.score_samples(X_test)) - log_z - np.log(gen.rescaler_.scale_).sum()
    ours = est.score(X_test)
    assert ours > shortrun + 0.2
    # in the original units: a 2-D Gaussian fit scores about -2.7, KernelDensity about -1.45
    assert ours - JACOBIAN > -1.5


@pytest.mark.slow
def test_samples_stay_on_the_data_after_10000_steps(fitted, moons):
    est, X = fitted
    X_test = _transform(moons[1])
    scale = X.std(0)
    n = 250
    short = est.sample(n, random_state=0) / scale
    long = est.sample(n, random_state=0, n_steps=10000) / scale
    ref, other = X_test[:n] / scale, X_test[n : 2 * n] / scale
    # reference: held-out data shifted by 0.3 standard deviations
    drifted = mmd(ref + np.array([0.3, 0.0]), other)
    assert np.all(np.isfinite(long))
    assert mmd(long, other) < drifted / 3
    assert mmd(short, other) < drifted / 3


def test_diagnostics_and_plot(fitted, moons):
    import matplotlib.pyplot as plt

    from skebm.plotting import plot_diagnostics

    est, _ = fitted
    assert set(est.diagnostics_) == {"train_energy_data", "train_energy_chains", "train_acceptance",
                                     "train_jump_acceptance", "valid_loss"}
    assert len(est.diagnostics_["train_energy_data"]) == est.n_iter_
    diag = est.diagnose(_transform(moons[1]), random_state=0)
    assert len(diag["chain_grad_norm"]) == 100 and len(diag["chain_acceptance"]) == 100
    assert 0.3 < np.mean(diag["chain_acceptance"]) < 1.0
    assert abs(diag["energy_gap"]) < 1.0
    axes = plot_diagnostics(diag)
    assert len(axes) == 3 and len(axes[0].get_lines()) == 2
    plt.close("all")
    with pytest.raises(ValueError, match="missing"):
        plot_diagnostics({"chain_energy": [1.0]})
    with pytest.raises(ValueError, match="diagnose"):
        plot_diagnostics(est)


# ------------------------------------------------------------ the longrun method
def test_longrun_method_trains_with_chains_and_stays_normalised():
    X = make_toy_2d("8gaussians", 800, random_state=0)
    est = EBMDensity(
        method=LongrunML(buffer_size=512, burnin_buffer_size=256), max_iter=60, batch_size=128,
        energy_params={"hidden_units": (32, 32), "fourier_features": 16}, random_state=0,
    ).fit(X)
    assert est.method_.name == "longrun" and int(est.net_.chain_init_.n_graduated_) > 0
    assert {"acceptance", "energy_samples"} <= set(est.net_.history[-1]["batches"][-1])
    assert abs(_user_grid_integral(est, X, 201) - 1.0) < 0.02


def test_base_none_with_tau_prior():
    X = np.random.RandomState(0).randn(200, 2)
    method = LongrunML(tau=2.0, buffer_size=32, burnin_buffer_size=16, burnin_updates=2)
    est = fast(method=method, base=None, max_iter=10).fit(X)
    assert est.base_ is None
    assert abs(_user_grid_integral(est, X, 201) - 1.0) < 0.02
    with pytest.raises(ValueError, match="needs a base"):
        fast(base=None).fit(X)
    with pytest.raises(ValueError, match="tau"):
        fast(method="longrun", base=None).fit(X)


# ------------------------------------------------------------ scikit-learn
@pytest.mark.slow
def test_grid_search_selects_by_likelihood(moons):
    X, _ = moons
    # the base alone (max_iter=0) scores about -2.7, the trained tilt about -1.45
    search = GridSearchCV(EBMDensity(**SMALL, random_state=0), {"max_iter": [0, 300]}, cv=2).fit(X[:600])
    assert search.best_params_ == {"max_iter": 300}
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


def test_pipeline_pickle_save_and_layouts(fitted):
    est, X = fitted
    pipe = make_pipeline(StandardScaler(), clone(est).set_params(max_iter=5)).fit(X)
    assert np.isfinite(pipe.score(X[:50]))
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_allclose(again.score_samples(X[:20]), est.score_samples(X[:20]))
    path = os.path.join(tempfile.mkdtemp(), "density.skebm")
    skebm.save(est, path)
    loaded = skebm.load(path)
    np.testing.assert_allclose(loaded.score_samples(X[:20]), est.score_samples(X[:20]), rtol=1e-5)
    assert loaded.sample(3, random_state=0).shape == (3, 2)
    df = pd.DataFrame(X[:300], columns=["a", "b"])
    fit_df = clone(est).set_params(max_iter=5).fit(df)
    out = fit_df.sample(5, random_state=0)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == ["a", "b"]
    assert fit_df.score(df) == pytest.approx(np.mean(fit_df.score_samples(df)))


def test_method_objects_are_nested_parameters(moons):
    X = moons[0][:200]
    method = QuadratureML(grid_resolution=8, n_members=2, n_sample_steps=2)
    est = fast(method=method)
    assert est.get_params()["method__grid_resolution"] == 8 and "grid_resolution" not in est.get_params(deep=False)
    copy = clone(est)
    assert copy.method is not method and copy.method.get_params() == method.get_params()
    copy.set_params(method__grid_resolution=12)
    assert method.grid_resolution == 8 and copy.method.grid_resolution == 12
    est.fit(X)
    # the fitted method is a copy: the parameter object stays as given
    assert est.method_ is not method and est.method_.get_params() == method.get_params()
    assert est.net_.grid_.spec[2] == 8
    search = GridSearchCV(est, {"method__grid_resolution": [8, 12]}, cv=2).fit(X)
    assert search.best_estimator_.method_.grid_resolution in (8, 12) and method.grid_resolution == 8
    with pytest.raises(ValueError, match="method object"):
        fast(method="quadrature").set_params(method__grid_resolution=12)
    # a string names the method with its defaults
    assert fast(method="quadrature").fit(X).method_.get_params() == QuadratureML().get_params()
    assert isinstance(fast(method="auto").fit(X).method_, QuadratureML)
    assert not hasattr(est.net_, "sampler_") and not hasattr(est.net_, "chain_init_")  # no chain machinery


def test_warm_start_applies_or_refuses_method_parameters(moons):
    X = moons[0][:200]
    method = LongrunML(n_steps=2, buffer_size=32, burnin_buffer_size=16, burnin_updates=2, target_acceptance=None)
    est = fast(method=method, warm_start=True, max_iter=2, base="gaussian").fit(X)
    assert est.step_size_ == pytest.approx(0.1)
    est.set_params(method__step_size=0.05, method__n_steps=3).fit(X)
    assert est.step_size_ == pytest.approx(0.05) and est.net_.sampler_.n_steps == 3 and est.n_iter_ == 4
    for change in ({"method__buffer_size": 64}, {"method": QuadratureML()}, {"method": "importance"}):
        before = est.net_.sampler_.n_steps
        with pytest.raises(ValueError, match="warm_start"):
            est.set_params(**change).fit(X)
        assert est.n_iter_ == 4 and est.net_.sampler_.n_steps == before
        est.set_params(method=LongrunML(**{**method.get_params(), "step_size": 0.05, "n_steps": 3}))


def test_a_file_naming_an_unknown_method_is_refused(tmp_path, moons):
    est = fast().fit(moons[0][:100])
    path = tmp_path / "density.skebm"
    skebm.save(est, path)
    assert isinstance(skebm.load(path).method, QuadratureML)
    path.write_bytes(path.read_bytes().replace(b"QuadratureML", b"QuadraturePy"))
    with pytest.raises(ValueError, match="density method"):
        skebm.load(path)


def test_warm_start_continues_training(moons):
    X, _ = moons
    est = fast(warm_start=True, max_iter=3).fit(X[:100])
    est.fit(X[:100])
    assert est.n_iter_ == 6 and len(est.diagnostics_["train_energy_data"]) == 6


@pytest.mark.parametrize(
    "params, match",
    [
        ({"base": "kde"}, "base"),
        ({"base_components": 0}, "base_components"),
        ({"method": LongrunML(tau=-1.0)}, "tau"),
        ({"base": None}, "needs a base"),
        ({"method": "nce"}, "method"),
        ({"scaling": "log"}, "scaling"),
        ({"method": QuadratureML(n_members=0)}, "n_members"),
        ({"method": QuadratureML(validation_fraction=1.0)}, "validation_fraction"),
        ({"method": LongrunML(target_acceptance=1.5)}, "target_acceptance"),
        ({"method": QuadratureML(grid_resolution=2)}, "grid_resolution"),
        ({"method": LongrunML(n_ais_chains=1)}, "n_ais_chains"),
        ({"method": QuadratureML(data_noise=-0.1)}, "data_noise"),
        ({"method": LongrunML(metropolis="yes")}, "metropolis"),
        ({"method": LongrunML(independence_proposals=1)}, "independence_proposals"),
        ({"method": ImportanceML(tilt_bound=0)}, "tilt_bound"),
        ({"method": ImportanceML(l2_reg=-1)}, "l2_reg"),
        ({"method": "quadrature"}, "1 or 2 features"),
    ],
)
def test_bad_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        fast(**params).fit(np.random.RandomState(0).randn(40, 2 if params.get("method") != "quadrature" else 3))


def test_not_fitted_and_bad_input():
    with pytest.raises(NotFittedError):
        fast().score_samples(np.zeros((2, 2)))
    est = fast().fit(np.random.RandomState(0).randn(40, 2))
    with pytest.raises(ValueError, match="features"):
        est.score_samples(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="n_samples"):
        est.sample(0)
    with pytest.raises(ValueError, match="n_samples=2"):
        fast().fit(np.zeros((2, 2)))


def test_ctrl_c_during_log_partition_leaves_the_estimator_as_it_was(monkeypatch, moons):
    import skebm._density_methods as methods

    X = moons[0][:200]
    est = fast()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(methods, "estimate_log_partition", interrupted)
    with pytest.raises(KeyboardInterrupt):
        est.fit(X)
    with pytest.raises(NotFittedError):
        est.score_samples(X)
    monkeypatch.undo()
    est.fit(X)
    before = est.score_samples(X[:5])
    monkeypatch.setattr(methods, "estimate_log_partition", interrupted)
    with pytest.raises(KeyboardInterrupt):
        est.fit(X[:150])
    np.testing.assert_array_equal(est.score_samples(X[:5]), before)


def test_longrun_mala_needs_a_positive_noise_scale_at_fit():
    # MALA chains need noise: noise_scale=0 is refused when the parameters are checked, before any training
    X = np.random.RandomState(0).randn(64, 2)
    est = EBMDensity(method=LongrunML(noise_scale=0.0), max_iter=1)
    with pytest.raises(ValueError, match="positive noise_scale"):
        est.fit(X)
    assert not hasattr(est, "net_")
