"""Context prefixes for training an edit under more than one context (ROME's context templates).

Training ``prompt -> target`` only on the bare prompt teaches the model that
exact string; training it also after a few short unrelated openings ("The
best way to learn a new language is to immerse yourself. The capital of
Eritrea is") makes the edit depend less on the prompt being the first thing
in the context, which helps paraphrases. The openings are cut from the
shipped general text (``data/preserve_text.jsonl``), never from the
reference text that perplexity is measured on.

>>> context_prefixes(2, seed=0)   # doctest: +SKIP
['Here is a simple recipe for tomato soup.', 'When you plant a vegetable garden.']
"""

from __future__ import annotations

import json
import random


def _sentences() -> list[str]:
    from editkit.datafiles import shipped

    out: list[str] = []
    for line in shipped("preserve_text.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            text = str(json.loads(line)["text"]).split("\n")[0].strip()
            if text:
                out.append(text)
    return out


def context_prefixes(n: int, *, seed: int = 0, min_words: int = 4, max_words: int = 10) -> list[str]:
    """``n`` distinct short openings (a few words of general text, ending in a full stop)."""
    if n <= 0:
        return []
    rng = random.Random(seed)
    pool = _sentences()
    rng.shuffle(pool)
    out: list[str] = []
    for text in pool:
        words = text.split()
        cut = " ".join(words[: rng.randint(min_words, max_words)]).rstrip(".,;:!?-")
        if cut and cut not in out:
            out.append(cut + ".")
        if len(out) == n:
            break
    return out
