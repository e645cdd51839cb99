"""Binary-classification metrics with bootstrap intervals, written out for auditability.

- AUROC: the Mann-Whitney statistic, P(score of a positive > score of a
  negative) with ties counted half (average ranks).
- Balanced accuracy: the mean of the per-class recalls.
- ECE (expected calibration error, binary reliability form): predicted
  probabilities of the positive class are put in ``n_bins`` equal-width bins;
  ECE = sum over bins of (bin size / n) * |mean label - mean probability|.
- Brier score: mean squared error of the probabilities.
- Intervals: percentile bootstrap over items (or over groups of items, e.g.
  all responses to one prompt) with a fixed seed; Wilson score interval for a
  plain proportion.

Undefined values (AUROC with one class present) are ``nan`` here and ``None``
in :meth:`Estimate.to_dict`.

>>> auroc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
0.75
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def _ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    sorted_vals = values[order]
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and sorted_vals[j + 1] == sorted_vals[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def auroc(y: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve; nan when only one class is present."""
    y = np.asarray(y).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = _ranks(scores)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def per_class_recall(y: np.ndarray, pred: np.ndarray, labels: Sequence[str] = ("negative", "positive")) -> dict[str, float]:
    """Recall of each class (``labels[0]`` for 0, ``labels[1]`` for 1); nan for an absent class."""
    y = np.asarray(y).astype(int)
    pred = np.asarray(pred).astype(int)
    out = {}
    for k, name in enumerate(labels):
        mask = y == k
        out[name] = float((pred[mask] == k).mean()) if mask.any() else math.nan
    return out


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean recall over the classes present (nan for no items)."""
    recalls = [r for r in per_class_recall(y, pred).values() if not math.isnan(r)]
    return float(np.mean(recalls)) if recalls else math.nan


def accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Share of correct predictions."""
    y = np.asarray(y)
    return float((np.asarray(pred) == y).mean()) if len(y) else math.nan


def ece(y: np.ndarray, probs: np.ndarray, n_bins: int = 10) -> float:
    """Expected calibration error of positive-class probabilities (equal-width bins; 1.0 falls in the last)."""
    y = np.asarray(y, dtype=np.float64)
    probs = np.clip(np.asarray(probs, dtype=np.float64), 0.0, 1.0)
    if len(y) == 0:
        return math.nan
    bins = np.minimum((probs * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            total += mask.mean() * abs(y[mask].mean() - probs[mask].mean())
    return float(total)


def brier(y: np.ndarray, probs: np.ndarray) -> float:
    """Mean squared difference between probabilities and labels."""
    y = np.asarray(y, dtype=np.float64)
    return float(np.mean((np.asarray(probs, dtype=np.float64) - y) ** 2)) if len(y) else math.nan


def wilson_interval(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a proportion ``k / n`` (default 95%); ``(nan, nan)`` for ``n == 0``.

    >>> [round(v, 4) for v in wilson_interval(5, 10)]
    [0.2366, 0.7634]
    """
    if n == 0:
        return math.nan, math.nan
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Estimate:
    """A number with its interval (``lo``/``hi`` nan when not computed)."""

    value: float
    lo: float = math.nan
    hi: float = math.nan

    def to_dict(self) -> dict[str, float | None]:
        """``{"value", "lo", "hi"}`` with nan as None."""
        return {k: (None if math.isnan(v) else round(v, 6)) for k, v in (("value", self.value), ("lo", self.lo), ("hi", self.hi))}

    def format(self, fmt: str = ".3f") -> str:
        """``0.912 [0.880, 0.940]``, or ``-`` when undefined."""
        if math.isnan(self.value):
            return "-"
        if math.isnan(self.lo):
            return format(self.value, fmt)
        return f"{self.value:{fmt}} [{self.lo:{fmt}}, {self.hi:{fmt}}]"


def bootstrap_indices(n: int, n_boot: int, seed: int, groups: Sequence[Any] | None = None) -> list[np.ndarray]:
    """Index arrays of ``n_boot`` bootstrap resamples (of items, or of whole groups when given)."""
    rng = np.random.default_rng(seed)
    if groups is None:
        return [rng.integers(0, n, size=n) for _ in range(n_boot)]
    keys = {g: i for i, g in enumerate(dict.fromkeys(groups))}
    members: list[list[int]] = [[] for _ in keys]
    for i, g in enumerate(groups):
        members[keys[g]].append(i)
    arrays = [np.array(m, dtype=np.int64) for m in members]
    return [np.concatenate([arrays[j] for j in rng.integers(0, len(arrays), size=len(arrays))]) for _ in range(n_boot)]


def bootstrap(
    fn: Callable[..., float],
    arrays: Sequence[np.ndarray],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    groups: Sequence[Any] | None = None,
) -> Estimate:
    """``fn(*arrays)`` with a percentile bootstrap interval (resamples where ``fn`` is nan are skipped).

    >>> y = np.array([0, 1] * 20); s = y + 0.1
    >>> bootstrap(auroc, [y, s], n_boot=50).lo
    1.0
    """
    value = float(fn(*arrays))
    if n_boot <= 0 or len(arrays[0]) == 0:
        return Estimate(value)
    stats = []
    for idx in bootstrap_indices(len(arrays[0]), n_boot, seed, groups):
        v = fn(*(a[idx] for a in arrays))
        if not math.isnan(v):
            stats.append(v)
    if not stats:
        return Estimate(value)
    lo, hi = np.quantile(np.array(stats), [alpha / 2, 1 - alpha / 2])
    return Estimate(value, float(lo), float(hi))


def binary_metrics(
    y: np.ndarray,
    scores: np.ndarray,
    pred: np.ndarray,
    probs: np.ndarray | None = None,
    *,
    labels: Sequence[str] = ("compliance", "refusal"),
    n_boot: int = 1000,
    seed: int = 0,
    groups: Sequence[Any] | None = None,
) -> dict[str, Estimate]:
    """AUROC (of ``scores``), balanced accuracy, accuracy and per-class recall (of ``pred``),
    ECE and Brier (of ``probs``, when given), each with a bootstrap interval, and the counts.

    The same resamples are used for every metric (same seed).
    """
    y = np.asarray(y).astype(int)
    scores = np.asarray(scores, dtype=np.float64)
    pred = np.asarray(pred).astype(int)
    kw: dict[str, Any] = {"n_boot": n_boot, "seed": seed, "groups": groups}
    out = {
        "auroc": bootstrap(auroc, [y, scores], **kw),
        "balanced_accuracy": bootstrap(balanced_accuracy, [y, pred], **kw),
        "accuracy": bootstrap(accuracy, [y, pred], **kw),
    }
    for k, name in enumerate(labels):
        out[f"recall_{name}"] = bootstrap(lambda a, b, k=k: per_class_recall(a, b)[("negative", "positive")[k]], [y, pred], **kw)
    if probs is not None:
        p = np.asarray(probs, dtype=np.float64)
        out["ece"] = bootstrap(ece, [y, p], **kw)
        out["brier"] = bootstrap(brier, [y, p], **kw)
    out["n"] = Estimate(float(len(y)))
    out["n_positive"] = Estimate(float(y.sum()))
    return out


def metrics_to_dict(metrics: Mapping[str, Estimate]) -> dict[str, Any]:
    """JSON form: counts as ints, the rest as ``{"value", "lo", "hi"}``."""
    out: dict[str, Any] = {}
    for name, est in metrics.items():
        out[name] = int(est.value) if name.startswith("n") and name in ("n", "n_positive") else est.to_dict()
    return out
