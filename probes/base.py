"""What the text and activation probes share: their configuration as JSON, Platt calibration, the threshold.

Both probes (:class:`probes.text_clf.TextRefusalClassifier`,
:class:`probes.activation_probe.ActivationProbe`) score examples linearly,
map a score ``s`` to a probability by Platt scaling ``P = sigmoid(a * s + b)``
and call an example positive where ``P`` reaches a threshold; both fit the
calibration and the threshold on held-out scores (out-of-fold or validation)
and save them, with their configuration, as JSON (no pickle).

>>> probe.calibrate(val_scores, y_val)            # doctest: +SKIP
>>> probe.calibrated(probe_scores)                # P(positive) per example   # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, ClassVar, TypeVar

import numpy as np

C = TypeVar("C", bound="ProbeConfig")


def sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))``, clipped so that large scores do not overflow."""
    return 1.0 / (1.0 + np.exp(-np.clip(x, -500, 500)))


def best_threshold(y: np.ndarray, probs: np.ndarray) -> float:
    """The threshold on ``probs`` that maximizes balanced accuracy (midpoint between neighbouring values; ties: nearest 0.5)."""
    from probes.metrics import balanced_accuracy

    values = np.unique(probs)
    if len(values) == 1:
        return float(values[0]) if values[0] < 1 else 0.5
    candidates = np.concatenate([(values[:-1] + values[1:]) / 2.0, [0.5]])
    scores = [(balanced_accuracy(y, (probs >= t).astype(int)), -abs(t - 0.5), t) for t in candidates]
    return float(max(scores)[2])


def fit_platt(scores: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``(a, b)`` of ``P = sigmoid(a * s + b)`` by (almost unregularized) 1-D logistic regression."""
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(y)) < 2:
        return 1.0, 0.0
    lr = LogisticRegression(C=1e4, max_iter=1000).fit(scores.reshape(-1, 1), y)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


class ProbeConfig:
    """JSON round trip of a probe's (frozen dataclass) configuration: tuples are saved as lists."""

    __dataclass_fields__: ClassVar[dict[str, Any]]  # a base of dataclasses only

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        """The configuration saved by :meth:`to_dict` (unknown keys are ignored)."""
        known = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known}
        return cls(**kwargs)


class CalibratedProbe:
    """The part every probe shares: Platt calibration and decision threshold of its scores, and how it is saved.

    A probe saves itself as :meth:`to_state` (arrays and JSON metadata) and is
    rebuilt by :meth:`from_state` (see :mod:`probes.store`).

    Attributes:
        platt: ``(a, b)`` of ``P = sigmoid(a * score + b)``.
        threshold: the decision threshold on ``P`` (chosen on held-out data).
        train_info: what fitting recorded (counts, held-out AUROC ...).
    """

    kind: str
    """What :mod:`probes.store` saves it as (``"text"``, ``"activation"``)."""

    def __init__(self) -> None:
        self.platt = (1.0, 0.0)
        self.threshold = 0.5
        self.train_info: dict[str, Any] = {}

    def to_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays (saved as safetensors) and JSON metadata, from which :meth:`from_state` rebuilds the probe."""
        raise NotImplementedError

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> CalibratedProbe:
        """Rebuild from :meth:`to_state` output.

        Raises:
            InputError: arrays that do not match the metadata.
        """
        raise NotImplementedError

    def calibrate(self, scores: np.ndarray, y: np.ndarray) -> None:
        """Fit :attr:`platt` on held-out ``scores`` and labels, then :attr:`threshold` on their probabilities."""
        self.platt = fit_platt(scores, y)
        self.threshold = best_threshold(y, self.calibrated(scores))

    def calibrated(self, scores: np.ndarray) -> np.ndarray:
        """The probability of the positive class for each score."""
        return sigmoid(self.platt[0] * scores + self.platt[1])

    def _restore_calibration(self, meta: dict[str, Any]) -> None:
        """Read back :attr:`platt` and :attr:`threshold` from a saved state's metadata."""
        a, b = meta["platt"]
        self.platt = (float(a), float(b))
        self.threshold = float(meta["threshold"])
