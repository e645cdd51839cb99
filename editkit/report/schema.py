"""The report data model: plain dataclasses that round-trip through JSON.

A :class:`Report` is pure data. Commands (``eval``, ``edit``, ``audit``,
``localize``) fill one in; renderers turn it into text and never recompute
anything. ``to_dict`` is the canonical form: only JSON types (``dict`` with
``str`` keys, ``list``, ``str``, ``int``, ``float``, ``bool``, ``None``), with
NumPy/torch scalars and arrays turned into Python values, tuples into lists,
and **non-finite floats (NaN, +inf, -inf) into ``None``** ("no usable value"),
so the JSON is strict (``allow_nan=False``) and readable by any parser.

>>> r = Report(kind="eval", title="demo", provenance=Provenance(
...     editkit_version="0.1.0", created="2025-01-01T00:00:00Z", command=["eval"],
...     models=[], device="cpu"), metrics={"model": {"reliability": 0.5}})
>>> Report.from_json(r.to_json()) == r
True
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from editkit.errors import EditkitError

SCHEMA_VERSION = 2
"""Bumped whenever a field is added, removed or changes meaning (2: ``sections``, ``summary``).

Reports of an older version load unchanged (the new fields are empty)."""

SEVERITIES = ("info", "warning", "error")
SEVERITY_ORDER = ("error", "warning", "info")
"""Most severe first: the order findings are ranked in (see :func:`rank_findings`)."""

SECTION_STATUSES = ("ok", "error", "skipped")
FIGURE_KINDS = ("heatmap", "lines", "bars", "distributions")
"""What :class:`Figure` can describe; :mod:`editkit.report.figures` draws each kind."""


class ReportFormatError(EditkitError, ValueError):
    """A report dict/JSON that this version of editkit cannot read."""


def to_jsonable(value: Any, where: str = "report") -> Any:
    """Return ``value`` as plain JSON data (a fresh copy; the input is untouched).

    NaN and infinities become ``None``; NumPy/torch scalars and arrays become
    Python numbers and lists (anything with ``tolist()``); tuples and sets
    become lists; mapping keys become strings; dataclasses become dicts.

    Args:
        value: The value to convert.
        where: Where the value sits in the report, for error messages.

    Returns:
        An equivalent value made only of JSON types.

    Raises:
        TypeError: For values with no JSON form (``where`` names the field).

    >>> to_jsonable({"a": (1, float("nan")), 2: 0.5})
    {'a': [1, None], '2': 0.5}
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        return [to_jsonable(v, f"{where}[]") for v in sorted(value, key=repr)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_jsonable(getattr(value, f.name), f"{where}.{f.name}")
            for f in dataclasses.fields(value)
        }
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    tolist = getattr(value, "tolist", None)  # numpy scalars/arrays, torch tensors
    if callable(tolist):
        return to_jsonable(tolist(), where)
    raise TypeError(f"{where}: {type(value).__name__} value {value!r} cannot be stored in a report")


def _take(cls: type, d: Any, where: str) -> dict[str, Any]:
    """Check ``d`` against the fields of dataclass ``cls``; return the known keys."""
    if not isinstance(d, Mapping):
        raise ReportFormatError(f"{where}: expected an object, got {type(d).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    required = {
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    unknown = sorted(set(d) - names)
    if unknown:
        raise ReportFormatError(f"{where}: unknown field(s) {', '.join(unknown)}")
    missing = sorted(required - set(d))
    if missing:
        raise ReportFormatError(f"{where}: missing field(s) {', '.join(missing)}")
    return dict(d)


def _list_of(d: dict[str, Any], key: str, where: str) -> list[Any]:
    value = d.get(key, [])
    if not isinstance(value, list):
        raise ReportFormatError(f"{where}.{key}: expected a list, got {type(value).__name__}")
    return value


def _dict_of(d: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = d.get(key, {})
    if not isinstance(value, dict):
        raise ReportFormatError(f"{where}.{key}: expected an object, got {type(value).__name__}")
    return value


@dataclass
class ModelInfo:
    """One model a report is about.

    >>> ModelInfo(role="model", spec="gpt2", model_type="gpt2", n_params=124439808,
    ...           dtype="float32").role
    'model'
    """

    role: str  # "model", "base", "tuned", "edited"
    spec: str  # what the user passed: zoo alias, path, hub id
    model_type: str  # config.model_type
    n_params: int
    dtype: str
    weights_sha256: str | None = None  # see editkit.report.weights_sha256

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "model") -> ModelInfo:
        """Build from the ``to_dict`` form."""
        return cls(**_take(cls, d, where))


@dataclass
class Provenance:
    """What produced a report: versions, command, models, device, seed.

    Build one with :func:`editkit.report.provenance`, which fills the
    versions and the creation time.
    """

    editkit_version: str
    created: str  # ISO-8601 UTC
    command: list[str]  # argv, or a description of the API call
    models: list[ModelInfo]
    device: str
    backend: str = "torch"
    seed: int | None = None
    versions: dict[str, str] = field(default_factory=dict)  # python, torch, transformers...

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "provenance") -> Provenance:
        """Build from the ``to_dict`` form."""
        kw = _take(cls, d, where)
        kw["models"] = [
            ModelInfo.from_dict(m, f"{where}.models[{i}]")
            for i, m in enumerate(_list_of(kw, "models", where))
        ]
        return cls(**kw)


@dataclass
class MetricInfo:
    """How to read and display one metric.

    >>> MetricInfo("reliability", "token accuracy of target_new on the prompt").fmt
    '.3f'
    """

    name: str
    description: str
    higher_is_better: bool | None = True  # None: no direction (e.g. a count)
    fmt: str = ".3f"  # a format spec for format(value, fmt)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "metric_info") -> MetricInfo:
        """Build from the ``to_dict`` form."""
        return cls(**_take(cls, d, where))


@dataclass
class Table:
    """A titled table of JSON-able scalars (e.g. a per-layer localization sweep).

    >>> Table("layers", ["layer", "effect"], [[0, 0.1], [1, 0.7]], fmt={"effect": ".2f"}).columns
    ['layer', 'effect']
    """

    title: str
    columns: list[str]
    rows: list[list[Any]]  # JSON-able scalars, one list per row
    description: str = ""
    fmt: dict[str, str] = field(default_factory=dict)  # column -> format spec (optional)

    def to_pandas(self) -> Any:
        """The table as a ``pandas.DataFrame`` (needs pandas).

        >>> Table("t", ["a", "b"], [[1, 0.5]]).to_pandas().columns.tolist()   # doctest: +SKIP
        ['a', 'b']
        """
        from editkit.report.frames import table_frame

        return table_frame(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "table") -> Table:
        """Build from the ``to_dict`` form."""
        kw = _take(cls, d, where)
        for i, row in enumerate(_list_of(kw, "rows", where)):
            if not isinstance(row, list) or len(row) != len(kw["columns"]):
                raise ReportFormatError(
                    f"{where}.rows[{i}]: expected a list of {len(kw['columns'])} values"
                )
        return cls(**kw)


@dataclass
class Finding:
    """One result of an analysis, with a severity.

    >>> Finding("intruders", "warning", "12 intruder dimensions in layers.3.mlp").severity
    'warning'
    """

    analysis: str
    severity: str  # "info" | "warning" | "error"
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(
                f"finding severity must be one of {', '.join(SEVERITIES)}, got {self.severity!r}"
            )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "finding") -> Finding:
        """Build from the ``to_dict`` form."""
        kw = _take(cls, d, where)
        try:
            return cls(**kw)
        except ValueError as e:
            raise ReportFormatError(f"{where}: {e}") from None


def rank_findings(findings: list[Finding], order: list[str] | None = None) -> list[Finding]:
    """Findings most severe first; ties keep ``order`` of their analyses, then their own order.

    >>> fs = [Finding("a", "info", "x"), Finding("b", "error", "y"), Finding("a", "warning", "z")]
    >>> [f.message for f in rank_findings(fs)]
    ['y', 'z', 'x']
    """
    place = {name: i for i, name in enumerate(order or [])}
    return sorted(
        findings,
        key=lambda f: (SEVERITY_ORDER.index(f.severity), place.get(f.analysis, len(place))),
    )


@dataclass
class Figure:
    """A figure as data: the HTML renderer draws it (matplotlib), Markdown links its PNG file.

    ``data`` holds only JSON values; its keys depend on ``kind`` (all lists are
    aligned; optional keys in brackets):

    - ``heatmap``: ``rows``, ``columns`` (labels), ``values`` (``[row][column]``,
      null for an empty cell), [``xlabel``, ``ylabel``, ``colorbar``, ``cmap``].
    - ``lines``: ``series``: ``[{"name", "x", "y", ["marked": indices]}]``,
      [``xlabel``, ``ylabel``, ``logy``, ``marked_label``].
    - ``bars``: ``labels``, ``series``: ``[{"name", "values", ["lo", "hi"]}]``
      (``lo``/``hi``: an interval drawn as an error bar), [``ylabel``,
      ``horizontal``, ``ylim``].
    - ``distributions``: ``groups``: ``[{"name", "values"}]`` (a box and the
      points of each group), [``ylabel``, ``ylim``].

    >>> Figure("bars", "rates", {"labels": ["a"], "series": [{"name": "x", "values": [0.5]}]}).kind
    'bars'
    """

    kind: str
    title: str
    data: dict[str, Any]
    description: str = ""

    def __post_init__(self) -> None:
        if self.kind not in FIGURE_KINDS:
            raise ValueError(f"figure kind must be one of {', '.join(FIGURE_KINDS)}, got {self.kind!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "figure") -> Figure:
        """Build from the ``to_dict`` form."""
        kw = _take(cls, d, where)
        if not isinstance(kw["data"], dict):
            raise ReportFormatError(f"{where}.data: expected an object")
        try:
            return cls(**kw)
        except ValueError as e:
            raise ReportFormatError(f"{where}: {e}") from None


@dataclass
class Section:
    """A titled part of a report with its own metrics, tables and figures (one audit analysis).

    ``name`` is what :attr:`Finding.analysis` refers to; ``status`` says
    whether the part was computed (``"ok"``), failed (``"error"``: its
    findings say why) or was not run (``"skipped"``); ``summary`` is one or
    two sentences of what it found.

    >>> Section("drift", "Weight and output drift", metrics={"kl": 0.01}).status
    'ok'
    """

    name: str
    title: str
    status: str = "ok"
    summary: str = ""
    metrics: dict[str, float | None] = field(default_factory=dict)
    metric_info: dict[str, MetricInfo] = field(default_factory=dict)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.status not in SECTION_STATUSES:
            raise ValueError(
                f"section status must be one of {', '.join(SECTION_STATUSES)}, got {self.status!r}"
            )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "section") -> Section:
        """Build from the ``to_dict`` form."""
        kw = _take(cls, d, where)
        kw["metrics"] = _numbers(_dict_of(kw, "metrics", where), f"{where}.metrics")
        kw["metric_info"] = {
            k: MetricInfo.from_dict(v, f"{where}.metric_info.{k}")
            for k, v in _dict_of(kw, "metric_info", where).items()
        }
        kw["tables"] = [
            Table.from_dict(t, f"{where}.tables[{i}]")
            for i, t in enumerate(_list_of(kw, "tables", where))
        ]
        kw["figures"] = [
            Figure.from_dict(f, f"{where}.figures[{i}]")
            for i, f in enumerate(_list_of(kw, "figures", where))
        ]
        try:
            return cls(**kw)
        except ValueError as e:
            raise ReportFormatError(f"{where}: {e}") from None


def _numbers(values: Any, where: str) -> dict[str, float | None]:
    if not isinstance(values, dict) or not all(
        v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values.values()
    ):
        raise ReportFormatError(f"{where}: expected an object of numbers (or null)")
    return values


@dataclass
class Report:
    """Everything a command found, with how it was produced; renderers only read it.

    ``metrics`` maps a column (``"model"`` for ``eval``; ``"before"`` and
    ``"after"`` for ``edit``) to metric name -> value; ``None`` means the
    metric could not be computed (or was NaN/inf). ``per_item`` holds one
    flat row per request (id, prompt, target_new, per-request metrics...).
    ``notes`` are caveats that every format shows. ``sections`` are titled
    parts with their own metrics, tables and figures (an audit's analyses);
    ``summary`` is a paragraph for a person (an audit's verdict).

    >>> prov = Provenance("0.1.0", "2025-01-01T00:00:00Z", ["edit"], [], "cpu")
    >>> r = Report("edit", "LocFT-BF on 2 facts", prov,
    ...            metrics={"before": {"reliability": 0.0}, "after": {"reliability": 1.0}})
    >>> Report.from_dict(r.to_dict()).metrics["after"]
    {'reliability': 1.0}
    """

    kind: str  # "eval" | "edit" | "audit" | "localize" | ...
    title: str
    provenance: Provenance
    config: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # name -> seconds
    metrics: dict[str, dict[str, float | None]] = field(default_factory=dict)
    metric_info: dict[str, MetricInfo] = field(default_factory=dict)
    tables: list[Table] = field(default_factory=list)
    per_item: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    summary: str = ""
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Return the canonical JSON form (a fresh copy; see the module docstring).

        >>> prov = Provenance("0.1.0", "2025-01-01T00:00:00Z", ["eval"], [], "cpu")
        >>> Report("eval", "t", prov, metrics={"model": {"ppl": float("inf")}}).to_dict()["metrics"]
        {'model': {'ppl': None}}
        """
        d = to_jsonable(self)
        return {"schema_version": d.pop("schema_version"), **d}

    def to_pandas(self, key: str | None = None) -> Any:
        """The report's tables as ``pandas.DataFrame`` s (needs pandas).

        Args:
            key: one table: ``"findings"``, ``"metrics"``, ``"sections"``,
                ``"per_item"``, a top-level table's title, or
                ``"<section name>/<table title>"``. None: all of them.

        Returns:
            One DataFrame, or a dict key -> DataFrame (in report order).

        Raises:
            KeyError: no table by that key (the message lists the keys).

        >>> report.to_pandas("intruders/Matrices with intruders")   # doctest: +SKIP
        """
        from editkit.report.frames import report_frames

        frames = report_frames(self)
        if key is None:
            return frames
        if key not in frames:
            raise KeyError(f"no table {key!r} in this report; tables: {', '.join(frames) or '(none)'}")
        return frames[key]

    def _repr_html_(self) -> str:
        """Jupyter's rich display: the HTML report in a sandboxed frame (its styles stay inside)."""
        from editkit.report.html import render_notebook_html

        return render_notebook_html(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Report:
        """Build a report from ``to_dict`` output (or parsed ``report.json``).

        Raises:
            ReportFormatError: (a ``ValueError``) for a missing or newer schema
                version, unknown or missing fields, or wrongly typed values.

        >>> Report.from_dict({"schema_version": 99})
        Traceback (most recent call last):
        ...
        editkit.report.schema.ReportFormatError: report schema version 99 is newer than this editkit reads (2): upgrade editkit
        """
        if not isinstance(d, Mapping):
            raise ReportFormatError(f"report: expected an object, got {type(d).__name__}")
        version = d.get("schema_version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ReportFormatError(
                f"report: schema_version must be a positive integer, got {version!r}"
            )
        if version > SCHEMA_VERSION:
            raise ReportFormatError(
                f"report schema version {version} is newer than this editkit reads "
                f"({SCHEMA_VERSION}): upgrade editkit"
            )
        try:
            plain = to_jsonable(d)
        except RecursionError:
            raise ReportFormatError("report: nested too deeply to be a report") from None
        kw = _take(cls, plain, "report")
        kw["provenance"] = Provenance.from_dict(kw["provenance"], "report.provenance")
        for key in ("config", "timings", "metrics", "metric_info"):
            kw[key] = _dict_of(kw, key, "report")
        for key in ("tables", "per_item", "findings", "notes", "sections"):
            kw[key] = _list_of(kw, key, "report")
        for col, values in kw["metrics"].items():
            _numbers(values, f"report.metrics.{col}")
        kw["metric_info"] = {
            k: MetricInfo.from_dict(v, f"report.metric_info.{k}")
            for k, v in kw["metric_info"].items()
        }
        kw["tables"] = [
            Table.from_dict(t, f"report.tables[{i}]") for i, t in enumerate(kw["tables"])
        ]
        kw["findings"] = [
            Finding.from_dict(f, f"report.findings[{i}]") for i, f in enumerate(kw["findings"])
        ]
        kw["sections"] = [
            Section.from_dict(s, f"report.sections[{i}]") for i, s in enumerate(kw["sections"])
        ]
        return cls(**kw)

    def to_json(self, indent: int | None = 2) -> str:
        """Serialize to strict JSON (no NaN/Infinity tokens; keys in field order).

        >>> prov = Provenance("0.1.0", "2025-01-01T00:00:00Z", ["eval"], [], "cpu")
        >>> Report("eval", "t", prov).to_json(indent=None)[:20]
        '{"schema_version": 2'
        """
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_json(cls, s: str | bytes) -> Report:
        """Parse the output of :meth:`to_json` (e.g. a ``report.json`` file's text or bytes).

        Raises:
            ReportFormatError: (one line) bytes that are not UTF-8, text that is not
                JSON or is nested too deeply, or JSON that is not a report (see :meth:`from_dict`).

        >>> prov = Provenance("0.1.0", "2025-01-01T00:00:00Z", ["eval"], [], "cpu")
        >>> Report.from_json(Report("eval", "t", prov).to_json()).title
        't'
        """
        try:
            d = json.loads(s)
        except UnicodeDecodeError as e:
            raise ReportFormatError(f"report: not valid UTF-8 text (byte {e.start + 1})") from None
        except json.JSONDecodeError as e:
            raise ReportFormatError(f"report: not valid JSON ({e})") from None
        except RecursionError:
            raise ReportFormatError("report: JSON nested too deeply") from None
        return cls.from_dict(d)
