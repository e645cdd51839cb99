"""Where to edit: one module every editor uses.

A strategy is a function ``(model, tok, requests, **options) -> Location``.
Strategies are registered here, in one table:

- ``fixed``: one module of one layer, by index or relative depth;
- ``causal-trace``: ROME-style indirect effect of restoring clean hidden states, per layer;
- ``gradient``: per-site gradient norm of the edit loss;
- ``sweep``: train on a slice of the requests at each candidate layer, score on a held-out slice;
- ``senses``: Backpack sense selection, the (token, sense) vectors that sense finetuning edits.

>>> loc = localize("fixed", model, tok, requests, layer=0.66, module="mlp_down")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from editkit.errors import EditkitError
from editkit.localize.location import (
    MODULE_KINDS,
    Location,
    Site,
    fixed,
    module_sites,
    resolve_layer,
)

Strategy = Callable[..., Location]

STRATEGIES: dict[str, Strategy] = {}


def register_strategy(name: str, fn: Strategy) -> Strategy:
    """Add a localization strategy (a name may be registered once)."""
    if name in STRATEGIES:
        raise ValueError(f"localization strategy {name!r} is already registered")
    STRATEGIES[name] = fn
    return fn


def _fixed(model: Any, tok: Any, requests: Sequence[Any], **options: Any) -> Location:
    return fixed(model, **options)


register_strategy("fixed", _fixed)


def localize(strategy: str, model: Any, tok: Any, requests: Sequence[Any], **options: Any) -> Location:
    """Run a registered strategy."""
    _load_builtin()
    if strategy not in STRATEGIES:
        raise EditkitError(f"unknown localization strategy {strategy!r}: choose one of {', '.join(sorted(STRATEGIES))}")
    return STRATEGIES[strategy](model, tok, requests, **options)


def strategy_names() -> list[str]:
    _load_builtin()
    return sorted(STRATEGIES)


def _load_builtin() -> None:
    """Import the strategies that live in their own modules (explicit, one line each)."""
    import importlib

    for module in _BUILTIN:
        importlib.import_module(module)


_BUILTIN: tuple[str, ...] = (
    "editkit.localize.causal_trace",
    "editkit.localize.gradient",
    "editkit.localize.sweep",
    "editkit.localize.senses",
)

__all__ = [
    "MODULE_KINDS",
    "STRATEGIES",
    "Location",
    "Site",
    "fixed",
    "localize",
    "module_sites",
    "register_strategy",
    "resolve_layer",
    "strategy_names",
]
