"""Options of the sense finetuning editor (defaults: the published recipe where it gives one)."""

from __future__ import annotations

from dataclasses import dataclass

from editkit.editors.config import EditorConfig, option


@dataclass(frozen=True)
class SenseConfig(EditorConfig):
    """Sense finetuning options.

    The published sweeps (Hewitt et al., 2024, Backpack-GPT2) train about 10
    epochs with batch 1 and 5-step gradient accumulation, learning rates around
    3e-4 and a KL weight around 0.1-1; a checkpoint counts only inside the
    league ``general loss < initial x (1 + eps)``, eps in {1e-3, 1e-4, 1e-5}.

    >>> SenseConfig().league
    0.001
    """

    lr: float = option("Adam learning rate on the sense deltas", 3e-4)
    epochs: int = option("epochs over all examples", 10)
    batch_size: int = option("examples per optimizer step", 5)
    kl_weight: float = option("weight w of w * KL(p_orig || p_new) on a general-text passage each step (0: off)", 0.2)
    kl_passages: int = option("general passages (from the start of the general text) for the KL term", 20)
    kl_batch: int = option("general passages per KL term", 1)
    league: float | None = option(
        "deviation league eps: a checkpoint counts only if its held-out general loss < initial x (1 + eps) "
        "(none: every checkpoint counts)",
        1e-3,
    )
    league_passages: int = option("held-out general passages (from the end of the general text) for the league", 10)
    eval_every: int = option("optimizer steps between checkpoints (league check and edit loss)", 1)
    max_length: int = option("tokens per general passage", 128)
    general_file: str | None = option("general text (.jsonl with 'text', or .txt) instead of the shipped one", None)

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError("lr must be > 0")
        if self.kl_weight < 0:
            raise ValueError("kl_weight must be >= 0")
        if self.league is not None and self.league <= 0:
            raise ValueError("league must be > 0 (or none)")
        for name in ("epochs", "batch_size", "kl_passages", "kl_batch", "league_passages", "eval_every", "max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
