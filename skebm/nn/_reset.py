"""Seeded (re)initialisation of network weights from an explicit generator.

torch's layers draw their initial weights from the global generator in
their constructors, so two fits seeded alike but run in two threads at once
would interfere. :func:`reset_parameters` redraws every weight of the
standard layers with torch's own default initialisation, but from a given
:class:`torch.Generator`: the initial network then depends on the seed alone.
"""

import inspect
import math

import torch
from torch import nn
from torch.nn.utils import parametrize

__all__ = ["reset_parameters"]

_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def _weight_param(layer):
    if parametrize.is_parametrized(layer, "weight"):
        return layer.parametrizations.weight.original
    return layer.weight


@torch.no_grad()
def _reset_layer(layer, generator):
    # torch's default: kaiming_uniform_(a=sqrt(5)) weights, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) biases
    weight = _weight_param(layer)
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
    if layer.bias is not None:
        fan_in, _ = nn.init._calculate_fan_in_and_fan_out(weight)
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    if parametrize.is_parametrized(layer, "weight"):
        for p in layer.parametrizations.weight:
            if hasattr(p, "_u") and hasattr(p, "_v"):  # spectral norm: fresh power-iteration vectors
                p._u.normal_(generator=generator)
                p._v.normal_(generator=generator)
                p._u.copy_(nn.functional.normalize(p._u, dim=0, eps=p.eps))
                p._v.copy_(nn.functional.normalize(p._v, dim=0, eps=p.eps))
                p._power_method(p._reshape_weight_to_matrix(weight), 15)


def _parameters_of(fn):
    try:
        return inspect.signature(fn).parameters if callable(fn) else {}
    except (TypeError, ValueError):
        return {}


def reset_parameters(module, generator):
    """Redraw the initial weights of ``module`` from ``generator``, in place.

    Linear and convolution layers (spectrally normalised ones included) get
    torch's default initialisation drawn from ``generator``; embeddings a
    standard normal; any submodule with a ``reset_parameters(generator=...)``
    method of its own (e.g. :class:`~skebm.nn.MLPEnergy`'s random Fourier
    features) is called with it. Other layers keep their weights.

    Parameters
    ----------
    module : torch.nn.Module
        The network.
    generator : torch.Generator
        A CPU generator; the weights are drawn on the CPU and copied.

    Returns
    -------
    module : torch.nn.Module
    """
    for layer in module.modules():
        if isinstance(layer, _LAYERS):
            _reset_layer(layer, generator)
        elif isinstance(layer, nn.Embedding):
            with torch.no_grad():
                layer.weight.normal_(generator=generator)
        elif "generator" in _parameters_of(getattr(layer, "reset_parameters", None)):
            layer.reset_parameters(generator=generator)
    return module
