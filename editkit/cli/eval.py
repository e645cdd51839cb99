"""``editkit eval``: score an (unedited) model on edit requests with every metric."""

from __future__ import annotations

import sys
from pathlib import Path

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
def eval_command(
    facts: Path = typer.Option(..., "--facts", "-f", help="Edit requests: canonical JSONL, CounterFact or ZsRE."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (must not exist unless --overwrite)."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Zoo alias, local folder, .gguf file or hub id."),
    reference: str = typer.Option(
        "default", "--reference", help="Reference text for perplexity (.jsonl/.txt), 'default' (shipped) or 'none'."
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Evaluate only the first N requests."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Pairs per forward pass."),
    generation: bool = typer.Option(True, "--generation/--no-generation", help="Generation exact-match metrics."),
    fluency: bool = typer.Option(True, "--fluency/--no-fluency", help="n-gram-entropy fluency."),
    compare: str = typer.Option("mean", "--compare", help="ES/PS/NS compare 'mean' token log-probs or 'sum'."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1 ..."),
    dtype: str = typer.Option("float32", "--dtype", help="float32, bfloat16 or float16."),
    seed: int = typer.Option(0, "--seed", help="Random seed (recorded in the report)."),
    formats: str = typer.Option("json,md,html", "--format", help="Report formats to write."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output directory."),
    allow_pickle: bool = allow_pickle_option("--model"),
) -> None:
    """Evaluate a model on edit requests and write the report (console, JSON, Markdown, HTML)."""
    import torch

    from editkit.datafiles import read_texts, shipped
    from editkit.errors import EditkitError
    from editkit.evaluate import EvalConfig, evaluate
    from editkit.evaluate.report import eval_report
    from editkit.models import load_model
    from editkit.outputs import output_dir
    from editkit.report import model_info, provenance, render_console, weights_sha256, write_report
    from editkit.requests import load_requests, save_requests

    # Everything a user can get wrong is checked before the model is loaded.
    fmts = parse_formats(formats)
    inputs = checked_out(out, overwrite, facts, reference, model)  # never replaced by --overwrite
    if compare not in ("mean", "sum"):
        raise EditkitError(f"--compare must be 'mean' or 'sum', not {compare!r}")
    requests = load_requests(facts, limit=limit)
    texts = None
    if reference == "default":
        texts = read_texts(shipped("reference_text.jsonl"))
    elif reference != "none":
        texts = read_texts(reference)

    torch.manual_seed(seed)
    with stage_progress(f"loading {model}") as progress:
        lm, tok = load_model(model, dtype=dtype, device=device, allow_pickle=allow_pickle, progress=progress)
    cfg = EvalConfig(batch_size=batch_size, generation=generation, fluency=fluency, compare=compare)  # type: ignore[arg-type]
    with stage_progress(f"evaluating {len(requests)} requests") as progress:
        result = evaluate(lm, tok, requests, config=cfg, reference_texts=texts, progress=progress)
    prov = provenance(
        ["editkit", *sys.argv[1:]],
        [model_info(lm, model, "model", weights_sha256=weights_sha256(lm))],
        device=device,
        seed=seed,
    )
    report = eval_report(
        {"model": result},
        prov,
        title=f"Evaluation of {model} on {facts.name}",
        config={"facts": str(facts), "n_requests": len(requests), "reference": reference},
    )
    with output_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        write_report(report, tmp, formats=fmts)
        save_requests(requests, tmp / "requests.jsonl")
    render_console(report, out_console)
    out_console.print(f"\nreport written to [bold]{out}[/] ({', '.join(fmts)})")
