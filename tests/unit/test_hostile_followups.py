"""Hostile inputs, follow-ups: every command protects its inputs from ``--overwrite``, loads
pickles only with ``--allow-pickle``, and a damaged edit file, a spectrum name or a LocFT
config that cannot work fails early with one line naming what to fix.

All cases fail before any model is loaded, or load only the tiny test models.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from test_hostile_cli import FACT, _pickle_only, assert_refused, broken_copy, run, tree_hash
from tiny_models import save_tiny_lora, tiny_model

from editkit.errors import EditkitError, InputError

pytestmark = pytest.mark.unit

EDITED = "model.layers.2.mlp.down_proj.weight"


def _edit_folder(folder: Path) -> Path:
    from editkit.editors.result import DELTA_FORMAT

    folder.mkdir(parents=True)
    save_file({EDITED: torch.full((32, 72), 0.01)}, str(folder / "delta.safetensors"), metadata={"format": DELTA_FORMAT})
    return folder


@pytest.fixture()
def inputs(tiny_dir: Path, tmp_path: Path) -> Path:
    """A folder holding every kind of input the commands read (and a copy of the tiny model)."""
    root = tmp_path / "inputs"
    _edit_folder(root / "edit")
    shutil.copytree(tiny_dir, root / "model")
    (root / "prompts.txt").write_text("The capital of France is\n")
    (root / "facts.jsonl").write_text(json.dumps(FACT) + "\n")
    (root / "data.jsonl").write_text('{"prompt": "hi", "response": "no", "label": "refusal"}\n')
    (root / "corpus").mkdir()
    return root


def _commands(root: Path, model: Path) -> dict[str, list[str]]:
    tuned, prompts, facts, data = root / "edit", root / "prompts.txt", root / "facts.jsonl", root / "data.jsonl"
    return {
        "audit": ["audit", "--base", str(model), "--tuned", str(tuned), "--reference", "none", "--prompts", str(prompts)],
        "audit-intruders": ["audit", "intruders", "--base", str(model), "--tuned", str(tuned), "--backend", "torch-cpu"],
        "tuco": ["tuco", "--base", str(model), "--tuned", str(tuned), "--prompts", str(prompts)],
        "cge": ["cge", "--base", str(model), "--tuned", str(tuned), "--prompts", str(prompts)],
        "localize": ["localize", "--model", str(model), "--facts", str(facts)],
        "mend-train": ["mend", "train", "--model", str(model), "--train", str(facts)],
        "probe-train": ["probe", "train", "--data", str(data)],
        "probe-eval": ["probe", "eval", "--data", str(data)],
        "backpack-train": ["backpack", "train", "--corpus", str(root / "corpus"), "--model", str(model)],
        "edit": ["edit", "--model", str(model), "--facts", str(facts), "--reference", "none"],
    }


COMMANDS = list(_commands(Path("."), Path(".")))


@pytest.mark.parametrize("command", COMMANDS)
def test_overwrite_never_deletes_an_input(inputs: Path, command: str) -> None:
    before = tree_hash(inputs)
    args = _commands(inputs, inputs / "model")[command]
    res = run(*args, "--out", str(inputs), "--overwrite")
    assert res.exit_code == 2, res.output
    assert "--overwrite would delete the input" in res.output, res.output
    assert tree_hash(inputs) == before


@pytest.mark.parametrize("command", ["audit", "audit-intruders", "tuco", "cge", "localize"])
def test_overwrite_never_deletes_a_local_base_model(inputs: Path, tmp_path: Path, command: str) -> None:
    holder = tmp_path / "models"
    holder.mkdir()
    model = holder / "model"
    shutil.move(inputs / "model", model)
    before = tree_hash(model)
    res = run(*_commands(inputs, model)[command], "--out", str(holder), "--overwrite")
    assert res.exit_code == 2 and f"would delete the input {model}" in res.output, res.output
    assert tree_hash(model) == before


def test_probe_generate_never_replaces_its_instructions(tmp_path: Path) -> None:
    instructions = tmp_path / "instructions.jsonl"
    instructions.write_text('{"id": "a", "instruction": "hi"}\n')
    res = run("probe", "generate", "--instructions", str(instructions), "--out", str(instructions), "--overwrite",
              "--model", str(tmp_path / "never-loaded"))
    assert res.exit_code == 2 and "would replace the input" in res.output, res.output
    assert instructions.read_text() == '{"id": "a", "instruction": "hi"}\n'


def test_run_audit_never_deletes_an_input(inputs: Path) -> None:
    from audit.report import run_audit

    before = tree_hash(inputs)
    with pytest.raises(EditkitError, match="would delete the input"):
        run_audit(str(inputs / "model"), inputs / "edit", out=inputs, overwrite=True, reference=None)
    assert tree_hash(inputs) == before


# ------------------------------------------------------------------ --allow-pickle


@pytest.mark.parametrize("command", ["audit-intruders", "tuco", "cge", "localize", "audit"])
def test_commands_refuse_a_pickle_base_unless_asked(tiny_dir: Path, tmp_path: Path, command: str) -> None:
    model = broken_copy(tiny_dir, tmp_path, "model", _pickle_only)
    root = tmp_path / "inputs"
    _edit_folder(root / "edit")
    (root / "prompts.txt").write_text("The capital of France is\n")
    (root / "facts.jsonl").write_text(json.dumps(FACT) + "\n")
    out = tmp_path / "run"
    line = assert_refused(run(*_commands(root, model)[command], "--out", str(out)), out, "pytorch_model.bin")
    assert "--allow-pickle" in line
    assert "--allow-pickle" in run(*_commands(root, model)[command], "--help").output


def test_audit_intruders_loads_a_pickle_base_when_asked(tiny_dir: Path, tmp_path: Path) -> None:
    model = broken_copy(tiny_dir, tmp_path, "model", _pickle_only)
    tuned = _edit_folder(tmp_path / "edit")
    out = tmp_path / "run"
    res = run("audit", "intruders", "--base", str(model), "--tuned", str(tuned), "--out", str(out),
              "--backend", "torch-cpu", "--no-cache", "--spectra", "0", "--allow-pickle")
    assert res.exit_code == 0, res.output
    assert (out / "intruders.json").is_file()


def _pickle_adapter(tmp_path: Path) -> Path:
    folder = save_tiny_lora(tmp_path / "lora")
    from safetensors.torch import load_file

    state = load_file(str(folder / "adapter_model.safetensors"))
    (folder / "adapter_model.safetensors").unlink()
    torch.save(state, folder / "adapter_model.bin")
    return Path(folder)


def test_peft_adapters_refuse_pickles_unless_asked(tmp_path: Path) -> None:
    from audit.tuned.lora import load_peft_adapter

    folder = _pickle_adapter(tmp_path)
    model, _ = tiny_model("llama", seed=0)
    with pytest.raises(InputError) as info:
        load_peft_adapter(model, folder)
    text = str(info.value)
    assert len(text.splitlines()) == 1 and "adapter_model.bin: pickle-based checkpoints are not read" in text
    assert "allow_pickle=True" in text
    assert not any("lora_" in name for name, _ in model.named_parameters())  # untouched
    peft_model = load_peft_adapter(model, folder, allow_pickle=True)
    assert any("lora_B" in name for name, _ in peft_model.named_parameters())
    peft_model.unload()


def test_tuco_refuses_a_pickle_adapter(tiny_dir: Path, tmp_path: Path) -> None:
    folder = _pickle_adapter(tmp_path)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("The capital of France is\n")
    out = tmp_path / "run"
    res = run("tuco", "--base", str(tiny_dir), "--tuned", str(folder), "--prompts", str(prompts), "--out", str(out))
    assert_refused(res, out, "adapter_model.bin: pickle-based checkpoints are not read")


# ------------------------------------------------------------------ edit files, spectra, LocFT


def _delta(path: Path, meta: dict[str, str]) -> Path:
    from editkit.editors.result import DELTA_FORMAT

    save_file({EDITED: torch.zeros(32, 72)}, str(path), metadata={"format": DELTA_FORMAT, **meta})
    return path


GOOD_META = {"method": "locft-bf", "location": json.dumps({"sites": [{"param": EDITED}]}), "config": "{}"}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"method": None}, "metadata lacks method"),
        ({"location": None, "config": None}, "metadata lacks location, config"),
        ({"location": "{not json"}, "metadata 'location': not valid JSON"),
        ({"config": "[1, 2]"}, "metadata 'config': expected an object, got list"),
        ({"log": "{}"}, "metadata 'log': expected an array, got dict"),
        ({"timings": "[" * 50_000}, "metadata 'timings': JSON nested too deeply"),
        ({"location": "{}"}, "metadata 'location' is not an edit location (KeyError"),
        ({"location": '{"sites": []}'}, "metadata 'location' is not an edit location (ValueError"),
        ({"location": '{"sites": [1]}'}, "metadata 'location' is not an edit location"),
    ],
    ids=["no-method", "no-location-config", "bad-json", "config-list", "log-dict", "deep", "no-sites", "empty-sites", "bad-site"],
)
def test_damaged_edit_files(tmp_path: Path, change: dict[str, Any], expected: str) -> None:
    from editkit.editors import load_edit

    meta = {k: v for k, v in {**GOOD_META, **change}.items() if v is not None}
    path = _delta(tmp_path / "delta.safetensors", meta)
    with pytest.raises(InputError) as info:
        load_edit(path)
    text = str(info.value)
    assert len(text.splitlines()) == 1 and text.startswith(str(path)), text
    assert expected in text, text


def test_good_edit_file_still_loads(tmp_path: Path) -> None:
    from editkit.editors import load_edit

    result = load_edit(_delta(tmp_path / "delta.safetensors", GOOD_META))
    assert result.method == "locft-bf" and result.location.sites[0].param == EDITED
    assert result.log == [] and result.info == {} and result.timings == {}


def test_spectrum_files_stay_inside_the_output(tmp_path: Path) -> None:
    from audit.intruders.export import spectrum_file, write_intruder_files
    from audit.intruders.results import IntruderReport, MatrixIntruders

    assert spectrum_file("model.layers.3.mlp.down_proj.weight") == "model.layers.3.mlp.down_proj.png"
    assert spectrum_file("a/../b\\c.weight") == "a_.._b_c.png"
    assert spectrum_file(".weight") == "matrix.png"
    matrix = MatrixIntruders(EDITED, 2, "mlp_down", "down", (32, 72), 0.5, (0.3, 0.9), (2.0, 1.0), 5.0)
    report = IntruderReport((matrix,), k=2, eps=0.5, eps_grid=(0.5,))
    with pytest.raises(InputError, match="not a plain relative file name"):
        write_intruder_files(report, tmp_path / "out", spectra=["bad\x00name"])


def test_locft_config_without_preservation_text_fails_before_the_model_loads(tmp_path: Path) -> None:
    from editkit.editors import make_editor

    none = ["preserve_general=0", "preserve_per_template=0"]
    with pytest.raises(InputError, match="null_space=true needs preservation text"):
        make_editor("locft-bf", overrides=none)
    with pytest.raises(InputError, match="preserve_file=.*missing.jsonl: no such file"):
        make_editor("locft-bf", overrides=[*none, f"preserve_file={tmp_path / 'missing.jsonl'}"])
    make_editor("locft-bf", overrides=[*none, "null_space=false"])  # nothing to preserve: fine
    make_editor("ft-df", overrides=none)  # FT-DF: no null space by default
    general = tmp_path / "general.txt"
    general.write_text("Water boils at 100 degrees.\n")
    make_editor("locft-bf", overrides=[*none, f"preserve_file={general}"])

    facts = tmp_path / "facts.jsonl"
    facts.write_text(json.dumps(FACT) + "\n")
    out = tmp_path / "run"
    res = run("edit", "--model", str(tmp_path / "never-loaded"), "--facts", str(facts), "--out", str(out),
              "--set", "preserve_general=0", "--set", "preserve_per_template=0")
    assert_refused(res, out, "null_space=true needs preservation text")
