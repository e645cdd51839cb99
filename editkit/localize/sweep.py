"""The ``sweep`` strategy: pick the layer by editing at each candidate and scoring the outcome.

The requests are split (seeded) into a *train* slice and a *held-out* slice.
At each candidate layer the editor is trained on the train slice only, with
its usual settings, and scored teacher-forced on:

- reliability: the train slice's own prompts;
- generalization: the train slice's paraphrase prompts;
- locality: the held-out slice's prompts with their *true* targets plus the
  train slice's neighborhood prompts (agreement with the unedited model),
  since an edit should leave facts it was not given alone.

The chosen layer maximizes the harmonic mean of the three (a layer that fails
any one of them scores low); all per-layer scores are kept for the report.

>>> loc = localize("sweep", model, tok, requests, module="mlp_down")   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from editkit.arch import num_layers
from editkit.errors import EditkitError
from editkit.localize import register_strategy
from editkit.localize.location import Location, module_sites
from editkit.requests import EditRequest, Neighbor


def _held_out_as_neighbors(held: Sequence[EditRequest]) -> tuple[Neighbor, ...]:
    return tuple(Neighbor(r.prompt, r.target_true or r.target_new) for r in held)


def default_candidates(n_layers: int, count: int = 8) -> list[int]:
    """``count`` layers spread evenly over the depth (first and last included)."""
    if n_layers <= count:
        return list(range(n_layers))
    return sorted({round(i * (n_layers - 1) / (count - 1)) for i in range(count)})


def sweep(
    model: Any,
    tok: Any,
    requests: Sequence[EditRequest],
    *,
    method: str = "locft-bf",
    module: str = "mlp_down",
    layers: Sequence[int] | int | None = None,
    train_size: int = 16,
    held_out: int = 8,
    editor_overrides: Sequence[str] | str = (),
    seed: int = 0,
    progress: Callable[[str, int, int], None] | None = None,
    **_: Any,
) -> Location:
    """Edit at each candidate layer on a train slice; keep the layer with the best harmonic mean."""
    from editkit.editors import applied, make_editor
    from editkit.evaluate import EvalConfig, evaluate
    from editkit.evaluate.metrics import harmonic_mean

    if len(requests) < 2:
        raise EditkitError("the sweep strategy needs at least 2 requests (a train and a held-out slice)")
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(requests), generator=gen).tolist()
    n_held = max(1, min(held_out, len(requests) // 3))
    held = [requests[i] for i in order[:n_held]]
    train = [requests[i] for i in order[n_held : n_held + train_size]]
    probe = [
        EditRequest(
            prompt=r.prompt,
            target_new=r.target_new,
            subject=r.subject,
            target_true=r.target_true,
            paraphrase_prompts=r.paraphrase_prompts,
            neighborhood_prompts=(*r.neighborhood_prompts, *_held_out_as_neighbors(held)),
        )
        for r in train
    ]
    if isinstance(layers, int):
        layers = [layers]
    if isinstance(editor_overrides, str):
        editor_overrides = [editor_overrides]
    candidates = list(layers) if layers is not None else default_candidates(num_layers(model))
    cfg = EvalConfig(generation=False, fluency=False)
    baseline = evaluate(model, tok, probe, config=cfg)
    rows: list[dict[str, Any]] = []
    for k, layer in enumerate(candidates):
        if progress:
            progress(f"layer {layer}", k, len(candidates))
        loc = Location(module_sites(model, layer, module), "sweep", f"candidate layer {layer}")
        editor = make_editor(method, overrides=[*editor_overrides, f"seed={seed}"])
        result = editor.compute(model, tok, train, loc)
        with applied(model, result):
            agg = evaluate(model, tok, probe, config=cfg, baseline=baseline).aggregate
        parts = [agg["reliability"], agg["generalization"], agg["locality"]]
        score = harmonic_mean([p for p in parts if p is not None]) or 0.0
        rows.append(
            {
                "layer": layer,
                "score": score,
                "reliability": agg["reliability"],
                "generalization": agg["generalization"],
                "locality": agg["locality"],
            }
        )
    if progress:
        progress("done", len(candidates), len(candidates))
    best = max(rows, key=lambda r: r["score"])
    reason = (
        f"sweep: layer {best['layer']} maximizes the harmonic mean of reliability, generalization and "
        f"held-out locality ({best['score']:.3f}) after {method} on {len(train)} requests, "
        f"{len(held)} held out, over layers {candidates}"
    )
    return Location(
        module_sites(model, best["layer"], module),
        "sweep",
        reason,
        {"per_layer": rows, "criterion": "harmonic mean of reliability, generalization, locality"},
    )


register_strategy("sweep", lambda model, tok, requests, **kw: sweep(model, tok, requests, **kw))
