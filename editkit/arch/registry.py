"""The registry of :class:`ArchSpec` s, keyed by ``config.model_type``.

>>> get_arch("gpt2").transposed_linears
True
>>> "llama" in registered()
True
"""

from __future__ import annotations

from typing import Any

from editkit.arch.spec import ArchitectureError, ArchSpec
from editkit.arch.tables import BUILTIN_SPECS

_REGISTRY: dict[str, ArchSpec] = {spec.model_type: spec for spec in BUILTIN_SPECS}


def register(spec: ArchSpec, *, overwrite: bool = False) -> ArchSpec:
    """Add an architecture (or replace one with ``overwrite=True``).

    Args:
        spec: The spec; its ``model_type`` is the key.
        overwrite: Replace an existing spec of the same ``model_type``.

    Returns:
        ``spec``, so that the call can be used as an expression.

    Raises:
        ValueError: ``spec.model_type`` is registered and ``overwrite`` is False.
        TypeError: ``spec`` is not an :class:`ArchSpec`.

    >>> from dataclasses import replace
    >>> spec = register(replace(get_arch("llama"), model_type="my_llama"))  # doctest: +SKIP
    """
    if not isinstance(spec, ArchSpec):
        raise TypeError(f"register() takes an ArchSpec, got {type(spec).__name__}")
    if spec.model_type in _REGISTRY and not overwrite:
        raise ValueError(
            f"architecture {spec.model_type!r} is already registered; "
            "pass overwrite=True to replace it"
        )
    _REGISTRY[spec.model_type] = spec
    return spec


def registered() -> dict[str, ArchSpec]:
    """A copy of the registry: ``{model_type: ArchSpec}``.

    >>> registered()["gpt_neox"].layers
    'gpt_neox.layers'
    """
    return dict(_REGISTRY)


def model_type_of(model_or_config: Any) -> str:
    """The ``model_type`` of a model, a config, or a ``model_type`` string.

    Args:
        model_or_config: A model with a ``.config``, a config, or a string.

    Raises:
        ArchitectureError: No ``model_type`` can be found.

    >>> model_type_of("llama")
    'llama'
    """
    if isinstance(model_or_config, str):
        return model_or_config
    config = getattr(model_or_config, "config", model_or_config)
    model_type = getattr(config, "model_type", None)
    if not isinstance(model_type, str) or not model_type:
        raise ArchitectureError(
            f"cannot tell the architecture of a {type(model_or_config).__name__}: "
            "pass a model with a .config, a config with a model_type, or a model_type string"
        )
    return model_type


def get_arch(model_or_config: Any) -> ArchSpec:
    """The :class:`ArchSpec` of a model, a config, or a ``model_type`` string.

    Args:
        model_or_config: A model with a ``.config``, a config, or a string.

    Returns:
        The registered spec for ``config.model_type``.

    Raises:
        ArchitectureError: (an :class:`~editkit.errors.EditkitError`) the type
            is not registered; the message says how to register it.

    >>> get_arch("llama").layers
    'model.layers'
    """
    model_type = model_type_of(model_or_config)
    spec = _REGISTRY.get(model_type)
    if spec is None:
        raise ArchitectureError(
            f"no architecture spec for model_type {model_type!r}; describe its layout with "
            f"editkit.arch.register(ArchSpec(model_type={model_type!r}, layers=..., ...)) "
            "(or replace() a similar one from editkit.arch.registered()); "
            f"known types: {', '.join(sorted(_REGISTRY))}"
        )
    return spec
