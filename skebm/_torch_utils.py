"""Small torch helpers shared by every layer of skebm."""

import math
import os

import torch

__all__ = ["batched", "check_rows_fit"]


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
