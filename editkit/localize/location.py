"""Where an edit happens: :class:`Site` and :class:`Location`.

A site is one parameter tensor (by its full name, resolved through
:mod:`editkit.arch`), optionally restricted to some rows. A location is an
ordered set of sites plus how it was chosen (strategy, per-layer scores, and a
sentence saying why), so reports can show it.

>>> loc = fixed(model, layer=20, module="mlp_down")   # doctest: +SKIP
>>> [s.param for s in loc.sites]                      # doctest: +SKIP
['model.layers.20.mlp.down_proj.weight']
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from editkit.arch import ArchitectureError, get_module, module_paths, num_layers
from editkit.errors import EditkitError

#: CLI/user module names -> editkit.arch kinds.
MODULE_KINDS: dict[str, str] = {
    "mlp_down": "mlp_out",
    "mlp_up": "mlp_in",
    "mlp": "mlp",
    "attn_out": "attn_out",
    "attn": "attn",
    "block": "block",
}


@dataclass(frozen=True)
class Site:
    """One parameter tensor an editor may change.

    Attributes:
        param: full parameter name, e.g. ``model.layers.20.mlp.down_proj.weight``.
        layer: the decoder block it belongs to (None outside the blocks).
        module: the user-facing module name (``mlp_down``...).
        rows: optional row selection (None: the whole tensor).
    """

    param: str
    layer: int | None = None
    module: str | None = None
    rows: tuple[int, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"param": self.param, "layer": self.layer, "module": self.module, "rows": self.rows}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Site:
        rows = d.get("rows")
        return cls(d["param"], d.get("layer"), d.get("module"), tuple(rows) if rows is not None else None)


@dataclass(frozen=True)
class Location:
    """An ordered set of sites, and how they were chosen.

    Attributes:
        sites: the parameters to edit.
        strategy: the localizer that chose them (``fixed``, ``sweep``...).
        reason: one sentence for the report.
        scores: per-candidate scores the strategy computed (e.g. layer -> score).
    """

    sites: tuple[Site, ...]
    strategy: str = "fixed"
    reason: str = ""
    scores: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.sites:
            raise ValueError("a Location needs at least one site")
        names = [s.param for s in self.sites]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate sites in location: {names}")

    def __iter__(self) -> Iterator[Site]:
        return iter(self.sites)

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(s.param for s in self.sites)

    @property
    def layers(self) -> tuple[int, ...]:
        return tuple(sorted({s.layer for s in self.sites if s.layer is not None}))

    def parameters(self, model: nn.Module) -> dict[str, nn.Parameter]:
        """The model's parameters at these sites, by name."""
        named = dict(model.named_parameters(remove_duplicate=False))
        missing = [p for p in self.params if p not in named]
        if missing:
            raise EditkitError(f"location names parameters the model does not have: {missing[:3]}")
        return {p: named[p] for p in self.params}

    def describe(self) -> str:
        """A short human description, e.g. ``layer 20 mlp_down (1 tensor)``."""
        mods = sorted({s.module or "?" for s in self.sites})
        count = f"({len(self.sites)} tensor{'s' * (len(self.sites) != 1)})"
        if not self.layers:  # e.g. Backpack sense vectors: no decoder block
            return f"{'/'.join(mods)} {count}"
        layers = ", ".join(str(x) for x in self.layers)
        return f"layer {layers} {'/'.join(mods)} {count}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "sites": [s.to_dict() for s in self.sites],
            "strategy": self.strategy,
            "reason": self.reason,
            "scores": self.scores,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Location:
        return cls(
            tuple(Site.from_dict(s) for s in d["sites"]),
            d.get("strategy", "fixed"),
            d.get("reason", ""),
            dict(d.get("scores", {})),
        )


def resolve_layer(model: Any, layer: int | float) -> int:
    """A layer index from an index (negative counts from the end) or a relative depth in (0, 1).

    >>> resolve_layer(model_with_30_layers, 0.66)   # doctest: +SKIP
    20
    """
    n = num_layers(model)
    if isinstance(layer, float) and not layer.is_integer():
        if not 0.0 < layer < 1.0:
            raise EditkitError(f"relative layer depth must be in (0, 1), got {layer}")
        return min(n - 1, round(layer * n))
    idx = int(layer)
    if not -n <= idx < n:
        raise EditkitError(f"layer {idx} is out of range: the model has {n} layers (0..{n - 1})")
    return idx % n


def module_sites(model: nn.Module, layer: int, module: str) -> tuple[Site, ...]:
    """Every parameter (weights and biases) of ``module`` in block ``layer``."""
    if module not in MODULE_KINDS:
        raise EditkitError(f"unknown module {module!r}: choose one of {', '.join(MODULE_KINDS)}")
    try:
        paths = module_paths(model, layer, MODULE_KINDS[module])
    except ArchitectureError as exc:
        raise EditkitError(str(exc)) from None
    sites = []
    for path in paths:
        for name, _ in get_module(model, path).named_parameters():
            sites.append(Site(f"{path}.{name}", layer, module))
    if not sites:
        raise EditkitError(f"layer {layer} {module} has no parameters")
    return tuple(sites)


def fixed(model: nn.Module, layer: int | float = 0.66, module: str = "mlp_down", **_: Any) -> Location:
    """The ``fixed`` strategy: one module of one layer, by index or relative depth."""
    idx = resolve_layer(model, layer)
    reason = f"fixed: layer {idx}" + (f" (relative depth {layer})" if isinstance(layer, float) else "") + f", {module}"
    return Location(module_sites(model, idx, module), "fixed", reason)
