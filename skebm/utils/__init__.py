"""Utilities for developers of skebm and of estimators built on it (estimator checks)."""
