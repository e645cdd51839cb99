"""Where a model's weights live and where its modules compute: device maps and offloaded weights.

A model loaded with a device map (``load_model(spec, device_map="auto")``,
transformers + accelerate) has its modules spread over devices, and accelerate
may *offload* some of them (to the CPU next to GPUs, or to disk): such a
module's parameters are empty ``meta`` tensors between forwards, and a hook
loads them from its ``weights_map`` onto the module's execution device for
each call. This module answers, for any model, loaded that way or not:

- :func:`parse_device_map`: a device map from what a user wrote (a strategy
  name, a mapping, a ``.json`` file), checked;
- :func:`module_device`: where a module (or a parameter's module, or an
  editor's :class:`~editkit.localize.location.Site`) computes, so inputs and
  gradients go there;
- :func:`is_offloaded` / :func:`offloaded_parameters` / :func:`param_value`:
  which parameters are offloaded, and their values wherever they are stored;
- :func:`offloaded_values`: run the model with other values for offloaded
  parameters (what swapping ``module._parameters`` does for the others, which
  the offload hooks would undo), and :func:`stored_values`: the stored ones
  again inside such a block;
- :func:`tied_parameters`: which names are one weight, also where the offload
  hooks have split a tied parameter into one placeholder per module;
- :func:`split_offloaded`: which of some new values to write (or swap) into
  on-device parameters and which to hand to the offload hooks, tied aliases
  included.

Nothing here moves or copies a model; the model's own tensors and its hooks'
stores are never written to.

>>> parse_device_map("auto")
'auto'
>>> module_device(model, "model.layers.3.mlp.down_proj.weight")      # doctest: +SKIP
device(type='cuda', index=1)
>>> w = param_value(model, "model.layers.30.mlp.down_proj.weight")    # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from editkit.errors import InputError

__all__ = [
    "DEVICE_MAP_STRATEGIES",
    "check_on_device",
    "device_map_of",
    "execution_device",
    "is_offloaded",
    "module_device",
    "offload_store_key",
    "offloaded_parameters",
    "offloaded_values",
    "param_value",
    "parse_device_map",
    "placement_summary",
    "set_offloaded_values",
    "split_offloaded",
    "stored_values",
    "tied_parameters",
]

DEVICE_MAP_STRATEGIES: tuple[str, ...] = ("auto", "balanced", "balanced_low_0", "sequential")
"""The device-map strategies accelerate computes a map for (``device_map="auto"``...)."""

DeviceMap = str | dict[str, int | str]
_V = TypeVar("_V")


def _check_device(value: object, where: str, key: str) -> int | str:
    """A device-map value: a GPU index, ``"cpu"``, ``"disk"``, or any ``torch.device`` spelling."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InputError(f"{where}: {key!r} -> {value!r}: expected a device such as 0, \"cuda:1\", \"cpu\" or \"disk\"")
    if isinstance(value, int):
        if value < 0:
            raise InputError(f"{where}: {key!r} -> {value}: a GPU index is >= 0")
        return value
    if value != "disk":
        try:
            torch.device(value)
        except (RuntimeError, ValueError):
            raise InputError(
                f"{where}: {key!r} -> {value!r} is not a device; use a GPU index (0), \"cuda:1\", \"cpu\" or \"disk\""
            ) from None
    return value


def _checked_mapping(mapping: Mapping[Any, Any], where: str) -> dict[str, int | str]:
    if not mapping:
        raise InputError(f"{where}: the device map is empty; map module names (\"model.layers.0\", \"lm_head\", or \"\" for all) to devices")
    out: dict[str, int | str] = {}
    for key, value in mapping.items():
        if not isinstance(key, str):
            raise InputError(f"{where}: key {key!r}: expected a module name such as \"model.layers.0\" (\"\" for the whole model)")
        out[key] = _check_device(value, where, key)
    return out


def parse_device_map(value: str | Path | Mapping[str, Any] | None, *, option: str = "device_map") -> DeviceMap | None:
    """A device map for :func:`editkit.models.load_model`, from what a user wrote.

    Args:
        value: None or ``""`` (no device map); a strategy from
            :data:`DEVICE_MAP_STRATEGIES`; a ``module name -> device`` mapping
            (devices: a GPU index, ``"cuda:1"``, ``"cpu"``, ``"disk"``); or the
            path of a ``.json`` file holding such a mapping.
        option: how the value is named in error messages (``--device-map``).

    Returns:
        None, the strategy name, or the checked mapping.

    Raises:
        InputError: one line naming the value, and what to pass instead.

    >>> parse_device_map("sequential")
    'sequential'
    >>> parse_device_map({"model": "cpu", "lm_head": 0})
    {'model': 'cpu', 'lm_head': 0}
    """
    if value is None or value == "":
        return None
    if isinstance(value, Mapping):
        return _checked_mapping(value, option)
    text = str(value)
    if text in DEVICE_MAP_STRATEGIES:
        return text
    path = Path(text).expanduser()
    if path.suffix != ".json" or not path.is_file():
        missing = " (no such file)" if path.suffix == ".json" else ""
        raise InputError(
            f"{option}: {text!r}{missing}: expected {', '.join(DEVICE_MAP_STRATEGIES)} or a .json file "
            "mapping module names to devices (e.g. {\"model.layers.0\": 0, \"lm_head\": \"cpu\"})"
        )
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        detail = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{option}: {path}: not a readable JSON file ({detail}); write one object mapping module names to devices") from None
    if not isinstance(loaded, dict):
        raise InputError(f"{option}: {path}: expected one JSON object mapping module names to devices, got a {type(loaded).__name__}")
    return _checked_mapping(loaded, f"{option}: {path}")


def device_map_of(model: nn.Module) -> dict[str, int | str] | None:
    """The device map a model was loaded with (transformers' ``hf_device_map``), or None."""
    found = getattr(model, "hf_device_map", None)
    return dict(found) if isinstance(found, Mapping) and found else None


def placement_summary(model: nn.Module) -> str:
    """Where a model is, in a few words (for provenance): ``"cpu"``, or ``"device map: 0, 1, disk"``."""
    mapping = device_map_of(model)
    if mapping is None:
        from editkit.batching import model_device

        return str(model_device(model))
    devices = list(dict.fromkeys(str(v) for v in mapping.values()))
    return f"device map: {', '.join(devices)}"


# -- accelerate's hooks, read without importing accelerate -----------------------------


def _hooks(module: nn.Module) -> list[Any]:
    """The accelerate hooks on ``module`` (a ``SequentialHook`` is opened up)."""
    hook = getattr(module, "_hf_hook", None)
    if hook is None:
        return []
    return list(getattr(hook, "hooks", None) or [hook])


def execution_device(module: nn.Module) -> torch.device | None:
    """The device accelerate runs ``module`` on (its hook's ``execution_device``), or None without one."""
    for hook in _hooks(module):
        device = getattr(hook, "execution_device", None)
        if device is not None:
            return torch.device(f"cuda:{device}" if isinstance(device, int) else device)
    return None


def _module_name(model: nn.Module, site: Any) -> str:
    """A module path from a module path, a parameter name or a ``Site`` (its ``param``)."""
    name = str(getattr(site, "param", site))
    if not name:
        return ""
    try:
        model.get_submodule(name)
        return name
    except AttributeError:
        owner, _, _ = name.rpartition(".")
        model.get_submodule(owner)  # raises for a name the model does not have
        return owner


def module_device(model: nn.Module, site: Any = "") -> torch.device:
    """Where the module ``site`` computes: its inputs (and an editor's gradients) belong there.

    Args:
        model: the root module.
        site: a module path (``"model.layers.3.mlp"``), a parameter name
            (``"model.layers.3.mlp.down_proj.weight"``), an editkit
            :class:`~editkit.localize.location.Site`, or ``""`` for the model itself.

    Returns:
        The execution device of the nearest accelerate hook on the module or
        an ancestor (a device map), else the device of the module's first
        parameter or buffer that holds data, else the CPU.

    Raises:
        AttributeError: ``site`` names nothing in ``model``.

    >>> module_device(torch.nn.Linear(2, 2), "weight")
    device(type='cpu')
    """
    name = _module_name(model, site)
    parts = name.split(".") if name else []
    for depth in range(len(parts), -1, -1):
        found = execution_device(model.get_submodule(".".join(parts[:depth])))
        if found is not None:
            return found
    module = model.get_submodule(name)
    for tensor in (*module.parameters(), *module.buffers()):
        if tensor.device.type != "meta":
            return tensor.device
    return torch.device("cpu")


def _offload_hook(model: nn.Module, name: str) -> tuple[Any, str] | None:
    """``(hook, key)``: the accelerate hook that loads parameter ``name`` from its ``weights_map[key]``."""
    owner, _, _ = name.rpartition(".")
    parts = owner.split(".") if owner else []
    for depth in range(len(parts), -1, -1):
        path = ".".join(parts[:depth])
        for hook in _hooks(model.get_submodule(path)):
            if not getattr(hook, "offload", False) or getattr(hook, "weights_map", None) is None:
                continue
            if depth == len(parts) or getattr(hook, "place_submodules", False):
                return hook, name[len(path) + 1 :] if path else name
    return None


def is_offloaded(model: nn.Module, name: str) -> bool:
    """Whether parameter ``name`` is offloaded: stored by an accelerate hook and loaded only for each forward."""
    return _offload_hook(model, name) is not None


def offloaded_parameters(model: nn.Module) -> list[str]:
    """Names of the offloaded parameters (tied aliases included), in ``named_parameters`` order."""
    if not any(_hooks(m) for m in model.modules()):
        return []
    return [n for n, _ in model.named_parameters(remove_duplicate=False) if is_offloaded(model, n)]


def offload_store_key(model: nn.Module, name: str) -> tuple[int, str] | None:
    """``(id of the store, key)`` an offloaded parameter is loaded from, or None.

    A stable key for memoizing something computed from an offloaded weight
    (:func:`param_value` gives a new tensor at each call): the store is the
    hook's own ``weights_map``, which editkit never writes to. None for a
    parameter that is not offloaded, and while :func:`offloaded_values` (or
    :func:`set_offloaded_values`) gives its hook other values.
    """
    found = _offload_hook(model, name)
    if found is None or isinstance(found[0].weights_map, _Overlay):
        return None
    hook, key = found
    return id(hook.weights_map), key


def _tensor(model: nn.Module, name: str) -> torch.Tensor:
    try:
        return model.get_parameter(name)
    except AttributeError:
        return model.get_buffer(name)


def param_value(model: nn.Module, name: str) -> torch.Tensor:
    """The values of parameter ``name``, detached: the parameter itself, or its stored copy when offloaded.

    An offloaded parameter's values are read from where its hook keeps them (CPU
    memory, or a memory-mapped file on disk) with the parameter's dtype; treat
    the result as read-only.

    Raises:
        ValueError: the parameter is on the ``meta`` device and no hook stores it.
    """
    param = _tensor(model, name)
    found = _offload_hook(model, name)
    if found is not None:
        hook, key = found
        return hook.weights_map[key].detach().to(dtype=param.dtype)
    if param.device.type == "meta":
        raise ValueError(f"{name} is on the meta device and no offload hook stores it: the model was not fully loaded")
    return param.detach()


def check_on_device(model: nn.Module, names: Any, what: str) -> None:
    """:class:`InputError` if a parameter of ``names`` is offloaded (``what`` writes to it in place).

    ``names``: parameter names or :class:`~editkit.localize.location.Site` s.
    """
    for item in names:
        name = str(getattr(item, "param", item))
        if is_offloaded(model, name):
            raise InputError(
                f"{what}: {name} is offloaded by the device map (its weights are loaded only for each forward), "
                "so it cannot be changed in place; load the model with a device map that keeps that layer "
                "on a device (a .json map placing it on a GPU or the CPU)"
            )


# -- other values for offloaded parameters ---------------------------------------------


class _Overlay(Mapping[str, torch.Tensor]):
    """A hook's ``weights_map`` with some keys answered from ``values`` instead."""

    def __init__(self, values: Mapping[str, torch.Tensor], under: Mapping[str, torch.Tensor]) -> None:
        self.overrides = dict(values)
        self.under = under

    def __getitem__(self, key: str) -> torch.Tensor:
        return self.overrides[key] if key in self.overrides else self.under[key]

    def __contains__(self, key: object) -> bool:
        return key in self.overrides or key in self.under

    def __iter__(self) -> Iterator[str]:
        return iter(self.under)

    def __len__(self) -> int:
        return len(self.under)


def _layers(weights_map: Any) -> tuple[dict[str, torch.Tensor], Any]:
    """``(values, store)``: every overlaid value (the innermost block's win) and the hook's own store."""
    values: dict[str, torch.Tensor] = {}
    while isinstance(weights_map, _Overlay):
        values = {**weights_map.overrides, **values}
        weights_map = weights_map.under
    return values, weights_map


def tied_parameters(model: nn.Module) -> dict[str, tuple[str, ...]]:
    """For each parameter name, every name of the same weight (itself included), in ``named_parameters`` order.

    Two names are one weight when they are one ``nn.Parameter`` (``lm_head.weight``
    and the embeddings of most language models), or when the model declares them
    tied (transformers' ``all_tied_weights_keys``) and a device map offloads one
    of them. The second case is needed because accelerate's offload hooks give
    every module a parameter of its own: after each call they put a new ``meta``
    placeholder into the module (``set_module_tensor_to_device``), so after a
    model's first forward its offloaded tied parameters are no longer one
    object, although each hook still loads the one stored weight.

    >>> tied_parameters(torch.nn.Linear(2, 2))
    {'weight': ('weight',), 'bias': ('bias',)}
    """
    params = dict(model.named_parameters(remove_duplicate=False))
    order = {n: i for i, n in enumerate(params)}
    root = {n: n for n in params}

    def find(name: str) -> str:
        while root[name] != name:
            root[name] = root[root[name]]
            name = root[name]
        return name

    def join(a: str, b: str) -> None:
        ra, rb = sorted((find(a), find(b)), key=order.__getitem__)
        root[rb] = ra

    first: dict[int, str] = {}
    for name, param in params.items():
        join(name, first.setdefault(id(param), name))
    if any(_hooks(m) for m in model.modules()):
        for prefix, module in model.named_modules():
            declared = getattr(module, "all_tied_weights_keys", None)
            if not isinstance(declared, Mapping):
                continue
            for target, source in declared.items():
                if not isinstance(target, str) or not isinstance(source, str):
                    continue
                a, b = (f"{prefix}.{target}", f"{prefix}.{source}") if prefix else (target, source)
                if (
                    a in params and b in params and params[a].shape == params[b].shape
                    and (is_offloaded(model, a) or is_offloaded(model, b))
                ):
                    join(a, b)
    groups: dict[str, list[str]] = {}
    for name in params:
        groups.setdefault(find(name), []).append(name)
    return {name: tuple(groups[find(name)]) for name in params}


def split_offloaded(model: nn.Module, values: Mapping[str, _V]) -> tuple[dict[str, _V], dict[str, _V]]:
    """``(on_device, hooked)``: where new values of parameters go on a model a device map may offload.

    A tied weight (:func:`tied_parameters`) may be offloaded under one name and
    kept on a device under another (the embeddings on a GPU, ``lm_head``
    offloaded): deciding by the given name alone would leave the other alias
    with the old value. Here every alias is served:

    - ``on_device``: what to write into (or swap for) parameters that hold
      their data: each given name that is not offloaded, and, for a given name
      with an offloaded alias, its on-device aliases not given themselves (one
      name per ``nn.Parameter``), all with the given name's value;
    - ``hooked``: what to hand to the offload hooks
      (:func:`offloaded_values`, :func:`set_offloaded_values`), which serve every
      offloaded alias of each such name: the given names that are offloaded, or
      that have an offloaded alias not given itself.

    Without offloaded parameters ``on_device`` is ``dict(values)`` and ``hooked`` is
    empty, so ``split_offloaded(model, dict.fromkeys(names))[1]`` says whether
    some of ``names`` reach an offloaded weight. The values are passed through
    as they are (deltas, tuned tensors, names...): converting them is the
    caller's part.

    >>> split_offloaded(torch.nn.Linear(2, 2), {"weight": 1})
    ({'weight': 1}, {})
    """
    if not values or not any(_hooks(m) for m in model.modules()):
        return dict(values), {}
    groups = tied_parameters(model)
    offloaded: dict[str, bool] = {}

    def off(name: str) -> bool:
        if name not in offloaded:
            offloaded[name] = is_offloaded(model, name)
        return offloaded[name]

    on_device: dict[str, _V] = {}
    hooked: dict[str, _V] = {}
    written: set[int] = set()  # the on-device tensors a given name writes to
    for name, value in values.items():
        group = groups.get(name, (name,))  # a buffer: its own
        if any(off(a) and (a == name or a not in values) for a in group):
            hooked[name] = value
        if not off(name):
            on_device[name] = value
            written.add(id(_tensor(model, name)))
    for name, value in values.items():
        if name not in hooked:
            continue
        for alias in groups.get(name, (name,)):
            if alias in values or off(alias) or id(_tensor(model, alias)) in written:
                continue
            written.add(id(_tensor(model, alias)))
            on_device[alias] = value
    return on_device, hooked


def _by_hook(model: nn.Module, names: Any, *, strict: bool = True) -> dict[int, tuple[Any, dict[str, tuple[str, str]]]]:
    """Offloaded parameters grouped by the hook that loads them: ``id -> (hook, {key: (name, alias)})``.

    A tied parameter (``lm_head.weight`` and the embeddings, :func:`tied_parameters`)
    is loaded by the hook of each module that holds it: every offloaded alias of a
    name gets the name's value (unless that alias is among ``names`` itself). A
    name need not be offloaded itself when an alias is (the embeddings on a GPU,
    ``lm_head`` offloaded): its offloaded aliases are still served.

    Raises:
        ValueError: with ``strict``, a name none of whose aliases is offloaded
            (without ``strict`` such names are skipped).
    """
    names = list(dict.fromkeys(names))
    groups = tied_parameters(model) if names else {}
    wanted = set(names)
    out: dict[int, tuple[Any, dict[str, tuple[str, str]]]] = {}
    for name in names:
        group = groups.get(name, (name,))  # a buffer: its own
        served = False
        for alias in group:
            if alias != name and alias in wanted:
                continue
            found = _offload_hook(model, alias)
            if found is None:
                continue
            hook, key = found
            out.setdefault(id(hook), (hook, {}))[1][key] = (name, alias)
            served = True
        if strict and not served and not any(is_offloaded(model, a) for a in group):
            raise ValueError(f"{name} is not an offloaded parameter of this model (nor tied to one)")
    return out


def set_offloaded_values(model: nn.Module, values: Mapping[str, torch.Tensor]) -> Callable[[], None]:
    """Make offloaded parameters load ``values`` from now on; return the function that undoes it.

    What :func:`offloaded_values` does for a block, for a model's lifetime (a
    tuned copy of a base model). Undo calls must come in reverse order.

    Raises:
        ValueError: a name that is not an offloaded parameter (nor tied to one).
    """
    saved: list[tuple[Any, Any]] = []
    for hook, keys in _by_hook(model, values).values():
        saved.append((hook, hook.weights_map))
        overlay = {key: values[name].detach().to(dtype=_tensor(model, alias).dtype) for key, (name, alias) in keys.items()}
        hook.weights_map = _Overlay(overlay, hook.weights_map)

    def undo() -> None:
        for hook, weights_map in reversed(saved):
            hook.weights_map = weights_map

    return undo


@contextlib.contextmanager
def offloaded_values(model: nn.Module, values: Mapping[str, torch.Tensor]) -> Iterator[nn.Module]:
    """``with offloaded_values(model, {name: tensor}):`` offloaded parameters load ``tensor`` instead.

    The offload hooks load a module's parameters from their ``weights_map`` at
    every call (and would undo a swapped ``module._parameters`` entry); inside
    the block they read these tensors instead, converted to the parameter's
    dtype and moved to the execution device for each call, like the stored
    ones. Nothing stored is written to; blocks nest.

    A tied parameter (:func:`tied_parameters`) gets the value under every
    offloaded alias; a name kept on a device whose alias is offloaded may be
    given too (its offloaded aliases get the value; swapping the name itself
    stays the caller's part).

    Args:
        model: the root module.
        values: offloaded parameter name -> its value (same shape); keep
            these on the CPU to keep the device free between forwards.

    Raises:
        ValueError: a name that is not an offloaded parameter (nor tied to one).
    """
    undo = set_offloaded_values(model, values)
    try:
        yield model
    finally:
        undo()


@contextlib.contextmanager
def stored_values(model: nn.Module, names: Any) -> Iterator[nn.Module]:
    """``with stored_values(model, names):`` these offloaded parameters load their stored values again.

    Undoes :func:`offloaded_values` for ``names`` inside the block (for a base
    block's call inside a run of the tuned model), their offloaded tied aliases
    included. Names that are not offloaded (nor tied to an offloaded one) are ignored.
    """
    saved: list[tuple[Any, Any]] = []
    try:
        for hook, keys in _by_hook(model, names, strict=False).values():
            current = hook.weights_map
            if not isinstance(current, _Overlay):
                continue
            overlaid, store = _layers(current)
            kept = {k: v for k, v in overlaid.items() if k not in keys}
            saved.append((hook, current))
            hook.weights_map = _Overlay(kept, store) if kept else store
        yield model
    finally:
        for hook, weights_map in reversed(saved):
            hook.weights_map = weights_map
