"""EBMGenerator's training length by data size (``max_iter="auto"``) and the learning-rate schedule."""

import math

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback
from sklearn.datasets import load_digits

from skebm import EBMGenerator
from skebm.engine import CosineLearningRate, TrainingCheckpoint

X = load_digits().data[:200]
SMALL = dict(image_shape=(1, 8, 8), batch_size=16, n_steps=2, buffer_size=64, energy_params={"channels": (4, 8, 8)},
             random_state=0)


class RecordLR(Callback):
    """The learning rate each update's optimiser step used."""

    def on_train_begin(self, net, **kwargs):
        self.rates_ = getattr(self, "rates_", [])

    def on_batch_end(self, net, training=False, **kwargs):
        if training:
            self.rates_.append(net.optimizer_.param_groups[0]["lr"])


def _cosine(lr, n):
    return [lr * 0.5 * (1 + math.cos(math.pi * t / n)) for t in range(n)]


def test_cosine_schedule_falls_from_lr_to_zero_and_is_restored_after_the_fit():
    record = RecordLR()
    gen = EBMGenerator(max_iter=12, lr=2e-3, lr_schedule="cosine", callbacks=[record], **SMALL).fit(X)
    np.testing.assert_allclose(record.rates_, _cosine(2e-3, 12), rtol=1e-12)
    assert gen.net_.optimizer_.param_groups[0]["lr"] == 2e-3  # a warm start begins from lr again


def test_constant_schedule_keeps_lr():
    record = RecordLR()
    EBMGenerator(max_iter=6, lr=2e-3, lr_schedule="constant", callbacks=[record], **SMALL).fit(X)
    assert record.rates_ == [2e-3] * 6


def test_a_warm_start_runs_a_new_cosine_over_its_own_updates():
    record = RecordLR()
    gen = EBMGenerator(max_iter=8, lr_schedule="cosine", warm_start=True, callbacks=[record], **SMALL).fit(X)
    gen.set_params(max_iter=4).fit(X)
    np.testing.assert_allclose(record.rates_, _cosine(1e-3, 8) + _cosine(1e-3, 4), rtol=1e-12)


def test_a_fit_resumed_from_its_checkpoint_continues_the_cosine_exactly(tmp_path):
    plain = EBMGenerator(max_iter=8, lr_schedule="cosine", **SMALL).fit(X)

    class Stop(Callback):
        def on_batch_end(self, net, training=False, **kwargs):
            if training and sum(len(e["batches"]) for e in net.history) == 5:
                raise KeyboardInterrupt

    first = EBMGenerator(max_iter=8, lr_schedule="cosine", callbacks=[TrainingCheckpoint(tmp_path), Stop()], **SMALL)
    first.fit(X)
    assert first.n_iter_ < 8
    record = RecordLR()
    resumed = EBMGenerator(max_iter=8, lr_schedule="cosine", callbacks=[TrainingCheckpoint(tmp_path), record],
                           **SMALL).fit(X)
    assert resumed.n_iter_ == 8
    np.testing.assert_allclose(record.rates_, _cosine(1e-3, 8)[-len(record.rates_):], rtol=1e-12)
    for key, value in plain.net_.module_.state_dict().items():
        assert torch.equal(value, resumed.net_.module_.state_dict()[key]), key


def test_a_divergence_recovery_halves_the_schedule_too():
    """The guard halves initial_lr with lr, so the cosine after a recovery starts from the halved rate."""
    from types import SimpleNamespace

    from skebm.engine._callbacks import _scale_learning_rate

    group = {"lr": 1e-3}
    net = SimpleNamespace(max_updates=4, optimizer_=SimpleNamespace(param_groups=[group]), _optimizers=["optimizer"],
                          callbacks_=[], history=[{"batches": [{"train_loss": 1.0}, {}]}])
    CosineLearningRate().on_batch_begin(net, training=True)
    assert group["initial_lr"] == 1e-3 and group["lr"] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi / 4)))
    _scale_learning_rate(net, 0.5)  # what DivergenceGuard does on a recovery
    CosineLearningRate().on_batch_begin(net, training=True)
    assert group["lr"] == pytest.approx(0.5e-3 * 0.5 * (1 + math.cos(math.pi / 4)))


@pytest.mark.parametrize("shape, updates", [((1, 8, 8), 800), ((1, 28, 28), 800), ((1, 32, 32), 800),
                                            ((3, 32, 32), 3200), ((3, 16, 16), 800)])
def test_auto_max_iter_grows_with_the_values_per_sample(shape, updates):
    gen = EBMGenerator(image_shape=shape)
    gen.image_shape_ = shape  # what fit sets
    assert gen._updates_per_fit() == updates
    assert gen._n_steps() == gen._sampler().n_steps == gen._chain_steps_per_update() == (15 if updates > 800 else 10)
    assert gen._lr_schedule() == ("cosine" if updates > 1600 else "constant")
    names = [name for name, _ in gen._own_callbacks(updates)]
    assert ("lr_schedule" in names) == (updates > 1600)


def test_explicit_values_are_kept():
    gen = EBMGenerator(image_shape=(3, 32, 32), max_iter=100, lr_schedule="cosine", n_steps=7)
    gen.image_shape_ = (3, 32, 32)
    assert gen._updates_per_fit() == 100 and gen._lr_schedule() == "cosine" and gen._sampler().n_steps == 7
    gen = EBMGenerator(image_shape=(3, 32, 32), lr_schedule="constant")
    gen.image_shape_ = (3, 32, 32)
    assert gen._updates_per_fit() == 3200 and gen._lr_schedule() == "constant"


def test_a_fit_with_auto_n_steps_runs_and_samples_with_the_resolved_count():
    gen = EBMGenerator(image_shape=(3, 20, 20), max_iter=2, batch_size=4, buffer_size=8, random_state=0,
                       energy_params={"channels": (4, 8, 8)})
    gen.fit(np.random.RandomState(0).rand(8, 1200))  # 1,200 values per sample: the larger rule
    assert gen.n_steps == "auto" and gen.net_.sampler_.n_steps == 15
    _, chains = gen.sample(2, random_state=0, return_chains=True)
    assert len(chains) == 16  # the start and 15 steps
    gen.set_params(warm_start=True, n_steps=3).fit(np.random.RandomState(0).rand(8, 1200))
    assert gen.net_.sampler_.n_steps == 3
    gen.set_params(n_steps="auto").fit(np.random.RandomState(0).rand(8, 1200))  # back to the rule on a warm start
    assert gen.net_.sampler_.n_steps == 15


def test_a_fit_with_auto_max_iter_makes_that_many_updates():
    gen = EBMGenerator(**{**SMALL, "n_steps": 1}).fit(X[:64])
    assert gen.max_iter == "auto" and gen.n_iter_ == 800


@pytest.mark.parametrize("name, value", [("max_iter", "long"), ("max_iter", 0), ("max_iter", 2.5),
                                         ("lr_schedule", "linear"), ("lr_schedule", None), ("n_steps", "many"),
                                         ("n_steps", -1), ("n_steps", 2.5)])
def test_bad_values_are_one_value_error(name, value):
    with pytest.raises(ValueError, match=name):
        EBMGenerator(**{**SMALL, name: value}).fit(X)
