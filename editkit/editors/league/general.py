"""General text for league finetuning: the KL regularizer and the deviation league.

Two disjoint slices of one passage list (the shipped ``data/preserve_text.jsonl``
or a user file): the first ``kl_passages`` feed the KL term, the last
``league_passages`` are held out to measure general loss for the league.

- :meth:`GeneralText.kl` is ``KL(p_orig || p_new)`` summed over a passage's
  predicted tokens and averaged over passages (torch's ``batchmean`` over
  sequences, as in the published code), ``p_orig`` being the model as given.
- :meth:`GeneralText.nll` is the mean NLL per predicted token (log perplexity).
- :class:`League`: a checkpoint counts only if its held-out loss is below
  ``initial x (1 + eps)``; the unedited model always counts.

>>> League(eps=1e-3, initial=2.0).allows(2.0019), League(eps=1e-3, initial=2.0).allows(2.0021)
(True, False)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from editkit.batching import Batch, chunks, collate, encode_passages
from editkit.errors import EditkitError

LogitsFn = Callable[[dict[str, torch.Tensor]], torch.Tensor]


def split_general(texts: Sequence[str], kl_passages: int, league_passages: int) -> tuple[list[str], list[str]]:
    """The KL slice (first passages) and the held-out league slice (last passages), disjoint.

    >>> split_general(["a", "b", "c", "d"], 2, 1)
    (['a', 'b'], ['d'])
    """
    if kl_passages + league_passages > len(texts):
        raise EditkitError(
            f"the general text has {len(texts)} passages: too few for {kl_passages} KL and "
            f"{league_passages} held-out league passages (lower kl_passages / league_passages)"
        )
    return list(texts[:kl_passages]), list(texts[len(texts) - league_passages :])


class GeneralText:
    """Passages encoded and batched once (right padding, on ``device``)."""

    def __init__(
        self, tok: Any, texts: Sequence[str], *, max_length: int, batch_size: int, pad_id: int,
        device: torch.device | str,
    ) -> None:
        encoded = encode_passages(tok, texts, max_length=max_length)
        if not encoded:
            raise EditkitError("no general-text passage has two tokens or more")
        self.n_passages = len(encoded)
        self.batches: list[Batch] = [
            collate(part, pad_id=pad_id).to(device) for part in chunks(encoded, batch_size)
        ]

    @torch.no_grad()
    def nll(self, forward: LogitsFn) -> float:
        """Mean NLL per predicted token over all passages."""
        total, count = 0.0, 0
        for batch in self.batches:
            logp = batch.target_logprobs(forward(batch.model_inputs()))  # [n_tokens]
            total -= float(logp.sum())
            count += int(logp.numel())
        return total / count

    def kl(self, forward: LogitsFn, reference: LogitsFn, index: int) -> torch.Tensor:
        """``KL(reference || forward)`` on batch ``index``: summed over tokens, mean over passages."""
        batch = self.batches[index % len(self.batches)]
        inputs = batch.model_inputs()
        with torch.no_grad():
            ref = torch.log_softmax(batch.target_logits(reference(inputs)).float(), dim=-1)
        new = torch.log_softmax(batch.target_logits(forward(inputs)).float(), dim=-1)
        return (ref.exp() * (ref - new)).sum() / len(batch.lengths)


@dataclass(frozen=True)
class League:
    """The deviation limit: held-out general loss must stay below ``initial x (1 + eps)``.

    Attributes:
        eps: The league (1e-3, 1e-4, 1e-5 in the paper); None accepts everything.
        initial: The unedited model's held-out general loss.
    """

    eps: float | None
    initial: float

    @property
    def cutoff(self) -> float | None:
        return None if self.eps is None else self.initial * (1.0 + self.eps)

    def allows(self, general_loss: float) -> bool:
        cutoff = self.cutoff
        return cutoff is None or general_loss < cutoff
