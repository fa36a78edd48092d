"""skebm: energy-based models as scikit-learn estimators.

The four estimators, one per use of MCMC trajectory length (EBM Life
Cycle): :class:`EBMGenerator` (shortrun synthesis), :class:`EBMPurifier`
(midrun purification), :class:`EBMDensity` (longrun densities) and
:class:`NGEBMClassifier` (the non-generative EBM classifier).
"""

from ._persistence import load, save
from ._version import __version__
from .classifier import NGEBMClassifier
from .density import EBMDensity
from .generator import EBMGenerator, compose
from .purifier import EBMPurifier, PurifiedClassifier


__all__ = ["EBMDensity", "EBMGenerator", "EBMPurifier", "NGEBMClassifier", "PurifiedClassifier", "compose", "save", "load", "__version__"]
