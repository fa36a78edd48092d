"""Scaling out: threads, parallel searches and data-parallel processes.

Three tables, each measured in one run so that the ratios share the
machine's state (absolute timings are only as good as the machine is idle:
the load average is printed with every table):

1. **Threads** (``n_threads``): training updates per second of
   ``EBMGenerator`` with 1 thread and with every core, for the MLP on 2-D
   data, the conv net on 8x8 digits and the ResNet on 32x32 images, and
   what ``n_threads="auto"`` picks. Interleaved repeats, median.
2. **Search**: the time per fit of ``GridSearchCV(n_jobs=2)`` (loky
   processes, ``n_threads="auto"``) against the same fits one at a time.
   Target: under 20% lost per fit on 2 cores.
3. **Data-parallel** (``accelerator=Accelerator()``, launched with
   ``torchrun`` on 1 and 2 CPU processes, gloo on loopback): updates/s and
   samples/s (data samples of the global batch per second) for the conv
   8x8 and the ResNet 32x32 energies; the share of an update spent in the
   Langevin chains; the gradient all-reduce volume per update, counted by a
   DDP communication hook (plus the few numbers of the history row), and
   the time of one all-reduce of that size here.
4. **Estimators** (``--sections estimators``, not run by default): training
   updates/s of every estimator in fp32 and bf16 on ``--device`` (the table
   of ``benchmarks/gpu_check.sh`` on a GPU machine).

Usage::

    python benchmarks/bench_scaling.py [--quick] [--out scaling.md] [--sections threads search ddp estimators]
        [--device cuda]
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

CASES = {
    # name: (energy, image shape or None, batch_size, n_steps) of a full run; quick runs shrink them
    "mlp 2-D": ("mlp", None, 64, 10),
    "conv 8x8": ("conv", (1, 8, 8), 64, 10),
    "resnet 32x32": ("resnet", (3, 32, 32), 16, 5),
}
QUICK = {"mlp 2-D": (64, 5), "conv 8x8": (64, 5), "resnet 32x32": (4, 2)}
#: the threads table's ResNet is smaller (it is timed 6 times, half of them with every thread)
THREADS_FULL = {"resnet 32x32": (8, 3)}


def load():
    return f"load average {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "load average n/a"


def data(case, n=512, seed=0):
    rng = np.random.default_rng(seed)
    energy, shape, _, _ = CASES[case]
    if shape is None:
        from skebm.datasets import make_toy_2d

        return make_toy_2d("moons", n, random_state=seed)
    if shape == (1, 8, 8):
        from sklearn.datasets import load_digits

        return load_digits().data[:n].reshape(-1, 1, 8, 8)
    return rng.random((n, *shape)).astype(np.float32)


def estimator(case, quick, sizes=None, **kw):
    from skebm import EBMGenerator

    energy, shape, batch, steps = CASES[case]
    if quick:
        batch, steps = QUICK[case]
    if sizes is not None:
        batch, steps = sizes.get(case, (batch, steps))
    return EBMGenerator(energy, batch_size=batch, n_steps=steps, buffer_size=256, random_state=0, **kw)


class _UpdateClock:
    """A skorch callback: wall time of every update, and of its chains (draw_negatives)."""

    def __init__(self):
        from skorch.callbacks import Callback

        clock = self

        class Clock(Callback):
            def on_train_begin(self, net, **kwargs):
                clock.marks, clock.sampling = [time.perf_counter()], []
                draw = net.draw_negatives

                def timed(*args, **kw):
                    start = time.perf_counter()
                    out = draw(*args, **kw)
                    clock.sampling.append(time.perf_counter() - start)
                    return out

                net.draw_negatives = timed

            def on_batch_end(self, net, training=False, **kwargs):
                if training:
                    clock.marks.append(time.perf_counter())

            def on_train_end(self, net, **kwargs):
                del net.draw_negatives

        self.callback = Clock()

    def per_update(self, skip=1):
        """Median seconds per update (after ``skip`` warm-up updates) and the median share in the chains."""
        dts = np.diff(self.marks)[skip:]
        if not self.sampling:  # no chains (NG-EBM)
            return float(np.median(dts)), 0.0
        share = np.array(self.sampling[skip:]) / dts
        return float(np.median(dts)), float(np.median(share))


# ------------------------------------------------------------------ threads
def bench_threads(quick):
    from skebm._threads import auto_threads

    cores = os.cpu_count() or 1
    rows = []
    n_updates = 4 if quick else 6
    for case in CASES:
        X = data(case)
        times = {1: [], cores: []}
        for _ in range(1 if quick else 2):
            for n in times:
                clock = _UpdateClock()
                sizes = None if quick else THREADS_FULL
                estimator(case, quick, sizes, max_iter=n_updates, n_threads=n, callbacks=[clock.callback]).fit(X)
                times[n].append(clock.per_update()[0])
        one, every = statistics.median(times[1]), statistics.median(times[cores])
        est = estimator(case, quick, None if quick else THREADS_FULL, max_iter=1).fit(X[:64])
        net = est.net_
        rows.append({
            "case": case,
            "batch": est.batch_size,
            "updates/s, 1 thread": 1 / one,
            f"updates/s, {cores} threads": 1 / every,
            f"{cores} threads / 1": one / every,
            "auto picks": auto_threads(net.module_, est._feature_shape, est.batch_size),
            "faster": 1 if one <= every else cores,
        })
    return rows


# ------------------------------------------------------------------- search
def _warm_up(X):
    estimator("conv 8x8", True, max_iter=2).fit(X)
    return os.getpid()


def bench_search(quick):
    from joblib import Parallel, delayed
    from sklearn.model_selection import GridSearchCV

    X = data("conv 8x8")
    grid = {"lr": [1e-3, 2e-3], "step_size": [1.0, 0.5]}
    # start the loky workers and import skebm there (not part of a fit's time)
    Parallel(n_jobs=2, backend="loky")(delayed(_warm_up)(X[:64]) for _ in range(2))
    est = estimator("conv 8x8", quick, max_iter=15 if quick else 60)
    n_fits = 4 * 2
    rows = []
    for attempt in range(1 if quick else 2):
        start = time.perf_counter()
        GridSearchCV(est, grid, cv=2, n_jobs=1).fit(X)
        serial = (time.perf_counter() - start) / n_fits
        start = time.perf_counter()
        GridSearchCV(est, grid, cv=2, n_jobs=2).fit(X)
        parallel = (time.perf_counter() - start) * 2 / n_fits  # two fits at a time: the wall time of one
        rows.append({
            "attempt": attempt + 1,
            "fits": n_fits,
            "s per fit, alone": serial,
            "s per fit, n_jobs=2": parallel,
            "lost per fit": parallel / serial - 1,
            "search speed-up": 2 * serial / parallel,
        })
    return rows


# --------------------------------------------------------------- estimators
def bench_estimators(quick, device="auto"):
    """Training updates/s of every estimator on ``device``, fp32 and bf16 (the GPU machine's table)."""
    from sklearn.datasets import load_digits

    from skebm import EBMDensity, EBMGenerator, EBMPurifier, NGEBMClassifier
    from skebm.density import QuadratureML

    digits = load_digits()
    X8, y8 = digits.data.reshape(-1, 1, 8, 8), digits.target
    X32 = np.random.default_rng(0).random((512, 3, 32, 32)).astype(np.float32)
    y32 = np.arange(512) % 10
    X2 = data("mlp 2-D", 2048)
    n = 6 if quick else 20
    common = dict(max_iter=n, random_state=0, device=device)
    cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    big = dict(batch_size=4, n_steps=2) if cpu else dict(batch_size=32, n_steps=10)  # CPU: a smoke run
    cases = [
        ("EBMGenerator", "conv 8x8", lambda **kw: EBMGenerator("conv", batch_size=64, n_steps=10, **kw), X8, None),
        ("EBMGenerator", "resnet 32x32", lambda **kw: EBMGenerator("resnet", **big, **kw), X32, None),
        ("EBMPurifier", "conv 8x8", lambda **kw: EBMPurifier("conv", batch_size=64, n_steps=20, init="persistent",
                                                             buffer_size=1000, **kw), X8, None),
        ("EBMDensity", "mlp 2-D", lambda **kw: EBMDensity(method=QuadratureML(grid_resolution=65), batch_size=128, **kw),
         X2, None),
        ("NGEBMClassifier", "conv 8x8", lambda **kw: NGEBMClassifier("conv", batch_size=64, **kw), X8, y8),
        ("NGEBMClassifier", "resnet 32x32", lambda **kw: NGEBMClassifier("resnet", batch_size=4 if cpu else 64, **kw),
         X32, y32),
    ]
    rows = []
    for name, energy, make, X, y in cases:
        for precision in ("fp32", "bf16"):
            clock = _UpdateClock()
            est = make(precision=precision, callbacks=[clock.callback], **common)
            est.fit(X, y)
            per_update, share = clock.per_update(skip=2)
            rows.append({
                "estimator": name, "energy": energy, "device": str(est.net_.device), "precision": precision,
                "batch": est.batch_size, "n_steps": getattr(est, "n_steps", 0) if name != "NGEBMClassifier" else 0,
                "updates/s": 1 / per_update, "samples/s": est.batch_size / per_update, "in chains": share,
            })
    return rows


# --------------------------------------------------------------- processes
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(case, quick, out):
    """One process of the data-parallel benchmark (run under torchrun)."""
    import torch.distributed as dist
    from accelerate import Accelerator
    from skorch.callbacks import Callback
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    accelerator = Accelerator(cpu=True)
    world = accelerator.num_processes
    counted = {"bytes": 0, "calls": 0}

    class CountAllReduce(Callback):
        def on_train_begin(self, net, **kwargs):
            if isinstance(net.module_, torch.nn.parallel.DistributedDataParallel):

                def hook(state, bucket):
                    counted["bytes"] += bucket.buffer().numel() * bucket.buffer().element_size()
                    counted["calls"] += 1
                    return allreduce_hook(state, bucket)

                net.module_.register_comm_hook(None, hook)

    n_updates = 4 if quick else 10
    clock = _UpdateClock()
    est = estimator(case, quick, max_iter=n_updates, n_threads=1, accelerator=accelerator,
                    callbacks=[clock.callback, CountAllReduce()])
    est.fit(data(case))
    per_update, share = clock.per_update()
    grad_bytes = sum(p.numel() * p.element_size() for p in est.net_.module_.parameters())
    reduce_seconds = None
    if world > 1:  # one all-reduce of the gradient's size, here
        buf = torch.zeros(grad_bytes // 4)
        dist.all_reduce(buf)
        samples = []
        for _ in range(5):
            start = time.perf_counter()
            dist.all_reduce(buf)
            samples.append(time.perf_counter() - start)
        reduce_seconds = statistics.median(samples)
    row_keys = len([k for k, v in est.net_.history[-1]["batches"][-1].items() if isinstance(v, (int, float))])
    result = {
        "case": case,
        "world": world,
        "batch": est.batch_size,
        "per_update": per_update,
        "sampling_share": share,
        "grad_bytes": grad_bytes,
        "allreduce_bytes_per_update": counted["bytes"] / max(1, n_updates),
        "history_bytes_per_update": 8 * (row_keys + 1) if world > 1 else 0,
        "allreduce_seconds": reduce_seconds,
    }
    if accelerator.is_main_process:
        with open(out, "w") as f:
            json.dump(result, f)
    accelerator.wait_for_everyone()


def bench_ddp(quick):
    rows = []
    for case in ("conv 8x8", "resnet 32x32"):
        for world in (1, 2):
            out = tempfile.mktemp(suffix=".json")
            cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={world}",
                   "--master-addr=127.0.0.1", f"--master-port={_free_port()}", os.path.abspath(__file__),
                   "--worker", case, "--out", out] + (["--quick"] if quick else [])
            env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if proc.returncode:
                raise RuntimeError(f"torchrun failed for {case}, {world} processes:\n{proc.stderr[-4000:]}")
            with open(out) as f:
                r = json.load(f)
            os.remove(out)
            rows.append(r)
    table = []
    base = {r["case"]: r["per_update"] for r in rows if r["world"] == 1}
    for r in rows:
        table.append({
            "energy": r["case"],
            "processes": r["world"],
            "batch (global)": r["batch"],
            "updates/s": 1 / r["per_update"],
            "samples/s": r["batch"] / r["per_update"],
            "speed-up": base[r["case"]] / r["per_update"],
            "in chains": r["sampling_share"],
            "all-reduce MB/update": (r["allreduce_bytes_per_update"] + r["history_bytes_per_update"]) / 1e6,
            "gradient MB": r["grad_bytes"] / 1e6,
            "one all-reduce (ms)": None if r["allreduce_seconds"] is None else 1e3 * r["allreduce_seconds"],
        })
    return table


# -------------------------------------------------------------------- output
def markdown(rows):
    if not rows:
        return ""
    keys = list(rows[0])
    shares = ("in chains", "lost per fit")

    def fmt(key, v):
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.1%}" if key in shares else f"{v:.3g}"
        return str(v)

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(k, r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (~1 minute): tiny batches, few updates")
    parser.add_argument("--out", default=None, help="also write the Markdown tables to this file")
    parser.add_argument("--sections", nargs="+", default=["threads", "search", "ddp"],
                        choices=["threads", "search", "ddp", "estimators"],
                        help="tables to measure (estimators: every estimator's training speed on --device)")
    parser.add_argument("--device", default="auto", help="device of the estimators table ('auto': cuda if available)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.quick, args.out)

    header = (f"# Scaling out\n\ntorch {torch.__version__}, {os.cpu_count()} CPU cores, torch threads "
              f"{torch.get_num_threads()} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), "
              f"{'quick' if args.quick else 'full'} run. Ratios are measured within one run; absolute figures "
              "need an idle machine (each table gives the load average when it ended).\n")
    parts = [header]
    print(header, flush=True)
    sections = {
        "threads": ("Threads: EBMGenerator training updates/s by torch thread count", bench_threads),
        "search": ("GridSearchCV(n_jobs=2) against one fit at a time (conv 8x8, loky)", bench_search),
        "ddp": ("Data-parallel: torchrun, gloo on loopback, n_threads=1 per process", bench_ddp),
        "estimators": ("Training speed of every estimator", lambda quick: bench_estimators(quick, args.device)),
    }
    for name in args.sections:
        title, fn = sections[name]
        start = time.perf_counter()
        rows = fn(args.quick)
        text = f"## {title}\n\n{markdown(rows)}\n\n({load()}, {time.perf_counter() - start:.0f} s)\n"
        if name == "search":
            worst = max(r["lost per fit"] for r in rows)
            text += f"\n[{'PASS' if worst < 0.2 else 'FAIL'}] lost per fit with n_jobs=2: {worst:.1%} (target < 20%)\n"
        print(text, flush=True)
        parts.append(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
