"""Save a mitigated LoRA adapter as a LoRA adapter again, re-factored to rank ``r + #intruders``.

The mitigated delta of a module, ``dW' = B A s + (lam - 1) sum_i s_i u_i v_i^T``,
has rank at most ``r + n`` (``n`` intruders scaled), so it is re-factored
exactly by a truncated SVD of ``dW' / s``: ``B' = U sqrt(S)``, ``A' = sqrt(S) V^T``,
rank ``r' = r + n`` (capped by the matrix size). The scaling ``s`` is kept by
setting ``alpha' = s * r'`` (``s * sqrt(r')`` with rsLoRA). Both go into the
config as ``rank_pattern`` / ``alpha_pattern`` entries for the exact module
name, placed before the existing patterns (peft uses the first match).
Modules without intruders and biases are copied unchanged; a
``modules_to_save`` projection with intruders is stored as its mitigated
weight. peft loads the result with ``PeftModel.from_pretrained``.

>>> save_mitigated_adapter(result, "runs/lora-mitigated")        # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import torch

from audit.mitigate import MitigationResult
from audit.tuned.lora import CONFIG_FILE, WEIGHTS_FILE, LoraAdapter
from editkit.errors import InputError


def refactor(delta: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A [rank, in], B [out, rank])``: ``B @ A`` is the best rank-``rank`` approximation of ``delta``.

    ``delta`` is ``[out, in]``; the singular values are split evenly (``sqrt(S)`` on each side).
    """
    u, s, vh = torch.linalg.svd(delta.double(), full_matrices=False)
    root = s[:rank].sqrt()
    return (root[:, None] * vh[:rank]).float(), (u[:, :rank] * root).float()


def save_mitigated_adapter(result: MitigationResult, path: str | Path) -> Path:
    """Write the mitigated LoRA adapter (``adapter_config.json`` + ``adapter_model.safetensors``) to ``path``.

    Raises:
        InputError: the mitigated weights did not come from a LoRA adapter.
    """
    from safetensors.torch import load_file, save_file

    from editkit.outputs import atomic_write_bytes

    adapter = result.tuned
    if not isinstance(adapter, LoraAdapter):
        raise InputError(
            f"{adapter.path}: only a LoRA adapter can be saved as an adapter; "
            "use save_mitigated_deltas or save_mitigated_model"
        )
    tensors = load_file(str(adapter.file))
    config = dict(adapter.config)
    ranks: dict[str, int] = {}
    alphas: dict[str, float] = {}
    for name, delta in result.deltas.items():
        lora = adapter.lora_delta(name)
        if lora is None:  # a modules_to_save tensor: store the mitigated weight itself
            key = adapter.full_keys[name]
            weight = adapter.base_weight(name).to("cpu") + delta
            tensors[key] = weight.to(tensors[key].dtype).contiguous()
            continue
        layer = adapter.layers[name]
        # Only the LoRA part is re-factored (a saved base weight, if any, stays as it is).
        own = delta - (adapter.delta(name) - lora).to(delta.device)
        dense = own.T if layer.transposed else own  # [out, in]
        rank = min(layer.rank + len(result.scaled[name]), *dense.shape)
        a, b = refactor(dense / layer.scaling, rank)
        keys = adapter.tensor_keys[name]
        tensors[keys["A"]] = a.to(tensors[keys["A"]].dtype).contiguous()
        tensors[keys["B"]] = b.to(tensors[keys["B"]].dtype).contiguous()
        pattern = re.escape(layer.key)
        ranks[pattern] = rank
        alphas[pattern] = layer.scaling * (math.sqrt(rank) if config.get("use_rslora") else rank)
    config["rank_pattern"] = {**ranks, **(config.get("rank_pattern") or {})}
    config["alpha_pattern"] = {**alphas, **(config.get("alpha_pattern") or {})}
    dest = Path(path)
    dest.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(dest / WEIGHTS_FILE), metadata={"format": "pt"})
    atomic_write_bytes(dest / CONFIG_FILE, json.dumps(config, indent=2, sort_keys=True).encode())
    return dest
