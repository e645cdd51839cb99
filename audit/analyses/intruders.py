"""The ``intruders`` analysis: intruder dimensions (Shuttleworth et al.) as a report section.

Runs :func:`audit.intruders.intruder_analysis` on the context's tuned weights
and describes the result: a heat map of counts per layer and module kind, the
count-vs-threshold curve (the count alone misleads), the spectra of the
matrices with the most intruders, and tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from audit.analyses.registry import AnalysisOptions, AnalysisOutput, register_analysis
from editkit.editors.config import option
from editkit.report import Figure, Finding, MetricInfo, Section, Table

if TYPE_CHECKING:
    from audit.context import AuditContext
    from audit.intruders import IntruderReport

NAME = "intruders"
TITLE = "Intruder dimensions"


@dataclass(frozen=True)
class IntrudersOptions(AnalysisOptions):
    """Options of the intruder analysis (published defaults: k = 10, eps = 0.5)."""

    k: int = option("top singular vectors of each tuned matrix examined", 10)
    eps: float = option("intruder threshold on max |cos| against every base singular vector", 0.5)
    svd: str = option("auto (certified low-rank update solve or checked randomized SVD, dense fallback near eps), full (dense reference) or lowrank", "auto")
    backend: str = option("array backend for the SVDs: auto, cupy, torch-cuda, torch-cpu", "auto")
    spectra: int = option("spectrum plots: the matrices with the most intruders", 3)
    rows: int = option("rows of the table of matrices with intruders", 30)
    cache: bool = option("cache the base model's singular bases on disk ($EDITKIT_CACHE/intruders)", True)

    def __post_init__(self) -> None:
        from audit.intruders import IntruderConfig
        from editkit.errors import InputError

        IntruderConfig(k=self.k, eps=self.eps, svd=self.svd)  # raises InputError for bad values
        if self.spectra < 0 or self.rows < 0:
            raise InputError(f"intruders: spectra={self.spectra} and rows={self.rows} must be >= 0")
        from gpu.select import BACKENDS

        if self.backend != "auto" and self.backend not in BACKENDS:
            raise InputError(f"intruders: unknown array backend {self.backend!r}; choose auto, {', '.join(BACKENDS)}")


def _figures(report: IntruderReport, spectra: int) -> list[Figure]:
    from audit.intruders import top_matrices

    layers, columns, counts = report.grid(by="kind")
    figs = [
        Figure("heatmap", f"Intruder dimensions per layer and module kind (k={report.k}, eps={report.eps:g})",
               {"rows": layers, "columns": columns, "values": counts, "ylabel": "layer", "colorbar": "intruders"},
               "Blank cells: no compared matrix there."),
    ]
    curve = report.counts_vs_eps()
    figs.append(Figure("lines", "Intruder count against the threshold eps",
                       {"series": [{"name": "intruders", "x": list(curve), "y": list(curve.values())}],
                        "xlabel": "eps (max |cos| threshold)", "ylabel": "intruders"},
                       "A random direction has max |cos| of about 0.06 against a basis in high dimension: "
                       "read the count as a curve."))
    for m in top_matrices(report, spectra):
        series = [{"name": name, "x": list(range(1, len(v) + 1)), "y": list(v)}
                  for name, v in (("base", m.spectrum_base), ("tuned", m.spectrum_tuned),
                                  ("delta (tuned - base)", m.spectrum_delta)) if v]
        for s in series:
            if s["name"] == "tuned":
                s["marked"] = [i for i in m.intruders if i < len(s["y"])]
        figs.append(Figure("lines", f"Spectrum of {m.name}: {m.count} intruders, "
                           f"{100 * m.energy_share:.1f}% of the energy",
                           {"series": series, "xlabel": "singular value index", "ylabel": "singular value",
                            "logy": True, "marked_label": f"intruders (max |cos| < {m.eps:g})"}))
    return figs


def _tables(report: IntruderReport, rows: int) -> list[Table]:
    layers, columns, counts = report.grid(by="kind")
    grid = Table("Intruders per layer and module kind", ["layer", *columns, "total"],
                 [[layer, *row, sum(c or 0 for c in row)] for layer, row in zip(layers, counts, strict=True)],
                 "Counts at the report's eps; n/a: no compared matrix of that kind.")
    found = sorted((m for m in report.matrices if m.count), key=lambda m: (-m.count, -m.energy_share))
    shown = found[: max(rows, 0)]
    more = f" Showing {len(shown)} of {len(found)}." if len(found) > len(shown) else ""
    matrices = Table("Matrices with intruders", ["matrix", "layer", "kind", "intruders", "energy share", "min max|cos|"],
                     [[m.name, m.layer, m.kind, m.count, m.energy_share, min(m.max_cos, default=None)] for m in shown],
                     "Energy share: the intruders' share of ||Wt||_F^2; min max|cos|: how far the least "
                     f"explained top direction is from every base direction.{more}",
                     fmt={"energy share": ".2%", "min max|cos|": ".3f"})
    curve = Table("Count against the threshold", ["eps", "intruders", "mean energy share"],
                  [[e, n, report.energy_vs_eps()[e]] for e, n in report.counts_vs_eps().items()],
                  fmt={"eps": "g", "mean energy share": ".2%"})
    return [grid, matrices, curve]


def run_intruders(ctx: AuditContext, options: IntrudersOptions) -> AnalysisOutput:
    """Intruder dimensions of the tuned weights against the base model."""
    from audit.intruders import IntruderConfig, intruder_analysis
    from audit.intruders.analysis import targets
    from audit.intruders.export import mean_energy_share, top_matrices

    config = IntruderConfig(k=options.k, eps=options.eps, svd=options.svd, seed=options.seed)
    if not targets(ctx.base, list(ctx.weights), config.kinds):
        msg = f"the tuned weights change none of the compared matrices ({', '.join(config.kinds)})"
        section = Section(NAME, TITLE, status="skipped", summary=f"Not measured: {msg}.")
        return AnalysisOutput(section, [Finding(NAME, "info", f"not measured: {msg}")])
    report = intruder_analysis(ctx.base, ctx.weights, config=config, backend=options.backend,
                               cache=options.cache, progress=ctx.progress)
    n = len(report.matrices)
    with_any = sum(m.count > 0 for m in report.matrices)
    share = mean_energy_share(report)
    summary = (f"{report.total} intruder dimensions in {with_any} of {n} compared matrices "
               f"(k={report.k}, eps={report.eps:g}); mean energy share {100 * share:.2f}%.")
    metrics: dict[str, float | None] = {"intruders": report.total, "matrices": n, "matrices_with_intruders": with_any,
               "mean_energy_share": share}
    info = {
        "intruders": MetricInfo("intruders", f"top-{report.k} tuned singular vectors with max |cos| < {report.eps:g} "
                                "against every base singular vector", None, "d"),
        "matrices": MetricInfo("matrices", "compared weight matrices the tuned model changes", None, "d"),
        "matrices_with_intruders": MetricInfo("matrices_with_intruders", "matrices with at least one intruder", None, "d"),
        "mean_energy_share": MetricInfo("mean_energy_share", "mean over matrices of the intruders' share of ||Wt||_F^2",
                                        False, ".2%"),
    }
    top = [{"matrix": m.name, "intruders": m.count, "energy_share": m.energy_share} for m in top_matrices(report, 3)]
    details = {"counts_vs_eps": {f"{e:g}": c for e, c in report.counts_vs_eps().items()}, "top": top}
    if report.total:
        finding = Finding(NAME, "warning", f"{summary[:-1]}: new high-ranking directions that no base direction "
                          "explains (Shuttleworth et al. link them to forgetting of the pre-training distribution)",
                          details)
    else:
        finding = Finding(NAME, "info", f"no intruder dimensions in {n} compared matrices "
                          f"(k={report.k}, eps={report.eps:g})", details)
    section = Section(NAME, TITLE, summary=summary, metrics=metrics, metric_info=info,
                      tables=_tables(report, options.rows), figures=_figures(report, options.spectra))
    return AnalysisOutput(section, [finding])


register_analysis(NAME, IntrudersOptions, run_intruders, title=TITLE,
                  description="new top singular directions of the tuned weights that no base direction explains")
