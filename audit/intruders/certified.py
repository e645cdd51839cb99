"""Certified top singular vectors of ``Wt = W0 + dW`` for a low-rank ``dW``, from the cached base basis.

The intruder scores need the top ``k`` left singular vectors of ``Wt``. When the
update is low rank (LoRA, most edits), the cached basis of ``W0`` turns that into
a small problem, and a residual check on the *true* matrix certifies the result.

1. Factor the delta: ``dW = B @ A + E`` with ``A`` orthonormal rows (rank ``r``,
   found by a seeded range finder) and ``||E||_F`` measured.
2. Model. With ``W0 W0^T = U0 S0^2 U0^T`` (the cached SVD) and ``H = W0 A^T``,
   ``Wt Wt^T = U0 S0^2 U0^T + [H, B] C [H, B]^T`` with
   ``C = [[0, I], [I, A A^T]]``. In the basis ``U`` (``U0``, plus the part of
   ``range(B)`` outside it when ``W0`` is tall) this is
   ``K = diag(d) + Y C Y^T``, ``Y = U^T [H, B]``: diagonal plus rank ``2r``, so
   multiplying by ``K`` costs ``O(N r)`` per vector. Its top eigenpairs come from
   a Chebyshev-filtered subspace iteration started at the top base directions
   and ``Y`` (fp64).
3. Check on the true matrix, in fp64. The top ``k`` model vectors (``k + 6``
   when no certified gap follows the ``k``-th) are lifted (``U @ x``) and
   Rayleigh-Ritz is done with ``Wt`` itself, giving Ritz values ``theta_j`` of
   ``M = Wt Wt^T``, residuals ``r_j = ||M x_j - theta_j x_j||`` and the block
   residual ``rho = ||M X - X Theta||_2``.
4. Certificate (exact arithmetic on the fp32 matrix ``Wt``):

   - (Kahan-Parlett-Jiang) as many eigenvalues of ``M`` as Ritz values lie one
     each within ``rho`` of the ``theta_j``.
   - (count) ``K``'s eigenvalues above ``mu`` are counted exactly, in
     ``O(N r^2)``, by Sylvester's law of inertia on the bordered matrix
     ``[[D - mu, Y], [Y^T, -C^-1]]``. By Weyl, ``M`` has at most that many above
     ``tau = mu + eps_model`` (``eps_model`` bounds ``||M - U K U^T||``: see
     :func:`model_error`). When this count is ``c`` and ``theta_c - rho > tau``,
     the ``c`` eigenvalues above ``tau`` are exactly the matched ones: no top
     eigenvalue is missed.
   - (Davis-Kahan) for ``i < k`` whose interval ``[theta_i - rho, theta_i + rho]``
     meets no other, ``lambda_i`` is simple, lies in it, and
     ``sin(x_i, exact u_i) <= r_i / delta_i``, where ``delta_i`` is the distance
     from ``theta_i`` to the other intervals and to ``tau``.

   Then ``|m_i - m_i(exact)| <= sqrt(2) sin_i`` (``m_i`` is 1-Lipschitz in the
   unit vector, sign-invariant).
5. The reference computes ``Ut`` with a dense fp32 SVD, whose vectors are off by
   up to about ``u * lambda_1 / delta_i`` (backward stability; ``u = 2^-24``; 4.6
   times that at most on the default model's matrices, allowed
   ``REFERENCE_ERROR = 64`` times), and both sides round ``U0^T u`` in fp32.
   The counts at ``eps`` are certified equal to the reference's when every
   ``|m_i - eps|`` exceeds the sum of these allowances; otherwise the caller
   falls back to the dense SVD (near-ties, clusters across the threshold).

The base basis ``U0`` is the reference's own (same routine, same fp32 matrix),
so it contributes no difference. Two allowances are measured models rather than
theorems with known constants: the backward error of the fp32 SVDs (the base's,
inside :func:`model_error`, and the reference's), each set at more than 10 times
the largest value seen. Everything else is proven for the fp32 ``Wt``.

Limits: ``M`` squares the spectrum, so its residuals are about ``u lambda_1``; a
top-``k`` singular value far below ``sigma_1`` (an update that dwarfs the base)
cannot be separated from its neighbours that way, and the dense SVD decides.

>>> lr = factor_low_rank(dw)                                                 # doctest: +SKIP
>>> found = certified_top(w0, wt, lr, u0, s0, k=10, q=32, eps=0.5)           # doctest: +SKIP
>>> found.ok, found.max_cos, found.errors                                    # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

U32 = 2.0**-24
"""Unit roundoff of fp32."""

REFERENCE_ERROR = 64.0
"""Allowance for the reference's dense fp32 SVD: its ``sin(angle)`` is taken as at most ``64 u lambda_1 / delta_i``."""

MODEL_ERROR = 16.0
"""Allowance for the fp32 base SVD and rounding in the model: ``16 u (sqrt(m) + sqrt(n)) Lambda`` (see :func:`model_error`)."""

GUARD = 6
"""Extra Ritz vectors beyond ``k`` that are lifted and checked (room to find a spectral gap)."""


def _tmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a.T @ b`` for tall ``a`` and skinny ``b``, computed as ``(b.T @ a).T`` (2-3x faster on CPU BLAS)."""
    return (b.T @ a).T


@dataclass(frozen=True)
class LowRankDelta:
    """``dW = b @ a + E``: the low-rank part and the size of the rest.

    Attributes:
        b: ``[m, r]`` fp32 (column scales are the singular values).
        a: ``[r, n]`` fp32 with orthonormal rows.
        sv: singular values of the sketched delta, descending (``[s]``, ``s >= r``): its spectrum.
        residual: ``||dW - b @ a||_F``.
    """

    b: torch.Tensor
    a: torch.Tensor
    sv: torch.Tensor
    residual: float

    @property
    def rank(self) -> int:
        return int(self.a.shape[0])


def factor_low_rank(
    dw: torch.Tensor, *, sizes: tuple[int, ...] = (24, 72), rtol: float = 1e-6, seed: int = 0
) -> LowRankDelta | None:
    """``dW``'s low-rank factorisation by a seeded range finder, or None when it is not low rank.

    A sketch of ``s`` columns is accepted when at least 8 of its singular values
    are below ``rtol`` times the largest (the range was captured); the sizes are
    tried in turn, the larger ones only up to a quarter of ``min(m, n)``.

    >>> low = factor_low_rank(b @ a)        # doctest: +SKIP
    >>> low.rank, low.residual              # doctest: +SKIP
    (8, 3e-05)
    """
    m, n = (int(x) for x in dw.shape)
    gen = torch.Generator().manual_seed(seed)
    for i, size in enumerate(sizes):
        if i and size > min(m, n) // 4:
            break
        s = min(size, m, n)
        sketch = torch.randn(n, s, generator=gen).to(device=dw.device, dtype=dw.dtype)  # [n, s]
        q = torch.linalg.qr(dw @ sketch).Q  # [m, s]
        ug, sg, vh = torch.linalg.svd(q.T @ dw, full_matrices=False)  # [s, n] sketch of the rows
        top = float(sg[0])
        r = int((sg > rtol * top).sum()) if top > 0 else 0
        if r > s - 8:
            continue
        b = q @ (ug[:, :r] * sg[:r])  # [m, r]
        a = vh[:r]  # [r, n]
        residual = float(torch.linalg.vector_norm(torch.addmm(dw, b, a, alpha=-1.0)))
        return LowRankDelta(b, a, sg, residual)
    return None


@dataclass(frozen=True)
class GramModel:
    """``Wt Wt^T`` in the basis ``U = [U0, extra]`` ``[m, N]``: ``K = diag(d) + Y C Y^T`` (fp64).

    ``extra`` (tall ``W0`` only) spans the part of ``range(B)`` outside ``range(U0)``;
    ``lost`` is the norm of what it leaves out (below ``1e-6 ||B||``).
    """

    u0: torch.Tensor  # [m, N0] fp32
    extra: torch.Tensor | None  # [m, e] fp32
    d: torch.Tensor  # [N]
    y: torch.Tensor  # [N, 2r]
    c: torch.Tensor  # [2r, 2r]
    yc: torch.Tensor  # [N, 2r]: Y @ C
    lost: float = 0.0

    @property
    def size(self) -> int:
        return int(self.d.shape[0])

    @property
    def basis(self) -> torch.Tensor:
        """``U`` ``[m, N]`` as one matrix (a copy when extended)."""
        return self.u0 if self.extra is None else torch.cat([self.u0, self.extra], dim=1)

    def lift(self, x: torch.Tensor) -> torch.Tensor:
        """``U @ x`` for ``x`` ``[N, p]`` (fp32 result ``[m, p]``)."""
        x = x.to(self.u0.dtype)
        n0 = int(self.u0.shape[1])
        out = self.u0 @ x[:n0]
        return out if self.extra is None else torch.addmm(out, self.extra, x[n0:])

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        """``K @ x`` for ``x`` ``[N, p]``."""
        return torch.addmm(self.d[:, None] * x, self.yc, self.y.T @ x)

    def dense(self) -> torch.Tensor:
        k = torch.diag(self.d) + self.yc @ self.y.T
        return (k + k.T) / 2

    def count_above(self, mu: float) -> int | None:
        """How many eigenvalues of ``K`` exceed ``mu`` (None when ``mu`` is too close to call).

        ``In(D - mu + Y C Y^T) = In(D - mu) + In(-(C^-1 + Y^T (D - mu)^-1 Y)) - In(-C^-1)``
        (Haynsworth's inertia additivity on the bordered matrix, both ways).
        """
        shift = self.d - mu  # [N]
        scale = float(self.d.abs().max()) if self.size else 1.0
        if bool((shift.abs() <= 1e-12 * scale).any()):
            return None
        above = int((shift > 0).sum())
        if self.c.shape[0] == 0:
            return above
        c_inv = torch.linalg.inv(self.c)
        schur = c_inv + (self.y / shift[:, None]).T @ self.y  # [2r, 2r]
        ev = torch.linalg.eigvalsh((schur + schur.T) / 2)
        if bool((ev.abs() <= 1e-10 * ev.abs().max()).any()):
            return None
        return above + int((ev < 0).sum()) - int((torch.linalg.eigvalsh(c_inv) < 0).sum())


def gram_model(w0: torch.Tensor, u0: torch.Tensor, s0: torch.Tensor, delta: LowRankDelta) -> GramModel:
    """The model of ``(W0 + b a)(W0 + b a)^T`` in the basis ``U0`` (extended by ``range(b)`` when tall)."""
    b, a = delta.b, delta.a
    r = delta.rank
    d = s0.double() ** 2
    extra, lost = None, 0.0
    z = torch.cat([w0 @ a.T, b], dim=1)  # [m, 2r]: [H, B]
    y = _tmm(u0, z)  # [N0, 2r]
    if u0.shape[1] < u0.shape[0] and r:  # tall W0: range(B) may leave range(U0)
        outside = b - u0 @ y[:, r:]
        outside = outside - u0 @ _tmm(u0, outside)  # [m, r], twice for orthogonality
        uo, so, _ = torch.linalg.svd(outside, full_matrices=False)
        keep = min(int((so > 1e-6 * float(delta.sv[0])).sum()), u0.shape[0] - u0.shape[1])
        lost = float(torch.linalg.vector_norm(so[keep:]))
        if keep:
            extra = uo[:, :keep]  # [m, keep]
            y = torch.cat([y, _tmm(extra, z)])
            d = torch.cat([d, d.new_zeros(keep)])
    y = y.double()  # [N, 2r]
    c = torch.zeros(2 * r, 2 * r, dtype=torch.float64, device=y.device)
    if r:
        eye = torch.eye(r, dtype=torch.float64, device=y.device)
        c[:r, r:] = eye
        c[r:, :r] = eye
        c[r:, r:] = (a @ a.T).double()
    return GramModel(u0, extra, d, y, c, y @ c, lost)


def model_error(model: GramModel, shape: tuple[int, int], s0_max: float, delta: LowRankDelta, wt_fro: float) -> float:
    """A bound on ``||Wt Wt^T - U K U^T||_2``.

    ``Lambda = (s0_1 + ||B A||_2 + ||E||_F)^2 >= ||Wt||_2^2``; the fp32 base SVD,
    the basis' orthogonality and the fp32 products behind ``Y`` are allowed
    ``MODEL_ERROR u (sqrt(m) + sqrt(n)) Lambda`` (measured: under 50 u Lambda on
    the default model); the remainder ``E`` (plus the rounding of ``W0 + dW``)
    adds ``2 sqrt(Lambda) e + e^2``, and so does the part of ``B`` outside the basis.
    """
    m, n = shape
    rest = delta.residual + U32 * wt_fro + model.lost
    top = float(delta.sv[0]) if delta.rank else 0.0
    big = (s0_max + top + rest) ** 2
    return MODEL_ERROR * U32 * (math.sqrt(m) + math.sqrt(n)) * big + 2 * math.sqrt(big) * rest + rest**2


def _ritz(model: GramModel, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rayleigh-Ritz of ``K`` on ``range(q)``: ``(x, theta, K x)``, descending."""
    q = torch.linalg.qr(q).Q
    kq = model.matmul(q)
    h = q.T @ kq
    theta, v = torch.linalg.eigh((h + h.T) / 2)
    theta, v = theta.flip(0), v.flip(1)
    return q @ v, theta, kq @ v


def _chebyshev(model: GramModel, x: torch.Tensor, hi: float, top: float, degree: int) -> torch.Tensor:
    """``p(K) x`` with ``p = T_degree`` mapped so that ``[0, hi]`` goes to ``[-1, 1]``, scaled to ``p(top) = 1``."""
    centre = half = hi / 2
    t0 = (top - centre) / half
    shifted = (model.d - centre)[:, None]  # [N, 1]: diag(K) - centre
    rho_prev, rho = 1.0, t0  # T_j(t0), the scale
    prev = x
    cur = torch.addmm(shifted * x, model.yc, model.y.T @ x) / (half * t0)
    for _ in range(degree - 1):
        rho_next = 2 * t0 * rho - rho_prev
        scale = 2 * rho / (half * rho_next)
        nxt = torch.addmm(prev, model.yc, model.y.T @ cur, beta=-rho_prev / rho_next, alpha=scale)
        nxt.addcmul_(shifted, cur, value=scale)
        prev, cur, rho_prev, rho = cur, nxt, rho, rho_next
    return cur


def model_eigs(
    model: GramModel, p: int, qc: int, q: int, *, degree: int = 12, rounds: int = 12, tol: float = 1e-7
) -> tuple[torch.Tensor, torch.Tensor]:
    """The top eigenpairs ``(x [N, p], theta [p])`` of ``K``: the first ``qc`` to residual ``tol * theta_1``.

    The rest, up to ``q``, are for display: residual ``1e-4 theta_1`` (their values are then
    good to about ``1e-8 theta_1``, the error being quadratic in the residual).

    Dense ``eigh`` for small ``N``; else Chebyshev-filtered subspace iteration
    (filter interval ``[0, theta_p]``; ``K`` is a Gram matrix), started from the
    top base directions and ``Y``.
    """
    n = model.size
    p = min(p, n)
    if n <= max(200, 4 * p):
        theta, v = torch.linalg.eigh(model.dense())
        return v.flip(1)[:, :p], theta.flip(0)[:p]
    r2 = int(model.y.shape[1])
    heads = max(p - r2, p // 2)
    start = torch.zeros(n, heads, dtype=torch.float64, device=model.d.device)
    order = torch.argsort(model.d, descending=True)[:heads]
    start[order, torch.arange(heads, device=start.device)] = 1.0
    x, theta, kx = _ritz(model, torch.cat([start, model.y], dim=1))
    width = int(x.shape[1])
    for _ in range(rounds):
        res = torch.linalg.vector_norm(kx - x * theta, dim=0)
        top = float(theta[0])
        rest = float(res[qc:q].max()) if q > qc else 0.0
        if float(res[:qc].max()) <= tol * top and rest <= 1e-4 * top:
            break
        hi = float(theta[width - 1])
        if hi <= 1e-9 * top:
            theta_d, v = torch.linalg.eigh(model.dense())
            return v.flip(1)[:, :p], theta_d.flip(0)[:p]
        x, theta, kx = _ritz(model, _chebyshev(model, x, hi, top, degree))
    return x[:, :p], theta[:p]


@dataclass(frozen=True)
class Certified:
    """The certified top vectors of ``Wt`` and how far each score may be from the reference's.

    Attributes:
        u: ``[m, c]`` Ritz vectors (fp32, ``c >= k``); ``s``: ``[c]``; ``vh``: ``[c, n]``.
        spectrum: top singular values of ``Wt`` (``c`` checked, then the model's).
        max_cos: ``m_i`` for the top ``k``.
        errors: allowed ``|m_i - m_i(reference)|`` (inf where nothing is certified).
        sin: ``sin(angle)`` bounds of the top ``k`` vectors (1 where nothing is certified).
        frobenius_sq: ``||Wt||_F^2`` (fp64).
        ok: every ``|m_i - eps| > errors_i``: the count at ``eps`` equals the reference's.
        reason: why not, else ``""``.
    """

    u: torch.Tensor
    s: torch.Tensor
    vh: torch.Tensor
    spectrum: torch.Tensor
    max_cos: torch.Tensor
    errors: tuple[float, ...]
    sin: tuple[float, ...]
    frobenius_sq: float
    ok: bool
    reason: str


def _true_ritz(
    w: torch.Tensor, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Rayleigh-Ritz of ``W W^T`` (``w`` fp64) on ``range(x)``: ``(u, theta, W^T u, residual norms, rho)``."""
    q = torch.linalg.qr(x.double()).Q  # [m, c]
    z = _tmm(w, q)  # [n, c]
    theta, v = torch.linalg.eigh(z.T @ z)
    theta, v = theta.flip(0), v.flip(1)
    u, zv = q @ v, z @ v
    res = w @ zv - u * theta  # [m, c]
    rho = float(torch.linalg.eigvalsh(res.T @ res).max().clamp(min=0).sqrt())
    return u, theta, zv, torch.linalg.vector_norm(res, dim=0), rho


def _cut(
    model: GramModel, theta: torch.Tensor, kappa: torch.Tensor, rho: float, err: float, k: int
) -> tuple[int, float] | None:
    """``(c, tau)``: exactly ``c >= k`` eigenvalues of ``M`` exceed ``tau``, all matched to ``theta[:c]``."""
    for c in range(k, min(int(theta.shape[0]), int(kappa.shape[0]) - 1) + 1):
        low = float(theta[c - 1]) - rho  # every matched eigenvalue j < c is above this
        nxt = float(kappa[c])  # K's (c+1)-th eigenvalue
        room = low - err - nxt
        if room <= 0:
            continue
        mu = nxt + 0.05 * room
        if mu <= 0:  # U K U^T also has eigenvalues 0 (tall W0): stay above them
            mu = (low - err) / 2
        if mu > 0 and model.count_above(mu) == c:
            return c, mu + err
    return None


def certified_top(
    w0: torch.Tensor,
    wt: torch.Tensor,
    delta: LowRankDelta,
    u0: torch.Tensor,
    s0: torch.Tensor,
    *,
    k: int,
    q: int,
    eps: float,
) -> Certified | None:
    """The top ``k`` (``q`` for the spectrum) singular triplets of ``wt = w0 + delta``, certified at ``eps``.

    Args:
        w0, wt: base and tuned matrices ``[m, n]`` (fp32, same device).
        delta: ``wt - w0`` factored (:func:`factor_low_rank`).
        u0, s0: every left singular vector and value of ``w0`` (the cached basis).
        k: how many top vectors are scored; ``q``: how many singular values are reported.
        eps: the intruder threshold to certify the count at.

    Returns:
        None when the matrix is too small for the method (``N <= k``), else a
        :class:`Certified` (check ``ok``).
    """
    m, n = (int(x) for x in wt.shape)
    model = gram_model(w0, u0, s0, delta)
    qc = min(k + GUARD, model.size)
    if qc <= k:
        return None
    p = min(max(q, qc) + 8, model.size)
    x, kappa = model_eigs(model, p, qc, min(max(q, qc), p))
    lifted = model.lift(x[:, :qc])  # [m, qc]
    w = wt.double()
    fro = float(torch.linalg.vector_norm(w))
    err = model_error(model, (m, n), float(s0[0]), delta, fro)
    for width in (k, qc):  # the top k alone first; the guard vectors when no gap follows them
        u, theta, zv, res, rho = _true_ritz(w, lifted[:, :width])
        cut = _cut(model, theta, kappa, rho, err, k)
        if cut is not None:
            break
    sigma = theta.clamp(min=0).sqrt()
    u32 = u.float()
    vh = (zv / sigma.clamp(min=1e-30)).T.float()  # [c, n]
    spectrum = torch.cat([sigma, kappa[width:q].clamp(min=0).sqrt()]).float()
    max_cos = _tmm(u0, u32[:, :k]).abs().max(dim=0).values  # [k]
    rounding = 2 * (m * U32) / (1 - m * U32)  # fp32 U0^T u, ours and the reference's

    def result(errors: list[float], sins: list[float], reason: str) -> Certified:
        return Certified(
            u32, sigma.float(), vh, spectrum, max_cos, tuple(errors), tuple(sins), fro**2, not reason, reason
        )

    if cut is None:
        return result([math.inf] * k, [1.0] * k, "no certified spectral gap after the top k")
    c, tau = cut
    values, norms, scores = theta.tolist(), res.tolist(), max_cos.tolist()
    top = values[0] + rho  # >= lambda_1 once the cut holds
    errors, sins = [], []
    for i in range(k):
        others = [abs(values[i] - values[j]) for j in range(c) if j != i]
        if others and min(others) <= 2 * rho:
            return result([math.inf] * k, [1.0] * k, "clustered top singular values")
        gap = min([g - rho for g in others] + [values[i] - tau])
        sin = min(1.0, norms[i] / gap)
        ref = min(1.0, REFERENCE_ERROR * U32 * top / gap)
        sins.append(sin)
        errors.append(math.sqrt(2) * (sin + ref) + rounding)
    close = [i for i in range(k) if abs(scores[i] - eps) <= errors[i]]
    return result(errors, sins, f"scores within their error of eps (vectors {close})" if close else "")
