"""Benchmark: MEND single, batched and sequential edits, beside LocFT-BF on the same requests.

Every mode edits requests of ``--facts`` (default: the data/ edit set,
data/counterfact.jsonl) with a trained MEND editor and scores them with
editkit's teacher-forced metrics (reliability, generalization, locality
against the unedited model):

- ``single``: each request edited alone, scored, reverted (the issue's
  headline: reliability / generalization / locality, and the median time to
  compute and apply one edit);
- ``batch-K``: K requests edited at once (one summed update), scored, reverted,
  for each K of ``--batches``;
- ``sequential``: the first ``--sequential`` requests edited one after another,
  each update computed on the already-edited model and kept; at the end every
  one of them is scored (what later edits did to earlier ones);
- ``locft-bf``: the first ``--locft`` requests, each edited alone with LocFT-BF
  at its default location and settings (seconds per edit beside MEND's).

Perplexity on ``--ppl-passages`` reference passages is measured after the
first ``--ppl-edits`` single edits, after each batch, and after the
sequential run.

Usage (from the repository root; needs a trained editor, see README "MEND"):
    .venv/bin/python bench/mend_bench.py --editor runs/mend-editor
Results: bench/results/mend_<device>.json (and a summary on stdout).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics as st
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("reliability", "generalization", "locality")


def _mean(rows: list[dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in rows if r.get(key) is not None]
    return round(st.mean(vals), 4) if vals else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--editor", type=Path, required=True, help="trained MEND editor directory")
    ap.add_argument("--facts", type=Path, default=ROOT / "data" / "counterfact.jsonl")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N requests")
    ap.add_argument("--batches", type=int, nargs="*", default=[10, 100])
    ap.add_argument("--sequential", type=int, default=20, help="requests edited one after another (0: skip)")
    ap.add_argument("--locft", type=int, default=5, help="requests edited alone with LocFT-BF (0: skip)")
    ap.add_argument("--ppl-edits", type=int, default=20)
    ap.add_argument("--ppl-passages", type=int, default=30)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    help="mend editor option key=value (e.g. null_space=false, null_scale=2)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own choice)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    import torch

    from editkit.batching import encode_pairs
    from editkit.datafiles import read_texts, shipped
    from editkit.editors import applied, apply, make_editor, revert
    from editkit.evaluate import EvalConfig, evaluate
    from editkit.models import load_model
    from editkit.requests import load_requests

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, tok = load_model(device=args.device)
    reqs = load_requests(args.facts, limit=args.limit)
    ref = read_texts(shipped("reference_text.jsonl"))[: args.ppl_passages]
    cfg = EvalConfig(generation=False, fluency=False, batch_size=64)
    ppl0 = evaluate(model, tok, reqs[:1], config=cfg, reference_texts=ref).aggregate["perplexity"]
    before = [evaluate(model, tok, [r], config=cfg) for r in reqs]

    def score(idx: list[int], with_ppl: bool) -> dict[str, Any]:
        """Metrics of requests ``idx`` on the model as it is now (locality against the unedited model)."""
        rows = []
        for i in idx:
            after = evaluate(model, tok, [reqs[i]], config=cfg, baseline=before[i]).aggregate
            rows.append({k: after[k] for k in KEYS})
        out: dict[str, Any] = {k: _mean(rows, k) for k in KEYS}
        if with_ppl:
            ppl = evaluate(model, tok, reqs[:1], config=cfg, reference_texts=ref).aggregate["perplexity"]
            out["perplexity_change"] = round(ppl / ppl0 - 1, 4)
        return out

    mend = make_editor("mend", overrides=[f"editor={args.editor}", *args.overrides])
    loc = mend.default_location(model)
    results: dict[str, Any] = {}
    out = args.out or ROOT / "bench" / "results" / f"mend_{args.device.split(':')[0]}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "machine": platform.platform(),
        "threads": torch.get_num_threads(),
        "editor": str(args.editor),
        "overrides": args.overrides,
        "null_space": null.describe() if (null := getattr(mend, "null", None)) else None,
        "facts": str(args.facts),
        "perplexity_unedited": ppl0,
    }

    def write() -> None:  # after every mode, atomically: a long run keeps what it measured
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n", encoding="utf-8")
        tmp.replace(out)

    # single edits
    rows, times, cpu_times, ppl_changes, floor = [], [], [], [], []
    phases: dict[str, list[float]] = {"check": [], "gradient": [], "editor": [], "apply": []}
    for i, r in enumerate(reqs):
        # the floor: one plain no-grad forward of the model over the same tokens, timed right
        # before the edit so both see the same load (any gradient edit runs at least this)
        ids = torch.tensor([encode_pairs(tok, [r.prompt], [r.target_new])[0].ids], device=args.device)
        with torch.no_grad():
            t0 = time.perf_counter()
            model(input_ids=ids)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            floor.append(time.perf_counter() - t0)
        t0, c0 = time.perf_counter(), time.process_time()
        res = mend.compute(model, tok, [r], loc)
        t1 = time.perf_counter()
        apply(model, res)
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)  # this process's CPU time: less sensitive to other jobs
        phases["apply"].append(time.perf_counter() - t1)
        for key in ("check", "gradient", "editor"):
            phases[key].append(res.timings[key])
        row = score([i], with_ppl=i < args.ppl_edits)
        revert(model, res)
        ppl_changes += [row.pop("perplexity_change")] if "perplexity_change" in row else []
        rows.append(row)
    results["single"] = {
        "n": len(reqs),
        **{k: _mean(rows, k) for k in KEYS},
        "perplexity_change_mean": round(st.mean(ppl_changes), 4) if ppl_changes else None,
        "median_ms_compute_apply": round(1000 * st.median(times), 1),
        "p90_ms_compute_apply": round(1000 * sorted(times)[int(0.9 * (len(times) - 1))], 1),
        "median_cpu_ms_compute_apply": round(1000 * st.median(cpu_times), 1),
        "median_ms_phases": {k: round(1000 * st.median(v), 1) for k, v in phases.items()},
        "median_ms_plain_forward": round(1000 * st.median(floor), 1),
    }
    print("single", json.dumps(results["single"]), flush=True)
    write()

    # batched edits
    for k in args.batches:
        groups = [list(range(s, min(s + k, len(reqs)))) for s in range(0, len(reqs) - k + 1, k)]
        rows, times = [], []
        for idx in groups:
            t0 = time.perf_counter()
            res = mend.compute(model, tok, [reqs[i] for i in idx], loc)
            with applied(model, res):
                times.append(time.perf_counter() - t0)
                rows.append(score(idx, with_ppl=True))
        results[f"batch-{k}"] = {
            "n_batches": len(groups),
            **{key: _mean(rows, key) for key in (*KEYS, "perplexity_change")},
            "median_s_per_batch": round(st.median(times), 3) if times else None,
        }
        print(f"batch-{k}", json.dumps(results[f"batch-{k}"]), flush=True)
        write()

    # sequential edits
    if args.sequential:
        n = min(args.sequential, len(reqs))
        done = []
        t0 = time.perf_counter()
        for i in range(n):
            res = mend.compute(model, tok, [reqs[i]], loc)
            apply(model, res)
            done.append(res)
        elapsed = time.perf_counter() - t0
        seq = score(list(range(n)), with_ppl=True)
        for res in reversed(done):
            revert(model, res)
        results["sequential"] = {"n": n, **seq, "seconds": round(elapsed, 2)}
        print("sequential", json.dumps(results["sequential"]), flush=True)
        write()

    # LocFT-BF on the same requests, one at a time
    if args.locft:
        locft = make_editor("locft-bf")
        where = locft.default_location(model)
        rows, times = [], []
        for i in range(min(args.locft, len(reqs))):
            t0 = time.perf_counter()
            res = locft.compute(model, tok, [reqs[i]], where)
            with applied(model, res):
                times.append(time.perf_counter() - t0)
                rows.append(score([i], with_ppl=False))
        results["locft-bf-single"] = {
            "n": len(rows),
            **{k: _mean(rows, k) for k in KEYS},
            "median_ms_compute_apply": round(1000 * st.median(times), 1),
        }
        print("locft-bf-single", json.dumps(results["locft-bf-single"]), flush=True)
        write()

    write()
    print(f"written to {out}")


if __name__ == "__main__":
    main()
