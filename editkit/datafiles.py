"""Locating the small data files shipped with editkit (``data/`` in the repository), and reading text files safely.

In a source checkout or editable install they are read from the repository's
``data/`` folder; a wheel installs them under ``<prefix>/share/editkit/data``.

Every line-oriented reader of a user file (requests, canonical examples, text
sets, fact tables) reads through :func:`iter_lines`, which never holds more than
one capped line: a corrupt or hostile file with a 1 GB line is one clear error
(``FILE:LINE: line longer than N bytes``), not a process that runs out of memory.

>>> shipped("demo.jsonl").name  # doctest: +SKIP
'demo.jsonl'
"""

from __future__ import annotations

import codecs
import json
import os
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


MAX_LINE_BYTES = 64 * 2**20
"""The longest line a line-by-line reader accepts (64 MiB); ``$EDITKIT_MAX_LINE_BYTES`` changes it."""


def max_line_bytes() -> int:
    """The line-length cap in bytes: ``$EDITKIT_MAX_LINE_BYTES`` if set, else :data:`MAX_LINE_BYTES`.

    Raises:
        InputError: the variable is not a positive integer.
    """
    value = os.environ.get("EDITKIT_MAX_LINE_BYTES", "").strip()
    if not value:
        return MAX_LINE_BYTES
    try:
        cap = int(value)
    except ValueError:
        cap = 0
    if cap < 1:
        raise InputError(f"EDITKIT_MAX_LINE_BYTES={value!r}: expected a positive number of bytes")
    return cap


def iter_lines(path: str | os.PathLike[str], *, max_bytes: int | None = None) -> Iterator[tuple[int, bytes]]:
    """``(line number, raw line)`` of a file, read line by line, never more than ``max_bytes`` at once.

    A line longer than the cap (a corrupt or hostile file: a 1 GB line would otherwise be
    read whole into memory) is an error naming the file and line. A UTF-8 byte-order mark
    at the start is dropped; line ends are kept.

    Args:
        path: the file.
        max_bytes: the cap; default :func:`max_line_bytes`.

    Raises:
        InputError: ``FILE:LINE: line longer than N bytes; ...``.

    >>> for lineno, raw in iter_lines("edits.jsonl"): ...   # doctest: +SKIP
    """
    cap = max_line_bytes() if max_bytes is None else max_bytes
    with open(path, "rb") as fh:
        lineno = 0
        while True:
            raw = fh.readline(cap + 1)
            if not raw:
                return
            lineno += 1
            if len(raw) > cap and not raw.endswith(b"\n"):  # readline stopped at the cap
                raise InputError(
                    f"{os.fspath(path)}:{lineno}: line longer than {cap} bytes; a line holds one record: "
                    "check the file is not corrupt, or raise EDITKIT_MAX_LINE_BYTES"
                )
            if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            yield lineno, raw


def iter_text_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, str]]:
    """:func:`iter_lines` decoded as UTF-8 (line ends stripped).

    Raises:
        InputError: a line too long, or not UTF-8 (``FILE:LINE: not valid UTF-8``).
    """
    for lineno, raw in iter_lines(path):
        try:
            yield lineno, raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as err:
            raise InputError(f"{os.fspath(path)}:{lineno}: not valid UTF-8 (byte {err.start + 1})") from None


def read_small_text(path: str | os.PathLike[str], *, what: str = "file", max_bytes: int | None = None) -> str:
    """The whole text of a small file (a config), refusing one larger than the line cap or not UTF-8.

    Raises:
        InputError: too large, or not UTF-8.
    """
    cap = max_line_bytes() if max_bytes is None else max_bytes
    with open(path, "rb") as fh:
        data = fh.read(cap + 1)
    if len(data) > cap:
        raise InputError(f"{os.fspath(path)}: {what} larger than {cap} bytes; is it the right file?")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"{os.fspath(path)}: not valid UTF-8 (byte {err.start + 1}); save the {what} as UTF-8") from None


def parse_json_line(raw: bytes | str, where: str) -> Any:
    """One JSON value from a line of a JSONL file; ``where`` (``FILE:LINE``) starts the error.

    Raises:
        InputError: ``FILE:LINE: not valid UTF-8 / not valid JSON (...) / JSON nested too deeply``.

    >>> parse_json_line(b'{"a": 1}', "x.jsonl:1")
    {'a': 1}
    """
    try:
        return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except UnicodeDecodeError as err:
        raise InputError(f"{where}: not valid UTF-8 (byte {err.start + 1})") from None
    except json.JSONDecodeError as err:
        raise InputError(f"{where}: not valid JSON ({err.msg} at column {err.colno})") from None
    except RecursionError:
        raise InputError(f"{where}: JSON nested too deeply") from None


def iter_jsonl(path: Path, text: str | None = None) -> Iterator[tuple[int, Any]]:
    """``(line number, parsed object)`` for every non-blank line of a JSONL file (or of ``text``, its contents).

    The file is read line by line (:func:`iter_text_lines`: lines are capped in length).

    Raises:
        InputError: ``FILE:LINE: not valid JSON (...)``, a line too long, or not UTF-8.
    """
    lines = iter_text_lines(path) if text is None else enumerate(text.splitlines(), 1)
    for lineno, line in lines:
        if line.strip():
            yield lineno, parse_json_line(line, f"{path}:{lineno}")


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
    if p.suffix != ".jsonl":
        texts = [line for _, line in iter_text_lines(p) if line.strip()]
    else:
        texts = []
        for lineno, obj in iter_jsonl(p):
            field = next((f for f in fields if isinstance(obj, dict) and f in obj), fields[0])
            value = obj.get(field) if isinstance(obj, dict) else None
            if not isinstance(value, str) or not value.strip():
                raise InputError(f"{p}:{lineno}: {field}: expected a non-empty string")
            texts.append(value)
    if not texts:
        raise InputError(f"{p}: no {what} found")
    return texts
