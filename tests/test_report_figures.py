"""One source for every number: the figures quoted by the docs, the README and
docstrings come from the reports under benchmarks/reports/.

See docs/sphinxext/report_figures.py for the mechanism: figures.toml names
where each figure lives; the docs render it at build time (``:report:`` and
``.. report-table::``); the README quotes it next to ``<!-- report:name -->``.
"""

import inspect
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs" / "sphinxext"))

import report_figures as rf  # noqa: E402

DOC_PAGES = sorted((ROOT / "docs").glob("*.rst")) + sorted((ROOT / "docs").glob("*/*.rst"))
ROLE = re.compile(r":report:`([^`]+)`")
TABLE = re.compile(r"^\.\. report-table:: (\S+)\n((?:   :\w+:.*\n)*)", re.M)


@pytest.mark.parametrize("name", sorted(rf.registry()))
def test_every_named_figure_is_found_in_its_report(name):
    value = rf.figure(name)
    assert re.search(r"\d", value), f"{name} reads {value!r}: not a number"


def test_every_figure_the_docs_use_is_named():
    used = {(page.name, m) for page in DOC_PAGES for m in ROLE.findall(page.read_text())}
    assert used, "no :report: role in the docs: the test would check nothing"
    unknown = sorted((page, name) for page, name in used if name not in rf.registry())
    assert unknown == []


def test_every_report_table_the_docs_use_exists():
    found = [(page.name, m.group(1), m.group(2)) for page in DOC_PAGES for m in TABLE.finditer(page.read_text())]
    assert found
    for page, report, options in found:
        index = int(re.search(r":table: (\d+)", options).group(1)) if ":table:" in options else 1
        header, rows = rf.tables(report)[index - 1]
        assert len(header) >= 2 and rows, f"{page}: {report} table {index} is empty"


def test_readme_quotes_agree_with_the_reports():
    text = (ROOT / "README.md").read_text()
    quotes = rf.README_QUOTE.findall(text)
    assert len(quotes) >= 5 and text.count("<!-- report:") == len(quotes), "a marker without its number"
    wrong = [(name, quoted, rf.figure(name)) for quoted, name in quotes if not rf.same_number(quoted, rf.figure(name))]
    assert wrong == [], "README quote (name, quoted, report)"


def test_same_number_compares_as_written():
    assert rf.same_number("1,509", "1509") and rf.same_number("+2.55", "2.55")
    assert not rf.same_number("72", "70") and not rf.same_number("-1.415", "-1.439")


def test_a_figure_that_left_its_report_fails(monkeypatch, tmp_path):
    (tmp_path / "r.md").write_text("| data | score |\n|---|---|\n| moons | **-1.439** |\n\nmean: -2.5 nats\n")
    monkeypatch.setattr(rf, "REPORTS", tmp_path)
    rf.tables.cache_clear()
    monkeypatch.setattr(rf, "registry", lambda: {"a": "r.md | moons | score", "b": "r.md ~ mean: (-[\\d.]+)",
                                                   "c": "r.md | rings | score", "d": "r.md ~ median: (\\d+)"})
    try:
        assert rf.figure("a") == "-1.439" and rf.figure("b") == "-2.5"
        for name in ("c", "d", "e"):
            with pytest.raises(KeyError):
                rf.figure(name)
    finally:
        rf.tables.cache_clear()


#: A measured figure in a docstring: a duration, a speed-up, a benchmark score.
MEASURED = re.compile(r"\b\d[\d.,]*\s?(?:s|ms|seconds|minutes|hours)\b(?! of shape)|\b\d[\d.]*\s?(?:x|times) "
                      r"(?:faster|slower)|measured:")


def test_public_docstrings_quote_no_measured_figure():
    """Docstrings link to the user guide, which renders the figures from the reports."""
    import skebm

    offenders = []
    for name in skebm.__all__:
        obj = getattr(skebm, name)
        members = [(name, obj)]
        if inspect.isclass(obj):
            members += [(f"{name}.{attr}", member) for attr, member in vars(obj).items()
                        if not attr.startswith("_") and callable(member)]
        for where, member in members:
            doc = inspect.getdoc(member) or ""
            offenders += [(where, m.group(0)) for m in MEASURED.finditer(doc)]
    assert offenders == []


DEFAULT_ROLE = re.compile(r":default:`([^`]+)`")


def test_every_default_the_docs_quote_is_a_parameter():
    """``:default:`Class.param``` renders the signature's default: a renamed parameter fails here."""
    used = {m for page in DOC_PAGES for m in DEFAULT_ROLE.findall(page.read_text())}
    assert used
    for spec in sorted(used):
        rf.default(spec)
    with pytest.raises(KeyError):
        rf.default("EBMGenerator.no_such_parameter")
