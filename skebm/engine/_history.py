"""Reading the skorch history of an engine."""

__all__ = ["n_updates", "training_rows", "check_history"]


def training_rows(history):
    """The batch rows of the training updates made (validation batches have rows of their own)."""
    return [row for epoch in history for row in epoch["batches"] if "train_loss" in row]


def n_updates(history):
    """Parameter updates recorded in a skorch history."""
    return len(training_rows(history))


def check_history(history, where):
    """``history`` if it has the structure of a skorch history read from a file; ValueError naming ``where`` if not.

    A list of epochs, each a dict (string keys) whose ``"batches"`` is a
    list of dicts (string keys): what :func:`n_updates` and the callbacks
    that replay a history read.

    Parameters
    ----------
    history : object
        A decoded history (a list, or a skorch ``History``).
    where : str
        What holds it, for the message.

    Returns
    -------
    history : list
    """
    def is_row(row):
        return isinstance(row, dict) and all(isinstance(k, str) for k in row)

    if not (isinstance(history, list) and all(
        is_row(epoch) and isinstance(epoch.get("batches"), list) and all(map(is_row, epoch["batches"]))
        for epoch in history
    )):
        raise ValueError(f"{where} is not a training history (a list of epochs, each with its list of batch rows).")
    return history
