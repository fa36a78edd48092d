"""PGD with BPDA + EOT: the purifier is the identity in the backward pass."""

import torch
from sklearn.utils._param_validation import HasMethods, StrOptions, validate_params
from torch import nn

from .._torch_classifier import as_torch_classifier
from .._validation import NONNEG, NONNEG_INT, POSITIVE, POSITIVE_INT
from ._adapter import _resolve_defence
from ._utils import DEPRECATED, DEPRECATED_OPTION, _Inputs, _pgd_alpha, _pgd_iterations, _randomness, _renamed

__all__ = ["pgd_attack"]

#: The constraints shared by the attacks' public functions.
_COMMON = {
    "classifier": "no_validation",
    "X": ["array-like"],
    "y": ["array-like"],
    "eps": [NONNEG],
    "norm": [StrOptions({"inf", "l2"})],
    "pgd_steps": [NONNEG_INT],
    "pgd_step_size": [POSITIVE, None],
    "random_start": ["boolean"],
    "purifier": [None, callable, HasMethods(["purify_tensor"])],
    "n_replicates": [POSITIVE_INT],
    "bounds": ["array-like", None],
    "batch_size": [POSITIVE_INT],
    "random_state": ["random_state"],
    "return_success": ["boolean"],
    # the attacks' old names of the PGD steps (renamed in 0.3: n_steps and step_size are the Langevin steps)
    "n_steps": [NONNEG_INT, DEPRECATED_OPTION],
    "step_size": [POSITIVE, None, DEPRECATED_OPTION],
}


def _attack_batch(
    view, purify, x_nat, y, *, eps, norm, pgd_steps, alpha, random_start, n_replicates, eot_samples, low, high,
    generators,
):
    """PGD (BPDA + EOT when ``purify``) on one batch; returns (x_adv, broken)."""
    x_adv = x_nat.clone()
    broken = torch.zeros(len(x_nat), dtype=torch.bool, device=x_nat.device)
    reps = n_replicates if purify is not None else 1
    eot = eot_samples if purify is not None else 1

    def copies(xa, k, need_grad):
        batch = xa.unsqueeze(0).expand(k, *xa.shape).reshape(-1, *xa.shape[1:])
        if purify is not None:
            batch = purify(batch)
        # BPDA: the purified copies are the leaves; their gradient is the input's
        return batch.detach().requires_grad_(need_grad)

    def mean_logits(batch, k, m):
        return view.logits(batch).float().view(k, m, -1).mean(dim=0)

    def check(need_grad):
        """Verdict at ``x_adv`` for the unbroken inputs; their gradient if needed."""
        idx = torch.nonzero(~broken)[:, 0]
        if len(idx) == 0:
            return None
        xa = x_adv[idx]
        if eot == reps:
            # the EOT copies are fresh draws of the deployed purification: they are the verdict too
            batch = copies(xa, eot, need_grad)
            with torch.set_grad_enabled(need_grad):
                avg = mean_logits(batch, eot, len(idx))
            target = y[idx].to(avg.device)
            wrong = (avg.detach().argmax(dim=1) != target).to(broken.device)
        else:
            # every unbroken input is judged by the defence's own verdict (n_replicates fresh purifications)
            with torch.no_grad():
                verdict = mean_logits(copies(xa, reps, False), reps, len(idx))
            target = y[idx].to(verdict.device)
            wrong = (verdict.argmax(dim=1) != target).to(broken.device)
        broken[idx[wrong]] = True
        if not need_grad:
            return None
        keep = ~wrong
        if not bool(keep.any()):
            return None
        if eot != reps:
            xa, target = xa[keep.to(xa.device)], target[keep.to(target.device)]
            batch = copies(xa, eot, True)
            avg = mean_logits(batch, eot, len(xa))
            loss = nn.functional.cross_entropy(avg, target, reduction="sum")
            (grad,) = torch.autograd.grad(loss, batch)
            return idx[keep], grad.to(x_adv.device).view(eot, len(xa), *xa.shape[1:]).mean(dim=0)  # EOT
        loss = nn.functional.cross_entropy(avg, target, reduction="sum")
        (grad,) = torch.autograd.grad(loss, batch)
        grad = grad.to(x_adv.device).view(eot, len(idx), *xa.shape[1:]).mean(dim=0)  # EOT
        return idx[keep], grad[keep.to(grad.device)]

    return _pgd_iterations(check, x_adv, x_nat, broken, eps=eps, pgd_steps=pgd_steps, alpha=alpha, norm=norm, low=low,
                           high=high, random_start=random_start, generators=generators)


@validate_params(
    {**_COMMON, "eot_samples": [POSITIVE_INT, None], "eot_replicates": [POSITIVE_INT, None, DEPRECATED_OPTION]},
    prefer_skip_nested_validation=True,
)
def pgd_attack(
    classifier,
    X,
    y,
    *,
    eps,
    norm="inf",
    pgd_steps=40,
    pgd_step_size=None,
    random_start=True,
    purifier=None,
    n_replicates=1,
    eot_samples=None,
    bounds=None,
    batch_size=256,
    random_state=None,
    return_success=False,
    n_steps=DEPRECATED,
    step_size=DEPRECATED,
    eot_replicates=DEPRECATED,
):
    """Projected gradient descent, with BPDA + EOT against a purifier.

    Maximises the cross-entropy of the classifier within the ``eps`` ball
    around each input (``norm="inf"``: sign steps, ``norm="l2"``: normalised
    gradient steps), from a uniform random start in the ball, keeping
    inputs inside ``bounds``. The prediction is checked at the clean input,
    at the random start and after every step; an input misclassified at any
    check is broken for good and no longer moved (its returned copy is the
    one that broke it).

    With a ``purifier``, every check purifies ``eot_samples`` copies of
    the current inputs (fresh noise each time), averages the classifier's
    logits over them, and back-propagates the cross-entropy of the averaged
    logits to the purified copies; the purifier counts as the identity in
    the backward pass (BPDA), so the gradients of the replicates, averaged
    (EOT), are the input's gradient. An input counts as broken when the
    defended prediction (logits averaged over ``n_replicates``
    purifications) is wrong.

    Parameters
    ----------
    classifier : object
        Anything :func:`as_torch_classifier` accepts.
    X : array-like or torch.Tensor
        Inputs in the classifier's layout and value range.
    y : array-like of shape (n_samples,)
        True labels (class labels of ``classifier.classes_``, or column
        indices for a bare module).
    eps : float
        Radius of the perturbation ball, in the units of ``X``.
    norm : {"inf", "l2"}, default="inf"
        Norm of the ball.
    pgd_steps : int, default=40
        Gradient steps of the attack (``n_steps`` before 0.3).
    pgd_step_size : float, default=None
        Step length of the attack; ``None`` uses ``2.5 * eps / pgd_steps``
        (Madry et al.) (``step_size`` before 0.3).
    random_start : bool, default=True
        Start from a uniform draw in the ball.
    purifier : EBMPurifier, callable or None, default=None
        The defence: an object with ``purify_tensor`` or a callable mapping
        a tensor to its purified copy. ``None`` attacks the bare classifier.
    n_replicates : int, default=1
        Purified replicates whose averaged logits are the defended
        prediction (the defence's own ``n_replicates``); ignored without a
        purifier.
    eot_samples : int, default=None
        Purified replicates per attack step whose logits are averaged for
        the loss and whose gradients are averaged (EOT). ``None`` uses
        ``n_replicates`` and the same copies decide the verdict. Otherwise
        every check is the defence's own verdict on ``n_replicates``
        further fresh purifications, as in :func:`full_gradient_attack`
        (Hill et al. attack with 15 and defend with 150 replicates; the
        verdict is never filtered by the attacker's own copies).
    bounds : tuple of float, default=None
        Valid value range ``(low, high)``; ``None`` uses the minimum and
        maximum of ``X``.
    batch_size : int, default=256
        Inputs attacked at once (times ``n_replicates`` chains).
    random_state : int, RandomState instance or None, default=None
        Seeds the random start and the purification noise.
    return_success : bool, default=False
        Also return the boolean mask of broken inputs.
    n_steps, step_size, eot_replicates : deprecated
        The old names of ``pgd_steps``, ``pgd_step_size`` and
        ``eot_samples`` (renamed in 0.3, removed in 0.5).

    Returns
    -------
    X_adv : ndarray
        Adversarial inputs, shape and dtype of ``X`` (float).
    broken : ndarray of bool
        Only if ``return_success``: inputs misclassified at some check.

    See Also
    --------
    full_gradient_attack : Differentiates through the Langevin chain instead.
    apgd_attack : APGD with EOT (torchattacks).

    Examples
    --------
    >>> import numpy as np, torch
    >>> from skebm.attacks import pgd_attack
    >>> net = torch.nn.Linear(2, 2)
    >>> X = np.random.RandomState(0).rand(5, 2).astype(np.float32)
    >>> X_adv = pgd_attack(net, X, [0, 1, 0, 1, 0], eps=0.1, bounds=(0, 1), random_state=0)
    >>> bool(np.abs(X_adv - X).max() <= 0.1 + 1e-6)
    True
    """
    pgd_steps = _renamed(pgd_steps, n_steps, "pgd_steps", "n_steps")
    pgd_step_size = _renamed(pgd_step_size, step_size, "pgd_step_size", "step_size")
    eot_samples = _renamed(eot_samples, eot_replicates, "eot_samples", "eot_replicates")
    view = as_torch_classifier(classifier)
    X_adv, broken = _pgd(
        view, _Inputs(view, X, y, bounds), purifier=purifier, eps=eps, norm=norm, pgd_steps=pgd_steps,
        pgd_step_size=pgd_step_size, random_start=random_start, n_replicates=n_replicates, eot_samples=eot_samples,
        batch_size=batch_size, random_state=random_state,
    )
    return (X_adv, broken) if return_success else X_adv


def _pgd(view, data, *, purifier, eps, norm, pgd_steps, pgd_step_size, random_start, n_replicates, eot_samples,
         batch_size, random_state):
    """:func:`pgd_attack` on the adapted classifier ``view`` and validated inputs ``data``: ``(X_adv, broken)``."""
    _, generators = _randomness(random_state)
    defence = _resolve_defence(purifier, generators)
    purify = None if defence is None else defence.sample  # BPDA: fresh noise, no graph needed
    eot, alpha = n_replicates if eot_samples is None else eot_samples, _pgd_alpha(eps, pgd_steps, pgd_step_size)

    def attack_batch(sl, x, y):
        return _attack_batch(view, purify, x, y, eps=float(eps), norm=norm, pgd_steps=pgd_steps, alpha=alpha,
                             random_start=random_start, n_replicates=n_replicates, eot_samples=eot, low=data.low,
                             high=data.high, generators=generators)

    return data.attack(view, batch_size, attack_batch)
