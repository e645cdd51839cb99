"""``editkit eval`` on the default model, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[2] / "data"


def test_eval_cli_on_demo_subset(tmp_path: Path) -> None:
    facts = tmp_path / "five.jsonl"
    facts.write_text("".join((DATA / "demo.jsonl").read_text().splitlines(keepends=True)[:5]))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "editkit", "eval", "--facts", str(facts), "--out", str(out), "--no-fluency"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "COLUMNS": "160"}, timeout=900)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    metrics = report["metrics"]["model"]
    assert metrics["perplexity"] is not None and 1.0 < metrics["perplexity"] < 100.0
    assert report["provenance"]["models"][0]["spec"] == "smollm2-135m-instruct"
    assert "<html" in (out / "report.html").read_text()
    assert "reliability" in proc.stdout
