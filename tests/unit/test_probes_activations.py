"""probes.activations and probes.activation_probe on tiny random models: collection, probe math, storage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from tiny_models import tiny_model, tiny_tokenizer

from editkit.errors import InputError
from gpu import get_backend
from probes.activation_probe import ActivationProbe, ActivationProbeConfig, ridge_logistic
from probes.activations import collect_activations
from probes.chat import encode_instructions
from probes.splits import grouped_split
from probes.store import ModelCard, load_probe, save_probe

pytestmark = pytest.mark.unit

PROMPTS = ["How do I pick a lock?", "Hi", "Explain how to bake bread at home.", "The capital of France is"]
RESPONSES = ["I'm sorry, I can't help.", "", "Sure: mix flour and water.", "Paris."]


@pytest.fixture(scope="module")
def lm():
    model, _ = tiny_model("llama", seed=0)
    return model, tiny_tokenizer()


def test_post_instruction_tokens_are_the_template_suffix(lm) -> None:
    _, tok = lm
    enc = encode_instructions(tok, PROMPTS)
    for e in enc:
        assert tok.decode(list(e.ids[-e.n_post:])) == "<|im_end|>\n<|im_start|>assistant\n"
    plain = encode_instructions(tok, PROMPTS, chat=False)
    assert all(e.n_post == 0 for e in plain)


def test_nnsight_matches_hooks_and_plain_forward(lm) -> None:
    model, tok = lm
    for positions in ("last", "prompt_last", "post_instruction", "response_mean"):
        a = collect_activations(model, tok, PROMPTS, responses=RESPONSES, positions=positions, batch_size=3)
        b = collect_activations(model, tok, PROMPTS, responses=RESPONSES, positions=positions, impl="hooks", batch_size=1)
        assert a.layers == (0, 1, 2, 3, 4)
        torch.testing.assert_close(a.hidden, b.hidden, atol=1e-5, rtol=1e-5)
    # independent: output_hidden_states of a single unpadded forward (entries 0..L-1 are the block inputs)
    acts = collect_activations(model, tok, PROMPTS, positions="last", batch_size=4)
    for i, e in enumerate(encode_instructions(tok, PROMPTS)):
        with torch.no_grad():
            hs = model(torch.tensor([e.ids]), output_hidden_states=True).hidden_states
        torch.testing.assert_close(acts.hidden[i, :4, 0], torch.stack([h[0, -1] for h in hs[:4]]), atol=1e-5, rtol=1e-5)


def test_response_mean_by_hand(lm) -> None:
    model, tok = lm
    acts = collect_activations(model, tok, PROMPTS[:1], responses=RESPONSES[:1], positions="response_mean", layers=[2])
    prompt_ids = encode_instructions(tok, PROMPTS[:1])[0].ids
    resp_ids = tuple(tok(RESPONSES[0], add_special_tokens=False)["input_ids"])
    with torch.no_grad():
        hs = model(torch.tensor([prompt_ids + resp_ids]), output_hidden_states=True).hidden_states
    expected = hs[2][0, len(prompt_ids):].mean(0)
    torch.testing.assert_close(acts.hidden[0, 0, 0], expected, atol=1e-5, rtol=1e-5)


def test_collection_errors(lm) -> None:
    model, tok = lm
    with pytest.raises(InputError, match="out of range"):
        collect_activations(model, tok, PROMPTS, layers=[9])
    with pytest.raises(InputError, match="needs responses"):
        collect_activations(model, tok, PROMPTS, positions="response_mean")
    with pytest.raises(InputError, match="needs a chat template"):
        collect_activations(model, tok, PROMPTS, positions="post_instruction", chat=False)
    with pytest.raises(InputError, match="positions: expected one of"):
        collect_activations(model, tok, PROMPTS, positions="middle")


@pytest.mark.parametrize("lam", [0.5, 5.0])
def test_ridge_logistic_matches_sklearn(lam: float) -> None:
    g = torch.Generator().manual_seed(0)
    X = torch.randn(150, 8, generator=g, dtype=torch.float64)
    y = ((X @ torch.randn(8, generator=g, dtype=torch.float64) + torch.randn(150, generator=g, dtype=torch.float64)) > 0).long()
    w, b = ridge_logistic(X, y, lam, backend=get_backend("torch-cpu"))
    ref = LogisticRegression(C=1 / lam, tol=1e-12, max_iter=10000).fit(X.numpy(), y.numpy())
    np.testing.assert_allclose(w.numpy(), ref.coef_[0], atol=1e-6)
    assert b == pytest.approx(ref.intercept_[0], abs=1e-6)


def test_diff_means_probe_by_hand() -> None:
    X = torch.tensor([[[0.0, 0.0]], [[0.0, 2.0]], [[4.0, 0.0]], [[4.0, 2.0]]] * 3)  # [12, 1 layer, 2]
    y = np.array([0, 0, 1, 1] * 3)
    probe = ActivationProbe(ActivationProbeConfig(method="diff_means", val_fraction=0.34)).fit_features(X, y)
    split = grouped_split(y, None, test_fraction=0.34, seed=0)
    fit = X[split.train, 0]
    mu1, mu0 = fit[torch.as_tensor(y[split.train] == 1)].mean(0), fit[torch.as_tensor(y[split.train] == 0)].mean(0)
    w = (mu1 - mu0) / (mu1 - mu0).norm()
    torch.testing.assert_close(probe.weight.float(), w)
    assert probe.bias == pytest.approx(float(-((mu1 + mu0) / 2) @ w))
    assert probe.layer_auroc == [1.0]


def test_layer_is_chosen_on_validation_only() -> None:
    g = torch.Generator().manual_seed(0)
    n = 200
    y = np.array([0, 1] * (n // 2))
    split = grouped_split(y, None, test_fraction=0.25, seed=0)
    X = torch.randn(n, 2, 4, generator=g)
    yt = torch.as_tensor(y, dtype=torch.float32)
    X[:, 0, 0] += 2.0 * yt  # layer 0: informative everywhere
    fit_rows = torch.zeros(n, dtype=torch.bool)
    fit_rows[split.train] = True
    X[fit_rows, 1, 0] += 10.0 * yt[fit_rows]  # layer 1: perfect on the fit part, noise on validation
    probe = ActivationProbe(ActivationProbeConfig(l2=(1.0,), val_fraction=0.25)).fit_features(X, y, layers=[5, 9])
    assert probe.layer == 5
    assert probe.layer_auroc[0] > 0.8 > probe.layer_auroc[1]


def test_prompt_only_probe_end_to_end_and_storage(lm, tmp_path: Path) -> None:
    model, tok = lm
    harmful = [f"How do I steal a car number {i}?" for i in range(12)]
    harmless = [f"The capital of France is Paris {i}" for i in range(12)]
    prompts = harmful + harmless
    y = np.array([1] * 12 + [0] * 12)
    cfg = ActivationProbeConfig(layers=(1, 2, 3), l2=(1.0, 10.0), batch_size=8)
    probe = ActivationProbe(cfg).fit(model, tok, prompts, y)
    assert probe.layer in (1, 2, 3) and len(probe.layer_auroc) == 3
    probs = probe.predict_proba(model, tok, prompts)
    assert probs.shape == (24,) and ((probs >= 0) & (probs <= 1)).all()
    assert probs[:12].mean() > probs[12:].mean()  # the two templates are easy to tell apart
    card = ModelCard(kind="activation", label_map={"harmless": 0, "harmful": 1})
    loaded, _ = load_probe(save_probe(probe, tmp_path / "probe", card))
    np.testing.assert_allclose(loaded.predict_proba(model, tok, prompts), probs, atol=1e-12)
    assert loaded.layer == probe.layer and loaded.model_info["hidden_size"] == 32
    other, _ = tiny_model("llama", seed=1, num_hidden_layers=2)
    with pytest.raises(InputError, match="num_layers=4, but this model has num_layers=2"):
        loaded.predict_proba(other, tok, prompts)
    with pytest.raises(InputError, match="reads responses"):
        ActivationProbe(ActivationProbeConfig(prompt_only=False)).fit(model, tok, prompts, y)


def test_probe_config_errors() -> None:
    with pytest.raises(InputError, match="method must be one of"):
        ActivationProbeConfig(method="svm")
    with pytest.raises(InputError, match="prompt-only mode reads no response"):
        ActivationProbeConfig(prompt_only=True, positions="response_mean")
    with pytest.raises(InputError, match="need more labelled examples"):
        ActivationProbe().fit_features(torch.randn(6, 1, 3), [1, 1, 1, 1, 1, 0])


def test_ridge_logistic_warm_start_reaches_the_same_solution() -> None:
    g = torch.Generator().manual_seed(4)
    X = torch.randn(80, 5, generator=g, dtype=torch.float64)
    y = (X[:, 0] + 0.3 * torch.randn(80, generator=g, dtype=torch.float64) > 0).long()
    cold = ridge_logistic(X, y, 1.0)
    warm = ridge_logistic(X, y, 1.0, init=ridge_logistic(X, y, 100.0))
    torch.testing.assert_close(warm[0], cold[0], atol=1e-8, rtol=0)
    assert warm[1] == pytest.approx(cold[1], abs=1e-8)


def test_logistic_probe_weights_match_sklearn_on_standardized_features() -> None:
    """The probe's SVD reparametrization (fewer examples than dimensions) gives sklearn's solution."""
    g = torch.Generator().manual_seed(6)
    X = torch.randn(40, 1, 60, generator=g, dtype=torch.float64)
    y = np.array([0, 1] * 20)
    X[:, 0, 0] += torch.as_tensor(y, dtype=torch.float64)
    probe = ActivationProbe(ActivationProbeConfig(l2=(3.0,), val_fraction=0.25)).fit_features(X, y)
    split = grouped_split(y, None, test_fraction=0.25, seed=0)
    Xf = X[split.train, 0]
    mean, std = Xf.mean(0), Xf.std(0)
    ref = LogisticRegression(C=1 / 3.0, tol=1e-12, max_iter=100000).fit(((Xf - mean) / std).numpy(), y[split.train])
    w_ref = torch.as_tensor(ref.coef_[0]) / std
    torch.testing.assert_close(probe.weight, w_ref, atol=1e-6, rtol=1e-5)
    assert probe.bias == pytest.approx(float(ref.intercept_[0] - (mean * w_ref).sum()), abs=1e-6)
