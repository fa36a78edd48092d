"""Device and precision paths. CUDA tests skip on machines without a GPU (CI)."""

import pickle

import numpy as np
import pytest
import torch

import skebm
from skebm import EBMGenerator
from skebm._base import resolve_device
from skebm.mcmc import langevin
from skebm.nn import make_energy


def test_auto_device_resolves():
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"


def test_bf16_training_and_sampling_on_cpu():
    X = np.random.RandomState(0).rand(64, 1, 8, 8).astype(np.float32)
    gen = EBMGenerator(precision="bf16", max_iter=3, n_steps=3, random_state=0).fit(X)
    out = gen.sample(4, random_state=0)
    assert out.dtype == np.float32 and np.isfinite(out).all()
    assert gen.net_.chain_init_.buffer_.dtype == torch.float32


def test_bf16_energy_close_to_fp32():
    net = make_energy("conv", n_features=64, image_shape=(1, 8, 8))
    x = torch.rand(16, 1, 8, 8) * 2 - 1
    torch.manual_seed(0)
    a = langevin(lambda z: net(z), x, 5, 0.1, noise_scale=0.0)
    b = langevin(lambda z: net(z), x, 5, 0.1, noise_scale=0.0, precision="bf16")
    # same dynamics up to bfloat16 rounding of the gradients
    assert (a - b).abs().max() < 0.05 * (a - x).abs().max() + 1e-3


@pytest.mark.gpu
def test_cuda_fit_sample_and_cpu_reload(tmp_path):
    X = np.random.RandomState(0).rand(64, 1, 8, 8).astype(np.float32)
    gen = EBMGenerator(device="cuda", precision="bf16", max_iter=3, n_steps=3, random_state=0).fit(X)
    assert next(gen.net_.module_.parameters()).is_cuda
    assert gen.net_.chain_init_.buffer_.is_cuda
    assert gen.sample(4).shape == (4, 1, 8, 8)
    skebm.save(gen, tmp_path / "m")
    loaded = skebm.load(tmp_path / "m", device="cpu")
    assert not next(loaded.net_.module_.parameters()).is_cuda
    np.testing.assert_allclose(loaded.score_samples(X[:8]), gen.score_samples(X[:8]), rtol=1e-2, atol=1e-2)
    restored = pickle.loads(pickle.dumps(gen))
    assert restored.sample(2).shape == (2, 1, 8, 8)
