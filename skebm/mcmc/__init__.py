"""MCMC: the Langevin sampler, chain-initialisation strategies, normalising constants."""

from ._ais import ais_log_partition, grid_log_partition, sigmoid_schedule
from ._diagnostics import chain_diagnostics
from ._init import (
    CHAIN_INITS,
    ChainInit,
    DataInit,
    GaussianMixtureSource,
    LongrunInit,
    NoiseInit,
    NoiseSource,
    PersistentInit,
    ReplayInit,
    make_chain_init,
)
from ._langevin import LangevinSampler, autocast_context, expected_stationary_std, independence_mh, langevin
from ._noise import GLOBAL_NOISE, RowNoise, row_keys

__all__ = [
    "CHAIN_INITS",
    "GLOBAL_NOISE",
    "ChainInit",
    "DataInit",
    "GaussianMixtureSource",
    "LangevinSampler",
    "LongrunInit",
    "NoiseInit",
    "NoiseSource",
    "PersistentInit",
    "ReplayInit",
    "RowNoise",
    "ais_log_partition",
    "autocast_context",
    "chain_diagnostics",
    "expected_stationary_std",
    "grid_log_partition",
    "independence_mh",
    "langevin",
    "make_chain_init",
    "row_keys",
    "sigmoid_schedule",
]
