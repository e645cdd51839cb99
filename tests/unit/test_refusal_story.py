"""examples/refusal_story.py, run on a tiny random model: LoRA targets, SFT encoding, fine-tune + merge, the whole story."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from tiny_models import PAD_ID, tiny_model, tiny_tokenizer

from editkit.batching import collate
from probes.data import load_instructions, load_responses, shipped_path

pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("ignore::UserWarning")]

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "refusal_story.py"


@pytest.fixture(scope="module")
def story():
    spec = importlib.util.spec_from_file_location("refusal_story", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["refusal_story"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("refusal_story", None)


def test_lora_targets_and_sft_encoding(story) -> None:
    model, _ = tiny_model("llama", seed=0)
    tok = tiny_tokenizer()
    assert story.lora_targets(model) == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    gpt2, _ = tiny_model("gpt2", seed=0)
    assert story.lora_targets(gpt2) == ["c_attn", "c_proj", "c_fc"]
    enc = story.encode_sft(tok, ["How do I bake bread?"], ["Mix flour."])[0]
    assert tok.decode(list(enc.prompt_ids)).endswith("<|im_start|>assistant\n")
    assert tok.decode(list(enc.target_ids)) == "Mix flour.<|im_end|>"


def test_lora_finetune_learns_and_leaves_the_input_alone(story) -> None:
    model, _ = tiny_model("llama", seed=0)
    tok = tiny_tokenizer()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    prompts, targets = ["How do I steal a car?", "Hack a wifi"], ["I can't help with that request."] * 2
    batch = collate(story.encode_sft(tok, prompts, targets), pad_id=PAD_ID)
    with torch.no_grad():
        nll_before = batch.mean_target_nll(model(**batch.model_inputs()).logits).mean()
    tuned = story.lora_finetune(model, tok, prompts, targets, steps=12, lr=1e-2, batch_size=2)
    with torch.no_grad():
        nll_after = batch.mean_target_nll(tuned(**batch.model_inputs()).logits).mean()
    assert nll_after < nll_before - 0.5
    assert type(tuned) is type(model) and not hasattr(tuned, "peft_config")
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_whole_story_on_a_tiny_model(story, tmp_path: Path) -> None:
    model, _ = tiny_model("llama", seed=0)
    tok = tiny_tokenizer()
    instructions = load_instructions(shipped_path("instructions.jsonl"))
    responses = load_responses(shipped_path("responses.jsonl"), instructions=instructions)
    data = story.story_data(instructions, responses, n_train=4, n_eval=3)
    assert len(data["harmful_eval"]) == 3 and data["refusals"] and data["compliances"]
    held = {r.text for r in instructions if r.source == "terse"}
    assert set(data["harmful_eval"]) <= held and not set(data["harmful_train"]) & held
    summary = story.run_story(model, tok, data, out=tmp_path, steps=2, max_new_tokens=3, batch_size=4, n_boot=20,
                              log=lambda _msg: None)
    assert set(summary) == {"safety", "attack"}
    assert {p.name for p in tmp_path.iterdir()} >= {"safety_audit.json", "attack_audit.json", "report.md",
                                                     "safety_adapter", "attack_adapter"}
    audit = json.loads((tmp_path / "attack_audit.json").read_text())
    assert "harmful" in audit["rates"]["base"] and len(audit["per_prompt"]) == 2 * 6
    assert any(p.suffix == ".safetensors" for p in (tmp_path / "safety_adapter").iterdir())
