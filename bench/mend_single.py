"""MEND, one edit at a time: each demo request edited alone, scored, reverted (teacher-forced metrics, perplexity on 30 passages).

Usage: .venv/bin/python bench/mend_single.py   (needs runs/mend-editor from `editkit mend train`)
"""

import json
import statistics as st

import torch

from editkit.datafiles import read_texts, shipped
from editkit.editors import applied, make_editor
from editkit.evaluate import EvalConfig, evaluate
from editkit.models import load_model
from editkit.requests import load_requests

torch.set_num_threads(2)
m, tok = load_model()
reqs = load_requests("data/demo.jsonl")
ref = read_texts(shipped("reference_text.jsonl"))[:30]
cfg = EvalConfig(generation=False, fluency=False, batch_size=64)
ed = make_editor("mend", overrides=["editor=runs/mend-editor"])
loc = ed.default_location(m)
rows = []
for r in reqs:
    before = evaluate(m, tok, [r], config=cfg, reference_texts=ref)
    res = ed.compute(m, tok, [r], loc)
    with applied(m, res):
        a = evaluate(m, tok, [r], config=cfg, baseline=before, reference_texts=ref).aggregate
    rows.append({k: a[k] for k in ["reliability", "generalization", "locality"]} | {"ppl_rel": a["perplexity"] / before.aggregate["perplexity"] - 1})
print(json.dumps({k: round(st.mean(x[k] for x in rows), 4) for k in rows[0]}))
