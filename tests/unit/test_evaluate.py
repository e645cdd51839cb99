"""Editing metrics checked against independent computations.

Independent references used here: a hand-built bigram language model whose
probabilities are known in closed form, plain one-sequence-at-a-time forward
passes without any of editkit's batching, a greedy loop without KV cache, and
transformers' own language-modeling loss.
"""

from __future__ import annotations

import contextlib
import copy
import math
from types import SimpleNamespace

import pytest
import torch
from tiny_models import tiny_model

from editkit.evaluate import (
    EvalConfig,
    evaluate,
    exact_match,
    greedy_generate,
    ngram_entropy,
    normalize_answer,
    reference_drift,
    score_pairs,
)
from editkit.requests import EditRequest, Neighbor

pytestmark = pytest.mark.unit

PROMPTS = ["The capital of France is", "Toyota is a car maker from", "People in Spain speak", "The"]
TARGETS = ["Paris", "Japan", "Spanish language", "capital of Germany is Berlin"]


def _plain_scores(model, tok, prompt: str, target: str):
    """One pair, no padding, no batching: log-probs and argmax of the target tokens."""
    p = tok(prompt)["input_ids"]
    full = tok(prompt + " " + target)["input_ids"]
    assert full[: len(p)] == p
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([full])).logits[0]
    lp = torch.log_softmax(logits.float(), -1)
    pos = range(len(p), len(full))
    return [lp[t - 1, full[t]].item() for t in pos], [int(lp[t - 1].argmax()) for t in pos]


@pytest.mark.parametrize("model_type", ["llama", "gpt2", "gemma2", "gpt_neox"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_score_pairs_matches_unbatched_forward(tok, model_type: str, side: str) -> None:
    model, _ = tiny_model(model_type, seed=1)
    scores = score_pairs(model, tok, PROMPTS, TARGETS, batch_size=3, padding_side=side)
    for s, prompt, target in zip(scores, PROMPTS, TARGETS, strict=True):
        lps, argmax = _plain_scores(model, tok, prompt, target)
        assert list(s.argmax_ids) == argmax
        assert list(s.logprobs) == pytest.approx(lps, abs=1e-4)


class BigramLM(torch.nn.Module):
    """logits[t] = table[input_ids[t]]: P(next | prefix) depends on the last token only."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = torch.nn.Parameter(table)

    def forward(self, input_ids, attention_mask=None, position_ids=None, **_):
        return SimpleNamespace(logits=self.table[input_ids])


def _tid(tok, text: str) -> int:
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == 1, (text, ids)
    return ids[0]


def test_probability_metrics_by_hand(tok) -> None:
    vocab = 512
    table = torch.zeros(vocab, vocab)
    is_, speak, city = _tid(tok, " is"), _tid(tok, " speak"), _tid(tok, " city")
    paris, rome, madrid = _tid(tok, " Paris"), _tid(tok, " Rome"), _tid(tok, " Italy")
    # After " is": Rome (3) > Paris (2) > Italy (1); after " city": Paris (4) > Rome (0).
    table[is_, rome], table[is_, paris], table[is_, madrid] = 3.0, 2.0, 1.0
    table[city, paris] = 4.0
    table[speak, rome] = 5.0
    model = BigramLM(table)
    req = EditRequest(
        prompt="The capital of France is",
        target_new="Rome",
        target_true="Paris",
        paraphrase_prompts=("France's capital city", "People in France speak"),
        neighborhood_prompts=(Neighbor("The capital of Spain is", "Italy"),),
    )
    res = evaluate(model, tok, [req], config=EvalConfig(generation=False, fluency=False))
    row = res.per_request[0]
    z_is = torch.logsumexp(table[is_], 0).item()
    # Hand values: single-token targets, so P(target | prompt) = softmax(table[last])[target].
    assert row["logprob_new"] == pytest.approx(3.0 - z_is, abs=1e-5)
    assert row["logprob_true"] == pytest.approx(2.0 - z_is, abs=1e-5)
    assert row["reliability"] == 1.0  # argmax after " is" is Rome
    assert row["true_accuracy"] == 0.0
    assert row["efficacy_score"] == 1.0
    # Paraphrase 1 ends in " city": Paris wins (0); paraphrase 2 ends in " speak": Rome wins (1).
    assert row["paraphrase_score"] == 0.5
    assert row["generalization"] == 0.5
    # Neighbor: P(Italy) = e^1 < P(Rome) = e^3 after " is": NS = 0; Italy is not the argmax.
    assert row["neighborhood_score"] == 0.0
    assert row["neighborhood_accuracy"] == 0.0
    assert res.aggregate["score"] == 0.0  # harmonic mean with a zero
    assert row["locality"] is None  # no baseline given


def test_locality_is_agreement_with_the_baseline(tok) -> None:
    model, _ = tiny_model("llama", seed=3)
    reqs = [
        EditRequest(
            prompt=p,
            target_new="Rome",
            neighborhood_prompts=tuple(Neighbor(q, t) for q, t in zip(PROMPTS, TARGETS, strict=True)),
        )
        for p in PROMPTS[:2]
    ]
    cfg = EvalConfig(generation=False, fluency=False, batch_size=5)
    before = evaluate(model, tok, reqs, config=cfg)
    same = evaluate(model, tok, reqs, config=cfg, baseline=before)
    assert all(r["locality"] == 1.0 for r in same.per_request)

    edited = copy.deepcopy(model)
    with torch.no_grad():
        edited.model.layers[-1].mlp.down_proj.weight.add_(torch.randn_like(edited.model.layers[-1].mlp.down_proj.weight) * 2)
    after = evaluate(edited, tok, reqs, config=cfg, baseline=before)
    for r in after.per_request:
        agree = []
        for q, t in zip(PROMPTS, TARGETS, strict=True):
            _, a0 = _plain_scores(model, tok, q, t)
            _, a1 = _plain_scores(edited, tok, q, t)
            agree.append(sum(x == y for x, y in zip(a0, a1, strict=True)) / len(a0))
        assert r["locality"] == pytest.approx(sum(agree) / len(agree))
    assert after.aggregate["locality"] < 1.0


def _greedy_no_cache(model, tok, prompt: str, n: int) -> list[int]:
    ids = tok(prompt)["input_ids"]
    out = []
    with torch.no_grad():
        for _ in range(n):
            nxt = int(model(input_ids=torch.tensor([ids + out])).logits[0, -1].argmax())
            if nxt == tok.eos_token_id:
                break
            out.append(nxt)
    return out


@pytest.mark.parametrize("model_type", ["llama", "gpt2"])
def test_greedy_generate_matches_a_plain_loop(tok, model_type: str) -> None:
    model, _ = tiny_model(model_type, seed=2)
    got = greedy_generate(model, tok, PROMPTS, max_new_tokens=8, batch_size=3)
    for prompt, ids in zip(PROMPTS, got, strict=True):
        assert ids == _greedy_no_cache(model, tok, prompt, 8)


def test_exact_match_protocol() -> None:
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert exact_match(" Paris. It is big.", "Paris")
    assert exact_match(" the Paris\nmore", "paris")
    assert not exact_match(" Paris, France.", "Paris")
    assert not exact_match(" Rome", "Paris")


def test_ngram_entropy_by_hand() -> None:
    assert ngram_entropy("a a a a") == 0.0
    h2 = -(2 / 3 * math.log2(2 / 3) + 1 / 3 * math.log2(1 / 3))  # bigrams ab, ba, ab
    h3 = 1.0  # trigrams aba, bab
    assert ngram_entropy("a b a b") == pytest.approx((2 / 3 * h2 + 4 / 3 * h3) / 2)
    assert ngram_entropy("") == 0.0


TEXTS = ["The capital of France is Paris.", "People in Spain speak Spanish. Water boils at 100 degrees.", "Hi"]


def test_perplexity_matches_transformers_loss(tok) -> None:
    model, _ = tiny_model("llama", seed=4)
    d = reference_drift(model, tok, TEXTS, batch_size=2)
    nll = n = 0.0
    for t in TEXTS:
        ids = torch.tensor([tok(t)["input_ids"]])
        if ids.shape[1] < 2:
            continue
        with torch.no_grad():
            loss = model(input_ids=ids, labels=ids).loss.item()  # mean over ids.shape[1]-1 tokens
        nll += loss * (ids.shape[1] - 1)
        n += ids.shape[1] - 1
    assert d.n_tokens == n
    assert d.perplexity == pytest.approx(math.exp(nll / n), rel=1e-5)
    assert d.kl_mean is None


def test_kl_drift_model_and_context_agree(tok) -> None:
    model, _ = tiny_model("llama", seed=5)
    other, _ = tiny_model("llama", seed=6)
    assert reference_drift(model, tok, TEXTS, base=model).kl_mean == pytest.approx(0.0, abs=1e-6)
    d_model = reference_drift(model, tok, TEXTS, base=other)
    manual = n = 0.0
    for t in TEXTS:
        ids = torch.tensor([tok(t)["input_ids"]])
        with torch.no_grad():
            p = torch.log_softmax(other(input_ids=ids).logits[0, :-1], -1)
            q = torch.log_softmax(model(input_ids=ids).logits[0, :-1], -1)
        manual += (p.exp() * (p - q)).sum().item()
        n += ids.shape[1] - 1
    assert d_model.kl_mean == pytest.approx(manual / n, rel=1e-4)

    other_state = {k: v.clone() for k, v in other.state_dict().items()}
    own_state = {k: v.clone() for k, v in model.state_dict().items()}

    @contextlib.contextmanager
    def as_other():
        model.load_state_dict(other_state)
        try:
            yield
        finally:
            model.load_state_dict(own_state)

    d_ctx = reference_drift(model, tok, TEXTS, base=as_other)
    assert d_ctx.kl_mean == pytest.approx(d_model.kl_mean, rel=1e-5)
    assert d_ctx.base_perplexity == pytest.approx(d_model.base_perplexity, rel=1e-5)


def test_batch_size_does_not_change_results(tok) -> None:
    model, _ = tiny_model("qwen2", seed=7)
    reqs = [
        EditRequest(
            prompt=p,
            target_new=t,
            target_true="Paris",
            paraphrase_prompts=(p + " indeed",),
            neighborhood_prompts=(Neighbor(PROMPTS[0], "Paris"),),
        )
        for p, t in zip(PROMPTS, TARGETS, strict=True)
    ]
    cfg1 = EvalConfig(batch_size=1, max_new_tokens=6, fluency_tokens=8)
    cfg7 = EvalConfig(batch_size=7, max_new_tokens=6, fluency_tokens=8, padding_side="left")
    one = evaluate(model, tok, reqs, config=cfg1, reference_texts=TEXTS)
    many = evaluate(model, tok, reqs, config=cfg7, reference_texts=TEXTS)
    for a, b in zip(one.per_request, many.per_request, strict=True):
        for key, value in a.items():
            if isinstance(value, float):
                assert b[key] == pytest.approx(value, abs=1e-4), key
            else:
                assert b[key] == value, key
    assert many.aggregate["perplexity"] == pytest.approx(one.aggregate["perplexity"], rel=1e-5)
    # Aggregates are macro means of the per-request values.
    assert one.aggregate["reliability"] == pytest.approx(sum(r["reliability"] for r in one.per_request) / 4)
