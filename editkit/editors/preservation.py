"""The preservation set: text whose behaviour an edit should not change.

Built automatically from three sources:

1. the requests' own templates (the prompt with its subject taken out) filled
   with *other* subjects from the shipped fact table, with their true answers;
   subjects that are edited, and facts used as neighborhood prompts for
   evaluation, are never used (so locality is measured on unseen prompts);
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

    texts: list[str] = []
    if per_template > 0:
        facts_path = Path(facts_file) if facts_file else shipped("facts.jsonl")
        rows = _read_jsonl(facts_path)
        edited = {r.subject for r in requests if r.subject}
        neighbor_prompts = {n.prompt for r in requests for n in r.neighborhood_prompts}
        pool: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for row in rows:
            prompt, subject, target = str(row["prompt"]), str(row["subject"]), str(row["target"])
            t = template_of(prompt, subject)
            if t is None or subject in edited or prompt in neighbor_prompts:
                continue
            if any(subject in p for p in neighbor_prompts):
                continue
            pool[t].append((subject, target))
        templates = sorted({t for r in requests if (t := template_of(r.prompt, r.subject))})
        for t in templates:
            for subject, target in pool.get(t, [])[:per_template]:
                texts.append(f"{t.replace('{}', subject)} {target}")
    if general > 0:
        gen_path = Path(general_file) if general_file else shipped("preserve_text.jsonl")
        texts.extend(str(r["text"]) for r in _read_jsonl(gen_path)[:general])
    if user_file:
        texts.extend(_read_user_file(Path(user_file)))
    return texts
