"""Training engines: skorch nets, losses and callbacks."""

from ._callbacks import DivergenceGuard, ProgressBar, TrainingDivergedError
from ._losses import MaxLikelihoodLoss
from ._ml import EBMNet

__all__ = ["DivergenceGuard", "EBMNet", "MaxLikelihoodLoss", "ProgressBar", "TrainingDivergedError"]
