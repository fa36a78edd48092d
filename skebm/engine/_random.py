"""The random generators of a training engine, as a module skorch can checkpoint."""

import numpy as np
import torch
from torch import nn

__all__ = ["RandomGenerators", "seed_from"]


def seed_from(random_state):
    """A 63-bit integer seed from an int, a RandomState or None (then fresh entropy).

    Parameters
    ----------
    random_state : int, numpy.random.RandomState or None
        As scikit-learn's ``random_state``.

    Returns
    -------
    seed : int
    """
    from sklearn.utils import check_random_state

    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


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
        Seed of both generators (the data generator gets ``seed + 1``).
    device : str or torch.device, default="cpu"
        Device of the chain generator.

    Attributes
    ----------
    generator : torch.Generator
        Generator on ``device``: chains, noise, acceptance draws.
    data_generator : torch.Generator
        CPU generator of the batch order.
    """

    def __init__(self, seed, device="cpu"):
        super().__init__()
        self.seed = int(seed)
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device).manual_seed(self.seed)
        self.data_generator = torch.Generator().manual_seed(self.seed + 1)

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
