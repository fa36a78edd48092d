"""Safe save/load (safetensors + JSON, no unpickling): round trips, and every kind of bad file refused.

Pickle round trips of every estimator are in test_common.py (skebm's contract).
"""

import io
import json
import os
import pickle
import struct

import numpy as np
import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from sklearn.datasets import load_digits

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
    np.testing.assert_allclose(loaded.sample(3, random_state=0), est.sample(3, random_state=0), rtol=1e-5, atol=1e-6)
    assert loaded.n_iter_ == est.n_iter_ and len(loaded.net_.history) == len(est.net_.history)
    if est.conditional:
        np.testing.assert_array_equal(loaded.classes_, est.classes_)
        assert loaded.sample(2, y="b").shape == (2, 4)
    # the bank and the generators came back too
    for name in ("chain_init", "rng"):
        saved = getattr(est.net_, name + "_").state_dict()
        for key, value in getattr(loaded.net_, name + "_").state_dict().items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, saved[key]), key
    assert torch.equal(loaded.net_.rng_.generator.get_state(), est.net_.rng_.generator.get_state())


def test_loaded_model_warm_starts_like_the_original(tmp_path):
    X = np.random.RandomState(0).randn(40, 2)
    est = EBMGenerator(max_iter=2, n_steps=2, warm_start=True, random_state=0).fit(X)
    skebm.save(est, tmp_path / "m")
    loaded = skebm.load(tmp_path / "m").fit(X)
    est.fit(X)
    assert loaded.n_iter_ == est.n_iter_ == 4
    np.testing.assert_allclose(loaded.score_samples(X), est.score_samples(X), rtol=1e-5)


def test_unfitted_round_trip_and_file_object():
    buf = io.BytesIO()
    skebm.save(EBMGenerator(lr=0.5), buf)
    buf.seek(0)
    loaded = skebm.load(buf)
    assert loaded.lr == 0.5 and not hasattr(loaded, "net_")


def test_save_refuses_what_it_cannot_store(tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(2, 1))
    est = EBMGenerator(energy=net, max_iter=1, n_steps=1).fit(np.zeros((10, 2)))
    with pytest.raises(TypeError, match="pickle or joblib"):
        skebm.save(est, tmp_path / "x")
    with pytest.raises(TypeError, match="skebm estimator"):
        skebm.save(object(), tmp_path / "x")


def test_callbacks_are_dropped_with_a_warning(tmp_path):
    from skorch.callbacks import EpochTimer

    est = EBMGenerator(max_iter=1, n_steps=1, callbacks=[("timer2", EpochTimer())]).fit(np.zeros((10, 2)))
    with pytest.warns(UserWarning, match="callbacks are not saved"):
        skebm.save(est, tmp_path / "m")
    assert skebm.load(tmp_path / "m").callbacks is None


# ------------------------------------------------------------------ tampered files
@pytest.fixture(scope="module")
def saved():
    est = EBMGenerator(max_iter=3, n_steps=2, buffer_size=50, random_state=0).fit(np.random.RandomState(0).randn(60, 3))
    buf = io.BytesIO()
    skebm.save(est, buf)
    return buf.getvalue()


def _parts(data):
    (n,) = struct.unpack("<Q", data[:8])
    state = json.loads(json.loads(data[8 : 8 + n])["__metadata__"]["skebm"])
    return state, st_load(data)


def _rewrite(data, edit_state=None, edit_tensors=None):
    """The file with its JSON state and/or tensors edited, written back as a valid safetensors file."""
    state, tensors = _parts(data)
    if edit_state:
        edit_state(state)
    if edit_tensors:
        edit_tensors(tensors)
    return io.BytesIO(st_save(tensors, metadata={"skebm": json.dumps(state)}))


def _attrs_add(name, value):
    def edit(state):
        state["attrs"]["__dict__"].append([name, value])

    return edit


def _set_param(name, value):
    def edit(state):
        for item in state["params"]["__dict__"]:
            if item[0] == name:
                item[1] = value

    return edit


def _poison_weights(tensors):
    key = next(k for k, v in tensors.items() if v.is_floating_point() and v.ndim == 2)
    tensors[key] = torch.full_like(tensors[key], float("nan"))


@pytest.mark.parametrize(
    "tamper, match",
    [
        (lambda d: _rewrite(d, _attrs_add("score_samples", "hijacked")), "not fitted attributes"),
        (lambda d: _rewrite(d, _attrs_add("__class__", "x")), "not fitted attributes"),
        (lambda d: _rewrite(d, edit_tensors=_poison_weights), "non-finite"),
        (lambda d: _rewrite(d, _set_param("max_iter", -5)), "max_iter"),
        (lambda d: _rewrite(d, _set_param("lr", {"__float__": "inf"})), "lr"),
        (lambda d: _rewrite(d, lambda s: s["params"]["__dict__"].append(["new_option", 1])), "does not know"),
        (lambda d: _rewrite(d, lambda s: s.update(format_version=99, skebm_version="9.0")), "newer skebm"),
        (lambda d: _rewrite(d, lambda s: s.update({"class": "Popen"})), "unknown estimator class"),
        (lambda d: _rewrite(d, lambda s: s.pop("attrs")), "not a valid skebm file"),
        (lambda d: _rewrite(d, lambda s: s.update(attrs={"__object__": "os.system", "state": {}})), "allow-list"),
        (lambda d: _rewrite(d, _set_param("energy", {"__class__": "os.system"})), "allow-list"),
        (lambda d: _rewrite(d, lambda s: s["engine"].update(modules={"__dict__": []})), "do not match"),
        (lambda d: _rewrite(d, lambda s: s["engine"].update(optimizer=5)), "not a valid skebm file"),
        (lambda d: _rewrite(d, lambda s: s["engine"]["sampler"]["__dict__"][0].__setitem__(1, -1)), "n_steps"),
        (lambda d: io.BytesIO(d[: len(d) // 2]), "not a valid skebm file|not a file written by skebm"),
        (lambda d: io.BytesIO(b"\x00" * 3), "not a file written by skebm"),
        (lambda d: io.BytesIO(b"not a model at all, just text"), "not a file written by skebm"),
    ],
)
def test_tampered_or_malformed_files_raise_one_clear_error(saved, tamper, match):
    with pytest.raises(ValueError, match=match):
        skebm.load(tamper(saved))


def test_pickles_and_torch_files_are_refused_without_running_code(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    for name, write in (("pickle", lambda f: pickle.dump(Evil(), f)), ("torch", lambda f: torch.save(Evil(), f))):
        path = tmp_path / name
        with open(path, "wb") as f:
            write(f)
        if marker.exists():
            os.remove(marker)  # writing the payload ran it here, not skebm
        with pytest.raises(ValueError, match="never unpickles|not a file written by skebm") as err:
            skebm.load(path)
        assert "weights_only" not in str(err.value)
        assert not marker.exists()
    with pytest.raises(FileNotFoundError):
        skebm.load(tmp_path / "missing")


@pytest.mark.parametrize("energy_params", [{"spectral_norm": True, "channels": (4, 8, 8)}, {"channels": (4, 8, 8)}])
def test_networks_with_spectral_norm_pickle_and_copy(energy_params):
    """torch refuses to pickle parametrized layers; the IGEBM preset's spectral norm must not make a fit unpicklable."""
    import copy

    X = load_digits().data[:120]
    gen = EBMGenerator(image_shape=(1, 8, 8), max_iter=3, batch_size=16, n_steps=2, buffer_size=32,
                       energy_params=energy_params, random_state=0).fit(X)
    again = pickle.loads(pickle.dumps(gen))
    np.testing.assert_array_equal(again.sample(3, random_state=1), gen.sample(3, random_state=1))
    np.testing.assert_allclose(again.score_samples(X[:4]), gen.score_samples(X[:4]), rtol=1e-6)
    copied = copy.deepcopy(gen.net_.module_)
    x = torch.zeros(2, 1, 8, 8)
    torch.testing.assert_close(copied(x), gen.net_.module_(x))
