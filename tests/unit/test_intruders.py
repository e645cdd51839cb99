"""Intruder dimensions agree with an independent implementation of the published procedure; mitigation."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import save_tiny_lora, tiny_model, tiny_tokenizer

import gpu
from audit.intruders import (
    IntruderConfig,
    analyze_matrix,
    inspect_matrix,
    intruder_analysis,
    intruder_heatmap,
    spectrum_plot,
)
from audit.mitigate import (
    mitigate_intruders,
    mitigate_matrix,
    mitigation_perplexity,
    save_mitigated_deltas,
    save_mitigated_model,
)
from audit.mitigate_lora import save_mitigated_adapter
from audit.tuned import LoraAdapter, load_tuned
from editkit.errors import InputError

pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("ignore::UserWarning")]

CPU = gpu.get_backend("torch-cpu")


@pytest.fixture(autouse=True)
def _one_blas_thread() -> Iterator[None]:
    """NumPy's LAPACK on one thread: much faster on small matrices when the cores are busy."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


# -- the reference: Shuttleworth et al., written out directly ---------------------------------------
def reference_max_cos(w0: np.ndarray, wt: np.ndarray, k: int = 10) -> list[float]:
    """Dense fp32 SVD of both; for each of the top-k tuned left singular vectors, max |cos| over ALL base ones."""
    u0, _, _ = np.linalg.svd(w0.astype(np.float32), full_matrices=False)
    ut, _, _ = np.linalg.svd(wt.astype(np.float32), full_matrices=False)
    base = [u0[:, j] / np.linalg.norm(u0[:, j]) for j in range(u0.shape[1])]
    scores = []
    for i in range(min(k, ut.shape[1])):
        tuned = ut[:, i] / np.linalg.norm(ut[:, i])
        best = 0.0
        for vec in base:
            best = max(best, abs(float(np.dot(tuned, vec))))
        scores.append(best)
    return scores


def reference_count(w0: np.ndarray, wt: np.ndarray, k: int = 10, eps: float = 0.5) -> int:
    return sum(m < eps for m in reference_max_cos(w0, wt, k))


def _decaying(m: int, n: int, seed: int, power: float = 0.7) -> torch.Tensor:
    """A random matrix with a power-law spectrum (like trained weights: distinct top singular values)."""
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(m, min(m, n), generator=g))
    v, _ = torch.linalg.qr(torch.randn(n, min(m, n), generator=g))
    s = torch.arange(1, min(m, n) + 1, dtype=torch.float32) ** -power
    return (u * s) @ v.T


def _low_rank(m: int, n: int, rank: int, scale: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(m, rank, generator=g) @ torch.randn(rank, n, generator=g) / math.sqrt(m * n)


MATRICES = {
    # Random (flat-spectrum) base plus a strong rank-4 update: new directions dominate.
    "random+lowrank": lambda: (
        (w0 := torch.randn(96, 160, generator=torch.Generator().manual_seed(0)) / 13),
        w0 + _low_rank(96, 160, 4, 8.0, 1),
    ),
    # Trained-like base, tall, plus a rank-3 update.
    "decaying+lowrank": lambda: ((w0 := _decaying(200, 120, 2)), w0 + _low_rank(200, 120, 3, 4.0, 3)),
    # A small full-rank update leaves the top directions where they were: no intruders.
    "decaying+small": lambda: (
        (w0 := _decaying(120, 200, 4)),
        w0 + 1e-3 * torch.randn(120, 200, generator=torch.Generator().manual_seed(5)),
    ),
}


@pytest.mark.parametrize("case", list(MATRICES))
@pytest.mark.parametrize("svd", ["full", "auto"])
def test_counts_match_reference_on_matrices(case: str, svd: str) -> None:
    w0, wt = MATRICES[case]()
    ref = reference_max_cos(w0.numpy(), wt.numpy())
    for eps in (0.3, 0.5, 0.7):
        row = analyze_matrix(w0, wt, config=IntruderConfig(eps=eps, svd=svd), backend=CPU)
        assert row.count == sum(m < eps for m in ref)
    np.testing.assert_allclose(row.max_cos, ref, atol=1e-4 if svd == "full" else 2e-2)
    if case == "decaying+small":
        assert row.count == 0
    else:
        assert row.count >= 3


def test_energy_share_definition() -> None:
    w0, wt = MATRICES["decaying+lowrank"]()
    row = analyze_matrix(w0, wt, config=IntruderConfig(svd="full"), backend=CPU)
    s = np.linalg.svd(wt.numpy(), compute_uv=False)
    ref = reference_max_cos(w0.numpy(), wt.numpy())
    expected = sum(s[i] ** 2 for i in range(10) if ref[i] < 0.5) / (s**2).sum()
    assert row.energy_share == pytest.approx(expected, rel=1e-5)
    assert row.spectrum_tuned[:5] == pytest.approx(s[:5].tolist(), rel=1e-5)
    assert row.count_at(0.99) >= row.count_at(0.5) >= row.count_at(0.1)


def test_randomized_path_is_checked_and_agrees() -> None:
    """A large-enough matrix takes the randomized path, within its stated accuracy."""
    w0 = _decaying(160, 240, 6)
    wt = w0 + _low_rank(160, 240, 2, 100.0, 7)
    full = inspect_matrix(w0, wt, config=IntruderConfig(svd="full", n_spectrum=10), backend=CPU)
    auto = inspect_matrix(w0, wt, config=IntruderConfig(svd="auto", n_spectrum=10), backend=CPU)
    assert auto.top.method == "lowrank" and auto.top.angle_bound <= 1e-2
    assert auto.row.count == full.row.count == reference_count(w0.numpy(), wt.numpy())
    np.testing.assert_allclose(auto.row.max_cos, full.row.max_cos, atol=math.sqrt(2) * auto.top.angle_bound + 1e-5)
    # A flat spectrum fails the check and falls back to the dense SVD.
    flat = torch.randn(160, 240, generator=torch.Generator().manual_seed(8))
    assert inspect_matrix(flat, flat, config=IntruderConfig(n_spectrum=10), backend=CPU).top.method == "full"


# -- a tiny real model with a peft LoRA adapter ------------------------------------------------------
@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A peft LoRA adapter on tiny_model("llama", seed=0) with a random, nonzero B."""
    return save_tiny_lora(tmp_path_factory.mktemp("lora"))


def _merged(model_type: str, adapter: Path) -> dict[str, torch.Tensor]:
    from peft import PeftModel

    base, _ = tiny_model(model_type, seed=0)
    merged = PeftModel.from_pretrained(base, adapter).merge_and_unload()
    return {n: p.detach().clone() for n, p in merged.named_parameters()}


def test_tiny_llama_lora_matches_reference(lora_dir: Path, tmp_path: Path) -> None:
    base, _ = tiny_model("llama", seed=0)
    report = intruder_analysis(base, lora_dir, cache_dir=tmp_path, backend=CPU)
    merged = _merged("llama", lora_dir)
    assert len(report.matrices) == 16 and report.tuned_kind == "lora"
    for m in report.matrices:
        w0 = base.get_parameter(m.name).detach().numpy()
        assert m.count == reference_count(w0, merged[m.name].numpy()), m.name
    assert 0 < report.total < 16 * 10
    assert {r["kind"] for r in report.to_rows()} == {"attn_in", "mlp_in", "mlp_out"}
    assert report.counts_vs_eps()[0.5] == report.total


def test_gpt2_conv1d_is_compared_in_out_in_layout(tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model

    model, _ = tiny_model("gpt2", seed=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2)
        config = LoraConfig(r=2, lora_alpha=4, init_lora_weights=False, target_modules=["c_fc"])
        get_peft_model(model, config).save_pretrained(tmp_path / "a")
    base, _ = tiny_model("gpt2", seed=0)
    report = intruder_analysis(base, tmp_path / "a", cache=False, backend=CPU)
    merged = _merged("gpt2", tmp_path / "a")
    for m in report.matrices:
        assert m.shape == (128, 32)  # [out, in], although Conv1D stores [in, out]
        w0 = base.get_parameter(m.name).detach().numpy().T
        assert m.count == reference_count(w0, merged[m.name].numpy().T)


def test_base_bases_are_cached(lora_dir: Path, tmp_path: Path) -> None:
    base, _ = tiny_model("llama", seed=0)
    first = intruder_analysis(base, lora_dir, cache_dir=tmp_path, backend=CPU)
    second = intruder_analysis(base, lora_dir, cache_dir=tmp_path, backend=CPU)
    assert first.info["cache_misses"] == 16 and second.info["cache_hits"] == 16
    assert second.info["cache_misses"] == 0 and len(list(tmp_path.glob("*.safetensors"))) == 16
    assert [m.max_cos for m in first.matrices] == [m.max_cos for m in second.matrices]
    other, _ = tiny_model("llama", seed=3)  # another base: other keys, no false hits
    third = intruder_analysis(other, load_tuned(other, lora_dir), cache_dir=tmp_path, backend=CPU)
    assert third.info["cache_hits"] == 0


def test_grid_rows_and_figures(lora_dir: Path, tmp_path: Path) -> None:
    base, _ = tiny_model("llama", seed=0)
    report = intruder_analysis(base, lora_dir, cache=False, backend=CPU)
    layers, columns, counts = report.grid(by="kind")
    assert layers == [0, 1, 2, 3] and columns == ["attn_in", "mlp_in", "mlp_out"]
    assert sum(c or 0 for row in counts for c in row) == report.total
    row = report.to_rows()[0]
    assert {"name", "layer", "kind", "module", "intruders", "energy_share", "n@0.5"} <= set(row)
    assert row["module"] == "self_attn.q_proj"
    for png in (
        intruder_heatmap(report, tmp_path / "heat.png"),
        spectrum_plot(report, report.matrices[0].name, tmp_path / "spec.png"),
    ):
        assert png.read_bytes()[:4] == b"\x89PNG"


def test_nothing_to_compare_is_a_clear_error(tmp_path: Path) -> None:
    from editkit.editors.result import EditResult, save_edit
    from editkit.localize.location import Location, Site

    base, _ = tiny_model("llama", seed=0)
    name = "model.norm.weight"
    save_edit(EditResult("x", {name: torch.ones(32)}, Location((Site(name),)), {}), tmp_path / "delta.safetensors")
    with pytest.raises(InputError, match="none of the compared matrices"):
        intruder_analysis(base, tmp_path, cache=False, backend=CPU)


# -- mitigation -------------------------------------------------------------------------------------
def test_mitigate_matrix_formula() -> None:
    w0, wt = MATRICES["decaying+lowrank"]()
    ins = inspect_matrix(w0, wt, config=IntruderConfig(svd="full"), backend=CPU)
    assert ins.row.count >= 3
    u, s, vh = np.linalg.svd(wt.double().numpy(), full_matrices=False)
    idx = list(ins.row.intruders)
    expected = wt.double().numpy() - 0.25 * (u[:, idx] * s[idx]) @ vh[idx]
    np.testing.assert_allclose(mitigate_matrix(wt, ins.top, idx, 0.75).numpy(), expected, atol=1e-4)
    removed = mitigate_matrix(wt, ins.top, idx, 0.0)
    assert reference_count(w0.numpy(), removed.numpy()) < ins.row.count


def test_mitigate_model_and_save(lora_dir: Path, tmp_path: Path) -> None:
    base, _ = tiny_model("llama", seed=0)
    original = {n: p.detach().clone() for n, p in base.named_parameters()}
    tuned = load_tuned(base, lora_dir)
    result = mitigate_intruders(base, tuned, lam=0.75, cache_dir=tmp_path / "cache", backend=CPU)
    summary = result.summary()
    assert summary["intruders_before"] == intruder_analysis(base, tuned, cache=False, backend=CPU).total > 0
    assert summary["energy_after"] < summary["energy_before"]
    assert summary["intruders_after"] <= summary["intruders_before"]
    removed = mitigate_intruders(base, tuned, lam=0.0, cache_dir=tmp_path / "cache", backend=CPU).summary()
    assert removed["intruders_after"] < removed["intruders_before"]

    mitigated = result.weights()
    # As an editkit delta file (the full set of deltas), read back by load_tuned.
    back = load_tuned(base, save_mitigated_deltas(result, tmp_path / "delta.safetensors"))
    assert set(back) == set(mitigated)
    for name in back:
        torch.testing.assert_close(back[name], mitigated[name], atol=0, rtol=0)
    # As a re-factored LoRA adapter (rank r + #intruders), read back by us and by peft.
    adapter_dir = save_mitigated_adapter(result, tmp_path / "adapter")
    refactored = LoraAdapter(base, adapter_dir)
    merged = _merged("llama", adapter_dir)
    for name, scaled in result.scaled.items():
        assert refactored.layers[name].rank == 2 + len(scaled)
        torch.testing.assert_close(refactored[name], mitigated[name], atol=1e-5, rtol=0)
        torch.testing.assert_close(merged[name] - original[name], mitigated[name], atol=1e-5, rtol=0)
    # As a model folder; the base model is unchanged afterwards.
    from transformers import AutoModelForCausalLM

    save_mitigated_model(base, result, tmp_path / "model")
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    for name, p in saved.named_parameters():
        want = original[name] + mitigated[name] if name in mitigated else original[name]
        torch.testing.assert_close(p.detach(), want, atol=1e-6, rtol=0)
    for name, p in base.named_parameters():
        assert torch.equal(p, original[name])


def test_mitigation_perplexity_hook(lora_dir: Path) -> None:
    base, _ = tiny_model("llama", seed=0)
    result = mitigate_intruders(base, lora_dir, cache=False, recheck=False, backend=CPU)
    ppl = mitigation_perplexity(base, tiny_tokenizer(), result, ["The capital of France is Paris."] * 2)
    assert set(ppl) == {"base", "tuned", "mitigated"} and all(math.isfinite(v) for v in ppl.values())
    assert ppl["tuned"] != ppl["base"]
    with pytest.raises(InputError, match="lam"):
        mitigate_intruders(base, lora_dir, lam=1.5, cache=False, backend=CPU)
