"""Full-gradient PGD-EOT: back-propagation through every Langevin step of the purifier."""

import numpy as np
import torch
from sklearn.utils._param_validation import StrOptions, validate_params
from torch import nn

from .._torch_classifier import as_torch_classifier
from .._validation import POSITIVE_INT
from ..mcmc import RowNoise
from ._adapter import _resolve_defence
from ._pgd import _COMMON
from ._utils import (
    DEPRECATED,
    DEPRECATED_OPTION,
    _defended_wrong,
    _Inputs,
    _pgd_alpha,
    _pgd_iterations,
    _randomness,
    _renamed,
    _replicate,
)

#: The noise modes of the attacker's purifications.
NOISE_MODES = StrOptions({"fresh", "reparameterised"})

__all__ = ["full_gradient_attack"]


def _require_differentiable(defence, noise_mode):
    if defence is None:
        return
    if defence.differentiable is None:
        raise TypeError(
            "The full-gradient attack needs a differentiable purifier: an object whose "
            "purify_tensor(X, noise=..., differentiable=True) keeps the autograd graph (EBMPurifier), or a "
            "callable on tensors built from torch operations (e.g. on skebm.mcmc.unrolled_langevin). Use "
            "pgd_attack (BPDA) for a purifier without gradients."
        )
    if noise_mode == "reparameterised" and not defence.takes_noise:
        raise ValueError(
            "noise_mode='reparameterised' needs a purifier that takes the noise stream: purify(x, noise) or "
            "purify_tensor(X, noise=...); this one draws its own noise, use noise_mode='fresh'."
        )


def _full_gradient_batch(
    view, defence, x_nat, y, keys, *, eps, norm, pgd_steps, alpha, random_start, eot, reps, reparam, low, high,
    generators,
):
    """Full-gradient PGD-EOT on one batch; returns (x_adv, broken).

    ``keys`` (``(eot, len(x_nat))`` int64) fix the noise of the EOT copies in
    reparameterised mode: copy ``j`` of input ``i`` always gets the stream
    ``RowNoise(keys[j, i])``, whatever the other inputs of the batch.
    """
    x_adv = x_nat.clone()
    broken = torch.zeros(len(x_nat), dtype=torch.bool, device=x_nat.device)
    if defence is None:
        eot = reps = 1
    # fresh draws of the deployed purification itself: the EOT copies are a verdict too
    reuse = defence is None or (defence.same_path and not reparam and eot == reps)

    def forward(xa, idx, need_grad):
        """Logits of the ``eot`` purified copies, ``(eot, m, C)``; the EOT gradient if asked."""
        xa = xa.detach().requires_grad_(need_grad)
        with torch.set_grad_enabled(need_grad):
            batch = _replicate(xa, eot)
            if defence is not None:
                stream = RowNoise(keys[:, idx.cpu()].reshape(-1)) if reparam else None
                batch = defence.differentiable(batch, stream)
            logits = view.logits(batch).float()
        logits = logits.view(eot, len(idx), -1)
        if not need_grad:
            return logits, None
        target = y[idx].to(logits.device).repeat(eot)
        # EOT: the mean over draws of each draw's loss; its gradient is the mean gradient
        loss = nn.functional.cross_entropy(logits.reshape(len(target), -1), target, reduction="sum") / eot
        if not loss.requires_grad:
            raise TypeError("The purifier's output carries no gradient: use pgd_attack (BPDA) for this purifier.")
        (grad,) = torch.autograd.grad(loss, xa, allow_unused=True)
        if grad is None:
            raise TypeError(
                "The purifier's output carries no gradient to its input (it does not depend on it in the autograd "
                "graph): use pgd_attack (BPDA) for this purifier."
            )
        return logits.detach(), grad

    def check(need_grad):
        """Verdict at ``x_adv`` for the unbroken inputs; their gradient if needed."""
        idx = torch.nonzero(~broken)[:, 0]
        if len(idx) == 0:
            return None
        xa = x_adv[idx]
        if reuse:
            logits, grad = forward(xa, idx, need_grad)
            wrong = (logits.mean(dim=0).argmax(dim=1) != y[idx].to(logits.device)).to(broken.device)
        else:
            wrong = _defended_wrong(view, defence.sample, xa, y[idx], reps)
        broken[idx[wrong]] = True
        if not need_grad:
            return None
        keep = ~wrong
        idx = idx[keep]
        if len(idx) == 0:
            return None
        if not reuse:
            _, grad = forward(xa[keep], idx, True)
            return idx, grad
        return idx, grad[keep]

    return _pgd_iterations(check, x_adv, x_nat, broken, eps=eps, pgd_steps=pgd_steps, alpha=alpha, norm=norm, low=low,
                           high=high, random_start=random_start, generators=generators)


@validate_params(
    {
        **_COMMON,
        "eot_samples": [POSITIVE_INT, None],
        "noise_mode": [NOISE_MODES],
        "noise": [NOISE_MODES, DEPRECATED_OPTION],
    },
    prefer_skip_nested_validation=True,
)
def full_gradient_attack(
    classifier,
    X,
    y,
    *,
    eps,
    purifier=None,
    norm="inf",
    pgd_steps=40,
    pgd_step_size=None,
    random_start=True,
    eot_samples=None,
    noise_mode="fresh",
    n_replicates=1,
    bounds=None,
    batch_size=256,
    random_state=None,
    return_success=False,
    n_steps=DEPRECATED,
    step_size=DEPRECATED,
    noise=DEPRECATED,
):
    """PGD-EOT through the purifier: gradients flow through every Langevin step.

    The adaptive attack BPDA only approximates: at every step the current
    inputs are purified ``eot_samples`` times with the differentiable
    chain (:func:`skebm.mcmc.unrolled_langevin`, second derivatives of the
    energy, checkpointed), the classifier's cross-entropy is averaged over
    the draws (EOT) and back-propagated through the chains to the inputs.
    Steps, projection and bookkeeping are those of :func:`pgd_attack`:
    checks at the clean input, the random start and after every step,
    broken once, broken for good. Each check is the defence's own verdict:
    logits averaged over ``n_replicates`` purifications with fresh noise
    by the deployed purification (for a callable purifier with
    ``noise_mode="fresh"`` and ``eot_samples == n_replicates`` the EOT draws are
    that verdict; an ``EBMPurifier`` is judged by ``purify_tensor`` without
    ``differentiable``).

    Noise modes:

    * ``"fresh"``: every purification draws new noise (EOT over the
      defence's randomness, the attacker does not know the draws);
    * ``"reparameterised"``: the attacker knows the seed. Copy ``j`` of
      input ``i`` gets the same noise at every step (a
      :class:`~skebm.mcmc.RowNoise` stream with fixed keys), so the
      purification is a fixed differentiable function and the attack
      optimises against ``eot_samples`` known draws. The verdicts still use
      fresh draws: the defence does not use the attacker's noise.

    Parameters
    ----------
    classifier : object
        Anything :func:`as_torch_classifier` accepts.
    X : array-like or torch.Tensor
        Inputs in the classifier's layout and value range.
    y : array-like of shape (n_samples,)
        True labels.
    eps : float
        Radius of the perturbation ball, in the units of ``X``.
    purifier : EBMPurifier, callable or None, default=None
        The defence, reached differentiably: an object with
        ``purify_tensor(X, *, noise=None, differentiable=False)``
        (:class:`~skebm.EBMPurifier`; called with ``differentiable=True``),
        or a callable ``purify(x, noise)`` (or ``purify(x)``, fresh mode
        only) built from torch operations; ``noise`` is ``None`` (draw
        fresh) or a stream to draw from. ``None`` attacks the bare
        classifier (plain PGD).
    norm : {"inf", "l2"}, default="inf"
        Norm of the ball.
    pgd_steps : int, default=40
        Gradient steps of the attack (``n_steps`` before 0.3).
    pgd_step_size : float, default=None
        Step length of the attack; ``None`` uses ``2.5 * eps / pgd_steps``
        (``step_size`` before 0.3).
    random_start : bool, default=True
        Start from a uniform draw in the ball.
    eot_samples : int, default=None
        Purifications per step whose gradients are averaged; ``None`` uses
        ``n_replicates``.
    noise_mode : {"fresh", "reparameterised"}, default="fresh"
        Noise of the attacker's purifications (see above; ``noise`` before
        0.3, a name the glossary keeps for noise streams).
    n_replicates : int, default=1
        Purified replicates of the defended prediction (the verdict).
    bounds : tuple of float, default=None
        Valid value range ``(low, high)``; ``None`` uses the minimum and
        maximum of ``X``.
    batch_size : int, default=256
        Inputs attacked at once (times ``eot_samples`` differentiable
        chains: the memory of the unrolled chains grows with it).
    random_state : int, RandomState instance or None, default=None
        Seeds the random start, the fresh noise and the reparameterised
        draws.
    return_success : bool, default=False
        Also return the boolean mask of broken inputs.
    n_steps, step_size, noise : deprecated
        The old names of ``pgd_steps``, ``pgd_step_size`` and
        ``noise_mode`` (renamed in 0.3, removed in 0.5).

    Returns
    -------
    X_adv : ndarray
        Adversarial inputs, shape and dtype of ``X`` (float).
    broken : ndarray of bool
        Only if ``return_success``: inputs misclassified at some check.

    See Also
    --------
    pgd_attack : BPDA + EOT (the purifier is the identity backwards).
    apgd_attack : APGD with EOT, through the same differentiable chain.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from skebm.attacks import full_gradient_attack
    >>> from skebm.mcmc._unrolled import unrolled_langevin
    >>> energy = lambda x: 0.5 * ((x - 0.5) ** 2).sum(1)
    >>> purify = lambda x, noise: unrolled_langevin(energy, x, 5, 0.3, noise_scale=0.01, noise=noise)
    >>> net = torch.nn.Linear(2, 2)
    >>> X = np.random.RandomState(0).rand(6, 2).astype(np.float32)
    >>> X_adv = full_gradient_attack(net, X, [0, 1] * 3, eps=0.1, purifier=purify, pgd_steps=3,
    ...                              eot_samples=2, noise_mode="reparameterised", bounds=(0, 1), random_state=0)
    >>> bool(np.abs(X_adv - X).max() <= 0.1 + 1e-6)
    True
    """
    pgd_steps = _renamed(pgd_steps, n_steps, "pgd_steps", "n_steps")
    pgd_step_size = _renamed(pgd_step_size, step_size, "pgd_step_size", "step_size")
    noise_mode = _renamed(noise_mode, noise, "noise_mode", "noise")
    view = as_torch_classifier(classifier)
    X_adv, broken = _full_gradient(
        view, _Inputs(view, X, y, bounds), purifier=purifier, eps=eps, norm=norm, pgd_steps=pgd_steps,
        pgd_step_size=pgd_step_size, random_start=random_start, eot_samples=eot_samples, noise_mode=noise_mode,
        n_replicates=n_replicates, batch_size=batch_size, random_state=random_state,
    )
    return (X_adv, broken) if return_success else X_adv


def _full_gradient(view, data, *, purifier, eps, norm, pgd_steps, pgd_step_size, random_start, eot_samples,
                   noise_mode, n_replicates, batch_size, random_state):
    """:func:`full_gradient_attack` on the adapted classifier ``view`` and inputs ``data``: ``(X_adv, broken)``."""
    rng, generators = _randomness(random_state)
    defence = _resolve_defence(purifier, generators)
    _require_differentiable(defence, noise_mode)
    eot = n_replicates if eot_samples is None else eot_samples
    keys = torch.as_tensor(rng.randint(0, 2**32, size=(eot, len(data)), dtype=np.int64))
    alpha = _pgd_alpha(eps, pgd_steps, pgd_step_size)

    def attack_batch(sl, x, y):
        return _full_gradient_batch(view, defence, x, y, keys[:, sl], eps=float(eps), norm=norm, pgd_steps=pgd_steps,
                                    alpha=alpha, random_start=random_start, eot=eot, reps=n_replicates,
                                    reparam=noise_mode == "reparameterised", low=data.low, high=data.high,
                                    generators=generators)

    return data.attack(view, batch_size, attack_batch)
