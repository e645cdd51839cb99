"""The ``cge`` analysis: examples of what is new in the tuned model (Isonuma and Titov, ICLR 2025).

Contrastive generative exploration on the shared tuned pair: decode with
``log p_T - gamma * log p_B`` on the tokens the tuned model finds plausible
(:func:`audit.cge.decode.generate_with_pair`), from BOS or from the audit's
prompts, and rank the reference passages by their sequence-level novelty
(:func:`audit.cge.novelty.novelty_with_pair`). No update of the base model
(the iterative variant is ``editkit cge --iterative``).
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
    from audit.context import AuditContext

NAME = "cge"
TITLE = "Contrastive generative exploration (CGE)"
LABEL_CHARS = 60
TEXT_CHARS = 240


@dataclass(frozen=True)
class CgeOptions(AnalysisOptions):
    """Options of the CGE analysis (published: gamma 1, alpha 0.1, 4 beams, 256 tokens, from BOS)."""

    n: int = option("examples to generate", 6)
    start: str = option("bos (unconditional, as published) or prompts (continue the audit's prompts)", "bos")
    max_new_tokens: int = option("new tokens per example (published: 256)", 32)
    num_beams: int = option("beams per example (beam-sample; published: 4)", 4)
    gamma: float = option("weight of the base model's log-probability (published: 1)", 1.0)
    alpha: float = option("plausibility cut: tokens with p_T < alpha * max p_T are excluded (published: 0.1)", 0.1)
    eos: str = option("ignore (fixed length, as published), stop or ban", "ignore")
    rank_reference: int = option("reference passages ranked by novelty (0: none)", 40)
    max_length: int = option("tokens of each reference passage scored", 128)
    top: int = option("most novel passages listed", 5)

    def __post_init__(self) -> None:
        self.decoding()
        if self.n < 1 or self.rank_reference < 0 or self.top < 0 or self.max_length < 1:
            raise InputError(f"cge: n={self.n} and max_length must be >= 1, rank_reference and top >= 0")
        if self.start not in ("bos", "prompts"):
            raise InputError(f"cge: start={self.start!r}; choose bos or prompts")

    def decoding(self) -> Any:
        from audit.cge import CGEConfig

        return CGEConfig(gamma=self.gamma, alpha=self.alpha, num_beams=self.num_beams,
                         max_new_tokens=self.max_new_tokens, eos=self.eos)  # type: ignore[arg-type]


def _short(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def run_cge(ctx: AuditContext, options: CgeOptions) -> AnalysisOutput:
    """Contrastive examples from the tuned pair, and the reference passages ranked by novelty."""
    from audit.cge.decode import example_prompts, generate_with_pair, make_generator
    from audit.cge.novelty import novelty_with_pair

    pair = ctx.contrast_pair()
    prompts = [p for s in ctx.prompt_sets for p in s.prompts] if options.start == "prompts" else None
    plan = example_prompts(options.n, prompts)
    examples = generate_with_pair(pair, ctx.tok, plan, options.decoding(),
                                  generator=make_generator(options.seed, pair.device), progress=ctx.progress)
    ranked = sorted(examples, key=lambda e: -e.score)
    texts = ctx.reference[: options.rank_reference]
    scores = (novelty_with_pair(pair, ctx.tok, texts, gamma=options.gamma, max_length=options.max_length)
              if texts else [])
    novel = sorted(scores, key=lambda s: -s.score)
    mean_example = statistics.fmean(e.score for e in examples)
    metrics: dict[str, float | None] = {"mean_example_score": mean_example, "best_example_score": ranked[0].score}
    info = {
        "mean_example_score": MetricInfo("mean_example_score", "mean per-token contrastive score "
                                         "log p_T - gamma log p_B of the generated examples", None, ".3f"),
        "best_example_score": MetricInfo("best_example_score", "the highest example's per-token score", None, ".3f"),
    }
    if scores:
        metrics["mean_reference_novelty"] = statistics.fmean(s.score for s in scores)
        info["mean_reference_novelty"] = MetricInfo(
            "mean_reference_novelty", "mean per-token log p_T - gamma log p_B over the reference passages", None, ".4f")
    where = "from BOS" if options.start == "bos" else "continuing the audit's prompts"
    best = _short(ranked[0].text, 80)
    summary = (f"{len(examples)} examples generated {where} that the tuned model prefers over the base "
               f"(mean contrastive score {mean_example:.3f} per token); the highest scores {ranked[0].score:.3f}: "
               f"{best!r}.")
    if scores:
        summary += (f" Mean novelty of {len(scores)} reference passages: "
                    f"{metrics['mean_reference_novelty']:.4f} per token.")
    figures = [Figure("bars", "Generated examples by contrastive score",
                      {"labels": [_short(e.text, LABEL_CHARS) for e in ranked],
                       "series": [{"name": "score per token", "values": [e.score for e in ranked]}],
                       "horizontal": True, "xlabel": "mean log p_T - gamma log p_B per token"})]
    tables = [Table("Generated examples", ["rank", "prompt", "example", "score/token", "tokens"],
                    [[i + 1, e.prompt or "(BOS)", _short(e.text, TEXT_CHARS), e.score, e.n_tokens]
                     for i, e in enumerate(ranked)],
                    f"Decoding: gamma={options.gamma:g}, alpha={options.alpha:g}, {options.num_beams} beams, "
                    f"{options.max_new_tokens} tokens, eos={options.eos}, seed {options.seed}.",
                    fmt={"score/token": ".3f"})]
    if novel:
        shown = novel[: options.top]
        figures.append(Figure("bars", "Reference passages the tuned model prefers most",
                              {"labels": [_short(s.text, LABEL_CHARS) for s in shown],
                               "series": [{"name": "novelty per token", "values": [s.score for s in shown]}],
                               "horizontal": True, "xlabel": "mean log p_T - gamma log p_B per token"}))
        tables.append(Table("Most novel reference passages", ["rank", "passage", "novelty/token", "tokens"],
                            [[i + 1, _short(s.text, TEXT_CHARS), s.score, s.n_tokens] for i, s in enumerate(shown)],
                            f"The top {len(shown)} of {len(novel)} passages by sequence-level novelty.",
                            fmt={"novelty/token": ".4f"}))
    findings = [Finding(NAME, "info", f"the most distinctive generation of the tuned model ({ranked[0].score:.3f} "
                        f"per token): {best!r}", {"examples": [e.to_dict() for e in ranked[:3]]})]
    section = Section(NAME, TITLE, summary=summary, metrics=metrics, metric_info=info, tables=tables, figures=figures)
    return AnalysisOutput(section, findings)


register_analysis(NAME, CgeOptions, run_cge, title=TITLE,
                  description="generated examples of what is new in the tuned model (Isonuma and Titov)")
