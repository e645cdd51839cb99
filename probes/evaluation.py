"""Honest evaluation: a grouped random split and leave-one-source-out, always beside two baselines.

For every split the classifier is fitted on the training rows only (its own
validation data, threshold and calibration come from inside them) and scored
on the test rows. Beside it, on the same rows:

- ``substring``: the substring judge's verdict on the response (a fixed
  rule, nothing is fitted);
- ``majority``: always the training majority class, with the training
  positive rate as its probability (AUROC 0.5, balanced accuracy 0.5).

Each metric comes with a percentile bootstrap interval over the test rows
(resampling whole groups, e.g. all responses to one prompt).

>>> report = evaluate_protocol(fit_predict, y, sources=sources, groups=groups, substring=judge.predict(texts))  # doctest: +SKIP
>>> report.loso_summary()["auroc"]["min"]                                                                      # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from editkit.errors import InputError
from probes.metrics import Estimate, binary_metrics, metrics_to_dict
from probes.splits import Split, grouped_split, loso_splits

Progress = Callable[[str, int, int], None]
SUMMARY_METRICS: tuple[str, ...] = ("auroc", "balanced_accuracy", "ece")


@dataclass(frozen=True)
class Scored:
    """A fitted classifier's output on test rows: ``scores`` (ranking), ``probs`` (calibrated) and ``pred`` (0/1)."""

    scores: np.ndarray
    probs: np.ndarray | None
    pred: np.ndarray


FitPredict = Callable[[np.ndarray, np.ndarray], Scored]
"""``fit_predict(train_indices, test_indices)``: fit on the training rows, return :class:`Scored` for the test rows."""


@dataclass
class SplitResult:
    """Metrics of the classifier and the baselines on one split.

    Attributes:
        name: ``"random"``, ``"loso:<source>"`` or ``"all"``.
        held_out: the held-out source (leave-one-source-out).
        n_train, n_test: rows.
        metrics: ``{"probe" | "substring" | "majority": {metric: Estimate}}``.
    """

    name: str
    held_out: str | None
    n_train: int
    n_test: int
    metrics: dict[str, dict[str, Estimate]]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "held_out": self.held_out, "n_train": self.n_train, "n_test": self.n_test,
                "metrics": {who: metrics_to_dict(m) for who, m in self.metrics.items()}}


@dataclass
class EvaluationReport:
    """Every split's result plus the settings.

    Attributes:
        kind: what was evaluated (``"text"``, ``"activation"``, ...).
        labels: ``(negative, positive)`` label names.
        splits: the random split first (if run), then one per held-out source.
        settings: test fraction, bootstrap size, seed, source field ...
    """

    kind: str
    labels: tuple[str, str]
    splits: list[SplitResult]
    settings: dict[str, Any] = field(default_factory=dict)

    def random(self) -> SplitResult | None:
        return next((s for s in self.splits if s.name == "random"), None)

    def loso(self) -> list[SplitResult]:
        return [s for s in self.splits if s.name.startswith("loso:")]

    def loso_summary(self, who: str = "probe") -> dict[str, dict[str, float | None]]:
        """Mean, minimum and maximum over the held-out sources of each headline metric."""
        out: dict[str, dict[str, float | None]] = {}
        for metric in SUMMARY_METRICS:
            values = [s.metrics[who][metric].value for s in self.loso() if metric in s.metrics.get(who, {})]
            values = [v for v in values if not math.isnan(v)]
            out[metric] = ({"mean": float(np.mean(values)), "min": float(np.min(values)), "max": float(np.max(values))}
                           if values else {"mean": None, "min": None, "max": None})
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "labels": list(self.labels), "settings": self.settings,
                "splits": [s.to_dict() for s in self.splits],
                "loso_summary": {who: self.loso_summary(who) for who in ("probe", "substring", "majority")} if self.loso() else {}}

    def rows(self) -> list[dict[str, str]]:
        """One display row per split: the classifier's headline numbers (intervals on AUROC and
        balanced accuracy) and both baselines' balanced accuracy (a 0/1 verdict's AUROC equals it)."""
        neg, pos = self.labels
        out = []
        for s in self.splits:
            m = s.metrics
            out.append({
                "split": s.name,
                "n": str(s.n_test),
                "AUROC": m["probe"]["auroc"].format(".2f"),
                "bal. acc": m["probe"]["balanced_accuracy"].format(".2f"),
                f"rec. {pos}": format_value(m["probe"][f"recall_{pos}"].value),
                f"rec. {neg}": format_value(m["probe"][f"recall_{neg}"].value),
                "ECE": format_value(m["probe"]["ece"].value) if "ece" in m["probe"] else "-",
                "substring": format_value(m["substring"]["balanced_accuracy"].value) if "substring" in m else "-",
                "majority": format_value(m["majority"]["balanced_accuracy"].value),
            })
        return out


def format_value(value: float, fmt: str = ".2f") -> str:
    """A number, or ``-`` when undefined."""
    return "-" if math.isnan(value) else format(value, fmt)


def score_split(
    y: np.ndarray,
    scored: Scored,
    *,
    substring: np.ndarray | None,
    train_positive_rate: float,
    labels: tuple[str, str],
    groups: Sequence[Any] | None,
    n_boot: int,
    seed: int,
) -> dict[str, dict[str, Estimate]]:
    """The classifier's metrics and both baselines' on one set of test rows."""
    kw: dict[str, Any] = {"labels": labels, "n_boot": n_boot, "seed": seed, "groups": groups}
    out = {"probe": binary_metrics(y, scored.scores, scored.pred, scored.probs, **kw)}
    if substring is not None:
        sub = np.asarray(substring).astype(int)
        out["substring"] = binary_metrics(y, sub.astype(float), sub, sub.astype(float), **kw)
    majority = int(train_positive_rate >= 0.5)
    const = np.full(len(y), train_positive_rate)
    out["majority"] = binary_metrics(y, const, np.full(len(y), majority), const, **kw)
    return out


def _run_split(split: Split, fit_predict: FitPredict, y: np.ndarray, substring: np.ndarray | None,
               groups: Sequence[Any] | None, labels: tuple[str, str], n_boot: int, seed: int) -> SplitResult:
    if len(split.test) == 0 or len(split.train) == 0:
        raise InputError(f"{split.name}: an empty training or test set")
    if len(np.unique(y[split.train])) < 2:
        raise InputError(f"{split.name}: the training rows contain only one class; add labelled examples of both")
    scored = fit_predict(split.train, split.test)
    test_groups = None if groups is None else [groups[i] for i in split.test]
    metrics = score_split(
        y[split.test], scored, substring=None if substring is None else substring[split.test],
        train_positive_rate=float(y[split.train].mean()), labels=labels, groups=test_groups, n_boot=n_boot, seed=seed,
    )
    return SplitResult(split.name, split.held_out, len(split.train), len(split.test), metrics)


def evaluate_protocol(
    fit_predict: FitPredict,
    y: Sequence[int] | np.ndarray,
    *,
    sources: Sequence[str] | None,
    groups: Sequence[Any] | None = None,
    substring: np.ndarray | None = None,
    labels: tuple[str, str] = ("compliance", "refusal"),
    kind: str = "",
    test_fraction: float = 0.25,
    n_boot: int = 1000,
    seed: int = 0,
    random_split: bool = True,
    loso: bool = True,
    progress: Progress | None = None,
    settings: Mapping[str, Any] | None = None,
) -> EvaluationReport:
    """Fit and score on a grouped random split and on every leave-one-source-out split.

    Args:
        fit_predict: fits on training indices, scores test indices (:data:`FitPredict`).
        y: labels (1 = the positive class, ``labels[1]``).
        sources: the source of every row (None: no leave-one-source-out).
        groups: rows that must stay together (e.g. the prompt id); also the bootstrap unit.
        substring: the substring judge's 0/1 verdict per row (None: no such baseline, e.g. prompts only).
        test_fraction: share of groups in the random split's test set.
        n_boot: bootstrap resamples per interval (0: none).

    Raises:
        InputError: fewer than 2 sources for leave-one-source-out, a split with one class.
    """
    y_arr = np.asarray(y, dtype=np.int64)
    splits: list[Split] = []
    if random_split:
        splits.append(grouped_split(y_arr, groups, test_fraction=test_fraction, seed=seed))
    if loso:
        if sources is None:
            raise InputError("leave-one-source-out needs a source per row")
        splits.extend(loso_splits(list(sources)))
    sub = None if substring is None else np.asarray(substring)
    results = []
    for k, split in enumerate(splits):
        if progress is not None:
            progress(f"evaluating ({split.name})", k, len(splits))
        results.append(_run_split(split, fit_predict, y_arr, sub, groups, labels, n_boot, seed))
    if progress is not None:
        progress("evaluated", len(splits), len(splits))
    info = {"test_fraction": test_fraction, "n_boot": n_boot, "seed": seed, "n": int(len(y_arr)),
            "n_positive": int(y_arr.sum()), **(settings or {})}
    return EvaluationReport(kind, labels, results, info)


def evaluate_fixed(
    y: Sequence[int] | np.ndarray,
    scored: Scored,
    *,
    sources: Sequence[str] | None = None,
    groups: Sequence[Any] | None = None,
    substring: np.ndarray | None = None,
    train_positive_rate: float = 0.5,
    labels: tuple[str, str] = ("compliance", "refusal"),
    kind: str = "",
    n_boot: int = 1000,
    seed: int = 0,
    settings: Mapping[str, Any] | None = None,
) -> EvaluationReport:
    """Score an already-fitted classifier on new data: all rows, then each source on its own.

    ``train_positive_rate`` sets the majority baseline (from the classifier's training data).
    """
    y_arr = np.asarray(y, dtype=np.int64)
    sub = None if substring is None else np.asarray(substring)
    parts: list[tuple[str, str | None, np.ndarray]] = [("all", None, np.arange(len(y_arr)))]
    if sources is not None and len(set(sources)) > 1:
        src = np.asarray(sources)
        parts += [(f"source:{s}", str(s), np.flatnonzero(src == s)) for s in dict.fromkeys(sources)]
    results = []
    for name, held, idx in parts:
        part = Scored(scored.scores[idx], None if scored.probs is None else scored.probs[idx], scored.pred[idx])
        metrics = score_split(y_arr[idx], part, substring=None if sub is None else sub[idx],
                              train_positive_rate=train_positive_rate, labels=labels,
                              groups=None if groups is None else [groups[int(i)] for i in idx], n_boot=n_boot, seed=seed)
        results.append(SplitResult(name, held, 0, len(idx), metrics))
    info = {"n_boot": n_boot, "seed": seed, "n": int(len(y_arr)), "n_positive": int(y_arr.sum()), **(settings or {})}
    return EvaluationReport(kind, labels, results, info)
