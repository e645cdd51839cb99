"""Ensemble transfer of a Backpack edit to another causal LM (Hewitt et al., 2024)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_models import tiny_backpack, tiny_model, tiny_tokenizer
from typer.testing import CliRunner

from editkit.backpack import add_sense_slots
from editkit.cli import app
from editkit.editors import EditResult, apply, make_editor, revert
from editkit.editors.league.general import GeneralText
from editkit.editors.sense.transfer import (
    EnsembleLM,
    beta_schedule,
    check_shared_tokenizer,
    general_losses,
    select_beta,
    transfer_edit,
)
from editkit.errors import EditkitError
from editkit.evaluate import EvalConfig, evaluate, greedy_generate
from editkit.localize import Location, Site, localize
from editkit.requests import EditRequest

pytestmark = pytest.mark.unit

PROMPTS = ["The capital of France is", "People in Spain speak"]
GENERAL = [
    "France is a country. People in France speak French.",
    "Paris is the capital city of France.",
    "The Eiffel Tower is located in Paris, France.",
    "Berlin is a large city in Germany.",
]


def _token(tok, word: str) -> int:
    (token,) = tok(word, add_special_tokens=False).input_ids
    return int(token)


def _edit(backpack, tok, scale: float = 3.0, seed: int = 0) -> EditResult:
    """Random deltas on two senses of words of the prompts (so they change the Backpack's predictions)."""
    pairs = [(_token(tok, " France"), 1), (_token(tok, " Spain"), 2), (_token(tok, " capital"), 0)]
    names = add_sense_slots(backpack, pairs)
    gen = torch.Generator().manual_seed(seed)
    deltas = {n: scale * torch.randn(backpack.config.n_embd, generator=gen) for n in names}
    return EditResult("sense", deltas, Location(tuple(Site(n, None, "sense") for n in names), "senses"), {})


def _batch(tok, prompts=PROMPTS, side: str = "right") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    encoded = [tok(p).input_ids for p in prompts]
    width = max(map(len, encoded))
    ids = torch.full((len(encoded), width), tok.pad_token_id)
    mask = torch.zeros_like(ids)
    for row, seq in enumerate(encoded):
        cols = slice(0, len(seq)) if side == "right" else slice(width - len(seq), width)
        ids[row, cols] = torch.tensor(seq)
        mask[row, cols] = 1
    return ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture()
def models(tok):
    backpack = tiny_backpack(seed=0)
    target, _ = tiny_model("llama", seed=1)
    return target, backpack, _edit(backpack, tok)


@torch.no_grad()
def _target_logits(target, ids, mask, pos) -> torch.Tensor:
    return target(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False).logits


# ------------------------------------------------------------------ the ensemble's logits


def test_beta_zero_gives_exactly_the_targets_logits(tok, models) -> None:
    target, backpack, edit = models
    ids, mask, pos = _batch(tok)
    with torch.no_grad():
        out = EnsembleLM(target, backpack, edit, beta=0.0, tokenizer=tok)(ids, attention_mask=mask)
    assert torch.equal(out.logits, _target_logits(target, ids, mask, pos))


@pytest.mark.parametrize("empty", ["no deltas", "zero deltas"])
def test_an_edit_that_changes_nothing_gives_the_targets_logits(tok, models, empty: str) -> None:
    target, backpack, edit = models
    if empty == "no deltas":
        edit = EditResult("sense", {}, edit.location, {})
    else:
        edit = EditResult("sense", {n: torch.zeros_like(d) for n, d in edit.deltas.items()}, edit.location, {})
    ids, mask, pos = _batch(tok)
    with torch.no_grad():
        out = EnsembleLM(target, backpack, edit, beta=1.0)(ids, attention_mask=mask)
    assert torch.equal(out.logits, _target_logits(target, ids, mask, pos))


def test_logits_are_the_target_plus_beta_times_the_backpack_log_ratio(tok, models) -> None:
    target, backpack, edit = models
    ids, mask, pos = _batch(tok)
    beta = 0.6
    with torch.no_grad():
        out = EnsembleLM(target, backpack, edit, beta=beta)(ids, attention_mask=mask, labels=ids)
        original = torch.log_softmax(backpack(ids, attention_mask=mask, position_ids=pos).logits, -1)
        apply(backpack, edit)
        edited = torch.log_softmax(backpack(ids, attention_mask=mask, position_ids=pos).logits, -1)
        revert(backpack, edit)
    expected = _target_logits(target, ids, mask, pos) + beta * (edited - original)
    torch.testing.assert_close(out.logits, expected, rtol=0, atol=1e-6)
    assert (edited - original).abs().max() > 0.1  # the edit does move the Backpack
    loss = torch.nn.functional.cross_entropy(expected[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
    torch.testing.assert_close(out.loss, loss)


def test_left_padding_gives_the_same_logits_as_each_row_alone(tok, models) -> None:
    target, backpack, edit = models
    ens = EnsembleLM(target, backpack, edit, beta=1.0)
    ids, mask, _ = _batch(tok, side="left")
    with torch.no_grad():
        batched = ens(ids, attention_mask=mask).logits
        for row, prompt in enumerate(PROMPTS):
            alone = ens(torch.tensor([tok(prompt).input_ids])).logits[0]
            torch.testing.assert_close(batched[row, mask[row].bool()], alone, rtol=1e-5, atol=1e-5)


def test_padding_rows_of_a_larger_vocabulary_keep_the_targets_logits(tok) -> None:
    backpack = tiny_backpack(seed=0)
    edit = _edit(backpack, tok)
    target, _ = tiny_model("gpt2", seed=2, vocab_size=520)  # 8 padding rows past the Backpack's 512
    ids, mask, pos = _batch(tok)
    with torch.no_grad():
        plain = _target_logits(target, ids, mask, pos)
        logits = EnsembleLM(target, backpack, edit, beta=1.0, tokenizer=tok)(ids, attention_mask=mask).logits
    assert logits.shape == plain.shape == (2, ids.shape[1], 520)
    assert torch.equal(logits[..., 512:], plain[..., 512:])
    assert not torch.equal(logits[..., :512], plain[..., :512])


def test_the_backpack_is_left_bit_for_bit_as_it_was(tok, models) -> None:
    target, backpack, edit = models
    ids, mask, _ = _batch(tok)
    before = _state(backpack)
    ens = EnsembleLM(target, backpack, edit, beta=1.0)
    with torch.no_grad():
        logits = ens(ids, attention_mask=mask).logits
    ens.generate(ids, attention_mask=mask, max_new_tokens=3, do_sample=False)
    select_beta(ens, tok, GENERAL, eps=1e-3)
    assert set(backpack.state_dict()) == set(before)
    assert all(torch.equal(before[k], v) for k, v in backpack.state_dict().items())
    # An applied edit is found and left applied; the ensemble is the same either way.
    apply(backpack, edit)
    applied = _state(backpack)
    with torch.no_grad():
        again = EnsembleLM(target, backpack, edit, beta=1.0)(ids, attention_mask=mask).logits
    assert torch.equal(again, logits)
    assert all(torch.equal(applied[k], v) for k, v in backpack.state_dict().items())
    revert(backpack, edit)
    with torch.no_grad():  # and later apply/revert calls do not change an existing ensemble
        assert torch.equal(ens(ids, attention_mask=mask).logits, logits)


def test_a_fresh_backpack_gets_the_slots_the_edit_needs(tok, models) -> None:
    target, backpack, edit = models
    ids, mask, _ = _batch(tok)
    with torch.no_grad():
        expected = EnsembleLM(target, backpack, edit)(ids, attention_mask=mask).logits
        fresh = tiny_backpack(seed=0)
        got = EnsembleLM(target, fresh, edit)(ids, attention_mask=mask).logits
    assert torch.equal(got, expected)
    with pytest.raises(EditkitError, match="does not have"):
        EnsembleLM(target, fresh, EditResult("sense", {"nope.weight": torch.zeros(3)}, edit.location, {}))
    with pytest.raises(EditkitError, match="beta"):
        EnsembleLM(target, fresh, edit, beta=-0.5)


# ------------------------------------------------------------------ generation


@pytest.mark.parametrize("use_cache", [True, False])
def test_generate_is_greedy_on_the_ensembles_logits(tok, models, use_cache: bool) -> None:
    target, backpack, edit = models
    ens = EnsembleLM(target, backpack, edit, beta=1.0)
    ids, mask, _ = _batch(tok, side="left")
    out = ens.generate(ids, attention_mask=mask, max_new_tokens=5, do_sample=False, eos_token_id=None,
                       use_cache=use_cache)
    assert out.shape == (2, ids.shape[1] + 5) and torch.equal(out[:, : ids.shape[1]], ids)
    for row, prompt in enumerate(PROMPTS):
        seq = tok(prompt).input_ids
        for _ in range(5):
            with torch.no_grad():
                seq.append(int(ens(torch.tensor([seq])).logits[0, -1].argmax()))
        assert out[row, ids.shape[1] :].tolist() == seq[-5:]


def test_generate_stops_and_pads_like_transformers(tok, models) -> None:
    target, backpack, edit = models
    ens = EnsembleLM(target, backpack, edit, beta=1.0)
    ids, mask, _ = _batch(tok, side="left")
    free = ens.generate(ids, attention_mask=mask, max_new_tokens=4, do_sample=False, eos_token_id=None)
    first = int(free[0, ids.shape[1]])  # row 0's first new token, used as its "EOS"
    out = ens.generate(ids, attention_mask=mask, max_new_tokens=4, do_sample=False, eos_token_id=first, pad_token_id=1)
    assert out[0, ids.shape[1]] == first and (out[0, ids.shape[1] + 1 :] == 1).all()
    sampled = ens.generate(ids, attention_mask=mask, max_new_tokens=3, do_sample=True, top_k=5, top_p=0.9,
                           temperature=0.7, generator=torch.Generator().manual_seed(0))
    assert sampled.shape == (2, ids.shape[1] + 3)
    with pytest.raises(ValueError, match="num_beams"):
        ens.generate(ids, num_beams=2)
    with pytest.raises(TypeError, match="repetition_penalty"):
        ens.generate(ids, repetition_penalty=1.2)
    # editkit's own generation helper (left padding, stop strings) runs on it too
    gens = greedy_generate(ens, tok, PROMPTS, max_new_tokens=4, stop_strings=(".",))
    assert len(gens) == 2 and all(len(g) <= 4 for g in gens)


# ------------------------------------------------------------------ tokenizers and vocabularies


def test_mismatched_tokenizers_and_vocabularies_are_refused(tok, models) -> None:
    target, backpack, edit = models
    check_shared_tokenizer(tok, tiny_tokenizer())  # the same tokenizer: fine
    other = tiny_tokenizer()
    other.add_tokens(["<extra>"])
    with pytest.raises(EditkitError, match="one shared tokenizer.*'<extra>'"):
        check_shared_tokenizer(tok, other)
    small, _ = tiny_model("llama", seed=1, vocab_size=300)
    with pytest.raises(EditkitError, match=f"has {len(tok)} tokens but the target predicts only 300"):
        EnsembleLM(small, backpack, edit, tokenizer=tok)


# ------------------------------------------------------------------ beta


def test_the_beta_schedule_and_the_league_choice(tok, models) -> None:
    target, backpack, edit = models
    assert beta_schedule(0.5, 0.25) == [0.5, 0.25]
    ens = EnsembleLM(target, backpack, edit, beta=1.0)
    betas = beta_schedule()
    initial, *losses = general_losses(ens, tok, GENERAL, [0.0, *betas])
    # each loss is the ensemble's own mean NLL at that beta
    general = GeneralText(tok, GENERAL, max_length=128, batch_size=8, pad_id=tok.pad_token_id, device="cpu")
    for beta, loss in [(0.0, initial), (betas[3], losses[3])]:
        ens.beta = beta
        assert loss == pytest.approx(general.nll(lambda kw: ens(**kw).logits), rel=1e-6)
    assert initial == pytest.approx(general.nll(lambda kw: target(**kw).logits), rel=1e-6)
    assert select_beta(ens, tok, GENERAL, eps=None).beta == 1.0  # no league: the first beta
    eps = 0.5 * (min(losses) / initial - 1) + 0.5 * (max(losses) / initial - 1)
    chosen = select_beta(ens, tok, GENERAL, eps=eps)
    expected = next((b for b, loss in zip(betas, losses, strict=True) if loss < initial * (1 + eps)), 0.0)
    assert chosen.beta == expected and 0 < expected < 1 and chosen.initial_loss == pytest.approx(initial)
    assert [t[0] for t in chosen.trials] == betas
    assert all(ok == (loss < chosen.cutoff) for _, loss, ok in chosen.trials)


def test_transfer_edit_uses_the_edits_league(tok) -> None:
    backpack = tiny_backpack(seed=3)
    target, _ = tiny_model("llama", seed=1)
    facts = [EditRequest("The capital of France is", "Rome")]
    loc = localize("senses", backpack, tok, facts, top_k=3, general_texts=GENERAL)
    overrides = ["epochs=2", "batch_size=1", "lr=0.05", "league=none", "kl_passages=2", "league_passages=3"]
    result = make_editor("sense", overrides=overrides).compute(backpack, tok, facts, loc)
    ens, chosen = transfer_edit(target, backpack, result, tok)
    assert chosen.eps is None and chosen.beta == 1.0 == ens.beta and not chosen.fixed
    ens, fixed = transfer_edit(target, backpack, result, tok, beta=0.3, general_texts=GENERAL)
    assert fixed.fixed and fixed.beta == 0.3 == ens.beta and len(fixed.trials) == 1


# ------------------------------------------------------------------ evaluation and the command line


def test_evaluate_runs_on_the_ensemble(tok, models) -> None:
    target, backpack, edit = models
    requests = [
        EditRequest(
            "The capital of France is", "Rome", target_true="Paris", paraphrase_prompts=("France's capital is",),
            neighborhood_prompts=[{"prompt": "The capital of Spain is", "target": "Madrid"}],
        )
    ]
    cfg = EvalConfig(max_new_tokens=4, fluency_tokens=6)
    plain = evaluate(target, tok, requests, config=cfg, reference_texts=GENERAL)
    same = evaluate(EnsembleLM(target, backpack, edit, beta=0.0), tok, requests, config=cfg, reference_texts=GENERAL)
    assert same.aggregate == plain.aggregate
    ens = EnsembleLM(target, backpack, edit, beta=1.0)
    after = evaluate(ens, tok, requests, config=cfg, baseline=plain, reference_texts=GENERAL, base=target)
    assert after.aggregate["locality"] is not None and after.aggregate["kl_drift"] > 0
    assert after.per_request[0]["logprob_new"] != plain.per_request[0]["logprob_new"]


def _run(*args: str):
    return CliRunner(env={"COLUMNS": "240"}).invoke(app, list(args))


def test_transfer_to_needs_the_sense_method(tmp_path: Path) -> None:
    facts = tmp_path / "facts.jsonl"
    facts.write_text(json.dumps({"prompt": "The capital of France is", "target_new": "Rome"}) + "\n")
    res = _run("edit", "--facts", str(facts), "--out", str(tmp_path / "o"), "--transfer-to", "x")
    assert res.exit_code == 2 and "--method sense" in res.output
    res = _run("edit", "--facts", str(facts), "--out", str(tmp_path / "o"), "--transfer-beta", "0.5")
    assert res.exit_code == 2 and "--transfer-to" in res.output
    res = _run("edit", "--facts", str(facts), "--out", str(tmp_path / "o"), "--method", "sense",
               "--transfer-to", "x", "--transfer-beta", "-1")
    assert res.exit_code == 2 and "--transfer-beta" in res.output


def _saved_pair(tok, tmp_path: Path) -> tuple[Path, Path, Path]:
    """A tiny Backpack and a tiny llama saved with the same tokenizer, and a general-text file."""
    backpack_dir, target_dir = tmp_path / "backpack", tmp_path / "target"
    tiny_backpack(seed=3).save_pretrained(backpack_dir)
    tok.save_pretrained(backpack_dir)
    tiny_model("llama", seed=1)[0].save_pretrained(target_dir)
    tok.save_pretrained(target_dir)
    general = tmp_path / "general.jsonl"
    general.write_text("\n".join(json.dumps({"text": t}) for t in GENERAL))
    return backpack_dir, target_dir, general


def test_edit_with_transfer_to_reports_the_target_plain_and_with_the_edit(tok, tmp_path: Path) -> None:
    backpack_dir, target_dir, general = _saved_pair(tok, tmp_path)
    facts = tmp_path / "facts.jsonl"
    fact = {"prompt": "The capital of France is", "target_new": "Rome", "target_true": "Paris",
            "neighborhood_prompts": [{"prompt": "The capital of Spain is", "target": "Madrid"}]}
    facts.write_text(json.dumps(fact) + "\n")
    out = tmp_path / "edit"
    res = _run(
        "edit", "--model", str(backpack_dir), "--method", "sense", "--strategy", "senses", "--facts", str(facts),
        "--out", str(out), "--reference", "none", "--no-fluency", "--no-generation", "--save", "delta",
        "--set", "epochs=2", "--set", "lr=0.05", "--set", "batch_size=1", "--set", f"general_file={general}",
        "--set", "kl_passages=2", "--set", "league_passages=2", "--transfer-to", str(target_dir),
    )
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    tables = {t["title"]: t for t in report["tables"]}
    transfer = tables[f"Ensemble transfer to {target_dir}"]
    rows = {r[0]: r for r in transfer["rows"]}
    assert rows["reliability"][1] is not None and rows["locality"][2] is not None
    betas = tables["Transfer beta"]["rows"]
    assert [r[0] for r in betas] == [*beta_schedule(), 0.0]
    assert sum(r[3] for r in betas) == 1
    assert report["config"]["transfer"]["beta"] == next(r[0] for r in betas if r[3])
    assert [m["role"] for m in report["provenance"]["models"]][-1] == "transfer target"
    assert "Ensemble transfer" in res.output


@pytest.mark.parametrize(("device_map", "expected"), [("sequential", "sequential"), (None, None)])
def test_transfer_target_is_loaded_with_the_edits_dtype_and_map_strategy(
    tok, tmp_path: Path, monkeypatch, device_map, expected
) -> None:
    """--dtype goes to M; a --device-map strategy too (a module map names the Backpack's modules, so it does not)."""
    import editkit.models as models

    calls: list[dict] = []
    real = models.load_model

    def recording(spec, **kwargs):
        calls.append({"spec": str(spec), **kwargs})
        kwargs.pop("device_map", None)  # load on the CPU as usual; only what was asked is checked
        return real(spec, **kwargs)

    monkeypatch.setattr(models, "load_model", recording)
    backpack_dir, target_dir, general = _saved_pair(tok, tmp_path)
    facts = tmp_path / "facts.jsonl"
    facts.write_text(json.dumps({"prompt": "The capital of France is", "target_new": "Rome"}) + "\n")
    extra = ["--device-map", device_map] if device_map else []
    res = _run(
        "edit", "--model", str(backpack_dir), "--method", "sense", "--strategy", "senses", "--facts", str(facts),
        "--out", str(tmp_path / "edit"), "--reference", "none", "--no-fluency", "--no-generation", "--save", "delta",
        "--set", "epochs=1", "--set", f"general_file={general}", "--set", "kl_passages=2",
        "--set", "league_passages=2", "--transfer-to", str(target_dir), "--dtype", "bfloat16", *extra,
    )
    assert res.exit_code == 0, res.output
    target_call = next(c for c in calls if c["spec"] == str(target_dir))
    assert target_call["dtype"] == "bfloat16" and target_call.get("device_map") == expected
