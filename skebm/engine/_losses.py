"""Losses of the skebm training engines, as ``torch.nn.Module`` criteria."""

import torch
from torch import nn

__all__ = ["DenoisingScoreMatchingLoss", "MaxLikelihoodLoss", "NGEBMLoss"]


class MaxLikelihoodLoss(nn.Module):
    r"""Maximum-likelihood loss of an EBM with MCMC negatives.

    .. math::

        L = \bar U(x^+) - \bar U(x^-)
            + \alpha \left(\overline{U(x^+)^2} + \overline{U(x^-)^2}\right)

    on the energies at the model temperature, :math:`U = E / T` (the
    engine divides by :math:`T`). Its gradient is the (approximate) negative
    log-likelihood gradient; the optional :math:`\alpha` term is the IGEBM
    L2 energy regulariser.

    Parameters
    ----------
    l2_reg : float, default=0.0
        Weight :math:`\alpha` of the L2 energy regulariser.
    """

    def __init__(self, l2_reg=0.0):
        super().__init__()
        self.l2_reg = l2_reg

    def forward(self, energies, target=None):
        """Loss from ``energies = (e_pos, e_neg)``; ``target`` is ignored."""
        e_pos, e_neg = (e.float() for e in energies)
        loss = e_pos.mean() - e_neg.mean()
        if self.l2_reg:
            loss = loss + self.l2_reg * (e_pos.pow(2).mean() + e_neg.pow(2).mean())
        return loss


class DenoisingScoreMatchingLoss(nn.Module):
    r"""Denoising score-matching loss over several noise levels (Vincent 2011; Song & Ermon 2019).

    A data point :math:`x` perturbed as :math:`\tilde x = x + \sigma z`,
    :math:`z \sim N(0, I)`, has the conditional score
    :math:`\nabla_{\tilde x} \log q_\sigma(\tilde x \mid x) = -z / \sigma`;
    the model's score at that noise level is
    :math:`s_\theta(\tilde x, \sigma) = -\nabla_{\tilde x} U(\tilde x, \sigma)`
    (:math:`U = E / T`, the engine's energy at the level). With the NCSN
    weight :math:`\lambda(\sigma) = \sigma^2`, which makes every level count
    alike,

    .. math::

        L = \frac{1}{2n} \sum_i \sigma_i^2
            \left\| s_\theta(\tilde x_i, \sigma_i) + \frac{z_i}{\sigma_i} \right\|^2
          = \frac{1}{2n} \sum_i
            \left\| \sigma_i \nabla_{\tilde x} U(\tilde x_i, \sigma_i) - z_i \right\|^2 .

    Its minimiser is the score of the data smoothed at each level: no MCMC,
    no negatives. With the energy scaled by the level,
    :math:`U(x, \sigma) = E(x) / \sigma` (NCSN v2), the term in the norm is
    :math:`\nabla E(\tilde x) - z`: the network predicts the noise.

    Examples
    --------
    >>> import torch
    >>> from skebm.engine import DenoisingScoreMatchingLoss
    >>> z = torch.randn(8, 2)
    >>> sigma = torch.full((8,), 0.5)
    >>> float(DenoisingScoreMatchingLoss()((z / 0.5, sigma), z))  # the exact score: zero loss
    0.0
    """

    def forward(self, scores, noise):
        r"""Loss from ``scores = (grad, sigma)`` and the noise ``z`` (shaped like ``grad``).

        Parameters
        ----------
        scores : tuple of torch.Tensor
            ``grad``: :math:`\nabla_{\tilde x} U(\tilde x, \sigma)` of the
            perturbed batch, shape ``(n, ...)`` (in the autograd graph);
            ``sigma``: the noise level of each row, shape ``(n,)``.
        noise : torch.Tensor
            The standard normal draws ``z`` that perturbed the batch.

        Returns
        -------
        loss : torch.Tensor
            Scalar loss.
        """
        grad, sigma = scores
        sigma = sigma.reshape(-1, *([1] * (grad.dim() - 1))).to(grad.dtype)
        return 0.5 * (sigma * grad.float() - noise).pow(2).flatten(1).sum(1).mean()


class NGEBMLoss(nn.Module):
    r"""Loss of the non-generative EBM classifier (NG-EBM), optionally JEM.

    With logits :math:`f(x)` and the per-sample log-partition
    :math:`\ell_i = \operatorname{logsumexp}_y f(x_i)[y]` (the energy is
    :math:`E(x_i) = -\ell_i`),

    .. math::

        L = \mathrm{CE}(f(x), y)
            + \beta \, \frac{1}{n} \sum_i \left(\bar\ell - \ell_i\right)^2
            + \gamma \, \frac{1}{n} \sum_i \left\| \nabla_x \ell_i \right\|_2
            + w \left(\bar U(x^+) - \bar U(x^-)\right)

    as in Piland et al. (2023) and their code: the energy-variance term
    (:math:`\beta`) pulls the energies of all training points to a common
    value, the approximate-mass term (:math:`\gamma`, Grathwohl et al.) makes
    the density flat around them. The gradient is taken with
    ``create_graph=True`` so that the loss back-propagates through it (double
    backprop). The last term is JEM's maximum-likelihood term for
    :math:`p(x)` with MCMC negatives :math:`x^-` on the energies at the
    model temperature :math:`U = E / T` (:class:`MaxLikelihoodLoss`, used
    only when ``generative_weight > 0``). With
    :math:`\beta = \gamma = w = 0` the loss is plain cross-entropy.

    Parameters
    ----------
    energy_variance : float, default=0.0
        Weight :math:`\beta` of the energy-variance term.
    approximate_mass : float, default=0.0
        Weight :math:`\gamma` of the approximate-mass term.
    generative_weight : float, default=0.0
        Weight :math:`w` of the JEM :math:`p(x)` term.
    l2_reg : float, default=0.0
        L2 energy regulariser of the :math:`p(x)` term (see
        :class:`MaxLikelihoodLoss`).

    Examples
    --------
    >>> import torch
    >>> from skebm.engine import NGEBMLoss
    >>> net = torch.nn.Linear(3, 2)
    >>> x = torch.randn(8, 3, requires_grad=True)
    >>> loss = NGEBMLoss(energy_variance=0.1, approximate_mass=0.1)
    >>> sorted(loss.terms(net(x), torch.zeros(8, dtype=torch.long), x=x))
    ['approximate_mass', 'cross_entropy', 'energy_variance']
    """

    def __init__(self, energy_variance=0.0, approximate_mass=0.0, generative_weight=0.0, l2_reg=0.0):
        super().__init__()
        self.energy_variance = energy_variance
        self.approximate_mass = approximate_mass
        self.generative_weight = generative_weight
        self.l2_reg = l2_reg
        self.max_likelihood = MaxLikelihoodLoss(l2_reg=l2_reg)

    @staticmethod
    def approximate_mass_term(log_partition, x):
        r"""Per-sample :math:`\|\nabla_x \ell_i\|_2`, differentiable (double backprop).

        Parameters
        ----------
        log_partition : torch.Tensor of shape (n,)
            :math:`\ell_i = \operatorname{logsumexp} f(x_i)`, computed from ``x``.
        x : torch.Tensor of shape (n, ...)
            The inputs, with ``requires_grad=True``.

        Returns
        -------
        norms : torch.Tensor of shape (n,)
            Euclidean norm of each sample's gradient, part of the graph.
        """
        if not x.requires_grad:
            raise ValueError("The approximate-mass term needs the inputs x with requires_grad=True.")
        (grad,) = torch.autograd.grad(log_partition.sum(), x, create_graph=True)
        return grad.flatten(1).norm(p=2, dim=1)

    def terms(self, logits, target, x=None, energy_neg=None, energy_pos=None):
        r"""The unweighted terms of the loss, as a dict of scalar tensors.

        Parameters
        ----------
        logits : torch.Tensor of shape (n, k)
            Logits of the (noisy) training inputs ``x``.
        target : torch.Tensor of shape (n,)
            Class indices.
        x : torch.Tensor, default=None
            The inputs the logits were computed from (``requires_grad=True``);
            needed when ``approximate_mass > 0``.
        energy_neg : torch.Tensor of shape (m,), default=None
            Energies :math:`U = E / T` of MCMC negatives; needed when
            ``generative_weight > 0``.
        energy_pos : torch.Tensor of shape (n,), default=None
            Energies :math:`U` of the inputs for the :math:`p(x)` term;
            ``None`` uses :math:`-\ell_i` (temperature 1).

        Returns
        -------
        terms : dict
            ``"cross_entropy"`` always, ``"energy_variance"``,
            ``"approximate_mass"`` and ``"max_likelihood"`` when their weight
            is nonzero, each unweighted.
        """
        logits = logits.float()
        out = {"cross_entropy": nn.functional.cross_entropy(logits, target.long())}
        log_partition = torch.logsumexp(logits, dim=1)
        if self.energy_variance:
            out["energy_variance"] = (log_partition.mean() - log_partition).pow(2).mean()
        if self.approximate_mass:
            if x is None:
                raise ValueError("approximate_mass > 0 needs the inputs x.")
            out["approximate_mass"] = self.approximate_mass_term(log_partition, x).mean()
        if self.generative_weight:
            if energy_neg is None:
                raise ValueError("generative_weight > 0 needs the energies of MCMC negatives.")
            e_pos = -log_partition if energy_pos is None else energy_pos
            out["max_likelihood"] = self.max_likelihood((e_pos, energy_neg))
        return out

    def forward(self, logits, target, x=None, energy_neg=None, energy_pos=None):
        """The weighted sum of :meth:`terms` (same arguments).

        Returns
        -------
        loss : torch.Tensor
            Scalar loss.
        """
        terms = self.terms(logits, target, x=x, energy_neg=energy_neg, energy_pos=energy_pos)
        return self.combine(terms)

    def combine(self, terms):
        """Weighted sum of a dict returned by :meth:`terms`.

        Parameters
        ----------
        terms : dict of str to torch.Tensor
            Output of :meth:`terms`.

        Returns
        -------
        loss : torch.Tensor
            Scalar loss.
        """
        weights = {
            "cross_entropy": 1.0,
            "energy_variance": self.energy_variance,
            "approximate_mass": self.approximate_mass,
            "max_likelihood": self.generative_weight,
        }
        return sum(weights[name] * value for name, value in terms.items())
