"""Locating the small data files shipped with editkit (``data/`` in the repository).

In a source checkout or editable install they are read from the repository's
``data/`` folder; a wheel installs them under ``<prefix>/share/editkit/data``.

>>> shipped("demo.jsonl").name  # doctest: +SKIP
'demo.jsonl'
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

from editkit.errors import EditkitError


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


def read_texts(path: str | Path) -> list[str]:
    """Passages from a reference-text file: JSONL with a ``text`` field, or plain text (one per line)."""
    import json

    p = Path(path)
    if not p.is_file():
        raise EditkitError(f"{p}: no such file; pass --reference with a .jsonl or .txt file")
    texts = []
    for lineno, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        if p.suffix == ".jsonl":
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise EditkitError(f"{p}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str) or not obj["text"].strip():
                raise EditkitError(f"{p}:{lineno}: text: expected a non-empty string")
            texts.append(obj["text"])
        else:
            texts.append(line)
    if not texts:
        raise EditkitError(f"{p}: no passages found")
    return texts
