"""
===========================================
An energy landscape on two-dimensional data
===========================================

:class:`~skebm.EBMGenerator` fits an energy :math:`E(x)` to points of the
two-moons toy distribution (flat features: the energy network is an MLP).
We draw the learned density :math:`\\exp(-E)` on a grid with
:func:`~skebm.plotting.plot_energy_landscape`, overlay the data and the
Langevin samples, and fill in a missing coordinate with
:meth:`~skebm.EBMGenerator.inpaint`.

Two-dimensional data need other Langevin settings than images: a smaller
step with more noise, and almost no L2 energy regularisation, so that the
energy can become steep enough to separate the moons.
"""

# %%
# Data and model
# --------------
import time

import matplotlib.pyplot as plt
import numpy as np

from skebm import EBMGenerator
from skebm.datasets import make_toy_2d
from skebm.plotting import plot_energy_landscape

X = make_toy_2d("moons", 2000, random_state=0)

gen = EBMGenerator(
    max_iter=1000,
    n_steps=20,
    step_size=0.2,
    noise_scale=0.05,
    l2_reg=1e-3,
    random_state=0,
)
start = time.perf_counter()
gen.fit(X)
print(f"{gen.n_iter_} updates in {time.perf_counter() - start:.0f} s")

# %%
# Energy landscape and samples
# ----------------------------
# ``score_samples`` returns :math:`-E(x)`, an unnormalised log-density, so it
# is passed with ``log_density=True``; the plot normalises
# :math:`\exp(-E)` over the window. Samples start from the replay buffer
# kept from training; ``start="source"`` shows what 20 steps from fresh noise
# give.
samples = gen.sample(1000, random_state=0)
from_noise = gen.sample(1000, start="source", random_state=0)

fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharex=True, sharey=True)
plot_energy_landscape(gen.score_samples, log_density=True, xlim=(-3, 3), ylim=(-2.5, 2.5), ax=axes[0])
axes[0].set_title(r"learned density $\exp(-E)$")
plot_energy_landscape(
    gen.score_samples, log_density=True, xlim=(-3, 3), ylim=(-2.5, 2.5), data=X[:500], samples=samples, ax=axes[1]
)
axes[1].set_title("data (white) and samples from the buffer (red)")
plot_energy_landscape(
    gen.score_samples, log_density=True, xlim=(-3, 3), ylim=(-2.5, 2.5), samples=from_noise, ax=axes[2]
)
axes[2].set_title("20 Langevin steps from fresh noise")
fig.tight_layout()

# %%
# Inpainting a missing coordinate
# -------------------------------
# Mask the second coordinate of points whose first coordinate is known:
# Langevin dynamics then moves only the masked entry, which samples
# :math:`x_2` given :math:`x_1`. At :math:`x_1 = 0` both moons pass, so the
# conditional has two modes.
x1 = np.full(500, 0.0)
partial = np.column_stack([x1, np.zeros_like(x1)])
mask = np.zeros_like(partial, dtype=bool)
mask[:, 1] = True
filled = gen.inpaint(partial, mask, n_steps=100, random_state=0)

fig, ax = plt.subplots(figsize=(5, 3.5))
near = np.abs(X[:, 0]) < 0.1
ax.hist(X[near, 1], bins=30, density=True, alpha=0.5, label=r"data with $|x_1| < 0.1$")
ax.hist(filled[:, 1], bins=30, density=True, alpha=0.5, label=r"inpainted $x_2$ at $x_1 = 0$")
ax.set_xlabel(r"$x_2$")
ax.legend()
fig.tight_layout()
plt.show()
