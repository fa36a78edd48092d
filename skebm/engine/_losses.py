"""Losses of the skebm training engines, as ``torch.nn.Module`` criteria."""

import torch
from torch import nn

__all__ = ["MaxLikelihoodLoss"]


class MaxLikelihoodLoss(nn.Module):
    r"""Maximum-likelihood loss of an EBM with MCMC negatives.

    .. math::

        L = \frac{\bar E(x^+) - \bar E(x^-)}{T}
            + \alpha \left(\overline{E(x^+)^2} + \overline{E(x^-)^2}\right)

    Its gradient is the (approximate) negative log-likelihood gradient; the
    optional :math:`\alpha` term is the IGEBM L2 energy regulariser.

    Parameters
    ----------
    l2_reg : float, default=0.0
        Weight :math:`\alpha` of the L2 energy regulariser.
    temperature : float, default=1.0
        Temperature :math:`T`.
    """

    def __init__(self, l2_reg=0.0, temperature=1.0):
        super().__init__()
        self.l2_reg = l2_reg
        self.temperature = temperature

    def forward(self, energies, target=None):
        """Loss from ``energies = (e_pos, e_neg)``; ``target`` is ignored."""
        e_pos, e_neg = (e.float() for e in energies)
        loss = (e_pos.mean() - e_neg.mean()) / self.temperature
        if self.l2_reg:
            loss = loss + self.l2_reg * (e_pos.pow(2).mean() + e_neg.pow(2).mean())
        return loss

