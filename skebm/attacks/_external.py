"""External attacks on the purified pipeline: APGD-EOT from torchattacks.

Why torchattacks and not the Adversarial Robustness Toolbox (ART): both
ship APGD (Croce & Hein 2020, the gradient attack of AutoAttack), but

* torchattacks works on torch tensors from end to end: its attacks call a
  :class:`torch.nn.Module` and take gradients with autograd, so the
  differentiable Langevin chain of the purifier and the classifier stay on
  their device. ART's ``AutoProjectedGradientDescent.generate`` works on
  NumPy arrays through an ART estimator (``PyTorchClassifier``, with its
  own loss, ``input_shape``, ``nb_classes`` and ``clip_values``), with a
  host round trip at every gradient;
* torchattacks' ``APGD`` has expectation over transformation built in
  (``eot_iter`` forward passes per step, their gradients averaged; each
  forward of our module draws fresh purification noise), next to
  ``n_restarts`` and the ``"ce"``/``"dlr"`` losses. ART's APGD has no EOT
  parameter (EOT in ART is a set of image-transformation preprocessors);
* it is pure torch and imports without torchvision (``pip install
  torchattacks --no-deps``).

Its conventions are what :class:`PurifiedModule` adapts to: 4-D inputs in
``[0, 1]`` (so the module rescales from the data bounds and reshapes to
the classifier's layout) and labels as logit column indices. Its own
success bookkeeping reads single noisy forward passes, so the restarts and
the verdicts are ours (the defence's own replicates, broken once = broken).
"""

import contextlib
import io

import torch
from sklearn.utils._param_validation import StrOptions, validate_params
from torch import nn

from .._random import derive_seed, third_party_rng
from .._torch_classifier import as_torch_classifier
from .._validation import POSITIVE_INT, check_params
from ._adapter import _resolve_defence
from ._full_gradient import _require_differentiable
from ._pgd import _COMMON
from ._utils import DEPRECATED, _defended_wrong, _Inputs, _project, _randomness, _renamed, _replicate

__all__ = ["PurifiedModule", "apgd_attack"]


class PurifiedModule(nn.Module):
    """``classifier(purify(x))`` as a module on inputs scaled to ``[0, 1]``.

    The defended classifier as external attack libraries expect it: the
    input ``u`` is a 4-D tensor in ``[0, 1]``, mapped to the data's range
    (``low + (high - low) * u``) and layout, purified with fresh noise at
    every forward pass (so an attack's EOT sees the randomness), and
    classified; the output is the logits, averaged over ``n_replicates``
    purifications.

    Parameters
    ----------
    classifier : object
        Anything :func:`as_torch_classifier` accepts.
    purifier : EBMPurifier, callable or None, default=None
        The defence (see :func:`full_gradient_attack`); ``None`` wraps the
        bare classifier.
    bounds : tuple of float, default=(0.0, 1.0)
        Value range ``(low, high)`` of the data that ``[0, 1]`` stands for.
    input_shape : tuple of int, default=None
        Shape of one sample in the classifier's layout, e.g. ``(64,)`` for
        flat features or ``(1, 8, 8)``; ``None`` passes the 4-D input on
        unchanged (images).
    gradient : {"full", "bpda"}, default="full"
        Backward pass through the purifier: ``"full"`` differentiates
        through every Langevin step (``purify_tensor(...,
        differentiable=True)``); ``"bpda"`` purifies without a graph and
        passes the gradient straight through (the purifier is the identity
        backwards).
    n_replicates : int, default=1
        Purifications per forward pass whose logits are averaged.
    generator : torch.Generator, default=None
        Generator of the purifications' fresh noise (on the purifier's
        device), for purifiers that take a noise stream; ``None`` uses
        torch's global generator.

    Examples
    --------
    >>> import torch
    >>> from skebm.attacks import PurifiedModule
    >>> module = PurifiedModule(torch.nn.Linear(4, 3), lambda x: x, bounds=(-1, 1), input_shape=(4,))
    >>> u = module.to_unit(torch.zeros(2, 4))
    >>> u.shape, float(u[0, 0, 0, 0])
    (torch.Size([2, 1, 1, 4]), 0.5)
    >>> module(u).shape
    torch.Size([2, 3])
    """

    def __init__(self, classifier, purifier=None, *, bounds=(0.0, 1.0), input_shape=None, gradient="full",
                 n_replicates=1, generator=None):
        super().__init__()
        check_params(
            {
                "bounds": ["array-like"],
                "input_shape": ["array-like", None],
                "gradient": [StrOptions({"full", "bpda"})],
                "n_replicates": [POSITIVE_INT],
            },
            {"bounds": bounds, "input_shape": input_shape, "gradient": gradient, "n_replicates": n_replicates},
            "PurifiedModule",
        )
        self.view = as_torch_classifier(classifier)
        self.defence = _resolve_defence(purifier, generator)
        if gradient == "full":
            _require_differentiable(self.defence, "fresh")
        if isinstance(self.view.module, nn.Module):
            # registered so that the module has the classifier's parameters and device
            self.classifier_module = self.view.module
        self.low, self.high = float(bounds[0]), float(bounds[1])
        if not self.low < self.high:
            raise ValueError(f"bounds must be (low, high) with low < high, got {bounds!r}.")
        self.input_shape = None if input_shape is None else tuple(int(d) for d in input_shape)
        self.gradient = gradient
        self.n_replicates = n_replicates

    def to_unit(self, x):
        """Inputs in the data's range and layout -> 4-D tensor in ``[0, 1]``."""
        u = (x - self.low) / (self.high - self.low)
        return u if u.ndim == 4 and self.input_shape is None else u.reshape(len(u), 1, 1, -1)

    def from_unit(self, u):
        """4-D tensor in ``[0, 1]`` -> inputs in the data's range and layout."""
        x = self.low + (self.high - self.low) * u
        return x if self.input_shape is None else x.reshape(len(x), *self.input_shape)

    def forward(self, u):
        """Logits of the defended classifier at ``u`` (averaged over ``n_replicates``)."""
        x = self.from_unit(u)
        k = self.n_replicates if self.defence is not None else 1
        batch = _replicate(x, k)
        if self.defence is not None:
            if self.gradient == "full":
                batch = self.defence.differentiable(batch, None)
            else:
                with torch.no_grad():
                    purified = self.defence.sample(batch)
                batch = batch + (purified - batch).detach()  # BPDA: identity backwards
        return self.view.logits(batch).float().view(k, len(x), -1).mean(dim=0)


def _import_torchattacks():
    try:
        import torchattacks
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "apgd_attack needs torchattacks (pip install torchattacks --no-deps); or leave 'apgd' out of attacks."
        ) from exc
    return torchattacks


@validate_params(
    {
        **_COMMON,
        "n_restarts": [POSITIVE_INT],
        "eot_samples": [POSITIVE_INT, None],
        "loss": [StrOptions({"ce", "dlr"})],
        "gradient": [StrOptions({"auto", "full", "bpda"})],
    },
    prefer_skip_nested_validation=True,
)
def apgd_attack(
    classifier,
    X,
    y,
    *,
    eps,
    purifier=None,
    norm="inf",
    pgd_steps=40,
    n_restarts=1,
    eot_samples=None,
    loss="ce",
    gradient="auto",
    n_replicates=1,
    bounds=None,
    batch_size=256,
    random_state=None,
    return_success=False,
    n_steps=DEPRECATED,
):
    """APGD with EOT (torchattacks) on the purified classifier.

    Runs torchattacks' ``APGD`` (step-size free PGD with momentum and
    restarts, Croce & Hein 2020) on :class:`PurifiedModule`: every forward
    pass purifies with fresh noise, and ``eot_samples`` forward passes per
    step average the gradient (EOT). Each restart attacks the inputs not
    broken yet; an input is broken when the defence's own verdict (logits
    averaged over ``n_replicates`` fresh purifications) is wrong at the
    clean input, at the iterate APGD found misclassified, or at its
    highest-loss iterate.

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
        The defence (see :func:`full_gradient_attack`); ``None`` attacks
        the bare classifier.
    norm : {"inf", "l2"}, default="inf"
        Norm of the ball.
    pgd_steps : int, default=40
        APGD iterations per restart (``n_steps`` before 0.3).
    n_restarts : int, default=1
        Random restarts, each on the inputs still unbroken.
    eot_samples : int, default=None
        Forward passes (purifications) per step whose gradients are
        averaged; ``None`` uses ``n_replicates`` with a purifier, 1
        without.
    loss : {"ce", "dlr"}, default="ce"
        Cross-entropy or the difference-of-logits-ratio loss.
    gradient : {"auto", "full", "bpda"}, default="auto"
        Backward pass through the purifier (see :class:`PurifiedModule`);
        ``"auto"`` is ``"full"`` when the purifier is differentiable, else
        ``"bpda"``.
    n_replicates : int, default=1
        Purified replicates of the defended prediction (the verdict).
    bounds : tuple of float, default=None
        Valid value range ``(low, high)``; ``None`` uses the minimum and
        maximum of ``X``.
    batch_size : int, default=256
        Inputs attacked at once.
    random_state : int, RandomState instance or None, default=None
        Seeds the random starts and the purification noise.
    return_success : bool, default=False
        Also return the boolean mask of broken inputs.
    n_steps : deprecated
        The old name of ``pgd_steps`` (renamed in 0.3, removed in 0.5).

    Returns
    -------
    X_adv : ndarray
        Adversarial inputs, shape and dtype of ``X`` (float): the input
        that broke the defence, else the highest-loss iterate of the last
        restart.
    broken : ndarray of bool
        Only if ``return_success``.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from skebm.attacks import apgd_attack
    >>> net = torch.nn.Linear(2, 2)
    >>> X = np.random.RandomState(0).rand(5, 2).astype(np.float32)
    >>> X_adv = apgd_attack(net, X, [0, 1, 0, 1, 0], eps=0.1, pgd_steps=5, bounds=(0, 1), random_state=0)
    >>> bool(np.abs(X_adv - X).max() <= 0.1 + 1e-6)
    True
    """
    pgd_steps = _renamed(pgd_steps, n_steps, "pgd_steps", "n_steps")
    _import_torchattacks()
    view = as_torch_classifier(classifier)
    X_adv, broken = _apgd(
        view, _Inputs(view, X, y, bounds), purifier=purifier, eps=eps, norm=norm, pgd_steps=pgd_steps,
        n_restarts=n_restarts, eot_samples=eot_samples, loss=loss, gradient=gradient, n_replicates=n_replicates,
        batch_size=batch_size, random_state=random_state,
    )
    return (X_adv, broken) if return_success else X_adv


def _apgd(view, data, *, purifier, eps, norm, pgd_steps, n_restarts, eot_samples, loss, gradient, n_replicates,
          batch_size, random_state):
    """:func:`apgd_attack` on the adapted classifier ``view`` and inputs ``data``: ``(X_adv, broken)``."""
    torchattacks = _import_torchattacks()
    _, generators = _randomness(random_state)
    defence = _resolve_defence(purifier, generators)
    if gradient == "auto":
        gradient = "full" if defence is None or defence.differentiable is not None else "bpda"
    eot = (n_replicates if defence is not None else 1) if eot_samples is None else eot_samples
    verdict_purify = None if defence is None else defence.sample
    reps = n_replicates if defence is not None else 1
    attack = eps > 0 and pgd_steps > 0 and data.high > data.low
    # APGD draws its random start from torch's global generator: seeded (and restored) around it
    with third_party_rng(derive_seed(generators.seed, "torchattacks"), view.device):
        module = None
        if attack:
            module = PurifiedModule(
                view, purifier, bounds=(data.low, data.high), input_shape=tuple(data.X.shape[1:]),
                gradient=gradient, generator=generators,
            )
            with contextlib.redirect_stdout(io.StringIO()):  # it prints when the module has no parameters
                apgd = torchattacks.APGD(
                    module, norm="Linf" if norm == "inf" else "L2", eps=float(eps) / (data.high - data.low),
                    steps=pgd_steps, n_restarts=1, seed=0, loss=loss, eot_iter=eot,
                )
            apgd.set_device(view.device)

        def attack_batch(sl, x_nat, target):
            adv = x_nat.clone()
            br = _defended_wrong(view, verdict_purify, x_nat, target, reps)  # the clean input
            for _ in range(n_restarts if attack else 0):
                idx = torch.nonzero(~br)[:, 0]
                if len(idx) == 0:
                    break
                best, _, _, best_adv = apgd.attack_single_run(module.to_unit(x_nat[idx]), target[idx])
                alive = torch.ones(len(idx), dtype=torch.bool, device=x_nat.device)
                for cand in (best_adv, best):  # APGD's misclassified iterate, then its highest-loss one
                    x = _project(module.from_unit(cand.detach()), x_nat[idx], float(eps), norm, data.low, data.high)
                    wrong = torch.zeros_like(alive)
                    if bool(alive.any()):
                        wrong[alive] = _defended_wrong(view, verdict_purify, x[alive], target[idx][alive], reps)
                    adv[idx[wrong]] = x[wrong]
                    br[idx[wrong]] = True
                    alive &= ~wrong
                adv[idx[alive]] = x[alive]
            return adv, br

        return data.attack(view, batch_size, attack_batch)
