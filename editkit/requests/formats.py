"""Record formats: canonical, CounterFact and ZsRE, in one registry.

Each format is a :class:`RecordFormat`: a ``matches(record)`` predicate used by
auto-detection and a ``parse(record, where)`` function that returns an
:class:`~editkit.requests.schema.EditRequest` or raises a
:class:`~editkit.requests.schema.RecordError` naming every bad field in the
format's own terms (``requested_rewrite.target_new.str``, ``alt``, ...).
Adding a format is one :func:`register_format` call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from editkit.errors import InputError
from editkit.requests.schema import (
    EditRequest,
    Neighbor,
    Problems,
    RecordError,
    did_you_mean,
    json_kind,
)

__all__ = [
    "FORMATS",
    "RecordFormat",
    "detect_format",
    "get_format",
    "parse_canonical",
    "parse_counterfact",
    "parse_zsre",
    "register_format",
]

Parser = Callable[[Mapping[str, Any], str], EditRequest]


@dataclass(frozen=True)
class RecordFormat:
    """One record format: how to recognize a record and how to turn it into a request.

    Calling the format parses a record, so ``FORMATS[name](record, where)`` works.

    Attributes:
        name: registry key, e.g. ``"counterfact"``.
        matches: predicate on a raw record, used by auto-detection.
        parse: ``(record, where) -> EditRequest``; raises ``RecordError``.
        keys: the keys that identify the format, for error messages.
    """

    name: str
    matches: Callable[[Mapping[str, Any]], bool]
    parse: Parser
    keys: str

    def __call__(self, record: Mapping[str, Any], where: str = "") -> EditRequest:
        return self.parse(record, where)


FORMATS: dict[str, RecordFormat] = {}


def register_format(
    name: str, *, matches: Callable[[Mapping[str, Any]], bool], parse: Parser, keys: str
) -> RecordFormat:
    """Add a record format to :data:`FORMATS` (and so to auto-detection).

    Args:
        name: the format's name, as passed to ``load_requests(format=...)``.
        matches: True for records of this format; keep it disjoint from the others.
        parse: ``(record, where) -> EditRequest``.
        keys: a short description of the identifying keys, shown in errors.

    Raises:
        ValueError: if the name is taken.

    >>> fmt = register_format("qa", matches=lambda r: "question" in r, keys="'question', 'answer'",
    ...     parse=lambda r, where: EditRequest(r["question"], r["answer"]))  # doctest: +SKIP
    """
    if name in FORMATS or name == "auto":
        raise ValueError(f"record format {name!r} is already registered")
    fmt = RecordFormat(name=name, matches=matches, parse=parse, keys=keys)
    FORMATS[name] = fmt
    return fmt


def get_format(name: str) -> RecordFormat | None:
    """The registered format called ``name``; None for ``"auto"``.

    Raises:
        InputError: for an unknown name, with the closest known one.

    >>> get_format("zsre").name
    'zsre'
    """
    if name == "auto":
        return None
    if name not in FORMATS:
        known = ["auto", *FORMATS]
        raise InputError(f"unknown request format {name!r} ({did_you_mean(name, known)})")
    return FORMATS[name]


def detect_format(record: Mapping[str, Any], *, where: str = "") -> str:
    """Name the format of one raw record by asking each registered format.

    Args:
        record: one parsed JSON object.
        where: prefix for the error, e.g. ``"edits.jsonl:3"``.

    Raises:
        InputError: if no format, or more than one, fits.

    >>> detect_format({"src": "Who founded Nokia?", "alt": "Steve Jobs", "answers": ["Fredrik Idestam"]})
    'zsre'
    """
    problems = Problems(where)
    if not isinstance(record, Mapping):
        problems.add(None, f"expected a JSON object, got {json_kind(record)}")
        problems.raise_if_any()
    hits = [name for name, fmt in FORMATS.items() if fmt.matches(record)]
    if len(hits) == 1:
        return hits[0]
    if hits:
        problems.add(
            None,
            f"record fits several formats ({', '.join(hits)}); "
            "remove the other format's keys or pass format= explicitly",
        )
    else:
        keys = [str(k) for k in record]
        shown = ", ".join(map(repr, keys[:8])) + (", ..." if len(keys) > 8 else "")
        expected = "; ".join(f"{fmt.name} ({fmt.keys})" for fmt in FORMATS.values())
        problems.add(None, f"unrecognized record with keys [{shown}]: expected {expected}")
    problems.raise_if_any()
    raise AssertionError("unreachable")


def _build(problems: Problems, **fields: Any) -> EditRequest:
    """Construct the request, reporting any remaining schema problem under ``where``."""
    try:
        return EditRequest(**fields)
    except RecordError as err:
        for line in err.problems:
            problems.add(None, line)
        problems.raise_if_any()
        raise


def parse_canonical(record: Mapping[str, Any], where: str = "") -> EditRequest:
    """Parse a record in editkit's flat schema (see :meth:`EditRequest.from_dict`).

    >>> parse_canonical({"prompt": "The capital of France is", "target_new": "Rome"}).target_new
    'Rome'
    """
    return EditRequest.from_dict(record, where=where)


def _counterfact_target(rewrite: Mapping[str, Any], key: str, problems: Problems) -> str | None:
    field = f"requested_rewrite.{key}"
    value = rewrite.get(key)
    if value is None:
        problems.add(field, 'missing (expected {"str": ...})')
        return None
    if not isinstance(value, Mapping):
        problems.add(field, f'expected {{"str": ...}}, got {json_kind(value)}')
        return None
    return problems.string(
        value.get("str"), f"{field}.str", required=True, why=f"the {key.replace('_', ' ')} answer"
    )


def parse_counterfact(record: Mapping[str, Any], where: str = "") -> EditRequest:
    """Parse a CounterFact record (ROME/MEMIT ``counterfact.json``).

    The prompt is ``requested_rewrite.prompt`` with its ``{}`` slot filled by the
    subject; neighborhood prompts keep their true answer, ``target_true``; the id
    is ``str(case_id)``. Other keys (``generation_prompts``, ``attribute_prompts``,
    ``pararel_idx``, ...) are ignored.

    >>> r = parse_counterfact({"case_id": 0, "requested_rewrite": {
    ...     "prompt": "The mother tongue of {} is", "subject": "Danielle Darrieux",
    ...     "target_new": {"str": "English"}, "target_true": {"str": "French"}},
    ...     "neighborhood_prompts": ["The mother tongue of Léon Blum is"]})
    >>> r.prompt, r.id, r.neighborhood_prompts[0].target
    ('The mother tongue of Danielle Darrieux is', '0', 'French')
    """
    problems = Problems(where)
    rewrite = record.get("requested_rewrite")
    if not isinstance(rewrite, Mapping):
        problems.add(
            "requested_rewrite",
            "expected an object with prompt, subject, "
            f"target_new and target_true, got {json_kind(rewrite)}",
        )
        raise RecordError(problems.lines)
    template = problems.string(
        rewrite.get("prompt"),
        "requested_rewrite.prompt",
        required=True,
        why="a prompt template with a '{}' slot for the subject",
    )
    if template is not None and "{}" not in template:
        problems.add("requested_rewrite.prompt", f"{template!r} has no '{{}}' slot for the subject")
    subject = problems.string(
        rewrite.get("subject"),
        "requested_rewrite.subject",
        required=True,
        why="the subject fills the prompt's '{}' slot",
    )
    target_new = _counterfact_target(rewrite, "target_new", problems)
    target_true = _counterfact_target(rewrite, "target_true", problems)
    paraphrases = problems.strings(record.get("paraphrase_prompts"), "paraphrase_prompts")
    neighbors = problems.strings(record.get("neighborhood_prompts"), "neighborhood_prompts")
    case_id = record.get("case_id")
    if case_id is not None and (isinstance(case_id, bool) or not isinstance(case_id, (int, str))):
        problems.add("case_id", f"expected a number or string, got {json_kind(case_id)}")
    problems.raise_if_any()
    assert template is not None and subject is not None and target_true is not None
    return _build(
        problems,
        prompt=template.replace("{}", subject),
        target_new=target_new,
        subject=subject,
        target_true=target_true,
        paraphrase_prompts=paraphrases,
        neighborhood_prompts=tuple(Neighbor(p, target_true) for p in neighbors),
        id=None if case_id is None else str(case_id),
    )


def parse_zsre(record: Mapping[str, Any], where: str = "") -> EditRequest:
    """Parse a ZsRE record (MEND / EasyEdit ``zsre_mem_eval.json``).

    Mapping, as in EasyEdit: ``src`` -> prompt, ``alt`` -> target_new,
    ``answers[0]`` -> target_true, ``rephrase`` -> the one paraphrase,
    ``(loc, loc_ans)`` -> the one neighbor. ``loc`` is kept verbatim, including
    its ``"nq question: "`` prefix, as EasyEdit feeds it. Note that ROME, MEMIT and
    AlphaEdit instead use ``answers[0]`` as the *new* target; editkit follows
    EasyEdit. Other keys (``pred``, ``cond``, ...) are ignored.

    >>> r = parse_zsre({"subject": "Watts Humphrey", "src": "What university did Watts Humphrey attend?",
    ...     "alt": "University of Michigan", "answers": ["Illinois Institute of Technology"],
    ...     "rephrase": "What university did Watts Humphrey take part in?",
    ...     "loc": "nq question: who played desmond doss father in hacksaw ridge",
    ...     "loc_ans": "Hugo Weaving"})
    >>> r.target_new, r.target_true, r.neighborhood_prompts[0].target
    ('University of Michigan', 'Illinois Institute of Technology', 'Hugo Weaving')
    """
    problems = Problems(where)
    src = problems.string(record.get("src"), "src", required=True, why="the question to edit")
    alt = problems.string(record.get("alt"), "alt", required=True, why="the new answer")
    subject = problems.string(record.get("subject"), "subject")
    problems.subject_in(subject, src, prompt_field="src")
    answers = problems.strings(record.get("answers"), "answers")
    rephrase = problems.string(record.get("rephrase"), "rephrase")
    loc = problems.string(record.get("loc"), "loc")
    loc_ans = problems.string(record.get("loc_ans"), "loc_ans")
    for key, other in (("loc", "loc_ans"), ("loc_ans", "loc")):
        if record.get(key) is None and record.get(other) is not None:
            problems.add(
                key, f"missing ({other} needs it: loc is a locality prompt, loc_ans its answer)"
            )
    problems.raise_if_any()
    return _build(
        problems,
        prompt=src,
        target_new=alt,
        subject=subject,
        target_true=answers[0] if answers else None,
        paraphrase_prompts=() if rephrase is None else (rephrase,),
        neighborhood_prompts=() if loc is None or loc_ans is None else (Neighbor(loc, loc_ans),),
        id=None,
    )


register_format(
    "canonical",
    matches=lambda r: "prompt" in r or "target_new" in r,
    parse=parse_canonical,
    keys="'prompt', 'target_new', ...",
)
register_format(
    "counterfact",
    matches=lambda r: "requested_rewrite" in r,
    parse=parse_counterfact,
    keys="'case_id', 'requested_rewrite', ...",
)
register_format(
    "zsre",
    matches=lambda r: "src" in r,
    parse=parse_zsre,
    keys="'src', 'alt', 'answers', 'rephrase', 'loc', 'loc_ans'",
)
