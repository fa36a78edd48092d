import numpy as np
import pytest

from skebm.metrics import (
    ClassifierFeatures,
    _calibration_bins,
    expected_calibration_error,
    extract_features,
    frechet_distance,
    inception_features,
    maximum_calibration_error,
    mmd,
    ood_auroc,
)


# ---------------------------------------------------------------------------
# Calibration
# ---------------------------------------------------------------------------
# Hand-computed example with 3 classes and 5 bins of width 0.2:
#   sample  probs              top  conf  true  correct  bin
#   0       [0.90 0.05 0.05]    0   0.90   0      1       4
#   1       [0.10 0.70 0.20]    1   0.70   1      1       3
#   2       [0.30 0.65 0.05]    1   0.65   2      0       3
#   3       [0.35 0.25 0.40]    2   0.40   2      1       1 (0.4 on an edge: lower bin)
#   4       [0.15 0.15 0.70]    2   0.70   0      0       3
# bin 1: acc 1,   conf 0.40           gap 0.60, weight 1/5
# bin 3: acc 1/3, conf (0.7+0.65+0.7)/3 = 0.68333  gap 0.35, weight 3/5
# bin 4: acc 1,   conf 0.90           gap 0.10, weight 1/5
# ECE = (0.60 + 3 * 0.35 + 0.10) / 5 = 0.35 ;  MCE = 0.60
Y_TRUE = np.array([0, 1, 2, 2, 0])
Y_PROB = np.array(
    [
        [0.90, 0.05, 0.05],
        [0.10, 0.70, 0.20],
        [0.30, 0.65, 0.05],
        [0.35, 0.25, 0.40],
        [0.15, 0.15, 0.70],
    ]
)


def test_ece_mce_hand_computed():
    assert expected_calibration_error(Y_TRUE, Y_PROB, n_bins=5) == pytest.approx(0.35)
    assert maximum_calibration_error(Y_TRUE, Y_PROB, n_bins=5) == pytest.approx(0.60)


def test_calibration_bins_hand_computed():
    bins = _calibration_bins(Y_TRUE, Y_PROB, n_bins=5)
    np.testing.assert_allclose(bins.edges, [0, 0.2, 0.4, 0.6, 0.8, 1.0])
    np.testing.assert_array_equal(bins.counts, [0, 1, 0, 3, 1])
    np.testing.assert_allclose(bins.accuracy, [np.nan, 1, np.nan, 1 / 3, 1])
    np.testing.assert_allclose(bins.confidence, [np.nan, 0.4, np.nan, 2.05 / 3, 0.9])
    assert bins.n_samples == 5


def test_ece_with_string_labels_and_explicit_labels():
    names = np.array(["cat", "dog", "emu"])
    assert expected_calibration_error(
        names[Y_TRUE], Y_PROB, n_bins=5
    ) == pytest.approx(0.35)
    # y_true lacking a class: labels are needed to name the 3 columns
    y = np.array([0, 0])
    p = np.array([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1]])
    with pytest.raises(ValueError, match="Pass `labels`"):
        expected_calibration_error(y, p)
    # conf 0.8 correct, conf 0.6 wrong; one bin: acc 0.5, conf 0.7
    assert expected_calibration_error(
        y, p, n_bins=1, labels=[0, 1, 2]
    ) == pytest.approx(0.2)


def test_ece_binary_1d_equals_2d():
    rng = np.random.RandomState(0)
    p = rng.uniform(size=200)
    y = (rng.uniform(size=200) < p).astype(int)
    one_d = expected_calibration_error(y, p, n_bins=10)
    two_d = expected_calibration_error(y, np.column_stack([1 - p, p]), n_bins=10)
    assert one_d == pytest.approx(two_d)
    assert maximum_calibration_error(y, p) == pytest.approx(
        maximum_calibration_error(y, np.column_stack([1 - p, p]))
    )
    # hand check: p=0.9 (pred 1, correct), p=0.2 (pred 0, conf 0.8, wrong)
    # one bin: acc 0.5, conf 0.85
    assert expected_calibration_error([1, 1], [0.9, 0.2], n_bins=1, labels=[0, 1]) == (
        pytest.approx(0.35)
    )


def test_ece_perfect_and_calibrated():
    y = np.array([0, 1, 2, 1])
    onehot = np.eye(3)[y]
    assert expected_calibration_error(y, onehot) == 0.0
    assert maximum_calibration_error(y, onehot) == 0.0
    # Labels drawn from the predicted probabilities are calibrated: small ECE.
    rng = np.random.RandomState(0)
    p = rng.dirichlet([1, 1, 1], size=20000)
    y = np.array([rng.choice(3, p=row) for row in p])
    assert expected_calibration_error(y, p, n_bins=10) < 0.02
    # An over-confident model (sharpened probabilities) is clearly worse.
    sharp = p**4 / np.sum(p**4, axis=1, keepdims=True)
    assert expected_calibration_error(y, sharp, n_bins=10) > 0.1
    assert maximum_calibration_error(y, sharp, n_bins=10) >= (
        expected_calibration_error(y, sharp, n_bins=10)
    )


@pytest.mark.parametrize(
    "y_true, y_prob, kwargs, match",
    [
        ([0, 1], [[0.5, 0.5]], {}, "different numbers of samples"),
        ([0, 1], [[1.2, -0.2], [0.5, 0.5]], {}, r"\[0, 1\]"),
        ([0, 1], [[0.5, 0.5], [0.5, 0.5]], {"n_bins": 0}, "n_bins"),
        ([0, 1], [[0.5, 0.5], [0.5, 0.5]], {"n_bins": 2.5}, "n_bins"),
        ([0, 1, 2], [0.1, 0.2, 0.3], {}, "exactly 2 labels"),
        ([0, 1], np.full((2, 2, 2), 0.5), {}, "dimensions"),
        ([0, 3], [[0.5, 0.5], [0.5, 0.5]], {"labels": [0, 1]}, "not in `labels`"),
        ([0, 1], [[0.5, 0.5], [0.5, 0.5]], {"labels": [0, 0]}, "duplicates"),
        ([0, 1], [[np.nan, 0.5], [0.5, 0.5]], {}, "NaN"),
    ],
)
def test_calibration_invalid(y_true, y_prob, kwargs, match):
    with pytest.raises(ValueError, match=match):
        expected_calibration_error(y_true, y_prob, **kwargs)
    with pytest.raises(ValueError, match=match):
        maximum_calibration_error(y_true, y_prob, **kwargs)


# ---------------------------------------------------------------------------
# Frechet distance
# ---------------------------------------------------------------------------
def test_frechet_identical_is_zero():
    rng = np.random.RandomState(0)
    A = rng.normal(size=(500, 5))
    assert frechet_distance(A, A) == pytest.approx(0.0, abs=1e-8)


def test_frechet_shifted_gaussians():
    rng = np.random.RandomState(0)
    A = rng.normal(size=(3000, 3))
    B = rng.normal(size=(3000, 3))
    shift = np.array([1.0, -2.0, 0.5])
    d = frechet_distance(A, B + shift)
    assert d == pytest.approx(np.sum(shift**2), rel=0.03)
    # exactly the squared mean difference when the covariances are equal
    assert frechet_distance(A, A + shift) == pytest.approx(np.sum(shift**2), rel=1e-8)


def test_frechet_scaled_gaussians_closed_form():
    # N(0, I) vs N(0, s^2 I) in d dims: d * (1 + s^2 - 2 s) = d (s - 1)^2
    rng = np.random.RandomState(0)
    A = rng.normal(size=(20000, 2))
    B = 3.0 * rng.normal(size=(20000, 2))
    assert frechet_distance(A, B) == pytest.approx(2 * (3.0 - 1) ** 2, rel=0.05)


def test_frechet_singular_covariance():
    rng = np.random.RandomState(0)
    A = rng.normal(size=(100, 3))
    A[:, 2] = 0.0  # constant feature: singular covariance
    d = frechet_distance(A, A + [1.0, 0.0, 0.0])
    assert np.isfinite(d)
    assert d == pytest.approx(1.0, abs=1e-4)
    # fewer samples than features
    d = frechet_distance(rng.normal(size=(5, 10)), rng.normal(size=(6, 10)))
    assert np.isfinite(d) and d > 0


def test_frechet_invalid():
    with pytest.raises(ValueError, match="same number of features"):
        frechet_distance(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="at least 2 samples"):
        frechet_distance(np.zeros((1, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError):
        frechet_distance(np.zeros(5), np.zeros(5))


# ---------------------------------------------------------------------------
# Frechet distance through feature extractors
# ---------------------------------------------------------------------------
def test_frechet_callable_extractor_equals_array_version():
    rng = np.random.RandomState(0)
    A, B = rng.normal(size=(300, 6)), rng.normal(0.5, 1.2, size=(250, 6))
    W = rng.normal(size=(6, 4))

    def extractor(batch):
        return np.tanh(batch @ W)

    direct = frechet_distance(extractor(A), extractor(B))
    assert direct > 0.01
    assert frechet_distance(A, B, feature_extractor=extractor, batch_size=32) == pytest.approx(direct, rel=1e-12)


def test_frechet_torch_module_and_transformer_extractors():
    torch = pytest.importorskip("torch")
    from sklearn.decomposition import PCA

    rng = np.random.RandomState(0)
    A, B = rng.normal(size=(200, 5)), rng.normal(1.0, 1.0, size=(200, 5))
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(5, 3), torch.nn.Dropout(0.5))  # eval mode: dropout off
    module.train(True)
    with torch.no_grad():
        fa = module[0](torch.as_tensor(A, dtype=torch.float32)).double().numpy()
        fb = module[0](torch.as_tensor(B, dtype=torch.float32)).double().numpy()
    got = frechet_distance(A, B, feature_extractor=module, batch_size=64)
    assert got == pytest.approx(frechet_distance(fa, fb), rel=1e-6)
    assert module.training  # its mode is restored
    # tensor inputs, and a tuple output (Inception wrappers return one entry per layer)
    feats = extract_features(lambda t: (t[:, :2] * 2,), torch.ones(5, 4))
    np.testing.assert_array_equal(feats, np.full((5, 2), 2.0))
    pca = PCA(2).fit(A)
    assert frechet_distance(A, B, feature_extractor=pca) == pytest.approx(
        frechet_distance(pca.transform(A), pca.transform(B))
    )


def test_extract_features_invalid():
    with pytest.raises(TypeError, match="feature_extractor"):
        extract_features(42, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="one row of features per input"):
        extract_features(lambda b: b[:1], np.zeros((3, 2)))
    with pytest.raises(ValueError, match="batch_size"):
        extract_features(lambda b: b, np.zeros((3, 2)), batch_size=0)


def test_inception_features_never_downloads(tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloads"):
        inception_features(None)
    with pytest.raises(FileNotFoundError, match="is not a file"):
        inception_features(tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="backend"):
        inception_features(None, backend="tensorflow")


def _inception_weights():
    import os

    path = os.environ.get("SKEBM_INCEPTION_WEIGHTS")
    if not path or not os.path.isfile(path):
        pytest.skip("set SKEBM_INCEPTION_WEIGHTS to the FID Inception weights file to run this test")
    return path


def test_inception_features_from_a_local_file():
    path = _inception_weights()
    extractor = inception_features(path)
    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, size=(4, 1, 28, 28)).astype(np.uint8)
    feats = extract_features(extractor, images, batch_size=2)
    assert feats.shape == (4, 2048) and np.all(np.isfinite(feats)) and feats.min() >= 0


def test_classifier_features_digits():
    pytest.importorskip("torch")
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    feat = ClassifierFeatures(max_epochs=8, hidden_units=32, random_state=0).fit(X[:600], y[:600])
    assert feat.image_shape_ == (1, 8, 8) and feat.n_features_in_ == 64
    assert feat.transform(X[:3]).shape == (3, 32)
    np.testing.assert_array_equal(feat(X[:3]), feat.transform(X[:3]))
    assert feat.score(X[600:], y[600:]) > 0.75
    assert feat.predict_proba(X[:2]).sum(1) == pytest.approx([1.0, 1.0])
    # fixed seed: the same extractor twice
    again = ClassifierFeatures(max_epochs=8, hidden_units=32, random_state=0).fit(X[:600], y[:600])
    np.testing.assert_allclose(again.transform(X[:50]), feat.transform(X[:50]))
    # real digits are nearer real digits than noise is
    noise = np.random.RandomState(0).uniform(0, 16, size=(300, 64))
    near = frechet_distance(X[600:900], X[900:1200], feature_extractor=feat)
    far = frechet_distance(noise, X[900:1200], feature_extractor=feat)
    assert near < 0.2 * far
    with pytest.raises(ValueError, match="image_shape"):
        ClassifierFeatures().fit(np.zeros((10, 10)), np.arange(10) % 2)


# ---------------------------------------------------------------------------
# MMD
# ---------------------------------------------------------------------------
def test_mmd_same_vs_shifted():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 2))
    Y = rng.normal(size=(300, 2))
    same = mmd(X, Y)
    shifted = mmd(X, Y + [1.5, 0.0])
    assert abs(same) < 0.01
    assert shifted > 0.1
    assert shifted > 20 * abs(same)
    assert isinstance(same, float)


def test_mmd_matches_direct_formula():
    rng = np.random.RandomState(1)
    X = rng.normal(size=(7, 3))
    Y = rng.normal(size=(5, 3)) + 0.3
    gamma = 0.4

    def k(a, b):
        return np.exp(-gamma * np.sum((a - b) ** 2))

    xx = sum(k(X[i], X[j]) for i in range(7) for j in range(7) if i != j) / 42
    yy = sum(k(Y[i], Y[j]) for i in range(5) for j in range(5) if i != j) / 20
    xy = sum(k(x, y) for x in X for y in Y) / 35
    assert mmd(X, Y, gamma=gamma) == pytest.approx(xx + yy - 2 * xy)


def test_mmd_median_heuristic_and_callable_kernel():
    rng = np.random.RandomState(2)
    X = rng.normal(size=(40, 2))
    Y = rng.normal(size=(30, 2)) + 1.0
    Z = np.vstack([X, Y])
    sq = np.sum((Z[:, None] - Z[None]) ** 2, axis=-1)
    med = np.median(sq[np.triu_indices(len(Z), k=1)])
    expected = mmd(X, Y, gamma=1.0 / (2.0 * med))
    assert mmd(X, Y) == pytest.approx(expected)
    # A linear kernel gives ||mean(X) - mean(Y)||^2 minus the bias terms;
    # check against its closed form via a callable kernel.
    lin = mmd(X, Y, kernel=lambda A, B: A @ B.T)
    m, n = len(X), len(Y)
    Kxx, Kyy = X @ X.T, Y @ Y.T
    direct = (
        (Kxx.sum() - np.trace(Kxx)) / (m * (m - 1))
        + (Kyy.sum() - np.trace(Kyy)) / (n * (n - 1))
        - 2 * (X @ Y.T).mean()
    )
    assert lin == pytest.approx(direct)


def test_mmd_invalid():
    X = np.zeros((5, 2))
    with pytest.raises(ValueError, match="kernel"):
        mmd(X, X, kernel="laplacian")
    with pytest.raises(ValueError, match="gamma"):
        mmd(X, X, gamma=-1.0)
    with pytest.raises(ValueError, match="same number of features"):
        mmd(X, np.zeros((5, 3)))
    with pytest.raises(ValueError, match="at least 2 samples"):
        mmd(X[:1], X)
    with pytest.raises(ValueError, match="Gram matrix"):
        mmd(X, X, kernel=lambda A, B: np.ones((2, 2)))


# ---------------------------------------------------------------------------
# OOD AUROC
# ---------------------------------------------------------------------------
def test_ood_auroc():
    assert ood_auroc([5.0, 6.0, 7.0], [0.0, 1.0]) == 1.0
    assert ood_auroc([0.0, 1.0], [5.0, 6.0, 7.0]) == 0.0
    assert ood_auroc([1.0, 1.0], [1.0, 1.0]) == 0.5
    rng = np.random.RandomState(0)
    same = ood_auroc(rng.normal(size=2000), rng.normal(size=2000))
    assert abs(same - 0.5) < 0.05
    # 1 of the 2 x 2 pairs is mis-ranked
    assert ood_auroc([3.0, 1.0], [2.0, 0.0]) == pytest.approx(0.75)


def test_ood_auroc_invalid():
    with pytest.raises(ValueError, match="scores_in must not be empty"):
        ood_auroc([], [1.0])
    with pytest.raises(ValueError, match="finite"):
        ood_auroc([np.nan, 1.0], [1.0])
    with pytest.raises(ValueError, match="1-D"):
        ood_auroc(np.zeros((3, 3)), [1.0])
