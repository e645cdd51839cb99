"""Sense finetuning vs full finetuning vs LoRA on the small Backpack; the ensemble vs LocFT-BF on the default model.

The comparison of Hewitt et al. (2024, "Model Editing with Canonical
Examples"), on the project's own models and edit set:

- **Task.** Counterfactual edits of ``data/counterfact.jsonl`` (the small
  Backpack was trained on every true fact of the fact tables and knows all of
  them, so teaching it a fact it lacks means changing one). Chosen: requests
  whose new answer neither model gives to any paraphrase before editing
  (``P(new answer | paraphrase) <= threshold``, 0.2 as in the paper's country
  task), up to ``--per-relation`` per relation, ordered by a seeded hash of
  the id and split alternately into a validation and a test half.
- **Canonical examples**: the request's prompt with its new answer (``good``:
  "The capital of Eritrea is" -> " Port Vila"). **Evaluation texts**: its
  paraphrase prompts with the new answer, success when ``P(answer) >
  threshold`` (:mod:`editkit.evaluate.canonical`). **Neighbors kept**: of the
  neighborhood prompts whose true answer had ``P > threshold`` before, the
  share that still does (the paper reports only the league; this is the
  locality every other editkit table shows).
- **Backpack runs**, all in the same league loop (Adam, KL to the unedited
  model on general text, a checkpoint counts only while held-out general loss
  stays under ``initial x (1 + eps)``): ``sense`` (the sense vectors the
  ``senses`` strategy picks), ``finetune`` (every parameter) and ``lora``
  (rank 8 on every linear/Conv1D matrix; the editor's updates equal peft's, a
  unit test checks it). The learning rate of each is chosen on the validation
  half (best success rate; ties: the smaller rate), then the method is run
  once on the test half; reported: the success-rate change on the test
  evaluation texts, neighbors kept and whether an edited checkpoint made the
  league.
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
also printed) and ``facts.jsonl`` (the chosen requests and their split).
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
from editkit.requests import CanonicalExample, EditRequest, Neighbor

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "data" / "scripts"))
from candidates import order_key  # noqa: E402

#: Learning rates tried per method on the validation half (the paper sweeps per method too).
LR_GRID: dict[str, tuple[float, ...]] = {
    "sense": (1e-3, 3e-3, 1e-2, 3e-2),
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
    neighbors: tuple[CanonicalExample, ...]

    def to_dict(self, split: str) -> dict[str, Any]:
        return {"split": split, "relation": self.relation, "subject": self.subject,
                "prompt": self.canonical.prefix, "answer": self.canonical.suffix,
                "eval_prompts": [e.prefix for e in self.evals],
                "neighbors": [[n.prefix, n.suffix] for n in self.neighbors]}


def candidate_facts(path: Path = ROOT / "data" / "counterfact.jsonl") -> list[TaskFact]:
    """Every request of the edit set: prompt + new answer, paraphrases + new answer, neighbors + their answers."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        answer = " " + row["target_new"]
        out.append(TaskFact(
            row["id"].split("-", 1)[0], row["subject"], CanonicalExample(row["prompt"], suffix=answer),
            tuple(CanonicalExample(p, suffix=answer) for p in row.get("paraphrase_prompts", [])),
            tuple(CanonicalExample(n["prompt"], suffix=" " + n["target"]) for n in row.get("neighborhood_prompts", [])),
        ))
    return [f for f in out if f.evals and f.neighbors]


def plain(model: Any) -> Forward:
    return lambda kw: model(**kw, use_cache=False).logits


def eval_texts(facts: Sequence[TaskFact]) -> list[CanonicalExample]:
    return [e for f in facts for e in f.evals]


def success(forward: Forward, tok: Any, facts: Sequence[TaskFact], threshold: float) -> float:
    texts = eval_texts(facts)
    return float(successes(suffix_logprobs(forward, tok, texts), texts, threshold).float().mean())


def choose_task(backpack: Any, target: Any, tok: Any, per_relation: int, threshold: float, seed: int) -> tuple[list[TaskFact], list[TaskFact], dict[str, Any]]:
    """Requests no paraphrase of which either model completes with the new answer; alternately validation / test."""
    facts = candidate_facts()
    texts = eval_texts(facts)
    unknown = torch.ones(len(facts), dtype=torch.bool)
    per_model = {}
    for name, model in (("backpack", backpack), ("target", target)):
        ok = successes(suffix_logprobs(plain(model), tok, texts), texts, threshold)
        per_model[name] = float(ok.float().mean())
        per_fact = torch.split(ok, [len(f.evals) for f in facts])
        unknown &= ~torch.stack([part.any() for part in per_fact])
    val: list[TaskFact] = []
    test: list[TaskFact] = []
    by_rel: dict[str, int] = {}
    for relation in sorted({f.relation for f in facts}):
        pool = sorted((f for f, u in zip(facts, unknown.tolist(), strict=True) if u and f.relation == relation),
                      key=lambda f: order_key(seed, f.canonical.prefix))[:per_relation]
        by_rel[relation] = len(pool)
        for f in pool:  # alternate over the whole list, so one fact per relation still splits
            (val if (len(val) + len(test)) % 2 == 0 else test).append(f)
    info = {"candidate_requests": len(facts), "new_answer_success_before": per_model,
            "unknown_to_both": int(unknown.sum()), "chosen_per_relation": by_rel,
            "val": len(val), "test": len(test)}
    return val, test, info


def neighbors_kept(forward: Forward, tok: Any, facts: Sequence[TaskFact], threshold: float, before: torch.Tensor) -> float:
    """Of the neighbor texts that succeeded before (``before``, bool), the share that still does."""
    texts = [n for f in facts for n in f.neighbors]
    now = successes(suffix_logprobs(forward, tok, texts), texts, threshold)
    return float(now[before].float().mean()) if bool(before.any()) else float("nan")


def neighbor_baseline(forward: Forward, tok: Any, facts: Sequence[TaskFact], threshold: float) -> torch.Tensor:
    texts = [n for f in facts for n in f.neighbors]
    return successes(suffix_logprobs(forward, tok, texts), texts, threshold)


def edit_run(model: Any, tok: Any, method: str, options: dict[str, Any], facts: Sequence[TaskFact],
             threshold: float, *, before: float | None = None,
             neighbors_before: torch.Tensor | None = None) -> tuple[dict[str, Any], Any]:
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
    if neighbors_before is None:
        neighbors_before = neighbor_baseline(plain(model), tok, facts, threshold)
    apply(model, result)
    try:
        after = success(plain(model), tok, facts, threshold)
        kept = neighbors_kept(plain(model), tok, facts, threshold, neighbors_before)
    finally:
        revert(model, result)
    league = result.info.get("league", {})
    row = {
        "method": method, "options": options, "location": location.describe(), "n_tensors": len(result.deltas),
        "success_before": before, "success_after": after, "change": after - before, "neighbors_kept": kept,
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
             f"Task: {summary['task']['val']} validation and {summary['task']['test']} test requests, "
             f"success = P(new answer | paraphrase) > {summary['threshold']}; neighbors kept = share of the "
             f"neighbor prompts above it for their true answer before that still are; league eps {summary['league']}.", "",
             "## Backpack (test half, learning rate chosen on the validation half)", "",
             "| method | lr | success before | after | change | neighbors kept | league met | general loss ratio | seconds |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in summary["backpack_test"]:
        lines.append(f"| {row['method']} | {row['options']['lr']:g} | {row['success_before']:.3f} | "
                     f"{row['success_after']:.3f} | {row['change']:+.3f} | {row['neighbors_kept']:.3f} | "
                     f"{row['league_met']} | {row['general_loss_ratio']:.5f} | {row['seconds']:.0f} |")
    lines += ["", "Validation sweep:", "", "| method | lr | change | neighbors kept | league met |", "|---|---|---|---|---|"]
    for row in summary["backpack_val"]:
        lines.append(f"| {row['method']} | {row['options']['lr']:g} | {row['change']:+.3f} | "
                     f"{row['neighbors_kept']:.3f} | {row['league_met']} |")
    lines += ["", "## Default model (test half)", "",
              "| method | success before | after | change | neighbors kept | general loss ratio | in league | notes |",
              "|---|---|---|---|---|---|---|---|"]
    for row in summary["target_test"]:
        lines.append(f"| {row['method']} | {row['success_before']:.3f} | {row['success_after']:.3f} | "
                     f"{row['change']:+.3f} | {row['neighbors_kept']:.3f} | {row['general_loss_ratio']:.5f} | "
                     f"{row['in_league']} | {row.get('notes', '')} |")
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
        raise SystemExit("too few requests new to both models for a validation and a test half: raise --per-relation")
    common = {"league": args.league, "epochs": args.epochs, "seed": args.seed}
    extra = {"lora": {"targets": BACKPACK_LORA_TARGETS}}
    val_rows: list[dict[str, Any]] = []
    test_rows: list[dict[str, Any]] = []
    results: dict[str, Any] = {}
    val_before = success(plain(backpack), tok, val, args.threshold)
    test_before = success(plain(backpack), tok, test, args.threshold)
    val_nb = neighbor_baseline(plain(backpack), tok, val, args.threshold)
    test_nb = neighbor_baseline(plain(backpack), tok, test, args.threshold)
    task["backpack_neighbors_known"] = {"val": float(val_nb.float().mean()), "test": float(test_nb.float().mean())}
    for method, grid in LR_GRID.items():
        best: dict[str, Any] | None = None
        for lr in grid:
            row, _ = edit_run(backpack, tok, method, {**common, **extra.get(method, {}), "lr": lr}, val,
                              args.threshold, before=val_before, neighbors_before=val_nb)
            val_rows.append(row)
            print(f"val  {method:9s} lr {lr:g}: {row['change']:+.3f} league {row['league_met']} ({row['seconds']:.0f} s)", flush=True)
            if best is None or row["change"] > best["change"]:
                best = row
        assert best is not None
        row, result = edit_run(backpack, tok, method, best["options"], test, args.threshold, before=test_before,
                               neighbors_before=test_nb)
        test_rows.append(row)
        results[method] = result
        print(f"test {method:9s} lr {best['options']['lr']:g}: {row['change']:+.3f} league {row['league_met']}", flush=True)

    # The default model: the sense edit through the ensemble, LocFT-BF directly, optionally LoRA.
    target_rows: list[dict[str, Any]] = []
    t_before = success(plain(target), tok, test, args.threshold)
    t_nb = neighbor_baseline(plain(target), tok, test, args.threshold)
    task["target_neighbors_known"] = float(t_nb.float().mean())
    g0 = general_loss(plain(target), tok)
    t0 = time.perf_counter()
    ensemble, chosen = transfer_edit(target, backpack, results["sense"], tok)
    ens_after = success(lambda kw: ensemble(**kw).logits, tok, test, args.threshold)
    ens_kept = neighbors_kept(lambda kw: ensemble(**kw).logits, tok, test, args.threshold, t_nb)
    ratio = general_loss(lambda kw: ensemble(**kw).logits, tok) / g0
    target_rows.append({"method": "sense edit via ensemble", "success_before": t_before, "success_after": ens_after,
                        "change": ens_after - t_before, "neighbors_kept": ens_kept, "general_loss_ratio": ratio, "in_league": ratio < 1 + args.league,
                        "notes": f"beta {chosen.beta:g}", "beta": chosen.to_dict(), "seconds": time.perf_counter() - t0})
    print(f"ensemble beta {chosen.beta:g}: {ens_after - t_before:+.3f}", flush=True)
    t0 = time.perf_counter()
    # The neighbors go along so that LocFT-BF's automatic preservation set leaves them out (it never
    # preserves evaluated prompts); the paraphrases are not trained on.
    requests = [EditRequest(f.canonical.prefix, f.canonical.suffix.strip(), subject=f.subject,
                            neighborhood_prompts=tuple(Neighbor(n.prefix, n.suffix.strip()) for n in f.neighbors))
                for f in test]
    editor = make_editor("locft-bf", {"seed": args.seed})
    result = editor.compute(target, tok, requests, editor.default_location(target))
    apply(target, result)
    try:
        after = success(plain(target), tok, test, args.threshold)
        kept = neighbors_kept(plain(target), tok, test, args.threshold, t_nb)
        ratio = general_loss(plain(target), tok) / g0
    finally:
        revert(target, result)
    target_rows.append({"method": "LocFT-BF (default options)", "success_before": t_before, "success_after": after,
                        "change": after - t_before, "neighbors_kept": kept, "general_loss_ratio": ratio, "in_league": ratio < 1 + args.league,
                        "notes": result.location.describe(), "seconds": time.perf_counter() - t0})
    print(f"locft-bf: {after - t_before:+.3f} general x{ratio:.5f}", flush=True)
    if args.target_lora:
        t_val = success(plain(target), tok, val, args.threshold)
        t_val_nb = neighbor_baseline(plain(target), tok, val, args.threshold)
        best_lr, best_change = TARGET_LORA_LRS[0], -2.0
        for lr in TARGET_LORA_LRS:
            row, _ = edit_run(target, tok, "lora", {**common, "lr": lr, "eval_every": 4}, val, args.threshold,
                              before=t_val, neighbors_before=t_val_nb)
            row["method"] = "lora (default model)"
            val_rows.append(row)
            print(f"val  lora on target lr {lr:g}: {row['change']:+.3f} league {row['league_met']}", flush=True)
            if row["change"] > best_change:
                best_lr, best_change = lr, row["change"]
        row, _ = edit_run(target, tok, "lora", {**common, "lr": best_lr, "eval_every": 4}, test, args.threshold,
                          before=t_before, neighbors_before=t_nb)
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
