"""Success rate on evaluation texts, the metric of Hewitt et al. (2024) for canonical-example edits.

An evaluation text is a ``prefix`` and the ``suffix`` it should (or should
not) continue with. A ``good`` text succeeds when ``P(suffix | prefix) >
threshold`` (the whole suffix: the product of its token probabilities; the
paper's country task uses 0.2, company and temporal 0.05); a ``bad`` text when
``P(suffix | prefix) < threshold`` (stereotype: 0.001). The reported number is
the share that succeeds, and an edit's effect is its change from the unedited
model on the same texts.

>>> lp = suffix_logprobs(lambda kw: model(**kw).logits, tok, texts)      # doctest: +SKIP
>>> success_rate(lp, texts, threshold=0.2)                               # doctest: +SKIP
0.35
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from editkit.batching import chunks, collate, encode_continuations
from editkit.errors import EditkitError
from editkit.requests import CanonicalExample

LogitsFn = Callable[[dict[str, torch.Tensor]], torch.Tensor]


@torch.no_grad()
def suffix_logprobs(
    forward: LogitsFn,
    tok: Any,
    texts: Sequence[CanonicalExample],
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 32,
) -> torch.Tensor:
    """``log P(suffix | prefix)`` of each text (single-suffix texts), ``[n]`` fp32 on the CPU."""
    if any(len(t.suffixes) != 1 for t in texts):
        raise EditkitError("success rates are defined for texts with one suffix (prefix + suffix)")
    encoded = encode_continuations(tok, [t.prefix for t in texts], [t.suffixes[0] for t in texts])
    pad = int(tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
    out: list[float] = []
    for part in chunks(encoded, batch_size):
        batch = collate(part, pad_id=pad, padding_side="right").to(device)
        logp = batch.target_logprobs(forward(batch.model_inputs()))
        out.extend(float(x.sum()) for x in batch.split(logp))
    return torch.tensor(out, dtype=torch.float32)


def successes(logprobs: torch.Tensor, texts: Sequence[CanonicalExample], threshold: float) -> torch.Tensor:
    """Per text: ``good`` succeeds above ``threshold``, ``bad`` below it (bool ``[n]``)."""
    if not 0.0 < threshold < 1.0:
        raise EditkitError(f"the success threshold is a probability in (0, 1), got {threshold}")
    kinds = {t.loss_type for t in texts}
    if not kinds <= {"good", "bad"}:
        raise EditkitError(f"success rates take good or bad texts, not {sorted(kinds - {'good', 'bad'})}")
    bound = math.log(threshold)
    bad = torch.tensor([t.loss_type == "bad" for t in texts], dtype=torch.bool)
    return torch.where(bad, logprobs < bound, logprobs > bound)


def success_rate(logprobs: torch.Tensor, texts: Sequence[CanonicalExample], threshold: float) -> float:
    """The share of ``texts`` that succeed (see :func:`successes`)."""
    if len(texts) == 0:
        raise EditkitError("no evaluation texts")
    return float(successes(logprobs, texts, threshold).float().mean())
