"""The text refusal classifier: TF-IDF word and character n-grams + L2 logistic regression, calibrated.

After Reuter and Schulze (2023), whose TF-IDF word 1-3-gram logistic
regression reached ~91% on hand-labelled chatbot responses. Here each input
field (the response, the prompt, or both) gets two TF-IDF blocks, word
n-grams and character n-grams within word boundaries; the blocks are
concatenated and fed to scikit-learn's L2 logistic regression.

TF-IDF is computed here, not by scikit-learn's ``TfidfVectorizer``, so that a
saved classifier is plain data (vocabulary, idf, coefficients) and loads
without pickle: ``tf = 1 + log(count)`` (sublinear) or ``count``;
``idf = log((1 + n) / (1 + df)) + 1``; each block's rows are L2-normalized.

Calibration (Platt scaling): the decision values of ``calibration_folds``
out-of-fold logistic regressions are mapped to probabilities by a 1-D
logistic fit ``P(refusal) = sigmoid(a * score + b)``. The decision threshold
is fixed on the same out-of-fold (validation) probabilities, maximizing
balanced accuracy (:mod:`probes.base`, shared with the activation probe). The
final model is then refitted on all the data.

>>> clf = TextRefusalClassifier().fit(prompts, responses, y)        # doctest: +SKIP
>>> clf.predict_proba(prompts, ["I'm sorry, I can't help."])         # doctest: +SKIP
array([0.97])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

from editkit.errors import InputError
from probes.base import CalibratedProbe, ProbeConfig
from probes.base import best_threshold as best_threshold  # re-exported
from probes.base import fit_platt as fit_platt  # re-exported

INPUTS = ("response", "prompt", "both")


@dataclass(frozen=True)
class TextClassifierConfig(ProbeConfig):
    """Options of :class:`TextRefusalClassifier`.

    Attributes:
        inputs: which text the classifier reads: ``"response"`` (a response
            classifier), ``"prompt"`` (predict refusal from the prompt alone) or ``"both"``.
        word_ngrams: word n-gram range (Reuter and Schulze: 1-3).
        char_ngrams: character n-gram range (within word boundaries); ``(0, 0)`` turns the block off.
        min_df: drop terms seen in fewer documents.
        max_features: keep at most this many terms per block (most frequent).
        sublinear_tf: ``1 + log(count)`` instead of the raw count.
        C: inverse L2 strength of the logistic regression.
        calibration_folds: out-of-fold fits for calibration and the threshold.
        seed: fold assignment.
    """

    inputs: str = "response"
    word_ngrams: tuple[int, int] = (1, 3)
    char_ngrams: tuple[int, int] = (2, 5)
    min_df: int = 1
    max_features: int = 50000
    sublinear_tf: bool = True
    C: float = 4.0
    calibration_folds: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "word_ngrams", tuple(self.word_ngrams))
        object.__setattr__(self, "char_ngrams", tuple(self.char_ngrams))
        if self.inputs not in INPUTS:
            raise InputError(f"text classifier: inputs must be one of {', '.join(INPUTS)}, got {self.inputs!r}")
        for name in ("word_ngrams", "char_ngrams"):
            lo, hi = getattr(self, name)
            if (lo, hi) != (0, 0) and not 1 <= lo <= hi:
                raise InputError(f"text classifier: {name} must be (lo, hi) with 1 <= lo <= hi, got {(lo, hi)}")
        if self.C <= 0 or self.calibration_folds < 2 or self.min_df < 1 or self.max_features < 1:
            raise InputError("text classifier: C > 0, calibration_folds >= 2, min_df >= 1 and max_features >= 1 are required")


@dataclass
class _Block:
    """One TF-IDF block: a field (prompt/response), an analyzer, its vocabulary and idf."""

    field: str
    analyzer: str  # "word" | "char_wb"
    ngrams: tuple[int, int]
    vocabulary: list[str]
    idf: np.ndarray  # [n_terms] float64

    def _counter(self, vocabulary: dict[str, int] | None = None, **kw: Any) -> Any:
        from sklearn.feature_extraction.text import CountVectorizer

        if self.analyzer == "word":  # words and single punctuation marks ("?", "!" carry signal)
            kw["token_pattern"] = r"(?u)\b\w+\b|[^\w\s]"
        return CountVectorizer(analyzer=self.analyzer, ngram_range=self.ngrams, lowercase=True, vocabulary=vocabulary, **kw)

    def transform(self, texts: Sequence[str], sublinear: bool) -> sparse.csr_matrix:
        counts = self._counter({t: i for i, t in enumerate(self.vocabulary)}).transform(texts)
        return _tfidf(counts, self.idf, sublinear)


def _tfidf(counts: Any, idf: np.ndarray, sublinear: bool) -> sparse.csr_matrix:
    tf = sparse.csr_matrix(counts, dtype=np.float64)
    if sublinear:
        tf.data = 1.0 + np.log(tf.data)
    weighted = tf.multiply(idf[None, :]).tocsr()
    norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sparse.csr_matrix(sparse.diags(1.0 / norms) @ weighted)


class TextRefusalClassifier(CalibratedProbe):
    """TF-IDF (word + character n-grams) + logistic regression, with Platt calibration.

    Attributes (after :meth:`fit`):
        blocks: the TF-IDF blocks.
        coef, intercept: the logistic regression over the concatenated blocks.
        platt: ``(a, b)`` of the calibration.
        threshold: decision threshold on the calibrated probability (chosen on out-of-fold data).
        train_info: number of rows and out-of-fold AUROC.
    """

    kind = "text"

    def __init__(self, config: TextClassifierConfig | None = None) -> None:
        super().__init__()
        self.config = config or TextClassifierConfig()
        self.blocks: list[_Block] = []
        self.coef: np.ndarray | None = None
        self.intercept = 0.0

    # --- features ---------------------------------------------------------------

    def _fields(self) -> tuple[str, ...]:
        return ("prompt", "response") if self.config.inputs == "both" else (self.config.inputs,)

    def _texts(self, field: str, prompts: Sequence[str] | None, responses: Sequence[str] | None) -> Sequence[str]:
        texts = prompts if field == "prompt" else responses
        if texts is None:
            raise InputError(f"text classifier: this classifier reads the {field}; pass {field}s")
        return texts

    def _fit_blocks(self, prompts: Sequence[str] | None, responses: Sequence[str] | None) -> None:
        cfg = self.config
        self.blocks = []
        for fld in self._fields():
            texts = self._texts(fld, prompts, responses)
            for analyzer, ngrams in (("word", cfg.word_ngrams), ("char_wb", cfg.char_ngrams)):
                if ngrams == (0, 0):
                    continue
                block = _Block(fld, analyzer, ngrams, [], np.zeros(0))
                counter = block._counter(min_df=cfg.min_df, max_features=cfg.max_features)
                try:
                    counts = counter.fit_transform(texts)
                except ValueError as exc:  # empty vocabulary
                    raise InputError(f"text classifier: no {analyzer} terms in the {fld}s ({exc})") from None
                vocab = sorted(counter.vocabulary_, key=counter.vocabulary_.get)
                df = np.bincount(sparse.csr_matrix(counts).indices, minlength=len(vocab)).astype(np.float64)  # documents per term
                block.vocabulary = vocab
                block.idf = np.log((1.0 + counts.shape[0]) / (1.0 + df)) + 1.0
                self.blocks.append(block)

    def features(self, prompts: Sequence[str] | None = None, responses: Sequence[str] | None = None) -> sparse.csr_matrix:
        """The TF-IDF feature matrix ``[n, n_terms]``."""
        if not self.blocks:
            raise RuntimeError("text classifier: not fitted")
        mats = [b.transform(self._texts(b.field, prompts, responses), self.config.sublinear_tf) for b in self.blocks]
        return sparse.hstack(mats).tocsr()

    # --- fitting ------------------------------------------------------------------

    def _lr(self) -> Any:
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=self.config.C, max_iter=2000)

    def fit(
        self,
        prompts: Sequence[str] | None,
        responses: Sequence[str] | None,
        y: Sequence[int] | np.ndarray,
        groups: Sequence[Any] | None = None,
    ) -> TextRefusalClassifier:
        """Fit on labelled texts (``y``: 1 = refusal).

        Args:
            prompts, responses: the texts (the one(s) :attr:`config.inputs` names are required).
            y: labels, 1 for refusal.
            groups: rows sharing a group (e.g. one prompt) stay in the same
                calibration fold.

        Raises:
            InputError: fewer than 2 rows of a class, or lengths that differ.
        """
        from sklearn.model_selection import GroupKFold, StratifiedKFold

        y_arr = np.asarray(y, dtype=np.int64)
        for fld in self._fields():
            if len(self._texts(fld, prompts, responses)) != len(y_arr):
                raise InputError(f"text classifier: {len(y_arr)} labels but a different number of {fld}s")
        counts = np.bincount(y_arr, minlength=2)
        folds = min(self.config.calibration_folds, int(counts.min()))
        if folds < 2:
            raise InputError(f"text classifier: need at least 2 examples of each class, got {counts[0]} compliance and {counts[1]} refusal")
        self._fit_blocks(prompts, responses)
        X = self.features(prompts, responses)
        oof = np.zeros(len(y_arr))
        if groups is not None and len(set(groups)) >= folds:
            splitter: Any = GroupKFold(n_splits=folds)
            splits = splitter.split(X, y_arr, groups)
        else:
            splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=self.config.seed)
            splits = splitter.split(X, y_arr)
        for tr, va in splits:
            if len(np.unique(y_arr[tr])) < 2:
                oof[va] = 0.0
                continue
            oof[va] = self._lr().fit(X[tr], y_arr[tr]).decision_function(X[va])
        self.calibrate(oof, y_arr)
        lr = self._lr().fit(X, y_arr)
        self.coef = lr.coef_[0].astype(np.float64)
        self.intercept = float(lr.intercept_[0])
        from probes.metrics import auroc

        self.train_info = {"n": int(len(y_arr)), "n_refusal": int(counts[1]), "oof_auroc": auroc(y_arr, oof),
                           "n_terms": int(X.shape[1])}
        return self

    # --- prediction ---------------------------------------------------------------

    def decision_function(self, prompts: Sequence[str] | None = None, responses: Sequence[str] | None = None) -> np.ndarray:
        """Logistic-regression scores ``[n]`` (higher = more refusal-like)."""
        if self.coef is None:
            raise RuntimeError("text classifier: not fitted")
        return np.asarray(self.features(prompts, responses) @ self.coef + self.intercept).ravel()

    def predict_proba(self, prompts: Sequence[str] | None = None, responses: Sequence[str] | None = None) -> np.ndarray:
        """Calibrated P(refusal) ``[n]``."""
        return self.calibrated(self.decision_function(prompts, responses))

    def predict(self, prompts: Sequence[str] | None = None, responses: Sequence[str] | None = None) -> np.ndarray:
        """1 (refusal) where the calibrated probability reaches :attr:`threshold`."""
        return (self.predict_proba(prompts, responses) >= self.threshold).astype(np.int64)

    # --- storage (no pickle) -----------------------------------------------------

    def to_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays (idf per block, coefficients) and JSON metadata (config, vocabularies, calibration)."""
        if self.coef is None:
            raise RuntimeError("text classifier: not fitted")
        arrays = {f"idf.{i}": b.idf for i, b in enumerate(self.blocks)}
        arrays["coef"] = self.coef
        meta = {
            "config": self.config.to_dict(),
            "blocks": [{"field": b.field, "analyzer": b.analyzer, "ngrams": list(b.ngrams), "vocabulary": b.vocabulary}
                       for b in self.blocks],
            "intercept": self.intercept,
            "platt": list(self.platt),
            "threshold": self.threshold,
            "train_info": self.train_info,
        }
        return arrays, meta

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> TextRefusalClassifier:
        clf = cls(TextClassifierConfig.from_dict(meta["config"]))
        try:
            for i, b in enumerate(meta["blocks"]):
                idf = np.asarray(arrays[f"idf.{i}"], dtype=np.float64)
                if idf.shape != (len(b["vocabulary"]),):
                    raise InputError(f"text classifier: block {i} has {len(b['vocabulary'])} terms but idf of shape {idf.shape}")
                clf.blocks.append(_Block(b["field"], b["analyzer"], tuple(b["ngrams"]), list(b["vocabulary"]), idf))
            clf.coef = np.asarray(arrays["coef"], dtype=np.float64)
        except KeyError as exc:
            raise InputError(f"text classifier: saved arrays lack {exc}") from None
        n_terms = sum(len(b.vocabulary) for b in clf.blocks)
        if clf.coef.shape != (n_terms,):
            raise InputError(f"text classifier: {n_terms} terms but coefficients of shape {clf.coef.shape}")
        clf.intercept = float(meta["intercept"])
        clf._restore_calibration(meta)
        clf.train_info = dict(meta.get("train_info", {}))
        return clf
