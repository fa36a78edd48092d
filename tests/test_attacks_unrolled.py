"""skebm.mcmc._unrolled: the differentiable, checkpointed Langevin chain."""

import numpy as np
import pytest
import torch
from torch import nn

from skebm.mcmc import RowNoise, langevin
from skebm.mcmc._unrolled import unrolled_langevin

KEYS = torch.arange(100, 108)


def mlp_energy(dim=3, width=16, dtype=torch.float32, seed=0):
    """A small smooth MLP energy (its Hessian is not zero, unlike a ReLU net's)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Linear(dim, width), nn.Tanh(), nn.Linear(width, width), nn.Softplus(),
                            nn.Linear(width, 1))
    net = net.to(dtype)

    def energy(x):
        return net(x).squeeze(-1) + 0.5 * (x**2).sum(1)

    return net, energy


def test_gradient_matches_finite_differences():
    net, energy = mlp_energy(dtype=torch.float64)
    x0 = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    for segments in (None, 1, "sqrt"):
        def chain(x):
            # a new stream with the same keys: the same draws at every call (as gradcheck needs)
            return unrolled_langevin(energy, x, 3, 0.4, noise_scale=0.1, noise=RowNoise(KEYS[:4]),
                                     checkpoint_segments=segments)

        assert torch.autograd.gradcheck(chain, (x0,), eps=1e-6, atol=1e-6, rtol=1e-5)
    # the Jacobian is not the identity part alone: the second derivatives of E are in it
    (g,) = torch.autograd.grad(chain(x0).sum(), x0)
    assert not torch.allclose(g, torch.ones_like(g), atol=1e-3)


def test_gradient_reaches_the_energy_parameters():
    # the energy's weights as explicit inputs: d(chain)/dW checked by finite differences, checkpointed
    torch.manual_seed(1)
    x0 = torch.randn(4, 2, dtype=torch.float64)
    W = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)

    def chain(W):
        energy = lambda x: torch.nn.functional.softplus(x @ W).sum(1) + 0.5 * (x**2).sum(1)  # noqa: E731
        return unrolled_langevin(energy, x0, 4, 0.5, noise_scale=0.05, noise=RowNoise(KEYS[:4]),
                                 checkpoint_segments=2)

    assert torch.autograd.gradcheck(chain, (W,), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_checkpointing_gives_the_same_gradient():
    net, energy = mlp_energy(dim=5, width=32)
    x0 = torch.randn(8, 5, requires_grad=True)
    params = [p for p in net.parameters()][:-1]  # the last bias has no effect on grad E

    def grads(segments):
        out = unrolled_langevin(energy, x0, 20, 0.3, noise_scale=0.05, noise=RowNoise(KEYS),
                                checkpoint_segments=segments)
        loss = (out**2).sum()
        return out.detach(), torch.autograd.grad(loss, [x0, *params])

    ref_out, ref = grads(None)
    for segments in ("sqrt", 3, 1, 20):
        out, got = grads(segments)
        torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-6)
        for a, b in zip(got, ref):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def _peak_cpu_bytes(fn):
    """Peak of (allocated - freed) CPU bytes while ``fn`` runs, from the profiler's memory events."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    try:  # the raw event list: fast
        events = [(e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    except AttributeError:  # the public (slower) one
        events = [(e.time_range.start, e.self_cpu_memory_usage) for e in prof.events() if e.self_cpu_memory_usage]
    current = peak = 0
    for _, nbytes in sorted(events):
        current += nbytes
        peak = max(peak, current)
    return peak


def test_checkpointing_bounds_memory_and_runs_the_forward_once():
    torch.manual_seed(0)
    W = torch.randn(8, 1024) / 3
    calls = []

    def energy(x):
        calls.append(1)
        return nn.functional.softplus(x @ W).sum(1)

    x0 = torch.randn(32, 8, requires_grad=True)

    def run(segments):
        out = unrolled_langevin(energy, x0, 50, 0.1, noise_scale=0.05, noise=RowNoise(torch.arange(32)),
                                checkpoint_segments=segments)
        torch.autograd.grad(out.sum(), x0)

    calls.clear()
    plain = _peak_cpu_bytes(lambda: run(None))
    assert len(calls) == 50
    calls.clear()
    checkpointed = _peak_cpu_bytes(lambda: run("sqrt"))
    # one forward pass plus one recomputation of every block (torch.utils.checkpoint would re-run each
    # block's prefix at every inner autograd.grad: quadratically many energy evaluations)
    assert len(calls) == 100
    assert plain > 5e6  # the plain chain holds ~128 KB activations, several per step
    assert checkpointed < 0.5 * plain, (checkpointed, plain)


def test_values_match_the_sampler_and_no_grad_runs_plain():
    _, energy = mlp_energy()
    x0 = torch.randn(8, 3)
    ref = langevin(energy, x0, 15, 0.3, noise_scale=0.05, noise=RowNoise(KEYS), clamp=(-2, 2))
    out = unrolled_langevin(energy, x0.requires_grad_(), 15, 0.3, noise_scale=0.05, noise=RowNoise(KEYS),
                            clamp=(-2, 2))
    assert out.requires_grad
    torch.testing.assert_close(out.detach(), ref, rtol=0, atol=1e-5)
    with torch.no_grad():
        plain = unrolled_langevin(energy, x0, 15, 0.3, noise_scale=0.05, noise=RowNoise(KEYS), clamp=(-2, 2))
    assert not plain.requires_grad
    torch.testing.assert_close(plain, out.detach(), rtol=0, atol=1e-6)
    assert torch.equal(x0, x0.detach().clone())  # x0 untouched


def test_noise_modes():
    _, energy = mlp_energy()
    x0 = torch.randn(8, 3, requires_grad=True)

    def grad(**kwargs):
        out = unrolled_langevin(energy, x0, 5, 0.3, **kwargs)
        return out.detach(), torch.autograd.grad(out.sum(), x0)[0]

    # reparameterised: a fixed stream repeats the purification and its gradient
    a, ga = grad(noise=RowNoise(KEYS))
    b, gb = grad(noise=RowNoise(KEYS))
    assert torch.equal(a, b) and torch.equal(ga, gb)
    c, _ = grad(generator=torch.Generator().manual_seed(3))
    d, _ = grad(generator=torch.Generator().manual_seed(3))
    assert torch.equal(c, d)
    # fresh: the global generator draws anew at every call
    e, _ = grad()
    f, _ = grad()
    assert not torch.equal(e, f)
    # no noise at all
    g, _ = grad(noise_scale=0.0)
    h, _ = grad(noise_scale=0.0)
    assert torch.equal(g, h)
    assert unrolled_langevin(energy, x0, 0, 0.3).shape == x0.shape


def test_dtype_is_kept_and_bf16_runs():
    _, energy = mlp_energy(dtype=torch.float64)
    x0 = torch.randn(4, 3, dtype=torch.float64)
    assert unrolled_langevin(energy, x0, 2, 0.3, noise=RowNoise(KEYS[:4])).dtype == torch.float64
    _, energy32 = mlp_energy()
    x = torch.randn(4, 3, requires_grad=True)
    out = unrolled_langevin(energy32, x, 3, 0.3, precision="bf16")
    (g,) = torch.autograd.grad(out.sum(), x)
    assert out.dtype == torch.float32 and bool(torch.isfinite(g).all())


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"checkpoint_segments": "log"}, ValueError, "checkpoint_segments"),
        ({"checkpoint_segments": 0}, ValueError, "checkpoint_segments"),
        ({"checkpoint_segments": 2.5}, TypeError, "checkpoint_segments"),
        ({"noise": object()}, TypeError, "randn_like"),
        ({"step_size": -1.0}, ValueError, "step_size"),
        ({"noise_scale": -0.1}, ValueError, "noise_scale"),
        ({"precision": "fp8"}, ValueError, "precision"),
    ],
)
def test_parameter_errors(kwargs, error, match):
    _, energy = mlp_energy()
    settings = {"n_steps": 3, "step_size": 0.1, **kwargs}
    with pytest.raises(error, match=match):
        unrolled_langevin(energy, torch.zeros(2, 3), settings.pop("n_steps"), settings.pop("step_size"), **settings)
    with pytest.raises(TypeError, match="x0"):
        unrolled_langevin(energy, np.zeros((2, 3)), 3, 0.1)


# the differentiable chain is the sampler's chain, setting for setting
DYNAMICS = {
    "plain": {},
    "exact_noise": {"noise_scale": None},
    "no_noise": {"noise_scale": 0.0},
    "temperature": {"temperature": 0.5},
    "tau": {"tau": 1.5},
    "grad_clip": {"grad_clip": 0.01},
    "clamp": {"clamp": (-0.5, 0.5)},
    "mask": {"mask": torch.tensor([1.0, 0.0, 1.0])},
    "bf16": {"precision": "bf16"},
    "all": {"temperature": 2.0, "tau": 1.0, "grad_clip": 0.05, "clamp": (-1.0, 1.0),
            "mask": torch.tensor([0.0, 1.0, 1.0])},
}


@pytest.mark.parametrize("settings", DYNAMICS.values(), ids=DYNAMICS.keys())
@pytest.mark.parametrize("graph", [True, False])
def test_unrolled_chain_equals_the_sampler(settings, graph):
    _, energy = mlp_energy()
    x0 = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    kwargs = {"noise_scale": 0.1, **settings}
    want = langevin(energy, x0, 6, 0.3, noise=RowNoise(KEYS), **kwargs)
    x = x0.clone().requires_grad_(graph)
    with torch.set_grad_enabled(graph):
        got = unrolled_langevin(energy, x, 6, 0.3, noise=RowNoise(KEYS), checkpoint_segments=2, **kwargs)
    assert got.requires_grad == graph
    torch.testing.assert_close(got.detach(), want, rtol=0, atol=1e-6)
    if graph and "mask" in settings and "clamp" not in settings:  # masked entries do not move
        frozen = settings["mask"] == 0
        (g,) = torch.autograd.grad(got[:, frozen].sum(), x)
        torch.testing.assert_close(got.detach()[:, frozen], x0[:, frozen], rtol=0, atol=0)
        torch.testing.assert_close(g[:, frozen], torch.ones_like(g[:, frozen]))
