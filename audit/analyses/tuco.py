"""The ``tuco`` analysis: how much of the tuned model's computation is due to tuning, per prompt set.

TuCo and OutputCo (Nuti et al., ICML 2025; :mod:`audit.tuco`) of every prompt
of every prompt set of the context, on the shared tuned pair (the base blocks
come from the same model with the original tensors swapped back). Results are
kept on the context (``tuco:<set>``) for other analyses.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from audit.analyses.registry import AnalysisOptions, AnalysisOutput, register_analysis
from editkit.editors.config import option
from editkit.errors import InputError
from editkit.report import Figure, Finding, MetricInfo, Section, Table

if TYPE_CHECKING:
    from audit.context import AuditContext, PromptSet
    from audit.tuco import TucoResult

NAME = "tuco"
TITLE = "Tuning contribution (TuCo)"
PROMPT_CHARS = 90


@dataclass(frozen=True)
class TucoOptions(AnalysisOptions):
    """Options of the TuCo analysis."""

    chat: bool | None = option("wrap prompts in the chat template (none: when the tokenizer has one)", None)
    system: str | None = option("system message for the chat template", None)
    batch_size: int = option("prompts per forward pass", 8)
    max_prompts: int = option("prompts per prompt set at most", 64)
    impl: str = option("implementation: hooks (reference) or nnsight", "hooks")
    warn: float = option("a prompt set whose mean TuCo reaches this is a warning", 0.2)

    def __post_init__(self) -> None:
        from audit.tuco.passes import get_runner

        if self.batch_size < 1 or self.max_prompts < 1:
            raise InputError(f"tuco: batch_size={self.batch_size} and max_prompts={self.max_prompts} must be >= 1")
        get_runner(self.impl)


def tuco_results(ctx: AuditContext, prompt_set: PromptSet, options: TucoOptions) -> list[TucoResult]:
    """TuCo of one prompt set on the context's tuned pair (computed once per set and settings)."""
    from audit.tuco import tuco

    prompts = list(prompt_set.prompts[: options.max_prompts])
    key = f"tuco:{prompt_set.name}:{options.chat}:{options.system}:{len(prompts)}"
    return ctx.memo(key, lambda: tuco(None, ctx.pair(), ctx.tok, prompts, chat=options.chat,
                                      system_prompt=options.system, batch_size=options.batch_size,
                                      impl=options.impl, progress=ctx.progress))


def _short(text: str, width: int = PROMPT_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _layer_share(results: list[TucoResult]) -> list[float]:
    """Mean over prompts of ``|FTC_l|_1 / (|PTC_l|_1 + |FTC_l|_1)`` per block."""
    layers = len(results[0].ftc_l1)
    out = []
    for layer in range(layers):
        shares = [r.ftc_l1[layer] / t if (t := r.ftc_l1[layer] + r.ptc_l1[layer]) > 0 else 0.0 for r in results]
        out.append(statistics.fmean(shares))
    return out


def run_tuco(ctx: AuditContext, options: TucoOptions) -> AnalysisOutput:
    """TuCo and OutputCo per prompt, summarized per prompt set."""
    sets = [s for s in ctx.prompt_sets if s.prompts]
    if not sets:
        raise InputError("tuco: no prompts; pass --prompts with a .jsonl or .txt file")
    by_set: dict[str, list[TucoResult]] = {s.name: tuco_results(ctx, s, options) for s in sets}
    means = {name: statistics.fmean(r.tuco for r in res) for name, res in by_set.items()}
    summary_rows: list[list[Any]] = []
    prompt_rows: list[list[Any]] = []
    for name, res in by_set.items():
        values = [r.tuco for r in res]
        summary_rows.append([name, len(res), means[name], statistics.median(values), max(values),
                             statistics.fmean(r.outputco for r in res)])
        prompt_rows += [[name, _short(r.prompt), r.n_tokens, r.tuco, r.outputco] for r in res]
    top = max(means, key=means.__getitem__)
    low = min(means, key=means.__getitem__)
    parts = ", ".join(f"{means[n]:.3f} on {n!r}" for n in by_set)
    summary = f"Mean TuCo (the tuning's share of the computation at the last prompt token) {parts}."
    findings = []
    if means[top] >= options.warn:
        findings.append(Finding(NAME, "warning", f"tuning accounts for {means[top]:.2f} of the computation on "
                                f"the {top!r} prompt set (mean TuCo; warning at {options.warn:g})", {"mean_tuco": means}))
    else:
        findings.append(Finding(NAME, "info", f"mean TuCo {parts}", {"mean_tuco": means}))
    if len(means) > 1 and means[top] > 2 * means[low] and means[top] - means[low] > 0.02:
        findings.append(Finding(NAME, "info", f"the tuning acts most on {top!r} ({means[top]:.3f}) and least on "
                                f"{low!r} ({means[low]:.3f})", {"mean_tuco": means}))
    layers = list(range(len(next(iter(by_set.values()))[0].ftc_l1)))
    figures = [
        Figure("distributions", "TuCo per prompt, by prompt set",
               {"groups": [{"name": n, "values": [r.tuco for r in res]} for n, res in by_set.items()],
                "ylabel": "TuCo"},
               "TuCo = |sum FTC|_1 / (|sum PTC|_1 + |sum FTC|_1) at the last prompt token; box: quartiles."),
        Figure("lines", "Fine-tuning share of each block's update",
               {"series": [{"name": n, "x": layers, "y": _layer_share(res)} for n, res in by_set.items()],
                "xlabel": "block", "ylabel": "mean |FTC_l|_1 / (|PTC_l|_1 + |FTC_l|_1)"},
               "Where in the network the tuning acts, per prompt set."),
    ]
    tables = [
        Table("TuCo by prompt set", ["prompt set", "prompts", "mean TuCo", "median TuCo", "max TuCo", "mean OutputCo"],
              summary_rows, fmt={c: ".4f" for c in ("mean TuCo", "median TuCo", "max TuCo", "mean OutputCo")}),
        Table("TuCo per prompt", ["prompt set", "prompt", "tokens", "TuCo", "OutputCo"], prompt_rows,
              "Prompts as given (the chat template, when used, is applied before measuring).",
              fmt={"TuCo": ".4f", "OutputCo": ".4f"}),
    ]
    metrics: dict[str, float | None] = {f"mean_tuco[{n}]": v for n, v in means.items()}
    info = {k: MetricInfo(k, f"mean TuCo on the {n!r} prompts", None, ".4f") for k, n in zip(metrics, means, strict=True)}
    section = Section(NAME, TITLE, summary=summary, metrics=metrics, metric_info=info, tables=tables, figures=figures)
    return AnalysisOutput(section, findings)


register_analysis(NAME, TucoOptions, run_tuco, title=TITLE,
                  description="the tuning's share of the tuned model's computation on each prompt set (Nuti et al.)")
