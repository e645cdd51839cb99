"""General-capability drift on a fixed reference text: perplexity and KL.

Perplexity is ``exp(total NLL / total predicted tokens)`` over every passage
(each truncated to ``max_length`` tokens; the first token is not predicted).
KL drift is the mean over the same token positions of
``KL(P_base || P_model)`` between the next-token distributions, computed
exactly, batch by batch: ``base`` is either a second model or a function
returning a context manager inside which ``model`` itself acts as the base
(e.g. an edit temporarily reverted), so no full distributions are stored.

>>> d = reference_drift(model, tok, texts)              # doctest: +SKIP
>>> d.perplexity                                       # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch

from editkit.batching import chunks, model_device

BaseSpec = Any  # an nn.Module, or a zero-argument callable returning a context manager


@dataclass(frozen=True)
class DriftResult:
    """Perplexity (and KL to a base, when one was given) on a reference text set."""

    perplexity: float
    n_tokens: int
    n_texts: int
    kl_mean: float | None = None
    base_perplexity: float | None = None


def _encode_texts(tok: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    ids = [tok(t, add_special_tokens=True, truncation=True, max_length=max_length)["input_ids"] for t in texts]
    return [x for x in ids if len(x) >= 2]


def _logits(model: Any, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    return model(input_ids=ids, attention_mask=mask, position_ids=pos).logits.float()


@torch.inference_mode()
def reference_drift(
    model: Any,
    tok: Any,
    texts: Sequence[str],
    *,
    base: BaseSpec | None = None,
    batch_size: int = 16,
    max_length: int = 128,
) -> DriftResult:
    """Perplexity of ``model`` on ``texts``, and mean KL from ``base`` when given."""
    encoded = _encode_texts(tok, texts, max_length)
    if not encoded:
        raise ValueError("no reference text has at least two tokens")
    device = model_device(model)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    nll = base_nll = kl = 0.0
    n_tok = 0
    base_ctx: Callable[[], AbstractContextManager[Any]] | None = None
    base_model = None
    if base is not None:
        if isinstance(base, torch.nn.Module):
            base_model = base
        else:
            base_ctx = base
    for idx in chunks(order, batch_size):
        width = max(len(encoded[i]) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, i in enumerate(idx):
            ids[row, : len(encoded[i])] = torch.tensor(encoded[i])
            mask[row, : len(encoded[i])] = 1
        ids, mask = ids.to(device), mask.to(device)
        predicted = mask[:, 1:].bool()  # [batch, seq-1]: positions whose next token is real
        targets = ids[:, 1:][predicted]
        logp = torch.log_softmax(_logits(model, ids, mask)[:, :-1][predicted], -1)  # [n, vocab]
        nll -= logp.gather(-1, targets[:, None]).sum().item()
        n_tok += int(targets.numel())
        if base is not None:
            if base_model is not None:
                b_logits = _logits(base_model, ids.to(model_device(base_model)), mask.to(model_device(base_model)))
            else:
                assert base_ctx is not None
                with base_ctx():
                    b_logits = _logits(model, ids, mask)
            b_logp = torch.log_softmax(b_logits.to(device)[:, :-1][predicted], -1)
            base_nll -= b_logp.gather(-1, targets[:, None]).sum().item()
            kl += (b_logp.exp() * (b_logp - logp)).sum().item()
    return DriftResult(
        perplexity=math.exp(nll / n_tok),
        n_tokens=n_tok,
        n_texts=len(encoded),
        kl_mean=(kl / n_tok) if base is not None else None,
        base_perplexity=math.exp(base_nll / n_tok) if base is not None else None,
    )

