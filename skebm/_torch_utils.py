"""Small torch helpers shared by every layer of skebm."""

import contextlib

import numpy as np
import torch

__all__ = ["batched"]


def _concat(parts, dim):
    first = parts[0]
    if isinstance(first, tuple):
        return tuple(_concat([p[i] for p in parts], dim) for i in range(len(first)))
    if isinstance(first, torch.Tensor):
        return torch.cat(parts, dim=dim)
    return np.concatenate(parts, axis=dim)


def _cut(out, n, dim):
    if isinstance(out, tuple):
        return tuple(_cut(o, n, dim) for o in out)
    index = [slice(None)] * out.ndim
    index[dim] = slice(0, n)
    return out[tuple(index)]


def batched(fn, x, batch_size=4096, *, grad=False, dim=0, pad=False):
    """``fn`` applied to ``x`` in batches along the first axis, results concatenated.

    The one batched evaluation loop of skebm (energies, logits, features,
    log-densities, purified chains of many inputs): without gradients unless
    ``grad``.

    Parameters
    ----------
    fn : callable
        Maps a batch (rows of ``x``) to a tensor or an ndarray whose axis
        ``dim`` follows the batch's rows, or to a tuple of them.
    x : torch.Tensor or ndarray
        The inputs, one row per item (an index tensor ``torch.arange(n)``
        when ``fn`` makes its own inputs).
    batch_size : int, default=4096
        Rows per call of ``fn``.
    grad : bool or None, default=False
        Keep the autograd graph; ``None`` leaves the grad mode as it is.
    dim : int, default=0
        Axis of ``fn``'s output along which the batches are concatenated.
    pad : bool, default=False
        Zero-pad the last batch to ``batch_size`` rows (and cut the padding
        off its output): ``fn`` always sees batches of one size, so an
        item's result does not depend on the other items of its batch.

    Returns
    -------
    out : torch.Tensor, ndarray or tuple of them
    """
    batch_size = int(batch_size)
    context = contextlib.nullcontext() if grad is None else torch.set_grad_enabled(grad)
    parts = []
    with context:
        for start in range(0, len(x), batch_size):
            batch = x[start : start + batch_size]
            n = len(batch)
            if pad and n < batch_size:
                batch = torch.cat([batch, batch.new_zeros(batch_size - n, *batch.shape[1:])])
                parts.append(_cut(fn(batch), n, dim))
            else:
                parts.append(fn(batch))
        if not parts:
            return fn(x[:0])
    return _concat(parts, dim)
