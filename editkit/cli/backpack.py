"""``editkit backpack train|options``: train a small Backpack that shares a model's tokenizer."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import typer
from rich.table import Table

from editkit.cli._common import (
    checked_out,
    claim_checkpoint,
    err_console,
    handle_errors,
    out_console,
    print_options,
    stage_progress,
)
from editkit.models import DEFAULT_MODEL

app = typer.Typer(help="Train small Backpack language models (sense vectors) for sense editing.", no_args_is_help=True)

DEFAULT_FACT_TABLES = ("facts.jsonl", "facts_rejected.jsonl")


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@app.command("options")
@handle_errors
def options_command() -> None:
    """List the training options (for --set and --config) with their defaults."""
    from editkit.backpack.train import BackpackTrainConfig

    print_options("editkit backpack train options", BackpackTrainConfig)


@app.command("train")
@handle_errors
def train_command(
    corpus: Path = typer.Option(..., "--corpus", help="Corpus folder with corpus_train.jsonl and corpus_val.jsonl (data/scripts/build_backpack_corpus.py)."),
    out: Path = typer.Option(..., "--out", "-o", help="Model folder to write (must not exist unless --overwrite)."),
    model: str = typer.Option(
        DEFAULT_MODEL, "--model", "-m",
        help="Model whose tokenizer the Backpack shares (and whose embeddings initialize it with init=pca): zoo alias or local folder.",
    ),
    config: Path | None = typer.Option(None, "--config", help="Training options from a YAML/JSON file."),
    set_: list[str] = typer.Option([], "--set", help="Training option key=value (repeatable), e.g. n_embd=192; see `editkit backpack options`."),
    facts: list[Path] = typer.Option(
        [], "--facts",
        help="Fact table(s) to check the trained model on (repeatable; default: the shipped facts.jsonl and facts_rejected.jsonl).",
    ),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1 ..."),
    threads: int = typer.Option(0, "--threads", min=0, help="torch CPU threads (0: torch's default)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (initialization, data order, dropout)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from OUT.checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing model folder (and start over unless --resume)."),
) -> None:
    """Train a small Backpack from scratch on a corpus, with MODEL's tokenizer, and save it.

    Writes a model folder that `from_pretrained` loads, plus training.json (options, validation loss), log.jsonl and facts_known.json (which facts of the fact tables it knows: the answer's first token is the argmax or in the top 5, or every answer token is the argmax).

    Validates and checkpoints every val_every steps (OUT.checkpoint), so an interrupted run continues with --resume. All options: `editkit backpack options`.
    """
    import torch
    from transformers import AutoTokenizer

    from editkit.backpack.corpus import TRAIN_FILE, VAL_FILE, load_corpus
    from editkit.backpack.facts import fact_knowledge, read_fact_table
    from editkit.backpack.train import (
        BackpackTrainConfig,
        has_checkpoint,
        read_embedding_matrix,
        save_backpack,
        train_backpack,
    )
    from editkit.datafiles import shipped
    from editkit.errors import EditkitError
    from editkit.models import ZOO, prepare
    from editkit.outputs import output_dir

    inputs = checked_out(out, overwrite, corpus, model, config, facts)  # never replaced by --overwrite
    missing = [name for name in (TRAIN_FILE, VAL_FILE) if not (corpus / name).is_file()]
    if missing:
        raise EditkitError(
            f"{corpus}: no {' or '.join(missing)}; build the corpus with "
            f"`python data/scripts/build_backpack_corpus.py --out-dir {corpus}`"
        )
    ckpt = claim_checkpoint(out, "Backpack", has_checkpoint, resume=resume, overwrite=overwrite)
    cfg = BackpackTrainConfig.from_file(config) if config else BackpackTrainConfig()
    cfg = cfg.with_overrides([*set_, f"seed={seed}"])
    tables = list(facts) or [shipped(name) for name in DEFAULT_FACT_TABLES]
    fact_rows = [fact for table in tables for fact in read_fact_table(table)]
    if threads:
        torch.set_num_threads(threads)

    if model in ZOO:
        with stage_progress(f"preparing {model}") as progress:
            folder = prepare(model, progress=progress)
    else:
        folder = Path(model).expanduser()
        if not (folder / "config.json").is_file():
            raise EditkitError(f"--model {model}: not a zoo alias or a local model folder (with config.json)")
    tok = AutoTokenizer.from_pretrained(str(folder))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    embeddings = read_embedding_matrix(folder) if cfg.init == "pca" else None
    with stage_progress("tokenizing the corpus") as progress:
        progress("reading", 0, 1)
        train, val = load_corpus(tok, corpus)
        progress("done", 1, 1)

    try:
        with stage_progress("training Backpack") as progress:
            result = train_backpack(
                tok, train, val, cfg, init_embeddings=embeddings, device=device,
                checkpoint_dir=ckpt, resume=resume, progress=progress,
            )
    except KeyboardInterrupt:
        where = f"the last checkpoint is in {ckpt}: continue with --resume" if ckpt.exists() else "no checkpoint was written yet"
        err_console.print(f"[yellow]interrupted[/]: {where}", highlight=False)
        raise typer.Exit(130) from None
    with stage_progress("checking facts") as progress:
        progress(f"{len(fact_rows)} facts", 0, 1)
        knowledge = fact_knowledge(result.model, tok, fact_rows)
        progress("done", 1, 1)
    extra = {
        "command": ["editkit", *sys.argv[1:]],
        "corpus": str(corpus),
        "tokenizer_model": model,
        "fact_tables": [str(t) for t in tables],
    }
    with output_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        save_backpack(result, tok, tmp, facts=knowledge, extra=extra)
    shutil.rmtree(ckpt, ignore_errors=True)

    info = result.info
    table = Table(title=f"Backpack trained with the {model} tokenizer")
    table.add_column("")
    table.add_column("value", justify="right")
    rows: list[tuple[str, object]] = [
        ("steps", info["steps"]),
        ("stopped by", info["stopped_by"]),
        ("epochs", info["epochs"]),
        ("parameters", info["n_params"]),
        ("active vocabulary", info["active_vocab_size"]),
        ("validation loss", info["val_loss"]),
        *((f"  on {name}", value) for name, value in (info["val_loss_by_source"] or {}).items()),
        ("facts known (top-1)", knowledge["share_top1"]),
        ("facts known (top-5)", knowledge["share_top5"]),
        ("facts known (all answer tokens)", knowledge["share_all_tokens"]),
        *((f"  {name} (top-1 / top-5 / all)",
           f"{_fmt(s['share_top1'])} / {_fmt(s['share_top5'])} / {_fmt(s['share_all_tokens'])} of {s['n']}")
          for name, s in knowledge["by_table"].items()),
        ("minutes", info["seconds"] / 60.0),
    ]
    for name, value in rows:
        table.add_row(name, _fmt(value))
    out_console.print(table)
    by_rel = Table(title="facts known per relation (first answer token top-1 / top-5; all answer tokens argmax)")
    for col in ("relation", "facts", "top-1", "top-5", "all tokens"):
        by_rel.add_column(col)
    for name, s in knowledge["by_relation"].items():
        by_rel.add_row(name, str(s["n"]), _fmt(s["share_top1"]), _fmt(s["share_top5"]), _fmt(s["share_all_tokens"]))
    out_console.print(by_rel)
    out_console.print(f"\nBackpack written to [bold]{out}[/] (facts per row in {out}/facts_known.json)")
