"""``editkit cge``: generate examples of what is new in a fine-tune (contrastive generative exploration).

Decodes with ``log p_tuned - gamma * log p_base`` on the tokens the tuned model
finds plausible (:mod:`audit.cge`); ``--iterative`` teaches a working copy of
the base model each example so that the next one must differ; ``--rank-texts``
ranks given texts by their novelty score. ``audit`` is imported inside the
command (DESIGN.md: only ``editkit.cli`` reaches up, lazily).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from editkit.cli._common import (
    BASE_ONLY,
    allow_pickle_option,
    checked_loading,
    checked_out,
    device_map_option,
    dtype_option,
    handle_errors,
    out_console,
    placement_label,
    stage_progress,
)

FLAGS: dict[str, str] = {
    "gamma": "--gamma", "alpha": "--alpha", "num_beams": "--beams", "temperature": "--temperature",
    "max_new_tokens": "--max-new-tokens", "eos": "--eos", "batch_size": "--batch-size", "lr": "--lr",
    "optimizer": "--optimizer", "train": "--train",
}
"""The option behind each setting of :class:`audit.cge.CGEConfig` / ``IterativeConfig`` (for error messages)."""

SHOWN_CHARS = 300
"""Characters of each text shown in the console table (the files hold everything)."""


def read_lines(path: Path, option: str, field: str) -> list[str]:
    """Non-empty lines of a ``.txt`` file, or the ``field`` of each record of a ``.jsonl`` file.

    Raises:
        InputError: no such file, a bad JSON line (file and line named), or no entries.
    """
    from editkit.datafiles import read_texts

    return read_texts(path, (field,), option=option, what="entries")


def _shown(text: str) -> str:
    text = text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "..."
    return escape(text)


def examples_table(examples: list[Any], title: str) -> Table:
    """Generated examples, in order, with their novelty score."""
    table = Table(title=title, title_justify="left", show_lines=True)
    table.add_column("step", justify="right")
    table.add_column("score", justify="right")
    table.add_column("prompt")
    table.add_column("generated text")
    for ex in examples:
        prompt = "[dim]<bos>[/]" if ex.prompt is None else _shown(ex.prompt)
        table.add_row(str(ex.step), f"{ex.score:.3f}", prompt, _shown(ex.text))
    return table


def ranking_table(ranked: list[Any], title: str) -> Table:
    """Given texts, most novel first."""
    table = Table(title=title, title_justify="left")
    table.add_column("rank", justify="right")
    table.add_column("score", justify="right")
    table.add_column("tokens", justify="right")
    table.add_column("text")
    for rank, s in enumerate(ranked, 1):
        table.add_row(str(rank), f"{s.score:.3f}", str(s.n_tokens), _shown(s.text))
    return table


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


@handle_errors
def cge_command(
    base: str = typer.Option(..., "--base", "-b", help="Base model: zoo alias, local folder, .gguf file or hub id."),
    tuned: Path = typer.Option(..., "--tuned", "-t", help="Tuned weights: full fine-tune folder, peft LoRA adapter folder, or editkit edit output."),
    n: int | None = typer.Option(None, "-n", "--num", help="Examples to generate (default: 100 from BOS, or one per prompt; with --rank-texts: none unless given)."),
    prompts: Path | None = typer.Option(None, "--prompts", help="Prompts to continue (cycled to -n): .jsonl with a 'prompt' per line, or .txt, one per line. Default: generate from BOS."),
    iterative: bool = typer.Option(False, "--iterative", help="After each example, take an optimizer step on a working copy of the base model, so later examples must differ."),
    gamma: float = typer.Option(1.0, "--gamma", help="Weight of log p_base in the score log p_tuned - gamma * log p_base (published: 1)."),
    alpha: float = typer.Option(0.1, "--alpha", help="Plausibility cut: tokens with p_tuned < alpha * max p_tuned are never chosen (published: 0.1)."),
    beams: int = typer.Option(4, "--beams", help="Beams per example (published: 4, beam-sample)."),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", help="New tokens per example (published: 256)."),
    greedy: bool = typer.Option(False, "--greedy", help="Beam search (greedy with --beams 1) instead of sampling."),
    temperature: float = typer.Option(1.0, "--temperature", help="Sampling temperature."),
    eos: str = typer.Option("ignore", "--eos", help="ignore (EOS is an ordinary token, fixed length: published), stop (end an example at EOS) or ban."),
    lr: float = typer.Option(5e-5, "--lr", help="--iterative: learning rate (published: 5e-5)."),
    optimizer: str = typer.Option("adamw", "--optimizer", help="--iterative: adamw (published) or sgd."),
    train: str = typer.Option("full", "--train", help="--iterative: train the full working copy, or a LoRA adapter on it (lora: r=8 on attention)."),
    rank_texts: Path | None = typer.Option(None, "--rank-texts", help="Score and rank these texts by novelty: .jsonl with a 'text' per line, or .txt, one per line."),
    batch_size: int = typer.Option(8, "--batch-size", help="Examples (or texts) per forward pass."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write examples.jsonl (and ranked.jsonl, cge.json) here (must not exist unless --overwrite)."),
    seed: int = typer.Option(0, "--seed", help="Random seed for sampling (recorded)."),
    device: str = typer.Option("cpu", "--device", help="Where the models run: cpu, cuda, cuda:1 ..."),
    dtype: str = dtype_option(),
    device_map: str | None = device_map_option(),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output directory."),
    allow_pickle: bool = allow_pickle_option(BASE_ONLY),
) -> None:
    """Generate examples of what is new in a fine-tune, from the base and tuned models alone (CGE).

    Prints each example with its score (the mean over its tokens of log p_tuned - gamma * log p_base) and, with --out,
    writes examples.jsonl (step, prompt, text, score, total, n_tokens; prompt null = from BOS) and cge.json.
    With --rank-texts, also ranks the given texts by the same score (ranked.jsonl).
    """
    from dataclasses import asdict

    from audit.cge import CGEConfig, IterativeConfig, cge_generate, iterative_cge
    from audit.cge import rank_texts as rank
    from audit.tuned import detect_kind
    from editkit.errors import InputError
    from editkit.models import load_model
    from editkit.outputs import output_dir
    from editkit.report import model_info, provenance

    # Everything a user can get wrong is checked before the models are loaded.
    try:
        config = CGEConfig(
            gamma=gamma, alpha=alpha, num_beams=beams, do_sample=not greedy, temperature=temperature,
            max_new_tokens=max_new_tokens, eos=eos, batch_size=batch_size,  # type: ignore[arg-type]
        )
        update = IterativeConfig(lr=lr, optimizer=optimizer, train=train) if iterative else None
    except InputError as exc:
        field = str(exc).split("=", 1)[0]
        raise InputError(f"{FLAGS.get(field, field)}: {exc}") from None
    if n is not None and n < 1:
        raise InputError(f"-n: expected a number of examples >= 1, got {n}")
    placement = checked_loading(device_map, dtype)
    prompt_list = read_lines(prompts, "--prompts", "prompt") if prompts is not None else None
    texts = read_lines(rank_texts, "--rank-texts", "text") if rank_texts is not None else None
    generate = texts is None or n is not None or prompt_list is not None or iterative
    if generate and n is None and prompt_list is None:
        n = 100
    inputs = checked_out(out, overwrite, base, tuned, prompts, rank_texts)  # never replaced by --overwrite
    kind, _ = detect_kind(tuned)

    with stage_progress(f"loading {base}") as progress:
        lm, tok = load_model(base, dtype=dtype, device=device, device_map=placement, allow_pickle=allow_pickle,
                             progress=progress)

    examples: list[Any] = []
    log: list[dict[str, Any]] = []
    if generate:
        what = "iterative CGE" if iterative else "CGE"
        with stage_progress(what) as progress:
            if iterative:
                result = iterative_cge(lm, tuned, tok, n=n, prompts=prompt_list, config=config, update=update,
                                       seed=seed, progress=progress)
                examples, log = result.examples, result.log
            else:
                examples = cge_generate(lm, tuned, tok, n=n, prompts=prompt_list, config=config, seed=seed,
                                        progress=progress)
    ranked: list[Any] = []
    if texts is not None:
        with stage_progress("novelty of the given texts") as progress:
            ranked = rank(lm, tuned, tok, texts, gamma=gamma, batch_size=batch_size, progress=progress)

    if examples:
        mode = "iterative CGE" if iterative else "CGE"
        title = (f"{mode}: {escape(str(tuned))} ({kind}) vs {escape(base)}; gamma={gamma:g}, alpha={alpha:g}, "
                 f"{'beam search' if greedy else 'sampled'}, {beams} beam(s)")
        out_console.print(examples_table(examples, title))
    if ranked:
        out_console.print(ranking_table(ranked, f"novelty of {escape(str(rank_texts))} (gamma={gamma:g}), most novel first"))
    if out is None:
        return
    prov = provenance(["editkit", *sys.argv[1:]], [model_info(lm, base, "base")],
                      device=placement_label(device, device_map), seed=seed)
    summary = {
        "method": "cge-iterative" if iterative else "cge",
        "base": base,
        "tuned": {"path": str(tuned), "kind": kind},
        "config": asdict(config),
        "update": None if update is None else asdict(update),
        "seed": seed,
        "prompts": None if prompts is None else str(prompts),
        "examples": len(examples),
        "ranked": None if rank_texts is None else {"source": str(rank_texts), "texts": len(ranked)},
        "update_log": log,
        "provenance": asdict(prov),
    }
    with output_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        if examples:
            (tmp / "examples.jsonl").write_text(_jsonl([e.to_dict() for e in examples]), encoding="utf-8")
        if ranked:
            rows = [{"rank": r, **s.to_dict()} for r, s in enumerate(ranked, 1)]
            (tmp / "ranked.jsonl").write_text(_jsonl(rows), encoding="utf-8")
        (tmp / "cge.json").write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    out_console.print(f"\nCGE written to [bold]{escape(str(out))}[/]")
