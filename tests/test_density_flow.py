"""EBMDensity on a normalising-flow base (base="flow"), and FlowSource itself."""

import io
import os
import pickle
import tempfile

import numpy as np
import pytest
import torch

import skebm
from skebm import EBMDensity
from skebm.datasets import make_toy_2d
from skebm.density import ImportanceML, QuadratureML
from skebm.mcmc import FlowSource, fit_flow_source, grid_log_partition

SMALL = dict(method=QuadratureML(grid_resolution=32, n_members=2), max_iter=60,
             energy_params={"hidden_units": (16,), "fourier_features": 16})


@pytest.fixture(scope="module")
def moons():
    return make_toy_2d("moons", 800, random_state=0), make_toy_2d("moons", 1000, random_state=1)


@pytest.fixture(scope="module")
def fitted(moons):
    X = moons[0] * np.array([3.0, 0.5]) + np.array([10.0, -4.0])  # user units far from standardised
    return EBMDensity(base="flow", random_state=0, **SMALL).fit(X), X


def test_flow_source_is_normalised_and_seeded():
    flow = FlowSource(2, transforms=2, hidden_features=(16,), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # a fresh flow is far from the identity: perturb it more
        for p in flow.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
        log_z = grid_log_partition(lambda x: -flow.log_prob(x), [-9, -9], [9, 9], resolution=401)
    assert abs(log_z) < 0.01
    a = flow.sample(50, generator=torch.Generator().manual_seed(3))
    b = flow.sample(50, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.equal(a, flow.sample(50, generator=torch.Generator().manual_seed(4)))
    with pytest.raises(ValueError, match="features of the flow"):
        flow.sample(2, (3,))


def test_fit_flow_source_learns_and_is_frozen(moons):
    X, X_test = moons
    Z, Zt = (X - X.mean(0)) / X.std(0), (X_test - X.mean(0)) / X.std(0)
    flow = fit_flow_source(Z, random_state=0, hidden_features=(32, 32))
    assert not any(p.requires_grad for p in flow.parameters()) and not flow.training
    with torch.no_grad():
        ll = float(flow.log_prob(torch.as_tensor(Zt, dtype=torch.float32)).mean())
    assert ll > -2.2  # standardised moons: one Gaussian scores about -2.7, the truth about -1.9 here


def test_flow_base_is_a_normalised_density(fitted):
    est, X = fitted
    assert isinstance(est.base_, FlowSource) and est.log_partition_method_ == "grid"
    lo, hi = X.min(0), X.max(0)
    pad = 0.6 * (hi - lo)
    xs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], 301)
    ys = np.linspace(lo[1] - pad[1], hi[1] + pad[1], 301)
    gx, gy = np.meshgrid(xs, ys)
    dens = np.exp(est.score_samples(np.c_[gx.ravel(), gy.ravel()])).reshape(gx.shape)
    assert abs(np.trapezoid(np.trapezoid(dens, xs, axis=1), ys) - 1.0) < 0.02
    assert est.sample(5, random_state=0).shape == (5, 2)


def test_flow_base_beats_the_gaussian_base_alone(moons):
    X, X_test = moons
    gauss = EBMDensity(random_state=0, **{**SMALL, "max_iter": 0}).fit(X)
    flow = EBMDensity(base="flow", random_state=0, **{**SMALL, "max_iter": 0}).fit(X)
    assert flow.score(X_test) > gauss.score(X_test) + 0.4  # the base alone: about -2.7 against -1.9


def test_seeded_fits_are_reproducible(moons, fitted):
    est, X = fitted
    again = EBMDensity(base="flow", random_state=0, **SMALL).fit(X)
    np.testing.assert_array_equal(again.score_samples(X[:20]), est.score_samples(X[:20]))
    other = EBMDensity(base="flow", random_state=1, **{**SMALL, "max_iter": 0}).fit(X)
    assert not np.allclose(other.score_samples(X[:20]), est.score_samples(X[:20]))


def test_save_load_and_pickle_round_trip(fitted):
    est, X = fitted
    path = os.path.join(tempfile.mkdtemp(), "flow.skebm")
    skebm.save(est, path)
    loaded = skebm.load(path)
    assert isinstance(loaded.base_, FlowSource)
    np.testing.assert_allclose(loaded.score_samples(X[:20]), est.score_samples(X[:20]), rtol=1e-5)
    np.testing.assert_allclose(loaded.sample(4, random_state=0), est.sample(4, random_state=0), rtol=1e-4)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_allclose(again.score_samples(X[:20]), est.score_samples(X[:20]))


def test_importance_method_tilts_a_flow_and_select_picks_it():
    rng = np.random.RandomState(0)
    t = rng.uniform(-2, 2, 1300)
    X = np.c_[t, t**2, np.sin(2 * t)] + 0.1 * rng.normal(size=(1300, 3))  # a curve: no few-Gaussian fit
    fast = dict(max_iter=25, energy_params={"hidden_units": (16,)}, method=ImportanceML(n_importance_samples=256),
                random_state=0)
    est = EBMDensity(**fast).fit(X[:1100])  # base="auto": the held-out split picks the flow over the mixtures
    assert est.method_.name == "importance" and isinstance(est.base_, FlowSource) and est._base_kind_ == "flow"
    assert 0 < est.log_partition_se_ < 0.05
    small = EBMDensity(**fast).fit(X[:300])  # too few rows to try a flow: today's mixtures
    assert small._base_kind_ == "gmm"
    assert est.score(X[1100:]) > small.score(X[1100:])


@pytest.mark.parametrize("base", ["flows", "Flow", 3])
def test_bad_base_is_refused(base, moons):
    est = EBMDensity(base=base, **SMALL)
    with pytest.raises(ValueError, match="base"):
        est.fit(moons[0][:50])
    assert not hasattr(est, "net_")


@pytest.mark.parametrize("kind, match", [("gmm", "does not match the parameters"), ("evil", "_base_kind_ must be")])
def test_a_tampered_base_kind_is_refused(fitted, kind, match):
    from skebm.utils._tampering import rewrite_file, set_entry

    est, _ = fitted
    buf = io.BytesIO()
    skebm.save(est, buf)
    tampered = rewrite_file(buf.getvalue(), None, lambda s, t: set_entry(s["attrs"], "_base_kind_", kind))
    with pytest.raises(ValueError, match=match):
        skebm.load(io.BytesIO(tampered))
