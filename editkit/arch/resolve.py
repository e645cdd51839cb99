"""Resolve :class:`ArchSpec` paths against a model: blocks, module paths, weight shapes.

Every other module finds its way around a model through these helpers, so that
no code outside :mod:`editkit.arch` spells a module path.

>>> from editkit.arch import module_path
>>> module_path(model, 20, "mlp_out")  # doctest: +SKIP
'model.layers.20.mlp.down_proj'
"""

from __future__ import annotations

from typing import Any

from torch import nn

from editkit.arch.config import _require
from editkit.arch.registry import get_arch
from editkit.arch.spec import KINDS, PROJECTION_KINDS, ArchitectureError

_PARAM_SUFFIXES = (".weight", ".bias")


def _join(*parts: str) -> str:
    return ".".join(p for p in parts if p)


def _child(module: nn.Module, name: str) -> nn.Module | None:
    if isinstance(module, (nn.ModuleList, nn.Sequential)) and name.lstrip("-").isdigit():
        index = int(name)
        return module[index] if -len(module) <= index < len(module) else None
    child = getattr(module, name, None)
    return child if isinstance(child, nn.Module) else None


def get_module(root: nn.Module, path: str) -> nn.Module:
    """The submodule at a dotted path; integer parts (negative too) index a ``ModuleList``.

    Args:
        root: The module the path starts from (usually the ``*ForCausalLM``).
        path: Dotted path such as ``"model.layers.3.mlp"``; ``""`` is ``root``.

    Raises:
        ArchitectureError: Some part does not resolve; the message names the
            path, the part, and the children that do exist there.

    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(2, 3), nn.ModuleList([nn.ReLU(), nn.Tanh()]))
    >>> get_module(net, "1.-1")
    Tanh()
    """
    module = root
    walked: list[str] = []
    for part in path.split(".") if path else ():
        child = _child(module, part)
        if child is None:
            where = ".".join(walked) or "<root>"
            children = ", ".join(name for name, _ in module.named_children()) or "none"
            raise ArchitectureError(
                f"no module {path!r} in {type(root).__name__}: {where} "
                f"({type(module).__name__}) has no submodule {part!r} (children: {children})"
            )
        module = child
        walked.append(part)
    return module


def num_layers(model_or_config: Any) -> int:
    """Number of decoder blocks (counted in the model, or read from a config).

    >>> from types import SimpleNamespace
    >>> num_layers(SimpleNamespace(model_type="gpt2", n_layer=12))
    12
    """
    spec = get_arch(model_or_config)
    if isinstance(model_or_config, nn.Module):
        return len(get_module(model_or_config, spec.layers))  # type: ignore[arg-type]
    return _require(model_or_config, "layers_attrs", "number of layers")


def _layer_index(model_or_config: Any, layer: int) -> int:
    n = num_layers(model_or_config)
    if not isinstance(layer, int) or isinstance(layer, bool) or not -n <= layer < n:
        raise ArchitectureError(
            f"layer {layer!r} is out of range for a {n}-layer "
            f"{get_arch(model_or_config).model_type} model (use 0..{n - 1}, or -{n}..-1)"
        )
    return layer % n


def layer_module(model: nn.Module, layer: int) -> nn.Module:
    """Decoder block ``layer`` (negative counts from the end).

    >>> layer_module(model, -1)  # doctest: +SKIP
    LlamaDecoderLayer(...)
    """
    spec = get_arch(model)
    return get_module(model, _join(spec.layers, str(_layer_index(model, layer))))


def module_paths(model_or_config: Any, layer: int, kind: str) -> tuple[str, ...]:
    """Full paths (from the root) of the modules of one kind in block ``layer``.

    Args:
        model_or_config: A model, or its config (the layer count then comes from the config).
        layer: Block index; negative counts from the end and is normalized.
        kind: One of :data:`editkit.arch.KINDS`.

    Returns:
        One path per module; several for ``mlp_in``/``attn_in``, none when the
        architecture lacks the kind (``attn_norm`` of a post-norm model).

    >>> module_paths(model, 2, "mlp_in")  # doctest: +SKIP
    ('model.layers.2.mlp.gate_proj', 'model.layers.2.mlp.up_proj')
    """
    spec = get_arch(model_or_config)
    relative = spec.block_paths(kind)
    block = _join(spec.layers, str(_layer_index(model_or_config, layer)))
    return tuple(_join(block, rel) for rel in relative)


def module_path(model_or_config: Any, layer: int, kind: str) -> str:
    """Full path (from the root) of one module of block ``layer``.

    ``kind`` is one of ``block``, ``attn``, ``mlp``, ``mlp_in`` (the first input
    projection), ``mlp_out``, ``attn_in`` (the first), ``attn_out``,
    ``attn_norm``, ``mlp_norm``.

    Raises:
        ArchitectureError: Unknown kind, layer out of range, or the
            architecture has no module of that kind.

    >>> module_path(model, -1, "mlp_out")  # doctest: +SKIP
    'model.layers.29.mlp.down_proj'
    """
    paths = module_paths(model_or_config, layer, kind)
    if not paths:
        spec = get_arch(model_or_config)
        raise ArchitectureError(
            f"{spec.model_type} blocks have no {kind!r} module; "
            f"pick another kind or register a spec that sets it"
        )
    return paths[0]


def _strip_param(path: str) -> str:
    for suffix in _PARAM_SUFFIXES:
        if path.endswith(suffix):
            return path[: -len(suffix)]
    return path


def parse_module_path(model_or_config: Any, path: str) -> tuple[int, str] | None:
    """Inverse of :func:`module_path`: ``(layer, kind)`` for a block-level path, else None.

    A trailing ``.weight``/``.bias`` is ignored, so parameter names work too.

    >>> parse_module_path("llama", "model.layers.20.mlp.down_proj.weight")
    (20, 'mlp_out')
    >>> parse_module_path("llama", "lm_head.weight") is None
    True
    """
    spec = get_arch(model_or_config)
    path = _strip_param(path)
    prefix = spec.layers + "."
    if not path.startswith(prefix):
        return None
    index, _, relative = path[len(prefix):].partition(".")
    if not index.isdigit():
        return None
    for kind in KINDS:
        if relative in spec.block_paths(kind):
            return int(index), kind
    return None


def weight_is_transposed(model: nn.Module, path: str) -> bool:
    """Whether the weight at ``path`` is stored ``[in, out]`` rather than ``[out, in]``.

    True only for the block projections of a spec with ``transposed_linears``
    (GPT-2 ``Conv1D``) that are not ``nn.Linear``; embeddings and ``lm_head``
    are never transposed.

    >>> weight_is_transposed(gpt2, "transformer.h.0.mlp.c_fc")  # doctest: +SKIP
    True
    """
    spec = get_arch(model)
    module = get_module(model, _strip_param(path))
    if isinstance(module, nn.Linear):
        return False
    parsed = parse_module_path(model, path)
    return spec.transposed_linears and parsed is not None and parsed[1] in PROJECTION_KINDS


def linear_weight_shape(model: nn.Module, path: str) -> tuple[int, int]:
    """``(out_features, in_features)`` of a linear-like module, whatever its storage.

    Args:
        model: The causal LM.
        path: Module path from the root (a trailing ``.weight`` is accepted).

    Raises:
        ArchitectureError: The module is not linear-like (no 2-D weight and no
            ``in_features``/``out_features``).

    >>> linear_weight_shape(gpt2, "transformer.h.0.mlp.c_fc")  # doctest: +SKIP
    (3072, 768)
    """
    module = get_module(model, _strip_param(path))
    out_f, in_f = getattr(module, "out_features", None), getattr(module, "in_features", None)
    if isinstance(out_f, int) and isinstance(in_f, int):
        return out_f, in_f
    weight = getattr(module, "weight", None)
    if weight is None or weight.dim() != 2:
        raise ArchitectureError(
            f"{path!r} ({type(module).__name__}) is not a linear layer: "
            "it has no 2-D weight; pass the path of a projection"
        )
    rows, cols = weight.shape
    if weight_is_transposed(model, path):
        return int(cols), int(rows)
    return int(rows), int(cols)
