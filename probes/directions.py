"""Refusal directions (Arditi et al. 2024): compute, select, ablate (hooks or weights), add.

- Candidates: for every post-instruction position ``i`` and layer ``l``,
  ``r_il = mean(harmful activations) - mean(harmless activations)`` of the
  residual stream at the input of block ``l``.
- Directional ablation ``x <- x - (x . r) r`` (``r`` unit) on every block input
  and every attention and MLP output (:func:`ablated`), or equivalently,
  orthogonalized weights (:func:`orthogonalize_weights`): every embedding table
  of width ``d`` and every attention- and MLP-output projection (and its bias)
  loses its component along ``r``. The two agree exactly on pre-norm blocks,
  where the residual stream is the sum of those writes; blocks that normalize
  their attention/MLP outputs before adding them (OLMo 2, Gemma 2/3's
  post-norms) break the equivalence.
- Activation addition (:func:`added`): ``x <- x + c * r`` at the input of one block, every position.
- Selection (:func:`select_direction`), as published: the refusal score of a
  prompt is ``log p - log(1 - p)`` with ``p`` the next-token probability mass
  of the refusal tokens at the last prompt position. For each candidate:
  *bypass* = mean refusal score on harmful prompts with the direction ablated;
  *induce* = mean refusal score on harmless prompts with the (raw) direction
  added at its layer; *KL* = mean KL(base || ablated) of the last-position
  next-token distribution on harmless prompts. Keep candidates with
  ``induce >= 0``, ``KL <= 0.1`` and layer ``< int(0.8 L)``; choose the lowest bypass.

>>> dirs = compute_directions(model, tok, harmful, harmless)                      # doctest: +SKIP
>>> sel = select_direction(model, tok, dirs, harmful_val, harmless_val)           # doctest: +SKIP
>>> with ablated(model, sel.direction):                                           # doctest: +SKIP
...     model.generate(...)
"""

from __future__ import annotations

import contextlib
import inspect
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from editkit.arch import (
    get_arch,
    get_module,
    layer_module,
    module_path,
    num_layers,
    weight_is_transposed,
)
from editkit.batching import chunks, model_device
from editkit.chat import pad_id_of
from editkit.errors import EditkitError, InputError
from probes.activations import Activations, collect_activations, unwrap
from probes.chat import encode_instructions, left_padded

Progress = Callable[[str, int, int], None]


# --- candidates -------------------------------------------------------------------


def mean_difference(harmful: torch.Tensor, harmless: torch.Tensor) -> torch.Tensor:
    """``harmful.mean(0) - harmless.mean(0)`` in float64 (then float32).

    >>> mean_difference(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[0.0, 1.0]])).tolist()
    [2.0, 2.0]
    """
    return (harmful.to(torch.float64).mean(0) - harmless.to(torch.float64).mean(0)).float()


@dataclass
class RefusalDirections:
    """Candidate refusal directions.

    Attributes:
        directions: ``[n_positions, n_layers, d]`` raw mean differences (harmful - harmless).
        harmful_mean, harmless_mean: the class means, same shape.
        layers: layer index of each second-axis entry (block inputs).
        positions: offset of each first-axis entry from the end of the prompt (``-k .. -1``).
    """

    directions: torch.Tensor
    harmful_mean: torch.Tensor
    harmless_mean: torch.Tensor
    layers: tuple[int, ...]
    positions: tuple[int, ...]

    def get(self, layer: int, position: int = -1) -> torch.Tensor:
        """The raw direction ``[d]`` at a layer and a position offset (``-1``: the last prompt token)."""
        if layer not in self.layers or position not in self.positions:
            raise KeyError(f"no candidate at layer {layer}, position {position} (layers {list(self.layers)}, positions {list(self.positions)})")
        return self.directions[self.positions.index(position), self.layers.index(layer)]

    def unit(self, layer: int, position: int = -1) -> torch.Tensor:
        """The normalized direction."""
        return unit(self.get(layer, position))


def unit(v: torch.Tensor) -> torch.Tensor:
    """``v / ||v||`` (float32).

    Raises:
        EditkitError: a zero vector.
    """
    norm = v.to(torch.float64).norm()
    if not norm > 0:
        raise EditkitError("a zero refusal direction cannot be normalized (harmful and harmless means coincide)")
    return (v.to(torch.float64) / norm).float()


def directions_from_activations(harmful: Activations, harmless: Activations) -> RefusalDirections:
    """Mean differences from activations collected at the same layers and positions."""
    if harmful.layers != harmless.layers or harmful.hidden.shape[1:] != harmless.hidden.shape[1:]:
        raise InputError("harmful and harmless activations differ in layers or positions")
    h = harmful.hidden.to(torch.float64).mean(0).transpose(0, 1)  # [k, layers, d]
    n = harmless.hidden.to(torch.float64).mean(0).transpose(0, 1)
    k = h.shape[0]
    return RefusalDirections((h - n).float(), h.float(), n.float(), harmful.layers, tuple(range(-k, 0)))


def compute_directions(
    model: Any,
    tok: Any,
    harmful: Sequence[str],
    harmless: Sequence[str],
    *,
    positions: str = "post_instruction",
    layers: Sequence[int] | None = None,
    chat: bool | None = None,
    system_prompt: str | None = None,
    batch_size: int = 8,
    impl: str = "nnsight",
    remote: bool | str = False,
    progress: Progress | None = None,
) -> RefusalDirections:
    """Candidate directions at every block input (``0..L-1``) and post-instruction position.

    Args:
        positions: ``"post_instruction"`` (every template token after the
            instruction; needs a chat template) or ``"last"`` (the last prompt token only).
        layers: block inputs to use (default all).
        remote: collect the activations on NDIF (``model``: nnsight's
            ``LanguageModel(repo_id)`` of a hosted checkpoint); see
            :func:`probes.activations.collect_activations`. Only this forward-only
            step runs remotely: selecting a direction (:func:`select_direction`)
            ablates and generates with a model in this process.

    Raises:
        InputError: no harmful or no harmless prompts, a bad option.
    """
    if not harmful or not harmless:
        raise InputError(f"refusal directions need harmful and harmless prompts (got {len(harmful)} and {len(harmless)})")
    if positions not in ("post_instruction", "last"):
        raise InputError(f"positions: expected 'post_instruction' or 'last', got {positions!r}")
    n = num_layers(unwrap(model))
    chosen = list(range(n)) if layers is None else list(layers)
    if any(not 0 <= layer < n for layer in chosen):
        raise InputError(f"layers: block inputs are 0..{n - 1}, got {chosen}")
    kw: dict[str, Any] = {"layers": chosen, "positions": positions, "chat": chat, "system_prompt": system_prompt,
                          "batch_size": batch_size, "impl": impl, "remote": remote}
    acts_h = collect_activations(model, tok, harmful, progress=progress, **kw)
    acts_n = collect_activations(model, tok, harmless, progress=progress, **kw)
    # both sets must read the same number of trailing template tokens
    k = min(acts_h.n_positions, acts_n.n_positions)
    acts_h.hidden, acts_n.hidden = acts_h.hidden[:, :, -k:], acts_n.hidden[:, :, -k:]
    return directions_from_activations(acts_h, acts_n)


# --- interventions ---------------------------------------------------------------


def project_out(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """``x - (x . r) r`` along the last axis (``r`` unit, cast to ``x``'s dtype and device)."""
    r = r.to(device=x.device, dtype=x.dtype)
    return x - (x @ r).unsqueeze(-1) * r


def _replace_first(args: tuple[Any, ...], kwargs: dict[str, Any], fn: Callable[[torch.Tensor], torch.Tensor]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if args:
        return (fn(args[0]), *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": fn(kwargs["hidden_states"])}


def _replace_output(output: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    if isinstance(output, tuple):
        return (fn(output[0]), *output[1:])
    return fn(output)


@contextlib.contextmanager
def ablated(model: Any, direction: torch.Tensor) -> Iterator[None]:
    """Directional ablation by hooks: ``x - (x . r) r`` on every block input and attention / MLP output.

    The hooks are removed when the block exits (also on errors).
    """
    lm = unwrap(model)
    r = unit(direction)
    spec = get_arch(lm)
    handles = []

    def pre(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return _replace_first(args, kwargs, lambda x: project_out(x, r))

    def post(module: nn.Module, args: Any, output: Any) -> Any:
        return _replace_output(output, lambda x: project_out(x, r))

    try:
        for layer in range(num_layers(lm)):
            block = layer_module(lm, layer)
            handles.append(block.register_forward_pre_hook(pre, with_kwargs=True))
            handles.append(get_module(block, spec.attn).register_forward_hook(post))
            handles.append(get_module(block, spec.mlp).register_forward_hook(post))
        yield
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def added(model: Any, vector: torch.Tensor, layer: int, coeff: float = 1.0) -> Iterator[None]:
    """Activation addition: ``x + coeff * vector`` at the input of block ``layer``, every position."""
    lm = unwrap(model)

    def pre(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return _replace_first(args, kwargs, lambda x: x + coeff * vector.to(device=x.device, dtype=x.dtype))

    handle = layer_module(lm, layer).register_forward_pre_hook(pre, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


def _untie_output_embeddings(lm: nn.Module) -> None:
    """Give the unembedding its own copy of a tied embedding matrix (the unembedding is not orthogonalized)."""
    get_in = getattr(lm, "get_input_embeddings", None)
    get_out = getattr(lm, "get_output_embeddings", None)
    if not callable(get_in) or not callable(get_out):
        return
    emb, head = get_in(), get_out()
    if emb is None or head is None or head.weight is not emb.weight:
        return
    head.weight = nn.Parameter(emb.weight.detach().clone(), requires_grad=emb.weight.requires_grad)
    for config in (getattr(lm, "config", None), getattr(getattr(lm, "config", None), "text_config", None)):
        if config is not None and hasattr(config, "tie_word_embeddings"):
            config.tie_word_embeddings = False


@torch.no_grad()
def orthogonalize_weights(model: Any, direction: torch.Tensor) -> Any:
    """Remove ``r`` from every weight that writes to the residual stream, in place (irreversible).

    Embedding tables of width ``d`` (token and learned absolute positions):
    ``W <- W - (W r) r^T`` (rows live in the residual stream). Attention- and
    MLP-output projections: ``W <- W - r (r^T W)`` for ``nn.Linear``'s
    ``[d, in]`` (rows for GPT-2's transposed ``Conv1D``), biases ``b <- b - (b . r) r``.
    A tied unembedding is untied first, so the output layer is unchanged.

    Returns:
        the model (for chaining); copy it first to keep the original.
    """
    lm = unwrap(model)
    r64 = unit(direction).to(torch.float64)
    d = r64.shape[0]
    _untie_output_embeddings(lm)
    blocks = get_module(lm, get_arch(lm).layers)
    in_blocks = {id(m) for m in blocks.modules()}
    for module in lm.modules():
        if isinstance(module, nn.Embedding) and id(module) not in in_blocks and module.embedding_dim == d:
            w = module.weight.to(torch.float64)
            r = r64.to(w.device)
            module.weight.copy_((w - torch.outer(w @ r, r)).to(module.weight.dtype))
    for layer in range(num_layers(lm)):
        for kind in ("attn_out", "mlp_out"):
            path = module_path(lm, layer, kind)
            proj = get_module(lm, path)
            weight: torch.Tensor = proj.weight  # type: ignore[assignment]
            w = weight.to(torch.float64)
            r = r64.to(w.device)
            if weight_is_transposed(lm, path):  # [in, d]
                new = w - torch.outer(w @ r, r)
            else:  # [d, in]
                new = w - torch.outer(r, r @ w)
            weight.copy_(new.to(weight.dtype))
            bias = getattr(proj, "bias", None)
            if isinstance(bias, torch.Tensor):
                b = bias.to(torch.float64)
                bias.copy_((b - (b @ r) * r).to(bias.dtype))
    return model


# --- scoring ---------------------------------------------------------------------


def refusal_token_ids(tok: Any, starts: Sequence[str] = ("I", "As")) -> list[int]:
    """The first token of each refusal opening (``"I"`` of "I'm sorry", ``"As"`` of "As an AI").

    Raises:
        InputError: an opening with no tokens.
    """
    ids = []
    for text in starts:
        toks = tok(text, add_special_tokens=False)["input_ids"]
        if not toks:
            raise InputError(f"refusal token {text!r} has no tokens")
        if toks[0] not in ids:
            ids.append(int(toks[0]))
    return ids


@torch.inference_mode()
def last_position_logits(
    model: Any,
    tok: Any,
    prompts: Sequence[str],
    *,
    chat: bool | None = None,
    system_prompt: str | None = None,
    batch_size: int = 16,
) -> torch.Tensor:
    """Next-token logits after each (templated) prompt, ``[n, vocab]`` float32 on the CPU (left-padded batches)."""
    lm = unwrap(model)
    encoded = encode_instructions(tok, prompts, chat=chat, system_prompt=system_prompt)
    device = model_device(lm)
    pad = pad_id_of(tok)
    extra: dict[str, Any] = {"use_cache": False}
    if "logits_to_keep" in inspect.signature(type(lm).forward).parameters:
        extra["logits_to_keep"] = 1
    out = []
    for batch in chunks(encoded, batch_size):
        ids, mask = left_padded([e.ids for e in batch], pad)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device), **extra).logits
        out.append(logits[:, -1].float().cpu())
    return torch.cat(out)


def refusal_score(logits: torch.Tensor, token_ids: Sequence[int], eps: float = 1e-8) -> torch.Tensor:
    """``log(p + eps) - log(1 - p + eps)`` with ``p`` the probability mass of ``token_ids``, ``[n]`` float64."""
    probs = torch.softmax(logits.to(torch.float64), dim=-1)
    p = probs[:, list(token_ids)].sum(-1)
    return torch.log(p + eps) - torch.log(1 - p + eps)


def kl_divergence(base_logits: torch.Tensor, new_logits: torch.Tensor) -> torch.Tensor:
    """``KL(base || new)`` of next-token distributions, ``[n]`` float64."""
    lp = torch.log_softmax(base_logits.to(torch.float64), -1)
    lq = torch.log_softmax(new_logits.to(torch.float64), -1)
    return (lp.exp() * (lp - lq)).sum(-1)


# --- selection -------------------------------------------------------------------


@dataclass
class CandidateScore:
    """One candidate's scores; ``kept`` says whether it passed the filters (``reason`` if not)."""

    position: int
    layer: int
    bypass: float | None
    induce: float | None
    kl: float | None
    kept: bool
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in self.__dict__.items()}


@dataclass
class DirectionSelection:
    """The selected direction and every candidate's scores.

    Attributes:
        position, layer: the selected candidate.
        direction: its raw direction ``[d]`` (normalize with :func:`unit` to ablate).
        candidates: all candidates in (position, layer) order.
        baseline: mean refusal scores without intervention (``harmful``, ``harmless``).
        settings: thresholds and refusal tokens.
    """

    position: int
    layer: int
    direction: torch.Tensor
    candidates: list[CandidateScore]
    baseline: dict[str, float]
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def chosen(self) -> CandidateScore:
        return next(c for c in self.candidates if c.position == self.position and c.layer == self.layer)

    def to_dict(self) -> dict[str, Any]:
        return {"position": self.position, "layer": self.layer, "direction_norm": float(self.direction.norm()),
                "chosen": self.chosen.to_dict(), "baseline": self.baseline, "settings": self.settings,
                "candidates": [c.to_dict() for c in self.candidates]}


class NoDirectionFound(EditkitError):
    """No candidate passed the selection filters; ``candidates`` holds every score."""

    def __init__(self, message: str, candidates: list[CandidateScore]) -> None:
        super().__init__(message)
        self.candidates = candidates


def select_direction(
    model: Any,
    tok: Any,
    directions: RefusalDirections,
    harmful_val: Sequence[str],
    harmless_val: Sequence[str],
    *,
    refusal_tokens: Sequence[int] | None = None,
    kl_threshold: float = 0.1,
    induce_threshold: float = 0.0,
    max_layer_fraction: float = 0.8,
    positions: Sequence[int] | None = None,
    chat: bool | None = None,
    system_prompt: str | None = None,
    batch_size: int = 16,
    progress: Progress | None = None,
) -> DirectionSelection:
    """Arditi et al.'s selection: lowest bypass score among candidates that induce refusal, keep KL low and sit early.

    Candidates at layers ``>= int(max_layer_fraction * L)`` are pruned before
    scoring (as published: the last 20% of layers). Use validation prompts
    that were not used to compute the directions.

    Args:
        refusal_tokens: token ids of refusal openings (default :func:`refusal_token_ids`: "I", "As").
        positions: position offsets to consider (default all).

    Raises:
        NoDirectionFound: every candidate was filtered out (the exception lists the scores).
    """
    lm = unwrap(model)
    n = num_layers(lm)
    tokens = list(refusal_tokens) if refusal_tokens is not None else refusal_token_ids(tok)
    kw: dict[str, Any] = {"chat": chat, "system_prompt": system_prompt, "batch_size": batch_size}
    base_harmful = last_position_logits(model, tok, harmful_val, **kw)
    base_harmless = last_position_logits(model, tok, harmless_val, **kw)
    baseline = {"harmful": float(refusal_score(base_harmful, tokens).mean()),
                "harmless": float(refusal_score(base_harmless, tokens).mean())}
    cutoff = int(n * max_layer_fraction)
    todo = [(p, layer) for p in (positions or directions.positions) for layer in directions.layers]
    scores: list[CandidateScore] = []
    for k, (pos, layer) in enumerate(todo):
        if progress is not None:
            progress("scoring candidate directions", k, len(todo))
        if layer >= cutoff:
            scores.append(CandidateScore(pos, layer, None, None, None, False, f"layer >= {cutoff} (last {1 - max_layer_fraction:.0%})"))
            continue
        raw = directions.get(layer, pos)
        if not float(raw.norm()) > 0:  # e.g. template tokens at layer 0: identical in both sets
            scores.append(CandidateScore(pos, layer, None, None, None, False, "zero direction"))
            continue
        with ablated(model, raw):
            bypass = float(refusal_score(last_position_logits(model, tok, harmful_val, **kw), tokens).mean())
            kl = float(kl_divergence(base_harmless, last_position_logits(model, tok, harmless_val, **kw)).mean())
        with added(model, raw, layer):
            induce = float(refusal_score(last_position_logits(model, tok, harmless_val, **kw), tokens).mean())
        reason = None
        if any(math.isnan(v) for v in (bypass, induce, kl)):
            reason = "nan score"
        elif kl > kl_threshold:
            reason = f"KL {kl:.3g} > {kl_threshold}"
        elif induce < induce_threshold:
            reason = f"induce {induce:.3g} < {induce_threshold}"
        scores.append(CandidateScore(pos, layer, bypass, induce, kl, reason is None, reason))
    if progress is not None:
        progress("scoring candidate directions", len(todo), len(todo))
    kept = [c for c in scores if c.kept]
    settings = {"kl_threshold": kl_threshold, "induce_threshold": induce_threshold,
                "max_layer_fraction": max_layer_fraction, "refusal_tokens": tokens}
    if not kept:
        raise NoDirectionFound(
            f"no candidate refusal direction passed the filters (KL <= {kl_threshold}, induce >= {induce_threshold}, "
            f"layer < {cutoff}) among {len(scores)}; relax the thresholds or use more prompts",
            scores,
        )
    best = min(kept, key=lambda c: (c.bypass, c.layer, c.position))
    return DirectionSelection(best.position, best.layer, directions.get(best.layer, best.position).clone(), scores,
                              baseline, settings)
