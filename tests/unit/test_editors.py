"""The editor contract, run for every registered editor, and LocFT specifics."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from tiny_models import edit_requests, tiny_backpack, tiny_model

from editkit.arch import get_arch, get_module
from editkit.batching import encode_pairs
from editkit.editors import (
    EDITORS,
    applied,
    apply,
    editor_names,
    load_edit,
    make_editor,
    revert,
    reverted,
    save_edit,
)
from editkit.editors.nullspace import collect_inputs, null_space_projector
from editkit.editors.prefix import PrefixCache
from editkit.errors import EditkitError, InputError
from editkit.localize import fixed, localize

pytestmark = pytest.mark.unit

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "edit"
PRESERVE = [f"preserve_file={FIX / 'general.jsonl'}", "preserve_general=0", "preserve_per_template=0"]

REQUESTS = edit_requests()

FAST = ["epochs=3", "min_steps=3", "batch_size=2", "steps_per_edit=2"]


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _overrides(name: str, extra: Sequence[str] = ()) -> list[str]:
    known = EDITORS[name].config_cls.field_names()
    return [o for o in [*FAST, *PRESERVE, *extra] if o.split("=")[0] in known]


#: Editors that only apply to one kind of model, and the tiny models their contract runs on
#: (every other editor runs on the tiny llama and gpt2).
CONTRACT_MODELS: dict[str, tuple[str, ...]] = {"sense": ("backpack",)}
CONTRACT_CASES = [(e, m) for e in editor_names() for m in CONTRACT_MODELS.get(e, ("llama", "gpt2"))]


@pytest.mark.parametrize(("editor_name", "model_type"), CONTRACT_CASES)
def test_contract(editor_name: str, model_type: str, tok, tmp_path: Path, tiny_mend_editor) -> None:
    model = tiny_backpack(seed=0) if model_type == "backpack" else tiny_model(model_type, seed=0)[0]
    # Editors that need a trained editor (mend) get one for this model, and edit where it was trained.
    trained = [f"editor={tiny_mend_editor(model_type)}"] if "editor" in EDITORS[editor_name].config_cls.field_names() else []
    overrides = _overrides(editor_name, ["null_space=true", *trained]) + ["seed=3"]
    editor = make_editor(editor_name, overrides=overrides)
    if editor_name == "sense":  # sense vectors chosen from the requests (creates their zero slots)
        loc = localize("senses", model, tok, REQUESTS, top_k=3)
    else:
        loc = editor.default_location(model) if trained else fixed(model, layer=2, module="mlp_down")
    before = _state(model)
    result = editor.compute(model, tok, REQUESTS, loc)
    # compute leaves the model exactly as it found it
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())
    # deltas touch only the location's parameters, and are non-trivial
    assert set(result.deltas) <= set(loc.params) and result.deltas
    assert any(float(d.abs().max()) > 0 for d in result.deltas.values())
    # apply changes exactly those tensors; revert is bit for bit
    apply(model, result)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == set(result.deltas)
    revert(model, result)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # same seed -> same deltas
    again = make_editor(editor_name, overrides=overrides).compute(model, tok, REQUESTS, loc)
    assert all(torch.equal(result.deltas[k], again.deltas[k]) for k in result.deltas)
    # saved and loaded through safetensors
    path = save_edit(result, tmp_path / "delta.safetensors")
    loaded = load_edit(path)
    assert loaded.method == editor_name and loaded.location == loc
    assert all(torch.equal(loaded.deltas[k], result.deltas[k]) for k in result.deltas)


def test_apply_twice_and_revert_unapplied_are_errors(tok) -> None:
    model, _ = tiny_model("llama", seed=0)
    result = make_editor("locft-bf", overrides=_overrides("locft-bf")).compute(model, tok, REQUESTS[:1], fixed(model, 1))
    with applied(model, result):
        with pytest.raises(EditkitError, match="already applied"):
            apply(model, result)
        with reverted(model, result):
            pass
    with pytest.raises(EditkitError, match="not applied"):
        revert(model, result)


@pytest.mark.parametrize("model_type", ["llama", "gpt2", "gemma2", "gpt_neox", "qwen2"])
@pytest.mark.parametrize("layer", [0, 2])
def test_prefix_cache_matches_full_forward(tok, model_type: str, layer: int) -> None:
    model, _ = tiny_model(model_type, seed=1)
    enc = encode_pairs(tok, [r.prompt for r in REQUESTS], [r.target_new for r in REQUESTS], append_eos=True)
    cache = PrefixCache.build(model, enc, layer=layer, pad_id=tok.pad_token_id, batch_size=2)
    with cache.active(model), torch.no_grad():
        batch, logits = cache.forward(model, [2, 0, 1])
    with torch.no_grad():
        full = model(**batch.model_inputs()).logits
    real = batch.attention_mask.bool()
    assert torch.allclose(logits[real], full[real], atol=1e-5)
    # the blocks are restored afterwards
    blocks = get_module(model, get_arch(model).layers)
    assert all(type(b).__name__ != "_PassThrough" for b in blocks)


def test_cached_and_uncached_training_agree(tok) -> None:
    model, _ = tiny_model("llama", seed=2)
    loc = fixed(model, layer=2)
    common = _overrides("locft-bf") + ["null_space=false"]
    a = make_editor("locft-bf", overrides=common + ["cache_prefix=true"]).compute(model, tok, REQUESTS, loc)
    b = make_editor("locft-bf", overrides=common + ["cache_prefix=false"]).compute(model, tok, REQUESTS, loc)
    c = make_editor("locft-bf", overrides=common + ["cache_prefix=false", "target_logits_only=false"]).compute(
        model, tok, REQUESTS, loc
    )
    for k in a.deltas:
        assert torch.allclose(a.deltas[k], b.deltas[k], atol=1e-5)
        assert torch.allclose(a.deltas[k], c.deltas[k], atol=1e-5)
    assert a.info["prefix_cached_at_layer"] == 2 and b.info["prefix_cached_at_layer"] is None


def test_locft_learns_the_edit(tok) -> None:
    from editkit.evaluate import EvalConfig, evaluate

    model, _ = tiny_model("llama", seed=4)
    loc = fixed(model, layer=3)
    cfg = EvalConfig(generation=False, fluency=False)
    before = evaluate(model, tok, REQUESTS, config=cfg)
    result = make_editor("locft-bf", overrides=["lr=1e-2", "null_space=false", "epochs=60", "min_steps=60"]).compute(
        model, tok, REQUESTS, loc
    )
    with applied(model, result):
        after = evaluate(model, tok, REQUESTS, config=cfg, baseline=before)
    assert after.aggregate["reliability"] == 1.0 > before.aggregate["reliability"]
    assert result.log[-1]["mean_loss"] < result.log[0]["mean_loss"]


def test_null_space_update_leaves_preserved_keys_alone(tok) -> None:
    model, _ = tiny_model("llama", seed=5)
    loc = fixed(model, layer=2)
    texts = ["Water boils at 100 degrees.", "Lionel Messi plays football."]
    result = make_editor(
        "locft-bf", overrides=["preserve_general=0", "preserve_per_template=0", "null_threshold=1e-6", "lr=1e-2"]
        + [f"preserve_file={FIX / 'general.jsonl'}"]
    ).compute(model, tok, REQUESTS, loc)
    (name,) = result.deltas
    keys = collect_inputs(model, name.rsplit(".", 1)[0], tok, texts)  # [n, d_in], a subset of the preserved text
    out = keys @ result.deltas[name].T  # the update's effect on the preserved keys
    assert out.abs().max() < 1e-4 * max(1.0, float(result.deltas[name].abs().max()))
    assert float(result.deltas[name].abs().max()) > 0


def test_projector_properties() -> None:
    torch.manual_seed(0)
    keys = torch.randn(50, 4) @ torch.randn(4, 12)  # rank 4 in 12 dimensions
    ns = null_space_projector(keys, threshold=1e-6)
    p = ns.projector
    assert ns.dropped == 4 and ns.kept == 8
    assert torch.allclose(p, p.T, atol=1e-6) and torch.allclose(p @ p, p, atol=1e-5)
    assert (keys @ p).abs().max() < 1e-3


def test_config_errors() -> None:
    with pytest.raises(InputError, match="did you mean 'lr'"):
        make_editor("locft-bf", {"lrr": 1})
    with pytest.raises(InputError, match="expected true/false"):
        make_editor("locft-bf", overrides=["eos=maybe"])
    with pytest.raises(InputError, match="key=value"):
        make_editor("locft-bf", overrides=["eos"])
    with pytest.raises(EditkitError, match="unknown editor"):
        make_editor("rome")
    cfg = make_editor("locft-bf", overrides=["epochs=7", "preserve_file=none"]).config
    assert cfg.epochs == 7 and cfg.preserve_file is None


def test_few_requests_raise_the_epoch_count(tok) -> None:
    model, _ = tiny_model("llama", seed=0)
    result = make_editor("locft-bf", overrides=PRESERVE + ["epochs=2", "min_steps=6", "stop_loss=0", "skip_loss=0"]).compute(
        model, tok, REQUESTS, fixed(model, 1)
    )
    sched = result.info["schedule"]
    assert sched["epochs_planned"] == 6 and sched["raised_for_min_steps"] and sched["optimizer_steps"] == 6


def test_replay_session_retrains_on_the_cumulative_set(tok) -> None:
    from editkit.editors import ReplaySession

    model, _ = tiny_model("llama", seed=6)
    before = _state(model)
    session = ReplaySession(model, tok, make_editor("locft-bf", overrides=_overrides("locft-bf")), fixed(model, 2))
    first = session.add(REQUESTS[:1])
    second = session.add(REQUESTS[1:])
    assert first.info["n_requests"] == 1 and second.info["n_requests"] == 3
    assert [h["total"] for h in session.history] == [1, 3]
    # exactly one edit is applied: the model equals original + the latest deltas
    once = make_editor("locft-bf", overrides=_overrides("locft-bf"))
    direct = once.compute(_fresh(model, before), tok, REQUESTS, fixed(model, 2))
    for name, d in second.deltas.items():
        assert torch.allclose(d, direct.deltas[name], atol=1e-6)
    session.revert()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def _fresh(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> torch.nn.Module:
    import copy

    clone = copy.deepcopy(model)
    clone.load_state_dict(state)
    return clone


def test_augment_prefixes_trains_prefixed_copies(tok) -> None:
    from editkit.editors.augment import context_prefixes

    prefixes = context_prefixes(3, seed=0)
    assert len(prefixes) == 3 and len(set(prefixes)) == 3
    assert all(p.endswith(".") and "\n" not in p for p in prefixes)
    assert context_prefixes(3, seed=0) == prefixes and context_prefixes(0) == []
    model, _ = tiny_model("llama", seed=0)
    result = make_editor("locft-bf", overrides=_overrides("locft-bf", ["augment_prefixes=2"])).compute(
        model, tok, REQUESTS, fixed(model, layer=2, module="mlp_down")
    )
    assert result.info["n_requests"] == len(REQUESTS)
    assert result.info["n_sequences"] == 3 * len(REQUESTS)
    with pytest.raises(InputError, match="augment_prefixes"):
        make_editor("locft-bf", overrides=["augment_prefixes=-1"])


def test_preservation_pairs_never_use_edited_or_neighbor_subjects() -> None:
    from editkit.datafiles import shipped
    from editkit.editors.preservation import preservation_pairs, template_of
    from editkit.requests import load_requests

    requests = load_requests(shipped("counterfact.jsonl"))
    pairs = preservation_pairs(requests, per_template=10)
    edited = {r.subject for r in requests}
    neighbors = {n.prompt for r in requests for n in r.neighborhood_prompts}
    assert pairs and not {p for p, _ in pairs} & neighbors
    templates = {template_of(r.prompt, r.subject) for r in requests}
    for prompt, _ in pairs:
        for t in templates:
            head, _, tail = str(t).partition("{}")
            if prompt.startswith(head) and prompt.endswith(tail):
                assert prompt[len(head) : len(prompt) - len(tail)] not in edited
    # with all 362 requests the known-fact pool runs dry; facts the model does not know fill it
    rejected = {str(r["prompt"]) for r in map(__import__("json").loads, shipped("facts_rejected.jsonl").read_text().splitlines())}
    assert any(p in rejected for p, _ in pairs)


def test_kl_term_matches_a_plain_forward(tok) -> None:
    """The KL term equals KL(unedited || edited) computed from two full forwards of the preserved prompts."""
    from editkit.editors.locft import _Tuner

    model, _ = tiny_model("llama", seed=6)
    loc = fixed(model, layer=2)
    cfg = make_editor("locft-bf", overrides=[*PRESERVE, "preserve_per_template=3", "preserve_kl=1", "preserve_kl_batch=1000", "null_space=false"]).config
    tuner = _Tuner(model, tok, REQUESTS, loc, cfg)
    assert tuner.kl_seqs
    with tuner.session():
        assert float(tuner.kl()) == pytest.approx(0.0, abs=1e-6)  # no change yet
        for d in tuner.d.values():
            d.data.normal_(0, 1.0, generator=torch.Generator().manual_seed(0))
        got = float(tuner.kl())
    seqs = [tuner.encoded[i] for i in tuner.kl_seqs]

    def answer_logprobs() -> torch.Tensor:
        rows = []
        for e in seqs:
            logits = model(input_ids=torch.tensor([e.ids])).logits[0].float()
            n = len(e.prompt_ids)
            rows.append(torch.log_softmax(logits[n - 1 : len(e.ids) - 1], dim=-1))
        return torch.cat(rows)

    with torch.no_grad():
        ref = answer_logprobs()
        weights = {n: w for n, w in tuner.weights().items()}
        saved = {n: get_module(model, n.rsplit(".", 1)[0]).weight.detach().clone() for n in weights}
        for n, w in weights.items():
            get_module(model, n.rsplit(".", 1)[0]).weight.copy_(w)
        edited = answer_logprobs()
        for n, w in saved.items():
            get_module(model, n.rsplit(".", 1)[0]).weight.copy_(w)
    want = float((ref.exp() * (ref - edited)).sum(-1).mean())
    assert want > 1e-4
    assert got == pytest.approx(want, rel=1e-3)
