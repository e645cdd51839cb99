"""A report's tables as pandas DataFrames (``Report.to_pandas``); pandas is imported here only.

>>> frames = report.to_pandas()            # doctest: +SKIP
>>> frames["findings"].head()              # doctest: +SKIP
"""

from __future__ import annotations

import json
from typing import Any

from editkit.errors import EditkitError
from editkit.report.schema import Report, Table


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise EditkitError("exporting a report to pandas needs pandas: pip install pandas") from None
    return pandas


def table_frame(table: Table) -> Any:
    """One :class:`Table` as a DataFrame (its columns, its rows)."""
    return _pandas().DataFrame(table.rows, columns=table.columns)


def report_frames(report: Report) -> dict[str, Any]:
    """Every table of ``report`` as a DataFrame, keyed as :meth:`Report.to_pandas` documents.

    ``findings`` (analysis, severity, message, details as JSON text), ``metrics``
    (one row per metric, one column per metric column), ``sections`` (name,
    title, status, seconds, summary, and each section's metrics as
    ``metric`` / ``value`` rows in ``section_metrics``), the top-level tables
    by title, each section's tables as ``"<section>/<title>"``, and ``per_item``.
    """
    pd = _pandas()
    out: dict[str, Any] = {}
    if report.findings:
        out["findings"] = pd.DataFrame(
            [
                [f.analysis, f.severity, f.message, json.dumps(f.details, ensure_ascii=False)]
                for f in report.findings
            ],
            columns=["analysis", "severity", "message", "details"],
        )
    if report.metrics:
        out["metrics"] = pd.DataFrame(report.metrics)
    if report.sections:
        out["sections"] = pd.DataFrame(
            [[s.name, s.title, s.status, s.seconds, s.summary] for s in report.sections],
            columns=["name", "title", "status", "seconds", "summary"],
        )
        rows = [[s.name, k, v] for s in report.sections for k, v in s.metrics.items()]
        if rows:
            out["section_metrics"] = pd.DataFrame(rows, columns=["section", "metric", "value"])
    for table in report.tables:
        out[table.title] = table_frame(table)
    for section in report.sections:
        for table in section.tables:
            out[f"{section.name}/{table.title}"] = table_frame(table)
    if report.per_item:
        out["per_item"] = pd.DataFrame(report.per_item)
    return out
