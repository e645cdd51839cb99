"""What an editor computes, and the shared, exact apply / revert.

An :class:`EditResult` holds parameter deltas (name -> ``W_edited - W_original``),
the :class:`~editkit.localize.Location` they belong to, the config, timings and
the training log. :func:`apply` adds the deltas and remembers the original
tensors; :func:`revert` copies those back, so the model returns bit for bit to
its state before :func:`apply`. Deltas are saved and loaded with safetensors.

>>> result = editor.compute(model, tok, requests, location)   # doctest: +SKIP
>>> apply(model, result); ...; revert(model, result)          # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import uuid
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from editkit.errors import EditkitError, InputError
from editkit.localize.location import Location
from editkit.placement import check_on_device

DELTA_FORMAT = "editkit-delta/1"


@dataclass
class EditResult:
    """Deltas and everything needed to explain them.

    Attributes:
        method: the editor's registered name.
        deltas: parameter name -> ``W_edited - W_original`` (fp32, CPU).
        location: where the edit happened.
        config: the editor config, as plain data.
        timings: seconds per phase.
        log: training log rows (step/epoch, loss, ...).
        info: what actually ran (schedule, steps, early stop), for the report.
    """

    method: str
    deltas: dict[str, torch.Tensor]
    location: Location
    config: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    uid: str = field(default_factory=lambda: uuid.uuid4().hex)

    def norms(self) -> dict[str, float]:
        """Frobenius norm of each delta."""
        return {k: float(v.float().norm()) for k, v in self.deltas.items()}


# model -> {result uid -> {param name -> original tensor}}
_ORIGINALS: weakref.WeakKeyDictionary[nn.Module, dict[str, dict[str, torch.Tensor]]] = weakref.WeakKeyDictionary()


def _params(model: nn.Module, names: Any) -> dict[str, nn.Parameter]:
    found: dict[str, nn.Parameter] = {}
    missing = []
    for name in names:  # looked up by path: walking every parameter of a large model costs more
        try:
            found[name] = model.get_parameter(name)
        except AttributeError:
            missing.append(name)
    if missing:
        raise EditkitError(f"the edit names parameters this model does not have: {missing[:3]}")
    return found


@torch.no_grad()
def apply(model: nn.Module, result: EditResult) -> None:
    """Add the deltas to the model's weights (in place), remembering the originals.

    Raises:
        InputError: a delta for a weight a device map offloads (writing it would do nothing).
    """
    check_on_device(model, result.deltas, "apply")
    applied = _ORIGINALS.setdefault(model, {})
    if result.uid in applied:
        raise EditkitError("this edit is already applied to the model")
    params = _params(model, result.deltas)
    for name, p in params.items():
        if tuple(p.shape) != tuple(result.deltas[name].shape):
            raise EditkitError(f"{name}: delta shape {tuple(result.deltas[name].shape)} != weight {tuple(p.shape)}")
    applied[result.uid] = {n: p.detach().clone() for n, p in params.items()}
    for name, p in params.items():
        delta = result.deltas[name].to(device=p.device, dtype=torch.float32)
        if p.dtype == torch.float32:
            p.add_(delta)  # the same fp32 sum as below, without temporaries
        else:
            p.copy_((p.float() + delta).to(p.dtype))


@torch.no_grad()
def revert(model: nn.Module, result: EditResult) -> None:
    """Restore the weights :func:`apply` changed, exactly (bit for bit)."""
    applied = _ORIGINALS.get(model, {})
    if result.uid not in applied:
        raise EditkitError("this edit is not applied to the model, so it cannot be reverted")
    check_on_device(model, applied[result.uid], "revert")
    originals = applied.pop(result.uid)
    for name, p in _params(model, originals).items():
        p.copy_(originals[name])


def is_applied(model: nn.Module, result: EditResult) -> bool:
    return result.uid in _ORIGINALS.get(model, {})


@contextlib.contextmanager
def applied(model: nn.Module, result: EditResult) -> Iterator[nn.Module]:
    """``with applied(model, result):`` the model is edited inside the block only."""
    apply(model, result)
    try:
        yield model
    finally:
        revert(model, result)


@contextlib.contextmanager
def reverted(model: nn.Module, result: EditResult) -> Iterator[nn.Module]:
    """``with reverted(model, result):`` an applied edit is taken out inside the block only.

    Useful as the ``base`` of :func:`editkit.evaluate.evaluate` (KL to the unedited model).
    """
    revert(model, result)
    try:
        yield model
    finally:
        apply(model, result)


def save_edit(result: EditResult, path: str | Path) -> Path:
    """Write the deltas (safetensors) with the location, config, info and log as metadata."""
    from safetensors.torch import save

    from editkit.outputs import atomic_write_bytes

    dest = Path(path)
    meta = {
        "format": DELTA_FORMAT,
        "method": result.method,
        "location": json.dumps(result.location.to_dict()),
        "config": json.dumps(result.config, default=str),
        "timings": json.dumps(result.timings),
        "info": json.dumps(result.info, default=str),
        "log": json.dumps(result.log, default=str),
        "uid": result.uid,
    }
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in result.deltas.items()}
    data = save(tensors, metadata=meta)
    atomic_write_bytes(dest, data)
    return dest


_JSON_METADATA: dict[str, tuple[type, str | None]] = {
    "location": (dict, None),
    "config": (dict, None),
    "timings": (dict, "{}"),
    "log": (list, "[]"),
    "info": (dict, "{}"),
}
"""The JSON-valued metadata of a delta file: its type and its default (None: required)."""


def load_edit(path: str | Path) -> EditResult:
    """Read deltas written by :func:`save_edit` (safetensors: no pickle, nothing executed).

    Raises:
        InputError: (one line naming the file) not a readable editkit delta file,
            metadata missing or not valid JSON, or a location that is not one.
    """
    from editkit.datafiles import parse_json_line
    from editkit.tensorfiles import read_tagged

    tensors, meta = read_tagged(path, DELTA_FORMAT, what="delta file")
    fix = "the file is damaged or was not written by editkit: write the edit again"
    required = ["method", *(key for key, (_, default) in _JSON_METADATA.items() if default is None)]
    missing = [key for key in required if key not in meta]
    if missing:
        raise InputError(f"{path}: delta file metadata lacks {', '.join(missing)}; {fix}")
    values: dict[str, Any] = {}
    for key, (kind, default) in _JSON_METADATA.items():
        value = parse_json_line(meta[key] if key in meta else str(default), f"{path}: metadata {key!r}")
        if not isinstance(value, kind):
            expected = "an object" if kind is dict else "an array"
            raise InputError(f"{path}: metadata {key!r}: expected {expected}, got {type(value).__name__}; {fix}")
        values[key] = value
    try:
        location = Location.from_dict(values.pop("location"))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        detail = (str(exc).splitlines() or [""])[0]
        raise InputError(f"{path}: metadata 'location' is not an edit location ({type(exc).__name__} {detail}); {fix}") from None
    return EditResult(
        method=meta["method"], deltas=tensors, location=location, uid=meta.get("uid") or uuid.uuid4().hex, **values
    )
