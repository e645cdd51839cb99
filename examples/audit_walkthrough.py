"""Audit what an edit (or any fine-tune) did to a model: one call, one report, read from Python.

Steps:

1. Without ``--tuned``: edit the model with LocFT-BF on the first ``--requests``
   counterfactual requests of ``data/demo.jsonl`` ("The capital of France is"
   -> a new city, ...) and save it the way ``editkit edit`` does (``delta.safetensors``
   and ``requests.jsonl``), so the audit knows the edit's own prompts.
   With ``--tuned PATH`` (repeatable): audit those instead: a full fine-tune
   folder, a peft LoRA adapter (e.g. ``runs/intruders-finetunes/tuned/lora-r8``
   from ``examples/intruders_finetunes.py``) or another ``editkit edit`` output.
2. :func:`audit.report.run_audit` runs every analysis (TuCo, CGE, intruder
   dimensions, refusal, drift) on one shared context and writes the report
   (``report.json``, ``report.md`` with ``figures/``, self-contained ``report.html``).
3. Print each verdict and the ranked findings, and compare the audits side by
   side with ``Report.to_pandas``. In Jupyter, ``report`` alone shows the HTML
   report (see ``audit_walkthrough.ipynb``).

Run from the repository root:
    .venv/bin/python examples/audit_walkthrough.py                                  # default model, an edit
    .venv/bin/python examples/audit_walkthrough.py --tuned runs/demo --tuned runs/intruders-finetunes/tuned/lora-r8
    .venv/bin/python examples/audit_walkthrough.py --model path/to/model --quick    # small settings

Writes OUT (default runs/audit-walkthrough): ``edit/`` (the edit, without
``--tuned``) and ``audit-<name>/`` (one report per tuned model).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from audit.report import run_audit
from editkit.models import DEFAULT_MODEL
from editkit.report import Report

QUICK = ["intruders.spectra=1", "cge.n=2", "cge.max_new_tokens=8", "cge.num_beams=2", "cge.rank_reference=8",
         "drift.passages=8", "tuco.max_prompts=4", "refusal.prompts=2", "refusal.max_new_tokens=8"]
"""``--quick``: small settings, for a smoke run (the published defaults are the analyses' own)."""


def make_edit(model_spec: str, out: Path, n_requests: int, epochs: int | None = None) -> Path:
    """LocFT-BF of the first ``n_requests`` demo requests, saved as an ``editkit edit`` output in ``out``."""
    from editkit.datafiles import shipped
    from editkit.editors import make_editor, save_edit
    from editkit.models import load_model
    from editkit.outputs import output_dir
    from editkit.requests import load_requests, save_requests

    model, tok = load_model(model_spec)
    requests = load_requests(shipped("demo.jsonl"), limit=n_requests)
    editor = make_editor("locft-bf", overrides=[f"epochs={epochs}"] if epochs else [])
    result = editor.compute(model, tok, requests, editor.default_location(model))
    with output_dir(out, overwrite=True) as tmp:
        save_edit(result, tmp / "delta.safetensors")
        save_requests(requests, tmp / "requests.jsonl")
    print(f"edited {len(requests)} facts at {result.location.describe()}; saved to {out}")
    return out


def compare(reports: dict[str, Report]) -> Any:
    """One row per section metric, one column per audit (a pandas DataFrame)."""
    import pandas as pd

    frames = []
    for name, report in reports.items():
        frame = report.to_pandas("section_metrics").set_index(["section", "metric"])["value"]
        frames.append(frame.rename(name))
    return pd.concat(frames, axis=1)


def main(argv: list[str] | None = None) -> dict[str, Report]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="base model (zoo alias, folder, .gguf, hub id)")
    parser.add_argument("--tuned", action="append", type=Path, help="tuned model to audit (repeatable); default: make an edit")
    parser.add_argument("--requests", type=int, default=4, help="demo requests edited when no --tuned is given")
    parser.add_argument("--epochs", type=int, default=None, help="LocFT-BF epochs (default: the editor's)")
    parser.add_argument("--analyses", default="all", help="comma-separated analyses, or all")
    parser.add_argument("--quick", action="store_true", help="small analysis settings (a smoke run)")
    parser.add_argument("--out", type=Path, default=Path("runs/audit-walkthrough"))
    args = parser.parse_args(argv)

    tuned = args.tuned or [make_edit(args.model, args.out / "edit", args.requests, args.epochs)]
    reports: dict[str, Report] = {}
    for path in tuned:
        name = path.name
        report = run_audit(args.model, path, analyses=args.analyses, set_options=QUICK if args.quick else [],
                           out=args.out / f"audit-{name}", overwrite=True,
                           command=["examples/audit_walkthrough.py", *(argv if argv is not None else sys.argv[1:])])
        reports[name] = report
        print(f"\n=== {name}: {args.out / f'audit-{name}'}/report.html ===\n")
        print(report.summary)
        print()
        print(report.to_pandas("findings")[["severity", "analysis", "message"]].to_string(index=False, max_colwidth=100))
    if len(reports) > 1:
        print("\n=== side by side ===\n")
        print(compare(reports).to_string(float_format=lambda v: f"{v:.4g}"))
    return reports


if __name__ == "__main__":
    main()
