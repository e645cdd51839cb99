"""Run only the top of the network: the hidden states entering a block, computed once.

When an editor tunes parameters of block ``L`` and everything below is frozen,
the residual stream entering block ``L`` is the same for a given sequence in
every epoch. :class:`PrefixCache` computes it once per sequence (unpadded, so
any later batch composition can reuse it) and :meth:`PrefixCache.forward`
runs blocks ``L..N-1``, the final norm and the unembedding on it.

How: inside :meth:`PrefixCache.active`, blocks ``0..L-1`` are swapped for
pass-through modules and a pre-hook on block ``L`` substitutes the cached
states for its input. Embeddings, position embeddings and attention masks are
still built by the model itself (cheap), so this works for any architecture
in :mod:`editkit.arch` without re-implementing its forward. A test checks the
logits equal a full forward.

The states are kept flat in a :class:`~editkit.editors.hidden_store.HiddenStore`:
in memory on the device block ``L`` computes on (with a device map, the tuned
block's device, not the embeddings'), or, above ``memory_budget`` bytes, in a
temporary file from which each batch reads only its own rows (so memory is
bounded by the batch, not by the number of sequences).

>>> cache = PrefixCache.build(model, encoded, layer=20, pad_id=tok.pad_token_id)  # doctest: +SKIP
>>> with cache.active(model):                                                   # doctest: +SKIP
...     logits = cache.forward(model, [0, 3, 5])                                # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from editkit.arch import get_arch, get_module, module_path, num_layers
from editkit.batching import Batch, Encoded, chunks, collate, model_device
from editkit.editors.hidden_store import HiddenStore, TokenStore, sequence_lengths
from editkit.lm import StopForward
from editkit.placement import module_device


class _PassThrough(nn.Module):
    """Stands in for a skipped block: returns its input hidden states unchanged."""

    def __init__(self, as_tuple: bool) -> None:
        super().__init__()
        self.as_tuple = as_tuple

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        hidden = args[0] if args else kwargs["hidden_states"]
        return (hidden,) if self.as_tuple else hidden


def _substitute(args: tuple[Any, ...], kwargs: dict[str, Any], hidden: torch.Tensor) -> tuple[Any, Any]:
    if args:
        return (hidden, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": hidden}


@dataclass
class PrefixCache:
    """Per-sequence hidden states entering block ``layer`` (``[T_i, d]`` each, fp32; see :class:`HiddenStore`)."""

    layer: int
    encoded: Sequence[Encoded]
    states: HiddenStore
    pad_id: int
    block_returns_tuple: bool
    _current: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    #: where block ``layer`` computes: the states are kept and handed over there
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @classmethod
    @torch.no_grad()
    def build(
        cls,
        model: nn.Module,
        encoded: Sequence[Encoded],
        *,
        layer: int,
        pad_id: int,
        batch_size: int = 64,
        memory_budget: int | None = None,
        directory: str | Path | None = None,
    ) -> PrefixCache:
        """Run the model once over ``encoded`` and keep the inputs of block ``layer``.

        Args:
            memory_budget: bytes the states may take in memory (on block ``layer``'s device);
                above it they go to a temporary file. None: always in memory.
            directory: where that file is created (None: the system's temporary folder).
        """
        blocks = cast(nn.ModuleList, get_module(model, get_arch(model).layers))
        target = blocks[layer]
        device = model_device(model)  # the inputs'
        at = module_device(model, module_path(model, layer, "block"))  # the states': where the block reads them
        encoded = encoded if isinstance(encoded, TokenStore) else list(encoded)
        lengths = sequence_lengths(encoded)
        starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        store: HiddenStore | None = None
        grabbed: dict[str, Any] = {}

        def grab(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            grabbed["h"] = (args[0] if args else kwargs["hidden_states"]).detach()
            raise StopForward

        def kind(module: nn.Module, args: Any, output: Any) -> None:
            grabbed["tuple"] = isinstance(output, tuple)

        first = blocks[0]
        h1 = target.register_forward_pre_hook(grab, with_kwargs=True)
        h2 = first.register_forward_hook(kind) if layer > 0 else None
        try:
            order = np.argsort(lengths, kind="stable").tolist()  # shortest first: little padding
            for idx in chunks(order, batch_size):
                batch = collate([encoded[i] for i in idx], pad_id=pad_id, padding_side="right").to(device)
                with contextlib.suppress(StopForward):
                    model(**batch.model_inputs(), use_cache=False)
                h = grabbed["h"]
                if store is None:
                    store = HiddenStore.allocate(
                        starts, h.shape[-1], device=at, budget_bytes=memory_budget, directory=directory
                    )
                if store.storage == "disk":
                    h = h.float().cpu()  # one copy off the device per batch
                for row, i in enumerate(idx):
                    store.write(i, h[row, : int(lengths[i])].float())
            returns_tuple = bool(grabbed.get("tuple", False))  # only matters when layer > 0
        except BaseException:
            if store is not None:
                store.close()
            raise
        finally:
            h1.remove()
            if h2 is not None:
                h2.remove()
        if store is None:  # no sequences
            store = HiddenStore.allocate(starts, 0, device=at)
        return cls(layer, encoded, store, pad_id, returns_tuple, device=at)

    def batch(self, idx: Sequence[int]) -> tuple[Batch, torch.Tensor]:
        """The right-padded batch of sequences ``idx`` and their cached states ``[B, T, d]``."""
        batch = collate([self.encoded[i] for i in idx], pad_id=self.pad_id, padding_side="right")
        return batch, self.states.gather(idx, batch.input_ids.shape[1])

    @property
    def storage(self) -> str:
        """Where the states are: ``"ram"`` or ``"disk"``."""
        return self.states.storage

    def close(self) -> None:
        """Release the states (and delete their file, if any)."""
        self.states.close()

    @contextlib.contextmanager
    def active(self, model: nn.Module) -> Iterator[None]:
        """Inside the block, ``model`` skips blocks below ``layer`` and reads the cached states."""
        blocks = cast(nn.ModuleList, get_module(model, get_arch(model).layers))
        originals = [blocks[i] for i in range(self.layer)]
        current: dict[str, torch.Tensor] = {}

        def substitute(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
            hidden = current["h"]
            ref = args[0] if args else kwargs["hidden_states"]
            return _substitute(args, kwargs, hidden.to(ref.dtype))

        handle = blocks[self.layer].register_forward_pre_hook(substitute, with_kwargs=True)
        for i in range(self.layer):
            blocks[i] = _PassThrough(self.block_returns_tuple)
        self._current = current
        try:
            yield
        finally:
            handle.remove()
            for i, block in enumerate(originals):
                blocks[i] = block
            self._current = {}

    def prepare(self, model: nn.Module, idx: Sequence[int]) -> Batch:
        """Set up sequences ``idx`` for the next forward (call inside :meth:`active`).

        Returns the right-padded batch (on the model's device) to run the model
        on; block ``layer`` will read the cached states (on its own device) instead of its input.
        """
        batch, states = self.batch(idx)
        self._current["h"] = states.to(self.device)
        return batch.to(model_device(model))

    def forward(self, model: nn.Module, idx: Sequence[int]) -> tuple[Batch, torch.Tensor]:
        """Full logits ``[B, T, V]`` for sequences ``idx`` (inside :meth:`active`); with the batch."""
        batch = self.prepare(model, idx)
        return batch, model(**batch.model_inputs(), use_cache=False).logits


def check_layer(model: nn.Module, layer: int) -> int:
    n = num_layers(model)
    if not 0 <= layer < n:
        raise ValueError(f"layer {layer} out of range 0..{n - 1}")
    return layer
