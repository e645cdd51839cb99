"""Figures of an :class:`~audit.intruders.results.IntruderReport`, written as PNG files.

Built on ``matplotlib.figure.Figure`` with the Agg canvas (no pyplot, no global
state); matplotlib and NumPy are imported inside the functions.

>>> intruder_heatmap(report, "out/intruders.png")                               # doctest: +SKIP
>>> spectrum_plot(report, "model.layers.3.self_attn.q_proj.weight", "out/q3.png")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from audit.intruders.results import IntruderReport

_DPI = 120


def _save(fig: object, path: str | Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)  # type: ignore[arg-type]
    fig.savefig(dest, dpi=_DPI, bbox_inches="tight", facecolor="white")  # type: ignore[attr-defined]
    return dest


def intruder_heatmap(
    report: IntruderReport, path: str | Path, *, by: str = "kind", eps: float | None = None
) -> Path:
    """Heat map of intruder counts, one row per layer and one column per module kind (or module).

    Args:
        report: the analysis.
        path: the PNG file to write.
        by: ``"kind"`` or ``"module"`` columns (see :meth:`IntruderReport.grid`).
        eps: threshold (default the report's).

    Returns:
        ``path``. Cells without an analysed matrix are blank.
    """
    import numpy as np
    from matplotlib.figure import Figure

    e = report.eps if eps is None else eps
    layers, columns, counts = report.grid(by=by, eps=e)
    data = np.array([[np.nan if c is None else c for c in row] for row in counts], dtype=float)
    fig = Figure(figsize=(1.2 + 0.9 * max(len(columns), 1), 1.0 + 0.28 * max(len(layers), 1)))
    ax = fig.add_subplot()
    vmax = max(float(np.nanmax(data)) if np.isfinite(data).any() else 0.0, 1.0)
    image = ax.imshow(data, aspect="auto", cmap="Reds", vmin=0, vmax=vmax, interpolation="nearest")
    ax.set_xticks(range(len(columns)), labels=columns, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(layers)), labels=[str(x) for x in layers], fontsize=7)
    ax.set_ylabel("layer")
    for (i, j), value in np.ndenumerate(data):
        if np.isfinite(value) and len(layers) * len(columns) <= 400:
            color = "white" if value > vmax / 2 else "#334155"
            ax.text(j, i, f"{int(value)}", ha="center", va="center", fontsize=7, color=color)
    fig.colorbar(image, ax=ax, label="intruders")
    total = sum(m.count_at(e) for m in report.matrices)
    ax.set_title(f"intruder dimensions (k={report.k}, eps={e:g}): {total} in total", fontsize=9)
    return _save(fig, path)


def spectrum_plot(report: IntruderReport, name: str, path: str | Path) -> Path:
    """Top singular values of base, tuned and delta for one matrix (log scale), intruders marked.

    Args:
        report: the analysis.
        name: the parameter name of the matrix (see ``report.to_rows()``).
        path: the PNG file to write.
    """
    from matplotlib.figure import Figure

    m = report.matrix(name)
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot()
    for values, label, color in (
        (m.spectrum_base, "base", "#94a3b8"),
        (m.spectrum_tuned, "tuned", "#2563eb"),
        (m.spectrum_delta, "delta (tuned - base)", "#f59e0b"),
    ):
        if values:
            ax.plot(range(1, len(values) + 1), values, marker=".", label=label, color=color)
    idx = [i for i in m.intruders if i < len(m.spectrum_tuned)]
    if idx:
        ax.scatter([i + 1 for i in idx], [m.spectrum_tuned[i] for i in idx], s=60, facecolors="none",
                   edgecolors="#ef4444", linewidths=1.5, label=f"intruders (max |cos| < {m.eps:g})", zorder=3)
    if any(v > 0 for v in (*m.spectrum_base, *m.spectrum_tuned, *m.spectrum_delta)):
        ax.set_yscale("log")
    ax.set_xlabel("singular value index")
    ax.set_ylabel("singular value")
    ax.set_title(f"{name}: {m.count} intruders, {100 * m.energy_share:.1f}% of the energy", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)
