"""The canonical-example objectives: ``good``, ``bad``, ``good-v-bad``, ``balance``.

Each example is scored from the mean NLL of its suffix tokens, ``m = NLL(s) / n``
(``n`` = number of suffix tokens), as in Hewitt et al. (2024):

==============  ===========================  =====================================
loss type       loss                         meaning
==============  ===========================  =====================================
``good``        ``m``                        make the suffix likely
``bad``         ``-m``                       make the suffix unlikely
``good-v-bad``  ``m1 - m2``                  suffix1 likelier than suffix2
``balance``     ``|m1 - m2|``                suffix1 and suffix2 equally likely
==============  ===========================  =====================================

A batch loss is the mean over its examples. The sense-selection strategy and
the sense finetuning editor both use these, so both optimize and rank by the
same thing.

>>> enc = encode_examples(tok, [CanonicalExample("The capital of France is", suffix=" Paris")])  # doctest: +SKIP
>>> losses = example_losses(lambda kw: model(**kw).logits, enc, pad_id=1, device="cpu")       # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from editkit.batching import Batch, Encoded, collate, encode_continuations
from editkit.requests.canonical import LOSS_TYPES, CanonicalExample

#: ``forward(model_inputs) -> logits [batch, seq, vocab]``
LogitsFn = Callable[[dict[str, torch.Tensor]], torch.Tensor]


@dataclass(frozen=True)
class EncodedExample:
    """A tokenized example: its loss type and one sequence per suffix (prefix + suffix)."""

    loss_type: str
    sequences: tuple[Encoded, ...]


def encode_examples(tok: Any, examples: Sequence[CanonicalExample]) -> list[EncodedExample]:
    """Tokenize every suffix after its prefix (suffixes taken literally, no EOS)."""
    out = []
    for ex in examples:
        seqs = encode_continuations(tok, [ex.prefix] * len(ex.suffixes), list(ex.suffixes))
        out.append(EncodedExample(ex.loss_type, tuple(seqs)))
    return out


def combine(loss_type: str, means: Sequence[torch.Tensor]) -> torch.Tensor:
    """An example's loss from the mean suffix NLL of each of its sequences.

    >>> float(combine("balance", [torch.tensor(1.0), torch.tensor(3.0)]))
    2.0
    """
    if loss_type == "good":
        return means[0]
    if loss_type == "bad":
        return -means[0]
    if loss_type == "good-v-bad":
        return means[0] - means[1]
    if loss_type == "balance":
        return (means[0] - means[1]).abs()
    raise ValueError(f"unknown loss type {loss_type!r}: choose one of {', '.join(LOSS_TYPES)}")


def example_batch(encoded: Sequence[EncodedExample], *, pad_id: int) -> Batch:
    """All sequences of ``encoded``, right-padded, example by example."""
    return collate([seq for ex in encoded for seq in ex.sequences], pad_id=pad_id, padding_side="right")


def losses_from_logits(
    encoded: Sequence[EncodedExample], batch: Batch, logits: torch.Tensor
) -> torch.Tensor:
    """Per-example losses ``[n_examples]`` from the logits of :func:`example_batch`."""
    means = batch.mean_target_nll(logits)  # [n_sequences]
    out, row = [], 0
    for ex in encoded:
        n = len(ex.sequences)
        out.append(combine(ex.loss_type, list(means[row : row + n])))
        row += n
    return torch.stack(out)


def example_losses(
    forward: LogitsFn,
    encoded: Sequence[EncodedExample],
    *,
    pad_id: int,
    device: torch.device | str,
) -> torch.Tensor:
    """Per-example losses ``[n_examples]`` (one forward over all their sequences)."""
    batch = example_batch(encoded, pad_id=pad_id).to(device)
    return losses_from_logits(encoded, batch, forward(batch.model_inputs()))
