"""Build the counterfactual edit set ``data/counterfact.jsonl`` and ``data/demo.jsonl``.

Input: ``data/facts.jsonl`` (facts the default model knows, from
``check_facts.py``) and the object lists in ``candidates.py``.

1. Neighbor pools. Subjects are put in one global, seeded order (a hash of
   seed and subject). For every relation the first ``max(3, 20%)`` of its
   known subjects in that order are *reserved*: they are used only as
   neighborhood prompts and are never edited, in any relation (a country
   reserved for ``capital`` is not edited for ``language`` either). A
   reserved fact is dropped from the pools when its prompt contains an edited
   subject as a whole word ("Northern Ireland" when "Ireland" is edited).
2. Requests. Every other known fact becomes one request (id
   ``<relation>-<subject slug>``; the relation is the part before the first
   ``-``). ``target_new`` is drawn (seeded per id) from the relation's other
   objects: the canonical targets of all its candidates, minus every
   spelling of the true answer. ``paraphrase_prompts``: 3 of the relation's
   4 paraphrase templates, those on which the unedited model already gets
   ``target_true`` right (token accuracy 1.0) first. ``neighborhood_prompts``:
   3 reserved facts of the same relation (main template, their true answer),
   drawn per id among those whose answer is not ``target_new``.
3. Filter. A request is kept only when the unedited model prefers the truth:
   mean per-token log-probability of ``target_true`` > that of ``target_new``
   on the main prompt.
4. Demo. ~20 requests for the main job: at most two per relation, targets of
   at most 2 tokens, at least 2 paraphrases already known, no subject or
   target shared with another demo request; within a relation ranked by
   strict exact match, paraphrases known, then the model's confidence.

Usage (from the repository root)::

    EDITKIT_CACHE=/root/.cache/editkit python data/scripts/build_counterfact.py

Deterministic for a given facts file and seed.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
try:
    import editkit  # noqa: F401
except ImportError:  # running from a source checkout without an install
    sys.path.insert(1, str(HERE.parents[1]))
from candidates import RELATIONS, object_table, reserve_per_relation  # noqa: E402
from jsonl_io import write_jsonl  # noqa: E402

from editkit.batching import encode_pairs  # noqa: E402
from editkit.evaluate.generation import normalize_answer  # noqa: E402
from editkit.evaluate.scoring import score_pairs  # noqa: E402
from editkit.models import load_model  # noqa: E402

DATA = HERE.parent
SEED = 20260101
NEIGHBOR_SHARE = 0.2
MIN_POOL = 3
N_NEIGHBORS = 3
N_PARAPHRASES = 3
N_DEMO = 20
DEMO_PER_RELATION = 2
DEMO_MAX_TOKENS = 2


def slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def norms(strings: list[str]) -> set[str]:
    return {normalize_answer(s) for s in strings}




def reserve(facts: list[dict[str, Any]], seed: int) -> set[str]:
    """Subjects used only as neighbors: at least max(MIN_POOL, share) per relation."""
    by_rel: dict[str, list[str]] = defaultdict(list)
    for f in facts:
        by_rel[f["relation"]].append(f["subject"])
    return reserve_per_relation(by_rel, seed, NEIGHBOR_SHARE, MIN_POOL)


def mentions(text: str, subject: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(subject)}(?!\w)", text) is not None


def build(facts: list[dict[str, Any]], seed: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The candidate requests (before the preference filter) and bookkeeping."""
    objects, spellings = object_table()
    reserved = reserve(facts, seed)
    edited = [f for f in facts if f["subject"] not in reserved]
    edited_subjects = sorted({f["subject"] for f in edited})
    pools: dict[str, list[dict[str, Any]]] = defaultdict(list)
    excluded_neighbors = []
    for f in facts:
        if f["subject"] not in reserved:
            continue
        hit = [s for s in edited_subjects if mentions(f["prompt"], s)]
        if hit:
            excluded_neighbors.append((f["relation"], f["subject"], hit))
        else:
            pools[f["relation"]].append(f)

    requests = []
    dropped_no_neighbors = []
    for f in edited:
        rel = f["relation"]
        rid = f"{rel}-{slug(f['subject'])}"
        rng = random.Random(f"{seed}:{rid}")
        truth = norms(f["aliases"])
        choices = [o for o in objects[rel] if not norms(spellings[rel][o]) & truth]
        target_new = rng.choice(choices)
        new_forms = norms(spellings[rel][target_new])
        eligible = [n for n in pools[rel] if not norms(n["aliases"]) & new_forms]
        if len(eligible) < 2:
            dropped_no_neighbors.append(rid)
            continue
        neighbors = rng.sample(eligible, min(N_NEIGHBORS, len(eligible)))
        acc = f["checked"]["paraphrase_token_accuracy"]
        best = sorted(range(len(f["paraphrases"])), key=lambda i: (acc[i] < 1.0, i))[:N_PARAPHRASES]
        requests.append({
            "id": rid,
            "prompt": f["prompt"],
            "target_new": target_new,
            "subject": f["subject"],
            "target_true": f["target"],
            "paraphrase_prompts": [f["paraphrases"][i] for i in sorted(best)],
            "neighborhood_prompts": [{"prompt": n["prompt"], "target": n["target"]} for n in neighbors],
        })
    ids = Counter(r["id"] for r in requests)
    if any(n > 1 for n in ids.values()):
        raise ValueError(f"duplicate ids: {[i for i, n in ids.items() if n > 1]}")
    info = {
        "reserved": reserved,
        "pools": pools,
        "excluded_neighbors": excluded_neighbors,
        "dropped_no_neighbors": dropped_no_neighbors,
    }
    return requests, info


class Scorer:
    """``score_pairs`` with a memo: each distinct (prompt, target) pair is scored once."""

    def __init__(self, model: Any, tok: Any, batch_size: int) -> None:
        self.model, self.tok, self.batch_size = model, tok, batch_size
        self.memo: dict[tuple[str, str], Any] = {}

    def __call__(self, prompts: list[str], targets: list[str]) -> list[Any]:
        pairs = list(zip(prompts, targets, strict=True))
        todo = sorted({p for p in pairs if p not in self.memo})
        if todo:
            scores = score_pairs(self.model, self.tok, [p for p, _ in todo], [t for _, t in todo],
                                 batch_size=self.batch_size)
            self.memo.update(zip(todo, scores, strict=True))
        return [self.memo[p] for p in pairs]


def relation_of(request: dict[str, Any]) -> str:
    return str(request["id"].split("-", 1)[0])


def check_records(path: Path) -> int:
    """Validate with editkit's loader when it is importable, else with a local check."""
    try:
        from editkit.requests import load_requests
    except ImportError as exc:  # the loader is written elsewhere; fall back to a local check
        print(f"  (editkit.requests not importable: {exc}; local check only)")
        n = 0
        for line in path.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            assert set(r) == {"id", "prompt", "target_new", "subject", "target_true",
                              "paraphrase_prompts", "neighborhood_prompts"}, r
            assert r["subject"] in r["prompt"] and r["target_new"] != r["target_true"]
            assert len(r["paraphrase_prompts"]) >= 2 and len(r["neighborhood_prompts"]) >= 2
            n += 1
        return n
    return len(load_requests(path))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--facts", type=Path, default=DATA / "facts.jsonl")
    ap.add_argument("--out", type=Path, default=DATA / "counterfact.jsonl")
    ap.add_argument("--demo", type=Path, default=DATA / "demo.jsonl")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()

    facts = [json.loads(line) for line in args.facts.read_text(encoding="utf-8").splitlines()]
    fact_of = {(f["relation"], f["subject"]): f for f in facts}
    requests, info = build(facts, args.seed)
    print(f"{len(facts)} known facts; {len(info['reserved'])} subjects reserved as neighbors; "
          f"{len(requests)} candidate requests")
    for rel, subj, hit in info["excluded_neighbors"]:
        print(f"  neighbor {rel}/{subj} left out: its prompt mentions edited {hit}")
    for rid in info["dropped_no_neighbors"]:
        print(f"  {rid} dropped: fewer than 2 eligible neighbors")

    model, tok = load_model(args.model)
    prompts = [r["prompt"] for r in requests]
    score = Scorer(model, tok, args.batch_size)
    true_s = score(prompts, [r["target_true"] for r in requests])
    new_s = score(prompts, [r["target_new"] for r in requests])
    kept, lost = [], []
    margin: dict[str, float] = {}
    for r, st, sn in zip(requests, true_s, new_s, strict=True):
        if st.mean_logprob > sn.mean_logprob:
            kept.append(r)
            margin[r["id"]] = st.mean_logprob - sn.mean_logprob
        else:
            lost.append((r, st.mean_logprob, sn.mean_logprob))
    for r, lt, ln in lost:
        print(f"  {r['id']} dropped: model prefers target_new {r['target_new']!r} ({ln:.2f}) "
              f"over target_true {r['target_true']!r} ({lt:.2f})")

    # pre-edit statistics on the kept requests
    para = [(r, p) for r in kept for p in r["paraphrase_prompts"]]
    para_true = score([p for _, p in para], [r["target_true"] for r, _ in para])
    para_new = score([p for _, p in para], [r["target_new"] for r, _ in para])
    nb = [(r, n) for r in kept for n in r["neighborhood_prompts"]]
    nb_true = score([n["prompt"] for _, n in nb], [n["target"] for _, n in nb])
    nb_new = score([n["prompt"] for _, n in nb], [r["target_new"] for r, _ in nb])
    para_known: dict[str, int] = Counter()
    for (r, _), s in zip(para, para_true, strict=True):
        para_known[r["id"]] += s.token_accuracy == 1.0

    # demo
    def n_tokens(prompt: str, target: str) -> int:
        return len(encode_pairs(tok, [prompt], [target])[0].target_ids)

    by_rel: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in kept:
        if max(n_tokens(r["prompt"], r["target_true"]), n_tokens(r["prompt"], r["target_new"])) \
                > DEMO_MAX_TOKENS or para_known[r["id"]] < 2:
            continue
        by_rel[relation_of(r)].append(r)
    for rel, rs in by_rel.items():
        rs.sort(key=lambda r, rel=rel: (
            not fact_of[(rel, r["subject"])]["checked"]["exact_match"],
            -para_known[r["id"]],
            -fact_of[(rel, r["subject"])]["checked"]["mean_logprob"],
            -margin[r["id"]],
        ))
    demo_ids: list[str] = []
    used: set[str] = set()  # subjects and true answers already in the demo
    for _ in range(DEMO_PER_RELATION):
        for rel in RELATIONS:
            picks = [r for r in by_rel.get(rel.name, []) if r["id"] not in demo_ids
                     and not norms([r["subject"], r["target_true"], r["target_new"]]) & used]
            if picks and len(demo_ids) < N_DEMO:
                demo_ids.append(picks[0]["id"])
                used |= norms([picks[0]["subject"], picks[0]["target_true"], picks[0]["target_new"]])
    demo = [r for r in kept if r["id"] in set(demo_ids)]

    write_jsonl(args.out, kept)
    write_jsonl(args.demo, demo)

    # report
    rels = [rel.name for rel in RELATIONS]
    per_rel = Counter(relation_of(r) for r in kept)
    pools = info["pools"]
    print(f"\n{'relation':<14} {'edits':>5} {'pool':>4} {'para_known':>10} {'para_P(new)>P(true)':>19}")
    for rel in rels:
        idx = [i for i, (r, _) in enumerate(para) if relation_of(r) == rel]
        pk = sum(para_true[i].token_accuracy == 1.0 for i in idx)
        pn = sum(para_new[i].mean_logprob > para_true[i].mean_logprob for i in idx)
        share = f"{pk / len(idx):.2f}" if idx else "-"
        share_n = f"{pn / len(idx):.2f}" if idx else "-"
        print(f"{rel:<14} {per_rel[rel]:>5} {len(pools.get(rel, [])):>4} {share:>10} {share_n:>19}")
    pk_all = [s.token_accuracy == 1.0 for s in para_true]
    pk_mean = sum(s.token_accuracy for s in para_true) / len(para_true)
    print(f"{'total':<14} {len(kept):>5} {sum(len(p) for p in pools.values()):>4}")
    print(f"paraphrase prompts: {len(para)}; unedited model answers target_true on "
          f"{sum(pk_all)} ({sum(pk_all) / len(pk_all):.1%}; mean token accuracy {pk_mean:.3f}); "
          f"prefers target_new on "
          f"{sum(n.mean_logprob > t.mean_logprob for t, n in zip(para_true, para_new, strict=True))}")
    nb_acc = sum(s.token_accuracy == 1.0 for s in nb_true) / len(nb_true)
    nb_ns = sum(t.mean_logprob > n.mean_logprob for t, n in zip(nb_true, nb_new, strict=True))
    print(f"neighborhood prompts: {len(nb)} ({len({n['prompt'] for _, n in nb})} distinct); "
          f"token accuracy 1.0 on {nb_acc:.1%}; P(true) > P(new) on {nb_ns / len(nb):.1%}")
    print(f"dropped: {len(info['dropped_no_neighbors'])} without neighbors, "
          f"{len(lost)} where the model prefers target_new")
    print(f"demo: {len(demo)} requests: " + ", ".join(r["id"] for r in demo))
    for path in (args.out, args.demo):
        print(f"validated {path.name}: {check_records(path)} requests")
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
