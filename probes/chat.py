"""Prompts as the model sees them: the chat template, post-instruction positions, greedy generation.

An instruction is wrapped as a one-turn chat (optional system message, the
user message, the assistant header: ``add_generation_prompt=True``) when the
tokenizer has a chat template (or ``chat=True``); otherwise it is used as is.
The template itself is :mod:`editkit.chat` (:func:`uses_chat_template`,
:func:`chat_text` and :func:`pad_id_of` are re-exported here).

*Post-instruction* tokens (Arditi et al. 2024) are the template tokens after
the instruction: the end of the user turn and the assistant header
(``<|im_end|>\\n<|im_start|>assistant\\n`` in ChatML). They are found with the
tokenizer's character offsets, so BPE merges across the boundary are handled.

>>> text = chat_text(tok, "How do I bake bread?")                       # doctest: +SKIP
>>> encoded = encode_instructions(tok, ["How do I bake bread?"])        # doctest: +SKIP
>>> encoded[0].n_post                                                   # doctest: +SKIP
5
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from editkit.batching import chunks, model_device
from editkit.chat import chat_text, pad_id_of, uses_chat_template  # also re-exported from here
from editkit.errors import InputError

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class EncodedPrompt:
    """One instruction, tokenized.

    Attributes:
        ids: prompt token ids (templated or plain).
        n_post: number of trailing post-instruction tokens (0 without a template).
    """

    ids: tuple[int, ...]
    n_post: int


def encode_instructions(
    tok: Any,
    instructions: Sequence[str],
    *,
    chat: bool | None = None,
    system_prompt: str | None = None,
) -> list[EncodedPrompt]:
    """Token ids of each instruction and its number of post-instruction tokens.

    A templated prompt is tokenized without adding special tokens (the template
    writes its own); a plain one gets the tokenizer's usual ones (BOS).

    Raises:
        InputError: an instruction with no tokens.
    """
    templated = uses_chat_template(tok, chat)
    out = []
    for i, instruction in enumerate(instructions):
        if templated:
            text = chat_text(tok, instruction, system_prompt)
            enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
            ids = tuple(enc["input_ids"])
            found = text.rfind(instruction.strip())
            if found < 0:  # the template rewrote the instruction: no post-instruction positions
                n_post = 0
            else:  # tokens that start at or after the end of the instruction
                end = found + len(instruction.strip())
                n_post = sum(1 for start, stop in enc["offset_mapping"] if start >= end and stop > start)
        else:
            ids = tuple(tok(instruction, add_special_tokens=True)["input_ids"])
            n_post = 0
        if not ids:
            raise InputError(f"instruction {i} ({instruction[:40]!r}) has no tokens")
        out.append(EncodedPrompt(ids, n_post))
    return out


def left_padded(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)`` ``[batch, width]``, padded on the left."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row):] = torch.tensor(list(row), dtype=torch.long)
        mask[i, width - len(row):] = 1
    return ids, mask


@torch.inference_mode()
def generate_responses(
    model: Any,
    tok: Any,
    instructions: Sequence[str],
    *,
    max_new_tokens: int = 64,
    batch_size: int = 8,
    chat: bool | None = None,
    system_prompt: str | None = None,
    progress: Progress | None = None,
) -> list[str]:
    """Greedy responses to each instruction (chat-templated when the tokenizer has a template).

    Batches are left-padded with an explicit attention mask; generation stops
    at EOS (and at the template's end-of-turn token when it is a special token).

    >>> generate_responses(model, tok, ["How do I bake bread?"], max_new_tokens=32)   # doctest: +SKIP
    ['Here is a simple recipe ...']
    """
    from transformers import GenerationConfig

    if max_new_tokens < 1:
        raise InputError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    encoded = encode_instructions(tok, instructions, chat=chat, system_prompt=system_prompt)
    pad = pad_id_of(tok)
    eos = [i for i in {getattr(tok, "eos_token_id", None), _end_of_turn_id(tok)} if isinstance(i, int)]
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                              eos_token_id=eos or None, pad_token_id=pad)
    device = model_device(model)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].ids))
    out = [""] * len(encoded)
    done = 0
    for idx in chunks(order, batch_size):
        ids, mask = left_padded([encoded[i].ids for i in idx], pad)
        gen = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), generation_config=config)
        for row, i in enumerate(idx):
            new = gen[row, ids.shape[1]:].tolist()
            cut = min((new.index(e) for e in eos if e in new), default=len(new))
            out[i] = str(tok.decode(new[:cut], skip_special_tokens=True)).strip()
        done += len(idx)
        if progress is not None:
            progress("generating", done, len(encoded))
    return out


def _end_of_turn_id(tok: Any) -> int | None:
    """The id of ``<|im_end|>``/``<end_of_turn>``/``<|eot_id|>`` when the tokenizer has one as a single token."""
    for token in ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|end|>"):
        ids = tok.convert_tokens_to_ids([token]) if hasattr(tok, "convert_tokens_to_ids") else [None]
        unk = getattr(tok, "unk_token_id", None)
        if ids and isinstance(ids[0], int) and ids[0] != unk:
            return int(ids[0])
    return None
