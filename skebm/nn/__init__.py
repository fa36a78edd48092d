"""Energy networks shared by the skebm estimators."""

from ._factory import ENERGIES, make_energy, resolve_energy_name
from ._nets import ConvEnergy, MLPEnergy, ResNetEnergy, check_energy_module, output_to_energy
from ._reset import reset_parameters
from ._tilted import MemberMean, TiltedEnergy, zero_init_output

__all__ = [
    "ENERGIES",
    "ConvEnergy",
    "MLPEnergy",
    "MemberMean",
    "ResNetEnergy",
    "TiltedEnergy",
    "check_energy_module",
    "make_energy",
    "output_to_energy",
    "reset_parameters",
    "resolve_energy_name",
    "zero_init_output",
]
