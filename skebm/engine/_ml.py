"""The skorch engine of maximum-likelihood EBM training with MCMC negatives."""

import copy

import torch
from skorch import NeuralNet
from skorch.dataset import unpack_data
from skorch.utils import to_tensor

from ..mcmc import autocast_context
from ..nn import output_to_energy
from ._callbacks import DivergenceGuard
from ._losses import MaxLikelihoodLoss

__all__ = ["EBMNet"]


class EBMNet(NeuralNet):
    """A skorch ``NeuralNet`` that trains an energy with MCMC negatives.

    One training step (:meth:`train_step_single`) asks the chain
    initialisation strategy for chain starts, runs the Langevin sampler on
    the current energy, writes the chains back to the strategy's bank, and
    back-propagates the maximum-likelihood loss
    ``mean E(x+) - mean E(x-)`` (see :class:`MaxLikelihoodLoss`). Extend it by
    overriding :meth:`train_step_single` or :meth:`get_loss`, as with any
    skorch net. An energy module that defines ``penalty(x_pos, x_neg)``
    (a scalar tensor) has it added to the loss: a regulariser of its own
    internals, e.g. of a network output before a bound.

    Parameters
    ----------
    module : torch.nn.Module
        The energy network (see :mod:`skebm.nn` for the output convention).
    sampler : LangevinSampler
        Langevin settings used to draw negatives.
    chain_init : ChainInit
        Chain-initialisation strategy (copied at initialisation; the fitted
        copy with its bank is ``chain_init_``).
    noise : callable
        ``noise(n, shape, device)``: fresh chain starts.
    feature_shape : tuple of int
        Shape of one sample as the network sees it.
    criterion : type, default=MaxLikelihoodLoss
        The loss module, called on ``(e_pos, e_neg)``.
    data_noise : float, default=0.0
        Standard deviation of Gaussian noise added to data samples.
    conditional : bool, default=False
        Train ``E(x, y)``: the batch's labels condition both data and
        negatives.
    precision : {"fp32", "bf16"}, default="fp32"
        Autocast precision of energy evaluations.
    **kwargs
        Any :class:`skorch.NeuralNet` argument.

    Attributes
    ----------
    chain_init_ : ChainInit
        The strategy with its bank after training.
    """

    cuda_dependent_attributes_ = ["chain_init_"]

    def __init__(
        self,
        module,
        *,
        sampler,
        chain_init,
        noise,
        feature_shape,
        criterion=MaxLikelihoodLoss,
        data_noise=0.0,
        conditional=False,
        precision="fp32",
        **kwargs,
    ):
        kwargs.setdefault("train_split", None)
        super().__init__(module, criterion=criterion, **kwargs)
        self.sampler = sampler
        self.chain_init = chain_init
        self.noise = noise
        self.feature_shape = tuple(feature_shape)
        self.data_noise = data_noise
        self.conditional = conditional
        self.precision = precision

    def get_default_callbacks(self):
        return [*super().get_default_callbacks(), ("divergence_guard", DivergenceGuard())]

    def initialize(self):
        super().initialize()
        self.initialize_chains()
        return self

    def initialize_chains(self):
        """(Re)build the chain bank from ``chain_init``."""
        self.chain_init_ = copy.deepcopy(self.chain_init).setup(self.noise, self.feature_shape, self.device)
        return self

    def energy(self, x, y=None):
        """Energies of ``x`` (conditioned on ``y``) under autocast, as float32."""
        with autocast_context(self.device, self.precision):
            out = self.module_(x)
        return output_to_energy(out, y).float()

    def energy_fn(self, y=None):
        """Energy as a callable of ``x`` alone, for the sampler."""
        module = self.module_
        return lambda x: output_to_energy(module(x), y)

    def run_chains(self, x0, y=None, **overrides):
        """Run the Langevin sampler on the current energy from ``x0``."""
        overrides.setdefault("precision", self.precision)
        return self.sampler(self.energy_fn(y), x0, **overrides)

    def draw_negatives(self, x_pos, y=None):
        """One round of MCMC negatives for the data batch ``x_pos``.

        Asks the chain-initialisation strategy for starts, runs the sampler
        on the current energy (conditioned on ``y``), writes the chains back
        to the bank and returns the end states that serve as negatives.
        Engines that add negatives to another loss reuse it.
        """
        x0, token = self.chain_init_.draw(x_pos)
        x_neg = self.run_chains(x0, y)
        self.chain_init_.update(token, x_neg, y)
        if getattr(self.sampler, "metropolis", False):
            self.history.record_batch("acceptance", self.sampler.acceptance_rate_)
        if getattr(self.sampler, "proposal", None) is not None:
            self.history.record_batch("jump_acceptance", self.sampler.jump_acceptance_)
        return self.chain_init_.negatives(token, x_neg)

    def train_step_single(self, batch, **fit_params):
        """Draw negatives, compute the loss, back-propagate."""
        self._set_training(True)
        x_pos, y = unpack_data(batch)
        x_pos = to_tensor(x_pos, device=self.device).float()
        y = to_tensor(y, device=self.device).long() if (self.conditional and y is not None) else None
        if self.data_noise:
            x_pos = x_pos + self.data_noise * torch.randn_like(x_pos)
        x_neg = self.draw_negatives(x_pos, y)
        e_pos, e_neg = self.energy(x_pos, y), self.energy(x_neg, y)
        loss = self.get_loss((e_pos, e_neg), y, X=x_pos, training=True)
        penalty = getattr(self.module_, "penalty", None)
        if callable(penalty):
            loss = loss + penalty(x_pos, x_neg)
        loss.backward()
        self.history.record_batch("energy_data", e_pos.mean().item())
        self.history.record_batch("energy_samples", e_neg.mean().item())
        return {"loss": loss, "y_pred": e_pos.detach()}

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """The criterion on ``y_pred = (e_pos, e_neg)``."""
        return self.criterion_(y_pred, y_true)

    def __setstate__(self, state):
        super().__setstate__(state)
        if "chain_init_" in vars(self):
            self.chain_init_.to(self.device)

