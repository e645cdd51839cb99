"""Running the selected analyses on one context: failures isolated, finished ones kept for a resume.

Each analysis runs in turn on the shared :class:`~audit.context.AuditContext`.
One that raises becomes an error section and an error finding (the message,
and the last frames of the traceback in the finding's details) and the others
still run; only Ctrl-C (``KeyboardInterrupt``) and a process kill stop the
audit. Each analysis that finishes is written at once, atomically, as
``<name>.json`` into a :class:`PartialStore` (for the CLI, the hidden sibling
``.<out>.partial/`` of the output folder), tagged with a key of everything it
depends on (the context's :meth:`~audit.context.AuditContext.fingerprint`,
its options, the editkit version): a resumed run reuses exactly the outputs
whose key still matches and runs the rest.

>>> results = run_analyses(ctx, ["drift", "tuco"], parse_options(["drift", "tuco"]))   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit.analyses import AnalysisOptions, AnalysisOutput, AnalysisUnavailable, get_analysis
from editkit.errors import EditkitError
from editkit.outputs import atomic_write_text
from editkit.report import Finding, Section

if TYPE_CHECKING:
    from audit.context import AuditContext

Progress = Callable[[str, int, int], None]
PARTIAL_FORMAT = "editkit-audit-partial/1"
TRACEBACK_FRAMES = 6


def partial_dir_for(out: str | Path) -> Path:
    """Where the finished analyses of a run writing ``out`` are kept: the hidden sibling ``.<name>.partial``."""
    path = Path(out)
    return path.parent / f".{path.name}.partial"


@dataclass
class AnalysisRun:
    """One analysis's result in this run.

    Attributes:
        name: the analysis.
        output: its section and findings.
        reused: taken from an interrupted run's partial results (not recomputed).
    """

    name: str
    output: AnalysisOutput
    reused: bool = False


class PartialStore:
    """Finished analyses of one audit on disk: ``<root>/<name>.json``, each written atomically.

    Args:
        root: the folder (created on the first save).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, name: str) -> Path:
        return self.root / f"{name}.json"

    def exists(self) -> bool:
        return self.root.is_dir() and any(self.root.glob("*.json"))

    def load(self, name: str, key: str) -> AnalysisOutput | None:
        """The saved output of ``name`` if it was saved under ``key``, else None (also for a damaged file)."""
        file = self.path(name)
        try:
            doc = json.loads(file.read_text(encoding="utf-8"))
            if doc.get("format") != PARTIAL_FORMAT or doc.get("key") != key:
                return None
            return AnalysisOutput.from_dict(doc["output"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, name: str, key: str, output: AnalysisOutput) -> Path:
        doc = {"format": PARTIAL_FORMAT, "analysis": name, "key": key, "output": output.to_dict()}
        atomic_write_text(self.path(name), json.dumps(doc, ensure_ascii=False, allow_nan=False) + "\n")
        return self.path(name)

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def analysis_key(ctx: AuditContext, name: str, options: AnalysisOptions) -> str:
    """What a finished analysis depends on, hashed: inputs, its options, the editkit and report versions."""
    from editkit import __version__
    from editkit.report import SCHEMA_VERSION
    from editkit.report.schema import to_jsonable

    doc = {"inputs": ctx.fingerprint(), "analysis": name, "options": to_jsonable(options.to_dict()),
           "editkit": __version__, "schema": SCHEMA_VERSION}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def failed_output(name: str, exc: BaseException) -> AnalysisOutput:
    """The section and error finding of an analysis that raised ``exc``."""
    title = get_analysis(name).title
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, AnalysisUnavailable):
        return AnalysisOutput(Section(name, title, status="error", summary=f"Not measured: {message}."),
                              [Finding(name, "error", f"not measured: {message}")])
    details: dict[str, Any] = {"error": type(exc).__name__}
    if not isinstance(exc, EditkitError):  # a bug, not an input problem: keep where it happened
        frames = traceback.format_exception(type(exc), exc, exc.__traceback__)
        details["traceback"] = "".join(frames[-TRACEBACK_FRAMES:])
    return AnalysisOutput(Section(name, title, status="error", summary=f"Failed: {message}."),
                          [Finding(name, "error", f"the analysis failed: {message}", details)])


def run_analyses(
    ctx: AuditContext,
    names: Sequence[str],
    options: Mapping[str, AnalysisOptions],
    *,
    store: PartialStore | None = None,
    resume: bool = False,
    progress: Progress | None = None,
) -> list[AnalysisRun]:
    """Run each analysis on ``ctx`` in order, isolating failures and saving what finishes.

    Args:
        ctx: the shared context.
        names: the analyses, in report order.
        options: options per analysis (:func:`audit.analyses.parse_options`).
        store: where finished analyses are saved (None: nowhere).
        resume: reuse the outputs ``store`` holds under a matching key.
        progress: ``progress("<analysis>: <stage>", done, total)`` while they run.

    Returns:
        One :class:`AnalysisRun` per name. A failed analysis is not saved (a
        resumed run tries it again).
    """
    runs = []
    for name in names:
        analysis, opts = get_analysis(name), options[name]
        key = analysis_key(ctx, name, opts) if store is not None else ""
        saved = store.load(name, key) if store is not None and resume else None
        if saved is not None:
            runs.append(AnalysisRun(name, saved, reused=True))
            continue
        if progress is not None:
            progress(f"{name}: starting", 0, 1)

            def report(stage: str, done: int, total: int, name: str = name) -> None:
                progress(f"{name}: {stage}", done, total)

            ctx.progress = report
        start = time.perf_counter()
        ok = False
        try:
            output = analysis.run(ctx, opts)
            ok = output.section.status != "error"
        except Exception as exc:  # one analysis failing must not stop the others
            output = failed_output(name, exc)
        finally:
            ctx.progress = None
        output.section.seconds = time.perf_counter() - start
        if ok and store is not None:
            store.save(name, key, output)
        runs.append(AnalysisRun(name, output))
    return runs
