"""JSON rendering: the canonical, strict JSON form of a report.

>>> from editkit.report.schema import Provenance, Report
>>> prov = Provenance("0.1.0", "2025-01-01T00:00:00Z", ["eval"], [], "cpu")
>>> Report.from_json(render_json(Report("eval", "t", prov))).title
't'
"""

from __future__ import annotations

from editkit.report.schema import Report


def render_json(report: Report) -> str:
    """Render a report as indented, strict JSON (``Report.to_json`` plus a final newline).

    Keys keep field order (``schema_version`` first); NaN and infinities are
    written as ``null``. ``Report.from_json`` reads it back.

    Args:
        report: The report (not modified).

    Returns:
        The JSON text.

    >>> from editkit.report.schema import Provenance, Report
    >>> prov = Provenance("0.1.0", "2025-01-01T00:00:00Z", ["eval"], [], "cpu")
    >>> render_json(Report("eval", "t", prov)).startswith('{\\n  "schema_version": 2')
    True
    """
    return report.to_json(indent=2) + "\n"
