"""Formatting shared by every renderer: numbers, deltas, durations, the metrics grid.

Renderers first take :func:`normalized`, a JSON-clean copy of the report, so
that a report rendered in memory looks exactly like the same report loaded
back from ``report.json``, and so that rendering can never mutate its input.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from editkit.report.schema import MetricInfo, Report

MISSING = "n/a"
PER_ITEM_SKIP = frozenset({"id"})  # identifiers are not distributions


def normalized(report: Report) -> Report:
    """A fresh, JSON-clean copy of ``report`` (NaN -> None, numpy -> Python)."""
    return Report.from_dict(report.to_dict())


def generic_number(value: float | int) -> str:
    """A readable default for numbers that come without a format spec.

    >>> generic_number(0.123456), generic_number(123456.7), generic_number(3)
    ('0.1235', '123,457', '3')
    """
    if isinstance(value, int):
        return str(value)
    mag = abs(value)
    if mag == 0:
        return "0"
    if mag >= 1e4:
        return f"{value:,.0f}"
    if mag < 1e-3:
        return f"{value:.2e}"
    return f"{value:.4g}"


def format_value(value: Any, fmt: str | None = None) -> str:
    """Format one cell: numbers through ``fmt`` when it fits, others as text.

    >>> format_value(0.5, ".1%"), format_value(None), format_value(2, ".3f")
    ('50.0%', 'n/a', '2.000')
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        if fmt:
            try:
                return format(value, fmt)
            except (ValueError, TypeError):
                pass
        return generic_number(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "; ".join(value)
    return json.dumps(value, ensure_ascii=False)


def delta(before: float | None, after: float | None) -> float | None:
    """``after - before``, or None when either is missing."""
    if before is None or after is None:
        return None
    return after - before


def format_delta(d: float | None, fmt: str | None = None) -> str:
    """A signed delta: ``+0.250``, ``-0.100``, ``0.000``.

    >>> format_delta(0.25), format_delta(-0.1, ".1%"), format_delta(None)
    ('+0.250', '-10.0%', 'n/a')
    """
    if d is None:
        return MISSING
    sign = "+" if d > 0 else "-" if d < 0 else ""
    return sign + format_value(abs(d), fmt or ".3f")


def delta_quality(d: float | None, higher_is_better: bool | None) -> str:
    """``"good"``, ``"bad"`` or ``"neutral"`` for a change in a metric.

    >>> delta_quality(0.2, True), delta_quality(0.2, False), delta_quality(0.2, None)
    ('good', 'bad', 'neutral')
    """
    if d is None or d == 0 or higher_is_better is None:
        return "neutral"
    return "good" if (d > 0) == higher_is_better else "bad"


def direction_arrow(info: MetricInfo) -> str:
    """``↑`` when higher is better, ``↓`` when lower is, else nothing."""
    if info.higher_is_better is None:
        return ""
    return "↑" if info.higher_is_better else "↓"


def format_seconds(seconds: float | None) -> str:
    """Durations for humans.

    >>> format_seconds(0.0123), format_seconds(12.34), format_seconds(3725)
    ('12.3 ms', '12.3 s', '1 h 02 min')
    """
    if seconds is None:
        return MISSING
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def format_count(n: int) -> str:
    """Parameter counts: ``134.5M``, ``7.2B``.

    >>> format_count(134515008), format_count(512)
    ('134.5M', '512')
    """
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= size:
            return f"{n / size:.1f}{suffix}"
    return str(n)


@dataclass
class MetricRow:
    """One metric across the report's metric columns."""

    name: str
    info: MetricInfo
    values: list[float | None]  # one per column
    delta: float | None  # last minus first, only with exactly two columns

    def cells(self) -> list[str]:
        return [format_value(v, self.info.fmt) for v in self.values]

    @property
    def delta_text(self) -> str:
        return format_delta(self.delta, self.info.fmt)

    @property
    def quality(self) -> str:
        return delta_quality(self.delta, self.info.higher_is_better)


def metric_info_for(report: Report, name: str) -> MetricInfo:
    """The report's :class:`MetricInfo` for ``name``, or a neutral default."""
    return report.metric_info.get(name) or MetricInfo(name, "", higher_is_better=None)


def metric_grid(report: Report) -> tuple[list[str], list[MetricRow], bool]:
    """Columns, one row per metric (first-seen order), and whether there is a delta.

    >>> from editkit.report.schema import Provenance
    >>> prov = Provenance("0", "t", [], [], "cpu")
    >>> cols, rows, has_delta = metric_grid(Report("edit", "t", prov,
    ...     metrics={"before": {"acc": 0.1}, "after": {"acc": 0.9}}))
    >>> cols, rows[0].delta_text, has_delta
    (['before', 'after'], '+0.800', True)
    """
    columns = list(report.metrics)
    names: dict[str, None] = {}
    for col in columns:
        names.update(dict.fromkeys(report.metrics[col]))
    has_delta = len(columns) == 2
    rows = []
    for name in names:
        values = [report.metrics[col].get(name) for col in columns]
        d = delta(values[0], values[1]) if has_delta else None
        rows.append(MetricRow(name, metric_info_for(report, name), values, d))
    return columns, rows, has_delta


def is_number(value: Any) -> bool:
    """True for ints and floats, not for booleans."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def numeric_columns(rows: list[list[Any]], n: int) -> list[bool]:
    """Which of ``n`` columns hold only numbers (or missing values), at least one.

    >>> numeric_columns([[1, "a"], [None, "b"]], 2)
    [True, False]
    """
    out = []
    for i in range(n):
        col = [r[i] for r in rows if i < len(r) and r[i] is not None]
        out.append(bool(col) and all(is_number(v) for v in col))
    return out


def per_item_columns(rows: list[dict[str, Any]]) -> list[str]:
    """All keys of the per-item rows, in first-seen order."""
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row))
    return list(keys)


def numeric_fields(rows: list[dict[str, Any]], limit: int = 6) -> dict[str, list[float]]:
    """Per-item fields whose values are all numbers (None allowed), up to ``limit``.

    Booleans and ``id`` are skipped; each field maps to its non-missing values.
    """
    out: dict[str, list[float]] = {}
    for key in per_item_columns(rows):
        if key in PER_ITEM_SKIP:
            continue
        values = [row.get(key) for row in rows]
        present = [v for v in values if v is not None]
        if present and all(is_number(v) for v in present):
            out[key] = [float(v) for v in present]
            if len(out) == limit:
                break
    return out


def finding_counts(report: Report) -> str:
    """``"1 error, 2 warnings, 3 info"`` (only non-zero counts), or empty."""
    parts = []
    for severity, plural in (("error", "errors"), ("warning", "warnings"), ("info", "info")):
        n = sum(f.severity == severity for f in report.findings)
        if n:
            parts.append(f"{n} {severity if n == 1 else plural}")
    return ", ".join(parts)


def short_json(value: Any, limit: int = 200) -> str:
    """Compact JSON, cut to ``limit`` characters with an ellipsis."""
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def model_line(m: Any) -> str:
    """``edited: gpt2 (gpt2, 124.4M params, float32, sha256 1a2b3c4d…)``."""
    text = f"{m.role}: {m.spec} ({m.model_type}, {format_count(m.n_params)} params, {m.dtype}"
    if m.weights_sha256:
        text += f", sha256 {m.weights_sha256[:12]}…"
    return text + ")"


FIGURES_DIR = "figures"


def figure_files(report: Report) -> list[tuple[str, Any]]:
    """``(relative PNG path, figure)`` for every section figure, in report order.

    The paths (``figures/<section>-<n>.png``) are where :func:`editkit.report.write_report`
    writes the PNG files and where the Markdown links point.

    >>> from editkit.report.schema import Figure, Provenance, Section
    >>> fig = Figure("bars", "t", {"labels": [], "series": []})
    >>> r = Report("audit", "t", Provenance("0", "t", [], [], "cpu"),
    ...            sections=[Section("tuco", "TuCo", figures=[fig])])
    >>> [path for path, _ in figure_files(r)]
    ['figures/tuco-1.png']
    """
    out = []
    for section in report.sections:
        stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in section.name) or "section"
        for i, fig in enumerate(section.figures, 1):
            out.append((f"{FIGURES_DIR}/{stem}-{i}.png", fig))
    return out


def draw_figures(report: Report) -> dict[str, bytes | str]:
    """Each section figure's PNG bytes by :func:`figure_files` path; a figure that cannot be
    drawn maps to the reason (a string), shown in its place."""
    from editkit.report.figures import FigureError, draw_figure

    out: dict[str, bytes | str] = {}
    for path, fig in figure_files(report):
        try:
            out[path] = draw_figure(fig)
        except FigureError as exc:
            out[path] = f"figure not drawn: {exc}"
    return out


def section_anchor(name: str) -> str:
    """The HTML id of a section (``section-<name>``)."""
    return "section-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in name)
