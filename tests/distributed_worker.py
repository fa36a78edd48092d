"""One process of the data-parallel test: launched by ``tests/test_distributed.py`` with torchrun.

Each process fits every estimator for a few updates with an
``accelerate.Accelerator``, then the processes compare what they hold
(weights, histories, chain banks) and rank 0 writes one JSON report to the
folder given as the first argument. Run by hand::

    torchrun --nproc-per-node 2 tests/distributed_worker.py /tmp/report [--device cuda]
"""

import json
import os
import sys
import tempfile
import time

import numpy as np
import torch
import torch.distributed as dist
from accelerate import Accelerator

from skebm import EBMDensity, EBMGenerator, EBMPurifier, NGEBMClassifier
from skebm.density import LongrunML
from skebm.datasets import make_toy_2d
from skebm.engine import TrainingCheckpoint


def flat(module):
    return torch.cat([p.detach().double().cpu().flatten() for p in module.parameters()])


def bank_digest(net):
    if not hasattr(net, "chain_init_"):  # an engine that trains without chains (EBMDensity's quadrature)
        return None
    state = net.chain_init_.state_dict()
    return float(sum(v.double().abs().sum().item() for v in state.values() if v.is_floating_point()))


def gather(obj):
    if not dist.is_initialized():  # one process
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def rank():
    return dist.get_rank() if dist.is_initialized() else 0


def world():
    return dist.get_world_size() if dist.is_initialized() else 1


class PoisonedEnergy(torch.nn.Module):
    """An MLP energy whose training forward returns NaN once, on one rank only (a one-rank divergence)."""

    def __init__(self, rank_to_poison, at_call):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.SiLU(), torch.nn.Linear(16, 1))
        self.rank_to_poison, self.at_call, self.calls = rank_to_poison, at_call, 0

    def forward(self, x):
        out = self.net(x).squeeze(-1)
        if torch.is_grad_enabled() and not x.requires_grad:  # the loss's forward of the data batch
            self.calls += 1
            if self.calls == self.at_call and rank() == self.rank_to_poison:
                out = out * float("nan")
        return out


_START = time.perf_counter()
_CLOCK = [_START]


def seconds():
    """Seconds since the last call (the cost of each section of the report)."""
    now = time.perf_counter()
    elapsed, _CLOCK[0] = now - _CLOCK[0], now
    return round(elapsed, 2)


def report_fit(est, X_eval, usable):
    """What every process holds after a fit, gathered; plus a usability figure of rank 0's estimator."""
    net = est.net_
    weights = gather(flat(net.module_).numpy().tolist())
    rows = [b for epoch in net.history for b in epoch["batches"] if "train_loss" in b]  # not the validation rows
    history = gather(json.dumps(rows))  # NaN == NaN in this comparison (a rolled-back update records NaN)
    banks = gather(bank_digest(net))
    return {
        "world": world(),
        "engine": type(net).__name__,
        "module_unwrapped": not isinstance(net.module_, torch.nn.parallel.DistributedDataParallel),
        "n_iter": int(est.n_iter_),
        "weights_equal": all(np.array_equal(weights[0], w) for w in weights[1:]),
        "weights_max_diff": max([float(np.max(np.abs(np.subtract(weights[0], w)))) for w in weights[1:]] + [0.0]),
        "history_equal": all(h == history[0] for h in history[1:]),
        "banks_differ": len(set(banks)) == len(banks) > 1,
        "n_rows": len(rows),
        "recovered": sum(bool(r.get("recovered")) for r in rows),
        "usable": usable(est, X_eval),
        "weights": weights[0][:8],
        "seconds": seconds(),
    }


def batch_shares(est, X):
    """Each rank's rows of the next update, and whether together they are the global batch, in order."""
    from skebm.engine import EBMNet

    net = est.net_
    dataset = net.get_dataset(est._to_model(X))
    state = net.rng_.data_generator.get_state()
    share = next(iter(net.get_iterator(dataset, training=True)))[0]
    net.rng_.data_generator.set_state(state)
    whole = next(iter(EBMNet.get_iterator(net, dataset, training=True)))[0]
    shares = gather(share.numpy().tolist())
    return {
        "per_rank": len(share),
        "distinct": len({str(s) for s in shares}) == len(shares),
        "tile_the_global_batch": [row for s in shares for row in s] == whole.numpy().tolist(),
    }


def ngebm_gradient_check(clf, X, y):
    """DDP's gradient of the NG-EBM loss (with its double-backward term) against a hand all-reduce."""
    net = clf.net_
    r, w = rank(), world()
    share = slice(r * (16 // w), (r + 1) * (16 // w))
    Z = torch.as_tensor(clf._to_model(X[:16])[share])
    t = torch.as_tensor(clf._encode_classes(y[:16])[share])
    net._initialize_accelerator()  # wrap again, as a warm start does
    net.data_noise = 0.0  # the two passes below must see the same inputs
    net.history.new_epoch()
    net.history.new_batch()

    def grads():
        net.optimizer_.zero_grad()
        net.train_step_single((Z, t))
        return [p.grad.detach().clone() for p in net.bare_module().parameters()]

    ddp = grads()
    with net._bare_module():
        local = grads()
    for g in local:
        if w > 1:
            dist.all_reduce(g)
        g /= w
    net._unwrap_accelerator()
    return {
        "wrapped_in_ddp": w > 1,
        "max_abs_diff": max(float((a - b).abs().max()) for a, b in zip(ddp, local)),
        "max_abs_grad": max(float(a.abs().max()) for a in ddp),
    }


def section(report, name, fn):
    """``report[name] = fn()``, or the error it raised (the other sections still run)."""
    try:
        report[name] = fn()
    except Exception as exc:  # noqa: BLE001
        import traceback

        report[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
        return None
    return report[name]


def main():
    out_dir = sys.argv[1]
    device = sys.argv[sys.argv.index("--device") + 1] if "--device" in sys.argv else "cpu"
    accelerator = Accelerator(cpu=device == "cpu")
    started = seconds()
    X = make_toy_2d("moons", 256, random_state=0)
    y = (X[:, 0] > 0.5).astype(int)
    common = dict(max_iter=6, batch_size=16, n_steps=3, random_state=0, accelerator=accelerator)
    small = {"hidden_units": (16,)}
    finite_samples = lambda est, Xe: bool(np.isfinite(est.sample(8, random_state=0)).all())  # noqa: E731
    report = {}

    make = {  # every estimator, small
        "generator": lambda: EBMGenerator(buffer_size=64, energy_params=small, **common),
        "conditional_generator": lambda: EBMGenerator(buffer_size=64, conditional=True, energy_params=small, **common),
        "purifier": lambda: EBMPurifier(init="persistent", buffer_size=64, n_purify_steps=3, energy_params=small,
                                        **common),
        "density": lambda: EBMDensity(**{k: v for k, v in common.items() if k != "n_steps"}),
        "classifier": lambda: NGEBMClassifier(energy_variance=0.1, approximate_mass=0.1, energy_params=small, **common),
        "jem": lambda: NGEBMClassifier(generative_weight=0.5, buffer_size=64, approximate_mass=0.1,
                                       energy_params=small, **common),
    }
    targets = {"conditional_generator": y, "classifier": y, "jem": y}
    usable = {
        "generator": finite_samples,
        "conditional_generator": lambda est, Xe: bool(np.isfinite(est.sample(4, y=1, random_state=0)).all()),
        "purifier": lambda est, Xe: bool(np.isfinite(est.transform(Xe[:8])).all()),
        "density": lambda est, Xe: float(est.score(Xe)),
        "classifier": lambda est, Xe: float(est.score(Xe, y)),
        "jem": lambda est, Xe: float(est.score(Xe, y)),
    }
    fitted = {}
    for name in make:
        def fit_and_report(name=name):
            fitted[name] = make[name]().fit(X, targets.get(name))
            out = report_fit(fitted[name], X, usable[name])
            out["n_iter_one_process"] = int(make[name]().set_params(accelerator=None).fit(X, targets.get(name)).n_iter_)
            return out

        section(report, name, fit_and_report)

    def generator_extras():
        gen, again = fitted["generator"], make["generator"]().fit(X)
        return {
            "batch_shares": batch_shares(gen, X),
            "same_seed_same_weights": bool(torch.equal(flat(gen.net_.module_), flat(again.net_.module_))),
        }

    section(report, "generator_extras", generator_extras)
    def density_extras():  # longrun training adapts the step size to the acceptance: alike on every rank
        method = LongrunML(n_steps=3, buffer_size=64, burnin_buffer_size=32, burnin_updates=2)
        longrun = EBMDensity(method=method, base="gaussian", energy_params=small,
                             **{k: v for k, v in common.items() if k != "n_steps"}).fit(X)
        return {"step_sizes_equal": len(set(gather(longrun.step_size_))) == 1}

    section(report, "density_extras", density_extras)
    section(report, "gradient_check", lambda: ngebm_gradient_check(fitted["classifier"], X, y))

    # a divergence on the last rank only: every process must roll back together
    def rollback():
        energy = PoisonedEnergy(rank_to_poison=world() - 1, at_call=3)
        return report_fit(EBMGenerator(energy, buffer_size=64, **common).fit(X), X, finite_samples)

    section(report, "rollback", rollback)

    def warm_start():  # a warm start continues on every process
        warm = EBMGenerator(buffer_size=64, energy_params=small, warm_start=True, **common).fit(X)
        return report_fit(warm.set_params(max_iter=4).fit(X), X, finite_samples)

    section(report, "warm_start", warm_start)

    def checkpoint():  # shared files from the main process, each rank's chain state beside them; resume restores both
        folder = gather(tempfile.mkdtemp(prefix="skebm-ckpt-") if rank() == 0 else None)[0]
        ck = dict(buffer_size=64, energy_params=small, **common)
        first = EBMGenerator(callbacks=[TrainingCheckpoint(folder)], **ck).fit(X)
        accelerator.wait_for_everyone()
        resumed = EBMGenerator(callbacks=[TrainingCheckpoint(folder)], **ck).fit(X)
        return {
            "files": sorted(os.listdir(folder)),
            "resumed_weights_equal": bool(torch.equal(flat(first.net_.module_), flat(resumed.net_.module_))),
            "resumed_own_bank": all(gather(bank_digest(first.net_) == bank_digest(resumed.net_))),
            "resumed_n_iter": int(resumed.n_iter_),
        }

    section(report, "checkpoint", checkpoint)

    def one_process_equals_plain():  # one process: the accelerated fit is the plain fit, bit for bit
        plain = {}
        for name in make:
            a = make[name]().set_params(accelerator=None).fit(X, targets.get(name))
            b = make[name]().fit(X, targets.get(name))
            plain[name] = bool(torch.equal(flat(a.net_.module_), flat(b.net_.module_)))
        return plain

    if world() == 1:
        section(report, "one_process_equals_plain", one_process_equals_plain)

    report["seconds_after_imports"] = round(time.perf_counter() - _START, 2)
    report["accelerator_seconds"] = started
    if rank() == 0:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "report.json"), "w") as f:
            json.dump(report, f, indent=1)
    accelerator.wait_for_everyone()
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
