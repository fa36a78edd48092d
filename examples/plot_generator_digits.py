"""
=====================================
Generating handwritten digits (8x8)
=====================================

Fit an :class:`~skebm.EBMGenerator` on scikit-learn's 8x8 digits, draw
samples by shortrun Langevin dynamics, look at the training curves, and
complete the lower half of test digits with
:meth:`~skebm.EBMGenerator.inpaint`.

The images are passed flattened, with ``image_shape=(1, 8, 8)``; the
generator rescales the 0..16 pixel values to [-1, 1] internally and returns
samples on the original scale. To keep the example short it trains for
fewer updates than the default ``max_iter``; ``make demo`` in the
repository runs the defaults.
"""

# %%
# Fit the generator
# -----------------
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import train_test_split

from skebm import EBMGenerator
from skebm.datasets import load_digits_images
from skebm.plotting import plot_sample_grid, plot_training_curves

digits = load_digits_images()
X_train, X_test = train_test_split(digits.data, test_size=0.1, random_state=0)

gen = EBMGenerator(image_shape=digits.image_shape, max_iter=500, random_state=0)
start = time.perf_counter()
gen.fit(X_train)
print(f"{gen.n_iter_} updates in {time.perf_counter() - start:.0f} s")

# %%
# Samples
# -------
# Chains start from the replay buffer of past negatives kept from training
# (the IGEBM recipe) and run the training number of Langevin steps.
samples = gen.sample(100, random_state=0)
print("samples:", samples.shape, "pixel range", samples.min(), samples.max())

fig, axes = plt.subplots(1, 2, figsize=(10, 5))
plot_sample_grid(X_train[:100], image_shape=digits.image_shape, ax=axes[0], cmap="gray_r", title="training digits")
plot_sample_grid(samples, image_shape=digits.image_shape, ax=axes[1], cmap="gray_r", title="EBMGenerator samples")
fig.tight_layout()

# %%
# Training curves
# ---------------
# The skorch engine ``gen.net_`` records, for every update, the loss and
# the mean energy of the data batch and of the Langevin samples. Early on
# the samples have a much higher energy than the data; as they improve,
# the two energies meet and the loss oscillates around zero, the usual
# picture of a stable shortrun EBM.
batches = [row for epoch in gen.net_.history for row in epoch["batches"]]
curves = {key: [row[key] for row in batches] for key in ("train_loss", "energy_data", "energy_samples")}
fig, ax = plt.subplots(figsize=(8, 4))
plot_training_curves(curves, ax=ax, xlabel="parameter update")
fig.tight_layout()

# %%
# Inpainting
# ----------
# Hide the lower half of held-out digits and let Langevin dynamics fill it
# in, moving only the hidden pixels.
observed = X_test[:10]
mask = np.zeros_like(observed, dtype=bool)
mask[:, 32:] = True  # rows 4..7 of each 8x8 image
filled = gen.inpaint(observed, mask, random_state=0)
shown = np.where(mask, 0.0, observed)

fig, axes = plt.subplots(3, 1, figsize=(8, 3.6))
for ax, images, title in zip(axes, (observed, shown, filled), ("held-out digits", "lower half hidden", "inpainted")):
    plot_sample_grid(images, image_shape=digits.image_shape, n_cols=10, ax=ax, cmap="gray_r", title=title)
fig.tight_layout()
plt.show()
