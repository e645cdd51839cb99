"""Array backend for editkit's linear algebra: CuPy on a CUDA device, torch otherwise.

``get_backend()`` picks, in order, CuPy on a usable CUDA device, torch on CUDA,
then torch on CPU; it never fails. Asking for a backend by name that cannot run
here raises :class:`BackendUnavailable` with the fix (CuPy comes with
``pip install 'editkit[gpu]'``). Every backend has ``svd``, ``svdvals``, ``eigh``,
``lstsq`` and ``lowrank_svd`` (batched over leading axes), plus ``asarray`` and
``to_torch`` to move data in and out (zero-copy between torch and CuPy on CUDA,
through DLPack).

This package imports nothing of editkit's, and CuPy only when a CuPy backend is
probed or built.

>>> import gpu
>>> backend = gpu.get_backend("torch-cpu")
>>> u, s, vh = backend.svd(backend.asarray([[3.0, 0.0], [0.0, 1.0]], dtype="float64"))
>>> backend.to_torch(s).tolist()
[3.0, 1.0]
"""

from __future__ import annotations

from gpu.base import Array, Backend, BackendUnavailable
from gpu.select import BACKENDS, available_backends, get_backend

__all__ = [
    "BACKENDS",
    "Array",
    "Backend",
    "BackendUnavailable",
    "available_backends",
    "get_backend",
]
