"""The audit :class:`~editkit.report.Report`: sections in order, findings ranked, the verdict, provenance.

>>> report = audit_report(ctx, runs, options)        # doctest: +SKIP
>>> report.summary                                  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from audit.analyses import ANALYSES, AnalysisOptions
from audit.report.verdict import verdict
from editkit.report import Report, provenance, rank_findings
from editkit.report.schema import to_jsonable

if TYPE_CHECKING:
    from audit.context import AuditContext
    from audit.report.run import AnalysisRun

KIND_NAMES = {"full": "the full fine-tune", "lora": "the LoRA adapter", "edit": "the editkit edit",
              "deltas": "the tuned weights"}


def tuned_name(ctx: AuditContext) -> str:
    """``the LoRA adapter runs/lora (28 tensors)``: how the verdict names the tuned model."""
    n = len(ctx.weights)
    return f"{KIND_NAMES.get(ctx.kind, 'the tuned model')} {ctx.tuned_spec} ({n} tensor{'s' if n != 1 else ''})"


def audit_report(
    ctx: AuditContext,
    runs: Sequence[AnalysisRun],
    options: Mapping[str, AnalysisOptions],
    *,
    command: Sequence[str] | str = "audit.report.run_audit(...)",
    title: str | None = None,
) -> Report:
    """Assemble the report of an audit (pure data; render or write it with :mod:`editkit.report`).

    Args:
        ctx: the context the analyses ran on.
        runs: their results, in report order (:func:`audit.report.run.run_analyses`).
        options: the options each ran with (recorded in ``config``).
        command: the argv, or a description of the API call.
        title: the report title (default: ``Audit of <tuned> against <base>``).
    """
    from editkit.placement import placement_summary

    names = [r.name for r in runs]
    findings = rank_findings([f for r in runs for f in r.output.findings], names)
    not_selected = [n for n in ANALYSES if n not in names]
    config: dict[str, Any] = {
        "base": ctx.base_spec,
        "tuned": {"spec": ctx.tuned_spec, "kind": ctx.kind, "tensors": len(ctx.weights)},
        "analyses": names,
        "options": {n: to_jsonable(options[n].to_dict()) for n in names},
        "prompt_sets": [{"name": s.name, "prompts": len(s.prompts), "source": s.source} for s in ctx.prompt_sets],
        "reference_passages": len(ctx.reference),
    }
    notes = []
    reused = [r.name for r in runs if r.reused]
    if reused:
        notes.append(f"Resumed: {', '.join(reused)} taken from the interrupted run's finished analyses "
                     "(same inputs, options and editkit version); the rest ran now.")
    return Report(
        kind="audit",
        title=title or f"Audit of {ctx.tuned_spec} ({ctx.kind}) against {ctx.base_spec}",
        provenance=provenance(command, ctx.model_infos(), device=placement_summary(ctx.base), seed=ctx.seed),
        config=config,
        timings={r.name: r.output.section.seconds or 0.0 for r in runs},
        findings=findings,
        notes=notes,
        sections=[r.output.section for r in runs],
        summary=verdict(tuned_name(ctx), ctx.base_spec, runs, not_selected=not_selected),
    )
