"""The torch backend: ``torch.linalg`` on one torch device (CPU is the reference backend).

>>> b = TorchBackend("cpu")                              # doctest: +SKIP
>>> s = b.svdvals(torch.randn(3, 8, 5))                  # [3, 5]  # doctest: +SKIP
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch

from gpu.base import FLOAT_DTYPES, check_dtype, first_line, torch_dtype
from gpu.randomized import randomized_svd


class TorchBackend:
    """``torch.linalg`` on ``device``; arrays are ``torch.Tensor``.

    Args:
        device: a torch device; ``"cuda"`` without an index means the current CUDA device.
    """

    supports_batched = True
    dtypes = FLOAT_DTYPES

    def __init__(self, device: str | torch.device = "cpu") -> None:
        dev = torch.device(device)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        self._device = dev
        self.device = str(dev)
        self.is_gpu = dev.type == "cuda"
        self.name = f"torch-{dev.type}"

    def __repr__(self) -> str:
        return f"TorchBackend(device={self.device!r})"

    def asarray(self, x: Any, dtype: str | None = None) -> torch.Tensor:
        """``x`` as a tensor on this backend's device (no copy when it already is one there)."""
        if isinstance(x, torch.Tensor):
            t = x
        elif isinstance(x, np.ndarray):
            t = torch.as_tensor(np.ascontiguousarray(x))  # torch rejects negative strides
        elif hasattr(x, "__dlpack__"):  # CuPy and other DLPack producers: zero-copy
            t = torch.from_dlpack(x)
        else:
            t = torch.as_tensor(x)
        return t.to(device=self._device, dtype=torch_dtype(dtype))

    def to_torch(self, a: Any) -> torch.Tensor:
        """``a`` itself when it is a tensor, else :meth:`asarray` of it."""
        return a if isinstance(a, torch.Tensor) else self.asarray(a)

    def svd(
        self, a: Any, *, full_matrices: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(U, S, Vh)`` of ``a`` ``[..., m, n]``; see :class:`gpu.Backend`."""
        u, s, vh = torch.linalg.svd(self._input(a), full_matrices=full_matrices)
        return u, s, vh

    def svdvals(self, a: Any) -> torch.Tensor:
        """Singular values of ``a`` ``[..., m, n]``, descending: ``[..., min(m, n)]``."""
        return torch.linalg.svdvals(self._input(a))

    def eigh(self, a: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """``(w, V)`` of symmetric ``a`` ``[..., n, n]``, eigenvalues ascending."""
        w, v = torch.linalg.eigh(self._input(a), UPLO="L")
        return w, v

    def lstsq(self, a: Any, b: Any, *, rcond: float | None = None) -> torch.Tensor:
        """Minimum-norm least-squares solution; see :class:`gpu.Backend`.

        On CPU this is LAPACK ``gelsd``. CUDA's only driver (``gels``) assumes full
        rank, so on other devices the solution goes through the pseudo-inverse,
        which has the same ``rcond`` cut-off.
        """
        a, b = self._input(a), self._input(b)
        vector = b.ndim == a.ndim - 1
        rhs = b.unsqueeze(-1) if vector else b  # [..., m, k]
        if self._device.type == "cpu":
            x = torch.linalg.lstsq(a, rhs, rcond=rcond, driver="gelsd").solution
        else:
            x = torch.linalg.pinv(a, rtol=rcond) @ rhs  # [..., n, k]
        return x.squeeze(-1) if vector else x

    def lowrank_svd(
        self, a: Any, q: int, *, niter: int = 2, oversample: int = 10, seed: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Randomized rank-``q`` SVD; see :func:`gpu.randomized.randomized_svd`."""
        return randomized_svd(
            self._input(a),
            q,
            niter=niter,
            oversample=oversample,
            seed=seed,
            asarray=self.asarray,
            qr=_q_factor,
            svd=self.svd,
        )

    def _input(self, a: Any) -> torch.Tensor:
        t = self.asarray(a)
        check_dtype(self, t)
        return t


def _q_factor(a: torch.Tensor) -> torch.Tensor:
    return torch.linalg.qr(a).Q


@lru_cache(maxsize=1)
def probe_cuda() -> str | None:
    """``None`` when torch can run a CUDA SVD here, else one line: what is missing and how to fix it."""
    if not torch.cuda.is_available():
        if torch.version.cuda is None:
            return (
                f"this torch ({torch.__version__}) is a CPU-only build; install a CUDA build "
                "of torch (https://pytorch.org/get-started/locally/)"
            )
        return (
            f"torch (CUDA {torch.version.cuda} build) sees no CUDA device; "
            "check the NVIDIA driver and CUDA_VISIBLE_DEVICES"
        )
    try:
        s = torch.linalg.svdvals(torch.tensor([[2.0, 0.0], [0.0, 1.0]], device="cuda"))
        top = float(s[0])  # synchronises, so a failed kernel surfaces here
    except Exception as exc:  # any CUDA/cuSOLVER failure means "not usable"
        return f"torch cannot run a CUDA SVD here ({first_line(exc)}); check the NVIDIA driver"
    if abs(top - 2.0) > 1e-4:
        return (
            f"torch's CUDA SVD gave a wrong result ({top} instead of 2.0); check the NVIDIA driver"
        )
    return None
