"""skebm: energy-based models as scikit-learn estimators.

The four estimators, one per use of MCMC trajectory length (EBM Life
Cycle): :class:`EBMGenerator` (shortrun synthesis), :class:`EBMPurifier`
(midrun purification), :class:`EBMDensity` (longrun densities) and
:class:`NGEBMClassifier` (the non-generative EBM classifier).

The submodules are reachable as attributes, as scikit-learn's are
(``skebm.datasets``, ``skebm.metrics``, ...): each is imported on first
access, so ``import skebm`` stays light.
"""

import importlib

from ._persistence import load, save
from ._version import __version__
from .classifier import NGEBMClassifier
from .density import EBMDensity
from .generator import EBMGenerator, compose
from .purifier import EBMPurifier, PurifiedClassifier

#: The public submodules, imported on first attribute access (PEP 562).
_SUBMODULES = ("attacks", "datasets", "engine", "mcmc", "metrics", "nn", "plotting", "utils")

__all__ = ["EBMDensity", "EBMGenerator", "EBMPurifier", "NGEBMClassifier", "PurifiedClassifier", "compose", "save", "load", "__version__"]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SUBMODULES))
