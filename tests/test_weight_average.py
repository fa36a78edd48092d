"""The weight average of EBMGenerator (``ema_decay``): what it averages, which calls use it, how it is kept."""

import io

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import skebm
from skebm import EBMGenerator
from skebm.engine._ml import ExponentialAverage
from skebm.utils._tampering import entry, rewrite_file

X = load_digits().data[:200]
SMALL = dict(image_shape=(1, 8, 8), max_iter=12, batch_size=16, n_steps=3, buffer_size=64,
             energy_params={"channels": (4, 8, 8)}, random_state=0)


def _weights(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_running_mean_then_exponential_average():
    decay = 0.75  # the running mean over the first 1 / (1 - decay) = 4 updates, then the EMA
    avg, seen = torch.zeros(3), []
    update = ExponentialAverage(decay)
    for n, value in enumerate([1.0, 2.0, 4.0, 8.0, 16.0, 32.0]):
        current = torch.full((3,), value)
        seen.append(value)
        if n == 0:
            avg.copy_(current)  # AveragedModel copies the first weights
        else:
            update([avg], [current], torch.tensor(n))
        expected = np.mean(seen) if n < 4 else expected * decay + (1 - decay) * value
        np.testing.assert_allclose(avg.numpy(), expected, rtol=1e-6)


def test_integer_buffers_are_copied_not_averaged():
    avg, cur = torch.tensor([3]), torch.tensor([10])
    ExponentialAverage(0.9)([avg], [cur], torch.tensor(5))
    assert int(avg) == 10


def test_the_average_is_kept_apart_and_sampling_and_scores_use_it():
    gen = EBMGenerator(**SMALL).fit(X)
    net = gen.net_
    assert int(net.average_.n_averaged) == gen.n_iter_ == 12
    trained, averaged = _weights(net.module_), _weights(net.average_.module)
    assert any(not torch.equal(trained[k], averaged[k]) for k in trained)
    Z = torch.as_tensor(gen._to_model(X[:8]))
    with torch.no_grad():
        e_avg, e_trained = net.average_.module(Z).numpy(), net.module_(Z).numpy()
    assert not np.allclose(e_avg, e_trained)
    np.testing.assert_allclose(gen.score_samples(X[:8]), -e_avg, rtol=1e-5, atol=1e-6)
    # sample: the chains of the average, with the training sampler and the bank's starts
    g = torch.Generator().manual_seed(5)
    x0 = net.chain_init_.starts(4, None, g)
    expected = net.run_chains(x0, None, generator=g, module=net.average_.module)
    other = net.run_chains(x0.clone(), None, generator=torch.Generator().manual_seed(5), module=net.module_)
    assert not torch.allclose(expected, other)


def test_without_an_average_every_call_uses_the_trained_weights():
    gen = EBMGenerator(**SMALL, ema_decay=None).fit(X)
    assert gen.net_.average_ is None and gen.net_.evaluation_module() is gen.net_.module_
    Z = torch.as_tensor(gen._to_model(X[:8]))
    with torch.no_grad():
        energy = gen.net_.module_(Z).numpy()
    np.testing.assert_allclose(gen.score_samples(X[:8]), -energy, rtol=1e-5, atol=1e-6)


def test_training_is_the_same_with_or_without_the_average():
    """The average only watches: the trained weights and the chain bank do not depend on it."""
    a = EBMGenerator(**SMALL).fit(X).net_
    b = EBMGenerator(**SMALL, ema_decay=None).fit(X).net_
    for k, v in _weights(a.module_).items():
        torch.testing.assert_close(v, _weights(b.module_)[k])
    torch.testing.assert_close(a.chain_init_.state_dict()["buffer_"], b.chain_init_.state_dict()["buffer_"])


def test_the_average_is_saved_loaded_and_pickled(tmp_path):
    gen = EBMGenerator(**SMALL).fit(X)
    path = tmp_path / "m.skebm"
    skebm.save(gen, path)
    back = skebm.load(path)
    for k, v in _weights(gen.net_.average_).items():
        torch.testing.assert_close(_weights(back.net_.average_)[k], v)
    np.testing.assert_array_equal(back.sample(3, random_state=1), gen.sample(3, random_state=1))
    import pickle

    again = pickle.loads(pickle.dumps(gen))
    np.testing.assert_array_equal(again.sample(3, random_state=1), gen.sample(3, random_state=1))


def test_a_file_of_an_earlier_skebm_without_the_parameter_loads_without_an_average():
    gen = EBMGenerator(**SMALL, ema_decay=None).fit(X)
    buf = io.BytesIO()
    skebm.save(gen, buf)

    def drop(state):
        state["params"]["__dict__"] = [item for item in state["params"]["__dict__"] if item[0] != "ema_decay"]

    back = skebm.load(io.BytesIO(rewrite_file(buf.getvalue(), drop)))
    assert back.ema_decay is None and back.net_.average_ is None
    np.testing.assert_array_equal(back.sample(3, random_state=1), gen.sample(3, random_state=1))


def test_an_average_of_the_wrong_shape_is_refused_before_it_is_built():
    gen = EBMGenerator(**SMALL).fit(X)
    buf = io.BytesIO()
    skebm.save(gen, buf)

    def widen(state, tensors):
        average = entry(entry(state["engine"], "modules") if "__dict__" in state["engine"] else
                        state["engine"]["modules"], "average")
        tensors[entry(average, "module.out.weight")["__tensor__"]] = torch.zeros(1, 999)

    with pytest.raises(ValueError, match="average"):
        skebm.load(io.BytesIO(rewrite_file(buf.getvalue(), None, widen)))


@pytest.mark.parametrize("value", [0.0, 1.0, -0.5, 1.5, "0.9", float("nan"), True])
def test_bad_ema_decay_is_one_value_error(value):
    with pytest.raises(ValueError, match="ema_decay"):
        EBMGenerator(**{**SMALL, "max_iter": 1}, ema_decay=value).fit(X)


def test_warm_start_cannot_change_the_average():
    gen = EBMGenerator(**SMALL, warm_start=True).fit(X)
    gen.set_params(ema_decay=0.9)
    with pytest.raises(ValueError, match="ema_decay"):
        gen.fit(X)
    assert gen.ema_decay == 0.9 and gen.net_.average_.module is not None


def test_a_divergence_recovery_restores_the_average_with_the_weights():
    """The divergence guard's snapshot covers every registered module, the average included."""
    from skebm.engine._callbacks import DivergenceGuard

    gen = EBMGenerator(**SMALL).fit(X)
    state = DivergenceGuard._state(gen.net_)
    assert "average" in state[0]
