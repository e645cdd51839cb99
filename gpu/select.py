"""Which backends exist, which can run here, and picking one.

``BACKENDS`` is the registry, in ``auto``'s order of preference: CuPy on a usable
CUDA device, then torch on CUDA, then torch on CPU (the reference, always usable).
"Usable" means a real 2x2 SVD ran on the device (the probes, cached per process),
not only that a library says a device is there.

>>> get_backend().name in available_backends()           # doctest: +SKIP
True
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from gpu import cupy_backend, torch_backend
from gpu.base import Backend, BackendUnavailable, first_line
from gpu.torch_backend import TorchBackend

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackendEntry:
    """How to check and build one backend.

    Attributes:
        probe: ``None`` when the backend can run here, else one line saying what
            is missing and how to fix it.
        build: makes the backend (called only after ``probe`` said yes).
    """

    probe: Callable[[], str | None]
    build: Callable[[], Backend]


def _always() -> str | None:
    return None


BACKENDS: dict[str, BackendEntry] = {
    "cupy": BackendEntry(cupy_backend.probe, cupy_backend.CupyBackend),
    "torch-cuda": BackendEntry(torch_backend.probe_cuda, lambda: TorchBackend("cuda")),
    "torch-cpu": BackendEntry(_always, lambda: TorchBackend("cpu")),
}


def available_backends() -> list[str]:
    """Names of the backends that can run here, in ``auto``'s order of preference."""
    return [name for name, entry in BACKENDS.items() if entry.probe() is None]


def get_backend(name: str = "auto") -> Backend:
    """The backend called ``name``, or for ``"auto"`` the first usable one in :data:`BACKENDS`.

    Args:
        name: ``"auto"``, ``"cupy"``, ``"torch-cuda"`` or ``"torch-cpu"``.

    Raises:
        BackendUnavailable: ``name`` was asked for explicitly and cannot run here
            (``"auto"`` never raises: torch on CPU always works).
        ValueError: ``name`` is not a known backend.

    >>> get_backend("torch-cpu").device
    'cpu'
    """
    if name == "auto":
        return _first_usable()
    entry = BACKENDS.get(name)
    if entry is None:
        known = ", ".join(["auto", *BACKENDS])
        raise ValueError(f"unknown array backend {name!r}; choose one of: {known}")
    reason = entry.probe()
    if reason is not None:
        raise BackendUnavailable(f"array backend {name!r} is not available: {reason}")
    return entry.build()


def _first_usable() -> Backend:
    for name, entry in BACKENDS.items():
        try:
            reason = entry.probe()
            if reason is None:
                backend = entry.build()
                log.debug("array backend: %s (%s)", name, backend.device)
                return backend
        except Exception as exc:  # a broken optional backend must not break "auto"
            reason = f"failed to start ({first_line(exc)})"
        log.debug("array backend %s skipped: %s", name, reason)
    return TorchBackend("cpu")
