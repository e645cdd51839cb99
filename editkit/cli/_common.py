"""What every command shares: error handling, progress bars, the console.

Errors a user can fix (:class:`~editkit.errors.EditkitError`) print one line on
stderr and exit with code 2; Ctrl-C exits 130 and SIGTERM 143 (the shell's
128 + signal number), both through the same clean-up, leaving no half-written
output; ``EDITKIT_DEBUG=1`` shows tracebacks instead.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from editkit.errors import EditkitError

F = TypeVar("F", bound=Callable[..., Any])

err_console = Console(stderr=True)
out_console = Console()


def debug() -> bool:
    """Whether ``EDITKIT_DEBUG`` asks for tracebacks."""
    return os.environ.get("EDITKIT_DEBUG", "") not in ("", "0", "false", "no")


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` on one line and return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so that the same clean-up runs."""

    signum = signal.SIGTERM


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside the block SIGTERM raises :class:`Terminated` (a KeyboardInterrupt) instead of killing at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def handle_errors(fn: F) -> F:
    """Decorate a command: user errors -> one line + exit 2; Ctrl-C -> exit 130, SIGTERM -> 143."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with sigterm_as_interrupt():
            return _run(fn, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a command: a user error -> one line + its exit code; an interruption -> 128 + signal."""
    if debug():
        return fn(*args, **kwargs)
    try:
        with _quiet_libraries():
            return fn(*args, **kwargs)
    except EditkitError as exc:
        lines = str(exc).splitlines() or [type(exc).__name__]
        # escape: messages name files and extras like editkit[gpu], not rich markup
        err_console.print(f"[bold red]error:[/] {escape(lines[0])}", highlight=False, soft_wrap=True)
        for line in lines[1:]:
            err_console.print(f"  {escape(line)}", highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        err_console.print(f"[yellow]interrupted[/] ({signal.Signals(signum).name}): no partial output was left")
        raise typer.Exit(128 + signum) from None
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except Exception as exc:  # a bug: one line, and how to see more
        msg = str(exc).splitlines()[0] if str(exc) else ""
        err_console.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {escape(msg)} "
            "(run with EDITKIT_DEBUG=1 for the traceback, and please report it)",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1) from None


@contextlib.contextmanager
def _quiet_libraries() -> Iterator[None]:
    """Keep third-party warnings and log chatter out of the terminal (debug mode keeps them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from transformers.utils import logging as hf_logging

        level = hf_logging.get_verbosity()
        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()  # editkit shows its own progress
        logging.getLogger("nnsight").setLevel(logging.ERROR)
        try:
            yield
        finally:
            hf_logging.set_verbosity(level)
            if bars:
                hf_logging.enable_progress_bar()


@contextlib.contextmanager
def stage_progress(title: str) -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar on stderr driven by ``callback(stage, done, total)`` calls."""
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.fields[title]}[/]: {task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not sys.stderr.isatty() and not os.environ.get("EDITKIT_PROGRESS"),
    )
    with progress:
        task = progress.add_task("starting", total=1, title=title)

        def update(stage: str, done: int, total: int) -> None:
            progress.update(task, description=stage, completed=done, total=max(total, 1))

        yield update
    if not sys.stderr.isatty():
        err_console.print(f"{title}: done", highlight=False)


BASE_ONLY = "--base (tuned weights and adapters are read from safetensors only)"
"""What ``--allow-pickle`` covers in the commands that compare a tuned model with its base."""


def allow_pickle_option(what: str = "the model") -> Any:
    """The ``--allow-pickle`` option of every command that loads a model (off: safetensors only).

    Args:
        what: whose weights it lets load, for the help text (``"--base"``...).
    """
    return typer.Option(
        False, "--allow-pickle",
        help=f"Also read pickle-based weights (.bin) of {what}: only for files you trust, unpickling can run code.",
    )


DTYPES: tuple[str, ...] = ("float32", "bfloat16", "float16")
"""What ``--dtype`` accepts: the storage dtype of the weights (the sensitive math runs in fp32 anyway)."""


def dtype_option(default: str = "float32") -> Any:
    """The ``--dtype`` option of every command that loads a model."""
    return typer.Option(
        default, "--dtype",
        help="Weights' storage dtype: float32, bfloat16 or float16 (SVDs, norms and metrics run in float32 whatever it is).",
    )


def device_map_option() -> Any:
    """The ``--device-map`` option of every command that loads a model (``edit`` refuses offloaded edited layers)."""
    return typer.Option(
        None, "--device-map", metavar="MAP",
        help="Spread the model over devices with accelerate: auto, balanced, sequential, or a .json file mapping "
             "module names to devices (0, \"cuda:1\", \"cpu\", \"disk\"); --device is then ignored.",
    )


def checked_loading(device_map: str | None, dtype: str) -> str | dict[str, int | str] | None:
    """Check ``--device-map`` and ``--dtype`` before any work; the device map to pass to ``load_model``.

    Raises:
        InputError: one line naming the option, the value and what it accepts (exit code 2).
    """
    from editkit.errors import InputError
    from editkit.placement import parse_device_map

    if dtype not in DTYPES:
        raise InputError(f"--dtype: expected one of {', '.join(DTYPES)}, got {dtype!r}")
    return parse_device_map(device_map, option="--device-map")


def placement_label(device: str, device_map: str | None) -> str:
    """Where a command ran, for provenance: ``--device``, or ``device_map=<what was given>``."""
    return device if device_map is None else f"device_map={device_map}"


def claim_checkpoint(
    out: Path, what: str, has_checkpoint: Callable[[Path], bool], *, resume: bool, overwrite: bool,
    drop_empty: bool = False,
) -> Path:
    """``OUT.checkpoint`` checked against --resume/--overwrite, for a command that checkpoints.

    A checkpoint left by an interrupted run is continued with --resume, or removed with
    --overwrite; otherwise it is an error, so that nothing is silently thrown away. With
    ``drop_empty`` a folder that holds no checkpoint (``has_checkpoint`` false) is removed first.

    Raises:
        EditkitError: a leftover checkpoint without --resume/--overwrite, or --resume with none.
    """
    import shutil

    ckpt = checkpoint_dir(out)
    if drop_empty and ckpt.is_dir() and not has_checkpoint(ckpt):
        shutil.rmtree(ckpt, ignore_errors=True)
    if ckpt.exists() and not resume:
        if not overwrite:
            raise EditkitError(
                f"an interrupted run left a checkpoint in {ckpt}: pass --resume to continue it, or --overwrite to start over"
            )
        shutil.rmtree(ckpt)
    if resume and not has_checkpoint(ckpt):
        raise EditkitError(f"no {what} checkpoint to resume from in {ckpt}: run without --resume")
    return ckpt


def checked_out(out: os.PathLike[str] | str | None, overwrite: bool, *inputs: object) -> list[Path]:
    """Check ``--out`` before any work; return the command's local inputs to pass on to ``output_dir``.

    ``inputs`` are the command's input specs (files, folders, model specs that may be
    hub ids, lists of files, None); see :func:`editkit.outputs.input_paths`. An output
    directory that would replace one of them (or the current directory) is refused
    even with ``--overwrite``. ``out`` None (no output asked for) checks nothing.
    """
    from editkit.outputs import check_output_dir, input_paths

    held = input_paths(*inputs)
    if out is not None:
        check_output_dir(out, overwrite=overwrite, inputs=held)
    return held


def parse_formats(value: str) -> tuple[str, ...]:
    """``json,md,html`` -> a tuple, checked against the report renderers."""
    from editkit.report import RENDERERS

    formats = tuple(f.strip() for f in value.split(",") if f.strip())
    unknown = [f for f in formats if f not in RENDERERS]
    if unknown or not formats:
        raise EditkitError(
            f"--format: unknown format(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(RENDERERS)}"
        )
    return formats


def print_options(title: str, config_cls: Any) -> None:
    """A table of a config dataclass's options (for --set and --config): name, default, meaning."""
    from rich.table import Table

    table = Table(title=title)
    for col in ("option", "default", "meaning"):
        table.add_column(col)
    defaults = config_cls().to_dict()
    for name, text in config_cls.help().items():
        value = defaults[name]
        shown = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
        table.add_row(name, shown or "-", text)
    out_console.print(table)


CHECKPOINT_SUFFIX = ".checkpoint"


def checkpoint_dir(out: Path) -> Path:
    """Where a training command's ``--out DIR`` keeps its checkpoint while training: ``DIR.checkpoint`` beside it."""
    return out.parent / f"{out.name}{CHECKPOINT_SUFFIX}"
