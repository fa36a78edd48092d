"""Adversarial attacks and an honest robustness evaluation of purification.

:func:`pgd_attack` runs projected gradient descent (L-infinity or L2,
random start) against a torch classifier, optionally defended by a
stochastic purifier, which it attacks with BPDA + EOT: backward pass
differentiable approximation (the purifier is treated as the identity in
the backward pass) and expectation over transformation (gradients and
predictions averaged over independently purified replicates).
:func:`evaluate_robustness` reports natural and robust accuracy of the
undefended and the purified classifier side by side.

Classifiers are reached through :func:`as_torch_classifier`, which accepts
a :class:`torch.nn.Module`, a fitted skorch net, a fitted skebm estimator
whose network outputs logits, or any object implementing the small
``torch_logits`` protocol described there.

What the evaluation shows, and what it does not
-----------------------------------------------
Robust accuracy under one attack is an upper bound on the true robust
accuracy: a stronger or better adapted attack can only lower it. BPDA +
EOT with "broken once, broken for good" is the attack the purification
literature (Athalye et al. 2018; Hill et al. 2021) uses, but its strength
depends on the number of attack steps, the step size and the number of
replicates: few EOT replicates give noisy gradients (a weaker attack),
and the defended verdict is itself random (with few replicates a correct
input can fail one of the ~40 checks by chance, which counts against the
defence; ``eot_replicates`` below the defence's ``n_replicates`` confirms
each candidate break with the defence's own verdict). BPDA assumes the
purifier is close to the identity; when purification moves inputs far,
the identity backward pass is a poor gradient and other adaptive attacks
(attacking the Langevin trajectory itself, transfer attacks, black-box
attacks) may do better. Report the attack settings with the numbers.
"""

import contextlib
import math
import numbers

import numpy as np
import torch
from torch import nn

from ._base import seed_everything

__all__ = ["TorchClassifier", "as_torch_classifier", "pgd_attack", "evaluate_robustness"]


# ------------------------------------------------------------ the adapter
def _module_device(module):
    for tensor in [*module.parameters(), *module.buffers()]:
        return tensor.device
    return torch.device("cpu")


@contextlib.contextmanager
def _eval_mode(module):
    """Put ``module`` in eval mode (dropout, batch norm) and restore it after."""
    if module is None:
        yield
        return
    modes = {m: m.training for m in module.modules()}
    module.eval()
    try:
        yield
    finally:
        for m, mode in modes.items():
            m.train(mode)


class TorchClassifier:
    """A differentiable view of a classifier: user-range inputs to logits.

    Built by :func:`as_torch_classifier`; not usually created directly.

    Parameters
    ----------
    logits_fn : callable
        Maps a float tensor of inputs (in the classifier's own input layout
        and value range, on ``device``) to a ``(n, n_classes)`` tensor of
        logits, differentiably.
    device : torch.device
        Device the inputs must be on.
    classes : ndarray or None
        Class label of each logit column; ``None`` when the labels are the
        column indices ``0 .. n_classes - 1``.
    module : torch.nn.Module, default=None
        Module put in eval mode while logits are computed.
    """

    def __init__(self, logits_fn, device, classes=None, module=None):
        self.logits_fn = logits_fn
        self.device = torch.device(device)
        self.classes_ = None if classes is None else np.asarray(classes)
        self.module = module

    def logits(self, x):
        """Differentiable logits of the tensor ``x`` (moved to ``device``)."""
        with _eval_mode(self.module):
            return self.logits_fn(x.to(self.device))

    def predict_logits(self, X, batch_size=1024):
        """Logits of an array ``X`` as a float64 ndarray, without gradients."""
        X = np.asarray(X, dtype=np.float32)
        out = []
        with torch.no_grad():
            for start in range(0, len(X), batch_size):
                out.append(self.logits(torch.as_tensor(X[start : start + batch_size])).float().cpu())
        return torch.cat(out).double().numpy()

    def encode(self, y):
        """Class labels -> logit column indices (int64 ndarray)."""
        y = np.asarray(y).ravel()
        if self.classes_ is None:
            if not np.issubdtype(y.dtype, np.integer):
                if np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)):
                    return y.astype(np.int64)
                raise ValueError("This classifier has no classes_: y must hold class indices 0 .. n_classes - 1.")
            return y.astype(np.int64)
        lookup = {c: i for i, c in enumerate(self.classes_.tolist())}
        try:
            return np.array([lookup[v] for v in y.tolist()], dtype=np.int64)
        except KeyError as exc:
            raise ValueError(f"y contains a label the classifier does not know: {exc.args[0]!r}.") from None


def _skorch_logits(net):
    module = net.module_
    criterion = getattr(net, "criterion_", None)
    raw = isinstance(criterion, nn.CrossEntropyLoss) and net.predict_nonlinearity == "auto"
    nonlin = None if raw else net._get_predict_nonlinearity()

    def logits_fn(x):
        out = module(x)
        if isinstance(out, tuple):
            out = out[0]
        if raw:
            return out
        # outputs mapped to probabilities by skorch: their log is a valid logit
        return torch.log(nonlin(out).clamp_min(1e-12))

    return logits_fn, module


def as_torch_classifier(classifier):
    """Wrap a classifier as a :class:`TorchClassifier` (logits of raw inputs).

    The attacks need logits as a differentiable function of the inputs in
    the user's own value range and layout (the ``X`` passed to the
    classifier's ``predict``). Accepted, in this order:

    1. An object with a ``torch_logits(X)`` method (the protocol): it takes
       a float tensor ``X`` shaped like the classifier's input and returns
       ``(n, n_classes)`` logits whose columns follow ``classes_``,
       differentiably. Its device is taken from ``net_`` or ``module_`` if
       present. Estimators that rescale inputs internally implement this
       method so that attacks perturb the user's values.
    2. A :class:`torch.nn.Module` returning ``(n, n_classes)`` logits;
       labels are the column indices.
    3. A fitted skorch ``NeuralNet`` (e.g. ``NeuralNetClassifier``):
       ``module_`` outputs, read as logits with ``CrossEntropyLoss``, else
       mapped to probabilities by the net's prediction nonlinearity and
       logged.
    4. A fitted skebm estimator with a rescaler and a network ``net_`` whose
       module outputs logits (the inputs are rescaled as in ``fit``).

    A :class:`sklearn.frozen.FrozenEstimator` is unwrapped first.

    Parameters
    ----------
    classifier : object
        The classifier.

    Returns
    -------
    view : TorchClassifier

    Raises
    ------
    TypeError
        If the classifier exposes no differentiable torch module (e.g. a
        scikit-learn ``LogisticRegression``).

    Examples
    --------
    >>> import torch
    >>> from skebm.attacks import as_torch_classifier
    >>> view = as_torch_classifier(torch.nn.Linear(4, 3))
    >>> view.logits(torch.zeros(2, 4)).shape
    torch.Size([2, 3])
    """
    if isinstance(classifier, TorchClassifier):
        return classifier
    if type(classifier).__name__ == "FrozenEstimator" and hasattr(classifier, "estimator"):
        classifier = classifier.estimator
    if callable(getattr(classifier, "torch_logits", None)):
        holder = getattr(classifier, "net_", None) or getattr(classifier, "module_", None)
        if holder is not None and hasattr(holder, "device"):
            device = torch.device(holder.device)
        elif isinstance(holder, nn.Module):
            device = _module_device(holder)
        else:
            device = torch.device("cpu")
        module = getattr(holder, "module_", holder if isinstance(holder, nn.Module) else None)
        return TorchClassifier(classifier.torch_logits, device, getattr(classifier, "classes_", None), module)
    if isinstance(classifier, nn.Module):
        return TorchClassifier(classifier, _module_device(classifier), None, classifier)
    try:
        from skorch import NeuralNet
    except ImportError:  # pragma: no cover - skorch is a dependency
        NeuralNet = ()
    if isinstance(classifier, NeuralNet):
        if not getattr(classifier, "initialized_", False):
            raise TypeError("The skorch net is not initialised: fit it first.")
        fn, module = _skorch_logits(classifier)
        return TorchClassifier(fn, classifier.device, getattr(classifier, "classes_", None), module)
    net = getattr(classifier, "net_", None)
    if net is not None and hasattr(net, "module_") and hasattr(classifier, "_affine"):
        center, scale = classifier._affine()
        shape = classifier._feature_shape
        module = net.module_

        def logits_fn(x):
            z = (x.reshape(len(x), -1) - center.flatten()) / scale.flatten()
            return module(z.view(-1, *shape))

        return TorchClassifier(logits_fn, net.device, getattr(classifier, "classes_", None), module)
    raise TypeError(
        f"{type(classifier).__name__} exposes no differentiable torch module: pass a torch.nn.Module, a "
        "fitted skorch net, or an object with a torch_logits(X) method (see as_torch_classifier)."
    )


# ------------------------------------------------------------- the attack
def _resolve_purifier(purifier):
    if purifier is None:
        return None
    if type(purifier).__name__ == "FrozenEstimator" and hasattr(purifier, "estimator"):
        purifier = purifier.estimator
    if callable(getattr(purifier, "purify_tensor", None)):
        return purifier.purify_tensor
    if callable(purifier):
        return purifier
    raise TypeError(
        "purifier must have a purify_tensor method (EBMPurifier) or be a callable on tensors, "
        f"got {type(purifier).__name__}."
    )


def _check_attack_params(eps, norm, n_steps, step_size, n_replicates, batch_size):
    if not isinstance(eps, numbers.Real) or eps < 0:
        raise ValueError(f"eps must be a non-negative number, got {eps!r}.")
    if norm not in ("inf", "l2"):
        raise ValueError(f"norm must be 'inf' or 'l2', got {norm!r}.")
    for name, value in (("n_steps", n_steps), ("n_replicates", n_replicates), ("batch_size", batch_size)):
        smallest = 0 if name == "n_steps" else 1
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < smallest:
            kind = "non-negative" if smallest == 0 else "positive"
            raise ValueError(f"{name} must be a {kind} integer, got {value!r}.")
    if step_size is not None and (not isinstance(step_size, numbers.Real) or not step_size > 0):
        raise ValueError(f"step_size must be None or a positive number, got {step_size!r}.")


def _flat_norm(t):
    return t.reshape(len(t), -1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (t.ndim - 1)))


def _project(x_adv, x_nat, eps, norm, low, high):
    delta = x_adv - x_nat
    if norm == "inf":
        delta = delta.clamp(-eps, eps)
    else:
        delta = delta * (eps / _flat_norm(delta)).clamp(max=1.0)
    return (x_nat + delta).clamp(low, high)


def _random_start(x_nat, eps, norm):
    if norm == "inf":
        return x_nat + (torch.rand_like(x_nat) * 2 - 1) * eps
    direction = torch.randn_like(x_nat)
    direction = direction / _flat_norm(direction)
    d = x_nat[0].numel()
    radius = eps * torch.rand(len(x_nat), device=x_nat.device).pow(1.0 / d).view(-1, *([1] * (x_nat.ndim - 1)))
    return x_nat + direction * radius


def _attack_batch(
    view, purify, x_nat, y, *, eps, norm, n_steps, alpha, random_start, n_replicates, eot_replicates, low, high
):
    """PGD (BPDA + EOT when ``purify``) on one batch; returns (x_adv, broken)."""
    x_adv = x_nat.clone()
    broken = torch.zeros(len(x_nat), dtype=torch.bool, device=x_nat.device)
    reps = n_replicates if purify is not None else 1
    eot = eot_replicates if purify is not None else 1

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
        batch = copies(xa, eot, need_grad)
        with torch.set_grad_enabled(need_grad):
            avg = mean_logits(batch, eot, len(idx))
        target = y[idx].to(avg.device)
        wrong = avg.detach().argmax(dim=1) != target
        if eot != reps and bool(wrong.any()):
            # candidate breaks are confirmed by the defence's own verdict
            cand = torch.nonzero(wrong)[:, 0]
            with torch.no_grad():
                verdict = mean_logits(copies(xa[cand.to(xa.device)], reps, False), reps, len(cand))
            wrong = torch.zeros_like(wrong)
            wrong[cand] = verdict.argmax(dim=1) != target[cand]
        wrong = wrong.to(broken.device)
        broken[idx[wrong]] = True
        if not need_grad:
            return None
        loss = nn.functional.cross_entropy(avg, target, reduction="sum")
        (grad,) = torch.autograd.grad(loss, batch)
        grad = grad.to(x_adv.device).view(eot, len(idx), *xa.shape[1:]).mean(dim=0)  # EOT
        return idx[~wrong], grad[~wrong]

    attack = eps > 0 and n_steps > 0
    start = random_start and eps > 0
    state = check(need_grad=attack and not start)  # the clean input
    if start:
        keep = ~broken
        x_adv[keep] = _project(_random_start(x_nat[keep], eps, norm), x_nat[keep], eps, norm, low, high)
        state = check(need_grad=attack)
    if not attack:
        return x_adv, broken
    for step in range(n_steps):
        if state is None:
            break
        idx, grad = state
        direction = grad.sign() if norm == "inf" else grad / _flat_norm(grad)
        x_adv[idx] = _project(x_adv[idx] + alpha * direction, x_nat[idx], eps, norm, low, high)
        state = check(need_grad=step < n_steps - 1)
    return x_adv, broken


def pgd_attack(
    classifier,
    X,
    y,
    *,
    eps,
    norm="inf",
    n_steps=40,
    step_size=None,
    random_start=True,
    purifier=None,
    n_replicates=1,
    eot_replicates=None,
    bounds=None,
    batch_size=256,
    random_state=None,
    return_success=False,
):
    """Projected gradient descent, with BPDA + EOT against a purifier.

    Maximises the cross-entropy of the classifier within the ``eps`` ball
    around each input (``norm="inf"``: sign steps, ``norm="l2"``: normalised
    gradient steps), from a uniform random start in the ball, keeping
    inputs inside ``bounds``. The prediction is checked at the clean input,
    at the random start and after every step; an input misclassified at any
    check is broken for good and no longer moved (its returned copy is the
    one that broke it).

    With a ``purifier``, every check purifies ``eot_replicates`` copies of
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
    n_steps : int, default=40
        Gradient steps.
    step_size : float, default=None
        Step length; ``None`` uses ``2.5 * eps / n_steps`` (Madry et al.).
    random_start : bool, default=True
        Start from a uniform draw in the ball.
    purifier : EBMPurifier, callable or None, default=None
        The defence: an object with ``purify_tensor`` or a callable mapping
        a tensor to its purified copy. ``None`` attacks the bare classifier.
    n_replicates : int, default=1
        Purified replicates whose averaged logits are the defended
        prediction (the defence's own ``n_replicates``); ignored without a
        purifier.
    eot_replicates : int, default=None
        Purified replicates per attack step whose logits are averaged for
        the loss and whose gradients are averaged (EOT). ``None`` uses
        ``n_replicates`` and the same copies decide the verdict. Otherwise
        a misclassification of the ``eot_replicates`` average is only a
        candidate break, confirmed with ``n_replicates`` fresh
        purifications (as in the reference code of Hill et al., with 15
        attack and 150 defence replicates).
    bounds : tuple of float, default=None
        Valid value range ``(low, high)``; ``None`` uses the minimum and
        maximum of ``X``.
    batch_size : int, default=256
        Inputs attacked at once (times ``n_replicates`` chains).
    random_state : int, RandomState instance or None, default=None
        Seeds the random start and the purification noise.
    return_success : bool, default=False
        Also return the boolean mask of broken inputs.

    Returns
    -------
    X_adv : ndarray
        Adversarial inputs, shape and dtype of ``X`` (float).
    broken : ndarray of bool
        Only if ``return_success``: inputs misclassified at some check.

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
    _check_attack_params(eps, norm, n_steps, step_size, n_replicates, batch_size)
    if eot_replicates is not None and (
        isinstance(eot_replicates, bool) or not isinstance(eot_replicates, numbers.Integral) or eot_replicates < 1
    ):
        raise ValueError(f"eot_replicates must be None or a positive integer, got {eot_replicates!r}.")
    view = as_torch_classifier(classifier)
    purify = _resolve_purifier(purifier)
    is_tensor = isinstance(X, torch.Tensor)
    X_np = X.detach().cpu().numpy() if is_tensor else np.asarray(X)
    if X_np.dtype == object or not np.issubdtype(X_np.dtype, np.number):
        raise ValueError("X must be numeric.")
    if not np.all(np.isfinite(X_np)):
        raise ValueError("X contains NaN or infinity.")
    y_idx = torch.as_tensor(view.encode(y))
    if len(y_idx) != len(X_np):
        raise ValueError(f"X has {len(X_np)} samples but y has {len(y_idx)}.")
    low, high = (float(X_np.min()), float(X_np.max())) if bounds is None else (float(bounds[0]), float(bounds[1]))
    if not low <= high:
        raise ValueError(f"bounds must be (low, high) with low <= high, got {bounds!r}.")
    alpha = 2.5 * eps / max(n_steps, 1) if step_size is None else step_size
    Xt = torch.as_tensor(X_np, dtype=torch.float32)
    out, broken = torch.empty_like(Xt), torch.zeros(len(Xt), dtype=torch.bool)
    with seed_everything(random_state, view.device):
        for start in range(0, len(Xt), batch_size):
            sl = slice(start, start + batch_size)
            x_adv, br = _attack_batch(
                view,
                purify,
                Xt[sl].to(view.device),
                y_idx[sl].to(view.device),
                eps=float(eps),
                norm=norm,
                n_steps=n_steps,
                alpha=float(alpha),
                random_start=random_start,
                n_replicates=n_replicates,
                eot_replicates=n_replicates if eot_replicates is None else eot_replicates,
                low=low,
                high=high,
            )
            out[sl], broken[sl] = x_adv.detach().cpu(), br.cpu()
    X_adv = out.numpy().astype(X_np.dtype if np.issubdtype(X_np.dtype, np.floating) else np.float32)
    if is_tensor:
        X_adv = torch.as_tensor(X_adv, device=X.device)
    return (X_adv, broken.numpy()) if return_success else X_adv


def evaluate_robustness(
    classifier,
    X,
    y,
    *,
    epsilons=(0.05, 0.1, 0.2, 0.3),
    purifier=None,
    n_replicates=None,
    eot_replicates=None,
    norm="inf",
    n_steps=40,
    step_size=None,
    bounds=None,
    batch_size=256,
    random_state=None,
):
    """Natural and robust accuracy, undefended and purified, side by side.

    For every ``eps`` the undefended classifier is attacked by
    :func:`pgd_attack` and the purified one by the same PGD with BPDA + EOT
    (see :func:`pgd_attack`): the attack adapts to the defence, as an
    honest evaluation requires. Robust accuracy is the share of inputs
    never misclassified at any check of the attack; the row ``eps = 0`` is
    the natural accuracy (for the purified classifier, with one draw of
    ``n_replicates`` purifications).

    The numbers are upper bounds on robustness (see the module docstring
    of :mod:`skebm.attacks`): a stronger adaptive attack, more steps or
    more replicates can lower them. Keep the settings with the table; they
    are stored in ``results.attrs``.

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
    n_replicates : int, default=None
        Purified replicates per attack check (EOT) and per prediction;
        ``None`` uses the ``PurifiedClassifier``'s or the purifier's
        ``n_replicates`` (1 for a plain callable).
    eot_replicates : int, default=None
        Replicates per attack step for the EOT gradient; ``None`` uses
        ``n_replicates`` (see :func:`pgd_attack`).
    norm : {"inf", "l2"}, default="inf"
    n_steps : int, default=40
        PGD steps.
    step_size : float, default=None
        PGD step; ``None`` uses ``2.5 * eps / n_steps``.
    bounds : tuple of float, default=None
        Valid range of ``X``; ``None`` uses its minimum and maximum.
    batch_size : int, default=256
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    results : pandas.DataFrame
        Index ``epsilon`` (0 first: natural accuracy), columns
        ``"undefended"`` and, with a purifier, ``"purified"``; accuracies
        in [0, 1]. ``results.attrs`` holds the attack settings.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from skebm.attacks import evaluate_robustness
    >>> net = torch.nn.Linear(2, 2)
    >>> X = np.random.RandomState(0).rand(20, 2).astype(np.float32)
    >>> y = np.random.RandomState(1).randint(2, size=20)
    >>> table = evaluate_robustness(net, X, y, epsilons=[0.1], purifier=lambda x: x,
    ...                             n_replicates=2, n_steps=5, bounds=(0, 1), random_state=0)
    >>> list(table.columns), list(table.index)
    (['undefended', 'purified'], [0.0, 0.1])
    """
    import pandas as pd

    if hasattr(classifier, "purifier_") and hasattr(classifier, "classifier_"):
        purifier = classifier.purifier_ if purifier is None else purifier
        if n_replicates is None:
            n_replicates = classifier.n_replicates
        classifier = classifier.classifier_
    if n_replicates is None:
        n_replicates = getattr(purifier, "n_replicates", 1) if purifier is not None else 1
    epsilons = [float(e) for e in epsilons]
    if any(not math.isfinite(e) or e <= 0 for e in epsilons):
        raise ValueError(f"epsilons must be positive numbers, got {epsilons!r}.")
    rows = [0.0, *epsilons]
    columns = {"undefended": None} if purifier is None else {"undefended": None, "purified": purifier}
    rng = np.random.RandomState(random_state) if not isinstance(random_state, np.random.RandomState) else random_state
    results = {}
    for name, defence in columns.items():
        accs = []
        for eps in rows:
            _, broken = pgd_attack(
                classifier,
                X,
                y,
                eps=eps,
                norm=norm,
                n_steps=n_steps if eps > 0 else 0,
                step_size=step_size,
                purifier=defence,
                n_replicates=n_replicates,
                eot_replicates=eot_replicates,
                bounds=bounds,
                batch_size=batch_size,
                random_state=rng.randint(np.iinfo(np.int32).max),
                return_success=True,
            )
            accs.append(1.0 - float(np.mean(broken)))
        results[name] = accs
    table = pd.DataFrame(results, index=pd.Index(rows, name="epsilon"))
    table.attrs = {
        "attack": "PGD" + (" (BPDA + EOT against the purifier)" if purifier is not None else ""),
        "norm": norm,
        "n_steps": n_steps,
        "step_size": "2.5 * eps / n_steps" if step_size is None else step_size,
        "random_start": True,
        "n_replicates": n_replicates,
        "eot_replicates": n_replicates if eot_replicates is None else eot_replicates,
        "n_samples": len(y),
    }
    return table
