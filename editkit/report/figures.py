"""Matplotlib figures for the HTML report, returned as PNG bytes.

Two families: charts of a report's metrics and per-item values
(:func:`metrics_chart`, :func:`histograms`), and figures a report describes
as data (:class:`~editkit.report.schema.Figure`: heat map, lines, bars with
intervals, distributions), drawn by :func:`draw_figure`.

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas: no
pyplot, no global state, safe in threads and notebooks. matplotlib and NumPy
are imported inside the functions so that importing this module is free.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from editkit.report._format import MetricRow, direction_arrow, format_value

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from editkit.report.schema import Figure as ReportFigure

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


# ---- figures described as data (editkit.report.schema.Figure) ---------------------------


class FigureError(ValueError):
    """A :class:`~editkit.report.schema.Figure` whose data cannot be drawn (named in the message)."""


def _need(data: dict[str, Any], key: str, kind: str) -> Any:
    if key not in data:
        raise FigureError(f"a {kind} figure needs data[{key!r}]")
    return data[key]


def _floats(values: Any) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


def _heatmap_figure(data: dict[str, Any]) -> Figure:
    import numpy as np
    from matplotlib.figure import Figure

    rows, columns = list(_need(data, "rows", "heatmap")), list(_need(data, "columns", "heatmap"))
    values = np.array([_floats(r) for r in _need(data, "values", "heatmap")], dtype=float)
    if values.shape != (len(rows), len(columns)):
        raise FigureError(f"heatmap values are {values.shape}, labels {len(rows)} x {len(columns)}")
    fig = Figure(figsize=(1.6 + 0.95 * max(len(columns), 1), 1.1 + 0.26 * max(len(rows), 1)))
    ax = fig.add_subplot()
    finite = values[np.isfinite(values)]
    vmax = max(float(finite.max()) if finite.size else 0.0, 1e-12)
    image = ax.imshow(values, aspect="auto", cmap=data.get("cmap", "Reds"), vmin=0, vmax=vmax,
                      interpolation="nearest")
    ax.set_xticks(range(len(columns)), labels=[str(c) for c in columns], rotation=30, ha="right",
                  fontsize=8)
    ax.set_yticks(range(len(rows)), labels=[str(r) for r in rows], fontsize=7)
    ax.set_xlabel(data.get("xlabel", ""), fontsize=8)
    ax.set_ylabel(data.get("ylabel", ""), fontsize=8)
    if values.size <= 400:
        for (i, j), value in np.ndenumerate(values):
            if np.isfinite(value):
                color = "white" if value > vmax / 2 else "#334155"
                ax.text(j, i, format_value(float(value) if not value.is_integer() else int(value)),
                        ha="center", va="center", fontsize=7, color=color)
    fig.colorbar(image, ax=ax, label=data.get("colorbar", ""))
    return fig


def _lines_figure(data: dict[str, Any]) -> Figure:
    from matplotlib.figure import Figure

    series = list(_need(data, "series", "lines"))
    fig = Figure(figsize=(6.6, 3.4))
    ax = fig.add_subplot()
    colors = _palette(len(series))
    marked_label = data.get("marked_label", "marked")
    labelled = False
    positive = False
    for s, color in zip(series, colors, strict=False):
        x, y = list(_need(s, "x", "lines")), _floats(_need(s, "y", "lines"))
        if len(x) != len(y):
            raise FigureError(f"lines series {s.get('name')!r}: {len(x)} x values but {len(y)} y values")
        ax.plot(x, y, marker=".", color=color, label=str(s.get("name", "")), linewidth=1.4)
        positive = positive or any(v > 0 for v in y if math.isfinite(v))
        marked = [i for i in s.get("marked", []) if 0 <= i < len(x)]
        if marked:
            ax.scatter([x[i] for i in marked], [y[i] for i in marked], s=60, facecolors="none",
                       edgecolors="#ef4444", linewidths=1.5, zorder=3,
                       label=None if labelled else marked_label)
            labelled = True
    finite = [v for s in series for v in _floats(s["y"]) if math.isfinite(v) and v > 0]
    if data.get("logy") and positive and max(finite) / min(finite) > 20:  # log only across decades
        ax.set_yscale("log")
    xs = [x for s in series for x in s["x"]]
    if xs and all(isinstance(x, int) and not isinstance(x, bool) for x in xs):
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(data.get("xlabel", ""), fontsize=8)
    ax.set_ylabel(data.get("ylabel", ""), fontsize=8)
    _style(ax)
    if len(series) > 1 or labelled:
        ax.legend(fontsize=7, frameon=False)
    return fig


def _bars_figure(data: dict[str, Any]) -> Figure:
    from matplotlib.figure import Figure

    labels = [str(v) for v in _need(data, "labels", "bars")]
    series = list(_need(data, "series", "bars"))
    horizontal = bool(data.get("horizontal"))
    n = max(len(series), 1)
    size = (7.2, 1.4 + 0.34 * len(labels) * (1 + 0.3 * (n - 1))) if horizontal else (
        min(12.0, 2.0 + 0.55 * len(labels) * n), 3.4)
    fig = Figure(figsize=size)
    ax = fig.add_subplot()
    width = 0.8 / n
    colors = _palette(n) if n > 1 else PALETTE_ONE
    for j, (s, color) in enumerate(zip(series, colors, strict=False)):
        values = _floats(_need(s, "values", "bars"))
        if len(values) != len(labels):
            raise FigureError(f"bars series {s.get('name')!r}: {len(values)} values for {len(labels)} labels")
        pos = [i + (j - (n - 1) / 2) * width for i in range(len(labels))]
        err = None
        if "lo" in s and "hi" in s:
            lo, hi = _floats(s["lo"]), _floats(s["hi"])
            err = [[max(v - a, 0.0) if math.isfinite(a) else 0.0 for v, a in zip(values, lo, strict=True)],
                   [max(b - v, 0.0) if math.isfinite(b) else 0.0 for v, b in zip(values, hi, strict=True)]]
        shown = [v if math.isfinite(v) else 0.0 for v in values]
        kwargs: dict[str, Any] = {"color": color, "label": str(s.get("name", ""))}
        if err is not None:
            kwargs.update(capsize=3, ecolor="#334155")
        if horizontal:
            bars = ax.barh(pos, shown, width * 0.92, xerr=err, **kwargs)
        else:
            bars = ax.bar(pos, shown, width * 0.92, yerr=err, **kwargs)
        ax.bar_label(bars, labels=[format_value(v if math.isfinite(v) else None) for v in values],
                     fontsize=6.5, padding=2, color="#334155")
    if horizontal:
        from matplotlib.ticker import MaxNLocator

        ax.set_yticks(range(len(labels)), labels=labels, fontsize=7)
        ax.invert_yaxis()
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.margins(x=0.12)
        ax.set_xlabel(data.get("xlabel", data.get("ylabel", "")), fontsize=8)
        ax.xaxis.grid(True, color="#e2e8f0", linewidth=0.8)
    else:
        ax.set_xticks(range(len(labels)), labels=labels, rotation=30 if len(labels) > 3 else 0,
                      ha="right" if len(labels) > 3 else "center", fontsize=8)
        ax.set_ylabel(data.get("ylabel", ""), fontsize=8)
    if data.get("ylim") is not None:
        (ax.set_xlim if horizontal else ax.set_ylim)(*data["ylim"])
    _style(ax)
    if n > 1:
        ax.legend(fontsize=7, frameon=False)
    return fig


def _distributions_figure(data: dict[str, Any]) -> Figure:
    import numpy as np
    from matplotlib.figure import Figure

    groups = [g for g in _need(data, "groups", "distributions") if g.get("values")]
    if not groups:
        raise FigureError("a distributions figure needs at least one group with values")
    fig = Figure(figsize=(min(11.0, 2.0 + 1.4 * len(groups)), 3.4))
    ax = fig.add_subplot()
    arrays = [np.asarray(_floats(g["values"]), dtype=float) for g in groups]
    ax.boxplot(arrays, widths=0.5, showfliers=False, medianprops={"color": "#f59e0b"})
    rng = np.random.default_rng(0)  # fixed jitter: the same report draws the same picture
    for i, (arr, color) in enumerate(zip(arrays, _palette(max(len(arrays), 2)), strict=False)):
        ax.scatter(i + 1 + rng.uniform(-0.12, 0.12, arr.size), arr, s=12, alpha=0.7, color=color,
                   zorder=3)
    names = [f"{g.get('name', '')}\n(n={arr.size}, mean {format_value(float(arr.mean()))})"
             for g, arr in zip(groups, arrays, strict=True)]
    ax.set_xticks(range(1, len(groups) + 1), labels=names, fontsize=7)
    ax.set_ylabel(data.get("ylabel", ""), fontsize=8)
    if data.get("ylim") is not None:
        ax.set_ylim(*data["ylim"])
    _style(ax)
    return fig


_DRAW: dict[str, Callable[[dict[str, Any]], Figure]] = {
    "heatmap": _heatmap_figure,
    "lines": _lines_figure,
    "bars": _bars_figure,
    "distributions": _distributions_figure,
}


def draw_figure(figure: ReportFigure) -> bytes:
    """Draw a :class:`~editkit.report.schema.Figure` as PNG bytes (its title on top).

    Raises:
        FigureError: data that does not describe a figure of its kind.

    >>> from editkit.report.schema import Figure
    >>> png = draw_figure(Figure("bars", "t", {"labels": ["a"], "series": [{"name": "s", "values": [1]}]}))
    >>> png[:4] == b"\\x89PNG"
    True
    """
    try:
        fig = _DRAW[figure.kind](figure.data)
    except FigureError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise FigureError(f"{figure.kind} figure {figure.title!r}: {type(exc).__name__}: {exc}") from None
    fig.suptitle(figure.title, fontsize=9, color="#0f172a")
    fig.tight_layout()
    return _png(fig)
