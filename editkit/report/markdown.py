"""GitHub-flavoured Markdown rendering of a report.

>>> from editkit.report.schema import Provenance, Report
>>> prov = Provenance("0.1.0", "2025-01-01T00:00:00Z", ["eval"], [], "cpu")
>>> print(render_markdown(Report("eval", "demo", prov)).splitlines()[0])
# demo
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from editkit.report._format import (
    direction_arrow,
    figure_files,
    finding_counts,
    format_seconds,
    format_value,
    metric_grid,
    metric_info_for,
    model_line,
    normalized,
    numeric_columns,
    per_item_columns,
    short_json,
)
from editkit.report.schema import Report, Section, Table

MAX_PER_ITEM_ROWS = 50
_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")
_SEVERITY_ICON = {"info": "ℹ️", "warning": "⚠️", "error": "❌"}


def md_escape(text: str) -> str:
    r"""Escape Markdown/HTML syntax so ``text`` shows literally (also inside tables).

    >>> print(md_escape("a|b <i>x</i>"))
    a\|b \<i\>x\</i\>
    """
    return _SPECIAL.sub(r"\\\1", text).replace("\r", "").replace("\n", "<br>")


def _code(text: str) -> str:
    """An inline code span outside tables (backticks inside become quotes)."""
    return "`" + text.replace("`", "'") + "`"


def _table(columns: list[str], rows: list[list[str]], align: list[str] | None = None) -> str:
    align = align or ["---"] * len(columns)
    lines = [
        "| " + " | ".join(columns) + " |",
        "| " + " | ".join(align) + " |",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]
    return "\n".join(lines)


def _align(rows: list[list[Any]], n: int) -> list[str]:
    return ["---:" if num else "---" for num in numeric_columns(rows, n)]


def _header(report: Report) -> list[str]:
    prov = report.provenance
    out = [f"# {md_escape(report.title)}", ""]
    facts = [f"**kind** {md_escape(report.kind)}", f"**created** {md_escape(prov.created)}"]
    facts.append(f"**editkit** {md_escape(prov.editkit_version)}")
    facts.append(f"**device** {md_escape(prov.device)} ({md_escape(prov.backend)})")
    if prov.seed is not None:
        facts.append(f"**seed** {prov.seed}")
    out.append(" · ".join(facts))
    out.append("")
    for m in prov.models:
        out.append(f"- {md_escape(model_line(m))}")
    if prov.models:
        out.append("")
    return out


def _metrics(report: Report) -> list[str]:
    columns, rows, has_delta = metric_grid(report)
    if not rows:
        return []
    head = ["metric", *(md_escape(c) for c in columns)] + (["Δ"] if has_delta else [])
    align = ["---"] + ["---:"] * (len(head) - 1)
    body = []
    for row in rows:
        name = f"{md_escape(row.name)} {direction_arrow(row.info)}".rstrip()
        cells = [name, *row.cells()]
        if has_delta:
            mark = {"good": " ✅", "bad": " 🔻", "neutral": ""}[row.quality]
            cells.append(f"**{row.delta_text}**{mark}" if mark else row.delta_text)
        body.append(cells)
    out = ["## Metrics", "", _table(head, body, align), ""]
    described = [r for r in rows if r.info.description]
    for r in described:
        out.append(f"- **{md_escape(r.name)}**: {md_escape(r.info.description)}")
    if described:
        out.append("")
    return out


def _notes(report: Report) -> list[str]:
    out = []
    for note in report.notes:
        out += [f"> **Note:** {md_escape(note)}", ""]
    return out


def _one_table(t: Table, level: str = "##") -> list[str]:
    out = [f"{level} {md_escape(t.title)}", ""]
    if t.description:
        out += [md_escape(t.description), ""]
    cells = [
        [md_escape(format_value(v, t.fmt.get(c))) for c, v in zip(t.columns, row, strict=True)]
        for row in t.rows
    ]
    align = _align(t.rows, len(t.columns))
    return [*out, _table([md_escape(c) for c in t.columns], cells, align), ""]


def _tables(report: Report) -> list[str]:
    return [line for t in report.tables for line in _one_table(t)]


def _summary(report: Report) -> list[str]:
    if not report.summary:
        return []
    return ["## Verdict", "", md_escape(report.summary), ""]


def _section(
    section: Section, report: Report, paths: list[str], images: Mapping[str, bytes | str] | None
) -> list[str]:
    time = f" ({format_seconds(section.seconds)})" if section.seconds else ""
    out = [f"## {md_escape(section.title)}", "", f"**status** {section.status}{time}", ""]
    if section.summary:
        out += [md_escape(section.summary), ""]
    if section.metrics:
        rows = []
        for name, value in section.metrics.items():
            info = section.metric_info.get(name) or metric_info_for(report, name)
            fmt = info.fmt if name in section.metric_info else None
            label = f"{md_escape(name)} {direction_arrow(info)}".rstrip()
            rows.append([label, format_value(value, fmt), md_escape(info.description)])
        out += [_table(["metric", "value", "description"], rows, ["---", "---:", "---"]), ""]
    for path, fig in zip(paths, section.figures, strict=True):
        image = images.get(path) if images is not None else None
        if images is not None and not isinstance(image, bytes):
            out += [f"> **{md_escape(fig.title)}**: {md_escape(str(image or 'figure not drawn'))}", ""]
            continue
        out += [f"![{md_escape(fig.title)}]({path})", ""]
        if fig.description:
            out += [f"_{md_escape(fig.description)}_", ""]
    for t in section.tables:
        out += _one_table(t, "###")
    return out


def _sections(report: Report, images: Mapping[str, bytes | str] | None) -> list[str]:
    paths = [path for path, _ in figure_files(report)]
    out: list[str] = []
    start = 0
    for section in report.sections:
        n = len(section.figures)
        out += _section(section, report, paths[start : start + n], images)
        start += n
    return out


def _findings(report: Report) -> list[str]:
    if not report.findings:
        return []
    out = [f"## Findings ({finding_counts(report)})", ""]
    for f in report.findings:
        line = f"- {_SEVERITY_ICON[f.severity]} **{f.severity}** · {md_escape(f.analysis)}: "
        line += md_escape(f.message)
        if f.details:
            line += f"<br>{_code(short_json(f.details))}"
        out.append(line)
    return [*out, ""]


def _per_item(report: Report) -> list[str]:
    rows = report.per_item
    if not rows:
        return []
    columns = per_item_columns(rows)
    shown = rows[:MAX_PER_ITEM_ROWS]
    fmts = {c: report.metric_info[c].fmt for c in columns if c in report.metric_info}
    cells = [[md_escape(format_value(r.get(c), fmts.get(c))) for c in columns] for r in shown]
    align = _align([[r.get(c) for c in columns] for r in shown], len(columns))
    out = [f"## Per item ({len(rows)})", ""]
    out += [_table([md_escape(c) for c in columns], cells, align), ""]
    if len(rows) > len(shown):
        out += [
            f"_Showing the first {len(shown)} of {len(rows)} rows; all rows are in "
            "`per_item.jsonl` and `report.json`._",
            "",
        ]
    return out


def _provenance(report: Report) -> list[str]:
    prov = report.provenance
    out = []
    if report.timings:
        body = [[md_escape(k), format_seconds(v)] for k, v in report.timings.items()]
        out += ["## Timings", "", _table(["step", "time"], body, ["---", "---:"]), ""]
    out += ["<details><summary>Provenance and configuration</summary>", ""]
    out.append(f"- **command**: {_code(' '.join(prov.command))}")
    if prov.versions:
        out.append(
            "- **versions**: "
            + ", ".join(f"{md_escape(k)} {md_escape(v)}" for k, v in prov.versions.items())
        )
    for m in prov.models:
        if m.weights_sha256:
            out.append(f"- **{md_escape(m.role)} weights sha256**: `{m.weights_sha256}`")
    out.append(f"- **report schema**: {report.schema_version}")
    if report.config:
        out += ["", "```json", json.dumps(report.config, indent=2, ensure_ascii=False), "```"]
    return [*out, "", "</details>", ""]


def render_markdown(report: Report, images: Mapping[str, bytes | str] | None = None) -> str:
    """Render a report as GitHub-flavoured Markdown.

    Sections: title and provenance summary, the summary (an audit's verdict),
    metrics (with a Δ column when there are exactly two metric columns), notes,
    findings, the report's sections (summary, metrics, figures as links to
    ``figures/*.png``, tables), tables, the first ``MAX_PER_ITEM_ROWS``
    per-item rows, timings, and collapsed provenance.

    Args:
        report: The report (not modified).
        images: The section figures as drawn by :func:`editkit.report.write_report`;
            one that could not be drawn is replaced by its reason. None: every
            figure is linked (the files are written next to the Markdown).

    Returns:
        The Markdown text, ending with a newline.

    >>> from editkit.report.schema import Provenance, Report
    >>> prov = Provenance("0.1.0", "2025-01-01T00:00:00Z", ["edit"], [], "cpu")
    >>> md = render_markdown(Report("edit", "t", prov,
    ...     metrics={"before": {"acc": 0.25}, "after": {"acc": 1.0}}))
    >>> "+0.750" in md
    True
    """
    report = normalized(report)
    lines = [
        *_header(report),
        *_summary(report),
        *_metrics(report),
        *_notes(report),
        *_tables(report),
        *_findings(report),
        *_sections(report, images),
        *_per_item(report),
        *_provenance(report),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"
