"""Hidden states at chosen layers and positions, collected with nnsight (or plain hooks).

Layer ``l`` (``0 <= l < L``) is the residual stream at the *input* of decoder
block ``l`` (TransformerLens' ``blocks.l.hook_resid_pre``; layer 0 is the
embedding output); layer ``L`` is the output of the last block, before the
final norm. Positions:

- ``"last"``: the last token of each input (the prompt's last token without
  responses: the end of the assistant header, just before generation);
- ``"prompt_last"``: the last prompt token, also when a response follows;
- ``"post_instruction"``: every post-instruction template token (the last
  ``k`` prompt tokens, ``k`` the smallest count over the prompts; needs a chat
  template), Arditi et al.'s positions;
- ``"response_mean"``: the mean over the first ``max_response_tokens``
  response tokens (needs responses; an empty response falls back to the last
  prompt token).

Batches are right-padded with an explicit attention mask and position ids
(:func:`editkit.batching.collate`), so padding never changes the numbers.
Both implementations read the same tensors; ``"nnsight"`` (``NNsight(model)``,
nnsight 0.8) is the default, ``"hooks"`` the reference.

A model spread by a device map works as it is (inputs go to the embedding's
device; offloaded weights are loaded by accelerate's hooks). A model hosted on
NDIF runs remotely: pass nnsight's wrapper of it (``LanguageModel(repo_id)``)
and ``remote=True``; every forward is then an NDIF request and only the
collected ``[batch, positions, hidden]`` slices come back (see the README,
"Models larger than one device").

>>> acts = collect_activations(model, tok, ["How do I bake bread?"], layers=[0, 10])   # doctest: +SKIP
>>> acts.hidden.shape       # [n, layers, positions, hidden]                           # doctest: +SKIP
torch.Size([1, 2, 1, 576])
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from editkit.arch import layer_module, module_path, num_layers
from editkit.batching import Encoded, chunks, collate, model_device
from editkit.chat import pad_id_of
from editkit.errors import InputError
from editkit.localize.causal_trace import nnsight_model
from probes.chat import encode_instructions

Progress = Callable[[str, int, int], None]

POSITIONS: tuple[str, ...] = ("last", "prompt_last", "post_instruction", "response_mean")
IMPLS: tuple[str, ...] = ("nnsight", "hooks")


@dataclass
class Activations:
    """Collected hidden states.

    Attributes:
        hidden: ``[n, n_layers, n_positions, d]`` float32 on the CPU.
        layers: the layer index of each second-axis entry (``L`` = last block output).
        positions: the position rule used.
        n_positions: size of the third axis (1 except for ``"post_instruction"``).
    """

    hidden: torch.Tensor
    layers: tuple[int, ...]
    positions: str

    @property
    def n_positions(self) -> int:
        return int(self.hidden.shape[2])

    def at(self, layer: int, position: int = -1) -> torch.Tensor:
        """``[n, d]`` at one layer (by layer index) and position (index into the third axis)."""
        if layer not in self.layers:
            raise KeyError(f"layer {layer} was not collected (collected: {list(self.layers)})")
        return self.hidden[:, self.layers.index(layer), position]


def nnsight_envoy(model: Any) -> Any:
    """``model`` itself when it is an nnsight model (``LanguageModel``, ``NNsight``...), else None."""
    import sys

    if "nnsight" not in sys.modules:  # nothing can be an nnsight model before nnsight is imported
        return None
    from nnsight.intervention.envoy import Envoy

    return model if isinstance(model, Envoy) else None


def unwrap(model: Any) -> nn.Module:
    """The transformers model inside a peft or nnsight wrapper (LoRA layers stay active), else the model itself."""
    envoy = nnsight_envoy(model)
    if envoy is not None:
        model = envoy._module
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def resolve_layers(model: nn.Module, layers: Sequence[int] | None) -> tuple[int, ...]:
    """Sorted distinct layer indices in ``0..L`` (negative counts from ``L + 1``); None = all.

    Raises:
        InputError: an index out of range.
    """
    n = num_layers(model)
    if layers is None:
        return tuple(range(n + 1))
    out = set()
    for layer in layers:
        index = layer + n + 1 if layer < 0 else layer
        if not 0 <= index <= n:
            raise InputError(f"layer {layer} is out of range: this model has block inputs 0..{n - 1} and the last output {n}")
        out.add(int(index))
    if not out:
        raise InputError("no layers to collect")
    return tuple(sorted(out))


@dataclass(frozen=True)
class _Row:
    ids: tuple[int, ...]
    index: tuple[int, ...]  # positions to read, in the unpadded row
    mean: bool  # average over ``index`` instead of keeping each


def _rows(
    tok: Any,
    prompts: Sequence[str],
    responses: Sequence[str] | None,
    positions: str,
    *,
    chat: bool | None,
    system_prompt: str | None,
    max_response_tokens: int,
) -> list[_Row]:
    if positions not in POSITIONS:
        raise InputError(f"positions: expected one of {', '.join(POSITIONS)}, got {positions!r}")
    if responses is not None and len(responses) != len(prompts):
        raise InputError(f"{len(prompts)} prompts but {len(responses)} responses")
    if positions == "response_mean" and responses is None:
        raise InputError("positions 'response_mean' needs responses (or use 'last' for the prompt alone)")
    encoded = encode_instructions(tok, prompts, chat=chat, system_prompt=system_prompt)
    k_post = min(e.n_post for e in encoded) if encoded else 0
    if positions == "post_instruction" and k_post < 1:
        raise InputError("positions 'post_instruction' needs a chat template (no template tokens follow the instruction)")
    rows = []
    for i, enc in enumerate(encoded):
        resp: tuple[int, ...] = ()
        if responses is not None:
            resp = tuple(tok(responses[i], add_special_tokens=False)["input_ids"])[:max_response_tokens]
        ids = enc.ids + resp
        p = len(enc.ids)
        if positions == "last":
            rows.append(_Row(ids, (len(ids) - 1,), False))
        elif positions == "prompt_last":
            rows.append(_Row(ids, (p - 1,), False))
        elif positions == "post_instruction":
            rows.append(_Row(ids, tuple(range(p - k_post, p)), False))
        else:
            rows.append(_Row(ids, tuple(range(p, len(ids))) or (p - 1,), True))
    return rows


def _gather(hidden: torch.Tensor, index: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """``hidden[b, index[b, j]]`` -> ``[batch, k, d]``, or the weighted mean over ``j`` -> ``[batch, 1, d]``."""
    picked = hidden.gather(1, index.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]).to(hidden.device))  # [b, k, d]
    if weight is None:
        return picked.float().cpu()
    w = weight.to(hidden.device, torch.float32).unsqueeze(-1)  # [b, k, 1]
    return ((picked.float() * w).sum(1, keepdim=True) / w.sum(1, keepdim=True)).cpu()


def _index(rows: Sequence[_Row]) -> tuple[torch.Tensor, torch.Tensor | None]:
    width = max(len(r.index) for r in rows)
    index = torch.zeros((len(rows), width), dtype=torch.long)
    weight = torch.zeros((len(rows), width))
    for i, r in enumerate(rows):
        index[i, : len(r.index)] = torch.tensor(r.index)
        index[i, len(r.index):] = r.index[-1]
        weight[i, : len(r.index)] = 1.0
    return index, (weight if rows[0].mean else None)


def _first_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


def _hidden_of(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def _envoy(root: Any, path: str) -> Any:
    for part in path.split("."):
        root = root[int(part)] if part.lstrip("-").isdigit() else getattr(root, part)
    return root


def _run_nnsight(model: nn.Module, inputs: dict[str, Any], layers: Sequence[int], index: torch.Tensor,
                 weight: torch.Tensor | None, traced: Any, remote: bool | str = False) -> list[torch.Tensor]:
    from nnsight import save

    n = num_layers(model)
    paths = {layer: module_path(model, min(layer, n - 1), "block") for layer in layers}
    saved: list[Any] = []
    where = {"remote": remote} if remote else {}  # only nnsight's hosted-model wrappers take the keyword
    with traced.trace(**inputs, **where) as tracer:
        for layer in layers:  # forward order: block inputs ascending, the last output at the end
            envoy = _envoy(traced, paths[layer])
            if layer < n:
                args, kwargs = envoy.inputs
                hidden = _first_input(args, kwargs)
            else:
                hidden = _hidden_of(envoy.output)
            saved.append(save(_gather(hidden, index, weight)))
        tracer.stop()  # nothing after the last collected layer is needed
    return list(saved)


def _run_hooks(model: nn.Module, inputs: dict[str, Any], layers: Sequence[int], index: torch.Tensor,
               weight: torch.Tensor | None) -> list[torch.Tensor]:
    n = num_layers(model)
    store: dict[int, torch.Tensor] = {}
    handles = []

    def pre(layer: int) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            store[layer] = _gather(_first_input(args, kwargs), index, weight)

        return hook

    def post(module: nn.Module, args: Any, output: Any) -> None:
        store[n] = _gather(_hidden_of(output), index, weight)

    try:
        for layer in layers:
            if layer < n:
                handles.append(layer_module(model, layer).register_forward_pre_hook(pre(layer), with_kwargs=True))
            else:
                handles.append(layer_module(model, n - 1).register_forward_hook(post))
        model(**inputs)
    finally:
        for h in handles:
            h.remove()
    return [store[layer] for layer in layers]


@torch.inference_mode()
def collect_activations(
    model: Any,
    tok: Any,
    prompts: Sequence[str],
    *,
    responses: Sequence[str] | None = None,
    layers: Sequence[int] | None = None,
    positions: str = "last",
    chat: bool | None = None,
    system_prompt: str | None = None,
    batch_size: int = 8,
    max_response_tokens: int = 64,
    impl: str = "nnsight",
    remote: bool | str = False,
    progress: Progress | None = None,
) -> Activations:
    """Hidden states of ``prompts`` (optionally followed by ``responses``, teacher-forced).

    Args:
        model: a causal LM (a peft model is unwrapped, its adapters active; a
            device-mapped model is used as it is), or an nnsight model
            (``LanguageModel``...), traced as it is.
        tok: its tokenizer.
        prompts: instructions (chat-templated when the tokenizer has a template, or per ``chat``).
        responses: optional responses appended after the assistant header.
        layers: layer indices (``0..L``, see the module doc); None = all.
        positions: one of :data:`POSITIONS`.
        batch_size: prompts per forward.
        max_response_tokens: response tokens kept.
        impl: ``"nnsight"`` or ``"hooks"``.
        remote: run each forward on NDIF (passed to nnsight's ``.trace(..., remote=...)``;
            ``"local"`` simulates a remote run in this process). ``model`` must then be
            nnsight's wrapper of a hosted checkpoint, e.g. ``LanguageModel(repo_id)``.
        progress: ``callback(stage, done, total)``.

    Raises:
        InputError: a bad option, a layer out of range, no prompts, ``remote`` without a hostable nnsight model.

    >>> from nnsight import LanguageModel                                           # doctest: +SKIP
    >>> hosted = LanguageModel("meta-llama/Llama-3.1-70B-Instruct")                  # doctest: +SKIP
    >>> acts = collect_activations(hosted, hosted.tokenizer, prompts, layers=[40], remote=True)  # doctest: +SKIP
    """
    if not prompts:
        raise InputError("no prompts to collect activations for")
    if impl not in IMPLS:
        raise InputError(f"impl: expected one of {', '.join(IMPLS)}, got {impl!r}")
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    envoy = nnsight_envoy(model)
    if remote:
        if impl != "nnsight":
            raise InputError(f"remote execution runs through nnsight: use impl='nnsight', not {impl!r}")
        if not callable(getattr(envoy, "to_model_key", None)):
            raise InputError(
                f"remote={remote!r}: pass nnsight's model of a hosted checkpoint (nnsight.LanguageModel(repo_id)), "
                f"not a {type(model).__name__}: a model in this process cannot run on NDIF"
            )
    lm = unwrap(model)
    chosen = resolve_layers(lm, layers)
    rows = _rows(tok, prompts, responses, positions, chat=chat, system_prompt=system_prompt,
                 max_response_tokens=max_response_tokens)
    device = model_device(lm)
    if remote or device.type == "meta":  # the server (or nnsight's own dispatch) places the inputs
        device = torch.device("cpu")
    pad = pad_id_of(tok)
    parts: list[torch.Tensor] = []
    stack = contextlib.ExitStack()
    with stack:
        traced: Any = None
        if impl == "nnsight":
            traced = envoy if envoy is not None else stack.enter_context(nnsight_model(lm))
        done = 0
        for batch_rows in chunks(rows, batch_size):
            batch = collate([Encoded(r.ids, ()) for r in batch_rows], pad_id=pad, padding_side="right")
            inputs = {**{k: v.to(device) for k, v in batch.model_inputs().items()}, "use_cache": False}
            index, weight = _index(batch_rows)
            if traced is not None:
                got = _run_nnsight(lm, inputs, chosen, index, weight, traced, remote)
            else:
                got = _run_hooks(lm, inputs, chosen, index, weight)
            parts.append(torch.stack(got, dim=1))  # [b, layers, k, d]
            done += len(batch_rows)
            if progress is not None:
                progress("collecting activations", done, len(rows))
    return Activations(torch.cat(parts, dim=0), chosen, positions)
