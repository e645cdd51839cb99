"""Atomic output directories."""

from __future__ import annotations

from pathlib import Path

import pytest

from editkit.errors import EditkitError
from editkit.outputs import atomic_write_text, output_dir

pytestmark = pytest.mark.unit


def test_output_appears_only_when_complete(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with output_dir(out) as tmp:
        (tmp / "a.txt").write_text("x")
        assert not out.exists()
    assert (out / "a.txt").read_text() == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_failure_leaves_nothing(tmp_path: Path, exc: type[BaseException]) -> None:
    out = tmp_path / "run"
    with pytest.raises(exc), output_dir(out) as tmp:
        (tmp / "a.txt").write_text("x")
        raise exc()
    assert list(tmp_path.iterdir()) == []


def test_existing_refused_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "old").write_text("old")
    with pytest.raises(EditkitError, match="--overwrite"), output_dir(out):
        pass
    with output_dir(out, overwrite=True) as tmp:
        (tmp / "new").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_atomic_write_text(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    atomic_write_text(path, "one")
    atomic_write_text(path, "two")
    assert path.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_outputs_get_ordinary_permissions(tmp_path: Path) -> None:
    import os
    import stat

    mask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "f.txt", "x")
        with output_dir(tmp_path / "run") as tmp:
            (tmp / "a").write_text("x")
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == 0o755
