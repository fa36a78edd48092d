"""Every estimator against scikit-learn's checks and skebm's own contract (skebm.utils.estimator_checks)."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks as sklearn_checks

from skebm import EBMDensity, EBMGenerator, EBMPurifier, NGEBMClassifier, PurifiedClassifier
from skebm.density import LongrunML, ScoreMatching
from skebm.utils.estimator_checks import parametrize_with_checks as skebm_checks

SMALL_MLP = {"hidden_units": (16,)}
SMALL_CONV = {"channels": (8, 8)}


def flat_estimators():
    """Small, fast instances of every estimator on flat features."""
    return [
        EBMGenerator(max_iter=4, batch_size=16, n_steps=3, buffer_size=64, energy_params=SMALL_MLP, random_state=0),
        # denoising score matching: no chains in training, annealed Langevin over 3 noise levels in sample
        EBMGenerator(objective="dsm", n_noise_levels=3, max_iter=4, batch_size=16, n_steps=3, energy_params=SMALL_MLP,
                     random_state=0),
        EBMPurifier(max_iter=4, batch_size=16, n_steps=2, n_purify_steps=3, energy_params=SMALL_MLP, random_state=0),
        # method="auto": quadrature on 2 features, importance sampling on the wider data of scikit-learn's checks
        EBMDensity(
            max_iter=4, batch_size=32, energy_params={"hidden_units": (16,), "fourier_features": 8}, random_state=0,
        ),
        # a flow as the base of the tilt (quadrature or importance sampling, by the data's width)
        EBMDensity(
            base="flow", max_iter=4, batch_size=32, energy_params={"hidden_units": (16,), "fourier_features": 8},
            random_state=0,
        ),
        EBMDensity(
            method=LongrunML(n_steps=3, buffer_size=64, burnin_buffer_size=32, burnin_updates=2, n_sample_steps=3),
            max_iter=4, batch_size=32, base_components=2, energy_params={"hidden_units": (16,), "fourier_features": 8},
            random_state=0,
        ),
        # denoising score matching at one noise level, log Z once after training
        EBMDensity(method=ScoreMatching(n_sample_steps=3), max_iter=4, batch_size=32, energy_params={"hidden_units": (16,)},
                   random_state=0),
        # sklearn's check_classifiers_train wants accuracy > 0.83: a little more training
        NGEBMClassifier(max_iter=60, batch_size=32, lr=1e-2, energy_params=SMALL_MLP, random_state=0),
    ]


def image_estimators():
    """The image variants (sklearn's checks use arbitrary feature counts, so only skebm's run on these)."""
    common = dict(image_shape=(1, 8, 8), max_iter=4, batch_size=16, n_steps=2, energy_params=SMALL_CONV, random_state=0)
    return [
        EBMGenerator(buffer_size=64, **common),
        EBMGenerator(objective="dsm", n_noise_levels=3, **common),
        EBMPurifier(n_purify_steps=3, **common),
        NGEBMClassifier(**{k: v for k, v in common.items() if k != "n_steps"}),
    ]


@sklearn_checks(flat_estimators())
def test_sklearn_compatible(estimator, check):
    check(estimator)


@skebm_checks(flat_estimators() + image_estimators())
def test_skebm_contract(estimator, check):
    check(estimator)


@pytest.mark.slow
def test_purified_classifier_sklearn_compatible():
    from sklearn.linear_model import LogisticRegression
    from sklearn.utils.estimator_checks import check_estimator

    purifier = EBMPurifier(max_iter=2, batch_size=16, n_steps=2, n_purify_steps=2, energy_params=SMALL_MLP, random_state=0)
    check_estimator(PurifiedClassifier(purifier, LogisticRegression(max_iter=200), n_replicates=2))


pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
