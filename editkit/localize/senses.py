"""The ``senses`` localization strategy: which Backpack sense vectors should an edit change?

Sense selection of Hewitt et al. (2024), per canonical example (edit requests
count as ``good`` examples, see :mod:`editkit.requests.canonical`):

1. **alpha** (published): sum the sense weights ``alpha[l, i, j]`` over the
   positions ``i`` that predict the suffix and scatter the mass of each context
   position ``j`` onto ``(token x_j, sense l)``. With two suffixes both
   count. (The published code subtracts suffix2's mass for ``good-v-bad``;
   the two sequences share the prefix, so the mass of every prefix position
   at the last prefix row cancels exactly, and single-token suffixes leave no
   candidate at all: editkit adds them, as the published code does for
   ``balance``.)
2. **gradient** (named but not released by the paper): the norm of the gradient
   of the example's loss (:mod:`editkit.objectives`) with respect to a delta on
   each ``(token, sense)`` of the context, i.e. the same-token positions summed.

Each score has a general-text penalty subtracted: ``lambda`` times the mean,
over general passages, of the same quantity for that ``(token, sense)`` on the
passage's own language-model loss (all its predicting positions): senses that
general text leans on are demoted. Only pairs with a positive raw score (words
of the example) are candidates; the ``top_k`` per example are kept and the
union over examples is the :class:`Location`: one site per pair, the pair's
sense-delta slot (:mod:`editkit.backpack.sense_delta`).

Side effect, on purpose: the chosen pairs get zero-valued slots on ``model``
(outputs unchanged bit for bit), so the location's parameters exist and the
shared apply/revert can edit them.

>>> loc = localize("senses", model, tok, requests, top_k=9, lam=1000.0)   # doctest: +SKIP
>>> [(r["word"], r["sense"]) for r in loc.scores["senses"]][:2]           # doctest: +SKIP
[(' Kabul', 3), (' Afghanistan', 10)]
>>> sense_top_words(model, tok, loc, top_n=5)[0].top_words                # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from editkit.backpack.sense_delta import (
    Pair,
    add_sense_slots,
    find_sense_delta,
    sense_pair_of,
    sense_slot_names,
)
from editkit.batching import Batch, chunks, collate, encode_passages, model_device
from editkit.errors import EditkitError
from editkit.localize import register_strategy
from editkit.localize.common import check_options, preserved_state
from editkit.localize.location import Location, Site
from editkit.objectives import EncodedExample, encode_examples, example_batch, losses_from_logits
from editkit.requests.canonical import as_examples

__all__ = [
    "METHODS",
    "SenseWords",
    "location_sense_pairs",
    "sense_top_words",
    "senses",
]

#: Scoring methods and their default ``lambda``: the published 1e3 for alpha mass;
#: for gradients the penalty is on the same scale as the score, so 1.
METHODS: dict[str, float] = {"alpha": 1000.0, "gradient": 1.0}


# ---------------------------------------------------------------------------- scoring


def _pad_id(tok: Any) -> int:
    return int(tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)


def _predicting_rows(batch: Batch, like: torch.Tensor) -> torch.Tensor:
    """``[batch, seq]``: 1 at the positions whose logits predict a target token."""
    rows = torch.zeros(batch.input_ids.shape, dtype=like.dtype, device=like.device)
    r, c = batch.predicting_positions()
    rows[r, c] = 1
    return rows


def _alpha_mass(model: nn.Module, batch: Batch) -> torch.Tensor:
    """``[batch, seq, k]``: weight of each (position, sense) summed over the predicting positions."""
    alpha = model.sense_weights(  # type: ignore[operator]
        batch.input_ids, batch.attention_mask, batch.position_ids
    ).float()  # [batch, k, seq, seq]
    return torch.einsum("blij,bi->bjl", alpha, _predicting_rows(batch, alpha))


def _sense_grads(model: nn.Module, batch: Batch, loss_of_logits: Any) -> torch.Tensor:
    """``[batch, seq, k, d]``: gradient of the loss w.r.t. an offset on each position's senses."""
    path, _ = find_sense_delta(model)
    network = model.get_submodule(path.rpartition(".")[0])
    held: dict[str, torch.Tensor] = {}

    def offset(module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
        held["z"] = torch.zeros_like(output, requires_grad=True)
        return output + held["z"]

    handle = network.register_forward_hook(offset)
    try:
        logits = model(**batch.model_inputs()).logits  # [batch, seq, vocab]
    finally:
        handle.remove()
    (grad,) = torch.autograd.grad(loss_of_logits(logits), held["z"])
    return grad.float()


def _per_token(ids: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum ``values`` ``[m, ...]`` over equal ``ids`` ``[m]``: (unique ids ``[U]``, sums ``[U, ...]``)."""
    uniq, inverse = torch.unique(ids, return_inverse=True)
    sums = values.new_zeros((len(uniq), *values.shape[1:])).index_add_(0, inverse, values)
    return uniq, sums


def _example_scores(
    model: nn.Module, encoded: Sequence[EncodedExample], method: str, pad_id: int, batch_size: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per example: (context token ids ``[U]``, raw score per sense ``[U, k]``)."""
    out: list[tuple[torch.Tensor, torch.Tensor]] = []
    device = model_device(model)
    for part in chunks(list(encoded), batch_size):
        batch = example_batch(part, pad_id=pad_id).to(device)
        if method == "alpha":
            with torch.no_grad():
                per_pos = _alpha_mass(model, batch)  # [rows, seq, k]
        else:
            per_pos = _sense_grads(model, batch, lambda lg, p=part, b=batch: losses_from_logits(p, b, lg).sum())
        real = batch.attention_mask.bool()
        row = 0
        for ex in part:
            ids, vals = [], []
            for k in range(len(ex.sequences)):
                ids.append(batch.input_ids[row + k][real[row + k]])
                vals.append(per_pos[row + k][real[row + k]])
            uniq, sums = _per_token(torch.cat(ids), torch.cat(vals))
            out.append((uniq, sums if method == "alpha" else sums.norm(dim=-1)))
            row += len(ex.sequences)
    return out


def _background(
    model: nn.Module, tok: Any, texts: Sequence[str], method: str, max_length: int, batch_size: int
) -> tuple[torch.Tensor, int]:
    """Mean over passages of each ``(token, sense)``'s score on general text: ``[vocab, k]``."""
    passages = encode_passages(tok, texts, max_length=max_length)
    if not passages:
        raise EditkitError("senses: no general-text passage has two tokens or more")
    vocab = int(model.get_output_embeddings().weight.shape[0])  # type: ignore[operator]
    _, delta = find_sense_delta(model)
    device = model_device(model)
    total = torch.zeros(vocab, delta.num_senses, device=device)
    for part in chunks(passages, batch_size):
        batch = collate(part, pad_id=_pad_id(tok)).to(device)
        real = batch.attention_mask.bool()
        if method == "alpha":
            with torch.no_grad():
                mass = _alpha_mass(model, batch)  # [rows, seq, k]
            total.index_add_(0, batch.input_ids[real], mass[real])
            continue
        grads = _sense_grads(model, batch, lambda lg, b=batch: b.mean_target_nll(lg).sum())
        for row in range(len(part)):  # rows are independent: grads[row] is its own passage's
            uniq, sums = _per_token(batch.input_ids[row][real[row]], grads[row][real[row]])
            total.index_add_(0, uniq, sums.norm(dim=-1))
    return total / len(passages), len(passages)


def _top_pairs(
    uniq: torch.Tensor, raw: torch.Tensor, background: torch.Tensor, lam: float, top_k: int
) -> list[tuple[float, int, int, float]]:
    """The ``top_k`` (score, token, sense, raw) of one example among pairs with raw > 0."""
    score = raw - lam * background[uniq]  # [U, k]
    cands = [
        (float(score[u, s]), int(uniq[u]), s, float(raw[u, s]))
        for u, s in (raw > 0).nonzero().tolist()
    ]
    cands.sort(key=lambda c: (-c[0], c[1], c[2]))
    return cands[:top_k]


# ---------------------------------------------------------------------------- strategy


def _general_texts(texts: Sequence[str] | None, file: str | None, n: int) -> list[str]:
    from editkit.datafiles import read_texts, shipped

    if texts is not None:
        out = list(texts)
    else:
        out = read_texts(file if file else shipped("preserve_text.jsonl"))[:n]
    if not out:
        raise EditkitError("senses: no general text to weigh senses against (general_texts is empty)")
    return out


def senses(
    model: nn.Module,
    tok: Any,
    requests: Sequence[Any],
    *,
    top_k: int = 9,
    lam: float | None = None,
    method: str = "alpha",
    general: int = 20,
    general_texts: Sequence[str] | None = None,
    general_file: str | None = None,
    max_length: int = 128,
    batch_size: int = 8,
    module: str | None = None,
    **options: Any,
) -> Location:
    """The ``senses`` strategy: per example the ``top_k`` sense vectors to finetune, united.

    Args:
        model: A Backpack (:mod:`editkit.backpack`); left as it was, except for
            the zero-valued slots of the chosen pairs.
        tok: Its tokenizer.
        requests: Canonical examples and/or edit requests (``good`` examples).
        top_k: Pairs kept per example (the paper: about 5 to 11).
        lam: ``lambda``, the weight of the general-text penalty (default by method:
            :data:`METHODS`).
        method: ``alpha`` (sense-weight mass) or ``gradient`` (loss-gradient norm).
        general: How many passages of the shipped general text to use.
        general_texts: Passages to use instead.
        general_file: A ``.jsonl`` (``text`` field) or ``.txt`` file of passages to use instead.
        max_length: Tokens per general passage.
        batch_size: Sequences per forward pass.
        module: Accepted for a uniform command line; sense selection always edits sense vectors.

    Returns:
        A :class:`Location` with one site per chosen ``(token, sense)``, best first;
        ``scores["senses"]`` lists ``token, word, sense, score, raw, background,
        examples`` per pair.
    """
    check_options("senses", options)
    if method not in METHODS:
        raise EditkitError(f"senses: method must be one of {', '.join(METHODS)}, not {method!r}")
    if not isinstance(top_k, int) or top_k < 1:
        raise EditkitError(f"senses: top_k must be a positive integer, got {top_k!r}")
    weight = float(METHODS[method] if lam is None else lam)
    examples = as_examples(requests)
    if not examples:
        raise EditkitError("senses: no examples to localize")
    find_sense_delta(model)  # a clear error for a model that is not a Backpack
    texts = _general_texts(general_texts, general_file, general)
    encoded = encode_examples(tok, examples)
    with preserved_state(model):
        for p in model.parameters():
            p.requires_grad_(False)
        background, n_passages = _background(model, tok, texts, method, max_length, batch_size)
        raw = _example_scores(model, encoded, method, _pad_id(tok), batch_size)
    chosen: dict[Pair, dict[str, Any]] = {}
    for index, (uniq, values) in enumerate(raw):
        for score, token, sense, value in _top_pairs(uniq, values, background, weight, top_k):
            row = chosen.setdefault((token, sense), {"score": score, "raw": value, "examples": []})
            row["examples"].append(index)
            if score > row["score"]:
                row.update(score=score, raw=value)
    if not chosen:
        raise EditkitError("senses: no candidate sense has a positive score in any example")
    order = sorted(chosen, key=lambda p: (-chosen[p]["score"], p[0], p[1]))
    rows = [
        {
            "token": t,
            "word": tok.decode([t]),
            "sense": s,
            "score": chosen[(t, s)]["score"],
            "raw": chosen[(t, s)]["raw"],
            "background": float(background[t, s]),
            "examples": chosen[(t, s)]["examples"],
        }
        for t, s in order
    ]
    names = add_sense_slots(model, order)
    criterion = (
        "sense-weight mass on the suffix-predicting positions" if method == "alpha"
        else "gradient norm of the example loss w.r.t. the sense vector"
    ) + f" minus lambda x its mean on {n_passages} general passages"
    reason = (
        f"senses: {len(order)} (word, sense) pairs, the top {top_k} per example by {criterion} "
        f"(lambda {weight:g}) over {len(examples)} examples"
    )
    scores = {
        "criterion": criterion,
        "method": method,
        "lambda": weight,
        "top_k": top_k,
        "n_examples": len(examples),
        "n_general": n_passages,
        "senses": rows,
    }
    return Location(tuple(Site(n, None, "sense") for n in names), "senses", reason, scores)


register_strategy("senses", senses)


# ---------------------------------------------------------------------------- inspection


def location_sense_pairs(location: Location) -> list[Pair]:
    """The ``(token, sense)`` pairs of a sense location, in its order (an error for other locations)."""
    pairs = [sense_pair_of(p) for p in location.params]
    if any(p is None for p in pairs):
        other = next(name for name, p in zip(location.params, pairs, strict=True) if p is None)
        raise EditkitError(
            f"not a sense location: {other!r} is not a sense-delta slot; "
            "localize with the 'senses' strategy (--strategy senses)"
        )
    return [p for p in pairs if p is not None]


@dataclass(frozen=True)
class SenseWords:
    """What a sense vector says: the output words it raises most (``sense @ E^T``, top-n)."""

    token: int
    word: str
    sense: int
    top_words: tuple[str, ...]
    top_logits: tuple[float, ...]


@torch.no_grad()
def sense_top_words(
    model: nn.Module, tok: Any, pairs: Sequence[Pair] | Location, *, top_n: int = 10
) -> list[SenseWords]:
    """For each ``(token, sense)``, the ``top_n`` tokens its sense vector scores highest.

    The sense vectors are the model's current ones (with any applied sense edit),
    so comparing before and after an edit shows what it changed.

    >>> sense_top_words(model, tok, [(tok.encode(" Paris")[0], 3)], top_n=5)  # doctest: +SKIP
    [SenseWords(token=6342, word=' Paris', sense=3, top_words=(' France', ...), ...)]
    """
    if isinstance(pairs, Location):
        pairs = location_sense_pairs(pairs)
    if not pairs:
        return []
    sense_slot_names(model, pairs)  # a clear error for a model that is not a Backpack
    tokens = sorted({t for t, _ in pairs})
    device = model_device(model)
    with preserved_state(model):
        vectors = model.senses(torch.tensor([tokens], device=device))[0].float()  # type: ignore[operator]  # [U, k, d]
    unembed = model.get_output_embeddings().weight.float()  # type: ignore[operator]  # [vocab, d]
    out = []
    for token, sense in pairs:
        logits = vectors[tokens.index(token), sense] @ unembed.T  # [vocab]
        top = logits.topk(min(top_n, logits.shape[0]))
        out.append(
            SenseWords(
                token=int(token),
                word=tok.decode([int(token)]),
                sense=int(sense),
                top_words=tuple(tok.decode([int(i)]) for i in top.indices),
                top_logits=tuple(float(v) for v in top.values),
            )
        )
    return out
