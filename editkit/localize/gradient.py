"""The ``gradient`` localization strategy: where does the edit loss pull hardest?

One backward pass of the edit loss (the LocFT loss: mean over requests of the
mean NLL of the ``target_new`` tokens) gives a gradient for every candidate
site; the layer whose module has the largest gradient norm, relative to its
weight norm, is where a small step changes the loss most.

Also home to the two helpers every scoring strategy shares:
:func:`preserved_state` (the model at the end equals the model at the start)
and :func:`ranked_location` (per-layer scores -> a :class:`Location`).

>>> loc = localize("gradient", model, tok, requests, module="mlp_down")  # doctest: +SKIP
>>> loc.scores["per_layer"][0]                                          # doctest: +SKIP
{'layer': 0, 'score': 0.0123, 'grad_norm': 0.51, 'param_norm': 41.3}
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from editkit.arch import num_layers
from editkit.batching import chunks, collate, encode_pairs, length_sorted, model_device
from editkit.errors import EditkitError
from editkit.localize import register_strategy
from editkit.localize.common import check_options, preserved_state, ranked_location
from editkit.localize.location import Location, module_sites

__all__ = ["gradient", "preserved_state", "ranked_location", "site_gradient_norms"]


def _layer_params(model: nn.Module, module: str) -> list[list[nn.Parameter]]:
    named = dict(model.named_parameters(remove_duplicate=False))
    return [[named[s.param] for s in module_sites(model, layer, module)] for layer in range(num_layers(model))]


def _norm(tensors: Sequence[torch.Tensor]) -> float:
    return math.sqrt(sum(float(t.detach().float().pow(2).sum()) for t in tensors))


def site_gradient_norms(
    model: nn.Module,
    tok: Any,
    requests: Sequence[Any],
    *,
    module: str = "mlp_down",
    batch_size: int = 16,
) -> list[dict[str, float | int]]:
    """Per layer, the gradient norm of the edit loss w.r.t. the parameters of ``module``.

    The loss is the mean over requests of each request's mean NLL of its
    ``target_new`` tokens (:meth:`editkit.batching.Batch.mean_target_nll`, no
    EOS appended). Gradients are taken with :func:`torch.autograd.grad`, so no
    ``.grad`` is written; the model is left as it was (:func:`preserved_state`).

    Returns:
        ``[{"layer": i, "grad_norm": ||dL/dW||_F, "param_norm": ||W||_F}, ...]``,
        norms over all parameters (weights and biases) of the layer's module.

    >>> site_gradient_norms(model, tok, requests)[0].keys()  # doctest: +SKIP
    dict_keys(['layer', 'grad_norm', 'param_norm'])
    """
    if not requests:
        raise EditkitError("gradient: no requests to localize")
    per_layer = _layer_params(model, module)
    flat = [p for params in per_layer for p in params]
    prompts, targets = [r.prompt for r in requests], [r.target_new for r in requests]
    encoded = encode_pairs(tok, prompts, targets, append_eos=False)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    device = model_device(model)
    sums = [torch.zeros_like(p, dtype=torch.float32) for p in flat]
    with preserved_state(model):
        for p in model.parameters():
            p.requires_grad_(False)
        for p in flat:
            p.requires_grad_(True)
        for idx in chunks(length_sorted(encoded), batch_size):
            batch = collate([encoded[i] for i in idx], pad_id=pad_id).to(device)
            logits = model(**batch.model_inputs()).logits  # [batch, seq, vocab]
            loss = batch.mean_target_nll(logits).sum() / len(encoded)
            grads = torch.autograd.grad(loss, flat, allow_unused=True)
            for acc, g in zip(sums, grads, strict=True):
                if g is not None:
                    acc.add_(g.float())
    rows: list[dict[str, float | int]] = []
    start = 0
    for layer, params in enumerate(per_layer):
        layer_grads = sums[start : start + len(params)]
        start += len(params)
        rows.append({"layer": layer, "grad_norm": _norm(layer_grads), "param_norm": _norm(params)})
    return rows


def gradient(
    model: nn.Module,
    tok: Any,
    requests: Sequence[Any],
    *,
    module: str = "mlp_down",
    top_k: int = 1,
    normalize: bool = True,
    batch_size: int = 16,
    **options: Any,
) -> Location:
    """The ``gradient`` strategy: the layer whose ``module`` has the largest edit-loss gradient.

    The score of a layer is ``||dL/dW||_F / ||W||_F`` over all parameters of
    its ``module`` (``normalize=True``, the default), else ``||dL/dW||_F``.
    Normalizing matters because layers differ in scale: weight norms grow or
    shrink with depth (and a pre-norm block's output is rescaled by the next
    norm), so the raw gradient norm of a large-norm layer overstates how much
    a step of a given relative size changes the loss; the ratio is the loss
    sensitivity to a *relative* change of the weights, comparable across
    layers.

    Args:
        model: The causal LM (left unchanged: no ``.grad``, same flags and mode).
        tok: Its tokenizer.
        requests: Edit requests (``prompt``, ``target_new``).
        module: Which module of a layer to score and return (``mlp_down``...).
        top_k: Return the sites of the ``top_k`` best layers.
        normalize: Divide each gradient norm by the parameter norm.
        batch_size: Requests per forward/backward pass (gradients accumulate).

    Returns:
        A :class:`Location` with ``scores = {"per_layer": [{"layer", "score",
        "grad_norm", "param_norm"}], "criterion": ..., "normalize": ...}``.

    >>> loc = gradient(model, tok, requests, module="mlp_down")  # doctest: +SKIP
    >>> loc.describe()                                          # doctest: +SKIP
    'layer 3 mlp_down (1 tensor)'
    """
    check_options("gradient", options)
    rows = site_gradient_norms(model, tok, requests, module=module, batch_size=batch_size)
    for row in rows:
        grad, norm = float(row["grad_norm"]), float(row["param_norm"])
        row["score"] = (grad / norm if norm > 0 else 0.0) if normalize else grad
    criterion = (
        f"{'relative ' if normalize else ''}gradient norm of the edit loss "
        f"({'||grad|| / ||W||' if normalize else '||grad||'} of {module}, {len(requests)} requests)"
    )
    per_layer = [{"layer": r["layer"], "score": r["score"], "grad_norm": r["grad_norm"],
                  "param_norm": r["param_norm"]} for r in rows]
    return ranked_location(
        model, per_layer, module=module, top_k=top_k, strategy="gradient",
        describe=criterion, extra={"normalize": normalize},
    )


register_strategy("gradient", gradient)
