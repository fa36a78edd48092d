"""
==========================================================
Calibration of the non-generative EBM classifier on digits
==========================================================

A neural network trained with plain cross-entropy tends to be
over-confident: its top-class probability is larger than its accuracy.
:class:`~skebm.NGEBMClassifier` reads the logits as an energy-based model and
adds two terms to the loss (the variance of the energies of the training
batch and their gradient norm, the "approximate mass"), which keeps the
logits in check. Here we fit it and the same network with
``energy_variance=0, approximate_mass=0`` (the plain cross-entropy
baseline: same network, same batches, same number of updates) on
scikit-learn's 8x8 digits, and compare their reliability diagrams, their
expected calibration error (ECE) and their energy-based out-of-distribution
score on noise images.
"""

# %%
# Fit NG-EBM and the cross-entropy baseline
# -----------------------------------------
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from skebm import NGEBMClassifier
from skebm.metrics import expected_calibration_error
from skebm.plotting import plot_ood_histograms, plot_reliability_diagram

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.5, stratify=y, random_state=0)

models = {
    "NG-EBM (defaults)": NGEBMClassifier(random_state=0),
    "cross-entropy baseline": NGEBMClassifier(energy_variance=0, approximate_mass=0, random_state=0),
}
for name, clf in models.items():
    start = time.perf_counter()
    clf.fit(X_train, y_train)
    proba = clf.predict_proba(X_test)
    print(
        f"{name:24s} accuracy {clf.score(X_test, y_test):.3f}  "
        f"ECE {expected_calibration_error(y_test, proba):.4f}  "
        f"fit {time.perf_counter() - start:.1f} s"
    )

# %%
# Reliability diagrams
# --------------------
# Each bar is one bin of top-class confidence; its height is the accuracy of
# the predictions in that bin. A calibrated model follows the diagonal. Most
# predictions of both models are confident and right; the difference is in
# the errors: the baseline makes them with a confidence close to 1.
fig, axes = plt.subplots(1, 2, figsize=(10, 4.5), sharey=True)
for ax, (name, clf) in zip(axes, models.items()):
    plot_reliability_diagram(y_test, clf.predict_proba(X_test), n_bins=10, ax=ax, label=name)
    ax.set_title(name)
fig.tight_layout()

# %%
# Where the errors are
# --------------------
# The confidence of the misclassified test digits: NG-EBM is less sure of
# its mistakes.
fig, ax = plt.subplots(figsize=(6, 3.5))
for name, clf in models.items():
    proba = clf.predict_proba(X_test)
    wrong = clf.classes_[proba.argmax(1)] != y_test
    ax.hist(proba.max(1)[wrong], bins=np.linspace(0, 1, 21), alpha=0.6, label=f"{name} ({wrong.sum()} errors)")
ax.set_xlabel("top-class probability of the misclassified digits")
ax.set_ylabel("count")
ax.legend()
fig.tight_layout()

# %%
# Energy as an out-of-distribution score
# --------------------------------------
# ``ood_score`` (by default the logsumexp of the logits, ``-E(x)``) is higher
# for inputs that look like the training data. Images of uniform noise get a
# *larger* logsumexp than real digits from the cross-entropy network; the
# energy-variance term pins the energies of the data and reverses that.
# (``ood_score(X, kind="approximate_mass")``, the gradient-norm score, does
# even better here; ``benchmarks/bench_classifier.py`` compares all three.)
noise = np.random.RandomState(0).uniform(0, 16, size=(500, 64))
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
for ax, (name, clf) in zip(axes, models.items()):
    s_in, s_out = clf.ood_score(X_test), clf.ood_score(noise)
    plot_ood_histograms(s_in, s_out, ax=ax, labels=("test digits", "noise images"))
    ax.set_title(name)
    ax.set_xlabel("logsumexp of the logits")
fig.tight_layout()
plt.show()
