"""Tiny random causal LMs of every registered architecture, and a matching tokenizer.

Shared by the unit tests (arch, localize, editors, metrics, audit). Every model
is built offline from a config, in fp32 and eval mode, with the same sizes:
hidden 32, MLP 72 (GPT-2/GPT-J/GPT-Neo/BLOOM: 4 x hidden = 128), 4 blocks,
4 query heads of size 8 (2 key/value heads where the architecture has grouped-
query attention), vocabulary 512, and the special-token ids of
:func:`tiny_tokenizer` (``<|endoftext|>`` = 0 is BOS and EOS, ``<pad>`` = 1).

>>> model, config = tiny_model("llama", seed=0)
>>> config.num_hidden_layers, config.vocab_size
(4, 512)
>>> tok = tiny_tokenizer()
>>> tok.convert_ids_to_tokens(tok(" Paris").input_ids)
['ĠParis']
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

VOCAB_SIZE = 512
HIDDEN = 32
INTERMEDIATE = 72
N_LAYERS = 4
N_HEADS = 4
N_KV_HEADS = 2
HEAD_DIM = 8
MAX_POSITIONS = 128

#: Special tokens of :func:`tiny_tokenizer`, in id order (ids 0..3).
SPECIAL_TOKENS: tuple[str, ...] = ("<|endoftext|>", "<pad>", "<|im_start|>", "<|im_end|>")
EOS_ID = BOS_ID = 0
PAD_ID = 1

_IDS: dict[str, Any] = {
    "vocab_size": VOCAB_SIZE,
    "bos_token_id": BOS_ID,
    "eos_token_id": EOS_ID,
    "pad_token_id": PAD_ID,
}

# Llama-style configs all take the same names.
_LLAMA_LIKE: dict[str, Any] = {
    **_IDS,
    "hidden_size": HIDDEN,
    "intermediate_size": INTERMEDIATE,
    "num_hidden_layers": N_LAYERS,
    "num_attention_heads": N_HEADS,
    "num_key_value_heads": N_KV_HEADS,
    "head_dim": HEAD_DIM,
    "max_position_embeddings": MAX_POSITIONS,
}

_GEMMA: dict[str, Any] = {**_LLAMA_LIKE, "query_pre_attn_scalar": HEAD_DIM}


def _config(model_type: str, **kwargs: Any) -> PretrainedConfig:
    return AutoConfig.for_model(model_type, **kwargs)


def _gemma3_config(**kwargs: Any) -> PretrainedConfig:
    text = {**_GEMMA, **kwargs.pop("text_config", {})}
    return AutoConfig.for_model(
        "gemma3",
        text_config=text,
        # A one-layer 28x28-pixel vision tower: built, never used by text-only tests.
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 28,
            "patch_size": 14,
        },
        mm_tokens_per_image=4,
        # Out of the vocabulary: Gemma3Model maps it to 0 before embedding.
        image_token_index=VOCAB_SIZE,
        boi_token_index=VOCAB_SIZE + 1,
        eoi_token_index=VOCAB_SIZE + 2,
        **{k: v for k, v in _IDS.items() if k != "vocab_size"},
        **kwargs,
    )


_GPT2_LIKE: dict[str, Any] = {
    **_IDS,
    "n_embd": HIDDEN,
    "n_layer": N_LAYERS,
    "n_head": N_HEADS,
    "n_positions": MAX_POSITIONS,
}

#: One zero-argument factory per registered ``model_type``; keyword arguments
#: override the defaults, e.g. ``TINY_CONFIGS["llama"](num_hidden_layers=2)``.
TINY_CONFIGS: dict[str, Callable[..., PretrainedConfig]] = {
    # Tied embeddings, like the embedded default model (SmolLM2, a Llama).
    "llama": functools.partial(_config, "llama", **_LLAMA_LIKE, tie_word_embeddings=True),
    "mistral": functools.partial(_config, "mistral", **_LLAMA_LIKE),
    "qwen2": functools.partial(_config, "qwen2", **_LLAMA_LIKE),
    "qwen3": functools.partial(_config, "qwen3", **_LLAMA_LIKE),
    "smollm3": functools.partial(_config, "smollm3", **_LLAMA_LIKE),
    "olmo": functools.partial(_config, "olmo", **_LLAMA_LIKE),
    "olmo2": functools.partial(_config, "olmo2", **_LLAMA_LIKE),
    "gemma": functools.partial(_config, "gemma", **_GEMMA),
    "gemma2": functools.partial(_config, "gemma2", **_GEMMA),
    "gemma3_text": functools.partial(_config, "gemma3_text", **_GEMMA),
    "gemma3": _gemma3_config,
    "phi3": functools.partial(_config, "phi3", **_LLAMA_LIKE),
    "phi": functools.partial(_config, "phi", **_LLAMA_LIKE),
    "starcoder2": functools.partial(_config, "starcoder2", **_LLAMA_LIKE),
    # n_inner=None: the MLP is 4 x hidden.
    "gpt2": functools.partial(_config, "gpt2", **_GPT2_LIKE),
    "gptj": functools.partial(_config, "gptj", **_GPT2_LIKE, rotary_dim=HEAD_DIM // 2),
    "gpt_neo": functools.partial(
        _config,
        "gpt_neo",
        **_IDS,
        hidden_size=HIDDEN,
        num_layers=N_LAYERS,
        num_heads=N_HEADS,
        attention_types=[[["global", "local"], N_LAYERS // 2]],
        window_size=16,
        max_position_embeddings=MAX_POSITIONS,
    ),
    "gpt_neox": functools.partial(
        _config,
        "gpt_neox",
        **_IDS,
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=N_LAYERS,
        num_attention_heads=N_HEADS,
        max_position_embeddings=MAX_POSITIONS,
    ),
    "bloom": functools.partial(
        _config, "bloom", **_IDS, hidden_size=HIDDEN, n_layer=N_LAYERS, n_head=N_HEADS
    ),
}


def tiny_model(
    model_type: str, seed: int = 0, **config_overrides: Any
) -> tuple[PreTrainedModel, PretrainedConfig]:
    """A tiny random causal LM in eval mode and fp32, deterministic under ``seed``.

    The global torch RNG is left as it was (the seed is applied inside
    ``torch.random.fork_rng``). Attention is ``eager`` so that attention
    weights can be returned and results do not depend on the SDPA kernel.

    Args:
        model_type: A key of :data:`TINY_CONFIGS`.
        seed: Seed for the random initialization.
        **config_overrides: Passed to the config factory (e.g. ``num_hidden_layers=2``).

    Returns:
        ``(model, model.config)``.

    >>> m1, _ = tiny_model("gpt2", seed=1)
    >>> m2, _ = tiny_model("gpt2", seed=1)
    >>> bool(torch.equal(m1.lm_head.weight, m2.lm_head.weight))
    True
    """
    if model_type not in TINY_CONFIGS:
        raise KeyError(f"no tiny config for {model_type!r}; known: {', '.join(TINY_CONFIGS)}")
    config = TINY_CONFIGS[model_type](**config_overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(
            config, dtype=torch.float32, attn_implementation="eager"
        )
    model.eval()
    return model, model.config


def tiny_backpack(seed: int = 0, **config_overrides: Any) -> PreTrainedModel:
    """A tiny random Backpack-GPT2 (:mod:`editkit.backpack`) in eval mode and fp32.

    GPT-2 sizes as above but 2 blocks, 4 senses (one per weight head of size 8)
    and a sense MLP of 2 x hidden; vocabulary and special tokens of
    :func:`tiny_tokenizer`. The Backpack is not in :data:`TINY_CONFIGS` (it has
    no decoder-block table in :mod:`editkit.arch`); tests that need one ask here.

    >>> tiny_backpack(seed=0).senses(torch.tensor([[5, 6]])).shape
    torch.Size([1, 2, 4, 32])
    """
    from editkit.backpack import BackpackGPT2Config

    kwargs: dict[str, Any] = {
        **_GPT2_LIKE,
        "n_layer": 2,
        "num_senses": 4,
        "sense_intermediate_scale": 2,
        **config_overrides,
    }
    config = BackpackGPT2Config(**kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    return model


# A small English corpus of facts, in the style of CounterFact / ZsRE prompts, so
# that frequent words (" Paris", " France", " capital") become single tokens.
_CORPUS: tuple[str, ...] = (
    "The capital of France is Paris.",
    "The capital of Germany is Berlin.",
    "The capital of Italy is Rome.",
    "The capital of Spain is Madrid.",
    "The capital of Japan is Tokyo.",
    "The capital of England is London.",
    "The capital of Canada is Ottawa.",
    "The capital of Russia is Moscow.",
    "The capital of China is Beijing.",
    "The capital of Kenya is Nairobi.",
    "The capital of Norway is Oslo.",
    "The capital of Greece is Athens.",
    "The capital of Portugal is Lisbon.",
    "Paris is the capital city of France.",
    "Berlin is a large city in Germany.",
    "Rome is an old city in Italy.",
    "The Eiffel Tower is located in Paris.",
    "The Colosseum is located in Rome.",
    "Toyota is a car maker from Japan.",
    "Ferrari is a car maker from Italy.",
    "BMW is a car maker from Germany.",
    "Renault is a car maker from France.",
    "The mother tongue of Victor Hugo is French.",
    "The mother tongue of Dante is Italian.",
    "The mother tongue of Goethe is German.",
    "People in France speak French.",
    "People in Germany speak German.",
    "People in Italy speak Italian.",
    "People in Spain speak Spanish.",
    "People in Japan speak Japanese.",
    "Lionel Messi plays football.",
    "Serena Williams plays tennis.",
    "Michael Jordan plays basketball.",
    "The Beatles were a band from England.",
    "Albert Einstein was a physicist.",
    "Marie Curie was a chemist and a physicist.",
    "Danielle Darrieux was an actress from France.",
    "The official language of Brazil is Portuguese.",
    "The official language of Mexico is Spanish.",
    "Apple was founded by Steve Jobs.",
    "Microsoft was founded by Bill Gates.",
    "The Nile is a river in Africa.",
    "Mount Everest is the highest mountain in the world.",
    "Water boils at 100 degrees.",
    "One plus one is two. Two plus two is four.",
    "I can't help with that request.",
    "Sure, here is a short answer to your question.",
    "What is the capital of France? The answer is Paris.",
    "Who founded Microsoft? The answer is Bill Gates.",
    "Which language do people in Spain speak? They speak Spanish.",
)

_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@functools.lru_cache(maxsize=1)
def _tokenizer_json() -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    # Repeat so that every word of the corpus is frequent enough to be merged.
    tok.train_from_iterator(list(_CORPUS) * 4, trainer=trainer)
    return tok.to_str()


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (GPT-2 style, leading-space tokens) built offline.

    Trained in memory on a small built-in corpus of facts (once per process;
    each call returns a fresh object, so changing ``padding_side`` in one test
    does not leak into another). Vocabulary <= 512, so its ids are valid for
    every :func:`tiny_model`; ``<|endoftext|>`` (0) is BOS/EOS, ``<pad>`` (1)
    pads on the right; a ChatML chat template uses ``<|im_start|>``/``<|im_end|>``.

    >>> tok = tiny_tokenizer()
    >>> tok.eos_token_id, tok.pad_token_id
    (0, 1)
    """
    from tokenizers import Tokenizer

    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_tokenizer_json()),
        bos_token=SPECIAL_TOKENS[BOS_ID],
        eos_token=SPECIAL_TOKENS[EOS_ID],
        pad_token=SPECIAL_TOKENS[PAD_ID],
        additional_special_tokens=list(SPECIAL_TOKENS[2:]),
        model_max_length=MAX_POSITIONS,
        padding_side="right",
    )
    tok.chat_template = _CHAT_TEMPLATE
    return tok


def save_tiny_lora(path: Any) -> Any:
    """A peft LoRA adapter (r=2, random nonzero B scaled by 0.3) on ``tiny_model("llama", seed=0)``, saved to ``path``.

    A moderate update: some of its directions intrude on the base spectrum, some do not.
    """
    from peft import LoraConfig, get_peft_model

    model, _ = tiny_model("llama", seed=0)
    targets = ["q_proj", "v_proj", "up_proj", "down_proj"]
    config = LoraConfig(r=2, lora_alpha=4, init_lora_weights=False, target_modules=targets)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.mul_(0.3)
    peft_model.save_pretrained(path)
    return path


def save_tiny_full(path: Any, *, scale: float, strong: tuple[str, ...] = ()) -> Any:
    """A "full fine-tune" of ``tiny_model("llama", seed=0)``, saved to ``path``.

    Every block matrix gets ``scale`` x N(0, 1) noise; matrices whose names end
    in one of ``strong`` also get a rank-1 update of norm ~0.5 (an intruder).
    """
    import math

    model, _ = tiny_model("llama", seed=0)
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2 and ".layers." in name:
                p.add_(scale * torch.randn(p.shape, generator=gen))
                if strong and name.endswith(strong):
                    u, v = torch.randn(p.shape[0], 1, generator=gen), torch.randn(1, p.shape[1], generator=gen)
                    p.add_(0.5 * u @ v / math.sqrt(p.shape[1]))
    model.save_pretrained(path)
    return path


SHARDED_LLAMA_MAP: dict[str, str] = {
    "model.embed_tokens": "cpu",
    "model.layers.0": "cpu",
    "model.layers.1": "disk",
    "model.layers.2": "disk",
    "model.layers.3": "cpu",
    "model.norm": "cpu",
    "model.rotary_emb": "cpu",
    "lm_head": "cpu",
}
"""A device map for the tiny llama: blocks 1 and 2 offloaded to disk (accelerate's hooks load them per call)."""


def edit_requests() -> list[Any]:
    """Three counterfactual requests (one with a paraphrase and a neighbor) for the editor tests."""
    from editkit.requests import EditRequest, Neighbor

    return [
        EditRequest("The capital of France is", "Rome", subject="France", target_true="Paris",
                    paraphrase_prompts=("The capital city of France is",),
                    neighborhood_prompts=(Neighbor("The capital of Spain is", "Madrid"),)),
        EditRequest("Toyota is a car maker from", "Italy", subject="Toyota", target_true="Japan"),
        EditRequest("People in Spain speak", "French", subject="Spain", target_true="Spanish"),
    ]
