"""skorch callbacks used by the skebm engines."""

import math

from skorch.callbacks import Callback

__all__ = ["TrainingDivergedError", "DivergenceGuard", "ProgressBar"]


class TrainingDivergedError(RuntimeError):
    """Raised when training produced a non-finite or exploding loss."""


class DivergenceGuard(Callback):
    """Stop training with a clear error when the loss or energies blow up.

    EBM training with MCMC negatives can diverge (the energy of data and
    samples drifts apart without bound, or the loss becomes NaN). This
    callback checks every batch and raises :class:`TrainingDivergedError`
    instead of leaving a silent NaN model behind.

    Parameters
    ----------
    max_abs_energy : float, default=1e6
        Largest tolerated absolute mean energy.
    hint : str, default=None
        Advice appended to the error message; ``None`` gives the advice for
        maximum-likelihood training with MCMC negatives.
    """

    def __init__(self, max_abs_energy=1e6, hint=None):
        self.max_abs_energy = max_abs_energy
        self.hint = hint

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        if not training:
            return
        row = net.history[-1]["batches"][-1]
        loss = row.get("train_loss", 0.0)
        values = {k: row[k] for k in ("train_loss", "energy_data", "energy_samples") if k in row}
        bad = {k: v for k, v in values.items() if not math.isfinite(v)}
        big = {k: v for k, v in values.items() if k != "train_loss" and abs(v) > self.max_abs_energy}
        if bad or big:
            n_iter = sum(len(epoch["batches"]) for epoch in net.history)
            raise TrainingDivergedError(
                f"Training diverged at update {n_iter}: {bad or big} (loss {loss}). "
                + (self.hint or "Lower lr or step_size, raise l2_reg, or use fewer Langevin steps.")
            )


class ProgressBar(Callback):
    """A tqdm bar over all parameter updates, showing loss and energies.

    Parameters
    ----------
    total : int, default=None
        Number of updates the bar counts to.
    keys : tuple of str, default=("train_loss", "energy_data", "energy_samples")
        Batch-history entries shown in the bar's postfix.
    """

    def __init__(self, total=None, keys=("train_loss", "energy_data", "energy_samples")):
        self.total = total
        self.keys = keys

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        from tqdm.auto import tqdm

        self.bar_ = tqdm(total=self.total, desc=type(net).__name__, leave=True)

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        if not training:
            return
        row = net.history[-1]["batches"][-1]
        self.bar_.set_postfix({k.replace("energy_", "E_"): f"{row[k]:.3g}" for k in self.keys if k in row}, refresh=False)
        self.bar_.update(1)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        self.bar_.close()
