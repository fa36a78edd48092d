"""EBMPurifier and PurifiedClassifier: what purification does (the attacks: test_attacks*.py).

The API contract every estimator shares is checked in test_common.py.
"""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from torch import nn

from skebm import EBMPurifier, PurifiedClassifier
from skebm.mcmc import RowNoise

FAST = dict(
    energy="mlp",
    max_iter=3,
    batch_size=16,
    n_steps=3,
    buffer_size=64,
    n_purify_steps=3,
    energy_params={"hidden_units": (16,)},
)


def fast(**kwargs):
    return EBMPurifier(**{**FAST, "random_state": 0, **kwargs})


# --------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    return X[:1200], y[:1200], X[1200:1500], y[1200:1500]


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x):
        return self.net(x.reshape(len(x), -1))


@pytest.fixture(scope="module")
def tiny_net(digits):
    """A small undefended MLP classifier on digits in [0, 1] (plain torch)."""
    X, y, _, _ = digits
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = TinyNet()
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
        for _ in range(60):
            for idx in torch.randperm(len(Xt)).split(100):
                loss = nn.functional.cross_entropy(net(Xt[idx]), yt[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
    return net.eval()


@pytest.fixture(scope="module")
def purifier(digits):
    """A small conv purifier trained with data-initialised chains from noisy data."""
    X, _, _, _ = digits
    return EBMPurifier(
        energy="conv",
        image_shape=(1, 8, 8),
        energy_params={"channels": (16, 32, 64)},
        init="data",
        init_noise=0.3,
        max_iter=150,
        batch_size=32,
        n_steps=20,
        l2_reg=0.0,
        n_purify_steps=30,
        random_state=0,
    ).fit(X)


# --------------------------------------------------------------- the purifier
def test_output_follows_the_input_layout_and_dtype(digits):
    X = digits[0][:200]
    pur = fast(image_shape=(1, 8, 8)).fit(X)
    out = pur.transform(X[:7])
    assert out.shape == (7, 64) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert pur.transform(X[:3].astype(np.float64)).dtype == np.float64
    out4 = pur.transform(X[:3].reshape(3, 1, 8, 8))
    assert out4.shape == (3, 1, 8, 8)
    # a purifier fitted on a DataFrame returns arrays for arrays; set_output gives DataFrames
    import pandas as pd

    df = pd.DataFrame(X[:, :5] * 10 + 3, columns=list("abcde"))
    pur_df = fast().fit(df)
    assert isinstance(pur_df.transform(df.to_numpy()), np.ndarray)
    assert list(pur_df.get_feature_names_out()) == list("abcde")
    assert list(pur_df.set_output(transform="pandas").transform(df.to_numpy()).columns) == list("abcde")


def test_purify_replicates_and_transform_mean(digits):
    X = digits[0][:150]
    pur = fast(image_shape=(1, 8, 8), n_replicates=3).fit(X)
    reps = pur.purify(X[:4])
    assert reps.shape == (3, 4, 64)
    # independent replicates: different noise
    assert not np.allclose(reps[0], reps[1])
    np.testing.assert_allclose(pur.transform(X[:4]), reps.mean(axis=0), rtol=1e-5, atol=1e-6)
    assert pur.purify(X[:4], n_replicates=5, n_steps=2).shape == (5, 4, 64)
    # fixed random_state: repeated calls agree; another seed differs
    np.testing.assert_array_equal(pur.purify(X[:4]), reps)
    assert not np.allclose(pur.purify(X[:4], random_state=1), reps)
    # a row's replicates depend on that row alone: any subset, any order
    np.testing.assert_allclose(pur.purify(X[[3, 1]]), reps[:, [3, 1]], rtol=1e-5, atol=1e-6)


def test_purify_tensor_noise_modes(digits):
    X = digits[0][:150]
    pur = fast(image_shape=(1, 8, 8)).fit(X)
    x = torch.as_tensor(X[:5]).reshape(5, 1, 8, 8)
    g = torch.Generator().manual_seed(3)
    a = pur.purify_tensor(x, generator=g)
    b = pur.purify_tensor(x, generator=g)  # fresh noise
    c = pur.purify_tensor(x, generator=torch.Generator().manual_seed(3))
    assert a.shape == x.shape and a.dtype == x.dtype and not a.requires_grad
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert torch.equal(a, c) and not torch.equal(a, b)
    # a fixed noise stream (the attacker's reparameterisation) reproduces the purification
    keys = torch.arange(5)
    np.testing.assert_array_equal(pur.purify_tensor(x, noise=RowNoise(keys)), pur.purify_tensor(x, noise=RowNoise(keys)))
    with pytest.raises(TypeError, match="torch.Tensor"):
        pur.purify_tensor(X[:5])
    with pytest.raises(ValueError, match="features"):
        pur.purify_tensor(torch.zeros(2, 10))


PURIFY_SETTINGS = {
    "default": {},
    "purify_step_size": {"purify_step_size": 0.3},
    "exact_noise": {"noise_scale": None, "step_size": 0.1},
    "no_noise": {"noise_scale": 0.0},
    "temperature": {"temperature": 0.5},
    "purify_noise": {"purify_noise": 0.1},
    "bf16": {"precision": "bf16"},
}


@pytest.mark.parametrize("settings", PURIFY_SETTINGS.values(), ids=PURIFY_SETTINGS.keys())
def test_differentiable_purification_is_the_purification(digits, settings):
    # the full-gradient attack differentiates the defence's own chain, whatever its settings
    X = digits[0][:100]
    pur = fast(image_shape=(1, 8, 8), max_iter=2, n_purify_steps=5, **settings).fit(X)
    x = torch.as_tensor(X[:4]).reshape(4, 1, 8, 8)
    want = pur.purify_tensor(x, noise=RowNoise(torch.arange(4)))
    got = pur.purify_tensor(x.clone().requires_grad_(True), noise=RowNoise(torch.arange(4)), differentiable=True)
    assert got.requires_grad
    # bf16: backward kernels that keep the graph may round differently, within bf16's resolution
    atol = 1e-3 if settings.get("precision") == "bf16" else 1e-6
    torch.testing.assert_close(got.detach(), want, rtol=0, atol=atol)


def test_differentiable_purification_reaches_the_input(digits):
    X = digits[0][:150]
    pur = fast(image_shape=(1, 8, 8), n_purify_steps=4).fit(X)
    x = torch.as_tensor(X[:3]).requires_grad_(True)
    noise = RowNoise(torch.arange(3))
    out = pur.purify_tensor(x, noise=noise, differentiable=True)
    # the same chain as the non-differentiable path (the same noise), but with a graph to x
    np.testing.assert_allclose(
        out.detach().numpy(), pur.purify_tensor(x.detach(), noise=RowNoise(torch.arange(3))).numpy(), atol=1e-5
    )
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    # not the identity: the Langevin drift makes the Jacobian differ from I
    assert not torch.allclose(grad, torch.ones_like(grad), atol=1e-4)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_purify_steps": 0}, "n_purify_steps"),
        ({"n_replicates": 0}, "n_replicates"),
        ({"n_replicates": 1.5}, "n_replicates"),
        ({"purify_step_size": -1.0}, "purify_step_size"),
        ({"init": "bogus"}, "init"),
        ({"init": "persistent", "reinit_prob": 2.0}, "reinit_prob"),
        ({"init_noise": -0.1}, "init_noise"),
        ({"purify_noise": -0.1}, "purify_noise"),
        ({"purify_noise": "a"}, "purify_noise"),
        ({"purify_noise": float("nan")}, "purify_noise"),
        ({"purify_step_size": float("inf")}, "purify_step_size"),
    ],
)
def test_bad_parameters_raise(params, match):
    X = np.random.RandomState(0).rand(30, 4)
    with pytest.raises(ValueError, match=match):
        fast(**params).fit(X)


def test_call_time_parameters_are_validated_at_the_call(digits):
    X = digits[0][:60]
    pur = fast().fit(X)
    for params, match in (({"n_purify_steps": 0}, "n_purify_steps"), ({"purify_noise": float("nan")}, "purify_noise")):
        bad = pur.set_params(**params)
        with pytest.raises(ValueError, match=match):
            bad.transform(X[:2])
        pur.set_params(n_purify_steps=3, purify_noise=0.0)


def test_data_init_and_verbose_bar(digits, capsys):
    X = digits[0][:100]
    pur = fast(init="data", verbose=1).fit(X)
    pur.transform(X[:10])
    err = capsys.readouterr().err
    assert "EBMPurifier" in err and "purify" in err


@pytest.mark.slow
def test_purification_moves_noisy_digits_towards_the_data(purifier, digits):
    X, y, X_test, y_test = digits
    rng = np.random.RandomState(0)
    noisy = np.clip(X_test + rng.normal(0, 0.25, X_test.shape), 0, 1).astype(np.float32)
    purified = purifier.transform(noisy)

    def dist_to_data(Z):
        d = ((Z[:, None, :] - X[None, :, :]) ** 2).sum(-1)
        return np.sqrt(d.min(axis=1)).mean()

    # nearer the training digits than the noisy inputs were, and more typical under the model
    assert dist_to_data(purified) < 0.9 * dist_to_data(noisy)
    assert np.mean(purifier.score_samples(purified)) > np.mean(purifier.score_samples(noisy))


@pytest.mark.slow
def test_purified_clean_digits_stay_recognisable(purifier, digits):
    X, y, X_test, y_test = digits
    clf = LogisticRegression(max_iter=2000).fit(X, y)
    clean = accuracy_score(y_test, clf.predict(X_test))
    purified = accuracy_score(y_test, clf.predict(purifier.transform(X_test)))
    assert clean > 0.9
    assert purified > clean - 0.05


# ------------------------------------------------------- defended classifier
@pytest.mark.slow
def test_pipeline_and_purified_classifier(purifier, digits):
    X, y, X_test, y_test = digits
    labels = np.array(list("abcdefghij"))
    y_str, y_test_str = labels[y], labels[y_test]
    pipe = make_pipeline(FrozenEstimator(purifier), LogisticRegression(max_iter=2000)).fit(X, y_str)
    assert accuracy_score(y_test_str, pipe.predict(X_test)) > 0.85

    defended = PurifiedClassifier(FrozenEstimator(purifier), LogisticRegression(max_iter=2000), n_replicates=4)
    defended.fit(X, y_str)
    assert list(defended.classes_) == list(labels)
    proba = defended.predict_proba(X_test)
    assert proba.shape == (len(X_test), 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    pred = defended.predict(X_test)
    np.testing.assert_array_equal(pred, labels[proba.argmax(axis=1)])
    assert accuracy_score(y_test_str, pred) > 0.85
    assert np.isfinite(log_loss(y_test_str, proba, labels=labels))
    # the mean over replicates is what is returned
    reps = purifier.purify(X_test[:5], n_replicates=4)
    manual = defended.classifier_.predict_proba(reps.reshape(20, 64)).reshape(4, 5, 10).mean(axis=0)
    np.testing.assert_allclose(defended.predict_proba(X_test[:5]), manual, rtol=1e-6)


@pytest.mark.slow
def test_purified_classifier_averages_logits_of_torch_classifiers(purifier, tiny_net, digits):
    from skorch import NeuralNetClassifier

    X, y, X_test, y_test = digits
    net = NeuralNetClassifier(TinyNet, criterion=nn.CrossEntropyLoss, max_epochs=1, train_split=None).fit(X, y)
    net.module_.load_state_dict(tiny_net.state_dict())
    defended = PurifiedClassifier(FrozenEstimator(purifier), FrozenEstimator(net), n_replicates=3).fit(X, y)
    reps = purifier.purify(X_test[:6], n_replicates=3)
    with torch.no_grad():
        logits = tiny_net(torch.as_tensor(reps.reshape(18, 64))).numpy().reshape(3, 6, 10).mean(axis=0)
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(defended.predict_proba(X_test[:6]), expected, rtol=1e-4, atol=1e-6)


def test_purified_classifier_grid_search():
    rng = np.random.RandomState(0)
    X = np.r_[rng.normal(-2, 0.5, (60, 2)), rng.normal(2, 0.5, (60, 2))]
    y = np.r_[np.zeros(60), np.ones(60)]
    base = PurifiedClassifier(fast(), LogisticRegression())
    search = GridSearchCV(base, {"n_replicates": [1, 2]}, cv=2).fit(X, y)
    assert search.best_score_ > 0.9
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    with pytest.raises(ValueError, match="average"):
        PurifiedClassifier(fast(), LogisticRegression(), average="median").fit(X, y)
    with pytest.raises(TypeError, match="purify"):
        PurifiedClassifier(LogisticRegression(), LogisticRegression()).fit(X, y)


def test_purified_classifier_failed_fit_changes_nothing():
    from sklearn.exceptions import NotFittedError

    rng = np.random.RandomState(0)
    X = np.r_[rng.normal(-2, 0.5, (60, 2)), rng.normal(2, 0.5, (60, 2))]
    y = np.r_[np.zeros(60), np.ones(60)]
    clf = PurifiedClassifier(fast(), LogisticRegression())
    with pytest.raises(ValueError):
        clf.fit(X, y[:10])  # the classifier's fit fails after the purifier's succeeded
    assert not hasattr(clf, "purifier_")
    with pytest.raises(NotFittedError):
        clf.predict(X)
    clf.fit(X, y)
    before = clf.predict_proba(X[:5])
    with pytest.raises(ValueError):
        clf.fit(X, y[:10])
    np.testing.assert_array_equal(clf.predict_proba(X[:5]), before)


# ------------------------------------------------------------------ attacks
def test_bf16_purification(digits):
    X = digits[0][:100]
    pur = fast(precision="bf16").fit(X)
    out = pur.purify(X[:5], n_replicates=2)
    assert out.shape == (2, 5, 64) and out.dtype == np.float32 and np.all(np.isfinite(out))


@pytest.mark.gpu
def test_cuda_purification_and_its_gradient(digits):
    X, y, X_test, y_test = digits
    pur = fast(device="cuda").fit(X[:200])
    assert pur.net_.device.startswith("cuda")
    out = pur.purify_tensor(torch.as_tensor(X_test[:4]))
    assert out.device.type == "cpu" and out.shape == (4, 64)
    x = torch.as_tensor(X_test[:4]).requires_grad_(True)
    (grad,) = torch.autograd.grad(pur.purify_tensor(x, differentiable=True).sum(), x)
    assert grad.device.type == "cpu" and torch.isfinite(grad).all()


def test_transform_takes_a_frame_of_pandas_extension_dtypes():
    # found by the property test once it no longer accepted errors after a successful fit
    import pandas as pd

    X = pd.DataFrame({"a": pd.array([0, 1, 2, 3] * 8, dtype="Int64"), "b": np.linspace(0, 1, 32)})
    pur = fast().fit(X)
    out = pur.transform(X)
    assert isinstance(out, pd.DataFrame) and out.shape == X.shape and np.isfinite(out.to_numpy(float)).all()
