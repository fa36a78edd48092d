"""Small torch helpers shared by every layer of skebm."""

import contextlib
import math
import os

import numpy as np
import torch

__all__ = ["autocast_context", "batched", "check_rows_fit"]


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


def _device_memory(device):
    """Bytes of memory of ``device`` (the machine's physical memory for the CPU), or None where unknown."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_properties(dev.index if dev.index is not None else 0).total_memory
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): not checked
        return None


def check_rows_fit(what, n_rows, feature_shape, device, *, bytes_per_value=16, bytes_per_row=64):
    """Refuse, before anything is allocated, ``n_rows`` rows that cannot fit in the memory of ``device``.

    A training batch or a sampling call holds four float32 copies of its
    rows (the chain state, its gradient, the noise, the data) and an index
    per row (the defaults); a chain bank one copy and a label
    (``bytes_per_value=4, bytes_per_row=8``). The bound is the device's
    whole memory: what passes may still be too much with other work, what
    is refused could never run.

    Parameters
    ----------
    what : str
        The parameter, as the error names it (e.g. ``"batch_size=10**9"``).
    n_rows : int
    feature_shape : tuple of int
    device : str or torch.device
    bytes_per_value, bytes_per_row : int

    Raises
    ------
    ValueError
        When the rows need more bytes than the device has.
    """
    total = _device_memory(device)
    need = int(n_rows) * (bytes_per_value * math.prod(feature_shape) + bytes_per_row)
    if total is not None and need > total:
        raise ValueError(
            f"{what} needs about {need / 2**30:.3g} GiB for rows of shape {tuple(feature_shape)}, more than the "
            f"{total / 2**30:.3g} GiB of memory of device {str(device)!r}; lower it."
        )


def autocast_context(device, precision):
    """Return the autocast context for ``precision`` on ``device``.

    Parameters
    ----------
    device : str or torch.device
        Device the computation runs on.
    precision : {"fp32", "bf16"}
        ``"bf16"`` runs the wrapped code under bfloat16 autocast; ``"fp32"``
        returns a null context.

    Returns
    -------
    context : context manager
    """
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision != "bf16":
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}.")
    device_type = torch.device(device).type
    return torch.autocast(device_type=device_type, dtype=torch.bfloat16)
