"""Time budget of the gallery examples, for sphinx-gallery's ``reset_modules``.

:func:`budget_guard` is called by sphinx-gallery before and after each
example (``reset_modules_order = "both"``). Before, it arms a ``SIGALRM``
for whichever ends first: the example's own budget,
``SKEBM_DOCS_EXAMPLE_TIMEOUT`` seconds (default :data:`DEFAULT_TIMEOUT`),
or what is left of the whole gallery's, ``SKEBM_DOCS_GALLERY_TIMEOUT``
seconds (default :data:`DEFAULT_GALLERY_TIMEOUT`); ``0`` turns either off.
An example still running then is interrupted with :class:`ExampleTimeout`,
which sphinx-gallery reports as a failing example, and the build stops
(``abort_on_example_error``). After, it disarms the alarm and logs how long
the example took.

Why: a cold ``make docs`` runs every example and must stay within ten
minutes; an example that grew slow fails after its budget, not 40 minutes
later. The alarm needs the main thread of a POSIX process, which is where
sphinx-gallery runs examples unless ``parallel`` is set; elsewhere the
guard only reports times.

Referenced by name (``"gallery_budget.budget_guard"``) so that the
configuration stays picklable.
"""

import os
import signal
import threading
import time
from pathlib import Path

from sphinx.util import logging

#: Seconds an example may run before it is interrupted (five examples of
#: at most this stay within the ten minutes of a cold build).
DEFAULT_TIMEOUT = 100
#: Seconds all the examples of one build may run together (the ten minutes
#: of a cold build, less the time Sphinx itself takes).
DEFAULT_GALLERY_TIMEOUT = 540

logger = logging.getLogger("skebm.gallery_budget")
_state = {"started": {}, "spent": 0.0, "previous_handler": None}


class ExampleTimeout(Exception):
    """An example ran past ``SKEBM_DOCS_EXAMPLE_TIMEOUT`` seconds."""


def _seconds(variable, default):
    value = os.environ.get(variable, "").strip()
    return float(value) if value else float(default)


def example_timeout():
    """The per-example limit in seconds from the environment (0: none)."""
    return _seconds("SKEBM_DOCS_EXAMPLE_TIMEOUT", DEFAULT_TIMEOUT)


def gallery_timeout():
    """The limit of all examples together in seconds (0: none)."""
    return _seconds("SKEBM_DOCS_GALLERY_TIMEOUT", DEFAULT_GALLERY_TIMEOUT)


def _can_alarm():
    return hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()


def _raise_timeout(message):
    def handler(signum, frame):
        raise ExampleTimeout(message)

    return handler


def _limit(name):
    """Seconds ``name`` may run, and the message when it does not stop."""
    own, total = example_timeout(), gallery_timeout()
    left = total - _state["spent"] if total > 0 else 0.0
    if total > 0 and (own <= 0 or left < own):
        return max(left, 0.01), (
            f"{name}: the gallery ran past its budget of {total:g} s (SKEBM_DOCS_GALLERY_TIMEOUT; "
            f"{_state['spent']:.0f} s spent before this example); make the examples cheaper"
        )
    return own, (
        f"{name} ran past its budget of {own:g} s (SKEBM_DOCS_EXAMPLE_TIMEOUT); "
        "make the example cheaper, or raise the budget for a local build"
    )


def _disarm_alarm():
    if _can_alarm():
        signal.setitimer(signal.ITIMER_REAL, 0)
        if _state["previous_handler"] is not None:
            signal.signal(signal.SIGALRM, _state["previous_handler"])
            _state["previous_handler"] = None


def budget_guard(gallery_conf, fname, when):
    """Arm (``when="before"``) or disarm (``"after"``) the example's alarm."""
    if fname is None:  # called on entering a gallery directory
        return
    name = Path(fname).name
    if when == "before":
        _state["started"][name] = time.perf_counter()
        limit, message = _limit(name)
        if limit > 0 and _can_alarm():
            previous = signal.signal(signal.SIGALRM, _raise_timeout(message))
            if _state["previous_handler"] is None:
                _state["previous_handler"] = previous
            signal.setitimer(signal.ITIMER_REAL, limit)
        return
    _disarm_alarm()
    start = _state["started"].pop(name, None)
    if start is not None:
        elapsed = time.perf_counter() - start
        _state["spent"] += elapsed
        own, total = example_timeout(), gallery_timeout()
        budget = f" (budget {own:g} s)" if own > 0 else ""
        gallery = f" of {total:g} s" if total > 0 else ""
        logger.info(f"[gallery budget] {name}: {elapsed:.1f} s{budget}; "
                    f"all examples so far {_state['spent']:.1f} s{gallery}")


def disarm(app, exception):
    """``build-finished``: never leave an alarm pending (an aborted example)."""
    _disarm_alarm()
