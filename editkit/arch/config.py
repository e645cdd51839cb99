"""Sizes read from a model config through the attribute-name tables of its :class:`ArchSpec`.

Configs spell the same size differently (``hidden_size`` / ``n_embd``,
``intermediate_size`` / ``n_inner`` / nothing); the spec lists the names to
try, so nothing here branches on the architecture.

>>> from types import SimpleNamespace
>>> cfg = SimpleNamespace(model_type="gpt2", n_embd=64, n_inner=None, n_head=4)
>>> hidden_size(cfg), intermediate_size(cfg), head_dim(cfg)
(64, 256, 16)
"""

from __future__ import annotations

from typing import Any

from torch import nn

from editkit.arch.registry import get_arch
from editkit.arch.spec import ArchitectureError


def _root_config(model_or_config: Any) -> Any:
    if isinstance(model_or_config, nn.Module) or not hasattr(model_or_config, "model_type"):
        return model_or_config.config
    return model_or_config


def text_config(model_or_config: Any) -> Any:
    """The config that holds the language model's sizes (the sub-config of multimodal models).

    Args:
        model_or_config: A model with a ``.config`` or a config.

    >>> from types import SimpleNamespace
    >>> text_config(SimpleNamespace(model_type="llama", hidden_size=8)).hidden_size
    8
    """
    config = _root_config(model_or_config)
    spec = get_arch(config)
    if spec.text_config is None:
        return config
    sub = getattr(config, spec.text_config, None)
    if sub is None:
        raise ArchitectureError(
            f"{spec.model_type} config has no {spec.text_config!r} sub-config; "
            "fix the config or register a spec with text_config=None"
        )
    return sub


def _lookup(model_or_config: Any, attrs: tuple[str, ...]) -> int | None:
    cfg = text_config(model_or_config)
    for name in attrs:
        value = getattr(cfg, name, None)
        if value is not None:
            return int(value)
    return None


def _require(model_or_config: Any, field: str, what: str) -> int:
    spec = get_arch(_root_config(model_or_config))
    attrs: tuple[str, ...] = getattr(spec, field)
    value = _lookup(model_or_config, attrs)
    if value is None:
        raise ArchitectureError(
            f"{spec.model_type} config sets none of {list(attrs)} ({what}); "
            f"register a spec whose {field} names the right config attribute"
        )
    return value


def hidden_size(model_or_config: Any) -> int:
    """Width of the residual stream.

    >>> from types import SimpleNamespace
    >>> hidden_size(SimpleNamespace(model_type="llama", hidden_size=576))
    576
    """
    return _require(model_or_config, "hidden_attrs", "hidden size")


def intermediate_size(model_or_config: Any) -> int:
    """Width of the MLP hidden layer (per gate/up projection for gated MLPs).

    Falls back to ``spec.intermediate_ratio * hidden_size`` when the config
    leaves it unset (GPT-2's ``n_inner=None``).

    >>> from types import SimpleNamespace
    >>> intermediate_size(SimpleNamespace(model_type="llama", intermediate_size=1536))
    1536
    """
    spec = get_arch(_root_config(model_or_config))
    value = _lookup(model_or_config, spec.intermediate_attrs)
    if value is not None:
        return value
    if spec.intermediate_ratio is not None:
        return spec.intermediate_ratio * hidden_size(model_or_config)
    raise ArchitectureError(
        f"{spec.model_type} config sets none of {list(spec.intermediate_attrs)} (MLP width); "
        "register a spec with the right intermediate_attrs or an intermediate_ratio"
    )


def num_heads(model_or_config: Any) -> int:
    """Number of query heads.

    >>> from types import SimpleNamespace
    >>> num_heads(SimpleNamespace(model_type="gpt2", n_head=12))
    12
    """
    return _require(model_or_config, "heads_attrs", "attention heads")


def num_kv_heads(model_or_config: Any) -> int:
    """Number of key/value heads (equal to :func:`num_heads` without grouped-query attention).

    >>> from types import SimpleNamespace
    >>> num_kv_heads(SimpleNamespace(model_type="llama", num_attention_heads=9,
    ...                              num_key_value_heads=3))
    3
    """
    value = _lookup(model_or_config, get_arch(_root_config(model_or_config)).kv_heads_attrs)
    return value if value is not None else num_heads(model_or_config)


def head_dim(model_or_config: Any) -> int:
    """Size of one attention head (``hidden_size // num_heads`` unless the config says).

    >>> from types import SimpleNamespace
    >>> head_dim(SimpleNamespace(model_type="gemma", head_dim=256, hidden_size=2048,
    ...                          num_attention_heads=8))
    256
    """
    value = _lookup(model_or_config, get_arch(_root_config(model_or_config)).head_dim_attrs)
    if value is not None:
        return value
    return hidden_size(model_or_config) // num_heads(model_or_config)


def vocab_size(model_or_config: Any) -> int:
    """Size of the vocabulary the unembedding produces logits for.

    >>> from types import SimpleNamespace
    >>> vocab_size(SimpleNamespace(model_type="llama", vocab_size=49152))
    49152
    """
    return _require(model_or_config, "vocab_attrs", "vocabulary size")


def final_logit_softcap(model_or_config: Any) -> float | None:
    """The cap ``c`` of the model's final logits (``c * tanh(x / c)``), or None.

    >>> from types import SimpleNamespace
    >>> final_logit_softcap(SimpleNamespace(model_type="gemma2", final_logit_softcapping=30.0))
    30.0
    """
    config = _root_config(model_or_config)
    cfg = text_config(config)
    for name in get_arch(config).logit_softcap_attrs:
        value = getattr(cfg, name, None)
        if value is not None:
            return float(value)
    return None
