"""The ``editkit`` command line (typer). Library code never imports this package."""

from __future__ import annotations

import typer

from editkit import __version__
from editkit.cli import audit as _audit
from editkit.cli import backpack as _backpack
from editkit.cli import mend as _mend
from editkit.cli import models as _models
from editkit.cli import probe as _probe
from editkit.cli.cge import cge_command
from editkit.cli.edit import edit_command
from editkit.cli.eval import eval_command
from editkit.cli.localize import localize_command
from editkit.cli.tuco import tuco_command

app = typer.Typer(
    name="editkit",
    help="Edit what a language model knows, and audit what a fine-tune or an edit did to it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(_models.app, name="models")
app.add_typer(_mend.app, name="mend")
app.add_typer(_backpack.app, name="backpack")
app.add_typer(_audit.app, name="audit")
app.add_typer(_probe.app, name="probe")
app.command("eval")(eval_command)
app.command("edit")(edit_command)
app.command("cge")(cge_command)
app.command("localize")(localize_command)
app.command("tuco")(tuco_command)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"editkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """editkit: model editing and auditing."""


def main() -> None:
    """Console-script entry point."""
    app()
