"""Trained MEND editors and training checkpoints on disk: safetensors + JSON, never pickle.

An editor directory holds ``editor.safetensors`` (the networks, step sizes and
normalization statistics), ``editor.json`` (the :class:`~.spec.MendSpec`: the
edited matrices, the base model and its weight hashes; the training config
and summary) and, when given, ``log.jsonl`` (the training log). A checkpoint
is one safetensors file whose metadata carries its JSON state, written
atomically, so it is either the old checkpoint or the new one.

>>> save_editor(net, "runs/mend-smollm2", training=info, log=rows)   # doctest: +SKIP
>>> net = load_editor("runs/mend-smollm2")                           # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from editkit.editors.mend.nets import MendNet
from editkit.editors.mend.spec import MendSpec
from editkit.errors import InputError
from editkit.outputs import atomic_write_bytes, atomic_write_text

EDITOR_FORMAT = "editkit-mend/1"
CHECKPOINT_FORMAT = "editkit-mend-checkpoint/1"
WEIGHTS = "editor.safetensors"
CONFIG = "editor.json"
LOG = "log.jsonl"
CHECKPOINT = "checkpoint.safetensors"


def _tensors(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def save_editor(
    net: MendNet,
    path: str | Path,
    *,
    training: Mapping[str, Any] | None = None,
    log: Sequence[Mapping[str, Any]] = (),
) -> Path:
    """Write ``net`` into the directory ``path`` (created if needed; each file written atomically).

    Args:
        net: the trained editor.
        path: the editor directory.
        training: how it was trained (``TrainResult.info``: options, steps, validation), kept in ``editor.json``.
        log: the training log rows, written to ``log.jsonl``.
    """
    from safetensors.torch import save

    from editkit import __version__

    dest = Path(path)
    dest.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(dest / WEIGHTS, save(_tensors(net.state_dict()), metadata={"format": EDITOR_FORMAT}))
    meta = {
        "format": EDITOR_FORMAT,
        "editkit_version": __version__,
        **net.spec.to_dict(),
        "training": dict(training or {}),
    }
    atomic_write_text(dest / CONFIG, json.dumps(meta, indent=2, default=str) + "\n")
    if log:
        atomic_write_text(dest / LOG, "".join(json.dumps(row, default=str) + "\n" for row in log))
    return dest


def read_editor_config(path: str | Path) -> dict[str, Any]:
    """The ``editor.json`` of an editor directory, checked."""
    folder = Path(path)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such MEND editor directory (train one with `editkit mend train`)")
    cfg_path = folder / CONFIG
    if not cfg_path.is_file() or not (folder / WEIGHTS).is_file():
        raise InputError(f"{folder}: not a MEND editor directory (needs {CONFIG} and {WEIGHTS})")
    try:
        meta = json.loads(cfg_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{cfg_path}: not valid JSON ({exc.msg})") from None
    if not isinstance(meta, dict) or meta.get("format") != EDITOR_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise InputError(f"{cfg_path}: not an editkit MEND editor (format {found!r}, expected {EDITOR_FORMAT!r})")
    return meta


def load_editor(path: str | Path) -> MendNet:
    """Read an editor written by :func:`save_editor` (safetensors: nothing is executed)."""
    from safetensors.torch import load_file

    folder = Path(path)
    meta = read_editor_config(folder)
    try:
        spec = MendSpec.from_dict(meta)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise InputError(f"{folder / CONFIG}: incomplete editor description ({type(exc).__name__}: {exc})") from None
    try:
        state = load_file(str(folder / WEIGHTS))
    except Exception as exc:  # safetensors raises its own error types
        raise InputError(f"{folder / WEIGHTS}: not a safetensors file ({str(exc).splitlines()[0]})") from None
    net = MendNet(spec)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise InputError(f"{folder / WEIGHTS}: does not match {CONFIG} ({str(exc).splitlines()[0]})") from None
    return net.eval()


def save_checkpoint(path: str | Path, tensors: Mapping[str, torch.Tensor], state: Mapping[str, Any]) -> Path:
    """Write one checkpoint file: ``tensors`` and the JSON ``state`` in its metadata (atomically)."""
    from safetensors.torch import save

    dest = Path(path) / CHECKPOINT
    meta = {"format": CHECKPOINT_FORMAT, "state": json.dumps(state, default=str)}
    atomic_write_bytes(dest, save(_tensors(tensors), metadata=meta))
    return dest


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`: ``(tensors, state)``."""
    from editkit.tensorfiles import read_tagged

    file = Path(path) / CHECKPOINT
    if not file.is_file():
        raise InputError(f"{Path(path)}: no MEND checkpoint to resume from ({CHECKPOINT} missing)")
    tensors, meta = read_tagged(file, CHECKPOINT_FORMAT, what="MEND checkpoint")
    return tensors, json.loads(meta["state"])


def has_checkpoint(path: str | Path) -> bool:
    return (Path(path) / CHECKPOINT).is_file()
