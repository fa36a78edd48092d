"""Convergence diagnostics of MCMC draws: effective sample size and split-R-hat.

Both follow ArviZ's definitions (Vehtari, Gelman, Simpson, Carpenter and
Bürkner, 2021, "Rank-normalization, folding, and localization: an improved
R-hat"): the bulk ESS and the rank-normalised split-R-hat by default, the
classic split versions on request. They are written here with numpy and
scipy (about 60 lines: an FFT autocovariance and Geyer's initial monotone
sequence) rather than imported: ArviZ's functions live in ``arviz-stats``,
whose releases need Python 3.11 (3.12 from 1.0) while skebm supports 3.10,
and the ``arviz`` package adds xarray and its data model; two array
functions do not warrant that dependency. ``tests/test_convergence.py``
checks the numbers against ``arviz_stats`` (in the ``test`` extra from
Python 3.11) to 1e-9.
"""

import numpy as np
import torch
from scipy import fft, stats

from .._validation import StrOptions, check_params

__all__ = ["effective_sample_size", "split_rhat"]


def _draws(chains, min_chains=1):
    """``chains`` as a float64 array ``(n_chains, n_draws, m)`` and the shape ``[...]`` of its elements."""
    if isinstance(chains, torch.Tensor):
        chains = chains.detach().to("cpu", torch.float64).numpy()
    try:
        ary = np.asarray(chains, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"chains must be a numeric array (numpy or torch), got {type(chains).__name__}.") from exc
    if ary.ndim < 2 or ary.shape[0] < min_chains or ary.shape[1] < 4:
        raise ValueError(
            f"chains must have shape (n_chains, n_draws[, ...]) with at least {min_chains} chain(s) and 4 draws, "
            f"got {ary.shape}."
        )
    return ary.reshape(ary.shape[0], ary.shape[1], -1), ary.shape[2:]


def _split(ary):
    """Each chain cut in two halves (the middle draw of an odd count dropped): ``(2 n_chains, n_draws // 2)``."""
    half = ary.shape[1] // 2
    return np.concatenate([ary[:, :half], ary[:, -half:]])


def _z_scale(ary):
    """Rank-normalise all draws together: normal quantiles of the fractional ranks (Blom's offset 3/8)."""
    ranks = stats.rankdata(ary, method="average").reshape(ary.shape)
    return stats.norm.ppf((ranks - 0.375) / (ary.size + 0.25))


def _rhat(ary):
    """Potential scale reduction of the chains (rows) of a 2-D array."""
    n = ary.shape[1]
    between = n * np.var(ary.mean(1), ddof=1)
    within = np.mean(np.var(ary, axis=1, ddof=1))
    return float(np.sqrt((between / within + n - 1) / n))


def _ess(ary):
    """Effective sample size of the draws of a 2-D array (chains in rows), Geyer's initial monotone sequence."""
    n_chains, n = ary.shape
    if np.ptp(ary) < np.finfo(float).resolution:  # constant draws: as ArviZ, their number
        return float(ary.size)
    centred = ary - ary.mean(1, keepdims=True)
    m = fft.next_fast_len(2 * n)
    spectrum = fft.rfft(centred, n=m, axis=1)
    acov = fft.irfft(spectrum * np.conjugate(spectrum), n=m, axis=1)[:, :n] / n  # per chain, biased (1/n)
    mean_var = acov[:, 0].mean() * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n + (np.var(ary.mean(1), ddof=1) if n_chains > 1 else 0.0)
    rho = 1.0 - (mean_var - acov.mean(0)) / var_plus  # autocorrelation per lag, combined across chains
    rho[0] = 1.0
    # Geyer's initial positive sequence: pairs of lags (t, t+1) while their sum stays positive...
    t, even, odd = 1, 1.0, rho[1]
    while t < n - 3 and even + odd > 0:
        even, odd = rho[t + 1], rho[t + 2]
        t += 2
    last = t - 2  # the sequence is rho[0..last]; then half of the next even lag if it counts
    extra = even if (t > 1 and even + odd >= 0) or even > 0 else 0.0
    # ... made monotone: each pair no larger than the one before
    pairs = np.minimum.accumulate(rho[: last + 1].reshape(-1, 2).sum(1)) if last > 0 else np.zeros(0)
    tau = max(-1.0 + 2.0 * pairs.sum() + extra, 1.0 / np.log10(ary.size))
    return float(ary.size / tau)


def _per_element(fn, ary, shape):
    out = np.array([fn(ary[:, :, j]) if np.all(np.isfinite(ary[:, :, j])) else np.nan for j in range(ary.shape[2])])
    return out.reshape(shape) if shape else float(out[0])


def effective_sample_size(chains, *, method="bulk"):
    r"""Effective sample size of MCMC draws, as ArviZ computes it.

    The number of independent draws that would estimate the mean as well
    as the correlated ones do: ``n_chains * n_draws / tau`` with the
    integrated autocorrelation time ``tau`` of the chains, estimated from
    their FFT autocovariance combined across chains and truncated by
    Geyer's initial monotone sequence (Geyer, 1992). ``"bulk"``: on the
    split, rank-normalised draws (Vehtari et al., 2021; ArviZ's default,
    robust to heavy tails); ``"mean"``: on the split draws themselves.

    Parameters
    ----------
    chains : array-like or torch.Tensor of shape (n_chains, n_draws) or (n_chains, n_draws, ...)
        Draws of each chain in order, e.g. the energy of each chain after
        each step. At least 4 draws. Extra dimensions are separate
        quantities, each with its own ESS.
    method : {"bulk", "mean"}, default="bulk"
        Rank-normalised split draws, or the classic split draws.

    Returns
    -------
    ess : float or ndarray of shape (...)
        One per element of the extra dimensions; NaN where a draw is not
        finite. Independent draws give about ``n_chains * n_draws``;
        positively correlated ones less.

    See Also
    --------
    split_rhat : Whether the chains agree with each other.

    Examples
    --------
    >>> import numpy as np
    >>> from skebm.mcmc import effective_sample_size
    >>> draws = np.random.default_rng(0).normal(size=(4, 1000))
    >>> 3400 < effective_sample_size(draws) < 4600
    True
    """
    check_params({"method": [StrOptions({"bulk", "mean"})]}, {"method": method}, "effective_sample_size")
    ary, shape = _draws(chains)

    def ess(a):
        split = _split(a)
        return _ess(_z_scale(split) if method == "bulk" else split)

    return _per_element(ess, ary, shape)


def split_rhat(chains, *, method="rank"):
    r"""Split-R-hat of MCMC draws, as ArviZ computes it.

    The potential scale reduction factor: the square root of the pooled
    variance of all draws over the mean variance within a chain, each chain
    cut in two halves first (so one drifting chain is seen too). Near 1
    when the chains sample the same distribution; ArviZ and Stan ask for
    below 1.01. ``"rank"``: the larger of the R-hat of the rank-normalised
    draws and of their folded version :math:`|x - \mathrm{median}|` (bulk
    and tails; Vehtari et al., 2021, ArviZ's default); ``"split"``: the
    classic split-R-hat of the draws (Gelman et al., 2013).

    Parameters
    ----------
    chains : array-like or torch.Tensor of shape (n_chains, n_draws) or (n_chains, n_draws, ...)
        Draws of each chain in order; at least 4 draws. One chain is
        compared with itself across its halves (ArviZ returns NaN there).
    method : {"rank", "split"}, default="rank"
        Rank-normalised (bulk and folded) or classic split-R-hat.

    Returns
    -------
    rhat : float or ndarray of shape (...)
        One per element of the extra dimensions; NaN where a draw is not
        finite or all draws are equal.

    See Also
    --------
    effective_sample_size : How many independent draws the chains are worth.

    Examples
    --------
    >>> import numpy as np
    >>> from skebm.mcmc import split_rhat
    >>> rng = np.random.default_rng(0)
    >>> round(float(split_rhat(rng.normal(size=(4, 1000)))), 2)
    1.0
    >>> split_rhat(rng.normal(size=(4, 1000)) + np.arange(4)[:, None]) > 1.5   # chains at different means
    True
    """
    check_params({"method": [StrOptions({"rank", "split"})]}, {"method": method}, "split_rhat")
    ary, shape = _draws(chains)

    def rhat(a):
        split = _split(a)
        if method == "split":
            return _rhat(split)
        with np.errstate(invalid="ignore", divide="ignore"):
            return max(_rhat(_z_scale(split)), _rhat(_z_scale(np.abs(split - np.median(split)))))

    with np.errstate(invalid="ignore", divide="ignore"):
        return _per_element(rhat, ary, shape)


def _energy_convergence(chain_energy):
    """``(ESS, R-hat)`` of the energy traces ``(n_chains, n_steps)`` of a run; NaN with fewer than 4 steps."""
    if chain_energy is None or chain_energy.ndim != 2 or chain_energy.shape[1] < 4:
        return float("nan"), float("nan")
    return float(effective_sample_size(chain_energy)), float(split_rhat(chain_energy))
