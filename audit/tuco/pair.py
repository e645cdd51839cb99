"""A tuned model and, for any of its blocks, the base block: from two models, a peft LoRA model, or deltas.

TuCo runs the TUNED model and, at every block ``l``, also needs the BASE block
applied to the tuned block's own input ``x_l^T``. A :class:`TunedPair` hides
where the base block comes from:

- :class:`ModelPair`: two whole models (the base model's block ``l``).
- :class:`PeftPair`: a peft LoRA model; the base block is the same block with
  its adapter layers switched off for that one call (no second copy of any weight).
- :class:`DeltaPair`: the base model plus :class:`~audit.tuned.TunedWeights`
  (an editkit edit, a full fine-tune read tensor by tensor, a LoRA adapter
  folder, or an in-memory ``name -> delta`` mapping). The tuned parameters are
  swapped in as new tensors (one copy of the *changed* tensors only); the base
  block puts that block's original parameters back for its call. The model's
  own tensors are never written to, so nothing needs reverting.

:func:`tuned_pair` picks the right one.

>>> pair = tuned_pair(base, tuned)                       # doctest: +SKIP
>>> with pair.tuned() as model:                          # the tuned model
...     out = model(input_ids)                           # doctest: +SKIP
>>> y_base = pair.base_block(3, args, kwargs)            # base block 3 on the same inputs  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from audit.tuned import DeltaWeights, TunedWeights
from audit.tuned.base import param_table, tied_groups
from editkit.arch import get_arch, layer_module, model_type_of, num_layers
from editkit.errors import InputError

BlockCall = Callable[..., Any]
"""Something that runs a block: the module itself, or nnsight's envoy of it (an ad-hoc call)."""


class TunedPair(ABC):
    """The tuned model to run, and the base block ``l`` on any inputs of the tuned block ``l``.

    Attributes:
        model: the module whose forward is the tuned model (inside :meth:`tuned`);
            its decoder blocks are the ones hooked or traced.
        kind: ``"models"``, ``"peft"`` or ``"deltas"``.
    """

    kind: ClassVar[str] = ""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.num_layers = num_layers(model)

    @contextlib.contextmanager
    def tuned(self) -> Iterator[nn.Module]:
        """``with pair.tuned() as m:`` ``m`` computes the tuned model."""
        yield self.model

    @abstractmethod
    def base(self) -> contextlib.AbstractContextManager[nn.Module]:
        """``with pair.base() as m:`` ``m`` computes the base model (for OutputCo's second pass)."""

    @abstractmethod
    def base_block(
        self, layer: int, args: tuple[Any, ...], kwargs: dict[str, Any], call: BlockCall | None = None
    ) -> Any:
        """The base block ``layer`` on the inputs the tuned block ``layer`` received.

        Args:
            layer: block index.
            args, kwargs: the tuned block's call arguments, as received (hidden states first).
            call: how to call the tuned model's block ``layer`` (default: the module;
                the nnsight runner passes the block's envoy so that the call is ad hoc).

        Returns:
            Whatever the block returns (a tensor, or a tuple whose first item is the hidden state).
        """

    def block(self, layer: int) -> nn.Module:
        """The tuned model's decoder block ``layer``."""
        return layer_module(self.model, layer)

    def sharing(self) -> contextlib.AbstractContextManager[Any]:
        """``with pair.sharing():`` around a forward whose every block is followed by :meth:`base_block`.

        Lets a pair reuse, in the base call, work the tuned call of the same
        block already did (only where the result is provably the same). The
        default shares nothing.
        """
        return contextlib.nullcontext()


class ModelPair(TunedPair):
    """Two whole models of the same architecture: the tuned one runs, the base one lends its blocks.

    Args:
        base: the base model.
        tuned: the tuned model (may be the same object: every FTC is then exactly 0).

    Raises:
        InputError: the two differ in architecture, depth, or parameter names/shapes.
    """

    kind = "models"

    def __init__(self, base: nn.Module, tuned: nn.Module) -> None:
        super().__init__(tuned)
        self.base_model = base
        check_same_architecture(base, tuned)

    @contextlib.contextmanager
    def base(self) -> Iterator[nn.Module]:
        yield self.base_model

    def base_block(
        self, layer: int, args: tuple[Any, ...], kwargs: dict[str, Any], call: BlockCall | None = None
    ) -> Any:
        block: BlockCall = layer_module(self.base_model, layer)
        if call is not None and block is self.block(layer):
            block = call  # one model given twice: call it the runner's way (nnsight: ad hoc)
        return block(*args, **kwargs)


def check_same_architecture(base: nn.Module, tuned: nn.Module) -> None:
    """:class:`InputError` unless two models share ``model_type``, depth and every parameter shape."""
    kinds = (model_type_of(base), model_type_of(tuned))
    if kinds[0] != kinds[1]:
        raise InputError(f"tuco: the base model is a {kinds[0]!r} but the tuned model a {kinds[1]!r}; pass two models of one architecture")
    depth = (num_layers(base), num_layers(tuned))
    if depth[0] != depth[1]:
        raise InputError(f"tuco: the base model has {depth[0]} blocks but the tuned model {depth[1]}")
    shapes = {n: tuple(p.shape) for n, p in base.named_parameters()}
    other = {n: tuple(p.shape) for n, p in tuned.named_parameters()}
    if shapes != other:
        diff = sorted(set(shapes) ^ set(other)) or [n for n in shapes if shapes[n] != other[n]]
        raise InputError(f"tuco: the two models' parameters differ in names or shapes (e.g. {diff[:3]}); pass a tuned copy of the base model")


def _adapter_layer_types() -> tuple[type, ...]:
    from peft.tuners.tuners_utils import BaseTunerLayer
    from peft.utils.other import AuxiliaryTrainingWrapper

    return (BaseTunerLayer, AuxiliaryTrainingWrapper)


def adapter_layers(module: nn.Module) -> list[nn.Module]:
    """The peft adapter layers (LoRA layers, ``modules_to_save`` wrappers) inside ``module``."""
    types = _adapter_layer_types()
    return [m for m in module.modules() if isinstance(m, types)]


@contextlib.contextmanager
def adapters_disabled(module: nn.Module) -> Iterator[nn.Module]:
    """``with adapters_disabled(block):`` the peft adapter layers inside ``module`` only are off.

    peft's own switch (``enable_adapters``) also resets ``requires_grad`` of the
    adapter weights; the flags are restored exactly afterwards. Layers already
    disabled stay disabled.
    """
    layers = [m for m in adapter_layers(module) if not m.disable_adapters]
    grads = [(p, p.requires_grad) for p in module.parameters()]
    for m in layers:
        m.enable_adapters(False)  # type: ignore[operator]
    try:
        yield module
    finally:
        for m in layers:
            m.enable_adapters(True)  # type: ignore[operator]
        for p, flag in grads:
            p.requires_grad_(flag)


class PeftPair(TunedPair):
    """A peft LoRA model: the base block is the same block with its adapters off for one call.

    Args:
        model: a ``PeftModel`` (its wrapped model runs) or a model with peft
            adapter layers injected.

    Raises:
        InputError: no adapter layers, or merged adapters (the base weights are gone then).
    """

    kind = "peft"

    def __init__(self, model: nn.Module) -> None:
        get_base = getattr(model, "get_base_model", None)
        inner = get_base() if callable(get_base) else model
        layers = adapter_layers(inner)
        if not layers:
            raise InputError("tuco: the peft model has no adapter layers")
        if any(getattr(m, "merged", False) for m in layers):
            raise InputError(
                "tuco: the peft adapter is merged into the base weights, so the base blocks are gone; "
                "unmerge it (model.unmerge_adapter()) or pass the base and merged models as a pair"
            )
        super().__init__(inner)
        self.peft_model = model
        self.memo: ProjectionMemo | None = None

    @contextlib.contextmanager
    def base(self) -> Iterator[nn.Module]:
        with adapters_disabled(self.model):
            yield self.model

    def base_block(
        self, layer: int, args: tuple[Any, ...], kwargs: dict[str, Any], call: BlockCall | None = None
    ) -> Any:
        block = self.block(layer)
        try:
            with adapters_disabled(block):
                return (call if call is not None else block)(*args, **kwargs)
        finally:
            if self.memo is not None:
                self.memo.forget()

    @contextlib.contextmanager
    def sharing(self) -> Iterator[ProjectionMemo]:
        """Within: a base block reuses the frozen projections its tuned call computed on the same input.

        See :class:`ProjectionMemo`. Meant for a forward in which every tuned
        block is followed by its :meth:`base_block` call (TuCo's hook runner);
        nesting is refused.
        """
        if self.memo is not None:
            raise RuntimeError("tuco: PeftPair.sharing() is already active")
        memo = ProjectionMemo(self.model)
        self.memo = memo
        try:
            with memo.installed():
                yield memo
        finally:
            self.memo = None


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same shape, dtype, device and bit pattern (``-0.0`` differs from ``0.0``; NaNs compare by their bits)."""
    if a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
        return False
    if a.is_floating_point() and a.element_size() in (2, 4, 8):
        view = {2: torch.int16, 4: torch.int32, 8: torch.int64}[a.element_size()]
        return torch.equal(a.contiguous().view(view), b.contiguous().view(view))
    return torch.equal(a, b)


class ProjectionMemo:
    """The frozen base-layer products of a block's LoRA layers, computed in the tuned call, reused in the base call.

    A LoRA layer computes ``W x + B A x``; the base block, with the adapter
    off, computes ``W x'``. When ``x' == x`` exactly (the projections that read
    the block's normalized input, ``q``/``k``/``v`` in a Llama block, see the
    same values in both calls) the base call gets the tuned call's ``W x``
    instead of recomputing it. Every other layer's input differs between the
    two calls (it depends on the adapter) and is computed as usual. A reuse
    needs the same bits (compared as integers), so the numbers are exactly the
    unshared ones. Only plain LoRA layers take part (no DoRA or other variants,
    no merged layers, no extra call arguments).

    Attributes:
        served: how many base-layer products were reused so far.
    """

    def __init__(self, model: nn.Module) -> None:
        self.layers = [m for m in adapter_layers(model) if _plain_lora(m)]
        self.saved: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.served = 0

    @contextlib.contextmanager
    def installed(self) -> Iterator[ProjectionMemo]:
        """Within: every plain LoRA layer's base layer remembers (tuned call) or reuses (base call) its product."""
        wrapped: list[tuple[Any, Any]] = []
        missing = object()
        try:
            for layer in self.layers:
                base: Any = layer.base_layer
                own = base.__dict__.get("forward", missing)  # e.g. accelerate's hook wrapper: kept, and called
                base.forward = self._forward(layer, base.forward)
                wrapped.append((base, own))
            yield self
        finally:
            for base, own in reversed(wrapped):
                if own is missing:
                    del base.forward  # the class's forward again
                else:
                    base.forward = own
            self.forget()

    def forget(self) -> None:
        """Drop what the last tuned block left (called after each base block)."""
        self.saved.clear()

    def _forward(self, layer: nn.Module, inner: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        key = id(layer)

        def forward(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
            if args or kwargs:
                return inner(x, *args, **kwargs)
            if layer.disable_adapters:  # the base call
                hit = self.saved.pop(key, None)
                if hit is not None and _same_bits(hit[0], x):
                    self.served += 1
                    return hit[1]
                return inner(x)
            out = inner(x)  # the tuned call: LoRA adds B A x to a new tensor, ``out`` is not written to
            self.saved[key] = (x, out)
            return out

        return forward


def _plain_lora(module: nn.Module) -> bool:
    """A peft LoRA ``Linear`` (also GPT-2's Conv1D) without variants, unmerged: ``W x + B A x`` with ``W x`` untouched."""
    from peft.tuners.lora.layer import Linear as LoraLinear

    return (
        isinstance(module, LoraLinear)
        and not getattr(module, "lora_variant", {})
        and not getattr(module, "merged", False)
        and isinstance(getattr(module, "base_layer", None), nn.Module)
    )


@contextlib.contextmanager
def swapped_parameters(
    model: nn.Module, values: Mapping[str, torch.Tensor], groups: Mapping[str, tuple[str, ...]] | None = None
) -> Iterator[nn.Module]:
    """``with swapped_parameters(model, {name: tensor}):`` those parameters are other tensors inside the block.

    The module attributes are pointed at new ``nn.Parameter`` s (a given
    ``nn.Parameter`` is used as is) and pointed back afterwards: the original
    tensors are never written to. Every tied alias of a name is swapped with it.

    Args:
        model: the root module (names are its ``named_parameters`` names).
        values: name -> replacement (same shape; used as given: dtype and device included).
        groups: :func:`audit.tuned.base.tied_groups` of ``model``, if already computed.
    """
    aliases = groups if groups is not None else tied_groups(model)
    saved: list[tuple[nn.Module, str, Any]] = []
    try:
        for name, value in values.items():
            param = value if isinstance(value, nn.Parameter) else nn.Parameter(value, requires_grad=False)
            for alias in aliases.get(name, (name,)):
                owner, _, leaf = alias.rpartition(".")
                module = model.get_submodule(owner)
                saved.append((module, leaf, module._parameters[leaf]))
                module._parameters[leaf] = param
        yield model
    finally:
        for module, leaf, old in reversed(saved):
            module._parameters[leaf] = old


class DeltaPair(TunedPair):
    """The base model plus tuned weights (any :class:`~audit.tuned.TunedWeights`), without a second model.

    The tuned value of every changed parameter is computed once (``W_tuned``
    in the parameter's dtype: ``(W0.float() + dW).to(dtype)`` for deltas, the
    stored tensor for full checkpoints -- the same numbers
    :func:`audit.mitigate.applied_weights` writes) and swapped in by
    :meth:`tuned`; :meth:`base_block` swaps block ``l``'s original parameters
    back for its one call. Memory: one copy of the changed tensors.

    Args:
        base: the base model (never written to).
        weights: tuned weights read against ``base``.

    Raises:
        InputError: ``weights`` were read against another model.
    """

    kind = "deltas"

    def __init__(self, base: nn.Module, weights: TunedWeights) -> None:
        super().__init__(base)
        if weights.base is not base:
            raise InputError("tuco: the tuned weights were read against another model; load them against the base model passed here")
        self.weights = weights
        params = param_table(base)
        self._groups = tied_groups(base)
        self._originals = {name: params[name] for name in weights}
        self._tuned = {
            name: weights.weight(name).to(device=params[name].device, dtype=params[name].dtype)
            for name in weights
        }
        prefix = get_arch(base).layers
        self._per_block: list[dict[str, nn.Parameter]] = [
            {n: p for n, p in self._originals.items() if n.startswith(f"{prefix}.{layer}.")}
            for layer in range(self.num_layers)
        ]

    @contextlib.contextmanager
    def tuned(self) -> Iterator[nn.Module]:
        with swapped_parameters(self.model, self._tuned, self._groups):
            yield self.model

    @contextlib.contextmanager
    def base(self) -> Iterator[nn.Module]:
        with swapped_parameters(self.model, self._originals, self._groups):
            yield self.model

    def base_block(
        self, layer: int, args: tuple[Any, ...], kwargs: dict[str, Any], call: BlockCall | None = None
    ) -> Any:
        with swapped_parameters(self.model, self._per_block[layer], self._groups):
            return (call if call is not None else self.block(layer))(*args, **kwargs)


def is_peft_model(model: nn.Module) -> bool:
    """Whether ``model`` is a ``PeftModel`` or holds peft adapter layers."""
    from peft import PeftModel

    return isinstance(model, PeftModel) or bool(adapter_layers(model))


def tuned_pair(base: nn.Module | None, tuned: Any) -> TunedPair:
    """The :class:`TunedPair` for whatever ``tuned`` is.

    Args:
        base: the base model (None when ``tuned`` is a peft model, whose base is inside it).
        tuned: a :class:`TunedPair` (returned as is); a peft model; a whole tuned
            ``nn.Module``; :class:`~audit.tuned.TunedWeights`; an ``EditResult``
            (its ``deltas``); or a ``name -> delta`` mapping.

    Raises:
        InputError: a combination that does not describe one base and one tuned model.

    >>> pair = tuned_pair(base, load_tuned(base, "runs/edit"))     # doctest: +SKIP
    >>> pair = tuned_pair(None, peft_model)                         # doctest: +SKIP
    """
    if isinstance(tuned, TunedPair):
        return tuned
    if isinstance(tuned, nn.Module) and is_peft_model(tuned):
        pair = PeftPair(tuned)
        if base is not None and base is not pair.model and base is not tuned:
            raise InputError(
                "tuco: a peft model carries its own base weights (adapters off); pass base=None "
                "or the model the adapter was loaded onto"
            )
        return pair
    if base is None:
        raise InputError("tuco: a base model is needed unless the tuned model is a peft model")
    if isinstance(tuned, nn.Module):
        return ModelPair(base, tuned)
    # A DeltaPair, or its variant for offloaded weights (that module imports this one).
    from audit.tuco.offloaded import delta_pair

    if isinstance(tuned, TunedWeights):
        return delta_pair(base, tuned)
    deltas = getattr(tuned, "deltas", tuned)
    if isinstance(deltas, Mapping):
        return delta_pair(base, DeltaWeights(base, deltas))
    raise InputError(
        f"tuco: cannot use a {type(tuned).__name__} as the tuned model; pass a model, a peft model, "
        "TunedWeights (audit.tuned.load_tuned), an EditResult or a name -> delta mapping"
    )
