"""Provenance helpers: versions, model identity, and a hash of the weights.

torch is imported only inside the functions that need it, so that
``import editkit.report`` stays cheap.

>>> prov = provenance(["editkit", "eval"], models=[], device="cpu", seed=0)
>>> prov.versions["python"].count(".") >= 1
True
"""

from __future__ import annotations

import hashlib
import platform
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from importlib import metadata
from typing import TYPE_CHECKING, Any

from editkit.report.schema import ModelInfo, Provenance

if TYPE_CHECKING:
    import torch

_VERSIONED_PACKAGES = ("torch", "transformers", "numpy", "safetensors", "accelerate", "peft")


def _package_versions() -> dict[str, str]:
    """Installed versions, read from package metadata (nothing is imported)."""
    versions = {"python": platform.python_version()}
    for name in _VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    torch_mod = sys.modules.get("torch")  # only if already imported: never import it here
    cuda = getattr(getattr(torch_mod, "version", None), "cuda", None)
    if cuda:
        versions["cuda"] = str(cuda)
    return versions


def provenance(
    command: Sequence[str] | str,
    models: Iterable[ModelInfo],
    device: Any,
    seed: int | None = None,
    backend: str = "torch",
) -> Provenance:
    """Build a :class:`Provenance` stamped with the editkit version, UTC time and versions.

    Args:
        command: The argv (``sys.argv``) or a description of the API call.
        models: One :class:`ModelInfo` per model involved (see :func:`model_info`).
        device: The device the work ran on (a string or ``torch.device``).
        seed: The random seed, if one was set.
        backend: The array backend used for linear algebra ("torch", "cupy", ...).

    Returns:
        A new Provenance; ``versions`` holds python and the installed versions of
        torch, transformers, numpy and friends (plus CUDA when torch is loaded).

    >>> provenance("editkit.evaluate(model, tok, reqs)", [], "cuda:0").command
    ['editkit.evaluate(model, tok, reqs)']
    """
    from editkit import __version__

    return Provenance(
        editkit_version=__version__,
        created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        command=[command] if isinstance(command, str) else [str(c) for c in command],
        models=list(models),
        device=str(device),
        backend=backend,
        seed=seed,
        versions=_package_versions(),
    )


def _dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def model_info(
    model: torch.nn.Module,
    spec: str,
    role: str = "model",
    weights_sha256: str | None = None,
) -> ModelInfo:
    """Describe a loaded model: its ``config.model_type``, parameter count and dtype.

    Tied parameters are counted once. A model whose parameters mix dtypes gets
    them joined by ``+`` in order of size (e.g. ``"bfloat16+float32"``). A
    module without a ``config`` gets its class name as ``model_type``.

    Args:
        model: A torch module (duck-typed: ``parameters()`` and optional ``config``).
        spec: What the user passed to load it (zoo alias, path, hub id).
        role: "model", "base", "tuned" or "edited".
        weights_sha256: A hash from :func:`weights_sha256`, if computed.

    Returns:
        The :class:`ModelInfo`.

    >>> import torch
    >>> model_info(torch.nn.Linear(3, 2), spec="toy").n_params
    8
    """
    sizes: dict[str, int] = {}
    n_params = 0
    for p in model.parameters():
        n_params += p.numel()
        name = _dtype_name(p.dtype)
        sizes[name] = sizes.get(name, 0) + p.numel()
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    return ModelInfo(
        role=role,
        spec=str(spec),
        model_type=str(model_type or type(model).__name__),
        n_params=int(n_params),
        dtype="+".join(sorted(sizes, key=lambda k: -sizes[k])) or "none",
        weights_sha256=weights_sha256,
    )


def weights_sha256(model: torch.nn.Module | Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of a model's state dict, independent of device and file format.

    For each key in sorted order the hash takes ``name``, the dtype name (as in
    ``torch.float32`` without ``torch.``) and the shape joined by ``x``, each
    followed by a NUL byte, then the tensor's raw bytes (row-major, native
    byte order: little-endian on every supported platform). Tied weights
    appear under each of their keys. One tensor at a time is copied to the
    CPU, so memory stays low; expect 1-2 s per GB of weights on one CPU core.

    This is not the hash of any file on disk: the same weights saved as
    safetensors, GGUF or a PyTorch pickle give the same value here.

    Args:
        model: A module (its ``state_dict()`` is hashed; weights a device map
            offloads are read where they are stored) or a name -> tensor mapping.

    Returns:
        The hex digest (64 characters).

    Raises:
        ValueError: If a tensor has no data (on the ``meta`` device, not offloaded).

    >>> import torch
    >>> len(weights_sha256(torch.nn.Linear(3, 2)))
    64
    """
    import torch

    from editkit.placement import is_offloaded, param_value

    module = model if isinstance(model, torch.nn.Module) else None
    state = model.state_dict() if hasattr(model, "state_dict") else model
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name]
        if t.is_meta and module is not None and is_offloaded(module, name):
            t = param_value(module, name)
        if t.is_meta:
            raise ValueError(f"cannot hash weights: {name} is on the meta device (not loaded)")
        shape = "x".join(str(s) for s in t.shape)
        h.update(f"{name}\0{_dtype_name(t.dtype)}\0{shape}\0".encode())
        # [numel * itemsize] bytes; reshape first because 0-d tensors cannot be viewed as bytes
        data = t.detach().reshape(-1).cpu().contiguous().view(torch.uint8)
        h.update(data.numpy().data)  # a memoryview over the bytes, no copy
    return h.hexdigest()
