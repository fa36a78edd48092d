"""Differentiable Langevin dynamics: the chain as part of the autograd graph.

:func:`unrolled_langevin` runs the update of :func:`~skebm.mcmc.langevin`
but keeps every step in the graph, so that a loss on the final state can be
differentiated with respect to the chain's start (an attack through a
purifier) or the energy's parameters. Memory is kept down by recomputing
blocks of steps in the backward pass (:func:`_checkpoint`).
"""

import math
import weakref

import torch
from sklearn.utils._param_validation import StrOptions

from .._validation import POSITIVE_INT, check_params
from ._langevin import _check_settings, _Dynamics, langevin_step
from ._noise import as_noise

__all__ = ["unrolled_langevin"]


def _as_stream(noise, generator):
    if noise is not None and not callable(getattr(noise, "randn_like", None)):
        raise TypeError(
            f"noise must be None or an object with a randn_like(x) method (e.g. RowNoise), got {type(noise).__name__}."
        )
    return as_noise(noise, generator)


def _block_length(checkpoint_segments, n_steps):
    if checkpoint_segments is None:
        return max(n_steps, 1)
    if checkpoint_segments == "sqrt":
        return max(1, math.ceil(math.sqrt(n_steps)))
    return int(checkpoint_segments)


# ------------------------------------------------------------ checkpointing
class _Holder:
    """What the graph stores in place of a saved tensor of a checkpointed block."""

    __slots__ = ("index", "__weakref__")

    def __init__(self, index):
        self.index = index


class _Frame:
    """One checkpointed block: its inputs, and its saved tensors while they are needed.

    During the block's own forward the saved tensors are kept (``live``):
    each Langevin step differentiates the energy inside the block, which
    reads them at once. When the forward is done they are dropped; the
    first read in the backward pass reruns the block from its inputs and
    keeps the values of the holders still alive, each released as soon as
    it is read (or its graph node dies), the rest when the gradient of the
    block's input is complete.
    """

    def __init__(self, fn, args):
        self.fn = fn
        self.args = args
        self.live = []
        self.holders = []
        self.recomputed = weakref.WeakKeyDictionary()

    def pack(self, tensor):
        holder = _Holder(len(self.holders))
        self.holders.append(weakref.ref(holder))
        self.live.append(tensor)
        return holder

    def unpack(self, holder):
        if self.live is not None:
            return self.live[holder.index]
        if holder not in self.recomputed:
            self._recompute()
        return self.recomputed.pop(holder)

    def release(self, grad=None):
        self.recomputed.clear()

    def _recompute(self):
        values = []

        def pack(tensor):
            # detached: a saved tensor pointing back to its own node would be a
            # reference cycle that keeps the recomputed graph alive
            value = tensor.detach()
            values.append(value)
            return value

        args = [a.detach() if isinstance(a, torch.Tensor) else a for a in self.args]
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda value: value):
            self.fn(*args)
        if len(values) != len(self.holders):
            raise RuntimeError(
                "unrolled_langevin: recomputing a checkpointed block saved a different number of tensors than its "
                "forward pass; the energy must be deterministic (no dropout, no data-dependent control flow)."
            )
        for ref, value in zip(self.holders, values):
            holder = ref()
            if holder is not None:
                self.recomputed[holder] = value


def _checkpoint(fn, x, *args):
    """Run ``fn(x, *args)`` keeping only its inputs; recompute it in the backward pass.

    Unlike :func:`torch.utils.checkpoint.checkpoint` (``use_reentrant=False``),
    whose holders trigger a recomputation of the block at every
    ``torch.autograd.grad`` call made inside the block's forward (each
    Langevin step makes one), the saved tensors stay readable until the
    block's forward is over, so the forward runs once. The graph is the one
    built by the forward pass: gradients reach ``x`` and every tensor ``fn``
    closes over (the energy's parameters), through ``torch.autograd.grad``
    or ``backward`` alike.
    """
    if x.requires_grad:
        x = x.view_as(x)  # our own handle on the block's input, for the release hook
    frame = _Frame(fn, (x, *args))
    if x.requires_grad:
        x.register_hook(frame.release)
    with torch.autograd.graph.saved_tensors_hooks(frame.pack, frame.unpack):
        out = fn(x, *args)
    frame.live = None
    return out


# ------------------------------------------------------------ the sampler
def _steps(energy_fn, x, xi, n, dynamics, create_graph):
    """``n`` steps of ``_langevin.langevin_step`` from ``x`` with the noise ``xi`` (``(n, *x.shape)`` or None)."""
    for j in range(n):
        x = langevin_step(energy_fn, x, None if xi is None else xi[j], dynamics, create_graph=create_graph)
    return x


def unrolled_langevin(
    energy_fn,
    x0,
    n_steps,
    step_size,
    *,
    noise_scale=None,
    temperature=1.0,
    tau=None,
    grad_clip=None,
    clamp=None,
    mask=None,
    noise=None,
    generator=None,
    checkpoint_segments="sqrt",
    precision="fp32",
):
    r"""Langevin dynamics that stay in the autograd graph (for adaptive attacks).

    Runs the unadjusted update of :func:`~skebm.mcmc.langevin`, step for
    step the same function (``_langevin.langevin_step``, with every
    setting: temperature, prior ``tau``, ``grad_clip``, ``mask``, ``clamp``),

    .. math::

        x_{t+1} = x_t - \frac{\epsilon^2}{2} \nabla_x \left[\frac{E(x_t)}{T}
        + \frac{\|x_t\|^2}{2\tau^2}\right] + \sigma \xi_t,
        \quad \xi_t \sim N(0, I),

    with :math:`\sigma` = ``noise_scale`` (``step_size`` when ``None``),
    but differentiably: the returned state is a function of ``x0`` (and of
    the energy's parameters) in the autograd graph, so a loss on it can be
    back-propagated through every step. Each step's input gradient is taken
    with ``create_graph=True``, so the backward pass differentiates
    :math:`\nabla_x E` again: it needs the energy's second derivatives
    (use smooth activations; ReLU energies have a zero Hessian almost
    everywhere, and only the identity part of each step then carries the
    gradient).

    Under :func:`torch.no_grad` the chain runs without a graph (same draws,
    same values), as a plain sampler.

    **Memory.** Keeping every step costs memory linear in ``n_steps`` (the
    energy's activations and those of its gradient, per step). With
    checkpointing the steps run in blocks; only each block's input and
    noise are kept, and a block's activations are recomputed in the
    backward pass when they are needed, so the activation memory grows like
    ``sqrt(n_steps)`` (``"sqrt"``: blocks of ``ceil(sqrt(n_steps))`` steps)
    for about one more forward pass of compute. The noise itself (one
    tensor shaped like ``x0`` per step) is always kept.

    **Noise.** The noise of each block is drawn before the block, all at
    once, and passed into it: recomputation in the backward pass sees the
    same draws without replaying any random-generator state. The draws come
    from ``noise``, in step order, so the chain is the same whatever the
    checkpointing. Two ways to use this in an attack:

    * *reparameterised*: the attacker fixes the draws (it knows the seed):
      pass a fresh :class:`~skebm.mcmc.RowNoise` built from the same keys,
      or a generator seeded the same way, at every call; the
      purification is then a deterministic, differentiable function of
      ``x0`` and gradients of successive calls agree;
    * *fresh*: ``noise=None`` draws from ``generator`` (or torch's global
      generator), new draws at every call, and expectation over
      transformation (averaging gradients over calls) handles the
      randomness.

    Parameters
    ----------
    energy_fn : callable
        Maps a tensor shaped like ``x0`` to ``len(x0)`` energies,
        differentiably and deterministically (a module in eval mode: a
        block is recomputed in the backward pass and must give the same
        values).
    x0 : torch.Tensor
        Chain starts, shape ``(n_chains, ...)``; a floating dtype is kept
        (float64 chains for gradient checks). Not modified.
    n_steps : int
        Number of Langevin steps.
    step_size : float
        Step size :math:`\epsilon`.
    noise_scale : float, default=None
        Standard deviation :math:`\sigma` of the injected noise; ``None``
        uses ``step_size`` (exact Langevin dynamics). With 0 no noise is
        drawn.
    temperature : float, default=1.0
        Temperature :math:`T` dividing the energy.
    tau : float, default=None
        Scale of the optional Gaussian prior term that keeps chains bounded.
    grad_clip : float, default=None
        Clip the drift elementwise to ``[-grad_clip, grad_clip]`` (its
        gradient is zero where the clip is active).
    clamp : tuple of float, default=None
        Clamp the state to ``(low, high)`` after every step (its gradient
        is zero where the clamp is active).
    mask : torch.Tensor, default=None
        Broadcastable to ``x0``; only entries where ``mask`` is nonzero move.
    noise : object, default=None
        Source of the noise: an object with a ``randn_like(x)`` method, such
        as :class:`~skebm.mcmc.RowNoise` (each chain's draws a function of
        its own key) or :class:`~skebm.mcmc.GeneratorNoise`. ``None`` draws
        from ``generator``. A stream advances with every draw: pass a new
        one (same keys, or a generator seeded the same) to repeat the draws.
    generator : torch.Generator, default=None
        Generator (on the device of ``x0``) of the noise when ``noise`` is
        None; ``None`` uses torch's global generator.
    checkpoint_segments : "sqrt", int or None, default="sqrt"
        Steps per recomputed block: ``"sqrt"`` for ``ceil(sqrt(n_steps))``,
        an integer for that many, ``None`` to keep every step in memory (no
        recomputation; fastest for short chains).
    precision : {"fp32", "bf16"}, default="fp32"
        ``"bf16"`` evaluates the energy under bfloat16 autocast; the chain
        state keeps the dtype of ``x0``.

    Returns
    -------
    x : torch.Tensor
        Final states, shaped like ``x0``, in the autograd graph (unless
        gradients are disabled).

    See Also
    --------
    langevin : The same chain, without a graph.

    Notes
    -----
    Checkpointing is implemented here with saved-tensor hooks rather than
    :func:`torch.utils.checkpoint.checkpoint`: with ``use_reentrant=False``
    every ``torch.autograd.grad`` call inside a checkpointed block (one per
    Langevin step) re-runs the block up to that step during the forward
    pass, which costs quadratically many energy evaluations and, measured
    on a 50-step MLP chain, more memory than no checkpointing at all; the
    reentrant variant does not support ``torch.autograd.grad`` and leaves
    the energy's parameter gradients in their ``.grad``.

    Examples
    --------
    >>> import torch
    >>> from skebm.mcmc import RowNoise
    >>> from skebm.mcmc._unrolled import unrolled_langevin
    >>> energy = lambda x: 0.5 * (x ** 2).sum(1)
    >>> x0 = torch.ones(3, 2, requires_grad=True)
    >>> keys = torch.tensor([1, 2, 3])
    >>> x = unrolled_langevin(energy, x0, 10, 0.1, noise=RowNoise(keys))
    >>> (g,) = torch.autograd.grad(x.sum(), x0)
    >>> bool(torch.allclose(g, torch.full((3, 2), (1 - 0.1 ** 2 / 2) ** 10)))
    True
    """
    sigma = _check_settings(n_steps, step_size, noise_scale, temperature, clamp=clamp, tau=tau, grad_clip=grad_clip)
    check_params(
        {
            "checkpoint_segments": [StrOptions({"sqrt"}), POSITIVE_INT, None],
            "precision": [StrOptions({"fp32", "bf16"})],
            "clamp": ["array-like", None],
        },
        {"checkpoint_segments": checkpoint_segments, "precision": precision, "clamp": clamp},
        "unrolled_langevin",
    )
    if not isinstance(x0, torch.Tensor):
        raise TypeError(f"x0 must be a torch.Tensor, got {type(x0).__name__}.")
    block = _block_length(checkpoint_segments, n_steps)
    stream = _as_stream(noise, generator)
    if not x0.is_floating_point():
        x0 = x0.to(torch.float32)
    graph = torch.is_grad_enabled()
    if n_steps == 0:
        return x0.clone()
    dynamics = _Dynamics(step_size, sigma, x0.device, x0.dtype, temperature=temperature, tau=tau,
                         grad_clip=grad_clip, clamp=clamp, mask=mask, precision=precision)
    x = x0 if graph else x0.detach().clone()  # without a graph the steps write into x

    def run(x, xi, n):
        return _steps(energy_fn, x, xi, n, dynamics, create_graph=graph)

    for start in range(0, n_steps, block):
        n = min(block, n_steps - start)
        xi = None
        if sigma > 0:
            with torch.no_grad():
                xi = torch.stack([stream.randn_like(x).to(device=x.device, dtype=x.dtype) for _ in range(n)])
        if graph and checkpoint_segments is not None:
            x = _checkpoint(lambda x, xi, n=n: run(x, xi, n), x, xi)
        else:
            x = run(x, xi, n)
    return x
