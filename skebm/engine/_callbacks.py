"""skorch callbacks of the skebm engines: divergence recovery, progress, checkpoints."""

import copy
import hashlib
import json
import math
import os
import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from skorch.callbacks import Callback, Checkpoint, LRScheduler

from ._history import check_history, n_updates
from .._validation import POSITIVE, POSITIVE_INT, NONNEG_INT, StrOptions, check_params

__all__ = [
    "TrainingDivergedError", "DivergenceGuard", "ProgressBar", "CosineLearningRate", "TrainingCheckpoint",
    "HeldOutEarlyStopping",
]


class TrainingDivergedError(RuntimeError):
    """Raised when training diverged and could not be recovered."""


def _n_updates(net):
    return n_updates(net.history)


class DivergenceGuard(Callback):
    """Detect a diverging fit and recover from it (or stop with a clear error).

    EBM training with MCMC negatives can diverge: the loss becomes NaN, or
    the energies of data and samples drift apart without bound (JEM's
    known failure). After every update this callback checks the loss and
    the mean energies. The values an update records are computed before
    its parameter step, so they also show whether the previous step broke
    the model; the model the last update leaves is checked at the end of
    the fit (the energies of the first training rows and the parameters
    must be finite, the energies within ``max_abs_energy``). So every
    update, the last included, is checked the same way.

    It keeps a snapshot of the last good state (every registered module:
    the network, the chain bank and the random generators; the
    optimiser): every ``snapshot_every`` updates the state is copied
    before the next update, and becomes the last good state once that
    update's values show it is good (a step that broke the model is never
    kept as "good").

    With ``on_divergence="recover"`` a diverged update rolls the engine
    back to that snapshot, halves the learning rate (and the Langevin step
    size, where chains run), records ``"recovered": True`` in the batch
    history, warns with a :class:`~sklearn.exceptions.ConvergenceWarning`
    and goes on. It raises :class:`TrainingDivergedError`, with the advice
    of the engine (``net.divergence_hint()``), at once with
    ``on_divergence="raise"``; after ``max_recoveries`` recoveries; and at
    the end of a fit that kept none of its updates (every one was rolled
    back, so the model is the one the fit started from), whatever the
    number of updates. The estimators then leave themselves as they were
    before ``fit``; a fit never returns a model that diverged.

    Parameters
    ----------
    on_divergence : {"recover", "raise"}, default="recover"
        What a diverged update does.
    max_recoveries : int, default=5
        Recoveries allowed in one fit before raising.
    max_abs_energy : float, default=1e6
        Largest tolerated absolute mean energy.
    snapshot_every : int, default=10
        Updates between snapshots of the last good state.

    Attributes
    ----------
    n_recoveries_ : int
        Recoveries made in the current fit.
    """

    _parameter_constraints = {
        "on_divergence": [StrOptions({"recover", "raise"})],
        "max_recoveries": [NONNEG_INT],
        "max_abs_energy": [POSITIVE],
        "snapshot_every": [POSITIVE_INT],
    }

    def __init__(self, on_divergence="recover", max_recoveries=5, max_abs_energy=1e6, snapshot_every=10):
        self.on_divergence = on_divergence
        self.max_recoveries = max_recoveries
        self.max_abs_energy = max_abs_energy
        self.snapshot_every = snapshot_every

    def initialize(self):
        check_params(self._parameter_constraints, self.get_params(), type(self).__name__)
        self.n_recoveries_ = 0
        self._snapshot = self._candidate = None
        return self

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.n_recoveries_ = 0
        # updates of this fit that the model still holds: from _start (the fit's first) to _kept
        self._start = self._kept = _n_updates(net)
        self._snapshot, self._snapshot_at = self._state(net), self._start
        self._candidate = None

    @staticmethod
    def _state(net):
        modules = {name: copy.deepcopy(getattr(net, name + "_").state_dict()) for name in net._modules}
        optimizers = {name: copy.deepcopy(getattr(net, name + "_").state_dict()) for name in net._optimizers}
        return modules, optimizers

    def _restore(self, net):
        modules, optimizers = self._snapshot
        for name, state in modules.items():
            getattr(net, name + "_").load_state_dict(state)
        for name, state in optimizers.items():
            getattr(net, name + "_").load_state_dict(state)
        self._kept = self._snapshot_at

    @staticmethod
    def _problem(net, max_abs_energy):
        row = net.history[-1]["batches"][-1]
        values = {k: row[k] for k in ("train_loss", "energy_data", "energy_samples") if k in row}
        return _bad_values(values, max_abs_energy)

    @staticmethod
    def _final_problem(net, X, max_abs_energy):
        """What is wrong with the model the last update left: its parameters, its energies of ``X``'s first rows."""
        module = net.bare_module()
        if not all(bool(torch.isfinite(p).all()) for p in module.parameters() if p.is_floating_point()):
            return {"parameters": "not finite"}
        if not isinstance(X, (np.ndarray, torch.Tensor)) or len(X) == 0:
            return {}
        # the first rows of the training data: the same on every process of a distributed fit
        x = torch.as_tensor(np.asarray(X[: net.batch_size]) if isinstance(X, np.ndarray) else X[: net.batch_size])
        was_training = module.training
        module.train(False)
        try:
            with torch.no_grad():
                energy = net.energy(x.to(net.device).float()).float().mean().item()
        finally:
            module.train(was_training)
        return _bad_values({"energy_data (final model)": energy}, max_abs_energy)

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        # the state before this update's step: the last good state once this update's values show it is good
        n_iter = _n_updates(net)
        if training and n_iter % self.snapshot_every == 0 and n_iter != self._snapshot_at:
            self._candidate = (self._state(net), n_iter)

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        if not training:
            return
        problem = self._problem(net, self.max_abs_energy)
        n_iter = _n_updates(net)
        candidate, self._candidate = self._candidate, None
        if problem:
            self._recover(net, n_iter, problem)
            return
        self._kept = n_iter
        if candidate is not None:
            self._snapshot, self._snapshot_at = candidate

    def on_train_end(self, net, X=None, y=None, **kwargs):
        if self._snapshot is None:  # the fit never began
            return
        n_iter = _n_updates(net)
        if n_iter > self._start and self._kept == n_iter:  # the last update's step is checked here
            problem = self._final_problem(net, X, self.max_abs_energy)
            if problem:
                self._recover(net, n_iter, problem)
        if self.n_recoveries_ and self._kept == self._start:
            raise TrainingDivergedError(
                f"Training diverged: none of the {n_iter - self._start} updates of this fit could be kept (every one "
                f"was rolled back, {self.n_recoveries_} recoveries), so the model is the one the fit started from. "
                f"{net.divergence_hint()}"
            )

    def _recover(self, net, n_iter, problem):
        """Roll back to the last good state and lower the rates, or raise when that is not allowed."""
        if self.on_divergence == "raise" or self.n_recoveries_ >= self.max_recoveries:
            tried = "" if self.on_divergence == "raise" else f" after {self.n_recoveries_} recoveries"
            raise TrainingDivergedError(
                f"Training diverged at update {n_iter}{tried}: {problem}. {net.divergence_hint()}"
            )
        # the snapshot holds the optimiser's learning rate of its time: keep the current (already lowered) one
        def groups():  # load_state_dict replaces the group dicts: ask again after it
            return [g for name in net._optimizers for g in getattr(net, name + "_").param_groups]

        rates = [(g["lr"], g.get("initial_lr")) for g in groups()]
        self._restore(net)
        for group, (lr, initial) in zip(groups(), rates):
            group["lr"] = lr
            if initial is not None:
                group["initial_lr"] = initial
        self.n_recoveries_ += 1
        _scale_learning_rate(net, 0.5)
        sampler = getattr(net, "sampler_", None)
        if sampler is not None and net.runs_chains:
            sampler.step_size *= 0.5
            net.history.record_batch("step_size", float(sampler.step_size))  # what a resume restores
        net.history.record_batch("recovered", True)
        warnings.warn(
            f"Training diverged at update {n_iter} ({problem}); rolled back to the last good state and halved the "
            f"learning rate{' and the Langevin step size' if net.runs_chains else ''} "
            f"(recovery {self.n_recoveries_} of at most {self.max_recoveries}).",
            ConvergenceWarning,
            stacklevel=2,
        )


def _bad_values(values, max_abs_energy):
    """The entries of ``values`` that are not finite, or (energies) larger in size than ``max_abs_energy``."""
    bad = {k: v for k, v in values.items() if not math.isfinite(v)}
    big = {k: v for k, v in values.items() if k != "train_loss" and abs(v) > max_abs_energy}
    return {**bad, **big}


def _scale_learning_rate(net, factor):
    """Scale the learning rate of every optimiser and LR schedule of ``net`` by ``factor``."""
    for name in net._optimizers:
        for group in getattr(net, name + "_").param_groups:
            group["lr"] *= factor
            if "initial_lr" in group:
                group["initial_lr"] *= factor
    for _, callback in net.callbacks_:
        scheduler = getattr(callback, "lr_scheduler_", None) if isinstance(callback, LRScheduler) else None
        if scheduler is not None and hasattr(scheduler, "base_lrs"):
            scheduler.base_lrs = [lr * factor for lr in scheduler.base_lrs]


class ProgressBar(Callback):
    """A tqdm bar over all parameter updates, showing loss, energies and acceptance.

    Parameters
    ----------
    total : int, default=None
        Number of updates the bar counts to.
    desc : str, default=None
        Label of the bar (the estimator's name); ``None`` uses the net's
        class name.
    keys : tuple of str, default=("train_loss", "energy_data", "energy_samples", "acceptance")
        Batch-history entries shown in the bar's postfix (those present).
    """

    def __init__(self, total=None, desc=None, keys=("train_loss", "energy_data", "energy_samples", "acceptance")):
        self.total = total
        self.desc = desc
        self.keys = keys

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        from tqdm.auto import tqdm

        done = _n_updates(net)
        self.bar_ = tqdm(total=self.total, initial=done, desc=self.desc or type(net).__name__, leave=True)

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        if not training:
            return
        row = net.history[-1]["batches"][-1]
        short = {"train_loss": "loss", "energy_data": "E_data", "energy_samples": "E_samples", "acceptance": "acc"}
        postfix = {short.get(k, k): f"{row[k]:.3g}" for k in self.keys if k in row}
        self.bar_.set_postfix(postfix, refresh=False)
        self.bar_.update(1)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        self.bar_.close()


class CosineLearningRate(Callback):
    """The learning rate on a cosine over the updates of a fit: ``lr * (1 + cos(pi t / n)) / 2`` at its update ``t``.

    The rate falls from the optimiser's ``initial_lr`` (its ``lr`` when the
    first update starts) to zero at the fit's last update (the engine's
    ``max_updates``), and is set back to ``initial_lr`` when the fit ends,
    so a warm start begins a new cosine from it. It is computed from the
    number of updates in the history, not kept: a fit resumed from a
    checkpoint continues it exactly (skorch's
    :class:`~skorch.callbacks.LRScheduler` keeps the step count in the
    scheduler object, which a checkpoint does not save).
    :class:`DivergenceGuard` halves ``initial_lr`` with ``lr``, so a
    recovery is kept.

    Parameters
    ----------
    n_updates : int, default=None
        Updates of this fit: the cosine spans the last ``n_updates`` before
        ``max_updates`` (a warm start's); ``None``: all of them.
    """

    def __init__(self, n_updates=None):
        self.n_updates = n_updates

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        if not training or not net.max_updates:
            return
        total = net.max_updates
        length = total if self.n_updates is None else min(self.n_updates, total)
        t = _n_updates(net) - (total - length)  # the batch row of this update has no loss yet
        factor = 0.5 * (1.0 + math.cos(math.pi * min(max(t, 0), length) / length))
        for group in net.optimizer_.param_groups:
            group.setdefault("initial_lr", group["lr"])
            group["lr"] = group["initial_lr"] * factor

    def on_train_end(self, net, **kwargs):
        for group in net.optimizer_.param_groups:
            if "initial_lr" in group:
                group["lr"] = group["initial_lr"]


class TrainingCheckpoint(Checkpoint):
    """Checkpoint a long fit every few epochs and resume it where it stopped.

    Every ``every`` epochs the network weights, the optimiser, every other
    registered module of the engine (the chain bank ``chain_init``, the
    random generators ``rng``) and the history are written to ``dirname``
    (skorch's :class:`~skorch.callbacks.Checkpoint` does the writing),
    then ``checkpoint.json``, which records what the checkpoint belongs
    to: the engine and loss (which estimator built it), everything that
    shapes the model (network class and tensor shapes, chain
    initialisation, sampler, optimiser, learning rate, batch size,
    precision, seed) and a fingerprint of the training data (SHA-256 of
    its shape, dtype and bytes, and of ``y``). At the start of a fit, a
    checkpoint found in ``dirname`` is loaded first (as skorch's
    :class:`~skorch.callbacks.LoadInitState` does), so a fit interrupted
    by Ctrl-C, a crash or a time limit continues where it stopped when the
    same fit is run again: with the same data and ``random_state`` the
    result equals that of an uninterrupted fit. ``max_iter``, ``verbose``,
    ``device`` and the number of threads may change between the runs.

    A checkpoint that belongs to another fit (other data, parameters or
    estimator), one without its record, and a corrupt or foreign one
    (unreadable files, files that are not regular files, a history that
    is not a training history) are
    never resumed: the fit raises ``ValueError`` naming the folder and
    what differs, before training. Use another ``dirname``, delete the
    folder, or pass ``resume=False`` to overwrite it. Files are loaded
    with ``torch.load(weights_only=True)``: they cannot run code. A warm
    start (``warm_start=True``) whose model has made at least as many
    updates as the checkpoint records does not read it (the checkpoint is
    its own past) and replaces it at its next save.

    ``dirname`` naming an existing file (not a folder) raises
    ``ValueError`` before training, and a checkpoint that cannot be
    written (no space, no permission) raises ``OSError`` naming the file:
    a fit never runs on silently without its checkpoints (skorch's own
    ``Checkpoint`` only prints such failures with ``verbose``). The
    previous checkpoint stays in the folder.

    Parameters
    ----------
    dirname : str or path-like
        Folder of the checkpoint files (created if needed).
    every : int, default=1
        Epochs between checkpoints.
    resume : bool, default=True
        Load a checkpoint found in ``dirname`` at the start of training.

    Examples
    --------
    >>> import tempfile
    >>> from skebm import EBMGenerator
    >>> from skebm.datasets import make_toy_2d
    >>> from skebm.engine import TrainingCheckpoint
    >>> folder = tempfile.mkdtemp()
    >>> gen = EBMGenerator(max_iter=10, callbacks=[TrainingCheckpoint(folder)], random_state=0)
    >>> gen.fit(make_toy_2d("moons", 200, random_state=0)).n_iter_
    10
    """

    #: The file recording what the checkpoint belongs to (written last, atomically).
    record_file = "checkpoint.json"

    def __init__(self, dirname, every=1, resume=True):
        check_params({"every": [POSITIVE_INT]}, {"every": every}, type(self).__name__)
        self.every = every
        self.resume = resume
        super().__init__(monitor=self._due, f_criterion=None, dirname=str(dirname), event_name=None)

    def _due(self, net):
        return len(net.history) % self.every == 0

    def initialize(self):
        if os.path.exists(self.dirname) and not os.path.isdir(self.dirname):
            raise ValueError(
                f"TrainingCheckpoint: dirname={self.dirname!r} is an existing file, not a folder; name a folder."
            )
        return super().initialize()

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.initialize()  # the folder may have changed since the net was initialised
        # every registered module of the engine is saved (the network goes to f_params)
        for name in net._modules:
            if name != "module":
                setattr(self, f"f_{name}", f"{name}.pt")
        self.record_ = _checkpoint_record(net, X, y)
        if not self.resume or not os.path.exists(self.f_history_):
            return
        self._check_regular_files()
        owner = self._read_record()
        if n_updates(net.history) >= self._found_updates:
            return  # a warm start already past the checkpoint: nothing to resume; the next save replaces it
        self._check_owner(owner)
        try:
            with open(self.f_history_, "rb") as f:
                history = json.load(f)
        except Exception as exc:  # noqa: BLE001 - json's errors (RecursionError too)
            raise ValueError(
                f"TrainingCheckpoint: {self.dirname!r} holds a corrupt checkpoint: its history.json cannot be read "
                f"({type(exc).__name__})."
            ) from None
        try:
            check_history(history, "its history.json")
        except ValueError as exc:
            raise ValueError(f"TrainingCheckpoint: {self.dirname!r} holds a corrupt checkpoint: {exc}") from None
        if n_updates(history) != self._found_updates:
            raise ValueError(
                f"TrainingCheckpoint: {self.dirname!r} holds an incomplete checkpoint (its history records "
                f"{n_updates(history)} updates, its record {self._found_updates}); delete the folder or choose "
                "another dirname."
            )
        try:
            net.load_params(checkpoint=self)  # torch.load(weights_only=True): no code runs
            net.restore_from_history()
        except Exception as exc:  # noqa: BLE001 - torch.load's errors, whose advice (weights_only=False) does not apply
            raise ValueError(
                f"TrainingCheckpoint: {self.dirname!r} holds a corrupt or foreign checkpoint ({type(exc).__name__} "
                "reading its files); delete the folder or choose another dirname."
            ) from None

    def _check_regular_files(self):
        """ValueError if a file the resume would read is something else (a FIFO would block, a device never end)."""
        names = [self.record_file, *(f for f in self._f_kwargs().values() if isinstance(f, str))]  # history too
        for name in names:
            path = os.path.join(self.dirname, self.fn_prefix + name)
            if os.path.lexists(path) and not os.path.isfile(path):
                raise ValueError(
                    f"TrainingCheckpoint: {self.dirname!r} holds {name!r}, which is not a regular file; delete the "
                    "folder or choose another dirname."
                )

    def _read_record(self):
        path = os.path.join(self.dirname, self.record_file)
        try:
            with open(path, "rb") as f:
                text = f.read(_MAX_RECORD_BYTES + 1)
            record = json.loads(text) if len(text) <= _MAX_RECORD_BYTES else None
        except FileNotFoundError:
            raise ValueError(
                f"TrainingCheckpoint: {self.dirname!r} holds a checkpoint without {self.record_file} (another "
                "library's, or an older skebm's): it cannot tell which fit it belongs to; delete the folder or choose "
                "another dirname."
            ) from None
        except (ValueError, OSError, RecursionError):
            record = None
        if not (isinstance(record, dict) and set(record) == {"owner", "n_updates"} and isinstance(record["owner"], dict)
                and isinstance(record["n_updates"], int)):
            raise ValueError(f"TrainingCheckpoint: {self.dirname!r} holds a corrupt {self.record_file}.")
        self._found_updates = record["n_updates"]
        return record["owner"]

    def _check_owner(self, owner):
        mine = self.record_
        differ = sorted(k for k in set(mine) | set(owner) if mine.get(k) != owner.get(k))
        if differ:
            raise ValueError(
                f"TrainingCheckpoint: {self.dirname!r} holds the checkpoint of another fit (it differs in: "
                f"{', '.join(map(str, differ[:8]))}); it is not resumed. Use another dirname, delete the folder, or "
                "pass resume=False to overwrite it."
            )

    def _save_params(self, f, net, f_name, log_name):
        try:
            net.save_params(**{f_name: f, "use_safetensors": self.use_safetensors})
        except Exception as exc:  # skorch's own Checkpoint only prints this, and only with verbose
            raise OSError(f"TrainingCheckpoint could not write the {log_name} to {f!r}: {exc}") from exc

    def save_model(self, net):
        super().save_model(net)
        if getattr(net, "process_rank", lambda: 0)() != 0:  # distributed: the main process records the owner
            return
        path = os.path.join(self.dirname, self.record_file)
        record = {"owner": self.record_, "n_updates": n_updates(net.history)}
        try:
            with open(path + ".tmp", "w", encoding="utf-8") as f:
                json.dump(record, f)
            os.replace(path + ".tmp", path)  # written last and whole: a crash leaves the previous record
        except OSError as exc:
            raise OSError(f"TrainingCheckpoint could not write {path!r}: {exc}") from exc


#: Largest checkpoint record read (a real one is a few kB).
_MAX_RECORD_BYTES = 1_000_000


def _data_fingerprint(data):
    """SHA-256 of an array's shape, dtype and bytes (``None`` for no data); data of another kind by its type."""
    if data is None:
        return None
    try:
        array = np.ascontiguousarray(data.detach().cpu().numpy() if hasattr(data, "detach") else np.asarray(data))
    except (TypeError, ValueError, RuntimeError):
        return type(data).__name__
    if array.dtype == object:
        return type(data).__name__
    digest = hashlib.sha256(f"{array.shape}{array.dtype.str}".encode())
    digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def _checkpoint_record(net, X, y):
    """What a checkpoint of ``net`` fitted on ``(X, y)`` belongs to, as comparable strings.

    The engine and loss (which estimator), what shapes the model and its
    training (network class and tensor shapes, chain initialisation,
    sampler, optimiser and learning rate, batch size, seed, ...) and a
    fingerprint of the data. Not recorded: what may change between an
    interrupted run and its resumption (``max_updates``, callbacks,
    ``verbose``, the device, threads).
    """
    params = net.get_params(deep=False)
    ignored = {"module", "callbacks", "verbose", "device", "max_updates", "warm_start", "iterator_train",
               "iterator_valid", "dataset", "train_split", "accelerator", "seed", "max_epochs"}
    shaping = {
        k: repr(v) for k, v in sorted(params.items())
        if k not in ignored and not k.startswith(("_", "callbacks__", "iterator_", "dataset__"))
    }
    module, chain = net.bare_module(), getattr(net, "chain_init_", None)  # None: a chain-free engine
    return {
        **shaping,
        "engine": type(net).__name__,
        "network": f"{type(module).__name__} {[(k, tuple(v.shape)) for k, v in module.state_dict().items()]}",
        "chain_init": "none" if chain is None else (
            f"{type(chain).__name__} {({k: getattr(chain, k) for k in chain._params})!r} "
            f"{_shapes(chain.state_dict())}"),
        "data X": _data_fingerprint(X),
        "data y": _data_fingerprint(y),
    }


def _shapes(state):
    return [(k, tuple(v.shape)) for k, v in state.items() if hasattr(v, "shape")]


class HeldOutEarlyStopping(Callback):
    """Stop training when the held-out loss stops improving, and keep the best state.

    After every epoch the engine's ``valid_loss`` (recorded by its
    ``validation_step``) is compared with the best so far; an improvement
    copies the network into the engine's ``best_module_``. After
    ``patience`` epochs without one, training stops; at the end the best
    state is put back into ``module_``. Unlike skorch's
    :class:`~skorch.callbacks.EarlyStopping` (written by hand here for this
    reason only), the best state is a registered module of the engine and
    the counters follow from the history, so a fit resumed from a
    :class:`TrainingCheckpoint` stops where the uninterrupted fit does.

    Parameters
    ----------
    patience : int, default=10
        Epochs without improvement before stopping.
    """

    def __init__(self, patience=10):
        self.patience = patience

    def initialize(self):
        check_params({"patience": [POSITIVE_INT]}, {"patience": self.patience}, type(self).__name__)
        return self

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        # the counters follow from the history: the same after a resumed checkpoint or a warm start
        self.best_, self.misses_ = math.inf, 0
        net.stopped_early_ = False
        for epoch in net.history:
            self._count(epoch.get("valid_loss", math.inf))

    def _count(self, loss):
        if loss < self.best_:
            self.best_, self.misses_ = loss, 0
            return True
        self.misses_ += 1
        return False

    def on_epoch_end(self, net, **kwargs):
        loss = net.history[-1].get("valid_loss", math.inf)
        improved = self._count(loss)
        net.history.record("valid_loss_best", bool(improved))
        if improved:  # the network itself: in a distributed fit module_ is its data-parallel wrapper
            net.best_module_.load_state_dict(net.bare_module().state_dict())
        if self.misses_ >= self.patience:
            net.stopped_early_ = True
            raise KeyboardInterrupt  # skorch's way to end fit_loop; the engine knows it was not Ctrl-C

    def on_train_end(self, net, X=None, y=None, **kwargs):
        if math.isfinite(self.best_):
            net.bare_module().load_state_dict(net.best_module_.state_dict())
