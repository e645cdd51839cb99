"""Same inputs and seed, same results: ``editkit edit`` twice on CPU gives bit-identical deltas,
and reports that differ only in their timings and creation time.

One run is a subprocess with its own string-hash seed (``PYTHONHASHSEED``), the other runs
in this process, so an order that depends on set or dict iteration of strings, or on
state left in a process, would show up as a difference.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from typer.testing import CliRunner

from editkit.cli import app

pytestmark = pytest.mark.unit

FACTS = [
    {"prompt": "The capital of France is", "target_new": "Rome", "subject": "France",
     "paraphrase_prompts": ["France's capital city is"],
     "neighborhood_prompts": [{"prompt": "The capital of Spain is", "target": "Madrid"}]},
    {"prompt": "The capital of Germany is", "target_new": "Paris", "subject": "Germany"},
    {"prompt": "People in Japan speak", "target_new": "French", "subject": "Japan"},
]
TIMING_KEYS = {"timings", "created"}  # what may differ between two runs


def without_timings(value: Any) -> Any:
    """``value`` with every ``timings`` / ``created`` entry removed, at any depth."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def tensors(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), "pt") as fh:
        return {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118


def test_edit_twice_gives_identical_deltas_and_reports(tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    facts = tmp_path / "facts.jsonl"
    facts.write_text("".join(json.dumps(f) + "\n" for f in FACTS))
    args = [
        "edit", "--model", str(tiny_dir), "--facts", str(facts), "--layer", "2", "--reference", "none",
        "--no-fluency", "--set", "epochs=4", "--set", "min_steps=4", "--seed", "7",
        "--save", "delta", "--format", "json", "--out", "out",
    ]
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("EDITKIT_DEBUG", "EDITKIT_MAX_LINE_BYTES")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED=str(random.randrange(1, 2**32)))
    env["EDITKIT_CACHE"] = str(tmp_path / "cache")
    proc = subprocess.Popen([sys.executable, "-m", "editkit", *args], cwd=first, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        monkeypatch.chdir(second)
        monkeypatch.setattr(sys, "argv", ["editkit", *args])  # the report records the command line
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0, res.output
    finally:
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err

    a, b = first / "out", second / "out"
    deltas_a, deltas_b = tensors(a / "delta.safetensors"), tensors(b / "delta.safetensors")
    assert list(deltas_a) == list(deltas_b) and deltas_a
    for name in deltas_a:
        assert torch.equal(deltas_a[name], deltas_b[name]), name  # bit for bit
        assert deltas_a[name].abs().sum() > 0  # an edit did happen
    report_a, report_b = (json.loads((d / "report.json").read_text()) for d in (a, b))
    assert report_a["timings"] and report_a["provenance"]["created"]  # the fields dropped below exist
    assert without_timings(report_a) == without_timings(report_b)
    for name in ("per_item.jsonl", "requests.jsonl"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
