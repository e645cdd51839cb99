"""``editkit audit``: what a fine-tune or an edit did to its base model.

``editkit audit --base B --tuned T`` runs the selected analyses (TuCo, CGE,
intruder dimensions, refusal, drift: :mod:`audit.analyses`) on one shared
context and writes one report (JSON, Markdown, self-contained HTML with
figures), with a console summary. It is the group's callback
(``invoke_without_command=True``): with no subcommand the callback audits;
``editkit audit intruders ...`` still runs the intruder analysis alone (with
``--mitigate``), and ``editkit audit analyses`` lists the analyses and options.

Layering: ``editkit`` never imports ``audit`` at module level; these commands
import it inside the functions (DESIGN.md: only ``editkit.cli`` reaches up,
lazily).
"""

from __future__ import annotations

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
    debug,
    device_map_option,
    dtype_option,
    err_console,
    handle_errors,
    out_console,
    parse_formats,
    placement_label,
    stage_progress,
)

app = typer.Typer(no_args_is_help=True)  # help: the callback's docstring


@app.callback(invoke_without_command=True)
@handle_errors
def audit_callback(
    ctx: typer.Context,
    base: str | None = typer.Option(None, "--base", "-b", help="Base model: zoo alias, local folder, .gguf file or hub id."),
    tuned: Path | None = typer.Option(None, "--tuned", "-t", help="Tuned model: full fine-tune folder, peft LoRA adapter folder, or editkit edit output."),
    analyses: str = typer.Option("all", "--analyses", "-a", help="Comma-separated analyses (tuco,cge,intruders,refusal,drift), or all."),
    prompts: list[Path] | None = typer.Option(None, "--prompts", "-p", help="Prompt file (repeatable): .jsonl with 'prompt' (or 'text') and an optional 'set' field per line, or .txt (one set). Default: the edit's own prompts, shipped fact prompts and reference text."),
    reference: str = typer.Option("default", "--reference", help="Reference text for perplexity, KL and novelty: 'default' (shipped passages), a .jsonl/.txt file, or 'none'."),
    set_: list[str] = typer.Option([], "--set", help="Analysis option <analysis>.<option>=<value> (repeatable), e.g. intruders.k=20; list them with 'editkit audit analyses'."),
    out: Path = typer.Option(Path("runs/audit"), "--out", "-o", help="Output directory (must not exist unless --overwrite)."),
    resume: bool = typer.Option(False, "--resume", help="Reuse the analyses an interrupted run into the same --out finished (kept in .<out>.partial/)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output directory (and discard an interrupted run's analyses)."),
    formats: str = typer.Option("json,md,html", "--format", help="Report formats to write."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1 ..."),
    dtype: str = dtype_option(),
    device_map: str | None = device_map_option(),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampling analyses (CGE); recorded."),
    allow_pickle: bool = allow_pickle_option(BASE_ONLY),
) -> None:
    """Audit what a fine-tune or an edit did to its base model: all analyses, one report.

    Without a subcommand, runs the analyses on the --base/--tuned pair (any tuned form: full fine-tune, peft LoRA adapter, editkit edit) and writes report.json, report.md (with figures/*.png) and a self-contained report.html into OUT, then prints the analyses, the findings ranked by severity and the verdict.

    An analysis that fails becomes an error finding and the others still run. Each finished analysis is kept in .OUT.partial/ until the report is written, so an interrupted run continues with --resume.
    """
    if ctx.invoked_subcommand is not None:
        if base is not None or tuned is not None:
            from editkit.errors import InputError

            raise InputError(f"--base/--tuned go after the subcommand: editkit audit {ctx.invoked_subcommand} --base ... --tuned ...")
        return
    _audit(base, tuned, analyses, prompts or [], reference, set_, out, resume, overwrite, formats, device, dtype,
           device_map, seed, allow_pickle)


def _audit(
    base: str | None, tuned: Path | None, analyses: str, prompts: list[Path], reference: str, set_: list[str],
    out: Path, resume: bool, overwrite: bool, formats: str, device: str, dtype: str, device_map: str | None, seed: int,
    allow_pickle: bool,
) -> None:
    from audit.analyses import parse_analyses, parse_options
    from audit.context import AuditContext, read_prompt_sets, reference_texts
    from audit.report import PartialStore, audit_context_report, check_partial, partial_dir_for
    from audit.tuned import detect_kind
    from editkit.errors import InputError
    from editkit.report import render_console

    # Everything a user can get wrong is checked before the model is loaded.
    if base is None or tuned is None:
        missing = " and ".join(n for n, v in (("--base", base), ("--tuned", tuned)) if v is None)
        raise InputError(f"{missing} missing: editkit audit --base MODEL --tuned TUNED_DIR [--out DIR] (or a subcommand: editkit audit --help)")
    fmts = parse_formats(formats)
    placement = checked_loading(device_map, dtype)
    names = parse_analyses(analyses)
    parse_options(names, set_)
    sets = [s for path in prompts for s in read_prompt_sets(path)] if prompts else None
    texts = reference_texts(reference)
    inputs = checked_out(out, overwrite, base, tuned, prompts, reference)  # never replaced by --overwrite
    check_partial(out, resume=resume, overwrite=overwrite)
    detect_kind(tuned)

    with stage_progress(f"loading {base}") as progress:
        context = AuditContext.load(base, tuned, prompts=sets, reference=texts, device=device, dtype=dtype,
                                    device_map=placement, seed=seed, allow_pickle=allow_pickle, progress=progress)
    try:
        with stage_progress(f"audit ({', '.join(names)})") as progress:
            report = audit_context_report(context, analyses=names, set_options=set_, out=out, resume=resume,
                                          overwrite=overwrite, formats=fmts, command=["editkit", *sys.argv[1:]],
                                          inputs=inputs, progress=progress)
    except KeyboardInterrupt:
        store = PartialStore(partial_dir_for(out))
        kept = sorted(p.stem for p in store.root.glob("*.json")) if store.exists() else []
        where = f"; finished analyses kept in {store.root} ({', '.join(kept)}): rerun with --resume" if kept else ""
        err_console.print(f"[yellow]interrupted[/]: no report was written{escape(where)}", highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    render_console(report, out_console)
    if debug():
        for finding in report.findings:
            if "traceback" in finding.details:
                err_console.print(f"\n[bold]{escape(finding.analysis)}[/]:\n{escape(finding.details['traceback'])}")
    out_console.print(f"\naudit report written to [bold]{escape(str(out))}[/]")


@app.command("analyses")
@handle_errors
def analyses_command() -> None:
    """List the audit analyses and their options (set them with --set <analysis>.<option>=<value>)."""
    from audit.analyses import ANALYSES
    from editkit.cli._common import print_options

    for analysis in ANALYSES.values():
        out_console.print(f"[bold]{analysis.name}[/]: {escape(analysis.description)}")
        print_options(f"{analysis.name} options", analysis.options_cls)


REFERENCE_PASSAGES = 60
"""Passages of the shipped reference text used for the perplexity check of ``--mitigate``."""


def _check_options(k: int, eps: float, mitigate: float | None, spectra: int) -> None:
    from editkit.errors import InputError

    if k < 1:
        raise InputError(f"--k: expected an integer >= 1 (top singular vectors examined), got {k}")
    if not 0.0 < eps <= 1.0:
        raise InputError(f"--eps: expected a threshold in (0, 1] on max |cos|, got {eps}")
    if spectra < 0:
        raise InputError(f"--spectra: expected a number of plots >= 0, got {spectra}")
    if mitigate is not None and not 0.0 <= mitigate <= 1.0:
        raise InputError(
            f"--mitigate: expected a factor in [0, 1] for the intruders' singular values "
            f"(0 removes them, 1 keeps them), got {mitigate}"
        )


def _backend(name: str) -> Any:
    from editkit.errors import InputError
    from gpu import BackendUnavailable, get_backend

    try:
        return get_backend(name)
    except (BackendUnavailable, ValueError) as exc:
        raise InputError(f"--backend: {exc}") from None


def _reference_texts(reference: str) -> list[str] | None:
    from editkit.datafiles import read_texts, shipped

    if reference == "none":
        return None
    if reference == "default":
        return read_texts(shipped("reference_text.jsonl"))[:REFERENCE_PASSAGES]
    return read_texts(reference)


def _cell(value: int | None) -> str:
    if value is None:
        return "[dim]-[/]"
    return f"[bold red]{value}[/]" if value else "0"


def intruder_table(report: Any, title: str) -> Table:
    """Intruder counts per layer (rows) and module kind (columns), with totals."""
    layers, columns, counts = report.grid(by="kind")
    table = Table(title=title, title_justify="left", show_footer=True)
    table.add_column("layer", footer="total", justify="right")
    for j, column in enumerate(columns):
        total = sum(row[j] or 0 for row in counts)
        table.add_column(column, footer=str(total), justify="right")
    table.add_column("total", footer=f"[bold]{report.total}[/]", justify="right")
    for layer, row in zip(layers, counts, strict=True):
        table.add_row(str(layer), *(_cell(c) for c in row), str(sum(c or 0 for c in row)))
    return table


def _mitigation_table(summary: dict[str, Any], perplexity: dict[str, float] | None) -> Table:
    table = Table(title=f"mitigation: intruder singular values x {summary['lam']:g}", title_justify="left")
    for col in ("", "before", "after"):
        table.add_column(col, justify="right" if col else "left")
    table.add_row("intruders", str(summary["intruders_before"]), str(summary.get("intruders_after", "-")))
    table.add_row(
        "mean energy share",
        f"{100 * summary['energy_before']:.2f}%",
        f"{100 * summary['energy_after']:.2f}%" if "energy_after" in summary else "-",
    )
    if perplexity is not None:
        table.add_row("perplexity (base model)", f"{perplexity['base']:.3f}", "")
        table.add_row("perplexity (tuned -> mitigated)", f"{perplexity['tuned']:.3f}", f"{perplexity['mitigated']:.3f}")
    return table


def _save_mitigated(lm: Any, tok: Any, result: Any, folder: Path) -> dict[str, str]:
    """The mitigated weights in the forms :mod:`audit.mitigate` supports for this kind of input."""
    from audit.mitigate import save_mitigated_deltas, save_mitigated_model
    from audit.mitigate_lora import save_mitigated_adapter

    folder.mkdir(parents=True, exist_ok=True)
    if result.tuned.kind == "full":
        save_mitigated_model(lm, result, folder / "model", tokenizer=tok)
        return {"model": "mitigated/model"}
    saved = {"delta": "mitigated/delta.safetensors"}
    save_mitigated_deltas(result, folder / "delta.safetensors")
    if result.tuned.kind == "lora":
        save_mitigated_adapter(result, folder / "adapter")
        saved["adapter"] = "mitigated/adapter"
    return saved


@app.command("intruders")
@handle_errors
def intruders_command(
    base: str = typer.Option(..., "--base", "-b", help="Base model: zoo alias, local folder, .gguf file or hub id."),
    tuned: Path = typer.Option(..., "--tuned", "-t", help="Tuned weights: full fine-tune folder, peft LoRA adapter folder, or editkit edit output."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (must not exist unless --overwrite)."),
    k: int = typer.Option(10, "--k", help="Top singular vectors of each tuned matrix examined (published: 10)."),
    eps: float = typer.Option(0.5, "--eps", help="Intruder threshold on max |cos| against every base singular vector (published: 0.5)."),
    backend: str = typer.Option("auto", "--backend", help="Array backend for the SVDs: auto, cupy, torch-cuda or torch-cpu."),
    svd: str = typer.Option("auto", "--svd", help="auto (checked randomized SVD where it pays; same counts), full (dense reference) or lowrank."),
    mitigate: float | None = typer.Option(None, "--mitigate", metavar="LAMBDA", help="Scale the intruder singular values by LAMBDA in [0, 1] (published: 0.75), save the result under OUT/mitigated and re-check."),
    reference: str = typer.Option("default", "--reference", help="Text for the perplexity check of --mitigate: 'default' (first 60 shipped passages), a .jsonl/.txt file, or 'none'."),
    spectra: int = typer.Option(3, "--spectra", help="Spectrum plots to draw: the matrices with the most intruders."),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="Cache the base model's singular bases on disk (they do not depend on the tuned model)."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Where the bases are cached (default $EDITKIT_CACHE/intruders)."),
    device: str = typer.Option("cpu", "--device", help="Where the base model is loaded: cpu, cuda, cuda:1 ..."),
    dtype: str = dtype_option(),
    device_map: str | None = device_map_option(),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output directory."),
    allow_pickle: bool = allow_pickle_option(BASE_ONLY),
) -> None:
    """Intruder dimensions of a tuned model against its base: new top singular vectors no base direction explains.

    Writes intruders.json, intruders.csv, heatmap.png and spectra/<matrix>.png (the --spectra matrices with the most intruders, 3 by default) into OUT; prints the counts per layer and module kind. With --mitigate, also OUT/mitigated/: a delta file (and a re-factored peft adapter for LoRA input) or a model folder (full fine-tunes), with its own intruders.json.
    """
    from dataclasses import asdict

    from audit.intruders import (
        IntruderConfig,
        intruder_analysis,
        top_matrices,
        write_intruder_files,
    )
    from audit.intruders.export import mean_energy_share
    from audit.mitigate import mitigate_intruders, mitigation_perplexity
    from audit.tuned import detect_kind, load_tuned
    from editkit.models import load_model
    from editkit.outputs import output_dir
    from editkit.report import model_info, provenance, weights_sha256

    # Everything a user can get wrong is checked before the model is loaded.
    _check_options(k, eps, mitigate, spectra)
    placement = checked_loading(device_map, dtype)
    cfg = IntruderConfig(k=k, eps=eps, svd=svd)
    inputs = checked_out(out, overwrite, base, tuned, reference)  # never replaced by --overwrite
    detect_kind(tuned)
    be = _backend(backend)
    texts = _reference_texts(reference) if mitigate is not None else None

    with stage_progress(f"loading {base}") as progress:
        lm, tok = load_model(base, dtype=dtype, device=device, device_map=placement, allow_pickle=allow_pickle,
                             progress=progress)
    weights = load_tuned(lm, tuned)
    with stage_progress("intruder dimensions") as progress:
        report = intruder_analysis(lm, weights, config=cfg, backend=be, cache_dir=cache_dir, cache=cache, progress=progress)

    result: Any = None
    perplexity: dict[str, float] | None = None
    if mitigate is not None:
        with stage_progress(f"mitigating (x {mitigate:g})") as progress:
            result = mitigate_intruders(
                lm, weights, lam=mitigate, config=cfg, backend=be, cache_dir=cache_dir, cache=cache, progress=progress
            )
        if texts is not None:
            with stage_progress("perplexity before/after"):
                perplexity = mitigation_perplexity(lm, tok, result, texts)

    prov = provenance(
        ["editkit", *sys.argv[1:]],
        [model_info(lm, base, "base", weights_sha256=weights_sha256(lm))],
        device=placement_label(device, device_map),
        backend=be.name,
    )
    config = {**asdict(cfg), "eps_grid": list(cfg.eps_grid), "kinds": list(cfg.kinds), "cache": cache}
    extra: dict[str, Any] = {
        "base": base,
        "tuned": {"path": str(tuned), "kind": weights.kind},
        "provenance": asdict(prov),
        "mitigation": None,
    }
    with output_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        if result is not None:
            assert result.after is not None
            saved = _save_mitigated(lm, tok, result, tmp / "mitigated")
            names = [m.name for m in top_matrices(report, spectra)]
            write_intruder_files(result.after, tmp / "mitigated", config=config, spectra=names,
                                 extra={"base": base, "tuned": {"path": str(tuned), "kind": weights.kind, "mitigated": mitigate}})
            before = {m.name: m for m in report.matrices}
            extra["mitigation"] = {
                "lam": mitigate,
                "summary": result.summary(),
                "perplexity": perplexity,
                "reference": None if texts is None else {"source": reference, "passages": len(texts)},
                "counts_vs_eps_after": {f"{e:g}": n for e, n in result.after.counts_vs_eps().items()},
                "saved": {**saved, "report": "mitigated/intruders.json"},
                "rows": [
                    {
                        "name": m.name,
                        "intruders_before": before[m.name].count,
                        "intruders_after": m.count,
                        "energy_share_before": before[m.name].energy_share,
                        "energy_share_after": m.energy_share,
                        "scaled": list(result.scaled.get(m.name, ())),
                    }
                    for m in result.after.matrices
                ],
            }
        write_intruder_files(report, tmp, config=config, extra=extra, n_spectra=spectra)

    title = f"intruder dimensions of {escape(str(tuned))} ({weights.kind}) vs {escape(base)}: k={cfg.k}, eps={cfg.eps:g}"
    out_console.print(intruder_table(report, title))
    curve = "  ".join(f"{e:g}:{n}" for e, n in report.counts_vs_eps().items())
    share = mean_energy_share(report)
    with_any = sum(m.count > 0 for m in report.matrices)
    out_console.print(
        f"{report.total} intruders in {with_any} of {len(report.matrices)} matrices; "
        f"mean energy share {100 * share:.2f}%\ncount vs eps: {curve}",
        highlight=False,
    )
    if result is not None:
        out_console.print(_mitigation_table(result.summary(), perplexity))
    out_console.print(f"\nintruder analysis written to [bold]{escape(str(out))}[/]")
