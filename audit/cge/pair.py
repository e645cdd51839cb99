"""The two sides of the contrast: the tuned model T and the (possibly updated) base model B'.

A :class:`ContrastPair` holds two :class:`LMView` objects, callables that run
a causal-LM forward. How the tuned side is built depends on what it is, so
that two whole models sit in memory only when they must:

- a second model (``nn.Module``): two copies, as given;
- a full fine-tune: the tuned tensors substituted into the base model for
  each forward (``torch.func.functional_call``): one extra copy of the
  weights, which a full pair costs anyway;
- an editkit edit or in-memory deltas: only the changed tensors are
  substituted, so the extra memory is that of the edited matrices. (Applying
  and reverting the deltas in place around every decoding step would also
  work, but costs two full passes over the changed tensors per step);
- a peft LoRA adapter: peft wraps the base model in place for the duration of
  the block (adapter weights only) and the base side runs inside
  ``disable_adapter()``; on exit the adapter is unloaded and the base model is
  exactly as before (same modules, same tensors, same ``requires_grad``).
  When a device map offloads one of the adapted weights, the adapter is merged
  into dense deltas and substituted like an edit's instead.

Under a device map, tuned values of offloaded parameters are handed to the
offload hooks (:func:`editkit.placement.offloaded_values`) rather than
substituted, since the hooks reload the stored weights at every call.

The base side is the base model itself, or a ``reference`` model (the working
copy ``B'`` of iterative CGE).

>>> with contrast_pair(base, "runs/lora", tok) as pair:          # doctest: +SKIP
...     logits_t = pair.tuned(input_ids=ids).logits
...     logits_b = pair.base(input_ids=ids).logits
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from audit.tuned import TunedWeights, detect_kind, load_tuned
from audit.tuned.base import param_table, tied_groups
from editkit.batching import model_device
from editkit.errors import InputError
from editkit.placement import offloaded_values, split_offloaded

TunedSpec = nn.Module | TunedWeights | str | Path
"""What may stand for the tuned model: a second model, tuned weights, or a path to them."""

TOKENIZER_FILES: tuple[str, ...] = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


class LMView:
    """A causal-LM forward: ``module(**inputs)``, with substituted weights and/or inside a context.

    Args:
        module: the model whose forward runs.
        weights: parameter name -> tensor substituted for this forward only
            (``torch.func.functional_call``; tied aliases follow).
        context: a factory of the context manager the forward runs in
            (peft's ``disable_adapter``).
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        weights: dict[str, torch.Tensor] | None = None,
        context: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
    ) -> None:
        self.module = module
        self.weights = weights or None
        self.context = context

    def __call__(self, **inputs: Any) -> Any:
        with self.context() if self.context is not None else contextlib.nullcontext():
            if self.weights is not None:
                return torch.func.functional_call(
                    self.module, self.weights, (), inputs, tie_weights=True, strict=False
                )
            return self.module(**inputs)


@dataclass
class ContrastPair:
    """The tuned side and the base side of the contrast, and how to call them.

    Attributes:
        tuned: the tuned model's forward.
        base: the base model's (or the working copy's) forward.
        kind: how the tuned side was built: ``"module"``, ``"full"``, ``"edit"``,
            ``"deltas"`` or ``"lora"``.
        cache_key: the keyword of the KV cache in the model's forward
            (``cache`` or ``past_key_values``: transformers renamed it in 5.x).
        logits_to_keep: the forward accepts ``logits_to_keep`` (only the last
            position's logits are computed during decoding).
        device: where inputs go.
    """

    tuned: LMView
    base: LMView
    kind: str
    cache_key: str
    logits_to_keep: bool
    device: torch.device


def forward_keywords(model: nn.Module) -> tuple[str, bool]:
    """``(cache keyword, accepts logits_to_keep)`` of a transformers causal LM's forward."""
    params = inspect.signature(model.forward).parameters
    key = "cache" if "cache" in params else "past_key_values"
    return key, "logits_to_keep" in params


def vocab_width(model: nn.Module) -> int | None:
    """Rows of the unembedding (the logits' width), None when the model has none to read."""
    get_out = getattr(model, "get_output_embeddings", None)
    out = get_out() if callable(get_out) else None
    weight = getattr(out, "weight", None)
    return int(weight.shape[0]) if isinstance(weight, torch.Tensor) else None


def check_same_tokenizer(tok: Any, other: Any, where: str) -> None:
    """:class:`InputError` unless two tokenizers have the same vocabulary and BOS/EOS ids.

    >>> check_same_tokenizer(tok, tok, "here")      # doctest: +SKIP
    """
    if tok is None or other is None or tok is other:
        return
    if tok.get_vocab() != other.get_vocab():
        raise InputError(
            f"{where}: the tuned model's tokenizer differs from the base model's "
            f"({len(other.get_vocab())} vs {len(tok.get_vocab())} tokens, or other ids); "
            "CGE compares the two models token by token, so both must share one tokenizer"
        )
    for attr in ("bos_token_id", "eos_token_id"):
        if getattr(tok, attr, None) != getattr(other, attr, None):
            raise InputError(
                f"{where}: the tuned model's tokenizer has {attr}={getattr(other, attr, None)} but the "
                f"base model's has {getattr(tok, attr, None)}; both models must share one tokenizer"
            )


def stored_tokenizer(path: str | Path) -> Any:
    """The tokenizer saved next to tuned weights (a model or adapter folder), or None."""
    folder = Path(path)
    if folder.is_file():
        folder = folder.parent
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        return None
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder))
    except Exception as exc:  # transformers raises many kinds of errors for a broken folder
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{folder}: the tokenizer saved there cannot be read ({msg})") from None


def tuned_overrides(base: nn.Module, tuned: TunedWeights) -> dict[str, torch.Tensor]:
    """Tuned values of the changed parameters, in each parameter's dtype, one name per tied group.

    A full checkpoint's tensors are taken as stored; deltas are added to the
    base weight in fp32. Two deltas for aliases of one tied tensor add up (as
    applying them in place would).
    """
    params = param_table(base)
    groups = tied_groups(base)
    out: dict[str, torch.Tensor] = {}
    for name in tuned:
        key = groups[name][0]
        dtype = params[key].dtype
        if key in out:
            out[key] = (out[key].float() + tuned.delta(name)).to(dtype)
        else:
            out[key] = tuned.weight(name).to(dtype)
    return out


def _check_module_pair(base: nn.Module, tuned: nn.Module) -> None:
    wb, wt = vocab_width(base), vocab_width(tuned)
    if wb is not None and wt is not None and wb != wt:
        raise InputError(
            f"the tuned model has {wt} output tokens but the base model has {wb}; "
            "CGE needs two models with the same vocabulary"
        )


@contextlib.contextmanager
def _peft_adapter(base: nn.Module, path: Path) -> Iterator[Any]:
    """``PeftModel.from_pretrained(base, path)`` for the block only; the base model is restored on exit."""
    from audit.tuned.lora import load_peft_adapter

    flags = {name: p.requires_grad for name, p in base.named_parameters()}
    was_training = base.training
    model = load_peft_adapter(base, path)  # a pickle-only adapter is refused (LoraAdapter read it first anyway)
    model.eval()
    try:
        yield model
    finally:
        model.unload()
        for name, p in base.named_parameters():
            p.requires_grad_(flags.get(name, p.requires_grad))
        base.train(was_training)


@contextlib.contextmanager
def contrast_pair(
    base: nn.Module,
    tuned: TunedSpec,
    tok: Any = None,
    *,
    reference: nn.Module | None = None,
    tuned_tokenizer: Any = None,
) -> Iterator[ContrastPair]:
    """The tuned and base forwards for the block (see the module docstring for the memory cost).

    Args:
        base: the base model (never modified; a LoRA adapter wraps it only inside the block).
        tuned: a second model, :class:`~audit.tuned.TunedWeights`, or a path
            :func:`audit.tuned.load_tuned` reads (full fine-tune, peft LoRA
            adapter, editkit edit).
        tok: the base model's tokenizer, compared with ``tuned_tokenizer`` or
            with the tokenizer saved next to the tuned weights.
        reference: the model on the base side instead of ``base`` (the working
            copy ``B'`` of iterative CGE).
        tuned_tokenizer: the tuned model's tokenizer, when not saved with it.

    Raises:
        InputError: tuned weights that do not fit the base model, or a tokenizer
            or vocabulary that differs.
    """
    cache_key, keep = forward_keywords(base)
    device = model_device(base)
    base_view = LMView(reference if reference is not None else base)
    check_same_tokenizer(tok, tuned_tokenizer, "tuned model")
    if isinstance(tuned, nn.Module):
        _check_module_pair(base, tuned)
        yield ContrastPair(LMView(tuned), base_view, "module", cache_key, keep, device)
        return
    if isinstance(tuned, TunedWeights):
        weights, path = tuned, tuned.path
    else:
        kind, path = detect_kind(tuned)
        weights = load_tuned(base, path, kind=kind)  # checks names and shapes, reads headers only
    if path is not None and tuned_tokenizer is None:
        check_same_tokenizer(tok, stored_tokenizer(path), str(path))
    offloaded = split_offloaded(base, dict.fromkeys(weights))[1]  # tied aliases count
    if weights.kind == "lora" and path is not None and not offloaded:
        with _peft_adapter(base, path) as peft_model:
            if reference is None:
                base_view = LMView(base, context=peft_model.disable_adapter)
            yield ContrastPair(LMView(peft_model), base_view, "lora", cache_key, keep, device)
        return
    # offloaded parameters (a device map): their hooks would reload the stored values over a substitution;
    # an on-device alias of an offloaded tied weight is substituted as well
    overrides, hooked = split_offloaded(base, tuned_overrides(base, weights))
    stored = {name: value.to("cpu") for name, value in hooked.items()}
    context = (lambda: offloaded_values(base, stored)) if stored else None
    yield ContrastPair(LMView(base, weights=overrides, context=context), base_view, weights.kind, cache_key, keep,
                       device)
