"""Read tensor files safely: safetensors only, every tensor finite, one clear line when not.

Every file editkit writes with tensors (edit deltas, MEND checkpoints) carries
``metadata["format"]``; reading checks the tag so a wrong file gives one clear
line instead of a confusing failure later. Nothing is unpickled: pickle-based
checkpoints (``.bin``, ``.pt``, ...) can run code when loaded, so readers refuse
them with :func:`refuse_pickle` (model loading only accepts them when the user
asks, with ``allow_pickle``). A truncated or corrupted file and a tensor with NaN
or infinite values are errors naming the file (and the tensor).

>>> tensors, meta = read_tagged(path, "editkit-delta/1", what="delta file")   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from editkit.errors import InputError

if TYPE_CHECKING:  # torch is imported where it is used: the CLI starts without it
    import torch

PICKLE_SUFFIXES: tuple[str, ...] = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
"""Checkpoint suffixes that hold pickles: not read unless the user asks (unpickling can run code)."""


def refuse_pickle(path: str | Path, *, flag: str | None = None) -> InputError:
    """The error for a pickle-based checkpoint (``pytorch_model.bin`` and the like).

    Args:
        path: the pickle file.
        flag: the option that accepts pickles anyway, if the command has one (``--allow-pickle``).
    """
    anyway = f", or pass {flag} if you trust the file" if flag else ""
    return InputError(
        f"{path}: pickle-based checkpoints are not read (unpickling can run arbitrary code); "
        "convert it to safetensors first (load it once where you trust it and call "
        f"save_pretrained(dir, safe_serialization=True)){anyway}"
    )


def check_finite(tensor: torch.Tensor, where: str | Path, name: str) -> torch.Tensor:
    """``tensor``, or :class:`InputError` if it holds NaN or infinite values (a corrupt or diverged file).

    >>> import torch
    >>> check_finite(torch.ones(2), "delta.safetensors", "w").sum().item()
    2.0
    """
    import torch

    if tensor.is_floating_point() or tensor.is_complex():
        bad = int((~torch.isfinite(tensor)).sum().item())
        if bad:
            plural = "s" if bad != 1 else ""
            raise InputError(
                f"{where}: tensor {name!r} has {bad} NaN or infinite value{plural} "
                f"(of {tensor.numel()}); the file is corrupt or came from a diverged run: regenerate it"
            )
    return tensor


def tensor_shapes(path: str | Path, *, what: str = "safetensors file") -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from a safetensors header (no tensor is read).

    Raises:
        InputError: not a readable safetensors file (truncated, corrupted, empty, a pickle).
    """
    from safetensors import safe_open

    p = Path(path)
    if p.suffix in PICKLE_SUFFIXES:
        raise refuse_pickle(p)
    try:
        with safe_open(str(p), framework="pt") as fh:
            return {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own error types
        raise _unreadable(p, what, exc) from None


def _unreadable(path: str | Path, what: str, exc: BaseException) -> InputError:
    detail = (str(exc).splitlines() or [type(exc).__name__])[0]
    return InputError(f"{path}: not a readable {what} ({detail}); it may be truncated or corrupted: write or copy it again")


def read_tagged(path: str | Path, fmt: str, *, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors, metadata)`` of ``path``; :class:`InputError` unless it is safetensors tagged ``fmt``.

    Every floating-point tensor is checked to be finite.
    """
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such {what}")
    if p.suffix in PICKLE_SUFFIXES:
        raise refuse_pickle(p)
    try:
        with safe_open(str(p), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own error types
        raise _unreadable(p, f"safetensors {what}", exc) from None
    if meta.get("format") != fmt:
        raise InputError(f"{p}: not an editkit {what} (format {meta.get('format')!r})")
    for name, tensor in tensors.items():
        check_finite(tensor, p, name)
    return tensors, meta
