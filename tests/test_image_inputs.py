"""Bad image input and costly fits: clear messages before anything is trained."""

import warnings

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

import skebm
import skebm._cost as cost
import skebm.engine._ml as engine_ml
from skebm._torch_utils import autocast_context
from skebm import EBMGenerator, EBMPurifier, NGEBMClassifier
from skebm.nn import ConvEnergy, ResNetEnergy

FAST = {"max_iter": 2, "n_steps": 2, "batch_size": 8, "buffer_size": 16, "device": "cpu", "random_state": 0}


@pytest.mark.parametrize(
    "image_shape, n_features, expected",
    [
        ((1, 28, 28), 3072, "X has 3072 features but image_shape=(1, 28, 28) needs 784 (1 x 28 x 28); for colour "
         "images use image_shape=(3, 32, 32)."),
        ((3, 32, 32), 784, "needs 3072 (3 x 32 x 32); for grayscale images use image_shape=(1, 28, 28)."),
        ((1, 8, 8), 192, "for colour images use image_shape=(3, 8, 8)."),
        ((1, 28, 28), 785, "no grayscale or colour square image has 785 pixel values"),
    ],
)
@pytest.mark.parametrize("estimator", [EBMGenerator, EBMPurifier])
def test_image_shape_that_does_not_fit_x_names_the_shape_that_would(estimator, image_shape, n_features, expected):
    X = np.zeros((4, n_features))
    est = estimator(image_shape=image_shape, **FAST)
    with pytest.raises(ValueError) as info:
        est.fit(X)
    assert expected in str(info.value)
    assert not hasattr(est, "net_")


def test_classifier_gets_the_same_message():
    with pytest.raises(ValueError, match=r"for colour images use image_shape=\(3, 32, 32\)"):
        NGEBMClassifier(image_shape=(1, 28, 28), max_iter=1, device="cpu").fit(np.zeros((4, 3072)), [0, 1, 0, 1])


@pytest.mark.parametrize("image_shape", [None, (3, 16, 16)])
def test_channels_last_images_are_refused_with_the_transpose(image_shape):
    X = np.zeros((4, 16, 16, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"channels last.*X\.transpose\(0, 3, 1, 2\)"):
        EBMGenerator(image_shape=image_shape, **FAST).fit(X)
    EBMGenerator(image_shape=image_shape, **FAST).fit(X.transpose(0, 3, 1, 2))  # as the message says


def test_cost_estimate_scales_with_the_work():
    net = ConvEnergy((1, 28, 28))
    base = cost.estimate_fit_seconds(net, (1, 28, 28), batch_size=64, n_steps=10, n_updates=800)
    assert cost.estimate_fit_seconds(net, (1, 28, 28), batch_size=64, n_steps=10, n_updates=1600) == pytest.approx(
        2 * base
    )
    assert cost.estimate_fit_seconds(
        net, (1, 28, 28), batch_size=64, n_steps=10, n_updates=800, threads=2
    ) == pytest.approx(base / 2)
    assert cost.estimate_fit_seconds(net, (1, 28, 28), batch_size=64, n_steps=22, n_updates=800) == pytest.approx(
        2 * base
    )
    # the default MNIST-5k fit (measured 122 CPU s on the AMD machine, 190 on the Intel one; skebm/_cost.py) within
    # a factor of two of both
    assert 190 / 2 < base < 122 * 2
    # the previous default network (full-resolution first layer, narrow; measured about 550 CPU s on the Intel): it
    # runs fewer FLOPs per second than the default nets, so the estimate is low, by less than three
    full = cost.estimate_fit_seconds(ConvEnergy((1, 28, 28), first_stride=1, channels=(32, 64, 64)), (1, 28, 28),
                                     batch_size=64, n_steps=10, n_updates=800)
    assert 550 / 3 < full < 550
    # the 1M-weight ResNet at 32x32 with the same budget: hours
    resnet = cost.estimate_fit_seconds(ResNetEnergy((3, 32, 32)), (3, 32, 32), batch_size=64, n_steps=10, n_updates=800)
    assert resnet > cost.SLOW_FIT_SECONDS


class _Seen(Callback):
    """Records, when training starts, the warnings issued so far."""

    def __init__(self, record):
        self.record = record

    def on_train_begin(self, net, **kwargs):
        self.record.append([str(w.message) for w in self.recorded])


def _fit_recording(est, X):
    seen = []
    with warnings.catch_warnings(record=True) as recorded:
        warnings.simplefilter("always")
        callback = _Seen(seen)
        callback.recorded = recorded
        est.set_params(callbacks=[callback]).fit(X)
    return [str(w.message) for w in recorded], seen


def test_slow_cpu_fit_warns_with_the_estimate_before_training(monkeypatch):
    monkeypatch.setattr(cost, "CPU_FLOPS", 1e3)  # a machine a million times slower: any fit is slow
    X = np.random.RandomState(0).rand(20, 64)
    messages, seen = _fit_recording(EBMGenerator(image_shape=(1, 8, 8), **FAST), X)
    slow = [m for m in messages if "estimated to take" in m]
    assert len(slow) == 1
    assert "EBMGenerator.fit on the CPU" in slow[0] and "2 updates of 8 samples, 2 Langevin steps" in slow[0]
    assert any("estimated to take" in m for m in seen[0])  # already issued when training began


def test_quick_cpu_fit_does_not_warn():
    X = np.random.RandomState(0).rand(20, 64)
    messages, _ = _fit_recording(EBMGenerator(image_shape=(1, 8, 8), **FAST), X)
    assert not [m for m in messages if "estimated to take" in m]


def test_cost_of_ngebm_counts_no_chain():
    clf = NGEBMClassifier(max_iter=1, n_steps=20)
    assert clf._chain_steps_per_update() == 0
    assert clf.set_params(generative_weight=1.0)._chain_steps_per_update() == 20
    assert EBMGenerator(n_steps=7)._chain_steps_per_update() == 7


@pytest.mark.parametrize("speedup", [0.3, 1.5])
def test_bf16_warns_only_where_it_measured_slower(monkeypatch, speedup):
    calls = []
    monkeypatch.setattr(cost, "bf16_speedup", lambda module, shape, **kw: calls.append(shape) or speedup)
    X = np.random.RandomState(0).rand(20, 64)
    messages, _ = _fit_recording(EBMGenerator(image_shape=(1, 8, 8), precision="bf16", **FAST), X)
    bf16 = [m for m in messages if "measured 3.3 times slower than in float32" in m]
    assert len(bf16) == (1 if speedup < 1 else 0) and calls == [(1, 8, 8)]
    messages, _ = _fit_recording(EBMGenerator(image_shape=(1, 8, 8), **FAST), X)  # fp32: never measured, never warned
    assert not [m for m in messages if "bfloat16" in m] and len(calls) == 1


@pytest.mark.parametrize(("speedup", "chosen"),
                         [(0.3, "fp32"), (1.2, "fp32"), (cost.AUTO_BF16_SPEEDUP, "bf16"), (1.9, "bf16")])
def test_auto_precision_takes_bf16_only_where_it_measured_clearly_faster(monkeypatch, speedup, chosen):
    calls = []
    monkeypatch.setattr(cost, "bf16_speedup", lambda module, shape, **kw: calls.append((shape, kw)) or speedup)
    X = np.random.RandomState(0).rand(20, 64)
    gen = EBMGenerator(image_shape=(1, 8, 8), precision="auto", **FAST)
    messages, _ = _fit_recording(gen, X)
    assert gen.precision == "auto" and gen.precision_ == chosen == gen.net_.precision  # the parameter is kept
    assert len(calls) == 1 and calls[0][0] == (1, 8, 8) and calls[0][1]["batch_size"] == FAST["batch_size"]
    assert str(calls[0][1]["device"]) == "cpu"
    assert not [m for m in messages if "bfloat16" in m]  # "auto" never warns: it never takes the slower one
    # the chains run in the precision chosen: autocast is entered exactly when bf16 was chosen
    entered = []
    recording = lambda device, p: entered.append(p) or autocast_context(device, p)  # noqa: E731
    monkeypatch.setattr(engine_ml, "autocast_context", recording)
    gen.sample(2, random_state=0)
    assert entered and set(entered) == {chosen}


def test_explicit_precisions_are_never_measured_and_auto_is_remeasured_on_load(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(cost, "bf16_speedup", lambda module, shape, **kw: calls.append(shape) or 2.0)
    X = np.random.RandomState(0).rand(20, 64)
    assert EBMGenerator(image_shape=(1, 8, 8), **FAST).fit(X).precision_ == "fp32" and calls == []
    gen = EBMGenerator(image_shape=(1, 8, 8), precision="auto", **FAST).fit(X)
    assert gen.precision_ == "bf16" and len(calls) == 1
    skebm.save(gen, tmp_path / "m.skebm")
    monkeypatch.setattr(cost, "bf16_speedup", lambda module, shape, **kw: calls.append(shape) or 0.5)
    loaded = skebm.load(tmp_path / "m.skebm")  # another machine: its own measurement decides
    assert loaded.precision == "auto" and loaded.precision_ == "fp32" and len(calls) == 2


def test_auto_precision_is_resolved_again_on_a_warm_start(monkeypatch):
    monkeypatch.setattr(cost, "bf16_speedup", lambda module, shape, **kw: 2.0)
    X = np.random.RandomState(0).rand(20, 64)
    gen = EBMGenerator(image_shape=(1, 8, 8), warm_start=True, **FAST).fit(X)
    assert gen.precision_ == "fp32"
    assert gen.set_params(precision="auto").fit(X).precision_ == "bf16"
    assert gen.set_params(precision="fp32").fit(X).precision_ == "fp32"


def test_bf16_speedup_is_measured_once_per_network_and_leaves_it_untouched(monkeypatch):
    monkeypatch.setattr(cost, "_BF16_SPEEDUP", {})
    net = ConvEnergy((1, 8, 8))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    speedup = cost.bf16_speedup(net, (1, 8, 8))
    assert np.isfinite(speedup) and speedup > 0
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())
    monkeypatch.setattr(torch, "autocast", None)  # a second measurement would fail: the cached ratio is returned
    assert cost.bf16_speedup(net, (1, 8, 8)) == speedup
