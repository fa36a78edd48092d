"""Every estimator's everyday path, run from an installed wheel with only
skebm's declared dependencies (no extras): see ci/bare_install.sh.

fit, sample / transform / predict, score, skebm.save / skebm.load, the file
loaders on tiny files written here in their real formats, and a plot. Small
settings: a few seconds each on one CPU core.
"""

import os
import pickle
import struct
import sys
import tempfile

import numpy as np

import skebm
from skebm import EBMDensity, EBMGenerator, EBMPurifier, NGEBMClassifier, PurifiedClassifier
from skebm.density import QuadratureML

assert "site-packages" in skebm.__file__, f"skebm imported from {skebm.__file__}, not from the installed wheel"
print("skebm", skebm.__version__, "from", os.path.dirname(skebm.__file__))

from sklearn.datasets import load_digits  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

X, y = load_digits(return_X_y=True)
X, y = X[:300], y[:300]
tmp = tempfile.mkdtemp(prefix="skebm-bare-")


def roundtrip(est, check):
    path = os.path.join(tmp, type(est).__name__ + ".safetensors")
    skebm.save(est, path)
    again = skebm.load(path)
    np.testing.assert_allclose(check(again), check(est), rtol=1e-5, atol=1e-6)
    print(f"  {type(est).__name__}: save/load round trip ok ({os.path.getsize(path)} bytes)")


# EBMGenerator: fit, sample, score, inpaint, save/load
gen = EBMGenerator(image_shape=(1, 8, 8), max_iter=5, n_steps=3, batch_size=32, random_state=0).fit(X)
assert gen.sample(4, random_state=0).shape == (4, 64)
assert np.isfinite(gen.score(X[:20]))
mask = np.zeros_like(X[:2], dtype=bool)
mask[:, 32:] = True
assert gen.inpaint(X[:2], mask).shape == (2, 64)
roundtrip(gen, lambda e: e.score_samples(X[:5]))

# EBMPurifier + PurifiedClassifier: fit, transform, predict, score, save/load
pur = EBMPurifier(image_shape=(1, 8, 8), max_iter=5, n_steps=3, n_purify_steps=3, random_state=0).fit(X)
assert pur.transform(X[:4]).shape == (4, 64)
roundtrip(pur, lambda e: e.score_samples(X[:5]))
clf = PurifiedClassifier(pur, LogisticRegression(max_iter=200), n_replicates=2).fit(X, y)
assert clf.predict(X[:4]).shape == (4,) and 0 <= clf.score(X[:50], y[:50]) <= 1

# EBMDensity: fit, score_samples, score, sample, save/load
from skebm.datasets import make_toy_2d  # noqa: E402

X2 = make_toy_2d("moons", 300, random_state=0)
dens = EBMDensity(max_iter=10, method=QuadratureML(grid_resolution=32), random_state=0).fit(X2)
assert np.isfinite(dens.score(X2)) and dens.sample(4, random_state=0).shape == (4, 2)
roundtrip(dens, lambda e: e.score_samples(X2[:5]))
flow = EBMDensity(base="flow", max_iter=5, method=QuadratureML(grid_resolution=16), random_state=0).fit(X2)
assert np.isfinite(flow.score(X2)) and type(flow.base_).__name__ == "FlowSource"
roundtrip(flow, lambda e: e.score_samples(X2[:5]))

# NGEBMClassifier: fit, predict, predict_proba, score, save/load
ng = NGEBMClassifier(max_iter=20, random_state=0).fit(X, y)
assert ng.predict_proba(X[:3]).shape == (3, 10) and 0 <= ng.score(X, y) <= 1
roundtrip(ng, lambda e: e.predict_proba(X[:5]))

# the loaders, on tiny files in their real on-disk formats
from skebm.datasets import load_cifar10, load_digits_images, load_image_folder, load_mnist  # noqa: E402

rng = np.random.RandomState(0)
mnist_dir = os.path.join(tmp, "mnist")
os.makedirs(mnist_dir)
for prefix in ("train", "t10k"):
    images, labels = rng.randint(0, 256, (5, 28, 28)).astype(np.uint8), rng.randint(0, 10, 5).astype(np.uint8)
    for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
        header = struct.pack(">I", 0x0800 | arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
        with open(os.path.join(mnist_dir, f"{prefix}-{kind}-ubyte"), "wb") as f:
            f.write(header + arr.tobytes())
assert load_mnist(mnist_dir).data.shape == (5, 784)

cifar_dir = os.path.join(tmp, "cifar")
os.makedirs(cifar_dir)
for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
    batch = {b"labels": rng.randint(0, 10, 3).tolist(), b"data": rng.randint(0, 256, (3, 3072)).astype(np.uint8)}
    with open(os.path.join(cifar_dir, name), "wb") as f:
        pickle.dump(batch, f)
with open(os.path.join(cifar_dir, "batches.meta"), "wb") as f:
    pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, f)
assert load_cifar10(cifar_dir, split="test").data.shape == (3, 3072)

from PIL import Image  # noqa: E402

for cls in ("a", "b"):
    os.makedirs(os.path.join(tmp, "folder", cls))
    for i in range(2):
        Image.fromarray(rng.randint(0, 256, (12, 12, 3)).astype(np.uint8)).save(
            os.path.join(tmp, "folder", cls, f"{i}.png"))
assert load_image_folder(os.path.join(tmp, "folder"), image_size=8).data.shape == (4, 3 * 8 * 8)
assert load_digits_images().images.shape[1:] == (1, 8, 8)
print("  loaders: load_mnist, load_cifar10, load_image_folder, load_digits_images ok")

# a plot (matplotlib's non-interactive backend)
import matplotlib  # noqa: E402

matplotlib.use("Agg")
from skebm.plotting import plot_sample_grid  # noqa: E402

fig = plot_sample_grid(gen.sample(8, random_state=0), image_shape=(1, 8, 8))
fig = getattr(fig, "figure", fig)
fig.savefig(os.path.join(tmp, "grid.png"))
print("  plot_sample_grid ok")

# the lazy submodules, as scikit-learn's
assert skebm.metrics.expected_calibration_error is not None and "datasets" in dir(skebm)
print("bare install smoke: every path ok")
