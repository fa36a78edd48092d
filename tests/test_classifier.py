"""NGEBMClassifier: the NG-EBM loss terms, JEM mode, OOD scores, scikit-learn tools.

The API contract every estimator shares is checked in test_common.py.
"""

import copy
import pickle

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV, CalibrationDisplay
from sklearn.datasets import load_digits, make_blobs
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from skorch.callbacks import Callback

from skebm import NGEBMClassifier
from skebm.engine import NGEBMLoss, NGEBMNet, TrainingDivergedError
from skebm.metrics import expected_calibration_error, ood_auroc

FAST = dict(max_iter=60, batch_size=32, lr=1e-2, energy_params={"hidden_units": (16,)})


def fast(**kwargs):
    return NGEBMClassifier(**{**FAST, "random_state": 0, **kwargs})


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X, y


@pytest.fixture(scope="module")
def fitted_images(digits):
    X, y = digits
    clf = NGEBMClassifier(image_shape=(1, 8, 8), max_iter=150, random_state=0)
    return clf.fit(X[:600], y[:600])


# ------------------------------------------------------------ the loss terms
def test_approximate_mass_term_is_the_gradient_norm():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))
    x = torch.randn(11, 5, requires_grad=True)
    y = torch.randint(3, (11,))
    terms = NGEBMLoss(energy_variance=1.0, approximate_mass=1.0).terms(net(x), y, x=x)
    # independent computation: per-sample gradient of logsumexp, one sample at a time, by hand
    W1, b1, W2, b2 = (p.detach().double() for p in net.parameters())
    norms, lse = [], []
    for xi in x.detach().double():
        h = torch.tanh(W1 @ xi + b1)
        logits = W2 @ h + b2
        p = torch.softmax(logits, 0)
        # d lse / dx = W1^T diag(1 - h^2) W2^T softmax
        grad = W1.T @ ((1 - h**2) * (W2.T @ p))
        norms.append(grad.norm())
        lse.append(torch.logsumexp(logits, 0))
    lse = torch.stack(lse)
    assert terms["approximate_mass"].item() == pytest.approx(torch.stack(norms).mean().item(), rel=1e-5)
    assert terms["energy_variance"].item() == pytest.approx(((lse - lse.mean()) ** 2).mean().item(), rel=1e-5)
    ce = torch.nn.functional.cross_entropy(net(x.detach()), y)
    assert terms["cross_entropy"].item() == pytest.approx(ce.item(), rel=1e-6)
    # the approximate-mass term is differentiable in the weights (double backprop)
    terms["approximate_mass"].backward()
    assert net[0].weight.grad is not None and net[0].weight.grad.abs().sum() > 0


def test_loss_weights_combine_terms():
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3)
    x = torch.randn(9, 4, requires_grad=True)
    y = torch.randint(3, (9,))
    loss = NGEBMLoss(energy_variance=0.5, approximate_mass=2.0)
    t = loss.terms(net(x), y, x=x)
    expected = t["cross_entropy"] + 0.5 * t["energy_variance"] + 2.0 * t["approximate_mass"]
    assert loss(net(x), y, x=x).item() == pytest.approx(expected.item(), rel=1e-6)
    assert set(NGEBMLoss().terms(net(x), y)) == {"cross_entropy"}
    with pytest.raises(ValueError, match="requires_grad"):
        NGEBMLoss(approximate_mass=1.0)(net(x.detach()), y, x=x.detach())
    with pytest.raises(ValueError, match="negatives"):
        NGEBMLoss(generative_weight=1.0)(net(x), y, x=x)


class _Recorder(Callback):
    """Keeps the initial weights and every training batch the engine sees."""

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.initial_ = copy.deepcopy(net.module_.state_dict())
        self.batches_ = []

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        if training:
            self.batches_.append((batch[0].clone(), batch[1].clone()))


def test_zero_weights_reproduce_plain_cross_entropy_training():
    X, y = make_blobs(n_samples=96, centers=3, n_features=4, random_state=0)
    recorder = _Recorder()
    clf = NGEBMClassifier(
        energy_variance=0.0,
        approximate_mass=0.0,
        data_noise=0.0,
        energy_params={"hidden_units": (8,)},
        batch_size=32,
        max_iter=6,
        lr=1e-2,
        callbacks=[recorder],
        random_state=0,
    ).fit(X, y)
    # a hand-written cross-entropy loop from the same initial weights on the same batches
    module = clf._make_energy(3, torch.Generator(), None)
    module.load_state_dict(recorder.initial_)
    opt = torch.optim.Adam(module.parameters(), lr=1e-2, betas=(0.9, 0.999))
    losses = []
    for xb, yb in recorder.batches_:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(module(xb.float()), yb.long())
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert len(losses) == 6
    recorded = [b["train_loss"] for epoch in clf.net_.history for b in epoch["batches"]]
    np.testing.assert_allclose(recorded, losses, rtol=1e-6)
    for a, b in zip(clf.net_.module_.parameters(), module.parameters()):
        torch.testing.assert_close(a, b)
    # the engine trained on the standardised data, no input noise
    Z = clf._to_model(X)
    xb = recorder.batches_[0][0].numpy()
    dist = ((xb[:, None, :] - Z[None, :, :]) ** 2).sum(-1).min(1)
    np.testing.assert_allclose(dist, 0.0, atol=1e-10)
    np.testing.assert_allclose(Z.mean(0), 0.0, atol=1e-5)


# ------------------------------------------------------------ the estimator
def test_string_labels_round_trip_binary_and_multiclass():
    X, y = make_blobs(n_samples=150, centers=3, random_state=0)
    names = np.array(["cat", "dog", "emu"])[y]
    clf = fast(max_iter=150).fit(X, names)
    assert list(clf.classes_) == ["cat", "dog", "emu"]
    assert set(clf.predict(X)) <= set(names) and clf.score(X, names) > 0.9
    assert clf.decision_function(X).shape == (150, 3)
    np.testing.assert_allclose(clf.predict_proba(X).sum(1), 1.0)
    mask = y < 2
    binary = fast().fit(X[mask], names[mask])
    assert list(binary.classes_) == ["cat", "dog"]
    d = binary.decision_function(X[mask])
    assert d.shape == (mask.sum(),)
    np.testing.assert_array_equal(binary.predict(X[mask]), np.where(d > 0, "dog", "cat"))
    proba = binary.predict_proba(X[mask])
    np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(-d)), rtol=1e-10)
    np.testing.assert_allclose(binary.predict_log_proba(X[mask]), np.log(proba), rtol=1e-8, atol=1e-12)


def test_images_conv_net_and_4d_input(fitted_images, digits):
    X, y = digits
    assert fitted_images.net_.module_.__class__.__name__ == "ConvEnergy"
    assert isinstance(fitted_images.net_, NGEBMNet)
    assert fitted_images.score(X[1000:1300], y[1000:1300]) > 0.85
    X4 = X[:600].reshape(-1, 1, 8, 8)
    clf4 = clone(fitted_images).set_params(image_shape=None, max_iter=5).fit(X4, y[:600])
    assert clf4.image_shape_ == (1, 8, 8) and clf4.predict(X4[:3]).shape == (3,)
    with pytest.raises(ValueError, match="image shape"):
        clf4.predict(X4[:3].reshape(3, 1, 4, 16))


def test_dataframe_input():
    X, y = make_blobs(n_samples=120, centers=2, n_features=3, random_state=1)
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    clf = fast().fit(df, pd.Series(y))
    assert list(clf.feature_names_in_) == ["a", "b", "c"]
    assert clf.score(df, y) > 0.9


@pytest.mark.parametrize(
    "params, match",
    [
        ({"energy_variance": -1.0}, "energy_variance"),
        ({"approximate_mass": float("nan")}, "approximate_mass"),
        ({"input_noise": "big"}, "input_noise"),
        ({"generative_weight": -0.1}, "generative_weight"),
        ({"max_iter": 0}, "max_iter"),
        ({"lr": 0.0}, "lr"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"energy": "transformer"}, "energy"),
        ({"image_shape": (1, 4, 4)}, "needs 16"),
        ({"init": "bogus"}, "init"),
        ({"generative_weight": 1.0, "reinit_prob": 2.0}, "reinit_prob"),
    ],
)
def test_bad_parameters_raise(params, match):
    X, y = make_blobs(n_samples=40, centers=2, n_features=64, random_state=0)
    with pytest.raises((ValueError, TypeError), match=match):
        fast(**params).fit(X, y)


@pytest.mark.parametrize(
    "X, y, error, match",
    [
        (np.array([[0.0, np.nan], [1.0, 2.0]]), [0, 1], ValueError, "NaN"),
        (np.empty((0, 2)), [], ValueError, "0 sample"),
        (sp.csr_matrix(np.eye(3)), [0, 1, 0], TypeError, "[Ss]parse"),
        (np.zeros((4, 2)), [0, 1, 0], ValueError, "inconsistent numbers of samples"),
        (np.zeros((4, 2)), [0.5, 1.5, 2.5, 3.5], ValueError, "Unknown label type"),
        (np.zeros((4, 2)), [1, 1, 1, 1], ValueError, "got 1 class"),
        (np.zeros((4, 2)), None, ValueError, "requires y"),
    ],
)
def test_bad_input_raises(X, y, error, match):
    with pytest.raises(error, match=match):
        fast().fit(X, y)


def test_unseen_labels_and_predict_errors():
    X, y = make_blobs(n_samples=60, centers=2, random_state=0)
    with pytest.raises(NotFittedError):
        fast().predict(X)
    clf = fast(warm_start=True).fit(X, y)
    with pytest.raises(ValueError, match="not seen"):
        clf.fit(X, np.where(y == 0, 0, 7))
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:, :1])
    with pytest.raises(ValueError, match="kind must be"):
        clf.ood_score(X, kind="energy")


def test_warm_start_continues():
    X, y = make_blobs(n_samples=64, centers=2, random_state=0)
    clf = fast(warm_start=True, max_iter=4).fit(X, y)
    before = {k: v.clone() for k, v in clf.net_.module_.state_dict().items()}
    clf.set_params(energy_variance=0.5)
    clf.fit(X, y)
    assert clf.n_iter_ == 8 and clf.net_.criterion_.energy_variance == 0.5
    assert any(not torch.equal(before[k], v) for k, v in clf.net_.module_.state_dict().items())


def test_warm_start_divergence_keeps_the_good_model():
    X, y = make_blobs(n_samples=64, centers=2, random_state=0)
    clf = fast(warm_start=True, max_iter=20).fit(X, y)
    proba = clf.predict_proba(X[:5])
    with pytest.raises(TrainingDivergedError):
        clf.fit(X * 1e30, y)  # far outside the fitted scaling: training diverges beyond recovery
    np.testing.assert_array_equal(clf.predict_proba(X[:5]), proba)
    with pytest.raises(TrainingDivergedError):
        clf.set_params(lr=1e6, on_divergence="raise").fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X[:5]), proba)


def test_input_noise_is_a_deprecated_alias_of_data_noise():
    X, y = make_blobs(n_samples=64, centers=2, random_state=0)
    with pytest.warns(FutureWarning, match="data_noise"):
        old = fast(max_iter=3, input_noise=0.2).fit(X, y)
    new = fast(max_iter=3, data_noise=0.2).fit(X, y)
    assert old.net_.data_noise == new.net_.data_noise == 0.2
    np.testing.assert_array_equal(old.predict_proba(X[:4]), new.predict_proba(X[:4]))


def test_same_seed_same_model_and_pickle(digits):
    X, y = digits
    a = fast(max_iter=10).fit(X[:200], y[:200])
    b = fast(max_iter=10).fit(X[:200], y[:200])
    np.testing.assert_array_equal(a.predict_proba(X[200:220]), b.predict_proba(X[200:220]))
    restored = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(restored.predict_proba(X[200:220]), a.predict_proba(X[200:220]))


def test_history_records_loss_terms():
    X, y = make_blobs(n_samples=64, centers=2, random_state=0)
    row = fast(max_iter=2).fit(X, y).net_.history[-1]["batches"][-1]
    assert {"cross_entropy", "energy_variance", "approximate_mass", "energy_data", "train_loss"} <= set(row)
    row = fast(max_iter=2, energy_variance=0, approximate_mass=0).fit(X, y).net_.history[-1]["batches"][-1]
    assert "approximate_mass" not in row and row["train_loss"] == pytest.approx(row["cross_entropy"])


def test_energy_variance_term_shrinks_energy_spread():
    X, y = make_blobs(n_samples=300, centers=3, n_features=5, random_state=0)
    plain = fast(energy_variance=0, approximate_mass=0, max_iter=200).fit(X, y)
    flat = fast(energy_variance=1.0, approximate_mass=0, max_iter=200).fit(X, y)
    assert np.std(flat.score_samples(X)) < 0.5 * np.std(plain.score_samples(X))
    assert flat.score(X, y) > 0.95


# ------------------------------------------------------------ scores and OOD
def test_scores_are_the_documented_functions_of_the_logits(fitted_images, digits):
    X = digits[0][:20]
    Z = torch.as_tensor(fitted_images._to_model(X))
    with torch.no_grad():
        logits = fitted_images.net_.module_(Z).double()
    np.testing.assert_allclose(fitted_images.decision_function(X), logits.numpy(), rtol=1e-5)
    lse = torch.logsumexp(logits, 1).numpy()
    np.testing.assert_allclose(fitted_images.score_samples(X), lse, rtol=1e-5)
    np.testing.assert_allclose(fitted_images.ood_score(X, kind="logsumexp"), lse, rtol=1e-5)
    np.testing.assert_allclose(
        fitted_images.ood_score(X, kind="max_softmax"), fitted_images.predict_proba(X).max(1), rtol=1e-10
    )
    z = Z.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(torch.logsumexp(fitted_images.net_.module_(z), 1).sum(), z)
    np.testing.assert_allclose(
        fitted_images.ood_score(X, kind="approximate_mass"), -grad.flatten(1).norm(dim=1).numpy(), rtol=1e-4
    )


@pytest.mark.slow
def test_energy_terms_make_noise_out_of_distribution(digits):
    # A plain cross-entropy MLP gives uniform-noise images a larger logsumexp than digits;
    # the energy-variance term pins the digits' energies, so noise is rejected.
    X, y = digits
    noise = np.random.RandomState(0).uniform(0, 16, size=(200, 64))
    auroc = {}
    for name, params in {"plain": {"energy_variance": 0.0, "approximate_mass": 0.0}, "ngebm": {}}.items():
        clf = NGEBMClassifier(max_iter=400, random_state=0, **params).fit(X[:600], y[:600])
        auroc[name] = ood_auroc(clf.ood_score(X[1000:1200]), clf.ood_score(noise))
    assert auroc["ngebm"] > 0.8
    assert auroc["ngebm"] > auroc["plain"] + 0.3


# ------------------------------------------------------------ scikit-learn tools
@pytest.mark.slow
def test_pipeline_grid_search_and_cross_val(digits):
    X, y = digits
    X, y = X[:200], y[:200]
    pipe = make_pipeline(MinMaxScaler(), fast(max_iter=30))
    scores = cross_val_score(pipe, X, y, cv=2)
    assert scores.mean() > 0.7
    search = GridSearchCV(fast(max_iter=30), {"energy_variance": [0.0, 0.01]}, cv=2, n_jobs=2).fit(X, y)
    # the search scores exactly what cross-validating each candidate alone gives (clones are seeded alike)
    for value, score in zip(search.cv_results_["param_energy_variance"], search.cv_results_["mean_test_score"]):
        assert cross_val_score(fast(max_iter=30, energy_variance=value), X, y, cv=2).mean() == pytest.approx(score)
    assert search.best_estimator_.score(X, y) > 0.7


def test_calibrated_classifier_cv_and_calibration_display():
    import matplotlib.pyplot as plt

    X, y = make_blobs(n_samples=300, centers=2, cluster_std=3.0, random_state=0)
    cal = CalibratedClassifierCV(fast(), cv=3).fit(X, y)
    proba = cal.predict_proba(X)
    assert proba.shape == (300, 2) and expected_calibration_error(y, proba) < 0.2
    clf = fast().fit(X, y)
    display = CalibrationDisplay.from_estimator(clf, X, y, n_bins=5)
    assert len(display.prob_pred) > 1
    plt.close("all")


# ------------------------------------------------------------ JEM mode
def test_jem_mode_runs_and_uses_the_shared_sampler(digits):
    X, y = digits
    clf = NGEBMClassifier(
        image_shape=(1, 8, 8), generative_weight=1.0, max_iter=30, n_steps=5, buffer_size=500, random_state=0
    ).fit(X[:400], y[:400])
    strategy = clf.net_.chain_init_
    assert type(strategy).__name__ == "ReplayInit" and int(strategy.n_filled_) == 500
    row = clf.net_.history[-1]["batches"][-1]
    assert {"max_likelihood", "energy_samples", "energy_data"} <= set(row)
    assert np.isfinite(clf.predict_proba(X[400:420])).all()


def test_ngebm_mode_runs_no_chains():
    X, y = make_blobs(n_samples=64, centers=2, random_state=0)
    clf = fast(max_iter=3).fit(X, y)
    assert type(clf.net_.chain_init_).__name__ == "NoiseInit"
    assert "energy_samples" not in clf.net_.history[-1]["batches"][-1]


def test_jem_divergence_is_reported_not_silent():
    X, y = make_blobs(n_samples=64, centers=2, random_state=0)
    with pytest.raises(TrainingDivergedError, match="JEM mode"):
        fast(generative_weight=1.0, lr=1e4, optimizer="sgd", n_steps=3, max_iter=100).fit(X, y)


@pytest.mark.gpu
def test_cuda_fit_predict_and_cpu_reload(digits):
    X, y = digits
    clf = NGEBMClassifier(image_shape=(1, 8, 8), device="cuda", max_iter=20, random_state=0).fit(X[:300], y[:300])
    assert clf.net_.device.startswith("cuda")
    proba = clf.predict_proba(X[300:320])
    assert proba.shape == (20, 10) and np.allclose(proba.sum(1), 1.0)
    assert clf.ood_score(X[300:320], kind="approximate_mass").shape == (20,)
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(restored.predict_proba(X[300:320]), proba, rtol=1e-5)
