"""The editor registry: ``register_editor(name, config_cls, editor_cls)``.

Every editor is a small class with a typed config and one method::

    class MyEditor(Editor):
        def compute(self, model, tok, requests, location) -> EditResult: ...

``compute`` returns deltas and leaves the model exactly as it found it; the
shared :func:`~editkit.editors.apply` / :func:`~editkit.editors.revert` change
the weights.

>>> editor = make_editor("locft-bf", {"lr": 5e-4})     # doctest: +SKIP
>>> result = editor.compute(model, tok, requests, location)  # doctest: +SKIP
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from editkit.editors.config import EditorConfig
from editkit.editors.result import EditResult
from editkit.errors import EditkitError
from editkit.localize.location import Location
from editkit.requests import EditRequest

C = TypeVar("C", bound=EditorConfig)


class Editor(abc.ABC, Generic[C]):
    """Base class: holds the config; subclasses implement :meth:`compute`."""

    name: str = ""

    def __init__(self, config: C) -> None:
        self.config = config

    @abc.abstractmethod
    def compute(
        self,
        model: Any,
        tok: Any,
        requests: Sequence[EditRequest],
        location: Location,
        *,
        progress: Any = None,
    ) -> EditResult:
        """Compute deltas that teach ``requests`` at ``location``; leave ``model`` unchanged."""

    #: where :meth:`default_location` edits: a relative depth (or layer index) and a module kind
    default_layer: int | float = 0.66
    default_module: str = "mlp_down"

    def default_location(self, model: Any) -> Location:
        """Where this editor edits when the user does not say (``default_layer``, ``default_module``)."""
        from editkit.localize import fixed

        return fixed(model, self.default_layer, self.default_module)


@dataclass(frozen=True)
class EditorEntry:
    name: str
    config_cls: type[EditorConfig]
    editor_cls: type[Editor[Any]]
    summary: str = ""


EDITORS: dict[str, EditorEntry] = {}


def register_editor(
    name: str, config_cls: type[EditorConfig], editor_cls: type[Editor[Any]], *, summary: str = ""
) -> EditorEntry:
    """Register an editor under ``name`` (once)."""
    if name in EDITORS:
        raise ValueError(f"editor {name!r} is already registered")
    entry = EditorEntry(name, config_cls, editor_cls, summary or (editor_cls.__doc__ or "").strip().split("\n")[0])
    editor_cls.name = name
    EDITORS[name] = entry
    return entry


def get_entry(name: str) -> EditorEntry:
    from editkit.editors import _builtin  # noqa: F401  (registers the built-in editors)

    if name not in EDITORS:
        raise EditkitError(f"unknown editor {name!r}: choose one of {', '.join(sorted(EDITORS))}")
    return EDITORS[name]


def make_editor(
    name: str, config: EditorConfig | Mapping[str, Any] | None = None, overrides: Sequence[str] = ()
) -> Editor[Any]:
    """Build a registered editor from a config object, a mapping, or defaults, plus ``key=value`` overrides."""
    entry = get_entry(name)
    if config is None:
        cfg = entry.config_cls()
    elif isinstance(config, EditorConfig):
        if not isinstance(config, entry.config_cls):
            raise EditkitError(f"editor {name!r} takes a {entry.config_cls.__name__}, not {type(config).__name__}")
        cfg = config
    else:
        cfg = entry.config_cls.from_mapping(config)
    if overrides:
        cfg = cfg.with_overrides(overrides)
    cfg.check_inputs()
    return entry.editor_cls(cfg)


def editor_names() -> list[str]:
    from editkit.editors import _builtin  # noqa: F401

    return sorted(EDITORS)
