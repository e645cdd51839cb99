"""bench/summarize.py: docs/benchmarks.md is up to date, unknown results get a section, formatters show the numbers."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from editkit.outputs import atomic_write_text

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def _load_summarize() -> ModuleType:
    path = ROOT / "bench" / "summarize.py"
    spec = importlib.util.spec_from_file_location("bench_summarize", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


summarize = _load_summarize()


def no_git(path: Path) -> None:
    """The date source where git (or the file's history) is missing."""
    return None


def test_docs_benchmarks_md_is_up_to_date() -> None:
    """Fails when a result in bench/results/ changed and docs/benchmarks.md was not regenerated."""
    hint = "docs/benchmarks.md is out of date: run `python bench/summarize.py`"
    assert summarize.is_up_to_date(summarize.RESULTS, summarize.DOC), hint
    # the same without git: dates from git history are not part of the comparison
    assert summarize.is_up_to_date(summarize.RESULTS, summarize.DOC, date_of=no_git), hint
    doc = summarize.DOC.read_text(encoding="utf-8")
    for path in summarize.RESULTS.iterdir():  # every result file has its section, none fell back
        assert path.name in doc
    assert "no summary formatter" not in doc and "formatter failed" not in doc


def test_git_dates_do_not_matter_to_the_check(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    result = json.loads((summarize.RESULTS / "tuco_cge_cpu.json").read_text(encoding="utf-8"))
    result["meta"].pop("date", None)  # a date recorded in the result is always shown; this test is about git's
    (results / "tuco_cge_cpu.json").write_text(json.dumps(result), encoding="utf-8")
    out = tmp_path / "benchmarks.md"
    with_date = summarize.render(results, out, date_of=lambda p: "2024-05-06")
    assert "- Date: 2024-05-06 (last git commit of the result file)" in with_date
    atomic_write_text(out, with_date)
    assert summarize.is_up_to_date(results, out, date_of=no_git)
    without = summarize.render(results, out, date_of=no_git)
    assert "- Date: unknown" in without
    assert summarize.render(results, out, date_of=no_git) == without  # deterministic


def test_unknown_result_gets_a_generic_section(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    made_up = {"meta": {"machine": "Linux-test", "cpus": 4, "torch": "9.9"}, "speedup": 3.25,
               "rows": [{"a": 1}, {"a": 2}], "zeta": "last"}
    (results / "newbench_cpu.json").write_text(json.dumps(made_up))
    (results / "broken.json").write_text("{not json")
    out = tmp_path / "benchmarks.md"
    text = summarize.render(results, out, date_of=no_git)
    assert "## `newbench_cpu.json` (no summary formatter)" in text
    for key in ("`meta`", "`rows`", "`speedup`", "`zeta`"):
        assert key in text
    assert "| `speedup` | 3.25 |" in text and "list of 2" in text
    assert "- Machine: `Linux-test`" in text and "CPUs: 4" in text and "torch: 9.9" in text
    assert "## `broken.json` (no summary formatter)" in text and "could not be read" in text
    # the CLI: --check fails (one line) until the file is written, then passes
    assert summarize.main(["--check", "--results", str(results), "--out", str(out)]) == 1
    assert summarize.main(["--results", str(results), "--out", str(out)]) == 0
    assert summarize.main(["--check", "--results", str(results), "--out", str(out)]) == 0
    (results / "newbench_cpu.json").write_text(json.dumps({**made_up, "speedup": 4.0}))
    assert summarize.main(["--check", "--results", str(results), "--out", str(out)]) == 1


def test_tuco_formatter_shows_the_numbers_and_targets(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    data = {
        "meta": {"model": "tiny", "machine": "Linux-x", "cpus": 8, "torch_threads": 3, "device": "cpu", "gpu": None,
                 "torch": "2.0", "repeats": 5, "warmup": 2, "lora_rank": 4, "full_scale": 0.02},
        "tuco": [
            {"pair": "full", "kind": "models", "prompts": 6, "tokens": 120, "seconds": {"forward": 1.5, "tuco": 3.0},
             "tuco_ratio": 2.0, "tuco_outputco_ratio": 3.25, "target": "tuco_ratio <= 2.3", "meets_target": True},
            {"pair": "lora", "kind": "peft", "prompts": 6, "tokens": 120, "seconds": {"forward": 2.0},
             "tuco_ratio": 2.5, "meets_target": False},
        ],
        "cge": [{"pair": "full", "examples": 2, "new_tokens_each": 8, "beams": 3, "plain_tokens_per_s": 10.0,
                 "cge_tokens_per_s": 4.0, "cge_over_plain": 0.4}],
    }
    (results / "tuco_cge_cpu.json").write_text(json.dumps(data))
    text = summarize.render(results, tmp_path / "benchmarks.md", date_of=no_git)
    assert "## TuCo cost and CGE decoding speed" in text
    assert "| full | models | 6 | 120 | 1.50 | 3.00 | 2.00x | 3.25x | tuco_ratio <= 2.3 | yes |" in text
    assert "| lora | peft | 6 | 120 | 2.00 | - | 2.50x | - | - | no |" in text  # missing keys: "-"
    assert "| full | 3 | 2 x 8 | 10.00 | 4.00 | 0.40x | - |" in text
    assert "- CPUs: 8; threads: 3; device: cpu; GPU: none; torch: 2.0" in text
    data["meta"]["argv"] = ["/abs/bench/tuco_bench.py", "--model", "tiny"]
    (results / "tuco_cge_cpu.json").write_text(json.dumps(data))
    recorded = summarize.render(results, tmp_path / "benchmarks.md", date_of=no_git)
    assert "Reproduce (recorded in the result):" in recorded
    assert ".venv/bin/python bench/tuco_bench.py --model tiny\n" in recorded
    assert ("--model tiny --device cpu --threads 3 --n-prompts 6 --repeats 5 --warmup 2 --lora-rank 4 "
            "--full-scale 0.02 --cge-n 2 --cge-tokens 8 --cge-beams 3") in text


def test_mend_formatter_tolerates_missing_keys(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    data = {"meta": {"threads": 2, "editor": "runs/e"},
            "results": {"single": {"n": 7, "reliability": 0.5, "median_ms_compute_apply": 12.25},
                        "batch-4": {"n_batches": 2, "locality": 0.125, "perplexity_change": 0.05},
                        "new-mode": {}}}
    (results / "mend_cpu.json").write_text(json.dumps(data))
    text = summarize.render(results, tmp_path / "benchmarks.md", date_of=no_git)
    assert "formatter failed" not in text
    assert "| one edit at a time, reverted between (`single`) | 7 | 0.500 | - | - | - | median 12.2 ms per edit |" in text
    assert "| batches of 4, one summed update (`batch-4`) | 2 batches | - | - | 0.125 | +5.0% | - |" in text
    assert "| new-mode (`new-mode`) | - | - | - | - | - | - |" in text
    assert "bench/mend_bench.py --editor runs/e --batches 4 --sequential 0 --locft 0 --device cpu --threads 2" in text


def test_mend_sweep_formatter_shows_the_curve_targets_and_groups(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    point = {"reliability": 0.95, "generalization": 0.6, "locality": 0.91}
    data = {"meta": {"threads": 1, "editor": "runs/e", "n_requests": 3, "argv": ["bench/mend_sweep.py", "--editor",
                                                                                  "runs/e", "--scales", "0.4", "2"]},
            "curve": [{"scale": 0.4, **point}, {"scale": 2.0, **point, "locality": 0.5}],
            "groups": {"capital": {"n": 2, "curve": [{"scale": 0.4, **point}, {"scale": 2.0, "reliability": 1.0}]},
                       "dish": {"n": 1, "curve": [{"scale": 2.0, "reliability": 0.5, "locality": 1.0}]}}}
    (results / "mend_sweep_cpu.json").write_text(json.dumps(data))
    text = summarize.render(results, tmp_path / "benchmarks.md", date_of=no_git)
    assert "## MEND: reliability against locality over the update's scale" in text
    assert "| 0.4 | 0.950 | 0.600 | 0.910 | yes |" in text
    assert "| 2 | 0.950 | 0.600 | 0.500 | no |" in text  # locality below its target
    assert "| capital | 2 | 0.95 / 0.91 | 1.00 / - |" in text
    assert "| dish | 1 | - / - | 0.50 / 1.00 |" in text  # cells found by scale, not by position
    assert ".venv/bin/python bench/mend_sweep.py --editor runs/e --scales 0.4 2\n" in text
