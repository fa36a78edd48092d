"""The papers' published configurations, one call away.

Each preset is the set of skebm parameters that reproduces, as closely as
skebm can express it, a configuration published with one of the three
papers skebm implements, for users with a GPU and the real data set::

    from skebm import EBMGenerator
    from skebm.datasets import load_cifar10

    X, _ = load_cifar10("~/data", return_X_y=True)
    gen = EBMGenerator.from_preset("ebm_life_cycle_shortrun_cifar10", verbose=1).fit(X)

:func:`get` returns a preset's parameters and what they come from: the
paper, the published number, the reference code each setting was read from,
and the settings skebm cannot express (``not_expressed``). The parameters
are skebm's own: the papers' Langevin parametrisations are converted (see
each preset's ``conversions``), and none of these numbers was reproduced on
this project's machines (a CPU cannot train these networks for 10^5 updates).

Conventions of the conversions. skebm's Langevin step is
``x <- x - (step_size**2 / 2) * grad(E(x) / temperature) + noise_scale * xi``
on images mapped to ``[-1, 1]``; ``noise_scale=None`` means
``noise_scale = step_size`` (exact Langevin dynamics at ``temperature``).
A step written on pixels in ``[0, 1]`` doubles its displacement and halves
its gradient in ``[-1, 1]``.
"""

import math

import torch
from sklearn.utils import Bunch

from .mcmc import PersistentInit

__all__ = ["PRESET_NAMES", "get"]

_NOT_REPRODUCED = "no (needs a GPU and the real data set)"
_CIFAR10 = (3, 32, 32)

# ------------------------------------------------------------------ EBM Life Cycle
_LIFE_CYCLE = (
    "Hill, Mitchell, Chen, Du, Shah, Zhu, EBM Life Cycle: MCMC Strategies for Synthesis, "
    "Defense, and Density Modeling, arXiv:2205.12243 (2022)"
)
# The Life Cycle EBM (nets.py, EBMSNGAN32): four residual blocks of 256 channels, the first two
# downsampling (the first without a leading activation), ReLU, no spectral normalisation.
_LIFE_CYCLE_ENERGY = {"width": 256, "n_blocks": 4, "activation": "relu", "spectral_norm": False}
_LIFE_CYCLE_EMA_GAP = "EMA of the weights (tfa MovingAverage, decay 0.9999; ebm_opt_decay): EBMPurifier keeps none"
_LIFE_CYCLE_COMMON_GAPS = (
    "global average pooling and an output layer without bias: skebm's ResNetEnergy sums over space "
    "(a factor 64 on the output layer at 8x8) and has a bias (no effect on gradients)",
)


def _life_cycle_shortrun():
    # point0bar1/ebm-life-cycle, configs/cifar10_nonconv_sngan.py (train.py, init.py, nets.py)
    return {
        "energy": "resnet",
        "energy_params": dict(_LIFE_CYCLE_ENERGY),  # net_type 'ebm_sngan'
        "image_shape": _CIFAR10,  # image_dims [32, 32, 3], pixels in [-1, 1]
        "max_iter": 150_000,  # num_training_steps (README: best FID at 25K-50K updates)
        "batch_size": 128,  # batch_size
        "lr": 1e-4,  # ebm_lr_info [[1e-4, 0]]
        "optimizer": torch.optim.Adam,  # ebm_optim_type 'adam', beta_1=0.9, beta_2=0.999 (torch's defaults)
        "n_steps": 100,  # mcmc_step_info K = 100
        "step_size": 5e-3,  # epsilon
        "noise_scale": None,  # the noise is epsilon * N(0, I): exact Langevin
        "temperature": 1e-4,  # mcmc_temp: the energy (and the loss) divided by 1e-4
        # mcmc_init 'coop_persistent': bank of persistent_size = 10,000, rejuvenation prob. 0.5, and a
        # forced reset once a chain's counter exceeds max_mcmc_updates = 2 (4 updates since its restart)
        "init": PersistentInit(buffer_size=10_000, reinit_prob=0.5, rejuvenate="source", max_updates=4),
        "buffer_size": 10_000,
        "reinit_prob": 0.5,
        "l2_reg": 0.0,  # the plain ML loss
        "data_noise": 1e-2,  # data_epsilon
        "lr_schedule": "constant",  # ebm_lr_info [[1e-4, 0]]: one rate throughout
        "ema_decay": 0.9999,  # ebm_opt_decay: tfa MovingAverage of the weights, used for sampling
    }


def _life_cycle_midrun():
    # point0bar1/ebm-life-cycle, configs/cifar10_medconv_sngan_data.py (training) and
    # configs_attack/attack_config_cifar10.py (purification)
    return {
        "energy": "resnet",
        "energy_params": dict(_LIFE_CYCLE_ENERGY),  # net_type 'ebm_sngan'
        "image_shape": _CIFAR10,
        "max_iter": 150_000,  # num_training_steps
        "batch_size": 128,
        "lr": 1e-4,  # ebm_lr_info starts at 1e-4 (then / 10 at 50K, 75K, 100K, 125K: see not_expressed)
        "optimizer": torch.optim.Adam,  # beta_1=0.9, beta_2=0.999
        "n_steps": 100,  # mcmc_step_info K = 100
        "step_size": 1e-2,  # epsilon
        "noise_scale": None,  # epsilon * N(0, I)
        "temperature": 1e-4,  # mcmc_temp
        "init": "persistent",  # mcmc_init 'data_persistent': EBMPurifier rejuvenates bank chains from the data
        "buffer_size": 20_000,  # persistent_size
        "reinit_prob": 0.025,  # rejuvenation prob.
        "l2_reg": 0.0,
        "data_noise": 2e-2,  # data_epsilon
        "n_purify_steps": 2000,  # langevin_steps of the attack config
        "purify_step_size": 1e-2,  # its epsilon, at its mcmc_temp 1e-4 (= temperature)
        "purify_noise": 0.0,  # purification starts at the input itself
        "n_replicates": 128,  # eot_defense_reps: logits averaged over 128 purifications
    }


# ------------------------------------------------------------------ IGEBM
_IGEBM = (
    "Du, Mordatch, Implicit Generation and Generalization in Energy-Based Models, "
    "NeurIPS 2019 (arXiv:1903.08689)"
)
# IGEBM's step on pixels in [0, 1]: x <- clip(x + N(0, 0.005^2) - 10 * clip(dE/dx, +-0.01), 0, 1).
# In [-1, 1]: the displacement doubles and the gradient halves, so the drift is 10 * 2 * 2 = 40 times
# dE/dx and the noise 0.01: step_size**2 / 2 = 40.
_IGEBM_STEP = math.sqrt(80.0)


def _igebm_cifar10():
    # openai/ebm_code_release, README "CIFAR-10 Unconditional": train.py --dataset=cifar10 --num_steps=60
    # --batch_size=128 --step_lr=10.0 --proj_norm=0.01 --zero_kl --replay_batch --large_model
    return {
        # ResNet32Large (models.py): 128 filters, leaky ReLU blocks, spectral norm (--spec_norm defaults True),
        # sum pooling. Its widening to 256 and 512 channels and third downsampling have no skebm counterpart:
        # the nearest ResNetEnergy keeps 128 channels over its 9 residual blocks.
        "energy": "resnet",
        "energy_params": {"width": 128, "n_blocks": 9, "activation": "leaky_relu", "spectral_norm": True},
        "image_shape": _CIFAR10,
        "max_iter": 121_200,  # the released unconditional model (README: --resume_iter=121200)
        "batch_size": 128,  # --batch_size
        "lr": 3e-4,  # --lr default
        "optimizer": "adam",  # AdamOptimizer(beta1=0.0, beta2=0.999): skebm's "adam"
        "n_steps": 60,  # --num_steps
        "step_size": _IGEBM_STEP,  # --step_lr=10.0 on [0, 1] pixels (see above)
        "noise_scale": 0.01,  # stddev 0.005 on [0, 1] pixels
        "temperature": 1.0,  # --temperature 1
        "init": "replay",  # --replay_batch
        "buffer_size": 50_000,  # ReplayBuffer(50000) in train.py
        "reinit_prob": 0.05,  # replay_mask: uniform(0, 1) > 0.05
        "l2_reg": 1.0,  # loss + mean(E+^2) + mean(E-^2)
        # dequantisation: U(0, 1/256) on [0, 1] pixels, standard deviation 2 / (256 sqrt(12)) in [-1, 1]
        "data_noise": 2.0 / (256.0 * math.sqrt(12.0)),
        "lr_schedule": "constant",  # one --lr throughout
        "ema_decay": None,  # the released model's own weights
    }


# ------------------------------------------------------------------ NG-EBM
_NGEBM = "Piland, Sweet, Czajka, Flynn, Non-Generative Energy Based Models, arXiv:2304.01297 (2023)"


def _ngebm_cifar10():
    # chrissweet/NG-EBM, README "To train a model on CIFAR10": train_wrn_ebm.py --lr .0001 --optimizer adam
    # --energy_variance_loss 1.0 --energy_derivative_loss 1.0 --p_x_weight 0.0 --sigma .03 --width 10
    # --depth 28 --warmup_iters 1000 (other arguments at their defaults in train_wrn_ebm.py)
    return {
        # WRN-28-10 without normalisation (--norm None); skebm has no wide ResNet: the nearest
        # ResNetEnergy has 12 residual blocks (as WRN-28) of 160 channels (WRN-28-10's first stage).
        "energy": "resnet",
        "energy_params": {"width": 160, "n_blocks": 12, "activation": "leaky_relu", "spectral_norm": False},
        "image_shape": _CIFAR10,
        "energy_variance": 1.0,  # --energy_variance_loss (beta)
        "approximate_mass": 1.0,  # --energy_derivative_loss (gamma)
        "data_noise": 0.03,  # --sigma, on images normalised to [-1, 1]
        "generative_weight": 0.0,  # --p_x_weight 0.0: no MCMC
        # --n_epochs 200 of the 45,000 training images (--n_valid 5000 held out) in batches of 64 (drop_last)
        "max_iter": 200 * (45_000 // 64),
        "batch_size": 64,  # --batch_size default
        "lr": 1e-4,  # --lr
        "optimizer": "adam",  # Adam(betas=(0.9, 0.999)): NGEBMClassifier's "adam"
    }


def _row(name, estimator, paper, published, source, params, conversions, not_expressed):
    return name, {
        "estimator": estimator,
        "paper": paper,
        "published": published,
        "source": source,
        "conversions": conversions,
        "not_expressed": not_expressed,
        "reproduced": _NOT_REPRODUCED,
        "_params": params,
    }


_PRESETS = dict(
    [
        _row(
            "ebm_life_cycle_shortrun_cifar10",
            "EBMGenerator",
            _LIFE_CYCLE,
            "FID 22.1 on CIFAR-10 (50,000 samples, best checkpoint at 25K-50K updates)",
            "github.com/point0bar1/ebm-life-cycle: configs/cifar10_nonconv_sngan.py, train.py, init.py, nets.py; "
            "FID from the README",
            _life_cycle_shortrun,
            (
                "step_size = epsilon = 5e-3 and temperature = mcmc_temp = 1e-4 as given: both codes drift by "
                "epsilon^2 / 2 times grad(E / T) and add epsilon * N(0, I) on [-1, 1] pixels",
                "max_mcmc_updates = 2 (reset when the counter exceeds 2; a rejuvenated chain's counter restarts "
                "at 0 after its first update) -> PersistentInit(max_updates=4)",
            ),
            (
                "rejuvenation from a jointly trained SNGAN generator (mcmc_init 'coop_persistent'): chains "
                "restart from uniform noise instead",
                "FID samples: fresh chains of 350 steps started from the generator (configs_fid/"
                "fid_shortrun_cifar10.py); skebm's sample() starts from noise or the bank",
                *_LIFE_CYCLE_COMMON_GAPS,
            ),
        ),
        _row(
            "ebm_life_cycle_midrun_cifar10",
            "EBMPurifier",
            _LIFE_CYCLE,
            "natural accuracy 0.790, robust accuracy 0.567 at L-inf 8/255 (BPDA+EOT, WRN-28-10 classifier) "
            "on CIFAR-10, with the generator-initialised configuration",
            "github.com/point0bar1/ebm-life-cycle: configs/cifar10_medconv_sngan_data.py (training), "
            "configs_attack/attack_config_cifar10.py (purification); accuracies from the README",
            _life_cycle_midrun,
            (
                "step_size, temperature as given (see the shortrun preset); purify_step_size = the attack "
                "config's epsilon 1e-2 at the same temperature",
                "the published accuracies come from configs/cifar10_medconv_sngan.py, whose bank is rejuvenated "
                "from a pretrained generator (bank 25,000, p = 0.05, epsilon 1.25e-2, data_epsilon 0.025); "
                "the preset follows the repository's data-rejuvenated variant of it (_data.py), which skebm "
                "can express",
            ),
            (
                "learning-rate steps (1e-5 at 50K updates, then / 10 every 25K): pass a skorch LRScheduler "
                "in callbacks",
                "the bank starts from data (data_persistent); skebm's persistent bank starts from noise and "
                "is rejuvenated from the data",
                _LIFE_CYCLE_EMA_GAP,
                *_LIFE_CYCLE_COMMON_GAPS,
            ),
        ),
        _row(
            "igebm_cifar10",
            "EBMGenerator",
            _IGEBM,
            "FID 40.58, Inception score 6.02 on unconditional CIFAR-10 (one model)",
            "github.com/openai/ebm_code_release: README (CIFAR-10 unconditional command), train.py, models.py, "
            "data.py; FID and IS from the paper's Table 1",
            _igebm_cifar10,
            (
                "step_size = sqrt(80) = 8.94, noise_scale = 0.01: --step_lr=10 and noise 0.005 on pixels in "
                "[0, 1] become a drift of 40 times dE/dx and noise 0.01 on [-1, 1]",
                "data_noise = 0.00226: the uniform dequantisation noise U(0, 1/256) on [0, 1] has this standard "
                "deviation on [-1, 1] (Gaussian here)",
            ),
            (
                "elementwise clip of the energy gradient at 0.01 (--proj_norm, on [0, 1] pixels) and the clamp "
                "of the chains to the pixel range: the estimators expose neither",
                "ResNet32Large's widening to 256 and 512 channels and its third downsampling",
                "the noise is added before each gradient step (skebm: after)",
                "replay buffer stored as uint8 with fresh dequantisation noise at every draw",
            ),
        ),
        _row(
            "ngebm_cifar10",
            "NGEBMClassifier",
            _NGEBM,
            "Expected Calibration Error 2.5 times lower than the same network trained with cross-entropy on "
            "CIFAR-10 (7.5 times on CIFAR-100)",
            "github.com/chrissweet/NG-EBM: README (CIFAR10 training command), train_wrn_ebm.py; ECE ratios "
            "from the paper's abstract",
            _ngebm_cifar10,
            ("energy_variance = beta and approximate_mass = gamma as given, on the same logsumexp energy",),
            (
                "Wide ResNet 28-10: the nearest ResNetEnergy is used (12 blocks of 160 channels)",
                "learning-rate warm-up over 1,000 updates and decay by 0.3 at epochs 160 and 180: pass a skorch "
                "LRScheduler in callbacks",
                "data augmentation (random crop with padding 4, horizontal flip): augment X before fit",
                "checkpoint selection on 5,000 held-out images",
            ),
        ),
    ]
)

#: Names accepted by :func:`get` and the estimators' ``from_preset``.
PRESET_NAMES = tuple(_PRESETS)


def get(name):
    """A preset: its parameters and where each setting comes from.

    Parameters
    ----------
    name : str
        One of :data:`PRESET_NAMES`.

    Returns
    -------
    preset : :class:`~sklearn.utils.Bunch`
        With keys ``name``; ``estimator`` (the class name it configures);
        ``params`` (a fresh dict of that estimator's parameters: pass it to
        the class, or use its ``from_preset``); ``paper``; ``published``
        (the number the paper reports); ``source`` (the reference code and
        files the settings were read from); ``conversions`` (how the papers'
        parametrisations map to skebm's); ``not_expressed`` (settings skebm
        cannot express, and what the preset does instead); ``reproduced``
        (whether this project reproduced the number: none so far).

    Raises
    ------
    ValueError
        If ``name`` is not a preset name; the message lists them.

    Examples
    --------
    >>> from skebm.presets import get
    >>> preset = get("igebm_cifar10")
    >>> preset.estimator, preset.params["n_steps"], round(preset.params["step_size"], 3)
    ('EBMGenerator', 60, 8.944)
    """
    if not isinstance(name, str) or name not in _PRESETS:
        raise ValueError(f"Unknown preset {name!r}; the presets are: {', '.join(PRESET_NAMES)}.")
    entry = dict(_PRESETS[name])
    params = entry.pop("_params")()
    return Bunch(name=name, params=params, **entry)


def _build(estimator_class, name, overrides):
    """An instance of ``estimator_class`` with preset ``name``'s parameters, ``overrides`` winning.

    Called by the estimators' ``from_preset`` classmethod.
    """
    preset = get(name)
    if preset.estimator != estimator_class.__name__:
        own = [n for n in PRESET_NAMES if _PRESETS[n]["estimator"] == estimator_class.__name__]
        raise ValueError(
            f"The preset {name!r} configures {preset.estimator}, not {estimator_class.__name__}: use "
            f"{preset.estimator}.from_preset({name!r}). Presets of {estimator_class.__name__}: "
            f"{', '.join(own) if own else 'none'}."
        )
    estimator = estimator_class(**preset.params)
    return estimator.set_params(**overrides) if overrides else estimator
