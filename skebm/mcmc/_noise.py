"""Counter-based per-chain noise: each chain's draws depend on its own key only."""

import hashlib
import math

import numpy as np
import torch

__all__ = ["GLOBAL_NOISE", "RowNoise", "row_keys"]

_MASK = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9


def _mix32(x):
    """A 32-bit integer hash (lowbias32) of an int64 tensor holding values in [0, 2**32).

    Products may overflow int64; two's complement keeps their low 32 bits,
    which is all the mask keeps.
    """
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK
    return x ^ (x >> 16)


def row_keys(X, seed=0):
    """32-bit keys of the rows of ``X``, from their bytes and ``seed``.

    Equal rows get equal keys; a row's key does not depend on the other
    rows, so noise drawn with :class:`RowNoise` from these keys makes a
    stochastic transform a function of each row alone.

    Parameters
    ----------
    X : ndarray or torch.Tensor of shape (n_samples, ...)
        The rows.
    seed : int, default=0
        Mixed into every key.

    Returns
    -------
    keys : torch.Tensor of shape (n_samples,), dtype int64
        Values in ``[0, 2**32)``.

    Examples
    --------
    >>> import numpy as np
    >>> from skebm.mcmc import row_keys
    >>> X = np.array([[0.0, 1.0], [2.0, 3.0], [0.0, 1.0]])
    >>> k = row_keys(X, seed=1)
    >>> bool(k[0] == k[2]), bool(k[0] == k[1])
    (True, False)
    """
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    X = np.ascontiguousarray(np.asarray(X, dtype=np.float32).reshape(len(X), -1))
    salt = int(seed).to_bytes(8, "little", signed=True)
    keys = [int.from_bytes(hashlib.blake2b(row.tobytes(), digest_size=4, key=salt).digest(), "little") for row in X]
    return torch.tensor(keys, dtype=torch.int64)


class _GlobalNoise:
    """Noise from torch's global generators, with the interface of :class:`RowNoise`.

    Subsets and replicates share the one global stream, so both return the
    object itself.
    """

    randn_like = staticmethod(torch.randn_like)
    rand_like = staticmethod(torch.rand_like)

    def subset(self, index):
        return self

    def replicate(self, n_replicates):
        return self

    def __repr__(self):
        return "GLOBAL_NOISE"


#: The default noise source of :func:`~skebm.mcmc.langevin`: torch's global generators.
GLOBAL_NOISE = _GlobalNoise()


class RowNoise:
    """Gaussian and uniform draws that are a function of each chain's key.

    Draw ``c`` (the ``c``-th call) of chain ``i`` hashes ``(keys[i], c,
    element)``, so a chain receives the same noise whatever other chains
    share its batch and in whatever order: running a batch, a subset of it
    or a shuffled copy gives each chain the same trajectory. Pass it as the
    ``noise`` argument of :func:`~skebm.mcmc.langevin`. Normals come from the
    Box-Muller transform of 24-bit uniforms; everything is elementwise
    integer arithmetic, on any device.

    Parameters
    ----------
    keys : torch.Tensor of shape (n_chains,), dtype int64
        One key per chain, values in ``[0, 2**32)`` (see :func:`row_keys`).

    Attributes
    ----------
    n_calls : int
        Draws made so far; the next draw uses this counter.

    Examples
    --------
    >>> import torch
    >>> from skebm.mcmc import RowNoise
    >>> keys = torch.tensor([11, 22, 33])
    >>> a = RowNoise(keys).randn_like(torch.empty(3, 4))
    >>> b = RowNoise(keys[[2, 0]]).randn_like(torch.empty(2, 4))
    >>> bool(torch.equal(a[[2, 0]], b))
    True
    """

    def __init__(self, keys):
        keys = torch.as_tensor(keys, dtype=torch.int64)
        if keys.ndim != 1:
            raise ValueError(f"keys must be 1-D, got shape {tuple(keys.shape)}.")
        self.keys = keys & _MASK
        self.n_calls = 0

    def replicate(self, n_replicates):
        """Keys of ``n_replicates`` independent copies of every chain, replicate-major."""
        r = torch.arange(1, n_replicates + 1, dtype=torch.int64).mul(_GOLDEN) & _MASK
        return RowNoise(_mix32(self.keys[None, :] ^ _mix32(r)[:, None]).reshape(-1))

    def subset(self, index):
        """The noise of the chains ``index`` (a slice or index tensor), at the same counter."""
        out = RowNoise(self.keys[index])
        out.n_calls = self.n_calls
        return out

    def _uniform(self, n, m, device):
        """(n, m) uniforms in (0, 1), then advance the counter."""
        if n != len(self.keys):
            raise ValueError(f"RowNoise has {len(self.keys)} keys, asked for {n} chains.")
        keys = self.keys.to(device)
        call = ((self.n_calls + 1) * _GOLDEN) & _MASK
        self.n_calls += 1
        chain = _mix32(keys ^ _mix32(torch.tensor(call, dtype=torch.int64, device=device)))
        element = _mix32(torch.arange(m, dtype=torch.int64, device=device) * 2 + 1)
        bits = _mix32(chain[:, None] ^ element[None, :]) >> 8  # 24 random bits
        return (bits.to(torch.float32) + 0.5) * 2.0**-24

    def randn_like(self, x):
        """Standard normals of ``x``'s shape (first axis: the chains), float32."""
        n = len(x)
        m = x[0].numel() if n else 0
        half = (m + 1) // 2
        u = self._uniform(n, 2 * half, x.device)
        radius = torch.sqrt(-2.0 * torch.log(u[:, :half]))
        angle = (2.0 * math.pi) * u[:, half:]
        z = torch.cat([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)[:, :m]
        return z.reshape(x.shape).to(torch.float32)

    def rand_like(self, t):
        """Uniforms in (0, 1), one per chain: ``t`` has shape (n_chains,)."""
        return self._uniform(len(t), 1, t.device)[:, 0].to(torch.float32)
