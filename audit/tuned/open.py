"""Open whatever a tuned model was saved as: full checkpoint, LoRA adapter or editkit edit.

>>> tuned = load_tuned(model, "runs/lora")      # doctest: +SKIP
>>> tuned.kind                                  # doctest: +SKIP
'lora'
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch import nn

from audit.tuned.base import PICKLE_SUFFIXES, TunedWeights, refuse_pickle
from audit.tuned.edit import DELTA_FILE, EditDeltas
from audit.tuned.full import INDEX_FILE, FullCheckpoint
from audit.tuned.lora import CONFIG_FILE, LoraAdapter
from editkit.errors import InputError

KINDS: dict[str, Callable[[nn.Module, str | Path], TunedWeights]] = {
    "full": FullCheckpoint,
    "lora": LoraAdapter,
    "edit": EditDeltas,
}


def detect_kind(path: str | Path) -> tuple[str, Path]:
    """``(kind, path to read)`` for a tuned-model folder or file.

    A folder with ``adapter_config.json`` is a LoRA adapter; with
    ``delta.safetensors`` an editkit edit; with safetensors weights a full
    fine-tune; an ``editkit edit`` folder saved with ``--save model`` is the
    full model in its ``model/`` subfolder. A ``.safetensors`` file is an edit
    when tagged ``editkit-delta/1``, else a one-file checkpoint.

    Raises:
        InputError: no such path, nothing recognisable, or only pickle files.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(
            f"{p}: no such file or folder; pass a local folder (download a hub model first, "
            "e.g. huggingface_hub.snapshot_download(repo_id))"
        )
    if p.is_file():
        if p.suffix in PICKLE_SUFFIXES:
            raise refuse_pickle(p)
        return ("edit" if _is_delta_file(p) else "full"), p
    if (p / CONFIG_FILE).is_file():
        return "lora", p
    if (p / DELTA_FILE).is_file():
        return "edit", p
    if (p / INDEX_FILE).is_file() or any(p.glob("*.safetensors")):
        return "full", p
    if (p / "model").is_dir():
        return detect_kind(p / "model")
    pickles = sorted(q for q in p.iterdir() if q.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise refuse_pickle(pickles[0])
    raise InputError(
        f"{p}: no tuned weights found; expected a peft adapter ({CONFIG_FILE}), an editkit "
        f"edit ({DELTA_FILE}) or a safetensors model folder"
    )


def _is_delta_file(path: Path) -> bool:
    from safetensors import safe_open

    from editkit.editors.result import DELTA_FORMAT

    try:
        with safe_open(str(path), framework="pt") as fh:
            return (fh.metadata() or {}).get("format") == DELTA_FORMAT
    except Exception:  # not safetensors: the full-checkpoint reader says so clearly
        return False


def load_tuned(base: nn.Module, path: str | Path, *, kind: str | None = None) -> TunedWeights:
    """The tuned weights at ``path`` as deltas against ``base``, read lazily (no second model copy).

    Args:
        base: the base model, already loaded (it is read, never changed).
        path: a full fine-tune / merged-adapter folder (safetensors), a peft LoRA
            adapter folder, or an ``editkit edit`` output (folder or delta file).
        kind: ``"full"``, ``"lora"`` or ``"edit"`` to skip detection.

    Raises:
        InputError: unreadable or mismatched input (architecture, names, shapes, pickle files).

    >>> tuned = load_tuned(model, "runs/lora")                          # doctest: +SKIP
    >>> dw = tuned["model.layers.0.self_attn.q_proj.weight"]            # doctest: +SKIP
    """
    if kind is None:
        kind, path = detect_kind(path)
    if kind not in KINDS:
        raise InputError(f"unknown tuned-model kind {kind!r}; choose one of {', '.join(KINDS)}")
    return KINDS[kind](base, path)
