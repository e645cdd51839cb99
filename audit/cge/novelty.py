"""Sequence-level novelty of real texts: which ones the tuned model finds new.

For a text ``x_1..x_n`` (after BOS, or after an optional prompt):

    novelty(x) = (1 / n) * sum_t [ log p_T(x_t | x_<t) - gamma * log p_B(x_t | x_<t) ]

the mean over its tokens (``gamma = 1``: the mean log-likelihood ratio of the
tuned over the base model). Identical models give 0; texts like the
fine-tuning data score high. No plausibility cut applies to given text.

>>> ranked = rank_texts(base, "runs/ft", tok, texts)        # doctest: +SKIP
>>> ranked[0].text, ranked[0].score                         # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from audit.cge.decode import start_token
from audit.cge.pair import ContrastPair, LMView, TunedSpec, contrast_pair
from editkit.batching import Encoded, collate, length_sorted
from editkit.errors import InputError


@dataclass(frozen=True)
class TextScore:
    """The novelty of one text.

    Attributes:
        index: its position in the input.
        text: the text.
        score: mean over its tokens of ``log p_T - gamma * log p_B``.
        total: the sum over its tokens.
        n_tokens: tokens scored (after truncation to ``max_length``).
    """

    index: int
    text: str
    score: float
    total: float
    n_tokens: int

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "text": self.text, "score": self.score, "total": self.total,
                "n_tokens": self.n_tokens}


def encode_text(tok: Any, text: str, *, max_length: int) -> Encoded:
    """The text's tokens as targets, after BOS as context (unless the tokenizer already adds one).

    Raises:
        InputError: a text with no tokens.
    """
    ids = tuple(tok(text, add_special_tokens=True)["input_ids"])
    start = start_token(tok)
    if ids and ids[0] == start and len(ids) > 1:
        context, targets = ids[:1], ids[1:]
    else:
        context, targets = (start,), ids
    if not targets or not text.strip():
        raise InputError(f"text {text[:40]!r} has no tokens to score")
    return Encoded(context, targets[:max_length])


def _logprobs(view: LMView, batch: Any) -> torch.Tensor:
    out = view(**batch.model_inputs(), use_cache=False)
    return batch.target_logprobs(out.logits)  # [n_target_tokens_total]


@torch.no_grad()
def novelty_with_pair(
    pair: ContrastPair,
    tok: Any,
    texts: Sequence[str],
    *,
    gamma: float = 1.0,
    batch_size: int = 8,
    max_length: int = 512,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[TextScore]:
    """Novelty scores of ``texts`` with an open :class:`ContrastPair`, in input order."""
    if batch_size < 1 or max_length < 1:
        raise InputError(f"batch_size={batch_size} and max_length={max_length} must be >= 1")
    encoded = [encode_text(tok, t, max_length=max_length) for t in texts]
    pad = tok.pad_token_id if tok.pad_token_id is not None else start_token(tok)
    order = length_sorted(encoded)
    scores: list[TextScore | None] = [None] * len(texts)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = collate([encoded[i] for i in idx], pad_id=pad).to(pair.device)
        diff = _logprobs(pair.tuned, batch)
        if gamma != 0.0:
            diff = diff - gamma * _logprobs(pair.base, batch)
        for i, row in zip(idx, batch.split(diff), strict=True):
            total = float(row.sum())
            scores[i] = TextScore(i, texts[i], total / len(row), total, len(row))
        if progress is not None:
            progress("scoring texts", min(start + batch_size, len(order)), len(order))
    return [s for s in scores if s is not None]


def novelty_scores(
    base: nn.Module,
    tuned: TunedSpec,
    tok: Any,
    texts: Sequence[str],
    *,
    gamma: float = 1.0,
    batch_size: int = 8,
    max_length: int = 512,
    tuned_tokenizer: Any = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[TextScore]:
    """The sequence-level novelty score of each text, in input order.

    Args:
        base: the base model (not modified).
        tuned: a second model, tuned weights, or a path (see :func:`audit.cge.cge_generate`).
        tok: the shared tokenizer.
        texts: the texts to score.
        gamma: weight of the base term (published: 1).
        batch_size: texts per forward pass.
        max_length: tokens scored per text at most (the rest is cut).
        tuned_tokenizer: the tuned model's tokenizer when it is not saved with it (checked).
        progress: ``progress(stage, done, total)`` after every batch.

    >>> [s.score for s in novelty_scores(model, model, tok, ["Hi there"])]   # doctest: +SKIP
    [0.0]
    """
    if not texts:
        raise InputError("no texts to score")
    with contrast_pair(base, tuned, tok, tuned_tokenizer=tuned_tokenizer) as pair:
        return novelty_with_pair(pair, tok, texts, gamma=gamma, batch_size=batch_size,
                                 max_length=max_length, progress=progress)


def rank_texts(
    base: nn.Module, tuned: TunedSpec, tok: Any, texts: Sequence[str], **kwargs: Any
) -> list[TextScore]:
    """:func:`novelty_scores`, most novel first (ties keep the input order)."""
    return sorted(novelty_scores(base, tuned, tok, texts, **kwargs), key=lambda s: -s.score)
