"""Tuned weights against a base model whose weights a device map partly offloads.

:class:`~audit.tuco.pair.DeltaPair` swaps the tuned tensors into the base
model's modules. accelerate's offload hooks (a device map with ``"cpu"``
offload next to GPUs, or ``"disk"``) reload an offloaded module's parameters
from their store at every call, which would silently undo such a swap. For
those parameters :class:`OffloadedDeltaPair` hands the tuned values to the
hooks instead (:func:`editkit.placement.offloaded_values`), and the base block
reads the stored ones (:func:`editkit.placement.stored_values`); the other
parameters go through a plain :class:`DeltaPair`. The tuned values of the
offloaded parameters stay on the CPU, in the parameter's dtype, and reach the
execution device one module call at a time, like the stored ones.

A tied parameter (``lm_head.weight`` and the embeddings) is one weight under
several names (:func:`editkit.placement.tied_parameters`, which also knows the
ties the offload hooks split into one placeholder per module): its tuned value
reaches every offloaded alias through the hooks and every other alias by a
swap, whichever of the names the tuned weights use.

:func:`delta_pair` picks the one a base model needs.

>>> pair = delta_pair(base, load_tuned(base, "runs/ft"))    # doctest: +SKIP
>>> with pair.tuned() as model:                             # doctest: +SKIP
...     logits = model(input_ids=ids).logits
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from audit.tuco.pair import BlockCall, DeltaPair, TunedPair
from audit.tuned import TunedWeights
from editkit.arch import get_arch
from editkit.errors import InputError
from editkit.placement import offloaded_values, split_offloaded, stored_values, tied_parameters


class _Kept(TunedWeights):
    """The tuned weights restricted to some names (the same values, read from ``weights``).

    ``names`` maps each kept name to the name of ``weights`` it reads (itself, or
    the tied alias the tuned weights name).
    """

    def __init__(self, weights: TunedWeights, names: Mapping[str, str]) -> None:
        super().__init__(weights.base, weights.path)
        self.kind = weights.kind  # type: ignore[misc]
        self._of = weights
        self._source = dict(names)

    def _names(self) -> tuple[str, ...]:
        return tuple(self._source)

    def _stored(self, name: str) -> tuple[torch.Tensor, bool]:
        return self._of._stored(self._source[name])

    def delta(self, name: str) -> torch.Tensor:
        return self._of.delta(self._source[name])

    def weight(self, name: str) -> torch.Tensor:
        return self._of.weight(self._source[name])


class OffloadedDeltaPair(TunedPair):
    """:class:`~audit.tuco.pair.DeltaPair` for a base model with offloaded tuned parameters.

    Same contract and numbers as ``DeltaPair`` (tuned values ``W_tuned`` in
    the parameter's dtype); see the module docstring for how offloaded
    parameters are handled.

    Args:
        base: the base model (never written to; nor are its hooks' stores).
        weights: tuned weights read against ``base``.

    Raises:
        InputError: ``weights`` were read against another model.
    """

    kind = "deltas"

    def __init__(self, base: nn.Module, weights: TunedWeights) -> None:
        if weights.base is not base:
            raise InputError("tuco: the tuned weights were read against another model; load them against the base model passed here")
        super().__init__(base)
        self.weights = weights
        # Names the hooks serve (each offloaded alias of theirs gets the value), and names swapped on their
        # device: the other names, and the on-device aliases of offloaded ones (lm_head on a GPU, tied to
        # offloaded embeddings: the tied weights split by the hooks are no longer one nn.Parameter).
        swapped, hooked = split_offloaded(base, {n: n for n in weights})
        self.on_device = DeltaPair(base, _Kept(weights, swapped))
        offloaded = list(hooked)
        self._offloaded = {n: weights.weight(n).to("cpu") for n in offloaded}  # cast by the hooks' loads
        groups = tied_parameters(base)
        prefix = get_arch(base).layers
        self._per_block = [
            [n for n in offloaded if any(a.startswith(f"{prefix}.{layer}.") for a in groups.get(n, (n,)))]
            for layer in range(self.num_layers)
        ]

    @property
    def offloaded(self) -> tuple[str, ...]:
        """The tuned parameters that are offloaded (or tied to one that is): their values go to the hooks."""
        return tuple(self._offloaded)

    @contextlib.contextmanager
    def tuned(self) -> Iterator[nn.Module]:
        with self.on_device.tuned() as model, offloaded_values(model, self._offloaded):
            yield model

    @contextlib.contextmanager
    def base(self) -> Iterator[nn.Module]:
        with self.on_device.base() as model, stored_values(model, self._offloaded):
            yield model

    def base_block(
        self, layer: int, args: tuple[Any, ...], kwargs: dict[str, Any], call: BlockCall | None = None
    ) -> Any:
        with stored_values(self.model, self._per_block[layer]):
            return self.on_device.base_block(layer, args, kwargs, call)

    def sharing(self) -> contextlib.AbstractContextManager[Any]:
        return self.on_device.sharing()


def delta_pair(base: nn.Module, weights: TunedWeights) -> TunedPair:
    """A :class:`~audit.tuco.pair.DeltaPair`, or an :class:`OffloadedDeltaPair` when some tuned parameter is offloaded.

    A tuned parameter tied to an offloaded one counts as offloaded (the hooks
    would load the stored value under the other name).

    >>> pair = delta_pair(base, weights)      # doctest: +SKIP
    """
    if split_offloaded(base, dict.fromkeys(weights))[1]:
        return OffloadedDeltaPair(base, weights)
    return DeltaPair(base, weights)
