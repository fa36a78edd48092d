"""EBMGenerator: what it does (sampling, conditioning, inpainting, composition, warm starts).

The API contract every estimator shares (layouts, pickle, save/load, not-fitted
and bad-input errors, transactional fit...) is checked in test_common.py.
"""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV

from skebm import EBMGenerator, compose
from skebm.engine import TrainingDivergedError

FAST = dict(max_iter=4, batch_size=16, n_steps=3, buffer_size=64, energy_params={"hidden_units": (16,)})


def fast(**kwargs):
    return EBMGenerator(**{**FAST, "random_state": 0, **kwargs})


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:300], y[:300]


@pytest.fixture(scope="module")
def fitted_digits(digits):
    X, _ = digits
    return EBMGenerator(image_shape=(1, 8, 8), max_iter=6, n_steps=5, buffer_size=200, random_state=0).fit(X)


def test_auto_energy_for_images_and_value_range(fitted_digits):
    out = fitted_digits.sample(7, random_state=0)
    assert out.shape == (7, 64) and out.min() >= 0.0 and out.max() <= 16.0
    assert fitted_digits.net_.module_.__class__.__name__ == "ConvEnergy"


def test_source_starts_follow_the_data_scale():
    rng = np.random.RandomState(0)
    X = rng.normal(5.0, 3.0, size=(200, 3))
    gen = fast().fit(X)
    # standardised internally: fresh starts from the source come back on the data's scale
    noise = gen.sample(2000, n_steps=0, start="source", random_state=0)
    np.testing.assert_allclose(noise.mean(0), X.mean(0), atol=0.5)
    np.testing.assert_allclose(noise.std(0), X.std(0), rtol=0.15)
    with pytest.warns(FutureWarning, match="start"):
        old = gen.sample(5, n_steps=0, init="noise", random_state=1)
    np.testing.assert_array_equal(old, gen.sample(5, n_steps=0, start="source", random_state=1))
    with pytest.raises(ValueError, match="start"):
        gen.sample(2, start="bogus")


def test_fixed_random_state_gives_identical_results(digits):
    X = digits[0]
    a = EBMGenerator(image_shape=(1, 8, 8), max_iter=3, n_steps=3, random_state=3).fit(X)
    b = EBMGenerator(image_shape=(1, 8, 8), max_iter=3, n_steps=3, random_state=3).fit(X)
    np.testing.assert_array_equal(a.sample(5, random_state=1), b.sample(5, random_state=1))
    assert not np.array_equal(a.sample(5, random_state=1), a.sample(5, random_state=2))
    np.testing.assert_array_equal(a.score_samples(X[:10]), b.score_samples(X[:10]))


def test_seeded_calls_never_touch_the_global_generator(digits):
    X = digits[0]
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    gen = EBMGenerator(image_shape=(1, 8, 8), max_iter=3, n_steps=3, random_state=0).fit(X)
    gen.sample(2, random_state=0)
    gen.inpaint(X[:2], np.ones_like(X[:2], dtype=bool), n_steps=2, random_state=0)
    assert torch.equal(torch.rand(3), expected)
    # and the global generator's state does not change a seeded result
    torch.manual_seed(1)
    a = EBMGenerator(image_shape=(1, 8, 8), max_iter=3, n_steps=3, random_state=0).fit(X).sample(3, random_state=0)
    torch.manual_seed(2)
    b = EBMGenerator(image_shape=(1, 8, 8), max_iter=3, n_steps=3, random_state=0).fit(X).sample(3, random_state=0)
    np.testing.assert_array_equal(a, b)


def test_max_iter_is_exact(digits):
    gen = EBMGenerator(image_shape=(1, 8, 8), max_iter=7, batch_size=64, n_steps=1, random_state=0).fit(digits[0])
    assert gen.n_iter_ == 7  # 300 / 64 -> 5 updates per epoch, the second epoch cut short


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
        ({"lr": float("inf")}, "lr"),
        ({"init": "bogus"}, "init"),
        ({"reinit_prob": 2.0}, "reinit_prob"),
        ({"buffer_size": 0, "init": "data"}, "buffer_size"),  # checked whatever the init
        ({"energy": "transformer"}, "energy"),
        ({"energy": 3}, "energy"),
        ({"image_shape": (1, 8)}, "image_shape must be"),
        ({"image_shape": (1, 4, 4)}, "needs 16"),
        ({"precision": "fp16"}, "precision"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"device": "tpu"}, "device"),
        ({"on_divergence": "ignore"}, "on_divergence"),
    ],
)
def test_bad_parameters_raise(params, match):
    X = np.random.RandomState(0).rand(30, 64)
    with pytest.raises((ValueError, TypeError), match=match):
        fast(**params).fit(X)


def test_parameters_changed_after_fit_are_validated_at_the_call(fitted_digits):
    gen = clone(fitted_digits)
    gen.__dict__.update({k: v for k, v in vars(fitted_digits).items() if k.endswith("_")})
    gen.set_params(temperature=0.0)
    with pytest.raises(ValueError, match="temperature"):
        gen.score_samples(np.zeros((2, 64)))
    with pytest.raises(ValueError, match="n_steps"):
        fitted_digits.sample(2, n_steps=2.5)
    with pytest.raises(ValueError, match="n_samples"):
        fitted_digits.sample(0)
    with pytest.raises(ValueError, match="conditional"):
        fitted_digits.sample(2, y=3)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        fast(device="cuda").fit(np.zeros((10, 2)))


def test_three_d_images_and_flat_model_on_4d_input_get_hints(fitted_digits):
    with pytest.raises(ValueError, match=r"4-D array \(n_samples, C, H, W\)"):
        fast().fit(np.zeros((10, 8, 8)))
    flat = fast().fit(np.random.RandomState(0).randn(20, 64))
    with pytest.raises(ValueError, match="flat features"):
        flat.score_samples(np.zeros((2, 1, 8, 8)))


def test_module_instance_not_trained_in_place():
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.SiLU(), torch.nn.Linear(8, 1))
    before = [p.detach().clone() for p in net.parameters()]
    X = np.random.RandomState(0).randn(64, 2)
    gen = EBMGenerator(energy=net, max_iter=5, n_steps=3, random_state=0).fit(X)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    # the copy keeps the user's initial weights (no re-initialisation of an instance)
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
    assert gen.n_iter_ == 6
    assert {"train_loss", "energy_data", "energy_samples", "step_size"} <= set(gen.net_.history[-1]["batches"][-1])


def test_warm_start_continues_and_applies_changed_parameters(digits):
    X = digits[0]
    gen = EBMGenerator(image_shape=(1, 8, 8), max_iter=3, n_steps=2, warm_start=True, random_state=0).fit(X)
    bank = gen.net_.chain_init_.buffer_.clone()
    gen.set_params(lr=0.002, n_steps=7, batch_size=16)
    gen.fit(X)
    assert gen.n_iter_ == 6
    assert gen.net_.optimizer_.param_groups[0]["lr"] == 0.002
    assert gen.net_.sampler_.n_steps == 7 and gen.net_.batch_size == 16
    assert not torch.equal(gen.net_.chain_init_.buffer_, bank)
    gen.set_params(buffer_size=50)
    with pytest.raises(ValueError, match="buffer_size"):
        gen.fit(X)
    cold = clone(gen).set_params(warm_start=False, buffer_size=10000).fit(X)
    assert cold.n_iter_ == 3


@pytest.mark.slow
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


def test_score_samples_is_negative_energy_over_temperature(digits):
    X = digits[0]
    gen = EBMGenerator(image_shape=(1, 8, 8), max_iter=3, n_steps=2, temperature=2.0, random_state=0).fit(X)
    Z = torch.as_tensor(gen._to_model(X[:8]))
    with torch.no_grad():
        energy = gen.net_.evaluation_module()(Z).numpy()  # the weight average (ema_decay)
    np.testing.assert_allclose(gen.score_samples(X[:8]), -energy / 2.0, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
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
    # the replay buffer holds chains of both classes, each started and kept per class
    labels = gen.net_.chain_init_.labels_[: int(gen.net_.chain_init_.n_filled_)]
    assert set(labels.tolist()) == {0, 1}
    with pytest.raises(ValueError, match="not seen"):
        gen.sample(2, y="up")
    with pytest.raises(ValueError, match="requires y"):
        clone(gen).fit(X)
    with pytest.raises(ValueError, match="continuous|Unknown label type"):
        clone(gen).fit(X, rng.randn(400))


def test_inpaint_keeps_observed_entries(fitted_digits, digits):
    X = digits[0][:4]
    mask = np.zeros_like(X, dtype=bool)
    mask[:, 32:] = True
    out = fitted_digits.inpaint(X, mask, n_steps=3, random_state=0)
    np.testing.assert_allclose(out[:, :32], X[:, :32], atol=1e-4)
    assert not np.allclose(out[:, 32:], X[:, 32:])
    with pytest.raises(ValueError, match="broadcast"):
        fitted_digits.inpaint(X, np.ones((4, 3), dtype=bool))


@pytest.mark.slow
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


@pytest.mark.slow
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


def test_divergence_recovers_then_raises_with_the_generator_hint():
    X = np.random.RandomState(0).randn(64, 2)
    params = dict(max_iter=200, lr=1e3, l2_reg=0.0, optimizer="sgd", n_steps=5, random_state=0)
    with pytest.raises(TrainingDivergedError, match="after 5 recoveries.*Lower lr or step_size"):
        with pytest.warns(Warning, match="rolled back"):
            EBMGenerator(**params).fit(X)
    with pytest.raises(TrainingDivergedError, match=r"diverged at update \d+: "):
        EBMGenerator(**params, on_divergence="raise").fit(X)


def test_recovery_rolls_back_and_halves_the_steps():
    from skorch.callbacks import Callback

    class Poison(Callback):
        """Makes the weights NaN before the 6th and the 8th update: two recoverable divergences."""

        def __init__(self, at=(6, 8)):
            self.at = at

        def initialize(self):
            self.left_ = list(self.at)
            return self

        def on_batch_begin(self, net, training=False, **kwargs):
            # n_updates() counts the updates made: 5 before the 6th
            if training and self.left_ and net.n_updates() + 1 == self.left_[0]:
                self.left_.pop(0)
                with torch.no_grad():
                    next(net.module_.parameters()).fill_(float("nan"))

    X = np.random.RandomState(0).randn(64, 2)
    gen = fast(max_iter=12, lr=0.01, step_size=0.2, callbacks=[("poison", Poison())])
    with pytest.warns(Warning, match="rolled back"):
        gen.fit(X)
    rows = [b for e in gen.net_.history for b in e["batches"]]
    assert [i for i, r in enumerate(rows) if r.get("recovered")] == [5, 7]
    # both recoveries count, though both rolled back to the same snapshot
    assert gen.net_.optimizer_.param_groups[0]["lr"] == pytest.approx(0.0025)
    assert gen.net_.sampler_.step_size == pytest.approx(0.05)
    assert np.all(np.isfinite(gen.sample(5, random_state=0)))


def test_verbose_progress_bar(capsys):
    X = np.random.RandomState(0).randn(64, 2)
    fast(verbose=1, max_iter=5).fit(X)
    err = capsys.readouterr().err
    assert "EBMGenerator" in err and "5/5" in err


def test_values_near_the_float64_limit_are_rescaled_robustly():
    rng = np.random.RandomState(0)
    X = rng.randn(100, 2) * 1e300
    gen = fast(max_iter=5).fit(X)
    assert np.all(np.isfinite(gen.rescaler_.scale_)) and gen.rescaler_.scale_.min() > 1e299
    out = gen.sample(50, n_steps=0, start="source", random_state=0)
    assert np.all(np.isfinite(out)) and 0.1 < (out / 1e300).std() < 10
    assert np.all(np.isfinite(gen.score_samples(X[:5])))
    with pytest.raises(ValueError, match="float32"):
        compose(gen).sample(2)


@pytest.mark.parametrize("params", [{"hidden_units": (-3,)}, {"no_such_option": 1}])
def test_energy_params_that_cannot_build_a_network_raise_value_error(params):
    X = np.random.RandomState(0).rand(40, 4)
    est = EBMGenerator(**{**FAST, "energy_params": params})
    with pytest.raises(ValueError, match="energy_params"):
        est.fit(X)
    assert not hasattr(est, "net_")
