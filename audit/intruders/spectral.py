"""The SVDs the intruder analysis needs, on the :mod:`gpu` backend.

- The base matrix needs *all* its left singular vectors (dense thin SVD; cached
  on disk by :mod:`audit.intruders.cache`).
- The tuned matrix needs only its top ``q`` singular triplets. When ``q`` is
  small next to the matrix (``4 * (q + oversample) <= min(m, n)``), a
  randomized SVD (:meth:`gpu.Backend.lowrank_svd`, ``niter`` power iterations)
  is tried first and *checked*; otherwise, or when the check fails, the dense
  SVD is used. (A low-rank update takes another route first, with a proven
  bound: :mod:`audit.intruders.certified`.)

The accuracy check. The randomized SVD returns Ritz triplets, for which
``W^T u_i = s_i v_i`` holds exactly, so ``r_i = ||W v_i - s_i u_i||`` is the
whole residual and ``s_i r_i`` is the residual of ``u_i`` as an eigenvector of
``W W^T``. By the Davis-Kahan sin-theta theorem the angle between ``u_i`` and
the exact singular vector then satisfies::

    sin(angle_i) <= s_i * r_i / min_{j != i} |s_i^2 - s_j^2|      (j over the q computed values)

(the gap uses the computed values, so this is an estimate, conservative by
about 10x in our measurements). The randomized result is accepted when the
bound is at most ``angle_tol`` for every one of the top ``k`` vectors; any
``|<u_i, x>|`` (and so the intruder score ``m_i``) is then within
``sqrt(2) * angle_tol`` of its dense-SVD value. Near-degenerate top singular
values (flat spectra) fail the check and fall back to the dense SVD, where the
individual vectors are as (ill-)defined as the reference procedure makes them.

>>> top = top_svd(w, q=32, k=10, backend=gpu.get_backend())      # doctest: +SKIP
>>> top.method, top.angle_bound                                   # doctest: +SKIP
('lowrank', 0.0004)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from gpu import Backend

METHODS: tuple[str, ...] = ("auto", "full", "lowrank")


@dataclass(frozen=True)
class TopSVD:
    """The top ``q`` singular triplets of a matrix ``[m, n]``.

    Attributes:
        u: left singular vectors ``[m, q]``.
        s: singular values ``[q]``, descending.
        vh: right singular vectors ``[q, n]``.
        method: ``"full"`` (dense SVD), ``"lowrank"`` (randomized, checked) or
            ``"certified"`` (from the base basis, certified: :mod:`audit.intruders.certified`).
        angle_bound: the largest estimated ``sin(angle)`` between a returned top-``k``
            vector and the exact one (0 for the dense SVD; a proven bound for ``"certified"``).
        spectrum: more top singular values than ``s`` when the method has them (for
            display), else None (use ``s``).
    """

    u: torch.Tensor
    s: torch.Tensor
    vh: torch.Tensor
    method: str
    angle_bound: float
    spectrum: torch.Tensor | None = None

    @property
    def values(self) -> torch.Tensor:
        """The top singular values known: :attr:`spectrum`, else :attr:`s`."""
        return self.s if self.spectrum is None else self.spectrum


def _torch(backend: Backend, a: object) -> torch.Tensor:
    return backend.to_torch(a)


def on_backend(backend: Backend, w: torch.Tensor) -> torch.Tensor:
    """``w`` in fp32 as a torch tensor on the backend's device (zero-copy where possible)."""
    return _torch(backend, backend.asarray(w, dtype="float32"))


def base_basis(w0: torch.Tensor, backend: Backend) -> tuple[torch.Tensor, torch.Tensor]:
    """``(U0 [m, min(m, n)], S0 [min(m, n)])``: every left singular vector of ``w0`` (dense fp32 SVD).

    Row-major, as read back from the cache, so that later products round the same either way.
    """
    u, s, _ = backend.svd(backend.asarray(w0, dtype="float32"))
    return _torch(backend, u).contiguous(), _torch(backend, s)


def use_lowrank(shape: tuple[int, int], q: int, oversample: int) -> bool:
    """Whether the randomized SVD is worth trying: ``4 * (q + oversample) <= min(m, n)``."""
    return 4 * (q + oversample) <= min(shape)


def angle_bounds(
    w: torch.Tensor, top: tuple[torch.Tensor, torch.Tensor, torch.Tensor], k: int
) -> torch.Tensor:
    """Estimated ``sin(angle)`` of each of the top ``k`` Ritz vectors to the exact one (see module doc)."""
    u, s, vh = top
    residual = torch.linalg.vector_norm(w @ vh[:k].T - u[:, :k] * s[:k], dim=0)  # [k]
    s2 = s.double() ** 2
    gaps = (s2[:k, None] - s2[None, :]).abs()  # [k, q]
    gaps[torch.arange(k), torch.arange(k)] = math.inf
    bound = s[:k].double() * residual.double() / gaps.min(dim=1).values
    return bound.clamp(max=1.0).float()


def top_svd(
    w: torch.Tensor,
    q: int,
    k: int,
    *,
    backend: Backend,
    method: str = "auto",
    angle_tol: float = 1e-2,
    niter: int = 8,
    oversample: int = 10,
    seed: int = 0,
) -> TopSVD:
    """The top ``q`` singular triplets of ``w`` ``[m, n]``, the first ``k`` checked to ``angle_tol``.

    Args:
        w: the matrix (fp32 or castable).
        q: how many triplets to return (``k <= q <= min(m, n)``).
        k: how many leading vectors must be accurate.
        backend: the array backend.
        method: ``"auto"`` (randomized when it pays and passes the check, else
            dense), ``"full"`` (dense), or ``"lowrank"`` (randomized, no fallback;
            for tests and timing).
        angle_tol: largest accepted ``sin(angle)`` bound for the top ``k`` vectors.
        niter: power iterations of the randomized SVD.
        oversample: extra sketch columns of the randomized SVD.
        seed: seed of the randomized sketch.
    """
    if method not in METHODS:
        raise ValueError(f"svd method {method!r}: choose one of {', '.join(METHODS)}")
    shape = (int(w.shape[0]), int(w.shape[1]))
    if method == "lowrank" or (method == "auto" and use_lowrank(shape, q, oversample)):
        a = backend.asarray(w, dtype="float32")
        found = backend.lowrank_svd(a, q, niter=niter, oversample=oversample, seed=seed)
        u, s, vh = (_torch(backend, x) for x in found)
        bound = float(angle_bounds(_torch(backend, a), (u, s, vh), k).max()) if k else 0.0
        if method == "lowrank" or bound <= angle_tol:
            return TopSVD(u, s, vh, "lowrank", bound)
    u, s, vh = (_torch(backend, x) for x in backend.svd(backend.asarray(w, dtype="float32")))
    return TopSVD(u[:, :q], s[:q], vh[:q], "full", 0.0)


def top_singular_values(
    w: torch.Tensor, n: int, *, backend: Backend, method: str = "auto", niter: int = 8
) -> torch.Tensor:
    """The ``n`` largest singular values of ``w`` (randomized when it pays: for display, not checked)."""
    n = min(n, *w.shape)
    if n <= 0:
        return torch.zeros(0)
    a = backend.asarray(w, dtype="float32")
    if method != "full" and use_lowrank((int(w.shape[0]), int(w.shape[1])), n, 10):
        return _torch(backend, backend.lowrank_svd(a, n, niter=niter)[1])
    return _torch(backend, backend.svdvals(a))[:n]


def max_abs_cos(u0: torch.Tensor, ut: torch.Tensor) -> torch.Tensor:
    """``m_i = max_j |<ut_i, u0_j>|`` for each column of ``ut`` ``[m, k]`` against all of ``u0`` ``[m, r]``.

    The columns are unit vectors, so the dot product is the cosine.
    """
    return (u0.T @ ut).abs().max(dim=0).values  # [r, k] -> [k]
