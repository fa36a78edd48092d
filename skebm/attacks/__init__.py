"""Adversarial attacks on purification, and a robustness evaluation that does not flatter.

A purifier (:class:`~skebm.EBMPurifier`) defends a classifier by running
Langevin dynamics from each input (the midrun EBM defence of Hill et al.,
"Stochastic Security", 2021). It is stochastic and iterative, which is
exactly what makes a naive gradient attack fail without the defence being
robust: gradients through hundreds of noisy steps are expensive, and a
single noisy draw says little. The attacks here adapt to it:

:func:`pgd_attack` (BPDA + EOT)
    PGD where the purifier is the identity in the backward pass (backward
    pass differentiable approximation) and gradients are averaged over
    purified replicates (expectation over transformation). Cheap, and the
    standard attack of the purification literature. *Shows*: robustness to
    an attacker who ignores what purification does to the gradient.
    *Does not show*: robustness when purification moves inputs far (the
    identity is then a poor gradient).
:func:`full_gradient_attack` (full-gradient PGD-EOT)
    Back-propagates through every Langevin step
    (:func:`skebm.mcmc.unrolled_langevin`, second derivatives of the
    energy, checkpointed so memory grows like ``sqrt(n_steps)``), with
    fresh noise (EOT) or noise fixed and known to the attacker
    (reparameterised). *Shows*: robustness to the exact gradient of the
    purification. *Does not show*: robustness to attacks that exploit the
    loss landscape differently (its gradient can be noisy or vanishing
    over long chains; BPDA sometimes does better, hence the minimum).
:func:`apgd_attack` (APGD-EOT, torchattacks)
    An external, step-size free attack with restarts and the DLR loss, run
    on :class:`PurifiedModule` (the defended classifier as a module on
    ``[0, 1]`` inputs, fresh noise at every forward pass). *Shows*: that
    the numbers do not hinge on our own PGD's step size. *Does not show*:
    anything about gradient-free or transfer attacks.

:func:`evaluate_robustness` runs them all and scores an input as robust
at a radius only if it survives **every** attack (the per-input minimum,
never above any single attack), each input judged with the defence's own
replicates (broken once, broken for good), and adds DiffHammer's
N-evaluation (an input counts as broken if any of ``N`` independent
defended predictions of its final adversarial input is wrong). Robust
accuracy is always an upper bound: more steps, restarts, EOT samples or
another attack can only lower it; ``results.attrs`` keeps the budgets to
report with the numbers. None of this says anything about perturbations
outside the chosen norm ball.

Classifiers are reached through :func:`as_torch_classifier` (defined in
``skebm/_torch_classifier.py``, below the purifier and the attacks; a
:class:`torch.nn.Module`, a fitted skorch net, or any object with
``torch_logits(X)``, such as :class:`~skebm.NGEBMClassifier`); purifiers
through ``purify_tensor(X, noise=..., differentiable=...)`` or a callable
``purify(x[, noise])`` on tensors.
"""

from .._torch_classifier import TorchClassifier, as_torch_classifier
from ._evaluate import evaluate_robustness
from ._external import PurifiedModule, apgd_attack
from ._full_gradient import full_gradient_attack
from ._pgd import pgd_attack

__all__ = [
    "PurifiedModule",
    "TorchClassifier",
    "apgd_attack",
    "as_torch_classifier",
    "evaluate_robustness",
    "full_gradient_attack",
    "pgd_attack",
]
