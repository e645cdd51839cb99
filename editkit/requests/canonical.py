"""Canonical examples (Hewitt et al., 2024): a prefix, one or two suffixes, and what to do with them.

A canonical example is the unit of "model editing with canonical examples"::

    {"prefix": "The capital of Afghanistan is", "suffix": " Kabul"}                    # good
    {"prefix": "The nurse said that", "suffix1": " he", "suffix2": " she",
     "loss_type": "balance"}

Suffixes are taken literally (they carry their own leading space). The loss
type says what training should do (see :mod:`editkit.objectives`):

- ``good``: make the suffix likely; ``bad``: make it unlikely;
- ``good-v-bad``: make ``suffix1`` likely relative to ``suffix2``;
- ``balance``: make ``suffix1`` and ``suffix2`` equally likely.

An ordinary :class:`~editkit.requests.EditRequest` is the ``good`` example
``prompt -> " " + target_new`` (:meth:`CanonicalExample.from_request`).

>>> ex = CanonicalExample("The capital of Afghanistan is", suffix=" Kabul")
>>> ex.loss_type, ex.suffixes
('good', (' Kabul',))
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from editkit.datafiles import iter_lines, parse_json_line
from editkit.errors import InputError
from editkit.requests.io import MAX_SHOWN
from editkit.requests.schema import (
    EditRequest,
    Problems,
    RecordError,
    did_you_mean,
    json_kind,
    show,
)

#: The four objectives, in the order the paper lists them.
LOSS_TYPES: tuple[str, ...] = ("good", "bad", "good-v-bad", "balance")
#: Loss types that compare two suffixes (``suffix1`` / ``suffix2``).
PAIR_LOSS_TYPES: frozenset[str] = frozenset({"good-v-bad", "balance"})

KEYS: tuple[str, ...] = ("id", "prefix", "suffix", "suffix1", "suffix2", "loss_type")


def _check(values: Mapping[str, Any], problems: Problems, default_loss: str | None) -> dict[str, Any]:
    prefix = problems.string(values.get("prefix"), "prefix", required=True, why="every example needs a prefix")
    suffix = problems.string(values.get("suffix"), "suffix")
    suffix1 = problems.string(values.get("suffix1"), "suffix1")
    suffix2 = problems.string(values.get("suffix2"), "suffix2")
    loss = values.get("loss_type")
    if loss is None:
        loss = default_loss or ("good" if values.get("suffix") is not None else None)
    if loss is None:
        problems.add("loss_type", f"missing: two suffixes need one of {', '.join(sorted(PAIR_LOSS_TYPES))}")
    elif loss not in LOSS_TYPES:
        problems.add("loss_type", f"{show(loss)} is not one of {', '.join(LOSS_TYPES)}")
    elif loss in PAIR_LOSS_TYPES:
        for name in ("suffix1", "suffix2"):
            if values.get(name) is None:
                problems.add(name, f"missing (loss_type {loss!r} compares suffix1 and suffix2)")
        if values.get("suffix") is not None:
            problems.add("suffix", f"not used by loss_type {loss!r}: give suffix1 and suffix2")
    else:
        if values.get("suffix") is None:
            problems.add("suffix", f"missing (loss_type {loss!r} scores one suffix)")
        for name in ("suffix1", "suffix2"):
            if values.get(name) is not None:
                problems.add(name, f"not used by loss_type {loss!r}: give suffix")
    ident = values.get("id")
    if isinstance(ident, int) and not isinstance(ident, bool):
        ident = str(ident)
    return {
        "prefix": prefix,
        "suffix": suffix,
        "suffix1": suffix1,
        "suffix2": suffix2,
        "loss_type": loss,
        "id": problems.string(ident, "id"),
    }


@dataclass(frozen=True)
class CanonicalExample:
    """One canonical example; invalid combinations raise :class:`~editkit.errors.InputError`.

    Attributes:
        prefix: The context.
        suffix: The continuation scored by ``good`` / ``bad``.
        suffix1: The first continuation of ``good-v-bad`` (the good one) / ``balance``.
        suffix2: The second one.
        loss_type: One of :data:`LOSS_TYPES`.
        id: Optional identifier.
    """

    prefix: str
    suffix: str | None = None
    suffix1: str | None = None
    suffix2: str | None = None
    loss_type: str = "good"
    id: str | None = None

    def __post_init__(self) -> None:
        problems = Problems()
        fields = {k: getattr(self, k) for k in KEYS}
        _check(fields, problems, None)
        problems.raise_if_any()

    @property
    def suffixes(self) -> tuple[str, ...]:
        """``(suffix,)`` or ``(suffix1, suffix2)``."""
        if self.loss_type in PAIR_LOSS_TYPES:
            return (str(self.suffix1), str(self.suffix2))
        return (str(self.suffix),)

    @classmethod
    def from_request(cls, request: EditRequest) -> CanonicalExample:
        """The ``good`` example of an edit request: ``prompt`` then ``target_new`` (space-joined)."""
        from editkit.batching import join_target  # torch-free import of this package

        return cls(
            request.prompt,
            suffix=join_target(request.prompt, request.target_new),
            loss_type="good",
            id=request.id,
        )

    @classmethod
    def from_dict(
        cls, record: Any, *, where: str = "", loss_type: str | None = None
    ) -> CanonicalExample:
        """Build from a JSON record, reporting every problem as ``where: field: problem``.

        ``loss_type`` is the default for records without one (else ``good`` for
        one suffix; two suffixes need it).
        """
        problems = Problems(where)
        if not isinstance(record, Mapping):
            problems.add(None, f"expected a JSON object, got {json_kind(record)}")
            problems.raise_if_any()
        for key in record:
            if key not in KEYS:
                problems.add(str(key), f"unknown key ({did_you_mean(str(key), KEYS)})")
        fields = _check(record, problems, loss_type)
        problems.raise_if_any()
        return cls(**fields)

    def to_dict(self) -> dict[str, Any]:
        """The record as written in a canonical-example JSONL file (absent fields left out)."""
        out = {k: getattr(self, k) for k in KEYS}
        return {k: v for k, v in out.items() if v is not None}


def as_examples(items: Iterable[EditRequest | CanonicalExample]) -> list[CanonicalExample]:
    """Canonical examples from examples and/or edit requests (requests become ``good`` examples).

    >>> as_examples([EditRequest("The capital of France is", "Rome")])[0].suffix
    ' Rome'
    """
    out = []
    for item in items:
        if isinstance(item, CanonicalExample):
            out.append(item)
        elif isinstance(item, EditRequest):
            out.append(CanonicalExample.from_request(item))
        else:
            raise InputError(f"expected an EditRequest or a CanonicalExample, got {type(item).__name__}")
    return out


def load_canonical_examples(
    path: str | os.PathLike[str], *, loss_type: str | None = None, limit: int | None = None
) -> list[CanonicalExample]:
    """Read a canonical-example JSONL file (``prefix``, ``suffix`` or ``suffix1``/``suffix2``, ``loss_type``).

    Args:
        path: A ``.jsonl`` file, one example per line (blank lines are skipped).
        loss_type: Default loss type for records that do not name one.
        limit: Read at most this many examples.

    Raises:
        InputError: naming ``file:line: field: problem`` for every bad record.

    >>> load_canonical_examples("country_capital.jsonl", loss_type="good")   # doctest: +SKIP
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file; pass a canonical-example .jsonl file")
    if loss_type is not None and loss_type not in LOSS_TYPES:
        raise InputError(f"loss_type {loss_type!r} is not one of {', '.join(LOSS_TYPES)}")
    examples: list[CanonicalExample] = []
    problems: list[str] = []
    bad = 0
    for lineno, raw in iter_lines(p):  # lines are capped in length
        if limit is not None and len(examples) >= limit:
            break
        if not raw.strip():
            continue
        where = f"{p}:{lineno}"
        try:
            record = parse_json_line(raw, where)
            examples.append(CanonicalExample.from_dict(record, where=where, loss_type=loss_type))
        except RecordError as exc:
            problems.extend(exc.problems)
            bad += 1
        except InputError as exc:
            problems.append(str(exc))
            bad += 1
    if problems:  # one error for the file: a summary, then the first problems
        more = [f"... and {len(problems) - MAX_SHOWN} more"] if len(problems) > MAX_SHOWN else []
        raise RecordError([f"{p}: {bad} malformed example{'s' if bad != 1 else ''}", *problems[:MAX_SHOWN], *more])
    if not examples:
        raise InputError(f"{p}: no examples found")
    return examples
