"""Architecture knowledge as data: where blocks, projections, norms and embeddings live.

One :class:`ArchSpec` per ``config.model_type``; users add their own with
:func:`register`. The helpers resolve spec paths against a model, so no other
module spells a module path or branches on an architecture.

>>> from editkit.arch import get_arch, module_path
>>> get_arch("gpt2").mlp_out
'mlp.c_proj'
>>> module_path(model, 20, "mlp_out")  # doctest: +SKIP
'model.layers.20.mlp.down_proj'
"""

from __future__ import annotations

from editkit.arch.config import (
    final_logit_softcap,
    head_dim,
    hidden_size,
    intermediate_size,
    num_heads,
    num_kv_heads,
    text_config,
    vocab_size,
)
from editkit.arch.registry import get_arch, model_type_of, register, registered
from editkit.arch.resolve import (
    get_module,
    layer_module,
    linear_weight_shape,
    module_path,
    module_paths,
    num_layers,
    parse_module_path,
    weight_is_transposed,
)
from editkit.arch.spec import KINDS, PROJECTION_KINDS, ArchitectureError, ArchSpec

__all__ = [
    "KINDS",
    "PROJECTION_KINDS",
    "ArchSpec",
    "ArchitectureError",
    "final_logit_softcap",
    "get_arch",
    "get_module",
    "head_dim",
    "hidden_size",
    "intermediate_size",
    "layer_module",
    "linear_weight_shape",
    "model_type_of",
    "module_path",
    "module_paths",
    "num_heads",
    "num_kv_heads",
    "num_layers",
    "parse_module_path",
    "register",
    "registered",
    "text_config",
    "vocab_size",
    "weight_is_transposed",
]
