"""LocFT-BF on the embedded default model: a few real counterfactual edits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from editkit.editors import applied, make_editor
from editkit.evaluate import EvalConfig, evaluate
from editkit.requests import load_requests

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[2] / "data"


def test_locft_bf_edits_the_default_model(default_model) -> None:
    model, tok = default_model
    reqs = load_requests(DATA / "demo.jsonl")[:6]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = EvalConfig(generation=True, fluency=False, max_new_tokens=8)
    before = evaluate(model, tok, reqs, config=cfg)
    editor = make_editor("locft-bf")
    location = editor.default_location(model)
    assert location.layers == (4,)  # relative depth 0.14 of 30 layers
    result = editor.compute(model, tok, reqs, location)
    assert result.info["prefix_cached_at_layer"] == 4
    with applied(model, result):
        after = evaluate(model, tok, reqs, config=cfg, baseline=before)
    agg = after.aggregate
    assert agg["reliability"] >= 0.9
    assert agg["efficacy_score"] >= 0.9
    assert agg["locality"] >= 0.7
    # revert is exact
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
