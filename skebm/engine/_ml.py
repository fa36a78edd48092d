"""The skorch engine of maximum-likelihood EBM training with MCMC negatives."""

import copy
import math

import torch
from skorch import NeuralNet
from skorch.dataset import unpack_data
from skorch.utils import to_tensor
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import RandomSampler

from .._threads import thread_limit
from ..mcmc import autocast_context
from ..nn import output_to_energy
from ._callbacks import DivergenceGuard
from ._losses import MaxLikelihoodLoss
from ._history import n_updates
from .._random import RandomGenerators, derive_seed, seed_from

__all__ = ["EBMNet"]


class EBMNet(NeuralNet):
    """A skorch ``NeuralNet`` that trains an energy with MCMC negatives.

    The engine owns every piece of fitted MCMC state, created in
    :meth:`~skorch.NeuralNet.initialize` as registered modules (so skorch moves them to the
    device, pickles them with CUDA-safe storage, and its
    :class:`~skorch.callbacks.Checkpoint` saves them):

    - ``module_``: the energy network;
    - ``chain_init_``: the chain-initialisation strategy with its banks
      (a copy of ``chain_init``, set up on ``source``);
    - ``rng_``: the random generators of every draw (:class:`RandomGenerators`);
    - ``sampler_``: a copy of ``sampler`` (the step size may adapt);
    - ``average_`` (when ``average`` is given): an exponential moving
      average of the network's weights (:class:`torch.optim.swa_utils.AveragedModel`),
      updated after every parameter step.

    Its ``energy``, ``run_chains`` and ``draw_negatives`` methods are the
    one path from a batch to energies and chains, with one temperature and
    one precision. The training chains and the loss use the network being
    trained; every other call (sampling, scores, purification after or
    during the fit) uses :meth:`evaluation_module`: the weight average
    when there is one. One training step (:meth:`train_step_single`) asks the
    chain initialisation for starts, runs the sampler on the current
    energy, writes the chains back to the bank and back-propagates the
    maximum-likelihood loss of ``E(x+) / T`` and ``E(x-) / T`` (see
    :class:`MaxLikelihoodLoss`). Extend it by overriding
    :meth:`train_step_single` or :meth:`get_loss`, as with any skorch net.
    An energy module that defines ``penalty(x_pos, x_neg)`` (a scalar
    tensor) has it added to the loss: a regulariser of its own internals.

    Parameters
    ----------
    module : torch.nn.Module
        The energy network (see :mod:`skebm.nn` for the output convention).
    feature_shape : tuple of int
        Shape of one sample as the network sees it.
    sampler : LangevinSampler or None, default=None
        Langevin settings of the negatives (copied into ``sampler_``); a
        string ``proposal`` names a submodule of ``module`` (shared).
        ``None``: no sampler is built (an engine whose subclass trains
        without chains, such as the density engines).
    chain_init : ChainInit or None, default=None
        Chain-initialisation strategy (copied into ``chain_init_``);
        ``None``: no chain bank is built.
    source : torch.nn.Module, str or None, default=None
        Source of fresh chain starts (e.g. a :class:`~skebm.mcmc.NoiseSource`),
        or the name of a submodule of ``module`` that is one (``"base"``:
        the base density of a tilted energy), shared, not copied.
    criterion : type, default=MaxLikelihoodLoss
        The loss module, called on ``(e_pos, e_neg)``.
    temperature : float, default=1.0
        Temperature ``T``: :meth:`energy` returns ``E(x) / T``.
    data_noise : float, default=0.0
        Standard deviation of Gaussian noise added to data samples.
    conditional : bool, default=False
        Train ``E(x, y)``: the batch's labels condition both data and
        negatives.
    precision : {"fp32", "bf16"}, default="fp32"
        Autocast precision of energy evaluations.
    average : float or None, default=None
        Decay of the exponential moving average of the weights kept in
        ``average_`` (per parameter update); ``None`` keeps none.
    seed : int, default=None
        Seed of ``rng_``; ``None`` draws one.
    max_updates : int, default=None
        Parameter updates in all; the last epoch is cut short so that
        exactly this many are made. ``None``: ``max_epochs`` full epochs.
    updates_per_epoch : int, default=None
        Batches per epoch (drawn with replacement); ``None`` uses
        ``ceil(n_samples / batch_size)``.
    **kwargs
        Any :class:`skorch.NeuralNet` argument.

    Attributes
    ----------
    chain_init_ : ChainInit
        The strategy with its banks.
    rng_ : RandomGenerators
        The generators of every random draw.
    sampler_ : LangevinSampler
        The sampler (its ``step_size`` after any adaptation).
    average_ : torch.optim.swa_utils.AveragedModel or None
        The weight average (``None`` without ``average``).
    interrupted_ : bool
        Whether the last fit was stopped by Ctrl-C (``KeyboardInterrupt``).
    """

    #: pickled together (one torch.save), so the sampler's proposal stays the module's base density
    cuda_dependent_attributes_ = ["module_", "optimizer_", "criterion_", "sampler_"]

    def __init__(
        self,
        module,
        *,
        feature_shape,
        sampler=None,
        chain_init=None,
        source=None,
        criterion=MaxLikelihoodLoss,
        temperature=1.0,
        data_noise=0.0,
        conditional=False,
        precision="fp32",
        average=None,
        seed=None,
        max_updates=None,
        updates_per_epoch=None,
        **kwargs,
    ):
        kwargs.setdefault("train_split", None)
        # set before NeuralNet.__init__: torch modules given as arguments are parameters, not components
        self.sampler = sampler
        self.chain_init = chain_init
        self.source = source
        self.feature_shape = tuple(feature_shape)
        self.temperature = temperature
        self.data_noise = data_noise
        self.conditional = conditional
        self.precision = precision
        self.average = average
        self.seed = seed
        self.max_updates = max_updates
        self.updates_per_epoch = updates_per_epoch
        super().__init__(module, criterion=criterion, **kwargs)

    def get_default_callbacks(self):
        return [*super().get_default_callbacks(), ("divergence_guard", DivergenceGuard())]

    # ------------------------------------------------------- fitted state
    def initialize_module(self):
        super().initialize_module()
        if torch.device(self.device).type == "cpu":
            # oneDNN runs a convolution channels-last when its input or its weight is; a 1-channel image is
            # both layouts at once, so without this a grayscale network runs NCHW, 1.3x slower at 28x28
            # (benchmarks/bench_langevin_levers.py). Only 4-D weights change; MLPs are untouched.
            self.module_.to(memory_format=torch.channels_last)
        # distributed: each process its own chain stream (rank 0 that of a one-process fit), one batch order
        seed, rank = seed_from(self.seed), self.process_rank()
        chain_seed = seed if rank == 0 else derive_seed(seed, rank)
        # the same batch order on every rank
        self.rng_ = RandomGenerators(chain_seed, self.device, data_seed=derive_seed(seed, "data"))
        if self.chain_init is not None:
            source = getattr(self.module_, self.source) if isinstance(self.source, str) else copy.deepcopy(self.source)
            self.chain_init_ = copy.deepcopy(self.chain_init).setup(
                source, self.feature_shape, self.device, generator=self.rng_.generator
            )
        if self.sampler is not None:
            self.sampler_ = copy.deepcopy(self.sampler)
            if isinstance(getattr(self.sampler_, "proposal", None), str):  # e.g. "base": the module's base density
                self.sampler_.proposal = getattr(self.module_, self.sampler_.proposal)
        # a weight average (common in modern EBM training: smoother energies for sampling); torch keeps it
        self.average_ = None if self.average is None else AveragedModel(
            self.bare_module(), multi_avg_fn=ExponentialAverage(self.average), use_buffers=True
        )
        self.interrupted_ = False
        return self

    @property
    def generator(self):
        """The chain generator (``rng_.generator``)."""
        return self.rng_.generator

    # distributed: the rank, and the network itself (chains and predictions never go through a DDP wrapper)
    def process_rank(self):
        """Rank of this process in data-parallel training (0 in a one-process fit)."""
        return 0

    def bare_module(self):
        """The energy network itself, unwrapped from a data-parallel wrapper during a distributed fit.

        Chains, energies and predictions call it: a DDP wrapper's forward
        expects a backward pass into the weights, which a Langevin step (a
        gradient in the inputs only) never makes (torch issues 47562,
        43259). Only the loss of a training step calls ``module_`` itself.
        """
        module = self.module_
        if isinstance(module, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)):
            return module.module
        return module

    def evaluation_module(self):
        """The network of every call but the training chains and loss: the weight average, else :meth:`bare_module`."""
        average = getattr(self, "average_", None)
        return self.bare_module() if average is None else average.module

    # threads: the engine's thread count (n_threads of the estimator) around every compute call
    def thread_scope(self):
        """A context running torch with the estimator's ``n_threads`` (see ``skebm._threads.thread_limit``)."""
        return thread_limit(getattr(self, "threads_", None))

    @property
    def runs_chains(self):
        """Whether training draws MCMC negatives."""
        return True

    def divergence_hint(self):
        """Advice appended to a :class:`TrainingDivergedError`."""
        return "Lower lr or step_size, raise l2_reg, or use fewer Langevin steps (n_steps)."

    def restore_from_history(self):
        """Restore state the history records (the adapted step size) after loading a checkpoint."""
        for epoch in reversed(self.history):
            for row in reversed(epoch["batches"]):
                if "step_size" in row:
                    self.sampler_.step_size = row["step_size"]
                    return

    # ------------------------------------------------- energies and chains
    def energy(self, x, y=None, *, module=None):
        """``E(x) / T`` (conditioned on ``y``) under autocast, as float32; gradients flow.

        Parameters
        ----------
        x : torch.Tensor of shape ``(n, *feature_shape)``
            Inputs in the model's space.
        y : torch.Tensor of int, default=None
            Class indices of a conditional energy.
        module : torch.nn.Module, default=None
            The network to call; ``None`` is :meth:`evaluation_module` (the
            training loss passes ``module_``, a DDP wrapper in a
            distributed fit; the training chains :meth:`bare_module`).

        Returns
        -------
        energy : torch.Tensor of shape (n,)
        """
        module = self.evaluation_module() if module is None else module  # distributed: never the DDP wrapper
        with self.thread_scope(), autocast_context(x.device, self.precision):  # threads: n_threads
            out = module(x)
        return output_to_energy(out, y).float() / self.temperature

    def run_chains(self, x0, y=None, *, generator=None, noise=None, module=None, **overrides):
        """Run ``sampler_`` on the current energy from ``x0``.

        Parameters
        ----------
        x0 : torch.Tensor
            Chain starts.
        y : torch.Tensor of int, default=None
            Class of each chain (conditional energies).
        generator : torch.Generator, default=None
            Generator of the noise; ``None`` uses ``rng_.generator``.
        noise : object, default=None
            An explicit noise stream (e.g. :class:`~skebm.mcmc.RowNoise`).
        module : torch.nn.Module, default=None
            The network (see :meth:`energy`).
        **overrides
            Sampler settings for this call (``n_steps``, ``step_size``,
            ``mask``, ``return_chains``...).

        Returns
        -------
        x : torch.Tensor
            End states (and what ``overrides`` asked for).
        """
        generator = self.generator if generator is None else generator
        with self.thread_scope():  # threads: n_threads for the whole chain
            return self.sampler_(lambda x: self.energy(x, y, module=module), x0, generator=generator, noise=noise,
                                 **overrides)

    def draw_negatives(self, x_pos, y=None):
        """One round of MCMC negatives for the data batch ``x_pos``.

        Asks the chain-initialisation strategy for starts, runs the sampler
        on the current energy (conditioned on ``y``), writes the chains back
        to the bank and returns the end states that serve as negatives.

        Parameters
        ----------
        x_pos : torch.Tensor
            The data batch.
        y : torch.Tensor of int, default=None
            Its labels (conditional energies).

        Returns
        -------
        x_neg : torch.Tensor
        """
        g = self.generator
        draw = self.chain_init_.draw(x_pos, y, generator=g)
        x_neg = self.run_chains(draw.x0, y, module=self.bare_module())  # the network being trained, not its average
        self.chain_init_.update(draw, x_neg, y, generator=g)
        self.history.record_batch("step_size", float(self.sampler_.step_size))
        if getattr(self.sampler_, "metropolis", False):
            self.history.record_batch("acceptance", self.sampler_.acceptance_rate_)
        if getattr(self.sampler_, "proposal", None) is not None:
            self.history.record_batch("jump_acceptance", self.sampler_.jump_acceptance_)
        return self.chain_init_.negatives(draw, x_neg)

    def _noisy(self, x):
        if not self.data_noise:
            return x
        return x + self.data_noise * torch.randn(x.shape, generator=self.generator, device=x.device)

    # ---------------------------------------------------------- training
    def train_step_single(self, batch, **fit_params):
        """Draw negatives, compute the loss, back-propagate."""
        self._set_training(True)
        x_pos, y = unpack_data(batch)
        x_pos = self._noisy(to_tensor(x_pos, device=self.device).float())
        y = to_tensor(y, device=self.device).long() if (self.conditional and y is not None) else None
        x_neg = self.draw_negatives(x_pos, y)
        # distributed: the loss goes through module_ (a DDP wrapper all-reduces the gradients), the rest does not
        e_pos, e_neg = self.energy(x_pos, y, module=self.module_), self.energy(x_neg, y, module=self.module_)
        loss = self.get_loss((e_pos, e_neg), y, X=x_pos, training=True)
        penalty = getattr(self.bare_module(), "penalty", None)
        if callable(penalty):
            loss = loss + penalty(x_pos, x_neg)
        loss.backward()
        self.history.record_batch("energy_data", e_pos.mean().item())
        self.history.record_batch("energy_samples", e_neg.mean().item())
        return {"loss": loss, "y_pred": e_pos.detach()}

    def train_step(self, batch, **fit_params):
        """skorch's step (loss, backward, optimiser), then the weight average."""
        step = super().train_step(batch, **fit_params)
        if self.average_ is not None:
            self.average_.update_parameters(self.bare_module())
        return step

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """The criterion on ``y_pred = (e_pos, e_neg)``."""
        return self.criterion_(y_pred, y_true)

    def n_updates(self):
        """Parameter updates made so far (from the history)."""
        return n_updates(self.history)

    def _per_epoch(self, n_samples):
        return self.updates_per_epoch or max(1, math.ceil(n_samples / self.batch_size))

    def updates_this_epoch(self, n_samples):
        """Batches of the next epoch: a full epoch, or what is left of ``max_updates``."""
        per_epoch = self._per_epoch(n_samples)
        if self.max_updates is None:
            return per_epoch
        return max(1, min(per_epoch, self.max_updates - self.n_updates()))

    def get_iterator(self, dataset, training=False):
        """Training batches drawn with replacement from ``rng_.data_generator``."""
        if not training:
            return super().get_iterator(dataset, training)
        kwargs = self.get_params_for("iterator_train")
        batch_size = kwargs.pop("batch_size", self.batch_size)
        gen = self.rng_.data_generator
        sampler = _BudgetSampler(range(len(dataset)), self, batch_size, gen)
        return self.iterator_train(dataset, batch_size=batch_size, sampler=sampler, generator=gen, **kwargs)

    def epochs_to_run(self, n_samples):
        """Epochs left to reach ``max_updates`` (or ``max_epochs``) from the history."""
        if self.max_updates is None:
            return max(0, self.max_epochs - len(self.history))
        return math.ceil(max(0, self.max_updates - self.n_updates()) / self._per_epoch(n_samples))

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        """skorch's fit loop, for the epochs left; records a Ctrl-C in ``interrupted_``."""
        self.interrupted_ = False
        if epochs is None:
            epochs = self.epochs_to_run(len(X))
        try:
            return super().fit_loop(X, y, epochs=epochs, **fit_params)
        except KeyboardInterrupt:
            self.interrupted_ = not getattr(self, "stopped_early_", False)  # early stopping ends fits this way too
            raise


class ExponentialAverage:
    """The weight-average update of :class:`~torch.optim.swa_utils.AveragedModel` (its ``multi_avg_fn``).

    The running mean of the weights over the first ``1 / (1 - decay)``
    updates, then their exponential moving average with ``decay``: the
    decay of an update is ``min(decay, n / (n + 1))`` after ``n``
    averaged, so a short fit does not keep most of its first weights (with
    a fixed 0.995, 60% of a 100-update average would be the first update's
    weights). torch's ``get_ema_multi_avg_fn`` has no such start and
    returns a closure, which pickle (so skorch's ``__getstate__`` and
    joblib) refuses. Integer buffers are copied.
    """

    def __init__(self, decay):
        self.decay = decay

    def __call__(self, averaged, current, n_averaged):
        n = int(n_averaged)
        weight = 1.0 - min(self.decay, n / (n + 1))
        with torch.no_grad():
            for avg, cur in zip(averaged, current):
                if avg.is_floating_point():
                    avg.lerp_(cur, weight)
                else:
                    avg.copy_(cur)


class _BudgetSampler(RandomSampler):
    """Indices drawn with replacement; each epoch as many batches as the engine has left.

    skorch builds the training iterator once per fit, so the length of an
    epoch is asked of the engine each time the sampler is iterated.
    """

    def __init__(self, data_source, net, batch_size, generator):
        self.net, self.batch_size, self._epoch = net, batch_size, None
        super().__init__(data_source, replacement=True, generator=generator)

    @property
    def num_samples(self):
        if self._epoch is not None:  # fixed for the epoch being iterated
            return self._epoch
        return self.net.updates_this_epoch(len(self.data_source)) * self.batch_size

    def __iter__(self):
        self._epoch = None
        self._epoch = self.num_samples
        try:
            yield from super().__iter__()
        finally:
            self._epoch = None
