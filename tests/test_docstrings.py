"""The numpydoc docstrings of the public API agree with the signatures.

Every documented parameter exists, every parameter is documented, and a
``default=...`` in a docstring is the value the signature really uses.
"""

import importlib
import inspect

import pytest
from numpydoc.docscrape import ClassDoc, FunctionDoc

MODULES = [
    "skebm", "skebm.density", "skebm.attacks", "skebm.datasets", "skebm.metrics", "skebm.mcmc", "skebm.nn",
    "skebm.plotting", "skebm.presets",
]


def _public_objects():
    seen = set()
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)) or id(obj) in seen:
                continue
            seen.add(id(obj))
            yield pytest.param(obj, id=f"{obj.__module__.split('._')[0]}.{name}")


def _split_top_level(text):
    """Split at the commas outside brackets: "(-3, 3), (-3, 3)" -> two items."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += char in "([{"
        depth -= char in ")]}"
        if char == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    return [*parts, text[start:].strip()]


def _documented(obj):
    doc = ClassDoc(obj, config={"show_class_members": False}) if inspect.isclass(obj) else FunctionDoc(obj)
    params = {}
    for p in doc["Parameters"]:
        names = [name.strip().lstrip("*") for name in p.name.split(",")]
        default = p.type.split("default=", 1)[1].strip() if "default=" in p.type else None
        # "low, high : float, default=-1, 1" documents two parameters with one default each
        defaults = _split_top_level(default) if default and len(names) > 1 else [default] * len(names)
        if len(defaults) != len(names):
            defaults = [default] * len(names)
        params.update(zip(names, defaults))
    return params


def _signature(obj):
    sig = inspect.signature(obj.__init__ if inspect.isclass(obj) else obj)
    return {
        name: p.default
        for name, p in sig.parameters.items()
        if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


@pytest.mark.parametrize("obj", list(_public_objects()))
def test_parameters_documented_with_their_defaults(obj):
    documented = _documented(obj)
    signature = _signature(obj)
    assert set(signature) <= set(documented), f"undocumented: {sorted(set(signature) - set(documented))}"
    mismatches = []
    for name, default in signature.items():
        text = documented[name]
        if text is None or default is inspect.Parameter.empty:
            continue
        if isinstance(default, str):
            ok = text.strip("\"'") == default
        elif isinstance(default, tuple):
            ok = text.replace(" ", "").replace('"', "'") == repr(default).replace(" ", "")
        elif isinstance(default, (bool, int, float)) or default is None:
            try:
                ok = repr(default) == text or (not isinstance(default, bool) and float(text) == float(default))
            except ValueError:
                ok = False
        else:
            continue
        if not ok:
            mismatches.append(f"{name}: docstring says {text!r}, signature has {default!r}")
    assert not mismatches, "\n".join(mismatches)


def test_every_shared_docstring_fragment_is_used_and_filled():
    import skebm
    from skebm._docs import SHARED_PARAMS

    estimators = [skebm.EBMGenerator, skebm.EBMPurifier, skebm.EBMDensity, skebm.NGEBMClassifier]
    docs = "\n".join(cls.__doc__ for cls in estimators)
    unused = [key for key, text in SHARED_PARAMS.items() if text not in docs]
    assert not unused, f"fragments no estimator uses: {unused}"
    for cls in estimators:
        left = [key for key in SHARED_PARAMS if "{" + key + "}" in cls.__doc__]
        assert not left, f"{cls.__name__} has unfilled placeholders {left}"
