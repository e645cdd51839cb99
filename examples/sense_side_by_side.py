"""Sense finetuning vs full finetuning vs LoRA on the small Backpack; the ensemble vs LocFT-BF on the default model.

The comparison of Hewitt et al. (2024, "Model Editing with Canonical
Examples"), on the project's own models and facts:

- **Task.** Facts of the fact tables (``data/scripts/candidates.py``) that
  neither the Backpack nor the target model knows in any of the relation's
  paraphrased phrasings: ``P(answer | paraphrase) <= threshold`` (0.2, the
  paper's country task) for every paraphrase, on both models. Up to
  ``--per-relation`` per relation, split alternately into a validation and a
  test half.
- **Canonical examples**: the main prompt of each fact with its answer
  (``good``: "The capital of Angola is" -> " Luanda"). **Evaluation texts**:
  the relation's paraphrase prompts (4 per fact; one of them the Backpack never
  saw for any fact), success when ``P(answer) > threshold``
  (:mod:`editkit.evaluate.canonical`). One threshold for every relation: the
  country task's 0.2 (the paper uses 0.05 for its company task).
- **Backpack runs**, all in the same league loop (Adam, KL to the unedited
  model on general text, a checkpoint counts only while held-out general loss
  stays under ``initial x (1 + eps)``): ``sense`` (the sense vectors the
  ``senses`` strategy picks), ``finetune`` (every parameter) and ``lora``
  (rank 8 on every linear/Conv1D matrix; the editor's updates equal peft's, a
  unit test checks it). The learning rate of each is chosen on the validation
  half (best success rate; ties: the smaller rate), then the method is run
  once on the test half; reported: the success-rate change on the test
  evaluation texts and whether an edited checkpoint made the league.
- **Default model, test half**: the chosen sense edit carried over through the
  ensemble (``p ∝ p_target (p_edited / p_orig)^beta``, beta chosen in the
  league on the target's held-out general text) vs LocFT-BF on the default
  model itself (default options; it has no league, so its held-out general
  loss change is reported beside it) vs, with ``--target-lora``, LoRA on the
  default model in the same league.

Run from the repository root (after ``make backpack``; one thread, about 30-40 min):
    OMP_NUM_THREADS=1 .venv/bin/python examples/sense_side_by_side.py --backpack runs/backpack --target-lora

Writes OUT (default runs/sense-side-by-side), atomically: ``summary.json`` (every
run: options, success before/after, league, timings), ``summary.md`` (tables,
also printed) and ``facts.jsonl`` (the chosen facts and their split).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from editkit.editors import apply, make_editor, revert
from editkit.editors.league import GeneralText, split_general
from editkit.editors.league.loop import general_texts
from editkit.editors.sense import transfer_edit
from editkit.evaluate.canonical import successes, suffix_logprobs
from editkit.localize import localize
from editkit.models import DEFAULT_MODEL, load_model
from editkit.outputs import output_dir
from editkit.requests import CanonicalExample, EditRequest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "data" / "scripts"))
from build_backpack_corpus import known_spellings, sentence, strip_article  # noqa: E402
from candidates import RELATIONS, order_key  # noqa: E402

#: Learning rates tried per method on the validation half (the paper sweeps per method too).
LR_GRID: dict[str, tuple[float, ...]] = {
    "sense": (1e-3, 3e-3, 1e-2),
    "finetune": (1e-5, 1e-4, 1e-3),
    "lora": (1e-4, 1e-3, 1e-2),
}
#: LoRA on the Backpack: every linear / Conv1D matrix (contextualization, sense and weight networks).
BACKPACK_LORA_TARGETS = "c_attn,c_proj,c_fc"
TARGET_LORA_LRS = (1e-4, 1e-3)

Forward = Callable[[dict[str, torch.Tensor]], torch.Tensor]


@dataclass(frozen=True)
class TaskFact:
    relation: str
    subject: str
    canonical: CanonicalExample
    evals: tuple[CanonicalExample, ...]

    def to_dict(self, split: str) -> dict[str, Any]:
        return {"split": split, "relation": self.relation, "subject": self.subject,
                "prompt": self.canonical.prefix, "answer": self.canonical.suffix,
                "eval_prompts": [e.prefix for e in self.evals]}


def candidate_facts() -> list[TaskFact]:
    known = known_spellings(ROOT / "data" / "facts.jsonl")
    out = []
    for rel in RELATIONS:
        for raw, spec in rel.facts:
            subject = strip_article(raw)
            answer = " " + known.get((rel.name, subject), spec.split("|")[0])
            out.append(TaskFact(
                rel.name, subject, CanonicalExample(sentence(rel.main.format(raw)), suffix=answer),
                tuple(CanonicalExample(sentence(t.format(raw)), suffix=answer) for t in rel.paraphrases),
            ))
    return out


def plain(model: Any) -> Forward:
    return lambda kw: model(**kw, use_cache=False).logits


def eval_texts(facts: Sequence[TaskFact]) -> list[CanonicalExample]:
    return [e for f in facts for e in f.evals]


def success(forward: Forward, tok: Any, facts: Sequence[TaskFact], threshold: float) -> float:
    texts = eval_texts(facts)
    return float(successes(suffix_logprobs(forward, tok, texts), texts, threshold).float().mean())


def choose_task(backpack: Any, target: Any, tok: Any, per_relation: int, threshold: float, seed: int) -> tuple[list[TaskFact], list[TaskFact], dict[str, Any]]:
    """Facts no eval phrasing of which either model gets right; alternately validation / test."""
    facts = candidate_facts()
    texts = eval_texts(facts)
    unknown = torch.ones(len(facts), dtype=torch.bool)
    per_model = {}
    for name, model in (("backpack", backpack), ("target", target)):
        ok = successes(suffix_logprobs(plain(model), tok, texts), texts, threshold)
        per_model[name] = float(ok.float().mean())
        per_fact = torch.split(ok, [len(f.evals) for f in facts])
        unknown &= ~torch.stack([part.any() for part in per_fact])
    val, test, by_rel = [], [], {}
    for rel in RELATIONS:
        pool = sorted((f for f, u in zip(facts, unknown.tolist(), strict=True) if u and f.relation == rel.name),
                      key=lambda f: order_key(seed, f.subject))[:per_relation]
        by_rel[rel.name] = len(pool)
        for f in pool:  # alternate over the whole list, so one fact per relation still splits
            (val if (len(val) + len(test)) % 2 == 0 else test).append(f)
    info = {"candidate_facts": len(facts), "eval_success_before": per_model,
            "unknown_to_both": int(unknown.sum()), "chosen_per_relation": by_rel,
            "val": len(val), "test": len(test)}
    return val, test, info


def edit_run(model: Any, tok: Any, method: str, options: dict[str, Any], facts: Sequence[TaskFact],
             threshold: float, *, before: float | None = None) -> tuple[dict[str, Any], Any]:
    examples = [f.canonical for f in facts]
    t0 = time.perf_counter()
    editor = make_editor(method, options)
    if method == "sense":
        location = localize("senses", model, tok, examples)
    else:
        location = editor.default_location(model)
    result = editor.compute(model, tok, examples, location)
    seconds = time.perf_counter() - t0
    before = success(plain(model), tok, facts, threshold) if before is None else before
    apply(model, result)
    try:
        after = success(plain(model), tok, facts, threshold)
    finally:
        revert(model, result)
    league = result.info.get("league", {})
    row = {
        "method": method, "options": options, "location": location.describe(), "n_tensors": len(result.deltas),
        "success_before": before, "success_after": after, "change": after - before,
        "league_met": league.get("met"), "accepted_step": league.get("accepted_step"),
        "general_loss_ratio": (league["accepted_general_loss"] / league["initial_general_loss"]) if league else None,
        "seconds": seconds,
    }
    return row, result


def general_loss(forward: Forward, tok: Any, max_length: int = 128) -> float:
    """Mean NLL on the held-out league passages every league editor uses (default split)."""
    from editkit.editors.league import LeagueConfig

    cfg = LeagueConfig()
    _, held = split_general(general_texts(cfg), cfg.kl_passages, cfg.league_passages)
    pad = int(tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
    return GeneralText(tok, held, max_length=max_length, batch_size=8, pad_id=pad, device="cpu").nll(forward)


def markdown(summary: dict[str, Any]) -> str:
    lines = ["# Sense finetuning side by side", "",
             f"Task: {summary['task']['val']} validation and {summary['task']['test']} test facts, "
             f"{summary['task']['eval_texts_per_fact']} evaluation texts each, success = P(answer) > "
             f"{summary['threshold']}; league eps {summary['league']}.", "",
             "## Backpack (test half, learning rate chosen on the validation half)", "",
             "| method | lr | success before | after | change | league met | general loss ratio | seconds |",
             "|---|---|---|---|---|---|---|---|"]
    for row in summary["backpack_test"]:
        lines.append(f"| {row['method']} | {row['options']['lr']:g} | {row['success_before']:.3f} | "
                     f"{row['success_after']:.3f} | {row['change']:+.3f} | {row['league_met']} | "
                     f"{row['general_loss_ratio']:.5f} | {row['seconds']:.0f} |")
    lines += ["", "Validation sweep:", "", "| method | lr | change | league met |", "|---|---|---|---|"]
    for row in summary["backpack_val"]:
        lines.append(f"| {row['method']} | {row['options']['lr']:g} | {row['change']:+.3f} | {row['league_met']} |")
    lines += ["", "## Default model (test half)", "",
              "| method | success before | after | change | general loss ratio | in league | notes |",
              "|---|---|---|---|---|---|---|"]
    for row in summary["target_test"]:
        lines.append(f"| {row['method']} | {row['success_before']:.3f} | {row['success_after']:.3f} | "
                     f"{row['change']:+.3f} | {row['general_loss_ratio']:.5f} | {row['in_league']} | {row.get('notes', '')} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backpack", default="runs/backpack", help="the trained Backpack folder (make backpack)")
    ap.add_argument("--target", default=DEFAULT_MODEL, help="the model the ensemble edits (shares the tokenizer)")
    ap.add_argument("--out", default="runs/sense-side-by-side")
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--per-relation", type=int, default=4, help="facts per relation (half validation, half test)")
    ap.add_argument("--threshold", type=float, default=0.2, help="success: P(answer) above this")
    ap.add_argument("--league", type=float, default=1e-3, help="deviation league eps")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--target-lora", action="store_true", help="also LoRA on the default model, in the league")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    backpack, tok = load_model(args.backpack)
    target, _ = load_model(args.target)
    val, test, task = choose_task(backpack, target, tok, args.per_relation, args.threshold, args.seed)
    task["eval_texts_per_fact"] = len(val[0].evals) if val else 0
    print(json.dumps(task), flush=True)
    if not val or not test:
        raise SystemExit("too few facts unknown to both models for a validation and a test half: raise --per-relation")
    common = {"league": args.league, "epochs": args.epochs, "seed": args.seed}
    extra = {"lora": {"targets": BACKPACK_LORA_TARGETS}}
    val_rows: list[dict[str, Any]] = []
    test_rows: list[dict[str, Any]] = []
    results: dict[str, Any] = {}
    val_before = success(plain(backpack), tok, val, args.threshold)
    test_before = success(plain(backpack), tok, test, args.threshold)
    for method, grid in LR_GRID.items():
        best: dict[str, Any] | None = None
        for lr in grid:
            row, _ = edit_run(backpack, tok, method, {**common, **extra.get(method, {}), "lr": lr}, val,
                              args.threshold, before=val_before)
            val_rows.append(row)
            print(f"val  {method:9s} lr {lr:g}: {row['change']:+.3f} league {row['league_met']} ({row['seconds']:.0f} s)", flush=True)
            if best is None or row["change"] > best["change"]:
                best = row
        assert best is not None
        row, result = edit_run(backpack, tok, method, best["options"], test, args.threshold, before=test_before)
        test_rows.append(row)
        results[method] = result
        print(f"test {method:9s} lr {best['options']['lr']:g}: {row['change']:+.3f} league {row['league_met']}", flush=True)

    # The default model: the sense edit through the ensemble, LocFT-BF directly, optionally LoRA.
    target_rows: list[dict[str, Any]] = []
    t_before = success(plain(target), tok, test, args.threshold)
    g0 = general_loss(plain(target), tok)
    t0 = time.perf_counter()
    ensemble, chosen = transfer_edit(target, backpack, results["sense"], tok)
    ens_after = success(lambda kw: ensemble(**kw).logits, tok, test, args.threshold)
    ratio = general_loss(lambda kw: ensemble(**kw).logits, tok) / g0
    target_rows.append({"method": "sense edit via ensemble", "success_before": t_before, "success_after": ens_after,
                        "change": ens_after - t_before, "general_loss_ratio": ratio, "in_league": ratio < 1 + args.league,
                        "notes": f"beta {chosen.beta:g}", "beta": chosen.to_dict(), "seconds": time.perf_counter() - t0})
    print(f"ensemble beta {chosen.beta:g}: {ens_after - t_before:+.3f}", flush=True)
    t0 = time.perf_counter()
    requests = [EditRequest(f.canonical.prefix, f.canonical.suffix.strip(), subject=f.subject) for f in test]
    editor = make_editor("locft-bf", {"seed": args.seed})
    result = editor.compute(target, tok, requests, editor.default_location(target))
    apply(target, result)
    try:
        after = success(plain(target), tok, test, args.threshold)
        ratio = general_loss(plain(target), tok) / g0
    finally:
        revert(target, result)
    target_rows.append({"method": "LocFT-BF (default options)", "success_before": t_before, "success_after": after,
                        "change": after - t_before, "general_loss_ratio": ratio, "in_league": ratio < 1 + args.league,
                        "notes": result.location.describe(), "seconds": time.perf_counter() - t0})
    print(f"locft-bf: {after - t_before:+.3f} general x{ratio:.5f}", flush=True)
    if args.target_lora:
        t_val = success(plain(target), tok, val, args.threshold)
        best_lr, best_change = TARGET_LORA_LRS[0], -2.0
        for lr in TARGET_LORA_LRS:
            row, _ = edit_run(target, tok, "lora", {**common, "lr": lr, "eval_every": 4}, val, args.threshold, before=t_val)
            row["method"] = "lora (default model)"
            val_rows.append(row)
            print(f"val  lora on target lr {lr:g}: {row['change']:+.3f} league {row['league_met']}", flush=True)
            if row["change"] > best_change:
                best_lr, best_change = lr, row["change"]
        row, _ = edit_run(target, tok, "lora", {**common, "lr": best_lr, "eval_every": 4}, test, args.threshold, before=t_before)
        target_rows.append({**row, "method": "LoRA in the league", "in_league": row["league_met"],
                            "notes": f"lr {best_lr:g}, {row['location']}"})
        print(f"lora on target: {row['change']:+.3f} league {row['league_met']}", flush=True)

    summary = {"backpack": args.backpack, "target": args.target, "threshold": args.threshold, "league": args.league,
               "epochs": args.epochs, "task": task, "backpack_val": val_rows, "backpack_test": test_rows,
               "target_test": target_rows, "lr_grid": LR_GRID,
               "command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
               "date": time.strftime("%Y-%m-%d"), "threads": torch.get_num_threads()}
    text = markdown(summary)
    print(text)
    with output_dir(args.out, overwrite=args.overwrite) as tmp:
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        (tmp / "summary.md").write_text(text)
        (tmp / "facts.jsonl").write_text("".join(json.dumps(f.to_dict(s)) + "\n" for s, part in (("val", val), ("test", test)) for f in part))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
