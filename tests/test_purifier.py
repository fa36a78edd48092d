"""EBMPurifier, PurifiedClassifier and the attacks of skebm.attacks."""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks
from torch import nn

from skebm import EBMPurifier, PurifiedClassifier
from skebm.attacks import TorchClassifier, as_torch_classifier, evaluate_robustness, pgd_attack

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


@parametrize_with_checks(
    [fast(), PurifiedClassifier(fast(), LogisticRegression(), n_replicates=2)],
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


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
def test_layout_range_and_dtype(digits):
    X = digits[0][:200]
    pur = fast(image_shape=(1, 8, 8)).fit(X)
    out = pur.transform(X[:7])
    assert out.shape == (7, 64) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    X4 = X.reshape(-1, 1, 8, 8)
    out4 = fast().fit(X4).transform(X4[:3])
    assert out4.shape == (3, 1, 8, 8)
    df = pd.DataFrame(X[:, :5] * 10 + 3, columns=list("abcde"))
    out_df = fast().fit(df).transform(df)
    assert isinstance(out_df, pd.DataFrame) and list(out_df.columns) == list("abcde")


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


def test_purify_tensor_matches_range_and_uses_global_rng(digits):
    X = digits[0][:150]
    pur = fast(image_shape=(1, 8, 8)).fit(X)
    x = torch.as_tensor(X[:5]).reshape(5, 1, 8, 8)
    torch.manual_seed(3)
    a = pur.purify_tensor(x)
    b = pur.purify_tensor(x)
    torch.manual_seed(3)
    c = pur.purify_tensor(x)
    assert a.shape == x.shape and a.dtype == x.dtype and not a.requires_grad
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert torch.equal(a, c) and not torch.equal(a, b)
    with pytest.raises(TypeError, match="torch.Tensor"):
        pur.purify_tensor(X[:5])
    with pytest.raises(ValueError, match="features"):
        pur.purify_tensor(torch.zeros(2, 10))


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_purify_steps": 0}, "n_purify_steps"),
        ({"n_replicates": 0}, "n_replicates"),
        ({"n_replicates": 1.5}, "n_replicates"),
        ({"purify_step_size": -1.0}, "purify_step_size"),
        ({"init": "bogus"}, "init must be"),
        ({"init": "persistent", "reinit_prob": 2.0}, "reinit_prob"),
        ({"init_noise": -0.1}, "init_noise"),
        ({"purify_noise": -0.1}, "purify_noise"),
        ({"purify_noise": "a"}, "purify_noise"),
    ],
)
def test_bad_parameters_raise(params, match):
    X = np.random.RandomState(0).rand(30, 4)
    with pytest.raises(ValueError, match=match):
        fast(**params).fit(X)


def test_not_fitted_and_pickle(digits):
    X = digits[0][:100]
    with pytest.raises(NotFittedError):
        fast().transform(X)
    pur = fast(image_shape=(1, 8, 8)).fit(X)
    restored = pickle.loads(pickle.dumps(pur))
    np.testing.assert_array_equal(restored.transform(X[:5]), pur.transform(X[:5]))
    assert clone(pur).get_params() == pur.get_params()


def test_data_init_and_verbose_bar(digits, capsys):
    X = digits[0][:100]
    pur = fast(init="data", verbose=1).fit(X)
    pur.transform(X[:10])
    err = capsys.readouterr().err
    assert "EBMNet" in err and "purify" in err


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


def test_purified_clean_digits_stay_recognisable(purifier, digits):
    X, y, X_test, y_test = digits
    clf = LogisticRegression(max_iter=2000).fit(X, y)
    clean = accuracy_score(y_test, clf.predict(X_test))
    purified = accuracy_score(y_test, clf.predict(purifier.transform(X_test)))
    assert clean > 0.9
    assert purified > clean - 0.05


# ------------------------------------------------------- defended classifier
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
    assert set(search.best_params_) == {"n_replicates"}
    with pytest.raises(ValueError, match="average"):
        PurifiedClassifier(fast(), LogisticRegression(), average="median").fit(X, y)
    with pytest.raises(TypeError, match="purify"):
        PurifiedClassifier(LogisticRegression(), LogisticRegression()).fit(X, y)


# ------------------------------------------------------------------ attacks
def test_pgd_stays_in_the_ball_and_the_range(tiny_net, digits):
    _, _, X_test, y_test = digits
    X, y = X_test[:100], y_test[:100]
    for norm, eps in (("inf", 0.1), ("l2", 0.8)):
        X_adv = pgd_attack(tiny_net, X, y, eps=eps, norm=norm, n_steps=10, bounds=(0, 1), random_state=0)
        delta = (X_adv - X).reshape(len(X), -1)
        size = np.abs(delta).max(1) if norm == "inf" else np.linalg.norm(delta, axis=1)
        assert size.max() <= eps + 1e-5
        assert X_adv.min() >= 0.0 and X_adv.max() <= 1.0
        assert X_adv.shape == X.shape and X_adv.dtype == X.dtype
        assert size.mean() > 0.3 * eps  # the attack moved


def test_pgd_breaks_an_undefended_net(tiny_net, digits):
    _, _, X_test, y_test = digits
    X, y = X_test[:150], y_test[:150]
    with torch.no_grad():
        clean = (tiny_net(torch.as_tensor(X)).argmax(1).numpy() == y).mean()
    X_adv, broken = pgd_attack(tiny_net, X, y, eps=0.2, n_steps=20, bounds=(0, 1), random_state=0, return_success=True)
    with torch.no_grad():
        adv = (tiny_net(torch.as_tensor(X_adv)).argmax(1).numpy() == y).mean()
    assert clean > 0.9
    assert 1 - broken.mean() < 0.05 and adv < 0.05


def _reference_pgd(net, X, y, eps, n_steps, alpha):
    """Textbook L-inf PGD from the clean input; returns ever-misclassified."""
    x_nat, target = torch.as_tensor(X), torch.as_tensor(y)
    x = x_nat.clone()
    broken = np.zeros(len(X), dtype=bool)
    for step in range(n_steps + 1):
        x.requires_grad_(True)
        logits = net(x)
        broken |= (logits.argmax(1) != target).numpy()
        if step == n_steps:
            break
        (grad,) = torch.autograd.grad(nn.functional.cross_entropy(logits, target, reduction="sum"), x)
        x = torch.min(torch.max(x.detach() + alpha * grad.sign(), x_nat - eps), x_nat + eps).clamp(0, 1)
    return x.detach().numpy(), broken


def test_bpda_eot_with_identity_purifier_is_plain_pgd(tiny_net, digits):
    _, _, X_test, y_test = digits
    X, y = X_test[:100], y_test[:100]
    ref_adv, ref_broken = _reference_pgd(tiny_net, X, y, eps=0.08, n_steps=8, alpha=0.02)
    for purifier, reps in ((None, 1), (lambda x: x.clone(), 3)):
        X_adv, broken = pgd_attack(
            tiny_net, X, y, eps=0.08, n_steps=8, step_size=0.02, random_start=False,
            purifier=purifier, n_replicates=reps, bounds=(0, 1), return_success=True,
        )
        np.testing.assert_array_equal(broken, ref_broken)
        # inputs never broken followed the same path
        np.testing.assert_allclose(X_adv[~broken], ref_adv[~broken], atol=1e-6)
    assert 0 < ref_broken.mean() < 1
    # with a random start too, the identity purifier changes nothing
    a = pgd_attack(tiny_net, X, y, eps=0.08, n_steps=5, bounds=(0, 1), random_state=0, return_success=True)
    b = pgd_attack(tiny_net, X, y, eps=0.08, n_steps=5, bounds=(0, 1), random_state=0, return_success=True,
                   purifier=lambda x: x, n_replicates=4)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_allclose(a[0], b[0], atol=1e-6)


def test_bpda_eot_averages_over_replicates(tiny_net, digits):
    _, _, X_test, y_test = digits
    X, y = X_test[:50], y_test[:50]
    calls = []

    def noisy_purifier(x):
        calls.append(len(x))
        return x + 0.05 * torch.randn_like(x)

    pgd_attack(
        tiny_net, X, y, eps=0.05, n_steps=3, purifier=noisy_purifier, n_replicates=5, random_state=0, batch_size=64
    )
    # every check purifies 5 replicates of the unbroken inputs in one batch
    assert calls[0] == 5 * 50 and all(c % 5 == 0 for c in calls)
    assert len(calls) == 2 + 3  # clean input, random start, three steps
    # fewer EOT replicates than the defence's: candidate breaks are confirmed with 7 fresh copies
    calls.clear()
    pgd_attack(
        tiny_net, X, y, eps=0.3, n_steps=3, purifier=noisy_purifier, n_replicates=7, eot_replicates=2, random_state=0
    )
    assert calls[0] == 2 * 50
    # EOT batches are even (2 copies per input); confirmations of an odd number of candidates are odd
    assert any(c % 2 == 1 for c in calls)


def test_adapters(tiny_net, digits):
    from skorch import NeuralNetClassifier

    X, y, X_test, _ = digits
    # a skorch net whose module outputs probabilities (NLLLoss): logits are log-probabilities
    class SoftmaxNet(TinyNet):
        def forward(self, x):
            return torch.softmax(super().forward(x), dim=1)

    net = NeuralNetClassifier(SoftmaxNet, max_epochs=2, lr=0.1, train_split=None).fit(X, y)
    view = as_torch_classifier(net)
    assert isinstance(view, TorchClassifier)
    logits = view.predict_logits(X_test)
    np.testing.assert_allclose(np.exp(logits), net.predict_proba(X_test), rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(view.classes_[logits.argmax(1)], net.predict(X_test))
    np.testing.assert_array_equal(view.encode([0, 5, 9]), [0, 5, 9])
    with pytest.raises(ValueError, match="label"):
        view.encode([12])
    # an object implementing the torch_logits protocol
    class Proto:
        classes_ = np.array(["x", "y"])

        def torch_logits(self, X):
            return torch.stack([X.sum(1), -X.sum(1)], dim=1)

    proto = as_torch_classifier(Proto())
    assert proto.encode(["y", "x"]).tolist() == [1, 0]
    with pytest.raises(TypeError, match="torch"):
        as_torch_classifier(LogisticRegression().fit(X, y))


def test_ngebm_classifier_adapter(digits):
    from skebm import NGEBMClassifier

    X, y, X_test, _ = digits
    clf = NGEBMClassifier(image_shape=(1, 8, 8), max_iter=5, random_state=0).fit(X[:300], y[:300])
    view = as_torch_classifier(clf)
    logits = view.predict_logits(X_test[:20])
    np.testing.assert_allclose(logits, clf.decision_function(X_test[:20]), rtol=1e-4, atol=1e-4)
    # the attack perturbs the user's pixel values, through the estimator's own rescaling
    y_pred = clf.predict(X_test[:20])
    _, broken = pgd_attack(clf, X_test[:20], y_pred, eps=0.3, n_steps=5, bounds=(0, 1), return_success=True)
    assert broken.mean() > 0


def test_attack_parameter_errors(tiny_net, digits):
    _, _, X_test, y_test = digits
    X, y = X_test[:5], y_test[:5]
    with pytest.raises(ValueError, match="norm"):
        pgd_attack(tiny_net, X, y, eps=0.1, norm="l1")
    with pytest.raises(ValueError, match="eps"):
        pgd_attack(tiny_net, X, y, eps=-0.1)
    with pytest.raises(ValueError, match="samples"):
        pgd_attack(tiny_net, X, y[:3], eps=0.1)
    with pytest.raises(ValueError, match="NaN"):
        pgd_attack(tiny_net, np.full_like(X, np.nan), y, eps=0.1)
    with pytest.raises(TypeError, match="purify"):
        pgd_attack(tiny_net, X, y, eps=0.1, purifier="yes")
    with pytest.raises(ValueError, match="epsilons"):
        evaluate_robustness(tiny_net, X, y, epsilons=[0.0])


def test_evaluate_robustness_table_and_plot(purifier, tiny_net, digits):
    from skorch import NeuralNetClassifier

    from skebm.plotting import plot_robustness

    X_train, y_train, X_test, y_test = digits
    X, y = X_test[:40], y_test[:40]
    table = evaluate_robustness(
        tiny_net, X, y, epsilons=[0.1, 0.3], purifier=purifier, n_replicates=2, n_steps=5, bounds=(0, 1), random_state=0
    )
    assert list(table.columns) == ["undefended", "purified"]
    assert list(table.index) == [0.0, 0.1, 0.3] and table.index.name == "epsilon"
    assert ((table >= 0) & (table <= 1)).all().all()
    with torch.no_grad():
        natural = (tiny_net(torch.as_tensor(X)).argmax(1).numpy() == y).mean()
    assert table.loc[0.0, "undefended"] == pytest.approx(natural)
    # the clean input is one of the checks: robust accuracy never exceeds natural accuracy
    assert (table["undefended"] <= natural + 1e-12).all()
    assert table.loc[0.3, "undefended"] < natural
    assert table.attrs["n_replicates"] == 2 and "BPDA" in table.attrs["attack"]
    ax = plot_robustness(table)
    assert len(ax.get_lines()) == 2 and "EOT" in ax.get_title()
    # a fitted PurifiedClassifier brings its purifier and replicates along
    net = NeuralNetClassifier(TinyNet, criterion=nn.CrossEntropyLoss, max_epochs=1, train_split=None)
    net.fit(X_train, y_train)
    net.module_.load_state_dict(tiny_net.state_dict())
    defended = PurifiedClassifier(FrozenEstimator(purifier), FrozenEstimator(net), n_replicates=3).fit(X_train, y_train)
    table = evaluate_robustness(defended, X, y, epsilons=[0.1], n_steps=2, bounds=(0, 1), random_state=0)
    assert list(table.columns) == ["undefended", "purified"] and table.attrs["n_replicates"] == 3
    assert table.loc[0.0, "undefended"] == pytest.approx(natural)
    undefended_only = evaluate_robustness(tiny_net, X, y, epsilons=[0.1], n_steps=3, random_state=0)
    assert list(undefended_only.columns) == ["undefended"]


def test_save_load_round_trip(purifier, digits, tmp_path):
    import skebm

    X_test = digits[2][:10]
    path = tmp_path / "purifier.skebm"
    skebm.save(purifier, path)
    restored = skebm.load(path)
    assert isinstance(restored, EBMPurifier)
    np.testing.assert_allclose(restored.score_samples(X_test), purifier.score_samples(X_test), rtol=1e-5)
    np.testing.assert_allclose(restored.transform(X_test), purifier.transform(X_test), rtol=1e-5, atol=1e-6)


def test_bf16_purification(digits):
    X = digits[0][:100]
    pur = fast(precision="bf16").fit(X)
    out = pur.purify(X[:5], n_replicates=2)
    assert out.shape == (2, 5, 64) and out.dtype == np.float32 and np.all(np.isfinite(out))


@pytest.mark.gpu
def test_cuda_purification_and_attack(tiny_net, digits):
    X, y, X_test, y_test = digits
    pur = fast(device="cuda").fit(X[:200])
    assert pur.net_.device.startswith("cuda")
    out = pur.purify_tensor(torch.as_tensor(X_test[:4]))
    assert out.device.type == "cpu" and out.shape == (4, 64)
    _, broken = pgd_attack(
        tiny_net, X_test[:20], y_test[:20], eps=0.1, n_steps=2, purifier=pur, n_replicates=2, return_success=True
    )
    assert broken.shape == (20,)
