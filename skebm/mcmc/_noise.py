"""Langevin noise streams.

The noise a Langevin step injects (and the uniforms of MALA's acceptance
test) come from a *noise stream*: an object with ``randn_like(x)`` and
``rand_like(t)``. :class:`GeneratorNoise` draws from a
:class:`torch.Generator` (``GLOBAL_NOISE``: torch's global one);
:class:`RowNoise` is counter-based, each chain's draws a function of its own
key only, so a chain's trajectory does not depend on the batch it runs in.
"""

import hashlib
import math

import numpy as np
import torch

__all__ = ["GLOBAL_NOISE", "GeneratorNoise", "RowNoise", "as_noise", "row_keys"]

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


class GeneratorNoise:
    """Langevin noise drawn from a :class:`torch.Generator`, with the interface of :class:`RowNoise`.

    All chains share the generator's one stream, so :meth:`~GeneratorNoise.subset` and
    :meth:`~GeneratorNoise.replicate` return the object itself. ``generator=None`` draws
    from torch's global generator (:data:`GLOBAL_NOISE`); an explicit
    generator makes a seeded call independent of any global state, and so
    safe to run in several threads at once.

    Parameters
    ----------
    generator : torch.Generator or PerDeviceGenerator, default=None
        Generator on the device of the chains, or an object whose
        ``on(device)`` returns one for each device
        (``skebm._random.PerDeviceGenerator``).

    Examples
    --------
    >>> import torch
    >>> from skebm.mcmc import GeneratorNoise
    >>> a = GeneratorNoise(torch.Generator().manual_seed(0)).randn_like(torch.empty(2, 3))
    >>> b = GeneratorNoise(torch.Generator().manual_seed(0)).randn_like(torch.empty(2, 3))
    >>> bool(torch.equal(a, b))
    True
    """

    def __init__(self, generator=None):
        self.generator = generator

    def _on(self, device):
        on = getattr(self.generator, "on", None)
        return self.generator if on is None else on(device)

    def randn_like(self, x):
        """Standard normals of ``x``'s shape, device and (floating) dtype."""
        return torch.randn(x.shape, generator=self._on(x.device), device=x.device, dtype=x.dtype)

    def rand_like(self, t):
        """Uniforms in [0, 1) of ``t``'s shape and device, float32."""
        return torch.rand(t.shape, generator=self._on(t.device), device=t.device)

    def subset(self, index):
        return self

    def replicate(self, n_replicates):
        return self

    def __repr__(self):
        return "GLOBAL_NOISE" if self.generator is None else "GeneratorNoise(<generator>)"


#: The default noise of :func:`~skebm.mcmc.langevin`: torch's global generator.
GLOBAL_NOISE = GeneratorNoise()


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


def as_noise(noise=None, generator=None):
    """The Langevin noise stream of a call: ``noise`` if given, else one drawn from ``generator``.

    Parameters
    ----------
    noise : GeneratorNoise, RowNoise or None
        An explicit stream.
    generator : torch.Generator or None
        Used when ``noise`` is None; ``None`` gives :data:`GLOBAL_NOISE`.

    Returns
    -------
    noise : object with ``randn_like`` and ``rand_like``
    """
    if noise is not None:
        return noise
    return GLOBAL_NOISE if generator is None else GeneratorNoise(generator)
