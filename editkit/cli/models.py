"""``editkit models list|prepare``: the zoo of embedded models."""

from __future__ import annotations

import typer
from rich.table import Table

from editkit.cli._common import handle_errors, out_console, stage_progress
from editkit.models import DEFAULT_MODEL, prepare, zoo_status

app = typer.Typer(help="Show and prepare the zoo of embedded models.", no_args_is_help=True)


@app.command("list")
@handle_errors
def list_models() -> None:
    """List the zoo: alias, whether its wheel is installed, whether it is converted."""
    table = Table(title="editkit model zoo")
    for col in ("alias", "installed", "converted", "description", "cache"):
        table.add_column(col)
    for row in zoo_status():
        alias = row["alias"] + (" (default)" if row["default"] else "")
        table.add_row(
            alias,
            "yes" if row["installed"] else "[red]no[/]",
            "yes" if row["converted"] else "no",
            row["description"],
            row["cache"],
        )
    out_console.print(table)


@app.command("prepare")
@handle_errors
def prepare_model(
    alias: str = typer.Argument(DEFAULT_MODEL, help="Zoo alias to convert into the cache."),
) -> None:
    """Convert a zoo model's GGUF file into the safetensors cache (once)."""
    with stage_progress(f"preparing {alias}") as progress:
        folder = prepare(alias, progress=progress)
    out_console.print(f"{alias}: ready in {folder}")
