"""Hostile files for ``skebm.load`` and hostile folders for ``TrainingCheckpoint`` (issue 19, sections 2 and 3).

One test per class of defect: every malformed file ends in one ``ValueError`` naming it, in bounded time
and memory, with nothing built from an unchecked value; a checkpoint folder is resumed only by the fit
it belongs to. Round trips and the first tampering tests are in test_persistence.py.
"""

import io
import json
import os
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

import skebm
from skebm import EBMGenerator, EBMPurifier
from skebm.density import QuadratureML
from skebm.engine import TrainingCheckpoint
from skebm.utils._tampering import entry as _get
from skebm.utils._tampering import raw_file, rewrite_file, split_file, tensor_key
from skebm.utils._tampering import set_entry as _set

X = np.random.RandomState(0).randn(60, 3)


@pytest.fixture(scope="module")
def saved():
    est = EBMGenerator(max_iter=2, n_steps=2, buffer_size=50, random_state=0).fit(X)
    buf = io.BytesIO()
    skebm.save(est, buf)
    return buf.getvalue()


def _rewrite(data, edit_state=None, edit_tensors=None):
    return io.BytesIO(rewrite_file(data, edit_state, edit_tensors))


def _raw(header, body=b""):
    return io.BytesIO(raw_file(header, body))


def _refused(file, match="not a valid skebm file|not a file written by skebm"):
    with pytest.raises(ValueError, match=match) as info:
        skebm.load(file)
    return str(info.value)


# ------------------------------------------------------------ 2. fitted values checked before anything is built
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_rescaler_centre_is_refused(saved, value):
    def poison(state, tensors):
        key = tensor_key(state, "rescaler_", "center_")
        tensors[key] = torch.full_like(tensors[key], value)

    _refused(_rewrite(saved, edit_tensors=poison), "rescaler_.center_")


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda s, t: t.__setitem__(tensor_key(s, "rescaler_", "scale_"), torch.zeros(3, dtype=torch.float64)),
         "scale_ must be positive"),
        (lambda s, t: t.__setitem__(tensor_key(s, "rescaler_", "center_"), torch.zeros(5, dtype=torch.float64)),
         r"center_ must be a float64 array of shape \(3,\)"),
        (lambda s, t: t.__setitem__(tensor_key(s, "rescaler_", "center_"), torch.zeros(3, dtype=torch.int64)),
         "center_ must be a float64"),
        (lambda s, t: t.__setitem__(tensor_key(s, "rescaler_", "center_"), torch.zeros(3, dtype=torch.bfloat16)),
         "plain numeric tensor"),
        (lambda s, t: _set(s["attrs"], "n_features_in_", 7), "float64 array of shape"),
        (lambda s, t: _set(s["attrs"], "n_features_in_", True), "n_features_in_"),
        (lambda s, t: _set(s["attrs"], "image_shape_", {"__tuple__": [2, 2, 2]}), "image_shape_"),
        (lambda s, t: _set(s["attrs"], "n_iter_", -1), "n_iter_"),
        (lambda s, t: _set(s["attrs"], "_n_outputs_", 4), "_n_outputs_"),
        (lambda s, t: _get(s["attrs"], "rescaler_")["state"]["__dict__"].append(["__class__", 1]), "rescaler_ has"),
        (lambda s, t: _set(_get(s["attrs"], "rescaler_")["state"], "kind", "evil"), "rescaler_ has kind"),
        (lambda s, t: _set(s["attrs"], "_fit_params_", {"__dict__": [["not_a_param", 1]]}), "_fit_params_"),
        (lambda s, t: s["attrs"]["__dict__"].remove(["interrupted_", False]), "missing"),
    ],
    ids=["zero-scale", "centre-shape", "centre-int", "centre-bf16", "n-features", "bool-n-features", "image-shape",
         "n-iter", "n-outputs", "rescaler-extra", "rescaler-kind", "fit-params", "missing-attr"],
)
def test_every_fitted_value_is_checked(saved, edit, match):
    _refused(_rewrite(saved, edit_tensors=edit), match)


@pytest.mark.parametrize(
    "layout",
    [
        {"__tuple__": ["5d", {"__dtype__": "<f8"}]},
        {"__tuple__": ["4d", {"__dtype__": "<f8"}]},  # images, but image_shape_ is None
        {"__tuple__": ["frame", {"__dtype__": "<f8"}]},  # a DataFrame, but no feature names
        {"__tuple__": ["2d", {"__dtype__": "|O"}]},
        {"__tuple__": ["2d", {"__dtype__": "V100000000000"}]},
        ["2d", {"__dtype__": "<f8"}],
    ],
)
def test_tampered_layout_is_refused_at_load_not_at_use(saved, layout):
    _refused(_rewrite(saved, lambda s: _set(s["attrs"], "_layout_", layout)), "_layout_|dtype")


# ------------------------------------------------------------ 2. sampler settings and proposal: exactly the sampler's
@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda d: d.append(["__class__", {"__class__": "torch.optim.sgd.SGD"}]), "sampler settings|allow-list"),
        (lambda d: d.append(["__class__", "x"]), "sampler settings"),
        (lambda d: d.append(["proposal", "base"]), "sampler settings"),
        (lambda d: d.append(["acceptance_rate_", 1.0]), "sampler settings"),
        (lambda d: d.pop(), "sampler settings"),
        (lambda d: _set({"__dict__": d}, "step_size", {"__float__": "nan"}), "step_size"),
        (lambda d: _set({"__dict__": d}, "precision", "fp8"), "precision"),
        (lambda d: _set({"__dict__": d}, "clamp", [1.0, -1.0]), "clamp"),
        (lambda d: _set({"__dict__": d}, "metropolis", "yes"), "metropolis|precision"),
        (lambda d: _set({"__dict__": d}, "n_steps", 10**12), r"\['n_steps'\] differ from those of the parameters"),
    ],
    ids=["class-swap", "class-key", "proposal", "fitted-attr", "missing", "nan-step", "precision", "clamp",
         "metropolis", "n-steps"],
)
def test_sampler_settings_are_an_exact_list(saved, edit, match):
    _refused(_rewrite(saved, lambda s: edit(s["engine"]["sampler"]["__dict__"])), match)


# ------------------------------------------------------------ 2. classes: an exact allow-list per slot
@pytest.mark.parametrize(
    "slot, name",
    [
        ("optimizer", "torch.optimizer.X"),  # once a ModuleNotFoundError
        ("optimizer", "torch.optim.lr_scheduler.LambdaLR"),  # a torch.optim name, not an optimizer
        ("optimizer", "torch.optim.Optimizer"),
        ("optimizer", "skebm.nn._nets.MLPEnergy"),  # allowed, but in another slot
        ("energy", "torch.optim.sgd.SGD"),
        ("energy", "skebm.nn._nets.output_to_energy"),
        ("energy", "os.system"),
        ("batch_size", "skebm.nn._nets.MLPEnergy"),
    ],
)
def test_classes_only_from_their_slots_allow_list(saved, slot, name):
    _refused(_rewrite(saved, lambda s: _set(s["params"], slot, {"__class__": name})), "allow-list")


def test_objects_and_strategies_only_where_skebm_puts_them(saved):
    evil_params = {"__dict__": [["hidden_units", {"__class__": "torch.optim.sgd.SGD"}]]}
    _refused(_rewrite(saved, lambda s: _set(s["params"], "energy_params", evil_params)), "allow-list")
    strategy = {"__chain_init__": "ReplayInit", "params": {"__dict__": []}}
    _refused(_rewrite(saved, lambda s: _set(s["params"], "energy_params", strategy)), "chain initialisation")
    popen = {"__chain_init__": "Popen", "params": {"__dict__": []}}
    _refused(_rewrite(saved, lambda s: _set(s["params"], "init", popen)), "chain initialisation")
    rescaler = _get(split_file(saved)[1]["attrs"], "rescaler_")
    _refused(_rewrite(saved, lambda s: _set(s["attrs"], "n_iter_", rescaler)), "allow-list")


def test_allowed_classes_still_round_trip(tmp_path):
    est = EBMGenerator(max_iter=2, n_steps=2, buffer_size=20, optimizer=torch.optim.RMSprop, energy=skebm.nn.MLPEnergy,
                       init=skebm.mcmc.PersistentInit(buffer_size=20), random_state=0).fit(X)
    skebm.save(est, tmp_path / "m")
    loaded = skebm.load(tmp_path / "m")
    assert loaded.optimizer is torch.optim.RMSprop and loaded.energy is skebm.nn.MLPEnergy
    np.testing.assert_allclose(loaded.score_samples(X), est.score_samples(X), rtol=1e-6)


# ------------------------------------------------------------ 2. every malformed file: one ValueError, bounded time
def test_deeply_nested_metadata_is_one_value_error_in_bounded_time(saved):
    _, state, _ = split_file(saved)
    deep = "[" * 100_000 + "]" * 100_000
    text = json.dumps(state).replace('"engine": {', '"junk": ' + deep + ', "engine": {', 1)
    start = time.perf_counter()
    message = _refused(io.BytesIO(st_save(st_load(saved), metadata={"skebm": text})), "nested deeper")
    assert time.perf_counter() - start < 5, message
    deep_header = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    _refused(_raw(deep_header), "nested deeper")


def test_hostile_headers(saved):
    header, _, body = split_file(saved)
    _refused(io.BytesIO(struct.pack("<Q", 2**63) + b"{}"), "claims")  # header length beyond the file
    _refused(io.BytesIO(struct.pack("<Q", 10**9) + b"{" * 100), "claims")
    dup = json.dumps(header).replace("{", '{"__metadata__": {"skebm": "{}"}, ', 1).encode()
    _refused(_raw(dup, body), "repeats a key")  # duplicate keys: one file, two readings
    name = next(k for k in header if k != "__metadata__")
    beyond = {**header, name: {**header[name], "data_offsets": [0, len(body) + 10**9]}}
    _refused(_raw(json.dumps(beyond).encode(), body), "not a valid skebm file")  # offsets past the end
    overlapping = {**header, name: {**header[name], "data_offsets": [0, 8]}}
    _refused(_raw(json.dumps(overlapping).encode(), body), "not a valid skebm file")
    _refused(io.BytesIO(saved[: len(saved) // 3]))  # truncated
    _refused(io.BytesIO(saved[:7]))
    _refused(_raw(b"\xff\xfe{}"))  # not UTF-8
    _refused(_raw(b'{"__metadata__": {"skebm": 5}}'))
    _refused(_raw(b'{"__metadata__": {"skebm": 1000000000000}}'))  # once bytes(10**12): a terabyte of zeros


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda s: s.update(format_version="2"), "format version"),
        (lambda s: s.update(format_version=True), "format version"),
        (lambda s: s.update(format_version=10**30, skebm_version="x" * 10**5), "newer skebm"),
        (lambda s: s.update({"class": ["EBMGenerator"]}), "unknown estimator class"),
        (lambda s: s.update({"class": "BaseEBM"}), "unknown estimator class"),
        (lambda s: s.update(extra=1), "entries"),
        (lambda s: s["engine"].update(history=[1, 2, 3]), "training history"),
        (lambda s: s["engine"].update(history=[{"__dict__": [["batches", [{"__dict__": [["train_loss", 1.0]]}]]]}] * 5),
         "history records"),
        (lambda s: s["engine"].update(junk=1), "engine state"),
        (lambda s: _set(s["attrs"], "n_iter_", {"__tensor__": "nope"}), "does not hold"),
        (lambda s: _set(s["attrs"], "n_iter_", {"__tensor__": "t0", "x": 1}), "malformed entry"),
        (lambda s: _set(s["attrs"], "n_iter_", {"__float__": "1.5"}), "special float"),
        (lambda s: _set(s["params"], "lr", {"__float__": ["nan"]}), "not a valid skebm file"),
        (lambda s: s["params"]["__dict__"].append(["lr", 0.5]), "appears twice"),
        (lambda s: s["params"]["__dict__"].append([["lr"], 0.5]), "malformed dict item"),
        (lambda s: s.update(params=[]), "dict was expected"),
    ],
)
def test_malformed_state_is_one_value_error(saved, edit, match):
    message = _refused(_rewrite(saved, edit), match)
    assert len(message) < 1000


def test_string_arrays_take_the_width_of_their_items_not_the_files_claim(saved):
    names = {"__array_list__": ["a"] * 100_000, "dtype": "<U9999"}  # 4 GB at the claimed width
    start = time.perf_counter()
    _refused(_rewrite(saved, lambda s: _set(s["attrs"], "feature_names_in_", names)), "feature_names_in_")
    assert time.perf_counter() - start < 5


def test_sampler_settings_changed_after_fit_still_load(tmp_path):
    est = EBMGenerator(max_iter=2, n_steps=2, buffer_size=20, random_state=0).fit(X).set_params(n_steps=7)
    skebm.save(est, tmp_path / "m")
    loaded = skebm.load(tmp_path / "m")
    assert loaded.n_steps == 7 and loaded.net_.sampler_.n_steps == 2


def test_optimizer_state_of_the_wrong_shape_is_refused(saved):
    def edit(state, tensors):
        opt_state = _get(state["engine"]["optimizer"], "state")
        exp_avg = _get(opt_state["__dict__"][0][1], "exp_avg")
        tensors[exp_avg["__tensor__"]] = torch.zeros(2, 2)

    _refused(_rewrite(saved, edit_tensors=edit), "optimiser's 'exp_avg'")


def test_a_folder_or_a_fifo_is_not_a_file(tmp_path):
    _refused(str(tmp_path), "not a regular file")
    fifo = tmp_path / "model.skebm"
    os.mkfifo(fifo)
    _refused(str(fifo), "not a regular file")  # opening it would block forever
    with pytest.raises(FileNotFoundError):
        skebm.load(tmp_path / "missing")


# ------------------------------------------------------------ 2. memory bounded by the file
_LOAD_PEAK = """
import io, resource, sys, skebm
data = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    skebm.load(io.BytesIO(data))
    print("loaded")
except ValueError as exc:
    print("ValueError", str(exc)[:200])
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


@pytest.mark.parametrize(
    "name, value",
    [
        ("buffer_size", 300_000_000),
        ("energy_params", {"__dict__": [["hidden_units", {"__tuple__": [60_000, 60_000]}]]}),
    ],
)
def test_sizes_are_checked_against_the_files_tensors_before_allocating(saved, tmp_path, name, value):
    path = tmp_path / "m.skebm"
    path.write_bytes(_rewrite(saved, lambda s: _set(s["params"], name, value)).getvalue())
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _LOAD_PEAK, str(path)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    lines = out.stdout.strip().splitlines()
    refused = lines[0].startswith("ValueError") and ("does not match" in lines[0] or "could fit" in lines[0])
    assert out.returncode == 0 and refused, out
    assert int(lines[-1]) < 200e6, lines  # the tampered engine would take 2.4 GB (bank) or 14 GB (network)
    assert time.perf_counter() - start < 60


@pytest.fixture(scope="module")
def saved_density():
    est = skebm.EBMDensity(max_iter=2, method=QuadratureML(n_members=1), energy_params={"hidden_units": (16,)},
                           random_state=0).fit(X[:, :2])
    buf = io.BytesIO()
    skebm.save(est, buf)
    return buf.getvalue()


@pytest.mark.parametrize(
    "name, value",
    [("grid_resolution", 10**8), ("n_members", 10**5),
     ("energy_params", {"__dict__": [["hidden_units", {"__tuple__": [16] * 100_000}]]})],
)
def test_counts_the_plan_loops_over_are_bounded_by_the_file_first(saved_density, name, value):
    start = time.perf_counter()  # once 15 s and 1.4 GB (grid edges), 270 s and 2 GB (members on the meta device)
    def edit(state):
        where = state["params"] if name == "energy_params" else _get(state["params"], "method")["params"]
        _set(where, name, value)

    _refused(_rewrite(saved_density, edit), "more than a file of these tensors")
    assert time.perf_counter() - start < 5


def test_unfitted_estimator_with_energy_params_round_trips():
    buf = io.BytesIO()
    skebm.save(EBMGenerator(energy_params={"hidden_units": (512, 512)}), buf)
    buf.seek(0)
    assert skebm.load(buf).energy_params == {"hidden_units": (512, 512)}


def test_every_declared_fitted_attribute_has_a_check():
    from skebm._persistence import _BASE_CHECKS, _CLASS_CHECKS, _estimator_classes

    for name, cls in _estimator_classes().items():
        checks = {**_BASE_CHECKS, **_CLASS_CHECKS.get(name, {})}
        assert set(cls._fitted_attributes) - {"net_"} <= set(checks), name


# ------------------------------------------------------------ 3. checkpoints that cannot be confused
def _fit(est, data=X, y=None):
    return est.fit(data) if y is None else est.fit(data, y)


def _gen(folder, **params):
    return EBMGenerator(**{"max_iter": 4, "n_steps": 2, "buffer_size": 20, "batch_size": 30, "random_state": 0,
                           "callbacks": [TrainingCheckpoint(folder)], **params})


def test_checkpoint_dirname_that_is_a_file_is_refused_before_training(tmp_path):
    path = tmp_path / "a_file"
    path.write_bytes(b"keep me")
    est = _gen(path)
    with pytest.raises(ValueError, match="existing file, not a folder"):
        est.fit(X)
    assert path.read_bytes() == b"keep me" and not hasattr(est, "net_")


def test_checkpoint_save_failures_are_raised_not_swallowed(tmp_path):
    (tmp_path / "params.pt").mkdir()  # the weights cannot be written there
    est = _gen(tmp_path)
    with pytest.raises(OSError, match="could not write the module state to .*params.pt"):
        est.fit(X)
    assert not hasattr(est, "net_")


def test_checkpoint_of_another_fit_is_not_resumed(tmp_path):
    first = _fit(_gen(tmp_path))
    assert json.loads((tmp_path / "checkpoint.json").read_text())["n_updates"] == first.n_iter_
    other = np.random.RandomState(1).randn(60, 3)  # (X + 1 is the same data to the engine: it sees X rescaled)
    with pytest.raises(ValueError, match=r"another fit .*data X"):
        _fit(_gen(tmp_path), other)
    with pytest.raises(ValueError, match=r"another fit .*chain_init"):
        _fit(_gen(tmp_path, buffer_size=30))
    with pytest.raises(ValueError, match="another fit"):  # another estimator (another chain init and loss)
        _fit(EBMPurifier(max_iter=4, n_steps=2, batch_size=30, random_state=0,
                         callbacks=[TrainingCheckpoint(tmp_path)]))
    fresh = _fit(_gen(tmp_path, max_iter=2).set_params(callbacks=[TrainingCheckpoint(tmp_path, resume=False)]), other)
    assert fresh.n_iter_ == 2  # resume=False overwrites
    # the same fit resumes (its history is already complete: nothing more to do)
    again = _fit(_gen(tmp_path, max_iter=2), other)
    assert again.n_iter_ == 2
    for key, value in fresh.net_.module_.state_dict().items():
        assert torch.equal(value, again.net_.module_.state_dict()[key])


def test_the_same_fit_with_a_longer_max_iter_resumes(tmp_path):
    _fit(_gen(tmp_path, max_iter=2))
    history = json.loads((tmp_path / "history.json").read_text())
    history[0]["marker"] = True  # what only a resumed fit can have
    (tmp_path / "history.json").write_text(json.dumps(history))
    longer = _fit(_gen(tmp_path, max_iter=4))
    plain = _fit(_gen(tmp_path / "plain", max_iter=4))
    assert longer.n_iter_ == 4 and longer.net_.history[0]["marker"]
    for key, value in plain.net_.module_.state_dict().items():
        assert torch.equal(value, longer.net_.module_.state_dict()[key])


def test_warm_start_on_new_data_continues_past_its_own_checkpoint(tmp_path):
    est = _fit(_gen(tmp_path, warm_start=True))
    other = np.random.RandomState(1).randn(60, 3)
    assert _fit(est, other).n_iter_ == 8  # the folder holds its own past (4 updates on X): not read, replaced
    assert json.loads((tmp_path / "checkpoint.json").read_text())["n_updates"] == 8
    with pytest.raises(ValueError, match="another fit"):  # a fresh fit on X meets the checkpoint of other data
        _fit(_gen(tmp_path))


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda p: (p / "history.json").write_text('{"not": "a history"}'), "corrupt checkpoint.*history"),
        (lambda p: (p / "history.json").write_text("[1, 2, 3]"), "corrupt checkpoint.*history"),
        (lambda p: (p / "history.json").write_text("[" * 100_000), "corrupt checkpoint.*history"),
        (lambda p: (p / "params.pt").write_bytes(os.urandom(300)), "corrupt or foreign"),
        (lambda p: (p / "params.pt").write_bytes(b""), "corrupt or foreign"),
        (lambda p: torch.save({"evil": torch.nn.Linear(2, 2)}, p / "optimizer.pt"), "corrupt or foreign"),
        (lambda p: (p / "chain_init.pt").write_bytes((p / "params.pt").read_bytes()), "corrupt or foreign"),
        (lambda p: (p / "checkpoint.json").unlink(), "without checkpoint.json"),
        (lambda p: ((p / "params.pt").unlink(), os.mkfifo(p / "params.pt")), "'params.pt', which is not a regular"),
        (lambda p: ((p / "rng.pt").unlink(), (p / "rng.pt").symlink_to("/dev/zero")), "not a regular file"),
        (lambda p: (p / "checkpoint.json").write_text("[" * 100_000), "corrupt checkpoint.json"),
        (lambda p: (p / "checkpoint.json").write_text('{"owner": {}, "n_updates": "4"}'), "corrupt checkpoint.json"),
        (lambda p: (p / "checkpoint.json").write_text(
            (p / "checkpoint.json").read_text().replace('"n_updates": 4', '"n_updates": 3')), "incomplete"),
    ],
    ids=["junk-history", "list-history", "deep-history", "random-params", "empty-params", "pickled-module",
         "swapped-files", "no-record", "fifo", "device", "deep-record", "bad-record", "stale-record"],
)
def test_corrupt_or_foreign_checkpoint_is_one_clear_error_naming_the_folder(tmp_path, damage, match):
    _fit(_gen(tmp_path))
    damage(tmp_path)
    est = _gen(tmp_path)
    with pytest.raises(ValueError, match=match) as info:
        est.fit(X)
    assert str(tmp_path) in str(info.value) and "weights_only" not in str(info.value)
    assert info.value.__cause__ is None and not hasattr(est, "net_")
