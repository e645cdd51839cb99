"""Intruder dimensions: new high-ranking singular vectors a fine-tune put into the weights.

Shuttleworth et al., "LoRA vs Full Fine-tuning: An Illusion of Equivalence"
(NeurIPS 2025). See :mod:`audit.intruders.analysis` for the procedure,
:mod:`audit.intruders.results` for the exact definitions of what is reported,
:mod:`audit.intruders.spectral` for the SVDs and their accuracy check,
:mod:`audit.intruders.certified` for the certified route of low-rank updates,
:mod:`audit.intruders.export` for the files a report is written to.

>>> from audit.intruders import intruder_analysis, intruder_heatmap
>>> report = intruder_analysis(base, "runs/lora")        # doctest: +SKIP
>>> intruder_heatmap(report, "out/intruders.png")       # doctest: +SKIP
"""

from __future__ import annotations

from audit.intruders.analysis import (
    DEFAULT_EPS_GRID,
    IntruderConfig,
    analyze_matrix,
    inspect_matrix,
    intruder_analysis,
)
from audit.intruders.cache import BasisCache, default_cache_dir
from audit.intruders.export import intruder_payload, top_matrices, write_intruder_files
from audit.intruders.figures import intruder_heatmap, spectrum_plot
from audit.intruders.results import IntruderReport, MatrixIntruders

__all__ = [
    "DEFAULT_EPS_GRID",
    "BasisCache",
    "IntruderConfig",
    "IntruderReport",
    "MatrixIntruders",
    "analyze_matrix",
    "default_cache_dir",
    "inspect_matrix",
    "intruder_analysis",
    "intruder_heatmap",
    "intruder_payload",
    "spectrum_plot",
    "top_matrices",
    "write_intruder_files",
]
