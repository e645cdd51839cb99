"""Built-in architecture tables, one :class:`ArchSpec` per ``config.model_type``.

Every path here was checked by building a tiny random model of that type with
transformers 5.23 (see ``tests/unit/test_arch.py``); add a type only together
with a tiny config in ``tests/tiny_models.py``.

Most decoder-only models follow the Llama layout, so they are written as
overrides of :data:`LLAMA`.

>>> LLAMA.mlp_out
'mlp.down_proj'
>>> sorted(s.model_type for s in BUILTIN_SPECS)[:3]
['bloom', 'gemma', 'gemma2']
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from editkit.arch.spec import ArchSpec

#: Llama: RMSNorm pre-norm blocks, gated SiLU MLP, separate q/k/v projections.
LLAMA = ArchSpec(
    model_type="llama",
    layers="model.layers",
    attn="self_attn",
    mlp="mlp",
    mlp_in=("mlp.gate_proj", "mlp.up_proj"),
    mlp_out="mlp.down_proj",
    attn_out="self_attn.o_proj",
    attn_in=("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    attn_norm="input_layernorm",
    mlp_norm="post_attention_layernorm",
    final_norm="model.norm",
    unembed="lm_head",
    embed="model.embed_tokens",
    gated_mlp=True,
)


def _llama_like(model_type: str, **overrides: Any) -> ArchSpec:
    return replace(LLAMA, model_type=model_type, **overrides)


# Gemma 2/3: extra "sandwich" norms; the MLP reads `pre_feedforward_layernorm`
# (their `post_attention_layernorm` normalizes the attention *output*).
_GEMMA2_NORMS: dict[str, Any] = {
    "attn_norm": "input_layernorm",
    "mlp_norm": "pre_feedforward_layernorm",
}

#: GPT-2: `Conv1D` projections store weights as [in, out]; fused q/k/v `c_attn`.
GPT2 = ArchSpec(
    model_type="gpt2",
    layers="transformer.h",
    attn="attn",
    mlp="mlp",
    mlp_in=("mlp.c_fc",),
    mlp_out="mlp.c_proj",
    attn_out="attn.c_proj",
    attn_in=("attn.c_attn",),
    attn_norm="ln_1",
    mlp_norm="ln_2",
    final_norm="transformer.ln_f",
    unembed="lm_head",
    embed="transformer.wte",
    transposed_linears=True,
    intermediate_ratio=4,
)

BUILTIN_SPECS: tuple[ArchSpec, ...] = (
    LLAMA,
    _llama_like("mistral"),
    _llama_like("qwen2"),
    _llama_like("qwen3"),
    _llama_like("smollm3"),
    _llama_like("olmo"),
    # OLMo 2 is post-norm: norms act on the attention / MLP outputs, none feeds them.
    _llama_like("olmo2", attn_norm=None, mlp_norm=None),
    _llama_like("gemma"),
    _llama_like("gemma2", **_GEMMA2_NORMS, logit_softcap_attrs=("final_logit_softcapping",)),
    _llama_like("gemma3_text", **_GEMMA2_NORMS, logit_softcap_attrs=("final_logit_softcapping",)),
    # Gemma 3 multimodal (Gemma3ForConditionalGeneration): the text model sits under
    # `model.language_model`, sizes under `config.text_config`; its forward does not
    # apply `final_logit_softcapping`.
    _llama_like(
        "gemma3",
        **_GEMMA2_NORMS,
        layers="model.language_model.layers",
        final_norm="model.language_model.norm",
        embed="model.language_model.embed_tokens",
        text_config="text_config",
    ),
    # Phi-3: fused q/k/v and fused gate/up projections.
    _llama_like("phi3", attn_in=("self_attn.qkv_proj",), mlp_in=("mlp.gate_up_proj",)),
    # Phi(-2): parallel attention and MLP reading one norm; plain GELU MLP.
    _llama_like(
        "phi",
        attn_out="self_attn.dense",
        mlp_in=("mlp.fc1",),
        mlp_out="mlp.fc2",
        mlp_norm="input_layernorm",
        final_norm="model.final_layernorm",
        gated_mlp=False,
    ),
    _llama_like("starcoder2", mlp_in=("mlp.c_fc",), mlp_out="mlp.c_proj", gated_mlp=False),
    GPT2,
    # GPT-Neo: attention wrapped twice (`attn.attention`), plain nn.Linear projections.
    replace(
        GPT2,
        model_type="gpt_neo",
        attn_out="attn.attention.out_proj",
        attn_in=("attn.attention.q_proj", "attn.attention.k_proj", "attn.attention.v_proj"),
        transposed_linears=False,
    ),
    # GPT-J: parallel attention and MLP reading `ln_1`.
    replace(
        GPT2,
        model_type="gptj",
        mlp_in=("mlp.fc_in",),
        mlp_out="mlp.fc_out",
        attn_out="attn.out_proj",
        attn_in=("attn.q_proj", "attn.k_proj", "attn.v_proj"),
        mlp_norm="ln_1",
        transposed_linears=False,
    ),
    # GPT-NeoX (Pythia): the unembedding is `lm_head` in transformers 5 (was `embed_out`).
    ArchSpec(
        model_type="gpt_neox",
        layers="gpt_neox.layers",
        attn="attention",
        mlp="mlp",
        mlp_in=("mlp.dense_h_to_4h",),
        mlp_out="mlp.dense_4h_to_h",
        attn_out="attention.dense",
        attn_in=("attention.query_key_value",),
        attn_norm="input_layernorm",
        mlp_norm="post_attention_layernorm",
        final_norm="gpt_neox.final_layer_norm",
        unembed="lm_head",
        embed="gpt_neox.embed_in",
    ),
    # BLOOM: fused q/k/v, MLP width fixed at 4 * hidden.
    ArchSpec(
        model_type="bloom",
        layers="transformer.h",
        attn="self_attention",
        mlp="mlp",
        mlp_in=("mlp.dense_h_to_4h",),
        mlp_out="mlp.dense_4h_to_h",
        attn_out="self_attention.dense",
        attn_in=("self_attention.query_key_value",),
        attn_norm="input_layernorm",
        mlp_norm="post_attention_layernorm",
        final_norm="transformer.ln_f",
        unembed="lm_head",
        embed="transformer.word_embeddings",
        intermediate_attrs=(),
        intermediate_ratio=4,
    ),
)
