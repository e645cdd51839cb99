"""Intruder dimensions (Shuttleworth et al., "LoRA vs Full Fine-tuning: An Illusion of Equivalence").

For every compared weight matrix (the attention and MLP projections, named by
:mod:`editkit.arch`, in PyTorch ``[out, in]`` layout: GPT-2 ``Conv1D`` weights
are transposed first), the top ``k`` left singular vectors of the tuned matrix
``Wt`` are compared with *all* left singular vectors of the base matrix ``W0``;
a tuned vector whose largest ``|cos|`` is below ``eps`` is an intruder. For a
LoRA adapter ``Wt`` is the merged weight ``W0 + dW`` (not ``SVD(dW)``). All in
fp32. Definitions of the reported numbers: :mod:`audit.intruders.results`.

Speed: ``W0``'s basis is cached on disk (:mod:`audit.intruders.cache`); ``Wt``
needs only its top singular triplets. With ``svd="auto"``:

- a low-rank update (LoRA, most edits) is solved in the cached basis, where
  ``Wt Wt^T`` is diagonal plus low rank, and the result is *certified* on the
  true matrix (:mod:`audit.intruders.certified`): residuals, an exact eigenvalue
  count and Davis-Kahan bound every score's distance from the dense SVD's; a
  matrix with a score within that distance of ``eps`` (or with tied top
  singular values) is redone with the dense SVD;
- any other update gets a checked randomized SVD where that pays
  (:mod:`audit.intruders.spectral`), redone densely when a score lies within its
  error bound of ``eps``;

so the counts at ``eps`` equal the dense (reference) ones.

>>> report = intruder_analysis(base, "runs/lora")              # doctest: +SKIP
>>> report.total, report.counts_vs_eps()                       # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from audit.intruders.cache import BasisCache, default_cache_dir
from audit.intruders.certified import LowRankDelta, certified_top, factor_low_rank
from audit.intruders.results import IntruderReport, MatrixIntruders
from audit.intruders.spectral import (
    METHODS,
    TopSVD,
    base_basis,
    max_abs_cos,
    on_backend,
    top_singular_values,
    top_svd,
)
from audit.tuned import TunedWeights, load_tuned
from editkit.arch import get_arch, parse_module_path, weight_is_transposed
from editkit.errors import InputError
from gpu import Backend, get_backend

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``, called after each matrix."""

DEFAULT_EPS_GRID: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass(frozen=True)
class IntruderConfig:
    """Parameters of the intruder analysis.

    Attributes:
        k: how many top tuned singular vectors are examined (published: 10).
        eps: intruder threshold on ``max |cos|`` (published: 0.5).
        eps_grid: thresholds for the count-vs-eps curve.
        n_spectrum: how many top singular values of base, tuned and delta are kept.
        kinds: editkit.arch module kinds compared.
        svd: ``"auto"`` (certified from the base basis for low-rank updates, checked
            randomized SVD for others where it pays, else dense), ``"full"``
            (always dense: the reference), ``"lowrank"`` (randomized, never dense).
        angle_tol: accepted ``sin(angle)`` bound of randomized top vectors.
        niter: power iterations of the randomized SVD.
        oversample: extra sketch columns of the randomized SVD.
        seed: seed of the randomized sketch.
    """

    k: int = 10
    eps: float = 0.5
    eps_grid: tuple[float, ...] = DEFAULT_EPS_GRID
    n_spectrum: int = 32
    kinds: tuple[str, ...] = ("attn_in", "attn_out", "mlp_in", "mlp_out")
    svd: str = "auto"
    angle_tol: float = 1e-2
    niter: int = 8
    oversample: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if self.k < 1 or self.n_spectrum < 0:
            raise InputError(f"intruders: k={self.k} must be >= 1 and n_spectrum={self.n_spectrum} >= 0")
        if not 0 < self.eps <= 1 or not all(0 < e <= 1 for e in self.eps_grid):
            raise InputError(f"intruders: eps={self.eps} and eps_grid must lie in (0, 1]")
        if self.svd not in METHODS:
            raise InputError(f"intruders: svd={self.svd!r}; choose one of {', '.join(METHODS)}")


@dataclass(frozen=True)
class Inspection:
    """A matrix's analysis plus the tuned top singular triplets behind it (for mitigation)."""

    row: MatrixIntruders
    top: TopSVD


def _near_threshold(cos: torch.Tensor, eps: float, bound: float) -> bool:
    return bool(((cos - eps).abs() <= math.sqrt(2) * bound).any())


def _floats(t: torch.Tensor) -> tuple[float, ...]:
    return tuple(float(x) for x in t.detach().to("cpu", torch.float64).tolist())


def _padded(values: torch.Tensor, n: int) -> torch.Tensor:
    """The first ``n`` of ``values``, padded with zeros (a low-rank delta's spectrum beyond its sketch)."""
    return torch.cat([values[:n], values.new_zeros(max(0, n - int(values.shape[0])))])


def _certified(
    w0: torch.Tensor,
    wt: torch.Tensor,
    low: LowRankDelta,
    u0: torch.Tensor,
    s0: torch.Tensor,
    *,
    k: int,
    q: int,
    eps: float,
) -> tuple[TopSVD, torch.Tensor, float] | None:
    """The certified top triplets, scores and ``||wt||_F^2`` (:mod:`audit.intruders.certified`), or None."""
    try:
        found = certified_top(w0, wt, low, u0, s0, k=k, q=q, eps=eps)
    except torch.linalg.LinAlgError:  # an eigensolver that did not converge: the dense SVD decides
        return None
    if found is None or not found.ok:
        return None
    top = TopSVD(found.u, found.s, found.vh, "certified", max(found.sin), found.spectrum)
    return top, found.max_cos, found.frobenius_sq


def inspect_matrix(
    w0: torch.Tensor,
    wt: torch.Tensor,
    *,
    config: IntruderConfig | None = None,
    backend: Backend | None = None,
    basis: tuple[torch.Tensor, torch.Tensor] | None = None,
    delta: torch.Tensor | None = None,
    name: str = "",
    layer: int | None = None,
    kind: str | None = None,
    module: str | None = None,
) -> Inspection:
    """Intruder analysis of one pair of matrices ``[out, in]``, keeping the tuned top triplets.

    Args:
        w0: base matrix.
        wt: tuned matrix (for LoRA: the merged weight).
        config: analysis parameters.
        backend: array backend (default ``gpu.get_backend("auto")``).
        basis: ``(U0, S0)`` of ``w0`` when already known (cache); else computed.
        delta: ``wt - w0`` computed more precisely elsewhere (LoRA: ``B @ A * scaling``),
            for the delta's spectrum and the randomized path (the certified path
            factors ``wt - w0`` itself, as its guarantee is about ``wt``).
        name, layer, kind, module: labels copied into the result.
    """
    cfg = config or IntruderConfig()
    be = backend or get_backend("auto")
    if w0.shape != wt.shape or w0.dim() != 2:
        raise InputError(
            f"{name or 'matrix'}: base {tuple(w0.shape)} and tuned {tuple(wt.shape)} "
            "must be 2-D and of the same shape"
        )
    w0, wt = on_backend(be, w0), on_backend(be, wt)
    m, n = (int(x) for x in wt.shape)
    k = min(cfg.k, m, n)
    q = min(max(k, cfg.n_spectrum), m, n)
    u0, s0 = basis if basis is not None else base_basis(w0, be)
    u0, s0 = on_backend(be, u0), on_backend(be, s0)

    def run(method: str) -> tuple[TopSVD, torch.Tensor]:
        top = top_svd(wt, q, k, backend=be, method=method, angle_tol=cfg.angle_tol,
                      niter=cfg.niter, oversample=cfg.oversample, seed=cfg.seed)
        return top, max_abs_cos(u0, top.u[:, :k])

    diff = wt - w0  # the certificate is about wt itself: factor exactly this difference
    dw = on_backend(be, delta) if delta is not None else diff
    low = factor_low_rank(diff, seed=cfg.seed) if cfg.svd == "auto" else None
    del diff
    found = _certified(w0, wt, low, u0, s0, k=k, q=q, eps=cfg.eps) if low is not None else None
    frobenius_sq = None
    if found is not None:
        top, cos, frobenius_sq = found
    elif low is not None:
        top, cos = run("full")  # a low-rank update the certificate could not settle
    else:
        top, cos = run(cfg.svd)
        if cfg.svd == "auto" and top.method == "lowrank" and _near_threshold(cos, cfg.eps, top.angle_bound):
            top, cos = run("full")
    n_spec = min(cfg.n_spectrum, m, n)
    if low is not None:
        spectrum_delta = _floats(_padded(low.sv, n_spec))
    else:
        spectrum_delta = _floats(top_singular_values(dw, n_spec, backend=be, method=cfg.svd, niter=cfg.niter))
    row = MatrixIntruders(
        name=name,
        layer=layer,
        kind=kind,
        module=module,
        shape=(m, n),
        eps=cfg.eps,
        max_cos=_floats(cos),
        sigma=_floats(top.s[:k]),
        frobenius_sq=frobenius_sq or float(torch.linalg.vector_norm(wt, dtype=torch.float64) ** 2),
        spectrum_base=_floats(s0[:n_spec]),
        spectrum_tuned=_floats(top.values[:n_spec]),
        spectrum_delta=spectrum_delta,
        svd=top.method,
        angle_bound=top.angle_bound,
    )
    return Inspection(row, top)


def analyze_matrix(w0: torch.Tensor, wt: torch.Tensor, **kwargs: Any) -> MatrixIntruders:
    """:func:`inspect_matrix` without the singular vectors: the result row only.

    >>> row = analyze_matrix(w0, w0 + b @ a)       # doctest: +SKIP
    >>> row.count, row.energy_share                # doctest: +SKIP
    """
    return inspect_matrix(w0, wt, **kwargs).row


@dataclass(frozen=True)
class Target:
    """One matrix to compare: base parameter name, its place, and its storage layout."""

    name: str
    layer: int
    kind: str
    module: str
    transposed: bool


def targets(base: nn.Module, names: Iterator[str] | list[str], kinds: tuple[str, ...]) -> list[Target]:
    """The 2-D projection weights among ``names`` whose editkit.arch kind is in ``kinds``."""
    spec = get_arch(base)
    params = dict(base.named_parameters(remove_duplicate=False))
    found = []
    for name in names:
        parsed = parse_module_path(base, name)
        if parsed is None or parsed[1] not in kinds:
            continue
        if not name.endswith(".weight") or params[name].dim() != 2:
            continue
        layer, kind = parsed
        module = name.removeprefix(f"{spec.layers}.{layer}.").removesuffix(".weight")
        found.append(Target(name, layer, kind, module, weight_is_transposed(base, name)))
    return found


def layout(t: torch.Tensor, target: Target) -> torch.Tensor:
    """A stored weight in ``[out, in]`` layout (transposes ``Conv1D``'s ``[in, out]``), and back."""
    return t.T if target.transposed else t


def iter_inspections(
    base: nn.Module,
    tuned: TunedWeights,
    *,
    config: IntruderConfig,
    backend: Backend,
    cache: BasisCache,
    progress: Progress | None = None,
) -> Iterator[tuple[Target, Inspection]]:
    """Inspect every compared matrix of ``tuned``, one at a time (used by analysis and mitigation)."""
    chosen = targets(base, list(tuned), config.kinds)
    if not chosen:
        raise InputError(
            f"{tuned.path}: the tuned weights change none of the compared matrices "
            f"({', '.join(config.kinds)}); nothing to analyse"
        )
    for i, target in enumerate(chosen):
        w0 = layout(tuned.base_weight(target.name), target)
        dw = layout(tuned.delta(target.name), target)
        basis = cache.basis(on_backend(backend, w0), backend, name=target.name)
        yield target, inspect_matrix(
            w0, w0 + dw, config=config, backend=backend, basis=basis, delta=dw,
            name=target.name, layer=target.layer, kind=target.kind, module=target.module,
        )
        if progress is not None:
            progress("intruders", i + 1, len(chosen))


def intruder_analysis(
    base: nn.Module,
    tuned: TunedWeights | str | Path,
    *,
    config: IntruderConfig | None = None,
    backend: str | Backend = "auto",
    cache_dir: str | Path | None = None,
    cache: bool = True,
    progress: Progress | None = None,
) -> IntruderReport:
    """Intruder dimensions of a tuned model against its base, matrix by matrix.

    Args:
        base: the base model (read only).
        tuned: tuned weights (:func:`audit.tuned.load_tuned`) or a path to load them from.
        config: analysis parameters (published defaults: ``k=10``, ``eps=0.5``).
        backend: array backend name or object (``"auto"``: CuPy/torch on a GPU, else torch on CPU).
        cache_dir: where base singular bases are cached (default :func:`default_cache_dir`).
        cache: False to neither read nor write the cache.
        progress: ``progress(stage, done, total)`` after each matrix.

    Returns:
        An :class:`IntruderReport` (``to_rows()`` for tables; figures in :mod:`audit.intruders.figures`).

    Raises:
        InputError: the tuned weights do not fit the base model, or change no compared matrix.
        ArchitectureError: the base model's architecture is not registered in editkit.arch.

    >>> report = intruder_analysis(base, "runs/lora", cache_dir="/tmp/ik")   # doctest: +SKIP
    >>> [r["intruders"] for r in report.to_rows()][:4]                        # doctest: +SKIP
    [2, 0, 3, 1]
    """
    cfg = config or IntruderConfig()
    be = get_backend(backend) if isinstance(backend, str) else backend
    weights = tuned if isinstance(tuned, TunedWeights) else load_tuned(base, tuned)
    store = BasisCache((cache_dir or default_cache_dir()) if cache else None)
    start = time.perf_counter()
    found = iter_inspections(base, weights, config=cfg, backend=be, cache=store, progress=progress)
    rows = [inspection.row for _, inspection in found]
    info = {
        "seconds": time.perf_counter() - start,
        "cache_hits": store.hits,
        "cache_misses": store.misses,
        "svd_certified": sum(r.svd == "certified" for r in rows),
        "svd_lowrank": sum(r.svd == "lowrank" for r in rows),
        "svd_full": sum(r.svd == "full" for r in rows),
        "cache_dir": str(store.root) if store.root else None,
    }
    return IntruderReport(
        tuple(rows), cfg.k, cfg.eps, tuple(cfg.eps_grid), tuned_kind=weights.kind, backend=be.name, info=info
    )
