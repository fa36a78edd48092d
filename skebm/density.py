"""EBMDensity: a longrun energy-based model with a normalised density."""

import math
import numbers

import numpy as np
import torch
from sklearn.base import DensityMixin
from skorch.callbacks import Callback, LRScheduler
from threadpoolctl import threadpool_limits
from torch import nn

from ._base import BaseEBM, _draw_seed, seed_everything
from ._docs import fill_doc
from .mcmc import (
    GaussianMixtureSource,
    LongrunInit,
    NoiseSource,
    ais_log_partition,
    chain_diagnostics,
    grid_log_partition,
    make_chain_init,
)
from .nn import make_energy, output_to_energy

__all__ = ["EBMDensity"]

_BASE_COMPONENTS = (1, 2, 4, 8, 16, 32, 48, 64)


class _TiltedEnergy(nn.Module):
    """Full energy ``E(z) = f(z) + T (-log q(z) + |z|^2 / (2 tau^2))`` of EBMDensity.

    ``f = M tanh(g / M)`` is the trained network ``g`` bounded softly to
    ``(-M, M)`` (``M = bound``; no bound when None), ``q`` the (fixed) base
    density and ``tau`` the optional Gaussian prior, so ``exp(-E / T)`` is
    the unnormalised model density ``q(z) exp(-f(z) / T - |z|^2 / (2
    tau^2))``.
    """

    def __init__(self, net, base=None, tau=None, temperature=1.0, bound=None, l2_reg=0.0):
        super().__init__()
        self.net = net
        self.base = base
        self.tau = tau
        self.temperature = temperature
        self.bound = bound
        self.l2_reg = l2_reg

    def penalty(self, x_pos, x_neg):
        """``l2_reg`` times the mean square of the raw network output on data and negatives.

        It acts on ``g`` before the bound, where ``tanh`` saturates and the
        likelihood gradient vanishes: a region that the bound has pinned at
        ``-M`` (or ``+M``) is pulled back as soon as chains (or data) visit.
        """
        if not self.l2_reg:
            return 0.0
        raw = output_to_energy(self.net(torch.cat([x_pos, x_neg])))
        return self.l2_reg * raw.pow(2).mean()

    def forward(self, x):
        energy = output_to_energy(self.net(x))
        if self.bound is not None:
            energy = self.bound * torch.tanh(energy / self.bound)
        if self.base is not None:
            with torch.autocast(device_type=x.device.type, enabled=False):  # log q in float32 under bf16
                log_q = self.base.log_prob(x.float())
            energy = energy - self.temperature * log_q
        if self.tau is not None:
            energy = energy + self.temperature * x.flatten(1).pow(2).sum(1) / (2.0 * self.tau**2)
        return energy


class _LinearDecay:
    """Picklable LambdaLR factor decaying linearly from 1 to ``floor``."""

    def __init__(self, total, floor=0.0):
        self.total = max(1, int(total))
        self.floor = floor

    def __call__(self, step):
        return max(self.floor, 1.0 - step / self.total)


class _AdaptStepSize(Callback):
    """Adapt the Langevin step size to a target MALA acceptance rate.

    After every update the step size is multiplied by
    ``exp(rate * (acceptance - target))``: a Robbins-Monro step on the log
    step size. Each chain step is still an exact MALA step.
    """

    def __init__(self, target=0.6, rate=0.05):
        self.target = target
        self.rate = rate

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        if not training:
            return
        acceptance = net.history[-1]["batches"][-1].get("acceptance")
        if acceptance is not None and math.isfinite(acceptance):
            net.sampler.step_size *= math.exp(self.rate * (acceptance - self.target))


@fill_doc
class EBMDensity(DensityMixin, BaseEBM):
    """Longrun energy-based density estimator with a normalised likelihood.

    The model density of the (internally standardised) data ``z`` is

    .. math::

        p(z) = \\frac{1}{Z} \\, q(z) \\exp\\left(-\\frac{f_\\theta(z)}{T}
        - \\frac{\\|z\\|^2}{2 \\tau^2}\\right),

    an exponential tilt of a tractable base density ``q`` (a Gaussian
    mixture fitted to the data, see ``base``) by an energy network
    :math:`f_\\theta` whose output layer starts at zero, so that training
    starts from ``p = q``. :math:`f_\\theta` is trained by maximum
    likelihood with Langevin negatives from *longrun* chains (EBM Life
    Cycle): a burn-in bank of chains drawn from ``q`` with staggered update
    counters feeds an update bank that is never reset and supplies the
    negatives (:class:`~skebm.mcmc.LongrunInit`). Chains are
    Metropolis-adjusted (MALA) by default, so their steady state is the
    model density itself, and the step size adapts to a target acceptance
    rate. After fitting, ``log Z`` is computed by grid quadrature for one or
    two features and by annealed importance sampling (AIS) from ``q``
    otherwise, so :meth:`score_samples` is a normalised log-density in the
    units of ``X``.

    Read more in the :ref:`User Guide <density>`.

    Parameters
    ----------
    {energy}
        The default MLP gets 64 random Fourier features of its input (see
        :class:`~skebm.nn.MLPEnergy`) unless ``energy_params`` says
        otherwise.
    {energy_params}
    {image_shape}
    base : {"gmm", "gaussian"} or None, default="gmm"
        Base density ``q``: a full-covariance Gaussian mixture fitted to
        the standardised data (components from ``base_components``), a
        single Gaussian, or none (then ``tau`` must bound the density). It
        also supplies fresh chains and the start of AIS.
    base_components : int, "cv" or "bic", default="cv"
        Components of the ``"gmm"`` base; ``"cv"`` picks among 1, 2, 4, 8,
        16, 32, 48 and 64 components (at most ``n_samples / 20``), full or
        diagonal covariances, the mixture with the best 3-fold
        cross-validated log-likelihood; ``"bic"`` picks the number of
        full-covariance components with the lowest Bayesian information
        criterion (cheaper, fewer components).
    tau : float or None, default=None
        Scale of the Gaussian prior ``|z|^2 / (2 tau^2)`` (standardised
        units) added to the energy, as in EBM Life Cycle; required when
        ``base=None``.
    tilt_bound : float or None, default=6.0
        The tilt is bounded softly, ``f = M tanh(g / M)`` with ``M =
        tilt_bound`` and ``g`` the network, so the model density stays
        within a factor ``exp(2 M)`` of ``q``: mass cannot pile up where no
        chain goes, and training cannot diverge. ``None`` leaves ``f``
        unbounded.
    max_iter : int, default=1500
        Number of parameter updates, rounded up to whole epochs of
        ``ceil(n_samples / batch_size)`` updates (batches are drawn with
        replacement). The learning rate decays linearly to zero over them.
    batch_size : int, default=256
        Data samples and negatives per update.
    lr : float, default=3e-3
        Initial learning rate.
    {optimizer}
    n_steps : int, default=20
        Langevin steps per update, for the negatives and the burn-in chains.
    step_size : float, default=0.1
        Initial Langevin step size (standardised units); adapted during
        training when ``target_acceptance`` is set (final value:
        ``step_size_``).
    noise_scale : float or None, default=None
        Standard deviation of the Langevin noise; ``None`` uses
        ``step_size`` (exact Langevin dynamics).
    temperature : float, default=1.0
        Temperature ``T`` of the tilt ``exp(-f / T)``.
    metropolis : bool, default=True
        Metropolis-adjusted Langevin (MALA) chains: exact steady state.
    target_acceptance : float or None, default=0.6
        MALA acceptance rate the step size is adapted to; ``None`` keeps
        ``step_size`` fixed.
    independence_proposals : bool, default=True
        Start every chain update with an independence Metropolis-Hastings
        move that proposes a fresh draw from the base density
        (:func:`~skebm.mcmc.independence_mh`). Local Langevin steps never
        cross between well separated modes, so without these moves the
        chains keep whatever share of each mode they started with and the
        relative weights of the modes go unlearned; with them the chains
        follow the model's weights exactly. Needs a base density.
    init : {"longrun", "persistent", "replay", "noise", "data"} or ChainInit, default="longrun"
        Chain initialisation (see :mod:`skebm.mcmc`); fresh chains come
        from the base density.
    buffer_size : int, default=4096
        Size of the update bank (longrun) or of the bank or buffer of the
        other strategies.
    burnin_size : int, default=1024
        Chains in the longrun burn-in bank.
    burnin_updates : int, default=20
        Updates (of ``n_steps`` steps) a burn-in chain receives before it
        moves into the update bank.
    reinit_prob : float, default=0.0
        Rejuvenation probability of the ``"persistent"`` and ``"replay"``
        strategies (the longrun update bank is never reset).
    l2_reg : float, default=0.01
        Weight of the L2 regulariser of the raw network output ``g``
        (before the ``tilt_bound``) on data and negatives. It keeps ``g``
        out of the saturated range of the bound, where the likelihood
        gradient vanishes.
    data_noise : float, default=0.03
        Standard deviation of Gaussian noise added to the standardised data
        in training: a smoothing of the target, like a kernel bandwidth,
        that keeps the network from carving a spike at each training
        point.
    log_partition : {"auto", "grid", "ais"}, default="auto"
        How ``log Z`` is computed: ``"auto"`` uses the grid for one or two
        features and AIS otherwise.
    grid_resolution : int or None, default=None
        Grid nodes per axis (odd); ``None`` uses 4097 in 1-D and, in 2-D,
        2 nodes per standard deviation of the narrowest base component
        (between 257 and 513).
    n_ais_chains : int, default=512
        Number of AIS chains.
    n_ais_temperatures : int, default=500
        Number of AIS temperatures (one MALA step each).
    n_sample_steps : int, default=200
        MALA steps :meth:`sample` runs from the update bank.
    {device}
    {precision}
    {callbacks}
    {verbose}
    {warm_start}
    {random_state}

    Attributes
    ----------
    {fitted}
    rescaler_ : Rescaler
        The learned standardisation (its Jacobian enters the log-density).
    base_ : GaussianMixtureSource or None
        The base density in standardised units.
    log_partition_ : float
        ``log Z`` of the model in standardised units.
    log_partition_se_ : float
        Its standard error (AIS) or quadrature error estimate (grid).
    log_partition_method_ : str
        ``"grid"`` or ``"ais"``.
    step_size_ : float
        Langevin step size after adaptation.
    diagnostics_ : dict
        Convergence diagnostics: per update, ``"train_energy_data"``,
        ``"train_energy_chains"`` (mean energy of data and negatives),
        ``"train_acceptance"`` (MALA) and ``"train_jump_acceptance"``
        (independence moves); from a final run of 100
        further steps of the bank chains, ``"chain_energy"``,
        ``"chain_grad_norm"`` and ``"chain_acceptance"`` per step,
        ``"data_energy"`` and ``"energy_gap"`` (chains minus data, near 0 in
        a steady state). Plot them with
        :func:`skebm.plotting.plot_diagnostics`.

    See Also
    --------
    skebm.EBMGenerator : Shortrun EBM for synthesis (unnormalised).
    sklearn.neighbors.KernelDensity : Kernel density estimation.
    sklearn.mixture.GaussianMixture : Gaussian mixture density.

    Examples
    --------
    >>> import numpy as np
    >>> from skebm import EBMDensity
    >>> from skebm.datasets import make_toy_2d
    >>> X = make_toy_2d("moons", 500, random_state=0)
    >>> est = EBMDensity(max_iter=20, random_state=0).fit(X)
    >>> est.score_samples(X[:3]).shape
    (3,)
    >>> est.sample(4, random_state=0).shape
    (4, 2)
    """

    def __init__(
        self,
        energy="auto",
        *,
        energy_params=None,
        image_shape=None,
        base="gmm",
        base_components="cv",
        tau=None,
        tilt_bound=6.0,
        max_iter=1500,
        batch_size=256,
        lr=3e-3,
        optimizer="adam",
        n_steps=20,
        step_size=0.1,
        noise_scale=None,
        temperature=1.0,
        metropolis=True,
        target_acceptance=0.6,
        independence_proposals=True,
        init="longrun",
        buffer_size=4096,
        burnin_size=1024,
        burnin_updates=20,
        reinit_prob=0.0,
        l2_reg=0.01,
        data_noise=0.03,
        log_partition="auto",
        grid_resolution=None,
        n_ais_chains=512,
        n_ais_temperatures=500,
        n_sample_steps=200,
        device="auto",
        precision="fp32",
        callbacks=None,
        verbose=0,
        warm_start=False,
        random_state=None,
    ):
        self.energy = energy
        self.energy_params = energy_params
        self.image_shape = image_shape
        self.base = base
        self.base_components = base_components
        self.tau = tau
        self.tilt_bound = tilt_bound
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.n_steps = n_steps
        self.step_size = step_size
        self.noise_scale = noise_scale
        self.temperature = temperature
        self.metropolis = metropolis
        self.target_acceptance = target_acceptance
        self.independence_proposals = independence_proposals
        self.init = init
        self.buffer_size = buffer_size
        self.burnin_size = burnin_size
        self.burnin_updates = burnin_updates
        self.reinit_prob = reinit_prob
        self.l2_reg = l2_reg
        self.data_noise = data_noise
        self.log_partition = log_partition
        self.grid_resolution = grid_resolution
        self.n_ais_chains = n_ais_chains
        self.n_ais_temperatures = n_ais_temperatures
        self.n_sample_steps = n_sample_steps
        self.device = device
        self.precision = precision
        self.callbacks = callbacks
        self.verbose = verbose
        self.warm_start = warm_start
        self.random_state = random_state

    # ----------------------------------------------------------- validation
    def _check_params(self):
        if self.base not in ("gmm", "gaussian", None):
            raise ValueError(f"base must be 'gmm', 'gaussian' or None, got {self.base!r}.")
        bc = self.base_components
        if not (bc in ("cv", "bic") or (isinstance(bc, numbers.Integral) and not isinstance(bc, bool) and bc >= 1)):
            raise ValueError(f"base_components must be 'cv', 'bic' or a positive integer, got {bc!r}.")
        if self.tau is not None and (not isinstance(self.tau, numbers.Real) or not self.tau > 0):
            raise ValueError(f"tau must be None or a positive number, got {self.tau!r}.")
        if self.base is None and self.tau is None:
            raise ValueError("base=None needs a prior scale tau to keep the density normalisable.")
        for name in ("metropolis", "independence_proposals"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}.")
        ta = self.target_acceptance
        if ta is not None and (not isinstance(ta, numbers.Real) or not 0 < ta < 1):
            raise ValueError(f"target_acceptance must be None or in (0, 1), got {ta!r}.")
        if self.log_partition not in ("auto", "grid", "ais"):
            raise ValueError(f"log_partition must be 'auto', 'grid' or 'ais', got {self.log_partition!r}.")
        for name, low in (
            ("buffer_size", 1),
            ("burnin_size", 1),
            ("burnin_updates", 1),
            ("n_ais_chains", 2),
            ("n_ais_temperatures", 2),
            ("n_sample_steps", 0),
        ):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
        res = self.grid_resolution
        if res is not None and (not isinstance(res, numbers.Integral) or res < 5 or res % 2 == 0):
            raise ValueError(f"grid_resolution must be None or an odd integer >= 5, got {res!r}.")
        if self.tilt_bound is not None and (not isinstance(self.tilt_bound, numbers.Real) or not self.tilt_bound > 0):
            raise ValueError(f"tilt_bound must be None or a positive number, got {self.tilt_bound!r}.")
        for name in ("l2_reg", "data_noise", "reinit_prob"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Real) or value < 0:
                raise ValueError(f"{name} must be a non-negative number, got {value!r}.")

    # ------------------------------------------------------------ the model
    def _fit_rescaler(self, X):
        super()._fit_rescaler(X)
        # a fresh fit: learn the base density and restart the step size
        self.step_size_ = float(self.step_size)
        self.base_ = self._fit_base(self._to_model(X).reshape(len(X), -1).astype(np.float64))

    def _fit_base(self, Z):
        if self.base is None:
            return None
        from sklearn.mixture import GaussianMixture
        from sklearn.model_selection import KFold, cross_val_score

        seed = _draw_seed(self.random_state)
        if self.base == "gaussian":
            candidates = [(1, "full")]
        elif self.base_components in ("bic", "cv"):
            cap = max(1, len(Z) // 20)
            kinds = ("full",) if self.base_components == "bic" else ("full", "diag")
            candidates = [(k, kind) for k in _BASE_COMPONENTS if k <= cap for kind in kinds]
        else:
            candidates = [(min(int(self.base_components), len(Z)), "full")]

        def gmm(candidate):
            k, kind = candidate
            return GaussianMixture(k, covariance_type=kind, reg_covar=1e-6, random_state=seed)

        # small dense problems: BLAS threads only add overhead (30x on a busy machine)
        with threadpool_limits(limits=1, user_api="blas"):
            if len(candidates) == 1:
                best = candidates[0]
            elif self.base_components == "bic":
                best = min(candidates, key=lambda c: gmm(c).fit(Z).bic(Z))
            else:
                folds = KFold(3, shuffle=True, random_state=seed)
                best = max(candidates, key=lambda c: cross_val_score(gmm(c), Z, cv=folds).mean())
            return GaussianMixtureSource.from_estimator(gmm(best).fit(Z))

    def _noise_source(self):
        if getattr(self, "base_", None) is not None:
            return self.base_
        return NoiseSource("gaussian", loc=0.0, scale=1.0 if self.tau is None else min(1.0, float(self.tau)))

    def _make_energy(self, n_outputs):
        params = dict(self.energy_params or {})
        if self.energy in ("auto", "mlp") and self.image_shape_ is None:
            params.setdefault("fourier_features", 64)
            params.setdefault("fourier_scale", 3.0 * math.sqrt(2.0 / self.n_features_in_))
        net = make_energy(
            self.energy, n_features=self.n_features_in_, image_shape=self.image_shape_, n_outputs=1, params=params
        )
        if isinstance(self.energy, str):
            last = [m for m in net.modules() if isinstance(m, nn.Linear)][-1]
            with torch.no_grad():  # training starts from the base density: f = 0
                last.weight.zero_()
                last.bias.zero_()
        base = self.base_
        if base is not None:
            base.to(self._device)
        bound = None if self.tilt_bound is None else float(self.tilt_bound)
        return _TiltedEnergy(net, base, self.tau, float(self.temperature), bound, float(self.l2_reg))

    def _make_chain_init(self):
        if isinstance(self.init, str) and self.init == "longrun":
            return LongrunInit(
                buffer_size=self.buffer_size, burnin_size=self.burnin_size, burnin_updates=self.burnin_updates
            )
        return make_chain_init(self.init, buffer_size=self.buffer_size, reinit_prob=self.reinit_prob)

    def _sampler(self):
        proposal = self.base_ if (self.independence_proposals and self.base_ is not None) else None
        return self._langevin_sampler(metropolis=bool(self.metropolis), step_size=self.step_size_, proposal=proposal)

    def _make_net(self, n_samples, n_outputs):
        sampler = self._sampler()
        # l2_reg acts on the raw network output (the module's penalty), not on the full energy
        return self._make_ml_net(
            n_samples, n_outputs, chain_init=self._make_chain_init(), sampler=sampler, criterion__l2_reg=0.0
        )

    def _callbacks(self, total):
        callbacks = super()._callbacks(total)
        callbacks.append(
            ("lr_decay", LRScheduler(policy=torch.optim.lr_scheduler.LambdaLR, lr_lambda=_LinearDecay(total), step_every="batch"))
        )
        if self.metropolis and self.target_acceptance is not None:
            callbacks.append(("adapt_step_size", _AdaptStepSize(float(self.target_acceptance))))
        return callbacks

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None):
        """Fit the density to ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Training data; a DataFrame is accepted.
        y : ignored
            Not used, present for API consistency.

        Returns
        -------
        self : EBMDensity
            The fitted estimator.
        """
        self._check_params()
        Z = self._run_fit(X, None, n_outputs=1)
        self.step_size_ = float(self.net_.sampler.step_size)
        with seed_everything(self.random_state, self._device):
            self._compute_log_partition(Z)
            self._compute_diagnostics(Z)
        return self

    def _full_energy(self):
        module, temperature = self.net_.module_, float(self.temperature)
        return lambda x: module(x).float() / temperature

    def _grid_box(self, Z, n_dims):
        """A box holding the model's mass: the data, the bulk of the chains and of the base.

        With a bounded tilt the density is at most ``exp(2 M)`` times the
        base's, so the base's bulk (6 standard deviations around every
        component) bounds where mass can be; the chains show where it is.
        """
        bank = self.net_.chain_init_.starts(min(4096, max(len(Z), 1))).reshape(-1, n_dims).cpu().numpy()
        bank = bank[np.all(np.isfinite(bank), axis=1)]
        data = Z.reshape(len(Z), -1)
        lo, hi = data.min(0), data.max(0)
        if len(bank):
            lo = np.minimum(lo, np.quantile(bank, 0.001, axis=0))
            hi = np.maximum(hi, np.quantile(bank, 0.999, axis=0))
        if self.base_ is not None:
            means = self.base_.means.cpu().numpy()
            sd = np.sqrt(np.diagonal(self.base_.chol.cpu().numpy() @ np.swapaxes(self.base_.chol.cpu().numpy(), 1, 2), axis1=1, axis2=2))
            lo = np.minimum(lo, (means - 6 * sd).min(0))
            hi = np.maximum(hi, (means + 6 * sd).max(0))
        elif self.tau is not None:
            lo, hi = np.minimum(lo, -6 * self.tau), np.maximum(hi, 6 * self.tau)
        pad = 0.1 * (hi - lo) + 0.1
        return lo - pad, hi + pad

    def _grid_resolution(self, width, n_dims):
        """Nodes per axis: 2 per standard deviation of the narrowest base component.

        The trapezoidal rule on a Gaussian bump of standard deviation ``s``
        with spacing ``s / 2`` errs by about ``exp(-8 pi^2)``.
        """
        if n_dims == 1:
            return 4097
        res = 257
        if self.base_ is not None:
            chol = self.base_.chol.cpu().numpy()
            narrow = np.sqrt(np.linalg.eigvalsh(chol @ np.swapaxes(chol, 1, 2)).min())
            res = int(np.clip(2 * np.max(width) / max(narrow, 1e-12), 257, 513))
        return res + 1 - res % 2

    def _compute_log_partition(self, Z):
        energy = self._full_energy()
        n_dims = int(np.prod(self._feature_shape))
        method = self.log_partition
        if method == "auto":
            method = "grid" if n_dims <= 2 else "ais"
        if method == "grid" and n_dims > 2:
            raise ValueError(f"log_partition='grid' needs 1 or 2 features, the data has {n_dims}.")
        self.log_partition_method_ = method
        if method == "grid":
            lo, hi = self._grid_box(Z, n_dims)
            self.log_partition_, self.log_partition_se_ = grid_log_partition(
                lambda x: energy(x.to(self.net_.device)).cpu(),
                lo,
                hi,
                resolution=self.grid_resolution or self._grid_resolution(hi - lo, n_dims),
                return_error=True,
            )
            return
        base = self.base_
        if base is None:  # a Gaussian fitted to the data starts the annealing
            flat = Z.reshape(len(Z), -1).astype(np.float64)
            cov = np.atleast_2d(np.cov(flat, rowvar=False)) + 1e-3 * np.eye(n_dims)
            base = GaussianMixtureSource([1.0], flat.mean(0, keepdims=True), cov[None])
        base = base.to(self.net_.device)
        shape = self._feature_shape

        def flat_energy(x):
            return energy(x.reshape(len(x), *shape))

        self.log_partition_, self.log_partition_se_ = ais_log_partition(
            flat_energy,
            _FlatBase(base, shape),
            n_chains=self.n_ais_chains,
            n_temperatures=self.n_ais_temperatures,
            step_size=self.step_size_,
        )

    def _compute_diagnostics(self, Z):
        history = self.net_.history
        rows = [b for epoch in history for b in epoch["batches"]]
        diag = {
            "train_energy_data": [float(r.get("energy_data", np.nan)) for r in rows],
            "train_energy_chains": [float(r.get("energy_samples", np.nan)) for r in rows],
            "train_acceptance": [float(r.get("acceptance", np.nan)) for r in rows],
            "train_jump_acceptance": [float(r.get("jump_acceptance", np.nan)) for r in rows],
        }
        n = min(512, len(Z))
        chains = self.net_.chain_init_.starts(n)
        idx = torch.randperm(len(Z))[:n]
        data = torch.as_tensor(Z[idx.numpy()], device=self.net_.device)
        sampler = self._sampler()
        run = chain_diagnostics(self.net_.energy_fn(), data, chains, sampler, n_steps=100)
        diag.update(
            chain_energy=run["energy_chains"],
            chain_grad_norm=run["grad_norm"],
            chain_acceptance=run["acceptance"],
            data_energy=run["energy_data"],
            energy_gap=run["energy_gap"],
        )
        self.diagnostics_ = diag

    # --------------------------------------------------------------- scores
    def score_samples(self, X):
        """Normalised log-density of each sample, in the units of ``X``.

        ``log p(x) = -E(z) / T - log Z - sum(log scale)``, with ``z`` the
        standardised ``x`` and ``scale`` the per-feature standard deviations
        of the training data (the Jacobian of the standardisation), so the
        values are comparable with any other density estimator's.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)

        Returns
        -------
        log_density : ndarray of shape (n_samples,)
        """
        self._check_fitted()
        X = self._validate_X(X, reset=False)
        energy = self._energies(self._tensor(X)) / float(self.temperature)
        return -energy - self.log_partition_ - float(np.sum(np.log(self.rescaler_.scale_)))

    def score(self, X, y=None):
        """Mean log-likelihood per sample (nats), higher is better.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
        y : ignored

        Returns
        -------
        score : float
        """
        return float(np.mean(self.score_samples(X)))

    # --------------------------------------------------------------- sample
    def sample(self, n_samples=1, random_state=None, *, n_steps=None):
        """Draw samples from the steady state.

        Chains start from the update bank (chains that have run through the
        whole fit) and run ``n_steps`` further MALA steps.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples.
        random_state : int, RandomState instance or None, default=None
            Seed of the chains.
        n_steps : int, default=None
            Further Langevin steps; ``None`` uses ``n_sample_steps``.

        Returns
        -------
        X_new : ndarray or DataFrame
            Samples in the layout and value range of ``fit``'s ``X``.
        """
        self._check_fitted()
        if not isinstance(n_samples, numbers.Integral) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")
        n_steps = self.n_sample_steps if n_steps is None else n_steps
        if not isinstance(n_steps, numbers.Integral) or n_steps < 0:
            raise ValueError(f"n_steps must be a non-negative integer, got {n_steps!r}.")
        with seed_everything(random_state, self.net_.device):
            x0 = self.net_.chain_init_.starts(n_samples)
            out = self.net_.run_chains(x0, None, n_steps=n_steps, step_size=self.step_size_)
        return self._from_model(out)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


class _FlatBase:
    """A flat base density seen in the network's feature shape."""

    def __init__(self, base, shape):
        self.base = base
        self.shape = tuple(shape)

    def sample(self, n):
        return self.base.sample(n).reshape(n, *self.shape)

    def log_prob(self, x):
        return self.base.log_prob(x.reshape(len(x), -1))
