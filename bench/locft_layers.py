"""Where to tune: LocFT-BF quality per layer / module / option on a slice of the data/ edit set.

Trains on every ``--stride``-th request of data/counterfact.jsonl (``--n`` of
them), then scores teacher-forced reliability, generalization and locality
(against the unedited model) and perplexity on 60 reference passages. Each
``--run`` is ``LAYER|MODULE|key=value;key=value``.

Usage (from the repository root):
    .venv/bin/python bench/locft_layers.py --run "4|mlp_down|" --run "6|mlp_down|lr=5e-3;min_steps=100"
Results: appended to bench/results/locft_layers.jsonl (one JSON object per run).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=60, help="requests to edit")
    ap.add_argument("--stride", type=int, default=6, help="take every STRIDE-th request")
    ap.add_argument("--run", action="append", required=True, help="LAYER|MODULE|key=value;... (repeatable)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "locft_layers.jsonl")
    args = ap.parse_args()

    import torch

    from editkit.datafiles import read_texts, shipped
    from editkit.editors import applied, make_editor
    from editkit.evaluate import EvalConfig, evaluate
    from editkit.localize import fixed
    from editkit.models import load_model
    from editkit.requests import load_requests

    torch.manual_seed(0)
    model, tok = load_model()
    requests = load_requests(ROOT / "data" / "counterfact.jsonl")[:: args.stride][: args.n]
    ref = read_texts(shipped("reference_text.jsonl"))[:60]
    cfg = EvalConfig(generation=False, fluency=False, batch_size=64)
    before = evaluate(model, tok, requests, config=cfg, reference_texts=ref)
    ppl0 = before.aggregate["perplexity"]
    keys = ["reliability", "generalization", "locality", "efficacy_score", "paraphrase_score", "neighborhood_score"]
    for spec in args.run:
        layer, module, options = spec.split("|")
        t0 = time.perf_counter()
        editor = make_editor("locft-bf", overrides=[o for o in options.split(";") if o])
        result = editor.compute(model, tok, requests, fixed(model, int(layer), module))
        train_s = time.perf_counter() - t0
        with applied(model, result):
            agg = evaluate(model, tok, requests, config=cfg, baseline=before, reference_texts=ref).aggregate
        row = {
            "run": spec,
            "n_requests": len(requests),
            "train_s": round(train_s, 1),
            "final_loss": result.log[-1]["mean_loss"],
            "optimizer_steps": result.info["schedule"]["optimizer_steps"],
            **{k: round(agg[k], 3) for k in keys},
            "perplexity": round(agg["perplexity"], 3),
            "perplexity_change": round(agg["perplexity"] / ppl0 - 1, 4),
        }
        print(json.dumps(row), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
