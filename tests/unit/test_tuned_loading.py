"""Reading tuned weights as deltas: peft LoRA adapters, full checkpoints, editkit edits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_models import tiny_model

from audit.tuned import (
    EditDeltas,
    FullCheckpoint,
    LoraAdapter,
    detect_kind,
    load_tuned,
)
from editkit.errors import EditkitError, InputError

pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("ignore::UserWarning")]


def _save_lora(tmp: Path, model_type: str, **lora: object) -> Path:
    from peft import LoraConfig, get_peft_model

    model, _ = tiny_model(model_type, seed=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        # init_lora_weights=False: B is random too, so the delta is not zero.
        peft_model = get_peft_model(model, LoraConfig(init_lora_weights=False, **lora))  # type: ignore[arg-type]
    peft_model.save_pretrained(tmp)
    return tmp


def _merged_deltas(model_type: str, adapter: Path) -> dict[str, torch.Tensor]:
    """``merge_and_unload`` weights minus the base weights (the reference)."""
    from peft import PeftModel

    base, _ = tiny_model(model_type, seed=0)
    before = {n: p.detach().clone() for n, p in base.named_parameters(remove_duplicate=False)}
    merged = PeftModel.from_pretrained(base, adapter).merge_and_unload()
    after = dict(merged.named_parameters(remove_duplicate=False))
    return {n: after[n].detach() - before[n] for n in before if not torch.equal(after[n], before[n])}


LORA_CASES = {
    "llama": dict(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"],
        rank_pattern={"down_proj": 2}, alpha_pattern={"v_proj": 3},
    ),
    "llama-rslora": dict(
        r=4, lora_alpha=8, target_modules=["q_proj", "o_proj", "up_proj"], use_rslora=True,
        rank_pattern={r"layers\.1\.self_attn\.q_proj": 8},
    ),
    "mistral": dict(r=3, lora_alpha=6, target_modules=["embed_tokens", "k_proj"]),  # LoRA on an embedding
    "gpt2": dict(
        r=4, lora_alpha=16, target_modules=["c_attn", "c_fc", "c_proj"], fan_in_fan_out=True,
        lora_bias=True,
    ),
}


@pytest.mark.parametrize("case", list(LORA_CASES))
def test_lora_deltas_match_peft_merge(tmp_path: Path, case: str) -> None:
    model_type = case.split("-")[0]
    adapter = _save_lora(tmp_path, model_type, **LORA_CASES[case])
    base, _ = tiny_model(model_type, seed=0)
    tuned = load_tuned(base, adapter)
    assert isinstance(tuned, LoraAdapter) and tuned.kind == "lora"
    reference = _merged_deltas(model_type, adapter)
    assert set(tuned) == set(reference)
    for name, ref in reference.items():
        torch.testing.assert_close(tuned[name], ref, atol=1e-6, rtol=0)
        torch.testing.assert_close(tuned.weight(name), base.get_parameter(name).float() + ref, atol=1e-6, rtol=0)


def test_lora_patterns_and_scaling(tmp_path: Path) -> None:
    adapter = _save_lora(tmp_path, "llama", **LORA_CASES["llama-rslora"])
    base, _ = tiny_model("llama", seed=0)
    layers = LoraAdapter(base, adapter).layers
    q1 = layers["model.layers.1.self_attn.q_proj.weight"]
    q0 = layers["model.layers.0.self_attn.q_proj.weight"]
    assert (q1.rank, q0.rank) == (8, 4)
    assert q1.scaling == pytest.approx(8 / 8**0.5) and q0.scaling == pytest.approx(8 / 2)


def test_lora_gpt2_layout_is_transposed(tmp_path: Path) -> None:
    adapter = _save_lora(tmp_path, "gpt2", **LORA_CASES["gpt2"])
    base, _ = tiny_model("gpt2", seed=0)
    layer = LoraAdapter(base, adapter).layers["transformer.h.0.mlp.c_fc.weight"]
    assert layer.transposed and not layer.embedding


def test_full_checkpoint_round_trip_and_prefix(tmp_path: Path) -> None:
    base, _ = tiny_model("llama", seed=0)
    tuned_model, _ = tiny_model("llama", seed=0)
    with torch.no_grad():
        for p in tuned_model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    tuned_model.save_pretrained(tmp_path / "ft", max_shard_size="20KB")
    assert (tmp_path / "ft" / "model.safetensors.index.json").is_file()
    tuned = load_tuned(base, tmp_path / "ft")
    assert isinstance(tuned, FullCheckpoint)
    expected = dict(base.named_parameters())  # tied lm_head is one entry
    assert list(tuned) == list(expected)
    want = dict(tuned_model.named_parameters())
    for name in tuned:
        torch.testing.assert_close(tuned.weight(name), want[name], atol=0, rtol=0)
        torch.testing.assert_close(tuned[name], want[name] - expected[name], atol=0, rtol=0)
    # The bare LlamaModel's checkpoint has no "model." prefix: names are mapped.
    tuned_model.model.save_pretrained(tmp_path / "bare")
    bare = load_tuned(base, tmp_path / "bare")
    assert list(bare) == list(expected)


def test_edit_deltas(tmp_path: Path) -> None:
    from editkit.editors.result import EditResult, save_edit
    from editkit.localize.location import Location, Site

    base, _ = tiny_model("llama", seed=0)
    name = "model.layers.1.mlp.down_proj.weight"
    delta = torch.randn(base.get_parameter(name).shape)
    result = EditResult("locft-bf", {name: delta}, Location((Site(name, 1, "mlp_down"),)), {})
    save_edit(result, tmp_path / "delta.safetensors")
    assert detect_kind(tmp_path) == ("edit", tmp_path)
    tuned = load_tuned(base, tmp_path)
    assert isinstance(tuned, EditDeltas) and list(tuned) == [name]
    torch.testing.assert_close(tuned[name], delta, atol=0, rtol=0)
    assert tuned.metadata["method"] == "locft-bf"


def test_shape_mismatch_is_one_clear_error(tmp_path: Path) -> None:
    other, _ = tiny_model("llama", seed=0, intermediate_size=64)
    other.save_pretrained(tmp_path / "ft")
    base, _ = tiny_model("llama", seed=0)
    with pytest.raises(InputError, match=r"down_proj.weight has shape \(32, 64\) but the base model's is \(32, 72\)"):
        load_tuned(base, tmp_path / "ft")
    _save_lora(tmp_path / "lora", "llama", r=2, lora_alpha=2, target_modules=["down_proj"])
    small, _ = tiny_model("llama", seed=0, intermediate_size=64)
    with pytest.raises(InputError, match="same architecture and size"):
        load_tuned(small, tmp_path / "lora")


def test_other_architecture_is_refused(tmp_path: Path) -> None:
    gpt2, _ = tiny_model("gpt2", seed=0)
    gpt2.save_pretrained(tmp_path)
    base, _ = tiny_model("llama", seed=0)
    with pytest.raises(InputError, match="'gpt2' but the base model is a 'llama'"):
        load_tuned(base, tmp_path)


def test_missing_and_unexpected_tensors(tmp_path: Path) -> None:
    base, _ = tiny_model("llama", seed=0)
    base.save_pretrained(tmp_path / "ft")
    file = tmp_path / "ft" / "model.safetensors"
    tensors = load_file(str(file))
    missing = dict(tensors)
    del missing["model.layers.2.mlp.up_proj.weight"]
    save_file(missing, str(file), metadata={"format": "pt"})
    with pytest.raises(InputError, match="missing from the checkpoint"):
        load_tuned(base, tmp_path / "ft")
    save_file({**tensors, "model.layers.9.extra.weight": torch.zeros(2)}, str(file), metadata={"format": "pt"})
    with pytest.raises(InputError, match="match no parameter"):
        load_tuned(base, tmp_path / "ft")


def test_pickles_and_dora_are_refused(tmp_path: Path) -> None:
    base, _ = tiny_model("llama", seed=0)
    (tmp_path / "pt").mkdir()
    (tmp_path / "pt" / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(InputError, match="pickle-based"):
        load_tuned(base, tmp_path / "pt")
    adapter = _save_lora(tmp_path / "dora", "llama", r=2, lora_alpha=2, target_modules=["q_proj"])
    config = json.loads((adapter / "adapter_config.json").read_text())
    (adapter / "adapter_config.json").write_text(json.dumps({**config, "use_dora": True}))
    with pytest.raises(InputError, match="DoRA"):
        load_tuned(base, adapter)
    with pytest.raises(EditkitError, match="no such file"):
        load_tuned(base, tmp_path / "nowhere")
