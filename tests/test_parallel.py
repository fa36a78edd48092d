"""Search with threads and processes: the same scores as serial."""

import numpy as np
import pytest
from joblib import parallel_backend
from sklearn.model_selection import GridSearchCV

from skebm import EBMDensity, NGEBMClassifier
from skebm.density import QuadratureML
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
        method=QuadratureML(grid_resolution=65), max_iter=6, batch_size=32,
        energy_params={"hidden_units": (8,), "fourier_features": 4}, random_state=0,
    )
    grid = {"lr": [1e-3, 3e-3]}
    serial = GridSearchCV(est, grid, cv=2).fit(X).cv_results_["mean_test_score"]
    with parallel_backend("threading", n_jobs=2):
        threaded = GridSearchCV(est, grid, cv=2, n_jobs=2).fit(X).cv_results_["mean_test_score"]
    np.testing.assert_allclose(threaded, serial, rtol=1e-6)


# ------------------------------------------------------- search on a cluster
def _search_case():
    X, y = make_toy_2d("moons", 200, random_state=0), np.arange(200) % 2
    clf = NGEBMClassifier(max_iter=20, batch_size=16, energy_params={"hidden_units": (8,)}, random_state=0)
    return X, y, clf, {"energy_variance": [0.0, 0.1], "lr": [1e-3, 1e-2]}


def _worker_threads_fn():
    """A function telling what a worker runs with: torch's threads, and n_threads="auto" for a large network.

    Made here, not at module level, so that it is pickled by value: ray's workers cannot import this test module.
    """

    def worker_threads():
        import torch

        from skebm._threads import auto_threads
        from skebm.nn import ResNetEnergy

        return torch.get_num_threads(), auto_threads(ResNetEnergy((3, 32, 32)), (3, 32, 32), 64)

    return worker_threads


@pytest.mark.distributed
@pytest.mark.parametrize("processes", [pytest.param(True, marks=pytest.mark.slow), False], ids=["processes", "threads"])
def test_search_on_a_dask_cluster_gives_the_serial_scores(processes):
    distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed (distributed extra)")
    from sklearn.model_selection import RandomizedSearchCV

    X, y, clf, grid = _search_case()
    serial_grid = GridSearchCV(clf, grid, cv=2).fit(X, y).cv_results_["mean_test_score"]
    random_search = RandomizedSearchCV(clf, grid, n_iter=3, cv=2, random_state=0)
    serial_random = random_search.fit(X, y).cv_results_["mean_test_score"]
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=processes, dashboard_address=None, silence_logs=50
    ) as cluster, distributed.Client(cluster) as client:
        with parallel_backend("dask"):
            on_dask = GridSearchCV(clf, grid, cv=2).fit(X, y).cv_results_["mean_test_score"]
            on_dask_random = random_search.fit(X, y).cv_results_["mean_test_score"]
        threads = list(client.run(_worker_threads_fn()).values()) if processes else []
    np.testing.assert_array_equal(on_dask, serial_grid)
    np.testing.assert_array_equal(on_dask_random, serial_random)
    # the nanny starts workers with OMP_NUM_THREADS=1: torch, and "auto" even for a ResNet, use one thread
    assert all(t == (1, 1) for t in threads), threads


@pytest.mark.distributed
@pytest.mark.slow
def test_search_on_ray_gives_the_serial_scores():
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'ray[default]')")
    from ray.util.joblib import register_ray

    X, y, clf, grid = _search_case()
    serial = GridSearchCV(clf, grid, cv=2).fit(X, y).cv_results_["mean_test_score"]
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=200 * 2**20)
    except Exception as exc:  # noqa: BLE001 (no shared memory, no free port, a sandbox: ray cannot start here)
        pytest.skip(f"ray cannot start here: {type(exc).__name__}: {exc}")
    try:
        register_ray()
        with parallel_backend("ray", n_jobs=2):
            on_ray = GridSearchCV(clf, grid, cv=2, n_jobs=2).fit(X, y).cv_results_["mean_test_score"]
        threads = ray.get([ray.remote(_worker_threads_fn()).remote() for _ in range(2)])
    finally:
        ray.shutdown()
    np.testing.assert_array_equal(on_ray, serial)
    assert all(t == (1, 1) for t in threads), threads  # ray's workers: OMP_NUM_THREADS = the task's num_cpus (1)
