"""Training you can watch: sample grids and diagnostics every few updates."""

import math
import os
import warnings

import numpy as np
import torch
from skorch.callbacks import Callback

from ._history import n_updates

from .._torch_utils import check_rows_fit
from .._images import check_image_shape, image_mosaic
from .._validation import NONNEG_INT, POSITIVE_INT, StrOptions, check_params
from ..mcmc._convergence import _energy_convergence

__all__ = ["SampleMonitor"]


def _n_updates(net):
    return n_updates(net.history)


class SampleMonitor(Callback):
    """Draw samples from the model being trained every ``every`` updates.

    Every ``every`` parameter updates (and before the first and after the
    last) the callback runs ``n_samples`` Langevin chains on the current
    energy with the engine's own sampler (:meth:`EBMNet.run_chains
    <skebm.engine.EBMNet.run_chains>`), from the chain bank or from fresh
    source draws (``start``), keeps the samples in ``grids_``, records
    diagnostics in ``records_`` and, with a ``folder``, writes the grid
    as ``<prefix>_<update>.png``. :func:`skebm.plotting.save_sample_evolution`
    (or :func:`~skebm.plotting.plot_sample_evolution`) draws all grids as one
    image, one row per snapshot: how the samples changed over training. The
    monitor records arrays; :mod:`skebm.plotting` draws them.

    The chains draw from a generator of the monitor's own, seeded with
    ``random_state`` afresh at every snapshot (the same starts each time,
    so rows differ only by what the model learnt), the network is put in
    evaluation mode while they run, and nothing the training step reads is
    changed: a fit with the monitor gives the same weights as without it.
    Its cost is ``n_samples * n_steps`` energy gradients per snapshot.

    After every update it also records the gradient norm of the
    parameters (``grad_norm``, the global L2 norm skorch hands to
    ``on_grad_computed``) in the batch history, next to ``train_loss``,
    ``energy_data``, ``energy_samples``, ``step_size`` and, for MALA,
    ``acceptance``; :func:`skebm.plotting.plot_training` plots them.

    Use it through an estimator's ``callbacks`` parameter::

        monitor = SampleMonitor(every=100, folder="samples")
        EBMGenerator(image_shape=(1, 28, 28), callbacks=[monitor]).fit(X)
        save_sample_evolution(monitor, "samples/evolution.png")  # from skebm.plotting

    The samples are in the model's space (images in [-1, 1]); pass
    ``value_range`` or let it use the source's range.

    Parameters
    ----------
    every : int, default=100
        Updates between snapshots.
    n_samples : int, default=64
        Chains per snapshot.
    folder : str or path-like, default=None
        Where the PNG grids go (created if needed); ``None`` keeps them in
        memory only.
    start : {"auto", "source", "bank"}, default="auto"
        Chain starts: ``"source"`` fresh draws of the noise source,
        ``"bank"`` the replay buffer or persistent bank, ``"auto"`` as the
        fitted estimator's ``sample`` does (the bank where the training
        strategy keeps one, else the source).
    n_steps : int, default=None
        Langevin steps per chain; ``None`` uses the training sampler's.
    image_shape : tuple of int, default=None
        ``(C, H, W)`` to show flat features as images; ``None`` uses the
        engine's feature shape when it is an image shape. Two flat features
        are drawn as a scatter plot; other flat data get no picture (the
        diagnostics are still recorded).
    value_range : tuple of float, default=None
        Range mapped to black..white in the grids; ``None`` takes that of a
        uniform noise source (``[-1, 1]`` for the estimators' images), else
        each grid's own minimum and maximum.
    at_start : bool, default=True
        Also take a snapshot before the first update.
    prefix : str, default="samples"
        File name prefix of the PNG files.
    cmap : str, default="gray"
        Colormap of grayscale grids.
    random_state : int, default=0
        Seed of the monitor's chains (reset at every snapshot).

    Attributes
    ----------
    grids_ : list of ndarray
        The samples of each snapshot, shape ``(n_samples, *feature_shape)``,
        in the model's space.
    updates_ : list of int
        The update count of each snapshot (0: before training).
    records_ : list of dict
        One per snapshot: ``update``, ``energy_data`` (mean of the training
        batches' energies since the previous snapshot), ``energy_samples``
        (the same for the training negatives), ``energy_monitor`` (mean
        energy of the monitor's samples), ``langevin_grad_norm`` (mean norm
        of the energy's input gradient along the monitor's chains),
        ``grad_norm`` (mean parameter gradient norm since the previous
        snapshot), ``acceptance`` (MALA only), ``ess`` and ``rhat`` (the
        effective sample size and split-R-hat of the energy of each monitor
        chain over its steps, :func:`~skebm.mcmc.effective_sample_size`,
        :func:`~skebm.mcmc.split_rhat`: R-hat well above 1 means the chains
        are still drifting or disagree; NaN with fewer than 4 steps),
        ``path`` (the PNG, or ``None``) and ``seconds`` (time the snapshot
        took).
    paths_ : list of str
        The PNG files written.
    image_shape_ : tuple of int or None
        Image shape the grids are drawn with.
    value_range_ : tuple of float or None
        Value range the grids are drawn with.
    """

    _parameter_constraints = {
        "every": [POSITIVE_INT],
        "n_samples": [POSITIVE_INT],
        "start": [StrOptions({"auto", "source", "bank"})],
        "n_steps": [NONNEG_INT, None],
    }

    def __init__(self, every=100, n_samples=64, folder=None, *, start="auto", n_steps=None, image_shape=None,
                 value_range=None, at_start=True, prefix="samples", cmap="gray", random_state=0):
        self.every = every
        self.n_samples = n_samples
        self.folder = folder
        self.start = start
        self.n_steps = n_steps
        self.image_shape = image_shape
        self.value_range = value_range
        self.at_start = at_start
        self.prefix = prefix
        self.cmap = cmap
        self.random_state = random_state

    # ------------------------------------------------------------ callbacks
    def initialize(self):
        check_params(
            self._parameter_constraints,
            {k: getattr(self, k) for k in self._parameter_constraints},
            type(self).__name__,
        )
        if not hasattr(self, "grids_"):
            self._reset()
        return self

    def _reset(self):
        self.grids_, self.updates_, self.records_, self.paths_ = [], [], [], []
        self._grad_norms_ = []
        self._warned_ = False
        self._n_classes_ = None

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        check_rows_fit(f"SampleMonitor(n_samples={self.n_samples})", self.n_samples, net.feature_shape, net.device)
        self._last_ = _n_updates(net)
        if self._last_ == 0:  # a fresh fit; a warm start keeps the earlier snapshots
            self._reset()
        self._grad_norms_ = []
        self.image_shape_ = self._image_shape(net)
        self.value_range_ = self._range(net)
        if self.folder is not None:
            os.makedirs(self.folder, exist_ok=True)
        if self.at_start and self._last_ not in self.updates_:
            self.snapshot(net)

    def on_grad_computed(self, net, named_parameters, X=None, y=None, training=False, **kwargs):
        if not training:
            return
        squares = [p.grad.detach().float().pow(2).sum() for _, p in named_parameters if p.grad is not None]
        norm = float(torch.stack(squares).sum().sqrt()) if squares else 0.0
        net.history.record_batch("grad_norm", norm)
        self._grad_norms_.append(norm)

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        if training and _n_updates(net) % self.every == 0:
            self.snapshot(net)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        n = _n_updates(net)
        if n not in self.updates_:
            self.snapshot(net)

    # ------------------------------------------------------------- sampling
    def _starts(self, net, n, y, generator):
        bank = net.chain_init_
        if self.start == "source":
            return bank.fresh(n, generator)
        return bank.starts(n, y, generator)

    def _labels(self, net, n):
        """Class of each monitor chain of a conditional engine: the classes in turn (one per column)."""
        if not getattr(net, "conditional", False):
            return None
        n_classes = self._n_classes_
        if n_classes is None:
            probe = net.chain_init_.fresh(1, torch.Generator(device=net.chain_init_.device).manual_seed(0))
            with torch.no_grad():
                out = net.module_(probe)
            n_classes = int(out.shape[1]) if out.ndim == 2 else 1
            self._n_classes_ = n_classes
        return torch.arange(n, device=net.chain_init_.device) % n_classes

    def draw(self, net):
        """Run the monitor's chains on the current energy of ``net``; return the end states and a trace.

        Parameters
        ----------
        net : EBMNet
            The engine being trained (or a fitted one).

        Returns
        -------
        samples : torch.Tensor of shape ``(n_samples, *feature_shape)``
        trace : dict
            ``energy`` and ``grad_norm`` per Langevin step (and
            ``acceptance`` for MALA), as :func:`skebm.mcmc.langevin` returns.
        """
        sampler = net.sampler_
        saved = {k: getattr(sampler, k) for k in ("acceptance_rate_", "jump_acceptance_") if hasattr(sampler, k)}
        module = net.module_
        was_training = module.training
        device = net.chain_init_.device
        g = torch.Generator(device=device).manual_seed(int(self.random_state))
        module.train(False)
        try:
            y = self._labels(net, self.n_samples)
            x0 = self._starts(net, self.n_samples, y, g)
            x, trace = net.run_chains(x0, y, generator=g, n_steps=self.n_steps, return_trace=True)
            if getattr(sampler, "metropolis", False) and hasattr(sampler, "acceptance_rate_"):
                trace = {**trace, "acceptance_rate": float(sampler.acceptance_rate_)}
            with torch.no_grad():
                energy = net.energy(x, y).float().mean().item()
        finally:
            module.train(was_training)
            for k, v in saved.items():
                setattr(sampler, k, v)
        trace = {**trace, "final_energy": energy}
        return x.detach(), trace

    def _window_mean(self, net, key, since):
        rows = [row for epoch in net.history for row in epoch["batches"]][since:]
        values = [row[key] for row in rows if key in row and isinstance(row[key], (int, float))]
        return float(np.mean(values)) if values else math.nan

    def snapshot(self, net):
        """Take one snapshot now: samples, diagnostics and (with ``folder``) a PNG.

        Parameters
        ----------
        net : EBMNet
            The engine.

        Returns
        -------
        record : dict
            The entry appended to ``records_``.
        """
        import time

        begin = time.perf_counter()
        n = _n_updates(net)
        since = getattr(self, "_last_", 0)
        x, trace = self.draw(net)
        samples = x.cpu().float().numpy()
        self.grids_.append(samples)
        self.updates_.append(n)
        record = {
            "update": n,
            "energy_data": self._window_mean(net, "energy_data", since),
            "energy_samples": self._window_mean(net, "energy_samples", since),
            "energy_monitor": trace["final_energy"],
            "langevin_grad_norm": float(np.mean(trace["grad_norm"])) if trace["grad_norm"] else math.nan,
            "grad_norm": float(np.mean(self._grad_norms_)) if self._grad_norms_ else math.nan,
            "acceptance": trace.get("acceptance_rate", math.nan),
            "path": None,
        }
        record["ess"], record["rhat"] = _energy_convergence(trace.get("chain_energy"))
        self._grad_norms_ = []
        self._last_ = n
        if self.folder is not None:
            record["path"] = self._write_png(net, samples, n)
            if record["path"] is not None:
                self.paths_.append(record["path"])
        record["seconds"] = time.perf_counter() - begin
        self.records_.append(record)
        return record

    # -------------------------------------------------------------- images
    def _image_shape(self, net):
        if self.image_shape is not None:
            return check_image_shape(self.image_shape)
        shape = tuple(net.feature_shape)
        return shape if len(shape) == 3 else None

    def _range(self, net):
        if self.value_range is not None:
            return tuple(float(v) for v in self.value_range)
        source = getattr(net.chain_init_, "source", None)
        if getattr(source, "kind", None) == "uniform":
            return float(source.low), float(source.high)
        return None

    def _write_png(self, net, samples, n):
        from matplotlib.figure import Figure

        path = os.path.join(os.fspath(self.folder), f"{self.prefix}_{n:06d}.png")
        shape = self._image_shape(net)
        flat = samples.reshape(len(samples), -1)
        fig = Figure(figsize=(4, 4))
        ax = fig.subplots()
        if shape is not None and len(shape) == 3 and int(np.prod(shape)) == flat.shape[1] and shape[0] in (1, 3):
            images = flat.reshape(len(flat), *shape).astype(np.float64)
            mosaic = image_mosaic(images, int(math.ceil(math.sqrt(len(images)))), 1, self._range(net))
            if mosaic.shape[2] == 1:
                ax.imshow(mosaic[:, :, 0], cmap=self.cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
            else:
                ax.imshow(mosaic, interpolation="nearest")
            ax.set_axis_off()
            ax.set_title(f"update {n}")
        elif flat.shape[1] == 2:
            ax.scatter(flat[:, 0], flat[:, 1], s=4)
            ax.set_xlabel("x1")
            ax.set_ylabel("x2")
            ax.set_title(f"samples, update {n}")
        else:
            if not self._warned_:
                warnings.warn(
                    f"SampleMonitor cannot draw {flat.shape[1]} flat features as a picture: pass image_shape. "
                    "Samples and diagnostics are still recorded.",
                    UserWarning,
                    stacklevel=2,
                )
                self._warned_ = True
            return None
        fig.savefig(path, dpi=100, bbox_inches="tight")
        return path

    def save_evolution(self, path, *, n_cols=None, **kwargs):
        """Write every snapshot's samples as one image, one row per snapshot.

        .. deprecated:: 0.3
            Use :func:`skebm.plotting.save_sample_evolution` (the monitor
            records, :mod:`skebm.plotting` draws); this method will be
            removed in 0.5.

        Parameters
        ----------
        path : str or path-like
            PNG file to write.
        n_cols : int, default=None
            Samples shown per row; ``None`` shows ``min(n_samples, 16)``.
        **kwargs
            Passed to :func:`skebm.plotting.plot_sample_evolution`.

        Returns
        -------
        path : str

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before any snapshot (no estimator was fitted with the monitor).
        """
        warnings.warn(
            "SampleMonitor.save_evolution is deprecated in 0.3 and will be removed in 0.5; use "
            "skebm.plotting.save_sample_evolution(monitor, path).",
            FutureWarning,
            stacklevel=2,
        )
        from ..plotting import save_sample_evolution  # deprecated path: the only import of plotting, until 0.5

        return save_sample_evolution(self, path, n_cols=n_cols, **kwargs)
