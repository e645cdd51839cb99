"""The analysis registry: a name, a typed options class, and a function of the shared context.

An analysis is a function ``run(ctx, options) -> AnalysisOutput``: it reads
the :class:`~audit.context.AuditContext` (models, tuned weights, prompts,
computed-once results) and returns one report
:class:`~editkit.report.Section` (summary, metrics, tables, figures) and its
:class:`~editkit.report.Finding` s. Options are a frozen dataclass (an
:class:`AnalysisOptions`), settable from the command line as
``--set <analysis>.<option>=<value>``.

>>> register_analysis("mine", MyOptions, run_mine, title="My analysis",
...                   description="what it measures")          # doctest: +SKIP
>>> get_analysis("mine").run(ctx, MyOptions())                # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from editkit.editors.config import EditorConfig, option
from editkit.errors import EditkitError, InputError
from editkit.report import Finding, Section

if TYPE_CHECKING:
    from audit.context import AuditContext


@dataclasses.dataclass(frozen=True)
class AnalysisOptions(EditorConfig):
    """Base of every analysis's options: typed fields with help text, ``from_mapping``, ``with_overrides``.

    Attributes:
        seed: the seed of anything random in the analysis (sampling, sketches).
    """

    seed: int = option("random seed of the analysis (sampling, randomized sketches)", 0)


class AnalysisUnavailable(EditkitError):
    """An analysis that cannot run in this installation (a missing module or extra): its message says why."""


@dataclass
class AnalysisOutput:
    """What one analysis returns: its report section and its findings.

    ``to_dict`` / ``from_dict`` are JSON round trips (an interrupted audit keeps
    each finished analysis's output on disk and reuses it with ``--resume``).
    """

    section: Section
    findings: list[Finding] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        from editkit.report.schema import to_jsonable

        return {"section": to_jsonable(self.section), "findings": to_jsonable(self.findings)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AnalysisOutput:
        findings = d.get("findings", [])
        if not isinstance(findings, list):
            raise ValueError("findings: expected a list")
        return cls(Section.from_dict(d["section"]), [Finding.from_dict(f) for f in findings])


AnalysisFn = Callable[["AuditContext", Any], AnalysisOutput]


@dataclass(frozen=True)
class Analysis:
    """A registered analysis.

    Attributes:
        name: its key (``--analyses``, ``--set <name>.<option>=...``, :attr:`Finding.analysis`).
        title: the report section's title.
        description: one line: what it measures.
        options_cls: its :class:`AnalysisOptions` subclass.
        run: ``run(ctx, options) -> AnalysisOutput``.
    """

    name: str
    title: str
    description: str
    options_cls: type[AnalysisOptions]
    run: AnalysisFn


ANALYSES: dict[str, Analysis] = {}
"""Registered analyses, in registration order (the default order of a report)."""


def register_analysis(
    name: str,
    options_cls: type[AnalysisOptions],
    run: AnalysisFn,
    *,
    title: str,
    description: str,
    overwrite: bool = False,
) -> Analysis:
    """Add an analysis to :data:`ANALYSES`.

    Raises:
        ValueError: the name is taken (unless ``overwrite``) or not a plain identifier.
    """
    if not name.isidentifier():
        raise ValueError(f"analysis name {name!r} must be a plain identifier (letters, digits, _)")
    if name in ANALYSES and not overwrite:
        raise ValueError(f"an analysis named {name!r} is already registered")
    ANALYSES[name] = Analysis(name, title, description, options_cls, run)
    return ANALYSES[name]


def get_analysis(name: str) -> Analysis:
    """The analysis registered as ``name``.

    Raises:
        InputError: unknown name (the closest known one is suggested).
    """
    if name not in ANALYSES:
        close = difflib.get_close_matches(name, list(ANALYSES), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InputError(f"--analyses: unknown analysis {name!r}{hint} (known: {', '.join(ANALYSES)})")
    return ANALYSES[name]


def parse_analyses(value: str | Sequence[str] | None) -> list[str]:
    """``"tuco,cge"`` (or a list) -> checked names without repeats; None or ``"all"``: every analysis.

    >>> parse_analyses("drift, intruders,drift")
    ['drift', 'intruders']
    """
    if value is None or value == "all":
        return list(ANALYSES)
    items = value.split(",") if isinstance(value, str) else list(value)
    names: list[str] = []
    for item in (i.strip() for i in items):
        if item and item not in names:
            get_analysis(item)
            names.append(item)
    if not names:
        raise InputError(f"--analyses: name at least one analysis (known: {', '.join(ANALYSES)})")
    return names


def parse_options(
    names: Sequence[str], assignments: Sequence[str] = (), given: Mapping[str, Any] | None = None
) -> dict[str, AnalysisOptions]:
    """Options for each analysis: defaults, then ``given`` (name -> options or mapping), then ``--set``.

    Args:
        names: the analyses that will run.
        assignments: ``"<analysis>.<option>=<value>"`` strings (the CLI's ``--set``).
        given: per analysis, an options object or a mapping of option -> value.

    Options of a known analysis that is not in ``names`` are checked, then ignored.

    Raises:
        InputError: a malformed assignment, an unknown analysis, or an unknown or invalid option.

    >>> parse_options(["intruders"], ["intruders.k=5"])["intruders"].k     # doctest: +SKIP
    5
    """
    out: dict[str, AnalysisOptions] = {}
    for name in names:
        cls = get_analysis(name).options_cls
        value = (given or {}).get(name)
        if value is None:
            out[name] = cls()
        elif isinstance(value, cls):
            out[name] = value
        elif isinstance(value, Mapping):
            out[name] = cls.from_mapping(value, where=f"options of {name}")
        else:
            raise InputError(f"options of {name}: expected {cls.__name__} or a mapping, got {type(value).__name__}")
    per: dict[str, list[str]] = {}
    for item in assignments:
        target, sep, rest = item.partition(".")
        if not sep or "=" not in rest:
            raise InputError(f"--set {item!r}: expected <analysis>.<option>=<value>, e.g. intruders.k=20")
        get_analysis(target)
        per.setdefault(target, []).append(rest)
    for name, items in per.items():
        try:  # options of an analysis that is not selected are checked too, then unused
            options = (out[name] if name in out else get_analysis(name).options_cls()).with_overrides(items)
        except InputError as exc:
            raise InputError(f"{exc} (options of the {name} analysis: editkit audit analyses)") from None
        if name in out:
            out[name] = options
    return out
