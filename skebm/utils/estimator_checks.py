"""skebm's own estimator checks, run on top of scikit-learn's.

As imbalanced-learn does for samplers, skebm checks the part of its
contract that scikit-learn's ``check_estimator`` does not know: the layout
and value-range round trip (2-D, DataFrame, 4-D images), save/load and
pickle, not-fitted errors, clear errors for bad input, declared parameter
constraints, the transactional ``fit`` (a failed fit changes nothing),
divergence recovery, Ctrl-C, warm starts, checkpoint-and-resume and
thread-safe seeded calls. Use :func:`parametrize_with_checks` in a test
module::

    from skebm.utils.estimator_checks import parametrize_with_checks

    @parametrize_with_checks([EBMGenerator(max_iter=4, n_steps=2)])
    def test_skebm_contract(estimator, check):
        check(estimator)

Each check takes a (small, fast) estimator instance and clones it.
"""

import functools
import io
import pickle
import tempfile
import threading
import warnings

import numpy as np
import pandas as pd

try:
    import pytest
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "skebm.utils.estimator_checks needs pytest: pip install pytest (or pip install 'skebm[test]')."
    ) from exc
import scipy.sparse as sp
import torch
from sklearn.base import clone, is_classifier
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import Callback

from ._fingerprint import assert_same_state, state_fingerprint

__all__ = ["InterruptAt", "parametrize_with_checks", "check_estimator", "yield_skebm_checks"]


# --------------------------------------------------------------- test data
@functools.lru_cache(maxsize=None)
def _digits():
    X, y = load_digits(return_X_y=True)
    return X[:120].astype(np.float64), y[:120]


def _data(est):
    """Data an estimator can be fitted on: digits for images and classifiers, a 2-D toy otherwise."""
    image_shape = getattr(est, "image_shape", None)
    if image_shape is not None or is_classifier(est):
        X, y = _digits()
        return X, (y if is_classifier(est) else None)
    rng = np.random.RandomState(0)
    X = np.concatenate([rng.normal(-1.0, 0.5, (60, 2)), rng.normal(1.5, 0.3, (60, 2))])
    return X, None


def _fit(est, X=None, y=None):
    X0, y0 = _data(est)
    X = X0 if X is None else X
    y = y0 if y is None and is_classifier(est) else y
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y) if y is not None else est.fit(X)


def _outputs(est, X):
    """The outputs of every prediction-side method, seeded: a fingerprint of the fitted model."""
    out = {}
    for name in ("score_samples", "predict_proba", "transform"):
        if hasattr(est, name):
            out[name] = np.asarray(getattr(est, name)(X[:6]))
    if hasattr(est, "sample"):
        out["sample"] = np.asarray(est.sample(4, random_state=0))
    return out


def _assert_same_outputs(a, b, exact=True):
    assert a.keys() == b.keys()
    for key in a:
        if exact:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        else:
            np.testing.assert_allclose(a[key], b[key], rtol=1e-4, atol=1e-5, err_msg=key)


def _params(est):
    """The parameters, a nested parameter object (EBMDensity's method) as its class and its own parameters."""
    params = est.get_params(deep=False)
    return {k: (type(v), v.get_params()) if hasattr(v, "get_params") and not isinstance(v, type) else v
            for k, v in params.items()}


class InterruptAt(Callback):
    """A callback that raises ``KeyboardInterrupt`` (Ctrl-C) once ``at`` updates are made.

    Parameters
    ----------
    at : int
        Update count (of the engine's history) after which to interrupt.
    """

    def __init__(self, at):
        self.at = at

    def on_batch_end(self, net, training=False, **kwargs):
        if training and net.n_updates() == self.at:
            raise KeyboardInterrupt


# ------------------------------------------------------------------ checks
def check_layouts(est):
    """2-D arrays, DataFrames and (for images) 4-D arrays come back in their own layout and range."""
    X, y = _data(est)
    fitted = _fit(clone(est), X, y)
    if hasattr(fitted, "sample"):
        s = fitted.sample(3, random_state=0)
        assert isinstance(s, np.ndarray) and s.shape == (3, X.shape[1])
        if getattr(fitted, "image_shape_", None) is not None:
            assert s.min() >= X.min() - 1e-9 and s.max() <= X.max() + 1e-9
    if hasattr(fitted, "transform"):
        t = fitted.transform(X[:3].astype(np.float32))
        assert isinstance(t, np.ndarray) and t.shape == (3, X.shape[1]) and t.dtype == np.float32
    columns = [f"f{i}" for i in range(X.shape[1])]
    frame = pd.DataFrame(X, columns=columns)
    fitted = _fit(clone(est), frame, y)
    assert list(fitted.feature_names_in_) == columns
    if hasattr(fitted, "sample"):
        s = fitted.sample(2, random_state=0)
        assert isinstance(s, pd.DataFrame) and list(s.columns) == columns
    if hasattr(fitted, "transform"):
        t = fitted.transform(frame.iloc[:2])
        assert isinstance(t, pd.DataFrame) and list(t.columns) == columns
    shape = getattr(est, "image_shape", None)
    if shape is not None:
        X4 = X.reshape(len(X), *shape).astype(np.float32)
        fitted = _fit(clone(est).set_params(image_shape=None), X4, y)
        assert fitted.image_shape_ == tuple(shape)
        if hasattr(fitted, "sample"):
            s = fitted.sample(2, random_state=0)
            assert s.shape == (2, *shape) and s.dtype == np.float32
        if hasattr(fitted, "transform"):
            assert fitted.transform(X4[:2]).shape == (2, *shape)
        with pytest.raises(ValueError, match="image shape"):
            fitted.score_samples(X4[:2].reshape(2, shape[0], shape[1] // 2, shape[2] * 2))


def check_uint8_input(est):
    """uint8 images are accepted as they are (no float64 copy) and rescaled like floats."""
    if getattr(est, "image_shape", None) is None:
        pytest.skip("uint8 input is checked on image estimators (image_shape set); this one takes flat features")
    X, y = _data(est)
    a = _fit(clone(est), X, y)
    b = _fit(clone(est), X.astype(np.uint8), y)
    np.testing.assert_allclose(b.rescaler_.center_, a.rescaler_.center_)
    np.testing.assert_allclose(b.score_samples(X[:4].astype(np.uint8)), b.score_samples(X[:4]), rtol=1e-5)


def check_not_fitted(est):
    """Every prediction-side method raises NotFittedError before fit."""
    X, _ = _data(est)
    for name in ("score_samples", "predict", "predict_proba", "transform", "decision_function"):
        if hasattr(est, name):
            with pytest.raises(NotFittedError):
                getattr(clone(est), name)(X[:2])
    if hasattr(est, "sample"):
        with pytest.raises(NotFittedError):
            clone(est).sample(2)


def check_bad_input(est):
    """NaN, inf, sparse, 3-D, empty and wrong-width input get clear errors, in fit and after."""
    X, y = _data(est)
    bad = [
        (np.where(np.arange(X.size).reshape(X.shape) == 3, np.nan, X), ValueError, "NaN"),
        (np.where(np.arange(X.size).reshape(X.shape) == 3, np.inf, X), ValueError, "infinity"),
        (sp.csr_matrix(X), TypeError, "[Ss]parse"),
        (X[:0], ValueError, "0 sample"),
        (X.reshape(len(X), 1, -1)[:, :, :], ValueError, "3 dimensions"),
    ]
    for Xb, error, match in bad:
        with pytest.raises(error, match=match):
            clone(est).fit(Xb, y if y is None or len(Xb) == len(y) else y[: len(Xb)])
    fitted = _fit(clone(est), X, y)
    with pytest.raises(ValueError, match="features"):
        fitted.score_samples(X[:3, :-1])


def check_parameters_declared(est):
    """Every parameter, nested ones too, has a constraint; non-finite numbers and booleans are refused."""
    params = est.get_params(deep=False)
    nested = [v for v in params.values() if hasattr(v, "get_params") and hasattr(type(v), "_parameter_constraints")]
    for owner in [est, *nested]:
        missing = sorted(set(owner.get_params(deep=False)) - set(type(owner)._parameter_constraints))
        assert not missing, f"parameters of {type(owner).__name__} without a constraint: {missing}"
    X, y = _data(est)
    for key in est.get_params(deep=True):  # nested ones too, as GridSearchCV sets them (method__step_size)
        name = key.rsplit("__", 1)[-1]
        if name in ("lr", "step_size", "temperature", "max_iter"):
            for value in (float("inf"), float("nan"), True):
                with pytest.raises(ValueError, match=name):
                    clone(est).set_params(**{key: value}).fit(X, y)


def check_transactional_fit(est):
    """A fit that fails leaves an unfitted estimator unfitted and a fitted one exactly as it was."""
    X, y = _data(est)
    X_bad = X.copy()
    X_bad[0, 0] = np.nan
    fresh = clone(est)
    with pytest.raises(ValueError):
        fresh.fit(X_bad, y)
    with pytest.raises(NotFittedError):
        check_is_fitted(fresh)
    fitted = _fit(clone(est), X, y)
    before, outputs = state_fingerprint(fitted), _outputs(fitted, X)
    for kwargs in ({"warm_start": False}, {"warm_start": True}):
        fitted.set_params(**kwargs)
        with pytest.raises(ValueError):
            fitted.fit(X_bad, y)
        assert_same_state(state_fingerprint(fitted), before)
    fitted.set_params(warm_start=False)
    _assert_same_outputs(_outputs(fitted, X), outputs)


def check_divergence(est):
    """An absurd learning rate: a fit that cannot finish raises TrainingDivergedError and leaves no model.

    As the ``on_divergence`` documentation states: ``"raise"`` stops at the
    first diverged update; ``"recover"`` rolls back and halves the learning
    rate up to 5 times, which at ``lr=1e6`` cannot save 30 updates, then
    raises too.
    """
    from skebm.engine import TrainingDivergedError

    X, y = _data(est)
    for mode in ("raise", "recover"):
        wild = clone(est).set_params(lr=1e6, optimizer="sgd", on_divergence=mode, max_iter=30)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(TrainingDivergedError):
                wild.fit(X, y) if y is not None else wild.fit(X)
        with pytest.raises(NotFittedError):
            check_is_fitted(wild)


def check_interrupt(est):
    """Ctrl-C during a first fit keeps a usable model, warns, says so in ``interrupted_``; a refit keeps the old one."""
    X, y = _data(est)
    interrupted = clone(est).set_params(callbacks=[("interrupt", InterruptAt(2))], max_iter=max(est.max_iter, 5))
    with pytest.warns(UserWarning, match="interrupted"):
        interrupted.fit(X, y) if y is not None else interrupted.fit(X)
    assert interrupted.interrupted_ and interrupted.n_iter_ == 2
    for key, value in _outputs(interrupted, X).items():
        assert np.all(np.isfinite(value)), key
    # a refit without warm_start that is interrupted keeps the previous model, exactly
    refit = _fit(clone(est).set_params(max_iter=max(est.max_iter, 5)), X, y)
    before, outputs = state_fingerprint(refit), _outputs(refit, X)
    refit.set_params(callbacks=[("interrupt", InterruptAt(2))])
    with pytest.warns(UserWarning, match="previous model is kept"):
        refit.fit(X, y) if y is not None else refit.fit(X)
    assert_same_state(state_fingerprint(refit), before)
    _assert_same_outputs(_outputs(refit, X), outputs)


def check_warm_start(est):
    """A warm fit continues for max_iter more updates, applies a new lr, refuses a new network."""
    X, y = _data(est)
    warm = _fit(clone(est).set_params(warm_start=True), X, y)
    n = warm.n_iter_
    warm.set_params(lr=0.123)
    _fit(warm, X, y)
    assert warm.n_iter_ == n + (n if isinstance(est.max_iter, str) else est.max_iter)  # "auto": as many as the first fit
    assert all(g.get("initial_lr", g["lr"]) == 0.123 for g in warm.net_.optimizer_.param_groups)
    before = state_fingerprint(warm)
    warm.set_params(energy_params={"hidden_units": (7,)} if warm.image_shape_ is None else {"channels": (4,)})
    with pytest.raises(ValueError, match="warm_start"):
        warm.fit(X, y) if y is not None else warm.fit(X)
    assert_same_state(state_fingerprint(warm), before)


def check_resume_equals_uninterrupted(est):
    """Interrupted and resumed from a TrainingCheckpoint, a fit ends where an uninterrupted one does."""
    from skebm.engine import TrainingCheckpoint

    X, y = _data(est)
    base = clone(est).set_params(batch_size=32, max_iter=12, random_state=0)  # 4 updates per epoch
    plain = _fit(clone(base), X, y)
    with tempfile.TemporaryDirectory() as folder:
        first = clone(base).set_params(callbacks=[TrainingCheckpoint(folder), InterruptAt(6)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _fit(first, X, y)
        assert first.interrupted_
        resumed = _fit(clone(base).set_params(callbacks=[TrainingCheckpoint(folder)]), X, y)
    assert resumed.n_iter_ == plain.n_iter_
    for key, value in plain.net_.module_.state_dict().items():
        assert torch.equal(value, resumed.net_.module_.state_dict()[key]), key
    _assert_same_outputs(_outputs(plain, X), _outputs(resumed, X))


def check_threaded_seeded_calls(est):
    """Seeded fits and calls give the serial result when run in two threads at once."""
    X, y = _data(est)
    est = clone(est).set_params(random_state=3)
    serial = _outputs(_fit(clone(est), X, y), X)
    fitted = _fit(clone(est), X, y)
    results, errors = [None, None], []

    def work(i):
        try:
            results[i] = _outputs(_fit(clone(est), X, y), X) if i == 0 else _outputs(fitted, X)
        except Exception as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    # equal up to float rounding: oneDNN may split a convolution differently when two run at once, which
    # changes the last bits; a wrong random stream would change the results entirely
    for result in results:
        _assert_same_outputs(result, serial, exact=False)


def check_save_load(est):
    """skebm.save / skebm.load and pickle reproduce the fitted model; tampered files are refused."""
    import skebm

    X, y = _data(est)
    fitted = _fit(clone(est), X, y)
    buf = io.BytesIO()
    skebm.save(fitted, buf)
    buf.seek(0)
    loaded = skebm.load(buf)
    assert type(loaded) is type(fitted) and _params(loaded) == _params(fitted)
    _assert_same_outputs(_outputs(loaded, X), _outputs(fitted, X), exact=False)
    unpickled = pickle.loads(pickle.dumps(fitted))
    _assert_same_outputs(_outputs(unpickled, X), _outputs(fitted, X), exact=False)
    state = fitted.__getstate__()
    assert state["_skebm_version"] == skebm.__version__
    state["_skebm_version"] = "0.0.1"
    with pytest.warns(UserWarning, match="unpickle"):
        type(fitted).__new__(type(fitted)).__setstate__(state)
    tampered = io.BytesIO(buf.getvalue().replace(b'\\"class\\": \\"', b'\\"class\\": \\"X'))
    assert tampered.getvalue() != buf.getvalue()
    with pytest.raises(ValueError, match="skebm"):
        skebm.load(tampered)


CHECKS = (
    check_layouts,
    check_uint8_input,
    check_not_fitted,
    check_bad_input,
    check_parameters_declared,
    check_transactional_fit,
    check_divergence,
    check_interrupt,
    check_warm_start,
    check_resume_equals_uninterrupted,
    check_threaded_seeded_calls,
    check_save_load,
)


def yield_skebm_checks(estimator):
    """Yield skebm's checks for ``estimator``.

    Parameters
    ----------
    estimator : skebm estimator
        A small, fast instance.

    Yields
    ------
    check : callable
        Each takes the estimator.
    """
    yield from CHECKS


def check_estimator(estimator):
    """Run every skebm check on ``estimator`` (raises on the first failure).

    Parameters
    ----------
    estimator : skebm estimator
        A small, fast instance.
    """
    for check in yield_skebm_checks(estimator):
        check(estimator)


def parametrize_with_checks(estimators):
    """A pytest ``parametrize`` over (estimator, check) pairs, named ``Estimator-check``.

    Parameters
    ----------
    estimators : list of skebm estimators

    Returns
    -------
    decorator : callable
    """
    pairs = [(est, check) for est in estimators for check in yield_skebm_checks(est)]
    ids = [f"{type(est).__name__}-{check.__name__}" for est, check in pairs]
    return pytest.mark.parametrize("estimator, check", pairs, ids=ids)

