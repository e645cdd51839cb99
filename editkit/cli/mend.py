"""``editkit mend train``: train MEND editor networks for one base model."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import typer
from rich.table import Table

from editkit.cli._common import (
    allow_pickle_option,
    checked_out,
    claim_checkpoint,
    err_console,
    handle_errors,
    out_console,
    print_options,
    stage_progress,
)
from editkit.models import DEFAULT_MODEL

#: Defaults of `mend nullspace` (chosen on the first 40 requests of data/counterfact.jsonl with
#: --templates, for the default model; README "MEND").
NULL_THRESHOLD = 1e-3
NULL_SCALE = 1.25

app = typer.Typer(help="Train MEND editors (learned gradient editing) for a base model.", no_args_is_help=True)


@app.command("options")
@handle_errors
def options_command() -> None:
    """List the training options (for --set and --config) with their defaults."""
    from editkit.editors.mend import MendTrainConfig

    print_options("editkit mend train options", MendTrainConfig)


@app.command("train")
@handle_errors
def train_command(
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Base model: zoo alias, local folder, .gguf file or hub id."),
    train: Path = typer.Option(..., "--train", help="Training edit requests (canonical JSONL, CounterFact or ZsRE) with paraphrases and neighborhood prompts."),
    val: Path | None = typer.Option(None, "--val", help="Validation requests (default: hold out val_fraction of --train)."),
    out: Path = typer.Option(..., "--out", "-o", help="Editor directory to write (must not exist unless --overwrite)."),
    config: Path | None = typer.Option(None, "--config", help="Training options from a YAML/JSON file."),
    set_: list[str] = typer.Option([], "--set", help="Training option key=value (repeatable), e.g. rank=128; see `editkit mend options`."),
    lr: float | None = typer.Option(
        None, "--lr",
        help="Adam learning rate of the editor networks. Default 1e-4, for the default 500 steps: minutes "
        "(roughly 10-20) for a 135M model on a laptop CPU. The published 1e-6 is for up to 500K steps.",
    ),
    max_steps: int | None = typer.Option(None, "--max-steps", min=1, help="Optimizer steps at most (default 500)."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Edit requests per step (default 8)."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Use only the first N training requests."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1 ..."),
    seed: int = typer.Option(0, "--seed", help="Random seed (initialization, data order, sampling)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from OUT.checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing editor directory (and start over)."),
    null_threshold: float = typer.Option(
        0.0, "--null-threshold", min=0.0, max=0.5,
        help="Also store a null space built from the training requests' neighborhood prompts: input directions "
        "of the edited matrices above this fraction of the largest eigenvalue over them are removed from updates "
        "(0, the default: none; a null space of the templates you will edit, `editkit mend nullspace --templates`, "
        "protects their neighbors better).",
    ),
    null_scale: float = typer.Option(NULL_SCALE, "--null-scale", help="Factor on the projected update (> 0)."),
    null_templates: Path | None = typer.Option(
        None, "--null-templates",
        help="Build that null space from these requests' templates filled with other subjects (as `mend nullspace "
        "--templates`) instead of the training neighbors.",
    ),
    null_training: bool = typer.Option(
        False, "--null-training/--no-null-training",
        help="Train (and validate) with updates projected onto the null space, as they are when editing.",
    ),
    allow_pickle: bool = allow_pickle_option("--model"),
) -> None:
    """Train MEND editor networks for one base model and save them (safetensors + JSON).

    Loss: 0.1 x NLL of the target on a paraphrase under the edited weights, plus 1.0 x KL(base || edited) on the requests' neighborhood prompts.

    Validates every val_every steps and stops early; keeps a checkpoint in OUT.checkpoint, so an interrupted run continues with --resume. All options: `editkit mend options`.
    """
    import torch

    from editkit.editors.mend import MendTrainConfig, save_editor, train_editor
    from editkit.editors.mend.nullspace import (
        NullSpaceFull,
        build_null_space,
        check_scale,
        nullspace_texts,
        save_null_space,
        template_texts,
    )
    from editkit.editors.mend.spec import mend_location
    from editkit.editors.mend.store import has_checkpoint
    from editkit.errors import InputError
    from editkit.models import load_model
    from editkit.outputs import output_dir
    from editkit.requests import load_requests

    inputs = checked_out(out, overwrite, model, train, val, config, null_templates)  # never replaced by --overwrite
    ckpt = claim_checkpoint(out, "MEND", has_checkpoint, resume=resume, overwrite=overwrite)
    cfg = MendTrainConfig.from_file(config) if config else MendTrainConfig()
    direct = [f"{k}={v}" for k, v in (("lr", lr), ("max_steps", max_steps), ("batch_size", batch_size)) if v is not None]
    cfg = cfg.with_overrides([*set_, *direct, f"seed={seed}"])
    train_requests = load_requests(train, limit=limit)
    val_requests = load_requests(val) if val else None
    if null_threshold > 0:
        check_scale(null_scale, "--null-scale")
    elif null_training:
        raise InputError("--null-training needs a null space: pass --null-threshold (e.g. 2e-3)")

    torch.manual_seed(seed)
    with stage_progress(f"loading {model}") as progress:
        lm, tok = load_model(model, device=device, allow_pickle=allow_pickle, progress=progress)
    null = None
    if null_threshold > 0:  # before training: it depends only on the base model, and can refuse
        params = mend_location(lm, cfg.layers, cfg.modules).params
        try:
            with stage_progress("null space of preserved keys") as progress:
                preserved = (
                    template_texts(load_requests(null_templates))
                    if null_templates is not None else nullspace_texts(train_requests)
                )
                null = build_null_space(lm, tok, params, preserved, threshold=null_threshold, scale=null_scale,
                                        progress=progress)
        except NullSpaceFull as exc:
            if null_training:
                raise
            err_console.print(f"[yellow]no null space stored[/]: {exc}", highlight=False, soft_wrap=True)
    try:
        with stage_progress("training MEND") as progress:
            result = train_editor(
                lm, tok, train_requests, val_requests, cfg, base_model=model,
                checkpoint_dir=ckpt, resume=resume, progress=progress, null=null if null_training else None,
            )
    except KeyboardInterrupt:
        where = f"the last checkpoint is in {ckpt}: continue with --resume" if ckpt.exists() else "no checkpoint was written yet"
        err_console.print(f"[yellow]interrupted[/]: {where}", highlight=False)
        raise typer.Exit(130) from None
    info = {
        **result.info, "command": ["editkit", *sys.argv[1:]], "train_file": str(train.resolve()),
        "train_limit": limit, "val_file": str(val.resolve()) if val else None,
    }
    with output_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        save_editor(result.net, tmp, training=info, log=result.log)
        if null is not None:
            save_null_space(null, tmp)
    shutil.rmtree(ckpt, ignore_errors=True)

    table = Table(title=f"MEND editor for {model}")
    table.add_column("")
    table.add_column("value", justify="right")
    best = result.info.get("best_val") or {}
    rows = [
        ("steps", result.info["steps"]),
        ("best step", result.info["best_step"]),
        ("stopped early", "yes" if result.info["stopped_early"] else "no"),
        ("validated", "with the null space" if null is not None and null_training else "without a null space"),
        ("val edit success", best.get("edit_success")),
        ("val drawdown", best.get("drawdown")),
        ("val edit NLL", best.get("edit_nll")),
        ("val locality KL", best.get("loc_kl")),
        ("edited matrices", result.net.spec.location.describe()),
        ("null space", null.describe() if null else "none"),
        ("seconds", result.info["seconds"]),
    ]
    for name, value in rows:
        table.add_row(name, "-" if value is None else (f"{value:.4g}" if isinstance(value, float) else str(value)))
    out_console.print(table)
    out_console.print(f"\neditor written to [bold]{out}[/]; use it with `editkit edit --method mend --editor {out}`")


@app.command("nullspace")
@handle_errors
def nullspace_command(
    editor: Path = typer.Option(..., "--editor", help="Trained MEND editor directory (read only)."),
    out: Path = typer.Option(..., "--out", "-o", help="New editor directory: the editor's files plus nullspace.safetensors."),
    texts: Path | None = typer.Option(
        None, "--texts",
        help="Requests whose neighborhood prompts (with answers) are the preserved text, plus general passages "
        "(default: the editor's own training file).",
    ),
    templates: Path | None = typer.Option(
        None, "--templates",
        help="Requests to be edited: their prompt templates filled with other subjects of the shipped fact tables "
        "(never theirs, never their neighbors), plus general passages, are the preserved text, as LocFT-BF builds it. "
        "Instead of --texts.",
    ),
    per_template: int = typer.Option(40, "--per-template", min=1, help="With --templates: subjects per template."),
    threshold: float = typer.Option(NULL_THRESHOLD, "--threshold", min=0.0, max=0.5, help="Eigenvalue cut, relative to the largest; 0 writes the editor without a null space."),
    scale: float = typer.Option(NULL_SCALE, "--scale", help="Factor on the projected update (> 0)."),
    model: str | None = typer.Option(None, "--model", "-m", help="The editor's base model (default: as recorded in the editor)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1 ..."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out directory."),
    allow_pickle: bool = allow_pickle_option("--model"),
) -> None:
    """Copy a trained MEND editor with a null space, so its updates leave preserved keys alone (AlphaEdit's projection).

    The edited matrices' inputs are collected over preserved text (same-relation prompts about other subjects, plus general passages); the input directions they use are removed from every update, and the update is multiplied by --scale. `editkit edit --method mend` uses it unless --set null_space=false. `editkit mend train --null-threshold` stores one at training time.
    """
    from editkit.editors.mend import load_editor, read_editor_config
    from editkit.editors.mend.nullspace import (
        FILE,
        build_null_space,
        check_scale,
        nullspace_texts,
        save_null_space,
        template_texts,
    )
    from editkit.editors.mend.spec import check_model
    from editkit.errors import InputError
    from editkit.models import load_model
    from editkit.outputs import output_dir
    from editkit.report import weights_sha256
    from editkit.requests import load_requests

    net = load_editor(editor)
    check_scale(scale, "--scale")
    if texts is not None and templates is not None:
        raise InputError("--texts and --templates: pass one of them")
    limit = None
    if texts is None and templates is None:
        training = read_editor_config(editor).get("training", {})
        recorded = training.get("train_file")
        if not recorded or not Path(recorded).is_file():
            raise InputError(f"{editor}: its training file is not recorded or not found: pass --texts or --templates")
        texts, limit = Path(recorded), training.get("train_limit")
    base = model or net.spec.base_model
    inputs = checked_out(out, overwrite, editor, texts, templates, base)
    null = None
    if threshold > 0:
        if templates is not None:
            preserved = template_texts(load_requests(templates), per_template=per_template)
        else:
            assert texts is not None  # one of them is set above
            preserved = nullspace_texts(load_requests(texts, limit=limit))
        with stage_progress(f"loading {base}") as progress:
            lm, tok = load_model(base, device=device, allow_pickle=allow_pickle, progress=progress)
        check_model(lm, net.spec, where=f"the MEND editor {editor}")
        if weights_sha256(lm) != net.spec.base_weights_sha256:  # check_model allows edited matrices to differ
            raise InputError(
                f"{base}: not the unedited base model of {editor} (its edited matrices differ): the null space "
                "must be built on the base model"
            )
        with stage_progress("null space of preserved keys") as progress:
            null = build_null_space(lm, tok, net.spec.params, preserved, threshold=threshold, scale=scale,
                                    progress=progress)
    with output_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        for item in sorted(editor.iterdir()):
            if item.is_file() and item.name != FILE:
                shutil.copyfile(item, tmp / item.name)
        if null is not None:
            save_null_space(null, tmp)
    out_console.print(null.describe() if null else "no null space", highlight=False, soft_wrap=True)
    out_console.print(f"editor written to [bold]{out}[/]", soft_wrap=True)
