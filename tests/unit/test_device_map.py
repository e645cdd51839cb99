"""Models larger than one device: a device map gives the same numbers as one device, everywhere.

A tiny llama is saved, then loaded twice: plainly, and with a device map that
keeps the embeddings, blocks 0 and 3 and the head on the CPU and sends blocks
1 and 2 to "disk". Those blocks' parameters are then empty ``meta`` tensors;
their weights stay in the model's own safetensors file and accelerate's hooks
load them for each call -- what a model larger than its GPUs does with CPU or
disk offload, on a CPU-only machine. Logits, TuCo (two whole models, and a full
fine-tune read as deltas), intruder dimensions, activations, the whole audit
report, CGE and mitigation must give the same numbers on both, in fp32 and with
bf16 storage. Also: ``--device-map`` on the command line, and nnsight's remote
execution passed through (simulated in-process: no network here).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from tiny_models import SHARDED_LLAMA_MAP, save_tiny_full, save_tiny_lora, tiny_tokenizer
from typer.testing import CliRunner

from audit.context import AuditContext
from audit.intruders import IntruderConfig, intruder_analysis
from audit.tuco import decompose, encode_prompts, prompt_batch, tuco
from audit.tuco.offloaded import OffloadedDeltaPair, delta_pair
from audit.tuco.pair import tuned_pair
from audit.tuned import load_tuned
from editkit.batching import model_device
from editkit.cli import app
from editkit.errors import InputError
from editkit.localize.location import Site
from editkit.models import load_model
from editkit.placement import (
    check_on_device,
    device_map_of,
    is_offloaded,
    module_device,
    offloaded_parameters,
    offloaded_values,
    param_value,
    parse_device_map,
    placement_summary,
    stored_values,
    tied_parameters,
)
from probes.activations import collect_activations

pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("ignore::UserWarning")]

DEVICE_MAP = SHARDED_LLAMA_MAP
OFFLOADED = "model.layers.1.mlp.down_proj.weight"
ON_DEVICE = "model.layers.3.mlp.down_proj.weight"
PROMPTS = ["The capital of France is", "Hi", "People in Spain speak Spanish and people in Italy speak"]
TOL = {"rtol": 1e-6, "atol": 1e-6}


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The base model, a full fine-tune (with intruders in every down_proj) and a LoRA adapter, each with the tokenizer."""
    from tiny_models import tiny_model

    root = tmp_path_factory.mktemp("device-map")
    model, _ = tiny_model("llama", seed=0)
    model.save_pretrained(root / "base")
    save_tiny_full(root / "full", scale=1e-2, strong=("down_proj.weight",))
    save_tiny_lora(root / "lora")
    for name in ("base", "full", "lora"):
        tiny_tokenizer().save_pretrained(root / name)
    return {"base": root / "base", "full": root / "full", "lora": root / "lora", "root": root}


def _load(folder: Path, dtype: str = "float32", sharded: bool = False) -> Any:
    extra: dict[str, Any] = {"device_map": DEVICE_MAP, "offload_folder": folder.parent / "offload"} if sharded else {}
    model, _ = load_model(str(folder), dtype=dtype, **extra)
    return model


@pytest.fixture(scope="module")
def plain(folders: dict[str, Path]) -> Any:
    return _load(folders["base"])


@pytest.fixture(scope="module")
def sharded(folders: dict[str, Path]) -> Any:
    return _load(folders["base"], sharded=True)


@pytest.fixture(scope="module")
def tok(folders: dict[str, Path]) -> Any:
    return load_model(str(folders["base"]))[1]


def _logits(model: Any) -> torch.Tensor:
    ids = torch.tensor([[0, 5, 9, 22, 17, 301, 44], [0, 7, 7, 100, 2, 3, 4]])
    with torch.no_grad():
        return model(input_ids=ids.to(model_device(model))).logits.float()


# ---- placement ------------------------------------------------------------------------------------


def test_blocks_really_live_elsewhere(plain: Any, sharded: Any) -> None:
    """Blocks 1-2 are offloaded (meta parameters, hooks load them); the rest sits on the CPU."""
    assert device_map_of(sharded) == DEVICE_MAP and device_map_of(plain) is None
    offloaded = offloaded_parameters(sharded)
    assert offloaded and all(n.startswith(("model.layers.1.", "model.layers.2.")) for n in offloaded)
    assert len(offloaded) == 2 * sum(1 for n, _ in plain.named_parameters() if n.startswith("model.layers.1."))
    assert sharded.get_parameter(OFFLOADED).device.type == "meta" and is_offloaded(sharded, OFFLOADED)
    assert not is_offloaded(sharded, ON_DEVICE) and offloaded_parameters(plain) == []
    assert torch.equal(param_value(sharded, OFFLOADED), plain.get_parameter(OFFLOADED))
    assert param_value(sharded, OFFLOADED).device.type == "cpu"
    cpu = torch.device("cpu")
    assert model_device(sharded) == cpu
    assert module_device(sharded, OFFLOADED) == module_device(sharded, "model.layers.1") == cpu
    assert module_device(sharded, Site(ON_DEVICE, layer=3)) == module_device(plain, ON_DEVICE) == cpu
    assert placement_summary(sharded) == "device map: cpu, disk" and placement_summary(plain) == "cpu"


def test_logits_match(plain: Any, sharded: Any) -> None:
    torch.testing.assert_close(_logits(sharded), _logits(plain), **TOL)


def test_offloaded_values_and_stored_values_nest_and_restore(plain: Any, sharded: Any) -> None:
    """Other values for an offloaded weight inside the block only; the stored ones inside a nested block."""
    hook = sharded.model.layers[1].mlp.down_proj._hf_hook
    store = hook.weights_map
    before = _logits(plain)
    shifted = param_value(sharded, OFFLOADED) + 0.5
    with torch.no_grad():
        p = plain.get_parameter(OFFLOADED)
        original = p.detach().clone()
        p.copy_(shifted)
        expected = _logits(plain)
        p.copy_(original)
    with offloaded_values(sharded, {OFFLOADED: shifted}):
        torch.testing.assert_close(_logits(sharded), expected, **TOL)
        with stored_values(sharded, [OFFLOADED, ON_DEVICE]):
            torch.testing.assert_close(_logits(sharded), before, **TOL)
        torch.testing.assert_close(_logits(sharded), expected, **TOL)
    assert hook.weights_map is store
    torch.testing.assert_close(_logits(sharded), before, **TOL)
    with pytest.raises(ValueError, match="not an offloaded parameter"), offloaded_values(sharded, {ON_DEVICE: shifted}):
        pass


def test_tied_embeddings_offloaded_get_the_tuned_value_in_both_places(plain: Any, tok: Any, folders: dict[str, Path]) -> None:
    """The tiny llama ties lm_head to the embeddings: a delta on one reaches both offload hooks."""
    from audit.tuned import DeltaWeights

    mapping = {"model.embed_tokens": "disk", "model.layers": "cpu", "model.norm": "cpu", "model.rotary_emb": "cpu",
               "lm_head": "disk"}
    model, _ = load_model(str(folders["base"]), device_map=mapping, offload_folder=folders["root"] / "offload-tied")
    assert offloaded_parameters(model) == ["model.embed_tokens.weight", "lm_head.weight"]
    name = "model.embed_tokens.weight"
    delta = 0.3 * torch.randn(plain.get_parameter(name).shape, generator=torch.Generator().manual_seed(0))
    with delta_pair(plain, DeltaWeights(plain, {name: delta})).tuned() as tuned:
        want = _logits(tuned)
    pair = delta_pair(model, DeltaWeights(model, {name: delta}))
    with pair.tuned() as tuned:
        torch.testing.assert_close(_logits(tuned), want, **TOL)
    # The public entry point picks the offloaded variant too (a plain DeltaPair would silently run the base model).
    assert isinstance(tuned_pair(model, {name: delta}), OffloadedDeltaPair)
    with tuned_pair(model, {name: delta}).tuned() as tuned:
        torch.testing.assert_close(_logits(tuned), want, **TOL)
    torch.testing.assert_close(_logits(model), _logits(plain), **TOL)
    # After a forward the hooks have given each module a placeholder of its own: still one weight.
    assert model.lm_head.weight is not model.model.embed_tokens.weight
    assert tied_parameters(model)["lm_head.weight"] == ("model.embed_tokens.weight", "lm_head.weight")
    with tuned_pair(model, {"lm_head.weight": delta}).tuned() as tuned:  # the other name of the same weight
        torch.testing.assert_close(_logits(tuned), want, **TOL)
    with offloaded_values(model, {name: param_value(model, name) + delta}):
        torch.testing.assert_close(_logits(model), want, **TOL)
        with stored_values(model, [name]):
            torch.testing.assert_close(_logits(model), _logits(plain), **TOL)


_CPU = torch.device("cpu")
_TIED_MAPS = {
    # With main_device=torch.device("cpu") accelerate treats "cpu" entries as offloaded to CPU memory (what "cpu"
    # means next to a GPU) and torch.device("cpu") entries as kept on the execution device.
    "both-cpu": {"model.embed_tokens": "cpu", "lm_head": "cpu"},
    "embeddings-cpu": {"model.embed_tokens": "cpu", "lm_head": _CPU},
    "head-cpu": {"model.embed_tokens": _CPU, "lm_head": "cpu"},
    "embeddings-disk": {"model.embed_tokens": "disk", "lm_head": _CPU},
    "head-disk": {"model.embed_tokens": _CPU, "lm_head": "disk"},
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("warm", [False, True], ids=["cold", "after-a-forward"])
@pytest.mark.parametrize("where", list(_TIED_MAPS))
def test_tied_embeddings_one_or_both_offloaded(where: str, warm: bool, dtype: torch.dtype, tmp_path: Path) -> None:
    """CPU or disk offload of one or both of the tied pair: the tuned value reaches both, under either name."""
    from accelerate import dispatch_model
    from tiny_models import tiny_model

    from audit.tuned import DeltaWeights

    plain = tiny_model("llama", seed=0)[0].to(dtype)
    model = tiny_model("llama", seed=0)[0].to(dtype)
    mapping = {**_TIED_MAPS[where], "model.layers": _CPU, "model.norm": _CPU, "model.rotary_emb": _CPU}
    dispatch_model(model, mapping, main_device=_CPU, offload_dir=str(tmp_path / "offload"))
    expected = [f"{m}.weight" for m, d in _TIED_MAPS[where].items() if d in ("cpu", "disk")]
    assert [n for n in offloaded_parameters(model) if n in ("model.embed_tokens.weight", "lm_head.weight")] == expected
    base = _logits(plain)
    if warm:
        torch.testing.assert_close(_logits(model), base, rtol=0, atol=0)
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        delta = 0.3 * torch.randn(plain.get_parameter(name).shape, generator=torch.Generator().manual_seed(0))
        with delta_pair(plain, DeltaWeights(plain, {name: delta})).tuned() as tuned:
            want = _logits(tuned)
        for _ in range(2):
            pair = delta_pair(model, DeltaWeights(model, {name: delta}))
            assert isinstance(pair, OffloadedDeltaPair) and pair.offloaded == (name,)
            with pair.tuned() as tuned:
                torch.testing.assert_close(_logits(tuned), want, rtol=0, atol=0)
                with pair.base() as untuned:
                    torch.testing.assert_close(_logits(untuned), base, rtol=0, atol=0)
            torch.testing.assert_close(_logits(model), base, rtol=0, atol=0)


@pytest.mark.parametrize("where", ["head-cpu", "embeddings-disk", "both-cpu"])
def test_tied_pair_split_for_applied_weights_contrast_pair_and_tuned_copy(where: str, tmp_path: Path) -> None:
    """One of the tied pair offloaded: in-place application, CGE's substitution and a tuned copy reach both names."""
    from accelerate import dispatch_model
    from tiny_models import tiny_model

    from audit.cge.pair import contrast_pair
    from audit.mitigate import applied_weights
    from audit.tuned import DeltaWeights
    from editkit.placement import split_offloaded

    plain = tiny_model("llama", seed=0)[0]
    model = tiny_model("llama", seed=0)[0]
    mapping = {**_TIED_MAPS[where], "model.layers": _CPU, "model.norm": _CPU, "model.rotary_emb": _CPU}
    dispatch_model(model, mapping, main_device=_CPU, offload_dir=str(tmp_path / "offload"))
    base = _logits(plain)
    torch.testing.assert_close(_logits(model), base, rtol=0, atol=0)  # warm: the hooks split the tied pair
    embed, head = "model.embed_tokens.weight", "lm_head.weight"
    on_device, hooked = split_offloaded(model, {head: 1})
    if where == "both-cpu":
        assert (on_device, hooked) == ({}, {head: 1})
    else:
        assert hooked == {head: 1} and on_device == ({embed: 1} if where == "head-cpu" else {head: 1})
    both = {embed: 1, head: 2}  # each name given keeps its own value
    on_device, hooked = split_offloaded(model, both)
    assert sorted(hooked) == sorted(n for n in both if is_offloaded(model, n))
    assert on_device == {n: v for n, v in both.items() if n not in hooked}
    assert split_offloaded(model, dict.fromkeys(["model.layers.0.mlp.up_proj.weight"])) == (
        {"model.layers.0.mlp.up_proj.weight": None}, {})
    for name in (embed, head):
        delta = 0.3 * torch.randn(plain.get_parameter(name).shape, generator=torch.Generator().manual_seed(1))
        with applied_weights(plain, DeltaWeights(plain, {name: delta})):
            want = _logits(plain)
        assert (want - base).abs().max() > 1e-3
        with applied_weights(model, DeltaWeights(model, {name: delta})):
            torch.testing.assert_close(_logits(model), want, **TOL)
        torch.testing.assert_close(_logits(model), base, rtol=0, atol=0)
        weights = DeltaWeights(model, {name: delta})
        with contrast_pair(model, weights) as pair:
            ids = torch.tensor([[0, 5, 9, 22, 17, 301, 44], [0, 7, 7, 100, 2, 3, 4]])
            with torch.no_grad():
                torch.testing.assert_close(pair.tuned(input_ids=ids).logits, want, **TOL)
                torch.testing.assert_close(pair.base(input_ids=ids).logits, base, rtol=0, atol=0)
        copy = AuditContext(model, None, weights).tuned_copy()
        torch.testing.assert_close(_logits(copy), want, **TOL)
        torch.testing.assert_close(_logits(model), base, rtol=0, atol=0)


def test_check_on_device_names_the_offloaded_site(sharded: Any) -> None:
    """What an editor (in-place writes) checks before it edits a device-mapped model."""
    check_on_device(sharded, [Site(ON_DEVICE, layer=3)], "locft-bf")
    with pytest.raises(InputError, match=r"locft-bf: model\.layers\.1\.mlp\.down_proj\.weight is offloaded") as err:
        check_on_device(sharded, [ON_DEVICE, Site(OFFLOADED, layer=1)], "locft-bf")
    assert "\n" not in str(err.value)


# ---- the analyses -----------------------------------------------------------------------------------


def _same_tuco(got: list[Any], want: list[Any]) -> None:
    assert [r.n_tokens for r in got] == [r.n_tokens for r in want]
    for a, b in zip(got, want, strict=True):
        assert a.tuco == pytest.approx(b.tuco, rel=1e-6, abs=1e-7)
        assert a.outputco == pytest.approx(b.outputco, rel=1e-6, abs=1e-7)
        assert a.ftc_l1 == pytest.approx(b.ftc_l1, rel=1e-6, abs=1e-7)
        assert a.ptc_l1 == pytest.approx(b.ptc_l1, rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("impl", ["hooks", "nnsight"])
def test_tuco_matches(impl: str, plain: Any, sharded: Any, tok: Any, folders: dict[str, Path]) -> None:
    """A full pair (two whole sharded models), and the full fine-tune read as deltas against the sharded base."""
    want = tuco(plain, _load(folders["full"]), tok, PROMPTS, impl=impl)
    got = tuco(sharded, _load(folders["full"], sharded=True), tok, PROMPTS, impl=impl)
    _same_tuco(got, want)

    ctx = AuditContext.load(sharded, folders["full"], tok, reference=None)
    pair = ctx.pair()
    assert isinstance(pair, OffloadedDeltaPair) and OFFLOADED in pair.offloaded and ON_DEVICE not in pair.offloaded
    _same_tuco(tuco(None, pair, tok, PROMPTS, impl=impl), want)
    torch.testing.assert_close(_logits(sharded), _logits(plain), **TOL)  # nothing left swapped in


def test_intruders_match(plain: Any, sharded: Any, folders: dict[str, Path]) -> None:
    config = IntruderConfig(svd="full")
    want = intruder_analysis(plain, load_tuned(plain, folders["full"]), config=config, backend="torch-cpu", cache=False)
    got = intruder_analysis(sharded, load_tuned(sharded, folders["full"]), config=config, backend="torch-cpu", cache=False)
    assert want.total > 0 and [m.name for m in got.matrices] == [m.name for m in want.matrices]
    assert [m.count for m in got.matrices] == [m.count for m in want.matrices]
    assert [m.energy_share for m in got.matrices] == pytest.approx([m.energy_share for m in want.matrices], rel=1e-6)


@pytest.mark.parametrize("impl", ["nnsight", "hooks"])
def test_activations_match(impl: str, plain: Any, sharded: Any, tok: Any) -> None:
    forward = sharded.model.layers[1].__dict__["forward"]  # accelerate's hooked forward
    want = collect_activations(plain, tok, PROMPTS, impl=impl)
    got = collect_activations(sharded, tok, PROMPTS, impl=impl)
    assert got.layers == want.layers and got.hidden.dtype == torch.float32
    torch.testing.assert_close(got.hidden, want.hidden, **TOL)
    assert sharded.model.layers[1].__dict__["forward"] is forward  # nnsight put the hook back


def test_bf16_storage_keeps_the_math_in_fp32(folders: dict[str, Path], tok: Any) -> None:
    """bf16 weights, sharded or not: the same numbers; decompositions, deltas and SVD inputs are fp32."""
    plain16, sharded16 = _load(folders["base"], "bfloat16"), _load(folders["base"], "bfloat16", sharded=True)
    assert param_value(sharded16, OFFLOADED).dtype == torch.bfloat16
    torch.testing.assert_close(_logits(sharded16), _logits(plain16), **TOL)
    weights = load_tuned(sharded16, folders["full"])
    assert weights.base_weight(OFFLOADED).dtype == weights.delta(OFFLOADED).dtype == torch.float32
    pair = delta_pair(sharded16, weights)
    batch = prompt_batch(encode_prompts(tok, PROMPTS, chat=False), pad_id=tok.pad_token_id)
    parts = decompose(pair, batch)
    assert {t.dtype for t in (parts.x, parts.ptc, parts.ftc)} == {torch.float32}
    want = tuco(plain16, load_tuned(plain16, folders["full"]), tok, PROMPTS)
    _same_tuco(tuco(None, pair, tok, PROMPTS), want)
    config = IntruderConfig(svd="full")
    a = intruder_analysis(plain16, load_tuned(plain16, folders["full"]), config=config, backend="torch-cpu", cache=False)
    b = intruder_analysis(sharded16, weights, config=config, backend="torch-cpu", cache=False)
    assert [m.count for m in b.matrices] == [m.count for m in a.matrices]


def _strip(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _strip(v) for k, v in x.items() if k not in ("seconds", "info")}
    if isinstance(x, list):
        return [_strip(v) for v in x]
    return x


def test_every_audit_analysis_matches(folders: dict[str, Path]) -> None:
    """The whole audit report (TuCo, CGE, intruders, refusal, drift) on the sharded base equals the plain one."""
    from audit.report import run_audit

    quick = ["intruders.cache=false", "intruders.spectra=1", "cge.n=2", "cge.max_new_tokens=4", "cge.num_beams=2",
             "cge.rank_reference=4", "drift.passages=4", "tuco.max_prompts=2", "refusal.prompts=2",
             "refusal.max_new_tokens=3"]
    base, path = str(folders["base"]), str(folders["full"])
    want = run_audit(base, path, set_options=quick, formats=()).to_dict()
    got = run_audit(base, path, set_options=quick, formats=(), device_map=DEVICE_MAP).to_dict()
    assert [s["status"] for s in got["sections"]] == ["ok"] * 5, [s["summary"] for s in got["sections"]]
    for a, b in zip(got["sections"], want["sections"], strict=True):
        assert json.dumps(_strip(a), sort_keys=True, default=str) == json.dumps(_strip(b), sort_keys=True, default=str), a["name"]
    assert got["provenance"]["device"] == "device map: cpu, disk"
    assert got["provenance"]["models"] == want["provenance"]["models"]  # the base hash reads offloaded weights too


def test_cge_and_mitigation_match(plain: Any, sharded: Any, tok: Any, folders: dict[str, Path]) -> None:
    """Substituted tuned weights (CGE), in-place application (mitigation): same numbers, base restored."""
    from audit.cge import rank_texts
    from audit.mitigate import applied_weights

    texts = ["The capital of France is Paris.", "Water boils at 100 degrees.", "Hi there"]
    # a LoRA adapter on offloaded blocks runs merged (W0 + BA s) instead of peft's W0 x + B A x s: rounding differs
    for tuned, abs_tol in (("full", 1e-7), ("lora", 1e-6)):
        want = rank_texts(plain, folders[tuned], tok, texts)
        got = rank_texts(sharded, folders[tuned], tok, texts)
        assert [s.text for s in got] == [s.text for s in want]
        assert [s.score for s in got] == pytest.approx([s.score for s in want], rel=1e-6, abs=abs_tol)
    before = _logits(plain)
    with applied_weights(plain, load_tuned(plain, folders["full"])):
        want_logits = _logits(plain)
    with applied_weights(sharded, load_tuned(sharded, folders["full"])):
        torch.testing.assert_close(_logits(sharded), want_logits, **TOL)
    torch.testing.assert_close(_logits(sharded), before, **TOL)


# ---- device maps from what a user writes ----------------------------------------------------------------


def test_parse_device_map(tmp_path: Path) -> None:
    assert parse_device_map(None) is None and parse_device_map("") is None
    assert [parse_device_map(s) for s in ("auto", "balanced", "sequential")] == ["auto", "balanced", "sequential"]
    good = tmp_path / "map.json"
    good.write_text(json.dumps({"model": 0, "lm_head": "cpu", "model.layers.9": "disk", "x": "cuda:1"}))
    assert parse_device_map(good) == {"model": 0, "lm_head": "cpu", "model.layers.9": "disk", "x": "cuda:1"}
    bad = {"bogus": "'bogus': expected auto, balanced", str(tmp_path / "nope.json"): "(no such file)"}
    for path, content in (("list.json", "[1]"), ("broken.json", "{"), ("device.json", '{"model": "gpu7"}'),
                          ("negative.json", '{"model": -1}'), ("empty.json", "{}")):
        (tmp_path / path).write_text(content)
        bad[str(tmp_path / path)] = path
    for value, text in bad.items():
        with pytest.raises(InputError) as err:
            parse_device_map(value, option="--device-map")
        message = str(err.value)
        assert message.startswith("--device-map") and text in message and "\n" not in message, message


def test_load_model_refuses_a_device_map_naming_no_module(folders: dict[str, Path]) -> None:
    with pytest.raises(InputError, match=r"'model\.layerz\.1' is not a module of model .*model, lm_head"):
        load_model(str(folders["base"]), device_map={"model.layerz.1": "cpu", "": "cpu"})


# ---- the command line ------------------------------------------------------------------------------


def _run(*args: str) -> Any:
    return CliRunner(env={"COLUMNS": "400"}).invoke(app, list(args))


def test_cli_bogus_device_map_exits_2_and_writes_nothing(folders: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Hi\n")
    base, full = str(folders["base"]), str(folders["full"])
    commands = [
        ["audit", "--base", base, "--tuned", full],
        ["audit", "intruders", "--base", base, "--tuned", full],
        ["tuco", "--base", base, "--tuned", full, "--prompts", str(prompts)],
        ["cge", "--base", base, "--tuned", full],
        ["probe", "train", "--data", str(prompts), "--kind", "activation", "--model", base],
        ["probe", "generate", "--instructions", str(prompts), "--model", base],
    ]
    for command in commands:
        res = _run(*command, "--out", str(out), "--device-map", "bogus")
        lines = [line for line in res.output.splitlines() if line.strip()]
        assert res.exit_code == 2, (command, res.output)
        assert len(lines) == 1 and lines[0].startswith("error: --device-map: 'bogus': expected auto"), res.output
        assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["prompts.txt"]
    res = _run("tuco", "--base", base, "--tuned", full, "--prompts", str(prompts), "--dtype", "float64")
    assert res.exit_code == 2 and "error: --dtype: expected one of float32, bfloat16, float16" in res.output


def test_cli_tuco_with_a_device_map_file(folders: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDITKIT_CACHE", str(tmp_path / "cache"))
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps(DEVICE_MAP))
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS[:2]) + "\n")
    rows = {}
    for name, extra in (("plain", []), ("sharded", ["--device-map", str(mapping)])):
        res = _run("tuco", "--base", str(folders["base"]), "--tuned", str(folders["lora"]), "--prompts", str(prompts),
                   "--out", str(tmp_path / name), *extra)
        assert res.exit_code == 0, res.output
        rows[name] = [json.loads(line) for line in (tmp_path / name / "tuco.jsonl").read_text().splitlines()]
    assert [r["tuco"] for r in rows["sharded"]] == pytest.approx([r["tuco"] for r in rows["plain"]], rel=1e-6)
    summary = json.loads((tmp_path / "sharded" / "tuco.json").read_text())
    assert summary["tuned"]["pair"] == "deltas"  # the LoRA adapter on offloaded blocks: merged, not peft-wrapped
    assert summary["provenance"]["device"] == f"device_map={mapping}"


# ---- nnsight remote execution (simulated: no network) ------------------------------------------------------


@pytest.fixture()
def hosted(plain: Any, tok: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[Any]]:
    """nnsight's wrapper of the model, with ``remote=True`` served in-process.

    nnsight's ``LocalSimulationBackend`` serializes the trace as for NDIF and
    runs it with this project's modules hidden, so the trace body must travel
    by value exactly as it would to a server.
    """
    from nnsight import TransformersModel
    from nnsight.intervention.backends.local import LocalSimulationBackend
    from nnsight.modeling.mixins.remotable import Remotable

    asked: list[Any] = []

    def backend(self: Any, remote: Any, blocking: bool, job_id: Any, verbose: bool) -> Any:
        asked.append(remote)
        return LocalSimulationBackend(self)

    monkeypatch.setattr(Remotable, "_remote_backend", backend)
    return TransformersModel(plain, tokenizer=tok), asked


def test_remote_activations_go_through_nnsight_remote(hosted: tuple[Any, list[Any]], plain: Any, tok: Any) -> None:
    model, asked = hosted
    want = collect_activations(plain, tok, PROMPTS, layers=[0, 2, 4], batch_size=2)
    got = collect_activations(model, tok, PROMPTS, layers=[0, 2, 4], batch_size=2, remote=True)
    assert asked == [True, True]  # one remote request per batch
    torch.testing.assert_close(got.hidden, want.hidden, **TOL)


def test_remote_is_passed_on_by_probes_and_directions(hosted: tuple[Any, list[Any]], plain: Any, tok: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from probes.activation_probe import ActivationProbe, ActivationProbeConfig
    from probes.directions import compute_directions

    model, asked = hosted
    dirs = compute_directions(model, tok, PROMPTS[:2], PROMPTS[2:], positions="last", layers=[1, 2], remote=True)
    want = compute_directions(plain, tok, PROMPTS[:2], PROMPTS[2:], positions="last", layers=[1, 2])
    assert asked == [True, True]
    torch.testing.assert_close(dirs.get(2), want.get(2), **TOL)
    probe = ActivationProbe(ActivationProbeConfig(method="diff_means", layers=(2,), batch_size=8))
    probe.fit(plain, tok, PROMPTS * 2, np.array([0, 1, 0, 1, 0, 1]), groups=list(range(6)))
    asked.clear()
    scores = probe.decision_function(model, tok, PROMPTS, remote=True)
    assert asked == [True]
    np.testing.assert_allclose(scores, probe.decision_function(plain, tok, PROMPTS), rtol=1e-6, atol=1e-6)


def test_remote_needs_a_hosted_nnsight_model(plain: Any, tok: Any) -> None:
    with pytest.raises(InputError, match=r"remote=True: pass nnsight's model of a hosted checkpoint .* not a LlamaForCausalLM"):
        collect_activations(plain, tok, PROMPTS, remote=True)
    with pytest.raises(InputError, match="use impl='nnsight'"):
        collect_activations(plain, tok, PROMPTS, remote=True, impl="hooks")
