"""``editkit edit``: edit a model, evaluate before and after, save the edit and the report."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import typer

from editkit.cli import transfer
from editkit.cli._common import (
    allow_pickle_option,
    checked_loading,
    checked_out,
    claim_checkpoint,
    device_map_option,
    dtype_option,
    err_console,
    handle_errors,
    out_console,
    parse_formats,
    placement_label,
    stage_progress,
)
from editkit.models import DEFAULT_MODEL


def parse_layer(value: str) -> int | float | str:
    """``auto``, an index (``20``, ``-1``) or a relative depth (``0.66``)."""
    from editkit.errors import EditkitError

    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        raise EditkitError(f"--layer: expected auto, a layer index or a relative depth like 0.66, got {value!r}") from None


def prepare_checkpoint(out: Path, method: str, resumable: bool, *, resume: bool, overwrite: bool) -> Path | None:
    """The checkpoint folder of a resumable editor (``OUT.checkpoint``), checked against --resume/--overwrite.

    Returns None for editors that do not checkpoint. A checkpoint left by an interrupted run
    is continued with --resume, or removed with --overwrite; otherwise it is an error, so that
    nothing is silently thrown away. A folder holding no checkpoint (a run stopped before its
    first one, or only a killed write's temporary file) is removed silently.
    """
    from editkit.editors.locft import has_checkpoint
    from editkit.errors import EditkitError

    if not resumable:
        if resume:
            raise EditkitError(f"--resume: the {method} editor does not checkpoint; run without --resume")
        return None
    # drop_empty: the folder is made before the first checkpoint (for the cached states' file), and a
    # killed atomic write leaves only a temporary file: nothing to resume, nothing worth keeping
    ckpt = claim_checkpoint(out, method, has_checkpoint, resume=resume, overwrite=overwrite, drop_empty=True)
    return ckpt


@handle_errors
def edit_command(
    facts: Path = typer.Option(..., "--facts", "-f", help="Edit requests: canonical JSONL, CounterFact or ZsRE."),
    out: Path = typer.Option(Path("runs/edit"), "--out", "-o", help="Output directory (must not exist unless --overwrite)."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Zoo alias, local folder, .gguf file or hub id."),
    method: str = typer.Option("locft-bf", "--method", help="Editor: locft-bf, ft-df, mend (needs --editor), sense (Backpack, --strategy senses), finetune or lora."),
    editor_dir: Path | None = typer.Option(None, "--editor", help="Trained MEND editor directory (for --method mend)."),
    layer: str | None = typer.Option(None, "--layer", help="auto (sweep), a layer index, or a relative depth (default: the editor's, LocFT 0.14)."),
    module: str | None = typer.Option(None, "--module", help="mlp_down (default), mlp_up, mlp, attn_out or block."),
    strategy: str | None = typer.Option(None, "--strategy", help="Localization: fixed (default), sweep, causal-trace, gradient."),
    config: Path | None = typer.Option(None, "--config", help="Editor options from a YAML/JSON file."),
    set_: list[str] = typer.Option([], "--set", help="Editor option key=value (repeatable)."),
    save: str = typer.Option("delta,model", "--save", help="What to save: delta, model, or both (comma-separated)."),
    reference: str = typer.Option("default", "--reference", help="Reference text (.jsonl/.txt), 'default' or 'none'."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Edit only the first N requests."),
    generation: bool = typer.Option(True, "--generation/--no-generation", help="Generation exact-match metrics."),
    fluency: bool = typer.Option(True, "--fluency/--no-fluency", help="n-gram-entropy fluency."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1 ..."),
    dtype: str = dtype_option(),
    device_map: str | None = device_map_option(),
    seed: int = typer.Option(0, "--seed", help="Random seed (editor shuffling; recorded)."),
    formats: str = typer.Option("json,md,html", "--format", help="Report formats to write."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output directory (and start over unless --resume)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted LocFT-BF run from OUT.checkpoint."),
    allow_pickle: bool = allow_pickle_option("--model and --transfer-to"),
    transfer_to: str | None = typer.Option(None, "--transfer-to", help=transfer.HELP_TO),
    transfer_beta: str = typer.Option("auto", "--transfer-beta", help=transfer.HELP_BETA),
) -> None:
    """Edit a model's knowledge, evaluate before/after with every metric, save the edit and the report.

    Without --layer, --module or --strategy the editor edits where it edits by default (LocFT: relative depth
    0.14, layer 4 of 30 on the default model, mlp_down; MEND: the matrices its editor was trained for).

    LocFT-BF keeps its training state in OUT.checkpoint (every checkpoint_every batches), so an interrupted run
    continues with --resume; the folder is removed once the output is written.

    With --device-map the model is spread over devices; the edited layers must not be offloaded (their weights
    change in place), the other layers may be. With --dtype bfloat16 the weights are stored in bf16 while LocFT's
    free matrix, its Adam state and the deltas stay fp32.
    """
    import torch

    from editkit.datafiles import read_texts, shipped
    from editkit.editors import apply, get_entry, make_editor, reverted, save_edit
    from editkit.editors.locft import has_checkpoint
    from editkit.errors import EditkitError
    from editkit.evaluate import EvalConfig, evaluate
    from editkit.evaluate.report import edit_report
    from editkit.localize import localize, strategy_names
    from editkit.models import load_model
    from editkit.outputs import output_dir
    from editkit.placement import check_on_device
    from editkit.report import model_info, provenance, render_console, weights_sha256, write_report
    from editkit.requests import load_requests, save_requests

    placement = checked_loading(device_map, dtype)
    fmts = parse_formats(formats)
    inputs = checked_out(out, overwrite, facts, config, editor_dir, reference, model, transfer_to)  # never replaced
    saves = {s.strip() for s in save.split(",") if s.strip()}
    if not saves <= {"delta", "model"}:
        raise EditkitError(f"--save: choose from delta, model (comma-separated), not {save!r}")
    entry = get_entry(method)
    fixed_beta = transfer.check_transfer_options(method, transfer_to, transfer_beta)
    cfg = entry.config_cls.from_file(config) if config else entry.config_cls()
    if editor_dir is not None and "editor" not in entry.config_cls.field_names():
        raise EditkitError(f"--editor: the {method} editor takes no trained editor (it is for --method mend)")
    trained = [f"editor={editor_dir}"] if editor_dir is not None else []
    cfg = cfg.with_overrides([*set_, *trained, f"seed={seed}"])
    editor = make_editor(method, cfg)
    ckpt = prepare_checkpoint(out, method, bool(getattr(editor, "resumable", False)), resume=resume, overwrite=overwrite)
    own_location = layer is None and module is None and strategy is None
    where = parse_layer(layer) if layer else editor.default_layer
    module = module or editor.default_module
    strategy = strategy or "fixed"
    if where == "auto":
        strategy = "sweep"
    if strategy not in strategy_names():
        raise EditkitError(f"--strategy: choose one of {', '.join(strategy_names())}, not {strategy!r}")
    requests = load_requests(facts, limit=limit)
    texts = read_texts(shipped("reference_text.jsonl")) if reference == "default" else (
        None if reference == "none" else read_texts(reference)
    )

    torch.manual_seed(seed)
    with stage_progress(f"loading {model}") as progress:
        lm, tok = load_model(
            model, dtype=dtype, device=device, device_map=placement, allow_pickle=allow_pickle, progress=progress
        )
    original_hash = weights_sha256(lm)
    options: dict[str, Any] = {"module": module}
    if strategy == "fixed":
        options["layer"] = where
    elif strategy == "sweep":
        options["method"] = method
    if own_location:
        location = editor.default_location(lm)
    else:
        with stage_progress(f"localizing ({strategy})") as progress:
            location = localize(strategy, lm, tok, requests, progress=progress, **options)
    check_on_device(lm, location.sites, method)  # before any evaluation: an offloaded layer cannot be edited
    eval_cfg = EvalConfig(generation=generation, fluency=fluency)
    with stage_progress("evaluating before") as progress:
        before = evaluate(lm, tok, requests, config=eval_cfg, reference_texts=texts, progress=progress)
    resuming = {"checkpoint_dir": ckpt, "resume": resume} if ckpt is not None else {}
    try:
        with stage_progress(f"{method} on {location.describe()}") as progress:
            result = editor.compute(lm, tok, requests, location, progress=progress, **resuming)
    except KeyboardInterrupt:
        if ckpt is not None and has_checkpoint(ckpt):
            err_console.print(f"the last checkpoint is in {ckpt}: continue with --resume", highlight=False)
        raise
    apply(lm, result)
    with stage_progress("evaluating after") as progress:
        after = evaluate(
            lm, tok, requests, config=eval_cfg, baseline=before, reference_texts=texts,
            base=lambda: reverted(lm, result), progress=progress,
        )
    moved = None  # --transfer-to: the edit carried over to another model
    if transfer_to:
        moved = transfer.run_transfer(
            transfer_to, lm, tok, result, requests, beta=fixed_beta, device=device, eval_cfg=eval_cfg, texts=texts,
            allow_pickle=allow_pickle, dtype=dtype,
            device_map=placement if isinstance(placement, str) else None,  # a module map names the Backpack's modules
        )
    prov = provenance(
        ["editkit", *sys.argv[1:]],
        [
            model_info(lm, model, "base", weights_sha256=original_hash),
            model_info(lm, model, "edited", weights_sha256=weights_sha256(lm)),
        ],
        device=placement_label(device, device_map),
        seed=seed,
    )
    report = edit_report(
        before, after, result, prov,
        title=f"{method} on {model}: {len(requests)} edits from {facts.name}",
        config={"facts": str(facts), "n_requests": len(requests), "model": model, "reference": reference},
    )
    if moved is not None:
        transfer.add_transfer(report, moved)
    with output_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        write_report(report, tmp, formats=fmts)
        save_requests(requests, tmp / "requests.jsonl")
        if "delta" in saves:
            save_edit(result, tmp / "delta.safetensors")
        if "model" in saves:
            with stage_progress("saving the edited model"):
                lm.save_pretrained(tmp / "model")
                tok.save_pretrained(tmp / "model")
    if ckpt is not None:
        shutil.rmtree(ckpt, ignore_errors=True)  # the output is complete: nothing left to resume
    render_console(report, out_console)
    out_console.print(f"\nedit and report written to [bold]{out}[/]")
