import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

from skebm.metrics import expected_calibration_error  # noqa: E402
from skebm.plotting import (  # noqa: E402
    plot_energy_landscape,
    plot_ood_histograms,
    plot_reliability_diagram,
    plot_sample_grid,
    plot_sample_evolution,
    plot_traces,
    plot_training,
    plot_training_curves,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ---------------------------------------------------------------------------
# plot_sample_grid
# ---------------------------------------------------------------------------
def test_sample_grid_flat_grayscale_layout():
    images = np.arange(10 * 64, dtype=float).reshape(10, 64)
    ax = plot_sample_grid(images, image_shape=(1, 8, 8), n_cols=5, title="digits")
    assert isinstance(ax, Axes)
    assert len(ax.images) == 1
    mosaic = np.asarray(ax.images[0].get_array())
    # 2 rows x 5 cols of 8x8 images with 1-pixel padding
    assert mosaic.shape == (2 * 9 + 1, 5 * 9 + 1)
    # global min/max scaling: first pixel of image 0 is 0, last of image 9 is 1
    assert mosaic[1, 1] == 0.0
    assert mosaic[9 + 8, 4 * 9 + 8] == 1.0
    # image 3 (row 0, col 3) is placed where expected, scaled globally
    expected = (images[3].reshape(8, 8) - images.min()) / np.ptp(images)
    np.testing.assert_allclose(mosaic[1:9, 28:36], expected)
    assert ax.get_title() == "digits"
    assert not ax.axison


def test_sample_grid_nchw_and_grayscale_and_rgb():
    rng = np.random.RandomState(0)
    ax = plot_sample_grid(rng.rand(7, 1, 5, 5))  # default n_cols = ceil(sqrt(7)) = 3
    assert np.asarray(ax.images[0].get_array()).shape == (3 * 6 + 1, 3 * 6 + 1)
    ax = plot_sample_grid(rng.rand(4, 5, 5)[:, None], padding=0)  # (n, H, W) images as (n, 1, H, W)
    assert np.asarray(ax.images[0].get_array()).shape == (10, 10)
    ax = plot_sample_grid(rng.rand(6, 3 * 4 * 4), image_shape=(3, 4, 4), n_cols=3)
    rgb = np.asarray(ax.images[0].get_array())
    assert rgb.shape == (2 * 5 + 1, 3 * 5 + 1, 3)
    assert rgb.min() >= 0 and rgb.max() <= 1


def test_sample_grid_uses_given_ax_and_constant_images():
    fig, axes = plt.subplots(1, 2)
    out = plot_sample_grid(np.full((4, 1, 3, 3), 7.0), ax=axes[1])
    assert out is axes[1]
    assert len(axes[0].images) == 0
    mosaic = np.asarray(out.images[0].get_array())
    assert np.all(np.isfinite(mosaic))


def test_sample_grid_accepts_torch_tensor():
    torch = pytest.importorskip("torch")
    ax = plot_sample_grid(torch.rand(4, 1, 6, 6, requires_grad=True))
    assert np.asarray(ax.images[0].get_array()).shape == (2 * 7 + 1, 2 * 7 + 1)


@pytest.mark.parametrize(
    "images, kwargs, match",
    [
        (np.zeros((4, 64)), {}, "image_shape"),
        (np.zeros((4, 60)), {"image_shape": (1, 8, 8)}, "needs 64"),
        (np.zeros((4, 8, 8)), {}, "3 dimensions"),
        (np.zeros((4, 64)), {"image_shape": (8, 8)}, r"\(C, H, W\)"),
        (np.zeros((4, 2, 8, 8)), {}, "1 or 3 channels"),
        (np.zeros((0, 1, 8, 8)), {}, "at least one image"),
        (np.full((2, 1, 2, 2), np.nan), {}, "finite"),
        (np.zeros((4, 1, 2, 2)), {"n_cols": 0}, "n_cols"),
        (np.zeros((4, 1, 2, 2)), {"padding": -1}, "padding"),
    ],
)
def test_sample_grid_invalid(images, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plot_sample_grid(images, **kwargs)


# ---------------------------------------------------------------------------
# plot_energy_landscape
# ---------------------------------------------------------------------------
def _quadratic(X):
    return 0.5 * np.sum(X**2, axis=1)


def test_energy_landscape_density_is_normalised_gaussian():
    ax = plot_energy_landscape(_quadratic, xlim=(-4, 4), ylim=(-4, 4), resolution=81)
    assert isinstance(ax, Axes)
    assert len(ax.images) == 1
    z = np.asarray(ax.images[0].get_array())
    assert z.shape == (81, 81)
    cell = (8 / 80) ** 2
    assert z.sum() * cell == pytest.approx(1.0)
    # exp(-E) normalised is the standard normal density: peak 1 / (2 pi)
    assert z.max() == pytest.approx(1 / (2 * np.pi), rel=1e-3)
    assert np.unravel_index(np.argmax(z), z.shape) == (40, 40)
    assert ax.get_xlim() == (-4.0, 4.0)


def test_energy_landscape_orientation_and_energy_mode():
    # E = x: lowest energy on the left; rows run along y, columns along x
    ax = plot_energy_landscape(
        lambda X: X[:, 0], density=False, resolution=11, xlim=(0, 10), ylim=(-1, 1)
    )
    z = np.asarray(ax.images[0].get_array())
    np.testing.assert_allclose(z[0], np.arange(11.0))
    np.testing.assert_allclose(z[:, 3], 3.0)
    assert ax.images[0].origin == "lower"


def test_energy_landscape_log_density_equivalent():
    ax1 = plot_energy_landscape(_quadratic, resolution=30)
    ax2 = plot_energy_landscape(
        lambda X: -_quadratic(X) - 7.0, log_density=True, resolution=30
    )
    np.testing.assert_allclose(ax1.images[0].get_array(), ax2.images[0].get_array())


def test_energy_landscape_overlays_and_colorbar():
    rng = np.random.RandomState(0)
    fig, ax = plt.subplots()
    out = plot_energy_landscape(
        lambda X: _quadratic(X)[:, None],  # (m, 1) output is accepted
        data=rng.normal(size=(50, 2)),
        samples=rng.normal(size=(20, 2)),
        ax=ax,
        resolution=20,
        colorbar=True,
    )
    assert out is ax
    assert len(ax.collections) == 2
    sizes = sorted(len(c.get_offsets()) for c in ax.collections)
    assert sizes == [20, 50]
    assert len(fig.axes) == 2  # the colorbar axes
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["data", "samples"]


def test_energy_landscape_infinite_energy_allowed():
    def box(X):
        return np.where(np.all(np.abs(X) < 1, axis=1), 0.0, np.inf)

    z = np.asarray(plot_energy_landscape(box, resolution=31).images[0].get_array())
    assert z[15, 15] > 0 and z[0, 0] == 0


@pytest.mark.parametrize(
    "fn, kwargs, match",
    [
        (_quadratic, {"resolution": 1}, "resolution"),
        (_quadratic, {"xlim": (1, -1)}, "xlim"),
        (_quadratic, {"ylim": "ab"}, "ylim"),
        (lambda X: np.zeros(3), {}, "must return an array of shape"),
        (lambda X: np.full(len(X), np.nan), {}, "NaN"),
        (lambda X: np.full(len(X), np.inf), {}, "everywhere"),
        (_quadratic, {"data": np.zeros((5, 3))}, "data must have shape"),
        ("not callable", {}, "callable"),
    ],
)
def test_energy_landscape_invalid(fn, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plot_energy_landscape(fn, resolution=kwargs.pop("resolution", 10), **kwargs)


# ---------------------------------------------------------------------------
# plot_reliability_diagram
# ---------------------------------------------------------------------------
def test_reliability_diagram():
    rng = np.random.RandomState(0)
    p = rng.dirichlet([1, 1, 1], size=300)
    y = rng.randint(3, size=300)
    ax = plot_reliability_diagram(y, p, n_bins=10, label="model")
    assert isinstance(ax, Axes)
    conf = p.max(axis=1)
    n_nonempty = len(np.unique(np.ceil(conf * 10)))
    assert len(ax.patches) == n_nonempty
    ece = expected_calibration_error(y, p, n_bins=10)
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == [f"model (ECE = {ece:.3f})", "perfect calibration"]
    # the diagonal is drawn
    line = ax.get_lines()[0]
    np.testing.assert_allclose(line.get_xydata(), [[0, 0], [1, 1]])
    # bar heights are accuracies in [0, 1], bars span their bins
    for patch in ax.patches:
        assert 0 <= patch.get_height() <= 1
        assert patch.get_width() == pytest.approx(0.1)


def test_reliability_diagram_hand_example():
    # conf 0.9 correct (bin (0.8, 1]), conf 0.75 & 0.65 (bin (0.6, 0.8]): 1 of 2
    ax = plot_reliability_diagram([1, 0, 1], [0.9, 0.25, 0.35], n_bins=5)
    heights = sorted((p.get_x(), p.get_height()) for p in ax.patches)
    np.testing.assert_allclose(heights, [[0.6, 0.5], [0.8, 1.0]])
    # ECE = (2 * |0.5 - 0.7| + |1 - 0.9|) / 3 = 0.1667
    assert ax.get_legend().get_texts()[0].get_text() == "ECE = 0.167"


def test_reliability_diagram_invalid():
    with pytest.raises(ValueError, match="n_bins"):
        plot_reliability_diagram([0, 1], [0.2, 0.8], n_bins=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        plot_reliability_diagram([0, 1], [0.2, 1.8])


# ---------------------------------------------------------------------------
# plot_ood_histograms
# ---------------------------------------------------------------------------
def test_ood_histograms():
    rng = np.random.RandomState(0)
    s_in, s_out = rng.normal(2, 1, size=400), rng.normal(-2, 1, size=100)
    ax = plot_ood_histograms(s_in, s_out, bins=20, labels=("cifar", "svhn"))
    assert isinstance(ax, Axes)
    assert len(ax.patches) == 40  # 20 bars per histogram
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == ["cifar", "svhn"]
    assert ax.get_legend().get_title().get_text().startswith("AUROC = 0.99")
    # both histograms are densities on the same bins
    first, second = ax.patches[:20], ax.patches[20:]
    assert [p.get_x() for p in first] == [p.get_x() for p in second]
    width = first[0].get_width()
    assert sum(p.get_height() for p in first) * width == pytest.approx(1.0)
    assert sum(p.get_height() for p in second) * width == pytest.approx(1.0)


def test_ood_histograms_invalid():
    with pytest.raises(ValueError, match="labels"):
        plot_ood_histograms([1.0, 2.0], [0.0], labels=("only one",))
    with pytest.raises(ValueError, match="bins"):
        plot_ood_histograms([1.0, 2.0], [0.0], bins=0)
    with pytest.raises(ValueError, match="scores_out must not be empty"):
        plot_ood_histograms([1.0, 2.0], [])


# ---------------------------------------------------------------------------
# plot_traces / plot_training_curves
# ---------------------------------------------------------------------------
def test_traces_from_dict():
    hist = {
        "loss": [1.0, 0.5, 0.25, 0.2],
        "energy_data": [0.0, -1.0],
        "e_chain": [1, 2],
    }
    ax = plot_traces(hist, keys=["loss", "energy_data"])
    assert isinstance(ax, Axes)
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == ["loss", "energy_data"]
    np.testing.assert_array_equal(lines[0].get_xdata(), [0, 1, 2, 3])
    np.testing.assert_array_equal(lines[0].get_ydata(), [1.0, 0.5, 0.25, 0.2])
    assert ax.get_xlabel() == "iteration"
    ax = plot_traces(hist, "loss")
    assert len(ax.get_lines()) == 1


def test_traces_from_dataframe_records_and_estimator():
    df = pd.DataFrame(
        {"loss": [3.0, 2.0, 1.0], "phase": ["a", "b", "c"]}, index=[10, 20, 30]
    )
    ax = plot_traces(df)  # non-numeric column skipped, numeric index used
    (line,) = ax.get_lines()
    np.testing.assert_array_equal(line.get_xdata(), [10, 20, 30])

    records = [{"loss": 1.0}, {"loss": 0.5, "grad_norm": 3.0}]
    ax = plot_traces(records)
    labels = [ln.get_label() for ln in ax.get_lines()]
    assert labels == ["loss", "grad_norm"]
    assert np.isnan(ax.get_lines()[1].get_ydata()[0])

    class FakeEstimator:
        history_ = {"loss": [2.0, 1.0, 0.5]}

    with pytest.warns(FutureWarning, match="plot_training"):
        ax = plot_training_curves(FakeEstimator(), logy=True)
    assert ax.get_yscale() == "log"
    assert ax.get_title() == "training curves"
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), [2.0, 1.0, 0.5])


def test_traces_invalid():
    with pytest.raises(ValueError, match="Unknown or non-numeric"):
        plot_traces({"loss": [1.0]}, keys=["accuracy"])
    with pytest.raises(ValueError, match="1-D numeric"):
        plot_traces({"loss": [[1.0, 2.0]]})
    with pytest.raises(ValueError, match="history must be"):
        plot_traces(42)
    with pytest.raises(ValueError, match="no numeric series"):
        plot_traces(pd.DataFrame({"phase": ["a", "b"]}))


# ---------------------------------------------------------------------------
# plot_training / deprecated alias / value_range
# ---------------------------------------------------------------------------
def _rows(n=300, recovered_at=None):
    rng = np.random.RandomState(0)
    rows = []
    for i in range(n):
        row = {"train_loss": 1.0 / (i + 1) + 0.1 * rng.rand(), "train_batch_size": 64,
               "energy_data": -0.01 * i, "energy_samples": 0.01 * i, "step_size": 1.0, "acceptance": 0.6}
        if i == recovered_at:
            row["recovered"] = True
        rows.append(row)
    return rows


def test_plot_training_panels_labels_and_smoothing():
    axes = plot_training(_rows(), smooth=10, title="fit")
    assert [ax.get_title() for ax in axes] == ["loss", "energies", "Langevin sampler"]
    assert [ax.get_ylabel() for ax in axes] == ["loss", "mean energy E(x) / T", "step size"]
    assert all(ax.get_xlabel() == "update" for ax in axes)
    loss = axes[0].get_lines()
    assert len(loss) == 2  # the raw series, faint, and its moving average
    raw, smooth = loss
    assert raw.get_alpha() < 0.5 and smooth.get_label() == "training loss (mean of 10)"
    assert np.std(np.diff(smooth.get_ydata())) < np.std(np.diff(raw.get_ydata()))
    # centred window: the interior point i averages rows i-5 .. i+4
    y = raw.get_ydata()
    assert smooth.get_ydata()[100] == pytest.approx(np.mean(y[95:105]))
    twin = [a for a in axes[2].figure.axes if a is not axes[2] and a.bbox.bounds == axes[2].bbox.bounds]
    assert twin and twin[0].get_ylabel() == "acceptance rate"
    assert axes[0].figure._suptitle.get_text() == "fit"


def test_plot_training_raw_keys_and_rollbacks():
    axes = plot_training(_rows(50, recovered_at=20), smooth=None, keys=["train_loss"])
    assert len(axes) == 1
    lines = axes[0].get_lines()
    assert lines[0].get_alpha() is None  # no smoothing: the raw series only
    np.testing.assert_array_equal(lines[0].get_xdata(), np.arange(50))  # a list of records: index 0..n-1
    axes = plot_training({"train_loss": [3.0, 2.0], "custom": [1.0, 2.0]}, smooth=None)
    assert [ax.get_title() for ax in axes] == ["loss", "custom"]
    with pytest.raises(ValueError, match="Unknown"):
        plot_training({"train_loss": [1.0]}, keys=["nope"])
    with pytest.raises(ValueError, match="smooth"):
        plot_training({"train_loss": [1.0, 2.0]}, smooth="always")


def test_plot_training_reads_a_skorch_history_and_marks_rollbacks():
    history = [{"epoch": 1, "batches": _rows(30, recovered_at=12)}]
    axes = plot_training(history, smooth=None)
    x = axes[0].get_lines()[0].get_xdata()
    np.testing.assert_array_equal(x, np.arange(1, 31))  # update numbers
    marks = [ln for ln in axes[0].get_lines() if ln.get_linestyle() == ":"]
    assert len(marks) == 1 and marks[0].get_xdata()[0] == 13


def test_plot_training_on_fitted_estimators():
    from sklearn.datasets import load_digits

    from skebm import EBMGenerator, NGEBMClassifier

    X, y = load_digits(return_X_y=True)
    gen = EBMGenerator(image_shape=(1, 8, 8), max_iter=5, n_steps=2, batch_size=16, buffer_size=64,
                       energy_params={"channels": (8, 8)}, random_state=0).fit(X[:100])
    axes = plot_training(gen)
    assert [ax.get_title() for ax in axes] == ["loss", "energies", "Langevin sampler"]
    assert len(axes[0].get_lines()[0].get_xdata()) == 5
    # plot_traces and the deprecated alias read fitted estimators too (they used to raise)
    assert "energy_data" in [ln.get_label() for ln in plot_traces(gen).get_lines()]
    with pytest.warns(FutureWarning):
        plot_training_curves(gen, keys="train_loss")
    clf = NGEBMClassifier(max_iter=4, random_state=0).fit(X[:100], y[:100])
    titles = [ax.get_title() for ax in plot_training(clf)]
    assert titles == ["loss", "energies", "loss terms"]
    with pytest.raises(ValueError, match="fitted first"):
        plot_training(EBMGenerator())


def test_sample_grid_value_range():
    images = np.array([[[[-1.0, 0.0], [1.0, 3.0]]]])
    ax = plot_sample_grid(images, value_range=(-1, 1), padding=0)
    np.testing.assert_allclose(ax.images[0].get_array(), [[0.0, 0.5], [1.0, 1.0]])
    with pytest.raises(ValueError, match="value_range"):
        plot_sample_grid(images, value_range=(1, -1))


def test_sample_evolution_inputs():
    rng = np.random.RandomState(0)
    ax = plot_sample_evolution([rng.rand(5, 16), rng.rand(7, 16)], image_shape=(1, 4, 4), padding=0)
    assert np.asarray(ax.images[0].get_array()).shape == (8, 20)  # 2 rows x min(5, 16) columns
    with pytest.raises(ValueError, match="update numbers"):
        plot_sample_evolution([rng.rand(2, 1, 3, 3)], updates=[1, 2])
    with pytest.raises(ValueError, match="same image shape"):
        plot_sample_evolution([rng.rand(2, 1, 3, 3), rng.rand(2, 1, 4, 4)])


def test_plot_robustness_lines_and_budget_title():
    import pandas as pd

    from skebm.plotting import plot_robustness

    table = pd.DataFrame({"undefended": [0.97, 0.1], "min over attacks": [0.95, 0.5]},
                         index=pd.Index([0.0, 0.1], name="epsilon"))
    table.attrs = {"norm": "inf", "pgd_steps": 20, "n_replicates": 4, "eot_samples": 2}
    ax = plot_robustness(table)
    assert [line.get_label() for line in ax.get_lines()] == ["undefended", "min over attacks"]
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), [0.95, 0.5])
    assert "4 replicates" in ax.get_title() and "EOT x2" in ax.get_title()
    # the bare classifier alone: no defence budgets in the title
    assert "replicates" not in plot_robustness(table[["undefended"]]).get_title()
    with pytest.raises(TypeError):
        plot_robustness([[0.9]])
