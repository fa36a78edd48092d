"""Hostile parameters and training outcomes (issue 19, sections 4 and 5): one test per defect class.

Every fit here is tiny (a few updates of a 16-unit MLP on 2-D data), so the file runs in seconds.
"""

import inspect
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from skebm import EBMDensity, EBMGenerator, EBMPurifier, NGEBMClassifier, PurifiedClassifier, compose
from skebm.density import ImportanceML, LongrunML, QuadratureML
from skebm.datasets import make_toy_2d
from skebm.engine import SampleMonitor, TrainingDivergedError
from skebm.utils.estimator_checks import InterruptAt

SMALL = dict(max_iter=3, batch_size=16, n_steps=2, buffer_size=64, energy_params={"hidden_units": (16,)},
             n_threads=1, random_state=0)


@pytest.fixture(scope="module")
def X():
    return make_toy_2d("moons", 200, random_state=0)


def small(**params):
    return EBMGenerator(**{**SMALL, **params})


def quiet_fit(est, X, y=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X) if y is None else est.fit(X, y)


def assert_unfitted(est):
    with pytest.raises(NotFittedError):
        check_is_fitted(est)


# ------------------------------------------------- 4. parameters checked where they are declared
@pytest.mark.parametrize("value", [10**6, 2**31, 1025])
def test_n_threads_is_bounded_by_its_constraint(X, value):
    est = small(n_threads=value)
    with pytest.raises(ValueError, match="n_threads"):
        est.fit(X)
    assert_unfitted(est)
    small(n_threads=1024)._validate_params()  # the bound itself is accepted


@pytest.mark.parametrize("device", ["meta", "mps", "xla", "fpga", torch.device("meta")])
def test_unavailable_devices_are_refused_before_fitting(X, device):
    if str(device) == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    est = small(device=device)
    begin = time.perf_counter()
    with pytest.raises(ValueError, match="device="):
        est.fit(X)
    assert time.perf_counter() - begin < 5  # refused up front, not after building the engine
    assert_unfitted(est)


class Shaped(torch.nn.Module):
    """An energy for 2-D data whose output is shaped by ``kind``."""

    def __init__(self, kind, n_in=2):
        super().__init__()
        self.kind = kind
        self.lin = torch.nn.Linear(n_in, 3)

    def forward(self, x):
        out = self.lin(x.flatten(1))
        return {
            "2n": lambda: out[:, :2].reshape(-1),
            "tuple": lambda: (out[:, 0], out[:, 1]),
            "numpy": lambda: out[:, 0].detach().numpy(),
            "scalar": lambda: out.sum(),
            "int": lambda: out[:, 0].round().long(),
            "detached": lambda: out[:, 0].detach(),
            "3-d": lambda: out[:, :, None],
            "n": lambda: out[:, 0],
            "n1": lambda: out[:, :1],
            "logits": lambda: out,
        }[self.kind]()


class Raises(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 1)

    def forward(self, x):
        raise RuntimeError("my module broke")


@pytest.mark.parametrize("module, match", [
    (Shaped("2n"), r"shape \(4,\)"),
    (Shaped("tuple"), "returned a tuple"),
    (Shaped("numpy"), "returned a ndarray"),
    (Shaped("scalar"), r"shape \(\)"),
    (Shaped("3-d"), r"shape \(2, 3, 1\)"),
    (Shaped("int"), "torch.int64"),
    (Shaped("detached"), "differentiably"),
    (Shaped("n", n_in=5), "failed"),
    (Shaped("n").double(), "failed"),
    (Raises(), "my module broke"),
])
def test_energy_output_is_checked_once_when_the_engine_is_built(X, module, match):
    est = small(energy=module)
    with pytest.raises(ValueError, match=f"energy module.*{match}"):
        est.fit(X)
    assert_unfitted(est)


@pytest.mark.parametrize("kind", ["n", "n1", "logits"])
def test_energy_outputs_of_the_convention_are_accepted(X, kind):
    est = quiet_fit(small(energy=Shaped(kind)), X)
    assert np.isfinite(est.sample(3, random_state=0)).all()


def test_conditional_energy_must_return_one_logit_per_class(X):
    y = np.arange(len(X)) % 3
    with pytest.raises(ValueError, match=r"\(2, 3\) logits"):
        small(energy=Shaped("n"), conditional=True).fit(X, y)
    quiet_fit(small(energy=Shaped("logits"), conditional=True), X, y)


@pytest.mark.parametrize("params", [
    {"step_size": 1e300}, {"step_size": 1e7}, {"noise_scale": 1e300}, {"temperature": 1e-300},
    {"temperature": 1e300},
])
def test_langevin_scales_are_bounded_by_their_constraints(X, params):
    est = small(**params)
    with pytest.raises(ValueError, match=next(iter(params))):
        est.fit(X)
    assert_unfitted(est)


def test_purifier_and_density_scales_are_bounded_too():
    with pytest.raises(ValueError, match="purify_step_size"):
        EBMPurifier(purify_step_size=1e300)._validate_params()
    # EBMDensity's scales are its training method's parameters, bounded there and checked by fit
    for method, name in [(LongrunML(tau=1e300), "tau"), (LongrunML(step_size=1e300), "step_size"),
                         (LongrunML(temperature=1e-300), "temperature"), (LongrunML(noise_scale=1e30), "noise_scale"),
                         (QuadratureML(data_noise=1e300), "data_noise"), (ImportanceML(step_size=1e7), "step_size")]:
        with pytest.raises(ValueError, match=name):
            method._validate_params()
    with pytest.raises(ValueError, match="lr"):
        EBMDensity(lr=1e300)._validate_params()


def test_density_grid_beyond_the_machine_is_refused_before_allocating(X):
    est = EBMDensity(method=QuadratureML(grid_resolution=10**6), max_iter=2, random_state=0)
    begin = time.perf_counter()
    with pytest.raises(ValueError, match="grid_resolution=.*GiB"):
        est.fit(X)
    assert time.perf_counter() - begin < 5
    assert_unfitted(est)


@pytest.mark.parametrize("params", [{"batch_size": 10**9}, {"buffer_size": 10**12}])
def test_sizes_beyond_the_machine_are_refused_before_allocating(X, params):
    est = small(**params)
    begin = time.perf_counter()
    with pytest.raises(ValueError, match=f"{next(iter(params))}=.*GiB"):
        est.fit(X)
    assert time.perf_counter() - begin < 5
    assert_unfitted(est)


def test_a_monitor_with_more_chains_than_the_machine_holds_is_refused_before_training(X):
    est = small(callbacks=[SampleMonitor(n_samples=10**12)])
    with pytest.raises(ValueError, match=r"SampleMonitor\(n_samples=.*GiB"):
        est.fit(X)
    assert_unfitted(est)


def test_sampling_more_rows_than_the_machine_holds_is_refused(X):
    est = quiet_fit(small(), X)
    with pytest.raises(ValueError, match="n_samples=.*GiB"):
        est.sample(10**12)
    purifier = quiet_fit(EBMPurifier(max_iter=2, n_steps=2, energy_params={"hidden_units": (8,)}, random_state=0), X)
    with pytest.raises(ValueError, match="n_replicates=.*GiB"):
        purifier.purify(X[:3], n_replicates=10**9)


# ------------------------------------------------------ 5. training outcomes that match the docs
@pytest.mark.parametrize("on_divergence", ["recover", "raise"])
@pytest.mark.parametrize("max_iter", [1, 2, 3, 5, 6, 12])
def test_every_update_diverging_raises_whatever_max_iter(X, max_iter, on_divergence):
    est = small(max_iter=max_iter, lr=1e6, optimizer="sgd", on_divergence=on_divergence)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(TrainingDivergedError):
            est.fit(X)
    assert_unfitted(est)


class BreaksAtStep(torch.optim.SGD):
    """SGD whose ``at``-th step writes NaN into the weights: a step that breaks the model."""

    at = 10

    def step(self, closure=None):
        out = super().step(closure)
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == self.at:
            with torch.no_grad():
                for group in self.param_groups:
                    for p in group["params"]:
                        p.fill_(float("nan"))
        return out


@pytest.mark.parametrize("at, max_iter", [(10, 12), (12, 12)])
def test_a_step_that_breaks_the_model_is_never_kept(X, at, max_iter):
    # at 10: the state right after the step lands on a snapshot boundary (every 10 updates), which must not become
    # the "last good state"; at 12 of 12: the last update's step, which no later update checks
    BreaksAtStep.at = at
    est = small(max_iter=max_iter, optimizer=BreaksAtStep, lr=1e-3)
    with pytest.warns(Warning, match="diverged"):
        est.fit(X)
    assert all(torch.isfinite(p).all() for p in est.net_.module_.parameters())
    assert np.isfinite(est.sample(4, random_state=0)).all()
    assert any(row.get("recovered") for epoch in est.net_.history for row in epoch["batches"])


def test_ctrl_c_in_a_first_fit_keeps_what_it_learned(X):
    est = small(max_iter=6, callbacks=[InterruptAt(2)])
    with pytest.warns(UserWarning, match="usable but not fully trained"):
        est.fit(X)
    assert est.interrupted_ and est.n_iter_ == 2
    assert np.isfinite(est.sample(3, random_state=0)).all()


def test_ctrl_c_in_a_refit_keeps_the_previous_model(X):
    est = quiet_fit(small(max_iter=6), X)
    net, reference = est.net_, est.sample(3, random_state=0)
    est.set_params(callbacks=[InterruptAt(2)])
    with pytest.warns(UserWarning, match="previous model is kept"):
        est.fit(X * 2.0)
    assert est.net_ is net and not est.interrupted_ and est.n_iter_ == 6
    np.testing.assert_array_equal(est.sample(3, random_state=0), reference)


def test_ctrl_c_in_a_warm_refit_keeps_what_it_learned_so_far(X):
    est = quiet_fit(small(max_iter=6, warm_start=True), X)
    est.set_params(callbacks=[InterruptAt(8)])
    with pytest.warns(UserWarning, match="usable but not fully trained"):
        est.fit(X)
    assert est.interrupted_ and est.n_iter_ == 8


def test_ctrl_c_in_a_refit_of_a_meta_estimator_keeps_the_previous_model(X):
    y = (X[:, 0] > 0).astype(int)
    purifier = EBMPurifier(max_iter=6, batch_size=16, n_steps=2, n_purify_steps=2, energy_params={"hidden_units": (8,)},
                           random_state=0)
    from sklearn.linear_model import LogisticRegression

    meta = quiet_fit(PurifiedClassifier(purifier, LogisticRegression(), n_replicates=2), X, y)
    before = meta.purifier_
    meta.set_params(purifier__callbacks=[InterruptAt(2)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        meta.fit(X, y)
    assert meta.purifier_ is before
    assert any("previous model is kept" in str(w.message) for w in caught)


def _old_or_new(est, X_new, n_calls=200):
    """Seeded samples from 8 threads during a refit: each must be the old model's or the new one's."""
    old = est.sample(3, random_state=0)
    new = quiet_fit(clone(est).set_params(random_state=1), X_new).sample(3, random_state=0)
    assert not np.allclose(old, new)

    def call(_):
        out = est.sample(3, random_state=0)
        return "old" if np.allclose(out, old) else "new" if np.allclose(out, new) else "mixture"

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(call, i) for i in range(n_calls)]
        quiet_fit(est.set_params(random_state=1), X_new)
        return [f.result() for f in futures]  # re-raises any failed call


def test_concurrent_samples_during_a_refit_see_one_model(X):
    results = _old_or_new(quiet_fit(small(max_iter=4), X), X * 3.0 + 5.0)
    assert len(results) == 200 and set(results) <= {"old", "new"}


class Gate(torch.nn.Module):
    """An MLP energy that, once ``hold`` is set, blocks its next forward pass until ``release`` is set."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.SiLU(), torch.nn.Linear(16, 1))
        self.hold = False

    def forward(self, x):
        if self.hold:
            self.hold = False
            Gate.entered.set()
            assert Gate.release.wait(30)
        return self.net(x)


def test_a_sample_call_overlapping_a_commit_reads_one_fitted_state(X):
    # a deterministic overlap: the call runs its chains on the old network, the refit commits, then the call
    # maps the chains back to the user's range; it must use the old rescaling, not the new one
    Gate.entered, Gate.release = threading.Event(), threading.Event()
    est = quiet_fit(small(energy=Gate(), max_iter=2), X)
    old = est.sample(3, random_state=0)
    est.net_.evaluation_module().hold = True  # the network sample() runs (the weight average by default)
    result = {}
    reader = threading.Thread(target=lambda: result.setdefault("out", est.sample(3, random_state=0)))
    reader.start()
    assert Gate.entered.wait(30)
    quiet_fit(est, X * 100.0 + 50.0)  # a new model with a very different rescaling
    Gate.release.set()
    reader.join(30)
    np.testing.assert_allclose(result["out"], old, rtol=1e-6)


@pytest.mark.parametrize("cls", [EBMGenerator, EBMPurifier, EBMDensity, NGEBMClassifier, PurifiedClassifier])
def test_every_public_method_that_reads_fitted_state_is_a_consistent_read(cls):
    # skebm's own public methods, but the writers (fit; set_params, of parameters) and class methods (from_preset:
    # no fitted state); scikit-learn's (score, fit_transform) call those
    methods = [name for name in dir(cls) if not name.startswith("_") and name not in ("fit", "set_params")
               and callable(getattr(cls, name)) and getattr(getattr(cls, name), "__module__", "").startswith("skebm")
               and not isinstance(inspect.getattr_static(cls, name), (classmethod, staticmethod))]
    assert methods
    missing = [name for name in methods if not getattr(getattr(cls, name), "consistent_read", False)]
    assert not missing, f"{cls.__name__}: {missing}"


@pytest.mark.parametrize("weights", [[1.0, np.nan], [1.0, np.inf], [1.0, True], [1.0, "2"]])
def test_compose_weights_must_be_finite_numbers(X, weights):
    gen = quiet_fit(small(), X)
    with pytest.raises(ValueError, match="weight"):
        compose(gen, gen, weights=weights)
    assert np.isfinite(compose(gen, gen, weights=[1.0, -0.5]).sample(3, random_state=0)).all()


def test_chains_that_diverge_while_sampling_raise_instead_of_returning_nan(X):
    gen = quiet_fit(small(), X)
    with pytest.raises(ValueError, match="diverged"):
        compose(gen, gen, weights=[1.0, 1e300]).sample(3, random_state=0)


def test_sample_monitor_before_any_fit_is_not_fitted(tmp_path):
    from skebm.plotting import save_sample_evolution

    with pytest.raises(NotFittedError, match="no snapshot"):
        save_sample_evolution(SampleMonitor(), tmp_path / "x.png")
    with pytest.warns(FutureWarning, match="deprecated"), pytest.raises(NotFittedError, match="no snapshot"):
        SampleMonitor().save_evolution(tmp_path / "x.png")


def test_data_at_the_float64_limit_fit_and_sample_finite_values(X):
    # (x - center) overflowed for values near +-1.8e308 with a centre of the other sign: NaN losses, a "divergence"
    X_big = np.sign(X) * np.finfo(np.float64).max
    est = quiet_fit(small(), X_big)
    assert np.isfinite(est.rescaler_.transform(X_big)).all()
    assert np.isfinite(est.sample(8, random_state=0)).all()


def test_density_sampling_and_bracket_beyond_the_machine_are_refused(X):
    from skebm import EBMDensity

    est = EBMDensity(max_iter=2, random_state=0).fit(X[:, :2])
    for call, what in ((lambda: est.sample(10**12), "n_samples"), (lambda: est.log_partition_bracket(n_chains=10**12),
                                                                    "n_chains")):
        begin = time.perf_counter()
        with pytest.raises(ValueError, match=f"{what}=.*GiB"):
            call()
        assert time.perf_counter() - begin < 5
    assert not hasattr(est, "log_partition_bracket_")
