"""A null space stored with a MEND editor: its updates leave preserved keys alone.

MEND's update of a matrix is ``-a * delta~^T u~``: a sum of rank-one terms
whose input side ``u~`` is the edited prompt's (transformed) layer input. Any
other prompt whose input at that layer shares directions with ``u~`` moves
too, which is how neighbors of the edited fact change. AlphaEdit (Fang et al.,
ICLR 2025) removes those directions: collect the inputs the matrix receives
over preserved text, keep the eigen-directions of their covariance whose
eigenvalues lie above ``threshold`` times the largest (``B``, a few dozen of
hundreds), and project the input side onto the rest, ``u~ - (u~ B^T) B``.
The update then acts on preserved keys (almost) not at all:
``(-a delta~^T u~ (I - B^T B)) k ~ 0`` for every preserved ``k``.

The projection removes part of each update, so the step is multiplied by
``scale`` (chosen on validation requests, stored with the directions).

The preserved text is the training requests' own neighborhood prompts with
their answers (same relations, other subjects; never an evaluation request
since training data is disjoint from it) plus general passages. It is built
once, for the editor's base model, and written beside the editor as
``nullspace.safetensors``:

>>> ns = build_null_space(model, tok, net.spec.params, nullspace_texts(train), threshold=2e-3, scale=1.5)  # doctest: +SKIP
>>> save_null_space(ns, "runs/mend-editor")                                                         # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from editkit.editors.mend.spec import MendSpec, module_of
from editkit.editors.nullspace import collect_inputs_many, used_directions
from editkit.errors import InputError
from editkit.outputs import atomic_write_bytes
from editkit.requests import EditRequest

FORMAT = "editkit-mend-nullspace/1"
FILE = "nullspace.safetensors"


@dataclass(frozen=True)
class MendNullSpace:
    """Per edited matrix, the input directions preserved keys use (to be removed from updates).

    Attributes:
        bases: parameter -> ``B`` ``[k, d_in]``, orthonormal rows.
        threshold: eigenvalues above ``threshold`` x the largest were kept in ``B``.
        scale: factor on the projected update.
        n_keys: preserved keys (token positions) the directions come from.
        n_texts: preserved texts.
        base_weights_sha256: the base model it was built on (the editor's).
    """

    bases: dict[str, torch.Tensor]
    threshold: float
    scale: float
    n_keys: int
    n_texts: int
    base_weights_sha256: str

    def project(self, param: str, u: torch.Tensor) -> torch.Tensor:
        """``u (I - B^T B)``: the rows of ``u`` ``[rows, d_in]`` with the preserved directions removed."""
        b = self.bases[param]
        if b.device != u.device or b.dtype != u.dtype:
            b = self.bases[param] = b.to(device=u.device, dtype=u.dtype)  # moved once, kept there
        return u - (u @ b.T) @ b

    def describe(self) -> str:
        dropped = sum(b.shape[0] for b in self.bases.values())
        total = sum(b.shape[1] for b in self.bases.values())
        return (f"null space of {self.n_keys} preserved keys ({self.n_texts} texts): {dropped} of {total} input "
                f"directions removed (eigenvalues above {self.threshold:g} x max), update x {self.scale:g}")

    def describe_each(self) -> dict[str, str]:
        """Parameter -> what its updates are confined to (the shape of LocFT-BF's report entry)."""
        return {
            p: f"null space of {self.n_keys} preserved keys: dropped {b.shape[0]} of {b.shape[1]} input directions "
            f"(eigenvalues above {self.threshold:g} x max), update x {self.scale:g}"
            for p, b in self.bases.items()
        }


def nullspace_texts(requests: Sequence[EditRequest], *, general: int = 20) -> list[str]:
    """Preserved text for a MEND editor: the requests' neighbor prompts with answers, then general passages.

    Each distinct ``(prompt, answer)`` once, in sorted order (the result does
    not depend on the order of the requests).
    """
    from editkit.datafiles import read_texts, shipped

    pairs = sorted({(n.prompt, n.target) for r in requests for n in r.neighborhood_prompts})
    texts = [f"{prompt} {answer}" for prompt, answer in pairs]
    if general > 0:
        texts += read_texts(shipped("preserve_text.jsonl"))[:general]
    return texts


class NullSpaceFull(InputError):
    """Preserved keys use every input direction of a matrix: the projected update would be zero."""


def check_scale(scale: float, where: str = "scale") -> None:
    if not (math.isfinite(scale) and scale > 0):
        raise InputError(f"{where} {scale}: must be a finite number > 0")


def template_texts(requests: Sequence[EditRequest], *, per_template: int = 40, general: int = 20) -> list[str]:
    """Preserved text for the requests to be edited: what LocFT-BF preserves for them.

    Each request template filled with up to ``per_template`` other subjects of
    the shipped fact tables (never an edited subject or a neighbor prompt),
    then ``general`` general passages (:func:`~editkit.editors.preservation.preservation_texts`).
    """
    from editkit.editors.preservation import preservation_texts

    return preservation_texts(requests, per_template=per_template, general=general)


def build_null_space(
    model: nn.Module,
    tok: Any,
    params: Sequence[str],
    texts: Sequence[str],
    *,
    threshold: float = 1e-3,
    scale: float = 1.0,
    progress: Callable[[str, int, int], None] | None = None,
) -> MendNullSpace:
    """The directions each matrix of ``params`` receives over ``texts`` (one forward pass over them).

    ``model`` must be the unedited base model (the inputs of later edited
    layers depend on the earlier ones); its weights' hash is stored.

    Raises:
        NullSpaceFull: some matrix has no direction left at ``threshold``.
    """
    from editkit.report import weights_sha256

    check_scale(scale)
    if not texts:
        raise InputError("no preserved text to build the null space from: the requests have no neighborhood prompts")
    paths = {p: module_of(p) for p in params}
    keys = collect_inputs_many(model, sorted(set(paths.values())), tok, texts, progress=progress)
    bases = {p: used_directions(keys[path], threshold) for p, path in paths.items()}
    full = [p for p, b in bases.items() if b.shape[0] >= b.shape[1]]
    if full:
        raise NullSpaceFull(
            f"preserved keys use every input direction of {full[0]} at threshold {threshold:g} (and "
            f"{len(full) - 1} more matrices): the update would be zero; raise the threshold or use less text"
        )
    n_keys = int(next(iter(keys.values())).shape[0])
    return MendNullSpace(bases, threshold, scale, n_keys, len(texts), weights_sha256(model))


def save_null_space(ns: MendNullSpace, folder: str | Path) -> Path:
    """Write ``ns`` into the editor directory ``folder`` (atomically)."""
    from safetensors.torch import save

    meta = {
        "format": FORMAT,
        "threshold": repr(ns.threshold),
        "scale": repr(ns.scale),
        "n_keys": str(ns.n_keys),
        "n_texts": str(ns.n_texts),
        "base_weights_sha256": ns.base_weights_sha256,
    }
    dest = Path(folder) / FILE
    tensors = {p: b.detach().cpu().contiguous() for p, b in ns.bases.items()}
    atomic_write_bytes(dest, save(tensors, metadata=meta))
    return dest


def load_null_space(folder: str | Path, spec: MendSpec) -> MendNullSpace | None:
    """The null space stored in an editor directory, or None when it has none.

    Raises:
        InputError: the file is not one, was built for another base model, or
            does not cover exactly the editor's matrices.
    """
    from editkit.tensorfiles import read_tagged

    path = Path(folder) / FILE
    if not path.is_file():
        return None
    tensors, meta = read_tagged(path, FORMAT, what="MEND null space")
    if meta.get("base_weights_sha256") != spec.base_weights_sha256:
        raise InputError(
            f"{path}: built for another base model than the editor's (weights sha256 "
            f"{str(meta.get('base_weights_sha256'))[:12]} vs {spec.base_weights_sha256[:12]}): rebuild it with "
            "`editkit mend nullspace`"
        )
    if set(tensors) != set(spec.params):
        raise InputError(f"{path}: does not cover the editor's matrices: rebuild it with `editkit mend nullspace`")
    for p, b in tensors.items():
        d_in = spec.shapes[p][1]
        if b.ndim != 2 or b.shape[1] != d_in:
            raise InputError(f"{path}: {p} has shape {tuple(b.shape)}, expected [k, {d_in}]")
    try:
        null = MendNullSpace(
            tensors, float(meta["threshold"]), float(meta["scale"]), int(meta["n_keys"]), int(meta["n_texts"]),
            spec.base_weights_sha256,
        )
    except (KeyError, ValueError) as exc:
        raise InputError(f"{path}: incomplete metadata ({exc})") from None
    check_scale(null.scale, f"{path}: scale")
    return null

