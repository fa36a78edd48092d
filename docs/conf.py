"""Sphinx configuration of the skebm documentation.

Build with ``make docs`` (warnings are errors). The API reference lists
every public name of the modules in ``API_MODULES`` from their ``__all__``
at build time (:func:`write_api_autosummary`), so a new public name gets its
page without editing any ``.rst`` file, and a module that does not exist
yet is simply skipped.
"""

import importlib
import os
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import skebm  # noqa: E402

project = "skebm"
author = "the skebm developers"
copyright = "the skebm developers"
version = release = skebm.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "_api_autosummary.rst", "**.ipynb_checkpoints"]
root_doc = "index"
default_role = "obj"

# --------------------------------------------------------------- API reference
#: (module, section title, one-line description), in the order of the page.
API_MODULES = [
    ("skebm", "Estimators", "The scikit-learn estimators and the composition of energies."),
    ("skebm.nn", "Energy networks", "Networks mapping a batch to energies or logits."),
    ("skebm.mcmc", "MCMC", "The Langevin sampler and the chain-initialisation strategies."),
    ("skebm.engine", "Training engines", "skorch nets, losses and callbacks."),
    ("skebm.metrics", "Metrics", "Calibration, sample quality and OOD detection."),
    ("skebm.attacks", "Attacks", "Adversarial attacks and robust-accuracy evaluation."),
    ("skebm.datasets", "Datasets", "Toy densities and small image sets, nothing downloaded."),
    ("skebm.plotting", "Plotting", "Sample grids, energy landscapes, diagnostics."),
]


def _public_names(module):
    return [name for name in getattr(module, "__all__", []) if not name.startswith("_")]


def write_api_autosummary(path):
    """Write the autosummary tables of the API reference into ``path``.

    One section per module of :data:`API_MODULES` that can be imported; an
    object exported by several modules is listed under the first only.
    Returns the full names of the data objects (constants) listed.
    """
    seen = set()
    data_names = []
    documented = set()
    lines = []
    for modname, title, description in API_MODULES:
        try:
            module = importlib.import_module(modname)
        except ImportError:
            continue
        entries = {"class": [], "function": [], "data": []}
        for name in _public_names(module):
            obj = getattr(module, name)
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            kind = "class" if isinstance(obj, type) else "function" if callable(obj) else "data"
            entries[kind].append(name)
            documented.add(f"{modname}.{name}")
            if kind == "data":
                data_names.append(f"{modname}.{name}")
        if not any(entries.values()):
            continue
        lines += [
            f".. _api_{modname.replace('.', '_')}:",
            "",
            f"{title}: :mod:`{modname}`",
            "-" * (len(title) + len(modname) + 9),
            "",
            f".. automodule:: {modname}",
            "   :no-members:",
            "",
            description,
            "",
            f".. currentmodule:: {modname}",
            "",
        ]
        for kind, template in (("class", "class.rst"), ("function", "function.rst"), ("data", "data.rst")):
            if entries[kind]:
                lines += [".. autosummary::", "   :toctree: generated/", f"   :template: {template}", ""]
                lines += [f"   {name}" for name in sorted(entries[kind], key=str.lower)]
                lines.append("")
    text = "\n".join(lines)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    # stubs of names no longer public would be orphan pages (a warning)
    for stub in (HERE / "generated").glob("*.rst"):
        if stub.stem not in documented:
            stub.unlink()
    return data_names


API_DATA = write_api_autosummary(HERE / "_api_autosummary.rst")

autosummary_generate = ["_api_autosummary.rst"]
autosummary_generate_overwrite = True
autodoc_default_options = {"members": False}
autodoc_typehints = "none"
autoclass_content = "class"

# numpydoc: render the sections; the member tables are written by the
# autosummary class template, not by numpydoc.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
# Validation: every check except those some public docstring still fails
# (warnings fail the build). Codes:
# https://numpydoc.readthedocs.io/en/latest/validation.html
numpydoc_validation_checks = {
    "all",
    "ES01",  # no extended summary
    "EX01",  # no Examples section
    "SA01",  # no See Also section
    "PR01",  # a parameter not documented (methods with self-evident arguments)
    "PR07",  # a parameter without description
    "RT01",  # no Returns section (small helper methods)
    "RT02",  # named returns ("self : EBMGenerator") are our style
    "RT03",  # a return value without description
    "SS02",  # summary starting with a lower-case name ("skorch ...")
    "SS05",  # summary starting with a third-person verb
    "GL08",  # no docstring (inherited framework methods)
}
# Constants have the docstring of their type (dict, tuple): not validated.
numpydoc_validation_exclude = {r"\.__init__$", r"\.forward$"} | {f"^{name}$" for name in API_DATA}

# ------------------------------------------------------------ sphinx-gallery
sphinx_gallery_conf = {
    "examples_dirs": str(HERE.parent / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py",
    "abort_on_example_error": True,
    "doc_module": ("skebm",),
    "backreferences_dir": "gen_modules/backreferences",
    "reference_url": {"skebm": None},
    "download_all_examples": False,
    "remove_config_comments": True,
    "min_reported_time": 5,
    "matplotlib_animations": False,
}
# Examples draw with matplotlib's non-interactive backend.
os.environ.setdefault("MPLBACKEND", "Agg")
warnings.filterwarnings("ignore", category=UserWarning, message="Matplotlib is currently using agg")

# -------------------------------------------------------------------- HTML
html_theme = "pydata_sphinx_theme"
html_title = f"skebm {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_static_path = []
html_show_sourcelink = False
