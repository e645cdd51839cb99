"""Write a report's files into an output directory.

>>> paths = write_report(report, "runs/demo")   # doctest: +SKIP
>>> sorted(paths)                                # doctest: +SKIP
['html', 'json', 'md', 'per_item']
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from editkit.outputs import atomic_write_bytes, atomic_write_text
from editkit.report._format import draw_figures
from editkit.report.html import render_html
from editkit.report.json_render import render_json
from editkit.report.markdown import render_markdown
from editkit.report.schema import Report

RENDERERS: dict[str, tuple[str, Callable[[Report], str]]] = {
    "json": ("report.json", render_json),
    "md": ("report.md", render_markdown),
    "html": ("report.html", render_html),
}
"""Format name -> (file name, renderer)."""

PER_ITEM_FILE = "per_item.jsonl"


def write_report(
    report: Report,
    out_dir: str | os.PathLike[str],
    formats: Iterable[str] = ("json", "md", "html"),
) -> dict[str, Path]:
    """Render ``report`` in each format and write the files atomically into ``out_dir``.

    ``per_item.jsonl`` (one JSON object per line) is written too when the
    report has per-item rows, and ``figures/<section>-<n>.png`` (the section
    figures the Markdown links to) with the ``md`` format. Each figure is drawn
    once for all formats. Each file appears complete or not at all; for a
    whole-directory guarantee write into :func:`editkit.outputs.output_dir`.

    Args:
        report: The report (not modified).
        out_dir: The directory (created if missing).
        formats: Keys of :data:`RENDERERS`.

    Returns:
        Format name (and ``"per_item"``, and ``"figure:<path>"`` per figure file) -> path written.

    Raises:
        ValueError: For an unknown format name (before anything is written).

    >>> import tempfile
    >>> from editkit.report.schema import Provenance, Report
    >>> prov = Provenance("0.1.0", "2025-01-01T00:00:00Z", ["eval"], [], "cpu")
    >>> out = tempfile.mkdtemp()
    >>> sorted(write_report(Report("eval", "t", prov), out, formats=["json", "md"]))
    ['json', 'md']
    """
    formats = list(formats)
    unknown = [f for f in formats if f not in RENDERERS]
    if unknown:
        raise ValueError(
            f"unknown report format(s) {', '.join(unknown)}: choose from {', '.join(RENDERERS)}"
        )
    out = Path(out_dir)
    written: dict[str, Path] = {}
    images = draw_figures(report) if report.sections and {"md", "html"} & set(formats) else {}
    for fmt in formats:
        filename, render = RENDERERS[fmt]
        written[fmt] = out / filename
        if fmt == "html":
            text = render_html(report, images=images)
        elif fmt == "md":
            text = render_markdown(report, images=images)
        else:
            text = render(report)
        atomic_write_text(written[fmt], text)
    if "md" in formats:
        for path, image in images.items():
            if isinstance(image, bytes):
                written[f"figure:{path}"] = out / path
                atomic_write_bytes(out / path, image)
    if report.per_item:
        rows = report.to_dict()["per_item"]
        lines = [json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n" for row in rows]
        written["per_item"] = out / PER_ITEM_FILE
        atomic_write_text(written["per_item"], "".join(lines))
    return written
