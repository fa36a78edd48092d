"""The tilted energy of a density model: a network on top of a tractable base density."""

import torch
from torch import nn
from torch.nn.utils import parametrize

from ._nets import output_to_energy

__all__ = ["MemberMean", "TiltedEnergy", "zero_init_output"]


class TiltedEnergy(nn.Module):
    """Energy ``E(z) = f(z) - log q(z) + |z|^2 / (2 tau^2)`` of an exponentially tilted base density.

    ``exp(-E)`` is the unnormalised model density ``q(z) exp(-f(z) -
    |z|^2 / (2 tau^2))``: the base ``q`` (a normalised, tractable density,
    or none), tilted by the trained network. ``f = M tanh(g / M)`` is the
    network ``g`` bounded softly to ``(-M, M)`` (``M = bound``; unbounded
    when None), so the model stays within a factor ``exp(2 M)`` of ``q``.
    ``log q`` is evaluated in float32 even under bfloat16 autocast.

    Parameters
    ----------
    net : torch.nn.Module
        The network ``g`` (one output per sample).
    base : torch.nn.Module, default=None
        The base density, with ``log_prob(z)`` (and ``sample``, as the
        source of fresh chains), e.g. a :class:`~skebm.mcmc.GaussianMixtureSource`.
    tau : float, default=None
        Scale of the optional Gaussian prior.
    bound : float, default=None
        Soft bound ``M`` of the tilt.
    l2_reg : float, default=0.0
        Weight of :meth:`penalty`.
    """

    def __init__(self, net, base=None, tau=None, bound=None, l2_reg=0.0):
        super().__init__()
        self.net = net
        self.base = base
        self.tau = tau
        self.bound = bound
        self.l2_reg = l2_reg

    def tilt(self, x):
        """The bounded network output ``f(x)``."""
        energy = output_to_energy(self.net(x))
        if self.bound is not None:
            energy = self.bound * torch.tanh(energy / self.bound)
        return energy

    def penalty(self, x_pos, x_neg):
        """``l2_reg`` times the mean square of the raw network output on data and negatives.

        It acts on ``g`` before the bound, where ``tanh`` saturates and the
        likelihood gradient vanishes: a region that the bound has pinned at
        ``-M`` (or ``+M``) is pulled back as soon as chains (or data) visit.
        """
        if not self.l2_reg:
            return 0.0
        raw = output_to_energy(self.net(torch.cat([x_pos, x_neg])))
        return self.l2_reg * raw.pow(2).mean()

    def _rest(self, x, base=True):
        """``-log q(x) + |x|^2 / (2 tau^2)``: the energy without the tilt (``base=False``: without ``-log q``)."""
        rest = torch.zeros(len(x), device=x.device)
        if base and self.base is not None:
            with torch.autocast(device_type=x.device.type, enabled=False):
                rest = rest - self.base.log_prob(x.float())
        if self.tau is not None:
            rest = rest + x.flatten(1).pow(2).sum(1) / (2.0 * self.tau**2)
        return rest

    def member_energies(self, x):
        """The energies ``(k, n)`` of the ``k`` members of a :class:`MemberMean` network, each on its own."""
        tilts = self.net.members(x)
        if self.bound is not None:
            tilts = self.bound * torch.tanh(tilts / self.bound)
        return tilts + self._rest(x)

    def forward(self, x, members=False, base=True):
        """The energy of ``x``; ``members=True``: each member's, ``(k, n)`` (a :class:`MemberMean` network).

        ``base=False``: the energy plus ``log q(x)``, i.e. the tilt and the
        prior only, without evaluating the base (a flow's is costly).
        """
        if members:
            return self.member_energies(x)
        return self.tilt(x) + self._rest(x, base)


class _Gain(nn.Module):
    """A learnable scalar gain on a network's output, starting at zero."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.gain = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return self.gain * self.net(x)


def zero_init_output(net):
    """Make ``net`` start at output 0: zero its last linear layer, or wrap it in a zero gain.

    A spectrally normalised last layer cannot be zeroed (its weight is
    ``W / sigma(W)``), so such a network is wrapped in a learnable scalar
    gain that starts at 0.

    Parameters
    ----------
    net : torch.nn.Module

    Returns
    -------
    net : torch.nn.Module
        ``net`` itself or its wrapper.
    """
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    if not linears or parametrize.is_parametrized(linears[-1], "weight"):
        return _Gain(net)
    with torch.no_grad():
        linears[-1].weight.zero_()
        if linears[-1].bias is not None:
            linears[-1].bias.zero_()
    return net


class MemberMean(nn.Module):
    """The mean output of several networks: a bagged ensemble with one energy.

    Its output (``forward``) is the mean of the members' outputs, so
    ``exp(-mean g_k)`` is the normalised geometric mean of the members'
    densities (one ``log Z`` for the ensemble); :meth:`members` gives the
    outputs one by one, for training each on its own data.

    Parameters
    ----------
    members : sequence of torch.nn.Module
        Networks with ``(n,)`` outputs.
    """

    def __init__(self, members):
        super().__init__()
        self.members_ = nn.ModuleList(members)

    def members(self, x):
        """Outputs ``(k, n)`` of the ``k`` members."""
        return torch.stack([output_to_energy(m(x)) for m in self.members_])

    def forward(self, x):
        return self.members(x).mean(0)
