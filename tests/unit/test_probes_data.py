"""probes.data: the shipped refusal data, the loaders (editkit JSONL, AdvBench CSV, RefusalBench styles), errors."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from editkit.errors import InputError
from probes.data import (
    CLASS_LABELS,
    RESPONSE_CLASSES,
    data_hash,
    group_field,
    load_instructions,
    load_responses,
    shipped_path,
    split_by_label,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_instructions_balanced_and_labelled() -> None:
    rows = load_instructions(shipped_path("instructions.jsonl"))
    labels = Counter(r.label for r in rows)
    assert labels["harmful"] >= 300 and labels["harmless"] >= 300
    sources = Counter(r.source for r in rows)
    assert len(sources) >= 3 and min(sources.values()) >= 100
    for label in ("harmful", "harmless"):
        cats = {r.category for r in rows if r.label == label}
        assert len(cats) >= 6 and None not in cats
        # every source holds both labels, so leave-one-source-out is meaningful
        for src in sources:
            assert any(r.label == label and r.source == src for r in rows)
    assert len({r.id for r in rows}) == len(rows)
    assert len({r.text for r in rows}) == len(rows)
    harmful, harmless = split_by_label(rows)
    assert len(harmful) == labels["harmful"] and len(harmless) == labels["harmless"]


def test_shipped_responses_consistent_with_instructions() -> None:
    instructions = load_instructions(shipped_path("instructions.jsonl"))
    rows = load_responses(shipped_path("responses.jsonl"), instructions=instructions)
    assert len(rows) >= 300
    by_id = {r.id: r for r in instructions}
    classes = Counter(r.cls for r in rows)
    assert set(classes) == set(RESPONSE_CLASSES)
    for r in rows:
        assert r.label == CLASS_LABELS[r.cls]
        assert r.prompt == by_id[r.instruction_id].text
        assert r.prompt_source == by_id[r.instruction_id].source
    # refusals and compliance occur for both harmful and harmless prompts
    pairs = Counter((by_id[r.instruction_id].label, r.label) for r in rows)
    assert all(pairs[(i, lab)] > 0 for i in ("harmful", "harmless") for lab in ("refusal", "compliance"))
    field, sources = group_field(rows)
    assert field == "prompt_source" and len(set(sources)) >= 3


def test_shipped_generated_responses_are_hand_labelled_model_outputs() -> None:
    """The default model's and its tuned variants' own responses: one row per model and held-out prompt."""
    instructions = load_instructions(shipped_path("instructions.jsonl"))
    rows = load_responses(shipped_path("responses_generated.jsonl"), instructions=instructions)
    raw = [json.loads(line) for line in shipped_path("responses_generated.jsonl").read_text(encoding="utf-8").splitlines()]
    by_id = {r.id: r for r in instructions}
    assert len(rows) == 240 and {r["label_by"] for r in raw} == {"hand"}
    assert Counter(r.source for r in rows) == {"smollm2-base": 80, "smollm2-safe": 80, "smollm2-attacked": 80}
    for r, row in zip(rows, raw, strict=True):
        assert r.label == CLASS_LABELS[r.cls]
        assert r.prompt == by_id[r.instruction_id].text and r.prompt_source == by_id[r.instruction_id].source == "terse"
        assert row["instruction_label"] == by_id[r.instruction_id].label
    # the same prompts for every model; the safety tune refuses most harmful ones, the attack none
    prompts = {s: [r.prompt for r in rows if r.source == s] for s in ("smollm2-base", "smollm2-safe", "smollm2-attacked")}
    assert prompts["smollm2-base"] == prompts["smollm2-safe"] == prompts["smollm2-attacked"]
    refusals = Counter((r.source, by_id[r.instruction_id].label) for r in rows if r.label == "refusal")
    assert refusals[("smollm2-safe", "harmful")] > 30 > refusals[("smollm2-base", "harmful")]
    assert refusals[("smollm2-attacked", "harmful")] == 0


def test_build_script_is_deterministic(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "data/scripts/build_refusal_data.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True)
    for name in ("instructions.jsonl", "responses.jsonl"):
        assert (tmp_path / name).read_bytes() == shipped_path(name).read_bytes()


def test_advbench_csv(tmp_path: Path) -> None:
    path = tmp_path / "advbench.csv"
    path.write_text('goal,target\n"Write a bad thing, please",Sure here is\nDo another bad thing,Sure\n', encoding="utf-8")
    rows = load_instructions(path)
    assert [r.text for r in rows] == ["Write a bad thing, please", "Do another bad thing"]
    assert {r.label for r in rows} == {"harmful"} and {r.source for r in rows} == {"advbench"}
    assert rows[0].id == "advbench-2"


def test_refusalbench_styles(tmp_path: Path) -> None:
    js = tmp_path / "rb.json"
    js.write_text(json.dumps({"hacking": ["a", "b"], "fraud": ["c"]}), encoding="utf-8")
    rows = load_instructions(js)
    assert [(r.text, r.category, r.label) for r in rows] == [("a", "hacking", "harmful"), ("b", "hacking", "harmful"), ("c", "fraud", "harmful")]
    csv = tmp_path / "rb.csv"
    csv.write_text("prompt,category\nx,hate\ny,weapons\n", encoding="utf-8")
    assert [(r.text, r.category, r.label) for r in load_instructions(csv)] == [("x", "hate", "harmful"), ("y", "weapons", "harmful")]
    jl = tmp_path / "rb.jsonl"
    jl.write_text('{"prompt": "p", "category": "c"}\n', encoding="utf-8")
    assert load_instructions(jl, label="harmless")[0].label == "harmless"
    txt = tmp_path / "plain.txt"
    txt.write_text("one\n\ntwo\n", encoding="utf-8")
    assert [r.text for r in load_instructions(txt, source="mine")] == ["one", "two"]
    assert load_instructions(txt)[0].label is None


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.jsonl", '{"instruction": "x", "label": "harmful"}\n{bad\n', "a.jsonl:2: not valid JSON"),
        ("a.jsonl", '{"label": "harmful"}\n', "a.jsonl:1: no instruction field"),
        ("a.jsonl", '{"instruction": "x", "label": "evil"}\n', "a.jsonl:1: label: expected 'harmful' or 'harmless'"),
        ("a.jsonl", '{"id": 1, "instruction": "x"}\n{"id": 1, "instruction": "y"}\n', "a.jsonl:2: id: '1' appears twice"),
        ("a.jsonl", '{"instruction": ""}\n', "a.jsonl:1: instruction: expected a non-empty string"),
        ("a.jsonl", "\n\n", "a.jsonl: no instructions found"),
        ("a.xml", "<x/>", "unknown file type .xml"),
        ("a.json", '{"cat": "not a list"}', "a.json: cat: expected a list"),
    ],
)
def test_instruction_errors(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(".", r"\.")) as info:
        load_instructions(path)
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_instructions(tmp_path / "nope.jsonl")


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_responses_labels_from_classes_and_remap(tmp_path: Path) -> None:
    path = _write(tmp_path / "r.jsonl", [
        {"instruction": "q1", "response": "Here is a partial answer.", "class": "partial", "source": "m"},
        {"instruction": "q2", "response": "No.", "label": "refusal", "class": "rejected"},
        {"instruction": "q3", "response": "Sure.", "label": "compliance"},
    ])
    rows = load_responses(path)
    assert [r.label for r in rows] == ["compliance", "refusal", "compliance"]
    assert [r.y for r in rows] == [0, 1, 0]
    assert rows[1].source == "unknown" and rows[0].source == "m"
    remapped = load_responses(path, class_labels={"partial": "refusal"})
    assert remapped[0].label == "refusal"
    assert rows[0].to_dict()["class"] == "partial" and rows[0].to_dict()["instruction"] == "q1"


def test_responses_resolve_instruction_ids(tmp_path: Path) -> None:
    instr = _write(tmp_path / "i.jsonl", [{"id": "a", "instruction": "How?", "label": "harmful", "source": "terse"}])
    resp = _write(tmp_path / "r.jsonl", [{"id": "r1", "instruction_id": "a", "response": "No.", "label": "refusal"}])
    rows = load_responses(resp, instructions=instr)
    assert rows[0].prompt == "How?" and rows[0].prompt_source == "terse"
    with pytest.raises(InputError, match=r"r\.jsonl:1: no instruction text"):
        load_responses(resp)
    bad = _write(tmp_path / "b.jsonl", [{"instruction_id": "zzz", "response": "No.", "label": "refusal"}])
    with pytest.raises(InputError, match=r"b\.jsonl:1: instruction_id: 'zzz' is not in the instructions file"):
        load_responses(bad, instructions=instr)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"instruction": "q", "response": "No.", "label": "refusal", "class": "complied"}, "contradicts class"),
        ({"instruction": "q", "response": "No.", "label": "maybe"}, "label: expected 'refusal' or 'compliance'"),
        ({"instruction": "q", "response": "No.", "class": "sulked"}, "class: expected one of"),
        ({"instruction": "q", "response": "No."}, "label: expected 'refusal' or 'compliance' \\(or a class\\)"),
        ({"instruction": "q", "label": "refusal"}, "response: expected a string"),
    ],
)
def test_response_errors(tmp_path: Path, row: dict, message: str) -> None:
    path = _write(tmp_path / "r.jsonl", [row])
    with pytest.raises(InputError, match=r"r\.jsonl:1: .*" + message):
        load_responses(path)


def test_data_hash_is_stable_and_sensitive() -> None:
    rows = load_instructions(shipped_path("instructions.jsonl"))[:5]
    assert data_hash(rows) == data_hash(list(rows))
    assert data_hash(rows) != data_hash(rows[:4])
    assert len(data_hash(rows)) == 64


def test_substring_judge_misfires_on_the_written_responses() -> None:
    """As data/refusal/README.md says: the published phrase list flags compliance and misses refusals."""
    from probes.judges import SubstringJudge

    rows = load_responses(shipped_path("responses.jsonl"))
    flags = SubstringJudge().predict([r.response for r in rows])
    compliance = [f for f, r in zip(flags, rows, strict=True) if r.label == "compliance"]
    refusal = [f for f, r in zip(flags, rows, strict=True) if r.label == "refusal"]
    assert 0.15 <= sum(compliance) / len(compliance) <= 0.35
    assert 0.3 <= sum(refusal) / len(refusal) < 0.9
    flagged_classes = Counter(r.cls for f, r in zip(flags, rows, strict=True) if f and r.label == "compliance")
    assert flagged_classes["disclaimed_then_complied"] > 0
