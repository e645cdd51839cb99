"""The preservation set: text whose behaviour an edit should not change.

Built automatically from three sources:

1. the requests' own templates (the prompt with its subject taken out) filled
   with *other* subjects from the shipped fact tables, with their answers
   (:func:`preservation_pairs`); subjects that are edited, and facts used as
   neighborhood prompts for evaluation, are never used (so locality is
   measured on unseen prompts);
2. general text shipped in ``data/preserve_text.jsonl`` (disjoint from the
   reference text used to measure perplexity);
3. an optional user file (``.jsonl`` with ``text``/``prompt`` fields, or ``.txt``).

>>> texts = preservation_texts(requests, per_template=10, general=20)   # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from editkit.errors import InputError
from editkit.requests import EditRequest


def template_of(prompt: str, subject: str | None) -> str | None:
    """The prompt with its (first) subject occurrence replaced by ``{}``."""
    if not subject or subject not in prompt:
        return None
    return prompt.replace(subject, "{}", 1)


def _read_jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _read_user_file(path: Path) -> list[str]:
    if not path.is_file():
        raise InputError(f"{path}: no such preservation file")
    if path.suffix == ".jsonl":
        out = []
        for n, row in enumerate(_read_jsonl(path), 1):
            text = row.get("text") or row.get("prompt")
            if not isinstance(text, str) or not text.strip():
                raise InputError(f"{path}:{n}: text: expected a non-empty 'text' or 'prompt' string")
            out.append(text)
        return out
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _pool_rows(path: Path) -> list[tuple[str, str, str]]:
    """``(prompt, subject, answer)`` rows of a fact table (``target``, or ``expected`` for rejected facts)."""
    out = []
    for row in _read_jsonl(path):
        answer = row.get("target") or row.get("expected")
        if isinstance(answer, str) and answer:
            out.append((str(row["prompt"]), str(row["subject"]), answer))
    return out


def preservation_pairs(
    requests: Sequence[EditRequest],
    *,
    per_template: int = 10,
    facts_files: Sequence[str | Path] | None = None,
) -> list[tuple[str, str]]:
    """``(prompt, answer)`` pairs: each request template filled with up to ``per_template`` other subjects.

    Subjects come from the shipped fact tables in order: facts the default
    model knows (``facts.jsonl``), then facts it was checked not to know
    (``facts_rejected.jsonl``: their prompts still give the keys and the
    next-token distributions to preserve, and they keep the pool from running
    dry when hundreds of requests use up the known subjects). Edited subjects
    and anything used as a neighborhood prompt are never used.
    """
    from editkit.datafiles import shipped

    if per_template <= 0:
        return []
    paths = [Path(f) for f in facts_files] if facts_files else [shipped("facts.jsonl"), shipped("facts_rejected.jsonl")]
    edited = {r.subject for r in requests if r.subject}
    neighbor_prompts = {n.prompt for r in requests for n in r.neighborhood_prompts}
    pool: dict[str, list[tuple[str, str]]] = defaultdict(list)
    seen: set[str] = set()
    for path in paths:
        for prompt, subject, answer in _pool_rows(path):
            t = template_of(prompt, subject)
            if t is None or subject in edited or prompt in neighbor_prompts or prompt in seen:
                continue
            if any(subject in p for p in neighbor_prompts):
                continue
            seen.add(prompt)
            pool[t].append((subject, answer))
    templates = sorted({t for r in requests if (t := template_of(r.prompt, r.subject))})
    return [(t.replace("{}", subject), answer) for t in templates for subject, answer in pool.get(t, [])[:per_template]]


def preservation_texts(
    requests: Sequence[EditRequest],
    *,
    per_template: int = 10,
    general: int = 20,
    user_file: str | Path | None = None,
    facts_file: str | Path | None = None,
    general_file: str | Path | None = None,
) -> list[str]:
    """Texts to preserve for these requests (deterministic order)."""
    from editkit.datafiles import shipped

    pairs = preservation_pairs(requests, per_template=per_template, facts_files=[facts_file] if facts_file else None)
    texts = [f"{prompt} {answer}" for prompt, answer in pairs]
    if general > 0:
        gen_path = Path(general_file) if general_file else shipped("preserve_text.jsonl")
        texts.extend(str(r["text"]) for r in _read_jsonl(gen_path)[:general])
    if user_file:
        texts.extend(_read_user_file(Path(user_file)))
    return texts
