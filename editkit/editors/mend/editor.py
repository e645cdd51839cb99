"""The ``mend`` editor: a trained editor turns the edit's gradient into a weight update.

``compute`` runs one forward and backward of the edit loss (target NLL of
every request on its prompt) through the unedited model, captures the
gradient factors at the editor's matrices, maps them through the trained
networks (eval mode: statistics frozen) and returns, per matrix,
``-a * sum_t delta~_t u~_t^T`` summed over all rows of all requests: one
update for a batch of edits, as published. No randomness is involved, so
equal inputs give equal deltas.

The editor only edits the matrices it was trained for (its
:meth:`MendEditor.default_location`) and only for its base model: any other
location or model is refused with a clear message.

>>> editor = make_editor("mend", {"editor": "runs/mend-smollm2"})          # doctest: +SKIP
>>> result = editor.compute(model, tok, requests, editor.default_location(model))  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from editkit.arch import weight_is_transposed
from editkit.batching import chunks, collate, encode_pairs, model_device
from editkit.editors.config import EditorConfig, option
from editkit.editors.mend.capture import capture_factors
from editkit.editors.mend.nets import MendNet
from editkit.editors.mend.nullspace import MendNullSpace, load_null_space
from editkit.editors.mend.spec import check_model, module_of
from editkit.editors.mend.store import load_editor
from editkit.editors.registry import Editor
from editkit.editors.result import EditResult
from editkit.errors import EditkitError
from editkit.localize.location import Location
from editkit.placement import check_on_device
from editkit.requests import EditRequest

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class MendConfig(EditorConfig):
    """MEND options: which trained editor to use."""

    editor: str | None = option("directory of a trained MEND editor (from `editkit mend train`); required", None)
    batch_size: int = option("requests per forward/backward when computing the edit's gradient", 16)
    null_space: bool = option(
        "confine updates to the null space stored with the editor (`editkit mend nullspace`), when it has one", True
    )
    null_scale: float | None = option("factor on the projected update (default: the one stored with the null space)", None)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.null_scale is not None and not self.null_scale > 0:
            raise ValueError("null_scale must be > 0")


class MendEditor(Editor[MendConfig]):
    """MEND: trained editor networks map the edit's gradient to a weight update (one forward/backward)."""

    def __init__(self, config: MendConfig) -> None:
        super().__init__(config)
        if not config.editor:
            raise EditkitError(
                "mend needs a trained editor: pass --editor DIR (editor=DIR); train one with `editkit mend train`"
            )
        self.net: MendNet = load_editor(config.editor)
        null = load_null_space(config.editor, self.net.spec) if config.null_space else None
        if config.null_scale is not None:
            if null is None:
                raise EditkitError(
                    f"null_scale={config.null_scale} but no null space is used (the editor {config.editor} has none, "
                    "or null_space=false): drop null_scale, or add one with `editkit mend nullspace`"
                )
            null = replace(null, scale=config.null_scale)
        self.null: MendNullSpace | None = null

    def default_location(self, model: Any) -> Location:
        """The matrices the editor was trained for (after checking ``model`` is its base model)."""
        check_model(model, self.net.spec, where=f"the MEND editor {self.config.editor}")
        return self.net.spec.location

    def compute(
        self,
        model: Any,
        tok: Any,
        requests: Sequence[EditRequest],
        location: Location,
        *,
        progress: Progress | None = None,
    ) -> EditResult:
        if not requests:
            raise EditkitError("no requests to edit")
        spec = self.net.spec
        t0 = time.perf_counter()
        check_model(model, spec, where=f"the MEND editor {self.config.editor}")
        if set(location.params) != set(spec.params):
            raise EditkitError(
                f"mend edits only the matrices its editor was trained for ({spec.location.describe()}), "
                f"not {location.describe()}: use the editor's default location (no --layer/--module/--strategy)"
            )
        check_on_device(model, location.sites, self.name)  # its update is applied in place
        t_check = time.perf_counter() - t0
        device = model_device(model)
        net = self.net.to(device).eval()
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        encoded = encode_pairs(tok, [r.prompt for r in requests], [r.target_new for r in requests])
        paths = [module_of(p) for p in spec.params]
        transposed = {p for p in spec.params if weight_is_transposed(model, p)}
        totals: dict[str, torch.Tensor] = {}  # param -> update in the stored orientation
        rows = 0
        t_grad = t_net = 0.0
        parts = list(chunks(range(len(encoded)), self.config.batch_size))
        for done, idx in enumerate(parts, 1):
            t1 = time.perf_counter()
            batch = collate([encoded[i] for i in idx], pad_id=pad_id).to(device)
            factors = capture_factors(model, batch, paths)
            t2 = time.perf_counter()
            with torch.no_grad():
                for param, delta in net.deltas(factors, transposed, self.null).items():
                    totals[param] = totals[param].add_(delta) if param in totals else delta
            rows += int(batch.attention_mask.sum())
            t_grad += t2 - t1
            t_net += time.perf_counter() - t2
            if progress:
                progress(f"batch {done}", done, len(parts))
        deltas = {p: d.detach().float().cpu().contiguous() for p, d in totals.items()}
        return EditResult(
            method=self.name,
            deltas=deltas,
            location=location,
            config=self.config.to_dict(),
            timings={"check": t_check, "gradient": t_grad, "editor": t_net},
            info={
                "editor": str(self.config.editor),
                "base_model": spec.base_model,
                "n_requests": len(requests),
                "rows": rows,
                "step_sizes": dict(zip(spec.params, net.step_sizes.detach().tolist(), strict=True)),
                "null_space": self.null.describe_each() if self.null else {},
            },
        )
