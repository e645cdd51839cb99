"""Tokenization, padding and target masks (editkit.batching)."""

from __future__ import annotations

import pytest
import torch

from editkit.batching import collate, encode_pairs, join_target

pytestmark = pytest.mark.unit


def test_join_target_adds_one_space() -> None:
    assert join_target("The capital of France is", "Paris") == " Paris"
    assert join_target("Q: capital of France? A: ", "Paris") == "Paris"


def test_target_tokens_are_those_of_the_full_text(tok) -> None:
    (enc,) = encode_pairs(tok, ["The capital of France is"], ["Paris"])
    full = tok("The capital of France is Paris")["input_ids"]
    assert list(enc.ids) == full
    assert tok.convert_ids_to_tokens(list(enc.target_ids)) == ["ĠParis"]


def test_append_eos(tok) -> None:
    (enc,) = encode_pairs(tok, ["The capital of France is"], ["Paris"], append_eos=True)
    assert enc.target_ids[-1] == tok.eos_token_id
    assert len(enc.target_ids) == 2


def test_empty_target_rejected(tok) -> None:
    with pytest.raises(ValueError, match="empty target"):
        encode_pairs(tok, ["x"], [""])


@pytest.mark.parametrize("side", ["left", "right"])
def test_collate_masks_and_positions(tok, side: str) -> None:
    enc = encode_pairs(tok, ["The capital of France is", "Paris is"], ["Paris", "the capital city of France"])
    b = collate(enc, pad_id=tok.pad_token_id, padding_side=side)
    for row, e in enumerate(enc):
        real = b.attention_mask[row].bool()
        assert b.input_ids[row][real].tolist() == list(e.ids)
        assert b.position_ids[row][real].tolist() == list(range(len(e.ids)))
        assert b.input_ids[row][b.target_mask[row]].tolist() == list(e.target_ids)
        assert b.labels[row][b.target_mask[row]].tolist() == list(e.target_ids)
        assert (b.labels[row][~b.target_mask[row]] == -100).all()
    assert b.lengths == [len(e.target_ids) for e in enc]
    rows, cols = b.predicting_positions()
    # The logits predicting a target token sit one position before it.
    assert torch.equal(b.input_ids[rows, cols + 1], b.target_ids())


def test_mean_target_nll_matches_hand_computation(tok) -> None:
    enc = encode_pairs(tok, ["a b", "c"], ["d e f", "g"])
    b = collate(enc, pad_id=tok.pad_token_id)
    torch.manual_seed(0)
    logits = torch.randn(*b.input_ids.shape, 512)
    got = b.mean_target_nll(logits)
    for row, e in enumerate(enc):
        lp = torch.log_softmax(logits[row], -1)
        start = len(e.prompt_ids)
        nll = [-lp[start + j - 1, t].item() for j, t in enumerate(e.target_ids)]
        assert got[row].item() == pytest.approx(sum(nll) / len(nll), rel=1e-5)
