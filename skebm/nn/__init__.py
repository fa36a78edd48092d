"""Energy networks shared by the skebm estimators."""

from ._factory import ENERGIES, make_energy, resolve_energy_name
from ._nets import ConvEnergy, MLPEnergy, ResNetEnergy, output_to_energy

__all__ = [
    "ENERGIES",
    "ConvEnergy",
    "MLPEnergy",
    "ResNetEnergy",
    "make_energy",
    "output_to_energy",
    "resolve_energy_name",
]
