"""A full fine-tune (or a merged adapter) saved as safetensors, read tensor by tensor.

The folder holds ``model.safetensors``, or shards listed in
``model.safetensors.index.json``; a single ``.safetensors`` file works too. Only
the headers are read up front (names, shapes); each tensor is read when asked
for, with ``safetensors.safe_open``, so the tuned model is never in memory as a
whole. Pickle-based ``.bin`` checkpoints are refused.

>>> tuned = FullCheckpoint(model, "runs/ft")                 # doctest: +SKIP
>>> dw = tuned["model.layers.0.mlp.down_proj.weight"]       # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from audit.tuned.base import (
    PICKLE_SUFFIXES,
    TunedWeights,
    check_shape,
    refuse_pickle,
    resolve_param_name,
    tied_groups,
)
from editkit.errors import InputError
from editkit.tensorfiles import tensor_shapes

INDEX_FILE = "model.safetensors.index.json"


def checkpoint_files(path: Path) -> list[Path]:
    """The safetensors files of a checkpoint folder (or the file itself).

    Raises:
        InputError: nothing readable there, or only pickle-based files.
    """
    if path.is_file():
        if path.suffix in PICKLE_SUFFIXES:
            raise refuse_pickle(path)
        return [path]
    index = path / INDEX_FILE
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (ValueError, KeyError, TypeError, RecursionError):
            weight_map = None
        if not isinstance(weight_map, dict) or not all(
            isinstance(f, str) and f.endswith(".safetensors") and Path(f).name == f for f in weight_map.values()
        ):
            raise InputError(
                f"{index}: not a safetensors index (expected a 'weight_map' of tensor name -> "
                "*.safetensors file in the same folder); re-save the checkpoint with save_pretrained"
            )
        files = [path / f for f in sorted(set(weight_map.values()))]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise InputError(f"{index}: lists {missing[0]}, which is missing; the checkpoint is incomplete")
        return files
    files = sorted(path.glob("*.safetensors"))
    if files:
        return files
    pickles = sorted(p for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise refuse_pickle(pickles[0])
    raise InputError(f"{path}: no safetensors weights found (expected model.safetensors or shards)")


def _check_model_type(path: Path, base: nn.Module) -> None:
    config = (path if path.is_dir() else path.parent) / "config.json"
    base_type = getattr(getattr(base, "config", None), "model_type", None)
    if not config.is_file() or base_type is None:
        return
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise InputError(f"{config}: not valid JSON; restore the config.json saved with the model") from None
    if not isinstance(data, dict):
        raise InputError(f"{config}: expected a JSON object (a model config); restore the config.json saved with the model")
    tuned_type = data.get("model_type")
    if tuned_type is not None and tuned_type != base_type:
        raise InputError(
            f"{path}: the tuned model is a {tuned_type!r} but the base model is a {base_type!r}; "
            "pass the base model the fine-tune started from"
        )


class FullCheckpoint(TunedWeights):
    """Every parameter of a tuned model, read lazily from safetensors.

    Checkpoint names are mapped onto the base model's (``model.`` prefix or
    not). A tied tensor (``lm_head`` tied to the embeddings) is one entry,
    under the name the checkpoint stores first. Keys that are base buffers
    are ignored.

    Args:
        base: the base model (same architecture and sizes).
        path: a checkpoint folder or one ``.safetensors`` file.

    Raises:
        InputError: another architecture (``config.json``), tensors the base
            model does not have, base parameters the checkpoint lacks, shapes
            that differ, or pickle-based files.
    """

    kind = "full"

    def __init__(self, base: nn.Module, path: str | Path) -> None:
        root = Path(path)
        super().__init__(base, root)
        _check_model_type(root, base)
        prefix = getattr(base, "base_model_prefix", "") or ""
        buffers = {n for n, _ in base.named_buffers()}
        groups = tied_groups(base)
        self._where: dict[str, tuple[Path, str]] = {}
        covered: set[str] = set()
        unexpected: list[str] = []
        for file in checkpoint_files(root):
            for key, shape in tensor_shapes(file, what="safetensors checkpoint").items():
                name = resolve_param_name(key, self._params, prefix)
                if name is None:
                    if resolve_param_name(key, dict.fromkeys(buffers), prefix) is None:
                        unexpected.append(key)
                    continue
                check_shape(file, name, shape, tuple(self._params[name].shape))
                if name in covered:  # a tied alias already read from this checkpoint
                    continue
                covered.update(groups[name])
                self._where[name] = (file, key)
        if unexpected:
            raise InputError(
                f"{root}: {len(unexpected)} tensor(s) match no parameter of the base model "
                f"(e.g. {unexpected[:3]}); is it the same architecture as the base model?"
            )
        missing = [n for n in dict(base.named_parameters()) if n not in covered]
        if missing:
            raise InputError(
                f"{root}: {len(missing)} parameter(s) of the base model are missing from the "
                f"checkpoint (e.g. {missing[:3]}); pass a complete checkpoint of the same architecture"
            )
        order = {n: i for i, n in enumerate(self._params)}
        self._order = tuple(sorted(self._where, key=order.__getitem__))

    def _names(self) -> tuple[str, ...]:
        return self._order

    def _stored(self, name: str) -> tuple[torch.Tensor, bool]:
        from safetensors import safe_open

        file, key = self._where[name]
        with safe_open(str(file), framework="pt") as fh:
            return fh.get_tensor(key), False
