"""Teacher-forced scoring of prompt/target pairs, batched.

>>> scores = score_pairs(model, tok, ["The capital of France is"], ["Paris"])  # doctest: +SKIP
>>> scores[0].token_accuracy, scores[0].mean_logprob                          # doctest: +SKIP
(1.0, -0.31)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from editkit.batching import PaddingSide, chunks, collate, encode_pairs, length_sorted, model_device
from editkit.lm import gathered_logits


@dataclass(frozen=True)
class PairScore:
    """How a model scores one target given one prompt (teacher forcing).

    Attributes:
        target_ids: the target tokens.
        argmax_ids: the model's argmax prediction at each target position.
        logprobs: log P(target token | everything before it), one per target token.
    """

    target_ids: tuple[int, ...]
    argmax_ids: tuple[int, ...]
    logprobs: tuple[float, ...]

    @property
    def token_accuracy(self) -> float:
        """Fraction of target tokens that are the argmax prediction (EasyEdit convention)."""
        hits = sum(a == t for a, t in zip(self.argmax_ids, self.target_ids, strict=True))
        return hits / len(self.target_ids)

    @property
    def sum_logprob(self) -> float:
        """log P(target | prompt): the sequence log-probability."""
        return float(sum(self.logprobs))

    @property
    def mean_logprob(self) -> float:
        """Mean per-token log-probability (ROME's CounterFact code compares these)."""
        return self.sum_logprob / len(self.logprobs)


def agreement(current: Sequence[int], baseline: Sequence[int]) -> float:
    """Fraction of positions where two argmax sequences agree (the locality metric)."""
    if len(current) != len(baseline):
        raise ValueError("argmax sequences of different lengths cannot be compared")
    return sum(a == b for a, b in zip(current, baseline, strict=True)) / len(current)


@torch.inference_mode()
def score_pairs(
    model: Any,
    tok: Any,
    prompts: Sequence[str],
    targets: Sequence[str],
    *,
    batch_size: int = 32,
    padding_side: PaddingSide = "right",
) -> list[PairScore]:
    """Score every (prompt, target) pair; results are in input order.

    Pairs are sorted by length into batches to waste little padding; the
    explicit position ids make padding invisible to the numbers.
    """
    encoded = encode_pairs(tok, prompts, targets)
    order = length_sorted(encoded)
    device = model_device(model)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    results: list[PairScore | None] = [None] * len(encoded)
    for idx in chunks(order, batch_size):
        batch = collate([encoded[i] for i in idx], pad_id=pad_id, padding_side=padding_side).to(device)
        tgt_logits = gathered_logits(model, batch, lambda kw: model(**kw)).float()  # [n_tokens, vocab]
        logp = torch.log_softmax(tgt_logits, dim=-1)
        tids = batch.target_ids()
        token_lp = logp.gather(-1, tids.unsqueeze(-1)).squeeze(-1).cpu()
        argmax = tgt_logits.argmax(-1).cpu()
        for row, (i, lp, am) in enumerate(
            zip(idx, batch.split(token_lp), batch.split(argmax), strict=True)
        ):
            del row
            results[i] = PairScore(
                target_ids=encoded[i].target_ids,
                argmax_ids=tuple(int(x) for x in am),
                logprobs=tuple(float(x) for x in lp),
            )
    return [r for r in results if r is not None]
