"""Atomic output directories.

Every command writes into a fresh directory. It is built in a hidden temporary
sibling and renamed into place only when complete, so an interrupted run (an
error, Ctrl-C) leaves nothing half-written. An existing directory is refused
unless ``overwrite=True``.

>>> with output_dir("runs/demo") as tmp:          # doctest: +SKIP
...     (tmp / "report.json").write_text("{}")
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from editkit.errors import EditkitError


def check_output_dir(path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Fail early (before any work) if ``path`` cannot be written as a fresh output."""
    out = Path(path)
    if out.exists() and not overwrite:
        raise EditkitError(
            f"output directory {out} already exists: choose another --out or pass --overwrite"
        )
    if out.exists() and not out.is_dir():
        raise EditkitError(f"output path {out} exists and is not a directory: choose another --out")
    parent = out.parent if str(out.parent) else Path(".")
    if parent.exists() and not os.access(parent, os.W_OK):
        raise EditkitError(f"cannot write into {parent}: choose another --out")
    return out


@contextlib.contextmanager
def output_dir(path: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``path`` when the block succeeds.

    On any exception (KeyboardInterrupt included) the temporary directory is
    removed and ``path`` is left as it was.
    """
    out = check_output_dir(path, overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
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
