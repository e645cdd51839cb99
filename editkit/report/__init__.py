"""Reports: pure data (:class:`Report`) and pure renderers (console, JSON, Markdown, HTML).

>>> from editkit.report import Report, provenance, write_report
>>> prov = provenance(["editkit", "eval"], models=[], device="cpu")
>>> report = Report("eval", "demo", prov, metrics={"model": {"reliability": 0.9}})
>>> paths = write_report(report, "runs/demo")   # doctest: +SKIP

Importing this package is cheap: torch, rich and matplotlib are imported only
when a function needs them (``render_console`` is loaded on first access).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from editkit.report.html import render_html
from editkit.report.json_render import render_json
from editkit.report.markdown import render_markdown
from editkit.report.provenance import model_info, provenance, weights_sha256
from editkit.report.schema import (
    SCHEMA_VERSION,
    Figure,
    Finding,
    MetricInfo,
    ModelInfo,
    Provenance,
    Report,
    ReportFormatError,
    Section,
    Table,
    rank_findings,
)
from editkit.report.write import RENDERERS, write_report

if TYPE_CHECKING:
    from editkit.report.console import render_console

__all__ = [
    "RENDERERS",
    "SCHEMA_VERSION",
    "Figure",
    "Finding",
    "MetricInfo",
    "ModelInfo",
    "Provenance",
    "Report",
    "ReportFormatError",
    "Section",
    "Table",
    "model_info",
    "provenance",
    "rank_findings",
    "render_console",
    "render_html",
    "render_json",
    "render_markdown",
    "weights_sha256",
    "write_report",
]


def __getattr__(name: str) -> Any:
    if name == "render_console":  # imports rich
        return importlib.import_module("editkit.report.console").render_console
    raise AttributeError(f"module 'editkit.report' has no attribute {name!r}")
