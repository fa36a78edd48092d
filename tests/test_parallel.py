"""Search with threads and processes: the same scores as serial."""

import numpy as np
import pytest
from joblib import parallel_backend
from sklearn.model_selection import GridSearchCV

from skebm import EBMDensity, NGEBMClassifier
from skebm.datasets import make_toy_2d


@pytest.mark.parametrize("backend", ["threading", "loky"])
def test_grid_search_in_parallel_gives_the_serial_scores(backend):
    X, y = make_toy_2d("moons", 200, random_state=0), np.arange(200) % 2
    clf = NGEBMClassifier(max_iter=20, batch_size=16, energy_params={"hidden_units": (8,)}, random_state=0)
    grid = {"energy_variance": [0.0, 0.1], "lr": [1e-3, 1e-2]}
    serial = GridSearchCV(clf, grid, cv=2).fit(X, y).cv_results_["mean_test_score"]
    with parallel_backend(backend, n_jobs=2):
        parallel = GridSearchCV(clf, grid, cv=2, n_jobs=2).fit(X, y).cv_results_["mean_test_score"]
    np.testing.assert_array_equal(parallel, serial)


def test_density_search_with_threads_gives_the_serial_scores():
    X = make_toy_2d("8gaussians", 300, random_state=0)
    est = EBMDensity(
        max_iter=6, batch_size=32, n_steps=3, buffer_size=64, burnin_size=32, burnin_updates=2, base_components=2,
        energy_params={"hidden_units": (8,), "fourier_features": 4}, grid_resolution=65, random_state=0,
    )
    grid = {"lr": [1e-3, 3e-3]}
    serial = GridSearchCV(est, grid, cv=2).fit(X).cv_results_["mean_test_score"]
    with parallel_backend("threading", n_jobs=2):
        threaded = GridSearchCV(est, grid, cv=2, n_jobs=2).fit(X).cv_results_["mean_test_score"]
    np.testing.assert_allclose(threaded, serial, rtol=1e-6)
