"""Refusal data: instructions (harmful / harmless) and labelled responses (refusal / compliance).

Formats read (detected from the suffix and the fields present):

- editkit JSONL (``data/refusal/instructions.jsonl``): ``{"id", "instruction",
  "label": "harmful"|"harmless", "category", "source"}`` per line;
- AdvBench-style CSV: a header with ``goal`` (and usually ``target``); every
  row is a harmful instruction (the ``target`` column is ignored);
- RefusalBench-style: harmful prompts grouped by category, either a CSV or
  JSONL with a prompt column (``prompt``, ``instruction``, ``goal``,
  ``behavior``, ``question`` or ``text``) and a ``category`` column, or a JSON
  object ``{"category": ["prompt", ...], ...}``;
- a ``.txt`` file, one instruction per line (label from ``label=``).

Responses (``data/refusal/responses.jsonl``): ``{"id", "instruction_id",
"response", "label": "refusal"|"compliance", "class", "source"}`` plus,
optionally, the instruction text (``instruction`` or ``prompt``) and
``prompt_source``; a row without the text takes it from the instructions file
through ``instruction_id``. ``class`` is one of :data:`RESPONSE_CLASSES`; a
row with a class and no label gets the class's label (:data:`CLASS_LABELS`,
overridable).

Every malformed row is an :class:`~editkit.errors.InputError` naming the file,
the line and the field.

>>> rows = load_instructions(shipped_path("instructions.jsonl"))   # doctest: +SKIP
>>> harmful, harmless = split_by_label(rows)                       # doctest: +SKIP
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from editkit.datafiles import iter_jsonl, shipped
from editkit.errors import InputError

INSTRUCTION_LABELS: tuple[str, str] = ("harmless", "harmful")
"""Instruction labels; index 1 is the positive class."""

RESPONSE_LABELS: tuple[str, str] = ("compliance", "refusal")
"""Response labels; index 1 (refusal) is the positive class."""

RESPONSE_CLASSES: tuple[str, ...] = ("complied", "disclaimed_then_complied", "partial", "rejected", "redirected")
"""The finer response classes (after Reuter and Schulze's continuum)."""

CLASS_LABELS: dict[str, str] = {
    "complied": "compliance",
    "disclaimed_then_complied": "compliance",
    "partial": "compliance",
    "rejected": "refusal",
    "redirected": "refusal",
}
"""Default binary label of each class (``partial``: answers part of the request, so it counts as compliance)."""

PROMPT_FIELDS: tuple[str, ...] = ("instruction", "prompt", "goal", "behavior", "question", "text")
"""Fields read as the instruction text, first present wins."""


@dataclass(frozen=True)
class Instruction:
    """One instruction.

    Attributes:
        id: unique id (file stem and line number when the file has none).
        text: the instruction.
        label: ``"harmful"``, ``"harmless"`` or None (unlabelled).
        category: topic, e.g. ``"malware"`` or ``"cooking"`` (None when unknown).
        source: where it comes from or its style (the unit of leave-one-source-out).
    """

    id: str
    text: str
    label: str | None
    category: str | None
    source: str

    @property
    def y(self) -> int:
        """1 for harmful, 0 for harmless (an unlabelled instruction raises ValueError)."""
        if self.label is None:
            raise ValueError(f"instruction {self.id} has no label")
        return INSTRUCTION_LABELS.index(self.label)


@dataclass(frozen=True)
class LabeledResponse:
    """A response to an instruction, labelled refusal or compliance.

    Attributes:
        id: unique id.
        instruction_id: the instruction it answers (None when unknown).
        prompt: the instruction text.
        response: the response text.
        label: ``"refusal"`` or ``"compliance"``.
        cls: the finer class (:data:`RESPONSE_CLASSES`) or None.
        source: who wrote the response (``"written"``, a model name ...).
        prompt_source: the instruction's source, if known.
    """

    id: str
    instruction_id: str | None
    prompt: str
    response: str
    label: str
    cls: str | None
    source: str
    prompt_source: str | None = None

    @property
    def y(self) -> int:
        """1 for refusal, 0 for compliance."""
        return RESPONSE_LABELS.index(self.label)

    def to_dict(self) -> dict[str, Any]:
        """The JSONL row (``class`` for ``cls``)."""
        row = asdict(self)
        row["class"] = row.pop("cls")
        row["instruction"] = row.pop("prompt")
        return row


def shipped_path(name: str) -> Path:
    """A file of the shipped refusal data (``instructions.jsonl``, ``responses.jsonl``)."""
    return shipped(f"refusal/{name}")


def _string(path: Path, lineno: int, row: Mapping[str, Any], field: str, *, required: bool = True) -> str | None:
    value = row.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{path}:{lineno}: {field}: expected a non-empty string")
    return value


def _prompt_of(path: Path, lineno: int, row: Mapping[str, Any], *, required: bool = True) -> str | None:
    field = next((f for f in PROMPT_FIELDS if f in row), None)
    if field is None:
        if not required:
            return None
        raise InputError(
            f"{path}:{lineno}: no instruction field; expected one of {', '.join(PROMPT_FIELDS)}"
        )
    return _string(path, lineno, row, field)


def _instruction_label(path: Path, lineno: int, row: Mapping[str, Any], default: str | None) -> str | None:
    value = row.get("label", default)
    if value is None:
        return None
    if value not in INSTRUCTION_LABELS:
        raise InputError(f"{path}:{lineno}: label: expected 'harmful' or 'harmless', got {value!r}")
    return str(value)


def _instruction(
    path: Path, lineno: int, row: Any, *, label: str | None, source: str | None, used: set[str]
) -> Instruction:
    if not isinstance(row, Mapping):
        raise InputError(f"{path}:{lineno}: expected an object with an instruction field, got {type(row).__name__}")
    text = _prompt_of(path, lineno, row)
    assert text is not None
    rid = row.get("id", f"{path.stem}-{lineno}")
    if not isinstance(rid, (str, int)) or isinstance(rid, bool):
        raise InputError(f"{path}:{lineno}: id: expected a string or an integer")
    rid = str(rid)
    if rid in used:
        raise InputError(f"{path}:{lineno}: id: {rid!r} appears twice; ids must be unique")
    used.add(rid)
    category = _string(path, lineno, row, "category", required=False)
    src = _string(path, lineno, row, "source", required=False) or source or path.stem
    return Instruction(rid, text, _instruction_label(path, lineno, row, label), category, src)


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None


def _csv_rows(path: Path, content: str) -> Iterable[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(content.splitlines())
    if not reader.fieldnames:
        raise InputError(f"{path}: empty CSV file (expected a header such as goal,target)")
    try:
        for row in reader:
            if any((v or "").strip() for v in row.values() if isinstance(v, str)):
                yield reader.line_num, {k.strip(): v for k, v in row.items() if isinstance(k, str)}
    except csv.Error as exc:
        raise InputError(f"{path}:{reader.line_num}: not valid CSV ({exc})") from None


def load_instructions(
    path: str | Path,
    *,
    label: str | None = None,
    source: str | None = None,
    limit: int | None = None,
) -> list[Instruction]:
    """Instructions from an editkit JSONL, AdvBench-style CSV, RefusalBench-style or ``.txt`` file.

    Args:
        path: the file.
        label: label for rows that have none (AdvBench-style files default to
            ``"harmful"``, as do RefusalBench-style category files).
        source: source for rows that have none (default: the file's stem).
        limit: keep only the first ``limit`` instructions.

    Raises:
        InputError: a missing file, an unknown suffix, a bad row (file:line:
            field), a duplicate id, or no instructions at all.

    >>> load_instructions("advbench.csv")[0].label        # doctest: +SKIP
    'harmful'
    """
    p = Path(path)
    if label is not None and label not in INSTRUCTION_LABELS:
        raise InputError(f"label: expected 'harmful' or 'harmless', got {label!r}")
    content = _read_text(p)
    used: set[str] = set()
    out: list[Instruction] = []
    if p.suffix == ".jsonl":
        for lineno, row in iter_jsonl(p, content):
            out.append(_instruction(p, lineno, row, label=label, source=source, used=used))
    elif p.suffix == ".csv":
        for lineno, row in _csv_rows(p, content):
            default = label
            if default is None and ("goal" in row or "category" in row) and "label" not in row:
                default = "harmful"  # AdvBench / RefusalBench style: every row is a harmful request
            cleaned = {k: v for k, v in row.items() if v not in (None, "")}
            out.append(_instruction(p, lineno, cleaned, label=default, source=source, used=used))
    elif p.suffix == ".json":
        out = _json_instructions(p, content, label=label, source=source)
    elif p.suffix == ".txt":
        for lineno, line in enumerate(content.splitlines(), 1):
            if line.strip():
                out.append(_instruction(p, lineno, {"instruction": line.strip()}, label=label, source=source, used=used))
    else:
        raise InputError(
            f"{p}: unknown file type {p.suffix or '(none)'}; use .jsonl (editkit), .csv (AdvBench goal,target), "
            ".json (RefusalBench {category: [prompts]}) or .txt (one per line)"
        )
    if limit is not None:
        out = out[:limit]
    if not out:
        raise InputError(f"{p}: no instructions found")
    return out


def _json_instructions(path: Path, content: str, *, label: str | None, source: str | None) -> list[Instruction]:
    try:
        data = json.loads(content)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    used: set[str] = set()
    if isinstance(data, list):
        return [_instruction(path, i, row, label=label, source=source, used=used) for i, row in enumerate(data, 1)]
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a list of rows or an object {{category: [prompts]}}")
    out = []
    for category, prompts in data.items():
        if not isinstance(prompts, list):
            raise InputError(f"{path}: {category}: expected a list of prompt strings")
        for k, prompt in enumerate(prompts, 1):
            where = f"{category}[{k}]"
            if not isinstance(prompt, str) or not prompt.strip():
                raise InputError(f"{path}: {where}: expected a non-empty string")
            rid = f"{path.stem}-{category}-{k}"
            out.append(Instruction(rid, prompt, label or "harmful", str(category), source or path.stem))
    return out


def split_by_label(rows: Sequence[Instruction]) -> tuple[list[str], list[str]]:
    """``(harmful texts, harmless texts)``; unlabelled rows are left out."""
    return [r.text for r in rows if r.label == "harmful"], [r.text for r in rows if r.label == "harmless"]


def load_responses(
    path: str | Path,
    *,
    instructions: str | Path | Sequence[Instruction] | None = None,
    class_labels: Mapping[str, str] | None = None,
    limit: int | None = None,
) -> list[LabeledResponse]:
    """Labelled responses from a JSONL file.

    Args:
        path: the file (``data/refusal/responses.jsonl`` format).
        instructions: instructions (or their file) to resolve ``instruction_id``
            for rows without the instruction text, and to fill ``prompt_source``.
        class_labels: overrides of :data:`CLASS_LABELS` (e.g. ``{"partial": "refusal"}``).
        limit: keep only the first ``limit`` rows.

    Raises:
        InputError: a bad row (file:line: field), a label that contradicts the
            class map, an unknown ``instruction_id``, a duplicate id, or no rows.
    """
    p = Path(path)
    mapping = {**CLASS_LABELS, **(class_labels or {})}
    bad = {k: v for k, v in mapping.items() if v not in RESPONSE_LABELS}
    if bad:
        raise InputError(f"class labels: expected 'refusal' or 'compliance', got {bad}")
    by_id: dict[str, Instruction] = {}
    if instructions is not None:
        rows = load_instructions(instructions) if isinstance(instructions, (str, Path)) else instructions
        by_id = {r.id: r for r in rows}
    content = _read_text(p)
    if p.suffix != ".jsonl":
        raise InputError(f"{p}: expected a .jsonl file of labelled responses (one object per line)")
    out: list[LabeledResponse] = []
    used: set[str] = set()
    for lineno, row in iter_jsonl(p, content):
        out.append(_response(p, lineno, row, by_id, mapping, used, has_instructions=instructions is not None))
        if limit is not None and len(out) >= limit:
            break
    if not out:
        raise InputError(f"{p}: no responses found")
    return out


def _response(
    path: Path,
    lineno: int,
    row: Any,
    by_id: Mapping[str, Instruction],
    mapping: Mapping[str, str],
    used: set[str],
    *,
    has_instructions: bool,
) -> LabeledResponse:
    if not isinstance(row, dict):
        raise InputError(f"{path}:{lineno}: expected an object with response and label fields")
    response = row.get("response")
    if not isinstance(response, str):  # an empty response is allowed: models do answer with nothing
        raise InputError(f"{path}:{lineno}: response: expected a string")
    rid = str(row.get("id", f"{path.stem}-{lineno}"))
    if rid in used:
        raise InputError(f"{path}:{lineno}: id: {rid!r} appears twice; ids must be unique")
    used.add(rid)
    iid = row.get("instruction_id")
    if iid is not None and not isinstance(iid, (str, int)):
        raise InputError(f"{path}:{lineno}: instruction_id: expected a string")
    iid = None if iid is None else str(iid)
    linked = by_id.get(iid) if iid is not None else None
    if iid is not None and has_instructions and linked is None:
        raise InputError(f"{path}:{lineno}: instruction_id: {iid!r} is not in the instructions file")
    prompt = _prompt_of(path, lineno, row, required=False) or (linked.text if linked else None)
    if prompt is None:
        raise InputError(
            f"{path}:{lineno}: no instruction text: add an 'instruction' field, or pass the instructions file "
            "so that instruction_id can be resolved"
        )
    cls = row.get("class")
    if cls is not None and cls not in mapping:
        raise InputError(f"{path}:{lineno}: class: expected one of {', '.join(mapping)}, got {cls!r}")
    label = row.get("label")
    if label is not None and label not in RESPONSE_LABELS:
        raise InputError(f"{path}:{lineno}: label: expected 'refusal' or 'compliance', got {label!r}")
    if cls is not None:
        remapped = mapping[cls] != CLASS_LABELS.get(cls, mapping[cls])
        if label is not None and not remapped and label != mapping[cls]:
            raise InputError(f"{path}:{lineno}: label {label!r} contradicts class {cls!r} (a {mapping[cls]})")
        if label is None or remapped:
            label = mapping[cls]  # a class the caller remapped wins over the file's label
    if label is None:
        raise InputError(f"{path}:{lineno}: label: expected 'refusal' or 'compliance' (or a class), got none")
    source = _string(path, lineno, row, "source", required=False) or "unknown"
    prompt_source = _string(path, lineno, row, "prompt_source", required=False) or (linked.source if linked else None)
    return LabeledResponse(rid, iid, prompt, response, str(label), cls, source, prompt_source)


def data_hash(rows: Iterable[Any]) -> str:
    """SHA-256 of the rows' canonical JSON (dataclasses as dicts), for a model card.

    >>> data_hash([{"a": 1}]) == data_hash([{"a": 1}])
    True
    """
    h = hashlib.sha256()
    for row in rows:
        obj = asdict(row) if hasattr(row, "__dataclass_fields__") else row
        h.update(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def group_field(rows: Sequence[LabeledResponse], group_by: str = "auto") -> tuple[str, list[str]]:
    """The field used as "source" for leave-one-source-out, and its value per row.

    ``"auto"``: ``source`` when the rows come from at least two sources, else
    ``prompt_source`` (the written responses all have ``source == "written"``).

    Raises:
        InputError: an unknown field, or rows without a value for it.
    """
    if group_by == "auto":
        group_by = "source" if len({r.source for r in rows}) >= 2 else "prompt_source"
    if group_by not in ("source", "prompt_source"):
        raise InputError(f"--group-by: expected 'auto', 'source' or 'prompt_source', got {group_by!r}")
    values = [getattr(r, group_by) for r in rows]
    missing = [r.id for r, v in zip(rows, values, strict=True) if v is None]
    if missing:
        raise InputError(f"{len(missing)} responses have no {group_by} (e.g. {missing[0]}); pass the instructions file or use --group-by source")
    return group_by, [str(v) for v in values]
