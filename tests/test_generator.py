"""EBMGenerator: scikit-learn compatibility, layouts, sampling, persistence."""

import io
import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.utils.estimator_checks import parametrize_with_checks

from skebm import EBMGenerator, compose
from skebm.engine import TrainingDivergedError

FAST = dict(max_iter=4, batch_size=16, n_steps=3, buffer_size=64, energy_params={"hidden_units": (16,)})


def fast(**kwargs):
    return EBMGenerator(**{**FAST, "random_state": 0, **kwargs})


@parametrize_with_checks([fast()])
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:300], y[:300]


@pytest.fixture(scope="module")
def fitted_digits(digits):
    X, _ = digits
    return EBMGenerator(image_shape=(1, 8, 8), max_iter=6, n_steps=5, buffer_size=200, random_state=0).fit(X)


def test_layout_and_range_round_trip_flat(fitted_digits):
    out = fitted_digits.sample(7, random_state=0)
    assert isinstance(out, np.ndarray) and out.shape == (7, 64)
    assert out.min() >= 0.0 and out.max() <= 16.0
    assert fitted_digits.image_shape_ == (1, 8, 8)
    assert fitted_digits.net_.module_.__class__.__name__ == "ConvEnergy"


def test_layout_round_trip_4d(digits):
    X4 = digits[0].reshape(-1, 1, 8, 8).astype(np.float32)
    gen = EBMGenerator(max_iter=2, n_steps=2, buffer_size=100, random_state=0).fit(X4)
    assert gen.image_shape_ == (1, 8, 8)
    out = gen.sample(3)
    assert out.shape == (3, 1, 8, 8) and out.dtype == np.float32
    assert gen.score_samples(X4[:5]).shape == (5,)
    with pytest.raises(ValueError, match="image shape"):
        gen.score_samples(X4[:5].reshape(5, 1, 4, 16))


def test_layout_round_trip_dataframe():
    rng = np.random.RandomState(0)
    df = pd.DataFrame(rng.normal(5.0, 3.0, size=(200, 3)), columns=["a", "b", "c"])
    gen = fast().fit(df)
    out = gen.sample(4)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == ["a", "b", "c"]
    # standardised internally: the noise-initialised chains come back on the data's scale
    noise = gen.sample(2000, n_steps=0, init="noise", random_state=0)
    np.testing.assert_allclose(noise.mean().to_numpy(), df.mean().to_numpy(), atol=0.5)
    np.testing.assert_allclose(noise.std().to_numpy(), df.std().to_numpy(), rtol=0.15)


def test_fixed_random_state_gives_identical_results(digits):
    X = digits[0]
    a = EBMGenerator(image_shape=(1, 8, 8), max_iter=3, n_steps=3, random_state=3).fit(X)
    b = EBMGenerator(image_shape=(1, 8, 8), max_iter=3, n_steps=3, random_state=3).fit(X)
    np.testing.assert_array_equal(a.sample(5, random_state=1), b.sample(5, random_state=1))
    assert not np.array_equal(a.sample(5, random_state=1), a.sample(5, random_state=2))
    np.testing.assert_array_equal(a.score_samples(X[:10]), b.score_samples(X[:10]))
    # seeding never disturbs the user's global torch generator
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    a.sample(2, random_state=0)
    assert torch.equal(torch.rand(1), expected)


def test_return_chains(fitted_digits):
    x, chains = fitted_digits.sample(3, n_steps=4, return_chains=True, random_state=0)
    assert chains.shape == (5, 3, 64)
    np.testing.assert_allclose(chains[-1], x)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"max_iter": 0}, "max_iter"),
        ({"batch_size": -1}, "batch_size"),
        ({"step_size": 0.0}, "step_size"),
        ({"lr": -1.0}, "lr"),
        ({"init": "bogus"}, "init must be"),
        ({"reinit_prob": 2.0}, "reinit_prob"),
        ({"energy": "transformer"}, "energy must be"),
        ({"energy": 3}, "energy must be"),
        ({"image_shape": (1, 8)}, "image_shape must be"),
        ({"image_shape": (1, 4, 4)}, "implies 16 features"),
        ({"precision": "fp16"}, "precision"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_bad_parameters_raise(params, match):
    X = np.random.RandomState(0).rand(30, 64)
    with pytest.raises((ValueError, TypeError), match=match):
        fast(**params).fit(X)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        fast(device="cuda").fit(np.zeros((10, 2)))


@pytest.mark.parametrize(
    "X, error, match",
    [
        (np.array([[0.0, np.nan], [1.0, 2.0]]), ValueError, "NaN"),
        (np.array([[0.0, np.inf], [1.0, 2.0]]), ValueError, "infinity"),
        (np.empty((0, 2)), ValueError, "0 sample"),
        (sp.csr_matrix(np.eye(3)), TypeError, "[Ss]parse"),
        (np.array([["a", "b"], ["c", "d"]]), ValueError, "convert|could not"),
    ],
)
def test_bad_input_raises(X, error, match):
    with pytest.raises(error, match=match):
        fast().fit(X)


def test_predict_side_errors(fitted_digits):
    with pytest.raises(NotFittedError):
        fast().sample(2)
    with pytest.raises(ValueError, match="features"):
        fitted_digits.score_samples(np.zeros((2, 63)))
    with pytest.raises(ValueError, match="n_samples"):
        fitted_digits.sample(0)
    with pytest.raises(ValueError, match="conditional"):
        fitted_digits.sample(2, y=3)


def test_clone_pickle_joblib(fitted_digits, digits, tmp_path):
    X = digits[0][:20]
    cloned = clone(fitted_digits)
    assert not hasattr(cloned, "net_") and cloned.get_params() == fitted_digits.get_params()
    restored = pickle.loads(pickle.dumps(fitted_digits))
    np.testing.assert_allclose(restored.score_samples(X), fitted_digits.score_samples(X))
    np.testing.assert_array_equal(restored.sample(3, random_state=0), fitted_digits.sample(3, random_state=0))
    path = tmp_path / "gen.joblib"
    joblib.dump(fitted_digits, path)
    np.testing.assert_allclose(joblib.load(path).score_samples(X), fitted_digits.score_samples(X))


def test_module_instance_not_trained_in_place():
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.SiLU(), torch.nn.Linear(8, 1))
    before = [p.detach().clone() for p in net.parameters()]
    X = np.random.RandomState(0).randn(64, 2)
    gen = EBMGenerator(energy=net, max_iter=5, n_steps=3, random_state=0).fit(X)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    assert gen.score_samples(X).shape == (64,)


def test_module_class_energy_and_history():
    class Quadratic(torch.nn.Module):
        def __init__(self, n_features):
            super().__init__()
            self.a = torch.nn.Parameter(torch.ones(n_features))

        def forward(self, x):
            return 0.5 * (self.a * x**2).sum(1)

    X = np.random.RandomState(0).randn(100, 3)
    gen = EBMGenerator(energy=Quadratic, max_iter=6, n_steps=2, random_state=0).fit(X)
    assert isinstance(gen.net_.module_, Quadratic)
    hist = gen.net_.history
    assert gen.n_iter_ == 6
    assert {"train_loss", "energy_data", "energy_samples"} <= set(hist[-1]["batches"][-1])


def test_warm_start_continues(digits):
    X = digits[0]
    gen = EBMGenerator(image_shape=(1, 8, 8), max_iter=3, n_steps=2, warm_start=True, random_state=0).fit(X)
    module = gen.net_.module_
    bank = gen.net_.chain_init_.buffer_.clone()
    gen.fit(X)
    assert gen.net_.module_ is module and gen.n_iter_ == 6
    assert not torch.equal(gen.net_.chain_init_.buffer_, bank)
    cold = clone(gen).set_params(warm_start=False).fit(X)
    assert cold.n_iter_ == 3


def test_grid_search_over_sampler_parameter():
    from skebm.datasets import make_toy_2d

    X = make_toy_2d("8gaussians", 400, random_state=0)
    search = GridSearchCV(
        EBMGenerator(max_iter=60, n_steps=10, init="replay", random_state=0),
        {"step_size": [0.01, 0.3]},
        cv=2,
    )
    search.fit(X)
    # with step 0.01 and noise 0.01 chains barely move from N(0, I): the wider step must win
    assert search.best_params_ == {"step_size": 0.3}


def test_score_samples_is_negative_energy_over_temperature(fitted_digits, digits):
    X = digits[0][:8]
    Z = torch.as_tensor(fitted_digits._to_model(X))
    with torch.no_grad():
        energy = fitted_digits.net_.module_(Z).numpy()
    np.testing.assert_allclose(fitted_digits.score_samples(X), -energy, rtol=1e-5, atol=1e-6)


def test_conditional_sampling_and_labels():
    rng = np.random.RandomState(0)
    X = np.vstack([rng.normal(-3, 0.3, size=(200, 2)), rng.normal(3, 0.3, size=(200, 2))])
    y = np.array(["left"] * 200 + ["right"] * 200)
    gen = EBMGenerator(
        conditional=True, max_iter=150, n_steps=20, step_size=0.3, noise_scale=0.05, random_state=0
    ).fit(X, y)
    assert list(gen.classes_) == ["left", "right"]
    left = gen.sample(200, y="left", random_state=0)
    right = gen.sample(200, y="right", random_state=0)
    assert left.mean() < -1.0 and right.mean() > 1.0
    with pytest.raises(ValueError, match="not seen"):
        gen.sample(2, y="up")
    with pytest.raises(ValueError, match="requires class labels"):
        clone(gen).fit(X)


def test_inpaint_keeps_observed_entries(fitted_digits, digits):
    X = digits[0][:4]
    mask = np.zeros_like(X, dtype=bool)
    mask[:, 32:] = True
    out = fitted_digits.inpaint(X, mask, n_steps=3, random_state=0)
    np.testing.assert_allclose(out[:, :32], X[:, :32], atol=1e-4)
    assert not np.allclose(out[:, 32:], X[:, 32:])
    with pytest.raises(ValueError, match="broadcast"):
        fitted_digits.inpaint(X, np.ones((4, 3), dtype=bool))


def test_inpaint_recovers_correlated_coordinate():
    # x2 = x1 exactly (up to small noise): inpainting x2 given x1 must recover it
    rng = np.random.RandomState(0)
    x1 = rng.uniform(-2, 2, size=600)
    X = np.c_[x1, x1 + 0.05 * rng.randn(600)]
    gen = EBMGenerator(max_iter=300, n_steps=20, step_size=0.3, noise_scale=0.02, random_state=0).fit(X)
    test = np.c_[np.linspace(-1.5, 1.5, 20), np.zeros(20)]
    mask = np.array([False, True])
    out = gen.inpaint(test, mask, n_steps=200, random_state=0)
    assert np.corrcoef(out[:, 0], out[:, 1])[0, 1] > 0.9


def test_compose_two_energies():
    rng = np.random.RandomState(0)
    # a: mass on x0 > 0 bands; b: mass on x1 > 0 bands -> composition concentrates on the quadrant
    Xa = np.c_[rng.normal(2, 0.3, 500), rng.normal(0, 2, 500)]
    Xb = np.c_[rng.normal(0, 2, 500), rng.normal(2, 0.3, 500)]
    params = dict(max_iter=200, n_steps=20, step_size=0.3, noise_scale=0.05, random_state=0)
    a = EBMGenerator(**params).fit(Xa)
    b = EBMGenerator(**params).fit(Xb)
    both = compose(a, b).sample(300, n_steps=200, random_state=0)
    alone = compose(a).sample(300, n_steps=200, random_state=0)
    in_quadrant = np.mean((both[:, 0] > 0.8) & (both[:, 1] > 0))
    assert in_quadrant > 0.8
    assert in_quadrant > np.mean((alone[:, 0] > 0.8) & (alone[:, 1] > 0)) + 0.2
    with pytest.raises(ValueError, match="share the number of features"):
        compose(a, EBMGenerator(max_iter=1, n_steps=1).fit(np.zeros((10, 3))))
    with pytest.raises(ValueError, match="weights"):
        compose(a, b, weights=[1.0])


def test_divergence_is_reported_not_silent():
    X = np.random.RandomState(0).randn(64, 2)
    with pytest.raises(TrainingDivergedError, match="diverged"):
        EBMGenerator(max_iter=200, lr=1e3, l2_reg=0.0, optimizer="sgd", n_steps=5, random_state=0).fit(X)


def test_verbose_progress_bar(capsys):
    X = np.random.RandomState(0).randn(64, 2)
    fast(verbose=1).fit(X)
    err = capsys.readouterr().err
    assert "EBMNet" in err and "4/4" in err
