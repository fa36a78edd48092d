"""Training engines: skorch nets, losses and callbacks."""

from ._callbacks import DivergenceGuard, ProgressBar, TrainingDivergedError
from ._losses import MaxLikelihoodLoss, NGEBMLoss
from ._ml import EBMNet
from ._ngebm import NGEBMNet

__all__ = [
    "DivergenceGuard",
    "EBMNet",
    "MaxLikelihoodLoss",
    "NGEBMLoss",
    "NGEBMNet",
    "ProgressBar",
    "TrainingDivergedError",
]
