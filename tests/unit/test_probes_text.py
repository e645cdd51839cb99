"""probes.text_clf, probes.evaluation and probes.store: the text classifier on the shipped data, evaluation, storage."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from editkit.errors import EditkitError, InputError
from probes.data import group_field, load_responses, shipped_path
from probes.evaluation import Scored, evaluate_fixed, evaluate_protocol
from probes.judges import SubstringJudge
from probes.metrics import auroc
from probes.store import CARD_FILE, STATE_FILE, WEIGHTS_FILE, ModelCard, load_probe, save_probe
from probes.text_clf import TextClassifierConfig, TextRefusalClassifier, best_threshold

pytestmark = pytest.mark.unit

FAST = TextClassifierConfig(word_ngrams=(1, 2), char_ngrams=(3, 4), calibration_folds=2)  # quick; defaults are 1-3 and 2-5


@pytest.fixture(scope="module")
def rows():
    return load_responses(shipped_path("responses.jsonl"))


@pytest.fixture(scope="module")
def fitted(rows):
    y = np.array([r.y for r in rows])
    return TextRefusalClassifier(FAST).fit([r.prompt for r in rows], [r.response for r in rows], y,
                                           groups=[r.instruction_id for r in rows])


def test_tfidf_matches_sklearn() -> None:
    texts = ["I can't help with that.", "Sure! Here is how: first, preheat.", "I can't, sorry", "here is it"]
    clf = TextRefusalClassifier(TextClassifierConfig(char_ngrams=(0, 0), word_ngrams=(1, 2), calibration_folds=2))
    clf.fit(None, texts, [1, 0, 1, 0])
    ref = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b\w+\b|[^\w\s]")
    expected = ref.fit_transform(texts)
    vocab = clf.blocks[0].vocabulary
    order = [ref.vocabulary_[t] for t in vocab]
    got = clf.features(None, texts).toarray()
    assert sorted(vocab) == sorted(ref.vocabulary_)
    np.testing.assert_allclose(got, expected.toarray()[:, order], atol=1e-12)


def test_leave_one_source_out_on_shipped_responses(rows) -> None:
    y = np.array([r.y for r in rows])
    prompts, responses = [r.prompt for r in rows], [r.response for r in rows]
    groups = [r.instruction_id for r in rows]
    _, sources = group_field(rows)
    substring = SubstringJudge().predict(responses)

    def fit_predict(train, test):
        clf = TextRefusalClassifier(FAST).fit(None, [responses[i] for i in train], y[train])
        probs = clf.predict_proba(None, [responses[i] for i in test])
        return Scored(clf.decision_function(None, [responses[i] for i in test]), probs, (probs >= clf.threshold).astype(int))

    report = evaluate_protocol(fit_predict, y, sources=sources, groups=groups, substring=substring, n_boot=50)
    assert [s.name for s in report.splits] == ["random", "loso:direct", "loso:question", "loso:roleplay", "loso:terse"]
    for split in report.splits:
        probe, sub, maj = split.metrics["probe"], split.metrics["substring"], split.metrics["majority"]
        assert probe["auroc"].value >= 0.95
        assert probe["auroc"].lo <= probe["auroc"].value <= probe["auroc"].hi
        assert probe["balanced_accuracy"].value > sub["balanced_accuracy"].value
        assert maj["balanced_accuracy"].value == 0.5 and maj["auroc"].value == 0.5
        assert probe["ece"].value < 0.15
    assert report.loso_summary()["auroc"]["min"] >= 0.95
    json.dumps(report.to_dict(), allow_nan=False)
    assert set(report.rows()[0]) >= {"split", "AUROC", "substring", "majority"}
    del prompts


def test_prompt_classifier_and_inputs(rows) -> None:
    y = np.array([r.y for r in rows])
    clf = TextRefusalClassifier(TextClassifierConfig(inputs="both", char_ngrams=(0, 0), calibration_folds=2))
    clf.fit([r.prompt for r in rows[:200]], [r.response for r in rows[:200]], y[:200])
    assert {b.field for b in clf.blocks} == {"prompt", "response"}
    with pytest.raises(InputError, match="reads the prompt; pass prompts"):
        clf.predict_proba(None, ["x"])


def test_save_load_roundtrip_without_pickle(fitted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = ["I'm sorry, I can't help with that.", "Sure! Start with fresh flour.", "Let's not go down that road."]
    before = fitted.predict_proba(None, texts)
    card = ModelCard(kind="text", label_map={"compliance": 0, "refusal": 1}, data={"hash": "abc", "n": 640})
    out = save_probe(fitted, tmp_path / "clf", card)
    assert sorted(p.name for p in out.iterdir()) == sorted([CARD_FILE, STATE_FILE, WEIGHTS_FILE])

    def no_pickle(*args, **kwargs):
        raise AssertionError("pickle used")

    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    probe, loaded_card = load_probe(out)
    np.testing.assert_allclose(probe.predict_proba(None, texts), before, atol=1e-12)
    assert probe.threshold == fitted.threshold
    assert loaded_card.data["hash"] == "abc" and loaded_card.editkit_version and loaded_card.created
    assert before[0] > 0.5 > before[1]
    with pytest.raises(EditkitError, match="already exists"):
        save_probe(fitted, out, card)


def test_load_errors(fitted, tmp_path: Path) -> None:
    card = ModelCard(kind="text", label_map={"compliance": 0, "refusal": 1})
    out = save_probe(fitted, tmp_path / "clf", card)
    with pytest.raises(InputError, match="no such probe folder"):
        load_probe(tmp_path / "missing")
    (out / WEIGHTS_FILE).write_bytes(b"garbage")
    with pytest.raises(InputError, match="not a valid safetensors file"):
        load_probe(out)
    out2 = save_probe(fitted, tmp_path / "clf2", card)
    data = json.loads((out2 / CARD_FILE).read_text())
    data["format_version"] = 99
    (out2 / CARD_FILE).write_text(json.dumps(data))
    with pytest.raises(InputError, match="format version 99 is not supported"):
        load_probe(out2)
    out3 = save_probe(fitted, tmp_path / "clf3", card)
    state = json.loads((out3 / STATE_FILE).read_text())
    state["blocks"][0]["vocabulary"] = state["blocks"][0]["vocabulary"][:-1]
    (out3 / STATE_FILE).write_text(json.dumps(state))
    with pytest.raises(InputError, match="terms but idf of shape"):
        load_probe(out3)


def test_bad_inputs() -> None:
    with pytest.raises(InputError, match="at least 2 examples of each class"):
        TextRefusalClassifier(FAST).fit(None, ["a b", "c d", "e f"], [1, 1, 0])
    with pytest.raises(InputError, match="inputs must be one of"):
        TextClassifierConfig(inputs="everything")
    with pytest.raises(InputError, match="labels but a different number"):
        TextRefusalClassifier(FAST).fit(None, ["a", "b"], [1, 0, 1])


def test_best_threshold_and_fixed_evaluation() -> None:
    y = np.array([0, 0, 1, 1])
    assert best_threshold(y, np.array([0.1, 0.3, 0.6, 0.9])) == pytest.approx(0.5)
    assert best_threshold(y, np.array([0.1, 0.2, 0.3, 0.4])) == pytest.approx(0.25)
    scored = Scored(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1]))
    report = evaluate_fixed(y, scored, sources=["a", "b", "a", "b"], substring=np.array([0, 1, 1, 1]),
                            train_positive_rate=0.3, n_boot=10)
    assert [s.name for s in report.splits] == ["all", "source:a", "source:b"]
    assert report.splits[0].metrics["probe"]["auroc"].value == 1.0
    assert report.splits[0].metrics["substring"]["balanced_accuracy"].value == 0.75
    assert report.splits[0].metrics["majority"]["recall_compliance"].value == 1.0  # majority: compliance
    assert auroc(y, scored.scores) == 1.0
