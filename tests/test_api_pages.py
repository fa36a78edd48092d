"""The API reference documents every public method of every class.

Cheap checks of what the docs build is given (no build needed): the class
template is the one Sphinx finds, and it documents members, inherited ones
(from skebm's bases and scikit-learn's mixins) included. Where a build exists
(``make docs-fast``), each estimator's page is checked for an entry of every
public method; the docs build runs the same check on every class page
(docs/sphinxext/api_check.py) and fails without it.
"""

import sys
from pathlib import Path

import pytest

import skebm

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS / "sphinxext"))

import api_check  # noqa: E402

ESTIMATORS = ["EBMGenerator", "EBMPurifier", "PurifiedClassifier", "EBMDensity", "NGEBMClassifier"]


def test_conf_asks_for_templates_where_they_are():
    """autosummary looks ``:template:`` up relative to templates_path: ``autosummary/class.rst``."""
    conf = (DOCS / "conf.py").read_text()
    assert ':template: autosummary/{template}' in conf
    for name in ("class.rst", "function.rst", "data.rst"):
        assert (DOCS / "_templates" / "autosummary" / name).exists()
    template = api_check.TEMPLATE.read_text()
    assert ":members:" in template and ".. minigallery::" in template
    assert api_check.template_inherited_members() == api_check.NOT_DOCUMENTED_FROM


@pytest.mark.parametrize("name", ESTIMATORS)
def test_estimators_have_their_everyday_methods(name):
    cls = getattr(skebm, name)
    methods = api_check.public_methods(cls)
    assert "fit" in methods
    owner = {name: next(c for c in cls.__mro__ if name in vars(c)) for name in ("get_params", "set_params")}
    inherited = {name for name, c in owner.items() if c.__module__.startswith("sklearn")}  # documented there
    assert inherited.isdisjoint(methods)


def test_public_methods_cover_the_contract():
    assert {"fit", "sample", "inpaint", "score_samples", "score"} <= set(api_check.public_methods(skebm.EBMGenerator))
    assert {"transform", "purify", "score_samples"} <= set(api_check.public_methods(skebm.EBMPurifier))
    assert {"predict_proba", "ood_score", "score"} <= set(api_check.public_methods(skebm.NGEBMClassifier))
    assert {"diagnose", "sample", "score_samples", "score"} <= set(api_check.public_methods(skebm.EBMDensity))


def test_missing_methods_reads_the_page(tmp_path):
    page = tmp_path / "generated" / "skebm.NGEBMClassifier.html"
    page.parent.mkdir()
    page.write_text('<dt id="skebm.NGEBMClassifier.fit">')
    missing = api_check.missing_methods(tmp_path, "skebm.NGEBMClassifier")
    assert "predict_proba" in missing and "fit" not in missing
    assert api_check.missing_methods(tmp_path, "skebm.EBMGenerator") is None


@pytest.mark.parametrize("name", ESTIMATORS)
def test_built_page_documents_every_public_method(name):
    html = DOCS / "_build" / "html"
    if not (html / "generated" / f"skebm.{name}.html").exists():
        pytest.skip("no docs build here (make docs-fast); the docs build runs this check itself")
    assert api_check.missing_methods(html, f"skebm.{name}") == []
