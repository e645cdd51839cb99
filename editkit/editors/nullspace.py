"""Null-space constrained updates (AlphaEdit, Fang et al., ICLR 2025), for fine-tuned deltas.

Collect the inputs ``k`` a linear layer receives over preserved text
(``K0``: one row per token), take the eigenvectors of ``K0^T K0`` whose
eigenvalues fall below ``threshold`` times the largest as ``U``, and constrain
an update of the weight to ``Delta @ U U^T`` (input side, for ``W x`` with
``W: [out, in]``), so ``(Delta @ U U^T) k ~ 0`` for every preserved key.

The threshold here is relative to the largest eigenvalue, so it does not
depend on how much preserved text was used (AlphaEdit's 2e-2 is absolute on
~100K tokens of Wikipedia).

>>> keys = collect_inputs(model, "model.layers.20.mlp.down_proj", tok, texts)   # doctest: +SKIP
>>> P = null_space_projector(keys, threshold=1e-2)                            # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from editkit.arch import get_module
from editkit.batching import chunks, model_device


def collect_inputs(
    model: nn.Module,
    module_path: str,
    tok: Any,
    texts: Sequence[str],
    *,
    batch_size: int = 32,
    max_length: int = 64,
) -> torch.Tensor:
    """The inputs of ``module_path`` at every real token of ``texts``: ``[n_tokens, d_in]`` (fp32, CPU)."""
    return collect_inputs_many(model, [module_path], tok, texts, batch_size=batch_size, max_length=max_length)[
        module_path
    ]


@torch.no_grad()
def collect_inputs_many(
    model: nn.Module,
    module_paths: Sequence[str],
    tok: Any,
    texts: Sequence[str],
    *,
    batch_size: int = 32,
    max_length: int = 64,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, torch.Tensor]:
    """:func:`collect_inputs` for several modules in one pass over ``texts``: path -> ``[n_tokens, d_in]``."""
    device = model_device(model)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    rows: dict[str, list[torch.Tensor]] = {path: [] for path in module_paths}
    mask_holder: dict[str, torch.Tensor] = {}

    def hook_for(path: str) -> Any:
        def hook(mod: nn.Module, args: tuple[Any, ...]) -> None:
            x = args[0]  # [batch, seq, d_in]
            rows[path].append(x[mask_holder["m"].to(x.device)].float().cpu())

        return hook

    handles = [get_module(model, path).register_forward_pre_hook(hook_for(path)) for path in dict.fromkeys(module_paths)]
    was_training = model.training
    model.eval()  # no dropout in the keys
    try:
        encoded = [tok(t, truncation=True, max_length=max_length)["input_ids"] for t in texts]
        parts = list(chunks(encoded, batch_size))
        for done, part in enumerate(parts):
            if progress:
                progress("collecting layer inputs", done, len(parts))
            width = max(len(e) for e in part)
            ids = torch.full((len(part), width), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for i, e in enumerate(part):
                ids[i, : len(e)] = torch.tensor(e)
                mask[i, : len(e)] = 1
            mask_holder["m"] = mask.bool().to(device)
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=pos.to(device), use_cache=False)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return {path: torch.cat(r) if r else torch.zeros(0) for path, r in rows.items()}


@dataclass(frozen=True)
class NullSpace:
    """A projector onto the directions preserved keys (almost) never use."""

    projector: torch.Tensor  # [d_in, d_in], symmetric, idempotent
    kept: int  # dimension of the null space
    dropped: int  # directions removed (used by preserved keys)
    threshold: float
    n_keys: int

    def describe(self) -> str:
        return (
            f"null space of {self.n_keys} preserved keys: dropped {self.dropped} of "
            f"{self.kept + self.dropped} input directions (eigenvalues above {self.threshold:g} x max)"
        )


def _spectrum(keys: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(eigenvectors of keys^T keys as columns, mask of those below threshold * max)``, in float64."""
    if keys.ndim != 2 or keys.shape[0] == 0:
        raise ValueError("need a [n_keys, d_in] matrix of at least one preserved key")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    k = keys.double()
    evals, evecs = torch.linalg.eigh(k.T @ k)  # [d_in], [d_in, d_in]
    return evecs, evals < threshold * evals.max()


def null_space_projector(keys: torch.Tensor, threshold: float = 1e-2) -> NullSpace:
    """``U U^T`` for the eigenvectors of ``keys^T keys`` with eigenvalue < ``threshold * max``."""
    evecs, small = _spectrum(keys, threshold)
    u = evecs[:, small]
    proj = (u @ u.T).float()
    return NullSpace(proj, int(small.sum()), int((~small).sum()), threshold, int(keys.shape[0]))


def used_directions(keys: torch.Tensor, threshold: float = 1e-2) -> torch.Tensor:
    """The complement of :func:`null_space_projector`: orthonormal rows ``B`` ``[k, d_in]`` with ``U U^T = I - B^T B``.

    Preserved keys use few directions, so ``x - (x @ B.T) @ B`` projects a
    factor onto the null space at a fraction of the cost of ``x @ U U^T``.
    """
    evecs, small = _spectrum(keys, threshold)
    return evecs[:, ~small].T.float().contiguous()
