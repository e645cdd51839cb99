"""Benchmark: a whole-model intruder scan, editkit (cold and warm cache) against the reference procedure.

The reference is the published procedure written out directly (Shuttleworth et
al.): for every compared matrix, a dense fp32 SVD of the base ``W0`` and of the
tuned ``Wt = W0 + dW``, then ``m_i = max_j |<Ut_i, U0_j>|`` for the top ``k``
tuned vectors and a count of ``m_i < eps``; no cache. It runs with NumPy or with
torch on the device of the chosen array backend. editkit's scan
(:func:`audit.intruders.intruder_analysis`) runs twice on a fresh, empty cache
folder: cold (every base basis computed and stored) and warm (every basis
read back). All three run in one process on the same weights, and the
per-matrix counts must be equal (the script exits 1 if they are not). The table
also says how editkit's warm scan got each matrix's top vectors: certified from
the base basis (low-rank updates), checked randomized SVD, or dense SVD (the
fallback when neither settles the count).

Tuned weights: ``--tuned PATH`` (a full fine-tune folder, a peft LoRA adapter or
an editkit edit), or ``--synthetic-lora RANK`` (the default, rank 8): a random
LoRA-like update ``dW = B @ A`` on every attention and MLP matrix, made in
memory, scaled so that ``||dW||_F = --scale * ||W0||_F``.

Usage (from the repository root):
    .venv/bin/python bench/intruders_bench.py                               # default model, synthetic rank 8
    .venv/bin/python bench/intruders_bench.py --synthetic-lora 1 --backend torch-cuda
    .venv/bin/python bench/intruders_bench.py --model path/to/model --tuned runs/lora
Results: bench/results/intruders_<device>.json (device: cpu or cuda) and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from audit.intruders import IntruderConfig, IntruderReport, intruder_analysis
from audit.intruders.analysis import Target, layout, targets
from audit.tuned import TunedWeights, load_tuned
from editkit.models import DEFAULT_MODEL, load_model
from gpu import Backend, get_backend

ROOT = Path(__file__).resolve().parents[1]


class SyntheticLora(TunedWeights):
    """A random rank-``rank`` update ``B @ A`` on every compared matrix, made in memory.

    ``A [r, in]`` and ``B [out, r]`` are Gaussian (seeded per matrix); the product
    is scaled to ``||dW||_F = scale * ||W0||_F``. Only the factors are kept; the
    delta is formed when asked for.
    """

    kind = "synthetic-lora"

    def __init__(self, base: torch.nn.Module, chosen: list[Target], rank: int, scale: float, seed: int = 0) -> None:
        super().__init__(base, None)
        self.rank = rank
        self._targets = {t.name: t for t in chosen}
        self._factors: dict[str, tuple[torch.Tensor, torch.Tensor, float]] = {}
        for i, target in enumerate(chosen):
            w0 = layout(self.base_weight(target.name), target)  # [out, in]
            gen = torch.Generator().manual_seed(seed * 100_003 + i)
            a = torch.randn(rank, w0.shape[1], generator=gen) / math.sqrt(w0.shape[1])
            b = torch.randn(w0.shape[0], rank, generator=gen)
            norm = float(torch.linalg.matrix_norm(b @ a))
            self._factors[target.name] = (a, b, scale * float(torch.linalg.matrix_norm(w0.cpu())) / max(norm, 1e-30))

    def _names(self) -> tuple[str, ...]:
        return tuple(self._targets)

    def _stored(self, name: str) -> tuple[torch.Tensor, bool]:
        a, b, c = self._factors[name]
        return layout((b @ a) * c, self._targets[name]), True  # storage layout of the parameter


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def reference_scan(
    base: torch.nn.Module, tuned: TunedWeights, chosen: list[Target], *, k: int, eps: float, engine: str, device: str
) -> tuple[dict[str, int], dict[str, list[float]], float]:
    """The published procedure, matrix by matrix: dense fp32 SVDs of ``W0`` and ``Wt``, no cache.

    Returns ``(count per matrix, m_i per matrix, seconds)``.
    """
    import numpy as np

    counts: dict[str, int] = {}
    scores: dict[str, list[float]] = {}
    _sync(device)
    start = time.perf_counter()
    for target in chosen:
        w0 = layout(tuned.base_weight(target.name), target)  # [out, in] fp32
        wt = w0 + layout(tuned.delta(target.name), target)
        if engine == "numpy":
            u0 = np.linalg.svd(w0.cpu().numpy(), full_matrices=False)[0]
            ut = np.linalg.svd(wt.cpu().numpy(), full_matrices=False)[0]
            m = np.abs(u0.T @ ut[:, :k]).max(axis=0).tolist()
        else:
            u0 = torch.linalg.svd(w0.to(device), full_matrices=False)[0]
            ut = torch.linalg.svd(wt.to(device), full_matrices=False)[0]
            m = (u0.T @ ut[:, :k]).abs().max(dim=0).values.tolist()
        scores[target.name] = [float(x) for x in m]
        counts[target.name] = sum(x < eps for x in m)
    _sync(device)
    return counts, scores, time.perf_counter() - start


def timed_scan(
    base: torch.nn.Module, tuned: TunedWeights, cfg: IntruderConfig, backend: Backend, cache_dir: Path
) -> tuple[IntruderReport, float]:
    _sync(backend.device)
    start = time.perf_counter()
    report = intruder_analysis(base, tuned, config=cfg, backend=backend, cache_dir=cache_dir)
    _sync(backend.device)
    return report, time.perf_counter() - start


def warm_up(backend: Backend, device: str) -> None:
    """One small SVD on each engine, so CUDA/cuSOLVER start-up is not timed."""
    w = torch.randn(64, 48)
    backend.svd(backend.asarray(w, dtype="float32"))
    torch.linalg.svd(w.to(device), full_matrices=False)
    _sync(device)


def bench(args: argparse.Namespace) -> dict[str, Any]:
    backend = get_backend(args.backend)
    ref_device = backend.device if backend.is_gpu else "cpu"
    if args.reference == "numpy":
        ref_device = "cpu"
    start = time.perf_counter()
    model, _ = load_model(args.model, device=args.device)
    load_seconds = time.perf_counter() - start
    cfg = IntruderConfig(k=args.k, eps=args.eps, svd=args.svd)
    if args.tuned is not None:
        tuned: TunedWeights = load_tuned(model, args.tuned)
        what = str(args.tuned)
    else:
        names = [n for n, _ in model.named_parameters()]
        tuned = SyntheticLora(model, targets(model, names, cfg.kinds), args.synthetic_lora, args.scale, args.seed)
        what = f"synthetic LoRA r={args.synthetic_lora}, ||dW||/||W0||={args.scale:g}"
    chosen = targets(model, list(tuned), cfg.kinds)
    warm_up(backend, ref_device)
    with tempfile.TemporaryDirectory(prefix="intruders-bench-") as cache:
        cold, cold_s = timed_scan(model, tuned, cfg, backend, Path(cache))
        warm, warm_s = timed_scan(model, tuned, cfg, backend, Path(cache))
        cache_mib = sum(f.stat().st_size for f in Path(cache).iterdir()) / 2**20
    ref_counts, ref_scores, ref_s = reference_scan(
        model, tuned, chosen, k=cfg.k, eps=cfg.eps, engine=args.reference, device=ref_device
    )
    mismatches = [
        {"name": m.name, "editkit": m.count, "reference": ref_counts.get(m.name)}
        for report in (cold, warm) for m in report.matrices if m.count != ref_counts.get(m.name)
    ]
    diff = max(
        (abs(a - b) for m in cold.matrices for a, b in zip(m.max_cos, ref_scores[m.name], strict=True)),
        default=0.0,
    )
    shapes: dict[str, int] = {}
    for m in cold.matrices:
        key = f"{m.shape[0]}x{m.shape[1]}"
        shapes[key] = shapes.get(key, 0) + 1
    return {
        "model": args.model,
        "tuned": what,
        "backend": backend.name,
        "backend_device": backend.device,
        "reference": f"{args.reference} ({ref_device})",
        "k": cfg.k,
        "eps": cfg.eps,
        "svd": cfg.svd,
        "matrices": len(cold.matrices),
        "shapes": shapes,
        "intruders": cold.total,
        "reference_intruders": sum(ref_counts.values()),
        "counts_equal": not mismatches and sum(ref_counts.values()) == cold.total == warm.total,
        "mismatches": mismatches[:20],
        "max_abs_diff_m": diff,
        "seconds": {"load_model": load_seconds, "reference": ref_s, "cold": cold_s, "warm": warm_s},
        "speedup": {"cold": ref_s / cold_s, "warm": ref_s / warm_s},
        "cold_info": cold.info,
        "warm_info": warm.info,
        "cache_mib": cache_mib,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL, help="zoo alias or local model folder (default: %(default)s)")
    source = ap.add_mutually_exclusive_group()
    source.add_argument("--tuned", type=Path, default=None, help="tuned weights: fine-tune folder, LoRA adapter or edit")
    source.add_argument("--synthetic-lora", type=int, default=8, metavar="RANK", help="random LoRA-like update of this rank (default)")
    ap.add_argument("--scale", type=float, default=0.3, help="synthetic update size ||dW||_F / ||W0||_F (default 0.3)")
    ap.add_argument("--backend", default="auto", help="array backend for editkit's scan (auto, cupy, torch-cuda, torch-cpu)")
    ap.add_argument("--reference", choices=["torch", "numpy"], default="torch",
                    help="reference SVDs: torch on the backend's device (default) or NumPy on the CPU")
    ap.add_argument("--svd", default="auto", help="editkit's SVD mode (auto, full, lowrank)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--eps", type=float, default=0.5)
    ap.add_argument("--device", default="cpu", help="where the model is loaded")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="result JSON (default bench/results/intruders_<device>.json)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    row = bench(args)
    device = "cuda" if row["backend_device"].startswith("cuda") else "cpu"
    meta = {
        "machine": platform.platform(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
        "torch": torch.__version__,
    }
    out = args.out or ROOT / "bench" / "results" / f"intruders_{device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": [row]}, indent=2) + "\n")
    s, x, info = row["seconds"], row["speedup"], row["warm_info"]
    methods = f"{info.get('svd_certified', 0)} / {info.get('svd_lowrank', 0)} / {info.get('svd_full', 0)}"
    print("| model | tuned | backend | matrices | intruders | reference s | cold s | warm s | speed-up cold "
          "| speed-up warm | counts equal | certified / randomized / dense |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {row['model']} | {row['tuned']} | {row['backend']} | {row['matrices']} | {row['intruders']} | "
          f"{s['reference']:.2f} | {s['cold']:.2f} | {s['warm']:.2f} | {x['cold']:.1f}x | {x['warm']:.1f}x | "
          f"{'yes' if row['counts_equal'] else 'NO'} | {methods} |")
    print(f"\nwritten to {out}", file=sys.stderr)
    if not row["counts_equal"]:
        print(f"count mismatches: {row['mismatches']}", file=sys.stderr)
        raise SystemExit(1)
    return row


if __name__ == "__main__":
    main()
