"""The command line: errors are one line with exit code 2, outputs appear atomically."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from editkit.cli import app

pytestmark = pytest.mark.unit

FACT = {
    "id": "cap-fr",
    "prompt": "The capital of France is",
    "target_new": "Rome",
    "subject": "France",
    "target_true": "Paris",
    "paraphrase_prompts": ["France's capital city is"],
    "neighborhood_prompts": [{"prompt": "The capital of Spain is", "target": "Italy"}],
}



@pytest.fixture()
def facts(tmp_path: Path) -> Path:
    path = tmp_path / "facts.jsonl"
    path.write_text(json.dumps(FACT) + "\n" + json.dumps({**FACT, "id": "two", "target_new": "Italy"}) + "\n")
    return path


def run(*args: str):
    return CliRunner(env={"COLUMNS": "240"}).invoke(app, list(args))


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_eval_writes_every_format(tiny_dir: Path, facts: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    ref = tmp_path / "ref.txt"
    ref.write_text("The capital of France is Paris.\nPeople in Spain speak Spanish.\n")
    before = facts.read_bytes()
    res = run("eval", "--model", str(tiny_dir), "--facts", str(facts), "--out", str(out), "--reference", str(ref))
    assert res.exit_code == 0, res.output
    assert {p.name for p in out.iterdir()} == {"report.json", "report.md", "report.html", "per_item.jsonl", "requests.jsonl"}
    report = json.loads((out / "report.json").read_text())
    assert report["kind"] == "eval"
    assert set(report["metrics"]["model"]) >= {"reliability", "efficacy_score", "perplexity", "fluency"}
    assert report["provenance"]["models"][0]["weights_sha256"]
    assert len(report["per_item"]) == 2
    assert facts.read_bytes() == before  # inputs are never modified
    assert _leftovers(tmp_path) == []
    assert "reliability" in res.output


def test_existing_output_is_refused_then_overwritten(tiny_dir: Path, facts: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = ["eval", "--model", str(tiny_dir), "--facts", str(facts), "--out", str(out), "--reference", "none"]
    res = run(*args, "--no-generation", "--no-fluency")
    assert res.exit_code == 2
    assert "already exists" in res.output and "--overwrite" in res.output
    assert (out / "keep.txt").read_text() == "mine"
    res = run(*args, "--no-generation", "--no-fluency", "--overwrite")
    assert res.exit_code == 0, res.output
    assert not (out / "keep.txt").exists()
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"prompt": "The capital of France is"}\n', "facts.jsonl:1: target_new"),
        ('{"prompt": "a", "target_new": "b"}\n{not json\n', "facts.jsonl:2"),
        ("", "facts.jsonl"),
    ],
)
def test_bad_facts_exit_2_with_one_clear_line(tmp_path: Path, content: str, expected: str) -> None:
    bad = tmp_path / "facts.jsonl"
    bad.write_text(content)
    out = tmp_path / "run"
    res = run("eval", "--model", "does-not-matter", "--facts", str(bad), "--out", str(out))
    assert res.exit_code == 2
    assert expected in res.output
    assert "Traceback" not in res.output
    assert not out.exists()


def test_missing_model_is_one_line(facts: Path, tmp_path: Path) -> None:
    res = run("eval", "--model", str(tmp_path / "nope"), "--facts", str(facts), "--out", str(tmp_path / "o"), "--reference", "none")
    assert res.exit_code == 2
    assert "no such file or folder" in res.output
    assert "Traceback" not in res.output


def test_interrupt_leaves_nothing(tiny_dir: Path, facts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import editkit.report

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(editkit.report, "write_report", boom)
    out = tmp_path / "run"
    res = run("eval", "--model", str(tiny_dir), "--facts", str(facts), "--out", str(out), "--reference", "none", "--no-generation", "--no-fluency")
    assert res.exit_code == 130
    assert not out.exists()
    assert _leftovers(tmp_path) == []


def test_debug_shows_traceback(facts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDITKIT_DEBUG", "1")
    res = run("eval", "--model", str(tmp_path / "nope"), "--facts", str(facts), "--out", str(tmp_path / "o"), "--reference", "none")
    assert res.exit_code != 0
    assert res.exception is not None  # raised, not swallowed


def test_bad_format_option(facts: Path, tmp_path: Path) -> None:
    res = run("eval", "--facts", str(facts), "--out", str(tmp_path / "o"), "--format", "json,pdf")
    assert res.exit_code == 2
    assert "pdf" in res.output


def test_models_list() -> None:
    res = run("models", "list")
    assert res.exit_code == 0, res.output
    assert "smollm2-135m-instruct" in res.output


def test_version() -> None:
    res = run("--version")
    assert res.exit_code == 0 and "editkit" in res.output


def test_edit_end_to_end(tiny_dir: Path, facts: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    from editkit.editors import load_edit

    out = tmp_path / "edit"
    general = Path(__file__).resolve().parents[1] / "fixtures" / "edit" / "general.jsonl"
    res = run(
        "edit", "--model", str(tiny_dir), "--facts", str(facts), "--out", str(out), "--layer", "2",
        "--reference", "none", "--no-fluency", "--set", "epochs=3", "--set", "min_steps=3",
        "--set", f"preserve_file={general}", "--set", "preserve_general=0", "--set", "preserve_per_template=0",
    )
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    assert report["kind"] == "edit"
    assert set(report["metrics"]) == {"before", "after"}
    assert report["metrics"]["after"]["locality"] is not None
    delta = load_edit(out / "delta.safetensors")
    assert list(delta.deltas) == ["model.layers.2.mlp.down_proj.weight"]
    edited = AutoModelForCausalLM.from_pretrained(out / "model")  # plain transformers loads it
    original = AutoModelForCausalLM.from_pretrained(tiny_dir)
    diff = edited.model.layers[2].mlp.down_proj.weight - original.model.layers[2].mlp.down_proj.weight
    assert torch.allclose(diff, delta.deltas["model.layers.2.mlp.down_proj.weight"], atol=1e-6)
    assert torch.equal(edited.model.layers[1].mlp.down_proj.weight, original.model.layers[1].mlp.down_proj.weight)


def test_edit_bad_option_is_one_line(facts: Path, tmp_path: Path) -> None:
    res = run("edit", "--facts", str(facts), "--out", str(tmp_path / "o"), "--set", "lrr=1")
    assert res.exit_code == 2
    assert "did you mean 'lr'" in res.output
    res = run("edit", "--facts", str(facts), "--out", str(tmp_path / "o"), "--layer", "middle")
    assert res.exit_code == 2 and "--layer" in res.output


def test_localize_sweep_writes_table_and_plot(tiny_dir: Path, facts: Path, tmp_path: Path) -> None:
    out = tmp_path / "loc"
    res = run(
        "localize", "--model", str(tiny_dir), "--facts", str(facts), "--strategy", "sweep", "--out", str(out),
        "--set", "layers=1,3", "--set", "train_size=1", "--set", "editor_overrides=null_space=false",
    )
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    assert report["kind"] == "localize"
    (table,) = report["tables"]
    assert [row[0] for row in table["rows"]] == [1, 3]
    assert report["metrics"]["chosen"]["layer"] in (1.0, 3.0)
    assert (out / "layers.png").stat().st_size > 1000


def test_prepare_checkpoint_looks_for_a_checkpoint_not_a_folder(tmp_path: Path) -> None:
    """A folder made before the first checkpoint, or holding only a killed atomic write's temp file, is no checkpoint."""
    from editkit.cli.edit import prepare_checkpoint
    from editkit.errors import EditkitError

    out = tmp_path / "run"
    ckpt = tmp_path / "run.checkpoint"
    for leftover in (None, ".locft.safetensors.x1y2z3"):
        ckpt.mkdir()
        if leftover:
            (ckpt / leftover).write_bytes(b"torn")
        assert prepare_checkpoint(out, "locft-bf", True, resume=False, overwrite=False) == ckpt
        assert not ckpt.exists()  # removed silently: nothing to resume
        ckpt.mkdir()
        with pytest.raises(EditkitError, match="no locft-bf checkpoint to resume from"):
            prepare_checkpoint(out, "locft-bf", True, resume=True, overwrite=False)
    ckpt.mkdir()
    (ckpt / "locft.safetensors").write_bytes(b"a checkpoint")
    with pytest.raises(EditkitError, match="pass --resume to continue it"):
        prepare_checkpoint(out, "locft-bf", True, resume=False, overwrite=False)
    assert prepare_checkpoint(out, "locft-bf", True, resume=True, overwrite=False) == ckpt
    assert prepare_checkpoint(out, "locft-bf", True, resume=False, overwrite=True) == ckpt and not ckpt.exists()
