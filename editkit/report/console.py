"""Terminal rendering with rich (the only module of the library that imports rich).

>>> from rich.console import Console                          # doctest: +SKIP
>>> render_console(report, Console())                         # doctest: +SKIP
"""

from __future__ import annotations

from rich import box
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table as RichTable
from rich.text import Text

from editkit.report._format import (
    direction_arrow,
    finding_counts,
    format_seconds,
    format_value,
    metric_grid,
    model_line,
    normalized,
    numeric_columns,
    short_json,
)
from editkit.report.schema import Report

_QUALITY_STYLE = {"good": "bold green", "bad": "bold red", "neutral": ""}
_SEVERITY_STYLE = {"info": "cyan", "warning": "bold yellow", "error": "bold red"}
_STATUS_STYLE = {"ok": "green", "error": "bold red", "skipped": "dim"}


def _header(report: Report) -> RenderableType:
    prov = report.provenance
    text = Text()
    text.append(report.title, style="bold")
    text.append(f"  [{report.kind}]", style="dim")
    for m in prov.models:
        text.append("\n" + model_line(m))
    seed = f", seed {prov.seed}" if prov.seed is not None else ""
    text.append(
        f"\n{prov.created} · editkit {prov.editkit_version} · {prov.device} ({prov.backend}){seed}",
        style="dim",
    )
    return text


def _metrics(report: Report, width: int = 120) -> RenderableType | None:
    columns, rows, has_delta = metric_grid(report)
    if not rows:
        return None
    table = RichTable(title="Metrics", box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("metric", style="bold")
    for col in columns:
        table.add_column(col, justify="right")
    if has_delta:
        table.add_column("Δ", justify="right")
    # Descriptions only where they fit on one line each; the files always carry them.
    show_desc = width >= 120 and any(r.info.description for r in rows)
    if show_desc:
        table.add_column("description", style="dim", overflow="ellipsis", no_wrap=True)
    for row in rows:
        cells: list[RenderableType] = [Text(f"{row.name} {direction_arrow(row.info)}".rstrip())]
        cells += [Text(c) for c in row.cells()]
        if has_delta:
            cells.append(Text(row.delta_text, style=_QUALITY_STYLE[row.quality]))
        if show_desc:
            cells.append(Text(row.info.description))
        table.add_row(*cells)
    return table


MAX_CONSOLE_ROWS = 12


def _tables(report: Report) -> list[RenderableType]:
    out: list[RenderableType] = []
    for t in report.tables:
        table = RichTable(
            title=t.title,
            caption=t.description or None,
            box=box.SIMPLE_HEAD,
            title_justify="left",
            caption_justify="left",
        )
        numeric = numeric_columns(t.rows, len(t.columns))
        for col, num in zip(t.columns, numeric, strict=True):
            table.add_column(col, justify="right" if num else "left", overflow="fold")
        rows = t.rows
        if len(rows) > MAX_CONSOLE_ROWS:  # the head and tail; every row is in the files
            keep = MAX_CONSOLE_ROWS // 2
            rows = [*rows[:keep], None, *rows[-keep:]]  # type: ignore[list-item]
        for row in rows:
            if row is None:
                hidden = len(t.rows) - 2 * (MAX_CONSOLE_ROWS // 2)
                table.add_row(Text(f"… {hidden} more rows in report.json", style="dim"))
                continue
            table.add_row(
                *(Text(format_value(v, t.fmt.get(c))) for c, v in zip(t.columns, row, strict=True))
            )
        out.append(table)
    return out


def _findings(report: Report) -> RenderableType | None:
    if not report.findings:
        return None
    text = Text()
    text.append(f"Findings ({finding_counts(report)})", style="bold")
    for f in report.findings:
        text.append("\n")
        text.append(f"{f.severity.upper():>7} ", style=_SEVERITY_STYLE[f.severity])
        text.append(f"{f.analysis}: ", style="bold")
        text.append(f.message)
        if f.details and not report.sections:  # a sectioned report (an audit) keeps details in its files
            text.append("\n        " + short_json(f.details), style="dim")
    return text


def _summary(report: Report) -> RenderableType | None:
    if not report.summary:
        return None
    return Panel(Text(report.summary), title="Verdict", title_align="left", border_style="blue")


def _sections(report: Report) -> RenderableType | None:
    """One row per section: status, time, its summary (the figures and tables are in the files)."""
    if not report.sections:
        return None
    table = RichTable(title="Analyses", box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("analysis", style="bold", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("summary", overflow="fold")
    for s in report.sections:
        table.add_row(
            Text(s.title),
            Text(s.status, style=_STATUS_STYLE.get(s.status, "")),
            Text(format_seconds(s.seconds) if s.seconds is not None else ""),
            Text(s.summary),
        )
    return table


def _notes(report: Report) -> RenderableType | None:
    if not report.notes:
        return None
    text = Text()
    for i, note in enumerate(report.notes):
        text.append("\n" if i else "")
        text.append("Note: ", style="bold yellow")
        text.append(note)
    return text


def _footer(report: Report) -> RenderableType | None:
    text = Text(style="dim")
    if report.timings:
        text.append(
            "Timings: " + ", ".join(f"{k} {format_seconds(v)}" for k, v in report.timings.items())
        )
    if report.per_item:
        text.append(("\n" if report.timings else "") + f"{len(report.per_item)} per-item rows")
        text.append(" (in report.json / per_item.jsonl)")
    return text if text.plain else None


def render_console(report: Report, console: Console | None = None) -> RenderableType:
    """Render a report for the terminal.

    Args:
        report: The report (not modified).
        console: If given, the rendering is printed to it.

    Returns:
        A rich renderable (a ``Group``), to print or embed elsewhere.

    >>> import io
    >>> from rich.console import Console
    >>> from editkit.report.schema import Provenance, Report
    >>> prov = Provenance("0.1.0", "2025-01-01T00:00:00Z", ["eval"], [], "cpu")
    >>> console = Console(file=io.StringIO(), width=100)
    >>> _ = render_console(Report("eval", "demo", prov, metrics={"model": {"acc": 0.5}}), console)
    >>> "acc" in console.file.getvalue()
    True
    """
    report = normalized(report)
    width = console.width if console is not None else 120
    parts = [
        _header(report),
        _metrics(report, width),
        _notes(report),
        *_tables(report),
        _sections(report),
        _findings(report),
        _summary(report),
        _footer(report),
    ]
    spaced: list[RenderableType] = []
    for part in parts:
        if part is not None:
            spaced += [part, Text("")]
    group = Group(*spaced[:-1])
    if console is not None:
        console.print(group)
    return group
