"""Prompts for TuCo: reading them, wrapping them in the chat template, padding them into batches.

TuCo is measured at the LAST token of the prompt, before generation. For a
chat model the prompt is the templated conversation (optional system message,
the user message, the assistant header: ``add_generation_prompt=True``), so the
last prompt token is the end of the assistant header (the template is
:mod:`editkit.chat`, shared with :mod:`probes`). Batches are padded on either
side with an explicit ``attention_mask`` and ``position_ids`` (the shared
:func:`editkit.batching.collate`); :attr:`PromptBatch.last` names the last
real token of every row, so padded positions are never read.

>>> ids = encode_prompts(tok, ["How do I bake bread?"], system_prompt="Be brief.")   # doctest: +SKIP
>>> batch = prompt_batch(ids, pad_id=tok.pad_token_id, padding_side="left")          # doctest: +SKIP
>>> batch.last                                                                       # doctest: +SKIP
tensor([17])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from editkit.batching import Encoded, PaddingSide, collate, encode_prompt
from editkit.chat import chat_text, uses_chat_template
from editkit.chat import pad_id_of as pad_id_of  # re-exported: TuCo's callers import it from here
from editkit.datafiles import read_texts
from editkit.errors import InputError

PROMPT_FIELDS: tuple[str, ...] = ("prompt", "text")
"""JSONL fields read as the prompt, first present wins."""


def read_prompts(path: str | Path) -> list[str]:
    """Prompts from a ``.jsonl`` file (a ``"prompt"`` or ``"text"`` string per line) or a ``.txt`` file (one per line).

    Blank lines are skipped.

    Raises:
        InputError: missing file, another suffix, a bad line (named by file and
            line), or no prompts at all.

    >>> read_prompts("data/prompts.jsonl")[:1]     # doctest: +SKIP
    ['How do I bake bread?']
    """
    p = Path(path)
    if p.is_file() and p.suffix not in (".jsonl", ".txt"):
        raise InputError(f"{p}: expected a .jsonl file (one {{\"prompt\": ...}} per line) or a .txt file (one prompt per line)")
    return read_texts(p, PROMPT_FIELDS, option="--prompts", what="prompts")


def encode_prompts(
    tok: Any,
    prompts: Sequence[str],
    *,
    chat: bool | None = None,
    system_prompt: str | None = None,
) -> list[tuple[int, ...]]:
    """Token ids of each prompt, chat-templated when :func:`editkit.chat.uses_chat_template` says so.

    A templated prompt is tokenized without adding special tokens (the template
    writes its own); a plain prompt gets the tokenizer's usual ones (BOS).

    Raises:
        InputError: ``chat=True`` without a chat template, a template that rejects
            the prompt, or a prompt with no tokens.
    """
    templated = uses_chat_template(tok, chat, prefix="tuco: ", remedy="drop --chat (or chat=True)")
    out = []
    for i, prompt in enumerate(prompts):
        if templated:
            text = chat_text(tok, prompt, system_prompt, prefix="tuco: ")
            ids = tuple(tok(text, add_special_tokens=False)["input_ids"])
        else:
            ids = encode_prompt(tok, prompt)
        if not ids:
            raise InputError(f"tuco: prompt {i} ({prompt!r}) has no tokens")
        out.append(ids)
    return out


def last_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Column of the last real token of each row of ``attention_mask`` ``[batch, seq]``: ``[batch]``.

    >>> last_positions(torch.tensor([[0, 1, 1], [1, 1, 0]]))
    tensor([2, 1])
    """
    width = attention_mask.shape[-1]
    return width - 1 - attention_mask.flip(-1).to(torch.long).argmax(-1)


@dataclass(frozen=True)
class PromptBatch:
    """Padded prompts.

    Attributes:
        input_ids: ``[batch, seq]``.
        attention_mask: ``[batch, seq]``, 1 on real tokens.
        position_ids: ``[batch, seq]``, 0 at each row's first real token.
        last: ``[batch]``, the column of each row's last prompt token.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    last: torch.Tensor

    def to(self, device: torch.device | str) -> PromptBatch:
        return PromptBatch(*(t.to(device) for t in (self.input_ids, self.attention_mask, self.position_ids, self.last)))

    def model_inputs(self) -> dict[str, torch.Tensor]:
        """Keyword arguments for ``model(...)``."""
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask, "position_ids": self.position_ids}


def prompt_batch(
    ids: Sequence[Sequence[int]], *, pad_id: int, padding_side: PaddingSide = "left"
) -> PromptBatch:
    """Pad token-id sequences into a :class:`PromptBatch` (explicit mask and positions)."""
    batch = collate([Encoded(tuple(row), ()) for row in ids], pad_id=pad_id, padding_side=padding_side)
    mask = batch.attention_mask
    return PromptBatch(batch.input_ids, mask, batch.position_ids, last_positions(mask))
