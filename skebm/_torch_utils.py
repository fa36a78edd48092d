"""Small torch helpers shared by every layer of skebm."""

import torch

__all__ = ["batched"]


def batched(fn, x, batch_size=4096, *, grad=False):
    """``fn`` applied to ``x`` in batches along the first axis, results concatenated.

    The one batched evaluation loop of skebm (energies, logits, log-densities
    of many inputs): without gradients unless ``grad``.

    Parameters
    ----------
    fn : callable
        Maps a tensor batch to a tensor with the same first dimension.
    x : torch.Tensor
        The inputs.
    batch_size : int, default=4096
        Rows per call of ``fn``.
    grad : bool, default=False
        Keep the autograd graph.

    Returns
    -------
    out : torch.Tensor
    """
    with torch.set_grad_enabled(grad):
        parts = [fn(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    return torch.cat(parts) if parts else fn(x[:0])
