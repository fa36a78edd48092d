"""Helpers shared by the benchmark scripts (imported as ``_common``: the scripts run from this folder)."""

import ast


def parse_set(items):
    """``["name=value", ...]`` of a ``--set`` option as a dict; values are Python literals where they parse."""
    params = {}
    for item in items or []:
        name, _, value = item.partition("=")
        try:
            params[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            params[name] = value
    return params
