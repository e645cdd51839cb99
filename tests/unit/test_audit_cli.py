"""``editkit audit intruders``, the fine-tune example and the benchmark, on a tiny llama."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from tiny_models import save_tiny_full
from typer.testing import CliRunner

import gpu
from audit.intruders import intruder_analysis, top_matrices
from audit.tuned import load_tuned
from editkit.cli import app

pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("ignore::UserWarning")]

ROOT = Path(__file__).resolve().parents[2]
CPU = gpu.get_backend("torch-cpu")


@pytest.fixture(autouse=True)
def _one_blas_thread() -> Iterator[None]:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def full_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A "full fine-tune": every block matrix perturbed a little, two kinds by a strong rank-1 update."""
    return save_tiny_full(tmp_path_factory.mktemp("full"), scale=1e-3, strong=("o_proj.weight", "gate_proj.weight"))


def run(*args: str):
    return CliRunner(env={"COLUMNS": "200"}).invoke(app, list(args))


def intruders(base: Path, tuned: Path, out: Path, *extra: str):
    return run("audit", "intruders", "--base", str(base), "--tuned", str(tuned), "--out", str(out),
               "--backend", "torch-cpu", "--cache-dir", str(out.parent / "cache"), *extra)


def _direct(base_dir: Path, tuned: Path):
    from editkit.models import load_model

    base, _ = load_model(str(base_dir))
    return intruder_analysis(base, tuned, cache=False, backend=CPU)


@pytest.mark.parametrize("kind", ["lora", "full"])
def test_intruders_writes_files_and_matches_the_api(
    kind: str, tiny_dir: Path, lora_dir: Path, full_dir: Path, tmp_path: Path
) -> None:
    tuned = lora_dir if kind == "lora" else full_dir
    out = tmp_path / "audit"
    res = intruders(tiny_dir, tuned, out)
    assert res.exit_code == 0, res.output
    assert {p.name for p in out.iterdir()} == {"intruders.json", "intruders.csv", "heatmap.png", "spectra"}
    assert len(list((out / "spectra").glob("*.png"))) == 3
    assert (out / "heatmap.png").read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers

    data = json.loads((out / "intruders.json").read_text())
    direct = _direct(tiny_dir, tuned)
    assert data["tuned"]["kind"] == kind and data["config"]["k"] == 10 and data["config"]["eps"] == 0.5
    assert data["totals"]["intruders"] == direct.total > 0
    assert data["counts_vs_eps"] == {f"{e:g}": n for e, n in direct.counts_vs_eps().items()}
    assert [(r["name"], r["intruders"]) for r in data["rows"]] == [(m.name, m.count) for m in direct.matrices]
    assert data["provenance"]["models"][0]["role"] == "base"
    assert data["mitigation"] is None
    with (out / "intruders.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["intruders"]) for r in rows] == [m.count for m in direct.matrices]
    # The spectra are those of the matrices with the most intruders.
    assert list(data["files"]["spectra"]) == [m.name for m in top_matrices(direct, 3)]
    assert direct.matrix(next(iter(data["files"]["spectra"]))).count == max(m.count for m in direct.matrices)
    # The console table: counts per layer and module kind, with the total.
    assert "attn_in" in res.output and "mlp_in" in res.output
    assert f"{direct.total} intruders in" in res.output


def test_missing_tuned_path_is_one_line(tiny_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "audit"
    res = intruders(tiny_dir, tmp_path / "nope", out)
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "nope: no such file or folder" in lines[0], res.output
    assert not out.exists()


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--eps", "0"], "--eps"),
        (["--k", "0"], "--k"),
        (["--mitigate", "1.5"], "--mitigate"),
        (["--backend", "nonsense"], "unknown array backend"),
    ],
)
def test_bad_options_fail_before_loading(lora_dir: Path, tmp_path: Path, options: list[str], expected: str) -> None:
    res = run("audit", "intruders", "--base", str(tmp_path / "no-model"), "--tuned", str(lora_dir),
              "--out", str(tmp_path / "o"), *options)
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], res.output


def test_existing_output_needs_overwrite(tiny_dir: Path, lora_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "audit"
    out.mkdir()
    res = intruders(tiny_dir, lora_dir, out)
    assert res.exit_code == 2 and "--overwrite" in res.output
    assert intruders(tiny_dir, lora_dir, out, "--overwrite", "--no-cache", "--spectra", "0").exit_code == 0
    assert (out / "intruders.json").is_file() and not list((out / "spectra").glob("*"))


@pytest.mark.parametrize("kind", ["lora", "full"])
def test_mitigate_zero_reduces_the_count(
    kind: str, tiny_dir: Path, lora_dir: Path, full_dir: Path, tmp_path: Path
) -> None:
    from editkit.models import load_model

    tuned = lora_dir if kind == "lora" else full_dir
    out = tmp_path / "audit"
    res = intruders(tiny_dir, tuned, out, "--mitigate", "0.0", "--spectra", "1")
    assert res.exit_code == 0, res.output
    mit = json.loads((out / "intruders.json").read_text())["mitigation"]
    summary = mit["summary"]
    assert summary["intruders_after"] < summary["intruders_before"] == _direct(tiny_dir, tuned).total
    assert set(mit["perplexity"]) == {"base", "tuned", "mitigated"}
    assert all(math.isfinite(v) for v in mit["perplexity"].values())
    assert mit["reference"]["passages"] == 60
    expected = {"delta", "adapter"} if kind == "lora" else {"model"}
    assert set(mit["saved"]) == expected | {"report"}
    for rel in mit["saved"].values():
        assert (out / rel).exists()
    assert len(list((out / "mitigated" / "spectra").glob("*.png"))) == 1
    after = json.loads((out / "mitigated" / "intruders.json").read_text())
    assert after["totals"]["intruders"] == summary["intruders_after"]
    # The saved weights read back as the mitigated model: the same (smaller) count.
    base, _ = load_model(str(tiny_dir))
    reread = intruder_analysis(base, load_tuned(base, out / "mitigated"), cache=False, backend=CPU)
    assert reread.total == summary["intruders_after"]
    assert "mitigation" in res.output


def _load_script(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_finetunes_example_runs_on_a_tiny_model(tiny_dir: Path, tmp_path: Path) -> None:
    example = _load_script(ROOT / "examples" / "intruders_finetunes.py")
    out = tmp_path / "ex"
    rows = example.main([
        "--model", str(tiny_dir), "--steps", "2", "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
        "--reference-passages", "4", "--spectra", "0", "--backend", "torch-cpu",
    ])
    assert [r["run"] for r in rows] == ["lora-r1", "lora-r8", "lora-r64", "full"]
    assert all(r["matrices"] == 28 for r in rows)  # 4 blocks x 7 projections
    for name in ("lora-r1", "lora-r8", "lora-r64", "full"):
        assert (out / "intruders" / name / "heatmap.png").is_file()
        assert (out / "tuned" / name).is_dir()
    summary = json.loads((out / "summary.json").read_text())
    assert [r["intruders"] for r in summary["runs"]] == [r["intruders"] for r in rows]
    assert (out / "counts_vs_eps.png").is_file() and "lora-r64" in (out / "summary.md").read_text()


def test_bench_counts_equal_on_a_tiny_model(tiny_dir: Path, lora_dir: Path, tmp_path: Path) -> None:
    bench = _load_script(ROOT / "bench" / "intruders_bench.py")
    for source in (["--synthetic-lora", "2"], ["--tuned", str(lora_dir), "--reference", "numpy"]):
        row = bench.main(["--model", str(tiny_dir), *source, "--backend", "torch-cpu", "--out", str(tmp_path / "b.json")])
        assert row["counts_equal"] and row["intruders"] == row["reference_intruders"] > 0
        assert row["cold_info"]["cache_misses"] == row["matrices"] == row["warm_info"]["cache_hits"]
    assert json.loads((tmp_path / "b.json").read_text())["rows"][0]["counts_equal"]
