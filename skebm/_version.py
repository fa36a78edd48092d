"""The skebm version (one place: the package, its pickles and its files read it here)."""

__version__ = "0.2.0"
