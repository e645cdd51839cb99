"""The CuPy backend: cuSOLVER through ``cupy.linalg`` on one CUDA device.

CuPy is an optional extra (``pip install 'editkit[gpu]'``) and is imported only when
a :class:`CupyBackend` is built or :func:`probe` runs, never when ``gpu`` is imported.

Hand-off with torch, and streams:

* With a CUDA build of torch, tensors and arrays cross through DLPack without a
  copy (``cupy.from_dlpack(tensor)``, ``torch.from_dlpack(array)``). Every CuPy
  call this backend makes (hand-offs included) runs inside
  ``cupy.cuda.ExternalStream(torch.cuda.current_stream().cuda_stream)``, so CuPy's
  work is queued on torch's current stream: what torch queued before is done
  before CuPy reads it, and torch work queued after sees CuPy's results, with no
  host synchronisation. If you compute on returned arrays with CuPy yourself, do
  it on that stream too (or synchronise).
* With a CPU-only build of torch (CuPy still works), hand-offs copy through host
  memory and CuPy uses its own current stream; ``to_torch`` returns CPU tensors.

CuPy keeps its own memory pool next to torch's caching allocator; call
``cupy.get_default_memory_pool().free_all_blocks()`` to give its cache back.

>>> b = CupyBackend()                                   # doctest: +SKIP
>>> u, s, vh = b.svd(weight_cuda_tensor)                # cupy arrays  # doctest: +SKIP
>>> s_t = b.to_torch(s)                                  # zero-copy  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from gpu.base import FLOAT_DTYPES, check_dtype, first_line, torch_dtype
from gpu.randomized import randomized_svd

INSTALL_HINT = "pip install 'editkit[gpu]'"


class CupyBackend:
    """``cupy.linalg`` on the current CUDA device; arrays are ``cupy.ndarray``."""

    name = "cupy"
    is_gpu = True
    supports_batched = True
    dtypes = FLOAT_DTYPES

    def __init__(self) -> None:
        self._cp: Any = importlib.import_module("cupy")
        self._index: int = int(self._cp.cuda.runtime.getDevice())
        self._torch_cuda = torch.cuda.is_available()
        self.device = f"cuda:{self._index}"

    def __repr__(self) -> str:
        return f"CupyBackend(device={self.device!r})"

    @contextlib.contextmanager
    def _scope(self) -> Iterator[None]:
        """This backend's device, and torch's current stream on it as CuPy's current stream."""
        cp = self._cp
        with cp.cuda.Device(self._index):
            if not self._torch_cuda:
                yield
                return
            ptr = torch.cuda.current_stream(self._index).cuda_stream
            with cp.cuda.ExternalStream(ptr, self._index):
                yield

    def asarray(self, x: Any, dtype: str | None = None) -> Any:
        """``x`` as a CuPy array on this device: zero-copy from CUDA tensors, copied from host data."""
        cp = self._cp
        with self._scope():
            if isinstance(x, torch.Tensor):
                t = x.detach()
                if dtype is not None:  # convert on the torch side: CuPy has no bfloat16
                    t = t.to(torch_dtype(dtype))
                if self._torch_cuda:
                    arr = cp.from_dlpack(t.to(f"cuda:{self._index}"))
                else:
                    arr = cp.asarray(t.cpu().numpy())
            else:
                # NumPy and lists are copied to the device; CuPy arrays pass through.
                arr = cp.asarray(x)
            return arr if dtype is None else arr.astype(dtype, copy=False)

    def to_torch(self, a: Any) -> torch.Tensor:
        """``a`` as a CUDA tensor sharing its memory (a CPU copy when torch has no CUDA)."""
        with self._scope():
            if self._torch_cuda:
                return torch.from_dlpack(a)
            return torch.from_numpy(np.ascontiguousarray(self._cp.asnumpy(a)))

    def svd(self, a: Any, *, full_matrices: bool = False) -> tuple[Any, Any, Any]:
        """``(U, S, Vh)`` of ``a`` ``[..., m, n]``; see :class:`gpu.Backend`."""
        with self._scope():
            u, s, vh = self._cp.linalg.svd(self._input(a), full_matrices=full_matrices)
        return u, s, vh

    def svdvals(self, a: Any) -> Any:
        """Singular values of ``a`` ``[..., m, n]``, descending: ``[..., min(m, n)]``."""
        with self._scope():
            return self._cp.linalg.svd(self._input(a), compute_uv=False)

    def eigh(self, a: Any) -> tuple[Any, Any]:
        """``(w, V)`` of symmetric ``a`` ``[..., n, n]``, eigenvalues ascending."""
        with self._scope():
            w, v = self._cp.linalg.eigh(self._input(a), UPLO="L")
        return w, v

    def lstsq(self, a: Any, b: Any, *, rcond: float | None = None) -> Any:
        """Minimum-norm least-squares solution through the SVD (``cupy.linalg.lstsq`` is 2-D only)."""
        cp = self._cp
        with self._scope():
            a, b = self._input(a), self._input(b)
            vector = b.ndim == a.ndim - 1
            rhs = b[..., None] if vector else b  # [..., m, k]
            u, s, vh = cp.linalg.svd(a, full_matrices=False)  # [..., m, r], [..., r], [..., r, n]
            if rcond is None:
                rcond = float(cp.finfo(a.dtype).eps) * max(a.shape[-2:])
            keep = s > rcond * s[..., :1]  # s is descending: s[..., :1] is the largest
            s_inv = cp.where(keep, 1.0 / cp.where(keep, s, 1.0), 0.0).astype(a.dtype)
            x = vh.swapaxes(-1, -2) @ (s_inv[..., None] * (u.swapaxes(-1, -2) @ rhs))
            return x[..., 0] if vector else x

    def lowrank_svd(
        self, a: Any, q: int, *, niter: int = 2, oversample: int = 10, seed: int = 0
    ) -> tuple[Any, Any, Any]:
        """Randomized rank-``q`` SVD; see :func:`gpu.randomized.randomized_svd`."""
        with self._scope():
            return randomized_svd(
                self._input(a),
                q,
                niter=niter,
                oversample=oversample,
                seed=seed,
                asarray=self.asarray,
                qr=self._q_factor,
                svd=self.svd,
            )

    def _q_factor(self, a: Any) -> Any:
        return self._cp.linalg.qr(a)[0]

    def _input(self, a: Any) -> Any:
        arr = self.asarray(a)
        check_dtype(self, arr)
        return arr


@lru_cache(maxsize=1)
def probe() -> str | None:
    """``None`` when CuPy can run a cuSOLVER SVD here, else one line: what is missing and how to fix it."""
    if importlib.util.find_spec("cupy") is None:
        return (
            f"CuPy is not installed; install it with: {INSTALL_HINT} (needs an NVIDIA GPU, CUDA 12)"
        )
    try:
        cp: Any = importlib.import_module("cupy")
        s = cp.linalg.svd(cp.asarray([[2.0, 0.0], [0.0, 1.0]]), compute_uv=False)
        top = float(s[0])  # copies to host, so a failed kernel surfaces here
    except Exception as exc:  # no device, driver too old, wrong cupy-cudaXX wheel ...
        return (
            f"CuPy is installed but cannot run a cuSOLVER SVD here ({first_line(exc)}); "
            "check the NVIDIA driver and that the cupy-cuda12x wheel matches your CUDA version"
        )
    if abs(top - 2.0) > 1e-6:
        return f"CuPy's SVD gave a wrong result ({top} instead of 2.0); check the CUDA installation"
    return None
