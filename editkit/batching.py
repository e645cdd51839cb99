"""Shared math for prompt + target batches: tokenization, padding, target masks.

Every metric and every editor's loss reads the same target tokens from the
same positions, so this is written once. A *pair* is a prompt and a target
continuation; its text is ``prompt + " " + target`` (no space is added when the
prompt already ends in whitespace), optionally followed by EOS.

Padding is explicit: :func:`collate` builds ``attention_mask`` and
``position_ids`` itself, so a left- or right-padded batch gives the same
numbers as running each pair alone (tests check this).

>>> enc = encode_pairs(tok, ["The capital of France is"], ["Paris"])   # doctest: +SKIP
>>> batch = collate(enc, pad_id=tok.pad_token_id)                      # doctest: +SKIP
>>> logits = model(**batch.model_inputs()).logits                      # doctest: +SKIP
>>> logp = batch.target_logprobs(logits)  # [n_target_tokens_total]    # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

PaddingSide = Literal["left", "right"]


def join_target(prompt: str, target: str) -> str:
    """The separator between a prompt and its target: a space unless the prompt ends in one."""
    return target if (not prompt or prompt[-1].isspace()) else " " + target


@dataclass(frozen=True)
class Encoded:
    """One tokenized pair: ``prompt_ids`` then ``target_ids`` (which may end in EOS)."""

    prompt_ids: tuple[int, ...]
    target_ids: tuple[int, ...]

    @property
    def ids(self) -> tuple[int, ...]:
        return self.prompt_ids + self.target_ids


def encode_prompt(tok: Any, prompt: str) -> tuple[int, ...]:
    """Token ids of a prompt, with the tokenizer's own special tokens (BOS where it adds one)."""
    return tuple(tok(prompt, add_special_tokens=True)["input_ids"])


def encode_pairs(
    tok: Any,
    prompts: Sequence[str],
    targets: Sequence[str],
    *,
    append_eos: bool = False,
) -> list[Encoded]:
    """Tokenize prompt/target pairs so that the target tokens are exactly those of the full text.

    The full text ``prompt + " " + target`` is tokenized; when its tokens start
    with the prompt's own tokens, the rest are the target tokens (so targets are
    scored as the model would see them in running text). When a merge crosses
    the boundary, the target is tokenized on its own (with its leading space).
    """
    if len(prompts) != len(targets):
        raise ValueError(f"{len(prompts)} prompts but {len(targets)} targets")
    for prompt, target in zip(prompts, targets, strict=True):
        if not target:
            raise ValueError(f"empty target for prompt {prompt!r}")
    conts = [join_target(p, t) for p, t in zip(prompts, targets, strict=True)]
    return encode_continuations(tok, prompts, conts, append_eos=append_eos)


def encode_continuations(
    tok: Any,
    prompts: Sequence[str],
    continuations: Sequence[str],
    *,
    append_eos: bool = False,
) -> list[Encoded]:
    """Like :func:`encode_pairs`, with each continuation taken literally (no separator added).

    The text is ``prompt + continuation``: canonical examples (``{"prefix": ...,
    "suffix": " Kabul"}``) carry their own leading space.

    >>> enc = encode_continuations(tok, ["The capital of Afghanistan is"], [" Kabul"])  # doctest: +SKIP
    """
    if len(prompts) != len(continuations):
        raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations")
    eos = getattr(tok, "eos_token_id", None)
    if append_eos and eos is None:
        raise ValueError("append_eos=True but the tokenizer has no eos_token_id")
    out = []
    for prompt, cont in zip(prompts, continuations, strict=True):
        if not cont:
            raise ValueError(f"empty continuation for prompt {prompt!r}")
        p_ids = encode_prompt(tok, prompt)
        full = tuple(tok(prompt + cont, add_special_tokens=True)["input_ids"])
        if len(full) > len(p_ids) and full[: len(p_ids)] == p_ids:
            t_ids = full[len(p_ids) :]
        else:
            t_ids = tuple(tok(cont, add_special_tokens=False)["input_ids"])
        if append_eos:
            t_ids = t_ids + (int(eos),)  # type: ignore[arg-type]
        out.append(Encoded(p_ids, t_ids))
    return out


@dataclass
class Batch:
    """A padded batch of pairs.

    Attributes:
        input_ids: ``[batch, seq]``.
        attention_mask: ``[batch, seq]``, 1 on real tokens.
        position_ids: ``[batch, seq]``, 0 at each row's first real token.
        target_mask: ``[batch, seq]`` bool, True on target tokens.
        labels: ``[batch, seq]``, the target token ids, -100 elsewhere (HF convention).
        lengths: number of target tokens per row.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    target_mask: torch.Tensor
    labels: torch.Tensor
    lengths: list[int]

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            self.input_ids.to(device),
            self.attention_mask.to(device),
            self.position_ids.to(device),
            self.target_mask.to(device),
            self.labels.to(device),
            self.lengths,
        )

    def model_inputs(self) -> dict[str, torch.Tensor]:
        """Keyword arguments for ``model(...)``."""
        return {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "position_ids": self.position_ids,
        }

    def predicting_positions(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(rows, cols)`` of the logits that predict each target token, in row-major order.

        The token at position ``t`` is predicted by the logits at ``t - 1``.
        """
        rows, cols = self.target_mask.nonzero(as_tuple=True)
        return rows, cols - 1

    def target_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits predicting every target token: ``[n_target_tokens_total, vocab]``."""
        rows, cols = self.predicting_positions()
        return logits[rows, cols]

    def target_ids(self) -> torch.Tensor:
        """Target token ids in the same order: ``[n_target_tokens_total]``."""
        return self.input_ids[self.target_mask]

    def target_logprobs(self, logits: torch.Tensor) -> torch.Tensor:
        """Log-probability of every target token: ``[n_target_tokens_total]`` (fp32)."""
        lp = torch.log_softmax(self.target_logits(logits).float(), dim=-1)
        return lp.gather(-1, self.target_ids().unsqueeze(-1)).squeeze(-1)

    def split(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Split a per-target-token tensor back into one tensor per row."""
        return list(torch.split(flat, self.lengths))

    def mean_target_nll(self, logits: torch.Tensor) -> torch.Tensor:
        """Per-row mean NLL over its target tokens, ``[batch]`` (the LocFT loss before batch mean)."""
        return self.mean_nll_of_target_logits(self.target_logits(logits))

    def mean_nll_of_target_logits(self, target_logits: torch.Tensor) -> torch.Tensor:
        """Like :meth:`mean_target_nll`, from logits already gathered at the target positions."""
        lp = torch.log_softmax(target_logits.float(), dim=-1)
        nll = -lp.gather(-1, self.target_ids().unsqueeze(-1)).squeeze(-1)
        row = torch.repeat_interleave(
            torch.arange(len(self.lengths), device=nll.device),
            torch.tensor(self.lengths, device=nll.device),
        )
        sums = torch.zeros(len(self.lengths), device=nll.device, dtype=nll.dtype).index_add_(0, row, nll)
        return sums / torch.tensor(self.lengths, device=nll.device, dtype=nll.dtype)


def encode_passages(tok: Any, texts: Sequence[str], *, max_length: int = 128) -> list[Encoded]:
    """Plain text as pairs for language-model loss: the first token is the prompt, the rest the target.

    Collated, every token after the first is a target, so :meth:`Batch.target_logprobs`
    gives the log-probability of each predicted token. Passages are truncated to
    ``max_length`` tokens; those shorter than two tokens are dropped.

    >>> enc = encode_passages(tok, ["Water boils at 100 degrees."])   # doctest: +SKIP
    >>> len(enc[0].prompt_ids)                                         # doctest: +SKIP
    1
    """
    out = []
    for text in texts:
        ids = tuple(tok(text, add_special_tokens=True, truncation=True, max_length=max_length)["input_ids"])
        if len(ids) >= 2:
            out.append(Encoded(ids[:1], ids[1:]))
    return out


def collate(
    encoded: Sequence[Encoded],
    *,
    pad_id: int,
    padding_side: PaddingSide = "right",
) -> Batch:
    """Pad encoded pairs into a :class:`Batch` with explicit positions and target mask."""
    if not encoded:
        raise ValueError("cannot collate an empty batch")
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', not {padding_side!r}")
    width = max(len(e.ids) for e in encoded)
    n = len(encoded)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    attention = torch.zeros((n, width), dtype=torch.long)
    target = torch.zeros((n, width), dtype=torch.bool)
    for i, e in enumerate(encoded):
        ids = torch.tensor(e.ids, dtype=torch.long)
        start = 0 if padding_side == "right" else width - len(ids)
        input_ids[i, start : start + len(ids)] = ids
        attention[i, start : start + len(ids)] = 1
        target[i, start + len(e.prompt_ids) : start + len(ids)] = True
    position_ids = (attention.cumsum(-1) - 1).clamp(min=0)
    labels = torch.where(target, input_ids, torch.full_like(input_ids, -100))
    return Batch(input_ids, attention, position_ids, target, labels, [len(e.target_ids) for e in encoded])


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Consecutive slices of ``items`` of at most ``size``."""
    if size < 1:
        raise ValueError(f"batch size must be >= 1, not {size}")
    for start in range(0, len(items), size):
        yield items[start : start + size]


def length_sorted(encoded: Sequence[Encoded]) -> list[int]:
    """Indices ordering pairs by total length, so batches waste little padding."""
    return sorted(range(len(encoded)), key=lambda i: len(encoded[i].ids))


def model_device(model: torch.nn.Module) -> torch.device:
    """Where inputs must go: the device the input embeddings compute on.

    With a device map (accelerate) that is the embedding's execution device,
    also when its weights are offloaded (:func:`editkit.placement.module_device`).
    """
    from editkit.placement import execution_device, module_device

    get_emb = getattr(model, "get_input_embeddings", None)
    emb = get_emb() if callable(get_emb) else None
    if emb is not None:
        found = execution_device(emb) or execution_device(model)
        if found is not None:
            return found
        if emb.weight.device.type != "meta":
            return torch.device(emb.weight.device)
    return module_device(model)
