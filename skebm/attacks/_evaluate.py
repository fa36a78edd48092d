"""Robust accuracy that does not flatter: the minimum over attacks, and DiffHammer's N-evaluation."""

import math
import time

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import StrOptions, validate_params

from .._random import PerDeviceGenerator, seed_from
from .._torch_classifier import as_torch_classifier
from .._validation import NONNEG_INT, POSITIVE, POSITIVE_INT
from ._adapter import _resolve_defence
from ._external import _apgd
from ._full_gradient import NOISE_MODES, _full_gradient, _require_differentiable
from ._pgd import _COMMON, _pgd
from ._utils import DEPRECATED, DEPRECATED_OPTION, _defended_wrong, _Inputs, _renamed

__all__ = ["evaluate_robustness"]

ATTACKS = ("bpda", "full_gradient", "apgd")
_NAMES = {"bpda": "PGD with BPDA + EOT", "full_gradient": "full-gradient PGD-EOT", "apgd": "APGD-EOT"}


def _n_evaluation(view, purifier, X_adv, data, n_replicates, n_evaluations, batch_size, seed):
    """Inputs misclassified by ANY of ``n_evaluations`` independent defended predictions of ``X_adv``."""
    defence = _resolve_defence(purifier, PerDeviceGenerator(seed))
    purify = None if defence is None else defence.sample
    X_adv = torch.as_tensor(np.asarray(X_adv), dtype=torch.float32)
    broken = torch.zeros(len(X_adv), dtype=torch.bool)
    for sl in data.batches(batch_size):
        x = X_adv[sl].to(view.device)
        target = data.y[sl].to(view.device)
        wrong = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for _ in range(n_evaluations):
            wrong |= _defended_wrong(view, purify, x, target, n_replicates)
        broken[sl] = wrong.cpu()
    return broken.numpy()


@validate_params(
    {
        "classifier": "no_validation",
        "X": _COMMON["X"],
        "y": _COMMON["y"],
        "epsilons": ["array-like"],
        "purifier": _COMMON["purifier"],
        "attacks": [list, tuple, StrOptions(set(ATTACKS))],
        "n_replicates": [POSITIVE_INT, None],
        "eot_samples": [POSITIVE_INT, None],
        "noise_mode": [NOISE_MODES],
        "n_evaluations": [NONNEG_INT],
        "norm": _COMMON["norm"],
        "pgd_steps": [POSITIVE_INT],
        "pgd_step_size": [POSITIVE, None],
        "n_restarts": [POSITIVE_INT],
        "bounds": _COMMON["bounds"],
        "batch_size": _COMMON["batch_size"],
        "random_state": _COMMON["random_state"],
        "noise": [NOISE_MODES, DEPRECATED_OPTION],
        "n_steps": [POSITIVE_INT, DEPRECATED_OPTION],
        "step_size": [POSITIVE, None, DEPRECATED_OPTION],
    },
    prefer_skip_nested_validation=True,
)
def evaluate_robustness(
    classifier,
    X,
    y,
    *,
    epsilons=(0.05, 0.1, 0.2, 0.3),
    purifier=None,
    attacks=ATTACKS,
    n_replicates=None,
    eot_samples=None,
    noise_mode="fresh",
    n_evaluations=10,
    norm="inf",
    pgd_steps=40,
    pgd_step_size=None,
    n_restarts=1,
    bounds=None,
    batch_size=256,
    random_state=None,
    noise=DEPRECATED,
    n_steps=DEPRECATED,
    step_size=DEPRECATED,
):
    """Robust accuracy of the purified classifier under several adaptive attacks.

    For every ``eps`` the defence is attacked by each of ``attacks``:

    * ``"bpda"``: PGD with BPDA + EOT (:func:`pgd_attack`), the purifier
      as the identity in the backward pass;
    * ``"full_gradient"``: PGD-EOT through every Langevin step
      (:func:`full_gradient_attack`, noise mode ``noise_mode``);
    * ``"apgd"``: torchattacks' APGD with EOT and ``n_restarts`` restarts
      (:func:`apgd_attack`, through the differentiable chain when the
      purifier has one, else BPDA).

    Every attack uses broken-once bookkeeping with the defence's own
    verdict (logits averaged over ``n_replicates`` fresh purifications,
    checked at every iterate): an input misclassified once is broken. An
    input is robust at ``eps`` only if it survives **every** attack (the
    per-input minimum over attacks, column ``"min over attacks"``), which
    can therefore never exceed any single attack's column. Column
    ``"N-eval"`` is DiffHammer's N-evaluation: the share of inputs whose
    final adversarial input of every attack is classified correctly by all
    of ``n_evaluations`` independent defended predictions. Column
    ``"undefended"`` is the bare classifier under PGD (and APGD when
    ``"apgd"`` is among the attacks). Row ``eps = 0`` is the natural
    accuracy (for the defence, one defended prediction of the clean
    inputs; N-eval: ``n_evaluations`` of them).

    The numbers remain upper bounds on robustness (see
    :mod:`skebm.attacks`); the budgets are stored in ``results.attrs``.

    Parameters
    ----------
    classifier : object or PurifiedClassifier
        A classifier :func:`as_torch_classifier` accepts, or a fitted
        :class:`~skebm.PurifiedClassifier` (its purifier, classifier and
        ``n_replicates`` are used).
    X : array-like
        Test inputs, in the classifier's layout and value range.
    y : array-like of shape (n_samples,)
        True labels.
    epsilons : sequence of float, default=(0.05, 0.1, 0.2, 0.3)
        Attack radii, in the units of ``X``.
    purifier : EBMPurifier or callable, default=None
        The defence; ``None`` evaluates the undefended classifier only
        (unless ``classifier`` is a ``PurifiedClassifier``).
    attacks : sequence of {"bpda", "full_gradient", "apgd"}, default=("bpda", "full_gradient", "apgd")
        The attacks, one column each. ``"full_gradient"`` needs a
        differentiable purifier (``purify_tensor(...,
        differentiable=True)`` or a torch callable); ``"apgd"`` needs
        torchattacks.
    n_replicates : int, default=None
        Purified replicates of the defended prediction; ``None`` uses the
        ``PurifiedClassifier``'s or the purifier's ``n_replicates`` (1 for
        a plain callable).
    eot_samples : int, default=None
        Purifications per attack step whose gradients are averaged (EOT),
        for every attack; ``None`` uses ``n_replicates``.
    noise_mode : {"fresh", "reparameterised"}, default="fresh"
        Noise mode of the full-gradient attack (see
        :func:`full_gradient_attack`; ``noise`` before 0.3).
    n_evaluations : int, default=10
        Independent defended predictions of each final adversarial input
        for the N-evaluation column; 0 leaves the column out.
    norm : {"inf", "l2"}, default="inf"
        Norm of the ball.
    pgd_steps : int, default=40
        Steps of every attack (``n_steps`` before 0.3).
    pgd_step_size : float, default=None
        PGD step of the BPDA and full-gradient attacks; ``None`` uses
        ``2.5 * eps / pgd_steps`` (APGD adapts its own; ``step_size``
        before 0.3).
    n_restarts : int, default=1
        Restarts of APGD.
    bounds : tuple of float, default=None
        Valid range of ``X``; ``None`` uses its minimum and maximum.
    batch_size : int, default=256
        Inputs attacked at once.
    random_state : int, RandomState instance or None, default=None
        Seeds every attack and verdict.
    noise, n_steps, step_size : deprecated
        The old names of ``noise_mode``, ``pgd_steps`` and
        ``pgd_step_size`` (renamed in 0.3, removed in 0.5).

    Returns
    -------
    results : pandas.DataFrame
        Index ``epsilon`` (0 first: natural accuracy); columns
        ``"undefended"`` and, with a purifier, one per attack,
        ``"min over attacks"`` and ``"N-eval"``; accuracies in [0, 1].
        ``results.attrs`` holds the budgets (attacks, steps, EOT samples,
        replicates, restarts, evaluations, norm) and, under ``"seconds"``,
        the wall-clock time spent on each column's attacks (all radii
        together; ``"undefended"``, each attack name, ``"N-eval"``).

    Examples
    --------
    >>> import numpy as np, torch
    >>> from skebm.attacks import evaluate_robustness
    >>> net = torch.nn.Linear(2, 2)
    >>> X = np.random.RandomState(0).rand(20, 2).astype(np.float32)
    >>> y = np.random.RandomState(1).randint(2, size=20)
    >>> table = evaluate_robustness(net, X, y, epsilons=[0.1], purifier=lambda x: x, attacks=["bpda"],
    ...                             n_replicates=2, pgd_steps=5, n_evaluations=3, bounds=(0, 1), random_state=0)
    >>> list(table.columns), list(table.index)
    (['undefended', 'bpda', 'min over attacks', 'N-eval'], [0.0, 0.1])
    """
    import pandas as pd

    if hasattr(classifier, "purifier_") and hasattr(classifier, "classifier_"):
        purifier = classifier.purifier_ if purifier is None else purifier
        if n_replicates is None:
            n_replicates = classifier.n_replicates
        classifier = classifier.classifier_
    if n_replicates is None:
        n_replicates = getattr(purifier, "n_replicates", 1) if purifier is not None else 1
    attacks = [attacks] if isinstance(attacks, str) else list(attacks)
    if not attacks or any(a not in ATTACKS for a in attacks) or len(set(attacks)) != len(attacks):
        raise ValueError(f"attacks must be distinct names among {ATTACKS}, got {attacks!r}.")
    epsilons = [float(e) for e in epsilons]
    if any(not math.isfinite(e) or e <= 0 for e in epsilons):
        raise ValueError(f"epsilons must be positive numbers, got {epsilons!r}.")
    noise_mode = _renamed(noise_mode, noise, "noise_mode", "noise")
    pgd_steps = _renamed(pgd_steps, n_steps, "pgd_steps", "n_steps")
    pgd_step_size = _renamed(pgd_step_size, step_size, "pgd_step_size", "step_size")
    # the classifier adapted and the inputs validated once, here; every attack gets them as they are
    view = as_torch_classifier(classifier)
    defence = _resolve_defence(purifier)
    if defence is not None and "full_gradient" in attacks:
        _require_differentiable(defence, noise_mode)
    data = _Inputs(view, X, y, bounds)
    eot = n_replicates if eot_samples is None else eot_samples
    rng = check_random_state(random_state)
    common = dict(norm=norm, batch_size=batch_size)

    seconds = {}

    def run(name, eps, defended):
        start = time.perf_counter()
        try:
            return _run(name, eps, defended)
        finally:
            key = name if defended else "undefended"
            seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - start

    def _run(name, eps, defended):
        seed = seed_from(rng)
        target = purifier if defended else None
        reps = n_replicates if defended else 1
        if name == "bpda":
            return _pgd(
                view, data, eps=eps, pgd_steps=pgd_steps, pgd_step_size=pgd_step_size, random_start=True,
                purifier=target, n_replicates=reps, eot_samples=eot if defended else None, random_state=seed,
                **common,
            )
        if name == "full_gradient":
            return _full_gradient(
                view, data, eps=eps, pgd_steps=pgd_steps, pgd_step_size=pgd_step_size, random_start=True,
                purifier=target, eot_samples=eot, noise_mode=noise_mode, n_replicates=reps, random_state=seed,
                **common,
            )
        return _apgd(
            view, data, eps=eps, pgd_steps=pgd_steps, n_restarts=n_restarts, purifier=target,
            eot_samples=eot if defended else None, loss="ce", gradient="auto", n_replicates=reps,
            random_state=seed, **common,
        )

    rows = [0.0, *epsilons]
    columns = ["undefended"]
    if defence is not None:
        columns += [*attacks, "min over attacks"] + (["N-eval"] if n_evaluations else [])
    table = pd.DataFrame(index=pd.Index(rows, name="epsilon"), columns=columns, dtype=float)
    undefended_attacks = ["bpda", *(["apgd"] if "apgd" in attacks else [])]
    for eps in rows:
        if eps == 0:
            table.loc[eps, "undefended"] = 1.0 - float(np.mean(run("bpda", 0.0, False)[1]))
        else:
            broken = np.zeros(len(data), dtype=bool)
            for name in undefended_attacks:
                broken |= run(name, eps, False)[1]
            table.loc[eps, "undefended"] = 1.0 - float(broken.mean())
        if defence is None:
            continue
        if eps == 0:
            X_clean, broken = run("bpda", 0.0, True)
            finals, per_attack = [X_clean], {name: broken for name in attacks}
        else:
            finals, per_attack = [], {}
            for name in attacks:
                X_adv, per_attack[name] = run(name, eps, True)
                finals.append(X_adv)
        worst = np.zeros(len(data), dtype=bool)
        for name in attacks:
            table.loc[eps, name] = 1.0 - float(per_attack[name].mean())
            worst |= per_attack[name]  # robust only if every attack fails: the per-input minimum
        table.loc[eps, "min over attacks"] = 1.0 - float(worst.mean())
        if n_evaluations:
            start = time.perf_counter()
            n_broken = np.zeros(len(data), dtype=bool)
            for X_adv in finals:
                n_broken |= _n_evaluation(
                    view, purifier, X_adv, data, n_replicates, n_evaluations, batch_size, seed_from(rng)
                )
            table.loc[eps, "N-eval"] = 1.0 - float(n_broken.mean())
            seconds["N-eval"] = seconds.get("N-eval", 0.0) + time.perf_counter() - start
    table.attrs = {
        "attack": "undefended: PGD" + (" + APGD" if "apgd" in attacks else "")
        + ("" if defence is None else "; defended: minimum over " + ", ".join(_NAMES[a] for a in attacks)),
        "attacks": list(attacks),
        "norm": norm,
        "pgd_steps": pgd_steps,
        "pgd_step_size": "2.5 * eps / pgd_steps" if pgd_step_size is None else pgd_step_size,
        "random_start": True,
        "n_replicates": n_replicates,
        "eot_samples": eot,
        "noise_mode": noise_mode,
        "n_restarts": n_restarts,
        "n_evaluations": n_evaluations,
        "apgd_gradient": None if defence is None or "apgd" not in attacks
        else ("full" if defence.differentiable is not None else "bpda"),
        "n_samples": len(data),
        "seconds": {key: round(value, 3) for key, value in seconds.items()},
    }
    return table
