"""The Backpack-GPT2 model: public checkpoint layout, math, causality, Auto classes, generation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModelForCausalLM

from editkit.backpack import (
    BackpackCausalLMOutput,
    BackpackGPT2Config,
    BackpackGPT2LMHeadModel,
)

pytestmark = pytest.mark.unit

V, D, LAYERS, HEADS, K, SCALE, POS = 50, 16, 2, 2, 4, 2, 32


def _config(**overrides: object) -> BackpackGPT2Config:
    kwargs: dict[str, object] = {
        "vocab_size": V,
        "n_embd": D,
        "n_layer": LAYERS,
        "n_head": HEADS,
        "num_senses": K,
        # 2, not the default 4: the final MLP must not be confused with the block's 4d MLP
        "sense_intermediate_scale": SCALE,
        "n_positions": POS,
        "bos_token_id": 0,
        "eos_token_id": 0,
    }
    kwargs.update(overrides)
    return BackpackGPT2Config(**kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def model() -> BackpackGPT2LMHeadModel:
    torch.manual_seed(0)
    m = BackpackGPT2LMHeadModel(_config()).eval()
    with torch.no_grad():  # non-trivial norms and biases, so a mixed-up one shows
        for name, p in m.named_parameters():
            if name.endswith("bias") or ".ln" in name:
                p.add_(0.1 * torch.randn_like(p))
    return m


@pytest.fixture
def ids() -> torch.Tensor:
    return torch.tensor([[3, 17, 17, 42, 5, 9], [1, 2, 3, 4, 5, 6]])


# -- (a) the public state-dict layout -------------------------------------------------


def _public_layout(n_layer: int) -> dict[str, tuple[int, ...]]:
    """Key names and shapes of stanfordnlp/backpack-gpt2 (from its modeling_backpack_gpt2.py),
    written out by hand for the tiny sizes, independent of editkit's module names."""
    d, inner = D, 4 * D
    shapes: dict[str, tuple[int, ...]] = {
        "backpack.gpt2_model.wte.weight": (V, d),
        "backpack.gpt2_model.wpe.weight": (POS, d),
        "backpack.gpt2_model.ln_f.weight": (d,),
        "backpack.gpt2_model.ln_f.bias": (d,),
        "backpack.word_embeddings.weight": (V, d),
        "backpack.position_embeddings.weight": (POS, d),
        "backpack.sense_network.ln.weight": (d,),
        "backpack.sense_network.ln.bias": (d,),
        "backpack.sense_network.block.ln_1.weight": (d,),
        "backpack.sense_network.block.ln_1.bias": (d,),
        "backpack.sense_network.block.ln_2.weight": (d,),
        "backpack.sense_network.block.ln_2.bias": (d,),
        "backpack.sense_network.block.mlp.c_fc.weight": (d, inner),
        "backpack.sense_network.block.mlp.c_fc.bias": (inner,),
        "backpack.sense_network.block.mlp.c_proj.weight": (inner, d),
        "backpack.sense_network.block.mlp.c_proj.bias": (d,),
        "backpack.sense_network.final_mlp.c_fc.weight": (d, SCALE * d),
        "backpack.sense_network.final_mlp.c_fc.bias": (SCALE * d,),
        "backpack.sense_network.final_mlp.c_proj.weight": (SCALE * d, K * d),
        "backpack.sense_network.final_mlp.c_proj.bias": (K * d,),
        "backpack.sense_weight_net.c_attn.weight": (2 * d, d),
        "backpack.sense_weight_net.c_attn.bias": (2 * d,),
        "lm_head.weight": (V, d),
    }
    for i in range(n_layer):
        p = f"backpack.gpt2_model.h.{i}"
        shapes.update(
            {
                f"{p}.ln_1.weight": (d,),
                f"{p}.ln_1.bias": (d,),
                f"{p}.attn.c_attn.weight": (d, 3 * d),
                f"{p}.attn.c_attn.bias": (3 * d,),
                f"{p}.attn.c_proj.weight": (d, d),
                f"{p}.attn.c_proj.bias": (d,),
                f"{p}.ln_2.weight": (d,),
                f"{p}.ln_2.bias": (d,),
                f"{p}.mlp.c_fc.weight": (d, inner),
                f"{p}.mlp.c_fc.bias": (inner,),
                f"{p}.mlp.c_proj.weight": (inner, d),
                f"{p}.mlp.c_proj.bias": (d,),
            }
        )
    return shapes


def _public_state_dict(*, legacy_buffers: bool, seed: int = 1) -> dict[str, torch.Tensor]:
    """Random tensors in the public layout; aliases share storage as in a torch.save of it."""
    gen = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    for key, shape in _public_layout(LAYERS).items():
        sd[key] = 0.2 * torch.randn(shape, generator=gen)
    sd["backpack.word_embeddings.weight"] = sd["backpack.gpt2_model.wte.weight"]
    sd["lm_head.weight"] = sd["backpack.gpt2_model.wte.weight"]
    sd["backpack.position_embeddings.weight"] = sd["backpack.gpt2_model.wpe.weight"]
    if legacy_buffers:  # old GPT-2 attention buffers (transformers < 4.31)
        for i in range(LAYERS):
            tril = torch.tril(torch.ones(POS, POS, dtype=torch.uint8)).view(1, 1, POS, POS)
            sd[f"backpack.gpt2_model.h.{i}.attn.bias"] = tril
            sd[f"backpack.gpt2_model.h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    return sd


def test_model_state_dict_has_exactly_the_public_layout() -> None:
    m = BackpackGPT2LMHeadModel(_config())
    got = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert got == _public_layout(LAYERS)


@pytest.mark.parametrize("legacy_buffers", [False, True])
def test_public_state_dict_loads_strictly(legacy_buffers: bool) -> None:
    sd = _public_state_dict(legacy_buffers=legacy_buffers)
    m = BackpackGPT2LMHeadModel(_config())
    result = m.load_state_dict(sd, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    loaded = m.state_dict()
    for key in _public_layout(LAYERS):
        torch.testing.assert_close(loaded[key], sd[key], rtol=0, atol=0, msg=key)
    assert m.lm_head.weight is m.backpack.gpt2_model.wte.weight


def test_public_checkpoint_directory_loads_without_remote_code(tmp_path: Path) -> None:
    """A folder like the hub one: config.json says gpt2 + auto_map, weights in pytorch_model.bin."""
    cfg = _config().to_dict()
    cfg.update(
        model_type="gpt2",
        architectures=["BackpackGPT2LMHeadModel"],
        auto_map={
            "AutoConfig": "configuration_backpack_gpt2.BackpackGPT2Config",
            "AutoModelForCausalLM": "modeling_backpack_gpt2.BackpackGPT2LMHeadModel",
        },
    )
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    sd = _public_state_dict(legacy_buffers=True)
    torch.save(sd, tmp_path / "pytorch_model.bin")

    m, info = BackpackGPT2LMHeadModel.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    assert m.config.model_type == "backpack-gpt2"
    assert getattr(m.config, "auto_map", None) is None
    torch.testing.assert_close(
        m.backpack.sense_weight_net.c_attn.weight, sd["backpack.sense_weight_net.c_attn.weight"]
    )
    torch.testing.assert_close(m.lm_head.weight, sd["backpack.gpt2_model.wte.weight"])


# -- (b) the forward pass against a step-by-step computation ---------------------------


def _gelu_new(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def _reference_logits(
    sd: dict[str, torch.Tensor], ctx: torch.Tensor, ids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Senses, weights and logits from the state dict with plain torch ops.

    ``ctx`` are the GPT-2 hidden states ``[batch, seq, d]`` (after ln_f).
    """
    eps = 1e-5

    def ln(x: torch.Tensor, name: str) -> torch.Tensor:
        mu = x.mean(-1, keepdim=True)
        var = x.var(-1, unbiased=False, keepdim=True)
        return (x - mu) / torch.sqrt(var + eps) * sd[f"{name}.weight"] + sd[f"{name}.bias"]

    def conv1d(x: torch.Tensor, name: str) -> torch.Tensor:  # GPT-2 Conv1D: weight [in, out]
        return x @ sd[f"{name}.weight"] + sd[f"{name}.bias"]

    def mlp(x: torch.Tensor, name: str) -> torch.Tensor:
        return conv1d(_gelu_new(conv1d(x, f"{name}.c_fc")), f"{name}.c_proj")

    sn = "backpack.sense_network"
    emb = sd["backpack.word_embeddings.weight"]
    batch, seq = ids.shape
    x = emb[ids]  # [batch, seq, d]
    res = x + ln(x, f"{sn}.ln")
    res = res + mlp(ln(res, f"{sn}.block.ln_1"), f"{sn}.block.mlp")
    h = ln(res, f"{sn}.block.ln_2")
    senses = mlp(h, f"{sn}.final_mlp").reshape(batch, seq, K, D)  # sense l = l-th slice of d

    w, b = (
        sd["backpack.sense_weight_net.c_attn.weight"],
        sd["backpack.sense_weight_net.c_attn.bias"],
    )
    qk = ctx @ w.T + b  # nn.Linear: weight [out, in]
    hd = D // K
    alpha = torch.zeros(batch, K, seq, seq)
    for sense in range(K):
        q = qk[..., sense * hd : (sense + 1) * hd]
        k = qk[..., D + sense * hd : D + (sense + 1) * hd]
        for i in range(seq):
            scores = torch.stack(
                [(q[:, i] * k[:, j]).sum(-1) / math.sqrt(hd) for j in range(i + 1)], -1
            )
            alpha[:, sense, i, : i + 1] = torch.softmax(scores, -1)

    out = torch.zeros(batch, seq, D)
    for i in range(seq):
        for j in range(i + 1):
            for sense in range(K):
                out[:, i] += alpha[:, sense, i, j, None] * senses[:, j, sense]
    return senses, alpha, out @ emb.T


def test_forward_matches_step_by_step_computation(
    model: BackpackGPT2LMHeadModel, ids: torch.Tensor
) -> None:
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    with torch.no_grad():
        ctx = model.backpack.gpt2_model(input_ids=ids).last_hidden_state
        out = model(ids)
        senses, alpha = model.senses(ids), model.sense_weights(ids)
    ref_senses, ref_alpha, ref_logits = _reference_logits(sd, ctx, ids)
    torch.testing.assert_close(senses, ref_senses, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(alpha, ref_alpha, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.logits, ref_logits, rtol=1e-4, atol=1e-5)
    assert isinstance(out, BackpackCausalLMOutput)
    torch.testing.assert_close(out.sense_weights, alpha)


def test_loss_is_shifted_cross_entropy(model: BackpackGPT2LMHeadModel, ids: torch.Tensor) -> None:
    labels = ids.clone()
    labels[0, 2] = -100
    with torch.no_grad():
        out = model(ids, labels=labels)
    logits = out.logits[:, :-1].reshape(-1, V)
    target = labels[:, 1:].reshape(-1)
    keep = target != -100
    expected = F.cross_entropy(logits[keep], target[keep])
    torch.testing.assert_close(out.loss, expected)
    assert model(ids).loss is None


def test_senses_depend_on_the_token_only(model: BackpackGPT2LMHeadModel, ids: torch.Tensor) -> None:
    with torch.no_grad():
        senses = model.senses(ids)
        alone = model.senses(ids[:, 3:4])
    torch.testing.assert_close(senses[:, 3:4], alone)
    torch.testing.assert_close(senses[0, 1], senses[0, 2])  # the same id twice


# -- (c) causality ---------------------------------------------------------------------


def test_changing_a_later_token_leaves_earlier_logits(
    model: BackpackGPT2LMHeadModel, ids: torch.Tensor
) -> None:
    changed = ids.clone()
    changed[:, 4] = (changed[:, 4] + 7) % V
    with torch.no_grad():
        a, b = model(ids).logits, model(changed).logits
    torch.testing.assert_close(a[:, :4], b[:, :4], rtol=0, atol=1e-6)
    assert not torch.allclose(a[:, 4:], b[:, 4:], atol=1e-4)


def test_right_padding_leaves_real_positions(model: BackpackGPT2LMHeadModel) -> None:
    short = torch.tensor([[3, 17, 42]])
    padded = torch.tensor([[3, 17, 42, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 0, 0]])
    with torch.no_grad():
        a = model(short).logits
        b = model(padded, attention_mask=mask)
        alpha = model.sense_weights(short)
    torch.testing.assert_close(b.logits[:, :3], a, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(b.sense_weights[..., :3, :3], alpha, rtol=1e-5, atol=1e-6)
    assert torch.all(b.sense_weights[..., 4, 3] == 0)  # no weight on another pad
    assert torch.all(b.sense_weights[..., 4, 4] > 0)  # but a pad keeps itself: no empty row
    torch.testing.assert_close(b.sense_weights.sum(-1), torch.ones(1, K, 5))


# -- (d) Auto classes and save/load ----------------------------------------------------


def test_auto_classes_and_safetensors_round_trip(
    model: BackpackGPT2LMHeadModel, ids: torch.Tensor, tmp_path: Path
) -> None:
    fresh = AutoModelForCausalLM.from_config(_config())
    assert isinstance(fresh, BackpackGPT2LMHeadModel)

    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "backpack-gpt2"
    cfg = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(cfg, BackpackGPT2Config) and cfg.num_senses == K

    loaded, info = AutoModelForCausalLM.from_pretrained(tmp_path, output_loading_info=True)
    assert isinstance(loaded, BackpackGPT2LMHeadModel)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    loaded.eval()
    assert loaded.lm_head.weight is loaded.backpack.gpt2_model.wte.weight
    assert loaded.backpack.word_embeddings is loaded.backpack.gpt2_model.wte
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0, msg=key)
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits, rtol=0, atol=0)


def test_generate_without_cache_matches_greedy_loop(model: BackpackGPT2LMHeadModel) -> None:
    prompt = torch.tensor([[3, 17, 42]])
    seq = prompt
    with torch.no_grad():
        for _ in range(4):
            nxt = model(seq).logits[:, -1].argmax(-1, keepdim=True)
            seq = torch.cat([seq, nxt], dim=1)
        for use_cache in (False, True):
            got = model.generate(
                prompt,
                attention_mask=torch.ones_like(prompt),
                max_new_tokens=4,
                min_new_tokens=4,
                do_sample=False,
                use_cache=use_cache,
                pad_token_id=0,
            )
            assert torch.equal(got, seq)


# -- (e) inspection API ----------------------------------------------------------------


def test_senses_and_sense_weights_shapes_and_normalization(
    model: BackpackGPT2LMHeadModel, ids: torch.Tensor
) -> None:
    with torch.no_grad():
        senses = model.senses(ids)
        alpha = model.sense_weights(ids)
    batch, seq = ids.shape
    assert senses.shape == (batch, seq, K, D)
    assert alpha.shape == (batch, K, seq, seq)
    torch.testing.assert_close(alpha.sum(-1), torch.ones(batch, K, seq))
    assert torch.all(alpha >= 0)
    assert torch.all(alpha.triu(diagonal=1) == 0)
    assert torch.all(alpha[..., 0, 0] == 1)


def test_config_rejects_sizes_that_do_not_fit() -> None:
    with pytest.raises(Exception, match="num_senses"):
        _config(n_embd=18)
    with pytest.raises(Exception, match="tie"):
        _config(tie_word_embeddings=False)
