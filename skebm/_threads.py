"""Torch intra-op threads of a fit or a sampling call (the ``n_threads`` parameter).

How torch's thread count behaves, and what skebm does with it
--------------------------------------------------------------
``torch.set_num_threads`` looks process-global, but with the OpenMP
backend of the Linux and Windows wheels (``torch.__config__.parallel_info()``)
it sets the *calling thread's* OpenMP thread count (and a process-wide
default that threads read once, when they first run a parallel kernel).
Other threads keep their own count. :func:`thread_limit` relies on neither
property alone:

- it saves and restores the count of the calling thread, so a fit in one
  thread never changes the count another thread computes with;
- a process-wide reference count (under a lock) remembers the count from
  before the first of several concurrent scopes and puts it back when the
  last one ends, so the process-wide default that new threads inherit is
  left as it was, whatever order concurrent fits end in;
- nested scopes in one thread (a sampling call inside a fit, an energy
  evaluation inside a chain) cost two attribute reads: only the outermost
  one sets the count.

With torch's native thread pool (a build without OpenMP) the count is truly
process-global: concurrent scopes asking for different counts then share
the last one set until the first of them ends (never more than the largest
asked for).

``"auto"``
----------
Small energies are latency-bound: their kernels are too short to split,
and OpenMP threads that share cores with other work spin against each
other (on two loaded cores, measured in ``benchmarks/bench_scaling.py``, a
Langevin step of the default 8x8 conv net ran 40 times slower with two
threads than with one). So ``"auto"`` resolves to

- **1 thread** when one forward pass of a training batch costs fewer than
  :data:`AUTO_FLOPS` floating-point operations (the default MLP on 2-D data,
  the 8x8 conv net: ~4e6 and ~1e8 per batch of 64);
- otherwise the count the process runs with (``torch.get_num_threads()``
  of the calling thread: all cores by default), divided by the number of
  skebm fits running concurrently in this process (threaded searches).

The count the process runs with is the limit set by a job launcher:
joblib's loky workers, dask's nanny-started workers and ray's workers set
``OMP_NUM_THREADS`` for the processes they start (to ``cores // n_jobs``,
1 and the task's ``num_cpus``), which torch reads when it is imported, and
``threadpoolctl.threadpool_limits`` lowers it too. So ``"auto"`` never uses
more threads than the worker it runs in was given.

An integer ``n_threads`` is used as given (``torch.set_num_threads``
during the call), a launcher's limit notwithstanding.

Thread counts and bits
----------------------
Parallel reductions split their work by thread count, so float32 results
can differ in the last bits between thread counts. A seeded fit is
reproducible for a fixed count: pass an integer ``n_threads`` where results
must match bit for bit across machines (or across the concurrency of a
threaded search with a large network, where ``"auto"`` depends on how many
fits run at once).
"""

import contextlib
import copy
import math
import threading

import torch

__all__ = ["AUTO_FLOPS", "auto_threads", "resolve_n_threads", "thread_limit"]

#: Forward-pass FLOPs of one training batch below which ``"auto"`` uses one thread.
AUTO_FLOPS = 1e9

_lock = threading.Lock()
_state = {"active": 0, "saved": None, "fits": 0}
_local = threading.local()


def _depth():
    return getattr(_local, "depth", 0)


@contextlib.contextmanager
def thread_limit(n_threads, *, fit=False):
    """Run the block with ``n_threads`` torch intra-op threads, restored afterwards.

    Parameters
    ----------
    n_threads : int or None
        Threads of the block; ``None`` changes nothing.
    fit : bool, default=False
        Whether the block is a fit (counted for ``"auto"``, see
        :func:`auto_threads`).

    Yields
    ------
    None
    """
    if n_threads is None or _depth() > 0:  # nested: the outer scope set the count
        _local.depth = _depth() + 1
        try:
            yield
        finally:
            _local.depth -= 1
        return
    n_threads = int(n_threads)
    with _lock:
        if _state["active"] == 0:
            _state["saved"] = torch.get_num_threads()
        _state["active"] += 1
        _state["fits"] += bool(fit)
    before = torch.get_num_threads()
    if before != n_threads:
        torch.set_num_threads(n_threads)
    _local.depth = 1
    try:
        yield
    finally:
        _local.depth = 0
        with _lock:
            _state["active"] -= 1
            _state["fits"] -= bool(fit)
            last = _state["active"] == 0
            restore = _state["saved"] if last else before
            if torch.get_num_threads() != restore:
                torch.set_num_threads(restore)


def _forward_flops(module, feature_shape):
    """FLOPs of one forward pass of one sample: its linear and convolution layers, on a meta-device copy.

    Forward hooks on the copy's own layers (not torch's global module hooks,
    which ``FlopCounterMode`` installs and which would fire in every
    thread's autograd): no side effect on the network or on other threads.
    """
    layers = (torch.nn.Linear, torch.nn.modules.conv._ConvNd)
    total = [0.0]

    def count(layer, inputs, output):
        weight = getattr(layer, "weight", None)
        if isinstance(weight, torch.Tensor) and isinstance(output, torch.Tensor) and output.ndim >= 2:
            channels = output.shape[-1] if isinstance(layer, torch.nn.Linear) else output.shape[1]
            # a multiply-add per weight and output position
            total[0] += 2.0 * weight.numel() * output.numel() / max(1, channels)

    try:
        meta = copy.deepcopy(module).to("meta")
        for layer in meta.modules():
            if isinstance(layer, layers):
                layer.register_forward_hook(count)
        with torch.no_grad():
            meta(torch.zeros((1, *feature_shape), device="meta"))
        return total[0]
    except Exception:  # a layer without a meta kernel: estimate from the weights  # noqa: BLE001
        n_weights = sum(p.numel() for p in module.parameters())
        return 2.0 * n_weights * max(1, math.prod(feature_shape[1:]))


def auto_threads(module, feature_shape, batch_size):
    """What ``n_threads="auto"`` resolves to for ``module`` on batches of ``batch_size``.

    Parameters
    ----------
    module : torch.nn.Module
        The energy network.
    feature_shape : tuple of int
        Shape of one sample as the network sees it.
    batch_size : int
        Rows per forward pass (per process).

    Returns
    -------
    n_threads : int
    """
    if _forward_flops(module, tuple(feature_shape)) * batch_size < AUTO_FLOPS:
        return 1
    ambient = _state["saved"] if _depth() == 0 and _state["active"] and _state["saved"] else torch.get_num_threads()
    return max(1, ambient // (_state["fits"] + 1))


def resolve_n_threads(n_threads, module, feature_shape, batch_size):
    """The thread count of the ``n_threads`` parameter (an int, or ``"auto"``: :func:`auto_threads`)."""
    if n_threads == "auto":
        return auto_threads(module, feature_shape, batch_size)
    return int(n_threads)
