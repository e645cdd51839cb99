"""The audit report: run the selected analyses on one shared context and assemble one :class:`Report`.

- :func:`run_audit` (the Python API of ``editkit audit --base B --tuned T``)
  loads the context, runs the analyses, writes the report (JSON, Markdown,
  self-contained HTML with figures) and returns it.
- :func:`~audit.report.run.run_analyses` isolates failures and keeps each
  finished analysis on disk for a resume; :func:`~audit.report.assemble.audit_report`
  ranks the findings and writes the verdict (:func:`~audit.report.verdict.verdict`).

>>> from audit.report import run_audit
>>> report = run_audit("tiny-model", "runs/lora", analyses="drift,intruders")   # doctest: +SKIP
>>> report.to_pandas("findings")                                                # doctest: +SKIP
"""

from __future__ import annotations

from audit.report.api import audit_context_report, check_partial, run_audit
from audit.report.assemble import audit_report, tuned_name
from audit.report.run import (
    AnalysisRun,
    PartialStore,
    analysis_key,
    failed_output,
    partial_dir_for,
    run_analyses,
)
from audit.report.verdict import verdict

__all__ = [
    "AnalysisRun",
    "PartialStore",
    "analysis_key",
    "audit_context_report",
    "audit_report",
    "check_partial",
    "failed_output",
    "partial_dir_for",
    "run_analyses",
    "run_audit",
    "tuned_name",
    "verdict",
]
