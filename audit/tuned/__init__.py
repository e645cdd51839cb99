"""Tuned weights against a base model: full fine-tunes, peft LoRA adapters, editkit edits.

Everything is read tensor by tensor (safetensors ``safe_open``) and returned as
fp32 deltas ``W_tuned - W_base`` keyed by the base model's parameter names, so
no second copy of the model is loaded. Pickle files are never read.

>>> from audit.tuned import load_tuned
>>> tuned = load_tuned(model, "runs/lora")          # doctest: +SKIP
>>> {name: dw.norm() for name, dw in tuned.items()}  # doctest: +SKIP
"""

from __future__ import annotations

from audit.tuned.base import DeltaWeights, TunedWeights
from audit.tuned.edit import EditDeltas
from audit.tuned.full import FullCheckpoint
from audit.tuned.lora import LoraAdapter, LoraLayer
from audit.tuned.open import detect_kind, load_tuned

__all__ = [
    "DeltaWeights",
    "EditDeltas",
    "FullCheckpoint",
    "LoraAdapter",
    "LoraLayer",
    "TunedWeights",
    "detect_kind",
    "load_tuned",
]
