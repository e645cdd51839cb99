"""Editing a model spread over devices: the same edit as on one device, and a clear refusal where it cannot be.

A tiny llama is saved, then loaded plainly and with a device map that keeps the
embeddings, blocks 0 and 3 and the head on the CPU and offloads blocks 1 and 2
to "disk" (empty ``meta`` parameters, loaded by accelerate's hooks for each
call), as in ``test_device_map.py``. LocFT-BF edits block 0 (its backward runs
through the offloaded blocks) or block 3 (its cached prefix skips them) and must
give the same deltas and metrics as unsharded, in fp32 and with bf16 storage
(the free matrices, Adam and the deltas stay fp32); MEND gives the same deltas
with another block offloaded. Editing an offloaded block is refused with one
line; so is applying a delta to one. Also ``editkit edit --device-map`` end to end.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from tiny_models import SHARDED_LLAMA_MAP, edit_requests, tiny_model, tiny_tokenizer
from typer.testing import CliRunner

from editkit.cli import app
from editkit.editors import EditResult, apply, load_edit, make_editor, revert, reverted
from editkit.errors import InputError
from editkit.evaluate import EvalConfig, evaluate
from editkit.localize import fixed
from editkit.models import load_model
from editkit.placement import device_map_of, is_offloaded, param_value

pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("ignore::UserWarning")]

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "edit"
DEVICE_MAP = SHARDED_LLAMA_MAP
REQUESTS = edit_requests()
FAST = ["epochs=4", "min_steps=4", "batch_size=2", f"preserve_file={FIX / 'general.jsonl'}",
        "preserve_general=0", "preserve_per_template=0"]
TOL = {"rtol": 1e-5, "atol": 1e-7}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("device-map-edit") / "base"
    tiny_model("llama", seed=0)[0].save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


def _load(folder: Path, dtype: str = "float32", sharded: bool = False) -> tuple[Any, Any]:
    extra: dict[str, Any] = {"device_map": DEVICE_MAP, "offload_folder": folder.parent / "offload"} if sharded else {}
    return load_model(str(folder), dtype=dtype, **extra)


def _values(model: Any) -> dict[str, torch.Tensor]:
    """Every parameter's values, offloaded ones read from their store."""
    return {n: param_value(model, n).clone() for n, _ in model.named_parameters()}


def _edit(model: Any, tok: Any, layer: int) -> EditResult:
    editor = make_editor("locft-bf", overrides=FAST)
    return editor.compute(model, tok, REQUESTS, fixed(model, layer=layer, module="mlp_down"))


def _same_metrics(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got.keys() == want.keys()
    assert [k for k, v in got.items() if v is None] == [k for k, v in want.items() if v is None]
    numbers = [k for k, v in want.items() if v is not None]
    assert [got[k] for k in numbers] == pytest.approx([want[k] for k in numbers], rel=1e-4, abs=1e-6), numbers


def _metrics(model: Any, tok: Any, result: EditResult, generation: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """Aggregates before and after the edit (applied, then reverted)."""
    config = EvalConfig(fluency=False, generation=generation)
    before = evaluate(model, tok, REQUESTS, config=config)
    apply(model, result)
    try:
        after = evaluate(model, tok, REQUESTS, config=config, baseline=before, base=lambda: reverted(model, result))
    finally:
        revert(model, result)
    return before.aggregate, after.aggregate


@pytest.mark.parametrize(("layer", "dtype", "generation"), [(0, "float32", True), (3, "bfloat16", False)])
def test_locft_on_a_sharded_model_matches_unsharded(folder: Path, layer: int, dtype: str, generation: bool,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    trained: list[torch.dtype] = []
    adam = torch.optim.Adam

    def spy(params: Any, **kwargs: Any) -> torch.optim.Optimizer:
        params = list(params)
        trained.extend(p.dtype for p in params)
        return adam(params, **kwargs)

    monkeypatch.setattr(torch.optim, "Adam", spy)
    plain, tok = _load(folder, dtype)
    sharded, _ = _load(folder, dtype, sharded=True)
    assert device_map_of(sharded) == DEVICE_MAP and is_offloaded(sharded, "model.layers.1.mlp.down_proj.weight")
    name = f"model.layers.{layer}.mlp.down_proj.weight"
    assert not is_offloaded(sharded, name)

    want, got = _edit(plain, tok, layer), _edit(sharded, tok, layer)
    assert trained == [torch.float32, torch.float32]  # fp32 Adam on an fp32 free matrix, whatever the storage
    assert list(got.deltas) == list(want.deltas) == [name]
    assert got.deltas[name].dtype == torch.float32 and float(want.deltas[name].norm()) > 0
    torch.testing.assert_close(got.deltas[name], want.deltas[name], **TOL)
    assert [row["mean_loss"] for row in got.log] == pytest.approx([row["mean_loss"] for row in want.log], rel=1e-5)

    original = _values(sharded)
    metrics_want, metrics_got = _metrics(plain, tok, want, generation), _metrics(sharded, tok, got, generation)
    for a, b in zip(metrics_got, metrics_want, strict=True):
        _same_metrics(a, b)
    assert metrics_got[1]["reliability"] is not None
    # revert is exact on the sharded model, the offloaded blocks were never written to
    after = _values(sharded)
    assert all(torch.equal(after[n], original[n]) for n in original)
    # applied, the edited weight is where the device map keeps it, with the plain model's edited values
    apply(sharded, got)
    apply(plain, want)
    try:
        edited = sharded.get_parameter(name)
        assert edited.device.type == "cpu" and edited.dtype == getattr(torch, dtype)
        torch.testing.assert_close(edited, plain.get_parameter(name), **TOL)
    finally:
        revert(sharded, got)
        revert(plain, want)
    assert torch.equal(sharded.get_parameter(name), original[name])


def test_editing_an_offloaded_layer_is_refused(folder: Path) -> None:
    sharded, tok = _load(folder, sharded=True)
    offloaded = "model.layers.1.mlp.down_proj.weight"
    with pytest.raises(InputError, match=rf"locft-bf: {offloaded} is offloaded by the device map") as err:
        _edit(sharded, tok, 1)
    assert "\n" not in str(err.value)
    # a delta for an offloaded weight (made elsewhere) is refused by apply: copy_ into it would do nothing
    location = fixed(sharded, layer=1, module="mlp_down")
    shape = param_value(sharded, offloaded).shape
    result = EditResult("locft-bf", {offloaded: torch.ones(shape)}, location, {})
    before = _values(sharded)
    with pytest.raises(InputError, match=rf"apply: {offloaded} is offloaded") as err:
        apply(sharded, result)
    assert "\n" not in str(err.value)
    after = _values(sharded)
    assert all(torch.equal(after[n], before[n]) for n in before)
    with pytest.raises(Exception, match="not applied"):
        revert(sharded, result)


def test_mend_on_a_sharded_model(folder: Path, tiny_mend_editor: Any) -> None:
    """MEND edits the last 3 blocks: the same deltas with block 0 offloaded; refused with blocks 1-2 offloaded."""
    editor = make_editor("mend", overrides=[f"editor={tiny_mend_editor('llama')}"])
    plain, tok = _load(folder)
    want = editor.compute(plain, tok, REQUESTS, editor.default_location(plain))
    mapping = {**DEVICE_MAP, "model.layers.0": "disk", "model.layers.1": "cpu", "model.layers.2": "cpu"}
    sharded, _ = load_model(str(folder), device_map=mapping, offload_folder=folder.parent / "offload-mend")
    assert is_offloaded(sharded, "model.layers.0.mlp.down_proj.weight")
    got = editor.compute(sharded, tok, REQUESTS, editor.default_location(sharded))
    assert list(got.deltas) == list(want.deltas) and len(want.deltas) == 9  # gate, up, down of blocks 1-3
    for name, delta in want.deltas.items():
        torch.testing.assert_close(got.deltas[name], delta, **TOL)
    offloaded, _ = _load(folder, sharded=True)
    with pytest.raises(InputError, match=r"mend: model\.layers\.1\.mlp\.\w+\.weight is offloaded"):
        editor.compute(offloaded, tok, REQUESTS, editor.default_location(offloaded))


def test_mend_weights_hash_memo_holds_for_offloaded_weights(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The frozen-weights hash of a model with offloaded weights is computed once, and again when the values differ."""
    import editkit.placement
    import editkit.report
    from editkit.editors.mend.spec import frozen_weights_sha256
    from editkit.placement import offloaded_values

    sharded, _ = _load(folder, sharded=True)
    name = "model.layers.1.mlp.down_proj.weight"
    assert is_offloaded(sharded, name)
    real = editkit.report.weights_sha256
    calls: list[int] = []

    def counting(model: Any) -> str:
        calls.append(1)
        return real(model)

    monkeypatch.setattr(editkit.report, "weights_sha256", counting)
    read = editkit.placement.param_value
    kept: list[torch.Tensor] = []

    def fresh(model: Any, key: str) -> torch.Tensor:  # as a disk store gives: new memory at every read
        kept.append(read(model, key).clone())
        return kept[-1]

    monkeypatch.setattr(editkit.placement, "param_value", fresh)
    first = frozen_weights_sha256(sharded, ["model.layers.3.mlp.down_proj.weight"])
    assert frozen_weights_sha256(sharded, ["model.layers.3.mlp.down_proj.weight"]) == first and len(calls) == 1
    with offloaded_values(sharded, {name: read(sharded, name) + 1}):
        assert frozen_weights_sha256(sharded, ["model.layers.3.mlp.down_proj.weight"]) != first
    assert frozen_weights_sha256(sharded, ["model.layers.3.mlp.down_proj.weight"]) == first and len(calls) == 3


# ---- the command line ------------------------------------------------------------------------------


def _run(*args: str) -> Any:
    return CliRunner(env={"COLUMNS": "400"}).invoke(app, list(args))


@pytest.fixture()
def facts(tmp_path: Path) -> Path:
    path = tmp_path / "facts.jsonl"
    rows = [{"prompt": r.prompt, "target_new": r.target_new, "subject": r.subject, "target_true": r.target_true}
            for r in REQUESTS[:2]]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _edit_args(folder: Path, facts: Path, out: Path, layer: int) -> list[str]:
    args = ["edit", "--model", str(folder), "--facts", str(facts), "--out", str(out), "--layer", str(layer),
            "--reference", "none", "--no-fluency", "--no-generation", "--format", "json"]
    return args + [a for option in FAST for a in ("--set", option)]


def test_cli_edit_with_a_device_map(folder: Path, facts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoModelForCausalLM

    monkeypatch.setenv("EDITKIT_CACHE", str(tmp_path / "cache"))
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps(DEVICE_MAP))
    reports, deltas, models = {}, {}, {}
    for name, extra in (("plain", []), ("sharded", ["--device-map", str(mapping)])):
        res = _run(*_edit_args(folder, facts, tmp_path / name, 3), *extra)
        assert res.exit_code == 0, res.output
        reports[name] = json.loads((tmp_path / name / "report.json").read_text())
        deltas[name] = load_edit(tmp_path / name / "delta.safetensors").deltas
        models[name] = AutoModelForCausalLM.from_pretrained(tmp_path / name / "model")  # --save model: a plain folder
    assert list(deltas["sharded"]) == ["model.layers.3.mlp.down_proj.weight"]
    for key, value in deltas["plain"].items():
        torch.testing.assert_close(deltas["sharded"][key], value, **TOL)
    for when in ("before", "after"):
        _same_metrics(reports["sharded"]["metrics"][when], reports["plain"]["metrics"][when])
    assert reports["sharded"]["provenance"]["device"] == f"device_map={mapping}"
    # --save model on the dispatched model: the edited block with its delta, the offloaded ones from their store
    saved = dict(models["sharded"].named_parameters())
    for n, p in models["plain"].named_parameters():
        torch.testing.assert_close(saved[n], p, **TOL)
    original = AutoModelForCausalLM.from_pretrained(folder)
    edited = "model.layers.3.mlp.down_proj.weight"
    diff = saved[edited] - original.get_parameter(edited)
    torch.testing.assert_close(diff, deltas["sharded"][edited], rtol=1e-5, atol=1e-6)
    assert float(diff.norm()) > 0


def test_cli_edit_refuses_a_bad_device_map_and_an_offloaded_layer(
    folder: Path, facts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDITKIT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    res = _run(*_edit_args(folder, facts, out, 3), "--device-map", "bogus")
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2, res.output
    assert len(lines) == 1 and lines[0].startswith("error: --device-map: 'bogus': expected auto"), res.output
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["facts.jsonl"]

    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps(DEVICE_MAP))
    res = _run(*_edit_args(folder, facts, out, 2), "--device-map", str(mapping))
    assert res.exit_code == 2, res.output
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "locft-bf: model.layers.2.mlp.down_proj.weight is offloaded" in errors[0], res.output
    assert not out.exists() and not (tmp_path / "out.checkpoint").exists()
