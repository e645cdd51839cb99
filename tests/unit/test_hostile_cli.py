"""Hostile and broken inputs through the command line, on tiny models.

Each case must give one clear ``error:`` line (what, where), exit code 2, leave
no output directory (and no hidden temporary one) and leave the inputs as they
were. Pickles are refused unless ``--allow-pickle`` is given, a model's own code
never runs, and ``--overwrite`` never deletes an input.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tiny_models import tiny_model, tiny_tokenizer
from typer.testing import CliRunner

from editkit.cli import app

pytestmark = pytest.mark.unit

FACT = {"prompt": "The capital of France is", "target_new": "Rome", "subject": "France"}
QUICK = ["--reference", "none", "--no-generation", "--no-fluency", "--format", "json"]


def run(*args: str):
    return CliRunner(env={"COLUMNS": "400"}).invoke(app, list(args))


def tree_hash(path: Path) -> str:
    """Hash of a file, or of every file under a folder (names and bytes)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        digest.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        digest.update(f.read_bytes())
    return digest.hexdigest()


def assert_refused(res, out: Path, *expected: str) -> str:
    """Exit 2 with one ``error:`` line (the last) holding ``expected``; nothing written next to ``out``."""
    lines = [line for line in res.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert res.exit_code == 2, res.output
    assert len(errors) == 1 and lines[-1] == errors[0], res.output
    for text in expected:
        assert text in errors[0], res.output
    assert "Traceback" not in res.output
    assert not out.exists()
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")] == []
    return errors[0]


@pytest.fixture()
def facts(tmp_path: Path) -> Path:
    path = tmp_path / "facts.jsonl"
    path.write_text(json.dumps(FACT) + "\n")
    return path


def broken_copy(tiny_dir: Path, tmp_path: Path, name: str, breaks: Callable[[Path], None]) -> Path:
    folder = tmp_path / name
    shutil.copytree(tiny_dir, folder)
    breaks(folder)
    return folder


def _truncate(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])


def _empty(folder: Path) -> None:
    (folder / "model.safetensors").write_bytes(b"")


def _nan(folder: Path) -> None:
    weights = folder / "model.safetensors"
    with safe_open(str(weights), "pt") as fh:
        state, meta = {k: fh.get_tensor(k) for k in fh.keys()}, fh.metadata()  # noqa: SIM118
    state["model.layers.1.mlp.up_proj.weight"][0, 0] = float("inf")
    save_file(state, str(weights), metadata=meta)


def _other_tokenizer(folder: Path) -> None:
    tok = tiny_tokenizer()
    tok.add_tokens([f"extra{i}" for i in range(8)])  # ids 512..519: past the 512-row embedding
    tok.save_pretrained(folder)


def _broken_tokenizer(folder: Path) -> None:
    (folder / "tokenizer.json").write_text("{}")


def _pickle_only(folder: Path) -> None:
    weights = folder / "model.safetensors"
    with safe_open(str(weights), "pt") as fh:
        state = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    weights.unlink()
    torch.save(state, folder / "pytorch_model.bin")


def _remote_code(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="tiny-custom", auto_map={"AutoConfig": "custom.Config", "AutoModelForCausalLM": "custom.Model"})
    (folder / "config.json").write_text(json.dumps(config))
    marker = folder.parent / "code-ran"
    (folder / "custom.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from transformers import LlamaConfig as Config, LlamaForCausalLM as Model\n"
    )


def _bad_config(folder: Path) -> None:
    (folder / "config.json").write_text('{"model_type": "llama", ')


@pytest.mark.parametrize(
    ("breaks", "expected"),
    [
        (_truncate, "incomplete or corrupted"),
        (_empty, "incomplete or corrupted"),
        (_bad_config, "config.json"),
        (_nan, "'model.layers.1.mlp.up_proj.weight' has 1 NaN or infinite value"),
        (_other_tokenizer, "tokenizer does not belong to this model"),
        (_broken_tokenizer, "incomplete or corrupted"),
        (_pickle_only, "pytorch_model.bin: pickle-based checkpoints are not read"),
        (_remote_code, "trust_remote_code"),
    ],
    ids=lambda v: getattr(v, "__name__", "")[1:] if callable(v) else "",
)
def test_broken_models_are_one_line(tiny_dir: Path, facts: Path, tmp_path: Path, breaks: Callable[[Path], None], expected: str) -> None:
    model = broken_copy(tiny_dir, tmp_path, "model", breaks)
    before = tree_hash(model), tree_hash(facts)
    out = tmp_path / "run"
    res = run("eval", "--model", str(model), "--facts", str(facts), "--out", str(out), *QUICK)
    line = assert_refused(res, out, expected)
    assert str(model) in line  # where
    assert (tree_hash(model), tree_hash(facts)) == before
    assert not (tmp_path / "code-ran").exists()  # the model's own code never ran


def test_pickles_load_only_when_asked(tiny_dir: Path, facts: Path, tmp_path: Path) -> None:
    model = broken_copy(tiny_dir, tmp_path, "model", _pickle_only)
    out = tmp_path / "run"
    res = run("eval", "--model", str(model), "--facts", str(facts), "--out", str(out), *QUICK)
    assert_refused(res, out, "--allow-pickle")
    res = run("eval", "--model", str(model), "--facts", str(facts), "--out", str(out), *QUICK, "--allow-pickle")
    assert res.exit_code == 0, res.output
    assert (out / "report.json").is_file()


def test_load_model_never_trusts_remote_code_by_default(tiny_dir: Path, tmp_path: Path) -> None:
    import inspect

    from editkit.errors import EditkitError
    from editkit.models import load_model

    assert inspect.signature(load_model).parameters["trust_remote_code"].default is False
    assert inspect.signature(load_model).parameters["allow_pickle"].default is False
    model = broken_copy(tiny_dir, tmp_path, "model", _remote_code)
    with pytest.raises(EditkitError, match="trust_remote_code"):
        load_model(str(model))
    assert not (tmp_path / "code-ran").exists()


LONG = json.dumps({**FACT, "prompt": "The capital of France is" + " really" * 40})


@pytest.mark.parametrize(
    ("content", "extra", "expected"),
    [
        (b"", [], "facts.jsonl: no records"),
        (b"\n\n  \n", [], "facts.jsonl: no records"),
        (b"\xff\xfe\x00garbage\n", [], "facts.jsonl: 1 malformed record"),
        (json.dumps(FACT).encode() + b"\n" + LONG.encode() + b"\n", ["EDITKIT_MAX_LINE_BYTES=200"], "facts.jsonl:2: line longer than 200 bytes"),
        (b"[" * 50_000 + b"\n", [], "facts.jsonl: 1 malformed record"),
    ],
    ids=["empty", "blank", "binary", "long-line", "deep"],
)
def test_bad_facts_files(tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes, extra: list[str], expected: str) -> None:
    for item in extra:
        key, _, value = item.partition("=")
        monkeypatch.setenv(key, value)
    facts = tmp_path / "facts.jsonl"
    facts.write_bytes(content)
    out = tmp_path / "run"
    for command in ("eval", "edit"):
        res = run(command, "--model", str(tiny_dir), "--facts", str(facts), "--out", str(out), *QUICK)
        lines = [line for line in res.output.splitlines() if line.strip()]
        assert res.exit_code == 2, res.output
        assert lines[0].startswith("error:") and expected in lines[0], res.output
        assert not out.exists() and facts.read_bytes() == content


@pytest.mark.parametrize(
    ("name", "content", "sets", "expected"),
    [
        ("cfg.yaml", "", [], "cfg.yaml: empty config file"),
        ("cfg.yaml", "lr: [unclosed\n", [], "cfg.yaml: cannot parse"),
        ("cfg.yaml", "1: 2\n", [], "cfg.yaml: option names are strings"),
        ("cfg.json", '{"lr": NaN}', [], "cfg.json: lr: expected a finite number"),
        ("cfg.json", '{"epochs": 1e999}', [], "cfg.json: epochs: expected a finite int"),
        ("cfg.yaml", "lr: !!python/object/apply:os.system ['true']\n", [], "cfg.yaml: cannot parse"),
        ("cfg.yaml", "\udcff", [], "cfg.yaml: not valid UTF-8"),
        (None, "", ["lr=inf"], "--set: lr: expected a finite number"),
        (None, "", ["=3"], "--set '=3': expected key=value"),
    ],
    ids=["empty", "yaml-error", "int-key", "nan", "overflow", "python-tag", "not-utf8", "set-inf", "set-no-key"],
)
def test_bad_editor_configs(facts: Path, tmp_path: Path, name: str | None, content: str, sets: list[str], expected: str) -> None:
    args = ["edit", "--model", str(tmp_path / "never-loaded"), "--facts", str(facts), "--out", str(tmp_path / "run")]
    if name is not None:
        config = tmp_path / name
        config.write_bytes(content.encode("utf-8", "surrogateescape"))
        args += ["--config", str(config)]
    for item in sets:
        args += ["--set", item]
    assert_refused(run(*args), tmp_path / "run", expected)


def test_overwrite_never_deletes_an_input(tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    facts = inputs / "facts.jsonl"
    facts.write_text(json.dumps(FACT) + "\n")
    res = run("eval", "--model", str(tiny_dir), "--facts", str(facts), "--out", str(inputs), "--overwrite", *QUICK)
    assert res.exit_code == 2 and f"would delete the input {facts}" in res.output, res.output
    monkeypatch.chdir(inputs)
    res = run("eval", "--model", str(tiny_dir), "--facts", str(facts), "--out", ".", "--overwrite", *QUICK)
    assert res.exit_code == 2 and "would delete the current directory" in res.output, res.output
    assert facts.read_text() == json.dumps(FACT) + "\n"


# ------------------------------------------------------------------ editkit audit intruders


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny-gpt2")
    model, _ = tiny_model("gpt2", seed=0)
    model.save_pretrained(path)
    return path


def _delta_file(tiny_dir: Path, folder: Path, value: float = 0.01) -> Path:
    from editkit.editors.result import DELTA_FORMAT

    folder.mkdir()
    name = "model.layers.2.mlp.down_proj.weight"
    save_file({name: torch.full((32, 72), value)}, str(folder / "delta.safetensors"), metadata={"format": DELTA_FORMAT})
    return folder


def _intruders(base: Path, tuned: Path, out: Path):
    return run("audit", "intruders", "--base", str(base), "--tuned", str(tuned), "--out", str(out),
               "--backend", "torch-cpu", "--no-cache", "--spectra", "0")


@pytest.mark.parametrize(
    "case",
    ["other-architecture", "other-size-delta", "truncated-delta", "nan-delta", "pickle", "empty-folder", "empty-file"],
)
def test_bad_tuned_weights(tiny_dir: Path, gpt2_dir: Path, tmp_path: Path, case: str) -> None:
    tuned: Path
    if case == "other-architecture":
        tuned, expected = gpt2_dir, "the tuned model is a 'gpt2' but the base model is a 'llama'"
    elif case == "other-size-delta":
        tuned = tmp_path / "edit"
        tuned.mkdir()
        from editkit.editors.result import DELTA_FORMAT

        save_file({"model.layers.2.mlp.down_proj.weight": torch.zeros(64, 72)}, str(tuned / "delta.safetensors"),
                  metadata={"format": DELTA_FORMAT})
        expected = "has shape (64, 72) but the base model's is (32, 72)"
    elif case == "truncated-delta":
        tuned = _delta_file(tiny_dir, tmp_path / "edit")
        data = (tuned / "delta.safetensors").read_bytes()
        (tuned / "delta.safetensors").write_bytes(data[: len(data) // 2])
        expected = "truncated or corrupted"
    elif case == "nan-delta":
        tuned, expected = _delta_file(tiny_dir, tmp_path / "edit", float("nan")), "NaN or infinite"
    elif case == "pickle":
        tuned = tmp_path / "ft"
        tuned.mkdir()
        torch.save({"w": torch.zeros(1)}, tuned / "pytorch_model.bin")
        expected = "pickle-based checkpoints are not read"
    elif case == "empty-folder":
        tuned = tmp_path / "ft"
        tuned.mkdir()
        expected = "no tuned weights found"
    else:
        tuned = tmp_path / "model.safetensors"
        tuned.write_bytes(b"")
        expected = "truncated or corrupted"
    before = tree_hash(tuned), tree_hash(tiny_dir)
    out = tmp_path / "audit"
    line = assert_refused(_intruders(tiny_dir, tuned, out), out, expected)
    assert str(tuned) in line
    assert (tree_hash(tuned), tree_hash(tiny_dir)) == before
