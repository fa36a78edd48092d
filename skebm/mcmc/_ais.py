"""Normalising constants of energies: exact grid quadrature and AIS.

``Z = integral of exp(-E(x)) dx``. In one or two dimensions a grid gives
``log Z`` to high accuracy (:func:`grid_log_partition`); in more dimensions
annealed importance sampling (:func:`ais_log_partition`) estimates it, with
a standard error, from a tractable base density such as a
:class:`~skebm.mcmc.GaussianMixtureSource`: a stochastic lower bound of
``log Z``. Reverse AIS (:func:`reverse_ais_log_partition`), from samples of
the model back to the base, gives a stochastic upper bound;
:func:`log_partition_bracket` runs both. Forward and reverse share one
annealing loop (``_anneal``).
"""

import math

import numpy as np
import torch

from .._torch_utils import batched
from .._validation import POSITIVE_INT, Float, Int, check_params
from ._langevin import _check_settings, _run
from ._noise import as_noise

__all__ = [
    "ais_log_partition", "grid_log_partition", "log_partition_bracket", "reverse_ais_log_partition",
    "sigmoid_schedule",
]


def _batched(fn, x, batch_size):
    return batched(lambda part: fn(part).detach().double(), x, batch_size)


def grid_log_partition(energy_fn, low, high, *, resolution=None, batch_size=65536, return_error=False):
    r"""``log Z`` of ``exp(-energy_fn)`` over a box, by the trapezoidal rule.

    The box ``[low, high]`` (one or two dimensions) is covered by a regular
    grid of ``resolution`` nodes per axis; ``exp(-E)`` must be negligible
    on its boundary. For a smooth, rapidly decaying integrand the
    trapezoidal rule converges faster than any power of the spacing, so a
    grid a little finer than the narrowest feature of the density is
    enough.

    Parameters
    ----------
    energy_fn : callable
        Maps a float32 tensor ``(m, d)`` to ``(m,)`` energies.
    low, high : array-like of shape (d,)
        Corners of the box, ``d`` in {1, 2}.
    resolution : int, default=None
        Nodes per axis; ``None`` uses 4097 in 1-D and 513 in 2-D. Must be
        odd (so that every other node forms the coarse grid of the error
        estimate).
    batch_size : int, default=65536
        Grid points per call of ``energy_fn``.
    return_error : bool, default=False
        Also return an error estimate: ``|log Z - log Z_coarse|``, the
        change when the grid spacing is doubled (an overestimate of the
        quadrature error), plus the float32 rounding of nodes and energies.

    Returns
    -------
    log_z : float
    error : float
        Only when ``return_error``.

    Examples
    --------
    >>> import math, torch
    >>> from skebm.mcmc import grid_log_partition
    >>> log_z = grid_log_partition(lambda x: 0.5 * (x ** 2).sum(1), [-8, -8], [8, 8])
    >>> round(log_z, 6) == round(math.log(2 * math.pi), 6)
    True
    """
    low = np.atleast_1d(np.asarray(low, dtype=np.float64))
    high = np.atleast_1d(np.asarray(high, dtype=np.float64))
    d = len(low)
    if d not in (1, 2) or high.shape != low.shape:
        raise ValueError(f"grid quadrature needs 1 or 2 dimensions with matching low/high, got {low} and {high}.")
    if not np.all(high > low):
        raise ValueError(f"high must exceed low on every axis, got low={low}, high={high}.")
    if resolution is None:
        resolution = 4097 if d == 1 else 513
    if resolution < 5 or resolution % 2 == 0:
        raise ValueError(f"resolution must be an odd integer >= 5, got {resolution}.")
    axes = [np.linspace(lo, hi, resolution) for lo, hi in zip(low, high)]
    steps = np.array([ax[1] - ax[0] for ax in axes])
    mesh = np.meshgrid(*axes, indexing="ij")
    points = torch.as_tensor(np.stack([m.ravel() for m in mesh], 1), dtype=torch.float32)
    log_f = -_batched(energy_fn, points, batch_size).numpy().reshape([resolution] * d)
    if not np.all(np.isfinite(log_f) | (log_f == -np.inf)):
        raise ValueError("energy_fn returned NaN or -inf energies on the grid.")

    def trapezoid(values, step):
        weights_1d = [np.r_[0.5, np.ones(n - 2), 0.5] for n in values.shape]
        w = weights_1d[0] if d == 1 else np.outer(weights_1d[0], weights_1d[1])
        with np.errstate(divide="ignore"):
            log_w = np.log(w)
        total = values + log_w
        top = total.max()
        return float(top + np.log(np.exp(total - top).sum()) + np.log(step).sum())

    log_z = trapezoid(log_f, steps)
    if not return_error:
        return log_z
    coarse = log_f[(slice(None, None, 2),) * d]
    # the change on halving the grid, plus the float32 rounding of the nodes and energies
    rounding = 4 * np.finfo(np.float32).eps * max(1.0, abs(log_z))
    return log_z, abs(log_z - trapezoid(coarse, 2 * steps)) + rounding


#: The annealing parameters the AIS functions share, written once (``{anneal}`` in their docstrings).
_ANNEAL_PARAMS = """n_steps : int, default=1
        Langevin steps per temperature.
    step_size : float, default=0.1
        Initial Langevin step size (at the start of the path).
    adapt_step_size : bool, default=True
        After each temperature, multiply the step size by
        ``exp(acceptance - target_acceptance)`` (population-level
        adaptation, MALA only).
    target_acceptance : float, default=0.6
        Target MALA acceptance rate of the adaptation.
    metropolis : bool, default=True
        MALA transitions; ``False`` uses unadjusted Langevin (biased).
    batch_size : int, default=None
        Chains per evaluation of ``energy_fn``; ``None`` runs all at once."""


def _anneal_doc(fn):
    if fn.__doc__:  # None under python -OO
        fn.__doc__ = fn.__doc__.replace("{anneal}", _ANNEAL_PARAMS)
    return fn


def sigmoid_schedule(n_temperatures, sharpness=4.0):
    """Inverse temperatures from 0 to 1 on a sigmoid (Grosse et al., 2013).

    Parameters
    ----------
    n_temperatures : int
        Number of intermediate distributions (at least 2), ends included.
    sharpness : float, default=4.0
        Larger values put more temperatures near both ends.

    Returns
    -------
    betas : ndarray of shape (n_temperatures,)
        Increasing, ``betas[0] == 0`` and ``betas[-1] == 1``.
    """
    if n_temperatures < 2:
        raise ValueError(f"n_temperatures must be >= 2, got {n_temperatures}.")
    t = np.linspace(-sharpness, sharpness, n_temperatures)
    s = 1.0 / (1.0 + np.exp(-t))
    return (s - s[0]) / (s[-1] - s[0])


@_anneal_doc
def ais_log_partition(
    energy_fn,
    base,
    *,
    n_chains=256,
    n_temperatures=200,
    n_steps=1,
    step_size=0.1,
    adapt_step_size=True,
    target_acceptance=0.6,
    metropolis=True,
    batch_size=None,
    generator=None,
    return_samples=False,
):
    r"""Estimate ``log Z`` of ``exp(-energy_fn)`` by annealed importance sampling.

    Chains start from the normalised base density ``q`` and move through
    the geometric path

    .. math::

        \pi_\beta(x) \propto q(x)^{1 - \beta} \exp(-\beta E(x)),
        \quad 0 = \beta_0 < \beta_1 < \dots < \beta_K = 1,

    accumulating the log importance weight
    :math:`\log w \mathrel{+}= (\beta_k - \beta_{k-1}) (-E(x) - \log q(x))`;
    at each temperature ``n_steps`` Langevin steps (MALA by default, so each
    transition leaves :math:`\pi_{\beta_k}` invariant) move the chains. The
    estimate is :math:`\log \frac{1}{N}\sum_i w_i`; its standard error is
    the delta-method value :math:`\mathrm{sd}(w) / (\bar w \sqrt{N})`. The
    estimate of :math:`\log Z` is biased low by about half its variance, and
    the error bar is only as good as the weights' spread: if the chains miss
    a mode of the target, both are too small.

    Parameters
    ----------
    energy_fn : callable
        Maps a tensor ``(n, *shape)`` to ``(n,)`` energies ``E``.
    base : GaussianMixtureSource or object
        The normalised starting density: ``base.sample(n, generator=...)``
        returns ``n`` draws and ``base.log_prob(x)`` their log-density; pick one
        close to the target (e.g. fitted to data) for small error bars.
    n_chains : int, default=256
        Number of independent AIS chains (importance weights).
    n_temperatures : int, default=200
        Number of distributions on the path, ends included (sigmoid
        schedule, :func:`sigmoid_schedule`).
    {anneal}
    generator : torch.Generator, default=None
        Generator of every random draw (base samples, Langevin noise, MALA
        acceptance), on the base's device; ``None`` uses the global one.
    return_samples : bool, default=False
        Also return the final states and their log weights.

    Returns
    -------
    log_z : float
        Estimate of ``log Z``.
    std_err : float
        Its standard error.
    samples : torch.Tensor
        Only if ``return_samples``: final chain states.
    log_weights : torch.Tensor
        Only if ``return_samples``: their log importance weights.

    Examples
    --------
    >>> import math, torch
    >>> from skebm.mcmc import GaussianMixtureSource, ais_log_partition
    >>> base = GaussianMixtureSource([1.0], [[0.0, 0.0]], [4.0 * torch.eye(2)])
    >>> log_z, se = ais_log_partition(lambda x: 0.5 * (x ** 2).sum(1), base, n_temperatures=50,
    ...                               generator=torch.Generator().manual_seed(0))
    >>> abs(log_z - math.log(2 * math.pi)) < 4 * se + 0.01
    True
    """
    if n_chains < 2:
        raise ValueError(f"n_chains must be >= 2, got {n_chains}.")
    settings = _anneal_settings(n_temperatures, n_steps, step_size, adapt_step_size, target_acceptance, metropolis,
                                batch_size)
    x = base.sample(n_chains, generator=generator)
    x, log_w = _anneal(energy_fn, base, x, settings, reverse=False, generator=generator)
    log_z, std_err = _log_mean_exp(log_w)
    if return_samples:
        return log_z, std_err, x, log_w
    return log_z, std_err



@_anneal_doc
def reverse_ais_log_partition(
    energy_fn,
    base,
    samples,
    *,
    n_temperatures=200,
    n_steps=1,
    step_size=0.1,
    adapt_step_size=True,
    target_acceptance=0.6,
    metropolis=True,
    batch_size=None,
    generator=None,
):
    r"""A stochastic upper bound of ``log Z`` by reverse annealed importance sampling.

    The chains start from ``samples`` of the model
    :math:`p = \exp(-E) / Z` and walk the path of
    :func:`ais_log_partition` backwards, from :math:`\beta = 1` to the
    normalised base :math:`q` at :math:`\beta = 0`, with the same
    transitions. Their mean weight estimates :math:`1 / Z` without bias
    when the starts are exact draws of :math:`p`; by Jensen's inequality
    the returned :math:`-\log \frac{1}{N}\sum_i w_i` is then at least
    :math:`\log Z` in expectation: an upper bound, as the forward estimate
    is a lower one (Grosse et al., 2015, bidirectional Monte Carlo). The
    bound only holds as far as ``samples`` follow the model: starts from
    chains that have not mixed can give values below ``log Z``.

    Parameters
    ----------
    energy_fn : callable
        Maps a tensor ``(n, *shape)`` to ``(n,)`` energies ``E``.
    base : GaussianMixtureSource or object
        The normalised end density, with ``log_prob(x)`` (as in
        :func:`ais_log_partition`; ``sample`` is not used).
    samples : torch.Tensor of shape (n_chains, ...)
        Draws of the model (at least 2), e.g. from long MALA chains; each
        starts one reverse chain.
    n_temperatures : int, default=200
        Number of distributions on the path, ends included.
    {anneal}
    generator : torch.Generator, default=None
        Generator of the Langevin noise and MALA acceptance draws.

    Returns
    -------
    log_z_upper : float
        The stochastic upper bound of ``log Z``.
    std_err : float
        Its delta-method standard error.

    See Also
    --------
    ais_log_partition : The forward estimate, a stochastic lower bound.
    log_partition_bracket : Both at once.

    Examples
    --------
    >>> import math, torch
    >>> from skebm.mcmc import GaussianMixtureSource, reverse_ais_log_partition
    >>> g = torch.Generator().manual_seed(0)
    >>> base = GaussianMixtureSource([1.0], [[0.0, 0.0]], [4.0 * torch.eye(2)])
    >>> exact = torch.randn(256, 2, generator=g)      # draws of exp(-|x|^2 / 2) / (2 pi)
    >>> upper, se = reverse_ais_log_partition(lambda x: 0.5 * (x ** 2).sum(1), base, exact,
    ...                                       n_temperatures=50, generator=g)
    >>> abs(upper - math.log(2 * math.pi)) < 4 * se + 0.01
    True
    """
    _check_samples(samples)
    settings = _anneal_settings(n_temperatures, n_steps, step_size, adapt_step_size, target_acceptance, metropolis,
                                batch_size)
    _, log_w = _anneal(energy_fn, base, samples.detach().float(), settings, reverse=True, generator=generator)
    log_inv_z, std_err = _log_mean_exp(log_w)
    return -log_inv_z, std_err


@_anneal_doc
def log_partition_bracket(
    energy_fn,
    base,
    samples=None,
    *,
    n_chains=256,
    n_temperatures=200,
    n_steps=1,
    step_size=0.1,
    adapt_step_size=True,
    target_acceptance=0.6,
    metropolis=True,
    batch_size=None,
    generator=None,
):
    r"""Bracket ``log Z`` between forward and reverse AIS (bidirectional Monte Carlo).

    Forward AIS (:func:`ais_log_partition`) from the base gives a
    stochastic lower bound of ``log Z``, reverse AIS
    (:func:`reverse_ais_log_partition`) from samples of the model a
    stochastic upper one (Grosse, Ghahramani and Adams, 2015; Grosse et
    al., 2016): "stochastic" because each holds in expectation, and with
    high probability for a single run. Both run the same annealing loop.

    The width ``upper - lower`` bounds the error of both estimates, and of
    any ``log Z`` between them: a narrow bracket (a few hundredths of a
    nat) says both directions agree, a wide one that the annealing chains
    do not mix along the path (or, in reverse, that ``samples`` are not
    draws of the model) and that neither estimate should be trusted. More
    temperatures narrow it when it is the annealing; better model samples
    when it is the samples. A slightly negative width is noise: the two
    bounds met.

    Parameters
    ----------
    energy_fn : callable
        Maps a tensor ``(n, *shape)`` to ``(n,)`` energies ``E``.
    base : GaussianMixtureSource or object
        The normalised base density: ``base.sample(n, generator=...)`` and
        ``base.log_prob(x)``, as in :func:`ais_log_partition`.
    samples : torch.Tensor of shape (m, ...), default=None
        Draws of the model that start the reverse chains (e.g. long MALA
        chains); ``None`` resamples the forward chains' final states by
        their importance weights (``n_chains`` draws), an approximation
        that is only as good as the forward run.
    n_chains : int, default=256
        Forward AIS chains.
    n_temperatures : int, default=200
        Distributions on the path, ends included, in each direction.
    {anneal}
    generator : torch.Generator, default=None
        Generator of every random draw, on the base's device.

    Returns
    -------
    lower, upper : float
        The stochastic lower and upper bounds of ``log Z``.

    See Also
    --------
    ais_log_partition : The forward estimate alone.
    reverse_ais_log_partition : The reverse estimate alone.

    Examples
    --------
    >>> import math, torch
    >>> from skebm.mcmc import GaussianMixtureSource, log_partition_bracket
    >>> base = GaussianMixtureSource([1.0], [[0.0, 0.0]], [4.0 * torch.eye(2)])
    >>> lower, upper = log_partition_bracket(lambda x: 0.5 * (x ** 2).sum(1), base, n_temperatures=100,
    ...                                      generator=torch.Generator().manual_seed(0))
    >>> upper - lower < 0.1 and lower - 0.05 < math.log(2 * math.pi) < upper + 0.05
    True
    """
    kwargs = dict(n_temperatures=n_temperatures, n_steps=n_steps, step_size=step_size,
                  adapt_step_size=adapt_step_size, target_acceptance=target_acceptance, metropolis=metropolis,
                  batch_size=batch_size, generator=generator)
    if samples is not None:  # refused before the forward run
        _check_samples(samples)
    lower, _, x, log_w = ais_log_partition(energy_fn, base, n_chains=n_chains, return_samples=True, **kwargs)
    if samples is None:
        weights = torch.exp(log_w - log_w.max()).float()
        rows = torch.multinomial(weights.to(x.device), n_chains, replacement=True, generator=generator)
        samples = x[rows]
    upper, _ = reverse_ais_log_partition(energy_fn, base, samples, **kwargs)
    return lower, upper

def _check_samples(samples):
    """TypeError or ValueError unless ``samples`` is a tensor of at least 2 finite draws."""
    if not isinstance(samples, torch.Tensor):
        raise TypeError(f"samples must be a torch.Tensor of model draws, got {type(samples).__name__}.")
    if samples.ndim < 2 or len(samples) < 2:
        raise ValueError(f"samples must hold at least 2 draws, shape (n_chains, *shape), got {tuple(samples.shape)}.")
    if not bool(torch.isfinite(samples).all()):
        raise ValueError("samples must be finite.")


#: The settings of the annealing loop beyond the Langevin ones.
_ANNEAL = {"n_temperatures": [Int(2)], "target_acceptance": [Float(0, 1, closed="neither")],
           "batch_size": [POSITIVE_INT, None]}


def _anneal_settings(n_temperatures, n_steps, step_size, adapt_step_size, target_acceptance, metropolis, batch_size):
    """The checked settings of :func:`_anneal`, as a dict."""
    check_params(_ANNEAL, dict(n_temperatures=n_temperatures, target_acceptance=target_acceptance,
                               batch_size=batch_size), "ais")
    betas = sigmoid_schedule(n_temperatures)
    _check_settings(n_steps, step_size, None, 1.0, metropolis)
    return dict(betas=betas, n_steps=n_steps, step_size=float(step_size), adapt_step_size=bool(adapt_step_size),
                target_acceptance=float(target_acceptance), metropolis=bool(metropolis), batch_size=batch_size)


def _anneal(energy_fn, base, x, settings, *, reverse, generator):
    """Move the chains ``x`` along the geometric path; return their final states and log weights.

    The one annealing loop of forward and reverse AIS. ``reverse=False``
    walks the inverse temperatures from 0 (the base) to 1 (the model),
    ``reverse=True`` from 1 to 0. Before each move to the next temperature
    ``b_k`` the log weight gains ``(b_k - b_{k-1}) (-E(x) - log q(x))``; a
    move is ``n_steps`` Langevin steps that leave ``pi_{b_k}`` invariant. The
    mean weight is unbiased for ``Z`` forward and for ``1 / Z`` in reverse
    (from exact samples of the model).
    """
    betas = settings["betas"][::-1] if reverse else settings["betas"]
    n_steps, metropolis = settings["n_steps"], settings["metropolis"]
    batch_size = len(x) if settings["batch_size"] is None else settings["batch_size"]

    def annealed(beta):
        def fn(x):
            return beta * energy_fn(x) - (1.0 - beta) * base.log_prob(x)

        return fn

    def log_ratio(x):  # -E(x) - log q(x)
        return -energy_fn(x).double() - base.log_prob(x).double()

    noise = as_noise(None, generator)
    log_w = torch.zeros(len(x), dtype=torch.float64, device=x.device)
    eps = settings["step_size"]
    for k in range(1, len(betas)):
        log_w += (betas[k] - betas[k - 1]) * _batched(log_ratio, x, batch_size).to(log_w.device)
        if not n_steps:
            continue
        fn = annealed(float(betas[k]))

        def move(part, fn=fn, eps=eps):
            out, rate = _run(fn, part, n_steps, eps, metropolis=metropolis, noise=noise)
            return out, torch.tensor([rate * len(part)], dtype=torch.float64)

        x, accepted = batched(move, x, batch_size, grad=None)
        if metropolis and settings["adapt_step_size"]:
            eps *= math.exp(float(accepted.sum()) / len(x) - settings["target_acceptance"])
    return x, log_w


def _log_mean_exp(log_w):
    """``log mean(w)`` of log weights and its delta-method standard error ``sd(w) / (mean(w) sqrt(N))``."""
    top = log_w.max()
    w = torch.exp(log_w - top)
    mean = w.mean()
    return float(top + torch.log(mean)), float(w.std() / (mean * math.sqrt(len(w))))
