"""Build check: every class page of the API reference documents its public methods.

Run by the docs build (``build-finished``; ``make docs`` and ``make docs-fast``):
for each class page written from ``docs/_templates/autosummary/class.rst``,
every public method the class defines or inherits from skebm (and from
scikit-learn's mixins, not from ``BaseEstimator``, ``torch.nn.Module``,
``skorch.NeuralNet`` or a skorch ``Callback``: :data:`NOT_DOCUMENTED_FROM`,
the template's ``:inherited-members:``) must have its entry (the anchor
``id="<module>.<Class>.<method>"``) in the built HTML. A page that lost them
(the template not found, a method dropped) fails the build with the list.
"""

import importlib
import inspect
import re
from pathlib import Path

#: The template's ``:inherited-members:``: methods found first on these classes are not documented.
NOT_DOCUMENTED_FROM = ("BaseEstimator", "Module", "NeuralNet", "Callback", "BaseException", "dict", "tuple",
                       "object")
TEMPLATE = Path(__file__).resolve().parents[1] / "_templates" / "autosummary" / "class.rst"


def template_inherited_members():
    """The ``:inherited-members:`` classes the class template names."""
    match = re.search(r":inherited-members:\s*(.+)", TEMPLATE.read_text())
    return tuple(name.strip() for name in match.group(1).split(",")) if match else ()


def public_methods(cls):
    """Public methods the class page must document: the template's filter, applied as autodoc does."""
    names = []
    for name in dir(cls):
        if name.startswith("_"):
            continue
        for klass in cls.__mro__:
            if klass is not cls and klass.__name__ in NOT_DOCUMENTED_FROM:
                break
            if name in klass.__dict__:
                attr = klass.__dict__[name]
                if inspect.isfunction(attr) or isinstance(attr, (classmethod, staticmethod)):
                    names.append(name)
                break
    return sorted(names)


def missing_methods(html_dir, fullname):
    """Public methods of class ``fullname`` without an entry on its built page (None: no page)."""
    page = Path(html_dir) / "generated" / f"{fullname}.html"
    if not page.exists():
        return None
    modname, _, clsname = fullname.rpartition(".")
    cls = getattr(importlib.import_module(modname), clsname)
    html = page.read_text(encoding="utf-8")
    return [m for m in public_methods(cls) if f'id="{fullname}.{m}"' not in html]


def check_api_pages(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    from sphinx.errors import ExtensionError

    problems = {}
    for stub in sorted(Path(app.srcdir, "generated").glob("*.rst")):
        if ".. autoclass::" not in stub.read_text():
            continue
        missing = missing_methods(app.outdir, stub.stem)
        if missing is None:
            problems[stub.stem] = ["(no page)"]
        elif missing:
            problems[stub.stem] = missing
    if problems:
        raise ExtensionError("API pages missing public methods: " + "; ".join(
            f"{name}: {', '.join(ms)}" for name, ms in problems.items()))


def setup(app):
    assert template_inherited_members() == NOT_DOCUMENTED_FROM, "class.rst and api_check.py disagree"
    app.connect("build-finished", check_api_pages)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
