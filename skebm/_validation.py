"""Parameter constraints, in scikit-learn's own vocabulary.

Every parameter of skebm (estimators, chain-initialisation strategies,
samplers) is declared as a scikit-learn constraint
(:mod:`sklearn.utils._param_validation`): one mechanism, one message
style, and :class:`~sklearn.utils._param_validation.InvalidParameterError`
(a ``ValueError`` and a ``TypeError``) for every bad value. The only
addition is that booleans are not numbers here: ``max_iter=True`` is an
error, not one update.
"""

from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions, validate_parameter_constraints

__all__ = [
    "Int", "Float", "StrOptions", "check_params", "POSITIVE_INT", "NONNEG_INT", "POSITIVE", "NONNEG", "PROB",
    "MAX_SCALE", "SCALE", "NONNEG_SCALE", "TEMPERATURE", "MAX_THREADS", "N_THREADS", "FINITE",
]


class _NoBool:
    def is_satisfied_by(self, val):
        return not isinstance(val, (bool, np.bool_)) and super().is_satisfied_by(val)


class _IntInterval(_NoBool, Interval):
    pass


class _RealInterval(_NoBool, Interval):
    pass


def Int(left, right=None, closed="left"):
    """An integer (not a bool) in ``[left, right]`` (``closed`` as in scikit-learn)."""
    return _IntInterval(Integral, left, right, closed=closed)


def Float(left, right=None, closed="left"):
    """A finite real number (not a bool) in the interval; NaN and inf never satisfy it."""
    return _RealInterval(Real, left, right, closed=closed)


POSITIVE_INT = Int(1)
NONNEG_INT = Int(0)
POSITIVE = Float(0, None, closed="neither")
NONNEG = Float(0, None, closed="left")
PROB = Float(0, 1, closed="both")
FINITE = Float(None, None, closed="neither")

#: Largest scale accepted for step sizes, noise scales, ``tau`` and learning rates. In the model's units
#: the data have unit scale, so a step of 1e6 already jumps a million data widths; torch computes with these
#: values in float32 and the samplers square them: 1e6 squared stays finite, while a float such as 1e300
#: overflows to inf or makes torch raise.
MAX_SCALE = 1e6
SCALE = Float(0, MAX_SCALE, closed="right")
NONNEG_SCALE = Float(0, MAX_SCALE, closed="both")
#: A temperature: energies are divided by it, so from 1 / MAX_SCALE to MAX_SCALE.
TEMPERATURE = Float(1.0 / MAX_SCALE, MAX_SCALE, closed="both")

#: Most torch threads a call may ask for (``n_threads``): above the cores of the largest machines, below
#: the counts at which starting the threads exhausts the process (10**6 threads end it).
MAX_THREADS = 1024
N_THREADS = Int(1, MAX_THREADS, closed="both")


def check_params(constraints, params, caller):
    """Validate ``params`` (a dict) against ``constraints``; raises InvalidParameterError.

    Parameters
    ----------
    constraints : dict
        Parameter name to a list of scikit-learn constraints.
    params : dict
        Parameter values; names without a constraint are not checked.
    caller : str
        Name used in the error message.
    """
    validate_parameter_constraints(constraints, params, caller_name=caller)
