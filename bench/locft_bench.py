"""Benchmark: seconds per edit and peak memory, LocFT-BF vs uncached vs the reference cost vs FT-DF.

Each (method, size) runs in a fresh subprocess so its peak memory (max RSS on
CPU, max allocated on CUDA) is its own. The same requests, location and
seed are used for every method, and each run is scored by editkit's metrics
(teacher-forced reliability / generalization / locality against the unedited
model), so the speed-up is shown at equal quality.

Usage (from the repository root):
    .venv/bin/python bench/locft_bench.py                      # 10, 100, 1000 edits on CPU
    .venv/bin/python bench/locft_bench.py --sizes 10 100 --device cuda
Results: bench/results/locft_<device>.json (and a Markdown table on stdout).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

METHODS = {
    "locft-bf": ("locft-bf", ["cache_prefix=true"]),
    "locft-bf-uncached": ("locft-bf", ["cache_prefix=false"]),
    # the published algorithm's cost: every layer run, logits at every position
    "locft-bf-reference": ("locft-bf", ["cache_prefix=false", "target_logits_only=false"]),
    "ft-df": ("ft-df", []),
}


def bench_requests(n: int) -> list:
    """The first ``n`` requests of data/counterfact.jsonl, topped up with synthetic ones.

    Synthetic requests reuse the real templates with invented subject names
    (the model knows nothing about them), so speed is measured at any size.
    """
    from editkit.requests import EditRequest, load_requests

    reqs = load_requests(ROOT / "data" / "counterfact.jsonl")
    out = list(reqs[:n])
    k = 0
    while len(out) < n:
        base = reqs[k % len(reqs)]
        name = f"Zarn{k:04d}ia"
        prompt = base.prompt.replace(base.subject, name) if base.subject else f"{name}: {base.prompt}"
        out.append(EditRequest(prompt=prompt, target_new=base.target_new, subject=name, id=f"synthetic-{k}"))
        k += 1
    return out


def run_one(method: str, size: int, layer: float, device: str, overrides: list[str], eval_limit: int) -> dict:
    import torch

    from editkit.editors import applied, make_editor
    from editkit.evaluate import EvalConfig, evaluate
    from editkit.localize import fixed
    from editkit.models import load_model

    model, tok = load_model("smollm2-135m-instruct", device=device)
    reqs = bench_requests(size)
    loc = fixed(model, layer)
    cfg = EvalConfig(generation=False, fluency=False, batch_size=64)
    probe = reqs[:eval_limit]  # metrics on the first edits only: scoring is slower than editing on a CPU
    before = evaluate(model, tok, probe, config=cfg)
    name, extra = METHODS[method]
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    result = make_editor(name, overrides=[*extra, *overrides]).compute(model, tok, reqs, loc)
    seconds = time.perf_counter() - t0
    with applied(model, result):
        after = evaluate(model, tok, probe, config=cfg, baseline=before).aggregate
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if device.startswith("cuda")
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {
        "method": method,
        "size": size,
        "seconds": seconds,
        "seconds_per_edit": seconds / size,
        "peak_memory_mib": peak,
        "memory_kind": "cuda max allocated" if device.startswith("cuda") else "process max RSS",
        "timings": result.timings,
        "schedule": result.info.get("schedule"),
        "metrics": {k: after[k] for k in ("reliability", "generalization", "locality", "efficacy_score")},
        "metrics_on": len(probe),
    }


def interleaved_timing(size: int, layer: float, device: str, overrides: list[str], rounds: int, epochs: int) -> dict:
    """Seconds per optimizer step of each LocFT-BF variant, in one process, the variants taking turns.

    Run times of separate processes on a shared machine follow its load; here
    every round runs each variant once (``epochs`` epochs, the same requests),
    so load changes hit all of them alike, and the median over rounds is
    compared (the order rotates, so the first run's warm-up is no one
    variant's). The deltas of the variants are the same (a unit test checks
    it), so their metrics are the subprocess runs'.
    """
    import statistics

    from editkit.editors import make_editor
    from editkit.localize import fixed
    from editkit.models import load_model

    model, tok = load_model("smollm2-135m-instruct", device=device)
    reqs = bench_requests(size)
    loc = fixed(model, layer)
    variants = [m for m in METHODS if m.startswith("locft-bf")]
    per_step: dict[str, list[float]] = {m: [] for m in variants}
    steps = 0
    for r in range(rounds):
        for method in variants[r % len(variants):] + variants[: r % len(variants)]:  # each variant goes first once
            name, extra = METHODS[method]
            opts = [*extra, *overrides, f"epochs={epochs}", "min_steps=1"]
            result = make_editor(name, overrides=opts).compute(model, tok, reqs, loc)
            steps = int(result.info["schedule"]["optimizer_steps"])
            per_step[method].append(result.timings["train"] / steps)
    med = {m: statistics.median(v) for m, v in per_step.items()}
    return {
        "size": size,
        "layer": layer,
        "rounds": rounds,
        "epochs": epochs,
        "optimizer_steps": steps,
        "seconds_per_step": per_step,
        "median_seconds_per_step": med,
        "speedup_over": {m: med[m] / med["locft-bf"] for m in variants if m != "locft-bf"},
    }


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--ftdf-max", type=int, default=100, help="largest size FT-DF runs at (it is slow by design)")
    ap.add_argument("--layer", type=float, default=0.14, help="relative depth (LocFT-BF's default: 0.14, layer 4 of 30)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="editor option key=value")
    ap.add_argument("--size-set", dest="size_overrides", action="append", default=[], metavar="SIZE:KEY=VALUE",
                    help="an editor option for one size only (e.g. 1000:epochs=2 to time a shortened schedule)")
    ap.add_argument("--eval-limit", type=int, default=200, help="score metrics on the first N edited requests")
    ap.add_argument("--timing-rounds", type=int, default=0,
                    help="also time the LocFT-BF variants in one process, taking turns, this many rounds per size")
    ap.add_argument("--timing-epochs", type=int, default=1, help="epochs per timed run (--timing-rounds)")
    ap.add_argument("--skip-runs", action="store_true", help="only the interleaved timing (no per-method processes)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--timing-single", nargs=1, metavar="SIZE", help=argparse.SUPPRESS)
    ap.add_argument("--single", nargs=2, metavar=("METHOD", "SIZE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.timing_single:
        size = int(args.timing_single[0])
        timing = interleaved_timing(size, args.layer, args.device, [*args.overrides], args.timing_rounds,
                                    args.timing_epochs)
        print(json.dumps(timing))
        return
    if args.single:
        result = run_one(args.single[0], int(args.single[1]), args.layer, args.device, args.overrides, args.eval_limit)
        print(json.dumps(result))
        return
    per_size: dict[int, list[str]] = {}
    for item in args.size_overrides:
        size_text, sep, option = item.partition(":")
        if not sep or not size_text.isdigit() or "=" not in option:
            ap.error(f"--size-set {item!r}: expected SIZE:KEY=VALUE, e.g. 1000:epochs=2")
        per_size.setdefault(int(size_text), []).append(option)
    if unknown := sorted(set(per_size) - set(args.sizes)):
        ap.error(f"--size-set for size {unknown[0]}, which is not one of --sizes {args.sizes}")
    out = args.out or ROOT / "bench" / "results" / f"locft_{args.device.split(':')[0]}.json"
    meta = {"machine": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(), "device": args.device,
            "layer": args.layer, "overrides": args.overrides,
            "size_overrides": {str(k): v for k, v in per_size.items()}, "threads": torch_threads()}
    rows: list[dict] = []
    timing: list[dict] = []

    def write() -> None:  # after every run, atomically: a long benchmark keeps what it measured
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps({"meta": meta, "rows": rows, **({"timing": timing} if timing else {})}, indent=2))
        tmp.replace(out)

    for size in args.sizes if args.timing_rounds else []:
        cmd = [sys.executable, __file__, "--timing-single", str(size), "--layer", str(args.layer), "--device",
               args.device, "--timing-rounds", str(args.timing_rounds), "--timing-epochs", str(args.timing_epochs)]
        for o in args.overrides:
            cmd += ["--set", o]
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        if proc.returncode != 0:
            timing.append({"size": size, "error": proc.stderr.strip().splitlines()[-1:]})
        else:
            timing.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(timing[-1]), file=sys.stderr)
        write()
    for size in [] if args.skip_runs else args.sizes:
        for method in args.methods:
            if method == "ft-df" and size > args.ftdf_max:
                rows.append({"method": method, "size": size, "skipped": f"FT-DF above --ftdf-max {args.ftdf_max}"})
                write()
                continue
            cmd = [sys.executable, __file__, "--single", method, str(size), "--layer", str(args.layer),
                   "--device", args.device, "--eval-limit", str(args.eval_limit)]
            overrides = [*args.overrides, *per_size.get(size, [])]
            for o in overrides:
                cmd += ["--set", o]
            proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
            if proc.returncode != 0:
                rows.append({"method": method, "size": size, "error": proc.stderr.strip().splitlines()[-1:],
                             "overrides": overrides})
            else:
                rows.append({**json.loads(proc.stdout.strip().splitlines()[-1]), "overrides": overrides})
            print(json.dumps(rows[-1]), file=sys.stderr)
            write()
    print("| edits | method | s/edit | peak MiB | reliability | generalization | locality |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        if "metrics" in r:
            m = r["metrics"]
            print(f"| {r['size']} | {r['method']} | {r['seconds_per_edit']:.3f} | {r['peak_memory_mib']:.0f} | "
                  f"{m['reliability']:.3f} | {m['generalization'] or 0:.3f} | {m['locality'] or 0:.3f} |")
        else:
            print(f"| {r['size']} | {r['method']} | {r.get('skipped') or r.get('error')} | | | | |")


if __name__ == "__main__":
    main()
