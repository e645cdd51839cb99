"""editkit: edit what a language model knows, and audit what a fine-tune did to it.

>>> import editkit
>>> model, tok = editkit.load_model("smollm2-135m-instruct")  # doctest: +SKIP
>>> reqs = editkit.load_requests("data/demo.jsonl")            # doctest: +SKIP
>>> result = editkit.evaluate(model, tok, reqs)                # doctest: +SKIP

Nothing here runs at import: names are resolved lazily so that ``import editkit``
stays cheap and never initializes CUDA.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_model": "editkit.models",
    "EditRequest": "editkit.requests",
    "Neighbor": "editkit.requests",
    "load_requests": "editkit.requests",
    "iter_requests": "editkit.requests",
    "evaluate": "editkit.evaluate",
    "EvalConfig": "editkit.evaluate",
    "Report": "editkit.report",
    "EditkitError": "editkit.errors",
    "get_arch": "editkit.arch",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'editkit' has no attribute {name!r}")
