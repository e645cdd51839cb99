"""``editkit audit --base B --tuned T``: one command, one report; bad input is one line and exit 2."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from audit.analyses import ANALYSES, AnalysisOutput
from editkit.cli import app
from editkit.report import Report

pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("ignore::UserWarning")]

QUICK = ["--set", "intruders.cache=false", "--set", "intruders.spectra=1", "--set", "cge.n=2",
         "--set", "cge.max_new_tokens=4", "--set", "cge.num_beams=2", "--set", "cge.rank_reference=4",
         "--set", "drift.passages=6", "--set", "tuco.max_prompts=3"]


@pytest.fixture(autouse=True)
def _no_refusal_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "audit.refusal", None)


def run(*args: str):
    return CliRunner(env={"COLUMNS": "160"}).invoke(app, list(args))


def audit(base: Path, tuned: Path, out: Path, *extra: str):
    return run("audit", "--base", str(base), "--tuned", str(tuned), "--out", str(out), *QUICK, *extra)


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_audit_writes_one_report_and_prints_a_summary(tiny_dir: Path, lora_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "audit"
    res = audit(tiny_dir, lora_dir, out)
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["figures", "report.html", "report.json", "report.md"]
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert figures == ["cge-1.png", "cge-2.png", "drift-1.png", "intruders-1.png", "intruders-2.png",
                       "intruders-3.png", "tuco-1.png", "tuco-2.png"]
    assert all((out / "figures" / f).read_bytes()[:4] == b"\x89PNG" for f in figures)
    assert _hidden(tmp_path) == []  # no temporary or partial folder left behind

    report = Report.from_json((out / "report.json").read_text())
    assert [s.name for s in report.sections] == ["tuco", "cge", "intruders", "refusal", "drift"]
    assert report.findings[0].analysis == "refusal" and report.findings[0].severity == "error"
    assert report.provenance.command[0] == "editkit" and report.kind == "audit"
    md = (out / "report.md").read_text()
    assert "## Verdict" in md and "![Intruder dimensions per layer" in md and "(figures/intruders-1.png)" in md
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(figures) and "<script" not in html.lower()
    # The console: analyses with their status, findings ranked by severity, the verdict.
    text = res.output
    for needle in ("Analyses", "Intruder dimensions", "Findings (1 error", "Verdict", "audit report written to"):
        assert needle in text, needle
    assert text.index("ERROR") < text.index("WARNING") < text.index("INFO")


def test_subcommands_still_work(tiny_dir: Path, lora_dir: Path, tmp_path: Path) -> None:
    res = run("audit", "intruders", "--base", str(tiny_dir), "--tuned", str(lora_dir), "--out",
              str(tmp_path / "i"), "--no-cache", "--spectra", "0", "--backend", "torch-cpu")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "i" / "intruders.json").is_file()
    res = run("audit", "analyses")
    assert res.exit_code == 0 and "intruders options" in res.output and "max_new_tokens" in res.output


def test_every_form_and_options_reach_the_analyses(tiny_dir: Path, lora_dir: Path, tmp_path: Path) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "The capital of France is", "set": "facts"}\n'
                       '{"prompt": "Hello there", "set": "chat"}\n')
    out = tmp_path / "a"
    res = audit(tiny_dir, lora_dir, out, "--analyses", "tuco,intruders", "--prompts", str(prompts),
                "--set", "intruders.k=4", "--format", "json", "--reference", "none")
    assert res.exit_code == 0, res.output
    report = Report.from_json((out / "report.json").read_text())
    assert report.config["options"]["intruders"]["k"] == 4
    assert report.config["prompt_sets"] == [{"name": "facts", "prompts": 1, "source": str(prompts)},
                                            {"name": "chat", "prompts": 1, "source": str(prompts)}]
    assert set(report.sections[0].metrics) == {"mean_tuco[facts]", "mean_tuco[chat]"}
    assert sorted(p.name for p in out.iterdir()) == ["report.json"]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--analyses", "tuco,nope"], "--analyses: unknown analysis 'nope'"),
        (["--set", "drift.passagez=3"], "unknown key 'passagez'"),
        (["--set", "intruders.eps=2"], "eps=2.0"),
        (["--set", "nonsense"], "expected <analysis>.<option>=<value>"),
        (["--format", "json,pdf"], "--format: unknown format(s) pdf"),
        (["--reference", "missing.txt"], "missing.txt: no such file"),
    ],
)
def test_bad_options_are_one_line_before_loading(
    lora_dir: Path, tmp_path: Path, extra: list[str], expected: str
) -> None:
    out = tmp_path / "o"
    res = run("audit", "--base", str(tmp_path / "no-model"), "--tuned", str(lora_dir), "--out", str(out), *extra)
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], res.output
    assert not out.exists() and _hidden(tmp_path) == []


def test_bad_inputs_are_one_line(tiny_dir: Path, lora_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"prompt": ""}\n')
    cases = [
        (["--tuned", str(tmp_path / "nope")], "nope: no such file or folder"),
        (["--tuned", str(lora_dir), "--prompts", str(bad)], "bad.jsonl:2: prompt"),
        ([], "--tuned missing"),
    ]
    for extra, expected in cases:
        res = run("audit", "--base", str(tiny_dir), "--out", str(tmp_path / "o"), *extra)
        assert res.exit_code == 2, res.output
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], res.output
    res = run("audit", "--base", str(tiny_dir), "intruders", "--tuned", str(lora_dir))
    assert res.exit_code == 2 and "go after the subcommand" in res.output
    assert not (tmp_path / "o").exists()


def test_debug_shows_the_traceback(lora_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDITKIT_DEBUG", "1")
    res = run("audit", "--base", str(tmp_path / "no-model"), "--tuned", str(lora_dir), "--analyses", "nope")
    assert res.exit_code != 0 and res.exception is not None  # raised, not swallowed


def _interrupt(ctx: object, options: object) -> AnalysisOutput:
    raise KeyboardInterrupt


def test_killed_run_resumes(tiny_dir: Path, lora_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "audit"
    real = ANALYSES["tuco"]
    monkeypatch.setitem(ANALYSES, "tuco", dataclasses.replace(real, run=_interrupt))
    res = audit(tiny_dir, lora_dir, out, "--analyses", "drift,intruders,tuco", "--format", "json")
    assert res.exit_code == 130 and not out.exists()
    assert "no report was written; finished analyses kept in" in res.output and "drift, intruders" in res.output
    partial = tmp_path / ".audit.partial"
    assert sorted(p.name for p in partial.iterdir()) == ["drift.json", "intruders.json"]

    res = audit(tiny_dir, lora_dir, out, "--analyses", "drift,intruders,tuco", "--format", "json")
    assert res.exit_code == 2 and "--resume" in res.output and not out.exists()

    monkeypatch.setitem(ANALYSES, "tuco", real)
    res = audit(tiny_dir, lora_dir, out, "--analyses", "drift,intruders,tuco", "--format", "json", "--resume")
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    assert report["notes"][0].startswith("Resumed: drift, intruders")
    assert [s["status"] for s in report["sections"]] == ["ok", "ok", "ok"]
    assert _hidden(tmp_path) == []


def test_walkthrough_example_runs_on_a_tiny_model(tiny_dir: Path, lora_dir: Path, tmp_path: Path) -> None:
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "examples" / "audit_walkthrough.py"
    spec = importlib.util.spec_from_file_location("audit_walkthrough", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    reports = example.main(["--model", str(tiny_dir), "--requests", "1", "--epochs", "1", "--quick",
                            "--analyses", "drift,tuco", "--out", str(tmp_path / "w")])
    assert list(reports) == ["edit"]
    report = reports["edit"]
    assert report.config["tuned"]["kind"] == "edit"
    assert report.config["prompt_sets"][0]["name"] == "edit prompts"  # the edit's own requests
    assert (tmp_path / "w" / "audit-edit" / "report.html").is_file()
    table = example.compare({"a": report, "b": report})
    assert list(table.columns) == ["a", "b"] and ("drift", "kl_mean") in table.index


def test_walkthrough_notebook_is_valid_and_its_code_compiles() -> None:
    path = Path(__file__).resolve().parents[2] / "examples" / "audit_walkthrough.ipynb"
    notebook = json.loads(path.read_text())
    assert notebook["nbformat"] == 4
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert code and all(c["outputs"] == [] for c in code)  # shipped without outputs
    for i, cell in enumerate(code):
        compile("".join(cell["source"]), f"{path.name}[{i}]", "exec")
