"""Offline links to other projects' documentation (no intersphinx download).

The docs build has no internet, so intersphinx cannot fetch the other
projects' ``objects.inv``. This extension resolves, in Sphinx's
``missing-reference`` event, every Python reference (``:class:``,
``:func:``, ``:meth:``, ...) whose target starts with a known project's
prefix to that project's documentation URL, built from the project's URL
pattern (:data:`PROJECTS`, with :data:`EXCEPTIONS` for the pages that do not
follow it). A reference that matches no prefix stays unresolved, so nitpicky
mode (``-n``) still reports our own broken references.
"""

from docutils import nodes

PY = "https://docs.python.org/3/"
SKLEARN = "https://scikit-learn.org/stable/"
TORCH = "https://pytorch.org/docs/stable/"
NUMPY = "https://numpy.org/doc/stable/reference/"

#: Aliases written in docstrings (``np.ndarray``), replaced before the lookup.
ALIASES = {"np.": "numpy.", "pd.": "pandas.", "sp.": "scipy.sparse.", "nn.": "torch.nn."}


def _generated(base):
    """Pattern: one page per object, ``{base}{object}.html``; members are anchors on their class's page."""

    def url(target, objtype):
        parts = target.split(".")
        if objtype in ("meth", "attr", "method", "attribute") and len(parts) > 2:
            return f"{base}{'.'.join(parts[:-1])}.html#{target}"
        return f"{base}{target}.html"

    return url


def _skorch(target, objtype):
    parts = target.split(".")
    # skorch.NeuralNet -> net.html; skorch.callbacks.Callback -> callbacks.html
    module = {"NeuralNet": "net", "NeuralNetClassifier": "classifier", "NeuralNetRegressor": "regressor"}.get(
        parts[1], parts[1]) if len(parts) > 1 else ""
    return f"https://skorch.readthedocs.io/en/stable/{module}.html#{target}"


def _python(target, objtype):
    name = target.rsplit(".", 1)[-1]
    if target in ("None", "True", "False", "NotImplemented", "Ellipsis"):
        return f"{PY}library/constants.html#{target}"
    if name.endswith(("Error", "Exception", "Warning", "Interrupt")) and "." not in target:
        return f"{PY}library/exceptions.html#{target}"
    if target in ("int", "float", "str", "bool", "dict", "list", "tuple", "set", "frozenset", "bytes", "object",
                  "range", "slice", "type", "complex"):
        page = "functions" if target in ("int", "float", "str", "bool", "object", "type", "complex",
                                         "slice", "range") else "stdtypes"
        return f"{PY}library/{page}.html#{target}"
    if target in ("callable", "iter", "len", "open", "print", "pickle"):
        return f"{PY}library/functions.html#{target}"
    module = target.split(".")[0]
    return f"{PY}library/{module}.html#{target}"


#: prefix -> function (target, objtype) -> URL; the longest matching prefix wins.
PROJECTS = {
    "sklearn.": _generated(f"{SKLEARN}modules/generated/"),
    "torch.": _generated(f"{TORCH}generated/"),
    "numpy.": _generated(f"{NUMPY}generated/"),
    "scipy.": _generated("https://docs.scipy.org/doc/scipy/reference/generated/"),
    "pandas.": _generated("https://pandas.pydata.org/docs/reference/api/"),
    "matplotlib.": _generated("https://matplotlib.org/stable/api/_as_gen/"),
    "skorch.": _skorch,
    "joblib.": _generated("https://joblib.readthedocs.io/en/stable/generated/"),
    "accelerate.": lambda t, o: "https://huggingface.co/docs/accelerate/package_reference/accelerator",
    "dask.": lambda t, o: "https://distributed.dask.org/en/stable/api.html",
    "torchvision.": lambda t, o: f"https://pytorch.org/vision/stable/generated/{t}.html",
}

#: Projects whose docstrings our classes inherit (scikit-learn's mixins, skorch's nets and
#: callbacks, torch's modules): the references inside those docstrings point into their own
#: documentation (labels, glossary terms, ``X`` as a default-role reference); they render as
#: plain text instead of warning.
FOREIGN_DOCSTRINGS = ("sklearn.", "skorch.", "torch.")

#: Pages that do not follow their project's pattern (modules, a few classes).
EXCEPTIONS = {
    "torch.Tensor": f"{TORCH}tensors.html#torch.Tensor",
    "torch.device": f"{TORCH}tensor_attributes.html#torch.device",
    "torch.dtype": f"{TORCH}tensor_attributes.html#torch.dtype",
    "torch.nn": f"{TORCH}nn.html",
    "torch.optim": f"{TORCH}optim.html",
    "torch.compile": f"{TORCH}generated/torch.compile.html",
    "torch.distributed": f"{TORCH}distributed.html",
    "torch.utils.data.Dataset": f"{TORCH}data.html#torch.utils.data.Dataset",
    "torch.utils.data.DataLoader": f"{TORCH}data.html#torch.utils.data.DataLoader",
    "torch.optim.lr_scheduler.LRScheduler": f"{TORCH}optim.html#how-to-adjust-learning-rate",
    "numpy.random.RandomState": f"{NUMPY}random/legacy.html#numpy.random.RandomState",
    "numpy.random.Generator": f"{NUMPY}random/generator.html#numpy.random.Generator",
    "numpy.random": f"{NUMPY}random/index.html",
    "numpy.ndarray": f"{NUMPY}generated/numpy.ndarray.html",
    "sklearn.datasets": f"{SKLEARN}api/sklearn.datasets.html",
    "sklearn.utils.Bunch": f"{SKLEARN}modules/generated/sklearn.utils.Bunch.html",
    "matplotlib.figure.Figure": "https://matplotlib.org/stable/api/figure_api.html#matplotlib.figure.Figure",
    "matplotlib.axes.Axes": "https://matplotlib.org/stable/api/_as_gen/matplotlib.axes.Axes.html",
    "scipy.sparse": "https://docs.scipy.org/doc/scipy/reference/sparse.html",
    "skorch": "https://skorch.readthedocs.io/en/stable/",
    "sklearn": f"{SKLEARN}api/index.html",
    "torch": f"{TORCH}index.html",
    "numpy": f"{NUMPY}index.html",
    "pandas.DataFrame": "https://pandas.pydata.org/docs/reference/api/pandas.DataFrame.html",
}

#: Python's builtins and standard library (no prefix to match on).
PYTHON_NAMES = {"None", "True", "False", "int", "float", "str", "bool", "dict", "list", "tuple", "set",
                "frozenset", "bytes", "object", "callable", "type", "complex", "slice", "range", "iter",
                "ValueError", "TypeError", "KeyError", "IndexError", "RuntimeError", "ImportError",
                "KeyboardInterrupt", "FileNotFoundError", "OSError", "NotImplementedError", "UserWarning",
                "RuntimeWarning", "FutureWarning", "DeprecationWarning", "Exception", "AttributeError",
                "MemoryError", "OverflowError", "StopIteration", "BaseException", "TimeoutError"}
PYTHON_MODULES = ("os.", "pathlib.", "pickle.", "io.", "threading.", "signal.", "typing.", "collections.",
                  "functools.", "contextlib.", "warnings.", "numbers.", "random.", "json.", "gzip.", "tarfile.",
                  "zipfile.", "time.", "concurrent.", "multiprocessing.", "inspect.", "math.", "abc.")


def external_url(target, objtype="obj"):
    """The documentation URL of ``target`` in another project, or None."""
    target = target.lstrip("~.")
    for alias, full in ALIASES.items():
        if target.startswith(alias):
            target = full + target[len(alias):]
    if target in EXCEPTIONS:
        return EXCEPTIONS[target]
    if target in PYTHON_NAMES or target.startswith(PYTHON_MODULES):
        return _python(target, objtype)
    for prefix in sorted(PROJECTS, key=len, reverse=True):
        if target.startswith(prefix):
            return PROJECTS[prefix](target, objtype)
    return None


def _own_docstring_missing(dotted):
    """True when ``dotted`` (a skebm method) has no docstring of its own: autodoc shows its parent's."""
    import importlib

    parts = dotted.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return callable(obj) and getattr(obj, "__doc__", "") is None
    return False


def _from_foreign_docstring(node):
    """The reference sits in a docstring written by another project (possibly inherited by one of ours)."""
    source = node.source or ""
    if "docstring of " not in source:
        return False
    dotted = source.split("docstring of ", 1)[1].split(":", 1)[0]
    return dotted.startswith(FOREIGN_DOCSTRINGS) or _own_docstring_missing(dotted)


def missing_reference(app, env, node, contnode):
    if _from_foreign_docstring(node):
        return contnode
    if node.get("refdomain") != "py":
        return None
    url = external_url(node.get("reftarget", ""), node.get("reftype", "obj"))
    if url is None:
        return None
    ref = nodes.reference("", "", internal=False, refuri=url, reftitle=node.get("reftarget"))
    ref += contnode
    return ref


def setup(app):
    # after Sphinx's own domains and intersphinx (priority 500): ours only where they found nothing
    app.connect("missing-reference", missing_reference, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
