"""``editkit localize``: where would an edit go? A per-layer table and a plot."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from editkit.cli._common import (
    allow_pickle_option,
    checked_out,
    handle_errors,
    out_console,
    parse_formats,
    stage_progress,
)
from editkit.models import DEFAULT_MODEL


@handle_errors
def localize_command(
    facts: Path = typer.Option(..., "--facts", "-f", help="Edit requests (canonical JSONL, CounterFact, ZsRE)."),
    strategy: str = typer.Option(
        "causal-trace", "--strategy", "-s", help="sweep, causal-trace, gradient, fixed or senses (Backpack models)."
    ),
    out: Path = typer.Option(Path("runs/localize"), "--out", "-o", help="Output directory."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Zoo alias, local folder, .gguf file or hub id."),
    module: str = typer.Option("mlp_down", "--module", help="mlp_down, mlp_up, mlp, attn_out or block."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Use only the first N requests."),
    set_: list[str] = typer.Option([], "--set", help="Strategy option key=value (repeatable, e.g. kind=mlp)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda ..."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    formats: str = typer.Option("json,md,html", "--format", help="Report formats to write."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output directory."),
    allow_pickle: bool = allow_pickle_option("--model"),
) -> None:
    """Score every layer with a localization strategy; print the table, write the report and a plot."""
    import torch

    from editkit.errors import EditkitError
    from editkit.localize import localize, strategy_names
    from editkit.models import load_model
    from editkit.outputs import output_dir
    from editkit.report import Report, Table, model_info, provenance, render_console, write_report
    from editkit.requests import load_requests

    fmts = parse_formats(formats)
    inputs = checked_out(out, overwrite, facts, model)  # never replaced by --overwrite
    if strategy not in strategy_names():
        raise EditkitError(f"--strategy: choose one of {', '.join(strategy_names())}, not {strategy!r}")
    options: dict[str, Any] = {"module": module}
    for item in set_:
        key, sep, value = item.partition("=")
        if not sep:
            raise EditkitError(f"--set {item!r}: expected key=value")
        options[key] = _parse_value(value)
    requests = load_requests(facts, limit=limit)
    torch.manual_seed(seed)
    with stage_progress(f"loading {model}") as progress:
        lm, tok = load_model(model, device=device, allow_pickle=allow_pickle, progress=progress)
    with stage_progress(f"localizing ({strategy})") as progress:
        try:
            location = localize(strategy, lm, tok, requests, progress=progress, **options)
        except TypeError as exc:
            raise EditkitError(f"--set: {exc}") from None
    rows = location.scores.get("per_layer", [])
    columns = list(rows[0]) if rows else ["layer", "score"]
    if "senses" in location.scores:  # Backpack sense selection: (word, sense) pairs, not layers
        tables = [_senses_table(lm, tok, location)]
    else:
        tables = [
            Table(title="Per-layer scores", columns=columns, rows=[[r.get(c) for c in columns] for r in rows],
                  description=str(location.scores.get("criterion", ""))),
        ]
    report = Report(
        kind="localize",
        title=f"{strategy} localization on {model} ({len(requests)} requests)",
        provenance=provenance(["editkit", *sys.argv[1:]], [model_info(lm, model, "model")], device=device, seed=seed),
        config={"strategy": strategy, "options": options, "facts": str(facts)},
        metrics={"chosen": {"layer": float(location.layers[0]) if location.layers else None}},
        tables=tables,
        notes=[location.reason],
    )
    with output_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        write_report(report, tmp, formats=fmts)
        if rows:
            _plot(rows, location.layers, strategy, tmp / "layers.png")
    render_console(report, out_console)
    out_console.print(f"\nchosen: {location.describe()}; report{' and plot' if rows else ''} in [bold]{out}[/]")


def _senses_table(lm: Any, tok: Any, location: Any) -> Any:
    """The chosen (word, sense) pairs of the ``senses`` strategy, with each sense's top output words."""
    from editkit.localize.senses import sense_top_words
    from editkit.report import Table

    words = sense_top_words(lm, tok, location, top_n=8)
    columns = ["word", "token", "sense", "score", "background", "top words"]
    body = [
        [repr(row["word"]), row["token"], row["sense"], row["score"], row["background"], " ".join(map(repr, w.top_words))]
        for row, w in zip(location.scores["senses"], words, strict=True)
    ]
    return Table(title="Chosen senses", columns=columns, rows=body,
                 description=str(location.scores.get("criterion", "")), fmt={"score": ".4g", "background": ".4g"})


def _parse_value(value: str) -> Any:
    """``3`` -> int, ``0.5`` -> float, ``true`` -> bool, ``1,2,3`` -> list, else the string."""
    if "," in value and "=" not in value:
        return [_parse_value(v.strip()) for v in value.split(",") if v.strip()]
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            continue
    return {"true": True, "false": False}.get(value.lower(), value)


def _plot(rows: list[dict[str, Any]], chosen: tuple[int, ...], strategy: str, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.2), dpi=120)
    ax = fig.add_subplot()
    layers = [r["layer"] for r in rows]
    ax.plot(layers, [r["score"] for r in rows], marker="o", color="#3b6ea8")
    for layer in chosen:
        ax.axvline(layer, color="#c0392b", linestyle="--", linewidth=1)
    ax.set_xlabel("layer")
    ax.set_ylabel("score")
    ax.set_title(f"{strategy}: score per layer (chosen in red)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
