"""MEND: gradient capture, editor networks, training, the ``mend`` editor and its CLI.

Each property is checked against something independent: captured factors
against autograd's weight gradients, running statistics against
``torch.mean``/``torch.var``, an untrained editor against a hand-computed
gradient step, factored edits against materialized weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_mend import QUICK, mend_requests
from tiny_models import tiny_model
from typer.testing import CliRunner

from editkit.arch import weight_is_transposed
from editkit.batching import collate, encode_pairs
from editkit.cli import app
from editkit.editors import EditResult, applied, apply, make_editor, revert
from editkit.editors.mend import (
    GradientNet,
    MendNet,
    MendTrainConfig,
    RunningNorm,
    build_spec,
    capture_factors,
    load_editor,
    mend_location,
    read_editor_config,
    save_editor,
    train_editor,
)
from editkit.editors.mend.lowrank import FactoredEdit, factored_edits
from editkit.errors import EditkitError, InputError
from editkit.localize import fixed
from editkit.report import weights_sha256
from editkit.requests import save_requests

pytestmark = pytest.mark.unit

REQUESTS = mend_requests()


def _batch(tok, requests=REQUESTS[:3]):
    # Different lengths (and one long target), so the batch is padded.
    prompts = [r.prompt for r in requests] + ["Water boils at"]
    targets = [r.target_new for r in requests] + ["100 degrees and more"]
    return collate(encode_pairs(tok, prompts, targets), pad_id=tok.pad_token_id)


def _autograd_grads(model, batch, params):
    """Weight gradients of the edit loss (sum of per-request mean target NLL), by plain autograd."""
    model.zero_grad(set_to_none=True)
    batch.mean_target_nll(model(**batch.model_inputs()).logits).sum().backward()
    named = dict(model.named_parameters())
    grads = {p: named[p].grad.clone() for p in params}
    model.zero_grad(set_to_none=True)
    return grads


@pytest.mark.parametrize("model_type", ["llama", "gpt2"])
def test_captured_factors_give_autograds_weight_gradient(model_type: str, tok) -> None:
    model, _ = tiny_model(model_type, seed=0)
    loc = mend_location(model, layers=(1, 2), modules=("mlp_up", "mlp_down", "attn_out"))
    batch = _batch(tok)
    assert (batch.attention_mask == 0).any()  # padded
    flags = [p.requires_grad for p in model.parameters()]
    factors = capture_factors(model, batch, loc)  # through the localization module's sites
    # the model is as it was: no gradients, same flags
    assert all(p.grad is None for p in model.parameters())
    assert [p.requires_grad for p in model.parameters()] == flags
    grads = _autograd_grads(model, batch, loc.params)
    for param in loc.params:
        f = factors[param.removesuffix(".weight")]
        assert f.u.shape[0] == f.delta.shape[0] == int(batch.attention_mask.sum())  # padding rows dropped
        mine = f.gradient()  # sum_t delta_t u_t^T, [out, in]
        if weight_is_transposed(model, param):  # GPT-2 Conv1D stores [in, out]
            mine = mine.T
        assert mine.shape == grads[param].shape
        assert torch.allclose(mine, grads[param], rtol=1e-4, atol=1e-6), param


def _reference_factors(model, batch, paths):
    """u and delta by brute force: a plain full forward and backward (every parameter tracking gradients)."""
    seen = {}

    def keep(path):
        def hook(module, args, output):
            output.retain_grad()
            seen[path] = (args[0].detach(), output)

        return hook

    handles = [model.get_submodule(p).register_forward_hook(keep(p)) for p in paths]
    try:
        with torch.enable_grad():
            batch.mean_target_nll(model(**batch.model_inputs()).logits).sum().backward()
    finally:
        for handle in handles:
            handle.remove()
    model.zero_grad(set_to_none=True)
    real = batch.attention_mask.bool()
    return {p: (x[real], out.grad[real]) for p, (x, out) in seen.items()}


@pytest.mark.parametrize("model_type", ["llama", "gpt2", "gemma2", "gpt_neox"])
@pytest.mark.parametrize("frozen_model", [False, True])
def test_capture_matches_a_plain_forward_and_backward(model_type: str, frozen_model: bool, tok) -> None:
    """The fast capture (no flag toggling, grad only from the first edited block, forward stopped at the
    final norm, target rows unembedded) gives the factors of a plain full backward, and leaves the model as it was."""
    from editkit.editors.mend import capture

    model, _ = tiny_model(model_type, seed=0)
    model.train()  # capture runs in eval mode and restores the mode
    if frozen_model:
        model.requires_grad_(False)
    loc = mend_location(model, layers=(1, 3))
    paths = [p.removesuffix(".weight") for p in loc.params]
    batch = _batch(tok)
    flags = [p.requires_grad for p in model.parameters()]
    with torch.no_grad():  # the caller's grad mode does not matter, and is restored
        factors = capture_factors(model, batch, loc)
        assert not torch.is_grad_enabled()
    assert model.training and all(m.training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    # gemma2 soft-caps its logits: it keeps the model's own forward
    assert capture._STOP_OK[model] is (model_type != "gemma2")
    model.eval()
    model.requires_grad_(True)
    expected = _reference_factors(model, batch, paths)
    for path in paths:
        u, delta = expected[path]
        assert torch.allclose(factors[path].u, u, rtol=1e-5, atol=1e-6), path
        assert torch.allclose(factors[path].delta, delta, rtol=1e-4, atol=1e-7), path


def test_eval_network_runs_each_shape_group_at_once(tok) -> None:
    """Eval mode: one call per weight shape gives each matrix's own call; deltas are -a * delta~^T u~."""
    model, _ = tiny_model("gpt2", seed=0)
    spec = build_spec(model, mend_location(model), rank=4, step_init=1e-3, base_model="tiny")
    net = MendNet(spec, seed=0)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # leave the identity init: random U, biases, scales, shifts and statistics
        for prm in net.network_parameters():
            prm.add_(torch.randn(prm.shape, generator=gen) * 0.3)
        net.step_sizes.mul_(torch.arange(1, len(spec.params) + 1))
    net.train().transform(capture_factors(model, _batch(tok, REQUESTS[3:6]), spec.location))  # statistics
    net.eval()
    with torch.no_grad():
        factors = capture_factors(model, _batch(tok), spec.location)
        together = net.transform(factors)
        groups = spec.groups()
        assert len(groups) == 2 and all(len(g) == 3 for g in groups.values())
        transposed = {p for p in spec.params if weight_is_transposed(model, p)}
        deltas = net.deltas(factors, transposed)
        for key, params in groups.items():
            for layer, param in enumerate(params):
                f = factors[param.removesuffix(".weight")]
                u, delta = net.nets[key](f.u, f.delta, layer)
                assert torch.allclose(together[param][0], u, atol=1e-6)
                assert torch.allclose(together[param][1], delta, atol=1e-6)
                expected = -net.step_size(param) * (delta.T @ u)
                if param in transposed:
                    expected = expected.T
                assert deltas[param].shape == dict(model.named_parameters())[param].shape
                scale = float(expected.abs().max())  # summed over rows: compare at the scale of the update
                assert float((deltas[param] - expected).abs().max()) <= 1e-5 * scale, param


def test_apply_adds_fp32_deltas_exactly(tok, tiny_mend_editor) -> None:
    model, _ = tiny_model("llama", seed=0)
    editor = make_editor("mend", {"editor": str(tiny_mend_editor("llama"))})
    result = editor.compute(model, tok, REQUESTS[:2], editor.default_location(model))
    named = dict(model.named_parameters())
    before = {k: named[k].detach().clone() for k in result.deltas}
    with applied(model, result):
        for k, delta in result.deltas.items():
            assert torch.equal(named[k].detach(), before[k] + delta)
    assert all(torch.equal(named[k].detach(), before[k]) for k in result.deltas)


def test_running_norm_matches_torch_statistics() -> None:
    gen = torch.Generator().manual_seed(0)
    parts = [torch.randn(n, 5, generator=gen) * 3 + 2 for n in (7, 1, 20, 4)]
    norm = RunningNorm(5).train()
    assert torch.equal(norm(parts[0][:1]), parts[0][:1])  # identity before two rows
    norm = RunningNorm(5).train()
    for part in parts:
        norm(part)
    data = torch.cat(parts).double()
    assert int(norm.count) == data.shape[0]
    assert torch.allclose(norm.mean, data.mean(0), atol=1e-12)
    assert torch.allclose(norm.var, data.var(0), atol=1e-12)
    # eval mode normalizes without updating
    norm.eval()
    x = torch.randn(3, 5, generator=gen)
    out = norm(x)
    assert int(norm.count) == data.shape[0]
    expected = (x.double() - data.mean(0)) / (data.var(0).sqrt() + 1e-7)
    assert torch.allclose(out.double(), expected, atol=1e-5)


def test_untrained_network_is_the_identity() -> None:
    net = GradientNet(6, 4, rank=3, n_layers=2, generator=torch.Generator().manual_seed(0)).eval()
    u, delta = torch.randn(5, 6), torch.randn(5, 4)
    u2, d2 = net(u, delta, 1)
    assert torch.equal(u2, u) and torch.equal(d2, delta)


@pytest.mark.parametrize("model_type", ["llama", "gpt2"])
def test_untrained_editor_takes_a_gradient_descent_step(model_type: str, tok, tmp_path: Path) -> None:
    model, _ = tiny_model(model_type, seed=0)
    step = 1e-4
    spec = build_spec(model, mend_location(model), rank=4, step_init=step, base_model="tiny")
    save_editor(MendNet(spec, seed=0), tmp_path / "untrained")
    editor = make_editor("mend", {"editor": str(tmp_path / "untrained")})
    result = editor.compute(model, tok, REQUESTS[:3], editor.default_location(model))
    enc = encode_pairs(tok, [r.prompt for r in REQUESTS[:3]], [r.target_new for r in REQUESTS[:3]])
    grads = _autograd_grads(model, collate(enc, pad_id=tok.pad_token_id), spec.params)
    for param, grad in grads.items():  # W' = W - a * dL/dW, in the stored orientation
        assert torch.allclose(result.deltas[param], -step * grad, rtol=1e-4, atol=1e-10), param
    # and the step lowers the edit loss
    batch = collate(enc, pad_id=tok.pad_token_id)
    with torch.no_grad():
        before = batch.mean_target_nll(model(**batch.model_inputs()).logits).sum()
        big = EditResult("mend", {k: v * 1e3 for k, v in result.deltas.items()}, result.location, {})
        with applied(model, big):
            after = batch.mean_target_nll(model(**batch.model_inputs()).logits).sum()
    assert after < before


def test_factored_edits_equal_materialized_weights(tok) -> None:
    model, _ = tiny_model("llama", seed=1)
    loc = mend_location(model, layers=(2, 3), modules=("mlp_up", "mlp_down"))
    gen = torch.Generator().manual_seed(0)
    edits, deltas = {}, {}
    for param in loc.params:
        d_out, d_in = dict(model.named_parameters())[param].shape
        u, delta = torch.randn(6, d_in, generator=gen), torch.randn(6, d_out, generator=gen)
        edit = FactoredEdit(u, delta, torch.tensor(0.01), torch.zeros(6, dtype=torch.long))
        edits[param.removesuffix(".weight")] = edit
        deltas[param] = edit.weight_delta()
    batch = _batch(tok)
    real = batch.attention_mask.bool()
    with torch.no_grad():
        base = model(**batch.model_inputs()).logits
        # sequence 0 belongs to episode 0 (sees the edit), the others to episode 1 (see none)
        with factored_edits(model, edits, torch.tensor([0, 1, 1, 1])):
            mixed = model(**batch.model_inputs()).logits
        with applied(model, EditResult("test", deltas, loc, {})):
            full = model(**batch.model_inputs()).logits
    assert not torch.allclose(full[0][real[0]], base[0][real[0]], atol=1e-4)
    assert torch.allclose(mixed[0][real[0]], full[0][real[0]], atol=1e-5)
    assert torch.allclose(mixed[1:][real[1:]], base[1:][real[1:]], atol=1e-6)


def test_training_reduces_the_validation_loss(tok) -> None:
    model, _ = tiny_model("llama", seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stages: list[tuple[str, int, int]] = []
    cfg = MendTrainConfig.from_mapping({**QUICK, "max_steps": 10, "val_every": 5, "lr": 1e-2, "step_lr": 1e-2})
    result = train_editor(
        model, tok, REQUESTS[:10], REQUESTS[10:], cfg, base_model="tiny", progress=lambda *a: stages.append(a)
    )
    val = [row for row in result.log if row["split"] == "val"]
    assert [row["step"] for row in val] == [0, 5, 10]
    best = result.info["best_val"]
    assert best["loss"] < val[0]["loss"] and best["edit_nll"] < val[0]["edit_nll"] - 0.1
    assert result.info["best_step"] in (5, 10)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # base model untouched
    assert all(p.grad is None for p in model.parameters())
    assert any("edit success" in s and "drawdown" in s for s, _, _ in stages) and stages[-1][1:] == (10, 10)
    # the returned editor is the best one
    assert float(result.net.step_sizes.detach().mean()) == pytest.approx(
        next(r for r in result.log if r["split"] == "train" and r["step"] == result.info["best_step"])["mean_step_size"]
    )


def test_training_stops_early_and_keeps_the_best_editor(tok) -> None:
    model, _ = tiny_model("llama", seed=0)
    # huge step-size updates wreck locality soon: validation stops improving
    cfg = MendTrainConfig.from_mapping({**QUICK, "max_steps": 20, "val_every": 1, "patience": 2, "step_lr": 1.0})
    result = train_editor(model, tok, REQUESTS[:10], REQUESTS[10:], cfg, base_model="tiny")
    info = result.info
    assert info["stopped_early"] and info["steps"] < 20 and info["steps"] - info["best_step"] == 2
    best = next(r for r in result.log if r["split"] == "train" and r["step"] == info["best_step"]) if info["best_step"] else None
    expected = best["mean_step_size"] if best else cfg.step_init
    assert float(result.net.step_sizes.detach().mean()) == pytest.approx(expected)


def test_training_resumes_exactly_from_a_checkpoint(tok, tmp_path: Path) -> None:
    model, _ = tiny_model("llama", seed=0)
    cfg = MendTrainConfig.from_mapping({**QUICK, "max_steps": 6, "val_every": 2, "patience": 10})
    straight = train_editor(model, tok, REQUESTS[:10], REQUESTS[10:], cfg, base_model="tiny")

    def interrupt(stage: str, done: int, total: int) -> None:
        if done == 3 and stage != "validating":
            raise KeyboardInterrupt

    ckpt = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        train_editor(model, tok, REQUESTS[:10], REQUESTS[10:], cfg, base_model="tiny", checkpoint_dir=ckpt, progress=interrupt)
    with pytest.raises(EditkitError, match="other training options"):
        train_editor(model, tok, REQUESTS[:10], REQUESTS[10:], cfg.with_overrides(["lr=0.5"]), base_model="tiny",
                     checkpoint_dir=ckpt, resume=True)
    resumed = train_editor(model, tok, REQUESTS[:10], REQUESTS[10:], cfg, base_model="tiny", checkpoint_dir=ckpt, resume=True)
    assert resumed.log == straight.log
    a, b = straight.net.state_dict(), resumed.net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_saved_editor_names_its_base_model(tok, tiny_mend_editor) -> None:
    model, _ = tiny_model("llama", seed=0)
    folder = tiny_mend_editor("llama")
    meta = read_editor_config(folder)
    assert meta["base_model"] == "tiny" and meta["base_weights_sha256"] == weights_sha256(model)
    assert meta["training"]["steps"] == QUICK["max_steps"] and meta["training"]["config"]["rank"] == QUICK["rank"]
    assert (folder / "log.jsonl").is_file() and not list(folder.glob("*.pt")) and not list(folder.glob("*.bin"))
    net = load_editor(folder)
    assert net.spec.location == mend_location(model)  # the last 3 blocks' gate/up/down
    assert [s.layer for s in net.spec.location][::3] == [1, 2, 3]
    # one network per weight shape (gate/up [72, 32], down [32, 72]); statistics came from training
    assert sorted(net.nets) == ["32x72", "72x32"]
    assert all(int(n.norm_u.count) > 0 and int(n.norm_delta.count) > 0 for n in net.nets.values())


def test_editor_refuses_another_model_and_location(tok, tiny_mend_editor) -> None:
    editor = make_editor("mend", {"editor": str(tiny_mend_editor("llama"))})
    other, _ = tiny_model("llama", seed=1)
    with pytest.raises(EditkitError, match="was trained for tiny .*weights differ"):
        editor.compute(other, tok, REQUESTS[:1], editor.net.spec.location)
    gpt2, _ = tiny_model("gpt2", seed=0)
    with pytest.raises(EditkitError, match="not a gpt2 model"):
        editor.default_location(gpt2)
    model, _ = tiny_model("llama", seed=0)
    with pytest.raises(EditkitError, match="only the matrices its editor was trained for"):
        editor.compute(model, tok, REQUESTS[:1], fixed(model, layer=2))
    with pytest.raises(EditkitError, match="needs a trained editor"):
        make_editor("mend")
    with pytest.raises(InputError, match="no such MEND editor"):
        make_editor("mend", {"editor": "/nonexistent/editor"})


def test_batched_edit_sums_every_rows_update(tok, tiny_mend_editor) -> None:
    model, _ = tiny_model("gpt2", seed=0)
    editor = make_editor("mend", {"editor": str(tiny_mend_editor("gpt2"))})
    loc = editor.default_location(model)
    both = editor.compute(model, tok, REQUESTS[:2], loc)
    one, two = (editor.compute(model, tok, [r], loc) for r in REQUESTS[:2])
    for name, delta in both.deltas.items():
        assert torch.allclose(delta, one.deltas[name] + two.deltas[name], atol=1e-6)
    # an edited model is still the editor's base model (only the edited matrices differ)
    apply(model, both)
    again = editor.compute(model, tok, REQUESTS[2:3], loc)
    revert(model, both)
    assert again.deltas


# -- command line -------------------------------------------------------------------------------


def run(*args: str):
    return CliRunner(env={"COLUMNS": "240"}).invoke(app, list(args))



def test_cli_trains_then_edits_with_mend(tiny_dir: Path, tmp_path: Path) -> None:
    train = tmp_path / "train.jsonl"
    save_requests(REQUESTS, train)
    facts = tmp_path / "facts.jsonl"
    save_requests(REQUESTS[:2], facts)
    out = tmp_path / "editor"
    options = [x for k, v in QUICK.items() for x in ("--set", f"{k}={v}")]
    res = run("mend", "train", "--model", str(tiny_dir), "--train", str(train), "--out", str(out), *options)
    assert res.exit_code == 0, res.output
    assert {p.name for p in out.iterdir()} == {"editor.safetensors", "editor.json", "log.jsonl"}  # no null space
    assert not (tmp_path / "editor.checkpoint").exists()
    meta = json.loads((out / "editor.json").read_text())
    assert meta["base_model"] == str(tiny_dir) and meta["training"]["n_val"] == 2
    assert "val edit success" in res.output

    edit_out = tmp_path / "edit"
    res = run("edit", "--model", str(tiny_dir), "--facts", str(facts), "--method", "mend", "--editor", str(out),
              "--out", str(edit_out), "--reference", "none", "--no-fluency", "--no-generation", "--save", "delta")
    assert res.exit_code == 0, res.output
    report = json.loads((edit_out / "report.json").read_text())
    assert report["kind"] == "edit" and report["metrics"]["after"]["reliability"] is not None
    from editkit.editors import load_edit

    delta = load_edit(edit_out / "delta.safetensors")
    assert delta.method == "mend" and set(delta.deltas) == set(meta["shapes"])

    # a trained editor is for mend only; mend refuses a location of its own choosing
    res = run("edit", "--model", str(tiny_dir), "--facts", str(facts), "--editor", str(out), "--out", str(tmp_path / "x"))
    assert res.exit_code == 2 and "--editor" in res.output
    res = run("edit", "--model", str(tiny_dir), "--facts", str(facts), "--method", "mend", "--editor", str(out),
              "--layer", "1", "--out", str(tmp_path / "y"), "--reference", "none")
    assert res.exit_code == 2 and "trained for" in res.output and "Traceback" not in res.output


def test_cli_train_keeps_a_checkpoint_to_resume(tiny_dir: Path, tmp_path: Path) -> None:
    train = tmp_path / "train.jsonl"
    save_requests(REQUESTS, train)
    out = tmp_path / "editor"
    (tmp_path / "editor.checkpoint").mkdir()
    res = run("mend", "train", "--model", str(tiny_dir), "--train", str(train), "--out", str(out))
    assert res.exit_code == 2 and "--resume" in res.output
    res = run("mend", "train", "--model", str(tiny_dir), "--train", str(train), "--out", str(out), "--resume")
    assert res.exit_code == 2 and "no MEND checkpoint" in res.output
    assert not out.exists()
