"""``run_audit``: the whole audit from Python, the same steps and the same :class:`Report` as the CLI.

>>> from audit.report import run_audit
>>> report = run_audit("smollm2-135m-instruct", "runs/lora", analyses="tuco,drift", out="runs/audit")  # doctest: +SKIP
>>> report                         # in Jupyter: the HTML report          # doctest: +SKIP
>>> report.to_pandas("findings")                                           # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from audit.analyses import AnalysisOptions, parse_analyses, parse_options
from audit.context import AuditContext, PromptSet
from audit.report.assemble import audit_report
from audit.report.run import PartialStore, Progress, partial_dir_for, run_analyses
from editkit.errors import InputError
from editkit.report import Report

DEFAULT_FORMATS = ("json", "md", "html")


def check_partial(out: str | Path, *, resume: bool, overwrite: bool) -> PartialStore:
    """The partial store of a run writing ``out``, checked before any work.

    Raises:
        InputError: an interrupted run left finished analyses there and neither
            ``resume`` (reuse them) nor ``overwrite`` (start over) was asked for.
    """
    store = PartialStore(partial_dir_for(out))
    if store.exists() and not resume and not overwrite:
        raise InputError(
            f"{store.root} holds the finished analyses of an interrupted audit into {out}: "
            "pass --resume to reuse them, or --overwrite to start over"
        )
    return store


def audit_context_report(
    ctx: AuditContext,
    *,
    analyses: str | Sequence[str] | None = None,
    options: Mapping[str, AnalysisOptions | Mapping[str, Any]] | None = None,
    set_options: Sequence[str] = (),
    out: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    formats: Sequence[str] = DEFAULT_FORMATS,
    command: Sequence[str] | str = "audit.report.run_audit(...)",
    inputs: Sequence[str | Path] = (),
    progress: Progress | None = None,
) -> Report:
    """Run the analyses on an existing context, assemble the report and (with ``out``) write it.

    See :func:`run_audit` for the arguments. The output folder appears whole
    or not at all (built in a hidden sibling, renamed when complete); the
    finished analyses of an interrupted run stay in ``.<out>.partial/`` until
    the report is written. ``overwrite`` never replaces a folder holding one of
    ``inputs``, the tuned weights' path or a local base model folder.
    """
    from editkit.outputs import check_output_dir, input_paths, output_dir
    from editkit.report import write_report

    names = parse_analyses(analyses)
    opts = parse_options(names, set_options, options)
    held = input_paths(*inputs, ctx.base_spec, ctx.weights.path)
    store = None
    if out is not None:
        check_output_dir(out, overwrite=overwrite, inputs=held)
        store = check_partial(out, resume=resume, overwrite=overwrite)
        if overwrite and not resume:
            store.clear()
    runs = run_analyses(ctx, names, opts, store=store, resume=resume, progress=progress)
    report = audit_report(ctx, runs, opts, command=command)
    if out is not None and store is not None:
        with output_dir(out, overwrite=overwrite, inputs=held) as tmp:
            write_report(report, tmp, formats=formats)
        store.clear()
    return report


def run_audit(
    base: str | Any,
    tuned: Any = None,
    tok: Any = None,
    *,
    analyses: str | Sequence[str] | None = None,
    options: Mapping[str, AnalysisOptions | Mapping[str, Any]] | None = None,
    set_options: Sequence[str] = (),
    prompts: Sequence[str | Path] | Sequence[PromptSet] | None = None,
    reference: str | Path | Sequence[str] | None = "default",
    out: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    formats: Sequence[str] = DEFAULT_FORMATS,
    device: str = "cpu",
    dtype: str = "float32",
    device_map: str | Mapping[str, Any] | None = None,
    seed: int = 0,
    allow_pickle: bool = False,
    command: Sequence[str] | str = "audit.report.run_audit(...)",
    progress: Progress | None = None,
) -> Report:
    """Audit a tuned model against its base: run the analyses, return (and optionally write) the report.

    Args:
        base: a model spec (zoo alias, folder, ``.gguf``, hub id), a loaded model
            (pass ``tok``), or an :class:`~audit.context.AuditContext` (then no ``tuned``).
        tuned: a full fine-tune folder, a peft LoRA adapter folder, an ``editkit edit``
            output, :class:`~audit.tuned.TunedWeights`, a second model, an
            ``EditResult`` or a ``name -> delta`` mapping.
        tok: the tokenizer when ``base`` is a loaded model.
        analyses: names (``"tuco,drift"`` or a list); None: all of them (:data:`audit.analyses.ANALYSES`).
        options: per analysis, its options object or a mapping of option -> value.
        set_options: ``"<analysis>.<option>=<value>"`` strings (the CLI's ``--set``).
        prompts: prompt files or :class:`~audit.context.PromptSet` s; None: the shipped sets.
        reference: the reference text: ``"default"``, a file, texts, or None.
        out: write ``report.json``, ``report.md``, ``report.html`` and ``figures/`` there.
        resume: reuse the finished analyses of an interrupted run into ``out``.
        overwrite: replace an existing ``out`` (and discard an interrupted run's analyses).
        formats: report formats to write.
        device, dtype, seed: how the base model is loaded; the seed of sampling analyses.
        device_map: spread the base model over devices (``"auto"``, a mapping...:
            :func:`editkit.placement.parse_device_map`) instead of ``device``.
        allow_pickle: also read a base model's pickle-based weights (only for files you
            trust); tuned weights are read from safetensors only.
        command: recorded in the provenance.
        progress: ``progress("<analysis>: <stage>", done, total)``.

    Returns:
        The :class:`~editkit.report.Report` (it shows itself in Jupyter and exports
        tables with ``to_pandas``).

    Raises:
        InputError: bad names, options, files or an output folder that is in the
            way, all before any model is loaded or any analysis runs.
    """
    from editkit.outputs import input_paths
    from editkit.placement import parse_device_map

    inputs: list[Path] = []
    if isinstance(base, AuditContext):
        if tuned is not None:
            raise InputError("run_audit: pass either an AuditContext or base and tuned, not both")
        ctx = base
    else:
        if tuned is None:
            raise InputError("run_audit: pass the tuned model (a path, TunedWeights, a model or deltas)")
        names = parse_analyses(analyses)  # fail on bad names and options before loading anything
        parse_options(names, set_options, options)
        texts = not isinstance(reference, (str, Path))  # a list of texts, not files
        inputs = input_paths(base, tuned, list(prompts or []), None if texts else reference)
        if out is not None:
            from editkit.outputs import check_output_dir

            check_output_dir(out, overwrite=overwrite, inputs=inputs)
            check_partial(out, resume=resume, overwrite=overwrite)
        placement = parse_device_map(device_map)  # also before anything is loaded
        ctx = AuditContext.load(base, tuned, tok, prompts=prompts, reference=reference, device=device,
                                dtype=dtype, device_map=placement, seed=seed, allow_pickle=allow_pickle)
    return audit_context_report(ctx, analyses=analyses, options=options, set_options=set_options, out=out,
                                resume=resume, overwrite=overwrite, formats=formats, command=command,
                                inputs=inputs, progress=progress)
