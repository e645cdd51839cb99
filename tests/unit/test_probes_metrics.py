"""probes.judges, probes.metrics and probes.splits, checked against scikit-learn and hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, brier_score_loss, recall_score, roc_auc_score

from editkit.errors import InputError
from probes.judges import ARDITI_PHRASES, SubstringJudge, normalize
from probes.metrics import (
    Estimate,
    auroc,
    balanced_accuracy,
    binary_metrics,
    bootstrap,
    bootstrap_indices,
    brier,
    ece,
    per_class_recall,
    wilson_interval,
)
from probes.splits import grouped_split, loso_splits

pytestmark = pytest.mark.unit


def test_judge_normalization_and_phrases() -> None:
    judge = SubstringJudge()
    assert len(ARDITI_PHRASES) == 12
    assert judge.is_refusal("I\u2019m sorry, but no.")  # curly apostrophe
    assert judge.is_refusal("i CANNOT do that")  # case
    assert judge.is_refusal("I\u00a0am\u00a0unable to help")  # NFKC: non-breaking spaces
    assert not judge.is_refusal("Sure, here is how to bake bread.")
    # the known misfire: a complying answer opening with a disclaimer
    assert judge.is_refusal("As an AI, I don't have opinions, but here is a recipe: ...")
    assert judge.matches("I'm sorry, I can't.") == ["I'm sorry", "I can't"]
    assert normalize("  A\u201cB\u201d  ") == 'a"b"'


def test_judge_within_and_sets() -> None:
    text = "Here is the recipe. I can't stress enough how good it is."
    assert SubstringJudge().is_refusal(text)
    assert not SubstringJudge(within=10).is_refusal(text)
    assert SubstringJudge(within=10).is_refusal("I can't help with that.")
    assert not SubstringJudge().is_refusal("I won't help.")
    assert SubstringJudge.from_set("extended").is_refusal("I won't help.")
    assert list(SubstringJudge().predict(["I'm sorry", "Sure"])) == [1, 0]
    with pytest.raises(InputError, match="unknown phrase set 'nope'"):
        SubstringJudge.from_set("nope")
    with pytest.raises(InputError, match="at least one non-empty phrase"):
        SubstringJudge(phrases=())


def test_auroc_balanced_accuracy_recall_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    scores = np.round(y * 0.7 + rng.normal(size=200), 1)  # rounding makes ties
    pred = (scores > 0.3).astype(int)
    assert auroc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    assert balanced_accuracy(y, pred) == pytest.approx(balanced_accuracy_score(y, pred), abs=1e-12)
    rec = per_class_recall(y, pred)
    assert rec["positive"] == pytest.approx(recall_score(y, pred))
    assert rec["negative"] == pytest.approx(recall_score(1 - y, 1 - pred))
    probs = 1 / (1 + np.exp(-scores))
    assert brier(y, probs) == pytest.approx(brier_score_loss(y, probs))
    assert math.isnan(auroc(np.ones(4), np.arange(4.0)))


def test_ece_by_hand() -> None:
    y = np.array([0, 1, 1, 0, 1])
    p = np.array([0.05, 0.15, 0.72, 0.78, 1.0])
    # bins: [0.0,0.1): {0.05 | y 0}; [0.1,0.2): {0.15 | 1}; [0.7,0.8): {0.72, 0.78 | 1, 0}; [0.9,1.0]: {1.0 | 1}
    expected = (1 * abs(0 - 0.05) + 1 * abs(1 - 0.15) + 2 * abs(0.5 - 0.75) + 1 * abs(1 - 1.0)) / 5
    assert ece(y, p) == pytest.approx(expected)


def test_wilson_interval_by_hand() -> None:
    lo, hi = wilson_interval(5, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.2366, 0.7634)
    lo, hi = wilson_interval(0, 20)
    assert lo == 0.0 and hi == pytest.approx(0.1611, abs=1e-4)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_bootstrap_deterministic_and_grouped() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 100)
    s = y + rng.normal(size=100)
    a = bootstrap(auroc, [y, s], n_boot=200, seed=3)
    b = bootstrap(auroc, [y, s], n_boot=200, seed=3)
    assert a == b and a.lo <= a.value <= a.hi
    groups = [i // 4 for i in range(100)]
    for idx in bootstrap_indices(100, 20, 0, groups):
        picked = [groups[i] for i in idx]
        assert all(picked.count(g) % 4 == 0 for g in set(picked))  # whole groups only
    assert Estimate(0.5).format() == "0.500" and Estimate(math.nan).format() == "-"


def test_binary_metrics_keys() -> None:
    y = np.array([0, 0, 1, 1])
    m = binary_metrics(y, np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9]),
                       labels=("compliance", "refusal"), n_boot=10)
    assert m["auroc"].value == 1.0 and m["recall_refusal"].value == 1.0 and m["recall_compliance"].value == 1.0
    assert m["ece"].value == pytest.approx(0.15) and m["n"].value == 4


def test_grouped_split_keeps_groups_and_classes() -> None:
    y = np.array([0] * 40 + [1] * 40)
    groups = [i // 2 for i in range(80)]
    s = grouped_split(y, groups, test_fraction=0.25, seed=0)
    assert not set(np.array(groups)[s.train]) & set(np.array(groups)[s.test])
    assert sorted(np.concatenate([s.train, s.test]).tolist()) == list(range(80))
    assert set(y[s.test]) == {0, 1} and set(y[s.train]) == {0, 1}
    assert len(s.test) == 20
    splits = loso_splits(["a", "b", "a", "c"])
    assert [(x.held_out, x.test.tolist()) for x in splits] == [("a", [0, 2]), ("b", [1]), ("c", [3])]
    with pytest.raises(InputError, match="at least 2 sources"):
        loso_splits(["a", "a"])
