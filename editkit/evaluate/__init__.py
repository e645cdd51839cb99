"""The field's editing metrics, computed the same way for every editor.

See :func:`evaluate` and ``../shared/specs/editing.md``.
"""

from __future__ import annotations

from editkit.evaluate.drift import DriftResult, reference_drift
from editkit.evaluate.fluency import ngram_entropy
from editkit.evaluate.generation import (
    decode_completion,
    exact_match,
    greedy_generate,
    normalize_answer,
)
from editkit.evaluate.metrics import METRICS, MetricDef
from editkit.evaluate.runner import EvalConfig, EvalResult, aggregate, evaluate
from editkit.evaluate.scoring import PairScore, agreement, score_pairs

__all__ = [
    "METRICS",
    "DriftResult",
    "EvalConfig",
    "EvalResult",
    "MetricDef",
    "PairScore",
    "aggregate",
    "decode_completion",
    "agreement",
    "evaluate",
    "exact_match",
    "greedy_generate",
    "ngram_entropy",
    "normalize_answer",
    "reference_drift",
    "score_pairs",
]
