"""Build ``data/reference_text.jsonl``: short passages for perplexity and KL drift.

The passages are hand-written for editkit (``reference_passages.py``; CC0):
300 passages of 1-4 sentences and 20-80 words over eleven topics (science,
history, daily life, cooking, sports, technology, nature, dialogue,
instructions, miscellany and a set of longer paragraphs). They avoid named
places, companies and famous people, so they do not ask about the facts the
edit sets change; when ``data/counterfact.jsonl`` exists, the script reports
every passage that still mentions an edited subject (whole word, case-sensitive).

Order: topics interleaved round-robin (so any prefix of the file is a
balanced sample), ids ``ref-0001`` ... in that order. No model is needed.

Usage (from the repository root)::

    python data/scripts/build_reference_text.py
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from jsonl_io import write_jsonl  # noqa: E402
from reference_passages import ALL  # noqa: E402

DATA = HERE.parent
MIN_WORDS, MAX_WORDS = 20, 80
SENTENCE_END = re.compile(r"[.!?]+[\"']?(?=\s|$)")


def interleave(groups: tuple[tuple[str, tuple[str, ...]], ...]) -> list[tuple[str, str]]:
    out = []
    longest = max(len(texts) for _, texts in groups)
    for i in range(longest):
        for topic, texts in groups:
            if i < len(texts):
                out.append((topic, texts[i]))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DATA / "reference_text.jsonl")
    ap.add_argument("--counterfact", type=Path, default=DATA / "counterfact.jsonl")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()

    items = interleave(ALL)
    problems = []
    seen: set[str] = set()
    for topic, text in items:
        n = len(text.split())
        if not MIN_WORDS <= n <= MAX_WORDS:
            problems.append(f"{topic}: {n} words: {text[:60]!r}")
        if text in seen:
            problems.append(f"{topic}: duplicate passage {text[:60]!r}")
        if text != " ".join(text.split()):
            problems.append(f"{topic}: stray whitespace in {text[:60]!r}")
        seen.add(text)
    if problems:
        raise SystemExit("bad passages:\n" + "\n".join(problems))

    rows = [{"id": f"ref-{i:04d}", "text": text, "source": "written"}
            for i, (_, text) in enumerate(items, start=1)]
    write_jsonl(args.out, rows)

    words = [len(t.split()) for _, t in items]
    sentences = Counter(len(SENTENCE_END.findall(t)) for _, t in items if not t.startswith('"'))
    print(f"wrote {args.out} ({len(rows)} passages)")
    print("per topic:", dict(Counter(topic for topic, _ in items)))
    print(f"words: min {min(words)}, max {max(words)}, mean {sum(words) / len(words):.1f}; "
          f"sentences (non-dialogue): {dict(sorted(sentences.items()))}")
    if args.counterfact.exists():
        subjects = sorted({json.loads(line)["subject"] for line in
                           args.counterfact.read_text(encoding="utf-8").splitlines()})
        hits = [(r["id"], s) for r in rows for s in subjects
                if re.search(rf"(?<!\w){re.escape(s)}(?!\w)", r["text"])]
        print(f"passages mentioning an edited subject: {len(hits)} {hits}")
    print(f"total {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
