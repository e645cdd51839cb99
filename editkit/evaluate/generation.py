"""Greedy generation and the generation-based ("WILD") exact-match metric.

Protocol (as LocFT-BF reports it): greedy decoding of up to 32 new tokens,
cut at the first ".", newline or EOS, normalized (lowercase, punctuation and
articles removed, spaces collapsed), then compared to the target.

>>> normalize_answer("The  Eiffel Tower.")
'eiffel tower'
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from typing import Any

import torch

from editkit.batching import chunks, encode_prompt, model_device

STOP_STRINGS: tuple[str, ...] = (".", "\n")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD-style normalization: lowercase, drop punctuation and articles, collapse spaces."""
    text = text.lower().translate(_PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def cut_at_stop(text: str, stops: Sequence[str] = STOP_STRINGS) -> str:
    """The text before the first stop string."""
    cut = len(text)
    for s in stops:
        pos = text.find(s)
        if pos != -1:
            cut = min(cut, pos)
    return text[:cut]


def exact_match(generated: str, target: str) -> bool:
    """Whether a generated answer (cut at the first stop) equals the target after normalization."""
    return normalize_answer(cut_at_stop(generated)) == normalize_answer(target)


@torch.inference_mode()
def greedy_generate(
    model: Any,
    tok: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 32,
    batch_size: int = 32,
    stop_strings: Sequence[str] | None = None,
) -> list[list[int]]:
    """Greedy continuations (new token ids, EOS excluded), batched with left padding.

    Args:
        max_new_tokens: upper bound on new tokens.
        stop_strings: when given, a batch stops early once every row's decoded
            continuation contains one of them (the ids after it are kept; cut
            the text with :func:`cut_at_stop`).

    Returns:
        One list of new token ids per prompt, in input order.
    """
    from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

    eos = tok.eos_token_id
    pad = tok.pad_token_id if tok.pad_token_id is not None else eos
    device = model_device(model)
    encoded = [encode_prompt(tok, p) for p in prompts]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    out: list[list[int]] = [[] for _ in prompts]
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        eos_token_id=eos,
        pad_token_id=pad,
    )

    class _StopStrings(StoppingCriteria):
        def __init__(self, start: int) -> None:
            self.start = start

        def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
            texts = tok.batch_decode(input_ids[:, self.start :], skip_special_tokens=True)
            done = [any(s in t for s in stop_strings or ()) for t in texts]
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    for idx in chunks(order, batch_size):
        width = max(len(encoded[i]) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            seq = encoded[i]
            ids[row, width - len(seq) :] = torch.tensor(seq)
            mask[row, width - len(seq) :] = 1
        criteria = StoppingCriteriaList([_StopStrings(width)]) if stop_strings else None
        gen = model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            generation_config=config,
            stopping_criteria=criteria,
        )
        new = gen[:, width:].cpu()
        for row, i in enumerate(idx):
            toks = new[row].tolist()
            if eos is not None and eos in toks:
                toks = toks[: toks.index(eos)]
            out[i] = toks
    return out


def decode_completion(tok: Any, ids: Sequence[int], *, max_tokens: int | None = None) -> str:
    """Decode new token ids (optionally only the first ``max_tokens``)."""
    return str(tok.decode(list(ids[:max_tokens] if max_tokens else ids), skip_special_tokens=True))
