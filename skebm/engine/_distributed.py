"""Data-parallel training of the skebm engines: several processes, one model.

An estimator given ``accelerator=Accelerator()`` and launched on ``W``
processes (``accelerate launch`` or ``torchrun``) trains one model on all of
them: every update, each process draws its share of the batch and runs its
share of the chains, and the gradients are averaged over the processes.

Why skorch's ``AccelerateMixin`` (and, under it, torch's DDP)
-------------------------------------------------------------
The user-facing form is an ``accelerate.Accelerator``: it initialises the
process group for any launcher (``accelerate launch``, ``torchrun``, SLURM,
MPI) and backend (gloo on CPU, nccl on GPU, several nodes), places each
process on its device, and wraps the network in
:class:`~torch.nn.parallel.DistributedDataParallel`, whose bucketed
all-reduce of the gradients overlaps the backward pass. skorch's
:class:`~skorch.hf.AccelerateMixin` connects it to a skorch net (the
wrapping at initialisation, unwrapping at the end of training, a barrier
before saving, saving on the main process). A hand-written
``torchrun`` + DDP path would repeat all of that; what is left here is only
what is specific to EBMs.

What is EBM-specific, and where it is handled
---------------------------------------------
- **Per-process chain state.** Only the network (``module_``) and the
  optimiser are prepared. The chain bank (``chain_init_``), the random
  generators (``rng_``) and the sampler stay each process's own: DDP would
  broadcast rank 0's bank to every process at wrapping and ``accelerate``
  would wrap modules without weights. Each process's chain generator is
  seeded from ``(seed, rank)`` (rank 0 keeps the seed of a one-process fit),
  the batch-order generator from ``seed`` alone, so every process draws the
  same global batch and takes its slice.
- **Chains call the bare network.** A DDP forward expects a backward pass
  into the weights; a Langevin step takes a gradient in the inputs only
  (``torch.autograd.grad``), after which the next DDP forward fails or
  reduces stale gradients (torch issues 47562, 43259). The engine's
  :meth:`~skebm.engine.EBMNet.energy`, ``run_chains`` and ``logits`` call
  :meth:`~skebm.engine.EBMNet.bare_module`; only the loss of a training
  step calls the DDP wrapper (two forward passes, data and negatives, then
  one backward: DDP reduces each weight's gradient once, when it is
  complete).
- **The NG-EBM double-backward term.** The approximate-mass term is a
  gradient in the inputs with ``create_graph=True`` of the wrapped
  forward's output, which runs no weight hook; the one ``loss.backward()``
  after it reaches every weight once, so DDP averages the full gradient,
  second-order part included (checked against a hand all-reduce in
  ``tests/test_distributed.py``). Terms that are batch statistics (the
  energy variance) are statistics of each process's share, as batch norm
  statistics are under DDP.
- **The batch.** ``batch_size`` stays the number of data samples (and
  chains) of one update, all processes together: each process takes
  ``batch_size / W`` of them (``batch_size`` must be divisible by ``W``).
  So a fit means the same with any number of processes, and ``lr`` needs
  no rescaling. ``buffer_size`` is per process: each process keeps a bank
  of ``buffer_size`` chains.
- **One history, every process.** skorch's
  :class:`~skorch.history.DistributedHistory` records one batch row per
  process (``W`` rows per update, which would break the update counting
  that ``max_iter``, checkpoints and snapshots rely on) and syncs through a
  ``TCPStore`` with a JSON round trip per value. Here, after each update,
  the numeric entries of the update's one row (the loss, the energies of
  data and samples, acceptance rates, ...) are all-reduced in one
  collective of a few numbers: means, and the summed batch size. Every
  process then holds the same history, so everything that reads it decides
  the same on every process: :class:`~skebm.engine.DivergenceGuard` rolls
  back (each process to its own snapshot of the same update, weights and
  optimiser equal on all) or raises on all processes together, and the
  step-size adaptation of :class:`~skebm.EBMDensity` stays in step.
- **Checkpoints.** :meth:`save_params` writes the shared state (weights,
  optimiser, history) on the main process only, and rank ``r > 0`` writes
  only its own chain state, beside the main files with a ``.rank{r}``
  suffix (``chain_init.rank1.pt``); :meth:`load_params` reads the shared
  files on every process and each process's own chain state, so a resumed
  fit continues every process's chains. (Loading rank 0's bank into every
  process would make all their chains identical.)
- **The fitted estimator.** Training ends with the network unwrapped;
  every process holds the same weights and its own chain bank: the
  estimator on rank 0 holds rank 0's bank. Save it on the main process
  (``if accelerator.is_main_process: skebm.save(...)``).

Determinism: the same ``random_state`` and number of processes give the
same result; one process with an accelerator gives the plain fit bit for
bit. Different numbers of processes give different (equally valid) chains.
"""

import contextlib
import os

import torch
from skorch import NeuralNet
from skorch.hf import AccelerateMixin

from skorch.dataset import get_len
from skorch.utils import multi_indexing

from ._ml import EBMNet
from ._ngebm import NGEBMNet

__all__ = ["DataParallelMixin", "DataParallelEBMNet", "DataParallelNGEBMNet", "check_accelerator", "data_parallel"]

#: save_params / load_params arguments of the state all processes share (written by the main process)
_SHARED_FILES = ("f_params", "f_module", "f_optimizer", "f_criterion", "f_history", "f_pickle")


def check_accelerator(accelerator, batch_size, device="auto"):
    """Validate an ``accelerate.Accelerator`` for an EBM fit; return the device to train on.

    Parameters
    ----------
    accelerator : accelerate.Accelerator
    batch_size : int
        Data samples of one update, all processes together.
    device : str, default="auto"
        The estimator's ``device``: ``"auto"``, or a device of the
        accelerator's type.

    Returns
    -------
    device : str
        The accelerator's device: ``"cpu"``, ``"cuda"`` (the current device, which accelerate sets to
        ``cuda:local_rank``) or another ``"cuda:N"``.
    """
    mixed = str(getattr(accelerator, "mixed_precision", "no"))
    if mixed not in ("no", "None"):
        raise ValueError(
            f"An Accelerator with mixed_precision={mixed!r} is not supported: skebm runs its own autocast "
            "(precision='bf16'), over the Langevin chains too; use Accelerator() with mixed_precision='no'."
        )
    steps = int(getattr(accelerator, "gradient_accumulation_steps", 1))
    if steps != 1:
        raise ValueError(
            f"An Accelerator with gradient_accumulation_steps={steps} is not supported: every batch is one EBM update "
            "(its chains use the current weights); raise batch_size or the number of processes instead."
        )
    world = int(accelerator.num_processes)
    if batch_size % world:
        raise ValueError(
            f"batch_size={batch_size} is not divisible by the {world} processes: each process takes batch_size / "
            f"{world} samples of every update; pick a multiple of {world}."
        )
    acc_device = torch.device(accelerator.device)
    if device != "auto" and torch.device(device).type != acc_device.type:
        raise ValueError(
            f"device={device!r} differs from the accelerator's device {str(acc_device)!r}: with an accelerator, "
            "leave device='auto' (the accelerator places each process)."
        )
    if acc_device.type == "cpu":
        return "cpu"
    if acc_device.type == "cuda" and acc_device.index in (None, torch.cuda.current_device()):
        return "cuda"  # the current device (accelerate sets it to cuda:local_rank): the string a plain fit uses
    return str(acc_device)


def _rank_file(f, rank):
    """``chain_init.pt`` -> ``chain_init.rank1.pt`` (rank 0 and file objects: unchanged)."""
    if rank == 0 or not isinstance(f, (str, os.PathLike)):
        return f
    root, ext = os.path.splitext(os.fspath(f))
    return f"{root}.rank{rank}{ext}"


class _RankBatches:
    """This process's slice of every batch of ``loader``; all processes iterate the same batches.

    The engine's own training iterator runs unchanged on every process (its
    batch order comes from a generator seeded alike on all of them), and
    each process keeps rows ``[r * n / W, (r + 1) * n / W)`` of each batch.

    Parameters
    ----------
    loader : iterable of batches
    rank, world : int
    """

    def __init__(self, loader, rank, world):
        self.loader, self.rank, self.world = loader, rank, world

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            n = get_len(batch[0] if isinstance(batch, (tuple, list)) else batch)
            bounds = [n * r // self.world for r in range(self.world + 1)]
            yield multi_indexing(batch, slice(bounds[self.rank], bounds[self.rank + 1]))


class DataParallelMixin(AccelerateMixin):
    """Data-parallel training of an EBM engine with ``accelerate`` (see the module docstring).

    Put it before the engine class: ``class Net(DataParallelMixin, EBMNet)``;
    :func:`data_parallel` does it for any engine. Use through an
    estimator's ``accelerator`` parameter.

    Parameters
    ----------
    accelerator : accelerate.Accelerator
        Launched with ``accelerate launch`` or ``torchrun`` for several
        processes; in one process the fit equals the plain engine's.
    device : str
        The accelerator's device (:func:`check_accelerator`): the chains,
        the bank and the generators live on it.
    **kwargs
        The engine's arguments.
    """

    def __init__(self, *args, accelerator, device="cpu", **kwargs):
        kwargs.setdefault("callbacks__print_log__sink", print)  # skorch prints only with verbose; 'auto' always would
        super().__init__(*args, accelerator=accelerator, device=device, **kwargs)

    # ------------------------------------------------------------ processes
    def process_rank(self):
        """Rank of this process (``accelerator.process_index``)."""
        return int(self.accelerator.process_index)

    @property
    def world_size(self):
        """Number of processes (``accelerator.num_processes``)."""
        return int(self.accelerator.num_processes)

    def _validate_params(self):
        # skorch's check wants device=None; ours is the accelerator's device, for the bank and the generators
        super(AccelerateMixin, self)._validate_params()

    def _initialize_accelerator(self):
        """Prepare the network (DDP where distributed) and the optimisers; chain state stays per process."""
        from accelerate.optimizer import AcceleratedOptimizer

        if self._wrapped_with_accelerator:
            return self
        with self._current_init_context("module"):
            self.module_ = self.accelerator.prepare_model(self.module_)
        with self._current_init_context("optimizer"):
            for name in self._optimizers:
                optimizer = getattr(self, name + "_")
                if isinstance(optimizer, torch.optim.Optimizer) and not isinstance(optimizer, AcceleratedOptimizer):
                    setattr(self, name + "_", self.accelerator.prepare_optimizer(optimizer))
        # LR schedules are not prepared: accelerate would step them once per process per update
        self._wrapped_with_accelerator = True
        return self

    # -------------------------------------------------------------- training
    def train_step_single(self, batch, **fit_params):
        # the engine's step (chains on the bare network, the loss through module_), not AccelerateMixin's
        return super(AccelerateMixin, self).train_step_single(batch, **fit_params)

    def evaluation_step(self, batch, training=False):
        return super(AccelerateMixin, self).evaluation_step(batch, training=training)

    def get_iterator(self, dataset, training=False):
        """Training batches: this process's ``1 / W`` of each of the engine's own (global) batches."""
        iterator = super(AccelerateMixin, self).get_iterator(dataset, training=training)
        if not training or self.world_size == 1:
            return iterator
        return _RankBatches(iterator, self.process_rank(), self.world_size)

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        check_accelerator(self.accelerator, self.batch_size)
        self._initialize_accelerator()  # a warm start or partial_fit after an unwrapped fit
        super().on_train_begin(net, X=X, y=y, **kwargs)

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        if training and self.world_size > 1:
            self._reduce_batch_row()
        super().on_batch_end(net, batch=batch, training=training, **kwargs)

    def _reduce_batch_row(self):
        """All-reduce the numbers of the update's history row: means (batch sizes: sums), one collective."""
        row = self.history[-1]["batches"][-1]
        keys = sorted(k for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
        values = torch.tensor([len(keys)] + [float(row[k]) for k in keys], dtype=torch.float64)
        total = self.accelerator.reduce(values.to(self.accelerator.device), reduction="sum").cpu().tolist()
        world = self.world_size
        if round(total[0]) != world * len(keys):
            raise RuntimeError(f"The processes recorded different history entries in one update (this one: {keys}).")
        for key, value in zip(keys, total[1:]):
            self.history.record_batch(key, int(round(value)) if key.endswith("batch_size") else value / world)

    # ----------------------------------------------------------- checkpoints
    @contextlib.contextmanager
    def _bare_module(self):
        """``module_`` is the bare network inside the block (state-dict keys without DDP's ``module.``)."""
        wrapped = self.module_
        self.module_ = self.bare_module()
        try:
            yield
        finally:
            self.module_ = wrapped

    def save_params(self, f_params=None, f_optimizer=None, f_criterion=None, f_history=None, use_safetensors=False,
                    **kwargs):
        """Main process: everything; rank ``r > 0``: only its own chain state, as ``<name>.rank{r}<ext>``."""
        self.accelerator.wait_for_everyone()
        rank = self.process_rank()
        if rank == 0:
            files = {"f_params": f_params, "f_optimizer": f_optimizer, "f_criterion": f_criterion,
                     "f_history": f_history, **kwargs}
        else:
            files = {
                k: _rank_file(f, rank)
                for k, f in kwargs.items()
                if k not in _SHARED_FILES and isinstance(f, (str, os.PathLike))
            }
        if any(f is not None for f in files.values()):
            with self._bare_module():
                NeuralNet.save_params(self, use_safetensors=use_safetensors, **files)
        self.accelerator.wait_for_everyone()

    def load_params(self, f_params=None, f_optimizer=None, f_criterion=None, f_history=None, checkpoint=None,
                    use_safetensors=False, **kwargs):
        """Every process: the shared state, then its own chain state where its ``.rank{r}`` file exists."""
        self.accelerator.wait_for_everyone()
        with self._bare_module():
            NeuralNet.load_params(
                self, f_params=f_params, f_optimizer=f_optimizer, f_criterion=f_criterion, f_history=f_history,
                checkpoint=checkpoint, use_safetensors=use_safetensors, **kwargs
            )
            rank = self.process_rank()
            if rank > 0:
                files = dict(checkpoint.get_formatted_files(self)) if checkpoint is not None else {}
                files.update(kwargs)
                own = {
                    k: _rank_file(f, rank)
                    for k, f in files.items()
                    if k not in _SHARED_FILES and isinstance(f, (str, os.PathLike))
                    and os.path.exists(_rank_file(f, rank))
                }
                if own:
                    NeuralNet.load_params(self, use_safetensors=use_safetensors, **own)


    def __reduce__(self):
        # rebuilt from the engine class it extends, so a variant made by data_parallel() unpickles anywhere
        return _data_parallel_instance, (_engine_class(type(self)),), self.__getstate__()


def _engine_class(cls):
    """The engine class a data-parallel class extends (the first after the mixins in its MRO)."""
    return next(c for c in cls.__mro__ if not issubclass(c, DataParallelMixin) and c is not AccelerateMixin)


def _data_parallel_instance(net_cls):
    """An empty instance of ``data_parallel(net_cls)``, for unpickling (pickle then sets its state)."""
    return object.__new__(data_parallel(net_cls))


class DataParallelEBMNet(DataParallelMixin, EBMNet):
    """:class:`~skebm.engine.EBMNet` trained data-parallel (see :class:`DataParallelMixin`)."""


class DataParallelNGEBMNet(DataParallelMixin, NGEBMNet):
    """:class:`~skebm.engine.NGEBMNet` trained data-parallel (see :class:`DataParallelMixin`)."""


_KNOWN = {EBMNet: DataParallelEBMNet, NGEBMNet: DataParallelNGEBMNet}


def data_parallel(net_cls):
    """The data-parallel variant of the engine class ``net_cls``.

    ``EBMNet`` and ``NGEBMNet`` have named variants; another engine gets
    one made here, named ``DataParallel<Name>``. Every variant pickles as
    its engine class plus the mixin, so it unpickles in any process.

    Parameters
    ----------
    net_cls : type
        A subclass of :class:`~skebm.engine.EBMNet`.

    Returns
    -------
    cls : type
    """
    if issubclass(net_cls, DataParallelMixin):
        return net_cls
    if net_cls not in _KNOWN:
        name = f"DataParallel{net_cls.__name__}"
        cls = type(name, (DataParallelMixin, net_cls), {"__module__": __name__, "__qualname__": name})
        globals()[name] = _KNOWN[net_cls] = cls
    return _KNOWN[net_cls]
