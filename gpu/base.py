"""The contract every array backend meets, and the error for a backend that cannot run.

A backend wraps one array library on one device. Its arrays are the library's own
(``torch.Tensor`` for the torch backends, ``cupy.ndarray`` for CuPy); ``asarray``
brings data in and ``to_torch`` hands results back. Matrices are the last two axes,
so every operation also takes a batch (``[..., m, n]``).

>>> backend = get_backend("torch-cpu")                      # doctest: +SKIP
>>> u, s, vh = backend.svd(backend.asarray(weight))         # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

Array = Any
"""A backend's own array type (``torch.Tensor`` or ``cupy.ndarray``)."""

FLOAT_DTYPES: frozenset[str] = frozenset({"float32", "float64"})
"""The dtypes every backend's linear algebra accepts (half precision is not supported by LAPACK/cuSOLVER)."""


class BackendUnavailable(RuntimeError):
    """A backend asked for by name cannot run here; the message says what is missing and how to fix it."""


@runtime_checkable
class Backend(Protocol):
    """Linear algebra on one array library and device.

    Capability flags: ``name`` (registry key, e.g. ``"torch-cpu"``), ``device``
    (e.g. ``"cuda:0"``), ``is_gpu``, ``supports_batched`` (operations accept
    ``[..., m, n]``) and ``dtypes`` (dtype names the operations accept).
    Operations convert their inputs with :meth:`asarray` first (no copy when the
    input already is a backend array on the backend's device).
    """

    @property
    def name(self) -> str: ...

    @property
    def device(self) -> str: ...

    @property
    def is_gpu(self) -> bool: ...

    @property
    def supports_batched(self) -> bool: ...

    @property
    def dtypes(self) -> frozenset[str]: ...

    def asarray(self, x: Any, dtype: str | None = None) -> Array:
        """``x`` (torch tensor, NumPy or backend array) as a backend array on the backend's device."""
        ...

    def to_torch(self, a: Array) -> torch.Tensor:
        """``a`` as a torch tensor (zero-copy through DLPack where the devices allow it)."""
        ...

    def svd(self, a: Array, *, full_matrices: bool = False) -> tuple[Array, Array, Array]:
        """``(U, S, Vh)`` with ``a == U @ diag(S) @ Vh``; ``S`` descending, thin unless ``full_matrices``."""
        ...

    def svdvals(self, a: Array) -> Array:
        """Singular values of ``a`` (``[..., min(m, n)]``, descending)."""
        ...

    def eigh(self, a: Array) -> tuple[Array, Array]:
        """``(w, V)`` of symmetric ``a`` (lower triangle read); ``w`` ascending, ``a @ V == V * w``."""
        ...

    def lstsq(self, a: Array, b: Array, *, rcond: float | None = None) -> Array:
        """Minimum-norm ``x`` minimising ``||a @ x - b||``; ``b`` is ``[..., m]`` or ``[..., m, k]``.

        Singular values below ``rcond * max(S)`` count as zero (default
        ``eps * max(m, n)``, as in NumPy).
        """
        ...

    def lowrank_svd(
        self, a: Array, q: int, *, niter: int = 2, oversample: int = 10, seed: int = 0
    ) -> tuple[Array, Array, Array]:
        """Randomized rank-``q`` ``(U, S, Vh)`` of ``a``; the same ``seed`` gives the same result."""
        ...


def dtype_name(dtype: Any) -> str:
    """``"float32"`` for ``torch.float32``, ``numpy.float32`` or a CuPy dtype alike."""
    return str(dtype).removeprefix("torch.")


def check_dtype(backend: Backend, a: Array) -> None:
    """Raise ``TypeError`` (naming what is supported) unless ``a``'s dtype is in ``backend.dtypes``."""
    name = dtype_name(a.dtype)
    if name not in backend.dtypes:
        supported = ", ".join(sorted(backend.dtypes))
        raise TypeError(
            f"{backend.name}: dtype {name} is not supported (supported: {supported}); "
            "convert first, e.g. backend.asarray(x, dtype='float32')"
        )


def torch_dtype(name: str | None) -> torch.dtype | None:
    """``torch.float32`` for ``"float32"``; ``None`` for ``None``; ``TypeError`` for an unknown name."""
    import torch

    if name is None:
        return None
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"unknown dtype {name!r}; use a name such as 'float32' or 'float64'")
    return dtype


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, for one-line error reasons."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
