"""Cell-grid quadrature of ``log Z`` in one or two dimensions, differentiable.

``Z = integral of exp(-E(x)) dx`` by the midpoint rule on a tensor grid of
cells: equal cells over the data, then cells whose widths grow
geometrically out to ``+-tail`` (standardised units), so that the whole
region where a standardised density can have mass is integrated with few
nodes. :class:`CellGrid` is a module (its nodes are buffers); its
:meth:`~CellGrid.log_z` is differentiable, so ``mean E(data) + log Z`` is
the exact negative log-likelihood of an energy, and its gradient the exact
maximum-likelihood gradient: no MCMC (:class:`~skebm.EBMDensity` trains
this way in one and two dimensions). With ``jitter=True`` every node is
drawn uniformly inside its cell: an unbiased estimate of ``Z`` at every
step, so a network cannot hide mass between fixed nodes.
"""

import numpy as np
import torch

from .._torch_utils import batched
from torch import nn

__all__ = ["CellGrid", "cell_edges"]


def cell_edges(low, high, n_cells, n_tail, tail, growth=1.35):
    """Cell edges of one axis: ``n_cells`` equal cells on ``[low, high]``, then ``n_tail`` per side out to ``+-tail``.

    The tail cells' widths grow geometrically (ratio ``growth``) and are
    scaled so that the last one ends at ``-tail`` (left) and ``+tail``
    (right), or one fine cell beyond the data if it already reaches there.

    Parameters
    ----------
    low, high : float
        The fine region.
    n_cells : int
        Equal cells on it.
    n_tail : int
        Cells on each side beyond it (0: none).
    tail : float
        Where the tails end.
    growth : float, default=1.35
        Width ratio of successive tail cells.

    Returns
    -------
    edges : ndarray of shape (n_cells + 2 * n_tail + 1,)
    """
    fine = np.linspace(low, high, n_cells + 1)
    if not n_tail:
        return fine
    h = fine[1] - fine[0]
    w = growth ** np.arange(1, n_tail + 1)

    def side(width):
        return np.cumsum(w * width / w.sum())

    left = low - side(max(low + tail, h))[::-1]
    right = high + side(max(tail - high, h))
    return np.concatenate([left, fine, right])


class CellGrid(nn.Module):
    """A tensor grid of cells in one or two dimensions, for the midpoint rule.

    Parameters
    ----------
    low, high : array-like of shape (d,)
        Corners of the fine region (d in {1, 2}).
    n_cells : int, default=128
        Equal cells per axis over the fine region.
    n_tail : int, default=8
        Geometrically growing cells per side beyond it.
    tail : float, default=6.0
        Where the tail cells end (``+-tail`` on every axis).

    Attributes
    ----------
    corner : torch.Tensor of shape (n_nodes, d)
        Lower corner of every cell.
    width : torch.Tensor of shape (n_nodes, d)
        Its side lengths.
    log_area : torch.Tensor of shape (n_nodes,)
        Log of its area (length in 1-D).

    Examples
    --------
    >>> import math, torch
    >>> from skebm.mcmc import CellGrid
    >>> grid = CellGrid([-3, -3], [3, 3], n_cells=64)
    >>> log_z = float(grid.log_z(lambda x: 0.5 * (x ** 2).sum(1)))
    >>> abs(log_z - math.log(2 * math.pi)) < 1e-3
    True
    """

    def __init__(self, low, high, n_cells=128, n_tail=8, tail=6.0):
        super().__init__()
        low, high = np.atleast_1d(np.asarray(low, float)), np.atleast_1d(np.asarray(high, float))
        if low.shape != high.shape or len(low) not in (1, 2) or not np.all(high > low):
            raise ValueError(f"a cell grid needs 1 or 2 dimensions with high > low, got {low} and {high}.")
        self.spec = (low.tolist(), high.tolist(), int(n_cells), int(n_tail), float(tail))
        edges = [torch.as_tensor(cell_edges(lo, hi, n_cells, n_tail, tail), dtype=torch.float32) for lo, hi in zip(low, high)]
        corners = torch.meshgrid(*[e[:-1] for e in edges], indexing="ij")
        widths = torch.meshgrid(*[e[1:] - e[:-1] for e in edges], indexing="ij")
        self.register_buffer("corner", torch.stack([c.reshape(-1) for c in corners], 1))
        self.register_buffer("width", torch.stack([w.reshape(-1) for w in widths], 1))
        self.register_buffer("log_area", torch.log(self.width).sum(1))

    def refined(self, factor=2):
        """The same grid with ``factor`` times as many cells per axis (fine and tail)."""
        low, high, n_cells, n_tail, tail = self.spec
        return CellGrid(low, high, factor * n_cells, factor * n_tail, tail).to(self.corner.device)

    def nodes(self, jitter=False, generator=None):
        """Midpoints of the cells, or (``jitter``) one uniform draw inside each cell."""
        if not jitter:
            return self.corner + 0.5 * self.width
        u = torch.rand(self.corner.shape, generator=generator, device=self.corner.device)
        return self.corner + u * self.width

    def log_z(self, energy_fn, *, jitter=False, generator=None, batch_size=65536):
        """``log sum_cells exp(-E(node)) * area``: the midpoint rule, differentiable when gradients are on.

        Parameters
        ----------
        energy_fn : callable
            Maps ``(m, d)`` nodes to ``(m,)`` energies (or ``(k, m)`` for ``k``
            energies at once: then ``k`` values are returned).
        jitter : bool, default=False
            Draw every node inside its cell (an unbiased estimate of ``Z``).
        generator : torch.Generator, default=None
            Generator of the jitter.
        batch_size : int, default=65536
            Nodes per evaluation without gradients.

        Returns
        -------
        log_z : torch.Tensor
            Scalar (or ``(k,)``), float32 with gradients, float64 without.
        """
        x = self.nodes(jitter, generator)
        if torch.is_grad_enabled():
            return torch.logsumexp(-energy_fn(x) + self.log_area, dim=-1)
        neg = -batched(lambda part: energy_fn(part).double(), x, batch_size, grad=None, dim=-1)
        return torch.logsumexp(neg + self.log_area.double(), dim=-1)

    def extra_repr(self):
        low, high, n_cells, n_tail, tail = self.spec
        return f"n_nodes={len(self.corner)}, n_cells={n_cells}, n_tail={n_tail}, tail={tail}"
