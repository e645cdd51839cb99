"""Train/test splits that keep groups together: a grouped, stratified random split and leave-one-source-out.

A *group* is what must not straddle a split: all responses to one prompt
("split by prompt"), or all paraphrases of one task. A *source* is where data
comes from (a dataset, a prompt style, a model); leave-one-source-out trains
on all sources but one and tests on it, which is what random splits overstate
(Reuter and Schulze's text classifier fell to 0.51 accuracy on one held-out source).

>>> s = grouped_split(np.array([0, 0, 1, 1]), ["a", "b", "c", "d"], test_fraction=0.5, seed=0)
>>> sorted(np.concatenate([s.train, s.test]).tolist())
[0, 1, 2, 3]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from editkit.errors import InputError


@dataclass(frozen=True)
class Split:
    """Row indices of one split.

    Attributes:
        name: ``"random"`` or ``"loso:<source>"``.
        train: indices used for fitting (including any validation carved from them).
        test: indices scored.
        held_out: the held-out source (leave-one-source-out), else None.
    """

    name: str
    train: np.ndarray
    test: np.ndarray
    held_out: str | None = None


def grouped_split(
    y: np.ndarray,
    groups: Sequence[Any] | None = None,
    *,
    test_fraction: float = 0.25,
    seed: int = 0,
    name: str = "random",
) -> Split:
    """A random split of whole groups, stratified by each group's majority label.

    Every class with at least two groups gets at least one group on each side.

    Raises:
        InputError: a fraction outside (0, 1), or fewer than 2 groups.
    """
    if not 0.0 < test_fraction < 1.0:
        raise InputError(f"test fraction must be in (0, 1), got {test_fraction}")
    y = np.asarray(y).astype(int)
    keys = list(range(len(y))) if groups is None else list(groups)
    order = list(dict.fromkeys(keys))
    if len(order) < 2:
        raise InputError("cannot split fewer than 2 groups (prompts)")
    members: dict[Any, list[int]] = {g: [] for g in order}
    for i, g in enumerate(keys):
        members[g].append(i)
    rng = np.random.default_rng(seed)
    test_groups: list[Any] = []
    for label in (0, 1):
        of_label = [g for g in order if round(float(np.mean(y[members[g]]))) == label]
        if not of_label:
            continue
        picked = rng.permutation(len(of_label))
        k = int(round(test_fraction * len(of_label)))
        if len(of_label) >= 2:
            k = min(max(k, 1), len(of_label) - 1)
        test_groups.extend(of_label[j] for j in picked[:k])
    chosen = set(test_groups)
    test = np.array(sorted(i for g in chosen for i in members[g]), dtype=np.int64)
    train = np.array(sorted(i for g in order if g not in chosen for i in members[g]), dtype=np.int64)
    return Split(name, train, test)


def loso_splits(sources: Sequence[str]) -> list[Split]:
    """One split per source: train on the others, test on it (sources in first-seen order).

    Raises:
        InputError: fewer than 2 sources.
    """
    names = list(dict.fromkeys(sources))
    if len(names) < 2:
        raise InputError(
            f"leave-one-source-out needs at least 2 sources, found {len(names)} ({', '.join(map(str, names)) or 'none'})"
        )
    src = np.asarray(sources)
    return [Split(f"loso:{s}", np.flatnonzero(src != s), np.flatnonzero(src == s), held_out=str(s)) for s in names]
