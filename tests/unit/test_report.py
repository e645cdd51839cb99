"""Unit tests for editkit.report: the data model, the renderers and the weights hash."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from editkit.report import (
    RENDERERS,
    SCHEMA_VERSION,
    Finding,
    MetricInfo,
    ModelInfo,
    Provenance,
    Report,
    Table,
    model_info,
    provenance,
    render_console,
    render_html,
    render_json,
    render_markdown,
    weights_sha256,
    write_report,
)
from editkit.report.schema import ReportFormatError, to_jsonable

pytestmark = pytest.mark.unit


def _prov() -> Provenance:
    return Provenance(
        editkit_version="0.1.0",
        created="2025-01-01T00:00:00Z",
        command=["editkit", "edit", "--model", "tiny"],
        models=[ModelInfo("edited", "tiny", "llama", 1234, "float32", "ab" * 32)],
        device="cpu",
        seed=0,
        versions={"python": "3.11.0"},
    )


def _report(**overrides: object) -> Report:
    kw: dict[str, object] = dict(
        kind="edit",
        title="LocFT-BF on 3 facts",
        provenance=_prov(),
        config={"editor": "locft-bf", "layer": 3, "lr": 1e-4},
        timings={"edit": 1.5, "evaluate": 0.25},
        metrics={
            "before": {"reliability": 0.125, "locality": 1.0, "perplexity": 20.0},
            "after": {"reliability": 0.875, "locality": 0.9, "perplexity": 25.0},
        },
        metric_info={
            "reliability": MetricInfo("reliability", "token accuracy of target_new"),
            "locality": MetricInfo("locality", "agreement with the unedited model"),
            "perplexity": MetricInfo("perplexity", "reference text", False, ".2f"),
        },
        tables=[Table("sweep", ["layer", "score"], [[0, 0.25], [1, 0.5]], "per layer")],
        per_item=[
            {
                "id": f"r{i}",
                "prompt": f"The capital of {i} is",
                "target_new": "Rome",
                "reliability": i / 3,
            }
            for i in range(3)
        ],
        findings=[Finding("drift", "warning", "perplexity rose", {"delta": 5.0})],
        notes=["teacher-forced scores"],
    )
    kw.update(overrides)
    return Report(**kw)  # type: ignore[arg-type]


def _strict_loads(text: str) -> object:
    def bad(token: str) -> None:
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=bad)


# ---- data model -------------------------------------------------------------------------


def test_round_trip_dict_and_json() -> None:
    r = _report()
    assert Report.from_dict(r.to_dict()) == r
    assert Report.from_json(r.to_json()) == r
    assert Report.from_json(render_json(r)) == r
    assert list(r.to_dict())[0] == "schema_version"


def test_nan_inf_become_null_and_json_is_strict() -> None:
    r = _report(
        metrics={"model": {"a": float("nan"), "b": float("inf"), "c": 0.5}},
        per_item=[{"id": "x", "score": float("-inf")}],
    )
    text = r.to_json()
    parsed = _strict_loads(text)
    assert parsed["metrics"]["model"] == {"a": None, "b": None, "c": 0.5}  # type: ignore[index]
    loaded = Report.from_json(text)
    assert loaded.metrics["model"]["a"] is None
    assert loaded.per_item[0]["score"] is None
    assert Report.from_json(loaded.to_json()) == loaded
    nan = r.metrics["model"]["a"]
    assert nan is not None and math.isnan(nan)  # to_dict/to_json left the report alone


def test_numpy_and_torch_scalars_are_coerced() -> None:
    r = _report(
        metrics={"model": {"a": np.float32(0.5), "b": np.int64(3), "c": torch.tensor(0.25)}},
        per_item=[{"id": "x", "v": np.array([1.0, 2.0]), "ok": np.bool_(True), "t": (1, 2)}],
        timings={"edit": np.float64(1.5)},
    )
    d = r.to_dict()
    assert d["metrics"]["model"] == {"a": 0.5, "b": 3, "c": 0.25}
    assert type(d["metrics"]["model"]["b"]) is int
    assert d["per_item"][0] == {"id": "x", "v": [1.0, 2.0], "ok": True, "t": [1, 2]}
    assert type(d["timings"]["edit"]) is float
    loaded = Report.from_json(r.to_json())
    assert loaded.to_dict() == d
    assert loaded.metrics == {"model": {"a": 0.5, "b": 3, "c": 0.25}}


def test_unjsonable_value_names_the_field() -> None:
    r = _report(config={"fn": object()})
    with pytest.raises(TypeError, match=r"report\.config\.fn"):
        r.to_dict()


def test_future_schema_version_is_rejected() -> None:
    d = _report().to_dict()
    d["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(ValueError, match="newer than this editkit reads.*upgrade editkit"):
        Report.from_dict(d)
    with pytest.raises(ReportFormatError, match="schema_version"):
        Report.from_dict({k: v for k, v in d.items() if k != "schema_version"})


def test_malformed_reports_give_clear_errors() -> None:
    d = _report().to_dict()
    with pytest.raises(ValueError, match=r"report: unknown field\(s\) colour"):
        Report.from_dict({**d, "colour": "red"})
    bad = copy.deepcopy(d)
    del bad["provenance"]["device"]
    with pytest.raises(ValueError, match=r"provenance: missing field\(s\) device"):
        Report.from_dict(bad)
    bad = copy.deepcopy(d)
    bad["findings"][0]["severity"] = "fatal"
    with pytest.raises(ValueError, match=r"findings\[0\].*severity"):
        Report.from_dict(bad)
    bad = copy.deepcopy(d)
    bad["metrics"]["after"]["reliability"] = "high"
    with pytest.raises(ValueError, match=r"metrics\.after"):
        Report.from_dict(bad)
    with pytest.raises(ValueError, match="not valid JSON"):
        Report.from_json("{nope")


def test_finding_severity_is_checked() -> None:
    with pytest.raises(ValueError, match="severity"):
        Finding("x", "critical", "boom")


# ---- renderers ----------------------------------------------------------------------------


def test_markdown_has_values_delta_and_sections() -> None:
    md = render_markdown(_report())
    assert md.startswith("# LocFT-BF on 3 facts\n")
    assert "| reliability ↑ | 0.125 | 0.875 | **+0.750** ✅ |" in md
    assert "| perplexity ↓ | 20.00 | 25.00 | **+5.00** 🔻 |" in md
    assert "## sweep" in md and "## Findings (1 warning)" in md
    assert "> **Note:** teacher-forced scores" in md
    assert "## Per item (3)" in md and "edit" in md


def test_markdown_single_column_has_no_delta_and_truncates_per_item() -> None:
    rows = [{"id": i, "prompt": f"p|{i}", "score": 0.5} for i in range(60)]
    md = render_markdown(_report(metrics={"model": {"reliability": 0.5}}, per_item=rows))
    assert "| metric | model |" in md and "Δ" not in md
    assert "Showing the first 50 of 60 rows" in md
    assert "p\\|49" in md and "p\\|50" not in md  # pipes escaped, rows cut at 50


def test_html_is_self_contained_and_has_figures() -> None:
    page = render_html(_report())
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page)
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert page.count("data:image/png;base64,") == 2  # metrics chart + per-item histograms
    assert "+0.750" in page and 'class="num bad">+5.00' in page


def test_html_escapes_text() -> None:
    evil = "<script>alert('x')</script>"
    r = _report(
        title=f"t {evil}",
        per_item=[{"id": "a", "prompt": evil, "target_new": '"><img src=x>'}],
        notes=[evil],
        findings=[Finding("a<b>", "error", evil, {"k": evil})],
    )
    page = render_html(r)
    assert "<script" not in page.lower()
    assert "<img src=x>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    md = re.sub(r"`[^`]*`", "", render_markdown(r))  # code spans show text literally
    assert not re.search(r"(?<!\\)<script", md) and "\\<script\\>" in md


def test_console_render_contains_metrics() -> None:
    from rich.console import Console

    console = Console(record=True, width=120)
    render_console(_report(), console)
    text = console.export_text()
    for needle in ("reliability", "locality", "perplexity", "+0.750", "Δ", "WARNING", "Note:"):
        assert needle in text
    assert "sweep" in text and "Timings" in text


def test_console_does_not_parse_markup_in_user_text() -> None:
    from rich.console import Console

    console = Console(record=True, width=120)
    render_console(_report(title="[bold red]x[/bold red] [link=y]"), console)
    assert "[bold red]x[/bold red] [link=y]" in console.export_text()


@pytest.mark.parametrize("fmt", ["console", *RENDERERS])
def test_rendering_does_not_mutate_the_report(fmt: str) -> None:
    r = _report(metrics={"before": {"a": np.float64(0.1)}, "after": {"a": float("nan")}})
    before = copy.deepcopy(r)
    if fmt == "console":
        from rich.console import Console

        render_console(r, Console(record=True, width=120))
    else:
        RENDERERS[fmt][1](r)
    assert r.to_dict() == before.to_dict()
    assert type(r.metrics["before"]["a"]) is np.float64 and str(r.metrics["after"]["a"]) == "nan"


def test_render_is_the_same_in_memory_and_after_loading() -> None:
    r = _report(metrics={"model": {"a": np.float32(0.5), "b": float("nan")}})
    loaded = Report.from_json(r.to_json())
    assert render_markdown(r) == render_markdown(loaded)
    assert render_html(r) == render_html(loaded)


def test_renderers_handle_an_empty_report() -> None:
    r = Report("audit", "nothing yet", Provenance("0.1.0", "t", [], [], "cpu"))
    assert render_markdown(r).startswith("# nothing yet")
    assert "data:image" not in render_html(r)
    render_console(r)


# ---- writing ----------------------------------------------------------------------------


def test_write_report_writes_files_atomically(tmp_path) -> None:
    out = tmp_path / "run"
    paths = write_report(_report(), out)
    assert set(paths) == {"json", "md", "html", "per_item"}
    assert sorted(p.name for p in out.iterdir()) == [
        "per_item.jsonl",
        "report.html",
        "report.json",
        "report.md",
    ]  # no temporary files left behind
    assert Report.from_json(paths["json"].read_text()) == _report()
    lines = paths["per_item"].read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["r0", "r1", "r2"]


def test_write_report_formats_and_errors(tmp_path) -> None:
    paths = write_report(_report(per_item=[]), tmp_path, formats=["md"])
    assert list(paths) == ["md"] and [p.name for p in tmp_path.iterdir()] == ["report.md"]
    with pytest.raises(ValueError, match="unknown report format"):
        write_report(_report(), tmp_path / "x", formats=["pdf"])
    assert not (tmp_path / "x").exists()


# ---- provenance -------------------------------------------------------------------------


class _Tiny(torch.nn.Module):
    a: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.b = torch.nn.Parameter(torch.arange(6, dtype=torch.float32).reshape(2, 3))
        self.register_buffer("a", torch.tensor([1.5, -2.0], dtype=torch.bfloat16))


def test_weights_sha256_matches_hand_computation() -> None:
    m = _Tiny()
    h = hashlib.sha256()
    h.update(b"a\0bfloat16\x002\0")
    h.update(m.a.view(torch.int16).numpy().tobytes())
    h.update(b"b\0float32\x002x3\0")
    h.update(m.b.detach().numpy().tobytes())
    assert weights_sha256(m) == h.hexdigest()
    assert weights_sha256(m.state_dict()) == h.hexdigest()


def test_weights_sha256_is_deterministic_and_sensitive() -> None:
    torch.manual_seed(0)
    last = torch.nn.Linear(3, 2)
    m = torch.nn.Sequential(torch.nn.Linear(4, 3), last)
    first = weights_sha256(m)
    assert first == weights_sha256(m) == weights_sha256(copy.deepcopy(m))
    with torch.no_grad():
        last.weight[0, 0] += 1e-3
    assert weights_sha256(m) != first
    scalar = {"s": torch.tensor(1.0)}  # 0-d tensors hash too
    assert len(weights_sha256(scalar)) == 64


def test_model_info_and_provenance() -> None:
    m = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    m.config = type("Cfg", (), {"model_type": "llama"})()  # type: ignore[assignment]
    info = model_info(m, "tiny", "base", weights_sha256="00" * 32)
    assert info == ModelInfo("base", "tiny", "llama", 15 + 8, "float32", "00" * 32)
    assert model_info(torch.nn.Linear(2, 2), "x").model_type == "Linear"
    prov = provenance(["editkit", "eval"], [info], torch.device("cpu"), seed=3)
    assert prov.device == "cpu" and prov.seed == 3 and prov.models == [info]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", prov.created)
    assert {"python", "torch"} <= set(prov.versions)
    assert Provenance.from_dict(json.loads(json.dumps(to_jsonable(prov)))) == prov


def test_import_is_light() -> None:
    code = (
        "import sys, editkit.report as r; "
        "print(sorted(m for m in ('rich', 'matplotlib', 'torch') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert out.stdout.strip() == "[]"


def test_console_shows_head_and_tail_of_long_tables_and_narrow_metrics() -> None:
    from rich.console import Console

    long = Table(title="Training log", columns=["epoch", "loss"], rows=[[i, 1.0 / i] for i in range(1, 41)])
    report = _report(tables=[long])
    wide, narrow = Console(record=True, width=140), Console(record=True, width=80)
    render_console(report, wide)
    render_console(report, narrow)
    text = wide.export_text()
    assert "28 more rows in report.json" in text
    assert " 40 " in text and " 20 " not in text.split("Training log")[1]
    assert "description" in text and "description" not in narrow.export_text()
    assert len(report.tables[0].rows) == 40  # the report itself keeps every row
