"""Every registered ArchSpec, checked against a tiny random model built with transformers."""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn
from transformers import PreTrainedModel

import editkit.arch as arch
from editkit.arch import (
    KINDS,
    ArchitectureError,
    ArchSpec,
    final_logit_softcap,
    get_arch,
    get_module,
    head_dim,
    hidden_size,
    intermediate_size,
    layer_module,
    linear_weight_shape,
    module_path,
    module_paths,
    num_heads,
    num_kv_heads,
    num_layers,
    parse_module_path,
    register,
    registered,
    vocab_size,
    weight_is_transposed,
)
from editkit.errors import EditkitError
from tests.tiny_models import (
    EOS_ID,
    HIDDEN,
    N_LAYERS,
    PAD_ID,
    TINY_CONFIGS,
    VOCAB_SIZE,
    tiny_model,
    tiny_tokenizer,
)

pytestmark = pytest.mark.unit

ARCH_TYPES = sorted(registered())
INPUT_IDS = torch.tensor([[5, 17, 42, 99, 7], [8, 3, 250, 11, 400]])  # [batch, pos]


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Tiny matmuls gain nothing from threads, and lose a lot on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module", params=ARCH_TYPES)
def model(request: pytest.FixtureRequest) -> PreTrainedModel:
    """One tiny model per registered type, built once for the whole module."""
    return tiny_model(request.param)[0]


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let a test register specs without leaking them into other tests."""
    monkeypatch.setattr(arch.registry, "_REGISTRY", dict(arch.registry._REGISTRY))


def _first(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def _first_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


# --- the tables, against real modules ------------------------------------------


def test_every_registered_type_has_a_tiny_model() -> None:
    assert set(ARCH_TYPES) == set(TINY_CONFIGS)


def test_spec_is_found_from_model_config_and_string(model: PreTrainedModel) -> None:
    spec = get_arch(model)
    assert spec.model_type == model.config.model_type
    assert get_arch(model.config) is spec is get_arch(spec.model_type)


def test_every_path_resolves(model: PreTrainedModel) -> None:
    spec = get_arch(model)
    for path in (spec.layers, spec.final_norm, spec.unembed, spec.embed):
        assert isinstance(get_module(model, path), nn.Module)
    assert isinstance(get_module(model, spec.layers), nn.ModuleList)
    for layer in (0, -1):
        for kind in KINDS:
            for path in module_paths(model, layer, kind):
                assert isinstance(get_module(model, path), nn.Module), path
    assert module_paths(model, 0, "mlp_in") and module_paths(model, 0, "attn_in")


def test_num_layers_matches_config(model: PreTrainedModel) -> None:
    n = num_layers(model)
    assert n == num_layers(model.config) == N_LAYERS
    layers = get_module(model, get_arch(model).layers)
    assert isinstance(layers, nn.ModuleList)
    assert layer_module(model, -1) is layers[n - 1]


def test_projection_shapes(model: PreTrainedModel) -> None:
    """(out, in) of every projection, from the config sizes, whatever the storage."""
    cfg = model.config
    spec = get_arch(model)
    h, i = hidden_size(cfg), intermediate_size(cfg)
    q_dim, kv_dim = num_heads(cfg) * head_dim(cfg), num_kv_heads(cfg) * head_dim(cfg)
    layer = 1
    assert linear_weight_shape(model, module_path(model, layer, "mlp_out")) == (h, i)
    assert linear_weight_shape(model, module_path(model, layer, "attn_out")) == (h, q_dim)
    mlp_in = [linear_weight_shape(model, p) for p in module_paths(model, layer, "mlp_in")]
    assert all(fan_in == h for _, fan_in in mlp_in)
    assert sum(out for out, _ in mlp_in) == (2 if spec.gated_mlp else 1) * i
    attn_in = [linear_weight_shape(model, p) for p in module_paths(model, layer, "attn_in")]
    assert all(fan_in == h for _, fan_in in attn_in)
    assert sum(out for out, _ in attn_in) == q_dim + 2 * kv_dim


def test_projections_compute_out_from_in(model: PreTrainedModel) -> None:
    """The reported (out, in) is what the module actually maps, and storage matches the flag."""
    for kind in ("mlp_in", "mlp_out", "attn_in", "attn_out"):
        for path in module_paths(model, 0, kind):
            out_f, in_f = linear_weight_shape(model, path)
            module = get_module(model, path)
            with torch.no_grad():
                assert module(torch.randn(2, in_f)).shape == (2, out_f), path
            assert isinstance(module.weight, torch.Tensor)
            stored = tuple(module.weight.shape)
            expected = (in_f, out_f) if weight_is_transposed(model, path) else (out_f, in_f)
            assert stored == expected, path
    spec = get_arch(model)
    assert weight_is_transposed(model, module_path(model, 0, "mlp_out")) == spec.transposed_linears


def test_embeddings_match_transformers_accessors(model: PreTrainedModel) -> None:
    spec = get_arch(model)
    embed, unembed = get_module(model, spec.embed), get_module(model, spec.unembed)
    assert embed is model.get_input_embeddings()
    assert unembed is model.get_output_embeddings()
    assert isinstance(unembed.weight, torch.Tensor) and isinstance(embed.weight, torch.Tensor)
    assert tuple(unembed.weight.shape) == (vocab_size(model), hidden_size(model))
    assert tuple(embed.weight.shape) == (VOCAB_SIZE, HIDDEN)
    assert linear_weight_shape(model, spec.unembed + ".weight") == (VOCAB_SIZE, HIDDEN)
    assert not weight_is_transposed(model, spec.unembed)


def test_final_norm_sits_between_last_block_and_unembed(model: PreTrainedModel) -> None:
    spec = get_arch(model)
    seen: dict[str, list[torch.Tensor]] = {"block": [], "norm_in": [], "norm_out": [], "head": []}

    def record_norm(_m: nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> None:
        seen["norm_in"].append(args[0])
        seen["norm_out"].append(out)

    handles = [
        layer_module(model, -1).register_forward_hook(
            lambda _m, _a, out: seen["block"].append(_first(out))
        ),
        get_module(model, spec.final_norm).register_forward_hook(record_norm),
        get_module(model, spec.unembed).register_forward_pre_hook(
            lambda _m, args: seen["head"].append(args[0])
        ),
    ]
    try:
        with torch.no_grad():
            logits = model(INPUT_IDS).logits  # [batch, pos, vocab]
    finally:
        for handle in handles:
            handle.remove()
    assert all(len(v) == 1 for v in seen.values()), {k: len(v) for k, v in seen.items()}
    torch.testing.assert_close(seen["norm_in"][0], seen["block"][0])
    torch.testing.assert_close(seen["head"][0], seen["norm_out"][0])
    with torch.no_grad():
        expected = get_module(model, spec.unembed)(seen["norm_out"][0])
    cap = final_logit_softcap(model)
    if cap is not None:
        expected = cap * torch.tanh(expected / cap)
    torch.testing.assert_close(logits, expected)


@pytest.mark.parametrize("norm_kind, target_kind", [("attn_norm", "attn"), ("mlp_norm", "mlp")])
def test_norms_feed_their_module(model: PreTrainedModel, norm_kind: str, target_kind: str) -> None:
    norm_paths = module_paths(model, 1, norm_kind)
    if not norm_paths:
        pytest.skip(f"{model.config.model_type} is post-norm: no {norm_kind}")
    outs: list[torch.Tensor] = []
    ins: list[torch.Tensor] = []
    handles = [
        get_module(model, norm_paths[0]).register_forward_hook(
            lambda _m, _a, out: outs.append(out)
        ),
        get_module(model, module_path(model, 1, target_kind)).register_forward_pre_hook(
            lambda _m, args, kwargs: ins.append(_first_input(args, kwargs)), with_kwargs=True
        ),
    ]
    try:
        with torch.no_grad():
            model(INPUT_IDS)
    finally:
        for handle in handles:
            handle.remove()
    assert ins and outs
    assert any(torch.equal(ins[0], out) for out in outs)


def test_sizes_and_softcap_from_config(model: PreTrainedModel) -> None:
    assert hidden_size(model) == HIDDEN
    assert vocab_size(model.config) == VOCAB_SIZE
    cap = final_logit_softcap(model)
    assert cap is None or cap > 0


def test_parse_module_path_inverts_module_path(model: PreTrainedModel) -> None:
    for kind in KINDS:
        for path in module_paths(model, 2, kind):
            parsed = parse_module_path(model, path)
            assert parsed is not None and parsed[0] == 2, path
            assert path in module_paths(model, 2, parsed[1])
    mlp_out = module_path(model, 2, "mlp_out")
    assert parse_module_path(model, mlp_out + ".weight") == (2, "mlp_out")
    assert parse_module_path(model, get_arch(model).unembed + ".weight") is None


# --- resolution helpers ------------------------------------------------------------


def test_module_path_examples() -> None:
    llama, _ = tiny_model("llama")
    assert module_path(llama, 1, "mlp_out") == "model.layers.1.mlp.down_proj"
    assert module_path(llama, -1, "attn_out") == "model.layers.3.self_attn.o_proj"
    assert module_path(llama, 0, "block") == "model.layers.0"
    assert module_path(llama.config, 2, "mlp_in") == "model.layers.2.mlp.gate_proj"
    assert module_paths(llama, 2, "mlp_in") == (
        "model.layers.2.mlp.gate_proj",
        "model.layers.2.mlp.up_proj",
    )
    gpt2_cfg = TINY_CONFIGS["gpt2"]()
    assert module_path(gpt2_cfg, -1, "mlp_out") == "transformer.h.3.mlp.c_proj"
    gemma3_cfg = TINY_CONFIGS["gemma3"]()
    assert module_path(gemma3_cfg, 0, "mlp") == "model.language_model.layers.0.mlp"


def test_module_path_errors() -> None:
    llama_cfg = TINY_CONFIGS["llama"]()
    with pytest.raises(ArchitectureError, match=r"layer 4 is out of range for a 4-layer llama"):
        module_path(llama_cfg, 4, "mlp")
    with pytest.raises(ArchitectureError, match=r"unknown module kind 'ffn'"):
        module_path(llama_cfg, 0, "ffn")
    with pytest.raises(ArchitectureError, match=r"no 'attn_norm' module"):
        module_path(TINY_CONFIGS["olmo2"](), 0, "attn_norm")


def test_get_module_indices_and_errors() -> None:
    net = nn.Sequential(nn.Linear(2, 3), nn.ModuleList([nn.ReLU(), nn.Tanh()]))
    assert get_module(net, "") is net
    assert isinstance(get_module(net, "1.-1"), nn.Tanh)
    assert get_module(net, "1.0") is get_module(net, "1.-2")
    with pytest.raises(EditkitError, match=r"no module '1\.5' .*has no submodule '5'"):
        get_module(net, "1.5")
    with pytest.raises(ArchitectureError, match=r"'0.weight.x'.*no submodule 'weight' \(children: none\)"):
        get_module(net, "0.weight.x")


def test_linear_weight_shape_rejects_non_linear() -> None:
    llama, _ = tiny_model("llama")
    with pytest.raises(ArchitectureError, match="not a linear layer"):
        linear_weight_shape(llama, "model.norm")


# --- registry ----------------------------------------------------------------------


class _ToyBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mix = nn.ModuleDict({"qkv": nn.Linear(8, 24), "out": nn.Linear(8, 8)})
        self.ffn = nn.ModuleDict({"up": nn.Linear(8, 16), "down": nn.Linear(16, 8)})


class _Toy(nn.Module):
    """A non-transformers model: registering a spec is all it takes to use it."""

    def __init__(self) -> None:
        super().__init__()
        self.config = SimpleNamespace(model_type="toy", d=8, ffn=16, depth=3, heads=2, vocab=11)
        self.body = nn.ModuleDict(
            {"emb": nn.Embedding(11, 8), "blocks": nn.ModuleList(_ToyBlock() for _ in range(3))}
        )
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 11, bias=False)


TOY_SPEC = ArchSpec(
    model_type="toy",
    layers="body.blocks",
    attn="mix",
    mlp="ffn",
    mlp_in="ffn.up",  # type: ignore[arg-type]  # a bare string is accepted
    mlp_out="ffn.down",
    attn_out="mix.out",
    attn_in=("mix.qkv",),
    final_norm="norm",
    unembed="head",
    embed="body.emb",
    hidden_attrs=("d",),
    intermediate_attrs=("ffn",),
    layers_attrs=("depth",),
    heads_attrs=("heads",),
    vocab_attrs=("vocab",),
)


@pytest.mark.usefixtures("scratch_registry")
def test_register_custom_spec() -> None:
    toy = _Toy()
    assert register(TOY_SPEC) is TOY_SPEC
    assert registered()["toy"] is TOY_SPEC
    assert TOY_SPEC.mlp_in == ("ffn.up",)
    assert get_arch(toy) is TOY_SPEC
    assert num_layers(toy) == num_layers(toy.config) == 3
    assert module_path(toy, -1, "mlp_out") == "body.blocks.2.ffn.down"
    assert linear_weight_shape(toy, module_path(toy, 0, "mlp_out")) == (8, 16)
    assert (hidden_size(toy), intermediate_size(toy), head_dim(toy)) == (8, 16, 4)
    assert num_kv_heads(toy) == 2
    assert final_logit_softcap(toy) is None
    with pytest.raises(ArchitectureError, match="no 'attn_norm' module"):
        module_path(toy, 0, "attn_norm")


@pytest.mark.usefixtures("scratch_registry")
def test_register_refuses_duplicates_unless_overwrite() -> None:
    register(TOY_SPEC)
    other = dataclasses.replace(TOY_SPEC, final_norm="body.norm")
    with pytest.raises(ValueError, match="'toy' is already registered"):
        register(other)
    assert get_arch("toy") is TOY_SPEC
    register(other, overwrite=True)
    assert get_arch("toy") is other
    with pytest.raises(ValueError, match="already registered"):
        register(get_arch("llama"))
    with pytest.raises(TypeError):
        register({"model_type": "x"})  # type: ignore[arg-type]


def test_registered_returns_a_copy() -> None:
    snapshot = registered()
    snapshot.pop("llama")
    assert "llama" in registered()


def test_unknown_type_error_names_type_and_fix() -> None:
    with pytest.raises(EditkitError) as info:
        get_arch(SimpleNamespace(model_type="mamba_x"))
    message = str(info.value)
    assert "\n" not in message
    assert "'mamba_x'" in message and "register(" in message and "llama" in message
    with pytest.raises(ArchitectureError, match="cannot tell the architecture"):
        get_arch(object())


def test_spec_validation() -> None:
    with pytest.raises(ValueError, match="layers"):
        dataclasses.replace(TOY_SPEC, layers="")
    with pytest.raises(ValueError, match="mlp_in"):
        dataclasses.replace(TOY_SPEC, mlp_in=())
    with pytest.raises(dataclasses.FrozenInstanceError):
        TOY_SPEC.layers = "x"  # type: ignore[misc]


def test_config_helpers_without_a_model() -> None:
    gpt2 = SimpleNamespace(model_type="gpt2", n_embd=64, n_inner=None, n_head=4, n_layer=6)
    assert (hidden_size(gpt2), intermediate_size(gpt2), head_dim(gpt2)) == (64, 256, 16)
    assert num_layers(gpt2) == 6
    with pytest.raises(ArchitectureError, match=r"none of \['vocab_size'\]"):
        vocab_size(gpt2)


def test_arch_package_does_not_import_transformers() -> None:
    for source in Path(arch.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n.split(".")[0] == "transformers" for n in names), source.name


# --- the shared tiny-model helpers ---------------------------------------------------


def test_tiny_model_is_deterministic_and_leaves_global_rng_alone() -> None:
    state = torch.random.get_rng_state()
    a, cfg = tiny_model("qwen2", seed=3)
    b, _ = tiny_model("qwen2", seed=3)
    c, _ = tiny_model("qwen2", seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert not a.training and a.dtype == torch.float32
    assert cfg is a.config and cfg.pad_token_id == PAD_ID and cfg.eos_token_id == EOS_ID
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["lm_head.weight"], sc["lm_head.weight"])
    assert tiny_model("llama", num_hidden_layers=2)[1].num_hidden_layers == 2


def test_tiny_tokenizer() -> None:
    tok = tiny_tokenizer()
    assert len(tok) <= VOCAB_SIZE
    assert (tok.eos_token_id, tok.pad_token_id, tok.bos_token_id) == (EOS_ID, PAD_ID, EOS_ID)
    paris = tok(" Paris").input_ids
    assert len(paris) == 1 and tok.convert_ids_to_tokens(paris) == ["ĠParis"]
    text = "The capital of France is Paris."
    assert tok.decode(tok(text).input_ids) == text
    other = tiny_tokenizer()
    assert other is not tok
    other.padding_side = "left"
    assert tiny_tokenizer().padding_side == "right"
    chat = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False,
                                   add_generation_prompt=True)
    assert isinstance(chat, str) and chat.endswith("<|im_start|>assistant\n")
    batch = tok(["The capital of Italy is", "Toyota is a car maker from"], padding=True,
                return_tensors="pt")
    llama, _ = tiny_model("llama")
    with torch.no_grad():
        logits = llama(**batch).logits  # [batch, pos, vocab]
    assert logits.shape == (*batch["input_ids"].shape, VOCAB_SIZE)
