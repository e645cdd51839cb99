"""Randomized low-rank SVD (range finder with power iterations), written once for every backend.

The Gaussian test matrix is drawn on the host with NumPy from ``seed`` and then
moved to the backend, so the same seed gives the same sketch on every backend and
device (results then agree up to floating-point error). The sketch is
``[..., n, q + oversample]``, small next to ``a``.

Reference: Halko, Martinsson and Tropp (2011), algorithms 4.4 and 5.1.

>>> u, s, vh = randomized_svd(a, 8, niter=2, oversample=10, seed=0,
...                           asarray=b.asarray, qr=q_factor, svd=b.svd)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from gpu.base import Array, dtype_name


def randomized_svd(
    a: Array,
    q: int,
    *,
    niter: int,
    oversample: int,
    seed: int,
    asarray: Callable[[Any, str | None], Array],
    qr: Callable[[Array], Array],
    svd: Callable[[Array], tuple[Array, Array, Array]],
) -> tuple[Array, Array, Array]:
    """Rank-``q`` ``(U [..., m, q], S [..., q], Vh [..., q, n])`` of real ``a`` ``[..., m, n]``.

    Args:
        a: the matrix (or batch of matrices), already a backend array.
        q: rank to return, ``1 <= q <= min(m, n)``.
        niter: power iterations (each re-orthonormalised); more sharpens a slowly decaying spectrum.
        oversample: extra sketch columns beyond ``q``.
        seed: seed of the Gaussian sketch.
        asarray: the backend's ``asarray(x, dtype)``.
        qr: ``x -> Q`` of the reduced QR decomposition, batched.
        svd: the backend's thin SVD, batched.
    """
    *batch, m, n = a.shape
    if not 1 <= q <= min(m, n):
        raise ValueError(f"lowrank_svd: q={q} must be between 1 and min(m, n)={min(m, n)}")
    if niter < 0 or oversample < 0:
        raise ValueError(f"lowrank_svd: niter={niter} and oversample={oversample} must be >= 0")
    k = min(q + oversample, m, n)
    rng = np.random.default_rng(seed)
    sketch = asarray(rng.standard_normal((*batch, n, k)), dtype_name(a.dtype))  # [..., n, k]
    a_t = a.swapaxes(-1, -2)  # [..., n, m]
    basis = qr(a @ sketch)  # [..., m, k]
    for _ in range(niter):
        basis = qr(a @ qr(a_t @ basis))  # [..., m, k]
    u_small, s, vh = svd(basis.swapaxes(-1, -2) @ a)  # [..., k, k], [..., k], [..., k, n]
    u = basis @ u_small  # [..., m, k]
    return u[..., :q], s[..., :q], vh[..., :q, :]
