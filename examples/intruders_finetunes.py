"""Intruder dimensions of LoRA (ranks 1, 8, 64) and of full fine-tuning, on the same data.

Shuttleworth et al. ("LoRA vs Full Fine-tuning: An Illusion of Equivalence")
found that low-rank LoRA puts new high-ranking singular vectors ("intruder
dimensions") into the weights while full fine-tuning does not. This script
trains both kinds on the same small data set and runs
:func:`audit.intruders.intruder_analysis` on each, so you can see it on your
model. The training is short and small (defaults: 100 steps of 4 sentences of
at most 32 tokens, a few minutes per run on 2 CPU cores for the 135M default
model), so read the counts as an illustration, not as a replication.

Data: 200 sentences stating counterfactual facts (``data/counterfact.jsonl``:
each prompt or paraphrase completed with its new target, e.g. "The capital of
France is Santiago."), so every run learns something new; ``--data facts``
uses the true facts of ``data/facts.jsonl`` instead. Every run sees the same
sentences in the same order.

Runs: LoRA with ``r`` in ``--ranks`` on every linear layer of the blocks
(``target_modules="all-linear"``, ``lora_alpha = 2 r``, B initialized to zero)
at ``--lr-lora``; full fine-tuning of every parameter at ``--lr-full``; AdamW,
no weight decay, gradients clipped to norm 1. Perplexity on the first 60
shipped reference passages (a forgetting proxy) before and after each run.

Run from the repository root:
    .venv/bin/python examples/intruders_finetunes.py                    # default model
    .venv/bin/python examples/intruders_finetunes.py --edit runs/demo   # also an editkit edit
    .venv/bin/python examples/intruders_finetunes.py --model path/to/model --steps 20 --out runs/x

Writes OUT (default runs/intruders-finetunes), atomically:
    tuned/lora-r1 ... tuned/full          peft adapters and the fully fine-tuned model
    intruders/<run>/                      intruders.json, intruders.csv, heatmap.png, spectra/*.png
    counts_vs_eps.png                     the intruder count against the threshold, one line per run
    summary.json, summary.md              one row per run (also printed)
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import torch

from audit.intruders import IntruderConfig, intruder_analysis, write_intruder_files
from audit.intruders.export import mean_energy_share
from audit.tuned import load_tuned
from editkit.datafiles import read_texts, shipped
from editkit.evaluate import reference_drift
from editkit.models import DEFAULT_MODEL, load_model
from editkit.outputs import output_dir


def training_texts(source: str = "counterfact", n: int = 200, seed: int = 0) -> list[str]:
    """``n`` short sentences from the shipped facts: every prompt and paraphrase completed with its target.

    Args:
        source: ``"counterfact"`` (new, counterfactual targets) or ``"facts"`` (what the model knows).
        n: how many sentences (a seeded sample of all of them).
        seed: the sampling seed.
    """
    sentences = []
    if source == "counterfact":
        for line in shipped("counterfact.jsonl").read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            sentences += [f"{p} {row['target_new']}." for p in (row["prompt"], *row["paraphrase_prompts"])]
    elif source == "facts":
        for line in shipped("facts.jsonl").read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            sentences += [f"{p} {row['target']}." for p in (row["prompt"], *row["paraphrases"])]
    else:
        raise ValueError(f"--data: choose counterfact or facts, not {source!r}")
    random.Random(seed).shuffle(sentences)
    return sentences[:n]


def train(
    model: Any,
    tok: Any,
    texts: list[str],
    params: list[torch.nn.Parameter],
    *,
    steps: int,
    lr: float,
    batch_size: int,
    max_length: int,
    seed: int,
) -> list[float]:
    """Causal-LM fine-tuning of ``params`` on ``texts`` (AdamW, clipped); returns the loss per step."""
    order: list[int] = []
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    device = next(model.parameters()).device
    losses = []
    model.train()
    for _ in range(steps):
        if len(order) < batch_size:  # the same epochs, in the same order, for every run
            order += torch.randperm(len(texts), generator=gen).tolist()
        batch, order = [texts[i] for i in order[:batch_size]], order[batch_size:]
        enc = tok(batch, return_tensors="pt", padding=True, truncation=True, max_length=max_length).to(device)
        labels = enc.input_ids.masked_fill(enc.attention_mask == 0, -100)  # [batch, pos]
        loss = model(input_ids=enc.input_ids, attention_mask=enc.attention_mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    model.eval()
    return losses


def perplexity(model: Any, tok: Any, texts: list[str] | None) -> float | None:
    return reference_drift(model, tok, texts).perplexity if texts else None


def lora_lr(args: argparse.Namespace, rank: int) -> float:
    """The learning rate of the LoRA run at ``rank``: ``--lr-lora`` has one value, or one per ``--ranks`` entry."""
    lrs = list(args.lr_lora)
    return float(lrs[0] if len(lrs) == 1 else lrs[list(args.ranks).index(rank)])


def run_lora(spec: str, rank: int, texts: list[str], ref: list[str] | None, dest: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Train one LoRA adapter (``r = rank``, ``alpha = 2 r``) and save it to ``dest``."""
    from peft import LoraConfig, get_peft_model

    model, tok = load_model(spec, device=args.device)
    tok.padding_side = "right"
    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules="all-linear")
    torch.manual_seed(args.seed)  # the same A initialization for a given rank
    peft_model = get_peft_model(model, config)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    start = time.perf_counter()
    lr = lora_lr(args, rank)
    losses = train(peft_model, tok, texts, params, steps=args.steps, lr=lr, batch_size=args.batch_size,
                   max_length=args.max_length, seed=args.seed)
    seconds = time.perf_counter() - start
    peft_model.save_pretrained(str(dest))
    return {"kind": "lora", "rank": rank, "lr": lr, "trainable": sum(p.numel() for p in params),
            "loss_first": losses[0], "loss_last": losses[-1], "train_seconds": seconds,
            "perplexity": perplexity(peft_model, tok, ref)}


def run_full(spec: str, texts: list[str], ref: list[str] | None, dest: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Fine-tune every parameter and save the model (safetensors) to ``dest``."""
    model, tok = load_model(spec, device=args.device)
    tok.padding_side = "right"
    params = list(model.parameters())
    for p in params:
        p.requires_grad_(True)
    start = time.perf_counter()
    losses = train(model, tok, texts, params, steps=args.steps, lr=args.lr_full, batch_size=args.batch_size,
                   max_length=args.max_length, seed=args.seed)
    seconds = time.perf_counter() - start
    model.save_pretrained(dest)
    tok.save_pretrained(dest)
    return {"kind": "full", "rank": None, "lr": args.lr_full, "trainable": sum(p.numel() for p in params),
            "loss_first": losses[0], "loss_last": losses[-1], "train_seconds": seconds,
            "perplexity": perplexity(model, tok, ref)}


def counts_figure(curves: dict[str, dict[float, int]], path: Path) -> None:
    """One line per run: total intruder count against the threshold eps."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.8))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, curve in curves.items():
        ax.plot(list(curve), list(curve.values()), marker=".", label=name)
    ax.set_xlabel("eps (intruder if max |cos| < eps)")
    ax.set_ylabel("intruders, whole model")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=120, bbox_inches="tight", facecolor="white")


def markdown(rows: list[dict[str, Any]], eps: float) -> str:
    head = ["run", "trainable", "loss first -> last", "train s", f"intruders (eps={eps:g})",
            "matrices with any", "mean energy share", "count @0.3 / 0.7", "ref. perplexity"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        loss = f"{r['loss_first']:.3f} -> {r['loss_last']:.3f}" if r.get("loss_first") is not None else "-"
        ppl = f"{r['perplexity']:.2f}" if r.get("perplexity") is not None else "-"
        trainable = f"{r['trainable']:,}" if r.get("trainable") else "-"
        seconds = f"{r['train_seconds']:.0f}" if r.get("train_seconds") is not None else "-"
        lines.append(
            f"| {r['run']} | {trainable} | {loss} | {seconds} | {r['intruders']} | "
            f"{r['matrices_with_intruders']}/{r['matrices']} | {100 * r['energy_share']:.2f}% | "
            f"{r['counts_vs_eps'].get('0.3', '-')} / {r['counts_vs_eps'].get('0.7', '-')} | {ppl} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL, help="zoo alias or local model folder (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=Path("runs/intruders-finetunes"))
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 8, 64], help="LoRA ranks (default: 1 8 64)")
    ap.add_argument("--no-full", action="store_true", help="skip the full fine-tune")
    ap.add_argument("--steps", type=int, default=100, help="optimizer steps per run (default: 100)")
    ap.add_argument("--lr-lora", type=float, nargs="+", default=[1e-3],
                    help="LoRA learning rate: one for every rank, or one per --ranks entry (default: 1e-3)")
    ap.add_argument("--lr-full", type=float, default=5e-5, help="full fine-tuning learning rate (default: 5e-5)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=32, help="tokens per sentence at most")
    ap.add_argument("--data", choices=["counterfact", "facts"], default="counterfact")
    ap.add_argument("--n-texts", type=int, default=200, help="training sentences (default: 200)")
    ap.add_argument("--edit", type=Path, action="append", default=[], help="also analyse this editkit edit output (repeatable)")
    ap.add_argument("--spectra", type=int, default=3, help="spectrum plots per run (matrices with the most intruders)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--eps", type=float, default=0.5)
    ap.add_argument("--backend", default="auto", help="array backend for the SVDs (auto, cupy, torch-cuda, torch-cpu)")
    ap.add_argument("--cache-dir", type=Path, default=None, help="base-basis cache (default $EDITKIT_CACHE/intruders)")
    ap.add_argument("--reference-passages", type=int, default=60, help="perplexity passages (0: skip)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1 or args.n_texts < 1:
        ap.error("--steps, --batch-size and --n-texts must be >= 1")
    if len(args.lr_lora) not in (1, len(args.ranks)) or min(args.lr_lora) <= 0:
        ap.error(f"--lr-lora: give one positive rate, or one per rank ({len(args.ranks)}), not {args.lr_lora}")
    return args


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    texts = training_texts(args.data, args.n_texts, args.seed)
    ref = read_texts(shipped("reference_text.jsonl"))[: args.reference_passages] or None
    cfg = IntruderConfig(k=args.k, eps=args.eps)
    base, tok = load_model(args.model, device=args.device)
    base_ppl = perplexity(base, tok, ref)
    print(f"{args.model}: {len(texts)} training sentences, e.g. {texts[0]!r}; reference perplexity {base_ppl}", file=sys.stderr)
    rows: list[dict[str, Any]] = []
    curves: dict[str, dict[float, int]] = {}
    with output_dir(args.out, overwrite=args.overwrite) as tmp:
        runs: list[tuple[str, Path, dict[str, Any]]] = []
        for rank in args.ranks:
            name = f"lora-r{rank}"
            print(f"training {name} ({args.steps} steps)", file=sys.stderr)
            runs.append((name, tmp / "tuned" / name, run_lora(args.model, rank, texts, ref, tmp / "tuned" / name, args)))
        if not args.no_full:
            print(f"training full ({args.steps} steps)", file=sys.stderr)
            runs.append(("full", tmp / "tuned" / "full", run_full(args.model, texts, ref, tmp / "tuned" / "full", args)))
        runs += [(f"edit:{path.name}", path, {"kind": "edit"}) for path in args.edit]
        for name, path, info in runs:
            print(f"intruder analysis: {name}", file=sys.stderr)
            report = intruder_analysis(base, load_tuned(base, path), config=cfg, backend=args.backend, cache_dir=args.cache_dir)
            folder = tmp / "intruders" / name.replace(":", "-")
            write_intruder_files(report, folder, extra={"run": name, "base": args.model, "training": info},
                                 n_spectra=args.spectra)
            curves[name] = report.counts_vs_eps()
            rows.append({
                "run": name, **info, "intruders": report.total, "matrices": len(report.matrices),
                "matrices_with_intruders": sum(m.count > 0 for m in report.matrices),
                "energy_share": mean_energy_share(report),
                "counts_vs_eps": {f"{e:g}": n for e, n in curves[name].items()},
                "analysis_seconds": report.info["seconds"],
            })
        counts_figure(curves, tmp / "counts_vs_eps.png")
        table = markdown(rows, args.eps)
        summary = {"model": args.model, "data": args.data, "n_texts": len(texts), "steps": args.steps,
                   "batch_size": args.batch_size, "max_length": args.max_length, "k": args.k, "eps": args.eps,
                   "base_perplexity": base_ppl, "runs": rows}
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        (tmp / "summary.md").write_text(f"# Intruder dimensions on {args.model}\n\n"
                                        f"Base reference perplexity: {base_ppl}\n\n{table}\n")
    print(table)
    print(f"\nwritten to {args.out}", file=sys.stderr)
    return rows


if __name__ == "__main__":
    main()
