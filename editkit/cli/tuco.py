"""``editkit tuco``: how much of a tuned model's computation on each prompt is due to tuning.

TuCo (Nuti et al., ICML 2025; :mod:`audit.tuco`) per prompt: the fine-tuning
share of the summed block updates at the last prompt token, and OutputCo. With
``--alpha``, also greedy generations with the fine-tuning component scaled by
each alpha at every block and step.

Layering: ``audit`` is imported inside the command function only (DESIGN.md).
"""

from __future__ import annotations

import json
import math
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


def parse_alphas(values: list[str] | None) -> list[float]:
    """``--alpha 0.9 --alpha 1.1`` or ``--alpha 0.9,1.1`` -> floats (finite, in order, no repeats).

    >>> parse_alphas(["0.9,1", "1.1"])
    [0.9, 1.0, 1.1]
    """
    from editkit.errors import InputError

    out: list[float] = []
    for value in values or []:
        for part in value.split(","):
            try:
                alpha = float(part)
            except ValueError:
                raise InputError(f"--alpha: expected a number (e.g. 0.75 or 0.9,1,1.1), got {part.strip()!r}") from None
            if not math.isfinite(alpha):
                raise InputError(f"--alpha: expected a finite number, got {part.strip()!r}")
            if alpha not in out:
                out.append(alpha)
    return out


def _check_options(batch_size: int, max_new_tokens: int, padding: str, impl: str) -> None:
    from audit.tuco.passes import get_runner
    from editkit.errors import InputError

    if batch_size < 1:
        raise InputError(f"--batch-size: expected an integer >= 1, got {batch_size}")
    if max_new_tokens < 1:
        raise InputError(f"--max-new-tokens: expected an integer >= 1, got {max_new_tokens}")
    if padding not in ("left", "right"):
        raise InputError(f"--padding: expected 'left' or 'right', got {padding!r}")
    get_runner(impl)


def _short(text: str, width: int = 60) -> str:
    """One line of at most ``width`` characters; newlines and tabs shown as escapes."""
    flat = json.dumps(text, ensure_ascii=False)[1:-1]
    return escape(flat if len(flat) <= width else flat[: width - 1] + "…")


def tuco_table(results: list[Any], title: str) -> Table:
    """TuCo and OutputCo per prompt."""
    table = Table(title=title, title_justify="left")
    for name, justify in (("#", "right"), ("prompt", "left"), ("tokens", "right"), ("TuCo", "right"), ("OutputCo", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in results:
        table.add_row(str(r.index), _short(r.prompt), str(r.n_tokens), f"{r.tuco:.4f}", f"{r.outputco:.4f}")
    return table


def generations_table(generations: list[Any]) -> Table:
    """One row per alpha and prompt."""
    table = Table(title="steered generations (greedy)", title_justify="left")
    for name, justify in (("alpha", "right"), ("#", "right"), ("prompt", "left"), ("generation", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for g in generations:
        table.add_row(f"{g.alpha:g}", str(g.index), _short(g.prompt, 40), _short(g.text))
    return table


def _pair(lm: Any, weights: Any, path: Path) -> Any:
    """A peft model for a LoRA adapter (base blocks: adapters off), else the base plus the tuned weights.

    Under a device map that offloads an adapted weight, a LoRA adapter is merged into deltas instead.
    """
    from audit.tuco import PeftPair
    from audit.tuco.offloaded import delta_pair
    from audit.tuned.lora import load_peft_adapter
    from editkit.placement import split_offloaded

    if weights.kind != "lora" or split_offloaded(lm, dict.fromkeys(weights))[1]:  # tied aliases count
        return delta_pair(lm, weights)
    return PeftPair(load_peft_adapter(lm, path))  # safetensors only, as LoraAdapter read it


@handle_errors
def tuco_command(
    base: str = typer.Option(..., "--base", "-b", help="Base model: zoo alias, local folder, .gguf file or hub id."),
    tuned: Path = typer.Option(..., "--tuned", "-t", help="Tuned weights: full fine-tune folder, peft LoRA adapter folder, or editkit edit output."),
    prompts: Path = typer.Option(..., "--prompts", "-p", help="Prompts: .jsonl with a 'prompt' (or 'text') field per line, or .txt with one prompt per line."),
    alpha: list[str] | None = typer.Option(None, "--alpha", "-a", help="Also generate with the fine-tuning component scaled by ALPHA at every block and step (repeat, or comma-separate; published grid 0.75,0.9,0.95,1,1.05,1.1,1.25)."),
    max_new_tokens: int = typer.Option(32, "--max-new-tokens", help="New tokens per steered generation (greedy; the whole sequence is re-run each step)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output directory for tuco.jsonl, tuco.json and generations.jsonl (must not exist unless --overwrite); without it, only the table is printed."),
    chat: bool | None = typer.Option(None, "--chat/--no-chat", help="Wrap prompts in the tokenizer's chat template (default: when it has one)."),
    system: str | None = typer.Option(None, "--system", help="System message for the chat template."),
    batch_size: int = typer.Option(8, "--batch-size", help="Prompts per forward pass."),
    padding: str = typer.Option("left", "--padding", help="Pad batches on the 'left' or 'right' (same numbers; generation always pads left)."),
    impl: str = typer.Option("hooks", "--impl", help="Implementation: 'hooks' (reference) or 'nnsight'."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1 ..."),
    dtype: str = dtype_option(),
    device_map: str | None = device_map_option(),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output directory."),
    allow_pickle: bool = allow_pickle_option(BASE_ONLY),
) -> None:
    """TuCo and OutputCo per prompt (tuning contribution at the last prompt token), and steering with --alpha.

    Prints a table; with --out, writes tuco.jsonl (per prompt: tuco, outputco, per-block L1 norms of PTC and FTC), tuco.json (summary and settings) and, with --alpha, generations.jsonl (per alpha and prompt).
    """
    from dataclasses import asdict

    from audit.tuco import read_prompts, steered_generate, tuco, write_tuco_files
    from audit.tuned import detect_kind, load_tuned
    from editkit.models import load_model
    from editkit.outputs import output_dir
    from editkit.report import model_info, provenance

    # Everything a user can get wrong is checked before the model is loaded.
    _check_options(batch_size, max_new_tokens, padding, impl)
    placement = checked_loading(device_map, dtype)
    alphas = parse_alphas(alpha)
    texts = read_prompts(prompts)
    inputs = checked_out(out, overwrite, base, tuned, prompts)  # never replaced by --overwrite
    _, tuned_path = detect_kind(tuned)

    with stage_progress(f"loading {base}") as progress:
        lm, tok = load_model(base, dtype=dtype, device=device, device_map=placement, allow_pickle=allow_pickle,
                             progress=progress)
    base_info = model_info(lm, base, "base")
    weights = load_tuned(lm, tuned_path)
    pair = _pair(lm, weights, tuned_path)
    with stage_progress(f"tuco on {len(texts)} prompts") as progress:
        results = tuco(None, pair, tok, texts, chat=chat, system_prompt=system, batch_size=batch_size,
                       padding_side=padding, impl=impl, progress=progress)  # type: ignore[arg-type]
    generations = []
    if alphas:
        with stage_progress(f"steered generation ({len(alphas)} alphas)") as progress:
            generations = steered_generate(None, pair, tok, texts, alphas=alphas, max_new_tokens=max_new_tokens,
                                           chat=chat, system_prompt=system, batch_size=batch_size, impl=impl,
                                           progress=progress)

    title = f"TuCo of {escape(str(tuned))} ({weights.kind}) vs {escape(base)}"
    out_console.print(tuco_table(results, title))
    if generations:
        out_console.print(generations_table(generations))
    if out is None:
        return
    meta = {
        "base": base,
        "tuned": {"path": str(tuned), "kind": weights.kind, "pair": pair.kind},
        "settings": {"chat": chat, "system": system, "batch_size": batch_size, "padding": padding, "impl": impl,
                     "alphas": alphas, "max_new_tokens": max_new_tokens, "dtype": dtype, "device_map": device_map},
        "provenance": asdict(provenance(["editkit", *sys.argv[1:]], [base_info],
                                        device=placement_label(device, device_map))),
    }
    with output_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        write_tuco_files(tmp, results, generations, meta=meta)
    out_console.print(f"\nTuCo written to [bold]{escape(str(out))}[/]")
