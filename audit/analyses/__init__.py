"""Audit analyses behind one registry: each takes the shared context and returns a report section.

Built in, in the default report order (the order of the imports below):
``tuco``, ``cge``, ``intruders``, ``refusal``, ``drift``. Each module holds
its options dataclass, its function and one :func:`register_analysis` line;
add one the same way.

>>> from audit.analyses import ANALYSES, get_analysis
>>> list(ANALYSES)
['tuco', 'cge', 'intruders', 'refusal', 'drift']
"""

from __future__ import annotations

# isort: off
# Each module registers its analysis; the import order is the default report order.
from audit.analyses import tuco as _tuco  # noqa: F401
from audit.analyses import cge as _cge  # noqa: F401
from audit.analyses import intruders as _intruders  # noqa: F401
from audit.analyses import refusal as _refusal  # noqa: F401
from audit.analyses import drift as _drift  # noqa: F401

# isort: on
from audit.analyses.registry import (
    ANALYSES,
    Analysis,
    AnalysisOptions,
    AnalysisOutput,
    AnalysisUnavailable,
    get_analysis,
    parse_analyses,
    parse_options,
    register_analysis,
)

__all__ = [
    "ANALYSES",
    "Analysis",
    "AnalysisOptions",
    "AnalysisOutput",
    "AnalysisUnavailable",
    "get_analysis",
    "parse_analyses",
    "parse_options",
    "register_analysis",
]
