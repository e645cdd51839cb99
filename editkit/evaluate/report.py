"""Turning evaluation results into a :class:`~editkit.report.Report` (pure data).

>>> report = eval_report({"model": result}, prov, title="eval")   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from editkit.evaluate.metrics import METRICS
from editkit.evaluate.runner import EvalResult, config_dict
from editkit.report import MetricInfo, Provenance, Report, Table

NOTES = [
    "Token-accuracy metrics are teacher-forced (EasyEdit convention); ES/PS/NS compare "
    "{compare} target log-probabilities (CounterFact convention); gen_* metrics use greedy "
    "decoding of up to {max_new_tokens} tokens cut at the first '.', newline or EOS.",
]


def eval_report(
    results: Mapping[str, EvalResult],
    provenance: Provenance,
    *,
    kind: str = "eval",
    title: str = "editkit evaluation",
    config: dict[str, Any] | None = None,
    per_item_from: str | None = None,
) -> Report:
    """Assemble a report with one metrics column per result (e.g. ``model``, or ``before``/``after``).

    Args:
        results: column name -> evaluation result, in display order.
        provenance: who/what/where (see :func:`editkit.report.provenance`).
        kind: report kind.
        title: report title.
        config: extra configuration to record next to the evaluation config.
        per_item_from: the column whose per-request rows form ``per_item``
            (default: the last); other columns' metrics are added with a prefix.
    """
    if not results:
        raise ValueError("no results to report")
    names = list(results)
    main = per_item_from or names[-1]
    first = results[names[0]]
    metrics: dict[str, dict[str, float | None]] = {
        col: {k: v for k, v in res.aggregate.items() if v is not None or _any_value(results, k)}
        for col, res in results.items()
    }
    used = {k for col in metrics.values() for k in col}
    info = {
        name: MetricInfo(name=m.name, description=m.description, higher_is_better=m.higher_is_better, fmt=m.fmt)
        for name, m in METRICS.items()
        if name in used
    }
    per_item = []
    for k, row in enumerate(results[main].per_request):
        item = dict(row)
        for col in names:
            if col == main:
                continue
            other = results[col].per_request[k]
            for metric in ("reliability", "generalization", "neighborhood_accuracy", "completion"):
                if metric in other:
                    item[f"{col}_{metric}"] = other[metric]
        per_item.append(item)
    tables = []
    drifts = {col: r.drift for col, r in results.items() if r.drift is not None}
    if drifts:
        tables.append(
            Table(
                title="Reference text",
                columns=["column", "perplexity", "KL to unedited", "passages", "tokens"],
                rows=[
                    [col, d.perplexity, d.kl_mean, d.n_texts, d.n_tokens] for col, d in drifts.items()
                ],
                description="Perplexity and mean per-token KL(unedited || model) on the shipped reference text set.",
            )
        )
    timings = {f"{col}.{stage}": sec for col, r in results.items() for stage, sec in r.timings.items()}
    cfg = {"evaluation": config_dict(first.config), **(config or {})}
    notes = [n.format(compare=first.config.compare, max_new_tokens=first.config.max_new_tokens) for n in NOTES]
    if all(r.aggregate.get("locality") is None for r in results.values()):
        notes.append("locality and gen_locality need an unedited baseline; none was given, so they are not reported.")
    return Report(
        kind=kind,
        title=title,
        provenance=provenance,
        config=cfg,
        timings=timings,
        metrics=metrics,
        metric_info=info,
        tables=tables,
        per_item=per_item,
        notes=notes,
    )


def _any_value(results: Mapping[str, EvalResult], key: str) -> bool:
    return any(r.aggregate.get(key) is not None for r in results.values())


def edit_report(
    before: EvalResult,
    after: EvalResult,
    result: Any,
    provenance: Provenance,
    *,
    title: str,
    config: dict[str, Any] | None = None,
) -> Report:
    """A before/after report for one edit (``result`` is an :class:`editkit.editors.EditResult`)."""
    report = eval_report(
        {"before": before, "after": after},
        provenance,
        kind="edit",
        title=title,
        config={
            "method": result.method,
            "editor": result.config,
            "location": result.location.to_dict(),
            **(config or {}),
        },
    )
    sched = result.info.get("schedule", {})
    report.tables.insert(
        0,
        Table(
            title="Edit",
            columns=["field", "value"],
            rows=[
                ["method", result.method],
                ["location", result.location.describe()],
                ["why there", result.location.reason],
                *[[f"schedule.{k}", v] for k, v in sched.items()],
                *[[f"null space {k}", v] for k, v in result.info.get("null_space", {}).items()],
                *[[f"|delta| {k}", round(v, 6)] for k, v in result.norms().items()],
            ],
            description="What ran: the editor, where it edited, the training schedule actually run.",
        ),
    )
    if result.log:
        cols = list(result.log[0])
        report.tables.append(
            Table(title="Training log", columns=cols, rows=[[row.get(c) for c in cols] for row in result.log])
        )
    report.timings.update({f"edit.{k}": v for k, v in result.timings.items()})
    return report
