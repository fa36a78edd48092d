"""Docstring fragments of the parameters the four estimators share.

Each estimator's docstring holds ``{name}`` placeholders that
:func:`fill_doc` fills from :data:`SHARED_PARAMS`, so the text of a shared
parameter is written once.
"""

SHARED_PARAMS = {
    "energy": """energy : str, torch.nn.Module class or instance, default="auto"
        The energy network. ``"auto"`` picks an MLP for flat features, a
        small conv net for images below 32x32 and a residual net from 32x32
        on; ``"mlp"``, ``"conv"`` and ``"resnet"`` name them. A module maps a
        batch ``(n, *shape)`` to ``(n,)`` energies or ``(n, k)`` logits (see
        :mod:`skebm.nn`); an instance is copied, never trained in place.""",
    "energy_params": """energy_params : dict, default=None
        Extra keyword arguments of the energy network's constructor, e.g.
        ``{"hidden_units": (64, 64)}`` or ``{"spectral_norm": True}``.""",
    "image_shape": """image_shape : tuple of int, default=None
        ``(C, H, W)`` when the flat features are images; ``None`` for flat
        data. A 4-D ``X`` sets it from its shape.""",
    "max_iter": """max_iter : int
        Number of parameter updates, rounded up to whole epochs of
        ``ceil(n_samples / batch_size)`` updates (batches are drawn with
        replacement).""",
    "batch_size": """batch_size : int
        Data samples (and chains) per update.""",
    "lr": """lr : float
        Learning rate.""",
    "optimizer": """optimizer : {"adam", "sgd"} or torch.optim.Optimizer class, default="adam"
        Optimiser; ``"adam"`` uses ``betas=(0, 0.999)`` as IGEBM does.""",
    "langevin": """n_steps : int
        Langevin steps per update.
    step_size : float
        Langevin step size epsilon: the drift is ``step_size**2 / 2`` times
        the energy gradient divided by ``temperature``.
    noise_scale : float or None
        Standard deviation of the Langevin noise; ``None`` uses
        ``step_size`` (exact Langevin dynamics at ``temperature``).
    temperature : float, default=1.0
        Temperature ``T`` of the density ``exp(-E(x) / T)``.""",
    "init": """init : {"noise", "data", "replay", "persistent"} or ChainInit
        Where training chains start (see :mod:`skebm.mcmc`): fresh noise,
        the data batch, a replay buffer of past negatives with restarts
        from noise (IGEBM), or a persistent bank with rejuvenation (EBM Life
        Cycle).
    buffer_size : int
        Size of the replay buffer or persistent bank.
    reinit_prob : float
        Probability that a chain drawn from the bank restarts from noise.""",
    "l2_reg": """l2_reg : float
        Weight of the L2 energy regulariser ``E(x+)^2 + E(x-)^2``.""",
    "data_noise": """data_noise : float
        Standard deviation of Gaussian noise added to the (rescaled) data
        in training.""",
    "device": """device : {"auto", "cpu", "cuda"} or str, default="auto"
        Torch device; ``"auto"`` picks CUDA when available.""",
    "precision": """precision : {"fp32", "bf16"}, default="fp32"
        ``"bf16"`` evaluates the energy network under bfloat16 autocast; the
        chain state stays float32.""",
    "callbacks": """callbacks : list of skorch callbacks, default=None
        Passed to the skorch training engine (checkpoints, LR schedulers,
        ...).""",
    "verbose": """verbose : int, default=0
        0 is silent; 1 shows a progress bar with the loss and the energies
        of data and samples.""",
    "warm_start": """warm_start : bool, default=False
        When True, ``fit`` continues from the fitted state (network, bank
        and rescaling) instead of starting afresh.""",
    "random_state": """random_state : int, RandomState instance or None, default=None
        Seeds every source of randomness (initial weights, batches, chains);
        the same seed gives the same result on CPU.""",
    "fitted": """n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of str
        Column names, when ``X`` was a DataFrame with string column names.
    image_shape_ : tuple of int or None
        Image shape used (from ``image_shape`` or a 4-D ``X``).
    net_ : skorch.NeuralNet
        The fitted training engine; ``net_.module_`` is the energy network
        and ``net_.history`` the training history.
    n_iter_ : int
        Number of parameter updates made.""",
}


def fill_doc(cls):
    """Class decorator filling ``{name}`` placeholders of the docstring."""
    doc = cls.__doc__
    for key, text in SHARED_PARAMS.items():
        doc = doc.replace("{" + key + "}", text)
    cls.__doc__ = doc
    return cls
