"""The ``causal-trace`` and ``gradient`` localization strategies.

Unit tests run on tiny random models; each strategy's numbers are checked
against an independent re-implementation (plain torch forward hooks for the
trace, a manual ``backward()`` for the gradient). The integration tests run
both strategies on the embedded default model.
"""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from tiny_models import TINY_CONFIGS, tiny_model, tiny_tokenizer

from editkit.arch import get_arch, get_module, module_path, num_layers
from editkit.batching import collate, encode_pairs
from editkit.errors import EditkitError
from editkit.localize import Location, localize, module_sites, strategy_names
from editkit.localize.causal_trace import restore_windows, subject_token_span, trace_request
from editkit.localize.gradient import site_gradient_norms
from editkit.requests.schema import EditRequest

REQUESTS = (
    EditRequest("The capital of France is", "Rome", subject="France", target_true="Paris"),
    EditRequest("Toyota is a car maker from", "Italy", subject="Toyota"),
    EditRequest("People in Spain speak", "German", subject="Spain", target_true="Spanish"),
)


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def _model(model_type: str, **overrides):
    model, _ = tiny_model(model_type, seed=0, **overrides)
    return model


def _check_location(loc: Location, model, strategy: str, module: str = "mlp_down") -> None:
    rows = loc.scores["per_layer"]
    assert loc.strategy == strategy
    assert [r["layer"] for r in rows] == list(range(num_layers(model)))
    assert all(math.isfinite(r["score"]) for r in rows)
    best = max(rows, key=lambda r: (r["score"], -r["layer"]))["layer"]
    assert loc.sites == module_sites(model, best, module)
    assert loc.reason and strategy in loc.reason and loc.scores["criterion"]
    assert Location.from_dict(json.loads(json.dumps(loc.to_dict()))) == loc


@pytest.mark.unit
def test_strategies_are_registered() -> None:
    assert {"causal-trace", "gradient"} <= set(strategy_names())


# ---------------------------------------------------------------- causal trace


@pytest.mark.unit
@pytest.mark.parametrize("model_type", ["llama", "gpt2"])
@pytest.mark.parametrize("kind", ["block", "mlp", "attn"])
def test_causal_trace_returns_a_location(tok, model_type: str, kind: str) -> None:
    model = _model(model_type)
    loc = localize("causal-trace", model, tok, REQUESTS, kind=kind, samples=2)
    _check_location(loc, model, "causal-trace")
    assert loc.scores["kind"] == kind and loc.scores["window"] == (1 if kind == "block" else 10)
    assert loc.scores["noise_std"] > 0
    traces = loc.scores["requests"]
    assert [t["answer"] for t in traces][0::2] == [" Paris", " Spanish"]  # target_true's first token
    for t in traces:
        assert 0.0 <= t["p_corrupted"] <= 1.0 and 0.0 <= t["p_clean"] <= 1.0


@pytest.mark.unit
@pytest.mark.parametrize("model_type", sorted(TINY_CONFIGS))
def test_zero_noise_gives_zero_indirect_effects(tok, model_type: str) -> None:
    # Zero up to float rounding: identical rows of one batched matmul can round
    # differently by their position in it (seen: 1e-10 on a 7-token prompt with
    # one thread), so "exactly 0" holds only up to that.
    model = _model(model_type)
    for kind in ("block", "mlp"):
        loc = localize("causal-trace", model, tok, REQUESTS[:2], kind=kind, noise=0.0, samples=2)
        assert [r["score"] for r in loc.scores["per_layer"]] == pytest.approx([0.0] * num_layers(model), abs=1e-8)
        for t in loc.scores["requests"]:
            assert t["p_corrupted"] == pytest.approx(t["p_clean"], rel=1e-6)


@pytest.mark.unit
@pytest.mark.parametrize("model_type", ["llama", "gpt2"])
def test_restoring_the_last_block_at_the_final_subject_token_gives_the_clean_run(
    tok, model_type: str
) -> None:
    # The subject's last token is the prompt's last token: restoring the last
    # block's output there restores the final logits themselves.
    model = _model(model_type)
    t = trace_request(model, tok, "The capital of France", "France", noise_std=5.0, samples=2)
    assert t.p_corrupted != t.p_clean
    assert t.p_restored[-1] == pytest.approx(t.p_clean, rel=1e-6, abs=1e-9)


def _output_tensor(output):
    return output[0] if isinstance(output, tuple) else output


def _hooked_probs(model, ids, span, answer, noise=None, restore=None):
    """Reference: one row, plain torch hooks; ``restore`` = {module path: clean value at pos}."""
    handles = []
    if noise is not None:

        def add_noise(_m, _inp, out):
            out = out.clone()
            out[0, span[0] : span[1]] += noise
            return out

        embed = get_module(model, get_arch(model).embed)
        handles.append(embed.register_forward_hook(add_noise))
    for path, value in (restore or {}).items():

        def put_back(_m, _inp, out, value=value):
            _output_tensor(out)[0, span[1] - 1] = value

        handles.append(get_module(model, path).register_forward_hook(put_back))
    try:
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits
    finally:
        for h in handles:
            h.remove()
    return float(torch.softmax(logits[0, -1].float(), -1)[answer])


def _clean_states(model, ids, paths, pos):
    states, handles = {}, []
    for path in paths:

        def grab(_m, _inp, out, path=path):
            states[path] = _output_tensor(out)[0, pos].clone()

        handles.append(get_module(model, path).register_forward_hook(grab))
    with torch.no_grad():
        model(torch.tensor([ids]))
    for h in handles:
        h.remove()
    return states


@pytest.mark.unit
@pytest.mark.parametrize("model_type", ["llama", "gpt2"])
@pytest.mark.parametrize(("kind", "window", "layer"), [("block", 1, 2), ("mlp", 3, 1), ("attn", 2, 3)])
def test_nnsight_trace_matches_a_torch_hook_reimplementation(
    tok, model_type: str, kind: str, window: int, layer: int
) -> None:
    model = _model(model_type, initializer_range=0.2)  # peakier outputs than the default 0.02
    prompt, subject, samples, std = "The capital of France is", "France", 2, 2.0
    t = trace_request(
        model, tok, prompt, subject, noise_std=std, target="Paris", kind=kind, window=window,
        samples=samples, generator=torch.Generator().manual_seed(7),
    )
    ids = tok(prompt)["input_ids"]
    span = subject_token_span(tok, prompt, subject)
    assert tok.decode(ids[span[0] : span[1]]) == " France"
    answer = tok(" Paris", add_special_tokens=False)["input_ids"][0]
    assert t.answer_id == answer
    noise = torch.randn(samples, span[1] - span[0], 32, generator=torch.Generator().manual_seed(7)) * std
    paths = [module_path(model, j, kind) for j in restore_windows(num_layers(model), window)[layer]]
    clean = _clean_states(model, ids, paths, span[1] - 1)
    corrupted = [_hooked_probs(model, ids, span, answer, noise=n) for n in noise]
    restored = [_hooked_probs(model, ids, span, answer, noise=n, restore=clean) for n in noise]
    assert t.p_clean == pytest.approx(_hooked_probs(model, ids, span, answer), rel=1e-5)
    assert t.p_corrupted == pytest.approx(sum(corrupted) / samples, rel=1e-5)
    assert t.p_restored[layer] == pytest.approx(sum(restored) / samples, rel=1e-5)
    # The restoration matters (0.2%-16% here), far above the tolerance of the comparison.
    assert abs(sum(restored) - sum(corrupted)) > 1e-3 * sum(corrupted)


@pytest.mark.unit
def test_causal_trace_batches_layers_the_same_way(tok) -> None:
    model = _model("llama")
    one = trace_request(model, tok, "Toyota is a car maker from", "Toyota", noise_std=1.0, kind="mlp")
    split = trace_request(
        model, tok, "Toyota is a car maker from", "Toyota", noise_std=1.0, kind="mlp", layers_per_batch=3
    )
    assert split.p_restored == pytest.approx(one.p_restored, rel=1e-5, abs=1e-9)
    assert one.answer_id == split.answer_id  # the model's own greedy token (no target_true)


@pytest.mark.unit
def test_causal_trace_leaves_the_model_as_it_was(tok) -> None:
    model = _model("gpt2")
    before = copy.deepcopy(model.state_dict())
    model.train()
    dicts = {name: set(m.__dict__) for name, m in model.named_modules()}
    localize("causal-trace", model, tok, REQUESTS, kind="mlp", samples=1)
    assert model.training
    assert {name: set(m.__dict__) for name, m in model.named_modules()} == dicts  # nnsight unwrapped
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.unit
def test_causal_trace_top_k_and_seed(tok) -> None:
    model = _model("llama")
    a = localize("causal-trace", model, tok, REQUESTS, top_k=2, seed=3, samples=2)
    b = localize("causal-trace", model, tok, REQUESTS, top_k=2, seed=3, samples=2)
    assert a == b
    assert len(a.layers) == 2 and len(a.sites) == 2
    ranked = sorted(a.scores["per_layer"], key=lambda r: -r["score"])
    assert a.layers == tuple(sorted(r["layer"] for r in ranked[:2]))


@pytest.mark.unit
def test_subject_token_span(tok) -> None:
    prompt = "The mother tongue of Victor Hugo is"
    start, end = subject_token_span(tok, prompt, "Victor Hugo")
    assert tok.decode(tok(prompt)["input_ids"][start:end]).strip() == "Victor Hugo"
    with pytest.raises(EditkitError, match="does not occur"):
        subject_token_span(tok, prompt, "Dante")


@pytest.mark.unit
def test_causal_trace_errors(tok) -> None:
    model = _model("llama")
    with pytest.raises(EditkitError, match="subject"):
        localize("causal-trace", model, tok, [EditRequest("The capital of France is", "Rome")])
    bad = EditRequest.__new__(EditRequest)  # bypass validation: subject not in prompt
    object.__setattr__(bad, "prompt", "The capital of France is")
    object.__setattr__(bad, "subject", "Spain")
    object.__setattr__(bad, "target_true", None)
    with pytest.raises(EditkitError, match="does not occur"):
        localize("causal-trace", model, tok, [bad])
    with pytest.raises(EditkitError, match="kind"):
        localize("causal-trace", model, tok, REQUESTS, kind="resid")
    with pytest.raises(EditkitError, match="unknown option"):
        localize("causal-trace", model, tok, REQUESTS, sample=3)
    with pytest.raises(EditkitError, match="top_k"):
        localize("causal-trace", model, tok, REQUESTS, top_k=9)


# ---------------------------------------------------------------- gradient


def _manual_grad_norm(model, tok, requests, layer: int, module: str) -> tuple[float, float]:
    """Reference: the same loss, one ``backward()`` on a copy, ``.grad`` read directly."""
    model = copy.deepcopy(model)
    enc = encode_pairs(tok, [r.prompt for r in requests], [r.target_new for r in requests])
    batch = collate(enc, pad_id=tok.pad_token_id)
    loss = batch.mean_target_nll(model(**batch.model_inputs()).logits).mean()
    loss.backward()
    named = dict(model.named_parameters())
    params = [named[s.param] for s in module_sites(model, layer, module)]
    grad = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in params))
    weight = math.sqrt(sum(float(p.detach().pow(2).sum()) for p in params))
    return grad, weight


@pytest.mark.unit
@pytest.mark.parametrize(("model_type", "module"), [("llama", "mlp_down"), ("gpt2", "mlp_down"), ("gpt2", "attn")])
def test_gradient_matches_a_manual_backward(tok, model_type: str, module: str) -> None:
    model = _model(model_type)
    loc = localize("gradient", model, tok, REQUESTS, module=module, batch_size=2)  # 2 batches
    _check_location(loc, model, "gradient", module)
    grad, weight = _manual_grad_norm(model, tok, REQUESTS, 1, module)
    row = loc.scores["per_layer"][1]
    assert row["grad_norm"] == pytest.approx(grad, rel=1e-4)
    assert row["param_norm"] == pytest.approx(weight, rel=1e-6)
    assert row["score"] == pytest.approx(grad / weight, rel=1e-4)
    raw = localize("gradient", model, tok, REQUESTS, module=module, normalize=False)
    assert raw.scores["per_layer"][1]["score"] == pytest.approx(grad, rel=1e-4)
    assert raw.scores["normalize"] is False


@pytest.mark.unit
def test_gradient_leaves_the_model_unchanged(tok) -> None:
    model = _model("llama")
    model.model.embed_tokens.weight.requires_grad_(False)
    model.train()
    before = copy.deepcopy(model.state_dict())
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    rows = site_gradient_norms(model, tok, REQUESTS, module="mlp_up")
    assert len(rows) == num_layers(model) and all(r["grad_norm"] > 0 for r in rows)
    assert model.training and all(m.training for m in model.modules())
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.unit
def test_gradient_top_k_and_errors(tok) -> None:
    model = _model("gpt2")
    loc = localize("gradient", model, tok, REQUESTS, top_k=3, module="mlp_down")
    assert len(loc.layers) == 3 and [s.layer for s in loc.sites] == sorted(s.layer for s in loc.sites)
    with pytest.raises(EditkitError, match="unknown option"):
        localize("gradient", model, tok, REQUESTS, normalise=True)
    with pytest.raises(EditkitError, match="no requests"):
        localize("gradient", model, tok, [])


# ---------------------------------------------------------------- default model

FACTS = (
    EditRequest("The capital of France is", "Rome", subject="France", target_true="Paris"),
    EditRequest("Toyota is a car maker from", "Germany", subject="Toyota", target_true="Japan"),
    EditRequest("The capital of Germany is", "Madrid", subject="Germany", target_true="Berlin"),
    EditRequest("Ferrari is a car maker from", "France", subject="Ferrari", target_true="Italy"),
)


@pytest.mark.integration
def test_causal_trace_on_the_default_model(default_model) -> None:
    model, tok = default_model
    loc = localize("causal-trace", model, tok, FACTS, kind="mlp")
    _check_location(loc, model, "causal-trace")
    assert len(loc.scores["per_layer"]) == num_layers(model) == 30
    assert loc.scores["p_clean"] > 0.3 > 0.05 > loc.scores["p_corrupted"]
    # As in ROME, the MLPs that matter at the last subject token are early ones.
    assert loc.layers[0] < num_layers(model) // 2


@pytest.mark.integration
def test_gradient_on_the_default_model(default_model) -> None:
    model, tok = default_model
    before = {n: p.detach().clone() for n, p in model.named_parameters() if ".29." in n}
    loc = localize("gradient", model, tok, FACTS, module="mlp_down")
    _check_location(loc, model, "gradient")
    assert all(r["grad_norm"] > 0 and r["param_norm"] > 0 for r in loc.scores["per_layer"])
    assert all(p.grad is None for p in model.parameters())
    named = dict(model.named_parameters())
    assert all(torch.equal(named[n], v) for n, v in before.items())
