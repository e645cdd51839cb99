"""Self-contained HTML rendering: one file, inline CSS, figures as PNG data URIs.

Nothing is fetched when the page opens (no scripts, fonts, or remote images),
so a report can be mailed, archived or opened offline. All text from the
report is escaped.

>>> html_text = render_html(report)   # doctest: +SKIP
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from html import escape
from typing import Any

from editkit.report._format import (
    direction_arrow,
    draw_figures,
    figure_files,
    finding_counts,
    format_count,
    format_seconds,
    format_value,
    metric_grid,
    metric_info_for,
    normalized,
    numeric_columns,
    numeric_fields,
    per_item_columns,
    section_anchor,
)
from editkit.report.schema import Report, Section

MAX_HTML_ROWS = 10_000  # per-item rows in the page; the JSON files hold all of them
MAX_HISTOGRAMS = 6

_CSS = """
:root { --fg:#0f172a; --muted:#64748b; --line:#e2e8f0; --bg:#f8fafc; --card:#fff;
  --good:#15803d; --bad:#b91c1c; --accent:#2563eb; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
  font:14px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; }
main { max-width:1180px; margin:0 auto; padding:28px 24px 48px; }
h1 { font-size:24px; margin:0 0 4px; }
h2 { font-size:17px; margin:0 0 12px; }
.meta { color:var(--muted); font-size:13px; }
.badge { display:inline-block; padding:1px 8px; border-radius:999px; font-size:12px;
  font-weight:600; background:#dbeafe; color:#1e40af; vertical-align:middle; margin-left:6px; }
section { background:var(--card); border:1px solid var(--line); border-radius:10px;
  padding:18px 20px; margin-top:18px; box-shadow:0 1px 2px rgba(15,23,42,.04); }
table { border-collapse:collapse; width:100%; font-size:13px; }
th, td { padding:6px 10px; border-bottom:1px solid var(--line); text-align:left; vertical-align:top; }
th { background:#f1f5f9; font-weight:600; color:#334155; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
tbody tr:nth-child(even) { background:#fbfdff; }
.good { color:var(--good); font-weight:600; }
.bad { color:var(--bad); font-weight:600; }
.desc { color:var(--muted); font-size:12px; }
.arrow { color:var(--muted); font-size:11px; }
.scroll { max-height:520px; overflow:auto; border:1px solid var(--line); border-radius:6px; }
.scroll th { position:sticky; top:0; z-index:1; }
.scroll td { max-width:30em; overflow-wrap:anywhere; }
img.fig { max-width:100%; height:auto; display:block; margin:14px auto 0; }
.note { background:#fffbeb; border:1px solid #fde68a; border-left:4px solid #f59e0b;
  border-radius:6px; padding:8px 12px; margin:8px 0 0; }
.finding { border-left:4px solid; border-radius:6px; padding:8px 12px; margin:8px 0; }
.finding.info { border-color:#0ea5e9; background:#f0f9ff; }
.finding.warning { border-color:#f59e0b; background:#fffbeb; }
.finding.error { border-color:#dc2626; background:#fef2f2; }
.sev { font-size:11px; font-weight:700; text-transform:uppercase; letter-spacing:.04em; margin-right:6px; }
.finding.info .sev { color:#0369a1; } .finding.warning .sev { color:#b45309; }
.finding.error .sev { color:#b91c1c; }
details summary { cursor:pointer; color:var(--muted); font-size:13px; margin-top:6px; }
pre { background:#f1f5f9; border-radius:6px; padding:10px 12px; overflow:auto; font-size:12px; }
code { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:12px; }
dl { display:grid; grid-template-columns:max-content 1fr; gap:4px 16px; margin:0; }
dt { color:var(--muted); } dd { margin:0; overflow-wrap:anywhere; }
footer { color:var(--muted); font-size:12px; text-align:center; margin-top:24px; }
.verdict { border-left:4px solid var(--accent); font-size:15px; line-height:1.6; }
.verdict h2 { color:var(--accent); }
nav.toc { display:flex; flex-wrap:wrap; gap:6px 8px; margin-top:14px; }
nav.toc a { text-decoration:none; color:#1e40af; background:#eff6ff; border:1px solid #dbeafe;
  border-radius:999px; padding:2px 10px; font-size:13px; }
.status { display:inline-block; padding:1px 8px; border-radius:999px; font-size:11px; font-weight:700;
  text-transform:uppercase; letter-spacing:.04em; vertical-align:middle; margin-left:8px; }
.status.ok { background:#dcfce7; color:#166534; } .status.error { background:#fee2e2; color:#991b1b; }
.status.skipped { background:#f1f5f9; color:#475569; }
.time { color:var(--muted); font-size:12px; font-weight:400; margin-left:6px; }
.summary { margin:0 0 10px; }
h3 { font-size:14px; margin:18px 0 8px; }
figure { margin:14px 0 0; } figcaption { color:var(--muted); font-size:12px; text-align:center; }
.figs { display:grid; grid-template-columns:repeat(auto-fit, minmax(420px, 1fr)); gap:8px 16px; }
a.sec { color:inherit; }
"""


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _img(png: bytes | None, alt: str) -> str:
    if png is None:
        return ""
    data = base64.b64encode(png).decode("ascii")
    return f'<img class="fig" alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _table(columns: list[str], rows: list[list[Any]], fmts: dict[str, str]) -> str:
    numeric = numeric_columns(rows, len(columns))
    head = "".join(
        f'<th class="num">{_e(c)}</th>' if n else f"<th>{_e(c)}</th>"
        for c, n in zip(columns, numeric, strict=True)
    )
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{_e(format_value(v, fmts.get(c)))}</td>'
            if n
            else f"<td>{_e(format_value(v, fmts.get(c)))}</td>"
            for c, v, n in zip(columns, row, numeric, strict=True)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _header(report: Report) -> str:
    prov = report.provenance
    seed = f" · seed {_e(prov.seed)}" if prov.seed is not None else ""
    meta = (
        f"{_e(prov.created)} · editkit {_e(prov.editkit_version)} · "
        f"{_e(prov.device)} ({_e(prov.backend)}){seed}"
    )
    out = [f"<header><h1>{_e(report.title)}<span class='badge'>{_e(report.kind)}</span></h1>"]
    out.append(f'<div class="meta">{meta}</div></header>')
    if prov.models:
        rows = [
            [
                m.role,
                m.spec,
                m.model_type,
                format_count(m.n_params),
                m.dtype,
                (m.weights_sha256 or "")[:16],
            ]
            for m in prov.models
        ]
        cols = ["role", "model", "type", "params", "dtype", "weights sha256"]
        out.append(f"<section><h2>Models</h2>{_table(cols, rows, {})}</section>")
    return "".join(out)


def _metrics(report: Report) -> str:
    columns, rows, has_delta = metric_grid(report)
    if not rows:
        return ""
    head = "<th>metric</th>" + "".join(f'<th class="num">{_e(c)}</th>' for c in columns)
    head += '<th class="num">Δ</th>' if has_delta else ""
    head += "<th>description</th>"
    body = []
    for row in rows:
        arrow = direction_arrow(row.info)
        cells = f"<td><b>{_e(row.name)}</b> <span class='arrow'>{arrow}</span></td>"
        cells += "".join(f'<td class="num">{_e(c)}</td>' for c in row.cells())
        if has_delta:
            cells += f'<td class="num {row.quality}">{_e(row.delta_text)}</td>'
        cells += f'<td class="desc">{_e(row.info.description)}</td>'
        body.append(f"<tr>{cells}</tr>")
    from editkit.report.figures import metrics_chart

    chart = _img(metrics_chart(columns, rows), "bar chart of the metrics")
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f"<section><h2>Metrics</h2>{table}{chart}{_notes(report)}</section>"


def _notes(report: Report) -> str:
    return "".join(f'<div class="note"><b>Note:</b> {_e(n)}</div>' for n in report.notes)


def _findings(report: Report) -> str:
    if not report.findings:
        return ""
    sections = {s.name for s in report.sections}
    items = []
    for f in report.findings:
        details = ""
        if f.details:
            text = json.dumps(f.details, indent=2, ensure_ascii=False)
            details = f"<details><summary>details</summary><pre>{_e(text)}</pre></details>"
        name = f"<b>{_e(f.analysis)}</b>"
        if f.analysis in sections:
            name = f'<a class="sec" href="#{_e(section_anchor(f.analysis))}">{name}</a>'
        items.append(
            f'<div class="finding {_e(f.severity)}"><span class="sev">{_e(f.severity)}</span>'
            f"{name}: {_e(f.message)}{details}</div>"
        )
    return f"<section><h2>Findings ({_e(finding_counts(report))})</h2>{''.join(items)}</section>"


def _summary(report: Report) -> str:
    if not report.summary:
        return ""
    toc = ""
    if report.sections:
        links = "".join(
            f'<a href="#{_e(section_anchor(s.name))}">{_e(s.title)}</a>' for s in report.sections
        )
        toc = f'<nav class="toc">{links}</nav>'
    return f'<section class="verdict"><h2>Verdict</h2><p>{_e(report.summary)}</p>{toc}</section>'


def _figure(path: str, title: str, description: str, images: Mapping[str, bytes | str]) -> str:
    image = images.get(path)
    if not isinstance(image, bytes):
        return f'<div class="note"><b>{_e(title)}</b>: {_e(image or "figure not drawn")}</div>'
    caption = f"<figcaption>{_e(description)}</figcaption>" if description else ""
    return f"<figure>{_img(image, title)}{caption}</figure>"


def _section(section: Section, report: Report, paths: list[str], images: Mapping[str, bytes | str]) -> str:
    time = f'<span class="time">{_e(format_seconds(section.seconds))}</span>' if section.seconds else ""
    head = (
        f'<h2>{_e(section.title)}<span class="status {_e(section.status)}">{_e(section.status)}</span>'
        f"{time}</h2>"
    )
    parts = [head]
    if section.summary:
        parts.append(f'<p class="summary">{_e(section.summary)}</p>')
    if section.metrics:
        rows = []
        for name, value in section.metrics.items():
            info = section.metric_info.get(name) or metric_info_for(report, name)
            rows.append(
                f"<tr><td><b>{_e(name)}</b> <span class='arrow'>{direction_arrow(info)}</span></td>"
                f'<td class="num">{_e(format_value(value, info.fmt if name in section.metric_info else None))}</td>'
                f'<td class="desc">{_e(info.description)}</td></tr>'
            )
        parts.append(
            '<table><thead><tr><th>metric</th><th class="num">value</th><th>description</th></tr>'
            f"</thead><tbody>{''.join(rows)}</tbody></table>"
        )
    if section.figures:
        figs = "".join(
            _figure(path, fig.title, fig.description, images)
            for path, fig in zip(paths, section.figures, strict=True)
        )
        parts.append(f'<div class="figs">{figs}</div>')
    for t in section.tables:
        desc = f'<p class="desc">{_e(t.description)}</p>' if t.description else ""
        parts.append(f'<h3>{_e(t.title)}</h3>{desc}<div class="scroll">{_table(t.columns, t.rows, t.fmt)}</div>')
    return f'<section id="{_e(section_anchor(section.name))}">{"".join(parts)}</section>'


def _sections(report: Report, images: Mapping[str, bytes | str]) -> str:
    paths = [path for path, _ in figure_files(report)]
    out, start = [], 0
    for section in report.sections:
        n = len(section.figures)
        out.append(_section(section, report, paths[start : start + n], images))
        start += n
    return "".join(out)


def _tables(report: Report) -> str:
    out = []
    for t in report.tables:
        desc = f'<p class="desc">{_e(t.description)}</p>' if t.description else ""
        table = _table(t.columns, t.rows, t.fmt)
        out.append(
            f'<section><h2>{_e(t.title)}</h2>{desc}<div class="scroll">{table}</div></section>'
        )
    return "".join(out)


def _per_item(report: Report) -> str:
    rows = report.per_item
    if not rows:
        return ""
    from editkit.report.figures import histograms

    columns = per_item_columns(rows)
    fmts = {c: report.metric_info[c].fmt for c in columns if c in report.metric_info}
    shown = rows[:MAX_HTML_ROWS]
    table = _table(columns, [[r.get(c) for c in columns] for r in shown], fmts)
    more = ""
    if len(rows) > len(shown):
        more = (
            f'<p class="desc">Showing the first {len(shown)} of {len(rows)} rows; '
            "all rows are in per_item.jsonl and report.json.</p>"
        )
    hist = _img(histograms(numeric_fields(rows, MAX_HISTOGRAMS)), "per-item histograms")
    return (
        f"<section><h2>Per item ({len(rows)})</h2>{hist}"
        f'<div class="scroll" style="margin-top:14px">{table}</div>{more}</section>'
    )


def _provenance(report: Report) -> str:
    prov = report.provenance
    out = []
    if report.timings:
        rows = [[k, format_seconds(v)] for k, v in report.timings.items()]
        out.append(f"<section><h2>Timings</h2>{_table(['step', 'time'], rows, {})}</section>")
    facts = [
        ("command", f"<code>{_e(' '.join(prov.command))}</code>"),
        ("created", _e(prov.created)),
        ("editkit", _e(prov.editkit_version)),
        ("device", f"{_e(prov.device)} ({_e(prov.backend)})"),
        ("seed", _e(prov.seed) if prov.seed is not None else "not set"),
        ("versions", _e(", ".join(f"{k} {v}" for k, v in prov.versions.items()))),
    ]
    facts += [
        (f"{m.role} weights sha256", f"<code>{_e(m.weights_sha256)}</code>")
        for m in prov.models
        if m.weights_sha256
    ]
    facts.append(("report schema", _e(report.schema_version)))
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    config = ""
    if report.config:
        text = json.dumps(report.config, indent=2, ensure_ascii=False)
        config = f"<details open><summary>configuration</summary><pre>{_e(text)}</pre></details>"
    out.append(f"<section><h2>Provenance</h2><dl>{dl}</dl>{config}</section>")
    return "".join(out)


def render_html(report: Report, images: Mapping[str, bytes | str] | None = None) -> str:
    """Render a report as one self-contained HTML page.

    The page has the header and models, the summary (an audit's verdict) with
    links to the sections, the metrics table (with a Δ column when there are
    exactly two metric columns) and a grouped bar chart, notes, findings, the
    sections (summary, metrics, figures, tables), tables, per-item histograms
    (up to ``MAX_HISTOGRAMS`` numeric fields) and a scrollable per-item table
    (up to ``MAX_HTML_ROWS`` rows), timings, and provenance with the configuration.

    Args:
        report: The report (not modified).
        images: The section figures already drawn (:func:`editkit.report._format.draw_figures`),
            so that writing several formats draws each once; None draws them here.

    Returns:
        The HTML document.

    >>> from editkit.report.schema import Provenance, Report
    >>> prov = Provenance("0.1.0", "2025-01-01T00:00:00Z", ["eval"], [], "cpu")
    >>> render_html(Report("eval", "<demo>", prov)).count("&lt;demo&gt;")
    2
    """
    report = normalized(report)
    if images is None:
        images = draw_figures(report) if report.sections else {}
    body = "".join(
        [
            _header(report),
            _summary(report),
            _metrics(report) or (f"<section>{_notes(report)}</section>" if report.notes else ""),
            _findings(report),
            _sections(report, images),
            _tables(report),
            _per_item(report),
            _provenance(report),
        ]
    )
    footer = (
        f"<footer>editkit {_e(report.provenance.editkit_version)} · "
        f"report schema {_e(report.schema_version)}</footer>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(report.title)}</title><style>{_CSS}</style></head>"
        f"<body><main>{body}{footer}</main></body></html>\n"
    )


NOTEBOOK_HEIGHT = 760  # pixels of the frame a notebook shows (the page scrolls inside it)


def render_notebook_html(report: Report) -> str:
    """The HTML page inside an ``<iframe srcdoc>``, for Jupyter's ``_repr_html_``.

    The frame keeps the page's styles from leaking into the notebook (and the
    notebook's into the page); the page itself is :func:`render_html`'s.

    >>> from editkit.report.schema import Provenance, Report
    >>> prov = Provenance("0.1.0", "2025-01-01T00:00:00Z", ["eval"], [], "cpu")
    >>> render_notebook_html(Report("eval", "demo", prov)).startswith("<iframe")
    True
    """
    page = render_html(report)
    return (
        f'<iframe srcdoc="{escape(page, quote=True)}" title="{_e(report.title)}" '
        f'style="width:100%; height:{NOTEBOOK_HEIGHT}px; border:1px solid #e2e8f0; border-radius:8px" '
        'sandbox="allow-same-origin"></iframe>'
    )
