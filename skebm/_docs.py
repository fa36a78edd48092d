"""Docstring fragments of the parameters the four estimators share.

Each estimator's docstring holds ``{name}`` placeholders that
:func:`fill_doc` fills from :data:`SHARED_PARAMS`, so the text of a shared
parameter is written once. ``tests/test_docstrings.py`` checks that every
fragment is used and every placeholder filled.
"""

SHARED_PARAMS = {
    "energy": """energy : str, torch.nn.Module class or instance, default="auto"
        The energy network. ``"auto"`` picks an MLP for flat features, a
        small conv net for images below 32x32 and a residual net from 32x32
        on; ``"mlp"``, ``"conv"`` and ``"resnet"`` name them. A module maps a
        batch ``(n, *shape)`` to ``(n,)`` energies or ``(n, k)`` logits (see
        :mod:`skebm.nn`); an instance is copied (keeping its weights), never
        trained in place.""",
    "energy_params": """energy_params : dict, default=None
        Extra keyword arguments of the energy network's constructor, e.g.
        ``{"hidden_units": (64, 64)}`` or ``{"spectral_norm": True}``.""",
    "image_shape": """image_shape : tuple of int, default=None
        ``(C, H, W)`` when the flat features are images; ``None`` for flat
        data. A 4-D ``X`` sets it from its shape.""",
    "max_iter": """Number of parameter updates (batches are drawn with replacement,
        ``ceil(n_samples / batch_size)`` per epoch).""",
    "optimizer": """optimizer : {"adam", "sgd"} or torch.optim.Optimizer class, default="adam"
        Optimiser; ``"adam"`` uses ``betas=(0, 0.999)`` as IGEBM does.""",
    "init": """init : {"noise", "data", "replay", "persistent", "longrun"} or ChainInit, default="replay"
        Where training chains start (see :mod:`skebm.mcmc`): a fresh draw
        of the source (noise), the data batch, a replay buffer of past
        negatives with restarts from the source (IGEBM), a persistent bank
        with rejuvenation (EBM Life Cycle), or longrun banks.""",
    "l2_reg": """Weight of the L2 energy regulariser ``(E(x+)^2 + E(x-)^2) / T^2``
        (IGEBM).""",
    "data_noise": """Standard deviation of Gaussian noise added to the (rescaled)
        training data.""",
    "device": """device : {"auto", "cpu", "cuda"} or str, default="auto"
        Torch device; ``"auto"`` picks CUDA when available. A device this
        machine cannot use (``"cuda"`` without a GPU, ``"mps"``, ``"xla"``
        without their backends, ``"meta"``) raises a ``ValueError`` before
        anything is built.""",
    "precision": """precision : {"fp32", "bf16", "auto"}, default="fp32"
        ``"bf16"`` evaluates the energy network under bfloat16 autocast; the
        chain state stays float32. ``"auto"`` times one chain step of the
        network in both precisions on the fit's device before training
        (once per process and network) and takes bfloat16 where it is
        faster by a clear margin, float32 elsewhere: never the slower of
        the two; ``precision_`` says which. The default float32
        gives the same numbers on every run of one machine.""",
    "callbacks": """callbacks : list of skorch callbacks, default=None
        Passed to the skorch training engine (LR schedulers,
        :class:`~skebm.engine.TrainingCheckpoint` to checkpoint and resume
        long fits, ...).""",
    "verbose": """verbose : int, default=0
        0 is silent; 1 shows a progress bar with the loss, the energies of
        data and samples and, for MALA chains, the acceptance rate.""",
    "warm_start": """warm_start : bool, default=False
        When True, ``fit`` continues from the fitted state (network,
        optimiser, bank, generators and rescaling) for ``max_iter`` more
        updates, with the training parameters changed since (``lr``,
        ``batch_size``, Langevin settings, ...) applied; parameters that
        fix the network or the bank cannot change (a ``ValueError``).
        Ctrl-C during a warm fit keeps the updates made so far.""",
    "on_divergence": """on_divergence : {"recover", "raise"}, default="recover"
        What a diverged update (a NaN or infinite loss, exploding
        energies) does: ``"recover"`` rolls back to the last good state,
        halves the learning rate (and the Langevin step size) and goes on,
        with a :class:`~sklearn.exceptions.ConvergenceWarning`, up to 5
        times; ``"raise"`` stops at once. The last update is checked too
        (by the energies of the model it leaves). Either way a fit that
        cannot finish, or that keeps none of its updates (every one rolled
        back), raises :class:`~skebm.engine.TrainingDivergedError` and
        leaves the estimator as it was before ``fit``, whatever
        ``max_iter``: a fit never returns a model that diverged.""",
    "n_threads": """n_threads : int or "auto", default="auto"
        Torch intra-op threads (an int from 1 to 1024) of ``fit`` and of
        the sampling and prediction calls, set for the call and restored
        afterwards (per calling thread, so concurrent fits in threads keep
        their own counts). ``"auto"``: one
        thread when a forward pass of a training batch costs under 1e9
        FLOPs (small energies are latency-bound, and spinning threads fight
        for shared cores), else the threads the process runs with (which
        joblib, dask and ray workers limit through ``OMP_NUM_THREADS``)
        shared among concurrent fits. Results can differ in the last bits
        between thread counts: pass an int for bitwise reproducibility
        across machines. See "Scaling out" in the user guide.""",
    "accelerator": """accelerator : accelerate.Accelerator or None, default=None
        Data-parallel training over several processes (GPUs or nodes) with
        Hugging Face ``accelerate``: pass ``Accelerator()`` and launch the
        script with ``accelerate launch`` or ``torchrun``. Each update's
        ``batch_size`` samples are split over the processes (it must be
        divisible by their number), each process runs its own chains with
        its own chain bank (``buffer_size`` chains) and generator, and the
        gradients and the history are averaged over the processes. The
        fitted estimator of each process holds the same weights and that
        process's bank; save it on the main process. One process with an
        accelerator gives the plain fit. See "Scaling out" in the user
        guide.""",
    "random_state": """random_state : int, RandomState instance or None, default=None
        Seeds every source of randomness (initial weights, batches, chains)
        through generators of the estimator's own, never torch's global
        one: the same seed gives the same result on CPU, in any thread.""",
    "fitted": """n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of str
        Column names, when ``X`` was a DataFrame with string column names.
    image_shape_ : tuple of int or None
        Image shape used (from ``image_shape`` or a 4-D ``X``).
    rescaler_ : Rescaler
        The learned map between the data's value range and the model's.
    net_ : skorch.NeuralNet
        The fitted training engine: ``net_.module_`` is the energy network,
        ``net_.chain_init_`` the chain bank, ``net_.history`` the training
        history.
    n_iter_ : int
        Number of parameter updates made.
    precision_ : {"fp32", "bf16"}
        Precision of the energy evaluations (``precision`` resolved:
        ``"auto"`` as measured on this machine).
    interrupted_ : bool
        Whether training was stopped early by Ctrl-C (the model is usable).
        Ctrl-C ends the training loop and ``fit`` returns with a warning: a
        first fit, or a refit with ``warm_start=True``, keeps what it
        learned (``interrupted_ = True``); a refit without ``warm_start``
        keeps the previous model exactly as it was.""",
}


def fill_doc(cls):
    """Class decorator filling ``{name}`` placeholders of the docstring."""
    doc = cls.__doc__
    for key, text in SHARED_PARAMS.items():
        doc = doc.replace("{" + key + "}", text)
    cls.__doc__ = doc
    return cls
