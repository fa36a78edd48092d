"""The skorch engine of the non-generative EBM classifier (NG-EBM, JEM)."""

import torch
from skorch.dataset import unpack_data
from skorch.utils import to_tensor

from .._torch_utils import batched
from ..mcmc import autocast_context
from ..nn import output_to_energy
from ._losses import NGEBMLoss
from ._ml import EBMNet

__all__ = ["NGEBMNet"]

#: Rows per network call when predicting (the last chunk zero-padded).
_PREDICT_CHUNK = 128


class NGEBMNet(EBMNet):
    """skorch net that trains logits with the NG-EBM loss (optionally JEM).

    One training step (:meth:`train_step_single`) adds Gaussian noise of
    standard deviation ``data_noise`` to the batch, computes the logits with
    the inputs tracked by autograd (so the approximate-mass term can take
    its gradient with respect to them), and back-propagates
    :class:`NGEBMLoss`. When the criterion's ``generative_weight`` is
    positive (JEM mode) the step also draws MCMC negatives from the marginal
    energy ``-logsumexp f(x)`` with the shared Langevin sampler and the
    chain-initialisation strategy (a replay buffer in JEM), as
    :class:`EBMNet` does. Without it no chain is ever run.

    The terms of the loss are recorded in the batch history
    (``cross_entropy``, ``energy_variance``, ``approximate_mass``,
    ``max_likelihood``) together with the mean energy of the data
    (``energy_data``) and, in JEM mode, of the negatives
    (``energy_samples``); the :class:`DivergenceGuard` callback recovers
    from a non-finite loss or exploding energies (or raises
    :class:`TrainingDivergedError`).

    Parameters
    ----------
    module : torch.nn.Module
        Network returning ``(n, k)`` logits.
    criterion : type, default=NGEBMLoss
        Set its weights with ``criterion__energy_variance`` etc.
    **kwargs
        The arguments of :class:`EBMNet` (``sampler``, ``chain_init``,
        ``source``, ``feature_shape``, ``temperature``, ``data_noise``,
        ``precision``, ``seed``, ``max_updates``) and of
        :class:`skorch.NeuralNet`.

    Attributes
    ----------
    chain_init_ : ChainInit
        The chain-initialisation strategy with its bank (JEM mode).
    """

    def __init__(self, module, *, criterion=NGEBMLoss, **kwargs):
        super().__init__(module, criterion=criterion, **kwargs)

    @property
    def generative(self):
        """Whether the p(x) term (JEM mode) is on."""
        return bool(getattr(self.criterion_, "generative_weight", 0.0))

    @property
    def runs_chains(self):
        """Whether training draws MCMC negatives (JEM mode only)."""
        return self.generative

    def divergence_hint(self):
        """Advice appended to a :class:`TrainingDivergedError`."""
        if self.generative:
            return (
                "JEM mode (generative_weight > 0) is known to diverge: lower lr, step_size or generative_weight, "
                "or train without the p(x) term (generative_weight=0, NG-EBM)."
            )
        return "Lower lr, or the energy_variance and approximate_mass weights."

    def logits(self, x, *, module=None):
        """Logits of ``x`` under autocast, as float32 (gradients flow).

        Parameters
        ----------
        x : torch.Tensor of shape ``(n, *feature_shape)``
            Inputs in the model's (rescaled) space.
        module : torch.nn.Module, default=None
            The network to call; ``None`` is :meth:`bare_module` (the
            training loss passes ``module_``, a DDP wrapper in a
            distributed fit).

        Returns
        -------
        logits : torch.Tensor of shape (n, n_classes)
            The network's logits.
        """
        module = self.bare_module() if module is None else module  # distributed: predictions call the bare network
        with self.thread_scope(), autocast_context(self.device, self.precision):  # threads: n_threads
            out = module(x)
        if out.ndim != 2:
            raise ValueError(f"A classifier network must return (n, n_classes) logits, got shape {tuple(out.shape)}.")
        return out.float()

    def predict_logits(self, z, *, approximate_mass=False):
        """Float64 logits of model-range inputs, in evaluation mode and without gradients.

        The network always sees chunks of exactly ``_PREDICT_CHUNK`` rows
        (the last one zero-padded), so the output of a sample does not
        depend on which other samples are predicted with it (float32 matrix
        kernels otherwise vary in the last bit with the batch size).

        Parameters
        ----------
        z : torch.Tensor of shape ``(n, *feature_shape)``
            Inputs in the model's (rescaled) space, on the device.
        approximate_mass : bool, default=False
            Also return ``||grad_x logsumexp f(x)||_2`` of each input.

        Returns
        -------
        logits : ndarray of shape (n, n_classes)
            Float64 logits; a pair ``(logits, norms)`` with ``approximate_mass``.
        """

        def chunk_outputs(chunk):
            self.module_.train(False)
            if not approximate_mass:
                with torch.no_grad():
                    return self.logits(chunk).cpu().double()
            x = chunk.detach().clone().requires_grad_(True)
            with torch.enable_grad():
                logits = self.logits(x)
                norms = NGEBMLoss.approximate_mass_term(torch.logsumexp(logits, dim=1), x)
            return logits.detach().cpu().double(), norms.detach().cpu().double()

        out = batched(chunk_outputs, z, _PREDICT_CHUNK, grad=None, pad=True)
        return (out[0].numpy(), out[1].numpy()) if approximate_mass else out.numpy()

    def train_step_single(self, batch, **fit_params):
        """Noisy inputs, logits, (JEM: negatives), loss, back-propagation.

        Parameters
        ----------
        batch : tuple
            ``(X, y)`` batch from the skorch iterator.
        **fit_params : dict
            Ignored.

        Returns
        -------
        step : dict
            ``{"loss": loss, "y_pred": logits}``, as skorch expects.
        """
        self._set_training(True)
        x, y = unpack_data(batch)
        x = self._noisy(to_tensor(x, device=self.device).float())
        y = to_tensor(y, device=self.device).long()
        if self.criterion_.approximate_mass:
            x.requires_grad_(True)
        # distributed: the loss goes through module_ (a DDP wrapper all-reduces the gradients; its double-backward
        # term is a gradient in x, then one backward into the weights, which DDP reduces once); chains do not
        logits = self.logits(x, module=self.module_)
        energy_neg = None
        if self.generative:
            energy_neg = self.energy(self.draw_negatives(x.detach()), module=self.module_)
        loss = self.get_loss((logits, energy_neg), y, X=x, training=True)
        loss.backward()
        return {"loss": loss, "y_pred": logits.detach()}

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """The NG-EBM loss in training; the cross-entropy otherwise.

        Parameters
        ----------
        y_pred : tuple or torch.Tensor
            ``(logits, energy_neg)`` in training (``energy_neg`` is ``None``
            outside JEM mode), or plain logits.
        y_true : torch.Tensor of shape (n,)
            Class indices.
        X : torch.Tensor, default=None
            The (noisy) inputs the logits were computed from, tracked by
            autograd in training.
        training : bool, default=False
            Whether the loss is for a training step; the terms are then
            recorded in the batch history.

        Returns
        -------
        loss : torch.Tensor
            Scalar loss.
        """
        logits, energy_neg = y_pred if isinstance(y_pred, tuple) else (y_pred, None)
        y_true = to_tensor(y_true, device=logits.device).long()
        if not training:
            return torch.nn.functional.cross_entropy(logits.float(), y_true)
        energy_pos = None if energy_neg is None else output_to_energy(logits) / self.temperature
        terms = self.criterion_.terms(logits, y_true, x=X, energy_neg=energy_neg, energy_pos=energy_pos)
        loss = self.criterion_.combine(terms)
        for name, value in terms.items():
            self.history.record_batch(name, value.item())
        self.history.record_batch("energy_data", (output_to_energy(logits.detach()) / self.temperature).mean().item())
        if energy_neg is not None:
            self.history.record_batch("energy_samples", energy_neg.detach().mean().item())
        return loss
