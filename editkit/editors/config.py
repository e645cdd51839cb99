"""Typed editor configs: dataclasses loadable from YAML/JSON and ``--set key=value``.

Unknown keys are rejected with the closest known key suggested.

>>> cfg = LocFTConfig.from_mapping({"lr": 1e-3})          # doctest: +SKIP
>>> cfg = cfg.with_overrides(["epochs=10", "eos=false"])   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from editkit.errors import InputError
from editkit.requests.schema import show

C = TypeVar("C", bound="EditorConfig")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Convert a string (from --set) or JSON value to the field's declared type."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        if is_none and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except InputError as exc:
                errors.append(str(exc))
        raise InputError(errors[0] if errors else f"{where}: cannot read {show(value)}")
    if origin is typing.Literal:
        if value not in args:
            raise InputError(f"{where}: {show(value)} is not one of {', '.join(map(repr, args))}")
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise InputError(f"{where}: expected true/false, got {show(value)}")
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise InputError(f"{where}: expected a number, got {show(value)}")
        try:
            number = hint(value) if not isinstance(value, str) else hint(float(value) if hint is float else int(value))
        except (ValueError, OverflowError):  # "abc", float("nan") as int, int(inf)
            raise InputError(f"{where}: expected a finite {hint.__name__}, got {show(value)}") from None
        if not math.isfinite(number):  # "nan", "inf", 1e400: never a usable setting
            raise InputError(f"{where}: expected a finite number, got {show(value)}")
        if hint is int and isinstance(value, float) and not value.is_integer():
            raise InputError(f"{where}: expected an integer, got {show(value)}")
        return number
    if hint is str:
        if not isinstance(value, str):
            raise InputError(f"{where}: expected a string, got {show(value)}")
        return value
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()] if value.strip() else []
        if not isinstance(value, (list, tuple)):
            raise InputError(f"{where}: expected a list, got {show(value)}")
        inner = args[0] if args else str
        return tuple(_coerce(v.strip() if isinstance(v, str) else v, inner, where) for v in value)
    return value


def option(help: str, default: Any) -> Any:
    """A config field with a default and its help text (shown by ``--help`` listings).

    >>> @dataclasses.dataclass(frozen=True)
    ... class Demo(EditorConfig):
    ...     lr: float = option("learning rate", 1e-3)
    >>> Demo.help()["lr"]
    'learning rate'
    """
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class EditorConfig:
    """Base of every editor's config. Field ``metadata={"help": ...}`` documents each option.

    Attributes:
        seed: seeds every random choice of the editor (shuffling, initialization).
    """

    seed: int = dataclasses.field(default=0, metadata={"help": "random seed for shuffling and initialization"})

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_mapping(cls: type[C], values: Mapping[str, Any], *, where: str = "config") -> C:
        """Build from a mapping (parsed YAML/JSON), rejecting unknown keys."""
        known = cls.field_names()
        hints = typing.get_type_hints(cls)
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            if not isinstance(key, str):
                raise InputError(f"{where}: option names are strings, got {show(key)}; known keys: {', '.join(known)}")
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"
                raise InputError(f"{where}: unknown key {key!r} for {cls.__name__}{hint}")
            kwargs[key] = _coerce(value, hints[key], f"{where}: {key}")
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{where}: {exc}") from None

    @classmethod
    def from_file(cls: type[C], path: str | Path) -> C:
        """Load from a ``.json`` or ``.yaml``/``.yml`` file."""
        from editkit.datafiles import read_small_text

        p = Path(path)
        if not p.is_file():
            raise InputError(f"{p}: no such config file")
        text = read_small_text(p, what="config file")
        if not text.strip():
            raise InputError(f"{p}: empty config file; write one option: value per line, or drop --config")
        try:
            if p.suffix.lower() in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text)
                data = {} if data is None else data  # only comments: every option at its default
            else:
                data = json.loads(text)
        except Exception as exc:  # yaml and json raise different types (and RecursionError)
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise InputError(f"{p}: cannot parse ({first})") from None
        if not isinstance(data, dict):
            raise InputError(f"{p}: expected a mapping of option: value, got {type(data).__name__}")
        return cls.from_mapping(data, where=str(p))

    def with_overrides(self: C, assignments: Sequence[str]) -> C:
        """Apply ``key=value`` strings (the CLI's ``--set``)."""
        values = self.to_dict()
        for item in assignments:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise InputError(f"--set {item!r}: expected key=value")
            values[key.strip()] = value.strip()
        return type(self).from_mapping(values, where="--set")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def check_inputs(self) -> None:
        """Fail early on options that cannot work together, before any model is loaded.

        Cheap checks only (no model, no requests); :func:`editkit.editors.make_editor`
        runs them. Editors override this; the default accepts everything.

        Raises:
            InputError: naming the options and what to change.
        """

    @classmethod
    def help(cls) -> dict[str, str]:
        """Option name -> help text (for ``editkit edit --help-config``)."""
        return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}
