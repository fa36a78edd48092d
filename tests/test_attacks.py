"""skebm.attacks: BPDA, full-gradient and APGD attacks on toy purifiers, and the scoring."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from torch import nn

from skebm.attacks import (
    PurifiedModule,
    apgd_attack,
    as_torch_classifier,
    evaluate_robustness,
    full_gradient_attack,
    pgd_attack,
)
from skebm.attacks._adapter import _as_differentiable_purifier, _resolve_defence
from skebm.mcmc import RowNoise
from skebm.mcmc._unrolled import unrolled_langevin


# --------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    return X[:1000], y[:1000], X[1000:1200], y[1000:1200]


@pytest.fixture(scope="module")
def linear_net(digits):
    """Logistic regression on digits in [0, 1], as a torch module (undefended, easy to break)."""
    X, y, _, _ = digits
    clf = LogisticRegression(max_iter=300).fit(X, y)
    net = nn.Linear(64, 10)
    with torch.no_grad():
        net.weight.copy_(torch.as_tensor(clf.coef_, dtype=torch.float32))
        net.bias.copy_(torch.as_tensor(clf.intercept_, dtype=torch.float32))
    return net.eval()


def identity(x, noise=None):
    return x


def quantise(x):
    """A gradient-masking 'defence': rounding has a zero gradient almost everywhere."""
    return torch.round(x * 4) / 4


def langevin_purifier(center, n_steps=4, step_size=0.3, noise_scale=0.02):
    """A stochastic, differentiable toy purifier: Langevin steps on a quadratic energy around ``center``."""
    center = torch.as_tensor(center, dtype=torch.float32)

    def purify(x, noise=None):
        energy = lambda z: 0.5 * ((z - center) ** 2).sum(1)  # noqa: E731
        return unrolled_langevin(energy, x, n_steps, step_size, noise_scale=noise_scale, noise=noise)

    return purify


# The sign-flip toy: 3 Langevin steps of size sqrt(3) on |x - c|^2 / 2 map x to c - (x - c) / 8 (plus a little
# noise), so BPDA's identity backward pass points the wrong way while the unrolled chain knows better.
CENTER = torch.tensor([0.5, 0.5])
W = torch.tensor([1.0, 1.0]) / 2**0.5


def flip_purifier(x, noise=None):
    energy = lambda z: 0.5 * ((z - CENTER) ** 2).sum(1)  # noqa: E731
    return unrolled_langevin(energy, x, 3, 3**0.5, noise_scale=1e-3, noise=noise)


class FlipClassifier(nn.Module):
    """Reads purified inputs: class 1 iff w.(z - c) < 0, i.e. iff w.(x - c) > 0 for the input x."""

    def forward(self, z):
        s = 8.0 * ((z - CENTER) @ W)
        return torch.stack([s, -s], dim=1)


@pytest.fixture(scope="module")
def flip_data():
    rng = np.random.RandomState(0)
    X = rng.rand(400, 2).astype(np.float32)
    margin = (X - 0.5) @ W.numpy()
    keep = (np.abs(margin) > 0.05) & (np.abs(margin) < 0.15)
    X = X[keep][:40]
    return X, (((X - 0.5) @ W.numpy()) > 0).astype(int)


# ------------------------------------------------------ attack semantics
def test_full_gradient_on_the_identity_is_plain_pgd(linear_net, digits):
    _, _, X_test, y_test = digits
    X, y = X_test[:80], y_test[:80]
    kw = dict(eps=0.05, pgd_steps=6, pgd_step_size=0.015, bounds=(0, 1), random_state=3, return_success=True)
    ref_adv, ref_broken = pgd_attack(linear_net, X, y, **kw)
    assert 0 < ref_broken.mean() < 1
    for settings in (
        dict(n_replicates=1, eot_samples=1, noise_mode="fresh"),  # the EOT draws are the verdict
        dict(n_replicates=2, eot_samples=3, noise_mode="reparameterised"),  # separate verdicts, fixed draws
    ):
        adv, broken = full_gradient_attack(linear_net, X, y, purifier=identity, **settings, **kw)
        np.testing.assert_array_equal(broken, ref_broken)
        np.testing.assert_allclose(adv, ref_adv, atol=1e-6)
    # no purifier at all: plain PGD too
    adv, broken = full_gradient_attack(linear_net, X, y, **kw)
    np.testing.assert_array_equal(broken, ref_broken)


def test_bpda_breaks_a_gradient_masking_defence_the_plain_gradient_cannot(linear_net, digits):
    _, _, X_test, y_test = digits
    X, y = X_test[:100], y_test[:100]
    with torch.no_grad():
        natural = (linear_net(quantise(torch.as_tensor(X))).argmax(1).numpy() == y).mean()
    kw = dict(eps=0.2, pgd_steps=10, bounds=(0, 1), random_state=0, return_success=True)
    _, broken_bpda = pgd_attack(linear_net, X, y, purifier=quantise, **kw)
    _, broken_full = full_gradient_attack(linear_net, X, y, purifier=quantise, **kw)
    assert natural > 0.85
    # the gradient through the quantiser is zero: differentiating it only finds the random start's breaks
    assert 1 - broken_full.mean() > natural - 0.25
    # BPDA treats the quantiser as the identity backwards, and breaks it
    assert 1 - broken_bpda.mean() < 0.1
    table = evaluate_robustness(
        linear_net, X[:40], y[:40], epsilons=[0.2], purifier=quantise, attacks=("bpda", "full_gradient"),
        pgd_steps=10, n_evaluations=2, bounds=(0, 1), random_state=0,
    )
    assert table.loc[0.2, "min over attacks"] <= table.loc[0.2, "bpda"] < table.loc[0.2, "full_gradient"]


@pytest.mark.parametrize("noise_mode", ["fresh", "reparameterised"])
def test_the_unrolled_chain_breaks_a_purifier_bpda_cannot(flip_data, noise_mode):
    X, y = flip_data
    net = FlipClassifier()
    kw = dict(eps=0.2, pgd_steps=10, random_start=False, bounds=(0, 1), random_state=0, return_success=True)
    _, broken_clean = pgd_attack(net, X, y, eps=0.0, purifier=flip_purifier, bounds=(0, 1), return_success=True)
    assert not broken_clean.any()  # the defended classifier is right on every clean input
    _, broken_bpda = pgd_attack(net, X, y, purifier=flip_purifier, **kw)
    _, broken_full = full_gradient_attack(net, X, y, purifier=flip_purifier, eot_samples=2, noise_mode=noise_mode, **kw)
    # BPDA's gradient points away from the boundary: it never gets there
    assert broken_bpda.mean() < 0.1
    # back-propagating through the three Langevin steps finds the right direction
    assert broken_full.mean() > 0.9


def test_apgd_runs_through_the_wrapper(linear_net, digits):
    _, _, X_test, y_test = digits
    X, y = X_test[:60], y_test[:60]
    X_adv, broken = apgd_attack(linear_net, X, y, eps=0.3, pgd_steps=10, bounds=(0, 1), random_state=0,
                                return_success=True)
    with torch.no_grad():
        acc = (linear_net(torch.as_tensor(X_adv)).argmax(1).numpy() == y).mean()
    assert 1 - broken.mean() < 0.05 and acc < 0.05
    assert np.abs(X_adv - X).max() <= 0.3 + 1e-5 and X_adv.min() >= 0 and X_adv.max() <= 1
    # the same through a stochastic purifier, full gradient (EOT) and BPDA, verdicts by 2 replicates
    purify = langevin_purifier(X.mean(0), step_size=0.2, noise_scale=0.01)
    for gradient in ("full", "bpda"):
        _, broken = apgd_attack(linear_net, X[:30], y[:30], eps=0.3, pgd_steps=10, purifier=purify, gradient=gradient,
                                eot_samples=2, n_replicates=2, bounds=(0, 1), random_state=0, return_success=True)
        assert broken.mean() > 0.9
    # APGD's own labels: logit columns, whatever the classifier's classes
    module = PurifiedModule(linear_net, purify, bounds=(0, 1), input_shape=(64,))
    u = module.to_unit(torch.as_tensor(X[:3]))
    assert u.shape == (3, 1, 1, 64) and float(u.min()) >= 0 and float(u.max()) <= 1
    torch.testing.assert_close(module.from_unit(u), torch.as_tensor(X[:3]))
    assert module(u).shape == (3, 10)


def test_purified_module_maps_the_data_range_and_picks_the_backward_pass(flip_data):
    X, _ = flip_data
    x = torch.as_tensor(X[:5]) * 4 - 2  # data in [-2, 2]
    purify = lambda z, noise=None: flip_purifier((z + 2) / 4, noise) * 4 - 2  # noqa: E731
    full = PurifiedModule(nn.Identity(), purify, bounds=(-2, 2), input_shape=(2,), gradient="full")
    bpda = PurifiedModule(nn.Identity(), purify, bounds=(-2, 2), input_shape=(2,), gradient="bpda")
    u = full.to_unit(x)
    assert float(u.min()) >= 0 and float(u.max()) <= 1
    u.requires_grad_()
    (g_full,) = torch.autograd.grad(full(u).sum(), u)
    (g_bpda,) = torch.autograd.grad(bpda(u).sum(), u)
    # the flip purifier contracts by -1/8: the true gradient is -1/8 of the straight-through one
    torch.testing.assert_close(g_full, -g_bpda / 8, atol=1e-4, rtol=1e-3)


# ------------------------------------------------------------- scoring
def _stochastic_toy(digits):
    X, y, X_test, y_test = digits
    return langevin_purifier(X.mean(0), n_steps=3, step_size=0.2, noise_scale=0.05), X_test[:40], y_test[:40]


def test_min_over_attacks_never_exceeds_any_attack(linear_net, digits, flip_data):
    purify, X, y = _stochastic_toy(digits)
    table = evaluate_robustness(
        linear_net, X, y, epsilons=[0.03, 0.1], purifier=purify, n_replicates=2, pgd_steps=5, n_evaluations=3,
        bounds=(0, 1), random_state=0,
    )
    attacks = ["bpda", "full_gradient", "apgd"]
    assert list(table.columns) == ["undefended", *attacks, "min over attacks", "N-eval"]
    assert list(table.index) == [0.0, 0.03, 0.1] and table.index.name == "epsilon"
    assert ((table >= 0) & (table <= 1)).all().all()
    for name in attacks:
        assert (table["min over attacks"] <= table[name] + 1e-12).all()
    assert table.loc[0.1, "min over attacks"] < table.loc[0.0, "min over attacks"]
    assert table.attrs["n_replicates"] == 2 and table.attrs["eot_samples"] == 2 and table.attrs["pgd_steps"] == 5
    assert table.attrs["n_restarts"] == 1 and table.attrs["n_evaluations"] == 3 and "BPDA" in table.attrs["attack"]
    assert table.attrs["apgd_gradient"] == "full"
    # the sign-flip toy: BPDA alone would call it robust, the minimum does not
    Xf, yf = flip_data
    flip = evaluate_robustness(
        FlipClassifier(), Xf, yf, epsilons=[0.2], purifier=flip_purifier, attacks=["bpda", "full_gradient"],
        pgd_steps=10, n_evaluations=0, bounds=(0, 1), random_state=0,
    )
    assert list(flip.columns) == ["undefended", "bpda", "full_gradient", "min over attacks"]
    assert flip.loc[0.2, "bpda"] > 0.5 and flip.loc[0.2, "min over attacks"] < 0.1


def test_more_steps_never_raise_robust_accuracy(linear_net, digits):
    purify, X, y = _stochastic_toy(digits)
    kw = dict(eps=0.04, pgd_step_size=0.01, purifier=purify, bounds=(0, 1), random_state=1, return_success=True)
    runs = {
        "bpda": lambda n: pgd_attack(linear_net, X, y, pgd_steps=n, n_replicates=2, **kw)[1],
        "fresh": lambda n: full_gradient_attack(linear_net, X, y, pgd_steps=n, n_replicates=2, **kw)[1],
        "reparameterised": lambda n: full_gradient_attack(
            linear_net, X, y, pgd_steps=n, n_replicates=2, eot_samples=3, noise_mode="reparameterised", **kw
        )[1],
    }
    for name, run in runs.items():
        previous = np.zeros(len(X), dtype=bool)
        for n in (0, 2, 5):
            broken = run(n)
            # broken once, broken for good: a longer run repeats the shorter one's checks, then adds more
            assert np.all(broken >= previous), name
            previous = broken
        assert previous.mean() > 0, name


def test_bpda_checks_are_the_defences_own_verdict(linear_net, digits):
    # with fewer EOT copies than replicates, every check is the defence's verdict on n_replicates fresh draws,
    # not a candidate filtered by the attacker's copies: the clean check equals one defended prediction
    from skebm.attacks._utils import _defended_wrong, _randomness

    _, _, X_test, y_test = digits
    X, y = X_test[:60], y_test[:60]
    purify = langevin_purifier(X.mean(0), n_steps=2, step_size=0.9, noise_scale=0.4)
    seed = 123
    _, broken = pgd_attack(linear_net, X, y, eps=0.0, purifier=purify, n_replicates=3, eot_samples=1,
                           bounds=(0, 1), random_state=np.random.RandomState(seed), return_success=True)
    view = as_torch_classifier(linear_net)
    # the attack's own seeded noise: the same draws as its first (clean) check
    defence = _resolve_defence(purify, _randomness(np.random.RandomState(seed))[1])
    wrong = _defended_wrong(view, defence.sample, torch.as_tensor(X), torch.as_tensor(y), 3).numpy()
    np.testing.assert_array_equal(broken, wrong)
    assert 0 < wrong.mean() < 1  # a noisy defence: the test would be vacuous otherwise
    # and an attack with eot_replicates < n_replicates still breaks the weak linear model
    _, broken = pgd_attack(linear_net, X, y, eps=0.2, pgd_steps=5, purifier=purify, n_replicates=3,
                           eot_samples=2, bounds=(0, 1), random_state=0, return_success=True)
    assert broken.mean() > 0.9


def test_evaluate_robustness_reports_the_time_of_each_column(linear_net, digits):
    purify, X, y = _stochastic_toy(digits)
    table = evaluate_robustness(linear_net, X[:10], y[:10], epsilons=[0.1], purifier=purify,
                                attacks=("bpda", "full_gradient"), pgd_steps=2, n_evaluations=2, bounds=(0, 1),
                                random_state=0)
    seconds = table.attrs["seconds"]
    assert set(seconds) == {"undefended", "bpda", "full_gradient", "N-eval"}
    assert all(value >= 0 for value in seconds.values())


def test_huge_eps_goes_to_chance(linear_net, digits):
    purify, X, y = _stochastic_toy(digits)
    table = evaluate_robustness(
        linear_net, X[:20], y[:20], epsilons=[1.0], purifier=purify, n_replicates=2, pgd_steps=5, n_evaluations=2,
        bounds=(0, 1), random_state=0,
    )
    assert table.loc[1.0, "undefended"] <= 0.1
    assert table.loc[1.0, "min over attacks"] <= 0.1 + 1e-12  # chance: 10 classes


# ---------------------------------------------------- adapters, errors
class ContractPurifier:
    """A stand-in for EBMPurifier's purify_tensor contract: Langevin in a rescaled space, mapped back."""

    def __init__(self):
        self.calls = []

    def purify_tensor(self, X, *, n_steps=None, noise=None, generator=None, differentiable=False):
        self.calls.append({"noise": noise, "differentiable": differentiable})
        z = 2 * X - 1
        energy = lambda v: 0.5 * (v**2).sum(1)  # noqa: E731
        with torch.set_grad_enabled(differentiable and torch.is_grad_enabled()):
            out = unrolled_langevin(energy, z, 3, 0.3, noise_scale=0.05, noise=noise, generator=generator)
        out = (out + 1) / 2
        return out if differentiable else out.detach()


def test_the_purify_tensor_contract(linear_net, digits):
    _, _, X_test, y_test = digits
    purifier = ContractPurifier()
    differentiable = _as_differentiable_purifier(FrozenEstimator(purifier))
    x = torch.as_tensor(X_test[:4]).requires_grad_()
    keys = torch.arange(4)
    a = differentiable(x, RowNoise(keys))
    assert purifier.calls[-1]["differentiable"] is True and isinstance(purifier.calls[-1]["noise"], RowNoise)
    (g,) = torch.autograd.grad(a.sum(), x)
    torch.testing.assert_close(g, torch.full_like(g, (1 - 0.3**2 / 2) ** 3))
    torch.testing.assert_close(differentiable(x, RowNoise(keys)), a)  # reparameterised: same draws again
    defence = _resolve_defence(purifier)
    assert not defence.sample(x).requires_grad and purifier.calls[-1]["differentiable"] is False
    _, broken = full_gradient_attack(linear_net, X_test[:20], y_test[:20], eps=0.1, pgd_steps=2, purifier=purifier,
                                     noise_mode="reparameterised", eot_samples=2, bounds=(0, 1), return_success=True)
    assert broken.shape == (20,)

    class OldPurifier:  # today's purify_tensor: no differentiable path
        def purify_tensor(self, X, *, n_steps=None):
            return X.detach()

    assert _as_differentiable_purifier(OldPurifier()) is None
    with pytest.raises(TypeError, match="differentiable"):
        full_gradient_attack(linear_net, X_test[:5], y_test[:5], eps=0.1, purifier=OldPurifier())
    with pytest.raises(TypeError, match="differentiable"):
        evaluate_robustness(linear_net, X_test[:5], y_test[:5], epsilons=[0.1], purifier=OldPurifier())
    # BPDA and APGD (with BPDA) still run on it
    pgd_attack(linear_net, X_test[:5], y_test[:5], eps=0.1, pgd_steps=1, purifier=OldPurifier())
    apgd_attack(linear_net, X_test[:5], y_test[:5], eps=0.1, pgd_steps=2, purifier=OldPurifier())


def test_frozen_estimators_are_unwrapped(linear_net, digits):
    view = as_torch_classifier(FrozenEstimator(linear_net))
    x = torch.as_tensor(digits[2][:3])
    torch.testing.assert_close(view.logits(x), linear_net(x))


def test_ebm_purifier_integration(linear_net, digits):
    from skebm import EBMPurifier

    X, _, X_test, y_test = digits
    purifier = EBMPurifier(energy="mlp", energy_params={"hidden_units": (16,)}, max_iter=3, batch_size=16,
                           n_steps=3, n_purify_steps=4, random_state=0).fit(X[:200])
    x = torch.as_tensor(X_test[:3]).requires_grad_()
    out = purifier.purify_tensor(x, noise=RowNoise(torch.arange(3)), differentiable=True)
    (g,) = torch.autograd.grad(out.sum(), x)
    assert out.shape == x.shape and bool(torch.isfinite(g).all()) and float(g.abs().sum()) > 0
    _, broken = full_gradient_attack(linear_net, X_test[:10], y_test[:10], eps=0.1, pgd_steps=2, purifier=purifier,
                                     noise_mode="reparameterised", eot_samples=2, bounds=(0, 1), return_success=True)
    assert broken.shape == (10,)


def test_parameter_errors(linear_net, digits):
    _, _, X_test, y_test = digits
    X, y = X_test[:5], y_test[:5]
    with pytest.raises(ValueError, match="noise"):
        full_gradient_attack(linear_net, X, y, eps=0.1, purifier=identity, noise_mode="known")
    with pytest.raises(ValueError, match="reparameterised"):
        full_gradient_attack(linear_net, X, y, eps=0.1, purifier=quantise, noise_mode="reparameterised")
    with pytest.raises(TypeError, match="gradient"):
        full_gradient_attack(linear_net, X, y, eps=0.1, purifier=lambda x: x.detach())
    with pytest.raises(ValueError, match="eps"):
        full_gradient_attack(linear_net, X, y, eps=-1.0, purifier=identity)
    with pytest.raises(ValueError, match="loss"):
        apgd_attack(linear_net, X, y, eps=0.1, loss="l1")
    with pytest.raises(ValueError, match="attacks"):
        evaluate_robustness(linear_net, X, y, epsilons=[0.1], purifier=identity, attacks=["bpda", "cw"])
    with pytest.raises(ValueError, match="attacks"):
        evaluate_robustness(linear_net, X, y, epsilons=[0.1], purifier=identity, attacks=[])
    with pytest.raises(ValueError, match="epsilons"):
        evaluate_robustness(linear_net, X, y, epsilons=[0.0])
    with pytest.raises(ValueError, match="samples"):
        apgd_attack(linear_net, X, y[:3], eps=0.1)
    with pytest.raises(TypeError, match="purifier"):
        full_gradient_attack(linear_net, X, y, eps=0.1, purifier="yes")


@pytest.mark.parametrize("attack", ["bpda", "full_gradient"])
def test_seeded_attacks_neither_use_nor_change_the_global_generator(linear_net, digits, attack):
    # the random start and the purification noise come from the attack's own generators
    purify, X, y = _stochastic_toy(digits)
    run = pgd_attack if attack == "bpda" else full_gradient_attack
    kw = dict(eps=0.1, pgd_steps=3, purifier=purify, n_replicates=2, bounds=(0, 1), random_state=4)
    torch.manual_seed(1)
    state = torch.get_rng_state()
    first = run(linear_net, X, y, **kw)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(2)  # another global state: the same attack
    np.testing.assert_array_equal(run(linear_net, X, y, **kw), first)


@pytest.mark.parametrize(
    "attack, old, new",
    [
        ("pgd", dict(n_steps=2, step_size=0.02, eot_replicates=1), dict(pgd_steps=2, pgd_step_size=0.02, eot_samples=1)),
        ("full_gradient", dict(n_steps=2, noise="reparameterised"), dict(pgd_steps=2, noise_mode="reparameterised")),
    ],
)
def test_renamed_attack_keywords_still_work_with_a_future_warning(linear_net, digits, attack, old, new):
    # the glossary's names: PGD steps are pgd_steps, the EOT count eot_samples, the noise mode noise_mode
    purify, X, y = _stochastic_toy(digits)
    run = pgd_attack if attack == "pgd" else full_gradient_attack
    kw = dict(eps=0.1, purifier=purify, bounds=(0, 1), random_state=0)
    with pytest.warns(FutureWarning, match="renamed"):
        got = run(linear_net, X[:10], y[:10], **old, **kw)
    np.testing.assert_array_equal(got, run(linear_net, X[:10], y[:10], **new, **kw))
