"""The metrics editkit reports, as data: name, meaning, direction, display format.

Every editor is scored by the same definitions (../specs/editing.md):

- token accuracy (EasyEdit): reliability, generalization, locality;
- probability comparison (CounterFact/ROME): ES, PS, NS and their harmonic mean;
- generation exact match (the "WILD" protocol LocFT-BF reports);
- general capability: perplexity / KL on reference text, n-gram-entropy fluency.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricDef:
    """What a metric means and which way is better."""

    name: str
    description: str
    higher_is_better: bool | None = True
    fmt: str = ".3f"


METRICS: dict[str, MetricDef] = {
    m.name: m
    for m in [
        MetricDef("reliability", "token accuracy of target_new on the edit prompt (teacher-forced argmax)"),
        MetricDef("generalization", "token accuracy of target_new on paraphrase prompts"),
        MetricDef(
            "locality",
            "neighborhood prompts: fraction of target-span argmax tokens unchanged vs the unedited model",
        ),
        MetricDef("neighborhood_accuracy", "token accuracy of each neighbor's own target on its prompt"),
        MetricDef("true_accuracy", "token accuracy of target_true on the edit prompt"),
        MetricDef("efficacy_score", "ES: share of requests with P(target_new) > P(target_true)"),
        MetricDef("paraphrase_score", "PS: the same comparison over paraphrase prompts"),
        MetricDef("neighborhood_score", "NS: share of neighborhood prompts with P(neighbor target) > P(target_new)"),
        MetricDef("score", "harmonic mean of ES, PS and NS"),
        MetricDef("gen_reliability", "greedy generation on the edit prompt exactly matches target_new"),
        MetricDef("gen_generalization", "greedy generation on paraphrases exactly matches target_new"),
        MetricDef("gen_neighborhood", "greedy generation on neighborhood prompts matches the neighbor's target"),
        MetricDef("gen_locality", "greedy generation on neighborhood prompts unchanged vs the unedited model"),
        MetricDef("fluency", "n-gram entropy of generations from the edit prompts (ROME: 2/3 H2 + 4/3 H3, halved)"),
        MetricDef("perplexity", "perplexity on the reference text set", higher_is_better=False, fmt=".2f"),
        MetricDef("kl_drift", "mean KL(unedited || model) per token on the reference text", higher_is_better=False, fmt=".4f"),
    ]
}


def harmonic_mean(values: list[float]) -> float | None:
    """Harmonic mean; 0 when any value is 0; None when a value is missing."""
    if not values or any(v is None for v in values):
        return None
    if any(v <= 0 for v in values):
        return 0.0
    return len(values) / sum(1 / v for v in values)


def mean(values: list[float]) -> float | None:
    """Arithmetic mean, None for no values."""
    return sum(values) / len(values) if values else None
