"""Every random number of skebm starts here: seeds, named streams, generators.

Rules (see the glossary, *generators*):

* every draw comes from an explicit :class:`torch.Generator` (or a
  :class:`numpy.random.RandomState`) built from a seed derived here;
* nothing in skebm draws from, seeds or swaps torch's global generator,
  except :func:`third_party_rng` around third-party code that takes no
  generator (torchattacks);
* two uses of one seed never share a stream: each takes a *named* stream,
  ``seed_from(random_state, "purify")`` or ``derive_seed(seed, "data")``,
  never ``seed + 1``.

The module sits low in the layering (numpy, torch and scikit-learn only), so
the sampler, the networks, the attacks and the metrics all use it.
"""

import contextlib
import threading
import zlib

import numpy as np
import torch
from torch import nn

__all__ = [
    "PerDeviceGenerator",
    "RandomGenerators",
    "derive_seed",
    "make_generator",
    "seed_from",
    "third_party_rng",
]

#: Seeds are integers in ``[0, SEED_BOUND)``: what NumPy's legacy ``RandomState`` accepts.
SEED_BOUND = int(np.iinfo(np.int32).max)


def _stream_key(stream):
    if isinstance(stream, str):
        return zlib.crc32(stream.encode("utf-8"))
    return int(stream)


def derive_seed(seed, stream):
    """The seed of the stream named ``stream`` derived from ``seed``.

    Streams of different names (or of different seeds) are statistically
    independent: they are spawned by :class:`numpy.random.SeedSequence`, not
    offset (``seed + 1`` would be another seed's own stream).

    Parameters
    ----------
    seed : int
        A seed, e.g. from :func:`seed_from`.
    stream : str or int
        The stream's name (``"data"``, ``"validation"``) or index (a
        process rank).

    Returns
    -------
    seed : int
        In ``[0, 2**31 - 1)``.

    Examples
    --------
    >>> from skebm._random import derive_seed
    >>> derive_seed(0, "data") == derive_seed(0, "data") != derive_seed(0, "chains")
    True
    """
    state = np.random.SeedSequence([int(seed) % 2**63, _stream_key(stream)]).generate_state(1, dtype=np.uint64)
    return int(state[0] % SEED_BOUND)


def seed_from(random_state, stream=None):
    """An integer seed in ``[0, 2**31 - 1)`` from an int, a RandomState or None.

    Parameters
    ----------
    random_state : int, numpy.random.RandomState or None
        As scikit-learn's ``random_state``: an int gives the same seed at
        every call, a RandomState draws one (and advances), ``None`` uses
        fresh entropy.
    stream : str or int, default=None
        Name of a derived stream (see :func:`derive_seed`); ``None`` returns
        the seed itself.

    Returns
    -------
    seed : int
        In ``[0, 2**31 - 1)`` (the range of NumPy's ``RandomState`` seeds).

    Examples
    --------
    >>> from skebm._random import seed_from
    >>> seed_from(0) == seed_from(0), 0 <= seed_from(None) < 2**31 - 1
    (True, True)
    """
    from sklearn.utils import check_random_state

    seed = int(check_random_state(random_state).randint(SEED_BOUND))
    return seed if stream is None else derive_seed(seed, stream)


def make_generator(random_state, device="cpu", stream=None):
    """A fresh :class:`torch.Generator` on ``device`` seeded from ``random_state``.

    Every seeded call of an estimator draws from its own generator, so it
    depends on nothing global and is safe to run from several threads.

    Parameters
    ----------
    random_state : int, RandomState instance or None
        As scikit-learn's ``random_state``.
    device : str or torch.device, default="cpu"
    stream : str, default=None
        A named stream of ``random_state`` (see :func:`seed_from`).

    Returns
    -------
    generator : torch.Generator
    """
    return torch.Generator(device=device).manual_seed(seed_from(random_state, stream))


class PerDeviceGenerator:
    """One seed, a generator on each device asked for (created on first use).

    Code that draws on tensors whose device it does not choose (an attack:
    the classifier on one device, the purifier on another) takes one of
    these: :meth:`on` returns the generator of a device, seeded with the
    device's own derived stream. Pass it wherever a ``generator`` is taken
    for Langevin noise (:class:`~skebm.mcmc.GeneratorNoise` accepts it).

    Parameters
    ----------
    seed : int
        The seed.

    Examples
    --------
    >>> import torch
    >>> from skebm._random import PerDeviceGenerator
    >>> a = torch.rand(2, generator=PerDeviceGenerator(0).on("cpu"))
    >>> bool(torch.equal(a, torch.rand(2, generator=PerDeviceGenerator(0).on("cpu"))))
    True
    """

    def __init__(self, seed):
        self.seed = int(seed)
        self._generators = {}

    def on(self, device):
        """The generator of ``device`` (a :class:`torch.Generator`)."""
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(derive_seed(self.seed, key))
        return self._generators[key]

    def __repr__(self):
        return f"PerDeviceGenerator(seed={self.seed})"


_GLOBAL_RNG_LOCK = threading.Lock()


@contextlib.contextmanager
def third_party_rng(seed, device="cpu"):
    """Seed torch's global generators for third-party code that draws only from them.

    skebm's own draws never touch torch's global generator. A library that
    takes no generator (torchattacks' APGD draws its random start with
    ``torch.rand``) runs inside this context: the global generators of the
    CPU and of ``device`` are seeded with ``seed`` and the caller's state
    is restored on exit. A lock keeps two threads from interleaving their
    draws (and their save and restore).

    Parameters
    ----------
    seed : int
        The seed.
    device : str or torch.device, default="cpu"
        The device whose CUDA generator is seeded and restored too.
    """
    device = torch.device(device)
    devices = [device.index or 0] if device.type == "cuda" else []
    with _GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


class RandomGenerators(nn.Module):
    """The two generators of a fit: chains on the device, data order on the CPU.

    Every random draw of training (chain starts, Langevin noise, MALA
    acceptance, data noise, the order of the batches) comes from these, so
    a seeded fit depends on nothing global and runs the same in any thread.
    The generators' states travel in ``state_dict`` (as extra state), so
    skorch checkpoints and restores them.

    Parameters
    ----------
    seed : int
        Seed of the chain generator; the data generator takes the derived
        stream ``derive_seed(seed, "data")``.
    device : str or torch.device, default="cpu"
        Device of the chain generator.
    data_seed : int, default=None
        Seed of the data generator instead (e.g. one batch order shared by
        every process of a distributed fit).

    Attributes
    ----------
    generator : torch.Generator
        Generator on ``device``: chains, noise, acceptance draws.
    data_generator : torch.Generator
        CPU generator of the batch order.
    """

    def __init__(self, seed, device="cpu", data_seed=None):
        super().__init__()
        self.seed = int(seed)
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device).manual_seed(self.seed)
        data_seed = derive_seed(self.seed, "data") if data_seed is None else int(data_seed)
        self.data_generator = torch.Generator().manual_seed(data_seed)

    def _apply(self, fn, recurse=True):
        # .to(device) moves the chain generator: a new one, seeded from the old one's stream
        probe = fn(torch.zeros(0, device=self.device))
        if probe.device != self.device:
            seed = int(torch.randint(2**62, (), generator=self.generator, device=self.device))
            self.device = probe.device
            self.generator = torch.Generator(device=self.device).manual_seed(seed)
        return super()._apply(fn, recurse)

    def get_extra_state(self):
        return {
            "device": str(self.device),
            "generator": self.generator.get_state(),
            "data_generator": self.data_generator.get_state(),
        }

    def set_extra_state(self, state):
        if torch.device(state["device"]).type == self.device.type:
            self.generator.set_state(state["generator"])
        self.data_generator.set_state(state["data_generator"])

    def __getstate__(self):
        state = self.__dict__.copy()
        state["generator"] = self.generator.get_state()
        state["data_generator"] = self.data_generator.get_state()
        state["device"] = str(self.device)
        return state

    def __setstate__(self, state):
        device = torch.device(state["device"])
        if device.type == "cuda" and not torch.cuda.is_available():
            device = torch.device("cpu")
        generator = torch.Generator(device=device)
        if str(device) == state["device"]:
            generator.set_state(state["generator"])
        else:  # a CUDA generator's state does not fit a CPU generator: reseed
            generator.manual_seed(state["seed"])
        data_generator = torch.Generator()
        data_generator.set_state(state["data_generator"])
        self.__dict__.update({**state, "device": device, "generator": generator, "data_generator": data_generator})

    def extra_repr(self):
        return f"seed={self.seed}, device={self.device}"
