"""What a league-trained editor may change: three parametrizations of the same frozen model.

Each holds the frozen values ``w0`` of the location's tensors and free
tensors from which it builds a delta per tensor; the model's own forward runs
with ``w0 + delta`` substituted (:class:`editkit.substitute.Substitution`), the same
path an applied edit takes. The model's weights are never written. Train
fp32 models: the substituted weight is cast to the model's dtype, and in bf16
an update below about 0.4% of a weight rounds away in the forward.

- :class:`SenseRun`: one free vector per selected (token, sense) slot (sense
  finetuning, Hewitt et al., 2024).
- :class:`FullRun`: one free tensor per parameter (full finetuning); rows of a
  site restricted to some rows are the only ones that move.
- :class:`LoraRun`: ``delta = s B A`` per weight matrix (Hu et al., 2022), ``A``
  initialized as peft does (Kaiming-uniform, ``a = sqrt(5)``), ``B`` zero, ``s``
  the LoRA scaling; transposed for GPT-2's ``Conv1D`` (``[in, out]`` weights).

>>> run = LoraRun(model, ["transformer.h.0.mlp.c_fc.weight"], pad_id=0, rank=4, scaling=2.0)  # doctest: +SKIP
>>> run.deltas(run.snapshot())                                                              # doctest: +SKIP
{}
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from editkit.arch import ArchitectureError, get_module
from editkit.batching import model_device
from editkit.errors import EditkitError
from editkit.objectives import EncodedExample, example_losses
from editkit.substitute import Substitution


def _is_conv1d(module: nn.Module) -> bool:
    """GPT-2's ``Conv1D`` (weight ``[in, out]``, unlike ``nn.Linear``'s ``[out, in]``)."""
    from transformers.pytorch_utils import Conv1D

    return isinstance(module, Conv1D)


def is_lora_module(model: nn.Module, param: str) -> bool:
    """Whether ``param`` is the weight of an ``nn.Linear`` or ``Conv1D`` (what LoRA adapts)."""
    if not param.endswith(".weight"):
        return False
    try:
        module = get_module(model, param.removesuffix(".weight"))
    except ArchitectureError:  # not a module path: nothing LoRA can adapt
        return False
    return isinstance(module, nn.Linear) or _is_conv1d(module)


class DeltaRun(abc.ABC):
    """The frozen model, the location's original values and the two forwards (original, edited).

    Subclasses set :attr:`trainable` (the optimizer's tensors) and implement
    :meth:`delta` (the delta of tensor ``i`` from a list of trainable values).
    """

    trainable: list[torch.Tensor]

    def __init__(self, model: nn.Module, names: Sequence[str], pad_id: int, *, what: str = "parameter") -> None:
        named = dict(model.named_parameters(remove_duplicate=False))
        missing = [n for n in names if n not in named]
        if missing:
            raise EditkitError(f"the model has no {what} {missing[0]!r}: {self.missing_hint}")
        self.model, self.names, self.pad_id = model, list(names), pad_id
        self.device = model_device(model)
        self.w0 = [named[n].detach().float() for n in self.names]  # never written: no copy for fp32 weights
        self.dtypes = [named[n].dtype for n in self.names]
        self.substitute = Substitution(model, self.names)

    missing_hint = "localize on this model"

    @abc.abstractmethod
    def delta(self, i: int, state: Sequence[torch.Tensor]) -> torch.Tensor:
        """The delta of tensor ``i`` (in the weight's own layout) from the trainables' values ``state``."""

    def weights(self, state: Sequence[torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """``w0 + delta`` per tensor, in the model's dtypes (``state``: the live trainables by default)."""
        state = self.trainable if state is None else state
        return {n: (w + self.delta(i, state)).to(dt) for i, (n, w, dt) in enumerate(zip(self.names, self.w0, self.dtypes, strict=True))}

    def edited(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.substitute(self.model, self.weights(), {**inputs, "use_cache": False}).logits  # type: ignore[no-any-return]

    def original(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model(**inputs, use_cache=False).logits  # type: ignore[no-any-return]

    def edit_loss(self, encoded: Sequence[EncodedExample]) -> torch.Tensor:
        return example_losses(self.edited, encoded, pad_id=self.pad_id, device=self.device).mean()

    def snapshot(self) -> list[torch.Tensor]:
        return [t.detach().clone() for t in self.trainable]

    def deltas(self, state: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        """The deltas of ``state`` (fp32, CPU), tensors that did not move left out."""
        out = {}
        with torch.no_grad():
            for i, name in enumerate(self.names):
                d = self.delta(i, state).detach().float().cpu()
                if bool(d.any()):
                    out[name] = d
        return out


class SenseRun(DeltaRun):
    """Free deltas ``[n_slots, d]`` on the sense-delta slots of a Backpack."""

    missing_hint = (
        "localize with the 'senses' strategy on this model, or create the slots with "
        "editkit.backpack.add_sense_slots(model, pairs)"
    )

    def __init__(self, model: nn.Module, names: Sequence[str], pad_id: int) -> None:
        super().__init__(model, names, pad_id, what="sense slot")
        self.trainable = [torch.zeros(len(self.names), self.w0[0].shape[0], device=self.device, requires_grad=True)]

    def delta(self, i: int, state: Sequence[torch.Tensor]) -> torch.Tensor:
        return state[0][i]


class FullRun(DeltaRun):
    """One free tensor per parameter (zero at the start); ``rows`` restrict a tensor to some rows."""

    def __init__(
        self, model: nn.Module, names: Sequence[str], pad_id: int, rows: Sequence[Sequence[int] | None] | None = None
    ) -> None:
        super().__init__(model, names, pad_id)
        self.trainable = [torch.zeros_like(w, requires_grad=True) for w in self.w0]
        self.masks: list[torch.Tensor | None] = []
        for w, sel in zip(self.w0, rows or [None] * len(self.w0), strict=True):
            if sel is None:
                self.masks.append(None)
                continue
            mask = torch.zeros(w.shape[0], *([1] * (w.dim() - 1)), device=w.device)
            mask[list(sel)] = 1.0
            self.masks.append(mask)

    def delta(self, i: int, state: Sequence[torch.Tensor]) -> torch.Tensor:
        mask = self.masks[i]
        return state[i] if mask is None else state[i] * mask


class LoraRun(DeltaRun):
    """``delta_i = scaling * B_i A_i`` (transposed for ``Conv1D``) on 2-D weight matrices."""

    def __init__(
        self, model: nn.Module, names: Sequence[str], pad_id: int, *, rank: int, scaling: float, seed: int = 0
    ) -> None:
        super().__init__(model, names, pad_id)
        gen = torch.Generator().manual_seed(seed)
        self.scaling = float(scaling)
        self.transposed: list[bool] = []
        a_list, b_list = [], []
        for name, w in zip(self.names, self.w0, strict=True):
            if w.dim() != 2 or not name.endswith(".weight"):
                raise EditkitError(f"LoRA adapts weight matrices; {name!r} has shape {tuple(w.shape)}")
            module = get_module(model, name.removesuffix(".weight"))
            transposed = _is_conv1d(module)
            if not (transposed or isinstance(module, nn.Linear)):
                raise EditkitError(f"LoRA adapts nn.Linear and Conv1D weights; {name!r} is a {type(module).__name__}")
            out_dim, in_dim = (w.shape[1], w.shape[0]) if transposed else (w.shape[0], w.shape[1])
            if len(self.substitute.paths[name]) > 1:
                raise EditkitError(
                    f"{name!r} is tied to {', '.join(p for p in self.substitute.paths[name] if p != name)}: LoRA on it "
                    "would also change the tied copy (peft adapts only the one module); pick untied matrices"
                )
            a = torch.empty(rank, in_dim)
            nn.init.kaiming_uniform_(a, a=math.sqrt(5), generator=gen)
            a_list.append(a.to(w.device).requires_grad_(True))  # each factor where its weight lives (device maps)
            b_list.append(torch.zeros(out_dim, rank, device=w.device, requires_grad=True))
            self.transposed.append(transposed)
        self.n = len(self.names)
        self.trainable = [*a_list, *b_list]

    def delta(self, i: int, state: Sequence[torch.Tensor]) -> torch.Tensor:
        d = self.scaling * (state[self.n + i] @ state[i])  # [out, in]
        return d.T if self.transposed[i] else d

    def factors(self, state: Sequence[torch.Tensor]) -> dict[str, dict[str, Any]]:
        """``{name: {"A": [r, in], "B": [out, r]}}`` of ``state`` (for saving as an adapter)."""
        return {n: {"A": state[i].detach().cpu(), "B": state[self.n + i].detach().cpu()} for i, n in enumerate(self.names)}
