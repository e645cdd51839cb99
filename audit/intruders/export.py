"""Write an :class:`~audit.intruders.results.IntruderReport` into a folder: JSON, CSV and figures.

What :func:`write_intruder_files` writes (file names are fixed, so scripts can
rely on them):

- ``intruders.json``: :func:`intruder_payload` (format tag, config, totals,
  counts and energy vs ``eps``, the layer x kind grid, one row per matrix,
  every matrix in full with its spectra, timings) plus any ``extra`` keys.
- ``intruders.csv``: ``report.to_rows()``, one line per matrix.
- ``heatmap.png``: :func:`~audit.intruders.figures.intruder_heatmap`.
- ``spectra/<matrix>.png``: :func:`~audit.intruders.figures.spectrum_plot` for
  the ``n_spectra`` matrices of :func:`top_matrices` (``<matrix>`` is the
  parameter name without ``.weight``).

Rendering never recomputes: everything comes from the report.

>>> files = write_intruder_files(report, "runs/audit", extra={"base": "smollm2-135m-instruct"})  # doctest: +SKIP
>>> files["json"]                                                                              # doctest: +SKIP
'intruders.json'
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from audit.intruders.figures import intruder_heatmap, spectrum_plot
from audit.intruders.results import IntruderReport, MatrixIntruders
from editkit.outputs import output_file

FORMAT = "editkit-intruders/1"


def top_matrices(report: IntruderReport, n: int = 3) -> list[MatrixIntruders]:
    """The ``n`` matrices with the most intruders (ties: larger energy share, then lower ``min m_i``).

    Matrices without intruders are still ranked (by how close their top vectors
    come to intruding), so a report with none still shows its nearest cases.
    """

    def key(m: MatrixIntruders) -> tuple[int, float, float]:
        return (-m.count, -m.energy_share, min(m.max_cos, default=1.0))

    return sorted(report.matrices, key=key)[: max(n, 0)]


def mean_energy_share(report: IntruderReport) -> float:
    """Mean over the compared matrices of the intruders' share of ``||Wt||_F^2``."""
    return sum(m.energy_share for m in report.matrices) / max(len(report.matrices), 1)


def totals(report: IntruderReport) -> dict[str, Any]:
    """Intruder totals: overall, per module kind, per layer, and how many matrices have any."""
    by_kind: dict[str, int] = {}
    by_layer: dict[str, int] = {}
    for m in report.matrices:
        by_kind[str(m.kind)] = by_kind.get(str(m.kind), 0) + m.count
        by_layer[str(m.layer)] = by_layer.get(str(m.layer), 0) + m.count
    return {
        "intruders": report.total,
        "matrices": len(report.matrices),
        "matrices_with_intruders": sum(m.count > 0 for m in report.matrices),
        "mean_energy_share": mean_energy_share(report),
        "by_kind": by_kind,
        "by_layer": by_layer,
    }


def intruder_payload(report: IntruderReport, *, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Everything about ``report`` as JSON-ready data (see the module docstring).

    Args:
        report: the analysis.
        config: the analysis settings to record (default: ``k``, ``eps`` and ``eps_grid`` of the report).
    """
    layers, columns, counts = report.grid(by="kind")
    full = report.to_dict()
    return {
        "format": FORMAT,
        "config": dict(config) if config is not None else {
            "k": report.k, "eps": report.eps, "eps_grid": list(report.eps_grid)
        },
        "tuned_kind": report.tuned_kind,
        "backend": report.backend,
        "totals": totals(report),
        "counts_vs_eps": {f"{e:g}": n for e, n in report.counts_vs_eps().items()},
        "energy_vs_eps": {f"{e:g}": v for e, v in report.energy_vs_eps().items()},
        "grid": {"by": "kind", "layers": layers, "columns": columns, "counts": counts},
        "rows": report.to_rows(),
        "matrices": full["matrices"],
        "info": report.info,
    }


def rows_csv(report: IntruderReport) -> str:
    """``report.to_rows()`` as CSV text (header line first)."""
    rows = report.to_rows()
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def spectrum_file(name: str) -> str:
    """``model.layers.3.mlp.down_proj.weight`` -> ``model.layers.3.mlp.down_proj.png``.

    Slashes and backslashes become ``_``; :func:`write_intruder_files` builds the
    path with :func:`editkit.outputs.output_file`, which refuses what is still not
    a plain file name (a NUL byte) with an :class:`~editkit.errors.InputError`.
    """
    stem = name.removesuffix(".weight").replace("/", "_").replace("\\", "_") or "matrix"
    return f"{stem}.png"


def write_intruder_files(
    report: IntruderReport,
    folder: str | Path,
    *,
    extra: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    n_spectra: int = 3,
    spectra: Sequence[str] | None = None,
    figures: bool = True,
) -> dict[str, Any]:
    """Write ``intruders.json``, ``intruders.csv``, ``heatmap.png`` and ``spectra/*.png`` into ``folder``.

    Args:
        report: the analysis.
        folder: the destination (created if needed; for an atomic result pass the
            temporary folder of :func:`editkit.outputs.output_dir`).
        extra: more top-level keys for ``intruders.json`` (provenance, inputs, mitigation...).
        config: the analysis settings to record (see :func:`intruder_payload`).
        n_spectra: how many spectrum plots (the matrices of :func:`top_matrices`).
        spectra: the matrices to plot instead (parameter names; e.g. the same
            matrices as in another report, to compare).
        figures: False to skip the PNG files.

    Returns:
        What was written, as paths relative to ``folder``:
        ``{"json", "csv", "heatmap", "spectra": {matrix name: path}}``.
    """
    dest = Path(folder)
    dest.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {"json": "intruders.json", "csv": "intruders.csv"}
    if figures:
        intruder_heatmap(report, dest / "heatmap.png")
        files["heatmap"] = "heatmap.png"
        names = list(spectra) if spectra is not None else [m.name for m in top_matrices(report, n_spectra)]
        plotted = {}
        for name in names:
            rel = f"spectra/{spectrum_file(name)}"
            spectrum_plot(report, name, output_file(dest, rel))
            plotted[name] = rel
        files["spectra"] = plotted
    payload = {**intruder_payload(report, config=config), **(extra or {}), "files": files}
    (dest / "intruders.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    (dest / "intruders.csv").write_text(rows_csv(report), encoding="utf-8")
    return files
