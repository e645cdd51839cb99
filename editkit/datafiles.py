"""Locating the small data files shipped with editkit (``data/`` in the repository).

In a source checkout or editable install they are read from the repository's
``data/`` folder; a wheel installs them under ``<prefix>/share/editkit/data``.

>>> shipped("demo.jsonl").name  # doctest: +SKIP
'demo.jsonl'
"""

from __future__ import annotations

import json
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from editkit.errors import EditkitError, InputError


def data_dirs() -> list[Path]:
    """Candidate folders, most specific first."""
    here = Path(__file__).resolve().parent.parent / "data"
    prefixes = {Path(sys.prefix), Path(sysconfig.get_paths()["data"])}
    return [here, *(p / "share" / "editkit" / "data" for p in sorted(prefixes))]


def shipped(name: str) -> Path:
    """The path of a shipped data file, or an error saying it is missing."""
    for folder in data_dirs():
        path = folder / name
        if path.exists():
            return path
    raise EditkitError(f"shipped data file {name!r} not found (looked in {data_dirs()[0]}); reinstall editkit")


def iter_jsonl(path: Path, text: str | None = None) -> Iterator[tuple[int, Any]]:
    """``(line number, parsed object)`` for every non-blank line of a JSONL file (or of ``text``, its contents).

    Raises:
        InputError: ``FILE:LINE: not valid JSON (...)``.
    """
    content = path.read_text(encoding="utf-8") if text is None else text
    for lineno, line in enumerate(content.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None


def text_of(path: Path, lineno: int, obj: Any) -> str:
    """The non-empty ``text`` field of a JSONL row, or an error naming the line."""
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str) or not obj["text"].strip():
        raise InputError(f"{path}:{lineno}: text: expected a non-empty string")
    return str(obj["text"])


def read_texts(
    path: str | Path,
    fields: tuple[str, ...] = ("text",),
    *,
    option: str = "--reference",
    what: str = "passages",
) -> list[str]:
    """Texts from a file: JSONL with one of ``fields`` per line (the first present), or plain text (one per line).

    Blank lines are skipped. Errors name the file (and line) and, for a missing
    file, the command-line ``option`` that takes it.

    Raises:
        InputError: no such file, a bad JSON line, a missing or empty field, or no texts at all.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file; pass {option} with a .jsonl file ({fields[0]!r} per line) or a .txt file")
    try:
        content = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{p}: not UTF-8 text") from None
    if p.suffix != ".jsonl":
        texts = [line for line in content.splitlines() if line.strip()]
    else:
        texts = []
        for lineno, obj in iter_jsonl(p, content):
            field = next((f for f in fields if isinstance(obj, dict) and f in obj), fields[0])
            value = obj.get(field) if isinstance(obj, dict) else None
            if not isinstance(value, str) or not value.strip():
                raise InputError(f"{p}:{lineno}: {field}: expected a non-empty string")
            texts.append(value)
    if not texts:
        raise InputError(f"{p}: no {what} found")
    return texts
