"""Which facts of a fact table a language model knows: first-token rank of each answer.

A fact is known (``top1``) when the first token of its answer is the model's
argmax after the prompt, and ``top5`` when it is among the five most likely
tokens; ``all_tokens`` (stricter) when every token of the answer is the argmax
under teacher forcing, the criterion ``data/facts.jsonl`` applies to the
default model. The answer's tokens are those of ``prompt + " " + target`` after the
prompt's own tokens (:func:`editkit.batching.encode_pairs`), exactly as every
other editkit metric reads them. Works for any causal LM; ``editkit backpack
train`` uses it to report what a trained Backpack knows.

Fact tables are the project's ``data/facts.jsonl`` (``target``) and
``data/facts_rejected.jsonl`` (``expected``; the first of its ``|``-separated
spellings), or any JSONL file with ``prompt`` and ``target``.

>>> facts = read_fact_table("data/facts.jsonl")                  # doctest: +SKIP
>>> report = fact_knowledge(model, tok, facts)                   # doctest: +SKIP
>>> report["share_top1"], report["by_relation"]["capital"]       # doctest: +SKIP
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from editkit.batching import chunks, collate, encode_pairs, length_sorted, model_device
from editkit.datafiles import iter_jsonl
from editkit.errors import InputError
from editkit.lm import gathered_logits


@dataclass(frozen=True)
class Fact:
    """One ``prompt -> target`` fact (``paraphrases``: other prompts with the same answer)."""

    relation: str
    subject: str
    prompt: str
    target: str
    paraphrases: tuple[str, ...] = ()
    table: str = ""


def read_fact_table(path: str | Path) -> list[Fact]:
    """Facts of a JSONL table with ``prompt`` and ``target`` (or ``expected``) per row."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such fact table")
    facts = []
    for lineno, row in iter_jsonl(p):
        target = row.get("target", row.get("expected")) if isinstance(row, dict) else None
        if not isinstance(target, str) or not isinstance(row.get("prompt"), str):
            raise InputError(f"{p}:{lineno}: a fact needs a string prompt and target (or expected)")
        facts.append(
            Fact(
                relation=str(row.get("relation", "")),
                subject=str(row.get("subject", "")),
                prompt=row["prompt"],
                target=target.split("|")[0],
                paraphrases=tuple(row.get("paraphrases") or ()),
                table=p.name,
            )
        )
    return facts


@dataclass(frozen=True)
class AnswerRank:
    """How a model ranks one answer after its prompt (teacher forcing).

    Attributes:
        token: the answer's first token id.
        rank: its 1-based rank after the prompt (1 = argmax; ties count in its favour).
        all_argmax: whether every answer token is the argmax given the tokens before it
            (token accuracy 1.0, the teacher-forcing half of ``data/facts.jsonl``'s criterion).
    """

    token: int
    rank: int
    all_argmax: bool


@torch.inference_mode()
def answer_ranks(
    model: Any, tok: Any, prompts: Sequence[str], targets: Sequence[str], *, batch_size: int = 32
) -> list[AnswerRank]:
    """Per prompt/target pair, the rank of the answer's first token and whether all its tokens are argmax."""
    encoded = encode_pairs(tok, prompts, targets)
    device = model_device(model)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    out: list[AnswerRank | None] = [None] * len(encoded)
    for idx in chunks(length_sorted(encoded), batch_size):
        batch = collate([encoded[i] for i in idx], pad_id=pad_id).to(device)
        logits = gathered_logits(model, batch, lambda kw: model(**kw)).float()  # [n_target_tokens, vocab]
        hits = batch.split(logits.argmax(-1) == batch.target_ids())
        starts = torch.tensor([0, *batch.lengths[:-1]], device=logits.device).cumsum(0)
        first = logits[starts]  # [batch, vocab]: the logits predicting each row's first answer token
        wanted = torch.tensor([encoded[i].target_ids[0] for i in idx], device=logits.device)
        ranks = 1 + (first > first.gather(-1, wanted[:, None])).sum(-1)
        for i, token, rank, hit in zip(idx, wanted.tolist(), ranks.tolist(), hits, strict=True):
            out[i] = AnswerRank(int(token), int(rank), bool(hit.all()))
    return [r for r in out if r is not None]


def _share(values: Sequence[bool]) -> float | None:
    return sum(values) / len(values) if values else None


def fact_knowledge(
    model: Any, tok: Any, facts: Sequence[Fact], *, batch_size: int = 32, top_k: int = 5
) -> dict[str, Any]:
    """How many facts the model knows on their main prompt (and on each paraphrase).

    Returns:
        A JSON-ready dict: ``n``, ``share_top1``, ``share_top{k}``,
        ``share_all_tokens`` (every answer token is the argmax: stricter, since
        answers like "the United States" share their first token), ``by_relation``
        and ``by_table`` (the same shares per group), ``paraphrase_top1`` (per
        paraphrase index, the share of facts with that many paraphrases whose
        answer's first token is the argmax there), and ``facts``: one row per
        fact with its first answer token, rank, ``top1``, ``top{k}`` and ``all_tokens``.
    """
    if not facts:
        raise InputError("no facts to check")
    key_k = f"top{top_k}"
    ranked = answer_ranks(model, tok, [f.prompt for f in facts], [f.target for f in facts], batch_size=batch_size)
    para_prompts, para_targets, para_where = [], [], []
    for i, fact in enumerate(facts):
        for j, prompt in enumerate(fact.paraphrases):
            para_prompts.append(prompt)
            para_targets.append(fact.target)
            para_where.append((i, j))
    para_ranks = answer_ranks(model, tok, para_prompts, para_targets, batch_size=batch_size) if para_prompts else []
    per_para: dict[int, list[bool]] = defaultdict(list)
    fact_para: dict[int, list[int]] = defaultdict(list)
    for (i, j), ans in zip(para_where, para_ranks, strict=True):
        per_para[j].append(ans.rank == 1)
        fact_para[i].append(ans.rank)

    rows = []
    by_relation: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_table: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for i, (fact, ans) in enumerate(zip(facts, ranked, strict=True)):
        row = {
            "table": fact.table,
            "relation": fact.relation,
            "subject": fact.subject,
            "prompt": fact.prompt,
            "target": fact.target,
            "first_token": tok.convert_ids_to_tokens(ans.token),
            "rank": ans.rank,
            "top1": ans.rank == 1,
            key_k: ans.rank <= top_k,
            "all_tokens": ans.all_argmax,
        }
        if fact_para.get(i):
            row["paraphrase_ranks"] = fact_para[i]
        rows.append(row)
        by_relation[fact.relation].append(row)
        by_table[fact.table].append(row)

    def summary(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return {
            "n": len(items),
            "share_top1": _share([r["top1"] for r in items]),
            f"share_{key_k}": _share([r[key_k] for r in items]),
            "share_all_tokens": _share([r["all_tokens"] for r in items]),
        }

    return {
        **summary(rows),
        "by_table": {k: summary(v) for k, v in sorted(by_table.items())},
        "by_relation": {k: summary(v) for k, v in sorted(by_relation.items())},
        "paraphrase_top1": {str(j): _share(v) for j, v in sorted(per_para.items())},
        "facts": rows,
    }
