"""SampleMonitor: training you can watch, without changing what is trained."""

import os
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from skebm import EBMGenerator, NGEBMClassifier  # noqa: E402
from skebm.engine import SampleMonitor  # noqa: E402
from skebm.plotting import plot_sample_evolution, plot_training, save_sample_evolution  # noqa: E402

SMALL = dict(image_shape=(1, 8, 8), max_iter=7, batch_size=16, n_steps=3, buffer_size=64,
             energy_params={"channels": (8, 8)}, random_state=0)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:200], y[:200]


def _weights(est):
    return {k: v.detach().clone() for k, v in est.net_.module_.state_dict().items()}


def test_writes_a_png_every_n_updates(digits, tmp_path):
    monitor = SampleMonitor(every=3, n_samples=9, folder=tmp_path / "grids")
    EBMGenerator(**SMALL, callbacks=[monitor]).fit(digits[0])
    # before training, after updates 3 and 6, and at the end (7)
    assert monitor.updates_ == [0, 3, 6, 7]
    files = sorted(os.listdir(tmp_path / "grids"))
    assert files == [f"samples_{n:06d}.png" for n in (0, 3, 6, 7)]
    assert [os.path.basename(p) for p in monitor.paths_] == files
    assert all(os.path.getsize(tmp_path / "grids" / f) > 0 for f in files)
    assert len(monitor.grids_) == 4 and monitor.grids_[0].shape == (9, 1, 8, 8)
    assert monitor.value_range_ == (-1.0, 1.0) and monitor.image_shape_ == (1, 8, 8)
    record = monitor.records_[1]
    assert record["update"] == 3 and record["path"].endswith("samples_000003.png")
    for key in ("energy_data", "energy_samples", "energy_monitor", "langevin_grad_norm", "grad_norm"):
        assert np.isfinite(record[key]), key
    assert np.isnan(monitor.records_[0]["grad_norm"])  # nothing trained yet


def test_does_not_change_the_training_result(digits):
    plain = EBMGenerator(**SMALL).fit(digits[0])
    monitor = SampleMonitor(every=2, n_samples=5, start="source")
    watched = EBMGenerator(**SMALL, callbacks=[monitor]).fit(digits[0])
    assert len(monitor.grids_) == 5  # 0, 2, 4, 6, 7: the monitor really ran chains
    a, b = _weights(plain), _weights(watched)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    # the bank and the generators too: the next draws are identical
    torch.testing.assert_close(plain.net_.chain_init_.buffer_, watched.net_.chain_init_.buffer_, rtol=0, atol=0)
    np.testing.assert_array_equal(plain.sample(4, random_state=1), watched.sample(4, random_state=1))


def test_snapshots_repeat_their_starts_and_the_grad_norm_is_recorded(digits):
    monitor = SampleMonitor(every=100, n_samples=4, n_steps=0, start="source")
    gen = EBMGenerator(**SMALL, callbacks=[monitor]).fit(digits[0])
    # with zero steps a snapshot is its starts: the same seed every time
    np.testing.assert_array_equal(monitor.grids_[0], monitor.grids_[-1])
    rows = [row for epoch in gen.net_.history for row in epoch["batches"]]
    norms = [row["grad_norm"] for row in rows]
    assert len(norms) == 7 and all(n > 0 and np.isfinite(n) for n in norms)


def test_conditional_and_warm_start_keep_one_timeline(digits):
    X, y = digits
    monitor = SampleMonitor(every=4, n_samples=10)
    gen = EBMGenerator(**{**SMALL, "max_iter": 4}, conditional=True, warm_start=True, callbacks=[monitor])
    gen.fit(X, y)
    gen.fit(X, y)  # continues: the snapshots of both fits stay
    assert monitor.updates_ == [0, 4, 8]
    assert monitor._n_classes_ == 10


def test_save_evolution_and_plot_sample_evolution(digits, tmp_path):
    monitor = SampleMonitor(every=3, n_samples=6)
    EBMGenerator(**SMALL, callbacks=[monitor]).fit(digits[0])
    path = save_sample_evolution(monitor, tmp_path / "evolution.png", n_cols=4)
    assert os.path.getsize(path) > 0
    with pytest.warns(FutureWarning, match="save_sample_evolution"):  # the old name, deprecated
        assert os.path.getsize(monitor.save_evolution(tmp_path / "old.png", n_cols=4)) > 0
    ax = plot_sample_evolution(monitor, n_cols=4)
    mosaic = np.asarray(ax.images[-1].get_array())
    assert mosaic.shape == (4 * 9 + 1, 4 * 9 + 1)  # 4 snapshots (rows) x 4 samples
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"update {u}" for u in (0, 3, 6, 7)]
    # the model-space range [-1, 1] is black..white in every row
    expected = np.clip((monitor.grids_[1][2, 0] + 1) / 2, 0, 1)
    np.testing.assert_allclose(mosaic[10:18, 19:27], expected, atol=1e-6)
    with pytest.raises(ValueError, match="no snapshot"):
        plot_sample_evolution([])
    with pytest.raises(NotFittedError, match="no snapshot"):
        save_sample_evolution(SampleMonitor().initialize(), tmp_path / "x.png")
    with pytest.raises(NotFittedError, match="no snapshot"):  # not even initialised
        save_sample_evolution(SampleMonitor(), tmp_path / "x.png")


def test_flat_data_scatter_or_warning(tmp_path):
    rng = np.random.RandomState(0)
    monitor = SampleMonitor(every=2, n_samples=20, folder=tmp_path)
    EBMGenerator(max_iter=2, batch_size=16, n_steps=2, random_state=0, callbacks=[monitor]).fit(rng.normal(size=(64, 2)))
    assert len(monitor.paths_) == 2
    monitor = SampleMonitor(every=2, n_samples=4, folder=tmp_path / "five")
    with pytest.warns(UserWarning, match="cannot draw 5 flat features"):
        EBMGenerator(max_iter=2, batch_size=16, n_steps=2, random_state=0, callbacks=[monitor]).fit(
            rng.normal(size=(64, 5))
        )
    assert monitor.paths_ == [] and len(monitor.records_) == 2


def test_invalid_parameters(digits):
    with pytest.raises(ValueError, match="every"):
        EBMGenerator(**SMALL, callbacks=[SampleMonitor(every=0)]).fit(digits[0])


def test_plot_training_on_a_monitored_fit(digits):
    gen = EBMGenerator(**SMALL, callbacks=[SampleMonitor(every=100)]).fit(digits[0])
    axes = plot_training(gen, smooth=None)
    assert [ax.get_title() for ax in axes] == ["loss", "energies", "Langevin sampler", "parameter gradient"]
    assert axes[-1].get_ylabel() == "gradient norm (L2)"


def test_classifier_without_chains(digits):
    X, y = digits
    monitor = SampleMonitor(every=3, n_samples=4, n_steps=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning for image data
        NGEBMClassifier(image_shape=(1, 8, 8), max_iter=3, random_state=0, callbacks=[monitor]).fit(X, y)
    assert monitor.updates_ == [0, 3] and monitor.grids_[0].shape == (4, 1, 8, 8)


def test_clone_and_pickle(digits):
    import pickle

    from sklearn.base import clone

    monitor = SampleMonitor(every=3, n_samples=4)
    gen = EBMGenerator(**SMALL, callbacks=[monitor]).fit(digits[0])
    assert monitor.get_params()["every"] == 3 and "grids_" not in monitor.get_params()
    copy = clone(gen)  # a fresh monitor with the same parameters, its own snapshots
    assert copy.callbacks[0] is not monitor and not hasattr(copy.callbacks[0], "grids_")
    assert len(pickle.loads(pickle.dumps(gen)).callbacks[0].grids_) == len(monitor.grids_)
