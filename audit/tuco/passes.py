"""One forward of the tuned model with every block split into PTC and FTC (and optionally steered).

At block ``l`` with input ``x_l`` (the tuned stream) and tuned output ``y_l``,
the base block runs on the same inputs (``b_l``); then, in fp32::

    PTC_l = b_l - x_l        FTC_l = y_l - b_l        x_{l+1} = x_l + PTC_l + alpha * FTC_l

(``alpha = 1`` leaves the tuned output untouched, bit for bit). Two runners do
this, sharing the arithmetic of :class:`Recorder`:

- ``"hooks"`` (the reference): a forward hook on every decoder block (with
  kwargs) calls the base block and returns the steered output.
- ``"nnsight"``: the same in an nnsight trace (``NNsight(model)``): each
  block's ``.inputs`` and ``.output`` are read in forward order, the base block
  is an ad-hoc call of the block's envoy (the trace stands down for it), and
  ``.output`` is replaced when steering.

A LoRA pair run by the hook runner computes the frozen products that the
tuned and base calls of a block share (the ``q``/``k``/``v`` projections of the
same normalized input) once: :class:`~audit.tuco.pair.ProjectionMemo`.

The forward runs without a KV cache (``use_cache=False``): a block called twice
would append to the cache twice.

>>> rec = Recorder(pair, positions=batch.last)                       # doctest: +SKIP
>>> get_runner("hooks").forward(pair, model, inputs, rec)            # doctest: +SKIP
>>> rec.stacked()["ftc"].shape     # [layers, batch, hidden]         # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from audit.tuco.pair import BlockCall, TunedPair
from editkit.arch import layer_module, module_path, num_layers
from editkit.errors import InputError
from editkit.localize.causal_trace import nnsight_model


def first_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
    """The hidden states a decoder block was called with (first positional, else ``hidden_states=``)."""
    return args[0] if args else kwargs["hidden_states"]


def hidden_of(output: Any) -> torch.Tensor:
    """The hidden states in a block's output (a tensor, or the first item of a tuple)."""
    return output[0] if isinstance(output, tuple) else output


def with_hidden(output: Any, hidden: torch.Tensor) -> Any:
    """``output`` with its hidden states replaced (same structure)."""
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


class Recorder:
    """What one forward of the tuned model records per block, and the steering rule.

    Args:
        pair: where the base blocks come from.
        positions: ``[batch]`` column per row to record (the last prompt
            token), or None to record every position.
        alpha: the FTC scale of the steered stream (1: the tuned model).
        record: False to only steer (generation): nothing is kept, and with
            ``alpha == 1`` no base block runs at all.

    Attributes:
        x: ``x_l`` per block, fp32, ``[batch, hidden]`` (``[batch, seq, hidden]`` for all positions).
        ptc, ftc: ``PTC_l`` / ``FTC_l`` per block, same shapes.
        final: the last block's (steered) output ``x_L``, same shape.
    """

    def __init__(
        self, pair: TunedPair, *, positions: torch.Tensor | None, alpha: float = 1.0, record: bool = True
    ) -> None:
        self.pair = pair
        self.positions = positions
        self.alpha = float(alpha)
        self.record = record
        n = pair.num_layers
        self.x: list[torch.Tensor | None] = [None] * n
        self.ptc: list[torch.Tensor | None] = [None] * n
        self.ftc: list[torch.Tensor | None] = [None] * n
        self.final: torch.Tensor | None = None

    @property
    def needs_base(self) -> bool:
        """Whether :meth:`step` calls the base block (recording, or steering with ``alpha != 1``)."""
        return self.record or self.alpha != 1.0

    def _select(self, t: torch.Tensor) -> torch.Tensor:  # [batch, seq, hidden] -> recorded view
        if self.positions is None:
            return t.detach().clone()
        rows = torch.arange(t.shape[0], device=t.device)
        return t[rows, self.positions.to(t.device)].detach().clone()

    def step(
        self, layer: int, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any, call: BlockCall | None = None
    ) -> Any | None:
        """Decompose block ``layer``'s call; the replacement output when steering, else None."""
        if not self.needs_base:
            return None
        x = first_input(args, kwargs)  # [batch, seq, hidden]
        y = hidden_of(output)
        b = hidden_of(self.pair.base_block(layer, args, kwargs, call))
        x32, b32, y32 = x.float(), b.float(), y.float()
        ptc = b32 - x32
        ftc = y32 - b32
        replacement = None
        if self.alpha != 1.0:
            y = (x32 + ptc + self.alpha * ftc).to(y.dtype)
            replacement = with_hidden(output, y)
        if self.record:
            self.x[layer], self.ptc[layer], self.ftc[layer] = self._select(x32), self._select(ptc), self._select(ftc)
            if layer == self.pair.num_layers - 1:
                self.final = self._select(y.float())
        return replacement

    def stacked(self) -> dict[str, torch.Tensor]:
        """``{"x": [layers + 1, ...], "ptc": [layers, ...], "ftc": [layers, ...]}`` (``x`` ends with ``x_L``).

        Raises:
            RuntimeError: some block did not run (the forward stopped early).
        """
        if self.final is None or any(t is None for t in (*self.x, *self.ptc, *self.ftc)):
            raise RuntimeError("tuco: not every decoder block ran during the forward")
        return {
            "x": torch.stack([*self.x, self.final]),  # type: ignore[list-item]
            "ptc": torch.stack(self.ptc),  # type: ignore[arg-type]
            "ftc": torch.stack(self.ftc),  # type: ignore[arg-type]
        }


def forward_kwargs(model: nn.Module, *, last_logits_only: bool) -> dict[str, Any]:
    """``use_cache=False``, plus ``logits_to_keep=1`` where the model takes it and only the last column matters."""
    extra: dict[str, Any] = {"use_cache": False}
    if last_logits_only and "logits_to_keep" in inspect.signature(type(model).forward).parameters:
        extra["logits_to_keep"] = 1
    return extra


class HookRunner:
    """The reference runner: a forward hook (with kwargs) on every decoder block."""

    name = "hooks"

    def forward(self, pair: TunedPair, model: nn.Module, inputs: dict[str, Any], recorder: Recorder) -> Any:
        """``model(**inputs)`` with every block decomposed by ``recorder``; the model's output.

        Each tuned block is followed at once by its base block, so the pair may
        share work between the two calls (:meth:`TunedPair.sharing`: a LoRA
        pair computes the frozen ``q``/``k``/``v`` products once).
        """
        sharing = pair.sharing() if recorder.needs_base else contextlib.nullcontext()
        with sharing, self._hooked(pair, model, recorder):
            return model(**inputs)

    def final_hidden(self, model: nn.Module, inputs: dict[str, Any]) -> torch.Tensor:
        """The last decoder block's output (before the final norm), ``[batch, seq, hidden]``."""
        store: dict[str, torch.Tensor] = {}

        def keep(module: nn.Module, args: Any, output: Any) -> None:
            store["h"] = hidden_of(output)

        handle = layer_module(model, -1).register_forward_hook(keep)
        try:
            model(**inputs)
        finally:
            handle.remove()
        return store["h"]

    @contextlib.contextmanager
    def _hooked(self, pair: TunedPair, model: nn.Module, recorder: Recorder) -> Iterator[None]:
        busy = False  # the base block may be this very module (peft, deltas): no recursion

        def make(layer: int) -> Any:
            def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> Any:
                nonlocal busy
                if busy:
                    return None
                busy = True
                try:
                    return recorder.step(layer, args, kwargs, output, call=module)
                finally:
                    busy = False

            return hook

        handles = [
            layer_module(model, layer).register_forward_hook(make(layer), with_kwargs=True)
            for layer in range(pair.num_layers)
        ]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()


class NNsightRunner:
    """The same decomposition written as an nnsight trace (``NNsight(model)``, nnsight 0.8)."""

    name = "nnsight"

    def forward(self, pair: TunedPair, model: nn.Module, inputs: dict[str, Any], recorder: Recorder) -> Any:
        from nnsight import save

        paths = [module_path(model, layer, "block") for layer in range(pair.num_layers)]
        with nnsight_model(model) as traced, traced.trace(**inputs):
            for layer, path in enumerate(paths):  # forward order
                envoy = traced.get(path)
                args, kwargs = envoy.inputs
                replacement = recorder.step(layer, args, kwargs, envoy.output, call=envoy)
                if replacement is not None:
                    envoy.output = replacement
            output = save(traced.output)
        return output

    def final_hidden(self, model: nn.Module, inputs: dict[str, Any]) -> torch.Tensor:
        from nnsight import save

        path = module_path(model, num_layers(model) - 1, "block")
        with nnsight_model(model) as traced, traced.trace(**inputs):
            hidden = save(hidden_of(traced.get(path).output))
        return hidden


RUNNERS: dict[str, HookRunner | NNsightRunner] = {"hooks": HookRunner(), "nnsight": NNsightRunner()}
"""The implementations, by name: ``hooks`` (reference) and ``nnsight``."""


def get_runner(name: str) -> HookRunner | NNsightRunner:
    """The runner called ``name``.

    Raises:
        InputError: an unknown name.
    """
    if name not in RUNNERS:
        raise InputError(f"tuco: unknown implementation {name!r}; choose one of {', '.join(RUNNERS)}")
    return RUNNERS[name]
