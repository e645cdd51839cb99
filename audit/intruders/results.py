"""What the intruder analysis found: a :class:`MatrixIntruders` per matrix, an :class:`IntruderReport` in all.

Definitions (for a tuned matrix ``Wt`` ``[out, in]`` with singular values
``s_1 >= s_2 >= ...``, base matrix ``W0``):

- ``m_i = max_j |<u_i(Wt), u_j(W0)>|`` over *all* left singular vectors of
  ``W0``, for the top ``k`` left singular vectors of ``Wt``.
- Intruder: ``m_i < eps``.
- Energy share: ``sum_{i < k, m_i < eps} s_i^2 / sum_all s_j^2``, the fraction of
  ``||Wt||_F^2`` carried by the intruders (the denominator is the Frobenius
  norm squared, so it covers the whole spectrum, not only the top ``k``).

>>> report.total, report.counts_vs_eps()[0.5]          # doctest: +SKIP
(14, 14)
>>> report.to_rows()[0]["intruders"]                   # doctest: +SKIP
2
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class MatrixIntruders:
    """The intruder analysis of one weight matrix.

    Attributes:
        name: the base parameter name.
        layer: decoder block index (None outside the blocks).
        kind: editkit.arch module kind (``attn_in``, ``attn_out``, ``mlp_in``, ``mlp_out``).
        module: the module's path inside its block (``self_attn.q_proj``).
        shape: ``(out, in)`` of the analysed matrix (PyTorch ``Linear`` layout).
        eps: the threshold used for :attr:`intruders`.
        max_cos: ``m_i`` for the top ``k`` tuned singular vectors (``k = len(max_cos)``).
        sigma: the top ``k`` tuned singular values.
        frobenius_sq: ``||Wt||_F^2`` (the energy total).
        spectrum_base, spectrum_tuned, spectrum_delta: the top-N singular values
            of ``W0``, ``Wt`` and ``Wt - W0`` (for display: past the top ``k`` the
            tuned ones may come from an iterative method, the delta's from a
            randomized one; a low-rank delta's are 0 past its sketch).
        svd: how the tuned top vectors were computed (``"full"``, ``"lowrank"`` or
            ``"certified"``: :mod:`audit.intruders.certified`).
        angle_bound: worst ``sin(angle)`` of those vectors: estimated for
            ``"lowrank"``, proven for ``"certified"``, 0 for ``"full"``.
    """

    name: str
    layer: int | None
    kind: str | None
    module: str | None
    shape: tuple[int, int]
    eps: float
    max_cos: tuple[float, ...]
    sigma: tuple[float, ...]
    frobenius_sq: float
    spectrum_base: tuple[float, ...] = ()
    spectrum_tuned: tuple[float, ...] = ()
    spectrum_delta: tuple[float, ...] = ()
    svd: str = "full"
    angle_bound: float = 0.0

    @property
    def k(self) -> int:
        return len(self.max_cos)

    @property
    def intruders(self) -> tuple[int, ...]:
        """Indices ``i < k`` (0-based, by descending singular value) of the intruders at :attr:`eps`."""
        return self.intruders_at(self.eps)

    @property
    def count(self) -> int:
        return len(self.intruders)

    @property
    def energy_share(self) -> float:
        return self.energy_share_at(self.eps)

    def intruders_at(self, eps: float) -> tuple[int, ...]:
        return tuple(i for i, m in enumerate(self.max_cos) if m < eps)

    def count_at(self, eps: float) -> int:
        return len(self.intruders_at(eps))

    def energy_share_at(self, eps: float) -> float:
        """Intruders' ``sum s_i^2`` over ``||Wt||_F^2`` at threshold ``eps``."""
        if self.frobenius_sq <= 0:
            return 0.0
        return sum(self.sigma[i] ** 2 for i in self.intruders_at(eps)) / self.frobenius_sq


@dataclass(frozen=True)
class IntruderReport:
    """Intruder analysis of every compared matrix of a tuned model.

    Attributes:
        matrices: one entry per compared matrix, in model order.
        k, eps: the analysis parameters.
        eps_grid: thresholds for :meth:`counts_vs_eps` and the table columns.
        tuned_kind: what the tuned weights were (``full``, ``lora``, ``edit``...).
        backend: the array backend that ran the SVDs.
        info: timings, cache hits/misses, SVD methods used.
    """

    matrices: tuple[MatrixIntruders, ...]
    k: int
    eps: float
    eps_grid: tuple[float, ...]
    tuned_kind: str = ""
    backend: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Intruders over all matrices at :attr:`eps`."""
        return sum(m.count for m in self.matrices)

    def matrix(self, name: str) -> MatrixIntruders:
        for m in self.matrices:
            if m.name == name:
                return m
        raise KeyError(f"{name!r} was not analysed; analysed: {[m.name for m in self.matrices][:5]}...")

    def counts_vs_eps(self, grid: Sequence[float] | None = None) -> dict[float, int]:
        """Total intruder count at each threshold (the count alone misleads; read it as a curve)."""
        return {e: sum(m.count_at(e) for m in self.matrices) for e in (grid or self.eps_grid)}

    def energy_vs_eps(self, grid: Sequence[float] | None = None) -> dict[float, float]:
        """Mean energy share over the matrices at each threshold."""
        n = max(len(self.matrices), 1)
        return {e: sum(m.energy_share_at(e) for m in self.matrices) / n for e in (grid or self.eps_grid)}

    def grid(
        self, *, by: str = "kind", eps: float | None = None
    ) -> tuple[list[int], list[str], list[list[int | None]]]:
        """``(layers, columns, counts[layer][column])``, summing the matrices of a cell.

        Args:
            by: ``"kind"`` (``attn_in``, ``mlp_out``...) or ``"module"`` (``self_attn.q_proj``...).
            eps: threshold (default :attr:`eps`).

        Cells with no analysed matrix are None.
        """
        if by not in ("kind", "module"):
            raise ValueError(f"by={by!r}: choose 'kind' or 'module'")
        e = self.eps if eps is None else eps
        cells: dict[tuple[int, str], int] = {}
        columns: list[str] = []
        for m in self.matrices:
            column = m.kind if by == "kind" else m.module
            if m.layer is None or column is None:
                continue
            if column not in columns:
                columns.append(column)
            cells[(m.layer, column)] = cells.get((m.layer, column), 0) + m.count_at(e)
        layers = sorted({layer for layer, _ in cells})
        return layers, columns, [[cells.get((layer, c)) for c in columns] for layer in layers]

    def to_rows(self) -> list[dict[str, Any]]:
        """One flat dict per matrix, for tables (counts at every ``eps_grid`` threshold as ``n@eps``)."""
        rows = []
        for m in self.matrices:
            row: dict[str, Any] = {
                "name": m.name,
                "layer": m.layer,
                "kind": m.kind,
                "module": m.module,
                "out": m.shape[0],
                "in": m.shape[1],
                "k": m.k,
                "intruders": m.count,
                "energy_share": m.energy_share,
                "min_max_cos": min(m.max_cos) if m.max_cos else None,
                "svd": m.svd,
            }
            row.update({f"n@{e:g}": m.count_at(e) for e in self.eps_grid})
            rows.append(row)
        return rows

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain data (JSON-ready)."""
        from dataclasses import asdict

        return {
            "k": self.k,
            "eps": self.eps,
            "eps_grid": list(self.eps_grid),
            "tuned_kind": self.tuned_kind,
            "backend": self.backend,
            "total": self.total,
            "counts_vs_eps": {f"{e:g}": n for e, n in self.counts_vs_eps().items()},
            "info": self.info,
            "matrices": [asdict(m) for m in self.matrices],
        }
