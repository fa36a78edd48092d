"""skebm._random: seeds, named streams and generators (the one home of randomness)."""

import numpy as np
import torch

from skebm._random import SEED_BOUND, PerDeviceGenerator, derive_seed, make_generator, seed_from, third_party_rng


def test_seed_from_returns_the_documented_range():
    seeds = [seed_from(None) for _ in range(50)] + [seed_from(np.random.RandomState(0)), seed_from(7)]
    assert all(isinstance(s, int) and 0 <= s < SEED_BOUND for s in seeds)
    assert SEED_BOUND == 2**31 - 1
    assert seed_from(3) == seed_from(3)
    np.random.RandomState(seed_from(None))  # a valid NumPy seed


def test_named_streams_are_distinct_and_stable():
    assert derive_seed(5, "data") == derive_seed(5, "data")
    names = ["data", "chains", "validation", "weights", 0, 1]
    assert len({derive_seed(5, name) for name in names}) == len(names)
    assert derive_seed(5, "data") not in (5, 6)  # not an offset of the seed
    assert seed_from(0, "purify") == derive_seed(seed_from(0), "purify")
    assert 0 <= derive_seed(2**62, "data") < SEED_BOUND


def test_per_device_generators_are_seeded_and_kept():
    g = PerDeviceGenerator(3)
    assert g.on("cpu") is g.on(torch.device("cpu"))
    a = torch.rand(4, generator=g.on("cpu"))
    b = torch.rand(4, generator=PerDeviceGenerator(3).on("cpu"))
    assert torch.equal(a, b)
    assert torch.equal(torch.rand(3, generator=make_generator(0)), torch.rand(3, generator=make_generator(0)))


def test_third_party_rng_restores_the_callers_global_state():
    torch.manual_seed(11)
    state = torch.get_rng_state()
    with third_party_rng(1):
        a = torch.rand(2)
    with third_party_rng(1):
        b = torch.rand(2)
    assert torch.equal(a, b)
    assert torch.equal(torch.get_rng_state(), state)
