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
deltas (what the published code reads with a full backward hook). Only the
factors are needed, never a weight gradient, so the model's parameters are
left as they are (no ``requires_grad`` toggling):

- the forward runs without autograd up to the first captured module, whose
  pre-hook turns gradient tracking on: only the blocks from there to the loss
  build a graph, and ``autograd.grad`` walks back through them only;
- an output that does not track gradients (a frozen model's first captured
  module) is replaced by a leaf that does, so the backward pass stops there;
- with the default forward, where :func:`editkit.lm.gathered_logits` may
  unembed the final norm's output itself (checked once per model), the
  forward is stopped right after the final norm: the model's own LM head
  never runs, and only the target positions are unembedded.

>>> factors = capture_factors(model, batch, fixed(model, layer=3, module="mlp_down"))  # doctest: +SKIP
>>> factors["model.layers.3.mlp.down_proj"].gradient().shape                          # doctest: +SKIP
torch.Size([576, 1536])
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from editkit.arch import get_arch, get_module
from editkit.batching import Batch
from editkit.errors import EditkitError
from editkit.lm import StopForward, fast_path_ok, gathered_logits
from editkit.localize.common import preserved_state
from editkit.localize.location import Location

Forward = Callable[[dict[str, Any]], Any]

# model -> whether stopping its forward at the final norm gives gathered_logits' logits (checked once).
_STOP_OK: weakref.WeakKeyDictionary[nn.Module, bool] = weakref.WeakKeyDictionary()


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


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Every module in eval mode inside the block (no dropout); each module's mode restored after."""
    training = [m for m in model.modules() if m.training]
    for module in training:
        module.training = False
    try:
        yield model
    finally:
        for module in training:
            module.training = True


@contextlib.contextmanager
def _stop_at_final_norm(model: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """Inside the block, a forward raises :class:`StopForward` after the final norm; ``store["h"]`` is its output."""
    norm = get_module(model, get_arch(model).final_norm)
    store: dict[str, torch.Tensor] = {}

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        store["h"] = output[0] if isinstance(output, tuple) else output  # [batch, seq, d]
        raise StopForward

    handle = norm.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def _stopped_logits(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Logits predicting each target token (``[n_target_tokens, vocab]``), the model's LM head skipped."""
    with _stop_at_final_norm(model) as store, contextlib.suppress(StopForward):
        model(**batch.model_inputs(), use_cache=False)
    if "h" not in store:
        raise EditkitError("the forward pass never reached the final norm: is this the right model?")
    rows, cols = batch.predicting_positions()
    unembed: Any = cast(Any, model).get_output_embeddings()
    return unembed(store["h"][rows, cols])


def _stop_ok(model: nn.Module, batch: Batch, run: Forward) -> bool:
    """Whether :func:`_stopped_logits` gives :func:`~editkit.lm.gathered_logits`' logits (checked once per model).

    Only where ``gathered_logits`` itself unembeds the final norm's output, and
    only if the final norm runs once (its first output is its last).
    """
    if model in _STOP_OK:
        return _STOP_OK[model]
    ok = False
    if fast_path_ok(model, batch, run):
        try:
            with torch.no_grad():
                a, b = _stopped_logits(model, batch), gathered_logits(model, batch, run)
            ok = a.shape == b.shape and torch.allclose(a.float(), b.float(), atol=1e-5, rtol=1e-5)
        except (EditkitError, RuntimeError):  # the final norm never ran, or its output does not unembed
            ok = False
    _STOP_OK[model] = ok
    return ok


def capture_factors(
    model: nn.Module,
    batch: Batch,
    where: Location | Sequence[str],
    *,
    forward: Forward | None = None,
) -> dict[str, Factors]:
    """Factors of the edit loss's gradient at each site of ``where``.

    Args:
        model: a causal LM (left unchanged: no parameter gets a ``.grad``, no
            ``requires_grad`` flag changes).
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

    def track(module: nn.Module, args: tuple[Any, ...]) -> None:
        torch.set_grad_enabled(True)  # from the first edited module on (the enclosing no_grad restores the mode)

    def recorder(path: str) -> Callable[..., torch.Tensor]:
        def hook(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
            if not args or not isinstance(output, torch.Tensor):
                raise EditkitError(f"{path}: not a linear layer called on hidden states; MEND cannot edit it")
            inputs[path].append(args[0].detach())
            out = output if output.requires_grad else output.detach().requires_grad_()
            outputs[path].append(out)
            return out

        return hook

    with eval_mode(model):
        stop = forward is None and _stop_ok(model, batch, run)  # decided once per model, before the hooks see a forward
        handles = [m.register_forward_pre_hook(track) for m in modules.values()]
        handles += [m.register_forward_hook(recorder(path)) for path, m in modules.items()]
        try:
            with torch.no_grad():
                logits = _stopped_logits(model, batch) if stop else gathered_logits(model, batch, run)
                loss = batch.mean_nll_of_target_logits(logits).sum()
        finally:
            for handle in handles:
                handle.remove()
        flat = [out for path in modules for out in outputs[path]]
        if not flat or any(len(outputs[path]) == 0 for path in modules):
            missing = [path for path in modules if not outputs[path]]
            raise EditkitError(f"the forward pass never called {missing[:2]}: is this the right model?")
        if not loss.requires_grad:
            raise EditkitError(f"the loss does not depend on {paths[:2]}: MEND cannot edit them")
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
            g = g if g is not None else torch.zeros_like(out)
            # with a device map the layer may run elsewhere: the factors join the batch on its device
            us.append(x[mask.to(x.device)].float().to(mask.device))
            deltas.append(g[mask.to(g.device)].float().to(mask.device))
        n = len(us)
        result[path] = Factors(torch.cat(us), torch.cat(deltas), rows.repeat(n))
    return result
