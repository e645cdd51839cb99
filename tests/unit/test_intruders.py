"""Intruder dimensions agree with an independent implementation of the published procedure; mitigation."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import tiny_model, tiny_tokenizer

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
    """A full-rank update of a large-enough matrix takes the randomized path, within its stated accuracy."""
    w0 = _decaying(160, 240, 6)
    noise = 1e-4 * torch.randn(160, 240, generator=torch.Generator().manual_seed(9))
    wt = w0 + _low_rank(160, 240, 2, 100.0, 7) + noise  # not low rank: no certified path
    full = inspect_matrix(w0, wt, config=IntruderConfig(svd="full", n_spectrum=10), backend=CPU)
    auto = inspect_matrix(w0, wt, config=IntruderConfig(svd="auto", n_spectrum=10), backend=CPU)
    assert auto.top.method == "lowrank" and auto.top.angle_bound <= 1e-2
    assert auto.row.count == full.row.count == reference_count(w0.numpy(), wt.numpy())
    np.testing.assert_allclose(auto.row.max_cos, full.row.max_cos, atol=math.sqrt(2) * auto.top.angle_bound + 1e-5)
    # A flat spectrum fails the check and falls back to the dense SVD.
    flat = torch.randn(160, 240, generator=torch.Generator().manual_seed(8))
    flat_t = flat + 1e-3 * torch.randn(160, 240, generator=torch.Generator().manual_seed(10))
    assert inspect_matrix(flat, flat_t, config=IntruderConfig(n_spectrum=10), backend=CPU).top.method == "full"


# -- the certified path: low-rank updates solved in the base basis ----------------------------------
def _base(m: int, n: int, seed: int, kind: str) -> torch.Tensor:
    if kind == "random":  # flat, Marchenko-Pastur-like spectrum
        return torch.randn(m, n, generator=torch.Generator().manual_seed(seed)) / math.sqrt(n)
    return _decaying(m, n, seed, power=0.3)


def _lora(w0: torch.Tensor, rank: int, scale: float, seed: int) -> torch.Tensor:
    """A rank-``rank`` update with ``||dW||_F = scale * ||W0||_F`` (as the benchmark makes them)."""
    m, n = w0.shape
    g = torch.Generator().manual_seed(seed)
    dw = torch.randn(m, rank, generator=g) @ torch.randn(rank, n, generator=g)
    return dw * (scale * float(torch.linalg.matrix_norm(w0)) / float(torch.linalg.matrix_norm(dw)))


CERTIFIED_CASES = [
    # (m, n, base, rank, scale): square, wide, tall (basis extended by the update's range), flat or decaying
    (128, 128, "random", 4, 0.3),
    (96, 288, "decaying", 8, 0.3),
    (288, 96, "decaying", 8, 0.3),
    (288, 96, "random", 2, 0.5),
    (240, 240, "decaying", 1, 0.1),
    (240, 240, "decaying", 16, 0.02),
    (256, 320, "random", 8, 0.05),
]


@pytest.mark.parametrize(("m", "n", "base", "rank", "scale"), CERTIFIED_CASES)
def test_certified_path_matches_reference(m: int, n: int, base: str, rank: int, scale: float) -> None:
    """Identical counts to the published procedure at every threshold the certificate settles."""
    w0 = _base(m, n, m + n + rank, base)
    wt = w0 + _lora(w0, rank, scale, seed=rank)
    ref = reference_max_cos(w0.numpy(), wt.numpy())
    ins = inspect_matrix(w0, wt, config=IntruderConfig(), backend=CPU)
    assert ins.row.count == sum(x < 0.5 for x in ref)
    if ins.top.method == "certified":  # proven: within the bound of the exact (fp64) scores
        u0 = torch.linalg.svd(w0, full_matrices=False)[0].double()
        exact = torch.linalg.svd(wt.double(), full_matrices=False)[0][:, :10]
        m_exact = (u0.T @ exact).abs().max(dim=0).values.numpy()
        np.testing.assert_allclose(ins.row.max_cos, m_exact, atol=math.sqrt(2) * ins.top.angle_bound + 1e-5)
    for eps in (0.2, 0.35, 0.65, 0.8):
        row = analyze_matrix(w0, wt, config=IntruderConfig(eps=eps), backend=CPU)
        assert row.count == sum(x < eps for x in ref), eps


def test_certified_path_is_taken_and_cheap_on_lora_updates() -> None:
    """Every case above is settled without the dense SVD at the published eps."""
    methods = []
    for m, n, base, rank, scale in CERTIFIED_CASES:
        w0 = _base(m, n, m + n + rank, base)
        methods.append(inspect_matrix(w0, w0 + _lora(w0, rank, scale, seed=rank), backend=CPU).top.method)
    assert methods == ["certified"] * len(CERTIFIED_CASES)


def torch_reference_max_cos(w0: torch.Tensor, wt: torch.Tensor, k: int = 10) -> list[float]:
    """The benchmark's reference: the published procedure with torch's dense fp32 SVD."""
    u0 = torch.linalg.svd(w0, full_matrices=False)[0]
    ut = torch.linalg.svd(wt, full_matrices=False)[0]
    return [float(x) for x in (u0.T @ ut[:, :k]).abs().max(dim=0).values]


@pytest.mark.parametrize("offset", [0.0, 1e-7, -1e-7, 2e-5, -2e-5])
def test_certificate_falls_back_at_the_threshold(offset: float) -> None:
    """A score within its error bound of eps goes to the dense SVD, which then decides like the reference.

    At a distance of 1e-7 two dense SVDs (NumPy's and torch's) may disagree; the
    fallback is torch's, the same routine as the benchmark's reference.
    """
    w0 = _base(128, 192, 3, "decaying")
    wt = w0 + _lora(w0, 4, 0.3, seed=4)
    ref = torch_reference_max_cos(w0, wt)
    eps = sorted(ref)[4] + offset  # right at (or a hair off) one of the scores
    ins = inspect_matrix(w0, wt, config=IntruderConfig(eps=eps), backend=CPU)
    assert ins.top.method == "full"
    assert ins.row.count == sum(x < eps for x in ref)
    if abs(offset) > 1e-5:
        assert ins.row.count == reference_count(w0.numpy(), wt.numpy(), eps=eps)
    far = inspect_matrix(w0, wt, config=IntruderConfig(eps=eps + 0.02), backend=CPU)
    assert far.top.method == "certified" and far.row.count == sum(x < eps + 0.02 for x in ref)


def test_certificate_refuses_tied_singular_values() -> None:
    """Two equal top singular values make the vectors ill-defined: the dense SVD decides, as in the reference."""
    m, n = 120, 160
    g = torch.Generator().manual_seed(11)
    u = torch.linalg.qr(torch.randn(m, m, generator=g)).Q
    v = torch.linalg.qr(torch.randn(n, m, generator=g)).Q
    s = torch.linspace(4.0, 0.5, m)
    s[3] = s[2]  # a tie among the top k, untouched by the update below
    w0 = (u * s) @ v.T
    wt = w0 + 3.0 * u[:, 60:61] @ v[:, 60:61].T  # rank 1, along a base direction
    ins = inspect_matrix(w0, wt, backend=CPU)
    assert ins.top.method == "full"
    assert ins.row.count == reference_count(w0.numpy(), wt.numpy())


def test_low_rank_factoring_and_exact_counting() -> None:
    from audit.intruders.certified import factor_low_rank, gram_model

    w0 = _decaying(200, 150, 12)
    dw = _lora(w0, 5, 0.3, seed=13)
    low = factor_low_rank(dw)
    assert low is not None and low.rank == 5 and low.residual < 1e-5 * float(torch.linalg.matrix_norm(dw))
    torch.testing.assert_close(low.b @ low.a, dw, atol=1e-5, rtol=0)
    full = dw + 1e-3 * torch.randn(200, 150, generator=torch.Generator().manual_seed(14))
    assert factor_low_rank(full) is None
    zero = factor_low_rank(torch.zeros(200, 150))
    assert zero is not None and zero.rank == 0
    # The model is Wt Wt^T in the basis, and its eigenvalue count is exact.
    u0, s0, _ = torch.linalg.svd(w0, full_matrices=False)
    model = gram_model(w0, u0, s0, low)
    wt = (w0 + dw).double()
    basis = model.basis.double()
    torch.testing.assert_close(basis @ model.dense() @ basis.T, wt @ wt.T, atol=1e-4, rtol=0)
    eig = torch.linalg.eigvalsh(model.dense())
    for mu in (0.5 * float(eig[-1]), float(eig[-3] + eig[-4]) / 2, 1e-3):
        assert model.count_above(mu) == int((eig > mu).sum())


# -- a tiny real model with a peft LoRA adapter ------------------------------------------------------
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
