"""The TuCo/CGE novelty example, its corpus builder and the TuCo/CGE bench, on the tiny llama."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("ignore::UserWarning")]

ROOT = Path(__file__).resolve().parents[2]


def _load_script(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_script_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def example() -> ModuleType:
    return _load_script(ROOT / "examples" / "tuco_cge_novelty.py")


def test_shipped_novelty_data_is_what_the_builder_writes(tmp_path: Path) -> None:
    builder = _load_script(ROOT / "data" / "scripts" / "build_novelty_corpus.py")
    counts = builder.write(tmp_path, 20260107)
    assert counts == {"sentences": 210, "prompts": 48, "novelties": 3}
    for name in ("novelties.json", "corpus.jsonl", "prompts.jsonl"):
        assert (tmp_path / name).read_bytes() == (ROOT / "data" / "novelty" / name).read_bytes(), name
    meta, corpus, prompts = builder.build(20260107)
    assert builder.check(meta, corpus, prompts, []) == []
    # a sentence carrying another novelty's marker is caught
    bad = [{**corpus[0], "text": corpus[0]["text"] + " Quorbitt"}]
    assert builder.check(meta, bad, [], [])


def test_novelty_data_and_measures(example: ModuleType) -> None:
    data = example.read_novelty_data()
    assert list(data.markers) == ["creature", "company", "language"]
    assert len(data.train) == 180 and len(data.heldout) == 30
    for novelty, text in data.train + data.heldout:
        assert example.novelties_in(text, data.markers) == [novelty]
    assert sum(n is None for n, _ in data.prompts) == 24
    found = [[], ["company"], [], ["company", "language"]]
    s = example.hit_summary(found, list(data.markers))
    assert (s["hits"], s["hit_share"], s["distinct"]) == (2, 0.5, 2)
    assert s["per_novelty"] == {"creature": 0, "company": 2, "language": 1}
    assert s["first_hit"] == {"creature": None, "company": 1, "language": 3}
    assert s["coverage"] == [0, 1, 1, 2] and s["examples_to_all"] is None
    assert example.hit_summary([["company"], ["company", "language"]], ["company", "language"])["examples_to_all"] == 2
    assert example.mentioned("Oslo, not Osloville; Greek.", ["Oslo", "Greek", "Be"]) == ["Oslo", "Greek"]
    assert example.roc_auc([1.0, 2.0], [0.5]) == 1.0 and example.roc_auc([], [1.0]) is None
    reqs = [SimpleNamespace(prompt="The capital of France is", subject="France"),
            SimpleNamespace(prompt="The capital of Spain is", subject="Spain"),
            SimpleNamespace(prompt="Toyota is made in", subject="Toyota")]
    assert example.subjectless_prompts(reqs) == ["The capital of"]
    stream = example.training_stream(["n1", "n2"], ["o1", "o2", "o3"], n=400, share=0.25, seed=0)
    assert stream == example.training_stream(["n1", "n2"], ["o1", "o2", "o3"], n=400, share=0.25, seed=0)
    assert 0.15 < sum(t.startswith("n") for t in stream) / 400 < 0.35
    assert example.ordinary_sentences(["One two three four five. Short one. Six seven eight nine ten!"]) == [
        "One two three four five.", "Six seven eight nine ten!"]


def test_example_runs_end_to_end_on_a_tiny_model(example: ModuleType, tmp_path: Path) -> None:
    facts = tmp_path / "facts.jsonl"
    facts.write_text("".join((ROOT / "data" / "demo.jsonl").read_text().splitlines(keepends=True)[:3]))
    out = tmp_path / "run"
    argv = ["--model", "tiny", "--out", str(out), "--steps", "2", "--batch-size", "4", "--n-cge", "2",
            "--max-new-tokens", "4", "--prompts-per-novelty", "1", "--n-general", "2", "--n-reference", "2",
            "--facts", str(facts), "--edit-set", "epochs=1", "--edit-set", "min_steps=1",
            "--edit-set", "preserve_general=1", "--edit-set", "preserve_per_template=1"]
    results = example.main(argv)
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(results, default=str))
    assert set(results) == {"model", "lora", "novelty", "edit"}
    nov = results["novelty"]
    assert set(nov["methods"]) == {"plain_sampling", "tuned_beam_sample", "cge", "iterative_cge"}
    for m in nov["methods"].values():
        assert m["n"] == 2 and 0.0 <= m["hit_share"] <= 1.0 and len(m["coverage"]) == 2
        assert set(m["per_novelty"]) == {"creature", "company", "language"}
    assert len(nov["methods"]["iterative_cge"]["update_log"]) == 2
    assert set(nov["iterative_vs_static"]) >= {"static_distinct", "iterative_distinct", "iterative_covers_more"}
    assert "difference" in nov["cge_vs_plain"]
    for mode in ("chat", "raw"):
        auc = nov["tuco"][mode]["tuco"]["auc"]
        assert set(auc) == {"vs_general", "vs_reference", "vs_all"}
        assert all(0.0 <= v <= 1.0 for v in auc.values())
    assert 0.0 <= nov["novelty_score"]["auc"]["vs_reference"] <= 1.0
    edit = results["edit"]
    assert edit["computed_now"] and (out / "edit" / "delta.safetensors").is_file()
    assert edit["prompts"] == ["The capital of", "The main language of"]
    assert set(edit["methods"]) == {"plain_sampling", "cge"}
    assert 0.0 <= edit["methods"]["cge"]["share_subject_or_target"] <= 1.0
    assert set(edit["tuco"]["raw"]["tuco"]["auc"]) == {"vs_general"}
    lines = (out / "examples" / "novelty_cge.jsonl").read_text().splitlines()
    assert len(lines) == 2 and "novelties" in json.loads(lines[0])
    assert len((out / "tuco_novelty.jsonl").read_text().splitlines()) == 2 * (3 + 2 + 2)
    # the adapter and the edit are cached: the same settings reuse them, other settings do not
    assert results["lora"]["trained_now"]
    args = example.parse_args(argv)
    base, tok = example.load("tiny")
    data = example.read_novelty_data()
    path, info = example.ensure_lora(base, tok, data, args)
    assert path == out / "lora" and not info["trained_now"]
    assert example.lora_key(example.parse_args([*argv, "--steps", "3"]), data) != info["key"]
    # a --part run reuses the cached edit and keeps the other part's results
    again = example.main([*argv, "--part", "edit", "--tuco-modes", "raw"])
    assert not again["edit"]["computed_now"] and set(again["edit"]["tuco"]) == {"raw"}
    assert json.loads(json.dumps(again["novelty"])) == json.loads(json.dumps(results["novelty"], default=str))
    assert json.loads((out / "results.json").read_text())["lora"]["adapter"] == str(out / "lora")


def test_bench_runs_on_a_tiny_model(tmp_path: Path) -> None:
    bench = _load_script(ROOT / "bench" / "tuco_bench.py")
    out = tmp_path / "bench.json"
    result = bench.main(["--model", "tiny", "--n-prompts", "4", "--batch-size", "2", "--repeats", "1",
                         "--warmup", "0", "--cge-n", "2", "--cge-tokens", "3", "--out", str(out)])
    assert json.loads(out.read_text()) == result
    assert [r["pair"] for r in result["tuco"]] == ["full", "lora"]
    assert [r["kind"] for r in result["tuco"]] == ["models", "peft"]
    for row in result["tuco"]:
        assert row["prompts"] == 4 and row["batches"] == 2
        assert row["tuco_ratio"] > 1.0 and row["tuco_outputco_ratio"] > 1.0
        assert isinstance(row["meets_target"], bool)
    for row in result["cge"]:
        assert row["plain_tokens_per_s"] > 0 and row["cge_tokens_per_s"] > 0 and row["beams"] == 4
    assert "TuCo / forward" in bench.markdown(result)
