"""Chain-initialisation strategies: where each Langevin chain starts.

Every strategy is a small stateful object with the same three methods:

- ``setup(noise, shape, device)`` once before training (allocates banks);
- ``draw(x_data)`` returns chain starts for a batch plus a token;
- ``update(token, x_neg)`` stores the chains' end states back.

The estimators pick one by name through :func:`make_chain_init`; research
code can use the classes directly.
"""

import math
import numbers

import numpy as np
import torch

__all__ = [
    "NoiseSource",
    "GaussianMixtureSource",
    "ChainInit",
    "NoiseInit",
    "DataInit",
    "ReplayInit",
    "PersistentInit",
    "LongrunInit",
    "make_chain_init",
    "CHAIN_INITS",
]


class NoiseSource:
    """Picklable source of fresh chain starts.

    Parameters
    ----------
    kind : {"uniform", "gaussian"}, default="uniform"
        ``"uniform"`` draws from U[low, high], ``"gaussian"`` from
        N(loc, scale^2).
    low, high : float, default=-1, 1
        Bounds of the uniform noise.
    loc, scale : float, default=0, 1
        Mean and standard deviation of the Gaussian noise.
    """

    def __init__(self, kind="uniform", low=-1.0, high=1.0, loc=0.0, scale=1.0):
        if kind not in ("uniform", "gaussian"):
            raise ValueError(f"kind must be 'uniform' or 'gaussian', got {kind!r}.")
        self.kind = kind
        self.low = low
        self.high = high
        self.loc = loc
        self.scale = scale

    def __call__(self, n, shape, device="cpu"):
        """Draw ``n`` starts of feature shape ``shape`` on ``device``."""
        size = (int(n), *shape)
        if self.kind == "uniform":
            return torch.rand(size, device=device) * (self.high - self.low) + self.low
        return torch.randn(size, device=device) * self.scale + self.loc

    def __repr__(self):
        if self.kind == "uniform":
            return f"NoiseSource('uniform', low={self.low}, high={self.high})"
        return f"NoiseSource('gaussian', loc={self.loc}, scale={self.scale})"


def _float64(a):
    """A float64 CPU tensor copy of an array-like or a tensor."""
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().double()
    return torch.tensor(np.asarray(a, dtype=np.float64))


class GaussianMixtureSource:
    """Gaussian mixture with exact sampling and log-density.

    A source of fresh chain starts (call it like a :class:`NoiseSource`)
    that is also a tractable, normalised base density: annealed importance
    sampling (:func:`ais_log_partition`) starts from it and
    :class:`~skebm.EBMDensity` tilts it. Flat features only: a sample has
    ``n_features`` entries (reshaped to the requested feature shape).

    Parameters
    ----------
    weights : array-like of shape (n_components,)
        Mixture weights (normalised internally).
    means : array-like of shape (n_components, n_features)
        Component means.
    covariances : array-like of shape (n_components, n_features, n_features)
        Full covariance matrices (symmetric positive definite).

    Attributes
    ----------
    n_components : int
    n_features : int

    Examples
    --------
    >>> import torch
    >>> from skebm.mcmc import GaussianMixtureSource
    >>> base = GaussianMixtureSource([1.0], [[0.0, 0.0]], [[[1.0, 0.0], [0.0, 1.0]]])
    >>> x = base.sample(5)
    >>> x.shape
    torch.Size([5, 2])
    >>> round(float(base.log_prob(torch.zeros(1, 2))[0]), 4)  # -log(2 pi)
    -1.8379
    """

    def __init__(self, weights, means, covariances):
        means, covariances, weights = _float64(means), _float64(covariances), _float64(weights).reshape(-1)
        if means.ndim != 2 or covariances.shape != (*means.shape, means.shape[1]) or len(weights) != len(means):
            raise ValueError(
                "weights, means and covariances must have shapes (k,), (k, d) and (k, d, d); got "
                f"{tuple(weights.shape)}, {tuple(means.shape)} and {tuple(covariances.shape)}."
            )
        if not (weights >= 0).all() or not weights.sum() > 0:
            raise ValueError("weights must be non-negative with a positive sum.")
        chol = torch.linalg.cholesky(covariances)  # raises for a non positive definite covariance
        self.n_components, self.n_features = means.shape
        self.log_weights = torch.log(weights / weights.sum()).float()
        self.means = means.float()
        self.chol = chol.float()
        # precision factor: y = L^-1 (x - mu) whitens a component
        self.inv_chol = torch.linalg.inv(chol).float()
        self.log_det = torch.log(torch.diagonal(chol, dim1=1, dim2=2)).sum(1).float()

    @classmethod
    def from_estimator(cls, gmm):
        """Build from a fitted :class:`sklearn.mixture.GaussianMixture` (any covariance type)."""
        k, d = gmm.means_.shape
        cov = np.asarray(gmm.covariances_, dtype=np.float64)
        if gmm.covariance_type == "full":
            full = cov
        elif gmm.covariance_type == "tied":
            full = np.broadcast_to(cov, (k, d, d))
        elif gmm.covariance_type == "diag":
            full = np.stack([np.diag(c) for c in cov])
        else:  # spherical
            full = np.stack([np.eye(d) * c for c in cov])
        return cls(gmm.weights_, gmm.means_, full)

    def to(self, device):
        """Move the parameters to ``device``; returns self."""
        for key, value in list(vars(self).items()):
            if isinstance(value, torch.Tensor):
                setattr(self, key, value.to(device))
        return self

    def sample(self, n, device=None):
        """``n`` exact draws, shape ``(n, n_features)``."""
        device = self.means.device if device is None else torch.device(device)
        comp = torch.multinomial(self.log_weights.exp().to(device), int(n), replacement=True)
        eps = torch.randn(int(n), self.n_features, device=device)
        return self.means.to(device)[comp] + torch.einsum("nde,ne->nd", self.chol.to(device)[comp], eps)

    def __call__(self, n, shape, device="cpu"):
        """Draw ``n`` starts of feature shape ``shape`` (NoiseSource protocol)."""
        return self.sample(n, device).reshape(int(n), *shape)

    def log_prob(self, x):
        """Normalised log-density of a batch (flattened to ``n_features``), differentiable."""
        x = x.reshape(len(x), -1)
        k, d = self.n_components, self.n_features
        # whitened coordinates of every component in one matmul: y_k = L_k^-1 (x - mu_k)
        inv_chol = self.inv_chol.to(x.device)
        weight = inv_chol.permute(2, 0, 1).reshape(d, k * d)
        shift = torch.einsum("kde,ke->kd", inv_chol, self.means.to(x.device)).reshape(k * d)
        y = (x @ weight - shift).view(len(x), k, d)
        log_comp = -0.5 * y.pow(2).sum(-1) - self.log_det.to(x.device) - 0.5 * self.n_features * math.log(2 * math.pi)
        return torch.logsumexp(self.log_weights.to(x.device) + log_comp, dim=1)

    def __repr__(self):
        return f"GaussianMixtureSource(n_components={self.n_components}, n_features={self.n_features})"


class ChainInit:
    """Base class of the chain-initialisation strategies.

    Subclasses override :meth:`draw` and, when they keep state,
    :meth:`_allocate` and :meth:`update`.
    """

    name = None

    def setup(self, noise, shape, device="cpu"):
        """Prepare the strategy for chains of feature shape ``shape``.

        Parameters
        ----------
        noise : callable
            ``noise(n, shape, device)`` returns ``n`` fresh starts, e.g. a
            :class:`NoiseSource`.
        shape : tuple of int
            Feature shape of one chain state.
        device : str or torch.device, default="cpu"
            Device on which the banks live.

        Returns
        -------
        self
        """
        self.noise_ = noise
        self.shape_ = tuple(shape)
        self.device_ = torch.device(device)
        self._allocate()
        return self

    def _allocate(self):
        pass

    def _fresh(self, n):
        return self.noise_(n, self.shape_, self.device_)

    def draw(self, x_data):
        """Return ``(x0, token)``: chain starts for the data batch ``x_data``."""
        raise NotImplementedError

    def update(self, token, x_neg, y=None):
        """Store the end states ``x_neg`` (of class ``y``) of the chains drawn with ``token``."""

    def negatives(self, token, x_neg):
        """The chains, among the end states ``x_neg`` of a draw, that serve as negatives.

        All of them by default; a strategy that also advances chains which
        must not enter the loss (the burn-in bank of :class:`LongrunInit`)
        selects here.
        """
        return x_neg

    def starts(self, n, y=None):
        """Chain starts for sampling from a fitted model (fresh noise)."""
        return self._fresh(n)

    def _bank_starts(self, bank, n_valid, labels, n, y):
        """Draw ``n`` starts among the first ``n_valid`` bank rows.

        With class labels ``y``, each start comes from a row last run with
        the same label (fresh noise where the bank holds none).
        """
        if n_valid == 0:
            return self._fresh(n)
        if y is None:
            return bank[torch.randint(n_valid, (n,), device=self.device_)].clone()
        x0 = self._fresh(n)
        valid_labels = labels[:n_valid]
        for label in torch.unique(y):
            rows = torch.nonzero(valid_labels == label)[:, 0]
            want = torch.nonzero(y == label)[:, 0]
            if len(rows):
                x0[want] = bank[rows[torch.randint(len(rows), (len(want),), device=self.device_)]]
        return x0

    def to(self, device):
        """Move any bank to ``device``; returns self."""
        self.device_ = torch.device(device)
        for key, value in list(vars(self).items()):
            if isinstance(value, torch.Tensor):
                setattr(self, key, value.to(self.device_))
        return self

    def __repr__(self):
        params = {k: v for k, v in vars(self).items() if not k.endswith("_")}
        args = ", ".join(f"{k}={v!r}" for k, v in params.items())
        return f"{type(self).__name__}({args})"


class NoiseInit(ChainInit):
    """Every chain starts from fresh noise (IGEBM, non-convergent shortrun)."""

    name = "noise"

    def draw(self, x_data):
        return self._fresh(len(x_data)), None


class DataInit(ChainInit):
    """Every chain starts at the data batch (contrastive divergence).

    Parameters
    ----------
    noise_std : float, default=0.0
        Standard deviation of Gaussian noise added to the data starts.
    """

    name = "data"

    def __init__(self, noise_std=0.0):
        self.noise_std = noise_std

    def draw(self, x_data):
        x0 = x_data.detach().clone()
        if self.noise_std:
            x0.add_(torch.randn_like(x0), alpha=self.noise_std)
        return x0, None


def _check_prob(value, name):
    if not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}.")


def _check_size(value, name):
    if not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


class ReplayInit(ChainInit):
    """Replay buffer of past negatives (IGEBM, JEM).

    A ring buffer holds the end states of past chains. Each new chain starts
    from a uniformly drawn buffer entry, except that with probability
    ``reinit_prob`` it restarts from fresh noise: the real IGEBM
    reinitialisation, not a perturbation of a buffer entry. While the buffer
    holds fewer entries than the batch, chains start from noise.

    Parameters
    ----------
    buffer_size : int, default=10000
        Capacity of the ring buffer.
    reinit_prob : float, default=0.05
        Probability that a chain restarts from noise.

    Attributes
    ----------
    buffer_ : torch.Tensor
        The buffer, shape ``(buffer_size, *shape)``; rows past ``n_filled_``
        are unused.
    n_filled_ : int
        Number of valid entries.
    last_reinit_ : torch.Tensor
        Boolean mask of the chains restarted from noise in the last draw.
    """

    name = "replay"

    def __init__(self, buffer_size=10000, reinit_prob=0.05):
        _check_size(buffer_size, "buffer_size")
        _check_prob(reinit_prob, "reinit_prob")
        self.buffer_size = buffer_size
        self.reinit_prob = reinit_prob

    def _allocate(self):
        self.buffer_ = torch.empty((self.buffer_size, *self.shape_), device=self.device_)
        self.labels_ = torch.full((self.buffer_size,), -1, dtype=torch.long, device=self.device_)
        self.n_filled_ = 0
        self.write_pos_ = 0

    def draw(self, x_data):
        n = len(x_data)
        if self.n_filled_ < n:
            self.last_reinit_ = torch.ones(n, dtype=torch.bool, device=self.device_)
            return self._fresh(n), None
        idx = torch.randint(self.n_filled_, (n,), device=self.device_)
        x0 = self.buffer_[idx].clone()
        reinit = torch.rand(n, device=self.device_) < self.reinit_prob
        n_reinit = int(reinit.sum())
        if n_reinit:
            x0[reinit] = self._fresh(n_reinit)
        self.last_reinit_ = reinit
        return x0, None

    def update(self, token, x_neg, y=None):
        x_neg = x_neg.detach()[: self.buffer_size]
        n = len(x_neg)
        pos = (self.write_pos_ + torch.arange(n, device=self.device_)) % self.buffer_size
        self.buffer_[pos] = x_neg.to(self.buffer_.dtype)
        self.labels_[pos] = -1 if y is None else y[:n].to(self.labels_.device)
        self.write_pos_ = int((self.write_pos_ + n) % self.buffer_size)
        self.n_filled_ = min(self.buffer_size, self.n_filled_ + n)

    def starts(self, n, y=None):
        """Chain starts drawn from the buffer (per class when ``y`` is given)."""
        return self._bank_starts(self.buffer_, self.n_filled_, self.labels_, n, y)


class PersistentInit(ChainInit):
    """Persistent bank of chains with rejuvenation (EBM Life Cycle).

    The bank is filled at set-up. Each update draws a batch of bank chains,
    runs them and writes their end states back in place. A drawn chain is
    rejuvenated (restarted from noise or from data) with probability
    ``reinit_prob``, and always once it has been updated ``max_updates``
    times.

    Parameters
    ----------
    buffer_size : int, default=10000
        Number of chains in the bank.
    reinit_prob : float, default=0.05
        Rejuvenation probability of a drawn chain.
    rejuvenate : {"noise", "data"}, default="noise"
        Where rejuvenated chains restart: fresh noise or the data batch.
    max_updates : int, default=None
        Forced reset of a chain after this many updates; ``None`` never.

    Attributes
    ----------
    bank_ : torch.Tensor
        The chains, shape ``(buffer_size, *shape)``.
    n_updates_ : torch.Tensor
        Number of updates of each chain since its last (re)start.
    last_reinit_ : torch.Tensor
        Boolean mask of the chains rejuvenated in the last draw.
    """

    name = "persistent"

    def __init__(self, buffer_size=10000, reinit_prob=0.05, rejuvenate="noise", max_updates=None):
        _check_size(buffer_size, "buffer_size")
        _check_prob(reinit_prob, "reinit_prob")
        if rejuvenate not in ("noise", "data"):
            raise ValueError(f"rejuvenate must be 'noise' or 'data', got {rejuvenate!r}.")
        if max_updates is not None:
            _check_size(max_updates, "max_updates")
        self.buffer_size = buffer_size
        self.reinit_prob = reinit_prob
        self.rejuvenate = rejuvenate
        self.max_updates = max_updates

    def _allocate(self):
        self.bank_ = self._fresh(self.buffer_size)
        self.n_updates_ = torch.zeros(self.buffer_size, dtype=torch.long, device=self.device_)
        self.labels_ = torch.full((self.buffer_size,), -1, dtype=torch.long, device=self.device_)

    def draw(self, x_data):
        n = len(x_data)
        if n <= self.buffer_size:
            idx = torch.randperm(self.buffer_size, device=self.device_)[:n]
        else:
            idx = torch.randint(self.buffer_size, (n,), device=self.device_)
        x0 = self.bank_[idx].clone()
        reinit = torch.rand(n, device=self.device_) < self.reinit_prob
        if self.max_updates is not None:
            reinit |= self.n_updates_[idx] >= self.max_updates
        n_reinit = int(reinit.sum())
        if n_reinit:
            if self.rejuvenate == "data":
                x0[reinit] = x_data.detach()[reinit].to(x0.dtype)
            else:
                x0[reinit] = self._fresh(n_reinit)
            self.n_updates_[idx[reinit]] = 0
        self.last_reinit_ = reinit
        return x0, idx

    def update(self, token, x_neg, y=None):
        self.bank_[token] = x_neg.detach().to(self.bank_.dtype)
        self.n_updates_[token] += 1
        self.labels_[token] = -1 if y is None else y.to(self.labels_.device)

    def starts(self, n, y=None):
        """Chain starts drawn from the bank (per class when ``y`` is given)."""
        return self._bank_starts(self.bank_, self.buffer_size, self.labels_, n, y)


class LongrunInit(ChainInit):
    """Longrun chains: a burn-in bank feeding an update bank (EBM Life Cycle).

    Two banks. The *burn-in bank* holds ``burnin_size`` chains that start
    from fresh noise (or data) with *staggered* update counters, drawn
    uniformly in ``[0, burnin_updates)`` at set-up so that chains mature at
    a steady rate. Every draw advances a random batch of burn-in chains
    together with the negatives; a burn-in chain that has been advanced
    ``burnin_updates`` times *graduates*: it moves into the *update bank*
    and its burn-in slot restarts from noise with a zero counter.

    The update bank (``buffer_size`` chains) supplies the negatives. Its
    chains are never restarted: a drawn chain is run and written back in
    place. Graduates are appended while the bank fills; once it is full,
    they overwrite chains drawn in the same update (random old states, as
    in the reference code), so the bank keeps receiving chains that
    started from noise and burnt in for ``burnin_updates`` updates.

    While the update bank holds fewer chains than one batch (at the start
    of training), the burn-in chains advanced in that update supply the
    negatives instead.

    Each draw returns the update-bank batch followed by the burn-in batch
    (the sampler runs both with the same settings);
    :meth:`negatives` picks the update-bank part. Class-conditional
    energies are not supported.

    Parameters
    ----------
    buffer_size : int, default=10000
        Capacity of the update bank.
    burnin_size : int, default=1000
        Number of chains in the burn-in bank.
    burnin_updates : int, default=750
        Updates a burn-in chain receives before it graduates.
    burnin_batch : int, default=None
        Burn-in chains advanced per draw; ``None`` uses the batch size of
        the draw (capped at ``burnin_size``).
    rejuvenate : {"noise", "data"}, default="noise"
        Where burn-in chains (re)start: fresh noise or the data batch.

    Attributes
    ----------
    update_bank_ : torch.Tensor
        The update bank, shape ``(buffer_size, *shape)``; rows past
        ``n_filled_`` are unused.
    n_filled_ : int
        Number of chains in the update bank.
    burnin_bank_ : torch.Tensor
        The burn-in chains, shape ``(burnin_size, *shape)``.
    burnin_count_ : torch.Tensor
        Updates received by each burn-in chain since its (re)start.
    n_graduated_ : int
        Number of chains moved into the update bank so far.

    Examples
    --------
    >>> import torch
    >>> from skebm.mcmc import LongrunInit, NoiseSource
    >>> init = LongrunInit(buffer_size=100, burnin_size=20, burnin_updates=3)
    >>> init = init.setup(NoiseSource("gaussian"), (2,))
    >>> x0, token = init.draw(torch.zeros(8, 2))
    >>> x0.shape  # 8 burn-in chains (the update bank is still empty)
    torch.Size([8, 2])
    >>> init.update(token, x0 + 0.1)
    >>> init.negatives(token, x0).shape
    torch.Size([8, 2])
    """

    name = "longrun"

    def __init__(self, buffer_size=10000, burnin_size=1000, burnin_updates=750, burnin_batch=None, rejuvenate="noise"):
        _check_size(buffer_size, "buffer_size")
        _check_size(burnin_size, "burnin_size")
        _check_size(burnin_updates, "burnin_updates")
        if burnin_batch is not None:
            _check_size(burnin_batch, "burnin_batch")
        if rejuvenate not in ("noise", "data"):
            raise ValueError(f"rejuvenate must be 'noise' or 'data', got {rejuvenate!r}.")
        self.buffer_size = buffer_size
        self.burnin_size = burnin_size
        self.burnin_updates = burnin_updates
        self.burnin_batch = burnin_batch
        self.rejuvenate = rejuvenate

    def _allocate(self):
        self.update_bank_ = torch.zeros((self.buffer_size, *self.shape_), device=self.device_)
        self.labels_ = torch.full((self.buffer_size,), -1, dtype=torch.long, device=self.device_)
        self.n_filled_ = 0
        self.n_graduated_ = 0
        self.burnin_bank_ = self._fresh(self.burnin_size)
        self.burnin_count_ = torch.randint(self.burnin_updates, (self.burnin_size,), device=self.device_)

    def _restart(self, n, x_data):
        if self.rejuvenate == "data" and x_data is not None and len(x_data):
            rows = torch.randint(len(x_data), (n,), device=x_data.device)
            return x_data.detach()[rows].to(device=self.device_, dtype=self.burnin_bank_.dtype)
        return self._fresh(n)

    def draw(self, x_data):
        n = len(x_data)
        m = min(self.burnin_batch or n, self.burnin_size)
        burnin_idx = torch.randperm(self.burnin_size, device=self.device_)[:m]
        update_idx = None
        if self.n_filled_ >= min(n, self.buffer_size):
            if n <= self.n_filled_:
                update_idx = torch.randperm(self.n_filled_, device=self.device_)[:n]
            else:
                update_idx = torch.randint(self.n_filled_, (n,), device=self.device_)
        parts = [self.burnin_bank_[burnin_idx]]
        if update_idx is not None:
            parts.insert(0, self.update_bank_[update_idx])
        x0 = torch.cat(parts).clone()
        return x0, (update_idx, burnin_idx, x_data.detach() if self.rejuvenate == "data" else None)

    def negatives(self, token, x_neg):
        update_idx = token[0]
        return x_neg if update_idx is None else x_neg[: len(update_idx)]

    def update(self, token, x_neg, y=None):
        if y is not None:
            raise ValueError("LongrunInit does not support class-conditional energies.")
        update_idx, burnin_idx, x_data = token
        x_neg = x_neg.detach().to(self.burnin_bank_.dtype)
        n_update = 0 if update_idx is None else len(update_idx)
        if n_update:
            self.update_bank_[update_idx] = x_neg[:n_update]
        x_burn = x_neg[n_update:]
        self.burnin_bank_[burnin_idx] = x_burn
        self.burnin_count_[burnin_idx] += 1
        done = self.burnin_count_[burnin_idx] >= self.burnin_updates
        n_done = int(done.sum())
        if not n_done:
            return
        graduates = x_burn[done]
        n_append = min(n_done, self.buffer_size - self.n_filled_)
        if n_append:
            self.update_bank_[self.n_filled_ : self.n_filled_ + n_append] = graduates[:n_append]
            self.n_filled_ += n_append
        rest = graduates[n_append:]
        if len(rest):
            # the bank is full: graduates replace chains drawn in this update, then random ones
            drawn = torch.unique(update_idx) if n_update else torch.empty(0, dtype=torch.long, device=self.device_)
            drawn = drawn[torch.randperm(len(drawn), device=self.device_)]
            if len(drawn) < len(rest):
                drawn = torch.cat([drawn, torch.randint(self.buffer_size, (len(rest) - len(drawn),), device=self.device_)])
            self.update_bank_[drawn[: len(rest)]] = rest
        self.n_graduated_ += n_done
        restart = burnin_idx[done]
        self.burnin_bank_[restart] = self._restart(n_done, x_data)
        self.burnin_count_[restart] = 0

    def starts(self, n, y=None):
        """Chain starts drawn from the update bank (the burn-in bank while it is empty)."""
        if self.n_filled_ == 0:
            return self.burnin_bank_[torch.randint(self.burnin_size, (n,), device=self.device_)].clone()
        return self._bank_starts(self.update_bank_, self.n_filled_, self.labels_, n, y)


CHAIN_INITS = {
    "noise": NoiseInit,
    "data": DataInit,
    "replay": ReplayInit,
    "persistent": PersistentInit,
    "longrun": LongrunInit,
}


def make_chain_init(init, *, buffer_size=10000, reinit_prob=0.05, **kwargs):
    """Build a chain-initialisation strategy from a name or pass one through.

    Parameters
    ----------
    init : str or ChainInit
        A name in :data:`CHAIN_INITS` or a :class:`ChainInit` instance
        (returned as a fresh copy so the caller's object is not mutated).
    buffer_size, reinit_prob : int, float
        Used by the strategies that keep a bank.
    **kwargs
        Further constructor arguments of the chosen strategy.

    Returns
    -------
    strategy : ChainInit
    """
    import copy

    if isinstance(init, ChainInit):
        return copy.deepcopy(init)
    if init not in CHAIN_INITS:
        raise ValueError(
            f"init must be one of {sorted(CHAIN_INITS)} or a ChainInit instance, got {init!r}."
        )
    cls = CHAIN_INITS[init]
    if cls in (ReplayInit, PersistentInit):
        return cls(buffer_size=buffer_size, reinit_prob=reinit_prob, **kwargs)
    if cls is LongrunInit:
        # the update bank is never rejuvenated: reinit_prob does not apply
        return cls(buffer_size=buffer_size, **kwargs)
    return cls(**kwargs)
