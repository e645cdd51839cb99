"""The audit's verdict: one paragraph, built from the sections and findings, of what changed.

It says what was compared, how many findings of each severity there are and
the most severe one, what each analysis that ran measured (its summary), and
what was not measured and why. It never claims more than the measurements:
it closes by saying that they describe differences on the inputs used, not
safety in general.

>>> verdict("the LoRA adapter runs/lora", "tiny", runs, not_selected=["refusal"])   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from editkit.report import Finding, rank_findings

if TYPE_CHECKING:
    from audit.report.run import AnalysisRun

CAVEAT = (
    "These numbers describe how the two models differ on the weights and inputs listed here; "
    "they do not show that the tuned model is safe or unsafe beyond them."
)


def _counts(findings: Sequence[Finding]) -> str:
    parts = []
    for severity, plural in (("error", "errors"), ("warning", "warnings")):
        n = sum(f.severity == severity for f in findings)
        if n:
            parts.append(f"{n} {severity if n == 1 else plural}")
    return " and ".join(parts)


def verdict(
    tuned: str,
    base: str,
    runs: Sequence[AnalysisRun],
    *,
    not_selected: Sequence[str] = (),
) -> str:
    """One paragraph for a person: what was compared, the worst finding, each measurement, the gaps.

    Args:
        tuned: how to name the tuned model (``"the LoRA adapter runs/lora"``).
        base: how to name the base model.
        runs: the analyses' results, in report order.
        not_selected: registered analyses that were not run.
    """
    findings = rank_findings([f for r in runs for f in r.output.findings], [r.name for r in runs])
    failed = [r for r in runs if r.output.section.status == "error"]
    measured = [r for r in runs if r.output.section.status == "ok"]
    skipped = [r for r in runs if r.output.section.status == "skipped"]
    sentences = [f"This audit compared {tuned} with its base model {base}."]
    loud = [f for f in findings if f.severity in ("error", "warning") and f.analysis not in {r.name for r in failed}]
    if loud:
        sentences.append(f"It raised {_counts(loud)}; the most severe: {loud[0].analysis}: {loud[0].message}.")
    elif measured:
        sentences.append("No measurement crossed a warning threshold.")
    for r in measured:
        summary = r.output.section.summary.strip()
        if summary:
            sentences.append(f"{r.output.section.title}: {summary.rstrip('.')}.")
    gaps = [f"{r.name} ({r.output.section.summary.strip().rstrip('.').removeprefix('Not measured: ')})"
            for r in (*failed, *skipped)]
    gaps += [f"{name} (not selected)" for name in not_selected]
    if gaps:
        sentences.append("Not measured: " + "; ".join(gaps) + ".")
    sentences.append(CAVEAT)
    return " ".join(sentences)
