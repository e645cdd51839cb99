"""The ``drift`` analysis: how far the tuned model moved, in its weights and in its outputs.

- Weights: the relative Frobenius change ``||dW|| / ||W0||`` of every tuned
  tensor, summed per decoder block (``sqrt(sum ||dW||^2) / sqrt(sum ||W0||^2)``
  over the block's changed tensors) and per module kind.
- Outputs: perplexity of both models and the mean per-token
  ``KL(base || tuned)`` on the reference text (:func:`editkit.evaluate.reference_drift`,
  run on the shared tuned pair; the base distributions come from the same
  model with the original tensors swapped back).
- For an editkit edit (``requests.jsonl`` next to its deltas): the edit's own
  metrics before and after (:func:`editkit.evaluate.evaluate`, teacher-forced
  and probability metrics; generation metrics are left to ``editkit edit``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from audit.analyses.registry import AnalysisOptions, AnalysisOutput, register_analysis
from editkit.editors.config import option
from editkit.errors import InputError
from editkit.report import Figure, Finding, MetricInfo, Section, Table

if TYPE_CHECKING:
    from audit.context import AuditContext, ParamDelta
    from editkit.evaluate import DriftResult

NAME = "drift"
TITLE = "Weight and output drift"
EDIT_METRICS = ("reliability", "generalization", "locality", "neighborhood_accuracy",
                "efficacy_score", "paraphrase_score", "neighborhood_score", "score")


@dataclass(frozen=True)
class DriftOptions(AnalysisOptions):
    """Options of the drift analysis."""

    passages: int = option("reference passages for perplexity and KL (0: none)", 60)
    max_length: int = option("tokens per reference passage", 128)
    batch_size: int = option("passages per forward pass", 16)
    ppl_warn: float = option("a relative perplexity rise from this on is a warning (0.05: +5%)", 0.05)
    kl_warn: float = option("a mean KL(base || tuned) from this on (nats per token) is a warning", 0.05)
    edit_metrics: bool = option("for an editkit edit, score its requests before and after", True)
    top: int = option("tensors listed in the table of the largest changes", 10)

    def __post_init__(self) -> None:
        if self.passages < 0 or self.max_length < 2 or self.batch_size < 1 or self.top < 0:
            raise InputError("drift: passages and top must be >= 0, max_length >= 2, batch_size >= 1")


def _norm(values: list[float]) -> float:
    return math.sqrt(sum(v * v for v in values))


def _share(x: float) -> str:
    """``0.0123`` -> ``1.23%``; ten times the norm or more -> ``17.8x``."""
    return f"{100 * x:.3g}%" if x < 10 else f"{x:.3g}x"


def _relative(stats: list[ParamDelta]) -> float | None:
    base = _norm([s.base_norm for s in stats])
    return _norm([s.delta_norm for s in stats]) / base if base > 0 else None


def _weights_part(stats: list[ParamDelta], num_layers: int, top: int) -> tuple[list[Table], Figure | None, str, dict[str, Any]]:
    by_layer: dict[int, list[ParamDelta]] = defaultdict(list)
    by_kind: dict[str, dict[int, list[ParamDelta]]] = defaultdict(lambda: defaultdict(list))
    for s in stats:
        if s.layer is not None:
            by_layer[s.layer].append(s)
            by_kind[s.kind][s.layer].append(s)
    rows: list[list[Any]] = [[layer, len(group), _norm([s.delta_norm for s in group]),
                              _norm([s.base_norm for s in group]), _relative(group)]
                             for layer, group in sorted(by_layer.items())]
    outside = [s for s in stats if s.layer is None]
    rows += [[s.name, 1, s.delta_norm, s.base_norm, s.relative] for s in outside]
    layer_table = Table("Relative weight change per block", ["block", "tensors", "||dW||", "||W0||", "relative"],
                        rows, f"Over each block's changed tensors (Frobenius norms); tensors outside the "
                        f"{num_layers} blocks are listed by name.", fmt={"relative": ".2%", "||dW||": ".4g", "||W0||": ".4g"})
    largest = sorted(stats, key=lambda s: -(s.relative or 0.0))[:top]
    top_table = Table("Largest relative changes", ["tensor", "block", "kind", "||dW||", "relative"],
                      [[s.name, s.layer, s.kind, s.delta_norm, s.relative] for s in largest],
                      fmt={"relative": ".2%", "||dW||": ".4g"})
    figure = None
    if by_layer:
        layers = list(range(num_layers))
        series = [{"name": "block (all changed tensors)", "x": layers,
                   "y": [_relative(by_layer[i]) if i in by_layer else None for i in layers]}]
        series += [{"name": kind, "x": layers, "y": [_relative(per[i]) if i in per else None for i in layers]}
                   for kind, per in by_kind.items()]
        figure = Figure("lines", "Relative weight change per block and module kind",
                        {"series": series, "xlabel": "block", "ylabel": "||dW||_F / ||W0||_F", "logy": True},
                        "Gaps: blocks whose tensors of that kind did not change.")
    peak = max((s for s in stats if s.relative is not None), key=lambda s: s.relative or 0.0, default=None)
    total = _relative(stats)
    text = f"{len(stats)} tensor{'s' if len(stats) != 1 else ''} changed"
    if total is not None:
        text += f", by {_share(total)} of their norm in all"
    if peak is not None and peak.relative is not None:
        where = f"block {peak.layer} ({peak.kind})" if peak.layer is not None else peak.name
        text += f"; the largest relative change is {_share(peak.relative)} in {where}"
    facts = {"tensors_changed": len(stats), "relative_change": total,
             "max_relative_change": peak.relative if peak is not None else None}
    return [layer_table, top_table], figure, text, facts


def reference_drift_of(ctx: AuditContext, options: DriftOptions) -> DriftResult | None:
    """Perplexity of both models and mean KL(base || tuned) on the reference text (computed once)."""
    from editkit.evaluate import reference_drift

    texts = ctx.reference[: options.passages]
    if not texts:
        return None

    def compute() -> DriftResult:
        with ctx.tuned() as model:
            return reference_drift(model, ctx.tok, texts, base=ctx.pair().base,
                                   batch_size=options.batch_size, max_length=options.max_length)

    return ctx.memo(f"reference drift:{len(texts)}:{options.max_length}", compute)


def _edit_part(ctx: AuditContext) -> tuple[Table, dict[str, Any]] | None:
    from editkit.evaluate import EvalConfig, evaluate

    requests = ctx.edit_requests()
    if not requests:
        return None
    config = EvalConfig(generation=False, fluency=False)
    before = evaluate(ctx.base, ctx.tok, requests, config=config)
    with ctx.tuned() as model:
        after = evaluate(model, ctx.tok, requests, config=config, baseline=before)
    names = [m for m in EDIT_METRICS if after.aggregate.get(m) is not None or before.aggregate.get(m) is not None]
    rows = []
    for m in names:
        b, a = before.aggregate.get(m), after.aggregate.get(m)
        rows.append([m, b, a, None if a is None or b is None else a - b])
    table = Table(f"Edit metrics on the edit's {len(requests)} requests", ["metric", "base", "tuned", "change"], rows,
                  "Teacher-forced token accuracies and CounterFact probability comparisons "
                  "(editkit.evaluate); locality is agreement with the base model.",
                  fmt={"base": ".3f", "tuned": ".3f", "change": "+.3f"})
    return table, {m: after.aggregate.get(m) for m in names}


def run_drift(ctx: AuditContext, options: DriftOptions) -> AnalysisOutput:
    """Relative weight change per block, perplexity and KL on the reference text, edit metrics."""
    tables, figure, weights_text, facts = _weights_part(ctx.delta_stats(), ctx.num_layers, options.top)
    metrics: dict[str, float | None] = {"relative_change": facts["relative_change"],
                                        "max_relative_change": facts["max_relative_change"]}
    info = {
        "relative_change": MetricInfo("relative_change", "||dW||_F / ||W0||_F over all changed tensors", None, ".2%"),
        "max_relative_change": MetricInfo("max_relative_change", "the largest ||dW||_F / ||W0||_F of one tensor",
                                          None, ".2%"),
    }
    findings: list[Finding] = []
    parts = [f"Weights: {weights_text}."]
    ref = reference_drift_of(ctx, options)
    if ref is None:
        parts.append("Perplexity and KL were not measured (no reference text).")
    else:
        assert ref.base_perplexity is not None and ref.kl_mean is not None
        rise = ref.perplexity / ref.base_perplexity - 1.0
        metrics.update({"perplexity_base": ref.base_perplexity, "perplexity_tuned": ref.perplexity,
                        "perplexity_change": rise, "kl_mean": ref.kl_mean})
        info.update({
            "perplexity_base": MetricInfo("perplexity_base", "base model's perplexity on the reference text", False, ".3f"),
            "perplexity_tuned": MetricInfo("perplexity_tuned", "tuned model's perplexity on the reference text", False, ".3f"),
            "perplexity_change": MetricInfo("perplexity_change", "tuned / base perplexity - 1", False, "+.2%"),
            "kl_mean": MetricInfo("kl_mean", "mean per-token KL(base || tuned) on the reference text (nats)", False, ".4f"),
        })
        text = (f"perplexity on {ref.n_texts} reference passages {ref.base_perplexity:.3f} -> {ref.perplexity:.3f} "
                f"({100 * rise:+.1f}%), mean KL(base || tuned) {ref.kl_mean:.4f} nats per token over {ref.n_tokens} tokens")
        parts.append(f"Outputs: {text}.")
        details = {"perplexity_base": ref.base_perplexity, "perplexity_tuned": ref.perplexity, "kl_mean": ref.kl_mean,
                   "passages": ref.n_texts, "tokens": ref.n_tokens}
        loud = rise >= options.ppl_warn or ref.kl_mean >= options.kl_warn
        findings.append(Finding(NAME, "warning" if loud else "info", text, details))
        tables.insert(0, Table("Reference text", ["model", "perplexity", "KL(base || model)", "passages", "tokens"],
                               [["base", ref.base_perplexity, 0.0, ref.n_texts, ref.n_tokens],
                                ["tuned", ref.perplexity, ref.kl_mean, ref.n_texts, ref.n_tokens]],
                               fmt={"perplexity": ".3f", "KL(base || model)": ".4f"}))
    findings.append(Finding(NAME, "info", f"weights: {weights_text}", {k: v for k, v in facts.items()}))
    edit = _edit_part(ctx) if options.edit_metrics else None
    if edit is not None:
        table, after = edit
        tables.insert(0, table)
        shown = {k: after[k] for k in ("reliability", "generalization", "locality") if after.get(k) is not None}
        metrics.update({f"edit_{k}": v for k, v in shown.items()})
        info.update({f"edit_{k}": MetricInfo(f"edit_{k}", f"{k} of the edit on its own requests (tuned model)")
                     for k in shown})
        text = ", ".join(f"{k} {v:.3f}" for k, v in shown.items())
        parts.append(f"Edit: {text}.")
        findings.append(Finding(NAME, "info", f"the edit on its own requests: {text}", after))
    elif ctx.kind == "edit":
        parts.append("Edit metrics were not measured (no requests.jsonl next to the deltas).")
    section = Section(NAME, TITLE, summary=" ".join(parts), metrics=metrics, metric_info=info, tables=tables,
                      figures=[figure] if figure is not None else [])
    return AnalysisOutput(section, findings)


register_analysis(NAME, DriftOptions, run_drift, title=TITLE,
                  description="relative weight change per block; perplexity and KL on reference text; edit metrics")
