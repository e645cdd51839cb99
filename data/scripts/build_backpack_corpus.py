"""Build the training corpus of the small Backpack (``editkit backpack train``).

Everything here can be produced offline; the only part that needs a model is
optional. Three sources, each row ``{"id", "text", "source"}``:

1. ``facts``: one sentence per (fact, template) for **every** candidate fact
   of ``candidates.py`` (the 1,274 facts behind ``facts.jsonl`` and
   ``facts_rejected.jsonl``). Each relation is stated with its main prompt
   template and its paraphrase templates completed by the answer ("The
   capital of France is Paris."), plus three templates written here that put
   the answer elsewhere or ask a question ("Paris is the capital of France.",
   "Q: What is the capital of France? A: Paris."). The answer is the spelling
   ``facts.jsonl`` accepted for a fact the default model knows, else the
   canonical (first) spelling. The **last** paraphrase template of each
   relation (``HELD_OUT_PARAPHRASE``) is held out: its sentences go to the
   validation file only, so the validation loss (and ``facts_known.json``'s
   paraphrase columns) show whether a fact is known beyond its trained
   phrasings.
2. ``general``: the shipped general text, ``reference_text.jsonl`` (hand
   written) and ``preserve_text.jsonl`` (greedy text of the default model).
3. ``sampled`` (only with ``--sample-passages N``; needs the default model):
   N passages sampled from the default model (temperature sampling with
   top-p, ``--max-new-tokens`` tokens) after short prompts, the first 3-6
   words of training-split general passages; each passage is cut after its
   last complete sentence. Slow on a CPU (estimated, not measured: 1-2 s per
   passage on 2 cores), so off by default and in tests.

Splits: fact sentences by template (above); general and sampled passages by a
seeded hash of their id (``--val-share`` of them go to validation). Both files
are shuffled with the seed. The output folder also gets ``corpus_meta.json``
(counts, seed, held-out template, options). Deterministic for a given seed
without ``--sample-passages``; with it, the sampling is seeded too (torch's
CPU sampling is reproducible on one machine and thread count).

Usage (from the repository root)::

    python data/scripts/build_backpack_corpus.py                      # facts + general text, < 5 s
    python data/scripts/build_backpack_corpus.py --sample-passages 400  # + model passages (~10 min)
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from candidates import RELATIONS, Relation, order_key  # noqa: E402
from jsonl_io import write_jsonl  # noqa: E402

DATA = HERE.parent
SEED = 20260401
VAL_SHARE = 0.1  # share of general / sampled passages held out for validation
HELD_OUT_PARAPHRASE = -1  # index of the paraphrase template whose sentences are validation-only
GENERAL_FILES = ("reference_text.jsonl", "preserve_text.jsonl")
MAX_BYTES = 8_000_000  # the corpus should stay small (a few MB)

#: Extra statements per relation: ``{s}`` the subject (with its article), ``{o}`` the answer.
EXTRA_TEMPLATES: dict[str, tuple[str, ...]] = {
    "capital": ("{o} is the capital of {s}.", "{o} is the capital city of {s}.",
                "Q: What is the capital of {s}? A: {o}."),
    "language": ("In {s}, the main language is {o}.", "{o} is the main language of {s}.",
                 "Q: What is the main language of {s}? A: {o}."),
    "currency": ("In {s}, the currency is the {o}.", "The {o} is the currency of {s}.",
                 "Q: What is the currency of {s}? A: The {o}."),
    "element": ("{o} is the chemical symbol for {s}.", "The symbol {o} stands for {s}.",
                "Q: What is the chemical symbol for {s}? A: {o}."),
    "landmark": ("{s} is in {o}.", "You can visit {s} in {o}.", "Q: In which city is {s}? A: {o}."),
    "city_country": ("{s} is in {o}.", "{s} is a city in {o}.", "Q: In which country is {s}? A: {o}."),
    "continent": ("{s} is in {o}.", "{s} lies in {o}.", "Q: On which continent is {s}? A: {o}."),
    "carmaker": ("{s} is a car maker from {o}.", "{s} cars come from {o}.",
                 "Q: Which country is the car maker {s} from? A: {o}."),
    "dish": ("{s} is a dish from {o}.", "{s} comes from {o}.",
             "Q: Where does the dish {s} come from? A: {o}."),
    "state_capital": ("{o} is the capital of {s}.", "{o} is the state capital of {s}.",
                      "Q: What is the capital of the state of {s}? A: {o}."),
    "company": ("{s} is a company from {o}.", "{s} was founded in {o}.",
                "Q: In which country was the company {s} founded? A: {o}."),
    "author": ("{s} is a work by {o}.", "{o} wrote {s}.", "Q: Who wrote {s}? A: {o}."),
    "team": ("{s} are based in {o}.", "{s} are a team from {o}.", "Q: In which city are {s} based? A: {o}."),
    "sport": ("{s} is known for {o}.", "{s} is famous for {o}.", "Q: Which sport is {s} famous for? A: {o}."),
}

_SENTENCE_END = re.compile(r"[.!?][\"')\]]?(?=\s|$)")


# ---------------------------------------------------------------------------
# facts


def strip_article(raw: str) -> str:
    return raw[4:] if raw.startswith("the ") else raw


def sentence(text: str) -> str:
    """Capitalize a leading article (``the Netherlands ...`` -> ``The Netherlands ...``)."""
    return "T" + text[1:] if text.startswith("the ") else text


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def known_spellings(path: Path) -> dict[tuple[str, str], str]:
    """``(relation, subject) -> target`` for the facts the default model knows (``facts.jsonl``)."""
    if not path.is_file():
        return {}
    table = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            table[(row["relation"], row["subject"])] = row["target"]
    return table


def fact_rows(
    relations: Sequence[Relation],
    known: dict[tuple[str, str], str],
    *,
    limit_per_relation: int | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Fact sentences: ``(train, val)``; val holds the held-out paraphrase template's sentences."""
    train: list[dict[str, Any]] = []
    val: list[dict[str, Any]] = []
    for rel in relations:
        if rel.name not in EXTRA_TEMPLATES:
            raise SystemExit(f"relation {rel.name!r} has no extra templates in EXTRA_TEMPLATES")
        held = HELD_OUT_PARAPHRASE % len(rel.paraphrases)
        prompts = [("main", rel.main)] + [(f"para{i}", t) for i, t in enumerate(rel.paraphrases)]
        facts = rel.facts if limit_per_relation is None else rel.facts[:limit_per_relation]
        for raw, spec in facts:
            subject = strip_article(raw)
            answer = known.get((rel.name, subject), spec.split("|")[0])
            base = f"facts-{rel.name}-{slug(subject)}"
            for name, template in prompts:
                text = sentence(f"{template.format(raw)} {answer}.")
                (val if name == f"para{held}" else train).append(
                    {"id": f"{base}-{name}", "text": text, "source": "facts"}
                )
            for i, template in enumerate(EXTRA_TEMPLATES[rel.name]):
                text = sentence(template.format(s=raw, o=answer))
                text = text[0].upper() + text[1:]
                train.append({"id": f"{base}-extra{i}", "text": text, "source": "facts"})
    return train, val


# ---------------------------------------------------------------------------
# general text


def read_passages(paths: Iterable[Path]) -> list[dict[str, Any]]:
    rows = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                rows.append({"id": f"general-{row['id']}", "text": row["text"].strip(), "source": "general"})
    return rows


def split_by_hash(rows: list[dict[str, Any]], seed: int, share: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The first ``round(share * n)`` rows in a seeded hash order go to validation."""
    ordered = sorted(rows, key=lambda r: order_key(seed, r["id"]))
    n_val = round(share * len(rows))
    val_ids = {r["id"] for r in ordered[:n_val]}
    return [r for r in rows if r["id"] not in val_ids], [r for r in rows if r["id"] in val_ids]


# ---------------------------------------------------------------------------
# sampled passages (needs the default model)


def cut_to_sentences(text: str) -> str:
    """``text`` up to the end of its last complete sentence (all of it when none ends)."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    return text[: ends[-1]] if ends else text


def sample_prompts(passages: Sequence[dict[str, Any]], n: int, seed: int) -> list[str]:
    """``n`` short prompts: the first 3-6 words of passages drawn with the seed."""
    rng = random.Random(f"prompts:{seed}")
    prompts = []
    for _ in range(n):
        words = rng.choice(passages)["text"].split()
        prompts.append(" ".join(words[: rng.randint(3, 6)]))
    return prompts


def sample_passages(
    prompts: Sequence[str],
    *,
    seed: int,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    batch_size: int,
    min_words: int = 12,
) -> list[dict[str, Any]]:
    """Sampled continuations of ``prompts`` by the default model (prompt + continuation)."""
    import torch
    from transformers import GenerationConfig

    from editkit.models import DEFAULT_MODEL, load_model

    model, tok = load_model(DEFAULT_MODEL)
    config = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=True, temperature=temperature, top_p=top_p,
        repetition_penalty=1.1, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    rows = []
    t0 = time.perf_counter()
    for start in range(0, len(prompts), batch_size):
        batch = list(prompts[start : start + batch_size])
        encoded = [tok(p)["input_ids"] for p in batch]
        width = max(map(len, encoded))
        ids = torch.full((len(batch), width), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, seq in enumerate(encoded):  # left padding
            ids[row, width - len(seq) :] = torch.tensor(seq)
            mask[row, width - len(seq) :] = 1
        torch.manual_seed(seed * 100_003 + start)
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
        for row, prompt in enumerate(batch):
            new = tok.decode(out[row, width:], skip_special_tokens=True)
            text = " ".join(cut_to_sentences(prompt + new).split())
            if len(text.split()) >= min_words:
                rows.append({"id": f"sampled-{start + row:05d}", "text": text, "source": "sampled"})
        done = min(start + batch_size, len(prompts))
        print(f"  sampled {done}/{len(prompts)} passages ({time.perf_counter() - t0:.0f} s)", flush=True)
    return rows


# ---------------------------------------------------------------------------


def build(
    *,
    seed: int = SEED,
    val_share: float = VAL_SHARE,
    relations: Sequence[str] | None = None,
    limit_per_relation: int | None = None,
    general_files: Sequence[Path] | None = None,
    facts_file: Path | None = None,
    sampled: Sequence[dict[str, Any]] = (),
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """The corpus without model passages unless ``sampled`` is given: ``(train, val, meta)``."""
    chosen = [r for r in RELATIONS if relations is None or r.name in relations]
    unknown = set(relations or ()) - {r.name for r in RELATIONS}
    if unknown:
        raise SystemExit(f"unknown relations: {', '.join(sorted(unknown))}")
    known = known_spellings(facts_file if facts_file is not None else DATA / "facts.jsonl")
    f_train, f_val = fact_rows(chosen, known, limit_per_relation=limit_per_relation)
    files = list(general_files) if general_files is not None else [DATA / f for f in GENERAL_FILES]
    g_train, g_val = split_by_hash(read_passages(files), seed, val_share)
    s_train, s_val = split_by_hash(list(sampled), seed, val_share)
    train = f_train + g_train + s_train
    val = f_val + g_val + s_val
    random.Random(f"train:{seed}").shuffle(train)
    random.Random(f"val:{seed}").shuffle(val)
    held = {r.name: r.paraphrases[HELD_OUT_PARAPHRASE % len(r.paraphrases)] for r in chosen}
    meta = {
        "seed": seed,
        "val_share": val_share,
        "relations": [r.name for r in chosen],
        "facts": sum(len(r.facts) if limit_per_relation is None else min(len(r.facts), limit_per_relation) for r in chosen),
        "held_out_paraphrase_index": {r.name: HELD_OUT_PARAPHRASE % len(r.paraphrases) for r in chosen},
        "held_out_templates": held,
        "general_files": [p.name for p in files],
        "counts": {
            "train": dict(sorted(Counter(r["source"] for r in train).items())),
            "val": dict(sorted(Counter(r["source"] for r in val).items())),
        },
    }
    return train, val, meta


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", type=Path, default=DATA / "backpack", help="folder for corpus_train/val.jsonl")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--val-share", type=float, default=VAL_SHARE)
    ap.add_argument("--relations", default="", help="comma-separated relation names (default: all)")
    ap.add_argument("--limit-facts", type=int, default=None, help="at most this many facts per relation")
    ap.add_argument("--sample-passages", type=int, default=0, help="passages to sample from the default model (0: none)")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--top-p", type=float, default=0.95)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads for sampling (0: torch's default)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    relations = [r.strip() for r in args.relations.split(",") if r.strip()] or None

    sampled: list[dict[str, Any]] = []
    if args.sample_passages > 0:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        files = [DATA / f for f in GENERAL_FILES]
        g_train, _ = split_by_hash(read_passages(files), args.seed, args.val_share)
        prompts = sample_prompts(g_train, args.sample_passages, args.seed)
        print(f"sampling {len(prompts)} passages from the default model ...", flush=True)
        sampled = sample_passages(
            prompts, seed=args.seed, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
            top_p=args.top_p, batch_size=args.batch_size,
        )

    train, val, meta = build(
        seed=args.seed, val_share=args.val_share, relations=relations,
        limit_per_relation=args.limit_facts, sampled=sampled,
    )
    meta["sampling"] = (
        {"passages": args.sample_passages, "kept": len(sampled), "max_new_tokens": args.max_new_tokens,
         "temperature": args.temperature, "top_p": args.top_p, "repetition_penalty": 1.1}
        if args.sample_passages > 0 else None
    )
    out: Path = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "corpus_train.jsonl", train)
    write_jsonl(out / "corpus_val.jsonl", val)
    (out / "corpus_meta.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    size = sum((out / f).stat().st_size for f in ("corpus_train.jsonl", "corpus_val.jsonl"))
    if size > MAX_BYTES:
        print(f"warning: the corpus is {size / 1e6:.1f} MB (meant to stay under {MAX_BYTES / 1e6:.0f} MB)")

    print(f"facts: {meta['facts']} over {len(meta['relations'])} relations")
    for split in ("train", "val"):
        counts = meta["counts"][split]
        rows = train if split == "train" else val
        words = sum(len(r["text"].split()) for r in rows)
        detail = ", ".join(f"{k} {v}" for k, v in counts.items())
        print(f"{split}: {len(rows)} rows ({detail}), {words} words")
    print(f"wrote {out}/corpus_train.jsonl, corpus_val.jsonl ({size / 1e6:.2f} MB) in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
