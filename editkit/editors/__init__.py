"""Editors: a registry of small classes with typed configs and one contract.

``editor.compute(model, tok, requests, location) -> EditResult``; the shared
:func:`apply` / :func:`revert` change the model (revert is exact, bit for bit);
:func:`save_edit` / :func:`load_edit` keep deltas in safetensors.

>>> from editkit.editors import make_editor, apply
>>> editor = make_editor("locft-bf", overrides=["epochs=10"])   # doctest: +SKIP
"""

from __future__ import annotations

from editkit.editors.config import EditorConfig
from editkit.editors.registry import (
    EDITORS,
    Editor,
    editor_names,
    get_entry,
    make_editor,
    register_editor,
)
from editkit.editors.result import (
    EditResult,
    applied,
    apply,
    is_applied,
    load_edit,
    revert,
    reverted,
    save_edit,
)
from editkit.editors.sequential import ReplaySession

__all__ = [
    "EDITORS",
    "EditResult",
    "Editor",
    "EditorConfig",
    "ReplaySession",
    "applied",
    "apply",
    "editor_names",
    "get_entry",
    "is_applied",
    "load_edit",
    "make_editor",
    "register_editor",
    "revert",
    "reverted",
    "save_edit",
]
