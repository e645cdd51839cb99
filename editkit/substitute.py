"""Run a model's own forward with some weights substituted, safely for tied and aliased weights.

``torch.func.functional_call`` swaps tensors in by attribute path and swaps
the originals back afterwards. Two things go wrong with its default
``tie_weights=True`` when one module is reachable under two paths (the
Backpack's ``backpack.word_embeddings`` *is* ``backpack.gpt2_model.wte``): the
second swap saves the first one's substitute as "the original", and after the
call the module holds a plain tensor instead of its ``nn.Parameter`` (torch
2.13). :class:`Substitution` resolves, once, every path that reaches each
substituted parameter (tied copies in other modules included) and keeps one
path per owning module, then calls ``functional_call`` with
``tie_weights=False``: each owner is swapped exactly once, tied weights follow.

>>> sub = Substitution(model, ["lm_head.weight"])                         # doctest: +SKIP
>>> out = sub(model, {"lm_head.weight": w}, {"input_ids": ids})          # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn


def owner_paths(model: nn.Module, names: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """For each parameter name, one path per distinct (module, attribute) holding that same tensor.

    >>> owner_paths(tied_gpt2, ["lm_head.weight"])["lm_head.weight"]       # doctest: +SKIP
    ('transformer.wte.weight', 'lm_head.weight')
    """
    named = dict(model.named_parameters(remove_duplicate=False))
    wanted = {id(named[n]): n for n in names if n in named}
    paths: dict[str, list[str]] = {n: [] for n in names}
    seen: set[tuple[int, str]] = set()
    for mod_name, module in model.named_modules(remove_duplicate=False):
        for attr, param in module.named_parameters(recurse=False):
            name = wanted.get(id(param))
            if name is None or (id(module), attr) in seen:
                continue
            seen.add((id(module), attr))
            paths[name].append(f"{mod_name}.{attr}" if mod_name else attr)
    return {n: tuple(p) if p else (n,) for n, p in paths.items()}


class Substitution:
    """The owner paths of a fixed set of parameter names, resolved once for many forwards."""

    def __init__(self, model: nn.Module, names: Iterable[str]) -> None:
        self.paths = owner_paths(model, names)

    def __call__(self, model: nn.Module, weights: Mapping[str, torch.Tensor], kwargs: Mapping[str, Any]) -> Any:
        """``model(**kwargs)`` with ``weights`` (by parameter name) in place of the model's own."""
        expanded = {path: w for name, w in weights.items() for path in self.paths.get(name, (name,))}
        return torch.func.functional_call(model, expanded, (), dict(kwargs), strict=False, tie_weights=False)
