"""What a MEND editor was trained for: which matrices, of which model, and checking a model is that one.

A :class:`MendSpec` names the edited matrices (a :class:`~editkit.localize.Location`
of weight sites, by default the MLP matrices of the last 3 blocks: gate/up/down
on Llama-style models, ``c_fc``/``c_proj`` on GPT-2), their shapes, the editor
networks' rank, and the base model: what the user called it and two hashes of
its weights (:func:`editkit.report.weights_sha256`): of every tensor (for
provenance, comparable with reports), and of every tensor *except* the edited
matrices (checked before each edit, so a model already carrying an edit of
those matrices is still recognized, while any other model is refused).

>>> loc = mend_location(model)                       # doctest: +SKIP
>>> [s.param for s in loc][:1]                       # doctest: +SKIP
['model.layers.27.mlp.gate_proj.weight']
"""

from __future__ import annotations

import weakref
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from editkit.arch import (
    ArchitectureError,
    get_module,
    hidden_size,
    linear_weight_shape,
    model_type_of,
    module_paths,
    num_layers,
)
from editkit.errors import EditkitError
from editkit.localize.location import MODULE_KINDS, Location, Site, resolve_layer
from editkit.placement import offload_store_key

#: Rank of the editor networks for large models (the published GPT-2 XL / GPT-J setting).
MAX_RANK = 1920


@dataclass(frozen=True)
class MendSpec:
    """The edited matrices and the base model a MEND editor belongs to.

    Attributes:
        location: one weight site per edited matrix, in a fixed order.
        shapes: parameter name -> ``(d_out, d_in)`` (canonical, whatever the storage).
        rank: rank of the low-rank blocks of the editor networks.
        step_init: initial per-matrix step size.
        base_model: the base model as the user named it (alias, folder, hub id).
        model_type: its ``config.model_type``.
        base_weights_sha256: hash of every tensor of the base model.
        frozen_weights_sha256: hash of every tensor except the edited matrices.
    """

    location: Location
    shapes: dict[str, tuple[int, int]]
    rank: int
    step_init: float
    base_model: str
    model_type: str
    base_weights_sha256: str
    frozen_weights_sha256: str

    @property
    def params(self) -> tuple[str, ...]:
        return self.location.params

    def groups(self) -> dict[str, list[str]]:
        """Shape key (``"1536x576"``) -> the parameters of that shape, in location order."""
        out: dict[str, list[str]] = {}
        for param in self.params:
            out.setdefault(shape_key(self.shapes[param]), []).append(param)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "location": self.location.to_dict(),
            "shapes": {k: list(v) for k, v in self.shapes.items()},
            "rank": self.rank,
            "step_init": self.step_init,
            "base_model": self.base_model,
            "model_type": self.model_type,
            "base_weights_sha256": self.base_weights_sha256,
            "frozen_weights_sha256": self.frozen_weights_sha256,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MendSpec:
        shapes = {str(k): (int(v[0]), int(v[1])) for k, v in d["shapes"].items()}
        return cls(
            Location.from_dict(d["location"]),
            shapes,
            int(d["rank"]),
            float(d["step_init"]),
            str(d["base_model"]),
            str(d["model_type"]),
            str(d["base_weights_sha256"]),
            str(d["frozen_weights_sha256"]),
        )


def shape_key(shape: tuple[int, int]) -> str:
    return f"{shape[0]}x{shape[1]}"


def module_of(param: str) -> str:
    """``model.layers.3.mlp.down_proj.weight`` -> ``model.layers.3.mlp.down_proj``."""
    return param.removesuffix(".weight")


def default_rank(model: nn.Module) -> int:
    """``min(1920, hidden_size // 4)`` (at least 8): 144 for a 576-wide model, 1024 for 4096."""
    return min(MAX_RANK, max(8, hidden_size(model) // 4))


def mend_location(
    model: nn.Module, layers: Sequence[int] = (), modules: Sequence[str] = ("mlp_up", "mlp_down")
) -> Location:
    """The weight matrices of ``modules`` in ``layers`` (default: the last 3 blocks).

    ``mlp_up`` covers every MLP input projection (gate and up on gated MLPs).
    """
    n = num_layers(model)
    chosen = sorted({resolve_layer(model, int(layer)) for layer in layers}) if layers else list(range(max(0, n - 3), n))
    sites = []
    for layer in chosen:
        for module in modules:
            if module not in MODULE_KINDS or module in ("mlp", "attn", "block"):
                raise EditkitError(f"mend edits projections: choose modules from mlp_up, mlp_down, attn_out, not {module!r}")
            try:
                paths = module_paths(model, layer, MODULE_KINDS[module])
            except ArchitectureError as exc:
                raise EditkitError(str(exc)) from None
            for path in paths:
                weight = getattr(get_module(model, path), "weight", None)
                if not isinstance(weight, torch.Tensor) or weight.ndim != 2:
                    raise EditkitError(f"{path} has no 2-D weight: MEND edits linear layers only")
                sites.append(Site(f"{path}.weight", layer, module))
    if not sites:
        raise EditkitError("no matrices to edit: give at least one layer and module")
    names = "/".join(dict.fromkeys(modules))
    reason = f"mend: {names} weights of layers {', '.join(map(str, chosen))} (the editor networks are trained for these)"
    return Location(tuple(sites), "mend", reason)


# model -> (state key, hash): a model whose tensors did not change is not hashed again.
_HASHES: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[Any, ...], str]] = weakref.WeakKeyDictionary()


def frozen_weights_sha256(model: nn.Module, edited: Collection[str]) -> str:
    """:func:`~editkit.report.weights_sha256` of every tensor except ``edited`` (memoized per model).

    The memo is keyed by each tensor's storage and in-place version counter,
    so any change to a weight (``apply``, ``load_state_dict``, ``copy_``) is noticed.
    A weight a device map offloads is keyed by the hook's store and its key in it
    (:func:`~editkit.placement.offload_store_key`): reading it gives a new tensor
    every time, and editkit never writes to the store.
    """
    from editkit.placement import is_offloaded, param_value
    from editkit.report import weights_sha256

    state = {k: v for k, v in model.state_dict().items() if k not in edited}
    offloaded = {k for k, v in state.items() if v.is_meta and is_offloaded(model, k)}
    key = tuple(_memo_key(model, k, v, k in offloaded) for k, v in sorted(state.items()))
    cached = _HASHES.get(model)
    if cached is not None and cached[0] == key:
        return cached[1]
    # weights a device map offloads are read where they are stored (the model's own are meta placeholders)
    digest = weights_sha256({k: param_value(model, k) if k in offloaded else v for k, v in state.items()})
    _HASHES[model] = (key, digest)
    return digest


def _memo_key(model: nn.Module, name: str, tensor: torch.Tensor, offloaded: bool) -> tuple[Any, ...]:
    if offloaded:
        stored = offload_store_key(model, name)
        # other values given to the hook (an overlay): not memoized, a fresh object never equals a later key
        return (name, "offloaded", stored if stored is not None else object())
    return (name, tensor.data_ptr(), tensor._version)


def build_spec(model: nn.Module, location: Location, *, rank: int, step_init: float, base_model: str) -> MendSpec:
    """Describe ``model`` and the matrices at ``location`` (hashes its weights: ~1 s per GB)."""
    from editkit.report import weights_sha256

    shapes = {p: linear_weight_shape(model, p) for p in location.params}
    return MendSpec(
        location=location,
        shapes=shapes,
        rank=rank,
        step_init=step_init,
        base_model=base_model,
        model_type=model_type_of(model),
        base_weights_sha256=weights_sha256(model),
        frozen_weights_sha256=frozen_weights_sha256(model, location.params),
    )


def _has_parameter(model: nn.Module, name: str) -> bool:
    try:
        model.get_parameter(name)
    except AttributeError:
        return False
    return True


def check_model(model: nn.Module, spec: MendSpec, *, where: str = "the MEND editor") -> None:
    """Refuse a model that is not the one the editor was trained for (one clear line)."""
    trained_for = f"{where} was trained for {spec.base_model} ({spec.model_type}, weights sha256 {spec.base_weights_sha256[:12]})"
    how = "train an editor for this model with `editkit mend train --model ...`"
    model_type = model_type_of(model)
    if model_type != spec.model_type:
        raise EditkitError(f"{trained_for}, not a {model_type} model: {how}")
    for param, shape in spec.shapes.items():
        if not _has_parameter(model, param) or linear_weight_shape(model, param) != tuple(shape):
            raise EditkitError(f"{trained_for}; this model has no {shape_key(shape)} matrix {param}: {how}")
    digest = frozen_weights_sha256(model, spec.params)
    if digest != spec.frozen_weights_sha256:
        raise EditkitError(f"{trained_for}; this model's weights differ: {how}")
