"""The skorch engine of denoising score matching (DSM): an energy trained without MCMC.

The energy at noise level :math:`\\sigma` is the network's energy scaled by
the level, :math:`U(x, \\sigma) = E(x) / (\\sigma T)` (the "noise conditional
by output scaling" of NCSN v2), so its score :math:`-\\nabla_x U` can match
the data smoothed at every level with one network. Training perturbs each
data row at a level drawn from the geometric ladder ``noise_levels_`` and
back-propagates :class:`~skebm.engine.DenoisingScoreMatchingLoss`: no
chains, no negatives, no bank. Sampling is annealed Langevin dynamics over
the ladder (NCSN), followed by one denoising step.
"""

import math

import torch
from skorch.dataset import unpack_data
from skorch.utils import to_tensor

from ..mcmc._protocol import extend_trace
from ._losses import DenoisingScoreMatchingLoss
from ._ml import EBMNet

__all__ = ["DSMNet", "geometric_noise_levels", "overlapping_n_levels"]


def geometric_noise_levels(sigma_max, sigma_min, n_levels):
    """``n_levels`` noise levels from ``sigma_max`` down to ``sigma_min``, in geometric progression (NCSN).

    Parameters
    ----------
    sigma_max, sigma_min : float
        The largest and the smallest level, ``sigma_max >= sigma_min > 0``.
    n_levels : int
        Number of levels; 1 gives ``[sigma_min]``.

    Returns
    -------
    sigmas : list of float
        Decreasing levels.

    Examples
    --------
    >>> from skebm.engine._dsm import geometric_noise_levels
    >>> [round(s, 3) for s in geometric_noise_levels(1.0, 0.01, 3)]
    [1.0, 0.1, 0.01]
    """
    if n_levels == 1:
        return [float(sigma_min)]
    ratio = (math.log(sigma_min) - math.log(sigma_max)) / (n_levels - 1)
    return [float(math.exp(math.log(sigma_max) + i * ratio)) for i in range(n_levels)]


def overlapping_n_levels(sigma_max, sigma_min, n_features):
    """Number of geometric levels from ``sigma_max`` to ``sigma_min`` whose neighbours overlap in ``n_features`` dimensions.

    NCSN v2's technique 2 (Song & Ermon 2020): a point perturbed at level
    :math:`\\sigma_{i-1}` lies at a distance of about
    :math:`\\sigma_{i-1}\\sqrt{D}` from its data point; the next level
    :math:`\\sigma_i = \\sigma_{i-1} / \\gamma` covers it when the ratio
    :math:`\\gamma` solves
    :math:`\\Phi(\\sqrt{2D}(\\gamma - 1) + 3\\gamma) - \\Phi(\\sqrt{2D}(\\gamma - 1) - 3\\gamma) = 1/2`
    (``D = n_features``). The ratio shrinks as :math:`D` grows (about 1.36
    for 64 features, 1.08 for 784, 1.04 for 3,072), so the ladder gets
    more, closer levels in more dimensions. Below 5 features every ratio
    overlaps: two levels (one where ``sigma_max == sigma_min``).

    Parameters
    ----------
    sigma_max, sigma_min : float
        The largest and the smallest level, ``sigma_max >= sigma_min > 0``.
    n_features : int
        Dimension ``D`` of the data.

    Returns
    -------
    n_levels : int

    Examples
    --------
    >>> from skebm.engine._dsm import overlapping_n_levels
    >>> overlapping_n_levels(20.0, 0.05, 784), overlapping_n_levels(20.0, 0.05, 64)
    (78, 21)
    """
    from scipy.optimize import brentq
    from scipy.stats import norm

    if sigma_max <= sigma_min:
        return 1
    root = math.sqrt(2.0 * n_features)

    def excess(gamma):  # overlap of consecutive levels minus 1/2: decreasing in gamma
        return norm.cdf(root * (gamma - 1) + 3 * gamma) - norm.cdf(root * (gamma - 1) - 3 * gamma) - 0.5

    if excess(1e3) >= 0:  # few dimensions: every ratio overlaps
        return 2
    gamma = brentq(excess, 1.0 + 1e-9, 1e3)
    return max(2, math.ceil(math.log(sigma_max / sigma_min) / math.log(gamma)) + 1)


class _NoiseLevels(torch.nn.Module):
    """The fitted noise levels as a buffer: moved, pickled, checkpointed and saved with the engine."""

    def __init__(self, sigmas):
        super().__init__()
        self.register_buffer("sigmas", torch.as_tensor(sigmas, dtype=torch.float32).reshape(-1).clone())

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        value = state_dict.get(prefix + "sigmas")
        if isinstance(value, torch.Tensor) and value.numel() and not bool((value > 0).all()):
            raise ValueError("the noise levels must be positive")
        if isinstance(value, torch.Tensor) and value.shape != self.sigmas.shape:  # n_noise_levels="auto": as fitted
            self.sigmas = torch.empty_like(value, device=self.sigmas.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class DSMNet(EBMNet):
    """A skorch net that trains an energy by denoising score matching over several noise levels.

    One training step (:meth:`train_step_single`) draws for each data row a
    level :math:`\\sigma` of ``noise_levels_`` (uniformly) and a standard
    normal :math:`z`, computes :math:`\\nabla_x U(x + \\sigma z, \\sigma)` in
    the autograd graph (double backprop) and back-propagates
    :class:`~skebm.engine.DenoisingScoreMatchingLoss`. No chain runs in
    training: ``sampler`` holds the Langevin settings of sampling only, and
    ``chain_init`` (when given) only supplies fresh starts from the source.

    :meth:`energy` is the energy at the smallest level unless ``sigma`` is
    given; :meth:`run_chains` is annealed Langevin dynamics (NCSN): for each
    level :math:`\\sigma_i` from the largest, ``n_steps`` Langevin steps on
    :math:`U(x, \\sigma_i)` with the step size ``sampler_.step_size *
    sigma_i / sigma_min`` (so the squared step, NCSN's
    :math:`\\alpha_i`, is proportional to :math:`\\sigma_i^2`) and exact
    Langevin noise, then one denoising step
    :math:`x + \\sigma_{\\min}^2 s(x, \\sigma_{\\min})` (Tweedie's formula, as
    NCSN v2 does), which removes the smallest level's noise.

    Parameters
    ----------
    module : torch.nn.Module
        The energy network (see :mod:`skebm.nn` for the output convention).
    noise_levels : sequence of float
        Decreasing positive noise levels (copied into ``noise_levels_``).
    criterion : type, default=DenoisingScoreMatchingLoss
        The loss module, called on ``((grad, sigma), z)``.
    scale_energy : bool, default=True
        Divide the energy by the level (NCSN v2's output scaling, so one
        network serves every level); ``False``: the energy is the
        network's at every level, for one level (Vincent's DSM, as
        :class:`~skebm.density.ScoreMatching` trains a density).
    **kwargs
        The arguments of :class:`~skebm.engine.EBMNet`; ``sampler`` is the
        Langevin sampler of the smallest level (its ``noise_scale`` is
        ignored: annealed Langevin is exact at every level).

    Attributes
    ----------
    noise_levels_ : torch.nn.Module
        The levels, as its buffer ``sigmas`` (decreasing).
    """

    def __init__(self, module, *, noise_levels, criterion=DenoisingScoreMatchingLoss, scale_energy=True, **kwargs):
        self.noise_levels = noise_levels
        self.scale_energy = scale_energy
        super().__init__(module, criterion=criterion, **kwargs)

    def initialize_module(self):
        super().initialize_module()
        self.noise_levels_ = _NoiseLevels(self.noise_levels).to(self.device)
        return self

    @property
    def runs_chains(self):
        """Training draws no MCMC negatives."""
        return False

    def divergence_hint(self):
        """Advice appended to a :class:`TrainingDivergedError`."""
        return "Lower lr, or raise sigma_min."

    def restore_from_history(self):
        """Nothing to restore: the step size never adapts."""

    @property
    def sigma_min(self):
        """The smallest noise level (a float)."""
        return float(self.noise_levels_.sigmas[-1])

    # ------------------------------------------------- energies and chains
    def energy(self, x, y=None, *, module=None, sigma=None):
        """``E(x) / (sigma T)``: the energy at noise level ``sigma`` (default: the smallest; ``E / T`` unscaled).

        Parameters
        ----------
        x : torch.Tensor of shape ``(n, *feature_shape)``
            Inputs in the model's space.
        y : torch.Tensor of int, default=None
            Class indices of a conditional energy.
        module : torch.nn.Module, default=None
            The network to call (see :meth:`EBMNet.energy`).
        sigma : float or torch.Tensor of shape (n,), default=None
            Noise level of each row; ``None``: the smallest level.

        Returns
        -------
        energy : torch.Tensor of shape (n,)
        """
        energy = super().energy(x, y, module=module)
        if not self.scale_energy:
            return energy
        return energy / (self.sigma_min if sigma is None else sigma)

    def _score_step(self, x, y, sigma, mask):
        """Tweedie's denoising step ``x + sigma^2 s(x, sigma)`` (only where ``mask`` is nonzero)."""
        with torch.enable_grad():
            z = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.energy(z, y, sigma=sigma).sum(), z)
        step = grad.mul(-(sigma**2))
        if mask is not None:
            step = step * mask
        return (x + step).detach()

    def run_chains(self, x0, y=None, *, generator=None, noise=None, **overrides):
        """Annealed Langevin dynamics over ``noise_levels_`` from ``x0``, then one denoising step.

        Parameters
        ----------
        x0 : torch.Tensor
            Chain starts.
        y : torch.Tensor of int, default=None
            Class of each chain (conditional energies).
        generator : torch.Generator, default=None
            Generator of the noise; ``None`` uses ``rng_.generator``.
        noise : object, default=None
            An explicit noise stream (e.g. :class:`~skebm.mcmc.RowNoise`).
        **overrides
            ``n_steps`` (per level), ``step_size`` (that of the smallest
            level), ``mask``, ``return_chains``, ``return_trace``.

        Returns
        -------
        x : torch.Tensor
            End states; with ``return_chains`` also every state, shape
            ``(n_levels * n_steps + 2, n, ...)`` (the last one denoised);
            with ``return_trace`` the concatenated traces of the levels.
        """
        generator = self.generator if generator is None else generator
        return_chains = overrides.pop("return_chains", False)
        return_trace = overrides.pop("return_trace", False)
        mask = overrides.get("mask")
        step_size = overrides.pop("step_size", None)
        step_size = float(self.sampler_.step_size if step_size is None else step_size)
        overrides["noise_scale"] = None  # exact Langevin at every level
        sigmas = [float(s) for s in self.noise_levels_.sigmas]
        x, chains, trace = x0, [x0.detach().float()], {}
        with self.thread_scope():  # threads: n_threads for the whole chain
            for sigma in sigmas:
                out = self.sampler_(
                    lambda z, s=sigma: self.energy(z, y, sigma=s), x, generator=generator, noise=noise,
                    step_size=step_size * sigma / sigmas[-1], return_chains=return_chains,
                    return_trace=return_trace, **overrides,
                )
                out = out if isinstance(out, tuple) else (out,)
                x = out[0]
                if return_chains:
                    chains.append(out[1][1:])
                if return_trace:
                    extend_trace(trace, out[-1])
            x = self._score_step(x, y, sigmas[-1], mask)
        result = [x]
        if return_chains:
            result.append(torch.cat([chains[0][None], *chains[1:], x[None]]))
        if return_trace:
            result.append(trace)
        return result[0] if len(result) == 1 else tuple(result)

    # ---------------------------------------------------------- training
    def train_step_single(self, batch, **fit_params):
        """Perturb the batch at random levels, compute the score-matching loss, back-propagate."""
        self._set_training(True)
        x, y = unpack_data(batch)
        x = to_tensor(x, device=self.device).float()
        y = to_tensor(y, device=self.device).long() if (self.conditional and y is not None) else None
        sigmas = self.noise_levels_.sigmas
        g = self.generator
        level = torch.randint(len(sigmas), (len(x),), generator=g, device=x.device)
        sigma = sigmas[level]
        z = torch.randn(x.shape, generator=g, device=x.device)
        x_noisy = (x + sigma.reshape(-1, *([1] * (x.dim() - 1))) * z).requires_grad_(True)
        # distributed: the loss goes through module_ (a DDP wrapper all-reduces the gradients)
        energy = self.energy(x_noisy, y, module=self.module_, sigma=sigma)
        (grad,) = torch.autograd.grad(energy.sum(), x_noisy, create_graph=True)
        loss = self.get_loss((grad, sigma), z, X=x, training=True)
        loss.backward()
        self.history.record_batch("energy_data", float(energy.detach().mean()))
        return {"loss": loss, "y_pred": energy.detach()}
