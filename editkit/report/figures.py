"""Matplotlib figures for the HTML report, returned as PNG bytes.

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas: no
pyplot, no global state, safe in threads and notebooks. matplotlib and NumPy
are imported inside the functions so that importing this module is free.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

from editkit.report._format import MetricRow, direction_arrow, format_value

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PALETTE_ONE = ["#2563eb"]
PALETTE = ["#94a3b8", "#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#0ea5e9"]
MAX_SCALED_PANELS = 6  # metrics outside [0, 1] get a panel each, up to this many
_DPI = 110


def _palette(n: int) -> list[str]:
    colors = PALETTE_ONE if n == 1 else PALETTE
    return [colors[i % len(colors)] for i in range(n)]


def _style(ax: Axes) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.spines["left"].set_color("#cbd5e1")
    ax.spines["bottom"].set_color("#cbd5e1")
    ax.tick_params(colors="#334155", labelsize=8)
    ax.yaxis.grid(True, color="#e2e8f0", linewidth=0.8)
    ax.set_axisbelow(True)


def _png(fig: Figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight", facecolor="white")
    return buf.getvalue()


def _bars(ax: Axes, rows: list[MetricRow], columns: list[str], colors: list[str]) -> None:
    n = len(columns)
    width = (0.8 if n > 1 else 0.55) / n
    for j, col in enumerate(columns):
        xs = [i + (j - (n - 1) / 2) * width for i in range(len(rows))]
        heights = [v if (v := r.values[j]) is not None else 0.0 for r in rows]
        bars = ax.bar(xs, heights, width * 0.92, color=colors[j], label=col)
        labels = [format_value(r.values[j], r.info.fmt) for r in rows]
        ax.bar_label(bars, labels=labels, fontsize=6.5, padding=2, color="#334155")
    ax.set_xticks(range(len(rows)))
    labels = [f"{r.name} {direction_arrow(r.info)}".rstrip() for r in rows]
    slanted = len(rows) > 1
    ax.set_xticklabels(labels, rotation=30 if slanted else 0, ha="right" if slanted else "center")
    ax.margins(y=0.15)
    _style(ax)


def metrics_chart(columns: list[str], rows: list[MetricRow]) -> bytes | None:
    """Grouped bars, one group per metric and one bar per column (e.g. before/after).

    Metrics whose values all lie in [0, 1] (rates, accuracies) share one panel;
    each other metric (perplexity, counts, ...) gets its own panel and scale.

    Returns:
        PNG bytes, or None when no metric has a value.
    """
    from matplotlib.figure import Figure

    rows = [r for r in rows if any(v is not None for v in r.values)]
    if not rows:
        return None
    unit = [r for r in rows if all(v is None or 0.0 <= v <= 1.0 for v in r.values)]
    scaled = [r for r in rows if r not in unit][:MAX_SCALED_PANELS]
    groups: list[list[MetricRow]] = ([unit] if unit else []) + [[r] for r in scaled]
    ratios = [len(g) * (0.6 + 0.35 * len(columns)) + 0.8 for g in groups]
    width = min(14.0, 1.5 + sum(ratios) * 0.9)
    fig = Figure(figsize=(width, 3.4))
    axes = fig.subplots(1, len(groups), squeeze=False, gridspec_kw={"width_ratios": ratios})[0]
    colors = _palette(len(columns))
    for ax, group in zip(axes, groups, strict=True):
        _bars(ax, group, columns, colors)
        if group is unit:
            ax.set_ylim(0, 1.12)
    if len(columns) > 1:
        fig.legend(
            *axes[0].get_legend_handles_labels(),
            loc="upper center",
            ncol=len(columns),
            frameon=False,
            fontsize=8,
            bbox_to_anchor=(0.5, 1.06),
        )
    fig.tight_layout()
    return _png(fig)


def histograms(fields: dict[str, list[float]]) -> bytes | None:
    """Small-multiple histograms, one per numeric per-item field, with the mean marked.

    Fields whose values lie in [0, 1] use ten fixed bins over [0, 1] so that
    rates are comparable across panels.

    Returns:
        PNG bytes, or None when there is nothing to plot.
    """
    import numpy as np
    from matplotlib.figure import Figure

    fields = {k: v for k, v in fields.items() if v}
    if not fields:
        return None
    ncols = min(3, len(fields))
    nrows = math.ceil(len(fields) / ncols)
    fig = Figure(figsize=(3.6 * ncols, 2.5 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (name, values) in zip(axes, fields.items(), strict=False):
        arr = np.asarray(values, dtype=float)
        if arr.min() >= 0.0 and arr.max() <= 1.0:
            bins: int | np.ndarray = np.linspace(0.0, 1.0, 11)
        else:
            bins = min(30, max(5, int(math.sqrt(arr.size)) + 1))
        ax.hist(arr, bins=bins, color="#2563eb", alpha=0.85, edgecolor="white", linewidth=0.6)
        mean = float(arr.mean())
        ax.axvline(mean, color="#f59e0b", linewidth=1.5, linestyle="--")
        ax.set_title(
            f"{name}  (n={arr.size}, mean {format_value(mean)})", fontsize=9, color="#0f172a"
        )
        _style(ax)
    for ax in axes[len(fields) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return _png(fig)
