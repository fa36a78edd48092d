"""n_threads: the torch thread count of fit and of the sampling calls, restored afterwards, safe in threads."""

import threading

import numpy as np
import pytest
import torch
from joblib import Parallel, delayed
from skorch.callbacks import Callback

from skebm import EBMGenerator, NGEBMClassifier
from skebm._threads import AUTO_FLOPS, _forward_flops, auto_threads, thread_limit
from skebm.datasets import make_toy_2d
from skebm.nn import ConvEnergy, MLPEnergy, ResNetEnergy

OPENMP = "OpenMP" in torch.__config__.parallel_info().split("ATen parallel backend:")[-1]


@pytest.fixture
def two_threads():
    """The process runs with 2 torch threads during the test (xdist workers are set to 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


class RecordThreads(Callback):
    def initialize(self):
        self.seen_ = []
        return self

    def on_batch_end(self, net, **kwargs):
        self.seen_.append(torch.get_num_threads())


class ThreadProbe(torch.nn.Module):
    """An energy recording the thread count of every forward pass."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 1)
        self.seen = []

    def forward(self, x):
        self.seen.append(torch.get_num_threads())
        return self.lin(x).squeeze(-1)


X = make_toy_2d("moons", 128, random_state=0)
SMALL = dict(max_iter=4, batch_size=16, n_steps=2, buffer_size=32, random_state=0)


def test_thread_limit_sets_and_restores_and_nests(two_threads):
    with thread_limit(1):
        assert torch.get_num_threads() == 1
        with thread_limit(2):  # nested: the outer scope's count stands
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with thread_limit(None):
        assert torch.get_num_threads() == 2


def test_fit_and_sampling_run_with_n_threads_and_restore(two_threads):
    record = RecordThreads()
    gen = EBMGenerator(ThreadProbe(), n_threads=1, callbacks=[record], **SMALL).fit(X)
    assert gen.net_.threads_ == 1
    (recorded,) = [cb for _, cb in gen.net_.callbacks_ if isinstance(cb, RecordThreads)]
    assert recorded.seen_ and set(recorded.seen_) == {1}
    assert torch.get_num_threads() == 2  # restored after fit
    probe = gen.net_.evaluation_module()  # the network sampling and scores run (the weight average by default)
    probe.seen.clear()
    gen.sample(4, random_state=0)
    gen.score_samples(X[:8])
    assert probe.seen and set(probe.seen) == {1}
    assert torch.get_num_threads() == 2  # restored after the sampling calls


def test_warm_start_applies_a_changed_n_threads(two_threads):
    gen = EBMGenerator(ThreadProbe(), n_threads=1, warm_start=True, **SMALL).fit(X)
    gen.set_params(n_threads=2).fit(X)
    assert gen.net_.threads_ == 2


def test_auto_uses_one_thread_for_small_networks_and_all_for_large_ones(two_threads):
    assert _forward_flops(MLPEnergy(2), (2,)) * 64 < AUTO_FLOPS
    assert _forward_flops(ConvEnergy((1, 8, 8)), (1, 8, 8)) * 64 < AUTO_FLOPS
    assert auto_threads(MLPEnergy(2), (2,), 64) == 1
    assert auto_threads(ConvEnergy((1, 8, 8)), (1, 8, 8), 64) == 1
    assert auto_threads(ResNetEnergy((3, 32, 32)), (3, 32, 32), 64) == 2
    assert EBMGenerator(**SMALL).fit(X).net_.threads_ == 1  # the default MLP on 2-D data


def test_auto_shares_the_cores_between_concurrent_fits(two_threads):
    inside, release = threading.Event(), threading.Event()

    def other_fit():
        with thread_limit(1, fit=True):
            inside.set()
            release.wait(10)

    t = threading.Thread(target=other_fit)
    t.start()
    try:
        inside.wait(10)
        assert auto_threads(ResNetEnergy((3, 32, 32)), (3, 32, 32), 64) == 1  # 2 cores, 2 fits
    finally:
        release.set()
        t.join()
    assert auto_threads(ResNetEnergy((3, 32, 32)), (3, 32, 32), 64) == 2
    assert torch.get_num_threads() == 2


@pytest.mark.skipif(not OPENMP, reason="per-thread counts need torch's OpenMP backend")
def test_concurrent_fits_in_threads_keep_their_own_counts(two_threads):
    results = {}

    def fit(n):
        gen = EBMGenerator(ThreadProbe(), n_threads=n, **SMALL).fit(X)
        results[n] = set(gen.net_.module_.seen)

    threads = [threading.Thread(target=fit, args=(n,)) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {1: {1}, 2: {2}}
    assert torch.get_num_threads() == 2


def test_threaded_fits_with_n_threads_equal_the_serial_fit():
    y = np.arange(128) % 2
    make = lambda: NGEBMClassifier(n_threads=1, **{**SMALL, "max_iter": 10})  # noqa: E731
    serial = [make().fit(X, y).predict_proba(X) for _ in range(2)]
    fit_predict = lambda: make().fit(X, y).predict_proba(X)  # noqa: E731
    threaded = Parallel(n_jobs=2, backend="threading")(delayed(fit_predict)() for _ in range(2))
    for a, b in zip(serial, threaded):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_auto_in_a_loky_worker_stays_within_the_worker_limit():
    """loky sets OMP_NUM_THREADS = cores // n_jobs in its workers; torch and "auto" stay within it."""

    def probe():
        import os

        import torch

        from skebm._threads import auto_threads
        from skebm.nn import ResNetEnergy

        return os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads(), auto_threads(
            ResNetEnergy((3, 32, 32)), (3, 32, 32), 64
        )

    out = Parallel(n_jobs=2, backend="loky")(delayed(probe)() for _ in range(2))
    for env, torch_threads, auto in out:
        assert env is not None and auto <= torch_threads == int(env)
