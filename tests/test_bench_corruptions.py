"""The common corruptions of benchmarks/bench_purifier.py (benchmarks/_corruptions.py) against known answers."""

import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
from _corruptions import CORRUPTIONS, corrupt  # noqa: E402

GREY = np.full((200, 64), 0.5, dtype=np.float32)  # mid-grey 8x8 images: no clipping at small noise


def test_gaussian_noise_has_the_severity_as_standard_deviation_and_zero_is_the_identity():
    out = corrupt(GREY, "gaussian noise", 0.1, (8, 8), seed=0)
    assert out.dtype == np.float32 and out.shape == GREY.shape
    assert abs(out.mean() - 0.5) < 0.005 and abs(out.std() - 0.1) < 0.005
    np.testing.assert_array_equal(corrupt(GREY, "gaussian noise", 0.0, (8, 8), seed=0), GREY)
    assert corrupt(GREY, "gaussian noise", 5.0, (8, 8), seed=0).min() == 0.0  # clipped to [0, 1]


def test_gaussian_blur_keeps_a_constant_image_and_the_mass_of_a_centred_dot():
    np.testing.assert_allclose(corrupt(GREY[:2], "gaussian blur", 1.0, (8, 8), seed=0), GREY[:2], atol=1e-6)
    dot = np.zeros((1, 28 * 28), dtype=np.float32)
    dot[0, 14 * 28 + 14] = 1.0
    out = corrupt(dot, "gaussian blur", 1.0, (28, 28), seed=0).reshape(28, 28)
    assert out.sum() == pytest.approx(1.0, abs=1e-4)
    # a unit Gaussian's centre weight: 1 / (2 pi) of the 2-D kernel (up to the kernel's discretisation)
    assert out[14, 14] == pytest.approx(1 / (2 * np.pi), rel=0.05)
    assert out[14, 13] == pytest.approx(out[14, 15]) and out[13, 14] == pytest.approx(out[15, 14])
    assert out[14, 14] > out[14, 15] > out[14, 16]


def test_contrast_zero_gives_the_image_mean_and_one_the_image():
    X = np.random.default_rng(0).random((5, 64)).astype(np.float32)
    np.testing.assert_allclose(corrupt(X, "contrast", 0.0, (8, 8), seed=0), np.repeat(X.mean(1, keepdims=True), 64, 1),
                               atol=1e-6)
    np.testing.assert_allclose(corrupt(X, "contrast", 1.0, (8, 8), seed=0), X, atol=1e-6)
    half = corrupt(X, "contrast", 0.5, (8, 8), seed=0)
    np.testing.assert_allclose(half.std(1), X.std(1) / 2, rtol=1e-5)


def test_salt_and_pepper_sets_the_share_of_pixels_to_zero_or_one():
    out = corrupt(GREY, "salt and pepper", 0.2, (8, 8), seed=0)
    changed = out != 0.5
    assert abs(changed.mean() - 0.2) < 0.01
    assert set(np.unique(out[changed])) == {0.0, 1.0}
    assert abs(out[changed].mean() - 0.5) < 0.05  # salt and pepper equally often


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_every_corruption_stays_in_the_pixel_range_and_is_seeded(name):
    X = np.random.default_rng(1).random((20, 64)).astype(np.float32)
    a, b = corrupt(X, name, 0.3, (8, 8), seed=3), corrupt(X, name, 0.3, (8, 8), seed=3)
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 0.0 and a.max() <= 1.0 and a.dtype == np.float32
    assert not np.array_equal(a, X)
