"""Benchmark: LocFT-BF peak memory and time against the number of requests (100 ... 100,000).

Each (mode, count) runs in a fresh subprocess, so its peak memory is its own.
Requests are synthetic (made-up subjects in a few templates, generated on the
fly, nothing downloaded) and reach the editor as a re-iterable stream, so the
editor holds them only as token ids. Modes:

- ``ram``:  the cached hidden states in memory (``cache_memory_mb`` far above the need);
- ``disk``: the cached hidden states in a temporary file (``cache_memory_mb=0``), read
  batch by batch;
- ``list``: like ``ram``, but the requests handed over as a Python list of
  ``EditRequest`` (what ``load_requests`` returns), for comparison.

Memory: on CPU, the process's peak resident set size (``resource.getrusage``
``ru_maxrss``, which counts torch's allocations too, unlike ``tracemalloc``),
recorded after the model is loaded and a warm-up edit of 100 requests (one batch) has run
(lazy imports, allocator pools, one batch's activations: ``baseline``) and after the edit (``peak``);
``growth`` is the difference, what the edit of N requests needed beyond that.
On CUDA also ``torch.cuda.max_memory_allocated``.

Usage (from the repository root):
    .venv/bin/python bench/locft_scale_bench.py                        # tiny llama, 100/1000/10000, CPU
    .venv/bin/python bench/locft_scale_bench.py --model default --device cuda --counts 1000 10000 100000 \\
        --modes disk --set epochs=1 --set min_steps=1                  # the default model on a GPU
Results: bench/results/locft_scale_<device>.json and .png (peak memory vs request count, log x).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

TEMPLATES = (
    "The favourite food of {} is",
    "{} was born in the city of",
    "The native language of {} is",
    "{} works as a",
    "The football team of {} is",
    "{} is a citizen of",
)
TARGETS = (
    "pizza", "rice", "Paris", "Tokyo", "Lima", "French", "Dutch", "Korean", "doctor", "lawyer", "pilot",
    "Arsenal", "Ajax", "Porto", "Canada", "Chile", "Kenya", "Norway", "soup", "bread", "Cairo", "Oslo",
)
WARMUP = 100  # requests (one batch) edited before measuring: one-off and per-batch costs are in the baseline
SYLLABLES = ("ka", "lo", "mi", "zu", "ren", "tha", "vo", "el", "dri", "sa")

MODES = {
    "ram": ["cache_memory_mb=1000000"],
    "disk": ["cache_memory_mb=0"],
    "list": ["cache_memory_mb=1000000"],
}

#: the tiny config: a Llama small enough for thousands of requests on one CPU thread
TINY = {"hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 4, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 128}


class SyntheticRequests:
    """``n`` requests generated on the fly each time they are iterated (nothing is stored)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[Any]:
        from editkit.requests import EditRequest

        for k in range(self.n):
            digits = [(k // 10**p) % 10 for p in range(5)]
            name = "".join(SYLLABLES[d] for d in digits[:3]).capitalize() + " " + "".join(
                SYLLABLES[d] for d in digits[3:]
            ).capitalize()
            template = TEMPLATES[k % len(TEMPLATES)]
            target = TARGETS[(k * 7 + k // 13) % len(TARGETS)]
            yield EditRequest(template.format(name), target, subject=name, id=f"syn-{k}")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def load(model_name: str, device: str, layer: int | None) -> tuple[Any, Any, Any]:
    """The model, its tokenizer and the location to tune."""
    import torch

    from editkit.localize import fixed

    if model_name == "tiny":
        sys.path.insert(0, str(ROOT / "tests"))
        from tiny_models import VOCAB_SIZE, tiny_tokenizer
        from transformers import AutoConfig, AutoModelForCausalLM

        tok = tiny_tokenizer()
        cfg = AutoConfig.for_model("llama", vocab_size=VOCAB_SIZE, bos_token_id=0, eos_token_id=0, pad_token_id=1, **TINY)
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(cfg).float().eval().to(device)
        return model, tok, fixed(model, 1 if layer is None else layer, "mlp_down")
    from editkit.editors import make_editor
    from editkit.models import DEFAULT_MODEL, load_model

    model, tok = load_model(DEFAULT_MODEL if model_name == "default" else model_name, device=device)
    loc = make_editor("locft-bf").default_location(model) if layer is None else fixed(model, layer, "mlp_down")
    return model, tok, loc


def run_one(mode: str, count: int, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from editkit.editors import make_editor

    torch.set_num_threads(args.threads)
    model, tok, loc = load(args.model, args.device, args.layer)
    requests: Any = SyntheticRequests(count)
    if mode == "list":
        requests = list(requests)
    editor = make_editor("locft-bf", overrides=[*MODES[mode], *args.overrides])
    cuda = args.device.startswith("cuda")
    with tempfile.TemporaryDirectory(dir=args.cache_dir) as folder:  # warm-up: lazy imports, allocator pools
        editor.compute(model, tok, SyntheticRequests(WARMUP), loc, checkpoint_dir=Path(folder) / "ckpt")
    baseline = peak_rss_mib()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory(dir=args.cache_dir) as folder:
        t0 = time.perf_counter()
        result = editor.compute(model, tok, requests, loc, checkpoint_dir=Path(folder) / "ckpt")
        seconds = time.perf_counter() - t0
    peak = peak_rss_mib()
    schedule = result.info["schedule"]
    steps = schedule["optimizer_steps"] + schedule["skipped_batches"]
    return {
        "mode": mode,
        "count": count,
        "storage": (result.info["prefix_cache"] or {}).get("storage"),
        "cache_mib": (result.info["prefix_cache"] or {}).get("mb"),
        "peak_rss_mib": peak,
        "baseline_rss_mib": baseline,
        "growth_mib": peak - baseline,
        "cuda_max_allocated_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "seconds": seconds,
        "timings": result.timings,
        "batches": steps,
        "seconds_per_batch": result.timings["train"] / max(steps, 1),
        "schedule": schedule,
        "final_mean_loss": result.log[-1]["mean_loss"] if result.log else None,
    }


def plot(rows: list[dict[str, Any]], meta: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for mode in dict.fromkeys(r["mode"] for r in rows):
        mine = sorted((r for r in rows if r["mode"] == mode and "peak_rss_mib" in r), key=lambda r: r["count"])
        if not mine:
            continue
        counts = [r["count"] for r in mine]
        label = {"ram": "states in memory", "disk": "states on disk (cache_memory_mb=0)",
                 "list": "states in memory, requests as a list"}.get(mode, mode)
        axes[0].plot(counts, [r["peak_rss_mib"] for r in mine], marker="o", label=label)
        axes[1].plot(counts, [r["growth_mib"] for r in mine], marker="o", label=label)
        if mode == "ram":
            axes[1].plot(counts, [r["cache_mib"] for r in mine], ls=":", color="grey", label="size of the cached states")
    for ax, title in zip(axes, ("peak RSS of the process (MiB)", "peak RSS growth during the edit (MiB)"), strict=True):
        ax.set_xscale("log")
        ax.set_xlabel("requests")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle(f"LocFT-BF memory vs request count ({meta['model_desc']}, {meta['device']})", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--modes", nargs="+", default=["ram", "disk", "list"], choices=list(MODES))
    ap.add_argument("--model", default="tiny", help="tiny (a random llama, see TINY), default (the zoo default), or a model spec")
    ap.add_argument("--layer", type=int, default=None, help="block to tune (tiny: 1; otherwise the editor's default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="editor option key=value")
    ap.add_argument("--cache-dir", default=None, help="where the run's checkpoint and cache file go (default: system temp)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--single", nargs=2, metavar=("MODE", "COUNT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.single:
        print(json.dumps(run_one(args.single[0], int(args.single[1]), args)))
        return
    rows = []
    started = time.perf_counter()
    for count in args.counts:
        for mode in args.modes:
            cmd = [sys.executable, __file__, "--single", mode, str(count), "--model", args.model, "--device", args.device,
                   "--threads", str(args.threads)]
            if args.layer is not None:
                cmd += ["--layer", str(args.layer)]
            if args.cache_dir:
                cmd += ["--cache-dir", args.cache_dir]
            for o in args.overrides:
                cmd += ["--set", o]
            env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": str(args.threads)}
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                rows.append({"mode": mode, "count": count, "error": proc.stderr.strip().splitlines()[-3:]})
            else:
                rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(json.dumps({k: v for k, v in rows[-1].items() if k not in ("schedule", "timings")}), file=sys.stderr)
    device = args.device.split(":")[0]
    out = args.out or ROOT / "bench" / "results" / f"locft_scale_{device}.json"
    from editkit.editors.locft import LocFTConfig

    meta = {
        "machine": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(), "device": args.device,
        "threads": args.threads, "model": args.model, "model_config": TINY if args.model == "tiny" else None,
        "model_desc": (f"tiny llama, hidden {TINY['hidden_size']}, {TINY['num_hidden_layers']} layers"
                       if args.model == "tiny" else args.model),
        "layer": args.layer if args.layer is not None else (1 if args.model == "tiny" else "editor default"),
        "overrides": args.overrides, "modes": {m: MODES[m] for m in args.modes},
        "schedule_note": ("the schedule was shortened with --set (" + ", ".join(args.overrides) + "); peak memory is "
                          "reached in the first epoch (the cache is built once, each batch is freed)")
        if any(o.split("=")[0] in ("epochs", "min_steps", "max_epochs") for o in args.overrides) else "the defaults",
        "defaults": {k: v for k, v in LocFTConfig().to_dict().items() if k in ("batch_size", "epochs", "min_steps", "lr")},
        "requests": "synthetic: made-up two-word subjects in 6 templates, generated on the fly (bench/locft_scale_bench.py)",
        "memory": "peak_rss_mib: ru_maxrss of the run's own process (counts torch allocations, unlike tracemalloc); "
                  "baseline_rss_mib: the same after loading the model and a warm-up edit of 100 requests (one batch); "
                  "growth_mib: the difference (what N requests needed beyond that)",
        "total_seconds": time.perf_counter() - started,
    }
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    plot(rows, meta, out.with_suffix(".png"))
    print("| requests | mode | storage | cached states MiB | peak RSS MiB | growth MiB | seconds | batches | s/batch |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['count']} | {r['mode']} | error: {r['error']} | | | | | | |")
            continue
        print(f"| {r['count']} | {r['mode']} | {r['storage']} | {r['cache_mib']:.1f} | {r['peak_rss_mib']:.0f} | "
              f"{r['growth_mib']:.1f} | {r['seconds']:.1f} | {r['batches']} | {r['seconds_per_batch']:.4f} |")


if __name__ == "__main__":
    main()
