"""TuCo results on disk: ``tuco.jsonl`` (one prompt per line), ``generations.jsonl``, ``tuco.json``.

Files are written into a folder the caller owns (the CLI builds it with
:func:`editkit.outputs.output_dir`, so the whole output appears at once).

>>> write_tuco_files(folder, results, generations, meta={"base": "smollm2"})   # doctest: +SKIP
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from audit.tuco.analysis import Generation, TucoResult
from editkit.outputs import atomic_write_text

TUCO_FILE = "tuco.jsonl"
GENERATIONS_FILE = "generations.jsonl"
SUMMARY_FILE = "tuco.json"


def _jsonl(records: Sequence[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def summary(results: Sequence[TucoResult]) -> dict[str, Any]:
    """Mean, median, min and max of TuCo and OutputCo over the prompts."""
    out: dict[str, Any] = {"prompts": len(results)}
    for key in ("tuco", "outputco"):
        values = [getattr(r, key) for r in results]
        out[key] = (
            {"mean": statistics.fmean(values), "median": statistics.median(values), "min": min(values), "max": max(values)}
            if values
            else None
        )
    return out


def write_tuco_files(
    folder: str | Path,
    results: Sequence[TucoResult],
    generations: Sequence[Generation] = (),
    *,
    meta: dict[str, Any] | None = None,
) -> list[Path]:
    """Write ``tuco.jsonl``, ``generations.jsonl`` (when there are generations) and ``tuco.json`` (summary + ``meta``).

    Returns:
        The paths written.
    """
    root = Path(folder)
    written = [root / TUCO_FILE]
    atomic_write_text(written[0], _jsonl([r.to_dict() for r in results]))
    alphas = sorted({g.alpha for g in generations})
    if generations:
        written.append(root / GENERATIONS_FILE)
        atomic_write_text(written[-1], _jsonl([g.to_dict() for g in generations]))
    doc = {**(meta or {}), "summary": summary(results), "alphas": alphas,
           "files": {"tuco": TUCO_FILE, "generations": GENERATIONS_FILE if generations else None}}
    written.append(root / SUMMARY_FILE)
    atomic_write_text(written[-1], json.dumps(doc, indent=2, default=str) + "\n")
    return written
