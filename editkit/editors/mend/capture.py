"""Gradient factors of linear layers: each position's input ``u`` and output gradient ``delta``.

For a linear layer ``y = W u`` (``W: [out, in]``) the gradient of a loss is a
sum of rank-1 terms over positions, ``dL/dW = sum_t delta_t u_t^T``, where
``u_t`` is the layer's input and ``delta_t`` the gradient of the loss with
respect to its output at position ``t``. MEND transforms these factors rather
than the (much larger) gradient itself.

:func:`capture_factors` runs one forward and one backward of the edit loss
(the sum over requests of each request's mean target-token NLL, so that a
request's factors do not depend on what else shares its batch) and returns
the factors of each module at the real positions of the batch: padding rows
are dropped. Factors are always in the canonical ``[out, in]`` orientation:
for GPT-2's ``Conv1D`` (weight stored ``[in, out]``) the gradient of the
stored weight is ``Factors.gradient().T``.

How: a forward hook keeps each module's input and output, and
``torch.autograd.grad`` of the loss with respect to the outputs gives the
deltas (what the published code reads with a full backward hook). With the
model's parameters frozen, an output that does not depend on anything that
tracks gradients (the first captured module) is replaced by a leaf copy, so
the backward pass stops there and no weight gradient is ever computed.

>>> factors = capture_factors(model, batch, fixed(model, layer=3, module="mlp_down"))  # doctest: +SKIP
>>> factors["model.layers.3.mlp.down_proj"].gradient().shape                          # doctest: +SKIP
torch.Size([576, 1536])
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from editkit.arch import get_module
from editkit.batching import Batch
from editkit.errors import EditkitError
from editkit.lm import fast_path_ok, gathered_logits
from editkit.localize.common import preserved_state
from editkit.localize.location import Location

Forward = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class Factors:
    """Per-position gradient factors of one linear layer (canonical orientation).

    Attributes:
        u: layer inputs, ``[rows, d_in]`` (fp32).
        delta: gradients of the loss w.r.t. the layer outputs, ``[rows, d_out]`` (fp32).
        owner: the batch row (request) each position belongs to, ``[rows]`` (long).
    """

    u: torch.Tensor
    delta: torch.Tensor
    owner: torch.Tensor

    def gradient(self) -> torch.Tensor:
        """``sum_t delta_t u_t^T``: the loss gradient of ``W`` as ``[d_out, d_in]``."""
        return self.delta.T @ self.u

    def shifted(self, offset: int) -> Factors:
        """The same factors with owners numbered from ``offset`` (to join batches)."""
        return Factors(self.u, self.delta, self.owner + offset)

    @staticmethod
    def cat(parts: Sequence[Factors]) -> Factors:
        """Rows of several captures, in order."""
        return Factors(
            torch.cat([p.u for p in parts]),
            torch.cat([p.delta for p in parts]),
            torch.cat([p.owner for p in parts]),
        )


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and no parameter tracking gradients inside; mode, flags and ``.grad`` restored after."""
    with preserved_state(model):
        for p in model.parameters():
            p.requires_grad_(False)
        yield model


def edit_loss(model: nn.Module, batch: Batch, forward: Forward) -> torch.Tensor:
    """Sum over the batch's requests of each one's mean target-token NLL (a scalar)."""
    return batch.mean_nll_of_target_logits(gathered_logits(model, batch, forward)).sum()


def capture_factors(
    model: nn.Module,
    batch: Batch,
    where: Location | Sequence[str],
    *,
    forward: Forward | None = None,
) -> dict[str, Factors]:
    """Factors of the edit loss's gradient at each site of ``where``.

    Args:
        model: a causal LM (left unchanged: no parameter gets a ``.grad``).
        batch: prompt + target pairs on the model's device.
        where: a :class:`~editkit.localize.Location` (its weight sites; bias
            sites are skipped), or module paths: linear-like modules called with
            the hidden states as first argument (``nn.Linear``, GPT-2 ``Conv1D``).
        forward: runs the model on keyword inputs (default ``model(**kw)``).

    Returns:
        Module path (the site's parameter name without ``.weight``) -> :class:`Factors`
        over the batch's real positions.
    """
    run: Forward = forward if forward is not None else (lambda kw: model(**kw))
    if isinstance(where, Location):  # weight sites only (a bias has no rank-1 factors)
        paths = [s.param.removesuffix(".weight") for s in where if s.param.endswith(".weight")]
    else:
        paths = list(where)
    modules = {path: get_module(model, path) for path in paths}
    inputs: dict[str, list[torch.Tensor]] = {path: [] for path in modules}
    outputs: dict[str, list[torch.Tensor]] = {path: [] for path in modules}

    def recorder(path: str) -> Callable[..., torch.Tensor]:
        def hook(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
            if not args or not isinstance(output, torch.Tensor):
                raise EditkitError(f"{path}: not a linear layer called on hidden states; MEND cannot edit it")
            inputs[path].append(args[0].detach())
            out = output if output.requires_grad else output.detach().requires_grad_()
            outputs[path].append(out)
            return out

        return hook

    with frozen(model), torch.enable_grad():
        fast_path_ok(model, batch, run)  # decided once per model, before the hooks see a forward
        handles = [m.register_forward_hook(recorder(path)) for path, m in modules.items()]
        try:
            loss = edit_loss(model, batch, run)
        finally:
            for handle in handles:
                handle.remove()
        flat = [out for path in modules for out in outputs[path]]
        if not flat or any(len(outputs[path]) == 0 for path in modules):
            missing = [path for path in modules if not outputs[path]]
            raise EditkitError(f"the forward pass never called {missing[:2]}: is this the right model?")
        grads = torch.autograd.grad(loss, flat, allow_unused=True)
    mask = batch.attention_mask.bool()  # [batch, seq]
    rows = torch.arange(mask.shape[0], device=mask.device)[:, None].expand_as(mask)[mask]
    result: dict[str, Factors] = {}
    position = 0
    for path in modules:
        us, deltas = [], []
        for x, out in zip(inputs[path], outputs[path], strict=True):
            g = grads[position]
            position += 1
            us.append(x[mask].float())
            deltas.append((g if g is not None else torch.zeros_like(out))[mask].float())
        n = len(us)
        result[path] = Factors(torch.cat(us), torch.cat(deltas), rows.repeat(n))
    return result
