"""Training engines: skorch nets, losses and callbacks."""

from ._callbacks import (
    CosineLearningRate,
    DivergenceGuard,
    HeldOutEarlyStopping,
    ProgressBar,
    TrainingCheckpoint,
    TrainingDivergedError,
)
from ._dsm import DSMNet
from ._losses import DenoisingScoreMatchingLoss, MaxLikelihoodLoss, NGEBMLoss
from ._ml import EBMNet
from ._monitor import SampleMonitor
from ._ngebm import NGEBMNet
from .._random import RandomGenerators

__all__ = [
    "CosineLearningRate",
    "DSMNet",
    "DenoisingScoreMatchingLoss",
    "DivergenceGuard",
    "EBMNet",
    "HeldOutEarlyStopping",
    "MaxLikelihoodLoss",
    "NGEBMLoss",
    "NGEBMNet",
    "ProgressBar",
    "RandomGenerators",
    "SampleMonitor",
    "TrainingCheckpoint",
    "TrainingDivergedError",
]
