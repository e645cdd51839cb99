"""Backpack sense finetuning: sense-delta slots, sense selection, the four objectives, the editor, leagues."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from tiny_models import tiny_backpack, tiny_model

from editkit.backpack import (
    add_sense_slots,
    remove_sense_slots,
    sense_pair_of,
    sense_slots,
)
from editkit.editors import apply, make_editor, revert
from editkit.editors.sense import League, split_general
from editkit.errors import EditkitError, InputError
from editkit.localize import Location, Site, localize
from editkit.localize.senses import location_sense_pairs, sense_top_words
from editkit.objectives import combine, encode_examples, example_losses
from editkit.requests import CanonicalExample, EditRequest, as_examples, load_canonical_examples

pytestmark = pytest.mark.unit

K = 4  # senses of tiny_backpack
PREFIX = "The capital of France is"  # tokens: The, capital, of, France, is
GENERAL = [
    "France is a country. People in France speak French.",
    "Paris is the capital city of France.",
    "The Eiffel Tower is located in Paris, France.",
]


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _token(tok, word: str) -> int:
    (token,) = tok(word, add_special_tokens=False).input_ids
    return int(token)


def _logits(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0]  # [seq, vocab]


# ------------------------------------------------------------------ sense-delta slots


def test_slots_start_at_zero_and_change_nothing(tok) -> None:
    model = tiny_backpack(seed=0)
    public = set(model.state_dict())
    ids = torch.tensor([tok(PREFIX).input_ids])
    with torch.no_grad():
        logits, senses = model(ids).logits, model.senses(ids)
    names = add_sense_slots(model, [(319, 2), (275, 0)])
    assert names == ("backpack.sense_network.sense_delta.t319_s2", "backpack.sense_network.sense_delta.t275_s0")
    assert add_sense_slots(model, [(319, 2)]) == names[:1]  # idempotent
    assert set(model.state_dict()) == public | set(names)
    assert sense_slots(model) == {names[0]: (319, 2), names[1]: (275, 0)}
    with torch.no_grad():
        assert torch.equal(model(ids).logits, logits) and torch.equal(model.senses(ids), senses)
    assert [sense_pair_of(n) for n in names] == [(319, 2), (275, 0)] and sense_pair_of("lm_head.weight") is None
    assert remove_sense_slots(model) == names and set(model.state_dict()) == public
    with pytest.raises(EditkitError, match="senses are 0..3"):
        add_sense_slots(model, [(5, K)])


def test_a_slot_moves_its_sense_wherever_the_token_occurs_and_nothing_else() -> None:
    model = tiny_backpack(seed=0)
    (name,) = add_sense_slots(model, [(7, 1)])
    ids = torch.tensor([[3, 7, 9, 7, 2]])
    with torch.no_grad():
        before, alpha = model.senses(ids), model.sense_weights(ids)
        model.get_parameter(name).copy_(torch.arange(32.0))
        after = model.senses(ids)
    changed = (after != before).any(-1)[0]  # [seq, k]
    expected = torch.zeros(5, K, dtype=torch.bool)
    expected[[1, 3], 1] = True
    assert torch.equal(changed, expected)
    torch.testing.assert_close(after[0, 1, 1] - before[0, 1, 1], torch.arange(32.0))
    with torch.no_grad():
        assert torch.equal(model.sense_weights(ids), alpha)


def test_non_backpack_models_are_refused(tok) -> None:
    llama, _ = tiny_model("llama", seed=0)
    with pytest.raises(EditkitError, match="Backpack"):
        add_sense_slots(llama, [(1, 0)])
    with pytest.raises(EditkitError, match="Backpack"):
        localize("senses", llama, tok, [EditRequest(PREFIX, "Paris")])


# ------------------------------------------------------------------ sense selection


def _plant(model, plants: list[tuple[int, int, float]]) -> None:
    """Replace the model's sense weights: uniform causal attention, except that sense ``s``
    puts ``w`` of each row's weight on the latest earlier occurrence of token ``t``."""

    def fake(input_ids, attention_mask=None, position_ids=None):
        b, t = input_ids.shape
        mask = torch.ones(b, t) if attention_mask is None else attention_mask.float()
        allowed = torch.ones(t, t).tril() * mask[:, None, :]
        allowed = torch.maximum(allowed, torch.eye(t))  # [b, t, t]
        base = allowed / allowed.sum(-1, keepdim=True)
        alpha = base[:, None].repeat(1, K, 1, 1)  # [b, k, t, t]
        for token, sense, weight in plants:
            for row in range(b):
                hits = (input_ids[row] == token).nonzero().flatten().tolist()
                for i in range(t):
                    earlier = [j for j in hits if j <= i]
                    if earlier:
                        alpha[row, sense, i] = (1 - weight) * base[row, i]
                        alpha[row, sense, i, earlier[-1]] += weight
        return alpha

    model.backpack.sense_weights = fake


def test_selection_picks_the_planted_sense(tok) -> None:
    model = tiny_backpack(seed=0)
    france = _token(tok, " France")
    _plant(model, [(france, 2, 1.0)])
    requests = [EditRequest(PREFIX, "Paris")]
    loc = localize("senses", model, tok, requests, top_k=1, lam=0.0, general_texts=GENERAL)
    assert location_sense_pairs(loc) == [(france, 2)]
    assert loc.strategy == "senses" and loc.describe() == "sense (1 tensor)"
    (row,) = loc.scores["senses"]
    assert row["word"] == " France" and row["examples"] == [0]
    assert row["raw"] == pytest.approx(1.0)  # the one predicting row puts all of sense 2 on ' France'
    assert set(loc.params) <= set(dict(model.named_parameters()))  # the slot exists
    assert Location.from_dict(json.loads(json.dumps(loc.to_dict()))) == loc
    # top-k per example, union over examples
    loc3 = localize("senses", model, tok, requests * 2, top_k=3, lam=0.0, general_texts=GENERAL)
    assert len(loc3.sites) == 3 and location_sense_pairs(loc3)[0] == (france, 2)
    assert all(r["examples"] == [0, 1] for r in loc3.scores["senses"])


def test_lambda_demotes_a_sense_heavy_on_general_text(tok) -> None:
    model = tiny_backpack(seed=0)
    france, capital = _token(tok, " France"), _token(tok, " capital")
    assert all(" France" in t for t in GENERAL[:1]) and not any(" capital" in t for t in GENERAL[:1])
    _plant(model, [(france, 2, 1.0), (capital, 1, 0.8)])
    requests = [EditRequest(PREFIX, "Paris")]
    general = GENERAL[:1]  # mentions France twice, never " capital"
    plain = localize("senses", model, tok, requests, top_k=1, lam=0.0, general_texts=general)
    assert location_sense_pairs(plain) == [(france, 2)]
    weighed = localize("senses", model, tok, requests, top_k=1, lam=1.0, general_texts=general)
    assert location_sense_pairs(weighed) == [(capital, 1)]
    rows = {(r["token"], r["sense"]): r for r in weighed.scores["senses"]}
    assert rows[(capital, 1)]["background"] == 0.0
    assert plain.scores["senses"][0]["background"] > 1.0  # ' France' sense 2 is heavy on general text


def test_gradient_selection_matches_the_gradient_on_slots(tok) -> None:
    model = tiny_backpack(seed=1)
    example = CanonicalExample(PREFIX, suffix1=" Paris", suffix2=" the city of Rome", loss_type="good-v-bad")
    loc = localize("senses", model, tok, [example], top_k=3, lam=0.0, method="gradient", general_texts=GENERAL)
    # independent: slots for every sense of every context token, and autograd on them
    ref = copy.deepcopy(model)
    context = sorted(set(tok(PREFIX + " Paris").input_ids) | set(tok(PREFIX + " the city of Rome").input_ids))
    pairs = [(t, s) for t in context for s in range(K)]
    names = add_sense_slots(ref, pairs)
    params = [ref.get_parameter(n).requires_grad_(True) for n in names]
    (enc,) = encode_examples(tok, [example])
    loss = example_losses(lambda kw: ref(**kw).logits, [enc], pad_id=tok.pad_token_id, device="cpu").sum()
    norms = {p: float(g.norm()) for p, g in zip(pairs, torch.autograd.grad(loss, params), strict=True)}
    top = sorted((p for p in pairs if norms[p] > 0), key=lambda p: (-norms[p], p))[:3]
    assert location_sense_pairs(loc) == top
    for row in loc.scores["senses"]:
        assert row["raw"] == pytest.approx(norms[(row["token"], row["sense"])], rel=1e-4)


def test_sense_top_words_are_the_sense_vector_times_the_output_embedding(tok) -> None:
    model = tiny_backpack(seed=0)
    words = sense_top_words(model, tok, [(319, 2), (275, 0)], top_n=5)
    with torch.no_grad():
        vec = model.senses(torch.tensor([[319]]))[0, 0, 2]
        expected = (vec @ model.lm_head.weight.T).topk(5)
    assert words[0].word == " France" and words[0].sense == 2
    assert words[0].top_words == tuple(tok.decode([int(i)]) for i in expected.indices)
    assert words[0].top_logits == pytest.approx(expected.values.tolist())


# ------------------------------------------------------------------ objectives and examples


def _mean_nll(model, tok, prefix: str, suffix: str) -> torch.Tensor:
    """By hand: run prefix + suffix alone, average -log p of each suffix token."""
    p_ids = tok(prefix).input_ids
    ids = tok(prefix + suffix).input_ids
    assert ids[: len(p_ids)] == p_ids
    logp = torch.log_softmax(_logits(model, ids), -1)
    return torch.stack([-logp[i - 1, ids[i]] for i in range(len(p_ids), len(ids))]).mean()


@pytest.mark.parametrize("loss_type", ["good", "bad", "good-v-bad", "balance"])
def test_each_loss_type_against_a_hand_computation(tok, loss_type: str) -> None:
    model = tiny_backpack(seed=2)
    s1, s2 = " Paris", " the city of Rome"  # 1 and 4 tokens: padding and per-suffix means matter
    if loss_type in ("good", "bad"):
        ex = CanonicalExample(PREFIX, suffix=s2, loss_type=loss_type)
        m = _mean_nll(model, tok, PREFIX, s2)
        expected = m if loss_type == "good" else -m
    else:
        ex = CanonicalExample(PREFIX, suffix1=s1, suffix2=s2, loss_type=loss_type)
        m1, m2 = _mean_nll(model, tok, PREFIX, s1), _mean_nll(model, tok, PREFIX, s2)
        expected = m1 - m2 if loss_type == "good-v-bad" else (m1 - m2).abs()
    other = CanonicalExample("People in Spain speak", suffix=" French")  # batched with it
    enc = encode_examples(tok, [other, ex])
    with torch.no_grad():
        got = example_losses(lambda kw: model(**kw).logits, enc, pad_id=tok.pad_token_id, device="cpu")
    assert got.shape == (2,)
    torch.testing.assert_close(got[1], expected.float(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got[0], _mean_nll(model, tok, "People in Spain speak", " French"), rtol=1e-5, atol=1e-5)


def test_combine_and_example_validation() -> None:
    one, three = torch.tensor(1.0), torch.tensor(3.0)
    assert [float(combine(t, [one, three])) for t in ("good", "bad", "good-v-bad", "balance")] == [1, -1, -2, 2]
    with pytest.raises(InputError, match="suffix1"):
        CanonicalExample(PREFIX, suffix=" Paris", loss_type="balance")
    with pytest.raises(InputError, match="loss_type"):
        CanonicalExample(PREFIX, suffix=" Paris", loss_type="great")
    (ex,) = as_examples([EditRequest(PREFIX, "Paris", id="r1")])
    assert (ex.prefix, ex.suffix, ex.loss_type, ex.id) == (PREFIX, " Paris", "good", "r1")


def test_canonical_jsonl_loader(tmp_path: Path) -> None:
    good = tmp_path / "ok.jsonl"
    good.write_text(
        "\n".join(
            [
                json.dumps({"prefix": "The capital of Afghanistan is", "suffix": " Kabul"}),
                "",
                json.dumps({"prefix": "The nurse said", "suffix1": " he", "suffix2": " she", "loss_type": "balance"}),
                json.dumps({"prefix": "Lionel Messi plays", "suffix": " tennis", "loss_type": "bad", "id": 7}),
            ]
        )
    )
    examples = load_canonical_examples(good)
    assert [e.loss_type for e in examples] == ["good", "balance", "bad"]
    assert examples[1].suffixes == (" he", " she") and examples[2].id == "7"
    assert [e.loss_type for e in load_canonical_examples(good, loss_type="bad")] == ["bad", "balance", "bad"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"prefix": "x", "suffix1": " a", "suffix2": " b"}) + "\n"
        + json.dumps({"prefix": "x", "sufix": " a"}) + "\n{oops\n"
    )
    with pytest.raises(InputError) as err:
        load_canonical_examples(bad)
    msg = str(err.value)
    assert f"{bad}:1: loss_type: missing" in msg
    assert f"{bad}:2: sufix: unknown key (did you mean 'suffix'?)" in msg
    assert f"{bad}:3: not valid JSON" in msg


# ------------------------------------------------------------------ the editor


FACTS = [
    EditRequest(PREFIX, "Rome"),
    EditRequest("People in Spain speak", "French"),
]
FAST = ["epochs=4", "batch_size=1", "lr=0.05", "kl_weight=0.5", "seed=5"]


def test_the_editor_moves_only_the_selected_senses_and_reverts_exactly(tok) -> None:
    model = tiny_backpack(seed=3)
    loc = localize("senses", model, tok, FACTS, top_k=3, general_texts=GENERAL)
    before = _state(model)
    vocab = torch.arange(model.config.vocab_size)[None]  # every token once
    text = torch.tensor([tok("The capital of France is Rome. People in Spain speak French.").input_ids])
    with torch.no_grad():
        senses0, alpha0, logits0 = model.senses(vocab), model.sense_weights(text), model(text).logits
    result = make_editor("sense", overrides=FAST).compute(model, tok, FACTS, loc)
    assert result.deltas and set(result.deltas) <= set(loc.params)
    assert result.log[-1]["edit_loss"] < result.log[0]["edit_loss"]
    apply(model, result)
    with torch.no_grad():
        senses1, alpha1, logits1 = model.senses(vocab), model.sense_weights(text), model(text).logits
    moved = {sense_pair_of(n) for n in result.deltas}
    changed = {(t, s) for t, s in (senses1 != senses0).any(-1)[0].nonzero().tolist()}
    assert changed == moved  # every other (token, sense) is bit-identical
    assert torch.equal(alpha1, alpha0) and not torch.equal(logits1, logits0)
    revert(model, result)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with torch.no_grad():
        assert torch.equal(model(text).logits, logits0)
    again = make_editor("sense", overrides=FAST).compute(model, tok, FACTS, loc)
    assert set(again.deltas) == set(result.deltas)
    assert all(torch.equal(again.deltas[k], result.deltas[k]) for k in result.deltas)


def test_applied_deltas_reproduce_the_trained_loss(tok) -> None:
    model = tiny_backpack(seed=3)
    examples = [*as_examples(FACTS), CanonicalExample("The nurse said", suffix1=" he", suffix2=" she", loss_type="balance")]
    loc = localize("senses", model, tok, examples, top_k=3, general_texts=GENERAL)
    result = make_editor("sense", overrides=[*FAST, "league=none"]).compute(model, tok, examples, loc)
    assert result.info["loss_types"] == {"good": 2, "balance": 1}
    enc = encode_examples(tok, examples)
    apply(model, result)
    with torch.no_grad():
        edited = example_losses(lambda kw: model(**kw).logits, enc, pad_id=tok.pad_token_id, device="cpu").mean()
    revert(model, result)
    best = result.info["league"]["accepted_step"]
    (row,) = [r for r in result.log if r["step"] == best]
    assert float(edited) == pytest.approx(row["edit_loss"], abs=1e-6)


def test_league_bounds() -> None:
    league = League(eps=1e-3, initial=2.0)
    assert league.cutoff == pytest.approx(2.002)
    assert league.allows(2.0) and league.allows(2.0019) and not league.allows(2.0021)
    assert League(eps=None, initial=2.0).allows(100.0)
    assert split_general(list("abcdef"), 2, 3) == (["a", "b"], ["d", "e", "f"])
    with pytest.raises(EditkitError, match="too few"):
        split_general(list("abc"), 2, 2)


def _best_accepted(log: list[dict]) -> int:
    accepted = [r for r in log if r["accepted"]]
    return min(accepted, key=lambda r: (r["edit_loss"], r["step"]))["step"]


def _unlearn(tok, tmp_path: Path, lr: float, league: str):
    """Unlearn a continuation that the (one) held-out general passage contains: general loss rises."""
    general = tmp_path / "general.jsonl"
    held_out = "The capital of France is Paris. The capital of France is Paris."
    general.write_text("\n".join(json.dumps({"text": t}) for t in [*GENERAL[:2], held_out]))
    example = CanonicalExample(PREFIX, suffix=" Paris", loss_type="bad")
    model = tiny_backpack(seed=4)
    loc = localize("senses", model, tok, [example], top_k=4, general_texts=GENERAL[:2])
    overrides = ["epochs=3", "batch_size=1", f"lr={lr}", "kl_weight=0", f"general_file={general}",
                 "kl_passages=2", "league_passages=1", f"league={league}"]
    return model, example, make_editor("sense", overrides=overrides).compute(model, tok, [example], loc)


def test_the_league_rejects_steps_that_raise_general_loss(tok, tmp_path: Path) -> None:
    _, _, free = _unlearn(tok, tmp_path, 1.0, "none")
    _, _, strict = _unlearn(tok, tmp_path, 1.0, "1e-3")
    cutoff = strict.info["league"]["initial_general_loss"] * (1 + 1e-3)
    assert strict.info["league"]["cutoff"] == pytest.approx(cutoff)
    assert all(r["general_loss"] >= cutoff for r in free.log[1:])  # every edited step leaves the league
    assert all(not r["accepted"] for r in strict.log[1:]) and strict.info["league"]["rejected_checkpoints"] == 3
    assert strict.info["league"]["met"] is False and strict.info["league"]["accepted_step"] == 0
    assert strict.deltas == {}  # the unedited model is the best accepted checkpoint
    assert free.info["league"]["met"] is True and free.deltas
    assert free.info["league"]["accepted_step"] == _best_accepted(free.log) == 3


def test_the_league_keeps_the_best_accepted_checkpoint(tok, tmp_path: Path) -> None:
    # A smaller step: the first edited checkpoint stays inside the league, the later ones leave it.
    model, example, result = _unlearn(tok, tmp_path, 0.2, "1e-3")
    league = result.info["league"]
    assert [r["accepted"] for r in result.log] == [True, True, False, False]
    assert league["accepted_step"] == _best_accepted(result.log) == 1 and league["met"] is True
    assert all(r["accepted"] == (r["step"] == 0 or r["general_loss"] < league["cutoff"]) for r in result.log)
    # the returned deltas are that checkpoint's, not the last step's
    (enc,) = encode_examples(tok, [example])
    apply(model, result)
    with torch.no_grad():
        loss = example_losses(lambda kw: model(**kw).logits, [enc], pad_id=tok.pad_token_id, device="cpu")
    revert(model, result)
    assert float(loss) == pytest.approx(result.log[1]["edit_loss"], abs=1e-6)
    assert float(loss) > result.log[-1]["edit_loss"]


def test_the_editor_needs_a_sense_location(tok) -> None:
    model = tiny_backpack(seed=0)
    editor = make_editor("sense")
    with pytest.raises(EditkitError, match="--strategy senses"):
        editor.default_location(model)
    fake = Location((Site("backpack.sense_network.ln.weight"),), "fixed")
    with pytest.raises(EditkitError, match="not a sense location"):
        editor.compute(model, tok, FACTS, fake)
    missing = Location((Site("backpack.sense_network.sense_delta.t5_s1", None, "sense"),), "senses")
    with pytest.raises(EditkitError, match="no sense slot"):
        editor.compute(model, tok, FACTS, missing)

