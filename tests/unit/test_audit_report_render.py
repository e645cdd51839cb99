"""Report sections and figures (editkit.report, schema 2): data, rendering, files, older reports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from editkit.report import (
    SCHEMA_VERSION,
    Figure,
    Finding,
    Provenance,
    Report,
    ReportFormatError,
    Section,
    Table,
    rank_findings,
    render_console,
    render_html,
    render_markdown,
    write_report,
)
from editkit.report.figures import FigureError, draw_figure

pytestmark = pytest.mark.unit

FIGURES = [
    Figure("heatmap", "counts", {"rows": [0, 1], "columns": ["attn_in", "mlp_out"], "values": [[2, None], [0, 5]],
                                 "ylabel": "layer", "colorbar": "intruders"}),
    Figure("lines", "spectrum", {"series": [{"name": "tuned", "x": [1, 2, 3], "y": [3.0, 0.2, 0.01], "marked": [0]},
                                            {"name": "base", "x": [1, 2, 3], "y": [2.5, 0.3, 0.02]}],
                                 "logy": True, "marked_label": "intruders"}),
    Figure("bars", "refusal", {"labels": ["harmful", "harmless"], "ylim": [0, 1],
                               "series": [{"name": "base", "values": [0.9, 0.1], "lo": [0.8, 0.05], "hi": [0.95, 0.2]},
                                          {"name": "tuned", "values": [0.4, None]}]}),
    Figure("bars", "examples", {"labels": ["a <b>", "c"], "horizontal": True,
                                "series": [{"name": "score", "values": [0.3, 0.1]}]}),
    Figure("distributions", "tuco", {"groups": [{"name": "chat", "values": [0.2, 0.3, 0.25]},
                                                {"name": "web", "values": [0.05]}], "ylabel": "TuCo"}),
]


def _prov() -> Provenance:
    return Provenance("0.1.0", "2025-01-01T00:00:00Z", ["editkit", "audit"], [], "cpu")


def _report(figures: list[Figure] = FIGURES) -> Report:
    sections = [
        Section("tuco", "TuCo", summary="Mean TuCo 0.25 on 'chat'.", metrics={"mean": 0.25, "n": 4},
                tables=[Table("per prompt", ["prompt", "TuCo"], [["hi <there>", 0.25]])], figures=figures[:3],
                seconds=1.5),
        Section("refusal", "Refusal", status="error", summary="Not measured: missing."),
        Section("cge", "CGE", figures=figures[3:]),
    ]
    findings = [Finding("tuco", "info", "measured"), Finding("refusal", "error", "not measured: missing"),
                Finding("tuco", "warning", "high")]
    return Report("audit", "Audit <x>", _prov(), findings=rank_findings(findings, ["tuco", "refusal", "cge"]),
                  sections=sections, summary="This audit compared <a> with <b>.")


def test_sections_round_trip_and_validate() -> None:
    r = _report()
    assert Report.from_json(r.to_json()) == r and r.schema_version == SCHEMA_VERSION == 2
    assert [f.message for f in r.findings] == ["not measured: missing", "high", "measured"]
    d = r.to_dict()
    d["sections"][0]["status"] = "done"
    with pytest.raises(ReportFormatError, match=r"sections\[0\].*status"):
        Report.from_dict(d)
    d = r.to_dict()
    d["sections"][0]["figures"][0]["kind"] = "pie"
    with pytest.raises(ReportFormatError, match=r"figures\[0\].*figure kind"):
        Report.from_dict(d)
    d = r.to_dict()
    d["sections"][0]["metrics"]["mean"] = "high"
    with pytest.raises(ReportFormatError, match=r"sections\[0\]\.metrics"):
        Report.from_dict(d)


def test_version_1_reports_still_load() -> None:
    d = Report("eval", "old", _prov(), metrics={"model": {"a": 0.5}}).to_dict()
    for key in ("sections", "summary"):
        del d[key]
    d["schema_version"] = 1
    old = Report.from_dict(d)
    assert old.sections == [] and old.summary == "" and old.schema_version == 1
    assert "Verdict" not in render_html(old) and "## Verdict" not in render_markdown(old)


def test_every_figure_kind_draws() -> None:
    for fig in FIGURES:
        assert draw_figure(fig)[:4] == b"\x89PNG", fig.kind
    with pytest.raises(FigureError, match="heatmap values"):
        draw_figure(Figure("heatmap", "bad", {"rows": [0], "columns": ["a", "b"], "values": [[1]]}))
    with pytest.raises(FigureError, match="needs data\\['series'\\]"):
        draw_figure(Figure("lines", "bad", {}))


def test_html_has_verdict_links_sections_and_figures() -> None:
    bad = Figure("lines", "broken", {"series": [{"name": "x", "x": [1, 2], "y": [1]}]})
    page = render_html(_report([*FIGURES[:2], bad, *FIGURES[3:]]))
    assert "<script" not in page.lower() and not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page)
    assert "This audit compared &lt;a&gt; with &lt;b&gt;." in page
    assert '<a href="#section-tuco">TuCo</a>' in page and 'id="section-refusal"' in page
    assert '<a class="sec" href="#section-refusal"><b>refusal</b></a>' in page
    assert page.count("data:image/png;base64,") == 4  # the broken figure is a note instead
    assert "figure not drawn: lines series &#x27;x&#x27;: 2 x values but 1 y values" in page
    assert 'class="status error">error<' in page and "hi &lt;there&gt;" in page
    assert page.index("Verdict") < page.index("Findings") < page.index('id="section-tuco"')


def test_markdown_links_the_figure_files_written_next_to_it(tmp_path: Path) -> None:
    report = _report()
    md = render_markdown(report)
    assert "## Verdict" in md and "## TuCo" in md and "**status** error" in md
    assert "![counts](figures/tuco-1.png)" in md and "![tuco](figures/cge-2.png)" in md
    paths = write_report(report, tmp_path, formats=["json", "md"])
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == [
        "cge-1.png", "cge-2.png", "tuco-1.png", "tuco-2.png", "tuco-3.png"]
    assert paths["figure:figures/tuco-1.png"] == tmp_path / "figures" / "tuco-1.png"
    assert json.loads(paths["json"].read_text())["sections"][1]["status"] == "error"
    only_json = write_report(report, tmp_path / "j", formats=["json"])
    assert list(only_json) == ["json"]  # no figures drawn or written for JSON alone


def test_console_lists_sections_ranked_findings_and_the_verdict() -> None:
    from rich.console import Console

    console = Console(record=True, width=140)
    render_console(_report(), console)
    text = console.export_text()
    assert "Analyses" in text and "Verdict" in text and "This audit compared <a> with <b>." in text
    assert text.index("ERROR") < text.index("WARNING") < text.index("INFO")
    assert "1.5 s" in text


def test_notebook_display_is_a_sandboxed_frame() -> None:
    html = _report()._repr_html_()
    assert html.startswith("<iframe srcdoc=") and 'sandbox="allow-same-origin"' in html
    assert "<section" not in html  # the page is escaped into the attribute
