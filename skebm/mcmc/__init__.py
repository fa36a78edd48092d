"""MCMC: the samplers (Langevin, HMC, parallel tempering), chain sources and initialisation strategies, normalising constants.

Everything here takes an energy function (a callable mapping a batch to one
energy per sample) and tensors, so research code can use it directly; every
random draw takes an optional :class:`torch.Generator`.
"""

from ._ais import ais_log_partition, grid_log_partition, sigmoid_schedule
from ._ais import log_partition_bracket, reverse_ais_log_partition
from ._convergence import effective_sample_size, split_rhat
from ._diagnostics import chain_diagnostics
from ._hmc import HMCSampler
from ._flows import FlowSource, fit_flow_source
from ._init import (
    CHAIN_INITS,
    ChainDraw,
    ChainInit,
    DataInit,
    LongrunInit,
    NoiseInit,
    PersistentInit,
    ReplayInit,
    make_chain_init,
)
from ._langevin import LangevinSampler, autocast_context, expected_stationary_std, independence_mh, langevin
from ._partition import estimate_log_partition, grid_box, importance_log_partition
from ._quadrature import CellGrid, cell_edges
from ._noise import GLOBAL_NOISE, GeneratorNoise, RowNoise, as_noise, row_keys
from ._sources import GaussianMixtureSource, NoiseSource
from ._tempering import ParallelTempering
from ._unrolled import unrolled_langevin

__all__ = [
    "CHAIN_INITS",
    "CellGrid",
    "GLOBAL_NOISE",
    "ChainDraw",
    "ChainInit",
    "DataInit",
    "FlowSource",
    "GaussianMixtureSource",
    "GeneratorNoise",
    "HMCSampler",
    "LangevinSampler",
    "LongrunInit",
    "NoiseInit",
    "NoiseSource",
    "ParallelTempering",
    "PersistentInit",
    "ReplayInit",
    "RowNoise",
    "ais_log_partition",
    "as_noise",
    "autocast_context",
    "cell_edges",
    "chain_diagnostics",
    "effective_sample_size",
    "estimate_log_partition",
    "expected_stationary_std",
    "fit_flow_source",
    "grid_box",
    "grid_log_partition",
    "importance_log_partition",
    "independence_mh",
    "langevin",
    "log_partition_bracket",
    "make_chain_init",
    "reverse_ais_log_partition",
    "row_keys",
    "sigmoid_schedule",
    "split_rhat",
    "unrolled_langevin",
]
