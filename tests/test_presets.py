"""skebm.presets: the papers' configurations as estimator parameters."""

import numpy as np
import pytest

import skebm
from skebm import presets
from skebm.mcmc import ChainInit

ESTIMATORS = {
    "EBMGenerator": skebm.EBMGenerator,
    "EBMPurifier": skebm.EBMPurifier,
    "NGEBMClassifier": skebm.NGEBMClassifier,
    "EBMDensity": skebm.EBMDensity,
}


def _comparable(value):
    """A parameter value in a form that compares by value (a ChainInit by its class and settings)."""
    if isinstance(value, ChainInit):
        return type(value), {k: getattr(value, k) for k in value._params}
    return value


def test_the_papers_presets_exist():
    assert set(presets.PRESET_NAMES) >= {
        "ebm_life_cycle_shortrun_cifar10",
        "ebm_life_cycle_midrun_cifar10",
        "igebm_cifar10",
        "ngebm_cifar10",
    }


@pytest.mark.parametrize("name", presets.PRESET_NAMES)
def test_from_preset_sets_exactly_the_presets_parameters(name):
    preset = presets.get(name)
    cls = ESTIMATORS[preset.estimator]
    est = cls.from_preset(name)
    assert type(est) is cls
    params = est.get_params(deep=False)
    for key, value in preset.params.items():
        assert _comparable(params[key]) == _comparable(value), key
    # every other parameter keeps the class default
    defaults = cls().get_params(deep=False)
    for key in set(params) - set(preset.params):
        assert _comparable(params[key]) == _comparable(defaults[key]), key


@pytest.mark.parametrize("name", presets.PRESET_NAMES)
def test_preset_metadata_is_complete(name):
    preset = presets.get(name)
    assert preset.name == name
    for key in ("paper", "published", "source"):
        assert isinstance(preset[key], str) and len(preset[key]) > 20, key
    assert preset.reproduced.startswith("no")
    assert all(isinstance(note, str) and note for note in preset.not_expressed)
    assert preset.params["image_shape"] == (3, 32, 32)


def test_published_conversions():
    """The Langevin settings are the papers' converted to skebm's parametrisation."""
    shortrun = presets.get("ebm_life_cycle_shortrun_cifar10").params
    assert (shortrun["step_size"], shortrun["noise_scale"], shortrun["temperature"]) == (5e-3, None, 1e-4)
    igebm = presets.get("igebm_cifar10").params
    # IGEBM: x <- x - 10 * dE/dx + N(0, 0.005^2) on [0, 1] pixels = drift 40 * dE/dx, noise 0.01 on [-1, 1]
    assert igebm["step_size"] ** 2 / 2 == pytest.approx(40.0)
    assert igebm["noise_scale"] == 0.01
    ngebm = presets.get("ngebm_cifar10").params
    assert (ngebm["energy_variance"], ngebm["approximate_mass"], ngebm["data_noise"]) == (1.0, 1.0, 0.03)


@pytest.mark.parametrize("name", ["ebm_life_cycle_shortrun", "", "IGEBM_CIFAR10", None, 3])
def test_unknown_preset_lists_the_valid_names(name):
    with pytest.raises(ValueError, match="Unknown preset") as info:
        presets.get(name)
    assert all(valid in str(info.value) for valid in presets.PRESET_NAMES)
    with pytest.raises(ValueError, match="Unknown preset"):
        skebm.EBMGenerator.from_preset(name)


def test_preset_of_another_estimator_is_refused():
    with pytest.raises(ValueError, match=r"configures NGEBMClassifier, not EBMGenerator.*NGEBMClassifier\.from_preset"):
        skebm.EBMGenerator.from_preset("ngebm_cifar10")
    assert not hasattr(skebm.EBMDensity, "from_preset")  # no paper publishes a density preset


def test_overrides_win():
    est = skebm.EBMGenerator.from_preset("igebm_cifar10", max_iter=3, step_size=0.5, device="cpu")
    assert (est.max_iter, est.step_size, est.device) == (3, 0.5, "cpu")
    assert est.n_steps == presets.get("igebm_cifar10").params["n_steps"]
    with pytest.raises(ValueError, match="Invalid parameter 'no_such_thing'"):
        skebm.EBMGenerator.from_preset("igebm_cifar10", no_such_thing=1)


def test_presets_hand_out_fresh_parameters():
    a = skebm.EBMGenerator.from_preset("ebm_life_cycle_shortrun_cifar10")
    b = skebm.EBMGenerator.from_preset("ebm_life_cycle_shortrun_cifar10")
    assert a.init is not b.init and a.energy_params is not b.energy_params
    a.energy_params["width"] = 1
    assert presets.get("ebm_life_cycle_shortrun_cifar10").params["energy_params"]["width"] == 256


@pytest.mark.parametrize("name", presets.PRESET_NAMES)
def test_every_preset_fits_a_few_cifar_shaped_images(name):
    """Each preset builds its network and trains (one short update on CPU, small bank)."""
    preset = presets.get(name)
    cls = ESTIMATORS[preset.estimator]
    small = {"max_iter": 1, "batch_size": 4, "device": "cpu", "random_state": 0}
    if "n_steps" in preset.params:
        small["n_steps"] = 2
    if "buffer_size" in preset.params:
        small["buffer_size"] = 8
    init = preset.params.get("init")
    if isinstance(init, ChainInit):
        small["init"] = type(init)(**{**{k: getattr(init, k) for k in init._params}, "buffer_size": 8})
    if "n_purify_steps" in preset.params:
        small.update(n_purify_steps=2, n_replicates=2)
    rng = np.random.RandomState(0)
    X = rng.randint(0, 256, size=(8, 3 * 32 * 32)).astype(np.uint8)
    y = np.arange(8) % 2
    est = cls.from_preset(name, **small).fit(X, y)
    assert est.n_iter_ == 1
    assert est.net_.module_ is not None
