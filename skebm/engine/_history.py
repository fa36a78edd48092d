"""Reading the skorch history of an engine."""

__all__ = ["n_updates", "training_rows"]


def training_rows(history):
    """The batch rows of the training updates made (validation batches have rows of their own)."""
    return [row for epoch in history for row in epoch["batches"] if "train_loss" in row]


def n_updates(history):
    """Parameter updates recorded in a skorch history."""
    return len(training_rows(history))
