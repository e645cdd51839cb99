"""The league editors' baselines (full finetuning, LoRA) against independent computations."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from tiny_models import edit_requests, tiny_backpack, tiny_model
from typer.testing import CliRunner

from editkit.cli import app
from editkit.editors import apply, load_edit, make_editor, revert
from editkit.editors.league import lora_sites, whole_model
from editkit.errors import EditkitError
from editkit.localize import Location, Site, fixed, localize
from editkit.objectives import encode_examples, example_losses
from editkit.requests import as_examples

pytestmark = pytest.mark.unit

GENERAL = [
    "France is a country. People in France speak French.",
    "Paris is the capital city of France.",
    "The Eiffel Tower is located in Paris, France.",
    "Rome is the capital of Italy, a country in Europe.",
]


@pytest.fixture
def general(tmp_path: Path) -> str:
    path = tmp_path / "general.jsonl"
    path.write_text("\n".join(json.dumps({"text": t}) for t in GENERAL))
    return str(path)


def _options(general: str, **extra: object) -> dict[str, object]:
    """No KL term and no league: the loop is then plain Adam on the mean example loss."""
    base = {"general_file": general, "kl_passages": 2, "league_passages": 2, "kl_weight": 0.0, "league": None}
    return {**base, **extra}


def _example_loss(model, tok):
    encoded = encode_examples(tok, as_examples(edit_requests()))
    pad = int(tok.pad_token_id)
    return lambda forward: example_losses(forward, encoded, pad_id=pad, device="cpu").mean()


def test_full_finetuning_equals_a_plain_adam_loop(tok, general: str) -> None:
    """Four steps of the finetune editor = torch Adam on a copy of the model's own parameters (plain backward)."""
    import copy

    model, _ = tiny_model("gpt2", seed=0)  # tied embeddings: the location includes the shared wte
    loc = fixed(model, layer=1, module="mlp")
    lr = 1e-3
    result = make_editor("finetune", _options(general, lr=lr, epochs=4, batch_size=10)).compute(
        model, tok, edit_requests(), loc
    )
    assert result.info["league"]["accepted_step"] == 4
    twin = copy.deepcopy(model)
    params = dict(twin.named_parameters())
    for p in twin.parameters():
        p.requires_grad_(False)
    trained = [params[n].requires_grad_(True) for n in loc.params]
    start = [p.detach().clone() for p in trained]
    opt = torch.optim.Adam(trained, lr=lr)
    loss_fn = _example_loss(twin, tok)
    for _ in range(4):
        opt.zero_grad()
        loss_fn(lambda inputs: twin(**inputs).logits).backward()
        opt.step()
    for name, p0, p in zip(loc.params, start, trained, strict=True):
        torch.testing.assert_close(result.deltas[name], (p.detach() - p0), rtol=1e-4, atol=1e-7)
    assert all(p.grad is None for p in model.parameters())


def test_finetune_never_trains_sense_slots_and_lora_refuses_tied_or_row_sites(tok, general: str) -> None:
    model = tiny_backpack(seed=0)
    n_own = len(list(model.parameters()))
    localize("senses", model, tok, edit_requests(), top_k=3)  # adds zero sense-delta slots to the model
    assert len(list(model.parameters())) > n_own
    loc = make_editor("finetune").default_location(model)
    assert len(loc.params) == n_own and not any("sense_delta" in p for p in loc.params)
    gpt2, _ = tiny_model("gpt2", seed=0)
    with pytest.raises(EditkitError, match="tied"):
        make_editor("lora").compute(gpt2, tok, edit_requests(), lora_sites(gpt2, "lm_head"))
    rows = Location((Site("transformer.h.0.mlp.c_fc.weight", 0, "mlp_up", rows=(0, 1)),))
    with pytest.raises(EditkitError, match="rows"):
        make_editor("lora").compute(gpt2, tok, edit_requests(), rows)


@pytest.mark.parametrize("model_type", ["llama", "gpt2"])
def test_lora_trains_like_peft(tok, general: str, model_type: str) -> None:
    """Three steps of the lora editor give peft's merged update, from the same A (Linear and Conv1D)."""
    peft = pytest.importorskip("peft")
    model, _ = tiny_model(model_type, seed=0)
    targets = "down_proj" if model_type == "llama" else "c_fc"
    rank, alpha, lr = 4, 8.0, 5e-3
    opts = _options(general, lr=lr, epochs=3, batch_size=10, rank=rank, alpha=alpha, targets=targets, seed=5)
    editor = make_editor("lora", opts)
    loc = editor.default_location(model)
    result = editor.compute(model, tok, edit_requests(), loc)
    assert result.info["league"]["accepted_step"] == 3 and set(result.deltas) == set(loc.params)

    # The same A as the editor's (seeded), B zero, then plain Adam through peft's own forward.
    run = editor.make_run(model, tok, loc, int(tok.pad_token_id))
    a0 = {name: run.trainable[i].detach().clone() for i, name in enumerate(run.names)}
    cfg = peft.LoraConfig(r=rank, lora_alpha=alpha, target_modules=[targets], lora_dropout=0.0,
                          fan_in_fan_out=model_type == "gpt2")
    wrapped = peft.get_peft_model(tiny_model(model_type, seed=0)[0], cfg)
    wrapped.eval()
    lora_modules = {n.removeprefix("base_model.model."): m for n, m in wrapped.named_modules() if hasattr(m, "lora_A")}
    assert len(lora_modules) == len(a0)
    with torch.no_grad():
        for name, a in a0.items():
            lora_modules[name.removesuffix(".weight")].lora_A["default"].weight.copy_(a)
    opt = torch.optim.Adam([p for p in wrapped.parameters() if p.requires_grad], lr=lr)
    loss_fn = _example_loss(wrapped, tok)
    for _ in range(3):
        opt.zero_grad()
        loss_fn(lambda inputs: wrapped(**inputs).logits).backward()
        opt.step()
    for name in a0:
        module = lora_modules[name.removesuffix(".weight")]
        merged = module.get_delta_weight("default")  # peft's own merge, already in the weight's layout
        torch.testing.assert_close(result.deltas[name], merged.detach(), rtol=1e-4, atol=1e-7)


def test_a_league_no_checkpoint_meets_returns_no_change(tok, general: str) -> None:
    model, _ = tiny_model("gpt2", seed=0)
    opts = _options(general, lr=0.5, epochs=2, batch_size=10, league=1e-9)
    result = make_editor("finetune", opts).compute(model, tok, edit_requests(), fixed(model, 1, "mlp_down"))
    league = result.info["league"]
    assert not league["met"] and league["accepted_step"] == 0 and league["rejected_checkpoints"] == 2
    assert result.deltas == {}


def test_finetune_default_location_is_the_whole_model_and_edits_a_backpack(tok, general: str) -> None:
    model = tiny_backpack(seed=0)
    editor = make_editor("finetune", {**_options(general, lr=1e-2, epochs=2, batch_size=10)})
    loc = editor.default_location(model)
    assert loc == whole_model(model) and len(loc.params) == len(list(model.parameters()))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = editor.compute(model, tok, edit_requests(), loc)
    assert result.info["league"]["met"] and result.deltas
    apply(model, result)
    revert(model, result)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_lora_sites_by_kind_and_by_name(tok) -> None:
    llama, _ = tiny_model("llama", seed=0)
    mlp = lora_sites(llama, "mlp")
    assert {p.rsplit(".", 2)[-2] for p in mlp.params} == {"gate_proj", "up_proj", "down_proj"}
    assert all(p.endswith(".weight") for p in mlp.params)
    gpt2, _ = tiny_model("gpt2", seed=0)
    named = lora_sites(gpt2, "c_fc, c_proj")
    assert all(p.endswith((".mlp.c_fc.weight", ".mlp.c_proj.weight", ".attn.c_proj.weight")) for p in named.params)
    backpack = tiny_backpack(seed=0)
    with pytest.raises(EditkitError, match="targets=c_fc,c_proj"):
        lora_sites(backpack, "mlp")
    assert any("sense_network" in p for p in lora_sites(backpack, "c_fc").params)
    with pytest.raises(EditkitError, match="matches no nn.Linear"):
        lora_sites(gpt2, "nothing_here")
    with pytest.raises(EditkitError, match="no nn.Linear or Conv1D"):
        biases = Location(tuple(s for s in fixed(gpt2, 0, "block").sites if s.param.endswith(".bias")))
        make_editor("lora").make_run(gpt2, tok, biases, 0)


def test_config_errors() -> None:
    with pytest.raises(EditkitError, match="rank"):
        make_editor("lora", {"rank": 0})
    with pytest.raises(EditkitError, match="targets"):
        make_editor("lora", {"targets": " "})
    assert make_editor("lora", {"rank": 4, "alpha": 8.0, "rslora": True}).config.scaling == 4.0


def test_cli_edits_with_lora_and_finetune(tmp_path: Path, general: str) -> None:
    model_dir = tmp_path / "model"
    model, _ = tiny_model("llama", seed=0)
    model.save_pretrained(model_dir)
    from tiny_models import tiny_tokenizer

    tiny_tokenizer().save_pretrained(model_dir)
    facts = tmp_path / "facts.jsonl"
    facts.write_text(json.dumps({"prompt": "The capital of France is", "target_new": "Rome"}) + "\n")
    for method in ("lora", "finetune"):
        out = tmp_path / method
        res = CliRunner(env={"COLUMNS": "240"}).invoke(app, [
            "edit", "--model", str(model_dir), "--facts", str(facts), "--method", method, "--out", str(out),
            "--reference", "none", "--no-fluency", "--no-generation", "--save", "delta",
            "--set", "epochs=3", "--set", "lr=0.01", "--set", f"general_file={general}",
            "--set", "kl_passages=2", "--set", "league_passages=2", "--set", "league=none",
        ])
        assert res.exit_code == 0, res.output
        report = json.loads((out / "report.json").read_text())
        assert report["config"]["method"] == method and report["config"]["editor"]["league"] is None
        n_sites = len(report["config"]["location"]["sites"])
        assert n_sites == len((lora_sites(model, "mlp") if method == "lora" else whole_model(model)).params)
        assert report["metrics"]["after"]["reliability"] > report["metrics"]["before"]["reliability"]
        loaded = load_edit(out / "delta.safetensors")
        assert loaded.method == method and loaded.deltas


@pytest.mark.parametrize("model_type", ["backpack", "gpt2"])
def test_substitution_matches_an_in_place_edit_and_keeps_parameters(tok, model_type: str) -> None:
    """Aliased modules (Backpack word embeddings) and tied weights (GPT-2 lm_head) follow the substitute once."""
    from editkit.substitute import Substitution

    model = tiny_backpack(seed=0) if model_type == "backpack" else tiny_model("gpt2", seed=0)[0]
    name = next(n for n, _ in model.named_parameters())  # the word embedding, tied to the output
    w = model.get_parameter(name)
    delta = torch.randn(w.shape, generator=torch.Generator().manual_seed(0)) * 0.1
    ids = torch.tensor([tok("The capital of France is").input_ids])
    out = Substitution(model, [name])(model, {name: w.detach() + delta}, {"input_ids": ids}).logits
    assert all(isinstance(p, torch.nn.Parameter) for _, p in model.named_parameters(remove_duplicate=False))
    with torch.no_grad():
        plain = model(ids).logits
        w.add_(delta)
        expected = model(ids).logits
        w.sub_(delta)
    torch.testing.assert_close(out, expected)
    assert not torch.allclose(out, plain)


def test_suffix_logprobs_and_success_rate_by_hand(tok) -> None:
    from editkit.evaluate.canonical import success_rate, successes, suffix_logprobs
    from editkit.requests import CanonicalExample

    model, _ = tiny_model("llama", seed=0)
    texts = [CanonicalExample("The capital of France is", suffix=" Paris"),
             CanonicalExample("Rome is in", suffix=" Italy, Europe", loss_type="bad")]
    lp = suffix_logprobs(lambda kw: model(**kw).logits, tok, texts, batch_size=1)
    for text, got in zip(texts, lp, strict=True):
        prompt = tok(text.prefix).input_ids
        full = tok(text.prefix + text.suffix).input_ids
        assert full[: len(prompt)] == prompt
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([full])).logits[0].float(), -1)
        expected = sum(float(logp[i - 1, full[i]]) for i in range(len(prompt), len(full)))
        assert abs(float(got) - expected) < 1e-4
    p = lp.exp()
    threshold = float(p[0]) * 0.5 + float(p[1]) * 0.5 if p[0] != p[1] else 0.5
    expected_ok = [bool(p[0] > threshold), bool(p[1] < threshold)]
    assert successes(lp, texts, threshold).tolist() == expected_ok
    assert success_rate(lp, texts, threshold) == sum(expected_ok) / 2
    with pytest.raises(EditkitError, match="threshold"):
        success_rate(lp, texts, 1.5)


def test_side_by_side_example_runs_end_to_end_on_tiny_models(tok, tmp_path: Path, monkeypatch) -> None:
    """examples/sense_side_by_side.py: task selection, the three Backpack methods, the default-model rows."""
    import importlib.util

    from tiny_models import tiny_tokenizer

    script = Path(__file__).resolve().parents[2] / "examples" / "sense_side_by_side.py"
    spec = importlib.util.spec_from_file_location("sense_side_by_side", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    monkeypatch.setattr(sys, "path", list(sys.path))  # the script adds data/scripts to it
    spec.loader.exec_module(module)
    tokenizer = tiny_tokenizer()
    tiny_backpack(seed=3).save_pretrained(tmp_path / "bp")
    tokenizer.save_pretrained(tmp_path / "bp")
    tiny_model("llama", seed=1)[0].save_pretrained(tmp_path / "tg")
    tokenizer.save_pretrained(tmp_path / "tg")
    out = tmp_path / "out"
    assert module.main(["--backpack", str(tmp_path / "bp"), "--target", str(tmp_path / "tg"), "--out", str(out),
                        "--per-relation", "1", "--epochs", "1", "--threshold", "0.2"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [r["method"] for r in summary["backpack_test"]] == ["sense", "finetune", "lora"]
    assert len(summary["backpack_val"]) == sum(len(g) for g in module.LR_GRID.values())
    assert [r["method"] for r in summary["target_test"]] == ["sense edit via ensemble", "LocFT-BF (default options)"]
    facts = [json.loads(line) for line in (out / "facts.jsonl").read_text().splitlines()]
    assert {f["split"] for f in facts} == {"val", "test"} and len(facts) == summary["task"]["val"] + summary["task"]["test"]
    assert all(f["eval_prompts"] and f["neighbors"] for f in facts)
    assert "| sense |" in (out / "summary.md").read_text()
