"""On-disk cache of the base model's singular bases (they do not depend on the tuned model).

One safetensors file per base matrix, named by a SHA-256 of the exact fp32
matrix that was decomposed (shape + bytes, in ``[out, in]`` layout), so the key
is the content itself: the same matrix in any model or run hits, a changed one
never does. Each file holds ``u`` (every left singular vector, ``[m, min(m, n)]``,
fp32) and ``s``, tagged ``editkit-intruders-basis/1``. Files are written
atomically; an unreadable file counts as a miss and is rewritten.

Size: ``4 * m * min(m, n)`` bytes per matrix (64 MiB for 4096 x 4096).
The default folder is ``$EDITKIT_CACHE/intruders`` (else ``~/.cache/editkit/intruders``).

>>> cache = BasisCache(default_cache_dir())              # doctest: +SKIP
>>> u0, s0 = cache.basis(w0, backend, name="model.layers.0.mlp.down_proj.weight")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import torch

from audit.intruders.spectral import base_basis
from gpu import Backend

CACHE_FORMAT = "editkit-intruders-basis/1"


def default_cache_dir() -> Path:
    """``$EDITKIT_CACHE/intruders`` (else under ``$XDG_CACHE_HOME`` or ``~/.cache``: ``editkit/intruders``)."""
    from editkit.models.cache import cache_root

    return cache_root() / "intruders"


def matrix_key(w: torch.Tensor) -> str:
    """SHA-256 (hex) of ``w`` as fp32 ``[m, n]``: shape, then the bytes."""
    data = w.detach().to("cpu", torch.float32).contiguous()
    digest = hashlib.sha256(f"{CACHE_FORMAT}:{tuple(data.shape)}:".encode())
    digest.update(data.numpy().data.cast("B"))
    return digest.hexdigest()


class BasisCache:
    """Every left singular vector of base matrices, cached in ``root`` (None: no cache).

    Args:
        root: the cache folder (created when first written); None disables caching.
    """

    def __init__(self, root: str | Path | None) -> None:
        self.root = Path(root).expanduser() if root is not None else None
        self.hits = 0
        self.misses = 0

    def path(self, key: str) -> Path | None:
        return self.root / f"{key}.safetensors" if self.root is not None else None

    def basis(
        self, w0: torch.Tensor, backend: Backend, *, name: str = ""
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(U0, S0)`` of ``w0`` ``[m, n]`` on the backend's device, from the cache or computed and stored."""
        file = self.path(matrix_key(w0)) if self.root is not None else None
        if file is not None and file.is_file():
            cached = self._read(file)
            m, n = (int(x) for x in w0.shape)
            if cached is not None and tuple(cached[0].shape) == (m, min(m, n)):
                self.hits += 1
                u, s = cached
                return backend.to_torch(backend.asarray(u)), backend.to_torch(backend.asarray(s))
        self.misses += 1
        u, s = base_basis(w0, backend)
        if file is not None:
            self._write(file, u, s, name=name, shape=tuple(w0.shape))
        return u, s

    @staticmethod
    def _read(file: Path) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(u, s)`` from ``file``, or None when it is not a sound cache entry (wrong tag or shapes, NaN or inf).

        Finiteness is checked through the sums (NaN and inf propagate; the
        entries are bounded), a single pass without a mask.
        """
        from safetensors import safe_open

        try:
            with safe_open(str(file), framework="pt") as fh:
                if (fh.metadata() or {}).get("format") != CACHE_FORMAT:
                    return None
                u, s = fh.get_tensor("u"), fh.get_tensor("s")
        except Exception:  # safetensors raises its own error types; any unreadable file is a miss
            return None
        if u.dim() != 2 or s.dim() != 1 or u.shape[1] != s.shape[0] or u.dtype != torch.float32:
            return None
        if not (math.isfinite(float(u.sum())) and math.isfinite(float(s.sum()))):
            return None
        return u, s

    @staticmethod
    def _write(file: Path, u: torch.Tensor, s: torch.Tensor, *, name: str, shape: tuple[int, ...]) -> None:
        from safetensors.torch import save

        from editkit.outputs import atomic_write_bytes

        meta = {"format": CACHE_FORMAT, "name": name, "shape": "x".join(map(str, shape))}
        tensors = {"u": u.detach().to("cpu").contiguous(), "s": s.detach().to("cpu").contiguous()}
        data = save(tensors, metadata=meta)
        atomic_write_bytes(file, data)
