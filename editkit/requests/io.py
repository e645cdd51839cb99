"""Reading and writing request files.

Readers stream: ``.jsonl`` is read line by line (constant memory however large
the file), ``.parquet`` and ``.arrow`` files batch by batch with pyarrow, and a
directory written by ``datasets.Dataset.save_to_disk`` through its
memory-mapped Arrow files. A ``.json`` file (a JSON array of records, as
CounterFact and ZsRE ship, or one record object) is parsed whole.

Problems are located as ``file:line`` for JSON Lines and ``file:record N``
(1-based) for everything else. Input files are only ever opened for reading.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from editkit.datafiles import iter_lines, parse_json_line
from editkit.errors import InputError
from editkit.requests.formats import FORMATS, RecordFormat, detect_format, get_format
from editkit.requests.schema import EditRequest, RecordError, json_kind

__all__ = [
    "MAX_SHOWN",
    "RequestFile",
    "iter_requests",
    "iter_valid",
    "load_requests",
    "save_requests",
    "source_stamp",
]

PathLike = str | os.PathLike[str]

MAX_SHOWN = 20
"""How many problem lines an aggregated error shows before "... and N more"."""

_JSONL = (".jsonl", ".ndjson")
_JSON = (".json",)
_TABLES = (".parquet", ".arrow")
_BATCH = 1024


@dataclass(frozen=True)
class _Bad:
    """A record that could not even be read as a JSON object."""

    line: str


@dataclass(frozen=True)
class _Raw:
    where: str  # "edits.jsonl:3", the prefix of problem lines
    label: str  # "line 3", to point back at this record from another one
    record: Any


class _Source:
    """A checked input path: exists, has a supported kind."""

    def __init__(self, path: PathLike) -> None:
        self.display = os.fspath(path)
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(
                f"{self.display}: no such file; pass --facts with a path to a .jsonl/.json file"
            )
        suffix = self.path.suffix.lower()
        if self.path.is_dir():
            self.kind = "dataset"
            self._check_dataset_dir()
        elif suffix in _JSONL:
            self.kind = "jsonl"
        elif suffix in _JSON:
            self.kind = "json"
        elif suffix in _TABLES:
            self.kind = suffix[1:]
        else:
            raise InputError(
                f"{self.display}: unsupported file type {suffix or '(no suffix)'!r}; "
                "use .jsonl (one request per line), .json, .parquet, .arrow "
                "or a directory written by datasets' save_to_disk"
            )

    def _check_dataset_dir(self) -> None:
        dict_file = self.path / "dataset_dict.json"
        if dict_file.is_file():
            try:
                splits = list(json.loads(dict_file.read_text(encoding="utf-8"))["splits"])
            except (OSError, ValueError, KeyError, TypeError):
                splits = ["train"]
            raise InputError(
                f"{self.display}: holds a DatasetDict (splits: {', '.join(splits)}); "
                f"pass one split's directory, e.g. {self.path / splits[0]}"
            )
        if not (
            (self.path / "state.json").is_file() and (self.path / "dataset_info.json").is_file()
        ):
            raise InputError(
                f"{self.display}: is a directory but not a dataset saved with "
                "datasets' save_to_disk (no state.json/dataset_info.json); "
                "pass a .jsonl/.json file or such a directory"
            )

    def stamp(self) -> str:
        """Size and modification time of the input, to key caches built from it."""
        files = sorted(self.path.iterdir()) if self.path.is_dir() else [self.path]
        parts = []
        for f in files:
            st = f.stat()
            parts.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}")
        return f"{self.path.resolve()}|" + "|".join(parts)

    def records(self) -> Iterator[_Raw]:
        """Every record of the file, in order, with its location."""
        reader = {
            "jsonl": self._jsonl,
            "json": self._json,
            "parquet": self._parquet,
            "arrow": self._arrow,
            "dataset": self._dataset,
        }[self.kind]
        return reader()

    def _jsonl(self) -> Iterator[_Raw]:
        for lineno, raw in iter_lines(self.path):  # lines are capped in length
            if not raw.strip():
                continue
            where, label = f"{self.display}:{lineno}", f"line {lineno}"
            try:
                record = parse_json_line(raw, where)
            except InputError as err:
                yield _Raw(where, label, _Bad(str(err)))
                continue
            if not isinstance(record, dict):
                hint = (
                    (
                        "; a .jsonl file holds one JSON object per line "
                        "(a JSON array belongs in a .json file)"
                    )
                    if isinstance(record, list)
                    else ""
                )
                record = _Bad(f"{where}: expected a JSON object, got {json_kind(record)}{hint}")
            yield _Raw(where, label, record)

    def _json(self) -> Iterator[_Raw]:
        try:
            data = json.loads(self.path.read_bytes().decode("utf-8-sig"))
        except UnicodeDecodeError as err:
            raise InputError(f"{self.display}: not valid UTF-8 (byte {err.start + 1})") from None
        except RecursionError:
            raise InputError(f"{self.display}: JSON nested too deeply") from None
        except json.JSONDecodeError as err:
            hint = (
                "; it looks like JSON Lines (one object per line): rename it to .jsonl"
                if err.msg == "Extra data"
                else ""
            )
            raise InputError(
                f"{self.display}:{err.lineno}: not valid JSON "
                f"({err.msg} at column {err.colno}){hint}"
            ) from None
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list):
            raise InputError(
                f"{self.display}: expected a JSON array of request records "
                f"or one record object, got {json_kind(data)}"
            )
        for i, record in enumerate(data, 1):
            where = f"{self.display}:record {i}"
            if not isinstance(record, dict):
                record = _Bad(f"{where}: expected a JSON object, got {json_kind(record)}")
            yield _Raw(where, f"record {i}", record)

    def _rows(self, batches: Iterable[Any]) -> Iterator[_Raw]:
        """Rows of Arrow record batches; nulls are dropped (a null field is an absent one)."""
        i = 0
        for batch in batches:
            for row in batch.to_pylist():
                i += 1
                record = {k: v for k, v in row.items() if v is not None}
                yield _Raw(f"{self.display}:record {i}", f"record {i}", record)

    def _unreadable(self, what: str, err: Exception) -> InputError:
        detail = (str(err).splitlines() or [type(err).__name__])[0]
        return InputError(f"{self.display}: not a readable {what} ({detail})")

    def _parquet(self) -> Iterator[_Raw]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            yield from self._rows(pq.ParquetFile(self.path).iter_batches(batch_size=_BATCH))
        except (pa.ArrowException, OSError) as err:
            raise self._unreadable("Parquet file", err) from None

    def _arrow(self) -> Iterator[_Raw]:
        import pyarrow as pa

        try:
            with pa.memory_map(str(self.path)) as source:
                try:  # the random-access "file" format ...
                    reader: Any = pa.ipc.open_file(source)
                    batches: Iterable[Any] = (
                        reader.get_batch(i) for i in range(reader.num_record_batches)
                    )
                except pa.ArrowInvalid:  # ... or the streaming format `datasets` writes
                    source.seek(0)
                    batches = pa.ipc.open_stream(source)
                yield from self._rows(batches)
        except (pa.ArrowException, OSError) as err:
            raise self._unreadable("Arrow IPC file", err) from None

    def _dataset(self) -> Iterator[_Raw]:
        import datasets

        try:
            dataset = datasets.load_from_disk(str(self.path))
        except Exception as err:  # datasets/pyarrow raise many types for a damaged folder
            raise self._unreadable("dataset directory", err) from None
        yield from self._rows(dataset.with_format("arrow").iter(batch_size=_BATCH))


class _FileFormat:
    """The format of a file's first detected record; every other record must match it."""

    def __init__(self) -> None:
        self.name: str | None = None
        self.label = ""

    def check(self, name: str, raw: _Raw) -> None:
        if self.name is None:
            self.name, self.label = name, raw.label
        elif name != self.name:
            raise RecordError(
                [
                    f"{raw.where}: record is in {name} format but {self.label} is {self.name}; "
                    "a file must use one format (split it into one file per format)"
                ]
            )


def _parse(raw: _Raw, fmt: RecordFormat | None, file_format: _FileFormat) -> EditRequest:
    """Parse one raw record with ``fmt``, or with its detected format when ``fmt`` is None."""
    if isinstance(raw.record, _Bad):
        raise RecordError([raw.record.line])
    if fmt is None:
        name = detect_format(raw.record, where=raw.where)
        file_format.check(name, raw)
        return FORMATS[name](raw.record, raw.where)
    if not fmt.matches(raw.record):
        others = [name for name, f in FORMATS.items() if f.matches(raw.record)]
        if others:
            raise RecordError(
                [
                    f"{raw.where}: record is in {others[0]} format, not {fmt.name}; "
                    f"pass format='auto' or format={others[0]!r}"
                ]
            )
    return fmt(raw.record, raw.where)


def _stream(
    source: _Source, fmt: RecordFormat | None, limit: int | None
) -> Iterator[EditRequest | RecordError]:
    """Requests and per-record errors, in file order; raises for file-level problems."""
    file_format = _FileFormat()
    ids: dict[str, str] = {}
    count = 0
    if limit == 0:
        return
    for raw in source.records():
        count += 1
        try:
            request = _parse(raw, fmt, file_format)
            if request.id is not None:
                if request.id in ids:
                    raise RecordError(
                        [
                            f"{raw.where}: id: {request.id!r} repeats the id "
                            f"of {ids[request.id]} (ids must be unique)"
                        ]
                    )
                ids[request.id] = raw.label
        except RecordError as err:
            yield err
        else:
            yield request
        if limit is not None and count >= limit:
            return
    if count == 0:
        why = {
            "jsonl": "the file is empty or has only blank lines",
            "json": "an empty JSON array",
        }.get(source.kind, "no rows")
        raise InputError(
            f"{source.display}: no records ({why}); it needs at least one edit request"
        )


def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise InputError(f"limit: expected None or a non-negative integer, got {limit!r}")


class _Collector:
    """Gathers the problems of a whole file into one error (first ``MAX_SHOWN`` lines)."""

    def __init__(self, display: str) -> None:
        self.display = display
        self.records = 0
        self.lines: list[str] = []
        self.hidden = 0

    def add(self, err: RecordError) -> None:
        self.records += 1
        room = max(0, MAX_SHOWN - len(self.lines))
        self.lines.extend(err.problems[:room])
        self.hidden += max(0, len(err.problems) - room)

    def raise_if_any(self) -> None:
        if not self.records:
            return
        plural = "s" if self.records != 1 else ""
        lines = [f"{self.display}: {self.records} malformed record{plural}", *self.lines]
        if self.hidden:
            lines.append(f"... and {self.hidden} more")
        raise InputError("\n".join(lines))


def iter_requests(
    path: PathLike, *, format: str = "auto", limit: int | None = None
) -> Iterator[EditRequest]:
    """Stream the requests of a file, one at a time (in constant memory, except for a ``.json`` file, parsed whole).

    The path and format are checked at once; records are read lazily, and the
    first malformed one raises (use :func:`load_requests` to see every problem).

    Args:
        path: a ``.jsonl``, ``.json``, ``.parquet`` or ``.arrow`` file, or a
            directory written by ``datasets``' ``save_to_disk``.
        format: ``"auto"`` (detect each record's format) or a name in ``FORMATS``.
        limit: read at most this many records.

    Raises:
        InputError: for a missing or unsupported file, an empty one, or a bad record
            (``file:line: field: problem``).

    >>> for request in iter_requests("edits.jsonl", limit=2):  # doctest: +SKIP
    ...     print(request.prompt, "->", request.target_new)
    """
    source = _Source(path)
    fmt = get_format(format)
    _check_limit(limit)
    return _iter_checked(source, fmt, limit)


class RequestFile:
    """A request file read lazily, as many times as needed: each iteration streams it again.

    For editors that read their requests more than once (LocFT-BF encodes them,
    then builds its preservation set from their templates) without holding them
    all. A ``.jsonl`` file is streamed line by line (``.parquet``, ``.arrow`` and
    ``datasets`` folders batch by batch), so memory stays bounded however large
    it is; a ``.json`` file (one array, as CounterFact and ZsRE ship) is parsed
    whole on each pass, so it is held in memory while it is read. The path, format and
    limit are checked at once; records are parsed on each pass, and the first
    malformed one raises (as :func:`iter_requests`).

    >>> requests = RequestFile("edits.jsonl")                         # doctest: +SKIP
    >>> result = make_editor("locft-bf").compute(model, tok, requests, location)  # doctest: +SKIP
    """

    def __init__(self, path: PathLike, *, format: str = "auto", limit: int | None = None) -> None:
        _Source(path)
        get_format(format)
        _check_limit(limit)
        self.path, self.format, self.limit = path, format, limit

    def __iter__(self) -> Iterator[EditRequest]:
        return iter_requests(self.path, format=self.format, limit=self.limit)

    def __repr__(self) -> str:
        return f"RequestFile({os.fspath(self.path)!r}, format={self.format!r}, limit={self.limit!r})"


def _iter_checked(
    source: _Source, fmt: RecordFormat | None, limit: int | None
) -> Iterator[EditRequest]:
    for item in _stream(source, fmt, limit):
        if isinstance(item, RecordError):
            raise item
        yield item


def iter_valid(
    path: PathLike, *, format: str = "auto", limit: int | None = None
) -> Iterator[EditRequest]:
    """Stream the valid requests; after the last one, raise one error listing every bad record.

    The building block of :func:`load_requests` and ``requests_dataset``.
    """
    source = _Source(path)
    fmt = get_format(format)
    _check_limit(limit)
    collector = _Collector(source.display)
    for item in _stream(source, fmt, limit):
        if isinstance(item, RecordError):
            collector.add(item)
        else:
            yield item
    collector.raise_if_any()


def source_stamp(path: PathLike) -> str:
    """Identify an input's current content (resolved path, sizes, mtimes), to key caches.

    Raises:
        InputError: for a missing or unsupported input.
    """
    return _Source(path).stamp()


def load_requests(
    path: PathLike, *, format: str = "auto", limit: int | None = None
) -> list[EditRequest]:
    """Read every request of a file, checking all records before failing.

    Args:
        path: a ``.jsonl``, ``.json``, ``.parquet`` or ``.arrow`` file, or a
            directory written by ``datasets``' ``save_to_disk``.
        format: ``"auto"`` (detect each record's format) or a name in ``FORMATS``.
        limit: read at most this many records.

    Returns:
        The requests, in file order.

    Raises:
        InputError: one error for the whole file; its first line says how many
            records are malformed (``edits.jsonl: 3 malformed records``), then one
            ``file:line: field: problem`` line per problem (at most 20 shown).

    >>> requests = load_requests("data/demo.jsonl")  # doctest: +SKIP
    >>> requests[0].target_new                        # doctest: +SKIP
    'Rome'
    """
    return list(iter_valid(path, format=format, limit=limit))


def save_requests(requests: Iterable[EditRequest], path: PathLike) -> None:
    """Write requests as canonical JSON Lines, atomically.

    The lines go to a temporary file next to ``path``, which then replaces
    ``path`` in one step: readers never see a half-written file. Empty optional
    fields are left out.

    Args:
        requests: the requests to write.
        path: the ``.jsonl`` file to write (replaced if it exists).

    Raises:
        InputError: if ``path`` is not a ``.jsonl`` path or its directory is missing.
        TypeError: if an item is not an :class:`EditRequest`.

    >>> save_requests([EditRequest("The capital of France is", "Rome")], "out.jsonl")  # doctest: +SKIP
    """
    target = Path(path)
    display = os.fspath(path)
    if target.suffix.lower() not in _JSONL:
        raise InputError(f"{display}: requests are saved as JSON Lines; use a .jsonl path")
    if target.is_dir():
        raise InputError(f"{display}: is a directory; pass a .jsonl file path")
    if not target.parent.is_dir():
        raise InputError(f"{display}: directory {target.parent} does not exist; create it first")
    mode = target.stat().st_mode & 0o777 if target.exists() else 0o644
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            for i, request in enumerate(requests):
                if not isinstance(request, EditRequest):
                    raise TypeError(
                        f"save_requests: item {i} is a {type(request).__name__}, not an EditRequest"
                    )
                f.write(json.dumps(request.to_dict(drop_empty=True), ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
