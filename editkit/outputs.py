"""Atomic output directories.

Every command writes into a fresh directory. It is built in a hidden temporary
sibling and renamed into place only when complete, so an interrupted run (an
error, Ctrl-C, SIGTERM) leaves nothing half-written: the renames and the
clean-up hold SIGINT/SIGTERM until they are done. An existing directory is
refused unless ``overwrite=True``, and even then never when it holds one of the
command's inputs or the current directory. A file name built from data (a
matrix or request name) goes through :func:`output_file`, which refuses one
that could point outside the directory.

>>> with output_dir("runs/demo") as tmp:          # doctest: +SKIP
...     (tmp / "report.json").write_text("{}")
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from editkit.errors import EditkitError, InputError


def check_output_dir(
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
) -> Path:
    """Fail early (before any work) if ``path`` cannot be written as a fresh output.

    Args:
        path: the output directory.
        overwrite: whether an existing directory may be replaced.
        inputs: the command's input files and folders: an output that would replace
            one of them (or the current directory) is refused even with ``overwrite``.
    """
    out = Path(path)
    if out.exists() and not overwrite:
        raise EditkitError(
            f"output directory {out} already exists: choose another --out or pass --overwrite"
        )
    if out.exists() and not out.is_dir():
        raise EditkitError(f"output path {out} exists and is not a directory: choose another --out")
    if out.exists():
        where = out.resolve()
        held = [Path.cwd(), *(Path(i) for i in inputs if i is not None)]
        inside = next((h for h in held if h.exists() and h.resolve().is_relative_to(where)), None)
        if inside is not None:
            what = "the current directory" if inside == held[0] else f"the input {inside}"
            raise EditkitError(
                f"--out {out}: --overwrite would delete {what}; choose a new output directory"
            )
    parent = out.parent if str(out.parent) else Path(".")
    if parent.exists() and not os.access(parent, os.W_OK):
        raise EditkitError(f"cannot write into {parent}: choose another --out")
    return out


def input_paths(*items: object) -> list[Path]:
    """The local files and folders among a command's inputs, for ``inputs=`` of :func:`check_output_dir`.

    Strings and paths that exist (``~`` expanded) are kept; lists and tuples are
    flattened. Everything else is left out: None, a zoo alias or hub id with no
    such local path, the words ``default`` / ``none``, and objects that are not
    paths (a loaded model, tuned weights).

    >>> input_paths(None, "no-such-hub/model", ["."], object())
    [PosixPath('.')]
    """
    found: list[Path] = []
    for item in items:
        if isinstance(item, (list, tuple)):
            found.extend(input_paths(*item))
        elif isinstance(item, (str, os.PathLike)) and str(item):
            path = Path(item).expanduser()
            if path.exists():
                found.append(path)
    return found


def check_output_file(
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
) -> Path:
    """Fail early if ``path`` cannot be written as a fresh output file (the file version of :func:`check_output_dir`).

    An existing file is refused unless ``overwrite``, and even then when it is one of ``inputs``.
    """
    out = Path(path)
    if out.exists() and not overwrite:
        raise EditkitError(f"output file {out} already exists: choose another --out or pass --overwrite")
    if out.is_dir():
        raise EditkitError(f"output path {out} is a directory: choose a file name for --out")
    if out.exists():
        same = next((Path(i) for i in inputs if i is not None and Path(i).exists() and Path(i).samefile(out)), None)
        if same is not None:
            raise EditkitError(f"--out {out}: --overwrite would replace the input {same}; choose a new output file")
    return out


def output_file(root: str | os.PathLike[str], name: str) -> Path:
    """``root / name`` for a file name built from data (a matrix or request name), kept inside ``root``.

    ``name`` may hold sub-folders (``spectra/q_proj.png``) but no ``..``, ``.``, empty or
    absolute parts, backslashes or NUL bytes.

    Raises:
        InputError: a name that could point anywhere but a file inside ``root``.

    >>> output_file("runs/x", "spectra/q.png").as_posix()
    'runs/x/spectra/q.png'
    """
    parts = name.split("/")
    if not name or "\x00" in name or "\\" in name or any(part in ("", ".", "..") for part in parts):
        raise InputError(
            f"output name {name[:80]!r}: not a plain relative file name (no '..', '.', empty or "
            "absolute parts, backslashes or NUL); it would not stay inside the output directory"
        )
    return Path(root).joinpath(*parts)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while a few file operations run that must not be cut in the middle.

    A signal that arrives meanwhile is delivered again when the block ends (so Ctrl-C
    still stops the command, right after). Only the main thread receives signals; in
    another thread this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def hold(signum: int, frame: Any) -> None:
        pending.append(signum)

    previous = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        if pending:
            signal.raise_signal(pending[0])


@contextlib.contextmanager
def output_dir(
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``path`` when the block succeeds.

    On any exception (KeyboardInterrupt included) the temporary directory is
    removed and ``path`` is left as it was. ``inputs`` as for :func:`check_output_dir`.
    """
    out = check_output_dir(path, overwrite=overwrite, inputs=inputs)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
        yield tmp
        with signals_held():
            _commit(tmp, out)
    except BaseException:
        with signals_held():
            shutil.rmtree(tmp, ignore_errors=True)
        raise


def _commit(tmp: Path, out: Path) -> None:
    """Rename the finished ``tmp`` into ``out`` (replacing an existing ``out``)."""
    if out.exists():
        trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, trash / out.name)
        os.replace(tmp, out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp, out)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write a file so that readers see either the old content or the new, never a part."""
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))
