"""TuCo (audit.tuco): exact decomposition, both implementations, LoRA and delta pairs, padding, steering, CLI."""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from tiny_models import PAD_ID, tiny_model, tiny_tokenizer
from torch import nn
from typer.testing import CliRunner

from audit.tuco import (
    DeltaPair,
    ModelPair,
    PeftPair,
    decompose,
    encode_prompts,
    prompt_batch,
    read_prompts,
    steered_generate,
    steered_logits,
    tuco,
    tuned_pair,
)
from audit.tuned import DeltaWeights, load_tuned
from editkit.arch import layer_module, num_layers
from editkit.cli import app
from editkit.errors import InputError

pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("ignore::UserWarning")]

PROMPTS = [
    "The capital of France is",
    "Hi",
    "People in Spain speak Spanish and people in Italy speak",
    "Who founded Microsoft?",
]
IMPLS = ("hooks", "nnsight")


def perturbed(model: nn.Module, *, scale: float = 0.01, seed: int = 1, blocks_only: bool = False) -> nn.Module:
    """A "fine-tune": a copy with Gaussian noise on every parameter (or on the decoder blocks only)."""
    tuned = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in tuned.named_parameters():
            if blocks_only and ".layers." not in name and ".h." not in name:
                continue
            p.add_(scale * torch.randn(p.shape, generator=gen))
    return tuned


def block_deltas(base: nn.Module, tuned: nn.Module) -> dict[str, torch.Tensor]:
    """``W_tuned - W_base`` of every parameter that differs."""
    tuned_params = dict(tuned.named_parameters())
    return {
        name: (tuned_params[name] - p).detach()
        for name, p in base.named_parameters()
        if not torch.equal(tuned_params[name], p)
    }


@pytest.fixture(scope="module")
def tok() -> Any:
    return tiny_tokenizer()


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def models(request: pytest.FixtureRequest) -> tuple[nn.Module, nn.Module]:
    base, _ = tiny_model(request.param, seed=0)
    return base, perturbed(base, scale=0.02)


@pytest.fixture(scope="module")
def llama() -> nn.Module:
    return tiny_model("llama", seed=0)[0]


def _lora(base: nn.Module) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=2, lora_alpha=4, init_lora_weights=False,
                        target_modules=["q_proj", "v_proj", "o_proj", "up_proj", "down_proj"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        model = get_peft_model(copy.deepcopy(base), config)
    model.eval()
    return model


@pytest.fixture(scope="module")
def lora(llama: nn.Module) -> nn.Module:
    """A peft LoRA model on a copy of the tiny llama, with random (nonzero) A and B."""
    model = _lora(llama)
    assert any(float(p.abs().sum()) > 0 for n, p in model.named_parameters() if "lora_B" in n)
    return model


def batch_of(tok: Any, prompts: list[str], side: str = "left", chat: bool = False) -> Any:
    return prompt_batch(encode_prompts(tok, prompts, chat=chat), pad_id=PAD_ID, padding_side=side)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _one_blas_thread() -> Iterator[None]:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def residual_stream(model: nn.Module, batch: Any) -> torch.Tensor:
    """``x_0 .. x_L`` of a plain forward, read with our own hooks: ``[layers + 1, batch, seq, hidden]``."""
    captured: list[torch.Tensor] = []
    blocks = [layer_module(model, layer) for layer in range(num_layers(model))]

    def block_input(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        captured.append(args[0] if args else kwargs["hidden_states"])

    def block_output(module: nn.Module, args: Any, output: Any) -> None:
        captured.append(output[0] if isinstance(output, tuple) else output)

    handles = [b.register_forward_pre_hook(block_input, with_kwargs=True) for b in blocks]
    handles.append(blocks[-1].register_forward_hook(block_output))
    try:
        with torch.no_grad():
            model(**batch.model_inputs(), use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return torch.stack([c.float() for c in captured])


# -- the decomposition is exact ------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
def test_components_add_up_to_the_tuned_stream_at_every_layer(models: Any, tok: Any, impl: str) -> None:
    base, tuned = models
    batch = batch_of(tok, PROMPTS)
    dec = decompose(tuned_pair(base, tuned), batch, positions="all", impl=impl)
    real = batch.attention_mask.bool()  # [batch, seq]
    reference = residual_stream(tuned, batch)  # the tuned model's own stream
    assert dec.x.shape == reference.shape
    torch.testing.assert_close(dec.x[:, real], reference[:, real], rtol=0, atol=1e-6)
    stepped = dec.x[:-1] + dec.ptc + dec.ftc
    torch.testing.assert_close(stepped[:, real], dec.x[1:, real], rtol=1e-5, atol=1e-5)
    # The last prompt token: the same numbers as the all-positions record.
    last = decompose(tuned_pair(base, tuned), batch, positions="last", impl=impl)
    rows = torch.arange(len(PROMPTS))
    torch.testing.assert_close(last.ftc, dec.ftc[:, rows, batch.last], rtol=0, atol=0)
    assert float(last.ftc.abs().sum()) > 0


def test_the_stream_starts_at_the_tuned_embeddings_and_ends_before_the_final_norm(llama: nn.Module, tok: Any) -> None:
    tuned = perturbed(llama, scale=0.02)
    batch = batch_of(tok, PROMPTS[:1])
    dec = decompose(tuned_pair(llama, tuned), batch, positions="all")
    with torch.no_grad():
        embeddings = tuned.model.embed_tokens(batch.input_ids)
        hf_last = tuned(**batch.model_inputs(), output_hidden_states=True).hidden_states[-1]
    torch.testing.assert_close(dec.x[0], embeddings, rtol=0, atol=0)
    torch.testing.assert_close(tuned.model.norm(dec.x[-1]), hf_last, rtol=1e-6, atol=1e-6)  # HF's last entry is normed


@pytest.mark.parametrize("impl", IMPLS)
def test_tuco_is_zero_when_base_equals_tuned(llama: nn.Module, tok: Any, impl: str) -> None:
    zero = {n: torch.zeros_like(p) for n, p in llama.named_parameters() if ".layers.1." in n}
    for tuned in (llama, copy.deepcopy(llama), DeltaWeights(llama, zero)):
        for r in tuco(llama, tuned, tok, PROMPTS, impl=impl):
            assert r.tuco < 1e-7 and r.outputco < 1e-7
            assert max(r.ftc_l1) < 1e-7 and r.ptc_sum_l1 > 0


def test_tuco_formula_at_the_last_prompt_token(models: Any, tok: Any) -> None:
    base, tuned = models
    results = tuco(base, tuned, tok, PROMPTS, chat=False)
    batch = batch_of(tok, PROMPTS)
    dec = decompose(tuned_pair(base, tuned), batch)
    rows = torch.arange(len(PROMPTS))
    with torch.no_grad():  # x_L^B from an independent forward of the base model
        x_base = residual_stream(base, batch)[-1][rows, batch.last]
    for i, r in enumerate(results):
        f = dec.ftc[:, i].sum(0).abs().sum()
        p = dec.ptc[:, i].sum(0).abs().sum()
        assert r.tuco == pytest.approx(float(f / (p + f)), rel=1e-6)
        diff = (dec.x[-1, i] - x_base[i]).abs().sum()
        assert r.outputco == pytest.approx(float(diff / (x_base[i].abs().sum() + diff)), rel=1e-5)
        assert len(r.ptc_l1) == len(r.ftc_l1) == 4
        assert 0 < r.tuco < 1 and 0 < r.outputco < 1


# -- the two implementations agree ----------------------------------------------------------------


def _pairs(llama: nn.Module, lora: nn.Module, models: Any) -> dict[str, Any]:
    base, tuned = models
    return {
        "models": tuned_pair(base, tuned),
        "peft": tuned_pair(None, lora),
        "deltas": tuned_pair(base, block_deltas(base, tuned)),
    }


def test_hooks_and_nnsight_agree(llama: nn.Module, lora: nn.Module, models: Any, tok: Any) -> None:
    batch = batch_of(tok, PROMPTS)
    for kind, pair in _pairs(llama, lora, models).items():
        assert pair.kind == kind
        ref = decompose(pair, batch, positions="all", impl="hooks")
        other = decompose(pair, batch, positions="all", impl="nnsight")
        for name in ("x", "ptc", "ftc"):
            torch.testing.assert_close(getattr(other, name), getattr(ref, name), rtol=0, atol=1e-6)
        torch.testing.assert_close(
            steered_logits(pair, batch, 0.5, impl="nnsight"), steered_logits(pair, batch, 0.5, impl="hooks"), rtol=0, atol=1e-5
        )
        base_model = None if kind == "peft" else pair.model
        a = tuco(base_model, pair, tok, PROMPTS, impl="hooks")
        b = tuco(base_model, pair, tok, PROMPTS, impl="nnsight")
        for x, y in zip(a, b, strict=True):
            assert x.tuco == pytest.approx(y.tuco, abs=1e-7) and x.outputco == pytest.approx(y.outputco, abs=1e-7)


def test_nnsight_leaves_the_model_as_it_was(llama: nn.Module, tok: Any) -> None:
    before = {name: set(m.__dict__) for name, m in llama.named_modules()}
    tuco(llama, perturbed(llama), tok, PROMPTS[:2], impl="nnsight")
    assert {name: set(m.__dict__) for name, m in llama.named_modules()} == before


# -- LoRA without a second copy, and tuned weights --------------------------------------------------


def test_lora_equals_the_pair_with_merged_weights(llama: nn.Module, lora: nn.Module, tok: Any) -> None:
    merged = copy.deepcopy(lora).merge_and_unload()
    grads = {n: p.requires_grad for n, p in lora.named_parameters()}
    via_peft = tuco(None, lora, tok, PROMPTS)
    via_pair = tuco(llama, merged, tok, PROMPTS)
    for a, b in zip(via_peft, via_pair, strict=True):
        assert a.tuco == pytest.approx(b.tuco, abs=1e-5) and a.outputco == pytest.approx(b.outputco, abs=1e-5)
        assert a.ftc_l1 == pytest.approx(b.ftc_l1, rel=1e-5) and a.ptc_l1 == pytest.approx(b.ptc_l1, rel=1e-5)
    batch = batch_of(tok, PROMPTS)
    dec_peft = decompose(tuned_pair(None, lora), batch, positions="all")
    dec_pair = decompose(tuned_pair(llama, merged), batch, positions="all")
    real = batch.attention_mask.bool()
    torch.testing.assert_close(dec_peft.ftc[:, real], dec_pair.ftc[:, real], rtol=1e-5, atol=1e-5)
    # Adapters are back on, with the same requires_grad flags.
    assert grads == {n: p.requires_grad for n, p in lora.named_parameters()}
    assert not any(m.disable_adapters for m in lora.modules() if hasattr(m, "lora_A"))


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_lora_shared_projections_change_no_bit(arch: str, tok: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hook runner reuses the frozen products of the projections reading the block input; nothing else changes."""
    from peft import LoraConfig, get_peft_model

    import audit.tuco.pair as pair_module

    base, _ = tiny_model(arch, seed=0)
    targets = ["q_proj", "v_proj", "o_proj", "up_proj", "down_proj"] if arch == "llama" else ["c_attn", "c_proj", "c_fc"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        model = get_peft_model(copy.deepcopy(base), LoraConfig(r=2, lora_alpha=4, init_lora_weights=False,
                                                               target_modules=targets))
    model.eval()
    # A wrapper already on one base layer (as accelerate's hooks are) is called inside and kept afterwards.
    hooked = next(m for m in model.modules() if hasattr(m, "lora_A")).base_layer
    hook_calls = []
    class_forward = hooked.forward

    def hook(x: torch.Tensor) -> torch.Tensor:
        hook_calls.append(1)
        return class_forward(x)

    hooked.forward = hook
    batch = batch_of(tok, PROMPTS)
    pair = tuned_pair(None, model)
    served: list[int] = []
    real_sharing = PeftPair.sharing

    @contextlib.contextmanager
    def counting(self: PeftPair) -> Iterator[Any]:
        with real_sharing(self) as memo:
            yield memo
        served.append(memo.served)

    monkeypatch.setattr(PeftPair, "sharing", counting)
    shared = decompose(pair, batch, positions="all")
    tokens_shared = steered_generate(None, pair, tok, PROMPTS[:2], alphas=[0.5], max_new_tokens=3)
    # Per block, the projections of the normalized block input: q and v (llama), c_attn (gpt2).
    assert served[0] == num_layers(model.get_base_model()) * (2 if arch == "llama" else 1)
    monkeypatch.setattr(PeftPair, "sharing", lambda self: contextlib.nullcontext())
    plain = decompose(pair, batch, positions="all")
    tokens_plain = steered_generate(None, pair, tok, PROMPTS[:2], alphas=[0.5], max_new_tokens=3)
    for name in ("x", "ptc", "ftc"):
        assert torch.equal(getattr(shared, name), getattr(plain, name)), name
    assert tokens_shared == tokens_plain
    # Nothing is left behind: the base layers' own forward is back, the pre-existing wrapper too (and it ran).
    assert [m for m in model.modules() if "forward" in m.__dict__] == [hooked] and hooked.forward is hook
    assert hook_calls
    assert pair_module.ProjectionMemo(model).saved == {}


def test_lora_adapter_folder_and_edit_deltas_give_the_same_numbers(llama: nn.Module, lora: nn.Module, tok: Any, tmp_path: Path) -> None:
    lora.save_pretrained(tmp_path / "lora")
    weights = load_tuned(llama, tmp_path / "lora")
    assert weights.kind == "lora"
    state = {n: p.clone() for n, p in llama.state_dict().items()}
    via_deltas = tuco(llama, weights, tok, PROMPTS)
    via_peft = tuco(None, lora, tok, PROMPTS)
    for a, b in zip(via_deltas, via_peft, strict=True):
        assert a.tuco == pytest.approx(b.tuco, abs=1e-5)
    assert isinstance(tuned_pair(llama, weights), DeltaPair)
    assert all(torch.equal(state[n], p) for n, p in llama.state_dict().items())  # never written to


def test_pair_kinds_and_refusals(llama: nn.Module, lora: nn.Module) -> None:
    gpt2, _ = tiny_model("gpt2", seed=0)
    assert isinstance(tuned_pair(llama, perturbed(llama)), ModelPair)
    assert isinstance(tuned_pair(None, lora), PeftPair)
    with pytest.raises(InputError, match="gpt2"):
        tuned_pair(llama, gpt2)
    with pytest.raises(InputError, match="base model is needed"):
        tuned_pair(None, perturbed(llama))
    with pytest.raises(InputError, match="merged"):
        merged = _lora(llama)
        merged.merge_adapter()
        tuned_pair(None, merged)


# -- padding -----------------------------------------------------------------------------------


@pytest.mark.parametrize("side", ["left", "right"])
def test_a_padded_batch_gives_the_values_of_one_prompt_at_a_time(models: Any, tok: Any, side: str) -> None:
    base, tuned = models
    together = tuco(base, tuned, tok, PROMPTS, batch_size=len(PROMPTS), padding_side=side)  # type: ignore[arg-type]
    alone = tuco(base, tuned, tok, PROMPTS, batch_size=1)
    for a, b in zip(together, alone, strict=True):
        assert a.n_tokens == b.n_tokens
        assert a.tuco == pytest.approx(b.tuco, rel=1e-5) and a.outputco == pytest.approx(b.outputco, rel=1e-5)
        assert a.ftc_l1 == pytest.approx(b.ftc_l1, rel=1e-5)
    lengths = {r.n_tokens for r in together}
    assert len(lengths) > 1  # the batch really was padded


def test_chat_template_and_prompt_files(tok: Any, tmp_path: Path) -> None:
    templated = encode_prompts(tok, ["Hi"], system_prompt="Be brief.")[0]
    text = tok.decode(templated)
    assert text.startswith("<|im_start|>system\nBe brief.") and text.endswith("<|im_start|>assistant\n")
    assert encode_prompts(tok, ["Hi"], chat=False)[0] == tuple(tok("Hi")["input_ids"])
    plain = tiny_tokenizer()
    plain.chat_template = None
    with pytest.raises(InputError, match="no chat template|has none"):
        encode_prompts(plain, ["Hi"], chat=True)
    good = tmp_path / "p.jsonl"
    good.write_text('{"prompt": "a"}\n\n{"text": "b", "id": 2}\n')
    assert read_prompts(good) == ["a", "b"]
    txt = tmp_path / "p.txt"
    txt.write_text("one\n\ntwo\n")
    assert read_prompts(txt) == ["one", "two"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a"}\n{"question": "b"}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:2: prompt"):
        read_prompts(bad)


# -- steering ----------------------------------------------------------------------------------


def _hf_greedy(model: nn.Module, tok: Any, prompt: str, n: int) -> tuple[int, ...]:
    ids = torch.tensor([encode_prompts(tok, [prompt])[0]])
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False,
                             pad_token_id=PAD_ID, eos_token_id=tok.eos_token_id)
    return tuple(out[0, ids.shape[1]:].tolist())


@pytest.mark.parametrize("impl", IMPLS)
def test_alpha_one_reproduces_the_tuned_models_greedy_tokens(models: Any, tok: Any, impl: str) -> None:
    base, tuned = models
    gens = steered_generate(base, tuned, tok, PROMPTS, alphas=[1.0], max_new_tokens=6, batch_size=len(PROMPTS), impl=impl)
    for g in gens:
        assert g.token_ids == _hf_greedy(tuned, tok, g.prompt, 6)


def _hand_steered_logits(base: nn.Module, tuned: nn.Module, ids: torch.Tensor, alpha: float) -> torch.Tensor:
    """Llama by hand: tuned embeddings, then x <- x + (b - x) + alpha * (t - b) per block, tuned head."""
    n = ids.shape[1]
    positions = torch.arange(n)[None]
    causal = torch.full((n, n), torch.finfo(torch.float32).min).triu(1)[None, None]
    with torch.no_grad():
        x = tuned.model.embed_tokens(ids)
        rope = tuned.model.rotary_emb(x, positions)
        for b_block, t_block in zip(base.model.layers, tuned.model.layers, strict=True):
            kw = {"attention_mask": causal, "position_embeddings": rope, "position_ids": positions}
            b, t = b_block(x, **kw), t_block(x, **kw)
            x = x + (b - x) + alpha * (t - b)
        return tuned.lm_head(tuned.model.norm(x))


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.5])
def test_steering_matches_a_hand_loop(llama: nn.Module, tok: Any, alpha: float) -> None:
    tuned = perturbed(llama, scale=0.05)
    pair = tuned_pair(llama, tuned)
    for prompt in PROMPTS[:2]:
        ids = torch.tensor([encode_prompts(tok, [prompt])[0]])
        batch = prompt_batch([ids[0].tolist()], pad_id=PAD_ID)
        torch.testing.assert_close(steered_logits(pair, batch, alpha), _hand_steered_logits(llama, tuned, ids, alpha),
                                   rtol=1e-5, atol=1e-5)


def test_alpha_zero_generation_applies_the_base_blocks_at_every_step(llama: nn.Module, tok: Any) -> None:
    tuned = perturbed(llama, scale=0.05)
    gens = steered_generate(llama, tuned, tok, PROMPTS, alphas=[0.0], max_new_tokens=5, stop_at_eos=False)
    for g in gens:
        ids = torch.tensor([encode_prompts(tok, [g.prompt])[0]])
        for _ in range(5):  # the hand greedy loop
            token = _hand_steered_logits(llama, tuned, ids, 0.0)[0, -1].argmax()
            ids = torch.cat([ids, token.view(1, 1)], dim=1)
        assert g.token_ids == tuple(ids[0, -5:].tolist())


def test_alpha_zero_with_block_only_deltas_is_the_base_model(models: Any, tok: Any) -> None:
    base, _ = models
    tuned = perturbed(base, scale=0.05, blocks_only=True)
    pair = tuned_pair(base, block_deltas(base, tuned))
    batch = batch_of(tok, PROMPTS)
    with torch.no_grad():
        expected = base(**batch.model_inputs(), use_cache=False).logits
        tuned_logits = tuned(**batch.model_inputs(), use_cache=False).logits
    real = batch.attention_mask.bool()
    torch.testing.assert_close(steered_logits(pair, batch, 0.0)[real], expected[real], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(steered_logits(pair, batch, 1.0)[real], tuned_logits[real], rtol=1e-5, atol=1e-5)


# -- the command line --------------------------------------------------------------------------


def run(*args: str) -> Any:
    return CliRunner(env={"COLUMNS": "200"}).invoke(app, list(args))


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory: pytest.TempPathFactory, llama: nn.Module) -> Path:
    path = tmp_path_factory.mktemp("tuco-lora")
    _lora(llama).save_pretrained(path)
    return path


@pytest.fixture()
def prompts_file(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS[:3]))
    return path


def test_cli_writes_tuco_and_generations(tiny_dir: Path, lora_dir: Path, prompts_file: Path, tmp_path: Path, llama: nn.Module, tok: Any) -> None:
    out = tmp_path / "out"
    res = run("tuco", "--base", str(tiny_dir), "--tuned", str(lora_dir), "--prompts", str(prompts_file),
              "--alpha", "0.5,1", "--alpha", "1.5", "--max-new-tokens", "3", "--out", str(out))
    assert res.exit_code == 0, res.output
    assert "TuCo" in res.output and "OutputCo" in res.output
    rows = [json.loads(line) for line in (out / "tuco.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in rows] == PROMPTS[:3]
    assert all(len(r["ptc_l1"]) == len(r["ftc_l1"]) == 4 for r in rows)
    expected = tuco(None, _lora(llama), tok, PROMPTS[:3])
    assert [r["tuco"] for r in rows] == pytest.approx([e.tuco for e in expected], abs=1e-6)
    gens = [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]
    assert [g["alpha"] for g in gens] == [0.5] * 3 + [1.0] * 3 + [1.5] * 3
    assert all(len(g["token_ids"]) <= 3 for g in gens)
    summary = json.loads((out / "tuco.json").read_text())
    assert summary["tuned"]["kind"] == "lora" and summary["tuned"]["pair"] == "peft"
    assert summary["alphas"] == [0.5, 1.0, 1.5]
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_cli_full_fine_tune_prints_the_table(tiny_dir: Path, prompts_file: Path, tmp_path: Path, llama: nn.Module) -> None:
    perturbed(llama).save_pretrained(tmp_path / "ft")
    res = run("tuco", "-b", str(tiny_dir), "-t", str(tmp_path / "ft"), "-p", str(prompts_file), "--no-chat", "--impl", "nnsight")
    assert res.exit_code == 0, res.output
    assert "(full)" in res.output and "Hi" in res.output


@pytest.mark.parametrize(
    ("args", "content", "expected"),
    [
        (("--alpha", "abc"), None, "--alpha"),
        (("--alpha", "nan"), None, "finite"),
        (("--impl", "magic"), None, "unknown implementation"),
        (("--padding", "middle"), None, "--padding"),
        (("--batch-size", "0"), None, "--batch-size"),
        ((), '{"prompt": "a"}\n{oops\n', "prompts.jsonl:2"),
        ((), '{"question": "a"}\n', "prompts.jsonl:1: prompt"),
        ((), "", "no prompts"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(
    lora_dir: Path, prompts_file: Path, tmp_path: Path, args: tuple[str, ...], content: str | None, expected: str
) -> None:
    if content is not None:
        prompts_file.write_text(content)
    out = tmp_path / "out"
    res = run("tuco", "--base", "does-not-matter", "--tuned", str(lora_dir), "--prompts", str(prompts_file), "--out", str(out), *args)
    assert res.exit_code == 2, res.output
    assert expected in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
    assert not out.exists()


def test_cli_missing_inputs_and_existing_output(tiny_dir: Path, lora_dir: Path, prompts_file: Path, tmp_path: Path) -> None:
    res = run("tuco", "-b", str(tiny_dir), "-t", str(tmp_path / "nope"), "-p", str(prompts_file))
    assert res.exit_code == 2 and "no such file or folder" in res.output
    res = run("tuco", "-b", str(tiny_dir), "-t", str(lora_dir), "-p", str(tmp_path / "none.jsonl"))
    assert res.exit_code == 2 and "no such file" in res.output
    (tmp_path / "taken").mkdir()
    res = run("tuco", "-b", str(tiny_dir), "-t", str(lora_dir), "-p", str(prompts_file), "-o", str(tmp_path / "taken"))
    assert res.exit_code == 2 and "already exists" in res.output
