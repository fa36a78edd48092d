"""Sphinx configuration of the skebm documentation.

Build with ``make docs`` (warnings are errors; runs every gallery example)
or ``make docs-fast`` / ``SKEBM_DOCS_FAST=1`` (no example is run). See the
"Building the docs" section of ``install.rst``.

The API reference has one page per section of :data:`API_SECTIONS` (one
module each), written at build time by :func:`write_api_pages` from the
modules' ``__all__``: a new public name gets its page without editing any
``.rst`` file, in the sub-group its section's rules give it (or the one of
its kind: classes, functions, constants), and a module that does not exist
yet is simply skipped.
"""

import importlib
import os
import re
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE / "sphinxext"))

import skebm  # noqa: E402


def _env_flag(name):
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


#: ``SKEBM_DOCS_FAST=1``: build without running the gallery examples (the
#: same as ``-D plot_gallery=0``).
DOCS_FAST = _env_flag("SKEBM_DOCS_FAST")

project = "skebm"
author = "the skebm developers"
copyright = "the skebm developers"
version = release = skebm.__version__

# The repository link (header icon, citing page) comes from pyproject.toml's
# [project.urls] Repository: the one place it is written.
import tomllib  # noqa: E402

_URLS = tomllib.loads((HERE.parent / "pyproject.toml").read_text()).get("project", {}).get("urls", {})
REPOSITORY_URL = _URLS.get("Repository") or _URLS.get("Source")
rst_epilog = (f".. |repository| replace:: `the skebm repository <{REPOSITORY_URL}>`__\n" if REPOSITORY_URL
              else ".. |repository| replace:: the repository this documentation was built from (``README.md``)\n")

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    # Bundles MathJax 3 and points mathjax_path at _static/mathjax/: math
    # renders without the CDN (offline, behind firewalls).
    "sphinx-mathjax-offline",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    # docs/sphinxext: offline links to sklearn, torch, numpy, skorch, ... (no intersphinx download)
    "external_links",
    # docs/sphinxext: every class page documents its public methods (checked on the built HTML)
    "api_check",
    # docs/sphinxext: :report:`name` and .. report-table:: read figures from benchmarks/reports/
    "report_figures",
    # docs/sphinxext: .. gallery-figure:: puts a gallery example's figure in a user-guide page
    "gallery_figures",
]

# Every cross-reference must resolve (make docs / docs-fast pass -n as well).
nitpicky = True

templates_path = ["_templates"]
exclude_patterns = ["_build", "_api_*.rst", "sphinxext", "**.ipynb_checkpoints"]
root_doc = "index"
default_role = "obj"

# --------------------------------------------------------------- API reference
def _names(*names):
    """Matcher: the public names given."""
    wanted = set(names)
    return lambda name, obj: name in wanted


def _subclass_of(dotted):
    """Matcher: classes derived from ``dotted`` (False when it does not import)."""
    modname, _, attr = dotted.rpartition(".")

    def match(name, obj):
        try:
            base = getattr(importlib.import_module(modname), attr)
        except (ImportError, AttributeError):
            return False
        return isinstance(obj, type) and issubclass(obj, base)

    return match


def _defined_in(*modules):
    """Matcher: objects (or, for constants, their type) defined in ``modules``."""

    def match(name, obj):
        where = getattr(obj, "__module__", None) if isinstance(obj, type) or callable(obj) else None
        where = where or type(obj).__module__
        return any(where == m or where.startswith(m + ".") for m in modules)

    return match


def _any(*matchers):
    return lambda name, obj: any(m(name, obj) for m in matchers)


#: The sections of the API reference, in the order of the sidebar: one
#: module each, with its page ``api/<slug>``. ``groups`` are (title,
#: matcher) pairs tried in order; a name no matcher takes goes to ``rest``
#: (one heading for all kinds) or, without ``rest``, to "Classes",
#: "Functions" or "Constants". ``order`` lists names to put first in their
#: group; the others follow alphabetically.
API_SECTIONS = [
    {
        "module": "skebm",
        "slug": "estimators",
        "title": "Estimators",
        "description": "The scikit-learn estimators, the composition of energies and persistence.",
        "groups": [
            ("Estimators", _subclass_of("sklearn.base.BaseEstimator")),
            ("Composition and persistence", _names("compose", "save", "load")),
        ],
        "rest": "Utilities",
        "order": ["EBMGenerator", "EBMPurifier", "PurifiedClassifier", "EBMDensity", "NGEBMClassifier",
                  "compose", "save", "load"],
    },
    {
        "module": "skebm.density",
        "slug": "density",
        "title": "Density training methods",
        "description": "How EBMDensity trains its network: each method an object with its own parameters.",
        "groups": [("Methods", _subclass_of("skebm.density.DensityMethod"))],
        "order": ["QuadratureML", "ImportanceML", "LongrunML", "ScoreMatching", "DensityMethod", "fit_base_density"],
    },
    {
        "module": "skebm.mcmc",
        "slug": "mcmc",
        "title": "Samplers and chain initialisations",
        "description": "The samplers (Langevin, HMC, parallel tempering), where chains start, noise streams, "
                       "normalising constants.",
        "groups": [
            ("Samplers", _any(_names("LangevinSampler", "langevin"), _defined_in("skebm.mcmc._langevin"),
                              _defined_in("skebm.mcmc._hmc"), _defined_in("skebm.mcmc._tempering"),
                              _defined_in("skebm.mcmc._unrolled"))),
            ("Chain initialisations", _any(_subclass_of("skebm.mcmc.ChainInit"), _names("CHAIN_INITS"),
                                          _defined_in("skebm.mcmc._init"))),
            ("Chain start sources", _any(_names("NoiseSource", "GaussianMixtureSource"),
                                        _defined_in("skebm.mcmc._sources"))),
            ("Base densities", _any(_names("FlowSource", "fit_flow_source"), _defined_in("skebm.mcmc._flows"))),
            ("Langevin noise streams", _defined_in("skebm.mcmc._noise")),
            ("Normalising constants", _any(_defined_in("skebm.mcmc._ais"), _defined_in("skebm.mcmc._partition"))),
            ("Diagnostics", _defined_in("skebm.mcmc._diagnostics", "skebm.mcmc._convergence")),
        ],
        "order": ["LangevinSampler", "HMCSampler", "ParallelTempering", "langevin", "ChainInit", "make_chain_init",
                  "CHAIN_INITS"],
    },
    {
        "module": "skebm.nn",
        "slug": "nn",
        "title": "Energy networks",
        "description": "Networks mapping a batch to energies or logits.",
        "groups": [("Networks", _subclass_of("torch.nn.Module"))],
    },
    {
        "module": "skebm.engine",
        "slug": "engine",
        "title": "Training engines and callbacks",
        "description": "The skorch nets that train the energies, their losses and callbacks.",
        "groups": [
            ("Engines (skorch nets)", _subclass_of("skorch.NeuralNet")),
            ("Losses", _subclass_of("torch.nn.Module")),
            ("Callbacks", _subclass_of("skorch.callbacks.Callback")),
            ("Exceptions", _subclass_of("builtins.BaseException")),
        ],
    },
    {
        "module": "skebm.metrics",
        "slug": "metrics",
        "title": "Metrics",
        "description": "Calibration, sample quality and OOD detection.",
        "groups": [
            ("Calibration", lambda name, obj: "calibration" in name),
            ("Sample quality", _names("frechet_distance", "mmd")),
            ("Out-of-distribution detection", lambda name, obj: name.startswith("ood_")),
        ],
    },
    {
        "module": "skebm.attacks",
        "slug": "attacks",
        "title": "Attacks",
        "description": "Adversarial attacks and robust-accuracy evaluation.",
    },
    {
        "module": "skebm.datasets",
        "slug": "datasets",
        "title": "Datasets",
        "description": "Toy densities, small image and tabular sets; nothing downloaded.",
    },
    {
        "module": "skebm.presets",
        "slug": "presets",
        "title": "Presets",
        "description": "The papers' published configurations as estimator parameters (``from_preset``).",
    },
    {
        "module": "skebm.plotting",
        "slug": "plotting",
        "title": "Plotting",
        "description": "Sample grids, energy landscapes, diagnostics.",
    },
    {
        "module": "skebm.utils.estimator_checks",
        "slug": "estimator_checks",
        "title": "Estimator checks",
        "description": "skebm's API contract as pytest checks, for skebm's estimators and those built on it.",
    },
]

_KINDS = (("class", "Classes", "class.rst"), ("function", "Functions", "function.rst"),
          ("data", "Constants", "data.rst"))


def _public_names(module):
    return [name for name in getattr(module, "__all__", []) if not name.startswith("_")]


def _kind(obj):
    return "class" if isinstance(obj, type) else "function" if callable(obj) else "data"


def _heading(text, char):
    return [text, char * len(text), ""]


def _autosummary(names, template):
    # the templates live in _templates/autosummary/: the path is relative to templates_path
    return [".. autosummary::", "   :toctree: ../generated/", f"   :template: autosummary/{template}", "",
            *(f"   {name}" for name in names), ""]


def _group_entries(section, module, seen):
    """``{group title: {kind: [names]}}`` of one section, in page order."""
    order = {name: i for i, name in enumerate(section.get("order", []))}
    groups = {title: {} for title, _ in section.get("groups", [])}
    rest = section.get("rest")
    for name in _public_names(module):
        obj = getattr(module, name)
        if id(obj) in seen:  # exported by several modules: listed under the first
            continue
        seen.add(id(obj))
        kind = _kind(obj)
        title = next((t for t, match in section.get("groups", []) if match(name, obj)), None)
        if title is None:
            title = rest or dict((k, t) for k, t, _ in _KINDS)[kind]
        groups.setdefault(title, {}).setdefault(kind, []).append(name)
    key = lambda name: (order.get(name, len(order)), name.lower())  # noqa: E731
    titles = dict.fromkeys([t for t, _ in section.get("groups", [])] + [rest] + [t for _, t, _ in _KINDS])
    return {title: {kind: sorted(groups[title][kind], key=key) for kind, _, _ in _KINDS if kind in groups[title]}
            for title in titles if groups.get(title)}


def _write_if_changed(path, text):
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def write_api_pages(srcdir=HERE):
    """Write the API reference pages ``api/<slug>.rst`` and ``_api_index.rst``.

    One page per section of :data:`API_SECTIONS` whose module imports and
    has public names; stale pages and stubs are removed (an orphan page is
    a warning). Returns the pages written (their ``api/<slug>.rst`` paths)
    and the full names of the data objects (constants) listed.
    """
    api_dir = srcdir / "api"
    api_dir.mkdir(exist_ok=True)
    seen, documented, data_names, pages = set(), set(), [], []
    for section in API_SECTIONS:
        modname = section["module"]
        try:
            module = importlib.import_module(modname)
        except ImportError:
            continue
        groups = _group_entries(section, module, seen)
        if not groups:
            continue
        lines = [
            ".. DO NOT EDIT: written by docs/conf.py (write_api_pages) from the module's __all__.",
            "",
            f".. _api_{modname.replace('.', '_')}:",
            "",
            *_heading(section["title"], "="),
            f"Module :mod:`{modname}`. {section['description']}",
            "",
            f".. automodule:: {modname}",
            "   :no-members:",
            "",
            f".. currentmodule:: {modname}",
            "",
        ]
        for title, kinds in groups.items():
            lines += _heading(title, "-")
            for kind, _, template in _KINDS:
                if kinds.get(kind):
                    lines += _autosummary(kinds[kind], template)
                    documented.update(f"{modname}.{name}" for name in kinds[kind])
                    if kind == "data":
                        data_names += [f"{modname}.{name}" for name in kinds[kind]]
        _write_if_changed(api_dir / f"{section['slug']}.rst", "\n".join(lines))
        pages.append(section)
    index = [".. list-table::", "   :header-rows: 1", "   :widths: 30 20 50", "",
             "   * - section", "     - module", "     - contents"]
    for section in pages:
        index += [f"   * - :doc:`api/{section['slug']}`", f"     - :mod:`{section['module']}`",
                  f"     - {section['description']}"]
    index += ["", ".. toctree::", "   :hidden:", "", *(f"   api/{s['slug']}" for s in pages), ""]
    _write_if_changed(srcdir / "_api_index.rst", "\n".join(index))
    for page in api_dir.glob("*.rst"):
        if page.stem not in {s["slug"] for s in pages}:
            page.unlink()
    for stub in (srcdir / "generated").glob("*.rst"):
        if stub.stem not in documented:
            stub.unlink()
    return [f"api/{s['slug']}.rst" for s in pages], data_names


API_PAGES, API_DATA = write_api_pages()

autosummary_generate = API_PAGES
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
# Members whose docstrings are another project's (skorch's Checkpoint and
# cuda_dependent_attributes_, the namedtuple fields of ChainDraw) are not ours to validate.
numpydoc_validation_exclude = (
    {r"\.__init__$", r"\.forward$", r"\.cuda_dependent_attributes_$", r"\.TrainingCheckpoint\.(save_model|get_formatted_files)$",
     r"^skebm\.mcmc\.ChainDraw\.\w+$",
     # class-level constants (a str, a dict): autodoc shows the value, numpydoc would validate str's own docstring
     r"^skebm\.density\.\w+\.(name|defaults|network|schedule|updates_per_epoch)$",
     r"\.TrainingCheckpoint\.record_file$"}
    | {f"^{name}$" for name in API_DATA}
)

# ------------------------------------------------------------ sphinx-gallery
# A cold build runs every example and must stay within ten minutes: each
# example has a budget of SKEBM_DOCS_EXAMPLE_TIMEOUT seconds (default 100)
# and the gallery one of SKEBM_DOCS_GALLERY_TIMEOUT (default 540; see
# sphinxext/gallery_budget.py); past either the example is interrupted and
# the build fails. An example that raises fails the build too (strict: no
# only_warn_on_example_error). Examples whose source did not change since
# the last build in this checkout are not rerun (run_stale_examples=False,
# sphinx-gallery's MD5 cache under docs/auto_examples/).
sphinx_gallery_conf = {
    "examples_dirs": str(HERE.parent / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py",
    "plot_gallery": "False" if DOCS_FAST else "True",
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "run_stale_examples": False,
    "reset_modules": ("matplotlib", "gallery_budget.budget_guard"),
    "reset_modules_order": "both",
    "doc_module": ("skebm",),
    "backreferences_dir": "gen_modules/backreferences",
    "reference_url": {"skebm": None},
    "download_all_examples": False,
    "remove_config_comments": True,
    # sg_execution_times and each example's page report times from 5 s on
    "min_reported_time": 5,
    "write_computation_times": True,
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
    "icon_links": ([{"name": "Repository", "url": REPOSITORY_URL, "icon": "fa-brands fa-github"}]
                   if REPOSITORY_URL else []),
}
html_static_path = ["_static"]
# wide tables and long code lines scroll sideways
html_css_files = ["skebm.css"]
html_show_sourcelink = False


def _offline_execution_times(app, docname, source):
    """sphinx-gallery's "Computation times" pages load jQuery and DataTables from CDNs (a sortable
    table): drop that raw HTML, so the pages are a plain table (already sorted by time) that needs
    no network."""
    if docname.endswith("sg_execution_times"):
        source[0] = re.sub(r"\n  \.\. raw:: html\n\n(?:    .*\n|\n)*?(?=  \.\. list-table::)", "\n", source[0])


def setup(app):
    from gallery_budget import disarm

    app.connect("build-finished", disarm)
    app.connect("source-read", _offline_execution_times)
