"""The common face of a tuned model's weights, read lazily against a base model.

A :class:`TunedWeights` maps the base model's parameter names to the deltas
``W_tuned - W_base`` of the tensors the tuned model changes (or stores), one
tensor at a time, so that two whole models never sit in memory together.
Subclasses say where a tensor comes from (:meth:`TunedWeights._stored`): a
tensor that *is* the delta (LoRA, editkit edits) or the tuned weight itself
(full checkpoints); the base class does the fp32 arithmetic once.

Names are the base model's ``named_parameters`` names; a checkpoint's own
prefix (``model.`` / ``transformer.``, present or not) is mapped onto them by
:func:`resolve_param_name`.

>>> tuned = load_tuned(model, "runs/ft")        # doctest: +SKIP
>>> for name in tuned: dw = tuned[name]         # doctest: +SKIP
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from editkit.errors import InputError
from editkit.tensorfiles import PICKLE_SUFFIXES, check_finite, refuse_pickle

__all__ = [
    "DeltaWeights",
    "PICKLE_SUFFIXES",
    "TunedWeights",
    "check_shape",
    "param_table",
    "refuse_pickle",
    "resolve_param_name",
    "tied_groups",
]

def param_table(model: nn.Module) -> dict[str, nn.Parameter]:
    """Every parameter name of ``model``, tied aliases included (``lm_head.weight`` too)."""
    return dict(model.named_parameters(remove_duplicate=False))


def tied_groups(model: nn.Module) -> dict[str, tuple[str, ...]]:
    """For each parameter name, the names of every alias of the same tensor (itself included)."""
    by_id: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        by_id.setdefault(id(p), []).append(name)
    return {n: tuple(names) for names in by_id.values() for n in names}


def resolve_param_name(key: str, names: Mapping[str, object], prefix: str) -> str | None:
    """The base parameter name a checkpoint key stands for, or None.

    Tries the key as is, then with the base model's ``base_model_prefix`` added
    (checkpoint of the bare ``*Model``) or removed (base is the bare model).

    >>> resolve_param_name("layers.0.mlp.up_proj.weight", {"model.layers.0.mlp.up_proj.weight": 0}, "model")
    'model.layers.0.mlp.up_proj.weight'
    """
    candidates = [key]
    if prefix:
        candidates.append(f"{prefix}.{key}")
        if key.startswith(prefix + "."):
            candidates.append(key[len(prefix) + 1 :])
    return next((c for c in candidates if c in names), None)


def check_shape(where: Path, name: str, got: tuple[int, ...], want: tuple[int, ...]) -> None:
    """:class:`InputError` unless a tuned tensor has the base parameter's shape."""
    if tuple(got) != tuple(want):
        raise InputError(
            f"{where}: {name} has shape {tuple(got)} but the base model's is {tuple(want)}; "
            "the tuned weights must come from the same architecture and size as the base model"
        )


class TunedWeights(Mapping[str, torch.Tensor], ABC):
    """Per-parameter deltas of a tuned model relative to ``base``, read lazily, in fp32.

    ``tuned[name]`` is ``W_tuned - W_base`` for a base parameter ``name``: fp32,
    on the base parameter's device, in the parameter's own storage layout
    (``[in, out]`` for GPT-2 ``Conv1D``). :meth:`weight` is ``W_tuned`` itself.
    Iteration follows the base model's parameter order and covers only the
    tensors the tuned model stores (a LoRA adapter: its target modules).

    Attributes:
        kind: ``"full"``, ``"lora"``, ``"edit"`` or ``"deltas"`` (in memory).
        path: where the weights were read from (None in memory).
        base: the base model (read, never modified).
    """

    kind: ClassVar[str] = ""

    def __init__(self, base: nn.Module, path: Path | None) -> None:
        self.base = base
        self.path = path
        self._params = param_table(base)

    # -- what subclasses provide ---------------------------------------------------
    @abstractmethod
    def _names(self) -> tuple[str, ...]:
        """Base parameter names covered, in the base model's order."""

    @abstractmethod
    def _stored(self, name: str) -> tuple[torch.Tensor, bool]:
        """``(tensor, is_delta)``: the delta itself, or the tuned weight (``is_delta=False``)."""

    # -- Mapping -------------------------------------------------------------------
    def __getitem__(self, name: str) -> torch.Tensor:
        return self.delta(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path})"

    # -- the arithmetic, done once -------------------------------------------------
    def device(self, name: str) -> torch.device:
        """Where ``name``'s tensors are returned: the base parameter's device (the CPU when it is offloaded)."""
        device = self._param(name).device
        return torch.device("cpu") if device.type == "meta" else device

    def base_weight(self, name: str) -> torch.Tensor:
        """The base model's parameter ``name`` in fp32 (a copy when it is not fp32 already).

        An offloaded parameter (a device map) is read from where accelerate stores it.
        """
        from editkit.placement import param_value

        self._param(name)
        return param_value(self.base, name).float().to(self.device(name))

    def delta(self, name: str) -> torch.Tensor:
        """``W_tuned - W_base`` in fp32 (never a difference of two low-precision tensors)."""
        tensor, is_delta = self._checked(name)
        device = self.device(name)
        if is_delta:
            return tensor.to(device=device, dtype=torch.float32)
        return tensor.to(device=device, dtype=torch.float32) - self.base_weight(name)

    def weight(self, name: str) -> torch.Tensor:
        """``W_tuned`` in fp32, on the base parameter's device (the CPU when it is offloaded)."""
        tensor, is_delta = self._checked(name)
        device = self.device(name)
        if is_delta:
            return self.base_weight(name) + tensor.to(device=device, dtype=torch.float32)
        return tensor.to(device=device, dtype=torch.float32)

    def _checked(self, name: str) -> tuple[torch.Tensor, bool]:
        """:meth:`_stored`, refusing NaN or infinite values (a corrupt file or a diverged run)."""
        tensor, is_delta = self._stored(name)
        return check_finite(tensor, self.path or "<deltas>", name), is_delta

    def _param(self, name: str) -> nn.Parameter:
        try:
            return self._params[name]
        except KeyError:
            raise KeyError(f"{name!r} is not a tuned parameter of {self!r}") from None


class DeltaWeights(TunedWeights):
    """Deltas held in memory (name -> ``W_tuned - W_base``), checked against the base model.

    >>> tuned = DeltaWeights(model, {"model.layers.0.mlp.down_proj.weight": dw})   # doctest: +SKIP
    """

    kind = "deltas"

    def __init__(
        self, base: nn.Module, deltas: Mapping[str, torch.Tensor], path: Path | None = None
    ) -> None:
        super().__init__(base, path)
        where = path or Path("<deltas>")
        unknown = [n for n in deltas if n not in self._params]
        if unknown:
            raise InputError(
                f"{where}: {len(unknown)} delta(s) name parameters the base model does not have "
                f"(e.g. {unknown[:3]}); the deltas must come from the same architecture"
            )
        for name, t in deltas.items():
            check_shape(where, name, tuple(t.shape), tuple(self._params[name].shape))
            check_finite(t, where, name)
        order = {n: i for i, n in enumerate(self._params)}
        self._deltas = dict(sorted(deltas.items(), key=lambda kv: order[kv[0]]))

    def _names(self) -> tuple[str, ...]:
        return tuple(self._deltas)

    def _stored(self, name: str) -> tuple[torch.Tensor, bool]:
        return self._deltas[name], True
