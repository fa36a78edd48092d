"""Packaging: every third-party import of the core is a declared dependency,
optional ones are guarded, and the submodules are reachable lazily.

The installed-wheel check itself is ci/bare_install.sh (make bare-install-check).
"""

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import skebm

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "skebm"
#: import name -> distribution name, where they differ
DISTRIBUTION = {"sklearn": "scikit-learn", "PIL": "pillow", "torch_fidelity": "torch-fidelity",
                "pytorch_fid": "pytorch-fid"}
#: optional packages: imported only inside a function or a ``try: ... except ImportError``,
#: each with the message naming how to install it
OPTIONAL = {"mlxtend", "accelerate", "torchattacks", "torch-fidelity", "pytorch-fid", "pytest"}


def _declared():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    name = lambda req: re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0].lower()  # noqa: E731
    return {name(r) for r in meta["dependencies"]}


def _imports():
    """(module-level unguarded imports, guarded or function-level imports): top-level names."""
    top, guarded = set(), set()

    def visit(node, nested):
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Try))
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0:
                names = [child.module]
            else:
                visit(child, inner)
                continue
            (guarded if nested else top).update(n.split(".")[0] for n in names)

    for path in PACKAGE.rglob("*.py"):
        visit(ast.parse(path.read_text()), False)
    third = lambda names: {DISTRIBUTION.get(n, n).lower() for n in names  # noqa: E731
                           if n not in sys.stdlib_module_names and n != "skebm"}
    return third(top), third(guarded)


def test_module_level_imports_are_declared_dependencies():
    top, _ = _imports()
    assert top - _declared() == set(), "imported at module level but not in pyproject's dependencies"


def test_other_imports_are_declared_or_known_optional():
    top, guarded = _imports()
    assert "safetensors" in _declared()  # skebm.save / skebm.load
    assert guarded - _declared() - OPTIONAL == set(), "an optional import nobody declared or guarded"


def test_submodules_are_lazy_attributes():
    code = ("import sys, skebm; assert 'skebm.datasets' not in sys.modules and 'matplotlib' not in sys.modules; "
            "skebm.datasets.make_toy_2d; skebm.plotting; assert 'datasets' in dir(skebm)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    for name in skebm._SUBMODULES:
        assert getattr(skebm, name).__name__ == f"skebm.{name}"


def test_unknown_attribute_raises_attribute_error():
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        skebm.nope
