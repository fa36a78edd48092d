"""What every attack shares: inputs, the ball, seeding, replicate batches, verdicts."""

import warnings

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Hidden, StrOptions

from .._random import PerDeviceGenerator, seed_from

#: Default of a renamed keyword: the old name still works until 0.5, with a FutureWarning.
DEPRECATED = "deprecated"
DEPRECATED_OPTION = Hidden(StrOptions({DEPRECATED}))


def _renamed(value, old_value, name, old_name):
    """The value of the keyword ``name``, or of its old name ``old_name`` if that was passed (FutureWarning)."""
    if isinstance(old_value, str) and old_value == DEPRECATED:
        return value
    warnings.warn(
        f"{old_name} was renamed {name} in 0.3 (the glossary's name); {old_name} will be removed in 0.5.",
        FutureWarning,
        stacklevel=4,  # the user's call, through the attack and scikit-learn's validate_params
    )
    return old_value


def _randomness(random_state):
    """The random sources of one attack call: ``(rng, generators)``.

    ``rng`` (a RandomState) draws integers (noise keys, the seeds of nested
    attacks); ``generators`` (a :class:`~skebm._random.PerDeviceGenerator`)
    every tensor draw: random starts and the purifications' fresh noise, on
    whatever device each runs. torch's global generator is never touched.
    """
    rng = check_random_state(random_state)
    return rng, PerDeviceGenerator(seed_from(rng))


# ------------------------------------------------------------------ inputs
class _Inputs:
    """Validated inputs of an attack: float32 tensor, label indices, bounds, and the way back."""

    def __init__(self, view, X, y, bounds):
        self.is_tensor = isinstance(X, torch.Tensor)
        self.original = X
        X_np = X.detach().cpu().numpy() if self.is_tensor else np.asarray(X)
        if X_np.dtype == object or not np.issubdtype(X_np.dtype, np.number):
            raise ValueError("X must be numeric.")
        if X_np.ndim < 2:
            raise ValueError(f"X must have one row per sample (at least 2-D), got shape {X_np.shape}.")
        if not np.all(np.isfinite(X_np)):
            raise ValueError("X contains NaN or infinity.")
        self.y = torch.as_tensor(view.encode(y))
        if len(self.y) != len(X_np):
            raise ValueError(f"X has {len(X_np)} samples but y has {len(self.y)}.")
        if bounds is None:
            low, high = float(X_np.min()), float(X_np.max())
        else:
            if len(bounds) != 2:
                raise ValueError(f"bounds must be (low, high), got {bounds!r}.")
            low, high = float(bounds[0]), float(bounds[1])
        if not low <= high:
            raise ValueError(f"bounds must be (low, high) with low <= high, got {bounds!r}.")
        self.low, self.high = low, high
        self.dtype = X_np.dtype if np.issubdtype(X_np.dtype, np.floating) else np.float32
        self.X = torch.as_tensor(X_np, dtype=torch.float32)

    def __len__(self):
        return len(self.X)

    def batches(self, batch_size):
        for start in range(0, len(self.X), batch_size):
            yield slice(start, start + batch_size)

    def attack(self, view, batch_size, attack_batch):
        """``attack_batch(sl, x, y) -> (x_adv, broken)`` on every batch; ``(X_adv, broken)`` in the caller's type."""
        out, broken = self.X.clone(), torch.zeros(len(self), dtype=torch.bool)
        for sl in self.batches(batch_size):
            x_adv, br = attack_batch(sl, self.X[sl].to(view.device), self.y[sl].to(view.device))
            out[sl], broken[sl] = x_adv.detach().cpu(), br.cpu()
        return self.restore(out), broken.numpy()

    def restore(self, adv):
        """Adversarial tensor (CPU float32) -> the caller's type, shape and float dtype."""
        out = adv.numpy().astype(self.dtype)
        if self.is_tensor:
            return torch.as_tensor(out, device=self.original.device)
        return out


# -------------------------------------------------------------- the ball
def _flat_norm(t):
    return t.reshape(len(t), -1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (t.ndim - 1)))


def _project(x_adv, x_nat, eps, norm, low, high):
    delta = x_adv - x_nat
    if norm == "inf":
        delta = delta.clamp(-eps, eps)
    else:
        delta = delta * (eps / _flat_norm(delta)).clamp(max=1.0)
    return (x_nat + delta).clamp(low, high)


def _random_start(x_nat, eps, norm, generators):
    g = generators.on(x_nat.device)
    if norm == "inf":
        return x_nat + (torch.rand(x_nat.shape, generator=g, device=x_nat.device) * 2 - 1) * eps
    direction = torch.randn(x_nat.shape, generator=g, device=x_nat.device)
    direction = direction / _flat_norm(direction)
    d = x_nat[0].numel()
    radius = eps * torch.rand(len(x_nat), generator=g, device=x_nat.device).pow(1.0 / d)
    radius = radius.view(-1, *([1] * (x_nat.ndim - 1)))
    return x_nat + direction * radius


def _pgd_alpha(eps, pgd_steps, pgd_step_size):
    """The PGD step length: ``pgd_step_size``, or ``2.5 * eps / pgd_steps`` (Madry et al.)."""
    return float(2.5 * eps / max(pgd_steps, 1) if pgd_step_size is None else pgd_step_size)


def _direction(grad, norm):
    return grad.sign() if norm == "inf" else grad / _flat_norm(grad)


def _pgd_iterations(check, x_adv, x_nat, broken, *, eps, pgd_steps, alpha, norm, low, high, random_start, generators):
    """The PGD loop shared by the BPDA and the full-gradient attacks.

    ``check(need_grad)`` judges the current iterates of the inputs not yet
    broken (marking the broken ones in ``broken``) and returns ``(idx,
    grad)`` for those still standing, or ``None`` when none is left. The
    clean input is checked first, then the random start, then every step.
    """
    attack = eps > 0 and pgd_steps > 0
    start = random_start and eps > 0
    state = check(need_grad=attack and not start)  # the clean input
    if start:
        keep = ~broken
        x_adv[keep] = _project(_random_start(x_nat[keep], eps, norm, generators), x_nat[keep], eps, norm, low, high)
        state = check(need_grad=attack)
    if not attack:
        return x_adv, broken
    for step in range(pgd_steps):
        if state is None:
            break
        idx, grad = state
        x_adv[idx] = _project(x_adv[idx] + alpha * _direction(grad.to(x_adv.device), norm), x_nat[idx], eps, norm,
                              low, high)
        state = check(need_grad=step < pgd_steps - 1)
    return x_adv, broken


# ------------------------------------------------------ replicate batches
def _replicate(x, k):
    """``k`` copies of the batch ``x``, replicate-major: ``(k * n, ...)``."""
    return x.unsqueeze(0).expand(k, *x.shape).reshape(-1, *x.shape[1:])


def _defended_logits(view, purify, x, k):
    """Logits averaged over ``k`` purifications of each row (no graph); ``purify=None``: bare logits."""
    with torch.no_grad():
        if purify is None:
            return view.logits(x).float()
        batch = purify(_replicate(x, k))
        return view.logits(batch).float().view(k, len(x), -1).mean(dim=0)


def _defended_wrong(view, purify, x, target, k):
    """The defence's verdict: is the prediction (``k`` replicates, averaged logits) wrong?"""
    logits = _defended_logits(view, purify, x, k)
    return (logits.argmax(dim=1) != target.to(logits.device)).to(x.device)
