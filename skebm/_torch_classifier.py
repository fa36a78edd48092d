"""The torch view of a classifier: user-range inputs to differentiable logits.

Below both the purifier (:class:`~skebm.PurifiedClassifier` averages torch
logits) and the attacks (which differentiate them): neither imports the
other for it. :func:`as_torch_classifier` is re-exported by
:mod:`skebm.attacks`, where users find it.
"""

import contextlib

import numpy as np
import torch
from sklearn.frozen import FrozenEstimator
from torch import nn

from ._torch_utils import batched

__all__ = ["TorchClassifier", "as_torch_classifier"]


def _unwrap(estimator):
    """The estimator inside a :class:`sklearn.frozen.FrozenEstimator` (else itself)."""
    return estimator.estimator if isinstance(estimator, FrozenEstimator) else estimator


def _module_device(module):
    for tensor in [*module.parameters(), *module.buffers()]:
        return tensor.device
    return torch.device("cpu")


@contextlib.contextmanager
def _eval_mode(module):
    """Put ``module`` in eval mode (dropout, batch norm) and restore it after."""
    if module is None:
        yield
        return
    modes = {m: m.training for m in module.modules()}
    module.eval()
    try:
        yield
    finally:
        for m, mode in modes.items():
            m.train(mode)


class TorchClassifier:
    """A differentiable view of a classifier: user-range inputs to logits.

    Built by :func:`as_torch_classifier`; not usually created directly.

    Parameters
    ----------
    logits_fn : callable
        Maps a float tensor of inputs (in the classifier's own input layout
        and value range, on ``device``) to a ``(n, n_classes)`` tensor of
        logits, differentiably.
    device : torch.device
        Device the inputs must be on.
    classes : ndarray or None
        Class label of each logit column; ``None`` when the labels are the
        column indices ``0 .. n_classes - 1``.
    module : torch.nn.Module, default=None
        Module put in eval mode while logits are computed.
    """

    def __init__(self, logits_fn, device, classes=None, module=None):
        self.logits_fn = logits_fn
        self.device = torch.device(device)
        self.classes_ = None if classes is None else np.asarray(classes)
        self.module = module

    def logits(self, x):
        """Differentiable logits of the tensor ``x`` (moved to ``device``)."""
        with _eval_mode(self.module):
            return self.logits_fn(x.to(self.device))

    def predict_logits(self, X, batch_size=1024):
        """Logits of an array ``X`` as a float64 ndarray, without gradients."""
        X = torch.as_tensor(np.asarray(X, dtype=np.float32))
        return batched(lambda x: self.logits(x).float().cpu(), X, batch_size).double().numpy()

    def encode(self, y):
        """Class labels -> logit column indices (int64 ndarray)."""
        y = np.asarray(y).ravel()
        if self.classes_ is None:
            if not np.issubdtype(y.dtype, np.integer):
                if np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)):
                    return y.astype(np.int64)
                raise ValueError("This classifier has no classes_: y must hold class indices 0 .. n_classes - 1.")
            return y.astype(np.int64)
        lookup = {c: i for i, c in enumerate(self.classes_.tolist())}
        try:
            return np.array([lookup[v] for v in y.tolist()], dtype=np.int64)
        except KeyError as exc:
            raise ValueError(f"y contains a label the classifier does not know: {exc.args[0]!r}.") from None


def _skorch_logits(net):
    module = net.module_
    criterion = getattr(net, "criterion_", None)
    raw = isinstance(criterion, nn.CrossEntropyLoss) and net.predict_nonlinearity == "auto"
    nonlin = None if raw else net._get_predict_nonlinearity()

    def logits_fn(x):
        out = module(x)
        if isinstance(out, tuple):
            out = out[0]
        if raw:
            return out
        # outputs mapped to probabilities by skorch: their log is a valid logit
        return torch.log(nonlin(out).clamp_min(1e-12))

    return logits_fn, module


def as_torch_classifier(classifier):
    """Wrap a classifier as a :class:`TorchClassifier` (logits of raw inputs).

    The attacks need logits as a differentiable function of the inputs in
    the user's own value range and layout (the ``X`` passed to the
    classifier's ``predict``). Accepted, in this order:

    1. An object with a ``torch_logits(X)`` method (the protocol): it takes
       a float tensor ``X`` shaped like the classifier's input and returns
       ``(n, n_classes)`` logits whose columns follow ``classes_``,
       differentiably; its optional ``torch_device`` attribute says where
       the inputs go (default CPU). Estimators that rescale inputs
       internally (e.g. :class:`~skebm.NGEBMClassifier`) implement it so that
       attacks perturb the user's values.
    2. A :class:`torch.nn.Module` returning ``(n, n_classes)`` logits;
       labels are the column indices.
    3. A fitted skorch ``NeuralNet`` (e.g. ``NeuralNetClassifier``):
       ``module_`` outputs, read as logits with ``CrossEntropyLoss``, else
       mapped to probabilities by the net's prediction nonlinearity and
       logged.

    A :class:`sklearn.frozen.FrozenEstimator` is unwrapped first.

    Parameters
    ----------
    classifier : object
        The classifier.

    Returns
    -------
    view : TorchClassifier

    Raises
    ------
    TypeError
        If the classifier exposes no differentiable torch module (e.g. a
        scikit-learn ``LogisticRegression``).

    Examples
    --------
    >>> import torch
    >>> from skebm.attacks import as_torch_classifier
    >>> view = as_torch_classifier(torch.nn.Linear(4, 3))
    >>> view.logits(torch.zeros(2, 4)).shape
    torch.Size([2, 3])
    """
    if isinstance(classifier, TorchClassifier):
        return classifier
    classifier = _unwrap(classifier)
    if callable(getattr(classifier, "torch_logits", None)):
        device = torch.device(getattr(classifier, "torch_device", "cpu"))
        return TorchClassifier(classifier.torch_logits, device, getattr(classifier, "classes_", None), None)
    if isinstance(classifier, nn.Module):
        return TorchClassifier(classifier, _module_device(classifier), None, classifier)
    try:
        from skorch import NeuralNet
    except ImportError:  # pragma: no cover - skorch is a dependency
        NeuralNet = ()
    if isinstance(classifier, NeuralNet):
        if not getattr(classifier, "initialized_", False):
            raise TypeError("The skorch net is not initialised: fit it first.")
        fn, module = _skorch_logits(classifier)
        return TorchClassifier(fn, classifier.device, getattr(classifier, "classes_", None), module)
    raise TypeError(
        f"{type(classifier).__name__} exposes no differentiable torch module: pass a torch.nn.Module, a "
        "fitted skorch net, or an object with a torch_logits(X) method (see as_torch_classifier)."
    )
