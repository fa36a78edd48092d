"""Purification chains: the engine's sampler run from given starts (the machinery of EBMPurifier)."""

import math

import torch

from .._torch_utils import batched
from ..mcmc import unrolled_langevin

#: Most chains purified in one batch (inputs times replicates).
MAX_CHAINS = 4096


class PurifyChains:
    """Midrun Langevin chains from given starts on a fitted engine, in the model's range.

    Parameters
    ----------
    net : EBMNet
        The fitted engine; its sampler runs the chains.
    n_steps : int
        Langevin steps per chain.
    step_size : float
        Langevin step size of purification.
    noise_scale : float or None
        Standard deviation of the Langevin noise (``None``: ``step_size``).
    start_noise : float, default=0.0
        Standard deviation of Gaussian noise added to each start before the
        steps (the purifier's ``purify_noise``).
    """

    def __init__(self, net, n_steps, step_size, noise_scale, start_noise=0.0):
        self.net = net
        self.n_steps = n_steps
        self.step_size = step_size
        self.noise_scale = noise_scale
        self.start_noise = start_noise

    def run(self, z, n_replicates, noise, *, progress=False):
        """Purify ``z`` (n, *shape) -> (n_replicates, n, *shape), without gradients.

        ``noise`` is a noise stream: a :class:`~skebm.mcmc.RowNoise` keyed
        by the rows of ``z`` makes each row's replicates a function of that
        row alone; a :class:`~skebm.mcmc.GeneratorNoise` draws afresh. With
        ``progress`` a tqdm bar counts image-steps.
        """
        settings = {"step_size": self.step_size, "noise_scale": self.noise_scale}
        total = self.n_steps
        per_chunk = max(1, MAX_CHAINS // n_replicates)
        bar = self._bar(len(z) * n_replicates) if progress else None
        # a bar updates every `seg` steps; splitting a Markov chain leaves it unchanged
        seg = total if bar is None else max(1, math.ceil(total / 20))

        def purify_chunk(index):  # the rows `index` of z, every replicate: (n_replicates, len(index), *shape)
            chunk = z[index.to(z.device)].float()
            x = chunk.unsqueeze(0).expand(n_replicates, *chunk.shape).reshape(-1, *chunk.shape[1:])
            rows = noise.subset(index).replicate(n_replicates)
            if self.start_noise:
                x = x + self.start_noise * rows.randn_like(x)
            done = 0
            while done < total:
                k = min(seg, total - done)
                x = self.net.run_chains(x, None, noise=rows, **settings, n_steps=k)
                done += k
                if bar is not None:
                    bar.update(k * len(chunk))
            return x.view(n_replicates, *chunk.shape)

        try:
            return batched(purify_chunk, torch.arange(len(z)), per_chunk, dim=1)
        finally:
            if bar is not None:
                bar.close()

    def _bar(self, n_chains):
        from tqdm.auto import tqdm

        return tqdm(total=n_chains * self.n_steps, desc="EBMPurifier: purify (image-steps)", unit_scale=True,
                    leave=True)

    def run_differentiable(self, z, noise, checkpoint_segments="sqrt"):
        """The chain of :meth:`run` (one replicate) keeping the autograd graph through every step.

        The sampler's chain, every setting included; only the graph differs.
        Metropolis adjustment and independence moves have no differentiable
        counterpart and raise ValueError.
        """
        settings = {**self.net.sampler_.settings(), "step_size": self.step_size, "noise_scale": self.noise_scale}
        if settings.pop("metropolis") or settings.pop("proposal") is not None:
            raise ValueError(
                "differentiable=True runs unadjusted Langevin steps; this purifier's sampler uses Metropolis "
                "adjustment or independence moves, which have no differentiable counterpart."
            )
        settings.pop("n_steps", None)
        noise = noise.replicate(1)  # the stream run() gives one replicate: the same chain
        if self.start_noise:
            z = z + self.start_noise * noise.randn_like(z)
        self.net.module_.train(False)
        return unrolled_langevin(
            self.net.energy, z, self.n_steps, settings.pop("step_size"), noise=noise,
            checkpoint_segments=checkpoint_segments, **settings,
        )
