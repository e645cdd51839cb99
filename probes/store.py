"""Saving and loading probes without pickle: safetensors for arrays, JSON for everything else.

A saved probe is a folder of three files:

- ``card.json``: the model card: kind, label map, training data hash and
  counts, evaluation metrics, editkit version, creation time;
- ``state.json``: what the probe needs besides arrays (configuration,
  vocabularies, calibration, threshold, chosen layer);
- ``weights.safetensors``: the arrays (idf and coefficients, or the probe weight).

Loading reads only JSON and safetensors, so an untrusted probe folder cannot
run code.

>>> save_probe(clf, "runs/refusal-clf", card=ModelCard(kind="text", label_map={"compliance": 0, "refusal": 1}))   # doctest: +SKIP
>>> probe, card = load_probe("runs/refusal-clf")                                                                # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from editkit.errors import InputError
from probes.activation_probe import ActivationProbe
from probes.text_clf import TextRefusalClassifier

FORMAT = "editkit-probe"
FORMAT_VERSION = 1
CARD_FILE, STATE_FILE, WEIGHTS_FILE = "card.json", "state.json", "weights.safetensors"

PROBE_KINDS: dict[str, Any] = {"text": TextRefusalClassifier, "activation": ActivationProbe}
"""Probe classes by ``kind``; each has ``to_state()`` and ``from_state(arrays, meta)``."""

Probe = TextRefusalClassifier | ActivationProbe


@dataclass
class ModelCard:
    """What a saved probe is and how well it did.

    Attributes:
        kind: ``"text"`` or ``"activation"``.
        label_map: label name -> class index (e.g. ``{"compliance": 0, "refusal": 1}``).
        data: training data: ``hash`` (SHA-256 of the rows), ``n``, counts per
            label and per source, file names.
        metrics: the evaluation report (``EvaluationReport.to_dict()``), if run.
        notes: anything else (the command line, the model it reads ...).
        editkit_version, created: filled in when saved.
    """

    kind: str
    label_map: dict[str, int]
    data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    editkit_version: str = ""
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, **asdict(self)}


def write_probe(folder: str | Path, probe: Probe, card: ModelCard) -> Path:
    """Write the three files into an existing folder (e.g. the temporary folder of an atomic output)."""
    from safetensors.numpy import save

    from editkit import __version__

    out = Path(folder)
    if card.kind != probe.kind:
        raise ValueError(f"card kind {card.kind!r} does not match the probe ({probe.kind!r})")
    card.editkit_version = card.editkit_version or __version__
    card.created = card.created or datetime.now(timezone.utc).isoformat(timespec="seconds")
    arrays, meta = probe.to_state()
    contiguous = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    (out / WEIGHTS_FILE).write_bytes(save(contiguous, metadata={"format": FORMAT, "kind": probe.kind}))
    (out / STATE_FILE).write_text(json.dumps({"kind": probe.kind, **meta}, ensure_ascii=False, allow_nan=False, default=_json_default), encoding="utf-8")
    (out / CARD_FILE).write_text(json.dumps(card.to_dict(), indent=2, ensure_ascii=False, default=_json_default) + "\n", encoding="utf-8")
    return out


def save_probe(probe: Probe, path: str | Path, card: ModelCard, *, overwrite: bool = False) -> Path:
    """Save into a fresh folder, atomically (built in a temporary sibling, then renamed).

    Raises:
        EditkitError: the folder exists and ``overwrite`` is False.
    """
    from editkit.outputs import output_dir

    with output_dir(path, overwrite=overwrite) as tmp:
        write_probe(tmp, probe, card)
    return Path(path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path.parent}: not a saved probe (no {path.name}); pass a folder written by `editkit probe train`") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None


def load_probe(path: str | Path) -> tuple[Probe, ModelCard]:
    """The probe and its card from a folder written by :func:`save_probe` / :func:`write_probe`.

    Raises:
        InputError: a missing or malformed file, an unknown kind or format version.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load

    folder = Path(path)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such probe folder; pass a folder written by `editkit probe train`")
    card_data = _read_json(folder / CARD_FILE)
    state = _read_json(folder / STATE_FILE)
    if not isinstance(card_data, dict) or card_data.get("format") != FORMAT:
        raise InputError(f"{folder / CARD_FILE}: not an editkit probe card (format {card_data.get('format') if isinstance(card_data, dict) else None!r})")
    if card_data.get("format_version") != FORMAT_VERSION:
        raise InputError(f"{folder / CARD_FILE}: format version {card_data.get('format_version')!r} is not supported (this editkit reads {FORMAT_VERSION})")
    kind = card_data.get("kind")
    if kind not in PROBE_KINDS or state.get("kind") != kind:
        raise InputError(f"{folder}: unknown or inconsistent probe kind {kind!r}; expected one of {', '.join(PROBE_KINDS)}")
    weights = folder / WEIGHTS_FILE
    try:
        arrays = load(weights.read_bytes())
    except FileNotFoundError:
        raise InputError(f"{folder}: not a saved probe (no {WEIGHTS_FILE})") from None
    except (SafetensorError, ValueError) as exc:
        raise InputError(f"{weights}: not a valid safetensors file ({exc})") from None
    try:
        probe = PROBE_KINDS[kind].from_state(arrays, state)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{folder / STATE_FILE}: malformed probe state ({type(exc).__name__}: {exc})") from None
    known = {k: card_data[k] for k in ("kind", "label_map", "data", "metrics", "notes", "editkit_version", "created") if k in card_data}
    return probe, ModelCard(**known)


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
