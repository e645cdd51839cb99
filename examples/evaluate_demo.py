"""Evaluate the default model on the demo edit set through the Python API.

Run from the repository root:  .venv/bin/python examples/evaluate_demo.py [OUT_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

import editkit
from editkit.datafiles import read_texts, shipped
from editkit.evaluate import EvalConfig, evaluate
from editkit.evaluate.report import eval_report
from editkit.outputs import output_dir
from editkit.report import model_info, provenance, render_markdown, write_report


def main(out: Path) -> None:
    model, tok = editkit.load_model("smollm2-135m-instruct")
    requests = editkit.load_requests(shipped("demo.jsonl"))
    result = evaluate(
        model,
        tok,
        requests,
        config=EvalConfig(fluency=False),
        reference_texts=read_texts(shipped("reference_text.jsonl"))[:50],
    )
    for row in result.per_request[:5]:
        print(f"{row['prompt']!r:45} true={row['target_true']!r:12} completion={row['completion']!r}")
    report = eval_report(
        {"model": result},
        provenance("examples/evaluate_demo.py", [model_info(model, "smollm2-135m-instruct", "model")], "cpu"),
        title="Demo set, unedited default model",
    )
    with output_dir(out, overwrite=True) as tmp:
        write_report(report, tmp)
    print(render_markdown(report).split("\n## ")[1])  # the metrics section


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/example-eval"))
