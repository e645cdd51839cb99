"""Tests for editkit.requests: formats, detection, error messages, file kinds, round trips."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from editkit.errors import InputError
from editkit.requests import (
    FORMATS,
    EditRequest,
    Neighbor,
    detect_format,
    iter_requests,
    load_requests,
    requests_dataset,
    save_requests,
)

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "requests"
FIXTURE_FILES = ["canonical.jsonl", "counterfact.json", "zsre.json"]

GOOD: dict[str, Any] = {"prompt": "The capital of France is", "target_new": "Rome"}


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work in a temp dir so error messages name files exactly as the tests pass them."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_lines(name: str, lines: list[Any]) -> str:
    """Write a JSONL file from records (dumped) or raw strings (verbatim)."""
    text = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
    Path(name).write_text(text, encoding="utf-8")
    return name


def error_of(fn: Callable[[], Any]) -> str:
    with pytest.raises(InputError) as info:
        fn()
    return str(info.value)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------- the dataclasses


def test_edit_request_normalizes_lists_and_neighbor_dicts() -> None:
    r = EditRequest(
        "The capital of France is",
        "Rome",
        subject="France",
        paraphrase_prompts=["France's capital is"],  # type: ignore[arg-type]
        neighborhood_prompts=[{"prompt": "The capital of Spain is", "target": "Madrid"}],  # type: ignore[arg-type]
        id=7,  # type: ignore[arg-type]
    )
    assert r.paraphrase_prompts == ("France's capital is",)
    assert r.neighborhood_prompts == (Neighbor("The capital of Spain is", "Madrid"),)
    assert r.id == "7"
    assert hash(r) == hash(EditRequest.from_dict(r.to_dict()))


def test_edit_request_rejects_invalid_values() -> None:
    msg = error_of(lambda: EditRequest("The capital of France is", "Rome", subject="Paris"))
    assert msg == "subject: 'Paris' does not occur in prompt 'The capital of France is'"
    assert error_of(lambda: EditRequest("p", "")).startswith("target_new: empty string")
    assert error_of(lambda: Neighbor("p", "")).startswith("target: empty string")


def test_to_dict_from_dict_round_trip() -> None:
    r = EditRequest(
        "The capital of France is",
        "Rome",
        subject="France",
        target_true="Paris",
        paraphrase_prompts=("France's capital city is",),
        neighborhood_prompts=(Neighbor("The capital of Spain is", "Madrid"),),
        id="cap-fr",
    )
    d = r.to_dict()
    assert list(d) == [
        "id",
        "prompt",
        "target_new",
        "subject",
        "target_true",
        "paraphrase_prompts",
        "neighborhood_prompts",
    ]
    assert d["neighborhood_prompts"] == [{"prompt": "The capital of Spain is", "target": "Madrid"}]
    assert EditRequest.from_dict(d) == r
    assert EditRequest(**GOOD).to_dict(drop_empty=True) == GOOD


def test_from_dict_reports_every_problem_with_where() -> None:
    msg = error_of(
        lambda: EditRequest.from_dict({"promt": "x", "target_new": 3}, where="e.jsonl:4")
    )
    assert msg.splitlines() == [
        "e.jsonl:4: promt: unknown key (did you mean 'prompt'?)",
        "e.jsonl:4: prompt: missing (every request needs a non-empty string)",
        "e.jsonl:4: target_new: expected a non-empty string, got number 3",
    ]


# ----------------------------------------------------------------- the three formats


def test_canonical_fixture() -> None:
    reqs = load_requests(FIXTURES / "canonical.jsonl")
    assert reqs == [
        EditRequest(
            "The capital of France is",
            "Rome",
            subject="France",
            target_true="Paris",
            paraphrase_prompts=("France's capital city is",),
            neighborhood_prompts=(Neighbor("The capital of Spain is", "Madrid"),),
            id="cap-fr",
        ),
        EditRequest("The Eiffel Tower is located in the city of", "London"),
        EditRequest(
            "The CEO of Apple is",
            "Satya Nadella",
            subject="Apple",
            paraphrase_prompts=("Apple's chief executive is", "Apple is led by"),
            id="ceo",
        ),
    ]


def test_counterfact_fixture() -> None:
    first, second = load_requests(FIXTURES / "counterfact.json")
    assert first.prompt == "The mother tongue of Danielle Darrieux is"
    assert (first.subject, first.target_new, first.target_true, first.id) == (
        "Danielle Darrieux",
        "English",
        "French",
        "0",
    )
    assert len(first.paraphrase_prompts) == 2
    assert first.neighborhood_prompts[0] == Neighbor("The mother tongue of Léon Blum is", "French")
    assert {n.target for n in first.neighborhood_prompts} == {"French"}
    assert second.prompt == "The official religion of Edwin of Northumbria is"
    assert second.neighborhood_prompts == (
        Neighbor("Charlemagne follows the religion of", "Christianity"),
    )


def test_zsre_fixture_follows_easyedit() -> None:
    first, _ = load_requests(FIXTURES / "zsre.json")
    assert first == EditRequest(
        prompt="What university did Watts Humphrey attend?",
        target_new="University of Michigan",  # `alt`, as EasyEdit
        subject="Watts Humphrey",
        target_true="Illinois Institute of Technology",  # answers[0]
        paraphrase_prompts=("What university did Watts Humphrey take part in?",),
        neighborhood_prompts=(
            Neighbor(
                "nq question: who played desmond doss father in hacksaw ridge", "Hugo Weaving"
            ),
        ),
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("canonical.jsonl", "canonical"),
        ("counterfact.json", "counterfact"),
        ("zsre.json", "zsre"),
    ],
)
def test_detect_format_on_fixtures(name: str, expected: str) -> None:
    path = FIXTURES / name
    text = path.read_text(encoding="utf-8")
    record = json.loads(text.splitlines()[0]) if name.endswith(".jsonl") else json.loads(text)[0]
    assert detect_format(record) == expected
    assert FORMATS[expected].matches(record)
    assert FORMATS[expected](record, "x") == load_requests(path)[0]


def test_formats_registry() -> None:
    assert set(FORMATS) >= {"canonical", "counterfact", "zsre"}
    assert all(callable(f.matches) and callable(f) for f in FORMATS.values())


def test_detect_format_errors() -> None:
    assert error_of(lambda: detect_format({"text": "x"}, where="f.jsonl:2")).startswith(
        "f.jsonl:2: unrecognized record with keys ['text']: expected canonical"
    )
    assert "several formats (canonical, zsre)" in error_of(
        lambda: detect_format({**GOOD, "src": "q"})
    )


def test_mixed_format_file_names_the_line(in_tmp: Path) -> None:
    zsre = {"src": "Who founded Nokia?", "alt": "Steve Jobs"}
    path = write_lines("mixed.jsonl", [GOOD, GOOD, zsre])
    lines = error_of(lambda: load_requests(path)).splitlines()
    assert lines[0] == "mixed.jsonl: 1 malformed record"
    assert lines[1].startswith("mixed.jsonl:3: record is in zsre format but line 1 is canonical")


def test_explicit_format(in_tmp: Path) -> None:
    path = write_lines("e.jsonl", [GOOD])
    assert load_requests(path, format="canonical") == [EditRequest(**GOOD)]
    assert "e.jsonl:1: record is in canonical format, not zsre" in error_of(
        lambda: load_requests(path, format="zsre")
    )
    assert "did you mean 'zsre'?" in error_of(lambda: load_requests(path, format="zsr"))


# ----------------------------------------------------------------- error messages


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            {"prompt": "The capital of France is"},
            "edits.jsonl:3: target_new: missing (every request needs a non-empty string)",
        ),
        (
            {"prompt": "The capital of France is", "target_new": " "},
            "edits.jsonl:3: target_new: empty string (every request needs a non-empty string)",
        ),
        (
            '{"prompt": "a", "target_new" "b"}',
            "edits.jsonl:3: not valid JSON (Expecting ':' delimiter at column 30)",
        ),
        (
            {"prompt": "The capital of France is", "target_new": "Rome", "subject": "Paris"},
            "edits.jsonl:3: subject: 'Paris' does not occur in prompt 'The capital of France is'",
        ),
        (
            {**GOOD, "neighborhood_prompts": [{"prompt": "a", "target": "b"}, "c"]},
            'edits.jsonl:3: neighborhood_prompts[1]: expected {"prompt": str, "target": str}, got string "c"',
        ),
        (
            {**GOOD, "neighborhood_prompts": [{"prompt": "a", "answer": "b"}]},
            'edits.jsonl:3: neighborhood_prompts[0]: expected {"prompt": str, "target": str}; '
            "unknown key 'answer' (known keys: prompt, target); missing 'target'",
        ),
        (
            {**GOOD, "paraphrase_prompts": "France's capital is"},
            "edits.jsonl:3: paraphrase_prompts: expected a list of strings, got string",
        ),
        (
            {**GOOD, "paraphrase_prompts": ["ok", 5]},
            "edits.jsonl:3: paraphrase_prompts[1]: expected a non-empty string, got number 5",
        ),
        (
            {**GOOD, "targt_true": "Paris"},
            "edits.jsonl:3: targt_true: unknown key (did you mean 'target_true'?)",
        ),
        ([GOOD], "edits.jsonl:3: expected a JSON object, got list"),
        ({"text": "hello"}, "edits.jsonl:3: unrecognized record with keys ['text']"),
    ],
)
def test_error_message_names_file_line_field(in_tmp: Path, line: Any, expected: str) -> None:
    path = write_lines("edits.jsonl", [GOOD, GOOD, line])
    lines = error_of(lambda: load_requests(path)).splitlines()
    assert lines[0] == "edits.jsonl: 1 malformed record"
    assert lines[1].startswith(expected)
    assert len(lines) == 2


def test_load_collects_all_problems_in_one_error(in_tmp: Path) -> None:
    path = write_lines(
        "edits.jsonl",
        [
            GOOD,
            {"prompt": "x"},
            "",
            '{"prompt": "a",, "target_new": "b"}',
            GOOD,
            {**GOOD, "subject": "Spain"},
        ],
    )
    lines = error_of(lambda: load_requests(path)).splitlines()
    assert lines[0] == "edits.jsonl: 3 malformed records"
    assert [line.split(": ")[0] for line in lines[1:]] == [
        "edits.jsonl:2",
        "edits.jsonl:4",
        "edits.jsonl:6",
    ]
    assert (
        lines[2]
        == "edits.jsonl:4: not valid JSON (Expecting property name enclosed in double quotes at column 16)"
    )


def test_error_list_is_capped(in_tmp: Path) -> None:
    path = write_lines("edits.jsonl", [{"prompt": "x"}] * 30)
    lines = error_of(lambda: load_requests(path)).splitlines()
    assert lines[0] == "edits.jsonl: 30 malformed records"
    assert len(lines) == 1 + 20 + 1
    assert lines[-1] == "... and 10 more"


def test_iter_requests_streams_then_fails_at_first_bad_record(in_tmp: Path) -> None:
    path = write_lines("edits.jsonl", [GOOD, {"prompt": "x"}, {"prompt": "y"}])
    it = iter_requests(path)
    assert next(it) == EditRequest(**GOOD)
    msg = error_of(lambda: next(it))
    assert msg == "edits.jsonl:2: target_new: missing (every request needs a non-empty string)"


def test_json_array_records_are_numbered(in_tmp: Path) -> None:
    Path("x.json").write_text(json.dumps([GOOD, {"prompt": "x"}, GOOD, 4]), encoding="utf-8")
    lines = error_of(lambda: load_requests("x.json")).splitlines()
    assert lines == [
        "x.json: 2 malformed records",
        "x.json:record 2: target_new: missing (every request needs a non-empty string)",
        "x.json:record 4: expected a JSON object, got number",
    ]


def test_json_single_object_and_json_lines_hint(in_tmp: Path) -> None:
    Path("one.json").write_text(json.dumps(GOOD), encoding="utf-8")
    assert load_requests("one.json") == [EditRequest(**GOOD)]
    Path("lines.json").write_text(json.dumps(GOOD) + "\n" + json.dumps(GOOD) + "\n")
    assert error_of(lambda: load_requests("lines.json")) == (
        "lines.json:2: not valid JSON (Extra data at column 1); "
        "it looks like JSON Lines (one object per line): rename it to .jsonl"
    )


def test_blank_lines_are_skipped_and_lines_still_counted(in_tmp: Path) -> None:
    Path("edits.jsonl").write_text(
        "\n" + json.dumps(GOOD) + "\n\n   \n" + json.dumps({"prompt": "x"}) + "\n\n"
    )
    msg = error_of(lambda: load_requests("edits.jsonl"))
    assert msg.splitlines()[1].startswith("edits.jsonl:5: target_new: missing")
    assert len(load_requests(FIXTURES / "canonical.jsonl")) == 3  # has blank lines


def test_counterfact_and_zsre_errors_use_their_field_names(in_tmp: Path) -> None:
    cf = json.loads((FIXTURES / "counterfact.json").read_text(encoding="utf-8"))[0]
    cf["requested_rewrite"] = {
        **cf["requested_rewrite"],
        "prompt": "The mother tongue is",
        "target_new": "English",
    }
    Path("cf.json").write_text(json.dumps([cf]), encoding="utf-8")
    assert error_of(lambda: load_requests("cf.json")).splitlines()[1:] == [
        "cf.json:record 1: requested_rewrite.prompt: 'The mother tongue is' has no '{}' slot for the subject",
        'cf.json:record 1: requested_rewrite.target_new: expected {"str": ...}, got string',
    ]
    write_lines(
        "z.jsonl", [{"subject": "Nokia", "src": "Who founded Nokia?", "loc": "nq question: q"}]
    )
    assert error_of(lambda: load_requests("z.jsonl")).splitlines()[1:] == [
        "z.jsonl:1: alt: missing (the new answer)",
        "z.jsonl:1: loc_ans: missing (loc needs it: loc is a locality prompt, loc_ans its answer)",
    ]


def test_duplicate_ids_and_bad_utf8(in_tmp: Path) -> None:
    write_lines("dup.jsonl", [{**GOOD, "id": "a"}, {**GOOD, "id": "a"}])
    assert error_of(lambda: load_requests("dup.jsonl")).splitlines()[1] == (
        "dup.jsonl:2: id: 'a' repeats the id of line 1 (ids must be unique)"
    )
    Path("bad.jsonl").write_bytes(json.dumps(GOOD).encode() + b"\n" + b'{"prompt": "\xff"}\n')
    assert error_of(lambda: load_requests("bad.jsonl")).splitlines()[1] == (
        "bad.jsonl:2: not valid UTF-8 (byte 13)"
    )


def test_file_level_errors(in_tmp: Path) -> None:
    assert error_of(lambda: load_requests("edits.jsonl")) == (
        "edits.jsonl: no such file; pass --facts with a path to a .jsonl/.json file"
    )
    Path("empty.jsonl").write_text("\n  \n")
    assert error_of(lambda: load_requests("empty.jsonl")).startswith("empty.jsonl: no records")
    Path("empty.json").write_text("[]")
    assert error_of(lambda: load_requests("empty.json")).startswith("empty.json: no records")
    Path("scalar.json").write_text('"hello"')
    assert error_of(lambda: load_requests("scalar.json")).startswith(
        "scalar.json: expected a JSON array of request records"
    )
    Path("facts.csv").write_text("prompt,target_new\n")
    assert error_of(lambda: load_requests("facts.csv")).startswith(
        "facts.csv: unsupported file type '.csv'"
    )
    Path("somedir").mkdir()
    assert "not a dataset saved with datasets' save_to_disk" in error_of(
        lambda: load_requests("somedir")
    )
    assert error_of(lambda: iter_requests("missing.jsonl")).startswith(
        "missing.jsonl: no such file"
    )
    assert "limit" in error_of(lambda: load_requests(FIXTURES / "zsre.json", limit=-1))


# ----------------------------------------------------------------- limit, round trip, safety


def test_limit(in_tmp: Path) -> None:
    path = write_lines("edits.jsonl", [GOOD, {**GOOD, "target_new": "Oslo"}, {"prompt": "bad"}])
    assert [r.target_new for r in load_requests(path, limit=2)] == ["Rome", "Oslo"]
    assert len(list(iter_requests(path, limit=1))) == 1
    assert load_requests(path, limit=0) == []
    assert len(load_requests(FIXTURES / "counterfact.json", limit=1)) == 1


@pytest.mark.parametrize("name", FIXTURE_FILES)
def test_save_load_round_trip(in_tmp: Path, name: str) -> None:
    reqs = load_requests(FIXTURES / name)
    save_requests(reqs, "out.jsonl")
    assert load_requests("out.jsonl") == reqs
    assert all(
        detect_format(json.loads(line)) == "canonical"
        for line in Path("out.jsonl").read_text(encoding="utf-8").splitlines()
    )
    assert sorted(p.name for p in in_tmp.iterdir()) == ["out.jsonl"]  # no temp file left


def test_save_is_atomic_and_checks_its_arguments(in_tmp: Path) -> None:
    save_requests([EditRequest(**GOOD)], "out.jsonl")
    before = Path("out.jsonl").read_bytes()
    assert before == (json.dumps(GOOD) + "\n").encode()

    def bad_items() -> Any:
        yield EditRequest("The capital of Spain is", "Rome")
        yield GOOD  # not an EditRequest: fails mid-write

    with pytest.raises(TypeError):
        save_requests(bad_items(), "out.jsonl")
    assert Path("out.jsonl").read_bytes() == before
    assert sorted(p.name for p in in_tmp.iterdir()) == ["out.jsonl"]
    assert ".jsonl" in error_of(lambda: save_requests([], "out.json"))
    assert "does not exist" in error_of(lambda: save_requests([], "nodir/out.jsonl"))


@pytest.mark.parametrize("name", FIXTURE_FILES)
def test_loading_never_modifies_the_input(name: str) -> None:
    path = FIXTURES / name
    before, mtime = digest(path), path.stat().st_mtime_ns
    load_requests(path)
    list(iter_requests(path))
    assert (digest(path), path.stat().st_mtime_ns) == (before, mtime)


# ----------------------------------------------------------------- Arrow-backed inputs and outputs


def test_parquet_and_arrow_files(in_tmp: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    reqs = load_requests(FIXTURES / "canonical.jsonl")
    table = pa.Table.from_pylist([r.to_dict() for r in reqs])
    pq.write_table(table, "edits.parquet")
    assert load_requests("edits.parquet") == reqs
    with pa.OSFile("edits.arrow", "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    assert load_requests("edits.arrow") == reqs
    Path("broken.parquet").write_bytes(b"not parquet")
    assert error_of(lambda: load_requests("broken.parquet")).startswith(
        "broken.parquet: not a readable Parquet file"
    )


def test_requests_dataset_matches_load_and_is_memory_mapped(in_tmp: Path) -> None:
    import datasets

    rows = [
        {
            "id": f"r{i}",
            "prompt": f"Fact number {i} is",
            "target_new": f"v{i}",
            **({"paraphrase_prompts": [f"Fact #{i} is"]} if i % 2 else {}),
            **(
                {"neighborhood_prompts": [{"prompt": "Other fact is", "target": "w"}]}
                if i % 3 == 0
                else {}
            ),
        }
        for i in range(5000)
    ]
    path = write_lines("big.jsonl", rows)
    before = digest(Path(path))
    ds = requests_dataset(path, cache_dir=str(in_tmp / "cache"))
    assert ds.num_rows == 5000
    assert ds.cache_files and isinstance(ds.data, datasets.table.MemoryMappedTable)
    assert [EditRequest.from_dict(row) for row in ds.to_list()] == load_requests(path)
    assert digest(Path(path)) == before

    # a directory written by save_to_disk reads back too
    ds.save_to_disk("saved")
    assert load_requests("saved", limit=3) == load_requests(path, limit=3)

    write_lines("bad.jsonl", [GOOD, {"prompt": "x"}])
    msg = error_of(lambda: requests_dataset("bad.jsonl", cache_dir=str(in_tmp / "cache")))
    assert msg.splitlines()[:2] == [
        "bad.jsonl: 1 malformed record",
        "bad.jsonl:2: target_new: missing (every request needs a non-empty string)",
    ]
