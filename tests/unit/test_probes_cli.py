"""``editkit probe train|eval``: outputs, model card, evaluation table, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from editkit.cli import app
from probes.data import shipped_path
from probes.store import load_probe

pytestmark = pytest.mark.unit

runner = CliRunner()


def _subset(src: Path, dest: Path, step: int) -> Path:
    lines = src.read_text(encoding="utf-8").splitlines()
    dest.write_text("\n".join(lines[::step]) + "\n", encoding="utf-8")
    return dest


def test_train_and_eval_text(tmp_path: Path) -> None:
    data = _subset(shipped_path("responses.jsonl"), tmp_path / "resp.jsonl", 8)  # 80 responses, 20 per source
    out = tmp_path / "clf"
    result = runner.invoke(app, ["probe", "train", "--data", str(data), "--out", str(out), "--bootstrap", "20"])
    assert result.exit_code == 0, result.output
    assert "leave-one-source-out AUROC" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["card.json", "eval.json", "state.json", "weights.safetensors"]
    card = json.loads((out / "card.json").read_text())
    assert card["label_map"] == {"compliance": 0, "refusal": 1} and len(card["data"]["hash"]) == 64
    assert card["data"]["source_field"] == "prompt_source"
    names = [s["name"] for s in card["metrics"]["splits"]]
    assert names[0] == "random" and len(names) == 5
    assert set(card["metrics"]["splits"][0]["metrics"]) == {"probe", "substring", "majority"}
    probe, _ = load_probe(out)
    assert probe.kind == "text"

    result = runner.invoke(app, ["probe", "eval", "--probe", str(out), "--data", str(data), "--bootstrap", "10",
                                 "--out", str(tmp_path / "ev")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert [s["name"] for s in report["splits"]][0] == "all"

    # an existing output is refused before any work
    result = runner.invoke(app, ["probe", "train", "--data", str(data), "--out", str(out)])
    assert result.exit_code == 2 and "already exists" in result.output


def test_train_activation_on_tiny_model(tiny_dir: Path, tmp_path: Path) -> None:
    data = _subset(shipped_path("instructions.jsonl"), tmp_path / "instr.jsonl", 15)  # 43 instructions, both labels
    out = tmp_path / "act"
    result = runner.invoke(app, ["probe", "train", "--kind", "activation", "--model", str(tiny_dir), "--data", str(data),
                                 "--out", str(out), "--layers", "1-3", "--bootstrap", "10", "--batch-size", "16"])
    assert result.exit_code == 0, result.output
    probe, card = load_probe(out)
    assert probe.kind == "activation" and probe.layer in (1, 2, 3)
    assert card.label_map == {"harmless": 0, "harmful": 1} and card.notes["model"]["num_layers"] == 4
    result = runner.invoke(app, ["probe", "eval", "--probe", str(out), "--data", str(data), "--bootstrap", "10"])
    assert result.exit_code == 0, result.output
    assert "source:" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "svm"], "--kind: expected one of text, activation"),
        (["--test-fraction", "1.5"], "--test-fraction: expected a number in (0, 1)"),
        (["--partial-as", "maybe"], "--partial-as: expected 'compliance' or 'refusal'"),
        (["--inputs", "response", "--data", "INSTR"], "--inputs response: an instructions file has no responses"),
        (["--layers", "a-b", "--kind", "activation"], "--layers: expected 'all' or layers and ranges"),
    ],
)
def test_option_errors(tmp_path: Path, args: list[str], message: str) -> None:
    data = shipped_path("responses.jsonl")
    args = [str(shipped_path("instructions.jsonl")) if a == "INSTR" else a for a in args]
    base = ["probe", "train", "--out", str(tmp_path / "x")]
    if "--data" not in args:
        base += ["--data", str(data)]
    result = runner.invoke(app, base + args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_bad_data_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "x", "response": "y", "label": "refusal"}\n{oops\n', encoding="utf-8")
    result = runner.invoke(app, ["probe", "eval", "--data", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:2: not valid JSON" in result.output.replace("\n", "")


def test_generate_writes_loadable_responses(tiny_dir: Path, tmp_path: Path) -> None:
    from probes.data import load_responses

    out = tmp_path / "gen.jsonl"
    args = ["probe", "generate", "--model", str(tiny_dir), "--instructions", str(shipped_path("instructions.jsonl")),
            "--out", str(out), "--limit", "4", "--max-new-tokens", "3", "--source", "tiny"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = load_responses(out)
    assert len(rows) == 4 and {r.source for r in rows} == {"tiny"}
    raw = json.loads(out.read_text().splitlines()[0])
    assert raw["label_by"] == "substring:arditi" and raw["instruction_id"] == "harmful-weapons-01"
    assert runner.invoke(app, args).exit_code == 2  # exists
