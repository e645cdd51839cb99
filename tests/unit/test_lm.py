"""Target-position logits (editkit.lm) equal a plain forward's, on every architecture."""

from __future__ import annotations

import pytest
import torch
from tiny_models import TINY_CONFIGS, tiny_model

from editkit.batching import collate, encode_pairs
from editkit.lm import _FAST_OK, gathered_logits

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("model_type", sorted(TINY_CONFIGS))
def test_gathered_logits_equal_plain(tok, model_type: str) -> None:
    model, _ = tiny_model(model_type, seed=0)
    enc = encode_pairs(tok, ["The capital of France is", "People in Spain"], ["Paris", "speak Spanish"])
    batch = collate(enc, pad_id=tok.pad_token_id)
    with torch.no_grad():
        got = gathered_logits(model, batch, lambda kw: model(**kw))
        want = batch.target_logits(model(**batch.model_inputs()).logits)
    assert torch.allclose(got, want, atol=1e-5)


def test_fast_path_taken_for_llama_and_gradients_flow(tok) -> None:
    model, _ = tiny_model("llama", seed=0)
    batch = collate(encode_pairs(tok, ["The capital of France is"], ["Paris"]), pad_id=tok.pad_token_id)
    w = model.model.layers[1].mlp.down_proj.weight
    w.requires_grad_(True)
    loss = batch.mean_nll_of_target_logits(gathered_logits(model, batch, lambda kw: model(**kw))).sum()
    loss.backward()
    assert _FAST_OK[model] is True
    assert w.grad is not None and w.grad.abs().sum() > 0


def test_softcapped_model_uses_the_plain_path(tok) -> None:
    model, _ = tiny_model("gemma2", seed=0, final_logit_softcapping=2.0)
    batch = collate(encode_pairs(tok, ["The capital of France is"], ["Paris"]), pad_id=tok.pad_token_id)
    with torch.no_grad():
        gathered_logits(model, batch, lambda kw: model(**kw))
    assert _FAST_OK[model] is False
