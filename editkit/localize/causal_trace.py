"""The ``causal-trace`` localization strategy (ROME's causal tracing).

Meng et al. 2022, "Locating and Editing Factual Associations in GPT": run the
prompt clean; corrupt it by adding Gaussian noise to the embeddings of the
subject tokens; then, one layer at a time, restore the clean hidden state at
the *last subject token* inside the corrupted run. The indirect effect of
layer ``l`` is how much of the answer's probability the restoration brings
back::

    IE(l) = P(answer | corrupted, state l restored) - P(answer | corrupted)

``kind="block"`` restores the residual stream after block ``l`` (one layer);
``kind="mlp"`` / ``kind="attn"`` restore the MLP / attention outputs of a
window of ``window`` layers centred on ``l`` (ROME's window of 10), which is
what singles out the early-middle MLPs ROME edits.

The interventions run through `nnsight <https://nnsight.net>`_ (0.8.1:
``NNsight(model)`` on the HF module, token ids in, no tokenization by
nnsight). All restored runs of one request share one batched forward: row 0
is clean, rows ``1..samples`` are corrupted, then ``samples`` rows per
restored layer, every row reusing the same noise draws (common random
numbers, as in ROME), and each restored row copying its clean state from row
0 of the same forward.

>>> loc = localize("causal-trace", model, tok, requests, kind="mlp")  # doctest: +SKIP
>>> [row["score"] for row in loc.scores["per_layer"]][:3]             # doctest: +SKIP
[0.002, 0.011, 0.034]
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from editkit.arch import get_arch, get_module, hidden_size, module_path, num_layers
from editkit.batching import encode_pairs, model_device
from editkit.errors import EditkitError
from editkit.localize import register_strategy
from editkit.localize.common import check_options, preserved_state, ranked_location
from editkit.localize.location import Location

__all__ = [
    "TRACE_KINDS",
    "RequestTrace",
    "causal_trace",
    "embedding_std",
    "nnsight_model",
    "restore_windows",
    "subject_token_span",
    "trace_request",
]

#: What a restored run restores at the last subject token: the residual stream
#: after the block, or the output of the block's MLP / attention module.
TRACE_KINDS: tuple[str, ...] = ("block", "mlp", "attn")

#: ROME's window for MLP / attention traces (1 for the residual stream).
DEFAULT_WINDOW: Mapping[str, int] = {"block": 1, "mlp": 10, "attn": 10}


@dataclass(frozen=True)
class RequestTrace:
    """The causal trace of one prompt.

    Attributes:
        prompt: The traced prompt.
        subject: The corrupted subject.
        subject_span: Token positions ``[start, end)`` of the subject in the prompt.
        answer_id: The token whose probability is traced.
        answer: That token, decoded.
        p_clean: Its probability on the clean prompt.
        p_corrupted: Its mean probability over the corrupted runs.
        p_restored: Per layer, its mean probability with that layer restored.
    """

    prompt: str
    subject: str
    subject_span: tuple[int, int]
    answer_id: int
    answer: str
    p_clean: float
    p_corrupted: float
    p_restored: tuple[float, ...]

    @property
    def indirect_effects(self) -> tuple[float, ...]:
        """``P_restored(l) - P_corrupted`` per layer."""
        return tuple(p - self.p_corrupted for p in self.p_restored)

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "subject": self.subject,
            "subject_span": list(self.subject_span),
            "answer_id": self.answer_id,
            "answer": self.answer,
            "p_clean": self.p_clean,
            "p_corrupted": self.p_corrupted,
            "indirect_effects": list(self.indirect_effects),
        }


def subject_token_span(tok: Any, prompt: str, subject: str) -> tuple[int, int]:
    """Token positions ``[start, end)`` of the first occurrence of ``subject`` in ``prompt``.

    Positions index ``tok(prompt, add_special_tokens=True)`` (so they match
    :func:`editkit.batching.encode_prompt`). A token belongs to the subject when
    its character span overlaps the subject's, so a leading-space token
    (``" France"``) counts. Needs a fast tokenizer (offset mappings).

    Raises:
        EditkitError: The subject does not occur in the prompt, or no token covers it.

    >>> subject_token_span(tok, "The capital of France is", "France")  # doctest: +SKIP
    (3, 4)
    """
    start_char = prompt.find(subject) if subject else -1
    if start_char < 0:
        raise EditkitError(f"causal-trace: subject {subject!r} does not occur in prompt {prompt!r}")
    end_char = start_char + len(subject)
    try:
        enc = tok(prompt, add_special_tokens=True, return_offsets_mapping=True)
    except NotImplementedError:
        raise EditkitError("causal-trace needs a fast tokenizer (with offset mappings)") from None
    offsets = enc["offset_mapping"]  # (start_char, end_char) per token; (0, 0) for specials
    hits = [i for i, (a, b) in enumerate(offsets) if b > a and a < end_char and b > start_char]
    if not hits:
        raise EditkitError(f"causal-trace: no token of {prompt!r} covers the subject {subject!r}")
    return hits[0], hits[-1] + 1


def restore_windows(n_layers: int, window: int) -> list[range]:
    """For each centre layer, the layers restored together (ROME's window, clipped).

    >>> restore_windows(4, 1)
    [range(0, 1), range(1, 2), range(2, 3), range(3, 4)]
    >>> restore_windows(6, 4)[0], restore_windows(6, 4)[3]
    (range(0, 2), range(1, 5))
    """
    if window < 1:
        raise EditkitError(f"causal-trace: window must be >= 1, got {window}")
    return [range(max(0, c - window // 2), min(n_layers, c - (-window // 2))) for c in range(n_layers)]


def embedding_std(model: nn.Module, token_ids: Sequence[Sequence[int]]) -> float:
    """Standard deviation of all coordinates of the input embeddings of the given tokens.

    ROME's noise level is 3 x this, measured over the subject tokens.

    >>> embedding_std(model, [[464, 3139]])  # doctest: +SKIP
    0.0418
    """
    flat = [t for ids in token_ids for t in ids]
    if len(flat) < 2:
        raise EditkitError("causal-trace: need at least two subject tokens to measure the embedding scale")
    embed = get_module(model, get_arch(model).embed)
    with torch.inference_mode():
        vectors = embed(torch.tensor([flat], device=model_device(model)))  # [1, n, hidden]
    return float(vectors.float().std())


@contextlib.contextmanager
def nnsight_model(model: nn.Module) -> Iterator[Any]:
    """``NNsight(model)``, removing what it installs on the modules when done.

    nnsight 0.8.1 wraps a module by putting a controller ``forward`` and an
    ``__nnsight__`` state into each submodule's ``__dict__``, permanently; the
    model is the caller's, so every attribute it adds is deleted afterwards.
    Every nnsight trace of a caller's model goes through here (causal tracing,
    and the ``"nnsight"`` implementations of :mod:`probes.activations` and TuCo).

    >>> with nnsight_model(model) as traced, traced.trace(input_ids=ids):   # doctest: +SKIP
    ...     hidden = nnsight.save(traced.model.layers[3].output)
    """
    from nnsight import NNsight

    before = {id(m): set(m.__dict__) for m in model.modules()}
    # a module dispatched by accelerate (a device map) already has a hooked ``forward`` there: put it back
    forwards = {id(m): m.__dict__["forward"] for m in model.modules() if "forward" in m.__dict__}
    try:
        yield NNsight(model)
    finally:
        for m in model.modules():
            for key in set(m.__dict__) - before.get(id(m), set()):
                del m.__dict__[key]
            if id(m) in forwards:
                m.__dict__["forward"] = forwards[id(m)]


def _envoy(root: Any, path: str) -> Any:
    for part in path.split("."):
        root = root[int(part)] if part.lstrip("-").isdigit() else getattr(root, part)
    return root


def _forward_kwargs(model: nn.Module) -> dict[str, Any]:
    # Only the last position's logits are needed; skip the rest where the model allows.
    params = inspect.signature(type(model).forward).parameters
    return {"logits_to_keep": 1} if "logits_to_keep" in params else {}


def _last_token_probs(
    traced: Any,
    model: nn.Module,
    input_ids: torch.Tensor,
    span: tuple[int, int],
    noise: torch.Tensor,
    plan: Mapping[int, list[int]],
    kind: str,
) -> torch.Tensor:
    """One traced forward of ``traced`` (``NNsight(model)``); next-token probabilities
    at the last position, ``[batch, vocab]``.

    Rows ``1:`` get ``noise`` added to the subject embeddings; for each layer
    ``j`` in ``plan``, rows ``plan[j]`` get the ``kind`` output of layer ``j``
    at the last subject token replaced by row 0's (clean) value.
    """
    start, end = span
    last = end - 1
    embed_path = get_arch(model).embed
    paths = {j: module_path(model, j, kind) for j in plan}
    with torch.inference_mode(), traced.trace(input_ids, **_forward_kwargs(model)):
        embeds = _envoy(traced, embed_path).output  # [batch, seq, hidden]
        embeds[1:, start:end] += noise.to(embeds.dtype)
        for j in sorted(plan):  # forward order
            out = _envoy(traced, paths[j]).output
            hidden = out[0] if isinstance(out, tuple) else out  # [batch, seq, hidden]
            hidden[plan[j], last] = hidden[0, last].clone()
        logits = traced.output.logits.save()  # [batch, kept, vocab]
    return torch.softmax(logits[:, -1].float(), dim=-1)


def _answer_id(tok: Any, prompt: str, target: str | None) -> int | None:
    if target is None:
        return None
    return encode_pairs(tok, [prompt], [target])[0].target_ids[0]


def trace_request(
    model: nn.Module,
    tok: Any,
    prompt: str,
    subject: str,
    *,
    noise_std: float,
    target: str | None = None,
    kind: str = "block",
    window: int | None = None,
    samples: int = 3,
    generator: torch.Generator | None = None,
    layers_per_batch: int | None = None,
) -> RequestTrace:
    """Causal trace of one prompt: the answer's probability with each layer restored.

    Args:
        model: The causal LM (in eval mode; it is not changed).
        tok: Its (fast) tokenizer.
        prompt: The prompt; the model's next token is the traced answer.
        subject: A substring of ``prompt`` whose token embeddings are corrupted.
        noise_std: Standard deviation of the Gaussian noise (0 leaves the run clean).
        target: The true answer: its first token is traced. None: the model's
            own greedy next token on the clean prompt.
        kind: ``block``, ``mlp`` or ``attn`` (see :data:`TRACE_KINDS`).
        window: Layers restored together around each centre layer
            (default 1 for ``block``, 10 for ``mlp``/``attn``).
        samples: Noise draws, averaged (one batch row each).
        generator: Source of the noise: ``noise_std * randn(samples, n_subject, hidden)``
            drawn on the CPU from it (default: a fresh generator seeded 0).
        layers_per_batch: Restored layers per forward (default: all in one).

    >>> t = trace_request(model, tok, "The capital of France is", "France",
    ...                   noise_std=0.1, kind="mlp")             # doctest: +SKIP
    >>> max(range(len(t.p_restored)), key=t.p_restored.__getitem__)  # doctest: +SKIP
    4
    """
    if kind not in TRACE_KINDS:
        raise EditkitError(f"causal-trace: kind must be one of {', '.join(TRACE_KINDS)}, got {kind!r}")
    if samples < 1:
        raise EditkitError(f"causal-trace: samples must be >= 1, got {samples}")
    if noise_std < 0:
        raise EditkitError(f"causal-trace: the noise standard deviation must be >= 0, got {noise_std}")
    if layers_per_batch is not None and layers_per_batch < 1:
        raise EditkitError(f"causal-trace: layers_per_batch must be >= 1, got {layers_per_batch}")
    n_layers = num_layers(model)
    windows = restore_windows(n_layers, DEFAULT_WINDOW[kind] if window is None else window)
    span = subject_token_span(tok, prompt, subject)
    ids = tok(prompt, add_special_tokens=True)["input_ids"]
    device = model_device(model)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    draws = torch.randn(samples, span[1] - span[0], hidden_size(model), generator=gen) * noise_std
    draws = draws.to(device)  # [samples, n_subject, hidden]
    step = layers_per_batch or n_layers
    answer = _answer_id(tok, prompt, target)  # None: the clean greedy token, set below
    p_clean = p_corrupted = 0.0
    p_restored: list[float] = []
    with preserved_state(model), nnsight_model(model) as traced:
        for first in range(0, n_layers, step):
            centres = range(first, min(n_layers, first + step))
            plan: dict[int, list[int]] = {}
            for k, centre in enumerate(centres):
                rows = [1 + samples * (k + 1) + s for s in range(samples)]
                for j in windows[centre]:
                    plan.setdefault(j, []).extend(rows)
            input_ids = torch.tensor([ids] * (1 + samples * (len(centres) + 1)), device=device)
            noise = draws.repeat(len(centres) + 1, 1, 1)
            probs = _last_token_probs(traced, model, input_ids, span, noise, plan, kind)  # [batch, vocab]
            answer_id = int(probs[0].argmax()) if answer is None else answer
            answer = answer_id
            p = probs[:, answer_id].double().cpu()
            p_clean, p_corrupted = float(p[0]), float(p[1 : 1 + samples].mean())
            for k in range(len(centres)):
                p_restored.append(float(p[1 + samples * (k + 1) : 1 + samples * (k + 2)].mean()))
    return RequestTrace(
        prompt, subject, span, answer_id, tok.decode([answer_id]), p_clean, p_corrupted, tuple(p_restored)
    )


def causal_trace(
    model: nn.Module,
    tok: Any,
    requests: Sequence[Any],
    *,
    module: str = "mlp_down",
    top_k: int = 1,
    kind: str = "block",
    window: int | None = None,
    samples: int = 3,
    noise: float | None = None,
    noise_scale: float = 3.0,
    seed: int = 0,
    layers_per_batch: int | None = None,
    **options: Any,
) -> Location:
    """The ``causal-trace`` strategy: the layer with the largest mean indirect effect.

    For every request with a ``subject`` (others are skipped), trace the
    probability of the true answer's first token -- ``target_true`` when the
    request has one, else the model's own greedy next token on the clean
    prompt -- and average ``IE(l) = P_restored(l) - P_corrupted`` over
    requests and noise samples. The best layer's ``module`` is returned.

    Args:
        model: The causal LM (left unchanged).
        tok: Its fast tokenizer.
        requests: Edit requests (``prompt``, ``subject``, optional ``target_true``).
        module: The module to edit in the chosen layer(s) (``mlp_down``...).
        top_k: Return the sites of the ``top_k`` best layers.
        kind: What is restored: ``block`` output (residual stream), ``mlp`` or ``attn`` output.
        window: Layers restored together (default 1 for ``block``, 10 otherwise, as ROME).
        samples: Noise samples per request (batched).
        noise: Noise standard deviation; None: ``noise_scale`` x the std of the
            subject tokens' embeddings (ROME: 3 x).
        noise_scale: Multiplier of the embedding std when ``noise`` is None.
        seed: Seed of the noise (a CPU generator; the global RNG is untouched).
        layers_per_batch: Restored layers per forward (default all: one
            forward of ``1 + samples * (layers + 1)`` rows per request).

    Returns:
        A :class:`Location`; ``scores = {"per_layer": [{"layer", "score",
        "p_restored"}], "criterion", "kind", "window", "samples", "noise_std",
        "p_clean", "p_corrupted", "requests": [per-request traces]}``.

    Raises:
        EditkitError: No request has a subject, a subject is not in its
            prompt, or an option is invalid.

    >>> loc = causal_trace(model, tok, requests, kind="mlp", module="mlp_down")  # doctest: +SKIP
    >>> loc.reason                                                               # doctest: +SKIP
    'causal-trace: layer 4 (mlp_down) scored highest on ...'
    """
    check_options("causal-trace", options)
    traced = [r for r in requests if getattr(r, "subject", None)]
    if not traced:
        raise EditkitError("causal-trace needs requests with a subject; none of the given requests has one")
    spans = [subject_token_span(tok, r.prompt, r.subject) for r in traced]
    if noise is None:
        subject_ids = [
            tok(r.prompt, add_special_tokens=True)["input_ids"][a:b]
            for r, (a, b) in zip(traced, spans, strict=True)
        ]
        noise = noise_scale * embedding_std(model, subject_ids)
    window = DEFAULT_WINDOW.get(kind, 1) if window is None else window
    gen = torch.Generator().manual_seed(seed)
    traces = [
        trace_request(
            model, tok, r.prompt, r.subject, noise_std=noise, target=getattr(r, "target_true", None),
            kind=kind, window=window, samples=samples, generator=gen, layers_per_batch=layers_per_batch,
        )
        for r in traced
    ]
    n = len(traces)
    per_layer = [
        {
            "layer": layer,
            "score": sum(t.indirect_effects[layer] for t in traces) / n,
            "p_restored": sum(t.p_restored[layer] for t in traces) / n,
        }
        for layer in range(num_layers(model))
    ]
    what = "block output (residual stream)" if kind == "block" else f"{kind} output (window {window})"
    criterion = (
        f"mean indirect effect of restoring the {what} at the last subject token "
        f"(P_restored - P_corrupted of the true answer's first token; "
        f"{n} request{'s' * (n != 1)} x {samples} noise sample{'s' * (samples != 1)}, noise std {noise:.3g})"
    )
    extra = {
        "kind": kind,
        "window": window,
        "samples": samples,
        "noise_std": noise,
        "p_clean": sum(t.p_clean for t in traces) / n,
        "p_corrupted": sum(t.p_corrupted for t in traces) / n,
        "skipped": len(requests) - n,
        "requests": [t.to_dict() for t in traces],
    }
    return ranked_location(
        model, per_layer, module=module, top_k=top_k, strategy="causal-trace", describe=criterion, extra=extra
    )


register_strategy("causal-trace", causal_trace)
