"""Benchmark: a MEND editor's trade-off curve, reliability against locality, over the update's scale.

Every request of ``--facts`` (default: the data/ edit set) is edited alone,
scored and reverted, as in ``bench/mend_bench.py``'s ``single`` mode, at each
scale of ``--scales``: the editor's update ``-a * delta~^T u~`` (projected
onto its null space, when it has one) times that scale. The update is linear
in the scale, so it is computed once per request (with ``null_scale=1``, or
the plain update for an editor without a null space) and multiplied; the
scores use editkit's teacher-forced metrics against the unedited model.

Each request is also scored per group (the first word of its ``id``: data/'s
ids start with the relation, e.g. ``capital-eritrea``), which shows where
locality is lost.

Usage (from the repository root; needs a trained editor, see README "MEND"):
    .venv/bin/python bench/mend_sweep.py --editor runs/mend-nt --scales 0.3 0.4 0.5 0.6 0.8
Results: bench/results/mend_sweep_<device>.json (and a summary on stdout).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics as st
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("reliability", "generalization", "locality")


def group_of(request_id: str | None) -> str:
    """The group a request is reported in: its id's first ``-``-separated word (``"all"`` without an id)."""
    return request_id.split("-", 1)[0] if request_id else "all"


def means(rows: list[dict[str, Any]], scale: str) -> dict[str, float | None]:
    """Mean of each metric over ``rows`` at ``scale``, skipping requests where it is undefined."""
    out: dict[str, float | None] = {}
    for k in KEYS:
        vals = [r["scores"][scale][k] for r in rows if r["scores"][scale][k] is not None]
        out[k] = round(st.mean(vals), 4) if vals else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--editor", type=Path, required=True, help="trained MEND editor directory")
    ap.add_argument("--facts", type=Path, default=ROOT / "data" / "counterfact.jsonl")
    ap.add_argument("--scales", type=float, nargs="+", default=[0.3, 0.4, 0.5, 0.6, 0.8],
                    help="factors on the update (with a null space: the null_scale values)")
    ap.add_argument("--stride", type=int, default=1, help="use every N-th request")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own choice)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if any(not s > 0 for s in args.scales) or args.stride < 1:
        sys.exit("mend_sweep.py: --scales must be > 0 and --stride >= 1")

    import torch

    from editkit.editors import applied, make_editor
    from editkit.editors.result import EditResult
    from editkit.evaluate import EvalConfig, evaluate
    from editkit.models import load_model
    from editkit.outputs import atomic_write_text
    from editkit.requests import load_requests

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    model, tok = load_model(device=args.device)
    reqs = load_requests(args.facts)[:: args.stride]
    cfg = EvalConfig(generation=False, fluency=False, batch_size=64)
    has_null = getattr(make_editor("mend", overrides=[f"editor={args.editor}"]), "null", None) is not None
    mend = make_editor("mend", overrides=[f"editor={args.editor}", *(["null_scale=1"] if has_null else [])])
    loc = mend.default_location(model)
    scales = [str(s) for s in args.scales]

    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for i, r in enumerate(reqs):
        before = evaluate(model, tok, [r], config=cfg)
        res = mend.compute(model, tok, [r], loc)
        row: dict[str, Any] = {"id": r.id, "group": group_of(r.id), "scores": {}}
        for s, factor in zip(scales, args.scales, strict=True):
            scaled = EditResult(method=res.method, deltas={p: d * factor for p, d in res.deltas.items()},
                                location=res.location, config={**res.config, "scale": factor})
            with applied(model, scaled):
                after = evaluate(model, tok, [r], config=cfg, baseline=before).aggregate
            row["scores"][s] = {k: after[k] for k in KEYS}
        rows.append(row)
        if (i + 1) % 50 == 0:
            print(f"{i + 1}/{len(reqs)} requests, {time.perf_counter() - t0:.0f} s", flush=True)

    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row["group"]].append(row)
    curve = [{"scale": float(s), **means(rows, s)} for s in scales]
    by_group = {g: {"n": len(rs), "curve": [{"scale": float(s), **means(rs, s)} for s in scales]}
                for g, rs in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))}
    meta = {
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "argv": [a for i, a in enumerate(sys.argv)  # the command, without where this copy was written
                 if not (a == "--out" or a.startswith("--out=") or (i and sys.argv[i - 1] == "--out"))],
        "editor": str(args.editor),
        "null_space": used.describe() if (used := getattr(mend, "null", None)) else None,  # x1: the scales are absolute
        "facts": str(args.facts),
        "stride": args.stride,
        "n_requests": len(reqs),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    out = args.out or ROOT / "bench" / "results" / f"mend_sweep_{args.device.split(':')[0]}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps({"meta": meta, "curve": curve, "groups": by_group, "requests": rows},
                                      indent=1) + "\n")
    for c in curve:
        print(json.dumps(c))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
