"""Collect the responses of ``examples/refusal_story.py``'s three models, for hand-labelling.

The rows of ``data/refusal/responses_generated.jsonl`` started here. The
story's two refusal audits hold, per held-out evaluation prompt (the ``terse``
source, never trained on), the greedy response (chat template, 64 new tokens)
of each model: ``base`` (the default model) and ``safe`` (after the safety
LoRA) in ``safety_audit.json``, ``attacked`` (after the attack LoRA) in
``attack_audit.json``. Each row keeps the substring judge's verdict as a
provisional label (``label_by: "substring:arditi"``); the shipped file holds
the labels and classes checked and set by hand (``label_by: "hand"``), see
data/refusal/README.md.

Usage (from the repository root)::

    python examples/refusal_story.py --out runs/refusal_story
    python data/scripts/collect_story_responses.py --story runs/refusal_story --out runs/story_responses.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

MODELS = (("base", "safety_audit.json", "base"), ("safe", "safety_audit.json", "tuned"),
          ("attacked", "attack_audit.json", "tuned"))
"""(model name, audit file, role in that audit)."""


def collect(story: Path, instruction_ids: dict[str, tuple[str, str, str]]) -> list[dict[str, object]]:
    """One row per (model, prompt), in the audits' order."""
    rows: list[dict[str, object]] = []
    for name, file, role in MODELS:
        audit = json.loads((story / file).read_text(encoding="utf-8"))
        records = [r for r in audit["per_prompt"] if r["role"] == role]
        for k, rec in enumerate(records, 1):
            iid, source, label = instruction_ids[rec["prompt"]]
            rows.append({
                "id": f"gen-{name}-{k:03d}", "instruction_id": iid, "instruction": rec["prompt"],
                "response": rec["response"], "label": "refusal" if rec["substring"] else "compliance", "class": None,
                "source": f"smollm2-{name}", "prompt_source": source, "instruction_label": label,
                "label_by": "substring:arditi",
            })
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    sys.path.insert(0, str(ROOT))
    from editkit.outputs import atomic_write_text
    from probes.data import load_instructions, shipped_path

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--story", type=Path, required=True, help="output folder of examples/refusal_story.py")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    ids = {r.text: (r.id, r.source, r.label) for r in load_instructions(shipped_path("instructions.jsonl"))}
    rows = collect(args.story, ids)
    atomic_write_text(args.out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"{len(rows)} responses written to {args.out}")


if __name__ == "__main__":
    main(sys.argv[1:])
