"""Build an energy network from the estimators' ``energy`` parameter."""

import copy
import inspect

import torch
from torch import nn

from ._nets import ConvEnergy, MLPEnergy, ResNetEnergy
from ._reset import reset_parameters

__all__ = ["ENERGIES", "make_energy", "resolve_energy_name"]

ENERGIES = {"mlp": MLPEnergy, "conv": ConvEnergy, "resnet": ResNetEnergy}


def resolve_energy_name(energy, image_shape):
    """Name of the built-in network that ``energy`` designates.

    ``"auto"`` picks an MLP for flat data, the small conv net for images
    up to 32x32 (its first layer downsamples above 16x16, see
    :class:`~skebm.nn.ConvEnergy`) and the residual network above 32x32.
    On a CPU the residual network costs about 20 times the conv net per
    Langevin step at 32x32 (``benchmarks/reports/generator_images.md``).

    Parameters
    ----------
    energy : str, nn.Module subclass or nn.Module instance
        The estimator's ``energy`` parameter; anything but ``"auto"`` is
        returned unchanged.
    image_shape : tuple of int (C, H, W) or None
        Image shape of the data; None for flat features.

    Returns
    -------
    name : str or object
        ``"mlp"``, ``"conv"`` or ``"resnet"`` for ``"auto"``, else ``energy``.

    Examples
    --------
    >>> from skebm.nn import resolve_energy_name
    >>> resolve_energy_name("auto", (1, 8, 8)), resolve_energy_name("auto", None)
    ('conv', 'mlp')
    """
    if energy != "auto":
        return energy
    if image_shape is None:
        return "mlp"
    _, h, w = image_shape
    return "conv" if h * w <= 32 * 32 else "resnet"


def _build(cls, kwargs, generator):
    """Construct ``cls(**kwargs)`` with weights drawn from ``generator``, never from torch's global generator.

    The built-in networks are built on the meta device (no weights drawn
    at all) and initialised by :func:`reset_parameters`. Another class is
    built as its constructor asks (whatever it draws itself comes from
    torch's global generator, which skebm never seeds), then its standard
    layers, and any submodule with a ``reset_parameters(generator=...)``,
    are redrawn from ``generator``.
    """
    if cls in ENERGIES.values():
        with torch.device("meta"):
            module = cls(**kwargs)
        module = module.to_empty(device="cpu")
    else:
        module = cls(**kwargs)
    return reset_parameters(module, generator)


def make_energy(energy, *, n_features, image_shape=None, n_outputs=1, params=None, generator=None):
    """Instantiate the energy network.

    Parameters
    ----------
    energy : str, nn.Module subclass or nn.Module instance
        ``"auto"``, a name in :data:`ENERGIES`, a module class (called with
        the shape arguments it accepts among ``n_features``, ``image_shape``
        and ``n_outputs``, plus ``params``) or a module instance (deep-copied
        so the caller's module is never trained in place).
    n_features : int
        Number of flat input features.
    image_shape : tuple of int, default=None
        ``(C, H, W)`` for images.
    n_outputs : int, default=1
        1 for an energy, k for k logits.
    params : dict, default=None
        Extra constructor keywords.
    generator : torch.Generator, default=None
        CPU generator of the initial weights (see :func:`reset_parameters`);
        ``None`` builds the module as torch does, from the global generator.
        An instance is copied whatever the generator: it keeps its weights.

    Returns
    -------
    module : nn.Module
    """
    params = dict(params or {})
    if isinstance(energy, nn.Module):
        return copy.deepcopy(energy)
    if isinstance(energy, type) and issubclass(energy, nn.Module):
        cls = energy
    elif isinstance(energy, str):
        name = resolve_energy_name(energy, image_shape)
        if name not in ENERGIES:
            raise ValueError(
                f"energy must be 'auto', one of {sorted(ENERGIES)}, or a torch.nn.Module "
                f"class or instance, got {energy!r}."
            )
        if name in ("conv", "resnet") and image_shape is None:
            raise ValueError(f"energy={name!r} needs image_shape=(C, H, W).")
        cls = ENERGIES[name]
    else:
        raise TypeError(
            f"energy must be a string, a torch.nn.Module class or a torch.nn.Module instance, "
            f"got {type(energy).__name__}."
        )
    accepted = inspect.signature(cls).parameters
    shape_args = {"n_features": n_features, "image_shape": image_shape, "n_outputs": n_outputs}
    kwargs = {k: v for k, v in shape_args.items() if k in accepted}
    kwargs.update(params)
    try:
        return cls(**kwargs) if generator is None else _build(cls, kwargs, generator)
    except (TypeError, ValueError, RuntimeError) as exc:
        # torch's own message ("Trying to create tensor with negative dimension") names no parameter
        raise ValueError(
            f"energy_params={params!r} cannot build the {cls.__name__} energy network: {exc}"
        ) from exc
