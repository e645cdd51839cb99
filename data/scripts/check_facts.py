"""Check which candidate facts the default model knows; write ``data/facts.jsonl``.

Every candidate in ``candidates.py`` is asked on its relation's main template.
A fact is *known* when, for one accepted spelling ``t`` of the target:

1. teacher forcing: the argmax prediction is the target token at every target
   position of ``prompt + " " + t`` (``token_accuracy == 1.0``), and
2. greedy decoding: the model's own answer equals ``t``. The answer is the
   greedy continuation (target length + 4 new tokens, at most 16) cut at the first ``.``,
   newline, ``,``, ``;`` or ``(``, then normalized like editkit's
   exact-match metric (lowercase, no punctuation or articles). The extra cuts
   at ``,``/``;``/``(`` accept answers such as "Paris, France" or "Chicago,
   Illinois"; ``checked.exact_match`` records editkit's stricter metric (cut
   at ``.`` and newline only) for every fact.

The first spelling that passes both is the fact's ``target``. Known facts get
their paraphrase prompts scored too (teacher-forced token accuracy on the same
target). Rejected candidates go to ``data/facts_rejected.jsonl`` with the
evidence, so what the model gets wrong can be inspected.

Usage (from the repository root)::

    EDITKIT_CACHE=/root/.cache/editkit python data/scripts/check_facts.py

Deterministic: fixed candidate order, greedy decoding, no sampling.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
try:
    import editkit  # noqa: F401
except ImportError:  # running from a source checkout without an install
    sys.path.insert(1, str(HERE.parents[1]))
from candidates import RELATIONS, Relation  # noqa: E402
from jsonl_io import write_jsonl  # noqa: E402

from editkit.batching import chunks, collate, encode_pairs, model_device  # noqa: E402
from editkit.evaluate.generation import (  # noqa: E402
    decode_completion,
    exact_match,
    greedy_generate,
    normalize_answer,
)
from editkit.evaluate.scoring import score_pairs  # noqa: E402
from editkit.models import load_model  # noqa: E402

DATA = HERE.parent
MAX_NEW_TOKENS = 16
MAX_TARGET_TOKENS = 12  # so a 16-token greedy continuation always has room for target + stop
GREEDY_SLACK = 4  # greedy tokens decoded beyond the target's length
ANSWER_CUT = re.compile(r"[.\n,;(]")


@dataclass
class Candidate:
    relation: Relation
    subject: str  # without a leading article
    prompt: str
    paraphrases: list[str]
    aliases: list[str]  # accepted spellings, canonical first
    scores: dict[str, Any] = field(default_factory=dict)  # alias -> PairScore
    ranks: dict[str, int] = field(default_factory=dict)  # alias -> 1-based rank of its first token
    greedy: str = ""


def render(template: str, subject_text: str) -> str:
    """Fill a template; an article at the start of the sentence is capitalized."""
    text = template.format(subject_text)
    return "T" + text[1:] if text.startswith("the ") else text


def answer_of(greedy: str) -> str:
    """The model's answer: the continuation cut at the first . newline , ; or (."""
    return ANSWER_CUT.split(greedy, maxsplit=1)[0]


def answer_matches(greedy: str, target: str) -> bool:
    return normalize_answer(answer_of(greedy)) == normalize_answer(target)


def aliases_of(spec: str, case_variants: bool) -> list[str]:
    out: list[str] = []
    for alias in spec.split("|"):
        forms = [alias]
        if case_variants:
            flipped = alias[0].swapcase() + alias[1:]
            forms.append(flipped)
        for form in forms:
            if form not in out:
                out.append(form)
    return out


def build_candidates() -> list[Candidate]:
    out = []
    for rel in RELATIONS:
        if len(rel.paraphrases) < 3:
            raise ValueError(f"{rel.name}: needs at least 3 paraphrase templates")
        for raw_subject, spec in rel.facts:
            subject = raw_subject[4:] if raw_subject.startswith("the ") else raw_subject
            prompt = render(rel.main, raw_subject)
            paraphrases = [render(t, raw_subject) for t in rel.paraphrases]
            for p in [prompt, *paraphrases]:
                if subject not in p:
                    raise ValueError(f"{rel.name}: subject {subject!r} not in prompt {p!r}")
            aliases = aliases_of(spec, rel.case_variants)
            for a in aliases:
                if ANSWER_CUT.search(a) or not a.strip():
                    raise ValueError(f"{rel.name}/{subject}: target {a!r} contains a stop character")
            out.append(Candidate(rel, subject, prompt, paraphrases, aliases))
    keys = Counter((c.relation.name, c.subject) for c in out)
    dup = [k for k, n in keys.items() if n > 1]
    if dup:
        raise ValueError(f"duplicate candidates: {dup}")
    return out


@torch.inference_mode()
def first_token_ranks(model: Any, tok: Any, prompts: list[str], targets: list[str],
                      batch_size: int) -> list[torch.Tensor]:
    """The next-token logits after each prompt (the row that predicts the target's first token)."""
    encoded = encode_pairs(tok, prompts, targets)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    device = model_device(model)
    rows: list[torch.Tensor | None] = [None] * len(encoded)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].ids))
    for idx in chunks(order, batch_size):
        batch = collate([encoded[i] for i in idx], pad_id=pad_id).to(device)
        logits = model(**batch.model_inputs()).logits
        per_pair = batch.split(batch.target_logits(logits).float().cpu())
        for i, lg in zip(idx, per_pair, strict=True):
            rows[i] = lg[0]
    return [r for r in rows if r is not None]


def rank_of(logits: torch.Tensor, token_id: int) -> int:
    return int((logits > logits[token_id]).sum().item()) + 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--out", type=Path, default=DATA / "facts.jsonl")
    ap.add_argument("--rejected", type=Path, default=DATA / "facts_rejected.jsonl")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    cands = build_candidates()
    model, tok = load_model(args.model)
    print(f"{len(cands)} candidates over {len(RELATIONS)} relations; model {args.model}", flush=True)

    # 1. teacher forcing on the main prompt, every accepted spelling
    pairs = [(c, a) for c in cands for a in c.aliases]
    for c, a in pairs:
        n = len(encode_pairs(tok, [c.prompt], [a])[0].target_ids)
        if n > MAX_TARGET_TOKENS:
            raise ValueError(f"{c.subject}: target {a!r} has {n} tokens (> {MAX_TARGET_TOKENS})")
    scores = score_pairs(model, tok, [c.prompt for c, _ in pairs], [a for _, a in pairs],
                         batch_size=args.batch_size)
    for (c, a), s in zip(pairs, scores, strict=True):
        c.scores[a] = s
    t1 = time.perf_counter()
    print(f"scored {len(pairs)} main prompt/target pairs in {t1 - t0:.0f} s", flush=True)

    # 2. rank of each spelling's first token in the next-token distribution
    rows = first_token_ranks(model, tok, [c.prompt for c in cands],
                             [c.aliases[0] for c in cands], args.batch_size)
    for c, row in zip(cands, rows, strict=True):
        for a in c.aliases:
            c.ranks[a] = rank_of(row, c.scores[a].target_ids[0])
    t2 = time.perf_counter()
    print(f"first-token ranks in {t2 - t1:.0f} s", flush=True)

    # 3. greedy answers. Greedy decoding follows the argmax, so when a spelling
    # has token accuracy 1.0 the greedy continuation starts with exactly its
    # tokens and only the tokens after it decide the answer: a budget of
    # (target tokens + GREEDY_SLACK) decides it. Candidates with no such
    # spelling cannot pass and are not decoded; their teacher-forced argmax
    # (whose first token is the greedy first token) is recorded instead.
    budget: dict[int, list[Candidate]] = {}
    for c in cands:
        ok = [len(c.scores[a].target_ids) for a in c.aliases if c.scores[a].token_accuracy == 1.0]
        if ok:
            budget.setdefault(min(max(ok) + GREEDY_SLACK, MAX_NEW_TOKENS), []).append(c)
    for n_new, group in sorted(budget.items()):
        gen = greedy_generate(model, tok, [c.prompt for c in group], max_new_tokens=n_new,
                              batch_size=args.batch_size)
        for c, ids in zip(group, gen, strict=True):
            c.greedy = decode_completion(tok, ids)
    t3 = time.perf_counter()
    n_gen = sum(len(g) for g in budget.values())
    print(f"greedy answers for {n_gen} candidates in {t3 - t2:.0f} s", flush=True)

    # 4. decide
    known: list[tuple[Candidate, str]] = []
    rejected: list[tuple[Candidate, str]] = []
    for c in cands:
        passing = [a for a in c.aliases
                   if c.scores[a].token_accuracy == 1.0 and answer_matches(c.greedy, a)]
        if passing:
            known.append((c, passing[0]))
            continue
        tf_ok = any(c.scores[a].token_accuracy == 1.0 for a in c.aliases)
        reason = ("greedy answer is longer than the target" if tf_ok else
                  "argmax differs from the target (token accuracy < 1)")
        rejected.append((c, reason))

    # 5. paraphrases of known facts
    para_pairs = [(c, t, p) for c, t in known for p in c.paraphrases]
    para_scores = score_pairs(model, tok, [p for _, _, p in para_pairs], [t for _, t, _ in para_pairs],
                              batch_size=args.batch_size)
    para_acc: dict[int, list[float]] = {}
    for (c, _, _), s in zip(para_pairs, para_scores, strict=True):
        para_acc.setdefault(id(c), []).append(round(s.token_accuracy, 4))
    print(f"scored {len(para_pairs)} paraphrase pairs in {time.perf_counter() - t3:.0f} s",
          flush=True)

    fact_rows = []
    for c, t in known:
        s = c.scores[t]
        fact_rows.append({
            "relation": c.relation.name,
            "subject": c.subject,
            "prompt": c.prompt,
            "target": t,
            "aliases": c.aliases,
            "paraphrases": c.paraphrases,
            "checked": {
                "greedy": c.greedy,
                "answer": answer_of(c.greedy).strip(),
                "exact_match": exact_match(c.greedy, t),
                "token_accuracy": s.token_accuracy,
                "mean_logprob": round(s.mean_logprob, 4),
                "first_token_rank": c.ranks[t],
                "paraphrase_token_accuracy": para_acc[id(c)],
            },
        })
    rejected_rows = []
    for c, reason in rejected:
        best = max(c.aliases, key=lambda a: (c.scores[a].token_accuracy, c.scores[a].mean_logprob))
        rejected_rows.append({
            "relation": c.relation.name,
            "subject": c.subject,
            "prompt": c.prompt,
            "expected": c.aliases[0],
            "aliases": c.aliases,
            "reason": reason,
            "checked": {
                "greedy": c.greedy or None,
                "argmax": decode_completion(tok, c.scores[best].argmax_ids),
                "best_alias": best,
                "token_accuracy": round(c.scores[best].token_accuracy, 4),
                "mean_logprob": round(c.scores[best].mean_logprob, 4),
                "first_token_rank": min(c.ranks[a] for a in c.aliases),
            },
        })
    write_jsonl(args.out, fact_rows)
    write_jsonl(args.rejected, rejected_rows)

    # report
    print(f"\n{'relation':<14} {'cands':>5} {'known':>5} {'strict':>6} {'para_known':>10}")
    for rel in RELATIONS:
        n = sum(c.relation is rel for c in cands)
        rows_r = [r for r in fact_rows if r["relation"] == rel.name]
        strict = sum(r["checked"]["exact_match"] for r in rows_r)
        pk = [a == 1.0 for r in rows_r for a in r["checked"]["paraphrase_token_accuracy"]]
        share = f"{sum(pk) / len(pk):.2f}" if pk else "-"
        print(f"{rel.name:<14} {n:>5} {len(rows_r):>5} {strict:>6} {share:>10}")
    all_pk = [a == 1.0 for r in fact_rows for a in r["checked"]["paraphrase_token_accuracy"]]
    print(f"{'total':<14} {len(cands):>5} {len(fact_rows):>5} "
          f"{sum(r['checked']['exact_match'] for r in fact_rows):>6} "
          f"{sum(all_pk) / max(len(all_pk), 1):>10.2f}")
    print("rejections:", dict(Counter(r for _, r in rejected)))
    print(f"wrote {args.out} ({len(fact_rows)} facts) and {args.rejected} ({len(rejected_rows)})")
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
