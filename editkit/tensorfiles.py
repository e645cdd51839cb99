"""Read editkit's own safetensors files: tensors plus a ``format`` tag in the metadata.

Every file editkit writes with tensors (edit deltas, MEND checkpoints) carries
``metadata["format"]``; reading checks the tag so a wrong file gives one clear
line instead of a confusing failure later. Nothing is unpickled.

>>> tensors, meta = read_tagged(path, "editkit-delta/1", what="delta file")   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import torch

from editkit.errors import InputError


def read_tagged(path: str | Path, fmt: str, *, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors, metadata)`` of ``path``; :class:`InputError` unless it is safetensors tagged ``fmt``."""
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such {what}")
    try:
        with safe_open(str(p), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own error types
        raise InputError(f"{p}: not a safetensors {what} ({str(exc).splitlines()[0]})") from None
    if meta.get("format") != fmt:
        raise InputError(f"{p}: not an editkit {what} (format {meta.get('format')!r})")
    return tensors, meta
