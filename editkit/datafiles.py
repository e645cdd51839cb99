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


def read_texts(path: str | Path) -> list[str]:
    """Passages from a reference-text file: JSONL with a ``text`` field, or plain text (one per line)."""
    p = Path(path)
    if not p.is_file():
        raise EditkitError(f"{p}: no such file; pass --reference with a .jsonl or .txt file")
    if p.suffix == ".jsonl":
        texts = [text_of(p, lineno, obj) for lineno, obj in iter_jsonl(p)]
    else:
        texts = [line for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not texts:
        raise EditkitError(f"{p}: no passages found")
    return texts
