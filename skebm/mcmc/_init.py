"""Chain-initialisation strategies: where each Langevin chain starts.

A strategy is a :class:`torch.nn.Module` whose banks are buffers (so they
move with ``.to``, travel in ``state_dict``, checkpoint and pickle with the
training engine). Every strategy has the same methods:

- ``setup(source, shape, device)`` once before training (allocates banks);
- ``draw(x_data, y=None)`` returns a :class:`ChainDraw`: chain starts for a
  batch, and where they came from;
- ``update(draw, x_neg, y=None)`` stores the chains' end states back;
- ``negatives(draw, x_neg)`` picks the end states that serve as negatives;
- ``starts(n, y=None)`` gives starts for sampling from a fitted model.

Five strategies: :class:`NoiseInit`, :class:`DataInit`,
:class:`ReplayInit`, :class:`PersistentInit` and :class:`LongrunInit`
(see each). Every random draw takes an optional ``generator``; ``None``
uses torch's global generator. The estimators build one by name through
:func:`make_chain_init`; research code can use the classes directly.
"""

import copy
import inspect
import warnings
from typing import NamedTuple, Optional

import torch
from sklearn.utils._param_validation import Hidden
from torch import nn

from .._validation import POSITIVE_INT, PROB, Float, StrOptions, check_params
from ._sources import check_source

__all__ = [
    "ChainDraw",
    "ChainInit",
    "NoiseInit",
    "DataInit",
    "ReplayInit",
    "PersistentInit",
    "LongrunInit",
    "make_chain_init",
    "CHAIN_INITS",
]


#: Message of the deprecated ``burnin_size`` (LongrunInit, LongrunML).
_BURNIN_SIZE_RENAMED = "`burnin_size` was renamed `burnin_buffer_size` in 0.2 and will be removed in 0.5"


def _rejuvenate(value):
    if value == "noise":
        warnings.warn('rejuvenate="noise" is deprecated: use "source".', FutureWarning, stacklevel=3)
        return "source"
    return value


class ChainDraw(NamedTuple):
    """Chain starts of one update and where they came from.

    Attributes
    ----------
    x0 : torch.Tensor
        The chain starts.
    index : torch.Tensor or None
        Bank rows the chains were drawn from (persistent bank, longrun
        update bank), ``None`` otherwise.
    burnin_index : torch.Tensor or None
        Burn-in rows advanced with them (longrun only).
    x_data : torch.Tensor or None
        The data batch, kept where chains may restart from data.
    """

    x0: torch.Tensor
    index: Optional[torch.Tensor] = None
    burnin_index: Optional[torch.Tensor] = None
    x_data: Optional[torch.Tensor] = None


class ChainInit(nn.Module):
    """Base class of the chain-initialisation strategies.

    Subclasses override :meth:`draw` and, when they keep state,
    ``_allocate``, :meth:`update` and :meth:`starts`.
    """

    name = None
    _parameter_constraints = {}

    def __init__(self, **params):
        super().__init__()
        check_params(self._parameter_constraints, params, type(self).__name__)
        for key, value in params.items():
            setattr(self, key, value)
        self._params = tuple(params)
        self.shape_ = None
        self.register_buffer("_anchor", torch.zeros(0), persistent=False)

    @property
    def device(self):
        """Device of the banks."""
        return self._anchor.device

    def setup(self, source, shape, device="cpu", generator=None):
        """Prepare the strategy for chains of feature shape ``shape``.

        Parameters
        ----------
        source : object
            Source of fresh starts: ``source.sample(n, shape, generator=...,
            device=...)``, e.g. a :class:`~skebm.mcmc.NoiseSource`.
        shape : tuple of int
            Feature shape of one chain state.
        device : str or torch.device, default="cpu"
            Device on which the banks live.
        generator : torch.Generator, default=None
            Generator (on ``device``) of the initial bank draws.

        Returns
        -------
        self
        """
        self.source = check_source(source)
        self.shape_ = tuple(shape)
        self._anchor = torch.zeros(0, device=device)
        self._allocate(generator)
        return self

    def _allocate(self, generator):
        pass

    def _bank(self, name, value):
        self.register_buffer(name, value)

    def fresh(self, n, generator=None):
        """``n`` fresh starts from the source.

        Parameters
        ----------
        n : int
            Number of starts.
        generator : torch.Generator, default=None
            Random generator on the bank's device.

        Returns
        -------
        x0 : torch.Tensor of shape ``(n, *shape)``
        """
        if self.shape_ is None:
            raise RuntimeError(f"{type(self).__name__} is not set up: call setup(source, shape) first.")
        return self.source.sample(int(n), self.shape_, generator=generator, device=self.device).float()

    def draw(self, x_data, y=None, generator=None):
        """Chain starts for the data batch ``x_data`` (of class ``y``).

        Parameters
        ----------
        x_data : torch.Tensor of shape ``(n, *shape)``
            The data batch.
        y : torch.Tensor of int, default=None
            Class labels of a conditional energy.
        generator : torch.Generator, default=None
            Random generator on the bank's device.

        Returns
        -------
        draw : ChainDraw
        """
        raise NotImplementedError

    def update(self, draw, x_neg, y=None, generator=None):
        """Store the end states ``x_neg`` (of class ``y``) of the chains of ``draw``.

        Parameters
        ----------
        draw : ChainDraw
            What :meth:`draw` returned.
        x_neg : torch.Tensor
            End states of the chains.
        y : torch.Tensor of int, default=None
            Class labels the chains ran with.
        generator : torch.Generator, default=None
            Random generator on the bank's device.
        """

    def negatives(self, draw, x_neg):
        """The end states of a draw that serve as negatives.

        All of them by default; a strategy that also advances chains which
        must not enter the loss (the burn-in bank of :class:`LongrunInit`)
        selects here.

        Parameters
        ----------
        draw : ChainDraw
            What :meth:`draw` returned.
        x_neg : torch.Tensor
            End states of the chains.

        Returns
        -------
        negatives : torch.Tensor
        """
        return x_neg

    def starts(self, n, y=None, generator=None):
        """Chain starts for sampling from a fitted model (fresh starts here).

        Parameters
        ----------
        n : int
            Number of chains.
        y : torch.Tensor of int, default=None
            Class of each chain.
        generator : torch.Generator, default=None
            Random generator on the bank's device.

        Returns
        -------
        x0 : torch.Tensor of shape ``(n, *shape)``
        """
        return self.fresh(n, generator)

    def _rows(self, labels, n_valid, n, y, generator):
        """Bank rows for ``n`` chains, uniform among the first ``n_valid``.

        With labels ``y``, each chain's row is drawn among the rows last run
        with its label; ``-1`` where the bank holds none.
        """
        dev = labels.device
        if n_valid == 0:
            return torch.full((n,), -1, dtype=torch.long, device=dev)
        if y is None:
            return torch.randint(n_valid, (n,), generator=generator, device=dev)
        rows = torch.full((n,), -1, dtype=torch.long, device=dev)
        valid = labels[:n_valid]
        y = y.to(dev)
        for label in torch.unique(y):
            candidates = torch.nonzero(valid == label)[:, 0]
            want = torch.nonzero(y == label)[:, 0]
            if len(candidates):
                rows[want] = candidates[torch.randint(len(candidates), (len(want),), generator=generator, device=dev)]
        return rows

    def _bank_starts(self, bank, n_valid, labels, n, y, generator):
        """Starts drawn from ``bank`` rows (per class with ``y``), fresh where none."""
        rows = self._rows(labels, n_valid, n, y, generator)
        x0 = bank[rows.clamp_min(0)].clone()
        missing = rows < 0
        if bool(missing.any()):
            x0[missing] = self.fresh(int(missing.sum()), generator)
        return x0

    def extra_repr(self):
        return ", ".join(f"{k}={getattr(self, k)!r}" for k in self._params)


class NoiseInit(ChainInit):
    """Every chain starts from a fresh draw of the source (IGEBM, non-convergent shortrun)."""

    name = "noise"

    def draw(self, x_data, y=None, generator=None):
        return ChainDraw(self.fresh(len(x_data), generator))


class DataInit(ChainInit):
    """Every chain starts at the data batch (contrastive divergence).

    Parameters
    ----------
    init_noise : float, default=0.0
        Standard deviation of Gaussian noise added to the data starts.
    noise_std : float, default=None
        Deprecated alias of ``init_noise``.
    """

    name = "data"
    _parameter_constraints = {"init_noise": [Float(0)]}

    def __init__(self, init_noise=0.0, noise_std=None):
        if noise_std is not None:
            warnings.warn("DataInit(noise_std=...) is deprecated: use init_noise.", FutureWarning, stacklevel=2)
            init_noise = noise_std
        super().__init__(init_noise=init_noise)

    def draw(self, x_data, y=None, generator=None):
        x0 = x_data.detach().clone().float()
        if self.init_noise:
            x0.add_(torch.randn(x0.shape, generator=generator, device=x0.device), alpha=self.init_noise)
        return ChainDraw(x0)


class ReplayInit(ChainInit):
    """Replay buffer of past negatives (IGEBM, JEM).

    A ring buffer holds the end states of past chains. Each new chain starts
    from a uniformly drawn buffer entry (of its own class for a conditional
    energy), except that with probability ``reinit_prob`` it restarts from
    the source: the real IGEBM reinitialisation, not a perturbation of a
    buffer entry. While the buffer holds fewer entries than the batch,
    chains start from the source.

    Parameters
    ----------
    buffer_size : int, default=10000
        Capacity of the ring buffer.
    reinit_prob : float, default=0.05
        Probability that a chain restarts from the source.

    Attributes
    ----------
    buffer_ : torch.Tensor
        The buffer, shape ``(buffer_size, *shape)``; rows past ``n_filled_``
        are unused.
    labels_ : torch.Tensor
        Class each buffer row last ran with (-1 without classes).
    n_filled_ : torch.Tensor
        Number of valid entries (a 0-d tensor).
    write_pos_ : torch.Tensor
        Next row to write (a 0-d tensor).
    last_reinit_ : torch.Tensor
        Boolean mask of the chains restarted from the source in the last draw.
    """

    name = "replay"
    _parameter_constraints = {"buffer_size": [POSITIVE_INT], "reinit_prob": [PROB]}

    def __init__(self, buffer_size=10000, reinit_prob=0.05):
        super().__init__(buffer_size=buffer_size, reinit_prob=reinit_prob)

    def _allocate(self, generator):
        dev = self.device
        self._bank("buffer_", torch.zeros((self.buffer_size, *self.shape_), device=dev))
        self._bank("labels_", torch.full((self.buffer_size,), -1, dtype=torch.long, device=dev))
        self._bank("n_filled_", torch.zeros((), dtype=torch.long, device=dev))
        self._bank("write_pos_", torch.zeros((), dtype=torch.long, device=dev))
        self.register_buffer("last_reinit_", torch.zeros(0, dtype=torch.bool, device=dev), persistent=False)

    def draw(self, x_data, y=None, generator=None):
        n, n_filled = len(x_data), int(self.n_filled_)
        if n_filled < n:
            self.last_reinit_ = torch.ones(n, dtype=torch.bool, device=self.device)
            return ChainDraw(self.fresh(n, generator))
        rows = self._rows(self.labels_, n_filled, n, y, generator)
        x0 = self.buffer_[rows.clamp_min(0)].clone()
        # a chain whose class the buffer holds no row of starts from the source too
        reinit = (torch.rand(n, generator=generator, device=self.device) < self.reinit_prob) | (rows < 0)
        n_reinit = int(reinit.sum())
        if n_reinit:
            x0[reinit] = self.fresh(n_reinit, generator)
        self.last_reinit_ = reinit
        return ChainDraw(x0)

    def update(self, draw, x_neg, y=None, generator=None):
        x_neg = x_neg.detach()[: self.buffer_size]
        n = len(x_neg)
        pos = (self.write_pos_ + torch.arange(n, device=self.device)) % self.buffer_size
        self.buffer_[pos] = x_neg.to(self.buffer_.dtype)
        self.labels_[pos] = -1 if y is None else y[:n].to(self.device)
        self.write_pos_.copy_((self.write_pos_ + n) % self.buffer_size)
        self.n_filled_.clamp_(max=self.buffer_size - n).add_(n)

    def starts(self, n, y=None, generator=None):
        """Chain starts drawn from the buffer (per class when ``y`` is given)."""
        return self._bank_starts(self.buffer_, int(self.n_filled_), self.labels_, n, y, generator)


class PersistentInit(ChainInit):
    """Persistent bank of chains with rejuvenation (EBM Life Cycle).

    The bank is filled from the source at set-up. Each update draws a batch
    of bank chains (for a conditional energy, chains last run with each
    chain's class where the bank has them), runs them and writes their end
    states back in place. A drawn chain is rejuvenated (restarted from the
    source or from the data) with probability ``reinit_prob``, and always
    once it has been updated ``max_updates`` times.

    Parameters
    ----------
    buffer_size : int, default=10000
        Number of chains in the bank.
    reinit_prob : float, default=0.05
        Rejuvenation probability of a drawn chain.
    rejuvenate : {"source", "data"}, default="source"
        Where rejuvenated chains restart: a fresh draw of the source or
        the data batch.
    max_updates : int, default=None
        Forced reset of a chain after this many updates; ``None`` never.

    Attributes
    ----------
    bank_ : torch.Tensor
        The chains, shape ``(buffer_size, *shape)``.
    n_updates_ : torch.Tensor
        Number of updates of each chain since its last (re)start.
    labels_ : torch.Tensor
        Class each chain last ran with (-1 without classes).
    last_reinit_ : torch.Tensor
        Boolean mask of the chains rejuvenated in the last draw.
    """

    name = "persistent"
    _parameter_constraints = {
        "buffer_size": [POSITIVE_INT],
        "reinit_prob": [PROB],
        "rejuvenate": [StrOptions({"source", "data"}), Hidden(StrOptions({"noise"}))],
        "max_updates": [POSITIVE_INT, None],
    }

    def __init__(self, buffer_size=10000, reinit_prob=0.05, rejuvenate="source", max_updates=None):
        super().__init__(
            buffer_size=buffer_size, reinit_prob=reinit_prob, rejuvenate=_rejuvenate(rejuvenate), max_updates=max_updates
        )

    def _allocate(self, generator):
        dev = self.device
        self._bank("bank_", self.fresh(self.buffer_size, generator))
        self._bank("n_updates_", torch.zeros(self.buffer_size, dtype=torch.long, device=dev))
        self._bank("labels_", torch.full((self.buffer_size,), -1, dtype=torch.long, device=dev))
        self.register_buffer("last_reinit_", torch.zeros(0, dtype=torch.bool, device=dev), persistent=False)

    def draw(self, x_data, y=None, generator=None):
        n, dev = len(x_data), self.device
        if y is not None and n <= self.buffer_size:
            idx, other = self._class_rows(y, generator)
        elif n <= self.buffer_size:
            idx, other = torch.randperm(self.buffer_size, generator=generator, device=dev)[:n], None
        else:
            idx, other = torch.randint(self.buffer_size, (n,), generator=generator, device=dev), None
        x0 = self.bank_[idx].clone()
        reinit = torch.rand(n, generator=generator, device=dev) < self.reinit_prob
        if self.max_updates is not None:
            reinit |= self.n_updates_[idx] >= self.max_updates
        if other is not None:
            reinit |= other
        n_reinit = int(reinit.sum())
        if n_reinit:
            if self.rejuvenate == "data":
                x0[reinit] = x_data.detach()[reinit].to(x0.dtype)
            else:
                x0[reinit] = self.fresh(n_reinit, generator)
            self.n_updates_[idx[reinit]] = 0
        self.last_reinit_ = reinit
        return ChainDraw(x0, index=idx)

    def _class_rows(self, y, generator):
        """Distinct bank rows, each last run with its chain's class where the bank has enough.

        Rows never repeat within a draw (a repeated row would be written back
        twice, nondeterministically on CUDA); chains left without a row of
        their class get unused rows, restarted (the returned mask).
        """
        dev, n = self.device, len(y)
        y = y.to(dev)
        idx = torch.full((n,), -1, dtype=torch.long, device=dev)
        for label in torch.unique(y):
            candidates = torch.nonzero(self.labels_ == label)[:, 0]
            candidates = candidates[torch.randperm(len(candidates), generator=generator, device=dev)]
            want = torch.nonzero(y == label)[:, 0]
            k = min(len(want), len(candidates))
            idx[want[:k]] = candidates[:k]
        other = idx < 0
        if bool(other.any()):
            free = torch.ones(self.buffer_size, dtype=torch.bool, device=dev)
            free[idx[~other]] = False
            unused = torch.nonzero(free)[:, 0]
            unused = unused[torch.randperm(len(unused), generator=generator, device=dev)]
            idx[other] = unused[: int(other.sum())]
        return idx, other

    def update(self, draw, x_neg, y=None, generator=None):
        self.bank_[draw.index] = x_neg.detach().to(self.bank_.dtype)
        self.n_updates_[draw.index] += 1
        self.labels_[draw.index] = -1 if y is None else y.to(self.device)

    def starts(self, n, y=None, generator=None):
        """Chain starts drawn from the bank (per class when ``y`` is given)."""
        return self._bank_starts(self.bank_, self.buffer_size, self.labels_, n, y, generator)


class LongrunInit(ChainInit):
    """Longrun chains: a burn-in bank feeding an update bank (EBM Life Cycle).

    Two banks. The *burn-in bank* holds ``burnin_buffer_size`` chains that start
    from the source (or the data) with *staggered* update counters, drawn
    uniformly in ``[0, burnin_updates)`` at set-up so that chains mature at
    a steady rate. Every draw advances a random batch of burn-in chains
    together with the negatives; a burn-in chain that has been advanced
    ``burnin_updates`` times *graduates*: it moves into the *update bank*
    and its burn-in slot restarts with a zero counter.

    The update bank (``buffer_size`` chains) supplies the negatives. Its
    chains are never restarted: a drawn chain is run and written back in
    place. Graduates are appended while the bank fills; once it is full,
    they overwrite chains drawn in the same update (random old states, as
    in the reference code), so the bank keeps receiving chains that
    started afresh and burnt in for ``burnin_updates`` updates.

    While the update bank holds fewer chains than one batch (at the start
    of training), the burn-in chains advanced in that update supply the
    negatives instead.

    Each draw returns the update-bank batch followed by the burn-in batch
    (the sampler runs both with the same settings); :meth:`negatives`
    picks the update-bank part. Class-conditional energies are not
    supported.

    Parameters
    ----------
    buffer_size : int, default=10000
        Capacity of the update bank.
    burnin_buffer_size : int, default=1000
        Number of chains in the burn-in bank.
    burnin_updates : int, default=750
        Updates a burn-in chain receives before it graduates.
    burnin_batch : int, default=None
        Burn-in chains advanced per draw; ``None`` uses the batch size of
        the draw (capped at ``burnin_buffer_size``).
    rejuvenate : {"source", "data"}, default="source"
        Where burn-in chains (re)start: a draw of the source or the data
        batch.
    burnin_size : int, default=None
        Deprecated alias of ``burnin_buffer_size``.

    Attributes
    ----------
    update_bank_ : torch.Tensor
        The update bank, shape ``(buffer_size, *shape)``; rows past
        ``n_filled_`` are unused.
    n_filled_ : torch.Tensor
        Number of chains in the update bank (a 0-d tensor).
    burnin_bank_ : torch.Tensor
        The burn-in chains, shape ``(burnin_buffer_size, *shape)``.
    burnin_count_ : torch.Tensor
        Updates received by each burn-in chain since its (re)start.
    n_graduated_ : torch.Tensor
        Number of chains moved into the update bank so far (a 0-d tensor).

    Examples
    --------
    >>> import torch
    >>> from skebm.mcmc import LongrunInit, NoiseSource
    >>> init = LongrunInit(buffer_size=100, burnin_buffer_size=20, burnin_updates=3)
    >>> init = init.setup(NoiseSource("gaussian"), (2,))
    >>> draw = init.draw(torch.zeros(8, 2))
    >>> draw.x0.shape  # 8 burn-in chains (the update bank is still empty)
    torch.Size([8, 2])
    >>> init.update(draw, draw.x0 + 0.1)
    >>> init.negatives(draw, draw.x0).shape
    torch.Size([8, 2])
    """

    name = "longrun"
    _parameter_constraints = {
        "buffer_size": [POSITIVE_INT],
        "burnin_buffer_size": [POSITIVE_INT],
        "burnin_updates": [POSITIVE_INT],
        "burnin_batch": [POSITIVE_INT, None],
        "rejuvenate": [StrOptions({"source", "data"}), Hidden(StrOptions({"noise"}))],
    }

    def __init__(
        self, buffer_size=10000, burnin_buffer_size=1000, burnin_updates=750, burnin_batch=None, rejuvenate="source",
        burnin_size=None,
    ):
        if burnin_size is not None:
            warnings.warn(_BURNIN_SIZE_RENAMED, FutureWarning, stacklevel=2)
            burnin_buffer_size = burnin_size
        super().__init__(
            buffer_size=buffer_size,
            burnin_buffer_size=burnin_buffer_size,
            burnin_updates=burnin_updates,
            burnin_batch=burnin_batch,
            rejuvenate=_rejuvenate(rejuvenate),
        )

    def _allocate(self, generator):
        dev = self.device
        self._bank("update_bank_", torch.zeros((self.buffer_size, *self.shape_), device=dev))
        self._bank("n_filled_", torch.zeros((), dtype=torch.long, device=dev))
        self._bank("n_graduated_", torch.zeros((), dtype=torch.long, device=dev))
        self._bank("burnin_bank_", self.fresh(self.burnin_buffer_size, generator))
        counts = torch.randint(self.burnin_updates, (self.burnin_buffer_size,), generator=generator, device=dev)
        self._bank("burnin_count_", counts)

    def _restart(self, n, x_data, generator):
        if self.rejuvenate == "data" and x_data is not None and len(x_data):
            rows = torch.randint(len(x_data), (n,), generator=generator, device=self.device)
            return x_data.detach().to(self.device)[rows].to(self.burnin_bank_.dtype)
        return self.fresh(n, generator)

    def draw(self, x_data, y=None, generator=None):
        if y is not None:
            raise ValueError("LongrunInit does not support class-conditional energies.")
        n, dev, n_filled = len(x_data), self.device, int(self.n_filled_)
        m = min(self.burnin_batch or n, self.burnin_buffer_size)
        burnin_idx = torch.randperm(self.burnin_buffer_size, generator=generator, device=dev)[:m]
        update_idx = None
        if n_filled >= min(n, self.buffer_size):
            if n <= n_filled:
                update_idx = torch.randperm(n_filled, generator=generator, device=dev)[:n]
            else:
                update_idx = torch.randint(n_filled, (n,), generator=generator, device=dev)
        parts = [self.burnin_bank_[burnin_idx]]
        if update_idx is not None:
            parts.insert(0, self.update_bank_[update_idx])
        x_keep = x_data.detach() if self.rejuvenate == "data" else None
        return ChainDraw(torch.cat(parts).clone(), index=update_idx, burnin_index=burnin_idx, x_data=x_keep)

    def negatives(self, draw, x_neg):
        return x_neg if draw.index is None else x_neg[: len(draw.index)]

    def update(self, draw, x_neg, y=None, generator=None):
        if y is not None:
            raise ValueError("LongrunInit does not support class-conditional energies.")
        dev = self.device
        update_idx, burnin_idx = draw.index, draw.burnin_index
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
        n_filled = int(self.n_filled_)
        n_append = min(n_done, self.buffer_size - n_filled)
        if n_append:
            self.update_bank_[n_filled : n_filled + n_append] = graduates[:n_append]
            self.n_filled_.add_(n_append)
        rest = graduates[n_append:]
        if len(rest):
            # the bank is full: graduates replace chains drawn in this update, then random ones
            drawn = torch.unique(update_idx) if n_update else torch.empty(0, dtype=torch.long, device=dev)
            drawn = drawn[torch.randperm(len(drawn), generator=generator, device=dev)]
            if len(drawn) < len(rest):
                extra = torch.randint(self.buffer_size, (len(rest) - len(drawn),), generator=generator, device=dev)
                drawn = torch.cat([drawn, extra])
            self.update_bank_[drawn[: len(rest)]] = rest
        self.n_graduated_.add_(n_done)
        restart = burnin_idx[done]
        self.burnin_bank_[restart] = self._restart(n_done, draw.x_data, generator)
        self.burnin_count_[restart] = 0

    def starts(self, n, y=None, generator=None):
        """Chain starts drawn from the update bank (the burn-in bank while it is empty)."""
        if y is not None:
            raise ValueError("LongrunInit does not support class-conditional energies.")
        n_filled = int(self.n_filled_)
        if n_filled == 0:
            rows = torch.randint(self.burnin_buffer_size, (n,), generator=generator, device=self.device)
            return self.burnin_bank_[rows].clone()
        rows = torch.randint(n_filled, (n,), generator=generator, device=self.device)
        return self.update_bank_[rows].clone()


#: The strategies by name, as the estimators' ``init`` parameter gives them.
CHAIN_INITS = {
    "noise": NoiseInit,
    "data": DataInit,
    "replay": ReplayInit,
    "persistent": PersistentInit,
    "longrun": LongrunInit,
}


def make_chain_init(init, **params):
    """Build a chain-initialisation strategy from a name or pass one through.

    Parameters
    ----------
    init : str or ChainInit
        A name in :data:`CHAIN_INITS` or a :class:`ChainInit` instance
        (returned as a fresh copy so the caller's object is not mutated).
    **params
        Constructor arguments (deprecated aliases included); those the
        chosen strategy does not take are ignored, so one set of estimator
        parameters serves every strategy.

    Returns
    -------
    strategy : ChainInit
    """
    if isinstance(init, ChainInit):
        return copy.deepcopy(init)
    if init not in CHAIN_INITS:
        raise ValueError(f"init must be one of {sorted(CHAIN_INITS)} or a ChainInit instance, got {init!r}.")
    cls = CHAIN_INITS[init]
    accepted = inspect.signature(cls).parameters
    return cls(**{k: v for k, v in params.items() if k in accepted})
