"""
======================================================
Purifying digits and attacking the purified classifier
======================================================

:class:`~skebm.EBMPurifier` learns an energy of the training images and
*purifies* an input by running Langevin dynamics from it.
:class:`~skebm.PurifiedClassifier` averages a classifier over several
purified copies of each input. Here we train a small convolutional
classifier on scikit-learn's 8x8 digits (pixels scaled to [0, 1]), fit a
purifier on the same images, look at what purification does to noisy
digits, and then attack both the bare and the purified classifier with
L-infinity attacks that adapt to the purifier: PGD with BPDA + EOT,
full-gradient PGD-EOT through every Langevin step, and APGD-EOT from
torchattacks. An input counts as robust only if it survives all of them.

The run is kept short (small networks, few updates, weak 5-step attacks on
30 test images), so the numbers are indicative only; see
``benchmarks/bench_purifier.py`` for the full evaluation and the user guide
for its tables.
"""

# %%
# A classifier trained normally
# -----------------------------
# A skorch ``NeuralNetClassifier`` with two convolutions. Its inputs are the
# flat 64-pixel rows; the network reshapes them to images.
import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import train_test_split
from skorch import NeuralNetClassifier
from torch import nn

from skebm import EBMPurifier, PurifiedClassifier
from skebm.attacks import evaluate_robustness
from skebm.plotting import plot_robustness, plot_sample_grid

X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=1 / 3, stratify=y, random_state=0)


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 16, 10),
        )

    def forward(self, x):
        return self.body(x.view(-1, 1, 8, 8))


torch.manual_seed(0)
cnn = NeuralNetClassifier(
    SmallCNN,
    criterion=nn.CrossEntropyLoss,
    optimizer=torch.optim.Adam,
    lr=2e-3,
    max_epochs=12,
    train_split=None,
    verbose=0,
)
cnn.fit(X_train, y_train)
print(f"CNN test accuracy: {cnn.score(X_test, y_test):.3f}")

# %%
# Fit the purifier
# ----------------
# A small convolutional energy, trained by maximum likelihood with Langevin
# negatives that start at noise-corrupted training images (``init="data"``
# with ``init_noise``): the model learns to bring perturbed images back to
# the data within ``n_steps`` steps. Scaled down for 8x8 images and a CPU.
purifier = EBMPurifier(
    energy="conv",
    image_shape=(1, 8, 8),
    energy_params={"channels": (16, 32, 64)},
    max_iter=200,
    n_steps=25,
    n_purify_steps=25,
    random_state=0,
).fit(X_train)

# %%
# Purification pulls noisy digits back towards the data
# -----------------------------------------------------
# Gaussian noise takes the digits off the data manifold; purification
# removes much of it while keeping the digit (rows: clean, noisy, purified).
rng = np.random.RandomState(0)
clean = X_test[:8]
noisy = np.clip(clean + rng.normal(0, 0.25, clean.shape), 0, 1).astype(np.float32)
purified = purifier.transform(noisy)
fig, ax = plt.subplots(figsize=(6, 2.6))
plot_sample_grid(np.vstack([clean, noisy, purified]), image_shape=(1, 8, 8), n_cols=8, ax=ax)
ax.set_title("clean / noisy / purified")

for name, Z in [("clean", clean), ("noisy", noisy), ("purified", purified)]:
    print(f"mean energy of the {name} digits: {-purifier.score_samples(Z).mean():.3f}")

# %%
# The defended classifier
# -----------------------
# Both components are fitted already: ``FrozenEstimator`` keeps
# ``PurifiedClassifier.fit`` from refitting them. Each prediction averages
# the CNN's logits over 4 purified replicates of the input.
defended = PurifiedClassifier(FrozenEstimator(purifier), FrozenEstimator(cnn), n_replicates=4)
defended.fit(X_train, y_train)
print(f"purified CNN test accuracy: {defended.score(X_test, y_test):.3f}")

# %%
# Attack both, honestly
# ---------------------
# ``evaluate_robustness`` attacks the bare CNN with PGD and APGD, and the
# defended one with three adaptive attacks, one column each:
#
# * ``"bpda"``: PGD with BPDA + EOT, the purifier is the identity in the
#   backward pass and the gradients of ``eot_samples`` purified copies are
#   averaged;
# * ``"full_gradient"``: PGD-EOT through every Langevin step of the chain
#   (second derivatives of the energy, checkpointed), fresh noise at every
#   step (``noise_mode="reparameterised"`` fixes the draws instead: an attacker
#   who knows the seed);
# * ``"apgd"``: torchattacks' APGD with EOT, through the same chain.
#
# Every iterate is judged by the defence's own verdict (logits averaged over
# ``n_replicates`` fresh purifications) and an input misclassified once is
# broken. ``"min over attacks"`` counts an input as robust only if it
# survives every attack; ``"N-eval"`` (DiffHammer) breaks it if any of
# ``n_evaluations`` defended predictions of an attack's final input is
# wrong. Row 0 is the natural accuracy.
table = evaluate_robustness(
    defended,
    X_test[:30],
    y_test[:30],
    epsilons=[0.1, 0.2],
    pgd_steps=5,
    eot_samples=2,
    n_evaluations=4,
    bounds=(0, 1),
    random_state=0,
)
print(table.round(3))
print(table.attrs["attack"])
plot_robustness(table[["undefended", "min over attacks", "N-eval"]])
plt.show()

# %%
# Robust accuracy under these attacks is an upper bound: more attack steps,
# EOT samples, restarts or another attack can only lower it, and the
# per-input minimum never exceeds any single column. On digits the
# benchmark's purifier gains little over the undefended CNN under the
# minimum over attacks, and stays well below adversarial training; read the
# user guide before drawing conclusions from such numbers.
