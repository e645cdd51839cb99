"""The edit request dataclasses and the validation of the canonical schema.

A request is one fact to write into a model: a ``prompt`` the model should
complete with ``target_new``. Optional fields feed the metrics: ``subject`` (the
entity the fact is about; it must occur in ``prompt``), ``target_true`` (what
the unedited model is expected to say), paraphrases of the prompt
(generalization) and neighborhood prompts with their answers (locality).

Validation reports every problem of a record as a ``where: field: problem``
line, where ``where`` names the file and line (``edits.jsonl:3``) and ``field``
is a path into the record (``neighborhood_prompts[1].target``; list indices
are 0-based, like Python's).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from editkit.errors import InputError

__all__ = [
    "CANONICAL_KEYS",
    "EditRequest",
    "Neighbor",
    "Problems",
    "RecordError",
    "check_fields",
    "did_you_mean",
    "json_kind",
    "show",
]

_REQUIRED_WHY = "every request needs a non-empty string"
_NEIGHBOR_SHAPE = 'expected {"prompt": str, "target": str}'


class RecordError(InputError):
    """One malformed record; ``problems`` holds its ``where: field: problem`` lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def json_kind(value: Any) -> str:
    """Name a Python value by its JSON type, as the user wrote it.

    >>> json_kind([1]), json_kind(None), json_kind(3)
    ('list', 'null', 'number')
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, (list, tuple)):
        return "list"
    return type(value).__name__


def show(value: Any, width: int = 60) -> str:
    """A short JSON rendering of a value for an error message.

    >>> show(True), len(show("x" * 100))
    ('true', 60)
    """
    try:
        text = json.dumps(value, ensure_ascii=False, default=repr)
        if not text.isprintable():  # line breaks (U+2028, ...) or control characters: escape them
            text = json.dumps(value, default=repr)
    except ValueError:  # circular structures
        text = repr(value)
    if len(text) > width:
        text = text[: width - 3] + "..."
    return text


def did_you_mean(key: str, known: Iterable[str]) -> str:
    """A hint for an unknown key: the closest known key, else the list of known keys.

    >>> did_you_mean("targt_new", ["prompt", "target_new"])
    "did you mean 'target_new'?"
    """
    known = list(known)
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return "known keys: " + ", ".join(known)


class Problems:
    """Collects the problems of one record as ``where: field: problem`` lines.

    >>> p = Problems("edits.jsonl:3")
    >>> p.add("target_new", "missing")
    >>> p.lines
    ['edits.jsonl:3: target_new: missing']
    """

    def __init__(self, where: str = "") -> None:
        self.where = where
        self.lines: list[str] = []

    def add(self, field: str | None, message: str) -> None:
        """Record one problem; ``field`` is None for a problem with the whole record.

        A field name from the file that is long or holds line breaks or other control
        characters is shown quoted and shortened, so that each problem stays one line.
        """
        if field is not None and (len(field) > 60 or not field.isprintable()):
            field = show(field)
        parts = [part for part in (self.where, field) if part]
        self.lines.append(": ".join([*parts, message]))

    def raise_if_any(self) -> None:
        """Raise a :class:`RecordError` holding every recorded problem, if there is one."""
        if self.lines:
            raise RecordError(list(self.lines))

    def string(
        self, value: Any, field: str, *, required: bool = False, why: str = _REQUIRED_WHY
    ) -> str | None:
        """Check a (possibly absent) string field; ``None`` counts as absent.

        Returns the string when it is a non-empty string, else None (after
        recording the problem, if any).
        """
        if value is None:
            if required:
                self.add(field, f"missing ({why})")
            return None
        if not isinstance(value, str):
            self.add(field, f"expected a non-empty string, got {json_kind(value)} {show(value)}")
            return None
        if not value.strip():
            self.add(field, f"empty string ({why})" if required else "empty string")
            return None
        return value

    def strings(self, value: Any, field: str) -> tuple[str, ...]:
        """Check an optional list of non-empty strings; ``None`` counts as an empty list."""
        if value is None:
            return ()
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            self.add(field, f"expected a list of strings, got {json_kind(value)}")
            return ()
        out = []
        for i, item in enumerate(value):
            text = self.string(item, f"{field}[{i}]")
            if text is not None:
                out.append(text)
        return tuple(out)

    def subject_in(
        self,
        subject: str | None,
        prompt: str | None,
        *,
        field: str = "subject",
        prompt_field: str = "prompt",
    ) -> None:
        """Check that ``subject`` occurs in ``prompt`` (when both are present)."""
        if subject is not None and prompt is not None and subject not in prompt:
            self.add(field, f"{subject!r} does not occur in {prompt_field} {prompt!r}")


@dataclass(frozen=True)
class Neighbor:
    """A neighborhood (locality) prompt and the answer it should keep after an edit.

    >>> Neighbor("The capital of Spain is", "Madrid")
    Neighbor(prompt='The capital of Spain is', target='Madrid')
    """

    prompt: str
    target: str

    def __post_init__(self) -> None:
        problems = Problems()
        problems.string(self.prompt, "prompt", required=True, why="a neighbor needs a prompt")
        problems.string(self.target, "target", required=True, why="a neighbor needs a target")
        problems.raise_if_any()

    def to_dict(self) -> dict[str, str]:
        """The neighbor as ``{"prompt": ..., "target": ...}``."""
        return {"prompt": self.prompt, "target": self.target}


def _neighbor(value: Any, field: str, problems: Problems) -> Neighbor | None:
    """Check one neighborhood entry: a :class:`Neighbor` or a ``{prompt, target}`` mapping."""
    if isinstance(value, Neighbor):
        return value
    if not isinstance(value, Mapping):
        problems.add(field, f"{_NEIGHBOR_SHAPE}, got {json_kind(value)} {show(value)}")
        return None
    issues = [
        f"unknown key {key!r} ({did_you_mean(str(key), ['prompt', 'target'])})"
        for key in value
        if key not in ("prompt", "target")
    ]
    missing = [key for key in ("prompt", "target") if value.get(key) is None]
    if missing:
        issues.append(f"missing {' and '.join(map(repr, missing))}")
    if issues:
        problems.add(field, "; ".join([_NEIGHBOR_SHAPE, *issues]))
        return None
    before = len(problems.lines)
    prompt = problems.string(value["prompt"], f"{field}.prompt")
    target = problems.string(value["target"], f"{field}.target")
    if len(problems.lines) > before or prompt is None or target is None:
        return None
    return Neighbor(prompt, target)


def _neighbors(value: Any, field: str, problems: Problems) -> tuple[Neighbor, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, Mapping)) or not isinstance(value, (list, tuple)):
        problems.add(
            field, f'expected a list of {{"prompt", "target"}} objects, got {json_kind(value)}'
        )
        return ()
    out = [_neighbor(item, f"{field}[{i}]", problems) for i, item in enumerate(value)]
    return tuple(n for n in out if n is not None)


def _request_id(value: Any, problems: Problems) -> str | None:
    """Ids are strings; integer ids (common in JSON) are accepted and turned into strings."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return problems.string(value, "id")


def check_fields(values: Mapping[str, Any], problems: Problems) -> dict[str, Any]:
    """Validate and normalize the canonical fields of one request.

    Args:
        values: canonical field name -> value; absent fields and ``None`` mean "not given".
        problems: where each problem is recorded.

    Returns:
        The normalized fields (tuples for lists, :class:`Neighbor` for neighbors),
        meaningful only when no problem was recorded.

    >>> p = Problems("x.jsonl:1")
    >>> _ = check_fields({"prompt": "The capital of France is"}, p)
    >>> p.lines
    ['x.jsonl:1: target_new: missing (every request needs a non-empty string)']
    """
    prompt = problems.string(values.get("prompt"), "prompt", required=True)
    target_new = problems.string(values.get("target_new"), "target_new", required=True)
    subject = problems.string(values.get("subject"), "subject")
    problems.subject_in(subject, prompt)
    return {
        "prompt": prompt,
        "target_new": target_new,
        "subject": subject,
        "target_true": problems.string(values.get("target_true"), "target_true"),
        "paraphrase_prompts": problems.strings(
            values.get("paraphrase_prompts"), "paraphrase_prompts"
        ),
        "neighborhood_prompts": _neighbors(
            values.get("neighborhood_prompts"), "neighborhood_prompts", problems
        ),
        "id": _request_id(values.get("id"), problems),
    }


@dataclass(frozen=True)
class EditRequest:
    """One fact to write into a model: ``prompt`` should be completed with ``target_new``.

    Lists are accepted for the tuple fields and ``{"prompt", "target"}`` dicts for
    neighbors; both are normalized on construction. An invalid request raises
    :class:`~editkit.errors.InputError`.

    >>> r = EditRequest("The capital of France is", "Rome", subject="France",
    ...                 neighborhood_prompts=[{"prompt": "The capital of Spain is", "target": "Madrid"}])
    >>> r.neighborhood_prompts
    (Neighbor(prompt='The capital of Spain is', target='Madrid'),)
    """

    prompt: str
    target_new: str
    subject: str | None = None
    target_true: str | None = None
    paraphrase_prompts: tuple[str, ...] = ()
    neighborhood_prompts: tuple[Neighbor, ...] = ()
    id: str | None = None

    def __post_init__(self) -> None:
        problems = Problems()
        normalized = check_fields({name: getattr(self, name) for name in CANONICAL_KEYS}, problems)
        problems.raise_if_any()
        self._set(normalized)

    def _set(self, normalized: Mapping[str, Any]) -> None:
        for name, value in normalized.items():
            object.__setattr__(self, name, value)

    def to_dict(self, *, drop_empty: bool = False) -> dict[str, Any]:
        """The request in the canonical flat JSON schema.

        Args:
            drop_empty: leave out fields that are ``None`` or empty (compact JSONL);
                by default every field is present, so all records share one schema.

        >>> EditRequest("The capital of France is", "Rome").to_dict(drop_empty=True)
        {'prompt': 'The capital of France is', 'target_new': 'Rome'}
        """
        out: dict[str, Any] = {
            "id": self.id,
            "prompt": self.prompt,
            "target_new": self.target_new,
            "subject": self.subject,
            "target_true": self.target_true,
            "paraphrase_prompts": list(self.paraphrase_prompts),
            "neighborhood_prompts": [n.to_dict() for n in self.neighborhood_prompts],
        }
        if drop_empty:
            out = {k: v for k, v in out.items() if v is not None and v != []}
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "") -> EditRequest:
        """Build a request from a record in the canonical schema, checking every field.

        ``None`` stands for an absent optional field. Unknown keys are errors.

        Args:
            d: the record.
            where: prefix for problem lines, e.g. ``"edits.jsonl:3"``.

        Raises:
            InputError: (a :class:`RecordError`) listing every problem as
                ``where: field: problem``, one per line.

        >>> EditRequest.from_dict({"prompt": "The capital of France is", "target_new": "Rome"})
        EditRequest(prompt='The capital of France is', target_new='Rome', subject=None, target_true=None, paraphrase_prompts=(), neighborhood_prompts=(), id=None)
        """
        problems = Problems(where)
        if not isinstance(d, Mapping):
            problems.add(None, f"expected a JSON object, got {json_kind(d)}")
            problems.raise_if_any()
        for key in d:
            if key not in CANONICAL_KEYS:
                problems.add(str(key), f"unknown key ({did_you_mean(str(key), CANONICAL_KEYS)})")
        normalized = check_fields(d, problems)
        problems.raise_if_any()
        request = cls.__new__(cls)  # already checked: skip __post_init__'s second pass
        request._set(normalized)
        return request


CANONICAL_KEYS: tuple[str, ...] = (
    "id",
    "prompt",
    "target_new",
    "subject",
    "target_true",
    "paraphrase_prompts",
    "neighborhood_prompts",
)
