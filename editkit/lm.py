"""Logits at the positions that matter, without materializing ``[batch, seq, vocab]``.

Scoring and training only need the logits that predict target tokens (a few
per sequence), but a causal LM's forward computes the unembedding at every
position: with a 49K vocabulary that matmul and its backward dominate the
cost. :func:`gathered_logits` asks the model for one position only
(``logits_to_keep=1``), captures the final norm's output with a hook, and
unembeds just the needed rows.

It is used only where it is exact: once per model, the fast path is checked
against a plain forward (models whose forward post-processes logits, e.g.
Gemma 2's soft-capping, fail the check and use the plain path).

>>> logits = gathered_logits(model, batch, lambda kw: model(**kw))   # [n_target_tokens, vocab]  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import inspect
import weakref
from collections.abc import Callable, Iterator
from typing import Any, cast

import torch
from torch import nn

from editkit.arch import ArchitectureError, final_logit_softcap, get_arch, get_module
from editkit.batching import Batch

Forward = Callable[[dict[str, Any]], Any]

_FAST_OK: weakref.WeakKeyDictionary[nn.Module, bool] = weakref.WeakKeyDictionary()


class StopForward(Exception):
    """Raised by a hook to end a forward pass early, once what is needed was captured.

    The caller runs the forward inside ``contextlib.suppress(StopForward)``
    (the prefix cache stops before the tuned block, MEND's capture after the
    final norm: nothing above is computed).
    """


@contextlib.contextmanager
def capture_final_hidden(model: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """Inside the block, ``store["h"]`` holds the final norm's last output ``[batch, seq, d]``."""
    norm = get_module(model, get_arch(model).final_norm)
    store: dict[str, torch.Tensor] = {}

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        store["h"] = output[0] if isinstance(output, tuple) else output

    handle = norm.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def _fast(model: nn.Module, batch: Batch, forward: Forward) -> torch.Tensor:
    with capture_final_hidden(model) as store:
        forward({**batch.model_inputs(), "use_cache": False, "logits_to_keep": 1})
    rows, cols = batch.predicting_positions()
    unembed: Any = cast(Any, model).get_output_embeddings()
    return unembed(store["h"][rows, cols])


def _plain(batch: Batch, forward: Forward) -> torch.Tensor:
    out = forward({**batch.model_inputs(), "use_cache": False})
    return batch.target_logits(out.logits)


def fast_path_ok(model: nn.Module, batch: Batch, forward: Forward) -> bool:
    """Whether the fast path reproduces the plain forward's logits for this model (checked once)."""
    if model in _FAST_OK:
        return _FAST_OK[model]
    ok = False
    get_out = getattr(model, "get_output_embeddings", None)
    forward_params = inspect.signature(model.forward).parameters
    try:
        capped = final_logit_softcap(model) is not None  # the forward post-processes logits
        if not capped and callable(get_out) and get_out() is not None and "logits_to_keep" in forward_params:
            with torch.no_grad():
                a, b = _fast(model, batch, forward), _plain(batch, forward)
            ok = a.shape == b.shape and torch.allclose(a.float(), b.float(), atol=1e-5, rtol=1e-5)
    except (ArchitectureError, AttributeError, RuntimeError, TypeError, KeyError, IndexError):
        ok = False  # not a transformers causal LM editkit.arch knows: use the plain forward
    _FAST_OK[model] = ok
    return ok


def gathered_logits(model: nn.Module, batch: Batch, forward: Forward) -> torch.Tensor:
    """Logits predicting each target token of ``batch``: ``[n_target_tokens_total, vocab]``.

    Args:
        model: the causal LM (its final norm and unembedding are read through :mod:`editkit.arch`).
        batch: a collated batch (on the model's device).
        forward: runs the model on keyword inputs, e.g. ``lambda kw: model(**kw)`` or a
            ``torch.func.functional_call`` with substituted weights.
    """
    if fast_path_ok(model, batch, forward):
        return _fast(model, batch, forward)
    return _plain(batch, forward)
