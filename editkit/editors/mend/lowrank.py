"""Run a model as if factored edits were added to its weights, without materializing them.

A MEND edit of a linear layer is ``W' = W - a * sum_r delta~_r u~_r^T``, so
``W' x = W x - a * (x . u~_r) delta~_r`` summed over the rows ``r``. Inside
:func:`factored_edits` a forward hook adds that low-rank term to each edited
module's output. Weights are never written, gradients flow into ``u~``,
``delta~`` and ``a`` (how the editor networks are trained), and each input
sequence can see a different edit: row ``r`` applies to sequence ``b`` only
when their ``group`` ids match (independent edit episodes in one batch).

>>> edit = FactoredEdit(u, delta, step, group=torch.zeros(len(u), dtype=torch.long))  # doctest: +SKIP
>>> with factored_edits(model, {"model.layers.3.mlp.down_proj": edit}, torch.zeros(2)):  # doctest: +SKIP
...     logits = model(**batch.model_inputs()).logits
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from editkit.arch import get_module


@dataclass(frozen=True)
class FactoredEdit:
    """``W' = W - step * delta^T @ u`` for one linear layer, with rows grouped by episode.

    Attributes:
        u: transformed inputs, ``[rows, d_in]``.
        delta: transformed output gradients, ``[rows, d_out]``.
        step: the step size ``a`` (a scalar tensor).
        group: the episode each row belongs to, ``[rows]`` (long).
    """

    u: torch.Tensor
    delta: torch.Tensor
    step: torch.Tensor
    group: torch.Tensor

    def weight_delta(self) -> torch.Tensor:
        """The update of every row together, ``[d_out, d_in]`` (all groups summed)."""
        return -self.step * (self.delta.T @ self.u)


@contextlib.contextmanager
def factored_edits(
    model: nn.Module, edits: Mapping[str, FactoredEdit], sample_group: torch.Tensor
) -> Iterator[None]:
    """Inside the block, module ``path`` of ``model`` behaves as if ``edits[path]`` were applied.

    Args:
        model: the model (its weights are only read).
        edits: module path -> edit.
        sample_group: the episode of each sequence of the batches run inside, ``[batch]``;
            a sequence sees only the rows of its own episode.
    """

    def adder(edit: FactoredEdit) -> Callable[..., torch.Tensor]:
        def hook(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
            x = args[0]  # [batch, seq, d_in]
            keep = (sample_group.to(edit.group.device)[:, None] == edit.group[None, :]).to(edit.u.dtype)  # [batch, rows]
            coeff = (x.to(edit.u.dtype) @ edit.u.T) * keep[:, None, :]  # [batch, seq, rows]
            return output + (-edit.step * (coeff @ edit.delta)).to(output.dtype)

        return hook

    handles = [get_module(model, path).register_forward_hook(adder(edit)) for path, edit in edits.items()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
