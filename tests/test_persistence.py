"""Safe save/load round trips (no unpickling) and pickle/joblib for every estimator."""

import io
import pickle

import numpy as np
import pytest
import torch

import skebm
from skebm import EBMGenerator


def _fitted_generators():
    rng = np.random.RandomState(0)
    X = rng.randn(60, 4)
    y = np.array(["a", "b", "c"] * 20)
    yield "flat", EBMGenerator(max_iter=3, n_steps=2, buffer_size=50, random_state=0).fit(X), X
    yield "cond", EBMGenerator(conditional=True, max_iter=3, n_steps=2, random_state=0).fit(X, y), X
    X4 = rng.rand(20, 1, 8, 8).astype(np.float32)
    gen = EBMGenerator(init="persistent", max_iter=2, n_steps=2, buffer_size=30, random_state=0).fit(X4)
    yield "4d", gen, X4


@pytest.mark.parametrize("name, est, X", list(_fitted_generators()), ids=lambda v: v if isinstance(v, str) else "")
def test_safe_round_trip(name, est, X, tmp_path):
    path = tmp_path / "model.skebm"
    skebm.save(est, path)
    loaded = skebm.load(path)
    assert type(loaded) is type(est) and loaded.get_params() == est.get_params()
    np.testing.assert_allclose(loaded.score_samples(X), est.score_samples(X), rtol=1e-6)
    np.testing.assert_array_equal(loaded.sample(3, random_state=0), est.sample(3, random_state=0))
    assert loaded.n_iter_ == est.n_iter_ and len(loaded.net_.history) == len(est.net_.history)
    if est.conditional:
        np.testing.assert_array_equal(loaded.classes_, est.classes_)
        assert loaded.sample(2, y="b").shape == (2, 4)
    # the bank came back too
    bank = {k: v for k, v in vars(est.net_.chain_init_).items() if isinstance(v, torch.Tensor)}
    for key, value in bank.items():
        assert torch.equal(getattr(loaded.net_.chain_init_, key), value)


def test_loaded_model_warm_starts(tmp_path):
    X = np.random.RandomState(0).randn(40, 2)
    est = EBMGenerator(max_iter=2, n_steps=2, warm_start=True, random_state=0).fit(X)
    skebm.save(est, tmp_path / "m")
    loaded = skebm.load(tmp_path / "m").fit(X)
    assert loaded.n_iter_ == 4


def test_unfitted_round_trip_and_file_object():
    buf = io.BytesIO()
    skebm.save(EBMGenerator(lr=0.5), buf)
    buf.seek(0)
    loaded = skebm.load(buf)
    assert loaded.lr == 0.5 and not hasattr(loaded, "net_")


def test_load_never_unpickles_code(tmp_path):
    # a file with a forbidden global must be refused by torch's weights-only loader
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil"
    torch.save({"format": "skebm", "format_version": 1, "class": "EBMGenerator", "params": Evil()}, path)
    with pytest.raises(pickle.UnpicklingError):
        skebm.load(path)
    # and an object outside the allow-list is refused by skebm's own decoder
    torch.save(
        {"format": "skebm", "format_version": 1, "class": "EBMGenerator",
         "params": {"__object__": "os.system", "state": {"__dict__": {}}}},
        path,
    )
    with pytest.raises(ValueError, match="allow-list"):
        skebm.load(path)


def test_save_refuses_what_it_cannot_store(tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(2, 1))
    est = EBMGenerator(energy=net, max_iter=1, n_steps=1).fit(np.zeros((10, 2)))
    with pytest.raises(TypeError, match="pickle or joblib"):
        skebm.save(est, tmp_path / "x")
    with pytest.raises(TypeError, match="skebm estimator"):
        skebm.save(object(), tmp_path / "x")
    with pytest.raises(ValueError, match="not a file written by skebm"):
        torch.save({"a": 1}, tmp_path / "y")
        skebm.load(tmp_path / "y")


def test_callbacks_are_dropped_with_a_warning(tmp_path):
    from skorch.callbacks import EpochTimer

    est = EBMGenerator(max_iter=1, n_steps=1, callbacks=[("timer2", EpochTimer())]).fit(np.zeros((10, 2)))
    with pytest.warns(UserWarning, match="callbacks are not saved"):
        skebm.save(est, tmp_path / "m")
    assert skebm.load(tmp_path / "m").callbacks is None
