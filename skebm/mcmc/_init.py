"""Chain-initialisation strategies: where each Langevin chain starts.

Every strategy is a small stateful object with the same three methods:

- ``setup(noise, shape, device)`` once before training (allocates banks);
- ``draw(x_data)`` returns chain starts for a batch plus a token;
- ``update(token, x_neg)`` stores the chains' end states back.

The estimators pick one by name through :func:`make_chain_init`; research
code can use the classes directly.
"""

import numbers

import torch

__all__ = [
    "NoiseSource",
    "ChainInit",
    "NoiseInit",
    "DataInit",
    "ReplayInit",
    "PersistentInit",
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


CHAIN_INITS = {
    "noise": NoiseInit,
    "data": DataInit,
    "replay": ReplayInit,
    "persistent": PersistentInit,
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
    return cls(**kwargs)
