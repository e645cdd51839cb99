"""Training checkpoints of the fine-tuning editors: one safetensors file with a JSON state, written atomically.

A checkpoint holds tensors (free parameters, optimizer moments, generator
states) and a JSON ``state`` in the safetensors metadata, tagged with a format
name; nothing is ever pickled. The file is replaced in one step
(:func:`editkit.outputs.atomic_write_bytes`), so an interruption leaves the
previous checkpoint or the new one, never a torn mix. ``state["identity"]``
records what the run was made from; :func:`check_identity` refuses to resume
a run whose inputs changed.

>>> save_checkpoint(folder / "locft.safetensors", "editkit-locft-checkpoint/1", tensors, state)  # doctest: +SKIP
>>> tensors, state = load_checkpoint(folder / "locft.safetensors", "editkit-locft-checkpoint/1", what="LocFT-BF checkpoint")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from editkit.errors import InputError


def save_checkpoint(path: str | Path, fmt: str, tensors: Mapping[str, torch.Tensor], state: Mapping[str, Any]) -> None:
    """Write ``tensors`` (moved to CPU) and the JSON ``state`` to ``path``, atomically."""
    from safetensors.torch import save

    from editkit.outputs import atomic_write_bytes

    cpu = {name: t.detach().to("cpu").contiguous().clone() for name, t in tensors.items()}
    meta = {"format": fmt, "state": json.dumps(state)}
    atomic_write_bytes(path, save(cpu, metadata=meta))


def load_checkpoint(path: str | Path, fmt: str, *, what: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(tensors, state)`` of a checkpoint; :class:`InputError` for a missing, foreign or corrupt file."""
    from editkit.tensorfiles import read_tagged

    tensors, meta = read_tagged(path, fmt, what=what)
    try:
        state = json.loads(meta["state"])
    except (KeyError, ValueError):
        raise InputError(f"{path}: the {what} has no readable state; delete it and start over") from None
    return tensors, state


def check_identity(saved: Mapping[str, Any], mine: Mapping[str, Any], where: str | Path, labels: Mapping[str, str]) -> None:
    """Raise :class:`InputError` naming the first ``labels`` key whose value differs between the two identities."""
    for key, label in labels.items():
        if saved.get(key) != mine.get(key):
            raise InputError(
                f"{where}: the checkpoint was made with other {label}; resume with the same ones, or delete it to start over"
            )


def tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of named tensors' values (CPU bytes, in name order)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        digest.update(name.encode())
        digest.update(str(t.dtype).encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def optimizer_tensors(opt: torch.optim.Optimizer, params: Mapping[str, torch.Tensor], prefix: str = "opt") -> dict[str, torch.Tensor]:
    """The optimizer's per-parameter state as ``{prefix}.{param}.{key}`` tensors (numbers become 0-d tensors)."""
    out: dict[str, torch.Tensor] = {}
    for name, param in params.items():
        for key, value in opt.state.get(param, {}).items():
            out[f"{prefix}.{name}.{key}"] = value if isinstance(value, torch.Tensor) else torch.tensor(value)
    return out


def restore_optimizer(
    opt: torch.optim.Optimizer, params: Mapping[str, torch.Tensor], tensors: Mapping[str, torch.Tensor], prefix: str = "opt"
) -> None:
    """Put back the state :func:`optimizer_tensors` saved (``step`` counters stay on the CPU, as torch keeps them)."""
    for name, param in params.items():
        head = f"{prefix}.{name}."
        entry = {k[len(head) :]: v for k, v in tensors.items() if k.startswith(head)}
        if entry:
            opt.state[param] = {k: (v if k == "step" else v.to(param.device)) for k, v in entry.items()}
