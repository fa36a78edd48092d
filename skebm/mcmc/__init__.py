"""MCMC: the Langevin sampler and the chain-initialisation strategies."""

from ._init import (
    CHAIN_INITS,
    ChainInit,
    DataInit,
    NoiseInit,
    NoiseSource,
    PersistentInit,
    ReplayInit,
    make_chain_init,
)
from ._langevin import LangevinSampler, autocast_context, expected_stationary_std, langevin

__all__ = [
    "CHAIN_INITS",
    "ChainInit",
    "DataInit",
    "LangevinSampler",
    "NoiseInit",
    "NoiseSource",
    "PersistentInit",
    "ReplayInit",
    "autocast_context",
    "expected_stationary_std",
    "langevin",
    "make_chain_init",
]
