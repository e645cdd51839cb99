"""What every localization strategy shares: option checks, state restoration, ranking layers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from torch import nn

from editkit.errors import EditkitError
from editkit.localize.location import Location, module_sites


@contextlib.contextmanager
def preserved_state(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode inside the block; restore mode, ``requires_grad`` and ``.grad`` after.

    Weights are not copied: strategies only read them. What a strategy may
    change in passing (dropout mode, which parameters track gradients, and
    gradients it accumulates) is put back exactly, even on error.

    >>> with preserved_state(model):     # doctest: +SKIP
    ...     loss.backward()
    """
    modes = [(m, m.training) for m in model.modules()]
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    grads = [p.grad for p in params]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training
        for p, flag, grad in zip(params, flags, grads, strict=True):
            p.requires_grad_(flag)
            p.grad = grad


def check_options(strategy: str, options: Mapping[str, Any]) -> None:
    """Reject options a strategy does not know (a typo should not be silently ignored).

    ``progress`` (a callback every strategy may be given by the CLI) is accepted and unused.
    """
    unknown = sorted(k for k in options if k not in COMMON_OPTIONS)
    if unknown:
        raise EditkitError(f"{strategy}: unknown option(s) {', '.join(unknown)}")


COMMON_OPTIONS = frozenset({"progress"})


def ranked_location(
    model: nn.Module,
    per_layer: Sequence[Mapping[str, Any]],
    *,
    module: str,
    top_k: int,
    strategy: str,
    describe: str,
    extra: Mapping[str, Any] | None = None,
) -> Location:
    """The ``module`` sites of the ``top_k`` best-scoring layers (ties go to the earlier layer).

    Args:
        model: The causal LM.
        per_layer: One row per layer: ``{"layer": i, "score": s, ...}`` (higher is better).
        module: The module to edit in the chosen layers (a key of ``MODULE_KINDS``).
        top_k: How many layers to return (their sites in layer order).
        strategy: The strategy name, recorded on the location.
        describe: What the score measures, for the report (the ``criterion``).
        extra: More JSON-able entries for ``Location.scores``.

    >>> rows = [{"layer": 0, "score": 0.1}, {"layer": 1, "score": 0.3}]
    >>> ranked_location(model, rows, module="mlp_down", top_k=1,
    ...                 strategy="gradient", describe="g").layers  # doctest: +SKIP
    (1,)
    """
    if not isinstance(top_k, int) or not 1 <= top_k <= len(per_layer):
        raise EditkitError(
            f"{strategy}: top_k must be an integer in 1..{len(per_layer)}, got {top_k!r}"
        )
    ranked = sorted(per_layer, key=lambda row: (-row["score"], row["layer"]))[:top_k]
    layers = sorted(int(row["layer"]) for row in ranked)
    sites = tuple(site for layer in layers for site in module_sites(model, layer, module))
    best = ranked[0]
    chosen = f"layer {best['layer']}" if top_k == 1 else f"layers {', '.join(map(str, layers))}"
    reason = (
        f"{strategy}: {chosen} ({module}) scored highest on {describe} "
        f"(best {best['score']:.4g} at layer {best['layer']})"
    )
    scores = {"per_layer": [dict(row) for row in per_layer], "criterion": describe, **(extra or {})}
    return Location(sites, strategy, reason, scores)
