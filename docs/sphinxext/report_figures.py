"""One source for every number: figures read from the benchmark reports.

The reports under ``benchmarks/reports/`` (the committed output of the
benchmark scripts, and ``measurements.md`` for the one-off timings) are the
only place a measured number is written. Everything else quotes them by
name:

* ``benchmarks/reports/figures.toml`` names each quoted figure and says
  *where* it lives, never its value: ``"<report> | <row> | <column>"`` for a
  cell of a Markdown table (the row by its first cell, the column by its
  header; ``<report>#<n>`` for the n-th table of the file, from 1), or
  ``"<report> ~ <regex>"`` for the regex's first group in the report's text.
* Defaults quoted in prose come from the signature: ``:default:`EBMGenerator.max_iter```.
* In the docs, the role ``:report:`name``` inserts the figure, and the
  directive ``.. report-table:: <report>`` (option ``:table: n``) renders a
  report's Markdown table, read at build time.
* The README writes the number followed by ``<!-- report:name -->``;
  ``tests/test_report_figures.py`` checks every such quote against the
  report, and that every name used anywhere resolves. Docstrings quote no
  measured figure: they link to the user-guide section that renders it.

Changing a report changes the docs at the next build; a README quote that
disagrees fails the test; a figure whose row, column or regex no longer
matches fails the build and the test.
"""

import re
import tomllib
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REPORTS = ROOT / "benchmarks" / "reports"
REGISTRY = REPORTS / "figures.toml"
README_QUOTE = re.compile(r"([-+]?\d[\d,.]*(?:-\d[\d,.]*)?)\s*<!-- report:([\w.-]+) -->")


def _clean(cell):
    return cell.strip().replace("**", "").replace("`", "").strip()


def _split_row(line):
    line = line.strip()
    cells = re.split(r"(?<!\\)\|", line.strip("|"))
    return [c.strip().replace("\\|", "|") for c in cells]


@lru_cache(maxsize=None)
def tables(report):
    """The Markdown tables of ``report`` (a file name under benchmarks/reports), as (header, rows)."""
    found, current = [], None
    for line in (REPORTS / report).read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("|"):
            cells = _split_row(line)
            if current is None:
                current = (cells, [])
            elif all(re.fullmatch(r":?-{3,}:?", c) for c in cells if c):
                continue
            else:
                current[1].append(cells)
        elif current is not None:
            found.append(current)
            current = None
    if current is not None:
        found.append(current)
    return found


def _table_cell(report, row, column):
    index = None
    if "#" in report:
        report, index = report.split("#")
        index = int(index)
    candidates = tables(report) if index is None else [tables(report)[index - 1]]
    for header, rows in candidates:
        heads = [_clean(h) for h in header]
        if column not in heads:
            continue
        for cells in rows:
            if _clean(cells[0]) == row:
                return _clean(cells[heads.index(column)])
    raise KeyError(f"{report}: no table with row {row!r} and column {column!r}")


@lru_cache(maxsize=None)
def registry():
    """``{name: location}`` of benchmarks/reports/figures.toml."""
    return tomllib.loads(REGISTRY.read_text(encoding="utf-8"))


def figure(name):
    """The value of the named figure, as the report writes it (bold and code marks dropped)."""
    try:
        where = registry()[name]
    except KeyError:
        raise KeyError(f"figure {name!r} is not named in {REGISTRY.relative_to(ROOT)}") from None
    if "~" in where.split("|")[0]:
        report, regex = (part.strip() for part in where.split("~", 1))
        match = re.search(regex, (REPORTS / report.split("#")[0]).read_text(encoding="utf-8"))
        if match is None:
            raise KeyError(f"figure {name!r}: {regex!r} not found in {report}")
        return match.group(1)
    report, row, column = (part.strip() for part in where.split("|"))
    return _table_cell(report, row, column)


def same_number(quoted, value):
    """A quote agrees with its figure when the numbers are equal as written (thousands commas aside)."""
    norm = lambda s: s.replace(",", "").lstrip("+")  # noqa: E731
    return norm(quoted) == norm(value)


def default(spec):
    """The default of an estimator's parameter, ``"EBMGenerator.max_iter"``, as Python writes it."""
    import inspect

    import skebm

    cls, _, param = spec.strip().rpartition(".")
    try:
        obj = skebm
        for part in cls.split("."):  # "density.QuadratureML": submodules load lazily
            obj = getattr(obj, part)
        value = inspect.signature(obj).parameters[param].default
    except (AttributeError, KeyError):
        raise KeyError(f"no parameter {spec!r} in skebm") from None
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) and value >= 10000 else repr(value)


# ---------------------------------------------------------------- Sphinx side
def _default_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """``:default:`EBMGenerator.max_iter``` -> ``800``, read from the signature at build time."""
    from docutils import nodes

    try:
        return [nodes.Text(default(text))], []
    except KeyError as exc:
        msg = inliner.reporter.error(str(exc), line=lineno)
        return [inliner.problematic(rawtext, rawtext, msg)], [msg]


def _report_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    from docutils import nodes

    try:
        where = registry().get(text.strip(), "")
        report = re.split(r"[|~#]", where, maxsplit=1)[0].strip()
        if report:
            inliner.document.settings.env.note_dependency(str(REPORTS / report))
        return [nodes.Text(figure(text.strip()))], []
    except (KeyError, OSError, IndexError) as exc:
        msg = inliner.reporter.error(str(exc), line=lineno)
        return [inliner.problematic(rawtext, rawtext, msg)], [msg]


def _rst_cell(cell):
    cell = re.sub(r"`([^`]+)`", r"``\1``", cell.strip())
    if cell in ("", "-", "–"):
        return "\\-" if cell else ""
    if cell.startswith(("- ", "* ", "+ ")) or re.match(r"^\d+\. ", cell):
        return "\\" + cell
    return cell


def _make_directive():
    from docutils.parsers.rst import Directive, directives
    from docutils.statemachine import StringList

    class ReportTable(Directive):
        """``.. report-table:: <report>``: a Markdown table of a report, rendered at build time."""

        required_arguments = 1
        optional_arguments = 0
        final_argument_whitespace = False
        has_content = False
        option_spec = {"table": directives.positive_int, "caption": directives.unchanged,
                       "widths": directives.unchanged}

        def run(self):
            report = self.arguments[0]
            env = self.state.document.settings.env
            env.note_dependency(str(REPORTS / report))
            try:
                header, rows = tables(report)[self.options.get("table", 1) - 1]
            except (OSError, IndexError) as exc:
                raise self.error(f"report-table {report}: {exc}") from None
            lines = [f".. list-table:: {self.options.get('caption', '')}".rstrip(), "   :header-rows: 1",
                     "   :class: report-table"]
            if "widths" in self.options:
                lines.append(f"   :widths: {self.options['widths']}")
            lines.append("")
            for cells in [header, *rows]:
                cells = (cells + [""] * len(header))[: len(header)]
                lines.append(f"   * - {_rst_cell(cells[0])}")
                lines += [f"     - {_rst_cell(c)}" for c in cells[1:]]
            lines.append("")
            lines.append(f"*Source:* ``benchmarks/reports/{report}`` (read at build time).")
            node_list = []
            from docutils import nodes

            container = nodes.container(classes=["report-source"])
            self.state.nested_parse(StringList(lines, source=str(REPORTS / report)), self.content_offset, container)
            node_list.append(container)
            return node_list

    return ReportTable


def _note_registry(app, docname, source):
    if ":report:`" in source[0] or "report-table::" in source[0]:
        app.env.note_dependency(str(REGISTRY))


def setup(app):
    app.add_role("report", _report_role)
    app.add_role("default", _default_role)
    app.add_directive("report-table", _make_directive())
    app.connect("source-read", _note_registry)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
