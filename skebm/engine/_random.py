"""Where :class:`RandomGenerators` lived before ``skebm/_random.py``: pickles of fitted estimators name it here."""

from .._random import RandomGenerators, seed_from

__all__ = ["RandomGenerators", "seed_from"]
